//! `kubezen.reconcile`: render, apply and delete graph instances from Python.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use kubezen::cluster::ClusterOptions;
use kubezen::graph;
use kubezen::reconcile::{Options, Plan, ReconcileError, Reconciler};
use pyo3::{create_exception, exceptions::PyValueError, prelude::*};

use crate::graph::PyGraph;

create_exception!(
    kubezen.reconcile,
    ReconcileException,
    PyValueError,
    "The graph has errors, the instance does not fit its schema, an expression failed offline, or the cluster refused what every object needs."
);

fn error(error: &ReconcileError) -> PyErr {
    ReconcileException::new_err(error.to_string())
}

/// Renders (``dry_run``), applies or deletes (``delete``) one instance of ``graph``; the
/// instance is YAML or JSON text. Returns the rendering or the report as JSON text.
#[pyfunction]
#[pyo3(signature = (graph, instance, *, dry_run = false, delete = false, kubeconfig = None, context = None, namespace = None, workers = 4, timeout = 300.0, force_conflicts = false, prune = true))]
#[allow(clippy::too_many_arguments, clippy::fn_params_excessive_bools)] // Python's keyword arguments
pub fn reconcile_run(
    py: Python<'_>,
    graph: &PyGraph,
    instance: &str,
    dry_run: bool,
    delete: bool,
    kubeconfig: Option<PathBuf>,
    context: Option<String>,
    namespace: Option<String>,
    workers: usize,
    timeout: f64,
    force_conflicts: bool,
    prune: bool,
) -> PyResult<String> {
    let plan = Arc::new(Plan::new(graph.graph()).map_err(|e| error(&e))?);
    let documents = graph::parse_documents(instance, "<instance>")
        .map_err(|e| ReconcileException::new_err(e.to_string()))?;
    let object = documents
        .into_iter()
        .map(|(_, d)| d)
        .find(|d| !d.is_null())
        .ok_or_else(|| ReconcileException::new_err("the instance is empty"))?;
    let timeout = Duration::try_from_secs_f64(timeout).map_err(|_| {
        PyValueError::new_err(format!(
            "timeout must be a non-negative number of seconds, not {timeout}"
        ))
    })?;
    let options = Options {
        workers: workers.max(1),
        timeout,
        force_conflicts,
        prune,
    };
    crate::interruptible(py, move |cancel| {
        if dry_run {
            let instance = plan
                .admit(object, namespace.as_deref().unwrap_or("default"))
                .map_err(|e| error(&e))?;
            let rendering = plan.render_offline(&instance).map_err(|e| error(&e))?;
            return serde_json::to_string(&rendering)
                .map_err(|e| PyValueError::new_err(e.to_string()));
        }
        let options_of_cluster = ClusterOptions {
            kubeconfig,
            context,
            namespace,
            ..ClusterOptions::default()
        };
        crate::with_cluster(
            &options_of_cluster,
            ReconcileException::new_err,
            |cluster| async move {
                let reconciler = Reconciler::new(cluster, plan);
                let instance = reconciler.admit(object).map_err(|e| error(&e))?;
                let report = if delete {
                    reconciler.delete(&instance, &options, &(), &cancel).await
                } else {
                    reconciler.apply(&instance, &options, &(), &cancel).await
                }
                .map_err(|e| error(&e))?;
                serde_json::to_string(&report).map_err(|e| PyValueError::new_err(e.to_string()))
            },
        )
    })
}
