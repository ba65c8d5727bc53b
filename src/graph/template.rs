//! Finding `${...}` expressions in resource templates, with KRO's scanner rules.
//!
//! A string value that is exactly one `${expr}` is a *standalone* expression: the field takes
//! the expression's value and type. Any other string holding expressions is a *string
//! template*: KRO turns `"${schema.spec.name}-svc"` into the CEL concatenation
//! `(schema.spec.name) + "-svc"`. Only string values are scanned; map keys and other scalars
//! never hold expressions.
//!
//! The end of an expression is found by counting braces outside double-quoted strings (a
//! backslash escapes the next character inside them). Single quotes are not tracked, exactly
//! as in KRO, so `${'}'}` ends at the first `}`. A `${` inside an expression is an error
//! unless it directly follows a `"`; a `${` never closed is plain text.

use std::fmt::Write as _;

use serde_json::Value as Json;

/// The error KRO reports for `${a ${b}}`.
pub const NESTED_EXPRESSION: &str =
    "nested expressions are not allowed unless inside string literals";

/// One `${...}` in a string: the text between the braces and its byte range, braces included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Match<'s> {
    pub(crate) expression: &'s str,
    pub(crate) start: usize,
    pub(crate) end: usize,
}

/// Every complete `${...}` in `text`, in order.
pub(crate) fn scan(text: &str) -> Result<Vec<Match<'_>>, &'static str> {
    let bytes = text.as_bytes();
    let mut matches = Vec::new();
    let mut from = 0;
    while let Some(found) = text.get(from..).and_then(|rest| rest.find("${")) {
        let start = from + found;
        let mut depth = 1_usize;
        let mut at = start + 2;
        let (mut quoted, mut escaped) = (false, false);
        while at < bytes.len() {
            let c = bytes[at];
            if escaped {
                escaped = false;
            } else if quoted && c == b'\\' {
                escaped = true;
            } else if c == b'"' {
                quoted = !quoted;
            } else if !quoted {
                match c {
                    b'{' => depth += 1,
                    b'}' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    b'$' if bytes.get(at + 1) == Some(&b'{') && bytes[at - 1] != b'"' => {
                        return Err(NESTED_EXPRESSION);
                    }
                    _ => {}
                }
            }
            at += 1;
        }
        if depth == 0 {
            matches.push(Match {
                expression: &text[start + 2..at],
                start,
                end: at + 1,
            });
            from = at + 1;
        } else {
            // Never closed: plain text from here on.
            from = start + 1;
        }
    }
    Ok(matches)
}

/// The one expression `text` consists of, if it is exactly `${...}`.
pub(crate) fn standalone(text: &str) -> Result<Option<&str>, &'static str> {
    let matches = scan(text)?;
    Ok(match matches.as_slice() {
        [only] if only.start == 0 && only.end == text.len() => Some(only.expression),
        _ => None,
    })
}

/// How a field uses its expressions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum FieldForm {
    /// The whole value is one `${expr}`: the field takes the expression's value and type.
    Standalone,
    /// Text with expressions inside: the field is the string they build together.
    Template,
}

/// A string field of a template that holds expressions.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FieldExpressions {
    /// The field, as KRO writes it: `spec.template.spec.containers[0].image`.
    pub path: String,
    /// Standalone or string template.
    pub form: FieldForm,
    /// The expressions, as written between `${` and `}`.
    pub expressions: Vec<String>,
    /// The field's text.
    pub text: String,
}

impl FieldExpressions {
    /// The single CEL expression the field evaluates: the expression itself when standalone,
    /// else the concatenation of the literal parts and the parenthesised expressions.
    #[must_use]
    pub fn cel(&self) -> String {
        to_cel(&self.text)
            .ok()
            .flatten()
            .map(|(cel, _)| cel)
            .unwrap_or_default()
    }
}

/// The CEL expression a string field evaluates, and whether it is standalone: `None` when
/// the text holds no expression.
///
/// # Errors
/// The scanner's error for nested expressions.
pub(crate) fn to_cel(text: &str) -> Result<Option<(String, bool)>, &'static str> {
    if !text.contains("${") {
        return Ok(None);
    }
    let matches = scan(text)?;
    match matches.as_slice() {
        [] => Ok(None),
        [only] if only.start == 0 && only.end == text.len() => {
            Ok(Some((only.expression.to_owned(), true)))
        }
        _ => {
            let mut parts = Vec::with_capacity(2 * matches.len() + 1);
            let mut from = 0;
            for found in &matches {
                if found.start > from {
                    parts.push(quote(&text[from..found.start]));
                }
                parts.push(format!("({})", found.expression));
                from = found.end;
            }
            if from < text.len() {
                parts.push(quote(&text[from..]));
            }
            Ok(Some((parts.join(" + "), false)))
        }
    }
}

/// A CEL string literal for `text`.
pub(crate) fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A scanner error at a field path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ScanIssue {
    pub(crate) path: String,
    pub(crate) message: &'static str,
}

/// Every string field under `value` that holds expressions, depth first in document order,
/// with the paths prefixed by `prefix`.
pub(crate) fn fields(value: &Json, prefix: &str) -> (Vec<FieldExpressions>, Vec<ScanIssue>) {
    let mut found = (Vec::new(), Vec::new());
    let mut path = prefix.to_owned();
    walk(value, &mut path, &mut found);
    found
}

