//! `kubezen.bench`: the benchmarks from Python. Each returns its report as JSON text (the
//! document `kubectl zen bench ... -o json` writes); the Python package wraps it.

use std::path::PathBuf;

use crate::seconds;
use kubezen::bench::{
    self, BenchError, Report, Stop,
    api::{self, ApiOptions, Verb},
    cache::CacheBenchOptions,
    cel::CelOptions,
    graph::GraphOptions,
    http::{HttpOptions, Targets, Tls},
    reconcile::ReconcileBenchOptions,
};
use kubezen::cluster::{ClusterOptions, RetryPolicy};
use pyo3::{exceptions::PyValueError, prelude::*};

/// The Python exceptions, under the names Python shows.
pub mod errors {
    pyo3::create_exception!(
        kubezen.bench,
        BenchError,
        crate::ZenError,
        "A benchmark could not run: bad options, an unreachable target, or a cluster that refused the set-up."
    );
}
use errors::BenchError as BenchException;

fn error(error: &BenchError) -> PyErr {
    BenchException::new_err(error.to_string())
}

fn stop(duration: f64, count: Option<u64>) -> PyResult<Stop> {
    Ok(match count {
        Some(count) => Stop::Count(count),
        None => Stop::Duration(seconds("duration", duration)?),
    })
}

fn json(report: &Report) -> PyResult<String> {
    serde_json::to_string(report).map_err(|e| PyValueError::new_err(e.to_string()))
}

