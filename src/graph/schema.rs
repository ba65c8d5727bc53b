//! KRO's SimpleSchema, translated to the OpenAPI v3 schema of the instance CRD.
//!
//! A SimpleSchema field is a string: a type, then optionally `|` and markers separated by
//! whitespace (`string | required=true default="web"`). Types are `string`, `integer`,
//! `boolean`, `float` (OpenAPI `number`), `object` (schemaless), `[]T`, `map[string]T`, a
//! nested YAML map, or a name from `spec.schema.types`. The error texts are KRO's, so a search
//! finds the same explanations.

use foldhash::{HashMap, HashMapExt};
use serde_json::{Map, Value as Json, json};

/// Nested `[]`/`map[string]` prefixes beyond this are refused, as KRO does.
const MAX_TYPE_NESTING: usize = 16;

/// The markers KRO knows, in its documentation's order.
pub const MARKERS: [&str; 16] = [
    "required",
    "default",
    "description",
    "minimum",
    "maximum",
    "validation",
    "enum",
    "immutable",
    "pattern",
    "uniqueItems",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "listType",
    "listMapKey",
];

/// A SimpleSchema problem at a field path such as `spec.schema.spec.name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SchemaIssue {
    pub(crate) path: String,
    pub(crate) message: String,
}

/// A built schema and whether the alias it came from carries `required=true`.
#[derive(Debug, Clone)]
struct Built {
    schema: Json,
    required: bool,
}

/// Builds OpenAPI schemas from SimpleSchema text, resolving `types` on demand.
pub(crate) struct SchemaBuilder<'a> {
    types: Option<&'a Map<String, Json>>,
    built: HashMap<String, Option<Built>>,
    resolving: Vec<String>,
    issues: Vec<SchemaIssue>,
}

impl<'a> SchemaBuilder<'a> {
    /// A builder for a schema whose custom types are `types` (`spec.schema.types`).
    pub(crate) fn new(types: Option<&'a Map<String, Json>>) -> Self {
        Self {
            types,
            built: HashMap::new(),
            resolving: Vec::new(),
            issues: Vec::new(),
        }
    }

    /// The OpenAPI schema of `spec.schema.spec`, and every problem found on the way. Every
    /// custom type is built, used or not, as KRO does.
    pub(crate) fn build_spec(mut self, spec: Option<&Json>) -> (Json, Vec<SchemaIssue>) {
        if let Some(types) = self.types {
            let mut names: Vec<&String> = types.keys().collect();
            names.sort();
            for name in names {
                self.custom(name);
            }
        }
        let empty = Map::new();
        let schema = match spec {
            None | Some(Json::Null) => self.object(&empty, "spec.schema.spec"),
            Some(Json::Object(fields)) => self.object(fields, "spec.schema.spec"),
            Some(other) => {
                self.issue(
                    "spec.schema.spec",
                    format!("unexpected type: {}", json_type(other)),
                );
                self.object(&empty, "spec.schema.spec")
            }
        };
        (schema, self.issues)
    }

    fn issue(&mut self, path: &str, message: String) {
        self.issues.push(SchemaIssue {
            path: path.to_owned(),
            message,
        });
    }

    /// A nested object: its fields' schemas, the sorted `required` list, and `default: {}`
    /// when a direct child has a default and nothing is required.
    fn object(&mut self, fields: &Map<String, Json>, path: &str) -> Json {
        let mut properties = Map::new();
        let mut required = Vec::new();
        for (name, value) in fields {
            let field_path = format!("{path}.{name}");
            let built = match value {
                Json::String(text) => self.field(text, &field_path),
                Json::Object(nested) => Some(Built {
                    schema: self.object(nested, &field_path),
                    required: false,
                }),
                other => {
                    self.issue(
                        &field_path,
                        format!("unexpected type: {}", json_type(other)),
                    );
                    None
                }
            };
            if let Some(built) = built {
                if built.required {
                    required.push(name.clone());
                }
                properties.insert(name.clone(), built.schema);
            }
        }
        required.sort();
        let any_default = properties.values().any(|p| p.get("default").is_some());
        let mut schema = Map::new();
        schema.insert("type".into(), "object".into());
        schema.insert("properties".into(), Json::Object(properties));
        if required.is_empty() {
            if any_default {
                schema.insert("default".into(), json!({}));
            }
        } else {
            schema.insert("required".into(), required.into());
        }
        Json::Object(schema)
    }

