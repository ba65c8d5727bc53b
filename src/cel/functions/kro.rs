//! KRO's own CEL functions, to the semantics of `pkg/cel/library` in kro v0.9:
//! `random.seededString`, `random.seededInt`, `merge`, `deepMerge`, `json.marshal`,
//! `json.unmarshal`, `hash.fnv64a`, `hash.sha256`, `hash.md5`, `lists.setAtIndex`,
//! `lists.insertAtIndex` and `lists.removeAtIndex`.

use std::{collections::HashMap, fmt::Write as _, sync::Arc};

use cel::{
    DeclarationError, Env, Value,
    common::types::{DYN_TYPE, INT_TYPE, LIST_TYPE, MAP_TYPE, STRING_TYPE},
    objects::Key,
};
use sha2::Digest as _;

use super::{Outcome, int, list, overload, string};

pub(super) fn register(env: &mut Env) -> Result<(), DeclarationError> {
    overload!(
        env,
        "random.seededString",
        "random_seeded_string",
        [INT_TYPE, STRING_TYPE],
        seeded_string
    )?;
    overload!(
        env,
        "random.seededInt",
        "random_seeded_int",
        [INT_TYPE, INT_TYPE, STRING_TYPE],
        seeded_int
    )?;
    overload!(env, "merge", "map_merge", member MAP_TYPE, [MAP_TYPE], merge)?;
    overload!(env, "deepMerge", "dyn_deep_merge", member DYN_TYPE, [DYN_TYPE], deep_merge)?;
    overload!(
        env,
        "json.unmarshal",
        "json_unmarshal",
        [STRING_TYPE],
        unmarshal
    )?;
    overload!(env, "json.marshal", "json_marshal", [DYN_TYPE], marshal)?;
    overload!(env, "hash.fnv64a", "hash_fnv64a", [STRING_TYPE], |a| Ok(
        bytes(&fnv64a(string(a, 0)?.as_bytes()))
    ))?;
    overload!(env, "hash.sha256", "hash_sha256", [STRING_TYPE], |a| Ok(
        bytes(&sha2::Sha256::digest(string(a, 0)?))
    ))?;
    overload!(env, "hash.md5", "hash_md5", [STRING_TYPE], |a| Ok(bytes(
        &md5::Md5::digest(string(a, 0)?)
    )))?;
    overload!(
        env,
        "lists.setAtIndex",
        "lists_set_at_index",
        [LIST_TYPE, INT_TYPE, DYN_TYPE],
        set_at_index
    )?;
    overload!(
        env,
        "lists.insertAtIndex",
        "lists_insert_at_index",
        [LIST_TYPE, INT_TYPE, DYN_TYPE],
        insert_at_index
    )?;
    overload!(
        env,
        "lists.removeAtIndex",
        "lists_remove_at_index",
        [LIST_TYPE, INT_TYPE],
        remove_at_index
    )
}

fn bytes(data: &[u8]) -> Value {
    Value::Bytes(Arc::new(data.to_vec()))
}

const ALPHANUMERIC: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";

/// `random.seededString(length, seed)`: characters picked by successive 4-byte words of the
/// seed's SHA-256 (so, as in kro, the string repeats every 8 characters).
fn seeded_string(args: &[Value]) -> Outcome {
    let length = int(args, 0)?;
    let seed = string(args, 1)?;
    if length <= 0 {
        return Err("random.seededString length must be positive".to_owned());
    }
    let length = usize::try_from(length).map_err(|e| e.to_string())?;
    if length > 1 << 20 {
        return Err("random.seededString length must be at most 1048576".to_owned());
    }
    let hash = sha2::Sha256::digest(seed.as_bytes());
    let text: String = (0..length)
        .map(|i| {
            let start = (i * 4) % hash.len();
            let word = u32::from_be_bytes([
                hash[start],
                hash[start + 1],
                hash[start + 2],
                hash[start + 3],
            ]);
            char::from(ALPHANUMERIC[(word % 36) as usize])
        })
        .collect();
    Ok(Value::String(Arc::new(text)))
}