/// Connects as the options say and runs `work` with a cancellation token that Ctrl-C
/// cancels; the GIL is released.
fn in_cluster<F, Fut>(py: Python<'_>, options: ClusterOptions, work: F) -> PyResult<String>
where
    F: FnOnce(kubezen::cluster::Cluster, tokio_util::sync::CancellationToken) -> Fut
        + Send
        + 'static,
    Fut: Future<Output = Result<Report, BenchError>>,
{
    crate::interruptible(py, move |cancel| {
        crate::with_cluster(&options, BenchException::new_err, |cluster| async move {
            let report = work(cluster, cancel).await.map_err(|e| error(&e))?;
            json(&report)
        })
    })
}

fn cluster_options(
    kubeconfig: Option<PathBuf>,
    context: Option<String>,
    qps: f64,
    burst: u32,
    attempts: u32,
) -> ClusterOptions {
    ClusterOptions {
        kubeconfig,
        context,
        qps,
        burst,
        retry: RetryPolicy {
            attempts: attempts.max(1),
            ..RetryPolicy::default()
        },
        ..ClusterOptions::default()
    }
}

/// Runs `bench api`; returns the report as JSON text.
#[pyfunction]
#[pyo3(signature = (*, kubeconfig = None, context = None, workers = 4, duration = 30.0, count = None, resources = 100, ops = None, mix = None, kind = "configmap", object_size = 1024, qps = 0.0, burst = 100, attempts = 1, cleanup_timeout = 120.0))]
#[allow(clippy::too_many_arguments, clippy::needless_pass_by_value)] // Python's keyword arguments
pub fn bench_api(
    py: Python<'_>,
    kubeconfig: Option<PathBuf>,
    context: Option<String>,
    workers: usize,
    duration: f64,
    count: Option<u64>,
    resources: usize,
    ops: Option<Vec<String>>,
    mix: Option<Vec<(String, u32)>>,
    kind: &str,
    object_size: usize,
    qps: f64,
    burst: u32,
    attempts: u32,
    cleanup_timeout: f64,
) -> PyResult<String> {
    let ops: Option<Vec<Verb>> = ops
        .map(|ops| ops.iter().map(|op| op.parse()).collect::<Result<_, _>>())
        .transpose()
        .map_err(BenchException::new_err)?;
    let mix: Option<Vec<(Verb, u32)>> = mix
        .map(|mix| {
            mix.iter()
                .map(|(verb, weight)| verb.parse().map(|verb| (verb, *weight)))
                .collect::<Result<_, String>>()
        })
        .transpose()
        .map_err(BenchException::new_err)?;
    let (mix, watch) = api::operations(ops.as_deref(), mix.as_deref()).map_err(|e| error(&e))?;
    let options = ApiOptions {
        workers,
        stop: stop(duration, count)?,
        resources,
        mix,
        watch,
        kind: kind.to_owned(),
        object_size,
        cleanup_timeout: seconds("cleanup_timeout", cleanup_timeout)?,
    };
    options.validate().map_err(|e| error(&e))?;
    let cluster = cluster_options(kubeconfig, context, qps, burst, attempts);
    in_cluster(py, cluster, move |cluster, cancel| async move {
        api::run(&cluster, &options, &(), &cancel)
            .await
            .map(Report::Api)
    })
}

/// Deletes what earlier `bench` runs left; returns the namespaces as JSON text.
#[pyfunction]
#[pyo3(signature = (*, kubeconfig = None, context = None, run = None, dry_run = false, older_than = 0.0, timeout = 120.0))]
#[allow(clippy::needless_pass_by_value)] // Python's keyword arguments
pub fn bench_cleanup(
    py: Python<'_>,
    kubeconfig: Option<PathBuf>,
    context: Option<String>,
    run: Option<String>,
    dry_run: bool,
    older_than: f64,
    timeout: f64,
) -> PyResult<String> {
    let timeout = seconds("timeout", timeout)?;
    let older_than = seconds("older_than", older_than)?;
    if let Some(run) = &run {
        api::check_run_id(run).map_err(|e| error(&e))?;
    }
    let options = cluster_options(kubeconfig, context, 0.0, 100, 3);
    crate::interruptible(py, move |_| {
        crate::with_cluster(&options, BenchException::new_err, |cluster| async move {
            let leftovers = api::cleanup(&cluster, run.as_deref(), dry_run, older_than, timeout)
                .await
                .map_err(|e| error(&e))?;
            serde_json::to_string(&leftovers).map_err(|e| PyValueError::new_err(e.to_string()))
        })
    })
}

/// Runs `bench http`; returns the report as JSON text.
#[pyfunction]
#[pyo3(signature = (url, *, method = "GET", headers = Vec::new(), body = None, rate = None, concurrency = None, duration = 10.0, count = None, timeout = 30.0, insecure = false, cacert = None, target_p95 = None, target_p99 = None, min_success = None))]
#[allow(clippy::too_many_arguments, clippy::needless_pass_by_value)] // Python's keyword arguments
pub fn bench_http(
    py: Python<'_>,
    url: String,
    method: &str,
    headers: Vec<(String, String)>,
    body: Option<Vec<u8>>,
    rate: Option<f64>,
    concurrency: Option<usize>,
    duration: f64,
    count: Option<u64>,
    timeout: f64,
    insecure: bool,
    cacert: Option<PathBuf>,
    target_p95: Option<f64>,
    target_p99: Option<f64>,
    min_success: Option<f64>,
) -> PyResult<String> {
    let options = HttpOptions {
        url,
        method: method.to_owned(),
        headers,
        body,
        concurrency: concurrency.unwrap_or(if rate.is_some() { 1000 } else { 10 }),
        rate,
        stop: stop(duration, count)?,
        timeout: seconds("timeout", timeout)?,
        tls: Tls {
            insecure,
            ca_file: cacert,
        },
        targets: Targets {
            p95_ms: target_p95.map(|s| s * 1000.0),
            p99_ms: target_p99.map(|s| s * 1000.0),
            min_success_percent: min_success,
        },
    };
    crate::interruptible(py, move |cancel| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| BenchException::new_err(e.to_string()))?;
        let report = runtime
            .block_on(bench::http::run(&options, &(), &cancel))
            .map_err(|e| error(&e))?;
        json(&Report::Http(report))
    })
}