    /// One field: `type | markers`, its problem reported at `path`.
    fn field(&mut self, text: &str, path: &str) -> Option<Built> {
        match self.field_type(text) {
            Ok(built) => Some(built),
            Err(message) => {
                // An empty message: a broken custom type, reported where it is defined.
                if !message.is_empty() {
                    self.issue(path, message);
                }
                None
            }
        }
    }

    fn field_type(&mut self, text: &str) -> Result<Built, String> {
        let (type_text, markers) = match text.split_once('|') {
            Some((t, m)) => (t.trim(), Some(m)),
            None => (text.trim(), None),
        };
        if type_text.is_empty() {
            return Err("empty type".into());
        }
        let mut built = self.parse_type(type_text, 0)?;
        if let Some(markers) = markers {
            apply_markers(&mut built, &parse_markers(markers)?)?;
        }
        Ok(built)
    }

    fn parse_type(&mut self, text: &str, depth: usize) -> Result<Built, String> {
        let text = text.trim();
        if depth > MAX_TYPE_NESTING {
            return Err(format!(
                "type nesting too deep (max {MAX_TYPE_NESTING}): {text:?}"
            ));
        }
        let plain = |schema: Json| {
            Ok(Built {
                schema,
                required: false,
            })
        };
        match text {
            "string" | "integer" | "boolean" => return plain(json!({ "type": text })),
            "float" => return plain(json!({ "type": "number" })),
            "object" => {
                return plain(json!({
                    "type": "object",
                    "x-kubernetes-preserve-unknown-fields": true
                }));
            }
            _ => {}
        }
        if let Some(element) = text.strip_prefix("[]") {
            if element.trim().is_empty() {
                return Err("empty slice element type".into());
            }
            let items = self.parse_type(element, depth + 1)?;
            return plain(json!({ "type": "array", "items": items.schema }));
        }
        if let Some(rest) = text.strip_prefix("map[") {
            let Some(value) = rest.strip_prefix("string]") else {
                return Err("map key must be string".into());
            };
            if value.trim().is_empty() {
                return Err("map value type is required".into());
            }
            let values = self.parse_type(value, depth + 1)?;
            return plain(json!({ "type": "object", "additionalProperties": values.schema }));
        }
        match self.custom(text) {
            Some(built) => Ok(built),
            None if self.types.is_some_and(|t| t.contains_key(text)) => Err(String::new()),
            None => Err(format!("unknown type: {text}")),
        }
    }

