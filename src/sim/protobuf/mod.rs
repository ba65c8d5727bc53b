//! Kubernetes protobuf, as kube-apiserver speaks it: request bodies decoded into the JSON that
//! zen-sim stores, and objects encoded for clients that put protobuf first in `Accept`.
//!
//! A body is `k8s\0` and a `runtime.Unknown` envelope: the object's apiVersion and kind, and
//! the kind's message. The messages come from `schema.json`, which
//! `tests/control-plane/kubernetes/protoschema` generates from the Go types of k8s.io/api at
//! the release the tests' control plane runs. Besides each field's tag, JSON name and type it
//! says what the `.proto` files do not: whether the Go field is a pointer and whether its JSON
//! tag says omitempty. With those, a decoded object turns into the JSON the API server's own
//! Go structs would write: `creationTimestamp: null` and `resources: {}` in a Deployment's
//! template included.

use std::collections::HashMap;
use std::sync::LazyLock;

use base64::Engine as _;
use serde_json::{Map, Value};

use super::store::MAX_DEPTH;

/// The media type of Kubernetes protobuf.
pub const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// What starts every Kubernetes protobuf body.
const MAGIC: &[u8] = b"k8s\0";

/// The generated schema, parsed on first use.
static SCHEMA: LazyLock<Schema> = LazyLock::new(|| {
    Schema::parse(include_str!("schema.json"))
        .unwrap_or_else(|error| panic!("src/sim/protobuf/schema.json: {error}"))
});

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Type {
    String,
    Bool,
    Int32,
    Int64,
    Uint32,
    Uint64,
    Float64,
    Bytes,
    /// `metav1.Time`: seconds and nanos; RFC 3339 to the second in JSON, null when zero.
    Time,
    /// `metav1.MicroTime`: the same, to the microsecond.
    MicroTime,
    /// `resource.Quantity`: a string in a message.
    Quantity,
    /// `intstr.IntOrString`: a type, an int and a string; whichever the type says in JSON.
    IntOrString,
    /// `runtime.RawExtension`, `metav1.FieldsV1`, `apiextensions.JSON`: JSON held as bytes.
    Raw,
    /// `JSONSchemaPropsOrArray`: a schema, or a list of schemas.
    SchemaOrArray,
    /// `JSONSchemaPropsOrBool`: a schema, or a bool.
    SchemaOrBool,
    /// `JSONSchemaPropsOrStringArray`: a schema, or a list of strings.
    SchemaOrStrings,
    Message(usize),
}

#[derive(Debug)]
#[allow(clippy::struct_excessive_bools)] // the Go field's facts, one each
struct Field {
    tag: u32,
    json: Box<str>,
    kind: Type,
    repeated: bool,
    map: bool,
    pointer: bool,
    omitempty: bool,
    /// Go's `omitzero`: left out when the Go zero value (a zero time is null).
    omitzero: bool,
    inline: bool,
    /// A map's values are a named `[]string`, which protobuf wraps in a message (`items = 1`).
    wrapped: bool,
}

#[derive(Debug)]
struct Message {
    name: Box<str>,
    /// In tag order.
    fields: Vec<Field>,
    /// The fields' indexes in the order of their JSON names, the order of a JSON object's
    /// keys: an encoder walks both side by side. Empty when a field is inlined (its fields
    /// are the parent's keys), and the encoder looks each field up instead.
    by_name: Vec<usize>,
}

#[derive(Debug)]
struct Schema {
    /// `apps/v1/Deployment` (`v1/Pod` for the core group) to its message.
    kinds: HashMap<Box<str>, usize>,
    messages: Vec<Message>,
    /// `JSONSchemaProps`, which the `Schema*` types hold.
    props: Option<usize>,
    /// The release of k8s.io/api the schema was generated from.
    api: String,
}

