//! The logs: what the core says through `tracing` (the controllers' start-up, failures,
//! election, watch restarts and summaries), written to standard error so standard output keeps
//! the command's own result. Text by default, coloured on a terminal; `--log-format json`
//! writes one JSON object a line: `time`, `level`, `target`, `message`, then the fields of the
//! event and of the spans it happened in (`namespace`, `name`, `kind`, `reason`, ...).
//!
//! Levels: `--log-level` or `-v` (debug) and `-vv` (trace); without them `RUST_LOG` (as
//! `tracing-subscriber`'s `EnvFilter` reads it) when set, else `info`. Up to `info` only this
//! tool's own events show (libraries' warnings and errors too); from `debug` on, kube-rs's and
//! hyper's own events and spans show as well.

use std::fmt;
use std::io::IsTerminal as _;

use clap::ValueEnum;
use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime as _, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// For people: time, level, where, the message and its fields
    Text,
    /// One JSON object a line, for log pipelines
    Json,
}

/// The least severe level written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
pub enum LogLevel {
    /// Only what stopped something
    Error,
    /// And what went wrong but is retried
    Warn,
    /// And start-up, leadership, restarts, summaries (the default)
    Info,
    /// And kube-rs's and hyper's own events: requests, watches, reconciles
    Debug,
    /// Everything
    Trace,
}

impl LogLevel {
    fn as_str(self) -> &'static str {
        match self {
            Self::Error => "error",
            Self::Warn => "warn",
            Self::Info => "info",
            Self::Debug => "debug",
            Self::Trace => "trace",
        }
    }
}

/// The filter the flags and `RUST_LOG` make, and a warning when `RUST_LOG` was not valid.
fn filter(
    level: Option<LogLevel>,
    verbose: u8,
    rust_log: Option<&str>,
) -> (String, Option<String>) {
    let flagged = match (level, verbose) {
        (level, 0) => level,
        (level, 1) => Some(level.unwrap_or(LogLevel::Info).max(LogLevel::Debug)),
        _ => Some(LogLevel::Trace),
    };
    if let Some(level) = flagged {
        return (own(level), None);
    }
    match rust_log.filter(|directives| !directives.trim().is_empty()) {
        Some(directives) => match EnvFilter::try_new(directives) {
            Ok(_) => (directives.to_owned(), None),
            Err(error) => (
                own(LogLevel::Info),
                Some(format!(
                    "RUST_LOG={directives:?} is not a filter ({error}); logging at info"
                )),
            ),
        },
        None => (own(LogLevel::Info), None),
    }
}

/// `level` for this tool's own events; libraries at warn up to info, at `level` beyond.
fn own(level: LogLevel) -> String {
    match level {
        LogLevel::Error => "error".to_owned(),
        LogLevel::Warn | LogLevel::Info => {
            let level = level.as_str();
            format!("warn,kubezen={level},kubectl_zen={level}")
        }
        LogLevel::Debug | LogLevel::Trace => level.as_str().to_owned(),
    }
}

/// Installs the process's logger. Called once, before any command runs.
pub fn init(format: LogFormat, level: Option<LogLevel>, verbose: u8) {
    let rust_log = std::env::var("RUST_LOG").ok();
    let (directives, warning) = filter(level, verbose, rust_log.as_deref());
    let filter = EnvFilter::try_new(&directives).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let installed = match format {
        LogFormat::Text => {
            let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
            builder.with_ansi(colour).try_init()
        }
        LogFormat::Json => builder
            .with_ansi(false)
            .fmt_fields(JsonFields)
            .event_format(JsonLines)
            .try_init(),
    };
    if installed.is_ok()
        && let Some(warning) = warning
    {
        tracing::warn!("{warning}");
    }
}

/// Writes an event as one JSON object: `time`, `level`, `target`, `message`, then the fields
/// of the spans it is in (outermost first) and its own.
struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut fields = Map::new();
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                if let Some(formatted) = span.extensions().get::<FormattedFields<N>>()
                    && let Ok(Value::Object(map)) = serde_json::from_str(&formatted.fields)
                {
                    fields.extend(map);
                }
            }
        }
        event.record(&mut JsonVisitor(&mut fields));
        let mut time = String::new();
        SystemTime.format_time(&mut Writer::new(&mut time))?;
        let metadata = event.metadata();
        let message = fields
            .remove("message")
            .unwrap_or(Value::String(String::new()));
        let first = [
            ("time", Value::String(time)),
            ("level", Value::String(metadata.level().as_str().to_owned())),
            ("target", Value::String(metadata.target().to_owned())),
            ("message", message),
        ];
        write_object(&mut writer, &first, &fields)?;
        writeln!(writer)
    }
}