/// `random.seededInt(min, max, seed)`: `min + first 8 bytes of SHA-256(seed) mod (max - min)`,
/// with Go's wrapping arithmetic.
fn seeded_int(args: &[Value]) -> Outcome {
    let (min, max, seed) = (int(args, 0)?, int(args, 1)?, string(args, 2)?);
    if min >= max {
        return Err("random.seededInt min must be less than max".to_owned());
    }
    let hash = sha2::Sha256::digest(seed.as_bytes());
    let word = u64::from_be_bytes(hash[..8].try_into().expect("a SHA-256 has 32 bytes"));
    #[allow(clippy::cast_sign_loss, clippy::cast_possible_wrap)] // Go's int64/uint64 conversions
    let result = min.wrapping_add((word % (max.wrapping_sub(min) as u64)) as i64);
    Ok(Value::Int(result))
}

fn map_of(value: &Value) -> Option<&HashMap<Key, Value>> {
    match value {
        Value::Map(map) => Some(&map.map),
        _ => None,
    }
}

/// `a.merge(b)`: `b`'s entries over `a`'s.
fn merge(args: &[Value]) -> Outcome {
    let (Some(left), Some(right)) = (map_of(&args[0]), map_of(&args[1])) else {
        return Err("merge takes two maps".to_owned());
    };
    let mut merged = left.clone();
    merged.extend(right.iter().map(|(k, v)| (k.clone(), v.clone())));
    Ok(Value::Map(merged.into()))
}

/// `a.deepMerge(b)`: maps merged key by key, recursively; anything else in `b` wins.
fn deep_merge(args: &[Value]) -> Outcome {
    match (&args[0], &args[1]) {
        (Value::Map(_), Value::Map(_)) => Ok(deep_merge_values(&args[0], &args[1])),
        (left, right) => Err(format!(
            "no such overload: deepMerge of {} and {}",
            left.type_of(),
            right.type_of()
        )),
    }
}

fn deep_merge_values(left: &Value, right: &Value) -> Value {
    let (Some(l), Some(r)) = (map_of(left), map_of(right)) else {
        return right.clone();
    };
    if r.is_empty() {
        return left.clone();
    }
    if l.is_empty() {
        return right.clone();
    }
    let mut merged = l.clone();
    for (key, value) in r {
        let combined = match merged.get(key) {
            Some(existing) => deep_merge_values(existing, value),
            None => value.clone(),
        };
        merged.insert(key.clone(), combined);
    }
    Value::Map(merged.into())
}

/// `json.unmarshal(text)`: as Go's `encoding/json` into `interface{}`, so every number is a
/// `double`.
fn unmarshal(args: &[Value]) -> Outcome {
    let json: serde_json::Value = serde_json::from_str(string(args, 0)?)
        .map_err(|e| format!("json.unmarshal failed to parse JSON: {e}"))?;
    Ok(from_json(&json))
}

fn from_json(json: &serde_json::Value) -> Value {
    match json {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        serde_json::Value::String(s) => Value::String(Arc::new(s.clone())),
        serde_json::Value::Array(items) => {
            Value::List(Arc::new(items.iter().map(from_json).collect()))
        }
        serde_json::Value::Object(map) => {
            let entries: HashMap<Key, Value> = map
                .iter()
                .map(|(k, v)| (Key::String(Arc::new(k.clone())), from_json(v)))
                .collect();
            Value::Map(entries.into())
        }
    }
}

/// `json.marshal(value)`: as Go's `encoding/json` writes kro's native form of the value:
/// compact, map keys sorted, `<`, `>` and `&` escaped, floats as Go prints them, bytes in
/// base64, timestamps as RFC 3339 in UTC, durations as Go's `time.Duration` string.
fn marshal(args: &[Value]) -> Outcome {
    let mut out = String::new();
    write_json(&mut out, &args[0], 0)?;
    Ok(Value::String(Arc::new(out)))
}

