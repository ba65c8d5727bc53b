//! CEL values as the faces see them, and their faithful mapping to and from CEL, JSON and YAML.
//!
//! | CEL | [`Value`] | JSON | YAML (tag) |
//! |---|---|---|---|
//! | `null_type` | `Null` | `null` | `null` |
//! | `bool` | `Bool` | `true` | `true` |
//! | `int` | `Int` | integer | integer |
//! | `uint` | `Uint` | integer | `!uint 5` |
//! | `double` | `Double` | number with a fraction or exponent (`NaN`, `Infinity`, `-Infinity` as strings) | float |
//! | `string` | `String` | string | string |
//! | `bytes` | `Bytes` | base64 string | `!bytes` base64 |
//! | `list` | `List` | array | sequence |
//! | `map` | `Map` | object (keys as strings) | mapping |
//! | `google.protobuf.Timestamp` | `Timestamp` | RFC 3339 string | `!timestamp 2024-01-01T00:00:00Z` |
//! | `google.protobuf.Duration` | `Duration` | string in seconds, `"1.5s"` | `!duration 1.5s` |
//!
//! From JSON, a whole number is an `int` when it fits one and a `uint` above that; any other
//! number is a `double`. JSON cannot tell a `uint`, `bytes`, timestamp or duration from an
//! `int` or a string, so those need YAML's tags on the way in.

use std::{collections::BTreeMap, fmt, sync::Arc};

use base64::{Engine as _, engine::general_purpose::STANDARD as BASE64};
use chrono::{DateTime, FixedOffset, TimeDelta};
use serde::{Serialize, Serializer, ser::SerializeMap};

/// How deep variables may nest. Deeper input is refused before it can exhaust the stack of
/// whatever converts or compares it.
pub const MAX_VALUE_DEPTH: usize = 128;

/// A CEL value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `null`.
    Null,
    /// `bool`.
    Bool(bool),
    /// `int`: a signed 64-bit integer.
    Int(i64),
    /// `uint`: an unsigned 64-bit integer.
    Uint(u64),
    /// `double`.
    Double(f64),
    /// `string`.
    String(String),
    /// `bytes`.
    Bytes(Vec<u8>),
    /// `list`.
    List(Vec<Value>),
    /// `map`, ordered by key.
    Map(BTreeMap<Key, Value>),
    /// `google.protobuf.Timestamp`.
    Timestamp(DateTime<FixedOffset>),
    /// `google.protobuf.Duration`.
    Duration(TimeDelta),
    /// A type, the result of `type(x)`, by name.
    Type(String),
}

/// A map key: CEL allows `int`, `uint`, `bool` and `string` keys.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Key {
    /// A `bool` key.
    Bool(bool),
    /// An `int` key.
    Int(i64),
    /// A `uint` key.
    Uint(u64),
    /// A `string` key.
    String(String),
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Key::Bool(b) => write!(f, "{b}"),
            Key::Int(i) => write!(f, "{i}"),
            Key::Uint(u) => write!(f, "{u}"),
            Key::String(s) => f.write_str(s),
        }
    }
}

/// Input that is not a value CEL can take.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (at {path})")]
pub struct ValueError {
    /// What is wrong.
    pub message: String,
    /// Where in the input, as a path such as `$.spec.items[3]`.
    pub path: String,
}

impl ValueError {
    fn new(message: impl Into<String>, path: &Path<'_>) -> Self {
        Self {
            message: message.into(),
            path: path.to_string(),
        }
    }
}

/// A position in nested input, kept as a linked list on the stack so walking costs nothing
/// until an error needs the text.
#[derive(Clone, Copy)]
enum Path<'a> {
    Root,
    Key(&'a Path<'a>, &'a dyn fmt::Display),
    Index(&'a Path<'a>, usize),
}

impl Path<'_> {
    fn depth(&self) -> usize {
        match self {
            Path::Root => 0,
            Path::Key(parent, _) | Path::Index(parent, _) => parent.depth() + 1,
        }
    }
}

impl fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Path::Root => f.write_str("$"),
            Path::Key(parent, key) => write!(f, "{parent}.{key}"),
            Path::Index(parent, index) => write!(f, "{parent}[{index}]"),
        }
    }
}

