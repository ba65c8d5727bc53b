//! Structural-schema handling: defaulting, pruning of unknown fields and validation, with the
//! API server's error texts. zen-sim admits custom resources with it; reconcile admits graph
//! instances against their SimpleSchema with it, so both say the same about the same input.

use serde_json::{Map, Value};

/// One invalid field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Invalid {
    /// `spec.replicas`
    pub(crate) field: String,
    /// The whole message: `spec.replicas: Invalid value: ...`.
    pub(crate) message: String,
    /// `FieldValueInvalid`, `FieldValueRequired`, `FieldValueNotSupported`...
    pub(crate) reason: &'static str,
}

/// Defaults, prunes and validates `object` against a CRD version's `openAPIV3Schema`; returns
/// the fields that pruning dropped (for the `Warning` header) or the invalid fields.
pub(crate) fn admit(object: &mut Value, schema: &Value) -> Result<Vec<String>, Vec<Invalid>> {
    let (pruned, invalid) = admit_all(object, schema);
    if invalid.is_empty() {
        Ok(pruned)
    } else {
        Err(invalid)
    }
}

/// As [`admit`], with both the pruned fields and the invalid ones, for callers that report
/// every problem at once.
pub(crate) fn admit_all(object: &mut Value, schema: &Value) -> (Vec<String>, Vec<Invalid>) {
    let mut pruned = Vec::new();
    let mut invalid = Vec::new();
    if let Some(root) = object.as_object_mut() {
        let properties = schema.get("properties").and_then(Value::as_object);
        let keys: Vec<String> = root.keys().cloned().collect();
        for key in keys {
            if matches!(key.as_str(), "apiVersion" | "kind" | "metadata") {
                continue;
            }
            match properties.and_then(|properties| properties.get(&key)) {
                Some(child_schema) => {
                    if let Some(child) = root.get_mut(&key) {
                        walk(child, child_schema, &key, &mut pruned, &mut invalid);
                    }
                }
                None if preserves_unknown(schema) => {}
                None => {
                    root.remove(&key);
                    pruned.push(key);
                }
            }
        }
        apply_defaults(root, schema, "", &mut pruned, &mut invalid);
        check_required(root, schema, "", &mut invalid);
    }
    (pruned, invalid)
}

fn preserves_unknown(schema: &Value) -> bool {
    schema.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true))
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn walk(
    value: &mut Value,
    schema: &Value,
    path: &str,
    pruned: &mut Vec<String>,
    invalid: &mut Vec<Invalid>,
) {
    if value.is_null() {
        if schema.get("nullable") != Some(&Value::Bool(true)) {
            invalid.push(Invalid {
                field: path.to_owned(),
                message: format!(
                    "{path}: Invalid value: \"null\": {path} in body must be of type {}: \"null\"",
                    type_name(schema)
                ),
                reason: "FieldValueTypeInvalid",
            });
        }
        return;
    }
    if !type_matches(value, schema) {
        invalid.push(Invalid {
            field: path.to_owned(),
            message: format!(
                "{path}: Invalid value: \"{}\": {path} in body must be of type {}: \"{}\"",
                json_type(value),
                type_name(schema),
                json_type(value)
            ),
            reason: "FieldValueTypeInvalid",
        });
        return;
    }
    check_constraints(value, schema, path, invalid);
    match value {
        Value::Object(map) => {
            let properties = schema.get("properties").and_then(Value::as_object);
            let additional = schema
                .get("additionalProperties")
                .filter(|additional| additional.is_object());
            let keys: Vec<String> = map.keys().cloned().collect();
            for key in keys {
                let child_path = join(path, &key);
                let child_schema = properties
                    .and_then(|properties| properties.get(&key))
                    .or(additional);
                match child_schema {
                    Some(child_schema) => {
                        if let Some(child) = map.get_mut(&key) {
                            walk(child, child_schema, &child_path, pruned, invalid);
                        }
                    }
                    None if preserves_unknown(schema)
                        || schema.get("additionalProperties") == Some(&Value::Bool(true)) => {}
                    None if schema.get("x-kubernetes-embedded-resource")
                        == Some(&Value::Bool(true))
                        && matches!(key.as_str(), "apiVersion" | "kind" | "metadata") => {}
                    None => {
                        map.remove(&key);
                        pruned.push(child_path);
                    }
                }
            }
            apply_defaults(map, schema, path, pruned, invalid);
            check_required(map, schema, path, invalid);
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (index, item) in items.iter_mut().enumerate() {
                    walk(
                        item,
                        item_schema,
                        &format!("{path}[{index}]"),
                        pruned,
                        invalid,
                    );
                }
            }
        }
        _ => {}
    }
}