    /// A custom type from `types`, built once; `None` when undefined or broken (its problem is
    /// reported once, at its own path).
    fn custom(&mut self, name: &str) -> Option<Built> {
        if let Some(done) = self.built.get(name) {
            return done.clone();
        }
        let types = self.types?;
        let definition = types.get(name)?;
        if let Some(at) = self.resolving.iter().position(|n| n == name) {
            let mut cycle = self.resolving[at..].to_vec();
            cycle.push(name.to_owned());
            let message = if cycle.len() == 2 {
                "self references are not allowed".to_owned()
            } else {
                format!(
                    "cyclic dependency in type {}: graph contains a cycle: {}",
                    cycle[0],
                    cycle.join(" -> ")
                )
            };
            self.issue(&format!("spec.schema.types.{}", cycle[0]), message);
            for member in &cycle {
                self.built.insert(member.clone(), None);
            }
            return None;
        }
        self.resolving.push(name.to_owned());
        let path = format!("spec.schema.types.{name}");
        let built = match definition {
            Json::String(text) => match self.field_type(text) {
                Ok(built) => Some(built),
                Err(message) => {
                    if !message.is_empty() {
                        self.issue(&path, format!("parsing type {name}: {message}"));
                    }
                    None
                }
            },
            Json::Object(fields) => Some(Built {
                schema: self.object(fields, &path),
                required: false,
            }),
            other => {
                self.issue(
                    &path,
                    format!("parsing type {name}: unexpected type: {}", json_type(other)),
                );
                None
            }
        };
        self.resolving.pop();
        // A cycle found below may have marked this type broken already.
        let built = if self.built.get(name).is_some_and(Option::is_none) {
            None
        } else {
            built
        };
        self.built.insert(name.to_owned(), built.clone());
        built
    }
}

/// Splits a marker string into `(key, value)` pairs, with KRO's tokenizer rules: `=` ends a
/// key, whitespace outside quotes and brackets ends a value, quotes may hold `\"`.
pub(crate) fn parse_markers(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut markers = Vec::new();
    let mut key: Option<String> = None;
    let mut buffer = String::new();
    let (mut quoted, mut escaped, mut depth) = (false, false, 0_i32);
    for c in text.chars() {
        if quoted {
            buffer.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                quoted = false;
            }
            continue;
        }
        match c {
            '"' => {
                quoted = true;
                buffer.push(c);
            }
            '{' | '[' => {
                depth += 1;
                buffer.push(c);
            }
            '}' | ']' => {
                depth -= 1;
                if depth < 0 {
                    return Err("unmatched closing bracket/brace".into());
                }
                buffer.push(c);
            }
            '=' if key.is_none() && depth == 0 => {
                let name = buffer.trim();
                if name.is_empty() {
                    return Err("empty marker key".into());
                }
                key = Some(name.to_owned());
                buffer.clear();
            }
            c if c.is_whitespace() && depth == 0 => {
                if let Some(name) = key.take() {
                    markers.push((name, marker_value(&buffer)));
                    buffer.clear();
                }
            }
            c => buffer.push(c),
        }
    }
    match key {
        Some(name) if !quoted => markers.push((name, marker_value(&buffer))),
        Some(_) => {}
        None => return Err(format!("marker key '{buffer}' without a value")),
    }
    if quoted {
        return Err("unclosed quote".into());
    }
    if depth > 0 {
        return Err("unclosed bracket/brace".into());
    }
    for (name, _) in &markers {
        if !MARKERS.contains(&name.as_str()) {
            return Err(format!(
                "invalid marker key {name:?}: unknown marker: {name}"
            ));
        }
    }
    Ok(markers)
}

/// A quoted value loses its quotes and its `\"` and `\\` escapes; others are trimmed.
fn marker_value(raw: &str) -> String {
    let raw = raw.trim();
    match raw.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
        Some(inner) if raw.len() >= 2 => {
            let mut out = String::with_capacity(inner.len());
            let mut chars = inner.chars().peekable();
            while let Some(c) = chars.next() {
                if c == '\\' && matches!(chars.peek(), Some('"' | '\\')) {
                    out.extend(chars.next());
                } else {
                    out.push(c);
                }
            }
            out
        }
        _ => raw.to_owned(),
    }
}

/// Go's `strconv.ParseBool`.
fn parse_bool(text: &str) -> Result<bool, String> {
    match text {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(format!(
            "strconv.ParseBool: parsing {text:?}: invalid syntax"
        )),
    }
}

fn parse_int(text: &str) -> Result<i64, String> {
    text.parse()
        .map_err(|_| format!("strconv.ParseInt: parsing {text:?}: invalid syntax"))
}

