//! `kubezen.forward`: the forward configuration, its local-port plan and the supervisor from
//! Python. `forward_plan` returns what `kubectl zen forward plan -o json` prints, with the
//! merged configuration beside it, as JSON text; `forward_start` runs the supervisor on a
//! thread of its own. The Python package wraps both.

use std::path::{Path, PathBuf};

use kubezen::cluster::ClusterOptions;
use kubezen::forward::{self, AssumeFree, Claimed, Config, Layer, SuperviseOptions, Supervisor};
use pyo3::{exceptions::PyValueError, prelude::*};

/// The Python exceptions, under the names Python shows.
pub mod errors {
    pyo3::create_exception!(
        kubezen.forward,
        ForwardError,
        crate::ZenError,
        "The port-forward supervisor could not run: an unreachable cluster, or nothing to forward."
    );
    pyo3::create_exception!(
        kubezen.forward,
        ForwardConfigError,
        ForwardError,
        "A forward configuration that cannot be used; the message names its file, entry and field."
    );
}
use errors::ForwardConfigError as ForwardConfigException;
use errors::ForwardError as ForwardException;

/// The embedded defaults, the user's file (with `user_config`) and `layers` merged in order.
fn merged(layers: Vec<(String, Option<String>)>, user_config: bool) -> PyResult<Config> {
    let error = |e: forward::ConfigError| ForwardConfigException::new_err(e.to_string());
    let mut all = forward::layers(user_config, &[]).map_err(error)?;
    for (name, text) in layers {
        all.push(match text {
            Some(text) => Layer::text(&name, &text),
            None => Layer::read(Path::new(&name)).map_err(error)?,
        });
    }
    forward::merge(&all).map_err(error)
}

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
        let config = merged(layers, user_config)?;
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

/// Starts the supervisor for the merged configuration (as [`forward_plan`] merges it) on a
/// thread of its own; entries without a namespace use `namespace` or the context's. The task
/// publishes every entry's status (a JSON list) at each change; its `stop()` closes the
/// ports, gives connections `grace` seconds and returns the last statuses.
#[pyfunction]
#[pyo3(signature = (layers, *, user_config = false, kubeconfig = None, context = None, namespace = None, grace = 2.0))]
#[allow(clippy::needless_pass_by_value)] // Python's arguments
pub fn forward_start(
    py: Python<'_>,
    layers: Vec<(String, Option<String>)>,
    user_config: bool,
    kubeconfig: Option<PathBuf>,
    context: Option<String>,
    namespace: Option<String>,
    grace: f64,
) -> PyResult<crate::task::PyTask> {
    let config = py.detach(|| merged(layers, user_config))?;
    if config.entries.iter().all(|entry| entry.disabled) {
        return Err(ForwardException::new_err(
            forward::ForwardError::NothingToForward.to_string(),
        ));
    }
    let options = SuperviseOptions {
        grace: crate::seconds("grace", grace)?,
        ..SuperviseOptions::default()
    };
    let cluster_options = ClusterOptions {
        kubeconfig,
        context,
        namespace,
        ..ClusterOptions::default()
    };
    let json = |statuses: &[forward::Status]| serde_json::to_string(statuses).unwrap_or_default();
    crate::task::PyTask::spawn(
        py,
        cluster_options,
        ForwardException::new_err,
        move |cluster, stop, state, started| async move {
            let supervisor = Supervisor::start(&cluster, &config, &options)
                .map_err(|e| ForwardException::new_err(e.to_string()))?;
            let mut changes = supervisor.subscribe();
            state.publish(json(&supervisor.statuses()));
            started.signal();
            loop {
                tokio::select! {
                    () = stop.cancelled() => break,
                    event = changes.changed() => {
                        if event.is_err() {
                            break;
                        }
                        state.publish(json(&supervisor.statuses()));
                    }
                }
            }
            let last = supervisor.shutdown().await;
            state.publish(json(&last));
            Ok(json(&last))
        },
    )
}
