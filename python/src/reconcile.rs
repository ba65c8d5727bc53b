//! `kubezen.reconcile`: render, apply and delete graph instances from Python.

use std::path::PathBuf;
use std::sync::Arc;

use kubezen::cluster::ClusterOptions;
use kubezen::graph;
use kubezen::reconcile::{
    ControllerOptions, Options, Plan, ReconcileError, Reconciler, run_controller,
};
use pyo3::{exceptions::PyValueError, prelude::*};

use crate::graph::PyGraph;

/// The Python exceptions, under the names Python shows.
pub mod errors {
    pyo3::create_exception!(
        kubezen,
        ReconcileError,
        crate::ZenError,
        "The graph has errors, the instance does not fit its schema, an expression failed offline, or the cluster refused what every object needs."
    );
}
use errors::ReconcileError as ReconcileException;

fn error(error: &ReconcileError) -> PyErr {
    ReconcileException::new_err(error.to_string())
}

/// Renders (``dry_run``), applies, deletes (``delete``) or compares with the cluster (``diff``)
/// one instance of ``graph``; the instance is YAML or JSON text. Returns the rendering, the
/// report or the diffs as JSON text.
#[pyfunction]
#[pyo3(signature = (graph, instance, *, dry_run = false, delete = false, diff = false, kubeconfig = None, context = None, namespace = None, workers = 4, timeout = 300.0, force_conflicts = false, prune = true))]
#[allow(clippy::too_many_arguments, clippy::fn_params_excessive_bools)] // Python's keyword arguments
pub fn reconcile_run(
    py: Python<'_>,
    graph: &PyGraph,
    instance: &str,
    dry_run: bool,
    delete: bool,
    diff: bool,
    kubeconfig: Option<PathBuf>,
    context: Option<String>,
    namespace: Option<String>,
    workers: usize,
    timeout: f64,
    force_conflicts: bool,
    prune: bool,
) -> PyResult<String> {
    let plan = Arc::new(Plan::new(graph.graph()).map_err(|e| error(&e))?);
    let object = instance_object(instance)?;
    let timeout = crate::seconds("timeout", timeout)?;
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
                if diff {
                    let diffs = reconciler
                        .diff(&instance, &options)
                        .await
                        .map_err(|e| error(&e))?;
                    return serde_json::to_string(&diffs)
                        .map_err(|e| PyValueError::new_err(e.to_string()));
                }
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

/// The first non-empty document of an instance's YAML or JSON text.
fn instance_object(instance: &str) -> PyResult<serde_json::Value> {
    graph::parse_documents(instance, "<instance>")
        .map_err(|e| ReconcileException::new_err(e.to_string()))?
        .into_iter()
        .map(|(_, d)| d)
        .find(|d| !d.is_null())
        .ok_or_else(|| ReconcileException::new_err("the instance is empty"))
}

/// Starts a controller for every instance of ``graph`` on a thread of its own: it installs the
/// instance CRD, then reconciles instances (in ``namespace``, or all) until stopped. The
/// task's ``stop()`` returns ``"null"``.
#[pyfunction]
#[pyo3(signature = (graph, *, kubeconfig = None, context = None, namespace = None, workers = 4, resync = 300.0, timeout = 300.0, force_conflicts = false, prune = true, metrics_addr = None, qps = kubezen::cluster::DEFAULT_QPS, burst = kubezen::cluster::DEFAULT_BURST))]
#[allow(
    clippy::too_many_arguments,
    clippy::fn_params_excessive_bools,
    clippy::needless_pass_by_value
)] // Python's keyword arguments
pub fn reconcile_controller_start(
    py: Python<'_>,
    graph: &PyGraph,
    kubeconfig: Option<PathBuf>,
    context: Option<String>,
    namespace: Option<String>,
    workers: usize,
    resync: f64,
    timeout: f64,
    force_conflicts: bool,
    prune: bool,
    metrics_addr: Option<String>,
    qps: f64,
    burst: u32,
) -> PyResult<crate::task::PyTask> {
    let plan = Arc::new(Plan::new(graph.graph()).map_err(|e| error(&e))?);
    let options = ControllerOptions {
        run: Options {
            workers: workers.max(1),
            timeout: crate::seconds("timeout", timeout)?,
            force_conflicts,
            prune,
        },
        workers: workers.max(1),
        resync: crate::seconds("resync", resync)?,
        metrics_addr: crate::socket_address("metrics_addr", metrics_addr)?,
        namespace: namespace.clone(),
        election: None,
    };
    let cluster_options = crate::cluster_options(kubeconfig, context, namespace, qps, burst);
    crate::task::PyTask::spawn(
        py,
        cluster_options,
        ReconcileException::new_err,
        move |cluster, stop, _state, started| async move {
            started.signal();
            let summary = run_controller(cluster, plan, &options, &stop)
                .await
                .map_err(|e| error(&e))?;
            Ok(serde_json::to_string(&summary).unwrap_or_else(|_| "null".to_owned()))
        },
    )
}
