//! `kubezen.sim`: zen-sim, the Kubernetes-API-compatible server, from Python.

use std::sync::Mutex;

use kubezen::sim::{BackgroundSim, Fault, SimOptions, UsageModel};
use pyo3::{
    exceptions::{PyRuntimeError, PyValueError},
    prelude::*,
    types::PyDict,
};

/// A running zen-sim (the native half; `kubezen.sim.Sim` wraps it).
#[pyclass(frozen, module = "kubezen.sim", name = "NativeSim")]
pub struct PySim {
    inner: Mutex<Option<BackgroundSim>>,
    url: String,
    kubeconfig: String,
}

impl PySim {
    fn with<T>(&self, work: impl FnOnce(&BackgroundSim) -> PyResult<T>) -> PyResult<T> {
        let guard = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match guard.as_ref() {
            Some(sim) => work(sim),
            None => Err(PyRuntimeError::new_err("the simulator has been stopped")),
        }
    }
}

#[pymethods]
impl PySim {
    /// Starts a simulator on its own threads.
    #[new]
    #[pyo3(signature = (*, host = "127.0.0.1", port = 0, tls = false, token = None, ready_delay = 0.2, nodes = 3, usage_cpu = 0.4, usage_memory = 0.6, usage_noise = 0.2))]
    #[allow(clippy::too_many_arguments)] // Python's keyword arguments
    fn new(
        py: Python<'_>,
        host: &str,
        port: u16,
        tls: bool,
        token: Option<String>,
        ready_delay: f64,
        nodes: usize,
        usage_cpu: f64,
        usage_memory: f64,
        usage_noise: f64,
    ) -> PyResult<Self> {
        let usage = UsageModel::with_levels(usage_cpu, usage_memory, usage_noise)
            .map_err(PyValueError::new_err)?;
        let host = host
            .parse()
            .map_err(|_| PyValueError::new_err(format!("not an IP address: {host:?}")))?;
        let ready_delay = crate::seconds("ready_delay", ready_delay)?;
        let options = SimOptions {
            usage,
            host,
            port,
            tls,
            token,
            ready_delay,
            nodes,
            ..SimOptions::default()
        };
        let sim = py
            .detach(|| BackgroundSim::start(options))
            .map_err(|error| PyRuntimeError::new_err(error.to_string()))?;
        let url = sim.sim().url().to_owned();
        let kubeconfig = sim.sim().kubeconfig();
        Ok(Self {
            inner: Mutex::new(Some(sim)),
            url,
            kubeconfig,
        })
    }

    /// The server's URL.
    #[getter]
    fn url(&self) -> &str {
        &self.url
    }

    /// The kubeconfig for this simulator, as YAML text.
    fn kubeconfig_yaml(&self) -> &str {
        &self.kubeconfig
    }

    /// Whether it is still serving.
    #[getter]
    fn running(&self) -> bool {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .is_some()
    }

    /// Adds a fault rule given as a dict (the JSON form of `kubezen::sim::Fault`).
    fn inject_fault(&self, rule: &Bound<'_, PyDict>) -> PyResult<()> {
        let json = rule
            .py()
            .import("json")?
            .call_method1("dumps", (rule,))?
            .extract::<String>()?;
        let fault: Fault = serde_json::from_str(&json)
            .map_err(|error| PyValueError::new_err(format!("not a fault rule: {error}")))?;
        self.with(|sim| {
            sim.sim().faults().inject(fault);
            Ok(())
        })
    }

    /// Removes every fault rule.
    fn clear_faults(&self) -> PyResult<()> {
        self.with(|sim| {
            sim.sim().faults().clear();
            Ok(())
        })
    }

    /// Marks a pod ready or not ready, as a readiness probe would.
    fn set_pod_ready(&self, namespace: &str, name: &str, ready: bool) -> PyResult<()> {
        self.with(|sim| {
            sim.sim()
                .set_pod_ready(namespace, name, ready)
                .map_err(PyValueError::new_err)
        })
    }

    /// Plays an API server restart: every connection dropped, new ones refused for
    /// `down_for` seconds, objects kept. Returns once it serves again.
    fn restart(&self, py: Python<'_>, down_for: f64) -> PyResult<()> {
        let down_for = crate::seconds("down_for", down_for)?;
        self.with(|sim| {
            py.detach(|| sim.restart(down_for));
            Ok(())
        })
    }

    /// Objects stored, the current resourceVersion, requests served, uptime.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let stats = self.with(|sim| Ok(sim.sim().stats()))?;
        let dict = PyDict::new(py);
        dict.set_item("objects", stats.objects)?;
        dict.set_item("revision", stats.revision)?;
        dict.set_item("requests", stats.requests)?;
        dict.set_item("uptime_seconds", stats.uptime_seconds)?;
        Ok(dict)
    }

    /// Stops serving; safe to call twice.
    fn stop(&self, py: Python<'_>) {
        let sim = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(sim) = sim {
            py.detach(|| sim.stop());
        }
    }
}