fn check_depth(path: &Path<'_>) -> Result<(), ValueError> {
    if path.depth() > MAX_VALUE_DEPTH {
        return Err(ValueError::new(
            format!("nested deeper than {MAX_VALUE_DEPTH} levels"),
            path,
        ));
    }
    Ok(())
}

impl Value {
    /// The CEL type name of the value, as `type(x)` would print it.
    #[must_use]
    pub fn type_name(&self) -> &str {
        match self {
            Value::Null => "null_type",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Uint(_) => "uint",
            Value::Double(_) => "double",
            Value::String(_) => "string",
            Value::Bytes(_) => "bytes",
            Value::List(_) => "list",
            Value::Map(_) => "map",
            Value::Timestamp(_) => "google.protobuf.Timestamp",
            Value::Duration(_) => "google.protobuf.Duration",
            Value::Type(_) => "type",
        }
    }

    /// A value from JSON: whole numbers that fit an `int` are `int`, larger ones `uint`, other
    /// numbers `double`.
    ///
    /// # Errors
    /// Input nested deeper than [`MAX_VALUE_DEPTH`].
    pub fn from_json(json: &serde_json::Value) -> Result<Self, ValueError> {
        from_json_at(json, &Path::Root)
    }

    /// Values from JSON or YAML text (JSON is YAML): a mapping of variable names to values.
    /// YAML tags carry the types JSON lacks: `!uint`, `!bytes`, `!timestamp`, `!duration`.
    ///
    /// # Errors
    /// Text that is not YAML, a top level that is not a mapping, keys that are not strings,
    /// unknown tags, values of the wrong form for their tag, or input nested too deep.
    pub fn variables_from_yaml(text: &str) -> Result<BTreeMap<String, Value>, ValueError> {
        let yaml: serde_norway::Value = serde_norway::from_str(text).map_err(|e| ValueError {
            message: e.to_string(),
            path: "$".to_owned(),
        })?;
        match from_yaml_at(&yaml, &Path::Root)? {
            Value::Map(map) => map
                .into_iter()
                .map(|(key, value)| match key {
                    Key::String(name) => Ok((name, value)),
                    other => Err(ValueError {
                        message: format!("variable names are strings, not {other}"),
                        path: "$".to_owned(),
                    }),
                })
                .collect(),
            Value::Null => Ok(BTreeMap::new()),
            other => Err(ValueError {
                message: format!(
                    "variables are a mapping of names to values, not a {}",
                    other.type_name()
                ),
                path: "$".to_owned(),
            }),
        }
    }

    /// The value as JSON, by the mapping in the module documentation.
    #[must_use]
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }

    /// The value as YAML, with tags where JSON's types would lose information.
    #[must_use]
    pub fn to_yaml(&self) -> serde_norway::Value {
        use serde_norway::value::{Tag, TaggedValue};
        let tagged = |tag: &str, value: serde_norway::Value| {
            serde_norway::Value::Tagged(Box::new(TaggedValue {
                tag: Tag::new(tag),
                value,
            }))
        };
        match self {
            Value::Uint(u) => tagged("uint", serde_norway::Value::Number((*u).into())),
            Value::Bytes(b) => tagged("bytes", BASE64.encode(b).into()),
            Value::Timestamp(t) => tagged("timestamp", format_timestamp(t).into()),
            Value::Duration(d) => tagged("duration", format_duration(*d).into()),
            Value::List(items) => {
                serde_norway::Value::Sequence(items.iter().map(Value::to_yaml).collect())
            }
            Value::Map(map) => serde_norway::Value::Mapping(
                map.iter()
                    .map(|(k, v)| (Value::from(k.clone()).to_yaml(), v.to_yaml()))
                    .collect(),
            ),
            other => serde_norway::to_value(other).unwrap_or(serde_norway::Value::Null),
        }
    }
}

impl From<Key> for Value {
    fn from(key: Key) -> Self {
        match key {
            Key::Bool(b) => Value::Bool(b),
            Key::Int(i) => Value::Int(i),
            Key::Uint(u) => Value::Uint(u),
            Key::String(s) => Value::String(s),
        }
    }
}