fn parse_float(text: &str) -> Result<f64, String> {
    text.parse::<f64>()
        .ok()
        .filter(|f| f.is_finite())
        .ok_or_else(|| format!("strconv.ParseFloat: parsing {text:?}: invalid syntax"))
}

// One arm per marker, in KRO's order: a table reads best as one match.
#[allow(clippy::too_many_lines)]
fn apply_markers(built: &mut Built, markers: &[(String, String)]) -> Result<(), String> {
    let Json::Object(schema) = &mut built.schema else {
        return Ok(());
    };
    let kind = schema
        .get("type")
        .and_then(Json::as_str)
        .unwrap_or_default()
        .to_owned();
    let only = |wanted: &str, marker: &str| {
        if kind == wanted {
            Ok(())
        } else {
            Err(format!(
                "{marker} marker is only valid for {wanted} types, got type: {kind}"
            ))
        }
    };
    let mut list_map_keys: Vec<String> = Vec::new();
    let mut list_type: Option<String> = None;
    for (key, value) in markers {
        match key.as_str() {
            "required" => {
                built.required |= parse_bool(value)
                    .map_err(|e| format!("failed to parse required marker value: {e}"))?;
            }
            "default" => {
                schema.insert("default".into(), default_value(&kind, value)?);
            }
            "description" => {
                schema.insert("description".into(), value.clone().into());
            }
            "minimum" | "maximum" => {
                let number = parse_float(value)
                    .map_err(|e| format!("failed to parse {key} enum value: {e}"))?;
                schema.insert(key.clone(), number_json(number));
            }
            "validation" => {
                if value.trim().is_empty() {
                    return Err("validation failed".into());
                }
                push_validation(schema, value, "validation failed");
            }
            "immutable" => {
                if parse_bool(value)
                    .map_err(|e| format!("failed to parse immutable marker value: {e}"))?
                {
                    push_validation(schema, "self == oldSelf", "field is immutable");
                }
            }
            "enum" => {
                let items: Vec<&str> = value.split(',').map(str::trim).collect();
                if items.iter().any(|i| i.is_empty()) {
                    return Err("empty enum values are not allowed".into());
                }
                let values: Vec<Json> = match kind.as_str() {
                    "string" => items.iter().map(|i| Json::from(*i)).collect(),
                    "integer" => items
                        .iter()
                        .map(|i| {
                            parse_int(i)
                                .map(Json::from)
                                .map_err(|e| format!("failed to parse integer enum value: {e}"))
                        })
                        .collect::<Result<_, _>>()?,
                    _ => {
                        return Err(format!(
                            "enum values only supported for string and integer types, got type: {kind}"
                        ));
                    }
                };
                schema.insert("enum".into(), values.into());
            }
            "pattern" => {
                if value.is_empty() {
                    return Err("pattern marker value cannot be empty".into());
                }
                only("string", "pattern")?;
                regex::Regex::new(value).map_err(|e| format!("invalid pattern regex: {e}"))?;
                schema.insert("pattern".into(), value.clone().into());
            }
            "minLength" | "maxLength" => {
                only("string", key)?;
                let n =
                    parse_int(value).map_err(|e| format!("failed to parse {key} value: {e}"))?;
                schema.insert(key.clone(), n.into());
            }
            "minItems" | "maxItems" => {
                only("array", key)?;
                let n =
                    parse_int(value).map_err(|e| format!("failed to parse {key} value: {e}"))?;
                schema.insert(key.clone(), n.into());
            }
            "uniqueItems" => {
                let unique = parse_bool(value)
                    .map_err(|e| format!("failed to parse uniqueItems marker value: {e}"))?;
                only("array", "uniqueItems")?;
                if unique {
                    match list_type.as_deref() {
                        Some(other) if other != "set" => {
                            return Err(format!(
                                "cannot set unique when listType is set to {other}"
                            ));
                        }
                        _ => list_type = Some("set".into()),
                    }
                }
            }
            "listType" => {
                if kind != "array" {
                    return Err("listType marker only applies to array types".into());
                }
                if !matches!(value.as_str(), "atomic" | "set" | "map") {
                    return Err(format!(
                        "unsupported value for listType {value}, needs to be one of atomic, set, or map"
                    ));
                }
                if list_type.as_deref() == Some("set") && value != "set" {
                    return Err(format!(
                        "listType attempting to overwrite set type of {value}, this can happen if you set contradictory markers like unique=true | listType=map"
                    ));
                }
                list_type = Some(value.clone());
            }
            "listMapKey" => {
                if kind != "array" {
                    return Err("listMapKey marker only applies to array types".into());
                }
                if list_map_keys.contains(value) {
                    return Err(format!("duplicate listMapKey marker, value {value}"));
                }
                list_map_keys.push(value.clone());
            }
            _ => return Err(format!("invalid marker key {key:?}: unknown marker: {key}")),
        }
    }
    if !list_map_keys.is_empty() {
        match list_type.as_deref() {
            Some("map") => {}
            None => {
                return Err(
                    "listMapKey set while listType is unset, listType must be set to map".into(),
                );
            }
            Some(other) => {
                return Err(format!(
                    "listMapKey set while listType is set to {other}, listType must be set to map"
                ));
            }
        }
        schema.insert("x-kubernetes-list-map-keys".into(), list_map_keys.into());
    }
    if let Some(list_type) = list_type {
        schema.insert("x-kubernetes-list-type".into(), list_type.into());
    }
    Ok(())
}

