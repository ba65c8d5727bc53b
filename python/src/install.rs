//! `kubezen.install`: the manifests that run a controller in the cluster, rendered, applied or
//! removed from Python. Objects and changes cross as JSON text; the Python package wraps them.

use std::path::PathBuf;

use kubezen::cluster::ClusterOptions;
use kubezen::install::{self, Component, InstallError, InstallOptions};
use pyo3::{exceptions::PyValueError, prelude::*};

/// The Python exceptions, under the names Python shows.
pub mod errors {
    pyo3::create_exception!(
        kubezen.install,
        InstallError,
        crate::ZenError,
        "An install could not be rendered, applied or removed: a graph with errors, an unreachable cluster or a refused request."
    );
}
use errors::InstallError as InstallException;

/// Bad options are a `ValueError`, an unreadable graph a `GraphError`, the rest `InstallError`.
fn error(error: InstallError) -> PyErr {
    match error {
        InstallError::Options(message) => PyValueError::new_err(message),
        InstallError::Load(error) => crate::graph::load_error(&error),
        other => InstallException::new_err(other.to_string()),
    }
}

fn component(controller: &str, rgd: Option<PathBuf>, crds: &[PathBuf]) -> PyResult<Component> {
    match (controller, rgd) {
        ("lead", None) => Ok(Component::Lead),
        ("lead", Some(_)) => Err(PyValueError::new_err(
            "rgd is for the reconcile-controller, not lead",
        )),
        ("reconcile-controller", None) => Err(PyValueError::new_err(
            "the reconcile-controller needs the graph it reconciles: rgd=PATH",
        )),
        ("reconcile-controller", Some(path)) => {
            let catalog = crate::graph::catalog(Some(crds))?;
            Component::reconcile_file(&path, &catalog).map_err(error)
        }
        (other, _) => Err(PyValueError::new_err(format!(
            "controller is \"lead\" or \"reconcile-controller\", not {other:?}"
        ))),
    }
}

fn options(namespace: String, replicas: i64, image: String) -> PyResult<InstallOptions> {
    let replicas = u16::try_from(replicas).map_err(|_| {
        PyValueError::new_err(format!(
            "replicas must be 1 to {}, not {replicas}",
            install::MAX_REPLICAS
        ))
    })?;
    let options = InstallOptions {
        namespace,
        replicas,
        image,
    };
    options.checked().map_err(error)?;
    Ok(options)
}

/// Every object that runs `controller` with these options, as a JSON array; with `as_graph`
/// (lead only) zen-lead's install as one `ResourceGraphDefinition` instead.
#[pyfunction]
#[pyo3(signature = (controller, *, rgd = None, crds = Vec::new(), namespace = install::DEFAULT_NAMESPACE.to_owned(), replicas = 2, image = install::DEFAULT_IMAGE.to_owned(), as_graph = false))]
#[allow(clippy::needless_pass_by_value, clippy::too_many_arguments)] // Python's keyword arguments
pub fn install_manifests(
    py: Python<'_>,
    controller: &str,
    rgd: Option<PathBuf>,
    crds: Vec<PathBuf>,
    namespace: String,
    replicas: i64,
    image: String,
    as_graph: bool,
) -> PyResult<String> {
    let options = options(namespace, replicas, image)?;
    let controller = controller.to_owned();
    py.detach(move || {
        let component = component(&controller, rgd, &crds)?;
        let objects = if as_graph {
            vec![install::graph(&component).map_err(error)?]
        } else {
            install::manifests(&component, &options).map_err(error)?
        };
        serde_json::to_string(&objects).map_err(|e| PyValueError::new_err(e.to_string()))
    })
}

/// Server-side applies the install of `controller` (or with `uninstall` deletes what it made),
/// as `kubectl zen install --apply|--uninstall` does; the changes as a JSON array.
#[pyfunction]
#[pyo3(signature = (controller, *, uninstall = false, dry_run = false, rgd = None, crds = Vec::new(), namespace = install::DEFAULT_NAMESPACE.to_owned(), replicas = 2, image = install::DEFAULT_IMAGE.to_owned(), kubeconfig = None, context = None, instances = "refuse"))]
#[allow(
    clippy::needless_pass_by_value,
    clippy::too_many_arguments,
    clippy::fn_params_excessive_bools
)] // Python's keyword arguments
pub fn install_change(
    py: Python<'_>,
    controller: &str,
    uninstall: bool,
    dry_run: bool,
    rgd: Option<PathBuf>,
    crds: Vec<PathBuf>,
    namespace: String,
    replicas: i64,
    image: String,
    kubeconfig: Option<PathBuf>,
    context: Option<String>,
    instances: &str,
) -> PyResult<String> {
    let options = options(namespace, replicas, image)?;
    let held = match instances {
        "refuse" => install::HeldInstances::Refuse,
        "delete" => install::HeldInstances::Delete,
        "orphan" => install::HeldInstances::Orphan,
        other => {
            return Err(PyValueError::new_err(format!(
                "instances must be 'refuse', 'delete' or 'orphan', not {other:?}"
            )));
        }
    };
    let component = py.detach(|| component(controller, rgd, &crds))?;
    let objects = install::manifests(&component, &options).map_err(error)?;
    let cluster_options = ClusterOptions {
        kubeconfig,
        context,
        ..ClusterOptions::default()
    };
    crate::interruptible(py, move |_| {
        crate::with_cluster(
            &cluster_options,
            InstallException::new_err,
            |cluster| async move {
                let changes = if uninstall {
                    install::uninstall(&cluster, &component, &options.namespace, held, dry_run)
                        .await
                } else {
                    install::apply(&cluster, &objects, dry_run).await
                }
                .map_err(error)?;
                serde_json::to_string(&changes).map_err(|e| PyValueError::new_err(e.to_string()))
            },
        )
    })
}

/// `objects` (JSON text of an array of objects) as one YAML stream, each document opened by
/// `---`: what `kubectl zen install` prints.
#[pyfunction]
pub fn install_yaml(objects: &str) -> PyResult<String> {
    let objects: Vec<serde_json::Value> =
        serde_json::from_str(objects).map_err(|e| PyValueError::new_err(e.to_string()))?;
    install::to_yaml(&objects).map_err(|e| PyValueError::new_err(e.to_string()))
}
