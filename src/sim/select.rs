//! Label and field selectors, with the API server's grammar and error texts.

use serde_json::Value;

/// One requirement of a label selector.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
}

/// A parsed label selector; the empty one matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct LabelSelector(Vec<Requirement>);

impl LabelSelector {
    /// Parses `a=b,c!=d,e in (f,g),h notin (i),j,!k`.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let mut requirements = Vec::new();
        for term in split_terms(text) {
            let term = term.trim();
            if term.is_empty() {
                continue;
            }
            requirements.push(parse_requirement(term)?);
        }
        Ok(Self(requirements))
    }

    /// Whether `labels` (an object's `metadata.labels`, or null) satisfy every requirement.
    pub(crate) fn matches(&self, labels: &Value) -> bool {
        self.matches_with(|key| labels.get(key).and_then(Value::as_str))
    }

    /// Whether the labels `get` looks up satisfy every requirement.
    pub(crate) fn matches_with<'a>(&self, get: impl Fn(&str) -> Option<&'a str>) -> bool {
        self.0.iter().all(|requirement| match requirement {
            Requirement::Equals(key, value) => get(key) == Some(value.as_str()),
            Requirement::NotEquals(key, value) => get(key) != Some(value.as_str()),
            Requirement::In(key, values) => {
                get(key).is_some_and(|have| values.iter().any(|v| v == have))
            }
            Requirement::NotIn(key, values) => {
                get(key).is_none_or(|have| values.iter().all(|v| v != have))
            }
            Requirement::Exists(key) => get(key).is_some(),
            Requirement::DoesNotExist(key) => get(key).is_none(),
        })
    }
}

/// Splits at commas outside parentheses.
fn split_terms(text: &str) -> Vec<&str> {
    let mut terms = Vec::new();
    let mut depth = 0_i32;
    let mut start = 0;
    for (index, character) in text.char_indices() {
        match character {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                terms.push(&text[start..index]);
                start = index + 1;
            }
            _ => {}
        }
    }
    terms.push(&text[start..]);
    terms
}

fn parse_requirement(term: &str) -> Result<Requirement, String> {
    if let Some(key) = term.strip_prefix('!') {
        return Ok(Requirement::DoesNotExist(check_key(key.trim())?));
    }
    for (operator, negated) in [(" notin ", true), (" in ", false)] {
        if let Some((key, rest)) = term.split_once(operator) {
            let rest = rest.trim();
            let inner = rest
                .strip_prefix('(')
                .and_then(|rest| rest.strip_suffix(')'))
                .ok_or_else(|| {
                    format!("unable to parse requirement: found '{rest}', expected: '('")
                })?;
            let values: Vec<String> = inner
                .split(',')
                .map(|value| value.trim().to_owned())
                .collect();
            for value in &values {
                check_value(value)?;
            }
            let key = check_key(key.trim())?;
            return Ok(if negated {
                Requirement::NotIn(key, values)
            } else {
                Requirement::In(key, values)
            });
        }
    }
    for (operator, negated) in [("!=", true), ("==", false), ("=", false)] {
        if let Some((key, value)) = term.split_once(operator) {
            let key = check_key(key.trim())?;
            let value = value.trim();
            check_value(value)?;
            let value = value.to_owned();
            return Ok(if negated {
                Requirement::NotEquals(key, value)
            } else {
                Requirement::Equals(key, value)
            });
        }
    }
    Ok(Requirement::Exists(check_key(term)?))
}

fn check_key(key: &str) -> Result<String, String> {
    let (prefix, name) = key.rsplit_once('/').unwrap_or(("", key));
    let name_ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    let prefix_ok = prefix.len() <= 253
        && prefix
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '.'));
    if name_ok && prefix_ok {
        Ok(key.to_owned())
    } else {
        Err(format!(
            "unable to parse requirement: <nil>: Invalid value: \"{key}\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
        ))
    }
}

fn check_value(value: &str) -> Result<(), String> {
    let ok = value.is_empty()
        || (value.len() <= 63
            && value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && value.starts_with(|c: char| c.is_ascii_alphanumeric())
            && value.ends_with(|c: char| c.is_ascii_alphanumeric()));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "unable to parse requirement: values[0][{value}]: Invalid value: \"{value}\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
        ))
    }
}

/// A parsed field selector: equality terms on supported fields.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct FieldSelector(Vec<(String, bool, String)>);