fn push_validation(schema: &mut Map<String, Json>, rule: &str, message: &str) {
    let rules = schema
        .entry("x-kubernetes-validations")
        .or_insert_with(|| Json::Array(Vec::new()));
    if let Json::Array(rules) = rules {
        rules.push(json!({ "rule": rule, "message": message }));
    }
}

fn number_json(number: f64) -> Json {
    // Whole numbers print as integers, as Go's JSON encoder prints them.
    #[allow(clippy::cast_possible_truncation)]
    if number.fract() == 0.0 && number.abs() < 9.0e15 {
        Json::from(number as i64)
    } else {
        Json::from(number)
    }
}

/// A `default=` value checked against the field's type. KRO copies the raw text into the CRD;
/// this emits the JSON value it means, and refuses text that would not be valid JSON.
fn default_value(kind: &str, value: &str) -> Result<Json, String> {
    match kind {
        "string" => Ok(value.into()),
        "integer" => parse_int(value)
            .map(Json::from)
            .map_err(|_| format!("default value must be a valid integer, got: {value}")),
        "number" => parse_float(value)
            .map(number_json)
            .map_err(|_| format!("default value must be a valid number, got: {value}")),
        "boolean" => parse_bool(value)
            .map(Json::from)
            .map_err(|_| format!("default value must be a valid boolean, got: {value}")),
        _ => serde_json::from_str(value)
            .map_err(|e| format!("default value must be valid JSON, got: {value} ({e})")),
    }
}

/// A JSON value's type in words, for errors.
pub(crate) fn json_type(value: &Json) -> &'static str {
    match value {
        Json::Null => "null",
        Json::Bool(_) => "bool",
        Json::Number(n) if n.is_f64() => "float64",
        Json::Number(_) => "int64",
        Json::String(_) => "string",
        Json::Array(_) => "list",
        Json::Object(_) => "map",
    }
}

/// What a schema says about a field path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FieldSchema<'s> {
    /// The field's own schema.
    Known(&'s Json),
    /// The path enters a schemaless part: any field may exist there.
    Open,
    /// The schema does not define the field.
    Missing,
}