impl Schema {
    fn parse(text: &str) -> Result<Self, String> {
        let document: Value = serde_json::from_str(text).map_err(|error| error.to_string())?;
        let messages = document["messages"]
            .as_object()
            .ok_or("no \"messages\" object")?;
        let index: HashMap<&str, usize> = messages
            .keys()
            .enumerate()
            .map(|(at, name)| (name.as_str(), at))
            .collect();
        let mut parsed = Vec::with_capacity(messages.len());
        for (name, fields) in messages {
            let fields = fields
                .as_array()
                .ok_or_else(|| format!("{name}: fields are not a list"))?
                .iter()
                .map(|field| Self::field(field, &index))
                .collect::<Result<Vec<Field>, String>>()
                .map_err(|error| format!("{name}: {error}"))?;
            if fields.windows(2).any(|pair| pair[0].tag >= pair[1].tag) {
                return Err(format!("{name}: fields are not in tag order"));
            }
            if fields.len() > 128 {
                return Err(format!("{name}: more than 128 fields"));
            }
            let mut by_name: Vec<usize> = (0..fields.len()).collect();
            by_name.sort_by(|a, b| fields[*a].json.cmp(&fields[*b].json));
            if fields.iter().any(|field| field.inline) {
                by_name.clear();
            }
            parsed.push(Message {
                name: name.as_str().into(),
                fields,
                by_name,
            });
        }
        let kinds = document["kinds"]
            .as_object()
            .ok_or("no \"kinds\" object")?
            .iter()
            .map(|(kind, message)| {
                let message = message.as_str().unwrap_or_default();
                index
                    .get(message)
                    .map(|&at| (kind.as_str().into(), at))
                    .ok_or_else(|| format!("{kind}: no message {message}"))
            })
            .collect::<Result<_, String>>()?;
        Ok(Self {
            api: document["k8s.io/api"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            kinds,
            props: index.get("apiextensions/v1.JSONSchemaProps").copied(),
            messages: parsed,
        })
    }

    fn field(field: &Value, index: &HashMap<&str, usize>) -> Result<Field, String> {
        let (Some(tag), Some(json), Some(kind), Some(flags)) = (
            field[0].as_u64().and_then(|tag| u32::try_from(tag).ok()),
            field[1].as_str(),
            field[2].as_str(),
            field[3].as_str(),
        ) else {
            return Err(format!("field {field} is not [tag, json, type, flags]"));
        };
        let kind = match kind {
            "string" => Type::String,
            "bool" => Type::Bool,
            "int32" => Type::Int32,
            "int64" => Type::Int64,
            "uint32" => Type::Uint32,
            "uint64" => Type::Uint64,
            "float64" => Type::Float64,
            "bytes" => Type::Bytes,
            "time" => Type::Time,
            "microtime" => Type::MicroTime,
            "quantity" => Type::Quantity,
            "intstr" => Type::IntOrString,
            "raw" => Type::Raw,
            "schema-or-array" => Type::SchemaOrArray,
            "schema-or-bool" => Type::SchemaOrBool,
            "schema-or-strings" => Type::SchemaOrStrings,
            message => Type::Message(
                *index
                    .get(message)
                    .ok_or_else(|| format!("field {json}: type {message} is not known"))?,
            ),
        };
        Ok(Field {
            tag,
            json: json.into(),
            kind,
            repeated: flags.contains('r'),
            map: flags.contains('m'),
            pointer: flags.contains('p'),
            omitempty: flags.contains('o'),
            omitzero: flags.contains('z'),
            inline: flags.contains('i'),
            wrapped: flags.contains('w'),
        })
    }

    fn kind(&self, api_version: &str, kind: &str) -> Option<usize> {
        // The key on the stack: this runs for every body and every answer.
        let mut key = [0u8; 128];
        let length = api_version.len() + 1 + kind.len();
        if length > key.len() {
            return None;
        }
        key[..api_version.len()].copy_from_slice(api_version.as_bytes());
        key[api_version.len()] = b'/';
        key[api_version.len() + 1..length].copy_from_slice(kind.as_bytes());
        let key = std::str::from_utf8(&key[..length]).ok()?;
        self.kinds.get(key).copied()
    }
}

/// The release of k8s.io/api whose Go types the protobuf schema was generated from.
#[must_use]
pub fn schema_release() -> &'static str {
    &SCHEMA.api
}

/// Whether a media type (from `Content-Type` or one entry of `Accept`) is Kubernetes protobuf.
#[must_use]
pub fn is_protobuf(media: &str) -> bool {
    media.split(';').next().unwrap_or_default().trim() == MEDIA_TYPE
}

/// A Kubernetes protobuf body (`k8s\0`, then the envelope) as the JSON object kube-apiserver
/// would write for it, with the envelope's apiVersion and kind.
///
/// # Errors
/// What makes the body unreadable: no `k8s\0`, a truncated or malformed message, a kind
/// with no protobuf form, a field of the wrong wire type, nesting deeper than 100 messages.
pub fn decode(body: &[u8]) -> Result<Value, String> {
    decode_object(body, None, 0)
}

/// [`decode`] for an endpoint that takes one kind (`apiVersion` and `kind`), with
/// kube-apiserver's wording for a body that is not one: an envelope that names no kind is
/// read as this one, one that names another is refused.
///
/// # Errors
/// Those of [`decode`], and a body of another kind.
pub fn decode_as(body: &[u8], api_version: &str, kind: &str) -> Result<Value, String> {
    decode_object(body, Some((api_version, kind)), 0)
}

fn decode_object(
    body: &[u8],
    expected: Option<(&str, &str)>,
    depth: usize,
) -> Result<Value, String> {
    let unrecognized = |error: String| match expected {
        Some((_, kind)) => {
            format!("the object provided is unrecognized (must be of type {kind}): {error}")
        }
        None => error,
    };
    let (api_version, kind, raw) = envelope(body).map_err(unrecognized)?;
    let (api_version, kind) = match (kind.is_empty(), expected) {
        (true, Some(expected)) => expected,
        (true, None) => return Err("the envelope names no kind".into()),
        (false, _) => (api_version, kind),
    };
    let cannot = |why: Option<String>| {
        let (_, target) = expected.unwrap_or_default();
        let version = api_version.rsplit('/').next().unwrap_or_default();
        let mut message = format!("{kind} in version {version:?} cannot be handled as a {target}");
        if let Some(why) = why {
            message = format!("{message}: {why}");
        }
        message
    };
    let Some(message) = SCHEMA.kind(api_version, kind) else {
        let unknown = format!(
            "no kind {kind:?} is registered for version {api_version:?} in zen-sim's protobuf schema"
        );
        return Err(if expected.is_some() {
            cannot(Some(unknown))
        } else {
            unknown
        });
    };
    if expected.is_some_and(|expected| expected != (api_version, kind)) {
        return Err(cannot(None));
    }
    let mut object = Map::new();
    object.insert("apiVersion".into(), api_version.into());
    object.insert("kind".into(), kind.into());
    decode_message(message, raw, depth + 1, &mut object).map_err(|error| {
        if expected.is_some() {
            cannot(Some(error))
        } else {
            error
        }
    })?;
    Ok(Value::Object(object))
}