fn walk(value: &Json, path: &mut String, found: &mut (Vec<FieldExpressions>, Vec<ScanIssue>)) {
    match value {
        Json::String(text) => {
            if !text.contains("${") {
                return;
            }
            match scan(text) {
                Ok(matches) if matches.is_empty() => {}
                Ok(matches) => {
                    let standalone =
                        matches.len() == 1 && matches[0].start == 0 && matches[0].end == text.len();
                    found.0.push(FieldExpressions {
                        path: path.clone(),
                        form: if standalone {
                            FieldForm::Standalone
                        } else {
                            FieldForm::Template
                        },
                        expressions: matches.iter().map(|m| m.expression.to_owned()).collect(),
                        text: text.clone(),
                    });
                }
                Err(message) => found.1.push(ScanIssue {
                    path: path.clone(),
                    message,
                }),
            }
        }
        Json::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                let len = path.len();
                let _ = write!(path, "[{index}]");
                walk(item, path, found);
                path.truncate(len);
            }
        }
        Json::Object(map) => {
            for (key, item) in map {
                let len = path.len();
                push_key(path, key);
                walk(item, path, found);
                path.truncate(len);
            }
        }
        _ => {}
    }
}

/// Appends `key` to a field path: `.key`, or `["k.e.y"]` when the key holds a dot or is
/// empty (KRO's field path syntax).
pub(crate) fn push_key(path: &mut String, key: &str) {
    if key.is_empty() || key.contains('.') {
        let _ = write!(path, "[{key:?}]");
    } else {
        if !path.is_empty() {
            path.push('.');
        }
        path.push_str(key);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::{FieldForm, NESTED_EXPRESSION, fields, scan, standalone};

    fn expressions(text: &str) -> Vec<&str> {
        scan(text)
            .unwrap()
            .into_iter()
            .map(|m| m.expression)
            .collect()
    }

    #[test]
    fn finds_expressions_with_braces_and_quotes_inside() {
        assert_eq!(expressions("${a}-${b.c}"), ["a", "b.c"]);
        assert_eq!(expressions("${ {'k': 1}['k'] }"), [" {'k': 1}['k'] "]);
        assert_eq!(expressions(r#"${"}" + x}"#), [r#""}" + x"#]);
        assert_eq!(expressions(r#"${"a\"}" + x}"#), [r#""a\"}" + x"#]);
        assert_eq!(
            expressions(r#"${outer("${inner}")}"#),
            [r#"outer("${inner}")"#]
        );
        assert_eq!(expressions("${}"), [""]);
        assert_eq!(expressions("plain $x and x}"), Vec::<&str>::new());
    }

    #[test]
    fn single_quotes_are_not_tracked_as_in_kro() {
        assert_eq!(expressions("${'}'}"), ["'"]);
    }

    #[test]
    fn unclosed_expressions_are_text_and_nested_ones_errors() {
        assert_eq!(expressions("${complete} ${incomplete"), ["complete"]);
        assert_eq!(scan("${incomplete ${complete}"), Err(NESTED_EXPRESSION));
        assert_eq!(scan("${a + ${b}}"), Err(NESTED_EXPRESSION));
    }

    #[test]
    fn standalone_is_exactly_one_expression() {
        assert_eq!(standalone("${a.b}"), Ok(Some("a.b")));
        assert_eq!(standalone("${a}${b}"), Ok(None));
        assert_eq!(standalone(" ${a}"), Ok(None));
        assert_eq!(standalone("a"), Ok(None));
    }

    #[test]
    fn fields_carry_kro_paths_and_forms() {
        let template = json!({
            "metadata": {"name": "${schema.spec.name}-svc", "labels": {"app.kubernetes.io/name": "${schema.spec.name}", "": "${x}"}},
            "spec": {"replicas": "${schema.spec.replicas}", "ports": [{"port": 80}, {"name": "${a} and ${b}"}]},
            "${key}": "keys are not scanned",
            "count": 3,
        });
        let (found, issues) = fields(&template, "template");
        assert!(issues.is_empty());
        let summary: Vec<(&str, FieldForm, usize)> = found
            .iter()
            .map(|f| (f.path.as_str(), f.form, f.expressions.len()))
            .collect();
        assert_eq!(
            summary,
            [
                ("template.metadata.labels[\"\"]", FieldForm::Standalone, 1),
                (
                    "template.metadata.labels[\"app.kubernetes.io/name\"]",
                    FieldForm::Standalone,
                    1
                ),
                ("template.metadata.name", FieldForm::Template, 1),
                ("template.spec.ports[1].name", FieldForm::Template, 2),
                ("template.spec.replicas", FieldForm::Standalone, 1),
            ]
        );
        assert_eq!(found[2].cel(), "(schema.spec.name) + \"-svc\"");
        assert_eq!(found[3].cel(), "(a) + \" and \" + (b)");
        assert_eq!(found[4].cel(), "schema.spec.replicas");
    }

    #[test]
    fn scanner_errors_carry_the_path() {
        let (_, issues) = fields(&json!({"a": ["${x ${y}}"]}), "template");
        assert_eq!(issues[0].path, "template.a[0]");
        assert_eq!(issues[0].message, NESTED_EXPRESSION);
    }
}