/// What `schema` says about `path` (fields below the schema's root), through properties,
/// map values and list items.
pub(crate) fn schema_at<'s>(schema: &'s Json, path: &[String]) -> FieldSchema<'s> {
    let mut at = schema;
    for field in path {
        if at.get("x-kubernetes-preserve-unknown-fields") == Some(&Json::Bool(true))
            && at.get("properties").is_none()
        {
            return FieldSchema::Open;
        }
        at = if let Some(next) = at.get("properties").and_then(|p| p.get(field)) {
            next
        } else if let Some(values) = at.get("additionalProperties") {
            if values.is_boolean() {
                return FieldSchema::Open;
            }
            values
        } else {
            match at.get("items").filter(|_| field.parse::<usize>().is_ok()) {
                Some(items) => items,
                None => return FieldSchema::Missing,
            }
        };
    }
    FieldSchema::Known(at)
}

/// English plural of a lowercase kind, as Kubernetes tooling forms resource names
/// (`webapp` -> `webapps`, `policy` -> `policies`, `ingress` -> `ingresses`).
pub(crate) fn plural(singular: &str) -> String {
    let ends = |s: &str| singular.ends_with(s);
    if ends("s") || ends("x") || ends("z") || ends("ch") || ends("sh") {
        format!("{singular}es")
    } else if let Some(stem) = singular.strip_suffix('y')
        && !stem.ends_with(['a', 'e', 'i', 'o', 'u'])
    {
        format!("{stem}ies")
    } else {
        format!("{singular}s")
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value as Json, json};

    use super::{FieldSchema, SchemaBuilder, parse_markers, plural, schema_at};

    fn build(spec: &Json, types: Option<&Json>) -> Result<Json, Vec<String>> {
        let (schema, issues) =
            SchemaBuilder::new(types.and_then(Json::as_object)).build_spec(Some(spec));
        if issues.is_empty() {
            Ok(schema)
        } else {
            Err(issues
                .into_iter()
                .map(|i| format!("{}: {}", i.path, i.message))
                .collect())
        }
    }

    #[test]
    fn complex_nested_schema_matches_kro() {
        let types = json!({
            "Address": {"street": "string", "city": "string", "country": "string"},
            "Person": {"name": "string", "age": "integer"}
        });
        let spec = json!({
            "name": "string | required=true",
            "age": "integer | default=18",
            "contacts": {"email": "string", "phone": "string | default=\"000-000-0000\"", "address": "Address"},
            "tags": "[]string",
            "metadata": "map[string]string",
            "friends": "[]Person",
            "ratio": "float",
        });
        let schema = build(&spec, Some(&types)).unwrap();
        assert_eq!(schema["required"], json!(["name"]));
        assert!(
            schema.get("default").is_none(),
            "a required field blocks the default"
        );
        let p = &schema["properties"];
        assert_eq!(p["age"], json!({"type": "integer", "default": 18}));
        assert_eq!(p["contacts"]["default"], json!({}));
        assert_eq!(
            p["contacts"]["properties"]["phone"]["default"],
            json!("000-000-0000")
        );
        assert_eq!(
            p["contacts"]["properties"]["address"]["properties"]["city"],
            json!({"type": "string"})
        );
        assert_eq!(
            p["tags"],
            json!({"type": "array", "items": {"type": "string"}})
        );
        assert_eq!(
            p["metadata"],
            json!({"type": "object", "additionalProperties": {"type": "string"}})
        );
        assert_eq!(
            p["friends"]["items"]["properties"]["age"],
            json!({"type": "integer"})
        );
        assert_eq!(p["ratio"], json!({"type": "number"}));
    }

    #[test]
    fn nested_collections_and_schemaless_objects() {
        let schema = build(
            &json!({"m": "map[string]map[string]integer", "x": "[][]float", "o": "[]object"}),
            None,
        )
        .unwrap();
        let p = &schema["properties"];
        assert_eq!(
            p["m"]["additionalProperties"]["additionalProperties"],
            json!({"type": "integer"})
        );
        assert_eq!(p["x"]["items"]["items"], json!({"type": "number"}));
        assert_eq!(
            p["o"]["items"],
            json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true})
        );
    }

    #[test]
    fn defaults_propagate_up_through_objects_without_required_fields() {
        let types = json!({"Config": {"port": "integer | default=8080"}, "App": {"name": "string", "config": "Config"}});
        let schema = build(&json!({"app": "App"}), Some(&types)).unwrap();
        assert_eq!(schema["default"], json!({}));
        assert_eq!(schema["properties"]["app"]["default"], json!({}));
        assert_eq!(
            schema["properties"]["app"]["properties"]["config"]["default"],
            json!({})
        );
        let schema = build(
            &json!({"outer": {"inner": {"r": "string | required=true", "o": "integer | default=42"}, "s": "string | default=\"hello\""}}),
            None,
        )
        .unwrap();
        let outer = &schema["properties"]["outer"];
        assert_eq!(outer["default"], json!({}));
        assert!(outer["properties"]["inner"].get("default").is_none());
        assert_eq!(outer["properties"]["inner"]["required"], json!(["r"]));
    }

    #[test]
    fn markers_become_openapi_keywords() {
        let schema = build(
            &json!({
                "level": "string | enum=\"debug,info\" default=\"info\" description=\"Log level\"",
                "code": "integer | enum=\"400,404\" minimum=1 maximum=65535",
                "id": "string | required=true immutable=true validation=\"self.size() > 2\" pattern=\"^[a-z]+$\" minLength=3",
                "tags": "[]string | uniqueItems=true minItems=2 maxItems=8",
                "ports": "[]object | listType=map listMapKey=name listMapKey=protocol",
            }),
            None,
        )
        .unwrap();
        let p = &schema["properties"];
        assert_eq!(
            p["level"],
            json!({"type": "string", "enum": ["debug", "info"], "default": "info", "description": "Log level"})
        );
        assert_eq!(
            p["code"],
            json!({"type": "integer", "enum": [400, 404], "minimum": 1, "maximum": 65535})
        );
        assert_eq!(
            p["id"]["x-kubernetes-validations"],
            json!([{"rule": "self == oldSelf", "message": "field is immutable"}, {"rule": "self.size() > 2", "message": "validation failed"}])
        );
        assert_eq!(p["id"]["minLength"], json!(3));
        assert_eq!(p["tags"]["x-kubernetes-list-type"], json!("set"));
        assert!(p["tags"].get("uniqueItems").is_none());
        assert_eq!(
            p["ports"]["x-kubernetes-list-map-keys"],
            json!(["name", "protocol"])
        );
        assert_eq!(schema["required"], json!(["id"]));
    }

    #[test]
    fn a_required_alias_makes_its_fields_required() {
        let types = json!({"myType": "string | required=true description=\"my description\""});
        let schema = build(&json!({"myValue": "myType"}), Some(&types)).unwrap();
        assert_eq!(schema["required"], json!(["myValue"]));
        assert_eq!(
            schema["properties"]["myValue"],
            json!({"type": "string", "description": "my description"})
        );
    }

    #[test]
    fn marker_tokenizer_follows_kro() {
        assert_eq!(
            parse_markers(r#"default={"key": "value"} description="A \"d\" \n" required=true"#)
                .unwrap(),
            vec![
                ("default".into(), r#"{"key": "value"}"#.into()),
                ("description".into(), r#"A "d" \n"#.into()),
                ("required".into(), "true".into()),
            ]
        );
        assert_eq!(
            parse_markers(r#"pattern="^(foo|bar)\d{2,4}$""#).unwrap(),
            vec![("pattern".into(), r"^(foo|bar)\d{2,4}$".into())]
        );
        for (input, error) in [
            (
                "invalid=true",
                "invalid marker key \"invalid\": unknown marker: invalid",
            ),
            ("description=\"open", "unclosed quote"),
            ("default=\"", "unclosed quote"),
            ("default={\"a\": 1", "unclosed bracket/brace"),
            ("=value", "empty marker key"),
            ("default=}", "unmatched closing bracket/brace"),
            ("optional", "marker key 'optional' without a value"),
            (
                "optional description=\"x\"",
                "invalid marker key \"optionaldescription\": unknown marker: optionaldescription",
            ),
            ("required=true ", "marker key '' without a value"),
        ] {
            assert_eq!(parse_markers(input).unwrap_err(), error, "{input}");
        }
    }

    #[test]
    fn bad_types_and_markers_are_reported_with_their_path() {
        let types = json!({"A": "B", "B": "[]A", "Bad": 123, "Self": "[]Self"});
        let errors = build(
            &json!({
                "a": "[]", "b": "map[integer]string", "c": "map[string]", "d": "number",
                "e": format!("{}string", "[]".repeat(17)), "f": "integer | default=3.14",
                "g": "boolean | enum=\"true\"", "h": "string | minItems=1", "i": 5,
                "j": "string | required=maybe", "k": "", "l": "[]string | listMapKey=x",
            }),
            Some(&types),
        )
        .unwrap_err();
        let expected = [
            "spec.schema.types.A: cyclic dependency in type A: graph contains a cycle: A -> B -> A",
            "spec.schema.types.Bad: parsing type Bad: unexpected type: int64",
            "spec.schema.types.Self: self references are not allowed",
            "spec.schema.spec.a: empty slice element type",
            "spec.schema.spec.b: map key must be string",
            "spec.schema.spec.c: map value type is required",
            "spec.schema.spec.d: unknown type: number",
            "spec.schema.spec.f: default value must be a valid integer, got: 3.14",
            "spec.schema.spec.g: enum values only supported for string and integer types, got type: boolean",
            "spec.schema.spec.h: minItems marker is only valid for array types, got type: string",
            "spec.schema.spec.i: unexpected type: int64",
            "spec.schema.spec.j: failed to parse required marker value: strconv.ParseBool: parsing \"maybe\": invalid syntax",
            "spec.schema.spec.k: empty type",
            "spec.schema.spec.l: listMapKey set while listType is unset, listType must be set to map",
        ];
        for line in expected {
            assert!(
                errors.iter().any(|e| e == line),
                "missing {line:?} in {errors:#?}"
            );
        }
        assert!(
            errors
                .iter()
                .any(|e| e.starts_with("spec.schema.spec.e: type nesting too deep (max 16)"))
        );
    }

    #[test]
    fn paths_resolve_through_properties_maps_items_and_schemaless_parts() {
        let schema = build(
            &json!({"a": {"b": "string"}, "m": "map[string]integer", "l": "[]string", "o": "object"}),
            None,
        )
        .unwrap();
        let path = |p: &str| p.split('.').map(String::from).collect::<Vec<_>>();
        let string = json!({"type": "string"});
        let integer = json!({"type": "integer"});
        assert_eq!(
            schema_at(&schema, &path("a.b")),
            FieldSchema::Known(&string)
        );
        assert_eq!(
            schema_at(&schema, &path("m.anything")),
            FieldSchema::Known(&integer)
        );
        assert_eq!(
            schema_at(&schema, &path("l.0")),
            FieldSchema::Known(&string)
        );
        assert_eq!(schema_at(&schema, &path("o.deep.down")), FieldSchema::Open);
        assert_eq!(schema_at(&schema, &path("a.c")), FieldSchema::Missing);
        assert_eq!(schema_at(&schema, &path("l.name")), FieldSchema::Missing);
    }

    #[test]
    fn plurals() {
        for (singular, expected) in [
            ("webapp", "webapps"),
            ("policy", "policies"),
            ("ingress", "ingresses"),
            ("gateway", "gateways"),
            ("box", "boxes"),
        ] {
            assert_eq!(plural(singular), expected);
        }
    }
}