/// The envelope: apiVersion, kind and the object's message.
fn envelope(body: &[u8]) -> Result<(&str, &str, &[u8]), String> {
    let Some(envelope) = body.strip_prefix(MAGIC) else {
        return Err(format!(
            "provided data does not appear to be a protobuf message, expected prefix {MAGIC:?}"
        ));
    };
    let (mut api_version, mut kind, mut raw) = ("", "", &[][..]);
    let mut reader = Reader::new(envelope);
    while let Some((tag, wire)) = reader.key()? {
        match (tag, wire) {
            (1, LEN) => {
                let mut meta = Reader::new(reader.bytes()?);
                while let Some((tag, wire)) = meta.key()? {
                    match (tag, wire) {
                        (1, LEN) => api_version = meta.text()?,
                        (2, LEN) => kind = meta.text()?,
                        _ => meta.skip(wire)?,
                    }
                }
            }
            (2, LEN) => raw = reader.bytes()?,
            (3 | 4, LEN) => {
                let text = reader.text()?;
                if !text.is_empty() {
                    return Err(format!(
                        "content encoding or type {text:?} inside the envelope is not supported"
                    ));
                }
            }
            _ => reader.skip(wire)?,
        }
    }
    Ok((api_version, kind, raw))
}

const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;
const FIXED32: u8 = 5;

/// The wire format, read with every length checked.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }

    fn varint(&mut self) -> Result<u64, String> {
        let mut value = 0u64;
        for (at, &byte) in self.bytes.iter().enumerate().take(10) {
            value |= u64::from(byte & 0x7f) << (7 * at);
            if byte < 0x80 {
                self.bytes = &self.bytes[at + 1..];
                return Ok(value);
            }
        }
        Err(if self.bytes.len() < 10 {
            "unexpected end of data in a varint".into()
        } else {
            "a varint longer than 10 bytes".into()
        })
    }

    /// The next field's number and wire type, or the end.
    fn key(&mut self) -> Result<Option<(u32, u8)>, String> {
        if self.bytes.is_empty() {
            return Ok(None);
        }
        let key = self.varint()?;
        let tag =
            u32::try_from(key >> 3).map_err(|_| format!("field number {} too large", key >> 3))?;
        if tag == 0 {
            return Err("field number 0".into());
        }
        Ok(Some((tag, (key & 7) as u8)))
    }

    fn take(&mut self, length: usize) -> Result<&'a [u8], String> {
        if length > self.bytes.len() {
            return Err(format!(
                "unexpected end of data: {length} bytes announced, {} left",
                self.bytes.len()
            ));
        }
        let (taken, rest) = self.bytes.split_at(length);
        self.bytes = rest;
        Ok(taken)
    }

    fn bytes(&mut self) -> Result<&'a [u8], String> {
        let length = self.varint()?;
        self.take(usize::try_from(length).unwrap_or(usize::MAX))
    }

    fn text(&mut self) -> Result<&'a str, String> {
        std::str::from_utf8(self.bytes()?).map_err(|_| "a string is not valid UTF-8".into())
    }

    fn skip(&mut self, wire: u8) -> Result<(), String> {
        match wire {
            VARINT => self.varint().map(drop),
            FIXED64 => self.take(8).map(drop),
            LEN => self.bytes().map(drop),
            FIXED32 => self.take(4).map(drop),
            other => Err(format!("wire type {other} is not supported")),
        }
    }
}

