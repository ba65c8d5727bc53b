//! `events.k8s.io/v1` Events, stored as the core group's `v1` Events, as the API server keeps
//! them: one storage, two shapes. An Event written through either group reads back through
//! both (`kubectl get events` shows what kube-runtime's recorder wrote). The shapes differ in
//! field names only, so a whole object, a merge or apply patch and a JSON patch's paths all
//! convert by renaming.

use serde_json::{Map, Value};

/// `events.k8s.io/v1` field, core `v1` field.
const RENAMED: &[(&str, &str)] = &[
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("reportingController", "reportingComponent"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
];

fn rename(object: &Value, from_v1: bool, api_version: &str) -> Value {
    let Some(map) = object.as_object() else {
        return object.clone();
    };
    let mut out = Map::with_capacity(map.len());
    for (key, value) in map {
        let renamed = RENAMED
            .iter()
            .find(|(v1, core)| if from_v1 { v1 == key } else { core == key })
            .map_or(key.as_str(), |(v1, core)| if from_v1 { core } else { v1 });
        out.insert(renamed.to_owned(), value.clone());
    }
    if out.contains_key("apiVersion") {
        out.insert("apiVersion".into(), Value::from(api_version));
    }
    Value::Object(out)
}

/// An `events.k8s.io/v1` Event (or part of one: a patch) in the core group's shape.
pub(crate) fn to_core(v1: &Value) -> Value {
    rename(v1, true, "v1")
}

/// A stored core Event in the `events.k8s.io/v1` shape.
pub(crate) fn to_v1(core: &Value) -> Value {
    rename(core, false, "events.k8s.io/v1")
}

/// A JSON patch on the `events.k8s.io/v1` shape, on the core shape: each path's first
/// segment renamed.
pub(crate) fn json_patch_to_core(patch: &Value) -> Value {
    let mut patch = patch.clone();
    for operation in patch.as_array_mut().into_iter().flatten() {
        for key in ["path", "from"] {
            if let Some(path) = operation.get(key).and_then(Value::as_str) {
                let rest = path.strip_prefix('/').unwrap_or(path);
                let (first, tail) = rest
                    .split_once('/')
                    .map_or((rest, None), |(f, t)| (f, Some(t)));
                if let Some((_, core)) = RENAMED.iter().find(|(v1, _)| *v1 == first) {
                    let renamed = match tail {
                        Some(tail) => format!("/{core}/{tail}"),
                        None => format!("/{core}"),
                    };
                    operation[key] = Value::from(renamed);
                }
            }
        }
    }
    patch
}

/// A field selector on `events.k8s.io/v1` Events, on the core shape.
pub(crate) fn field_selector_to_core(text: &str) -> String {
    text.split(',')
        .map(|term| {
            let term = term.trim();
            if let Some(rest) = term.strip_prefix("regarding.") {
                format!("involvedObject.{rest}")
            } else if let Some(rest) = term.strip_prefix("reportingController") {
                format!("reportingComponent{rest}")
            } else {
                term.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// What the API server requires of an `events.k8s.io/v1` Event it creates; `None` when it is
/// valid, else the causes (field, message).
pub(crate) fn invalid(v1: &Value, namespace: &str) -> Option<Vec<(String, String)>> {
    let mut causes = Vec::new();
    let text = |key: &str| v1.get(key).and_then(Value::as_str).unwrap_or_default();
    if v1.get("eventTime").is_none_or(Value::is_null) {
        causes.push(("eventTime".into(), "eventTime: Required value".into()));
    }
    for (key, limit) in [
        ("reportingController", 253),
        ("reportingInstance", 128),
        ("action", 128),
        ("reason", 128),
    ] {
        let value = text(key);
        if value.is_empty() {
            causes.push((key.into(), format!("{key}: Required value")));
        } else if value.len() > limit {
            causes.push((
                key.into(),
                format!("{key}: Too long: may not be more than {limit} bytes"),
            ));
        }
    }
    if text("note").len() > 1024 {
        causes.push((
            "note".into(),
            "note: Too long: may not be more than 1024 bytes".into(),
        ));
    }
    if !matches!(text("type"), "Normal" | "Warning") {
        causes.push((
            "type".into(),
            format!(
                "type: Unsupported value: {:?}: supported values: \"Normal\", \"Warning\"",
                text("type")
            ),
        ));
    }
    let regarding = v1["regarding"]["namespace"].as_str().unwrap_or_default();
    if !regarding.is_empty() && regarding != namespace {
        causes.push((
            "regarding.namespace".into(),
            format!(
                "regarding.namespace: Invalid value: {regarding:?}: does not match event.namespace"
            ),
        ));
    }
    (!causes.is_empty()).then_some(causes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_shapes_convert_both_ways_by_renaming() {
        let v1 = json!({
            "apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": "web.1", "namespace": "default"},
            "eventTime": "2026-12-07T21:00:00.000000Z", "action": "Elect", "reason": "LeaderChanged",
            "note": "web-b leads", "type": "Normal", "reportingController": "kubectl-zen/zen-lead",
            "reportingInstance": "a", "regarding": {"kind": "Service", "name": "web"},
            "series": {"count": 2, "lastObservedTime": "2026-12-07T21:01:00.000000Z"},
        });
        let core = to_core(&v1);
        assert_eq!(core["apiVersion"], "v1");
        assert_eq!(core["message"], "web-b leads");
        assert_eq!(core["involvedObject"]["name"], "web");
        assert_eq!(core["reportingComponent"], "kubectl-zen/zen-lead");
        assert_eq!(core["series"]["count"], 2);
        assert!(core.get("note").is_none());
        assert_eq!(to_v1(&core), v1);
        // A patch has no apiVersion to set.
        assert_eq!(to_core(&json!({"note": "x"})), json!({"message": "x"}));
    }

    #[test]
    fn json_patch_paths_and_field_selectors_are_renamed() {
        let patch = json!([{"op": "replace", "path": "/note", "value": "x"},
                           {"op": "copy", "from": "/regarding/name", "path": "/related/name"}]);
        assert_eq!(
            json_patch_to_core(&patch),
            json!([{"op": "replace", "path": "/message", "value": "x"},
                   {"op": "copy", "from": "/involvedObject/name", "path": "/related/name"}])
        );
        assert_eq!(
            field_selector_to_core("regarding.name=web, reportingController!=x,type=Warning"),
            "involvedObject.name=web,reportingComponent!=x,type=Warning"
        );
    }

    #[test]
    fn a_create_missing_what_the_api_server_requires_is_invalid() {
        let causes = invalid(
            &json!({"type": "Bad", "note": "x".repeat(2000),
                                     "regarding": {"namespace": "other"}}),
            "default",
        )
        .expect("invalid");
        let fields: Vec<&str> = causes.iter().map(|(field, _)| field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "eventTime",
                "reportingController",
                "reportingInstance",
                "action",
                "reason",
                "note",
                "type",
                "regarding.namespace"
            ]
        );
    }
}
