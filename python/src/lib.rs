//! `kubezen._core`: the native half of the `kubezen` Python package.
//!
//! Each function here converts Python arguments, calls the core's public API and converts the
//! result back; nothing else. The Python package (`python/kubezen`) re-exports these names and
//! its `_core.pyi` stub types them.

mod bench;
mod cel;
mod forward;
mod graph;
mod install;
mod lead;
mod logging;
mod reconcile;
mod sim;
mod task;
mod tune;

use std::time::Duration;

use pyo3::{exceptions::PyValueError, prelude::*};

pyo3::create_exception!(
    kubezen,
    ZenError,
    pyo3::exceptions::PyException,
    "The base of every error kubezen raises for work that could not be done: each capability's error (CelError, GraphError, ReconcileError, TuneError, BenchError, LeadError, ForwardError, InstallError) derives from it. Arguments of the wrong type or out of range raise TypeError or ValueError instead."
);

/// `value` seconds as a duration; a `ValueError` naming the argument when negative or not finite.
pub(crate) fn seconds(name: &str, value: f64) -> PyResult<Duration> {
    Duration::try_from_secs_f64(value).map_err(|_| {
        PyValueError::new_err(format!(
            "{name} must be a non-negative number of seconds, not {value}"
        ))
    })
}

/// The options of a client for the cluster the Python arguments name, with their rate limit.
pub(crate) fn cluster_options(
    kubeconfig: Option<std::path::PathBuf>,
    context: Option<String>,
    namespace: Option<String>,
    qps: f64,
    burst: u32,
) -> kubezen::cluster::ClusterOptions {
    kubezen::cluster::ClusterOptions {
        kubeconfig,
        context,
        namespace,
        qps,
        burst,
        ..kubezen::cluster::ClusterOptions::default()
    }
}

/// `ADDRESS:PORT` text as a socket address; a `ValueError` naming the argument otherwise.
pub(crate) fn socket_address(
    name: &str,
    text: Option<String>,
) -> PyResult<Option<std::net::SocketAddr>> {
    text.map(|text| {
        text.parse().map_err(|_| {
            PyValueError::new_err(format!(
                "{name} is ADDRESS:PORT, such as 127.0.0.1:8080 (port 0: any free one), not {text:?}"
            ))
        })
    })
    .transpose()
}

/// Runs `work` on a thread of its own with the GIL released, checking for Python signals
/// at least every 50 ms: on Ctrl-C (or any signal handler that raises) the token handed to `work` is
/// cancelled, `work` is waited for (it stops at its next check) and the exception is raised.
pub(crate) fn interruptible<T, F>(py: Python<'_>, work: F) -> PyResult<T>
where
    T: Send + 'static,
    F: FnOnce(tokio_util::sync::CancellationToken) -> PyResult<T> + Send + 'static,
{
    let cancel = tokio_util::sync::CancellationToken::new();
    let token = cancel.clone();
    let worker = std::thread::spawn(move || work(token));
    // Quick work answers in a millisecond or two; long work is looked at every 50 ms.
    let mut pause = std::time::Duration::from_micros(250);
    loop {
        py.detach(|| std::thread::sleep(pause));
        pause = (pause * 2).min(std::time::Duration::from_millis(50));
        if worker.is_finished() {
            return worker.join().unwrap_or_else(|_| {
                Err(pyo3::exceptions::PyRuntimeError::new_err(
                    "the worker thread stopped without an answer",
                ))
            });
        }
        if let Err(raised) = py.check_signals() {
            cancel.cancel();
            let _ = py.detach(|| worker.join());
            return Err(raised);
        }
    }
}

/// Connects to the cluster `options` name on a runtime of its own (two worker threads) and
/// runs `work` with it; a runtime or connection failure becomes `error(message)`. Called with
/// the GIL released.
pub(crate) fn with_cluster<T, F, Fut>(
    options: &kubezen::cluster::ClusterOptions,
    error: fn(String) -> PyErr,
    work: F,
) -> PyResult<T>
where
    F: FnOnce(kubezen::cluster::Cluster) -> Fut,
    Fut: std::future::Future<Output = PyResult<T>>,
{
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| error(e.to_string()))?;
    runtime.block_on(async {
        let cluster = kubezen::cluster::Cluster::connect(options)
            .await
            .map_err(|e| error(e.to_string()))?;
        work(cluster).await
    })
}

/// The native module of kubezen: the kubectl-zen core, driven from Python.
#[pymodule]
mod _core {
    use pyo3::{prelude::*, types::PyDict};

    #[pymodule_export]
    use super::bench::{
        bench_api, bench_cache, bench_cel, bench_cleanup, bench_compare, bench_graph, bench_http,
        bench_load, bench_reconcile,
    };
    #[pymodule_export]
    use super::cel::{PyProgram, PyVariables, cel_cache_stats, cel_compile, cel_eval};
    #[pymodule_export]
    use super::forward::{forward_plan, forward_start};
    #[pymodule_export]
    use super::graph::{PyDiagnostic, PyGraph, graph_load, graph_loads};
    #[pymodule_export]
    use super::install::{install_change, install_manifests, install_yaml};
    #[pymodule_export]
    use super::lead::{lead_start, lead_status};
    #[pymodule_export]
    use super::reconcile::{reconcile_controller_start, reconcile_run};
    #[pymodule_export]
    use super::sim::PySim;
    #[pymodule_export]
    use super::task::PyTask;
    #[pymodule_export]
    use super::tune::{tune_controller, tune_gateway, tune_run, tune_snapshot};