fn from_json_at(json: &serde_json::Value, path: &Path<'_>) -> Result<Value, ValueError> {
    check_depth(path)?;
    Ok(match json {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => number(n.as_i64(), n.as_u64(), n.as_f64()),
        serde_json::Value::String(s) => Value::String(s.clone()),
        serde_json::Value::Array(items) => Value::List(
            items
                .iter()
                .enumerate()
                .map(|(i, item)| from_json_at(item, &Path::Index(path, i)))
                .collect::<Result<_, _>>()?,
        ),
        serde_json::Value::Object(map) => Value::Map(
            map.iter()
                .map(|(k, v)| {
                    Ok((
                        Key::String(k.clone()),
                        from_json_at(v, &Path::Key(path, k))?,
                    ))
                })
                .collect::<Result<_, ValueError>>()?,
        ),
    })
}

fn number(int: Option<i64>, uint: Option<u64>, double: Option<f64>) -> Value {
    match (int, uint, double) {
        (Some(i), _, _) => Value::Int(i),
        (None, Some(u), _) => Value::Uint(u),
        (_, _, Some(d)) => Value::Double(d),
        _ => Value::Double(f64::NAN),
    }
}

fn from_yaml_at(yaml: &serde_norway::Value, path: &Path<'_>) -> Result<Value, ValueError> {
    use serde_norway::Value as Y;
    check_depth(path)?;
    Ok(match yaml {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(*b),
        Y::Number(n) => number(n.as_i64(), n.as_u64(), n.as_f64()),
        Y::String(s) => Value::String(s.clone()),
        Y::Sequence(items) => Value::List(
            items
                .iter()
                .enumerate()
                .map(|(i, item)| from_yaml_at(item, &Path::Index(path, i)))
                .collect::<Result<_, _>>()?,
        ),
        Y::Mapping(map) => {
            let mut out = BTreeMap::new();
            for (k, v) in map {
                let key = match from_yaml_at(k, path)? {
                    Value::Bool(b) => Key::Bool(b),
                    Value::Int(i) => Key::Int(i),
                    Value::Uint(u) => Key::Uint(u),
                    Value::String(s) => Key::String(s),
                    other => {
                        return Err(ValueError::new(
                            format!(
                                "a map key must be a string, int, uint or bool, not {}",
                                other.type_name()
                            ),
                            path,
                        ));
                    }
                };
                let value = from_yaml_at(v, &Path::Key(path, &key))?;
                out.insert(key, value);
            }
            Value::Map(out)
        }
        Y::Tagged(tagged) => tagged_from_yaml(&tagged.tag.to_string(), &tagged.value, path)?,
    })
}

fn tagged_from_yaml(
    tag: &str,
    value: &serde_norway::Value,
    path: &Path<'_>,
) -> Result<Value, ValueError> {
    let text = || {
        value
            .as_str()
            .ok_or_else(|| ValueError::new(format!("{tag} needs a string"), path))
    };
    match tag {
        "!uint" => value
            .as_u64()
            .map(Value::Uint)
            .ok_or_else(|| ValueError::new("!uint needs a whole number from 0 to 2^64-1", path)),
        "!bytes" => {
            let cleaned: String = text()?.split_whitespace().collect();
            BASE64
                .decode(cleaned)
                .map(Value::Bytes)
                .map_err(|e| ValueError::new(format!("!bytes is not base64: {e}"), path))
        }
        "!timestamp" => parse_timestamp(text()?)
            .map(Value::Timestamp)
            .map_err(|e| ValueError::new(e, path)),
        "!duration" => parse_duration(text()?)
            .map(Value::Duration)
            .map_err(|e| ValueError::new(e, path)),
        other => Err(ValueError::new(
            format!("unknown tag {other}: kubezen knows !uint, !bytes, !timestamp and !duration"),
            path,
        )),
    }
}