fn apply_defaults(
    map: &mut Map<String, Value>,
    schema: &Value,
    path: &str,
    pruned: &mut Vec<String>,
    invalid: &mut Vec<Invalid>,
) {
    let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
        return;
    };
    for (key, child_schema) in properties {
        if map.contains_key(key) {
            continue;
        }
        if let Some(default) = child_schema.get("default") {
            let mut value = default.clone();
            walk(&mut value, child_schema, &join(path, key), pruned, invalid);
            map.insert(key.clone(), value);
        }
    }
}

fn check_required(
    map: &Map<String, Value>,
    schema: &Value,
    path: &str,
    invalid: &mut Vec<Invalid>,
) {
    for required in schema
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(key) = required.as_str() else {
            continue;
        };
        if !map.contains_key(key) {
            let field = join(path, key);
            invalid.push(Invalid {
                message: format!("{field}: Required value"),
                field,
                reason: "FieldValueRequired",
            });
        }
    }
}

#[allow(clippy::cast_precision_loss)] // lengths and counts far below 2^52
fn check_constraints(value: &Value, schema: &Value, path: &str, invalid: &mut Vec<Invalid>) {
    let mut fail = |detail: String, reason: &'static str| {
        invalid.push(Invalid {
            field: path.to_owned(),
            message: format!("{path}: {detail}"),
            reason,
        });
    };
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        let listed: Vec<String> = allowed.iter().map(Value::to_string).collect();
        fail(
            format!(
                "Unsupported value: {value}: supported values: {}",
                listed.join(", ")
            ),
            "FieldValueNotSupported",
        );
    }
    let number = |key: &str| schema.get(key).and_then(Value::as_f64);
    if let Some(have) = value.as_f64() {
        if let Some(minimum) = number("minimum")
            && have < minimum
        {
            fail(
                format!(
                    "Invalid value: {value}: {path} in body should be greater than or equal to {minimum}"
                ),
                "FieldValueInvalid",
            );
        }
        if let Some(maximum) = number("maximum")
            && have > maximum
        {
            fail(
                format!(
                    "Invalid value: {value}: {path} in body should be less than or equal to {maximum}"
                ),
                "FieldValueInvalid",
            );
        }
    }
    if let Some(text) = value.as_str() {
        let length = text.chars().count() as f64;
        if number("minLength").is_some_and(|minimum| length < minimum) {
            fail(
                format!(
                    "Invalid value: {value}: {path} in body should be at least {} chars long",
                    number("minLength").unwrap_or(0.0)
                ),
                "FieldValueInvalid",
            );
        }
        if number("maxLength").is_some_and(|maximum| length > maximum) {
            fail(
                format!(
                    "Too long: may not be more than {} bytes",
                    number("maxLength").unwrap_or(0.0)
                ),
                "FieldValueTooLong",
            );
        }
        if let Some(pattern) = schema.get("pattern").and_then(Value::as_str)
            && compiled(pattern).is_some_and(|regex| !regex.is_match(text))
        {
            fail(
                format!("Invalid value: {value}: {path} in body should match '{pattern}'"),
                "FieldValueInvalid",
            );
        }
    }
    if let Some(items) = value.as_array() {
        let count = items.len() as f64;
        if number("minItems").is_some_and(|minimum| count < minimum) {
            fail(
                format!(
                    "Invalid value: {count}: {path} in body should have at least {} items",
                    number("minItems").unwrap_or(0.0)
                ),
                "FieldValueInvalid",
            );
        }
        if number("maxItems").is_some_and(|maximum| count > maximum) {
            fail(
                format!(
                    "Too many: {count}: must have at most {} items",
                    number("maxItems").unwrap_or(0.0)
                ),
                "FieldValueTooMany",
            );
        }
    }
}