/// One message's fields into `object`, as Go's JSON encoder writes the Go struct.
fn decode_message(
    message: usize,
    bytes: &[u8],
    depth: usize,
    object: &mut Map<String, Value>,
) -> Result<(), String> {
    if depth > MAX_DEPTH {
        return Err(format!(
            "the object nests more than {MAX_DEPTH} messages deep"
        ));
    }
    let fields = &SCHEMA.messages[message].fields;
    // Fields are written into `object` as they come; `seen` marks them (at most 128 fields a
    // message, which the schema's parser checks), and the others get Go's zero values after.
    let mut seen = 0u128;
    let mut pending: Option<(usize, Value)> = None;
    let mut reader = Reader::new(bytes);
    while let Some((tag, wire)) = reader.key()? {
        let Ok(at) = fields.binary_search_by_key(&tag, |field| field.tag) else {
            reader.skip(wire)?;
            continue;
        };
        let field = &fields[at];
        let first = seen & (1 << at) == 0;
        seen |= 1 << at;
        if field.inline {
            let Type::Message(inlined) = field.kind else {
                return Err(format!("inlined field {} is not a message", field.tag));
            };
            decode_message(
                inlined,
                reader_len(&mut reader, wire, field)?,
                depth + 1,
                object,
            )?;
            continue;
        }
        let key = &*field.json;
        if field.map || field.repeated {
            // A map's entries and a list's items come one field each, side by side: they
            // gather in `pending` and go into the object when another field comes.
            if pending.as_ref().is_none_or(|(index, _)| *index != at) {
                flush(fields, &mut pending, object);
                let empty = if field.map {
                    Value::Object(Map::new())
                } else {
                    Value::Array(Vec::new())
                };
                pending = Some((at, empty));
            }
            match pending.as_mut().map(|(_, gathered)| gathered) {
                Some(Value::Object(map)) => {
                    let (entry, value) =
                        map_entry(field, reader_len(&mut reader, wire, field)?, depth)?;
                    map.insert(entry, value);
                }
                Some(Value::Array(list)) if wire == LEN && is_varint(field.kind) => {
                    // A packed list of numbers.
                    let mut packed = Reader::new(reader.bytes()?);
                    while !packed.bytes.is_empty() {
                        list.push(scalar(field, VARINT, &mut packed, depth)?);
                    }
                }
                Some(Value::Array(list)) => list.push(scalar(field, wire, &mut reader, depth)?),
                _ => unreachable!("a map or a list is pending"),
            }
        } else {
            // The last of a field sent twice wins, as in Go's generated code.
            let value = scalar(field, wire, &mut reader, depth)?;
            if (field.omitempty && !field.pointer && is_empty(field, &value))
                || (field.omitzero && (value.is_null() || value == zero(field.kind, depth)?))
            {
                if !first {
                    object.remove(key);
                }
            } else {
                object.insert(key.to_owned(), value);
            }
        }
    }
    flush(fields, &mut pending, object);
    for (at, field) in fields.iter().enumerate() {
        if seen & (1 << at) == 0 {
            write_json(field, None, depth, object)?;
        }
    }
    Ok(())
}

/// A gathered map or list into the object: added to what came earlier for its field, if any.
fn flush(fields: &[Field], pending: &mut Option<(usize, Value)>, object: &mut Map<String, Value>) {
    let Some((at, gathered)) = pending.take() else {
        return;
    };
    match (object.entry(fields[at].json.to_string()), gathered) {
        (serde_json::map::Entry::Occupied(mut earlier), gathered) => {
            match (earlier.get_mut(), gathered) {
                (Value::Object(map), Value::Object(more)) => map.extend(more),
                (Value::Array(list), Value::Array(mut more)) => list.append(&mut more),
                (_, gathered) => *earlier.get_mut() = gathered,
            }
        }
        (serde_json::map::Entry::Vacant(slot), gathered) => {
            let empty = gathered.as_array().is_some_and(Vec::is_empty);
            if !(empty && fields[at].omitempty) {
                slot.insert(gathered);
            }
        }
    }
}

fn reader_len<'a>(reader: &mut Reader<'a>, wire: u8, field: &Field) -> Result<&'a [u8], String> {
    if wire != LEN {
        return Err(format!(
            "field {}: wire type {wire}, expected 2",
            field.json
        ));
    }
    reader.bytes()
}

fn is_scalar(kind: Type) -> bool {
    matches!(kind, Type::String | Type::Float64) || is_varint(kind)
}

fn is_varint(kind: Type) -> bool {
    matches!(
        kind,
        Type::Bool | Type::Int32 | Type::Int64 | Type::Uint32 | Type::Uint64
    )
}

fn map_entry(field: &Field, bytes: &[u8], depth: usize) -> Result<(String, Value), String> {
    let (mut key, mut value) = (String::new(), None);
    let mut reader = Reader::new(bytes);
    while let Some((tag, wire)) = reader.key()? {
        match tag {
            1 if wire == LEN => reader.text()?.clone_into(&mut key),
            2 if field.wrapped => {
                let mut items = Vec::new();
                let mut wrapper = Reader::new(reader_len(&mut reader, wire, field)?);
                while let Some((tag, wire)) = wrapper.key()? {
                    if tag == 1 && wire == LEN {
                        items.push(Value::String(wrapper.text()?.to_owned()));
                    } else {
                        wrapper.skip(wire)?;
                    }
                }
                value = Some(Value::Array(items));
            }
            2 => value = Some(scalar(field, wire, &mut reader, depth)?),
            _ => reader.skip(wire)?,
        }
    }
    // A missing value is the Go zero value of the map's type.
    let value = match value {
        Some(value) => value,
        None if field.wrapped => Value::Null,
        None => zero(field.kind, depth)?,
    };
    Ok((key, value))
}

