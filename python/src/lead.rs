//! `kubezen.lead`: the zen-lead controller's state from Python. `lead_status` returns the rows
//! `kubectl zen lead status -o json` prints, as JSON text; the Python package wraps them.

use std::path::PathBuf;

use kubezen::cluster::ClusterOptions;
use pyo3::{create_exception, exceptions::PyValueError, prelude::*};

create_exception!(
    kubezen.lead,
    LeadException,
    PyValueError,
    "The zen-lead state could not be read: an unreachable cluster or a refused request."
);

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