fn write_json(out: &mut String, value: &Value, depth: usize) -> Result<(), String> {
    if depth > crate::cel::MAX_VALUE_DEPTH {
        return Err("json.marshal failed: value nested too deep".to_owned());
    }
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => out.push_str(&i.to_string()),
        Value::UInt(u) => out.push_str(&u.to_string()),
        Value::Float(f) => out.push_str(&go_float(*f)?),
        Value::String(s) => write_json_string(out, s),
        Value::Bytes(b) => {
            use base64::Engine as _;
            write_json_string(
                out,
                &base64::engine::general_purpose::STANDARD.encode(b.as_slice()),
            );
        }
        Value::Timestamp(t) => write_json_string(
            out,
            &t.with_timezone(&chrono::Utc)
                .format("%Y-%m-%dT%H:%M:%SZ")
                .to_string(),
        ),
        Value::Duration(d) => write_json_string(out, &go_duration(*d)),
        Value::List(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json(out, item, depth + 1)?;
            }
            out.push(']');
        }
        Value::Map(map) => {
            let mut entries: Vec<(String, &Value)> =
                map.map.iter().map(|(k, v)| (key_string(k), v)).collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            out.push('{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json_string(out, &key);
                out.push(':');
                write_json(out, item, depth + 1)?;
            }
            out.push('}');
        }
        Value::Opaque(opaque) => {
            if let Some(optional) = opaque.downcast_ref::<cel::objects::OptionalValue>() {
                if let Some(inner) = optional.value() {
                    return write_json(out, inner, depth + 1);
                }
                out.push_str("null");
                return Ok(());
            }
            return Err(format!(
                "json.marshal failed to convert value: unsupported type {}",
                opaque.runtime_type_name()
            ));
        }
        other => {
            return Err(format!(
                "json.marshal failed to convert value: unsupported type {}",
                other.type_of()
            ));
        }
    }
    Ok(())
}

fn key_string(key: &Key) -> String {
    match key {
        Key::Int(i) => i.to_string(),
        Key::Uint(u) => u.to_string(),
        Key::Bool(b) => b.to_string(),
        Key::String(s) => s.to_string(),
    }
}

/// A JSON string as Go writes it: HTML-sensitive characters and line separators escaped.
fn write_json_string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A float as Go's `encoding/json` writes it: plain decimal between 1e-6 and 1e21, otherwise
/// an exponent of at least two digits (`1e+21`, `1e-07`); NaN and infinities are errors.
fn go_float(f: f64) -> Result<String, String> {
    if !f.is_finite() {
        return Err(format!(
            "json.marshal failed to encode value: json: unsupported value: {}",
            go_float_name(f)
        ));
    }
    let magnitude = f.abs();
    if magnitude == 0.0 || (1e-6..1e21).contains(&magnitude) {
        return Ok(format!("{f}"));
    }
    let formatted = format!("{f:e}");
    let (mantissa, exponent) = formatted.split_once('e').expect("{:e} writes an exponent");
    let (sign, digits) = match exponent.strip_prefix('-') {
        Some(digits) => ('-', digits),
        None => ('+', exponent),
    };
    Ok(format!("{mantissa}e{sign}{digits:0>2}"))
}

fn go_float_name(f: f64) -> &'static str {
    if f.is_nan() {
        "NaN"
    } else if f > 0.0 {
        "+Inf"
    } else {
        "-Inf"
    }
}