/// One value of a field (a list's element, a map's value), as JSON.
fn scalar(field: &Field, wire: u8, reader: &mut Reader, depth: usize) -> Result<Value, String> {
    let expected = match field.kind {
        kind if is_varint(kind) => VARINT,
        Type::Float64 => FIXED64,
        _ => LEN,
    };
    if wire != expected {
        return Err(format!(
            "field {}: wire type {wire}, expected {expected}",
            field.json
        ));
    }
    Ok(match field.kind {
        // Go keeps invalid UTF-8, and its JSON encoder writes U+FFFD for it.
        Type::String => {
            let bytes = reader.bytes()?;
            Value::String(std::str::from_utf8(bytes).map_or_else(
                |_| String::from_utf8_lossy(bytes).into_owned(),
                str::to_owned,
            ))
        }
        Type::Bool => Value::Bool(reader.varint()? != 0),
        // Truncations as Go's generated code does them.
        #[allow(clippy::cast_possible_truncation, clippy::cast_possible_wrap)]
        Type::Int32 => Value::from(reader.varint()? as i32),
        #[allow(clippy::cast_possible_wrap)]
        Type::Int64 => Value::from(reader.varint()? as i64),
        #[allow(clippy::cast_possible_truncation)]
        Type::Uint32 => Value::from(reader.varint()? as u32),
        Type::Uint64 => Value::from(reader.varint()?),
        Type::Float64 => {
            let bytes: [u8; 8] = reader.take(8)?.try_into().unwrap_or_default();
            let number = f64::from_le_bytes(bytes);
            Value::from(
                serde_json::Number::from_f64(number).ok_or_else(|| {
                    format!("field {}: {number} is not a JSON number", field.json)
                })?,
            )
        }
        Type::Bytes => {
            Value::String(base64::engine::general_purpose::STANDARD.encode(reader.bytes()?))
        }
        kind => special(kind, reader.bytes()?, depth)?,
    })
}

/// A value of one of the hand-written types, or of a message.
fn special(kind: Type, bytes: &[u8], depth: usize) -> Result<Value, String> {
    let mut reader = Reader::new(bytes);
    match kind {
        Type::Time | Type::MicroTime => {
            let (mut seconds, mut nanos) = (0i64, 0i64);
            while let Some((tag, wire)) = reader.key()? {
                match (tag, wire) {
                    #[allow(clippy::cast_possible_wrap)]
                    (1, VARINT) => seconds = reader.varint()? as i64,
                    #[allow(clippy::cast_possible_truncation, clippy::cast_possible_wrap)]
                    (2, VARINT) => nanos = i64::from(reader.varint()? as i32),
                    _ => reader.skip(wire)?,
                }
            }
            if bytes.is_empty() {
                return Ok(Value::Null);
            }
            Ok(Value::String(format_time(kind, seconds, nanos)?))
        }
        Type::Quantity => {
            let mut text = String::new();
            while let Some((tag, wire)) = reader.key()? {
                if (tag, wire) == (1, LEN) {
                    reader.text()?.clone_into(&mut text);
                } else {
                    reader.skip(wire)?;
                }
            }
            Ok(Value::String(if text.is_empty() {
                "0".into()
            } else {
                text
            }))
        }
        Type::IntOrString => {
            let (mut string, mut int, mut text) = (false, 0i32, String::new());
            while let Some((tag, wire)) = reader.key()? {
                match (tag, wire) {
                    (1, VARINT) => string = reader.varint()? == 1,
                    #[allow(clippy::cast_possible_truncation)]
                    (2, VARINT) => int = reader.varint()? as i32,
                    (3, LEN) => reader.text()?.clone_into(&mut text),
                    _ => reader.skip(wire)?,
                }
            }
            Ok(if string {
                Value::String(text)
            } else {
                Value::from(int)
            })
        }
        Type::Raw => {
            let mut raw: &[u8] = &[];
            while let Some((tag, wire)) = reader.key()? {
                if (tag, wire) == (1, LEN) {
                    raw = reader.bytes()?;
                } else {
                    reader.skip(wire)?;
                }
            }
            if raw.is_empty() {
                Ok(Value::Null)
            } else if raw.starts_with(MAGIC) {
                decode_object(raw, None, depth + 1)
            } else {
                serde_json::from_slice(raw)
                    .map_err(|error| format!("embedded JSON could not be read: {error}"))
            }
        }
        Type::SchemaOrArray | Type::SchemaOrBool | Type::SchemaOrStrings => {
            let props = SCHEMA.props.ok_or("the schema has no JSONSchemaProps")?;
            let (mut schema, mut list, mut allows) = (None, Vec::new(), false);
            while let Some((tag, wire)) = reader.key()? {
                match (kind, tag, wire) {
                    (Type::SchemaOrBool, 1, VARINT) => allows = reader.varint()? != 0,
                    (Type::SchemaOrBool, 2, LEN) | (_, 1, LEN) => {
                        schema = Some(message_value(props, reader.bytes()?, depth + 1)?);
                    }
                    (Type::SchemaOrArray, 2, LEN) => {
                        list.push(message_value(props, reader.bytes()?, depth + 1)?);
                    }
                    (Type::SchemaOrStrings, 2, LEN) => {
                        list.push(Value::String(reader.text()?.to_owned()));
                    }
                    _ => reader.skip(wire)?,
                }
            }
            Ok(match (schema, kind) {
                (Some(schema), _) => schema,
                (None, Type::SchemaOrBool) => Value::Bool(allows),
                (None, _) if list.is_empty() => Value::Null,
                (None, _) => Value::Array(list),
            })
        }
        Type::Message(message) => message_value(message, bytes, depth + 1),
        other => Err(format!("{other:?} is not a message")),
    }
}

fn message_value(message: usize, bytes: &[u8], depth: usize) -> Result<Value, String> {
    let mut object = Map::new();
    decode_message(message, bytes, depth, &mut object)?;
    Ok(Value::Object(object))
}

