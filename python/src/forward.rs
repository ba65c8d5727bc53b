//! `kubezen.forward`: the forward configuration and its local-port plan from Python.
//! `forward_plan` returns what `kubectl zen forward plan -o json` prints, with the merged
//! configuration beside it, as JSON text; the Python package wraps it.

use std::path::Path;

use kubezen::forward::{self, AssumeFree, Claimed, Layer};
use pyo3::{create_exception, exceptions::PyValueError, prelude::*};

create_exception!(
    kubezen.forward,
    ForwardConfigException,
    PyValueError,
    "A forward configuration that cannot be used; the message names its file, entry and field."
);

/// Merges the embedded defaults, the user's file (with `user_config`) and `layers` in order
/// (each a path, or a name and YAML/JSON text), then allocates local ports: checking this
/// machine's ports with `check_ports`, else assuming all free. JSON text:
/// `{"assignments": [...], "config": {...}}`.
#[pyfunction]
#[pyo3(signature = (layers, *, user_config = false, check_ports = true))]
#[allow(clippy::needless_pass_by_value)] // Python's arguments
pub fn forward_plan(
    py: Python<'_>,
    layers: Vec<(String, Option<String>)>,
    user_config: bool,
    check_ports: bool,
) -> PyResult<String> {
    py.detach(move || {
        let error = |e: forward::ConfigError| ForwardConfigException::new_err(e.to_string());
        let mut all = forward::layers(user_config, &[]).map_err(error)?;
        for (name, text) in layers {
            all.push(match text {
                Some(text) => Layer::text(&name, &text),
                None => Layer::read(Path::new(&name)).map_err(error)?,
            });
        }
        let config = forward::merge(&all).map_err(error)?;
        let allocation = if check_ports {
            forward::allocate(&config)
        } else {
            forward::allocate_with(&config, &mut AssumeFree, &mut Claimed::default())
        };
        let report = serde_json::json!({
            "assignments": allocation.assignments,
            "config": config.to_document(),
        });
        serde_json::to_string(&report).map_err(|e| PyValueError::new_err(e.to_string()))
    })
}