/// Go's `time.Duration.String`: `1h30m0s`, `1.5s`, `500ms`, `0s`.
fn go_duration(d: chrono::TimeDelta) -> String {
    let nanos = d.num_nanoseconds().unwrap_or(i64::MAX);
    if nanos == 0 {
        return "0s".to_owned();
    }
    let sign = if nanos < 0 { "-" } else { "" };
    let n = nanos.unsigned_abs();
    let fraction = |value: u64, unit: u64| {
        let whole = value / unit;
        let rest = value % unit;
        if rest == 0 {
            whole.to_string()
        } else {
            let width = unit.to_string().len() - 1;
            let digits = format!("{rest:0width$}");
            format!("{whole}.{}", digits.trim_end_matches('0'))
        }
    };
    if n < 1_000 {
        return format!("{sign}{n}ns");
    }
    if n < 1_000_000 {
        return format!("{sign}{}µs", fraction(n, 1_000));
    }
    if n < 1_000_000_000 {
        return format!("{sign}{}ms", fraction(n, 1_000_000));
    }
    let seconds_total = n / 1_000_000_000;
    let (hours, minutes) = (seconds_total / 3600, (seconds_total % 3600) / 60);
    let seconds = fraction(n % 60_000_000_000, 1_000_000_000);
    match (hours, minutes) {
        (0, 0) => format!("{sign}{seconds}s"),
        (0, m) => format!("{sign}{m}m{seconds}s"),
        (h, m) => format!("{sign}{h}h{m}m{seconds}s"),
    }
}