fn format_time(kind: Type, seconds: i64, nanos: i64) -> Result<String, String> {
    let nanos = u32::try_from(nanos.clamp(0, 999_999_999)).unwrap_or_default();
    let time = chrono::DateTime::from_timestamp(seconds, nanos)
        .ok_or_else(|| format!("time {seconds}s is out of range"))?;
    Ok(if kind == Type::MicroTime {
        time.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
    } else {
        time.format("%Y-%m-%dT%H:%M:%SZ").to_string()
    })
}

/// An RFC 3339 time as seconds since the epoch and nanoseconds. The API server's own form
/// (`2026-12-07T10:00:00Z`, or with six fraction digits) is read without chrono's parser.
fn parse_time(text: &str) -> Option<(i64, u32)> {
    let bytes = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| -> Option<i64> {
        bytes.get(range)?.iter().try_fold(0i64, |value, &byte| {
            byte.is_ascii_digit()
                .then(|| value * 10 + i64::from(byte - b'0'))
        })
    };
    let canonical = bytes.len() >= 20
        && bytes[4] == b'-'
        && bytes[7] == b'-'
        && bytes[10] == b'T'
        && bytes[13] == b':'
        && bytes[16] == b':'
        && bytes.last() == Some(&b'Z');
    // Between the seconds and the Z: nothing, or a dot and 1 to 9 digits.
    let fraction = if canonical {
        &bytes[19..bytes.len() - 1]
    } else {
        &[][..]
    };
    let plain_fraction = fraction.is_empty()
        || (fraction.len() >= 2
            && fraction.len() <= 10
            && fraction[0] == b'.'
            && fraction[1..].iter().all(u8::is_ascii_digit));
    if canonical && plain_fraction {
        let (year, month, day) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
        let (hour, minute, second) = (digits(11..13)?, digits(14..16)?, digits(17..19)?);
        if (1..=12).contains(&month)
            && (1..=31).contains(&day)
            && hour < 24
            && minute < 60
            && second < 61
        {
            let nanos = if fraction.is_empty() {
                0
            } else {
                let given = digits(20..19 + fraction.len())?;
                let scale = 10i64.pow(u32::try_from(10 - fraction.len()).ok()?);
                u32::try_from(given * scale).ok()?
            };
            // Days since the epoch of a civil date (Howard Hinnant's algorithm).
            let y = if month <= 2 { year - 1 } else { year };
            let era = y.div_euclid(400);
            let year_of_era = y - era * 400;
            let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
            let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
            let days = era * 146_097 + day_of_era - 719_468;
            return Some((days * 86_400 + hour * 3600 + minute * 60 + second, nanos));
        }
    }
    let time = chrono::DateTime::parse_from_rfc3339(text).ok()?;
    Some((time.timestamp(), time.timestamp_subsec_nanos()))
}

/// Go's zero value of a type, as its JSON encoder writes it.
fn zero(kind: Type, depth: usize) -> Result<Value, String> {
    Ok(match kind {
        Type::String => Value::String(String::new()),
        Type::Bool => Value::Bool(false),
        Type::Int32 | Type::Int64 | Type::Uint32 | Type::Uint64 | Type::IntOrString => {
            Value::from(0)
        }
        Type::Float64 => Value::from(0.0),
        Type::Quantity => Value::String("0".into()),
        Type::Message(message) => message_value(message, &[], depth + 1)?,
        Type::Bytes
        | Type::Time
        | Type::MicroTime
        | Type::Raw
        | Type::SchemaOrArray
        | Type::SchemaOrBool
        | Type::SchemaOrStrings => Value::Null,
    })
}

/// Whether Go's omitempty leaves a value out: false, 0, "", and empty lists and maps. Structs
/// never count as empty, the hand-written types included.
fn is_empty(field: &Field, value: &Value) -> bool {
    if field.repeated || field.map {
        return match value {
            Value::Array(list) => list.is_empty(),
            Value::Object(map) => map.is_empty(),
            _ => value.is_null(),
        };
    }
    match field.kind {
        Type::String | Type::Bytes => value.as_str().is_none_or(str::is_empty),
        Type::Bool => value == &Value::Bool(false),
        Type::Int32 | Type::Int64 | Type::Uint32 | Type::Uint64 | Type::Float64 => {
            value.as_f64() == Some(0.0)
        }
        _ => false,
    }
}

/// A decoded field (or its absence) into the JSON object, by Go's JSON rules.
fn write_json(
    field: &Field,
    value: Option<Value>,
    depth: usize,
    object: &mut Map<String, Value>,
) -> Result<(), String> {
    let value = match value {
        Some(value) => value,
        // A nil pointer, list or map.
        None if field.pointer || field.repeated || field.map || field.kind == Type::Bytes => {
            if !field.omitempty && !field.omitzero && !field.inline {
                object.insert(field.json.to_string(), Value::Null);
            }
            return Ok(());
        }
        // A scalar omitempty leaves out when zero: no need to make the zero.
        None if field.omitempty && is_scalar(field.kind) => return Ok(()),
        None => zero(field.kind, depth)?,
    };
    if field.inline {
        if let Value::Object(inlined) = value {
            object.extend(inlined);
        }
        return Ok(());
    }
    if field.omitempty && !field.pointer && is_empty(field, &value) {
        return Ok(());
    }
    if field.omitzero && (value.is_null() || value == zero(field.kind, depth)?) {
        return Ok(());
    }
    object.insert(field.json.to_string(), value);
    Ok(())
}

