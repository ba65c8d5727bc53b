//! `kubezen.tune`: right-size workloads from Python.

use std::path::PathBuf;

use crate::seconds;
use kubezen::cluster::ClusterOptions;
use kubezen::tune::{self, Inventory, Options, TuneError, Usage, live, prometheus, snapshot};
use pyo3::{exceptions::PyValueError, prelude::*};

/// The Python exceptions, under the names Python shows.
pub mod errors {
    pyo3::create_exception!(
        kubezen,
        TuneError,
        crate::ZenError,
        "Tuning could not run: bad options, an unreadable snapshot or manifest, or a cluster or Prometheus that refused."
    );
}
use errors::TuneError as TuneException;

fn error(error: &TuneError) -> PyErr {
    TuneException::new_err(error.to_string())
}

/// Analyses manifests, a snapshot, or a live cluster (metrics.k8s.io sampled, or Prometheus
/// history); returns the report as JSON text. The GIL is released throughout.
#[pyfunction]
#[pyo3(signature = (*, manifests = None, snapshot = None, workloads = Vec::new(), kubeconfig = None, context = None, namespace = None, all_namespaces = false, selector = None, prometheus = None, history = 1_209_600.0, step = 300.0, sample_for = 600.0, every = 15.0, cpu_percentile = 95.0, cpu_limit = "none", memory_buffer = 15.0, oom_buffer = 25.0, min_samples = 100, profile = None, patch = None, apply = false, dry_run = false, force_conflicts = false))]
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
    patch: Option<PathBuf>,
    apply: bool,
    dry_run: bool,
    force_conflicts: bool,
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
    let usage_source = usage_source(prometheus, history, step, sample_for, every)?;
    let options_of_cluster = ClusterOptions {
        kubeconfig,
        context,
        namespace,
        ..ClusterOptions::default()
    };
    crate::interruptible(py, move |cancel| {
        let (inventory, usage, source) = if let Some(paths) = manifests {
            let namespace = options_of_cluster.namespace.as_deref().unwrap_or("default");
            let mut inventory =
                Inventory::from_manifests(&paths, namespace).map_err(|e| error(&e))?;
            inventory.select(&workloads).map_err(|e| error(&e))?;
            (inventory, None, "manifests".to_owned())
        } else if let Some(dir) = snapshot {
            let mut read =
                snapshot::read(&dir, &|| cancel.is_cancelled()).map_err(|e| error(&e))?;
            read.inventory.select(&workloads).map_err(|e| error(&e))?;
            let source = format!(
                "snapshot {} ({}, {} samples)",
                dir.display(),
                read.meta.source,
                read.samples
            );
            (read.inventory, Some(read.usage), source)
        } else {
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
                    // Each path narrows its inventory to `workloads` where it is built: only
                    // those are sampled.
                    inventory.select(&workloads).map_err(|e| error(&e))?;
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
                    Ok((inventory, Some(usage), source))
                },
            )?
        };
        let report = tune::analyse(&inventory, usage.as_ref(), &options, &source);
        let written = match &patch {
            Some(dir) => Some(report.write_patches(dir).map_err(|e| error(&e))?),
            None => None,
        };
        let applied = if apply {
            let patches = report.patches();
            Some(crate::with_cluster(
                &options_of_cluster,
                TuneException::new_err,
                |cluster| async move {
                    Ok(tune::apply::apply(&cluster, &patches, dry_run, force_conflicts).await)
                },
            )?)
        } else {
            None
        };
        let mut json =
            serde_json::to_value(&report).map_err(|e| PyValueError::new_err(e.to_string()))?;
        json["written"] = serde_json::json!(written);
        json["applied"] = serde_json::json!(applied);
        Ok(json.to_string())
    })
}

/// Where live usage comes from: Prometheus at `prometheus` over `history`, else
/// metrics.k8s.io sampled for `sample_for` every `every` (seconds, all).
fn usage_source(
    prometheus: Option<String>,
    history: f64,
    step: f64,
    sample_for: f64,
    every: f64,
) -> PyResult<live::UsageSource> {
    Ok(match prometheus {
        Some(url) => live::UsageSource::Prometheus(prometheus::Source {
            url,
            history: seconds("history", history)?,
            step: seconds("step", step)?,
            end: None,
        }),
        None => live::UsageSource::Metrics(live::Sampling {
            duration: seconds("sample_for", sample_for)?,
            every: seconds("every", every)?,
        }),
    })
}