/// Parses an RFC 3339 timestamp, the form CEL's `timestamp()` takes.
///
/// # Errors
/// Text that is not RFC 3339, or a year outside 0001..=9999 (CEL's range).
pub fn parse_timestamp(text: &str) -> Result<DateTime<FixedOffset>, String> {
    let parsed = DateTime::parse_from_rfc3339(text)
        .map_err(|e| format!("{text:?} is not an RFC 3339 timestamp: {e}"))?;
    let year = chrono::Datelike::year(&parsed.naive_utc());
    if !(1..=9999).contains(&year) {
        return Err(format!(
            "{text:?} is outside CEL's timestamp range, years 1 to 9999"
        ));
    }
    Ok(parsed)
}

/// CEL durations span about ±10,000 years, as protobuf's do.
const MAX_DURATION_NANOS: i128 = 315_576_000_000 * 1_000_000_000;

/// Parses a duration the way CEL's `duration()` does: a sequence of decimal numbers, each with
/// a unit (`h`, `m`, `s`, `ms`, `us`, `ns`), optionally signed, such as `"1h30m"` or `"-1.5s"`.
///
/// # Errors
/// Text of another form.
pub fn parse_duration(text: &str) -> Result<TimeDelta, String> {
    let bad = || format!("{text:?} is not a duration such as \"1h30m\" or \"1.5s\"");
    let (negative, mut rest) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    if rest == "0" {
        return Ok(TimeDelta::zero());
    }
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total_nanos: i128 = 0;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let (number, tail) = rest.split_at(number_len);
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let scale: i128 = match unit {
            "h" => 3_600_000_000_000,
            "m" => 60_000_000_000,
            "s" => 1_000_000_000,
            "ms" => 1_000_000,
            "us" | "µs" => 1_000,
            "ns" => 1,
            _ => return Err(bad()),
        };
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        if whole.is_empty() && fraction.is_empty() {
            return Err(bad());
        }
        let whole: i128 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| bad())?
        };
        let mut nanos = whole.checked_mul(scale).ok_or_else(bad)?;
        let mut place = scale;
        for digit in fraction.chars() {
            place /= 10;
            nanos += i128::from(digit.to_digit(10).ok_or_else(bad)?) * place;
        }
        total_nanos = total_nanos.checked_add(nanos).ok_or_else(bad)?;
        rest = tail;
    }
    if negative {
        total_nanos = -total_nanos;
    }
    if total_nanos.abs() > MAX_DURATION_NANOS {
        return Err(format!(
            "{text:?} is outside CEL's duration range of about ±10000 years"
        ));
    }
    let nanos = i64::try_from(total_nanos).map_err(|_| bad())?;
    Ok(TimeDelta::nanoseconds(nanos))
}

/// RFC 3339 with the offset kept and as many fraction digits as needed.
#[must_use]
pub fn format_timestamp(t: &DateTime<FixedOffset>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// A duration in seconds, as protobuf's JSON form writes it: `"1.5s"`, `"-0.000001s"`.
#[must_use]
pub fn format_duration(d: TimeDelta) -> String {
    let nanos = d
        .num_nanoseconds()
        .map_or_else(|| i128::from(d.num_seconds()) * 1_000_000_000, i128::from);
    let sign = if nanos < 0 { "-" } else { "" };
    let nanos = nanos.unsigned_abs();
    let (seconds, fraction) = (nanos / 1_000_000_000, nanos % 1_000_000_000);
    if fraction == 0 {
        format!("{sign}{seconds}s")
    } else {
        let digits = format!("{fraction:09}");
        format!("{sign}{seconds}.{}s", digits.trim_end_matches('0'))
    }
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Null => serializer.serialize_unit(),
            Value::Bool(b) => serializer.serialize_bool(*b),
            Value::Int(i) => serializer.serialize_i64(*i),
            Value::Uint(u) => serializer.serialize_u64(*u),
            Value::Double(d) if d.is_nan() => serializer.serialize_str("NaN"),
            Value::Double(d) if d.is_infinite() => {
                serializer.serialize_str(if *d > 0.0 { "Infinity" } else { "-Infinity" })
            }
            Value::Double(d) => serializer.serialize_f64(*d),
            Value::String(s) | Value::Type(s) => serializer.serialize_str(s),
            Value::Bytes(b) => serializer.serialize_str(&BASE64.encode(b)),
            Value::List(items) => serializer.collect_seq(items),
            Value::Map(map) => {
                let mut out = serializer.serialize_map(Some(map.len()))?;
                for (k, v) in map {
                    out.serialize_entry(&k.to_string(), v)?;
                }
                out.end()
            }
            Value::Timestamp(t) => serializer.serialize_str(&format_timestamp(t)),
            Value::Duration(d) => serializer.serialize_str(&format_duration(*d)),
        }
    }
}