/// An object as a Kubernetes protobuf body (`k8s\0` and the envelope). Fields the kind does
/// not have are left out, as the API server's Go structs would leave them.
///
/// # Errors
/// A kind with no protobuf form (custom resources), or a field whose value is not of its type.
pub fn encode(object: &Value) -> Result<Vec<u8>, String> {
    let api_version = object["apiVersion"].as_str().unwrap_or_default();
    let kind = object["kind"].as_str().unwrap_or_default();
    let message = SCHEMA
        .kind(api_version, kind)
        .ok_or_else(|| format!("{api_version}/{kind} has no protobuf form"))?;
    let fields = object.as_object().ok_or("not an object")?;
    let mut raw = Vec::with_capacity(256);
    encode_message(&mut raw, message, fields, 0)?;
    let mut meta = Vec::with_capacity(api_version.len() + kind.len() + 4);
    write_text(&mut meta, 1, api_version);
    write_text(&mut meta, 2, kind);
    let mut out = Vec::with_capacity(raw.len() + meta.len() + 16);
    out.extend_from_slice(MAGIC);
    write_bytes(&mut out, 1, &meta);
    write_bytes(&mut out, 2, &raw);
    write_text(&mut out, 3, "");
    write_text(&mut out, 4, "");
    Ok(out)
}

#[allow(clippy::cast_possible_truncation)] // seven bits at a time
fn write_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn write_key(out: &mut Vec<u8>, tag: u32, wire: u8) {
    write_varint(out, u64::from(tag) << 3 | u64::from(wire));
}

