//! The core's log lines, handed to Python's `logging`: what the controllers say (start-up,
//! failed reconciles, denials, leadership, watch restarts, summaries) reaches a notebook or a
//! script through the loggers it already configures.
//!
//! Each `tracing` event becomes a record of the logger named after its target (`::` read as
//! `.`: `kubezen.lead.controller`), at the matching level (trace is 5). Its fields ride along:
//! every one in `record.fields` (a dict), and those that do not clash with a `LogRecord`
//! attribute (`name`, `msg`, `args`, ...) as attributes too (`record.namespace`). This
//! package's own events pass at every level, other crates' from warn up; Python's levels and
//! handlers decide the rest.

use pyo3::prelude::*;
use pyo3::types::PyDict;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

/// `LogRecord`'s own attributes: `extra` may not set them.
const RESERVED: &[&str] = &[
    "name",
    "msg",
    "args",
    "levelname",
    "levelno",
    "pathname",
    "filename",
    "module",
    "exc_info",
    "exc_text",
    "stack_info",
    "lineno",
    "funcName",
    "created",
    "msecs",
    "relativeCreated",
    "thread",
    "threadName",
    "processName",
    "process",
    "message",
    "asctime",
    "taskName",
    "fields",
];

/// A field's value, kept as its kind so Python sees numbers as numbers.
enum FieldValue {
    Text(String),
    Int(i64),
    Unsigned(u64),
    Float(f64),
    Bool(bool),
}

#[derive(Default)]
struct Fields {
    message: String,
    values: Vec<(&'static str, FieldValue)>,
}

impl Visit for Fields {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.values.push((field.name(), FieldValue::Float(value)));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.values.push((field.name(), FieldValue::Int(value)));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.values
            .push((field.name(), FieldValue::Unsigned(value)));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.values.push((field.name(), FieldValue::Bool(value)));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            value.clone_into(&mut self.message);
        } else {
            self.values
                .push((field.name(), FieldValue::Text(value.to_owned())));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}");
        } else {
            self.values
                .push((field.name(), FieldValue::Text(format!("{value:?}"))));
        }
    }
}

/// The layer that hands events to Python's `logging`.
pub(crate) struct PythonLogging;

impl<S: Subscriber> Layer<S> for PythonLogging {
    fn enabled(&self, metadata: &Metadata<'_>, _: Context<'_, S>) -> bool {
        metadata.target().starts_with("kubezen") || *metadata.level() <= Level::WARN
    }

    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let metadata = event.metadata();
        // Not at all while the interpreter shuts down: the line is lost, nothing hangs.
        let _ = Python::try_attach(|py| {
            if let Err(error) = emit(py, metadata, &fields) {
                // A handler that raises is Python's to report, as logging itself does.
                error.print(py);
            }
        });
    }
}

fn emit(py: Python<'_>, metadata: &Metadata<'_>, fields: &Fields) -> PyResult<()> {
    let level: u8 = match *metadata.level() {
        Level::ERROR => 40,
        Level::WARN => 30,
        Level::INFO => 20,
        Level::DEBUG => 10,
        Level::TRACE => 5,
    };
    let logger = py
        .import("logging")?
        .call_method1("getLogger", (metadata.target().replace("::", "."),))?;
    if !logger.call_method1("isEnabledFor", (level,))?.is_truthy()? {
        return Ok(());
    }
    let all = PyDict::new(py);
    let extra = PyDict::new(py);
    for (key, value) in &fields.values {
        let value = match value {
            FieldValue::Text(text) => text.into_pyobject(py)?.into_any(),
            FieldValue::Int(number) => number.into_pyobject(py)?.into_any(),
            FieldValue::Unsigned(number) => number.into_pyobject(py)?.into_any(),
            FieldValue::Float(number) => number.into_pyobject(py)?.into_any(),
            FieldValue::Bool(flag) => flag.into_pyobject(py)?.to_owned().into_any(),
        };
        if !RESERVED.contains(key) {
            extra.set_item(key, &value)?;
        }
        all.set_item(key, value)?;
    }
    extra.set_item("fields", all)?;
    // Made, not logged: the record names the Rust file and line that said it.
    let record = logger.call_method1(
        "makeRecord",
        (
            logger.getattr("name")?,
            level,
            metadata.file().unwrap_or("<rust>"),
            metadata.line().unwrap_or(0),
            fields.message.as_str(),
            pyo3::types::PyTuple::empty(py),
            py.None(),
            metadata.module_path().unwrap_or_default(),
            extra,
        ),
    )?;
    logger.call_method1("handle", (record,))?;
    Ok(())
}

/// Installs the bridge as the process's `tracing` subscriber, unless one is installed already
/// (an embedding application's own).
pub(crate) fn install() {
    use tracing_subscriber::layer::SubscriberExt as _;
    let subscriber = tracing_subscriber::registry().with(PythonLogging);
    let _ = tracing::subscriber::set_global_default(subscriber);
}