/// `first`'s keys in order, then `rest`'s: the four a reader looks for lead every line.
fn write_object(
    writer: &mut Writer<'_>,
    first: &[(&str, Value)],
    rest: &Map<String, Value>,
) -> fmt::Result {
    writer.write_char('{')?;
    let rest = rest
        .iter()
        .filter(|(key, _)| !first.iter().any(|(lead, _)| lead == key))
        .map(|(key, value)| (key.as_str(), value));
    for (index, (key, value)) in first.iter().map(|(k, v)| (*k, v)).chain(rest).enumerate() {
        if index > 0 {
            writer.write_char(',')?;
        }
        let key = serde_json::to_string(key).map_err(|_| fmt::Error)?;
        let value = serde_json::to_string(value).map_err(|_| fmt::Error)?;
        write!(writer, "{key}:{value}")?;
    }
    writer.write_char('}')
}

/// Span fields as a JSON object, so [`JsonLines`] can merge them into each line.
struct JsonFields;

impl<'writer> FormatFields<'writer> for JsonFields {
    fn format_fields<R: tracing_subscriber::field::RecordFields>(
        &self,
        mut writer: Writer<'writer>,
        fields: R,
    ) -> fmt::Result {
        let mut map = Map::new();
        fields.record(&mut JsonVisitor(&mut map));
        write!(writer, "{}", Value::Object(map))
    }

    fn add_fields(
        &self,
        current: &'writer mut FormattedFields<Self>,
        fields: &tracing::span::Record<'_>,
    ) -> fmt::Result {
        let mut map = match serde_json::from_str(&current.fields) {
            Ok(Value::Object(map)) => map,
            _ => Map::new(),
        };
        fields.record(&mut JsonVisitor(&mut map));
        current.fields = Value::Object(map).to_string();
        Ok(())
    }
}

/// Collects fields as JSON values: numbers and booleans as such, the rest as strings.
struct JsonVisitor<'a>(&'a mut Map<String, Value>);

impl Visit for JsonVisitor<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), Value::from(value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), Value::from(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), Value::from(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), Value::from(value));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), Value::from(value));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0
            .insert(field.name().into(), Value::from(value.to_string()));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().into(), Value::from(format!("{value:?}")));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_rust_log_and_info_keeps_libraries_at_warn() {
        assert_eq!(
            filter(None, 0, None).0,
            "warn,kubezen=info,kubectl_zen=info"
        );
        assert_eq!(filter(None, 0, Some("kube=debug")).0, "kube=debug");
        assert_eq!(filter(None, 1, Some("kube=trace")).0, "debug");
        assert_eq!(filter(None, 2, None).0, "trace");
        assert_eq!(filter(Some(LogLevel::Error), 0, Some("trace")).0, "error");
        assert_eq!(
            filter(Some(LogLevel::Warn), 0, None).0,
            "warn,kubezen=warn,kubectl_zen=warn"
        );
        // -v raises a level given below info to debug.
        assert_eq!(filter(Some(LogLevel::Warn), 1, None).0, "debug");
    }

    #[test]
    fn a_rust_log_that_is_not_a_filter_is_said_and_info_used() {
        let (directives, warning) = filter(None, 0, Some("kube=loud"));
        assert_eq!(directives, "warn,kubezen=info,kubectl_zen=info");
        assert!(warning.is_some_and(|w| w.contains("kube=loud")));
    }

    #[test]
    fn a_json_line_leads_with_time_level_target_message_then_the_fields() {
        use std::sync::{Arc, Mutex};
        use tracing_subscriber::fmt::MakeWriter;

        #[derive(Clone, Default)]
        struct Buffer(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Buffer {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                self.0
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .extend_from_slice(bytes);
                Ok(bytes.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        impl<'a> MakeWriter<'a> for Buffer {
            type Writer = Self;
            fn make_writer(&'a self) -> Self {
                self.clone()
            }
        }
        let buffer = Buffer::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(buffer.clone())
            .fmt_fields(JsonFields)
            .event_format(JsonLines)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("reconcile", namespace = "default", name = "web");
            let _entered = span.enter();
            tracing::warn!(status = 403_u64, retried = true, "denied \"quoted\"");
        });
        let text = String::from_utf8(
            buffer
                .0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone(),
        )
        .expect("utf-8");
        let line = text.lines().next().expect("one line");
        let keys: Vec<&str> = line
            .split(',')
            .filter_map(|part| part.split('"').nth(1))
            .take(4)
            .collect();
        assert_eq!(keys, ["time", "level", "target", "message"], "{line}");
        let value: Value = serde_json::from_str(line).expect("JSON");
        assert_eq!(value["level"], "WARN");
        assert_eq!(value["message"], "denied \"quoted\"");
        assert_eq!(value["namespace"], "default");
        assert_eq!(value["name"], "web");
        assert_eq!(value["status"], 403);
        assert_eq!(value["retried"], true);
        assert!(
            value["time"].as_str().is_some_and(|t| t.ends_with('Z')),
            "{line}"
        );
    }
}