/// Converts a value into the `cel` crate's form, to bind as a variable.
pub(crate) fn to_cel(value: &Value) -> cel::Value {
    match value {
        Value::Null => cel::Value::Null,
        Value::Bool(b) => cel::Value::Bool(*b),
        Value::Int(i) => cel::Value::Int(*i),
        Value::Uint(u) => cel::Value::UInt(*u),
        Value::Double(d) => cel::Value::Float(*d),
        Value::String(s) | Value::Type(s) => cel::Value::String(Arc::new(s.clone())),
        Value::Bytes(b) => cel::Value::Bytes(Arc::new(b.clone())),
        Value::List(items) => cel::Value::List(Arc::new(items.iter().map(to_cel).collect())),
        Value::Map(map) => {
            let entries: std::collections::HashMap<cel::objects::Key, cel::Value> = map
                .iter()
                .map(|(k, v)| (key_to_cel(k), to_cel(v)))
                .collect();
            cel::Value::Map(entries.into())
        }
        Value::Timestamp(t) => cel::Value::Timestamp(*t),
        Value::Duration(d) => cel::Value::Duration(*d),
    }
}

fn key_to_cel(key: &Key) -> cel::objects::Key {
    match key {
        Key::Bool(b) => cel::objects::Key::Bool(*b),
        Key::Int(i) => cel::objects::Key::Int(*i),
        Key::Uint(u) => cel::objects::Key::Uint(*u),
        Key::String(s) => cel::objects::Key::String(Arc::new(s.clone())),
    }
}

/// Converts a result from the `cel` crate's form.
///
/// # Errors
/// Values with no place in the mapping: functions, opaque and struct values (optional values
/// are unwrapped, `optional.none()` is `null`).
pub(crate) fn from_cel(value: &cel::Value) -> Result<Value, String> {
    Ok(match value {
        cel::Value::Null => Value::Null,
        cel::Value::Bool(b) => Value::Bool(*b),
        cel::Value::Int(i) => Value::Int(*i),
        cel::Value::UInt(u) => Value::Uint(*u),
        cel::Value::Float(d) => Value::Double(*d),
        cel::Value::String(s) => Value::String(s.to_string()),
        cel::Value::Bytes(b) => Value::Bytes(b.to_vec()),
        cel::Value::List(items) => {
            Value::List(items.iter().map(from_cel).collect::<Result<_, _>>()?)
        }
        cel::Value::Map(map) => Value::Map(
            map.map
                .iter()
                .map(|(k, v)| Ok((key_from_cel(k), from_cel(v)?)))
                .collect::<Result<_, String>>()?,
        ),
        cel::Value::Timestamp(t) => Value::Timestamp(*t),
        cel::Value::Duration(d) => Value::Duration(*d),
        // IPs, CIDRs, quantities, semvers and URLs leave CEL as their string form.
        cel::Value::Opaque(opaque) => {
            let text = super::functions::opaque_to_string(opaque.as_ref());
            Value::String(text.ok_or_else(|| {
                format!(
                    "a result of type {} has no JSON or Python form",
                    opaque.runtime_type_name()
                )
            })?)
        }
        other => {
            return Err(format!(
                "a result of type {} has no JSON or Python form",
                other.type_of()
            ));
        }
    })
}

fn key_from_cel(key: &cel::objects::Key) -> Key {
    match key {
        cel::objects::Key::Bool(b) => Key::Bool(*b),
        cel::objects::Key::Int(i) => Key::Int(*i),
        cel::objects::Key::Uint(u) => Key::Uint(*u),
        cel::objects::Key::String(s) => Key::String(s.to_string()),
    }
}