    #[pymodule_init]
    fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
        super::logging::install();
        let py = m.py();
        m.add("ZenError", py.get_type::<super::ZenError>())?;
        m.add(
            "ForwardError",
            py.get_type::<super::forward::errors::ForwardError>(),
        )?;
        m.add("CelError", py.get_type::<super::cel::errors::CelError>())?;
        m.add(
            "CelSyntaxError",
            py.get_type::<super::cel::CelSyntaxError>(),
        )?;
        m.add("CelLimitError", py.get_type::<super::cel::CelLimitError>())?;
        m.add(
            "CelEvaluationError",
            py.get_type::<super::cel::CelEvaluationError>(),
        )?;
        m.add(
            "CelVariablesError",
            py.get_type::<super::cel::CelVariablesError>(),
        )?;
        m.add("GraphError", py.get_type::<super::graph::GraphError>())?;
        m.add(
            "ReconcileError",
            py.get_type::<super::reconcile::errors::ReconcileError>(),
        )?;
        m.add("TuneError", py.get_type::<super::tune::errors::TuneError>())?;
        m.add(
            "BenchError",
            py.get_type::<super::bench::errors::BenchError>(),
        )?;
        m.add("LeadError", py.get_type::<super::lead::errors::LeadError>())?;
        m.add(
            "InstallError",
            py.get_type::<super::install::errors::InstallError>(),
        )?;
        m.add(
            "ForwardConfigError",
            py.get_type::<super::forward::errors::ForwardConfigError>(),
        )?;
        m.add(
            "GraphCycleError",
            py.get_type::<super::graph::GraphCycleError>(),
        )?;
        Ok(())
    }

    /// The version of the kubectl-zen core this module was built from.
    #[pymodule_export]
    #[allow(non_upper_case_globals)] // Python's name for it
    const __version__: &str = kubezen::VersionInfo::current().version;

    /// The version, git commit, target and toolchain this module was built from.
    ///
    /// The same facts as `kubectl zen version -o json`.
    #[pyclass(frozen, eq, hash, module = "kubezen._core", name = "VersionInfo")]
    #[derive(PartialEq, Eq, Hash)]
    struct PyVersionInfo(kubezen::VersionInfo);

    #[pymethods]
    impl PyVersionInfo {
        /// The semantic version shared by the core, the plugin and this package.
        #[getter]
        fn version(&self) -> &'static str {
            self.0.version
        }

        /// The full git commit of the build, or ``"unknown"`` outside a git checkout.
        #[getter]
        fn git_commit(&self) -> &'static str {
            self.0.git_commit
        }

        /// The Rust target triple, such as ``"x86_64-unknown-linux-gnu"``.
        #[getter]
        fn target(&self) -> &'static str {
            self.0.target
        }

        /// The version of the Rust compiler that built the module.
        #[getter]
        fn rustc(&self) -> &'static str {
            self.0.rustc
        }

        /// The cargo profile: ``"debug"`` or ``"release"``.
        #[getter]
        fn profile(&self) -> &'static str {
            self.0.profile
        }

        /// The fields as a plain ``dict``, keyed by attribute name.
        fn to_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
            let info = &self.0;
            let dict = PyDict::new(py);
            dict.set_item("version", info.version)?;
            dict.set_item("git_commit", info.git_commit)?;
            dict.set_item("target", info.target)?;
            dict.set_item("rustc", info.rustc)?;
            dict.set_item("profile", info.profile)?;
            Ok(dict)
        }

        fn __repr__(&self) -> String {
            let info = &self.0;
            format!(
                "VersionInfo(version={:?}, git_commit={:?}, target={:?}, rustc={:?}, profile={:?})",
                info.version, info.git_commit, info.target, info.rustc, info.profile
            )
        }
    }

    /// Seconds in a duration written as the plugin's flags take it: ``"500ms"``, ``"30s"``,
    /// ``"5m"``, ``"2h"``, ``"14d"``, ``"2w"``, or a number of seconds.
    ///
    /// Raises ``ValueError`` for text that is not such a duration.
    #[pyfunction]
    fn parse_duration(text: &str) -> PyResult<f64> {
        kubezen::quantity::parse_duration(text)
            .map(|duration| duration.as_secs_f64())
            .map_err(pyo3::exceptions::PyValueError::new_err)
    }

    /// The build information of the native module.
    ///
    /// >>> import kubezen
    /// >>> kubezen.version_info().version == kubezen.__version__
    /// True
    #[pyfunction]
    fn version_info() -> PyVersionInfo {
        PyVersionInfo(kubezen::VersionInfo::current())
    }
}
