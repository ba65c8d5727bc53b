//! `bench cache`: the object cache ([`crate::cluster::ObjectCache`], zen-lead's LRU cache
//! with a TTL per kind) against capacity and TTL. `objects` config maps are created in a
//! fresh benchmark namespace; then for each capacity and TTL a new cache serves lookups for
//! `duration`, keys drawn with a Zipf skew (a few hot objects, a long tail, as controllers
//! read); hits, misses, evictions and expirations are counted and hit and miss latencies
//! recorded. The namespace is deleted at the end.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ConfigMap;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::{
    BenchError, Environment, FORMAT, Latency, Recorder, Verdict, Watcher, api, latency::format_ms,
};
use crate::cluster::{CacheOptions, Cluster, ObjectCache};
use crate::table::{Column, Table, Tabular};

/// How to run `bench cache`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CacheBenchOptions {
    /// Distinct objects looked up.
    pub objects: usize,
    /// Per-namespace capacities to try.
    pub capacities: Vec<u64>,
    /// TTLs to try.
    #[serde(serialize_with = "seconds_list")]
    pub ttls: Vec<Duration>,
    /// How long each capacity and TTL is measured.
    #[serde(with = "super::seconds")]
    pub duration: Duration,
    /// The Zipf exponent of the key popularity (0: uniform; 1: classic Zipf).
    pub skew: f64,
}

#[allow(clippy::ptr_arg)] // serde's signature
fn seconds_list<S: serde::Serializer>(ttls: &Vec<Duration>, s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(ttls.iter().map(Duration::as_secs_f64))
}

impl Default for CacheBenchOptions {
    fn default() -> Self {
        Self {
            objects: 2000,
            capacities: vec![100, 500, 1000, 2000],
            ttls: vec![Duration::from_secs(1), Duration::from_secs(30)],
            duration: Duration::from_secs(2),
            skew: 1.0,
        }
    }
}

/// One capacity and TTL.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CacheRow {
    /// Objects kept.
    pub capacity: u64,
    /// Their time to live, seconds.
    pub ttl_seconds: f64,
    /// Lookups made.
    pub lookups: u64,
    /// Hits / lookups, 0 to 1.
    pub hit_ratio: f64,
    /// Latency of hits.
    pub hit_latency: Latency,
    /// Latency of misses (an API GET).
    pub miss_latency: Latency,
    /// Objects dropped for capacity.
    pub evictions: u64,
    /// Objects dropped for age.
    pub expirations: u64,
    /// Lookups that failed at the API server, by status.
    pub errors: BTreeMap<String, u64>,
}

/// The report of `bench cache`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CacheReport {
    /// [`FORMAT`].
    pub format: String,
    /// Where, when and how.
    pub environment: Environment,
    /// Whether the run was interrupted.
    pub interrupted: bool,
    /// The namespace the objects lived in.
    pub namespace: String,
    /// Whether it was seen gone at the end.
    pub cleaned_up: bool,
    /// One row per capacity and TTL.
    pub rows: Vec<CacheRow>,
    /// Judgements.
    pub verdicts: Vec<Verdict>,
}

impl Tabular for CacheReport {
    fn to_table(&self) -> Table {
        let mut table = Table::new(vec![
            Column::new("CAPACITY").right(),
            Column::new("TTL").right(),
            Column::new("LOOKUPS").right(),
            Column::new("HIT RATIO").right(),
            Column::new("HIT P50").right(),
            Column::new("HIT P99").right(),
            Column::new("MISS P50").right(),
            Column::new("MISS P99").right(),
            Column::new("EVICTIONS").right(),
            Column::new("EXPIRATIONS").right(),
        ]);
        for row in &self.rows {
            table.push_row(vec![
                row.capacity.to_string().into(),
                format!("{}s", row.ttl_seconds).into(),
                row.lookups.to_string().into(),
                format!("{:.1}%", row.hit_ratio * 100.0).into(),
                format_ms(row.hit_latency.p50_ms).into(),
                format_ms(row.hit_latency.p99_ms).into(),
                format_ms(row.miss_latency.p50_ms).into(),
                format_ms(row.miss_latency.p99_ms).into(),
                row.evictions.to_string().into(),
                row.expirations.to_string().into(),
            ]);
        }
        table
    }
}