/// Runs `bench cel`; returns the report as JSON text.
#[pyfunction]
#[pyo3(signature = (*, budget = 0.1, filter = None))]
pub fn bench_cel(py: Python<'_>, budget: f64, filter: Option<String>) -> PyResult<String> {
    let options = CelOptions {
        budget: seconds("budget", budget)?,
        filter,
    };
    py.detach(|| bench::cel::run(&options))
        .map_err(|e| error(&e))
        .and_then(|report| json(&Report::Cel(report)))
}

/// Runs `bench graph`; returns the report as JSON text.
#[pyfunction]
#[pyo3(signature = (*, sizes = vec![10, 30, 100, 1000], budget = 0.3))]
pub fn bench_graph(py: Python<'_>, sizes: Vec<usize>, budget: f64) -> PyResult<String> {
    let options = GraphOptions {
        sizes,
        budget: seconds("budget", budget)?,
    };
    py.detach(|| bench::graph::run(&options))
        .map_err(|e| error(&e))
        .and_then(|report| json(&Report::Graph(report)))
}

/// Runs `bench cache`; returns the report as JSON text.
#[pyfunction]
#[pyo3(signature = (*, kubeconfig = None, context = None, objects = 2000, capacities = vec![100, 500, 1000, 2000], ttls = vec![1.0, 30.0], duration = 2.0, skew = 1.0))]
#[allow(clippy::too_many_arguments, clippy::needless_pass_by_value)] // Python's keyword arguments
pub fn bench_cache(
    py: Python<'_>,
    kubeconfig: Option<PathBuf>,
    context: Option<String>,
    objects: usize,
    capacities: Vec<u64>,
    ttls: Vec<f64>,
    duration: f64,
    skew: f64,
) -> PyResult<String> {
    let options = CacheBenchOptions {
        objects,
        capacities,
        ttls: ttls
            .iter()
            .map(|ttl| seconds("ttls", *ttl))
            .collect::<PyResult<_>>()?,
        duration: seconds("duration", duration)?,
        skew,
    };
    let cluster = cluster_options(kubeconfig, context, 0.0, 100, 3);
    in_cluster(py, cluster, move |cluster, cancel| async move {
        bench::cache::run(&cluster, &options, &(), &cancel)
            .await
            .map(Report::Cache)
    })
}

/// Runs `bench reconcile`; returns the report as JSON text.
#[pyfunction]
#[pyo3(signature = (*, kubeconfig = None, context = None, resources = 100, workers = 4, runs = 3))]
#[allow(clippy::needless_pass_by_value)] // Python's keyword arguments
pub fn bench_reconcile(
    py: Python<'_>,
    kubeconfig: Option<PathBuf>,
    context: Option<String>,
    resources: usize,
    workers: usize,
    runs: usize,
) -> PyResult<String> {
    let options = ReconcileBenchOptions {
        resources,
        workers,
        runs,
    };
    let cluster = cluster_options(kubeconfig, context, 0.0, 100, 3);
    in_cluster(py, cluster, move |cluster, cancel| async move {
        bench::reconcile::run(&cluster, &options, &(), &cancel)
            .await
            .map(Report::Reconcile)
    })
}

/// Reads a report written by `-o json` (or `BenchResult.save`); returns it as JSON text,
/// checked.
#[pyfunction]
pub fn bench_load(text: &str) -> PyResult<String> {
    let report = Report::from_json(text).map_err(|e| error(&e))?;
    json(&report)
}

/// Compares a report (JSON text) with a baseline (JSON text) as `--baseline` does; returns
/// the report with its changes, as JSON text.
#[pyfunction]
pub fn bench_compare(report: &str, baseline: &str, threshold: f64) -> PyResult<String> {
    let mut report = Report::from_json(report).map_err(|e| error(&e))?;
    let baseline = Report::from_json(baseline).map_err(|e| error(&e))?;
    report
        .compare_with(&baseline, threshold)
        .map_err(|e| error(&e))?;
    json(&report)
}