impl FieldSelector {
    /// Parses `metadata.name=x,status.phase!=Running` for a kind whose field labels are
    /// `labels`, refusing any other field with the API server's words for that kind.
    pub(crate) fn parse(text: &str, labels: &FieldLabels) -> Result<Self, String> {
        let mut terms = Vec::new();
        for term in text
            .split(',')
            .map(str::trim)
            .filter(|term| !term.is_empty())
        {
            let (field, negated, value) = if let Some((field, value)) = term.split_once("!=") {
                (field, true, value)
            } else if let Some((field, value)) = term.split_once("==") {
                (field, false, value)
            } else if let Some((field, value)) = term.split_once('=') {
                (field, false, value)
            } else {
                return Err(format!(
                    "invalid selector: '{text}'; can't understand '{term}'"
                ));
            };
            let field = field.trim();
            if !labels.fields.contains(&field) {
                return Err(labels.refusal(field));
            }
            terms.push((field.to_owned(), negated, value.trim().to_owned()));
        }
        Ok(Self(terms))
    }

    /// Whether `object` satisfies every term.
    pub(crate) fn matches(&self, object: &Value) -> bool {
        self.0.iter().all(|(field, negated, value)| {
            let have = field.split('.').try_fold(object, |node, key| node.get(key));
            let have = match have {
                Some(Value::String(text)) => text.clone(),
                Some(Value::Bool(flag)) => flag.to_string(),
                Some(Value::Number(number)) => number.to_string(),
                _ => String::new(),
            };
            (have == *value) != *negated
        })
    }
}

impl FieldSelector {
    /// Whether it matches everything.
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The fields a kind's field selectors may name, and how the API server refuses the others.
///
/// This is the API server's own table (the field label conversion functions registered per
/// kind in `k8s.io/kubernetes/pkg/apis/*/v1`): a kind that registers none takes only
/// `metadata.name` and `metadata.namespace`, and says so; one that registers its own says
/// "field label not supported". Node and Namespace take no `metadata.namespace`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FieldLabels {
    fields: &'static [&'static str],
    refusal: Refusal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// apimachinery's `DefaultMetaV1FieldSelectorConversion`.
    KnownOnlyMetadata,
    /// A kind's own conversion function, and custom resources.
    NotSupported,
    /// batch/v1 Job's own wording.
    NotSupportedForJob,
}

const METADATA: &[&str] = &["metadata.name", "metadata.namespace"];

