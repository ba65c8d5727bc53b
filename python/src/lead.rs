//! `kubezen.lead`: the zen-lead controller's state from Python. `lead_status` returns the rows
//! `kubectl zen lead status -o json` prints, as JSON text; the Python package wraps them.

use std::path::PathBuf;

use kubezen::cluster::ClusterOptions;
use kubezen::cluster::election::ElectionOptions;
use kubezen::lead::LeadOptions;
use pyo3::{exceptions::PyValueError, prelude::*};

/// The Python exceptions, under the names Python shows.
pub mod errors {
    pyo3::create_exception!(
        kubezen.lead,
        LeadError,
        crate::ZenError,
        "The zen-lead state could not be read: an unreachable cluster or a refused request."
    );
}
use errors::LeadError as LeadException;

/// Every Service opted in to zen-lead (in `namespace`, the context's namespace, or all with
/// `all_namespaces`), its leader and problems, as JSON text.
#[pyfunction]
#[pyo3(signature = (*, kubeconfig = None, context = None, namespace = None, all_namespaces = false))]
#[allow(clippy::needless_pass_by_value)] // Python's keyword arguments
pub fn lead_status(
    py: Python<'_>,
    kubeconfig: Option<PathBuf>,
    context: Option<String>,
    namespace: Option<String>,
    all_namespaces: bool,
) -> PyResult<String> {
    let options = ClusterOptions {
        kubeconfig,
        context,
        namespace: namespace.clone(),
        ..ClusterOptions::default()
    };
    crate::interruptible(py, move |_| {
        crate::with_cluster(&options, LeadException::new_err, |cluster| async move {
            let scope = (!all_namespaces).then(|| cluster.namespace().to_owned());
            let rows = kubezen::lead::status(&cluster, scope.as_deref())
                .await
                .map_err(|e| LeadException::new_err(e.to_string()))?;
            serde_json::to_string(&rows).map_err(|e| PyValueError::new_err(e.to_string()))
        })
    })
}

/// Starts the zen-lead controller on a thread of its own: Services in `namespace` (None: all
/// namespaces, as zen-lead), zen-lead's defaults otherwise. The task's `stop()` returns the run
/// summary as JSON text.
#[pyfunction]
#[pyo3(signature = (*, kubeconfig = None, context = None, namespace = None, workers = 10, resync = 600.0, metrics_addr = None, qps = kubezen::cluster::DEFAULT_QPS, burst = kubezen::cluster::DEFAULT_BURST, leader_election = false, lease_namespace = None, lease_name = "zen-lead-controller-leader-election".to_owned(), identity = None))]
#[allow(clippy::too_many_arguments, clippy::needless_pass_by_value)] // Python's keyword arguments
pub fn lead_start(
    py: Python<'_>,
    kubeconfig: Option<PathBuf>,
    context: Option<String>,
    namespace: Option<String>,
    workers: u16,
    resync: f64,
    metrics_addr: Option<String>,
    qps: f64,
    burst: u32,
    leader_election: bool,
    lease_namespace: Option<String>,
    lease_name: String,
    identity: Option<String>,
) -> PyResult<crate::task::PyTask> {
    if workers == 0 {
        return Err(PyValueError::new_err("workers must be at least 1"));
    }
    let metrics_addr = crate::socket_address("metrics_addr", metrics_addr)?;
    let options = LeadOptions {
        namespace: namespace.clone(),
        workers,
        resync: crate::seconds("resync", resync)?,
        metrics_addr,
        ..LeadOptions::default()
    };
    let cluster_options = crate::cluster_options(kubeconfig, context, namespace, qps, burst);
    let identity = identity.unwrap_or_else(|| format!("kubezen-python-{}", std::process::id()));
    crate::task::PyTask::spawn(
        py,
        cluster_options,
        LeadException::new_err,
        move |cluster, stop, _state, started| async move {
            let mut options = options;
            if leader_election {
                let lease_namespace = lease_namespace.unwrap_or_else(|| cluster.namespace().into());
                options.election = Some(ElectionOptions::new(
                    &lease_namespace,
                    &lease_name,
                    &identity,
                ));
            }
            started.signal();
            let summary = kubezen::lead::run(cluster, &options, &stop)
                .await
                .map_err(|e| LeadException::new_err(e.to_string()))?;
            serde_json::to_string(&summary).map_err(|e| PyValueError::new_err(e.to_string()))
        },
    )
}