/// Zipf-distributed keys `0..n`: `P(k) ∝ 1 / (k + 1)^skew`, drawn by inverting the CDF.
struct Zipf(Vec<f64>);

impl Zipf {
    #[allow(clippy::cast_precision_loss)] // ranks
    fn new(n: usize, skew: f64) -> Self {
        let mut total = 0.0;
        let mut cdf: Vec<f64> = (0..n)
            .map(|k| {
                total += 1.0 / ((k + 1) as f64).powf(skew);
                total
            })
            .collect();
        for value in &mut cdf {
            *value /= total;
        }
        Self(cdf)
    }

    fn draw(&self, rng: &mut fastrand::Rng) -> usize {
        let unit = rng.f64();
        self.0
            .partition_point(|&p| p < unit)
            .min(self.0.len().saturating_sub(1))
    }
}

/// Runs `bench cache` against `cluster`. Cancelling stops the lookups; cleanup still runs.
///
/// # Errors
/// Bad options, or a namespace or set-up the server refuses (the namespace is deleted before
/// the error returns).
#[allow(clippy::cast_precision_loss)] // counts
pub async fn run(
    cluster: &Cluster,
    options: &CacheBenchOptions,
    watcher: &dyn Watcher,
    cancel: &CancellationToken,
) -> Result<CacheReport, BenchError> {
    if !(1..=100_000).contains(&options.objects) {
        return Err(BenchError::Options(format!(
            "--objects must be 1 to 100000, not {}",
            options.objects
        )));
    }
    if options.capacities.is_empty() || options.capacities.contains(&0) {
        return Err(BenchError::Options(
            "--capacities needs sizes above 0".into(),
        ));
    }
    if options.ttls.is_empty() || options.ttls.iter().any(Duration::is_zero) {
        return Err(BenchError::Options("--ttls needs durations above 0".into()));
    }
    if !(options.skew.is_finite() && (0.0..=5.0).contains(&options.skew)) {
        return Err(BenchError::Options(format!(
            "--skew must be 0 to 5, not {}",
            options.skew
        )));
    }
    let mut environment = Environment::start(options);
    environment.server(cluster).await;
    let run = super::run_id();
    let run = run.as_str();
    let done = api::in_namespace(cluster, run, api::CLEANUP_TIMEOUT, watcher, |namespace| async move {
        measure(cluster, options, &namespace, run, watcher, cancel).await
    })
    .await?;
    environment.end();
    let rows = done.value;
    let mut verdicts = Vec::new();
    let hits: Vec<f64> = rows
        .iter()
        .filter(|r| r.hit_latency.count > 0)
        .map(|r| r.hit_latency.p50_ms)
        .collect();
    let misses: Vec<f64> = rows
        .iter()
        .filter(|r| r.miss_latency.count > 0)
        .map(|r| r.miss_latency.p50_ms)
        .collect();
    if !hits.is_empty() && !misses.is_empty() {
        let hit = hits.iter().copied().fold(0.0, f64::max);
        let miss = misses.iter().copied().fold(f64::INFINITY, f64::min);
        verdicts.push(Verdict::at_least(
            "miss p50 / hit p50",
            if hit > 0.0 { miss / hit } else { miss * 1000.0 },
            10.0,
            "x",
            "a cached object is served at least 10x faster than the API server",
        ));
    }
    let holds_all = rows
        .iter()
        .filter(|r| usize::try_from(r.capacity).is_ok_and(|c| c >= options.objects))
        .max_by(|a, b| a.ttl_seconds.total_cmp(&b.ttl_seconds));
    if let Some(full) = holds_all {
        verdicts.push(Verdict::at_least(
            "hit ratio, capacity >= objects, longest TTL",
            full.hit_ratio * 100.0,
            90.0,
            "%",
            "a cache that holds everything misses only on first reads and expiry",
        ));
    }
    verdicts.push(api::cleanup_verdict(done.cleaned_up));
    Ok(CacheReport {
        format: FORMAT.into(),
        environment,
        interrupted: cancel.is_cancelled(),
        namespace: done.namespace,
        cleaned_up: done.cleaned_up,
        rows,
        verdicts,
    })
}