impl FieldLabels {
    /// The field labels of `kind` in `group` (`custom` for a CRD's kinds).
    pub(crate) fn of(group: &str, kind: &str, custom: bool) -> Self {
        use Refusal::{KnownOnlyMetadata, NotSupported, NotSupportedForJob};
        let (fields, refusal): (&'static [&'static str], Refusal) = match (group, kind) {
            _ if custom => (METADATA, NotSupported),
            ("", "Pod") => (
                &[
                    "metadata.name",
                    "metadata.namespace",
                    "spec.nodeName",
                    "spec.restartPolicy",
                    "spec.schedulerName",
                    "spec.serviceAccountName",
                    "spec.hostNetwork",
                    "status.phase",
                    "status.podIP",
                    "status.podIPs",
                    "status.nominatedNodeName",
                ],
                NotSupported,
            ),
            ("", "Event") => (
                &[
                    "metadata.name",
                    "metadata.namespace",
                    "involvedObject.kind",
                    "involvedObject.namespace",
                    "involvedObject.name",
                    "involvedObject.uid",
                    "involvedObject.apiVersion",
                    "involvedObject.resourceVersion",
                    "involvedObject.fieldPath",
                    "reason",
                    "reportingComponent",
                    "source",
                    "type",
                ],
                NotSupported,
            ),
            ("events.k8s.io", "Event") => (
                &[
                    "metadata.name",
                    "metadata.namespace",
                    "regarding.kind",
                    "regarding.namespace",
                    "regarding.name",
                    "regarding.uid",
                    "regarding.apiVersion",
                    "regarding.resourceVersion",
                    "regarding.fieldPath",
                    "reason",
                    "reportingController",
                    "type",
                ],
                NotSupported,
            ),
            ("", "Node") => (&["metadata.name", "spec.unschedulable"], NotSupported),
            ("", "Namespace") => (&["metadata.name", "status.phase"], NotSupported),
            ("", "Secret") => (
                &["metadata.name", "metadata.namespace", "type"],
                NotSupported,
            ),
            ("", "Service") => (
                &[
                    "metadata.name",
                    "metadata.namespace",
                    "spec.clusterIP",
                    "spec.type",
                ],
                NotSupported,
            ),
            ("", "ReplicationController") => (
                &["metadata.name", "metadata.namespace", "status.replicas"],
                NotSupported,
            ),
            ("batch", "Job") => (
                &["metadata.name", "metadata.namespace", "status.successful"],
                NotSupportedForJob,
            ),
            _ => (METADATA, KnownOnlyMetadata),
        };
        Self { fields, refusal }
    }

    fn refusal(&self, field: &str) -> String {
        match self.refusal {
            Refusal::KnownOnlyMetadata => format!(
                "\"{field}\" is not a known field selector: only \"metadata.name\", \"metadata.namespace\""
            ),
            Refusal::NotSupported => format!("field label not supported: {field}"),
            Refusal::NotSupportedForJob => format!("field label \"{field}\" not supported for Job"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn label_selectors_follow_the_api_grammar() {
        let labels = json!({"app": "web", "tier": "front", "env": "prod"});
        let cases = [
            ("", true),
            ("app=web", true),
            ("app==web", true),
            ("app!=web", false),
            ("app=web,tier=back", false),
            ("tier in (front, back)", true),
            ("env notin (prod)", false),
            ("missing notin (x)", true),
            ("app", true),
            ("!app", false),
            ("!missing", true),
            ("app in (web),env,!canary", true),
        ];
        for (text, expected) in cases {
            let selector = LabelSelector::parse(text).unwrap();
            assert_eq!(selector.matches(&labels), expected, "{text}");
        }
        assert_eq!(
            LabelSelector::parse(" , ").unwrap(),
            LabelSelector::default()
        );
        assert!(
            LabelSelector::parse("app=we b")
                .unwrap_err()
                .contains("Invalid value")
        );
        assert!(
            LabelSelector::parse("app in web")
                .unwrap_err()
                .contains("expected: '('")
        );
        assert!(LabelSelector::parse("-bad=x").is_err());
        // Nothing matches labels an object does not have.
        assert!(
            !LabelSelector::parse("app=web")
                .unwrap()
                .matches(&Value::Null)
        );
    }

    #[test]
    fn field_selectors_allow_only_supported_fields() {
        let pod =
            json!({"metadata": {"name": "p", "namespace": "ns"}, "status": {"phase": "Running"}});
        let pods = FieldLabels::of("", "Pod", false);
        let selector =
            FieldSelector::parse("metadata.name=p,status.phase!=Pending", &pods).unwrap();
        assert!(selector.matches(&pod));
        assert!(
            !FieldSelector::parse("metadata.namespace=other", &pods)
                .unwrap()
                .matches(&pod)
        );
        assert!(
            FieldSelector::parse("nonsense", &pods)
                .unwrap_err()
                .contains("can't understand")
        );
    }

    #[test]
    fn refusals_are_worded_as_the_api_server_words_them_per_kind() {
        let refusal = |group, kind, custom, field: &str| {
            FieldSelector::parse(&format!("{field}=x"), &FieldLabels::of(group, kind, custom))
                .unwrap_err()
        };
        // Kinds without a conversion function of their own (kube-apiserver v1.37).
        assert_eq!(
            refusal("", "ConfigMap", false, "data.key"),
            r#""data.key" is not a known field selector: only "metadata.name", "metadata.namespace""#
        );
        assert_eq!(
            refusal("apps", "Deployment", false, "spec.replicas"),
            r#""spec.replicas" is not a known field selector: only "metadata.name", "metadata.namespace""#
        );
        assert!(refusal("apps", "ReplicaSet", false, "status.replicas").contains("not a known"));
        // Kinds with their own.
        assert_eq!(
            refusal("", "Pod", false, "spec.containers"),
            "field label not supported: spec.containers"
        );
        assert_eq!(
            refusal("", "Node", false, "metadata.namespace"),
            "field label not supported: metadata.namespace"
        );
        assert_eq!(
            refusal("batch", "Job", false, "status.active"),
            r#"field label "status.active" not supported for Job"#
        );
        assert_eq!(
            refusal("example.com", "Widget", true, "spec.size"),
            "field label not supported: spec.size"
        );
        for (group, kind, field) in [
            ("", "Secret", "type"),
            ("", "Service", "spec.type"),
            ("", "Namespace", "status.phase"),
            ("events.k8s.io", "Event", "regarding.name"),
            ("", "Event", "involvedObject.name"),
        ] {
            assert!(
                FieldSelector::parse(&format!("{field}=x"), &FieldLabels::of(group, kind, false))
                    .is_ok(),
                "{kind}: {field}"
            );
        }
    }
}