fn write_bytes(out: &mut Vec<u8>, tag: u32, bytes: &[u8]) {
    write_key(out, tag, LEN);
    write_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn write_text(out: &mut Vec<u8>, tag: u32, text: &str) {
    write_bytes(out, tag, text.as_bytes());
}

/// A nested message, written in place: one byte is kept for its length, which is widened
/// (moving the message) only when the message is 128 bytes or more.
fn write_nested(
    out: &mut Vec<u8>,
    tag: u32,
    fill: impl FnOnce(&mut Vec<u8>) -> Result<(), String>,
) -> Result<(), String> {
    write_key(out, tag, LEN);
    let start = out.len();
    out.push(0);
    fill(out)?;
    let length = out.len() - start - 1;
    if length < 0x80 {
        #[allow(clippy::cast_possible_truncation)] // below 128
        let byte = length as u8;
        out[start] = byte;
    } else {
        let mut varint = Vec::with_capacity(10);
        write_varint(&mut varint, length as u64);
        out.splice(start..=start, varint);
    }
    Ok(())
}

fn encode_message(
    out: &mut Vec<u8>,
    message: usize,
    object: &Map<String, Value>,
    depth: usize,
) -> Result<(), String> {
    if depth > MAX_DEPTH {
        return Err(format!(
            "the object nests more than {MAX_DEPTH} messages deep"
        ));
    }
    let schema = &SCHEMA.messages[message];
    if schema.by_name.is_empty() {
        for field in &schema.fields {
            if field.inline {
                let Type::Message(inlined) = field.kind else {
                    return Err(format!("inlined field {} is not a message", field.tag));
                };
                write_nested(out, field.tag, |inner| {
                    encode_message(inner, inlined, object, depth + 1)
                })?;
            } else if let Some(value) = object.get(&*field.json) {
                encode_field(out, message, field, value, depth)?;
            }
        }
        return Ok(());
    }
    // The object's keys and the fields' names, both in order: one pass over each.
    let mut names = schema
        .by_name
        .iter()
        .map(|&at| &schema.fields[at])
        .peekable();
    for (key, value) in object {
        while names.next_if(|field| *field.json < **key).is_some() {}
        if let Some(field) = names.next_if(|field| *field.json == **key) {
            encode_field(out, message, field, value, depth)?;
        }
    }
    Ok(())
}

/// One field's value (null: none), in the message's wire format.
fn encode_field(
    out: &mut Vec<u8>,
    message: usize,
    field: &Field,
    value: &Value,
    depth: usize,
) -> Result<(), String> {
    if value.is_null() {
        return Ok(());
    }
    let wrong = || {
        format!(
            "field {} of {}: {value} is not what the kind holds",
            field.json, SCHEMA.messages[message].name
        )
    };
    if field.map {
        for (key, item) in value.as_object().ok_or_else(wrong)? {
            write_nested(out, field.tag, |entry| {
                write_text(entry, 1, key);
                if field.wrapped {
                    let items = item.as_array().ok_or_else(wrong)?;
                    write_nested(entry, 2, |wrapper| {
                        for item in items {
                            write_text(wrapper, 1, item.as_str().ok_or_else(wrong)?);
                        }
                        Ok(())
                    })
                } else {
                    encode_value(entry, 2, field, item, depth)
                }
            })?;
        }
    } else if field.repeated {
        for item in value.as_array().ok_or_else(wrong)? {
            encode_value(out, field.tag, field, item, depth)?;
        }
    } else {
        encode_value(out, field.tag, field, value, depth)?;
    }
    Ok(())
}

fn encode_value(
    out: &mut Vec<u8>,
    tag: u32,
    field: &Field,
    value: &Value,
    depth: usize,
) -> Result<(), String> {
    let wrong = || format!("field {}: {value} is not what the kind holds", field.json);
    #[allow(clippy::cast_sign_loss)]
    let integer = || {
        value
            .as_i64()
            .map(|number| number as u64)
            .or_else(|| value.as_u64())
    };
    match field.kind {
        Type::String => write_text(out, tag, value.as_str().ok_or_else(wrong)?),
        Type::Bool => {
            write_key(out, tag, VARINT);
            write_varint(out, u64::from(value.as_bool().ok_or_else(wrong)?));
        }
        Type::Int32 | Type::Int64 | Type::Uint32 | Type::Uint64 => {
            write_key(out, tag, VARINT);
            write_varint(out, integer().ok_or_else(wrong)?);
        }
        Type::Float64 => {
            write_key(out, tag, FIXED64);
            out.extend_from_slice(&value.as_f64().ok_or_else(wrong)?.to_le_bytes());
        }
        Type::Bytes => {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(value.as_str().ok_or_else(wrong)?)
                .map_err(|_| wrong())?;
            write_bytes(out, tag, &bytes);
        }
        Type::Time | Type::MicroTime => {
            let (seconds, nanos) =
                parse_time(value.as_str().ok_or_else(wrong)?).ok_or_else(wrong)?;
            let nanos = if field.kind == Type::MicroTime {
                nanos / 1000 * 1000
            } else {
                0
            };
            write_nested(out, tag, |inner| {
                write_key(inner, 1, VARINT);
                #[allow(clippy::cast_sign_loss)] // as Go writes an int64
                write_varint(inner, seconds as u64);
                write_key(inner, 2, VARINT);
                write_varint(inner, u64::from(nanos));
                Ok(())
            })?;
        }
        Type::Quantity => {
            let text = match value {
                Value::Number(number) => number.to_string(),
                _ => value.as_str().ok_or_else(wrong)?.to_owned(),
            };
            write_nested(out, tag, |inner| {
                write_text(inner, 1, &text);
                Ok(())
            })?;
        }
        Type::IntOrString => write_nested(out, tag, |inner| {
            write_key(inner, 1, VARINT);
            if let Some(text) = value.as_str() {
                write_varint(inner, 1);
                write_key(inner, 2, VARINT);
                write_varint(inner, 0);
                write_text(inner, 3, text);
            } else {
                write_varint(inner, 0);
                write_key(inner, 2, VARINT);
                write_varint(inner, integer().ok_or_else(wrong)?);
                write_text(inner, 3, "");
            }
            Ok(())
        })?,
        Type::Raw => {
            let json = serde_json::to_vec(value).map_err(|error| error.to_string())?;
            write_nested(out, tag, |inner| {
                write_bytes(inner, 1, &json);
                Ok(())
            })?;
        }
        Type::SchemaOrArray | Type::SchemaOrBool | Type::SchemaOrStrings => {
            write_nested(out, tag, |inner| {
                encode_schema_or(inner, field, value, depth)
            })?;
        }
        Type::Message(message) => {
            let object = value.as_object().ok_or_else(wrong)?;
            write_nested(out, tag, |inner| {
                encode_message(inner, message, object, depth + 1)
            })?;
        }
    }
    Ok(())
}

/// A `JSONSchemaPropsOr*`: a schema, or a bool, a list of schemas or of strings.
fn encode_schema_or(
    inner: &mut Vec<u8>,
    field: &Field,
    value: &Value,
    depth: usize,
) -> Result<(), String> {
    let wrong = || format!("field {}: {value} is not what the kind holds", field.json);
    let props = SCHEMA.props.ok_or("the schema has no JSONSchemaProps")?;
    match (field.kind, value) {
        (Type::SchemaOrBool, Value::Bool(allows)) => {
            write_key(inner, 1, VARINT);
            write_varint(inner, u64::from(*allows));
            Ok(())
        }
        (Type::SchemaOrBool, Value::Object(schema)) => {
            write_key(inner, 1, VARINT);
            write_varint(inner, 1);
            write_nested(inner, 2, |props_out| {
                encode_message(props_out, props, schema, depth + 1)
            })
        }
        (_, Value::Object(schema)) => write_nested(inner, 1, |props_out| {
            encode_message(props_out, props, schema, depth + 1)
        }),
        (Type::SchemaOrArray, Value::Array(list)) => list.iter().try_for_each(|item| {
            let schema = item.as_object().ok_or_else(wrong)?;
            write_nested(inner, 2, |props_out| {
                encode_message(props_out, props, schema, depth + 1)
            })
        }),
        (Type::SchemaOrStrings, Value::Array(list)) => list.iter().try_for_each(|item| {
            write_text(inner, 2, item.as_str().ok_or_else(wrong)?);
            Ok(())
        }),
        _ => Err(wrong()),
    }
}

#[cfg(test)]
mod tests;
