//! `kubezen.tune`: right-size workloads from Python.

use std::path::PathBuf;
use std::time::Duration;

use kubezen::cluster::ClusterOptions;
use kubezen::tune::{self, Inventory, Options, TuneError, Usage, live, prometheus, snapshot};
use pyo3::{create_exception, exceptions::PyValueError, prelude::*};

create_exception!(
    kubezen.tune,
    TuneException,
    PyValueError,
    "Tuning could not run: bad options, an unreadable snapshot or manifest, or a cluster or Prometheus that refused."
);

fn error(error: &TuneError) -> PyErr {
    TuneException::new_err(error.to_string())
}

fn seconds(name: &str, value: f64) -> PyResult<Duration> {
    Duration::try_from_secs_f64(value).map_err(|_| {
        PyValueError::new_err(format!(
            "{name} must be a non-negative number of seconds, not {value}"
        ))
    })
}

/// Analyses manifests, a snapshot, or a live cluster (metrics.k8s.io sampled, or Prometheus
/// history); returns the report as JSON text. The GIL is released throughout.
#[pyfunction]
#[pyo3(signature = (*, manifests = None, snapshot = None, workloads = Vec::new(), kubeconfig = None, context = None, namespace = None, all_namespaces = false, selector = None, prometheus = None, history = 1_209_600.0, step = 300.0, sample_for = 600.0, every = 15.0, cpu_percentile = 95.0, cpu_limit = "none", memory_buffer = 15.0, oom_buffer = 25.0, min_samples = 100, profile = None))]
#[allow(
    clippy::too_many_arguments,
    clippy::fn_params_excessive_bools,
    clippy::needless_pass_by_value
)] // Python's keyword arguments
pub fn tune_run(
    py: Python<'_>,
    manifests: Option<Vec<PathBuf>>,
    snapshot: Option<PathBuf>,
    workloads: Vec<String>,
    kubeconfig: Option<PathBuf>,
    context: Option<String>,
    namespace: Option<String>,
    all_namespaces: bool,
    selector: Option<String>,
    prometheus: Option<String>,
    history: f64,
    step: f64,
    sample_for: f64,
    every: f64,
    cpu_percentile: f64,
    cpu_limit: &str,
    memory_buffer: f64,
    oom_buffer: f64,
    min_samples: u64,
    profile: Option<String>,
) -> PyResult<String> {
    let options = Options {
        cpu_percentile,
        cpu_limit: cpu_limit.parse().map_err(PyValueError::new_err)?,
        memory_buffer: memory_buffer / 100.0,
        oom_buffer: oom_buffer / 100.0,
        min_samples,
        profile: profile
            .map(|p| p.parse())
            .transpose()
            .map_err(PyValueError::new_err)?,
        ..Options::default()
    };
    options.validate().map_err(PyValueError::new_err)?;
    let usage_source = match &prometheus {
        Some(url) => live::UsageSource::Prometheus(prometheus::Source {
            url: url.clone(),
            history: seconds("history", history)?,
            step: seconds("step", step)?,
            end: None,
        }),
        None => live::UsageSource::Metrics(live::Sampling {
            duration: seconds("sample_for", sample_for)?,
            every: seconds("every", every)?,
        }),
    };
    crate::interruptible(py, move |cancel| {
        let workloads = &workloads;
        // Each path narrows its inventory to `workloads` once, where it is built.
        let finish =
            |inventory: Inventory, usage: Option<Usage>, source: &str| -> PyResult<String> {
                let report = tune::analyse(&inventory, usage.as_ref(), &options, source);
                serde_json::to_string(&report).map_err(|e| PyValueError::new_err(e.to_string()))
            };
        if let Some(paths) = manifests {
            let mut inventory =
                Inventory::from_manifests(&paths, namespace.as_deref().unwrap_or("default"))
                    .map_err(|e| error(&e))?;
            inventory.select(workloads).map_err(|e| error(&e))?;
            return finish(inventory, None, "manifests");
        }
        if let Some(dir) = snapshot {
            let mut read =
                snapshot::read(&dir, &|| cancel.is_cancelled()).map_err(|e| error(&e))?;
            read.inventory.select(workloads).map_err(|e| error(&e))?;
            let source = format!(
                "snapshot {} ({}, {} samples)",
                dir.display(),
                read.meta.source,
                read.samples
            );
            return finish(read.inventory, Some(read.usage), &source);
        }
        let options_of_cluster = ClusterOptions {
            kubeconfig,
            context,
            namespace,
            ..ClusterOptions::default()
        };
        crate::with_cluster(
            &options_of_cluster,
            TuneException::new_err,
            |cluster| async move {
                let scope = live::Scope {
                    namespace: (!all_namespaces).then(|| cluster.namespace().to_owned()),
                    selector,
                };
                let mut inventory = live::inventory(&cluster, &scope)
                    .await
                    .map_err(|e| error(&e))?;
                inventory.select(workloads).map_err(|e| error(&e))?;
                let mut usage = Usage::new();
                let source = live::measure(
                    &cluster,
                    &inventory,
                    &scope,
                    &usage_source,
                    &cancel,
                    &mut usage,
                    &mut |_| {},
                )
                .await
                .map_err(|e| error(&e))?;
                finish(inventory, Some(usage), &source)
            },
        )
    })
}