/// Records the workloads in scope and their usage (metrics.k8s.io sampled, or Prometheus
/// history) into the snapshot directory `dir`, as `kubectl zen tune snapshot` does; returns
/// what was recorded as JSON text. Ctrl-C stops sampling and keeps what was recorded.
#[pyfunction]
#[pyo3(signature = (dir, *, kubeconfig = None, context = None, namespace = None, all_namespaces = false, selector = None, prometheus = None, history = 1_209_600.0, step = 300.0, sample_for = 600.0, every = 15.0))]
#[allow(clippy::too_many_arguments, clippy::needless_pass_by_value)] // Python's keyword arguments
pub fn tune_snapshot(
    py: Python<'_>,
    dir: PathBuf,
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
) -> PyResult<String> {
    let usage_source = usage_source(prometheus, history, step, sample_for, every)?;
    let options = ClusterOptions {
        kubeconfig,
        context,
        namespace,
        ..ClusterOptions::default()
    };
    crate::interruptible(py, move |cancel| {
        crate::with_cluster(&options, TuneException::new_err, |cluster| async move {
            let scope = live::Scope {
                namespace: (!all_namespaces).then(|| cluster.namespace().to_owned()),
                selector,
            };
            let recorded =
                live::record(&cluster, &scope, &usage_source, &dir, &cancel, &mut |_| {})
                    .await
                    .map_err(|e| error(&e))?;
            serde_json::to_string(&recorded).map_err(|e| PyValueError::new_err(e.to_string()))
        })
    })
}

/// Advice for a controller's client, workers and caches (`kubectl zen tune controller`):
/// from `objects` (with `largest_namespace` and `object_bytes`) when given, else from the
/// objects of `kinds` counted in the cluster. JSON text.
#[pyfunction]
#[pyo3(signature = (*, kinds = None, objects = None, largest_namespace = None, object_bytes = None, cores = 2, kubeconfig = None, context = None, namespace = None, all_namespaces = false))]
#[allow(clippy::too_many_arguments, clippy::needless_pass_by_value)] // Python's keyword arguments
pub fn tune_controller(
    py: Python<'_>,
    kinds: Option<Vec<String>>,
    objects: Option<u64>,
    largest_namespace: Option<u64>,
    object_bytes: Option<u64>,
    cores: u32,
    kubeconfig: Option<PathBuf>,
    context: Option<String>,
    namespace: Option<String>,
    all_namespaces: bool,
) -> PyResult<String> {
    let load = if let Some(objects) = objects {
        tune::ControllerLoad {
            objects,
            largest_namespace: largest_namespace.unwrap_or(objects),
            mean_object_bytes: object_bytes.unwrap_or(0),
            cores,
        }
    } else {
        if largest_namespace.is_some() || object_bytes.is_some() {
            return Err(PyValueError::new_err(
                "largest_namespace and object_bytes go with objects",
            ));
        }
        let kinds = kinds.unwrap_or_else(|| {
            [
                "pods",
                "services",
                "endpoints",
                "configmaps",
                "deployments",
                "replicasets",
            ]
            .map(str::to_owned)
            .to_vec()
        });
        let options = ClusterOptions {
            kubeconfig,
            context,
            namespace,
            ..ClusterOptions::default()
        };
        crate::interruptible(py, move |_| {
            crate::with_cluster(&options, TuneException::new_err, |cluster| async move {
                let namespace = (!all_namespaces).then(|| cluster.namespace().to_owned());
                live::count_objects(&cluster, namespace.as_deref(), &kinds, cores)
                    .await
                    .map_err(|e| error(&e))
            })
        })?
    };
    serde_json::to_string(&tune::presets::controller(load))
        .map_err(|e| PyValueError::new_err(e.to_string()))
}

/// Sizing for an API gateway at `rps` requests a second with `concurrency` in flight, from
/// the netweave O2 gateway's guide (`kubectl zen tune gateway`). JSON text.
#[pyfunction]
#[pyo3(signature = (rps, concurrency = 100))]
pub fn tune_gateway(rps: u64, concurrency: u64) -> PyResult<String> {
    serde_json::to_string(&tune::presets::gateway(rps, concurrency))
        .map_err(|e| PyValueError::new_err(e.to_string()))
}