#[allow(clippy::cast_precision_loss)] // counts
async fn measure(
    cluster: &Cluster,
    options: &CacheBenchOptions,
    namespace: &str,
    run: &str,
    watcher: &dyn Watcher,
    cancel: &CancellationToken,
) -> Result<Vec<CacheRow>, BenchError> {
    use futures::StreamExt as _;
    let configmaps: kube::Api<ConfigMap> = kube::Api::namespaced(cluster.client(), namespace);
    watcher.phase(&format!("creating {} config maps", options.objects));
    let created: Vec<Result<(), kube::Error>> = futures::stream::iter(0..options.objects)
        .map(|index| {
            let configmaps = &configmaps;
            async move {
                let object: ConfigMap = serde_json::from_value(serde_json::json!({
                    "metadata": {"name": format!("obj-{index}"), "labels": {super::RUN_LABEL: run}},
                    "data": {"index": index.to_string()},
                }))
                .unwrap_or_default();
                let params = kube::api::PostParams::default();
                match api::patiently(|| configmaps.create(&params, &object)).await {
                    // An earlier attempt was made after all (the names are the run's own).
                    Err(error) if api::is_code(&error, 409) => Ok(()),
                    outcome => outcome.map(drop),
                }
            }
        })
        .buffer_unordered(16)
        // Ctrl-C during set-up: no more objects, no measurement; cleanup follows.
        .take_until(cancel.cancelled())
        .collect()
        .await;
    if let Some(Err(error)) = created.into_iter().find(Result::is_err) {
        return Err(BenchError::api(
            "cannot create the benchmark's config maps",
            &error,
        ));
    }
    let zipf = Zipf::new(options.objects, options.skew);
    let names: Vec<String> = (0..options.objects).map(|i| format!("obj-{i}")).collect();
    let mut rows = Vec::new();
    let cells = options.capacities.len() * options.ttls.len();
    for (cell, (&capacity, &ttl)) in options
        .capacities
        .iter()
        .flat_map(|c| options.ttls.iter().map(move |t| (c, t)))
        .enumerate()
    {
        if cancel.is_cancelled() {
            break;
        }
        watcher.phase(&format!(
            "capacity {capacity}, TTL {}s ({}/{cells})",
            ttl.as_secs_f64(),
            cell + 1
        ));
        let cache: ObjectCache<ConfigMap> = ObjectCache::new(
            cluster.client(),
            &CacheOptions {
                default_ttl: ttl,
                ttl_by_kind: BTreeMap::new(),
                per_namespace_capacity: capacity,
            },
        );
        let (mut hit, mut miss) = (Recorder::new(), Recorder::new());
        let mut errors: BTreeMap<String, u64> = BTreeMap::new();
        let mut rng = fastrand::Rng::with_seed(42);
        let started = Instant::now();
        let mut lookups = 0_u64;
        while started.elapsed() < options.duration && !cancel.is_cancelled() {
            let name = &names[zipf.draw(&mut rng)];
            let before = cache.stats().misses;
            let asked = Instant::now();
            let result = cache.get(namespace, name).await;
            let latency = asked.elapsed();
            lookups += 1;
            match result {
                Ok(_) if cache.stats().misses == before => hit.record(latency),
                Ok(_) => miss.record(latency),
                Err(error) => {
                    *errors
                        .entry(crate::cluster::api_message(&error))
                        .or_default() += 1;
                }
            }
        }
        let stats = cache.stats();
        rows.push(CacheRow {
            capacity,
            ttl_seconds: ttl.as_secs_f64(),
            lookups,
            hit_ratio: if lookups == 0 {
                0.0
            } else {
                hit.count() as f64 / lookups as f64
            },
            hit_latency: hit.summary(),
            miss_latency: miss.summary(),
            evictions: stats.evictions,
            expirations: stats.expirations,
            errors,
        });
    }
    Ok(rows)
}