/// A schema pattern, compiled once (a bounded cache: schemas have few patterns).
fn compiled(pattern: &str) -> Option<regex::Regex> {
    type Cache = std::collections::HashMap<String, Option<regex::Regex>>;
    static CACHE: std::sync::Mutex<Option<Cache>> = std::sync::Mutex::new(None);
    let mut guard = CACHE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let cache = guard.get_or_insert_with(Cache::new);
    if cache.len() > 256 {
        cache.clear();
    }
    cache
        .entry(pattern.to_owned())
        .or_insert_with(|| regex::Regex::new(pattern).ok())
        .clone()
}

fn type_name(schema: &Value) -> &str {
    schema
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("object")
}

fn type_matches(value: &Value, schema: &Value) -> bool {
    if schema.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true)) {
        return value.is_string() || value.is_i64() || value.is_u64();
    }
    match schema.get("type").and_then(Value::as_str) {
        None => true,
        Some("object") => value.is_object(),
        Some("array") => value.is_array(),
        Some("string") => value.is_string(),
        Some("integer") => {
            value.is_i64()
                || value.is_u64()
                || value.as_f64().is_some_and(|number| number.fract() == 0.0)
        }
        Some("number") => value.is_number(),
        Some("boolean") => value.is_boolean(),
        Some(_) => false,
    }
}

pub(crate) fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(number) if number.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({"type": "object", "properties": {
            "spec": {"type": "object", "required": ["size"], "properties": {
                "size": {"type": "integer", "minimum": 1, "maximum": 10},
                "mode": {"type": "string", "enum": ["fast", "safe"], "default": "safe"},
                "name": {"type": "string", "pattern": "^[a-z]+$"},
                "tags": {"type": "array", "maxItems": 2, "items": {"type": "string"}},
                "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                "port": {"x-kubernetes-int-or-string": true}}},
            "status": {"type": "object", "properties": {"ready": {"type": "boolean"}}}}})
    }

    #[test]
    fn defaults_are_applied_and_unknown_fields_pruned() {
        let mut object = json!({"apiVersion": "x/v1", "kind": "W", "metadata": {"name": "w"},
            "spec": {"size": 3, "bogus": 1, "extra": {"anything": [1]}, "port": "http"}, "junk": true});
        let pruned = admit(&mut object, &schema()).unwrap();
        assert_eq!(pruned, ["junk", "spec.bogus"]);
        assert_eq!(object["spec"]["mode"], "safe");
        assert_eq!(object["spec"]["extra"]["anything"], json!([1]));
        assert_eq!(object["metadata"]["name"], "w");
    }

    #[test]
    fn invalid_fields_are_all_reported_with_the_api_servers_words() {
        let mut object = json!({"spec": {"size": "big", "mode": "slow", "name": "A1", "tags": ["a", "b", "c"]}, "status": {"ready": "yes"}});
        let errors = admit(&mut object, &schema()).unwrap_err();
        let messages: Vec<&str> = errors.iter().map(|error| error.message.as_str()).collect();
        assert!(messages.contains(&"spec.size: Invalid value: \"string\": spec.size in body must be of type integer: \"string\""), "{messages:?}");
        assert!(
            messages
                .iter()
                .any(|message| message.starts_with("spec.mode: Unsupported value: \"slow\""))
        );
        assert!(
            messages
                .iter()
                .any(|message| message.contains("should match '^[a-z]+$'"))
        );
        assert!(
            messages
                .iter()
                .any(|message| message.starts_with("spec.tags: Too many: 3"))
        );
        assert!(
            messages
                .iter()
                .any(|message| message.starts_with("status.ready: Invalid value"))
        );
        let mut missing = json!({"spec": {}});
        let errors = admit(&mut missing, &schema()).unwrap_err();
        assert_eq!(errors[0].message, "spec.size: Required value");
        let mut out_of_range = json!({"spec": {"size": 11}});
        assert!(
            admit(&mut out_of_range, &schema()).unwrap_err()[0]
                .message
                .contains("less than or equal to 10")
        );
    }
}