/// FNV-1a, 64 bits.
fn fnv64a(data: &[u8]) -> [u8; 8] {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in data {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash.to_be_bytes()
}

fn index_in(
    args: &[Value],
    name: &str,
    inclusive_end: bool,
) -> Result<(Vec<Value>, usize), String> {
    let items = list(args, 0)?.to_vec();
    let index = int(args, 1)?;
    let size = items.len();
    let limit = if inclusive_end { size + 1 } else { size };
    let bracket = if inclusive_end { ']' } else { ')' };
    match usize::try_from(index) {
        Ok(i) if i < limit => Ok((items, i)),
        _ => Err(format!(
            "lists.{name}: index {index} out of bounds [0, {size}{bracket}"
        )),
    }
}

fn set_at_index(args: &[Value]) -> Outcome {
    let (mut items, i) = index_in(args, "setAtIndex", false)?;
    items[i] = args[2].clone();
    Ok(Value::List(Arc::new(items)))
}

fn insert_at_index(args: &[Value]) -> Outcome {
    let (mut items, i) = index_in(args, "insertAtIndex", true)?;
    items.insert(i, args[2].clone());
    Ok(Value::List(Arc::new(items)))
}

fn remove_at_index(args: &[Value]) -> Outcome {
    let (mut items, i) = index_in(args, "removeAtIndex", false)?;
    items.remove(i);
    Ok(Value::List(Arc::new(items)))
}

#[cfg(test)]
mod tests {
    use super::super::testing::{assert_error, assert_true, eval};
    use crate::cel::Value;

    #[test]
    fn random() {
        // Expected values computed independently (Python's hashlib, kro's algorithm): big-endian
        // 4-byte words of SHA-256(seed) mod 36 over 0-9a-z; the first 8 bytes mod the range.
        assert_eq!(
            eval("random.seededString(10, 'test-seed')"),
            Value::String("5czheg3o5c".into())
        );
        assert_eq!(
            eval("random.seededString(3, 'abc')"),
            Value::String("r6q".into())
        );
        assert_true(&[
            "random.seededString(20, 'x') == random.seededString(20, 'x')",
            "random.seededString(20, 'x').substring(0, 8) == random.seededString(20, 'x').substring(8, 16)",
            "random.seededString(10, 'a') != random.seededString(10, 'b')",
            "random.seededInt(5, 6, 'seed') == 5",
            "random.seededInt(30000, 32768, 'my-service') >= 30000",
            "random.seededInt(30000, 32768, 'my-service') < 32768",
        ]);
        assert_eq!(
            eval("random.seededInt(0, 1000000, 'seed-a')"),
            Value::Int(616_453)
        );
        assert_error("random.seededString(0, 'x')", "length must be positive");
        assert_error("random.seededInt(5, 5, 'x')", "min must be less than max");
    }

    #[test]
    fn maps() {
        assert_true(&[
            "{}.merge({}) == {}",
            "{'a': 1}.merge({'b': 2}) == {'a': 1, 'b': 2}",
            "{'a': 1}.merge({'a': 2, 'b': 2}) == {'a': 2, 'b': 2}",
            "{'a': {'x': 1}}.deepMerge({'a': {'y': 2}}) == {'a': {'x': 1, 'y': 2}}",
            "{'a': {'x': 1}}.deepMerge({'a': {'x': 9}}) == {'a': {'x': 9}}",
            "{'a': [1, 2]}.deepMerge({'a': [3]}) == {'a': [3]}",
            "{'a': {'x': 1}}.deepMerge({'a': 5}) == {'a': 5}",
            "{'a': 1}.deepMerge({}) == {'a': 1}",
        ]);
        assert_error("[1].deepMerge([2])", "no such overload");
    }

    #[test]
    fn json() {
        assert_true(&[
            "json.unmarshal('{\"name\": \"test\"}').name == 'test'",
            "json.unmarshal('[1,2,3]')[0] == 1.0",
            "type(json.unmarshal('1')) == double",
            "json.unmarshal('null') == null",
            "json.marshal({'b': 1, 'a': [true, null, 'x']}) == '{\"a\":[true,null,\"x\"],\"b\":1}'",
            "json.marshal(1.0) == '1'",
            "json.marshal(1.5) == '1.5'",
            "json.marshal(1e21) == '1e+21'",
            "json.marshal(0.0000001) == '1e-07'",
            "json.marshal('<a&b>') == '\"\\\\u003ca\\\\u0026b\\\\u003e\"'",
            "json.marshal(b'hi') == '\"aGk=\"'",
            "json.marshal(duration('1h30m')) == '\"1h30m0s\"'",
            "json.marshal(duration('1.5s')) == '\"1.5s\"'",
            "json.marshal(duration('500ms')) == '\"500ms\"'",
            "json.marshal(timestamp('2024-01-02T03:04:05.678+01:00')) == '\"2024-01-02T02:04:05Z\"'",
            "json.marshal(18446744073709551615u) == '18446744073709551615'",
            "json.marshal(optional.none()) == 'null'",
        ]);
        assert_error("json.unmarshal('{')", "failed to parse JSON");
        assert_error("json.marshal(0.0 / 0.0)", "unsupported value: NaN");
    }

    #[test]
    fn hash() {
        assert_true(&[
            "hash.sha256('abc') == base64.decode('ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=')",
            "hash.md5('abc') == base64.decode('kAFQmDzST7DWlj99KOF/cg==')",
            "hash.fnv64a('') == base64.decode('y/Kc5IQiIyU=')",
            "hash.fnv64a('a') == base64.decode('r2PcTIYB7Iw=')",
            "size(hash.sha256('')) == 32",
        ]);
    }

    #[test]
    fn lists() {
        assert_true(&[
            "lists.setAtIndex([1, 2, 3], 1, 9) == [1, 9, 3]",
            "lists.insertAtIndex([1, 2, 3], 0, 0) == [0, 1, 2, 3]",
            "lists.insertAtIndex([1, 2, 3], 3, 4) == [1, 2, 3, 4]",
            "lists.removeAtIndex([1, 2, 3], 2) == [1, 2]",
        ]);
        assert_error(
            "lists.setAtIndex([1], 1, 0)",
            "lists.setAtIndex: index 1 out of bounds [0, 1)",
        );
        assert_error(
            "lists.insertAtIndex([1], 2, 0)",
            "lists.insertAtIndex: index 2 out of bounds [0, 1]",
        );
        assert_error(
            "lists.removeAtIndex([], 0)",
            "lists.removeAtIndex: index 0 out of bounds [0, 0)",
        );
        assert_error("lists.removeAtIndex([1], -1)", "out of bounds");
    }
}
