//! Benchmarks that say whether the numbers are good.
//!
//! Each benchmark measures at the client, at full resolution, and judges what it measured:
//!
//! - [`api`]: an API server under a mix of verbs from N workers (create, get, list, update,
//!   patch, delete), with watch-event delivery latency; judged against the Kubernetes API
//!   SLOs. Everything it creates lives in a fresh namespace labelled with the run, deleted on
//!   success, failure and interruption; [`api::cleanup`] finds what earlier runs left.
//! - [`http`]: any HTTP endpoint at a fixed rate or a fixed concurrency, the report of the
//!   netweave gateway guide, judged against latency and success targets.
//! - [`cel`], [`graph`], [`cache`], [`reconcile`]: the core's own hot paths (the CEL engine
//!   compiled against cached, graph analysis against size, the object cache against capacity
//!   and TTL, a graph instance reconciled end to end).
//!
//! Latencies go into HDR histograms at microsecond resolution ([`Recorder`]) and come out as
//! a [`Latency`] summary. Every report is one JSON document ([`Report`]) that carries its
//! [`Environment`], its [`Verdict`]s, and, given a baseline, the [`Change`]s against it; it
//! loads back with [`Report::from_json`].

pub mod api;
pub mod cache;
pub mod cel;
pub mod graph;
pub mod http;
mod latency;
pub mod reconcile;
mod report;

#[cfg(test)]
mod tests;

pub use latency::{Latency, Recorder};
pub use report::{
    Change, Environment, Figures, Report, Verdict, changes_table, compare, verdicts_table,
};

/// The label every object a benchmark creates carries, valued with the run's id; cleanup
/// finds leftovers by it.
pub const RUN_LABEL: &str = "zen.kubezen.io/bench-run";

/// The JSON format of every report.
pub const FORMAT: &str = "kubezen.bench/v1";

/// Why a benchmark could not run. Failed operations inside a run are not errors: they are
/// counted in the report.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The options do not make a benchmark.
    #[error("{0}")]
    Options(String),
    /// The cluster refused the set-up (the namespace, the objects, discovery).
    #[error("{what}: {message}")]
    Api {
        /// What was being done.
        what: String,
        /// The server's words.
        message: String,
    },
    /// The benchmark's target could not be used (a bad URL, TLS material, a graph).
    #[error("{0}")]
    Target(String),
    /// A report could not be read.
    #[error("{0}")]
    Report(String),
}

impl BenchError {
    pub(crate) fn api(what: impl Into<String>, error: &kube::Error) -> Self {
        Self::Api {
            what: what.into(),
            message: crate::cluster::api_message(error),
        }
    }

    /// The error, saying that `namespace` could not be deleted after it.
    #[must_use]
    pub(crate) fn left_behind(self, namespace: &str) -> Self {
        let note = format!(
            "; namespace {namespace} could not be deleted: `kubectl zen bench cleanup` removes it"
        );
        match self {
            Self::Options(message) => Self::Options(message + &note),
            Self::Api { what, message } => Self::Api {
                what,
                message: message + &note,
            },
            Self::Target(message) => Self::Target(message + &note),
            Self::Report(message) => Self::Report(message + &note),
        }
    }
}

/// When a timed benchmark stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Stop {
    /// After this long.
    #[serde(with = "seconds")]
    Duration(std::time::Duration),
    /// After this many operations in all.
    Count(u64),
}

impl Stop {
    /// Whether operation number `done` (counted from 0) may start at `elapsed`.
    #[must_use]
    pub fn allows(self, done: u64, elapsed: std::time::Duration) -> bool {
        match self {
            Self::Duration(limit) => elapsed < limit,
            Self::Count(count) => done < count,
        }
    }

    /// How far along a run is, 0 to 1.
    #[must_use]
    #[allow(clippy::cast_precision_loss)] // a progress fraction
    pub fn fraction(self, done: u64, elapsed: std::time::Duration) -> f64 {
        let fraction = match self {
            Self::Duration(limit) if !limit.is_zero() => {
                elapsed.as_secs_f64() / limit.as_secs_f64()
            }
            Self::Count(count) if count > 0 => done as f64 / count as f64,
            _ => 1.0,
        };
        fraction.clamp(0.0, 1.0)
    }
}

/// How a running benchmark is doing, handed to a progress callback a few times a second.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    /// Time since the measured phase started.
    pub elapsed: std::time::Duration,
    /// Operations finished.
    pub done: u64,
    /// Of which failed.
    pub errors: u64,
    /// How far along the run is, 0 to 1.
    pub fraction: f64,
}

/// A progress callback; `&()` ignores progress.
pub trait Watcher: Sync {
    /// Called a few times a second while the benchmark runs.
    fn progress(&self, progress: &Progress);
    /// Called with a sentence when the benchmark moves to another phase (set-up, cleanup).
    fn phase(&self, _what: &str) {}
}

impl Watcher for () {
    fn progress(&self, _: &Progress) {}
}

mod seconds {
    use serde::{Deserialize, Deserializer, Serializer};

    #[allow(clippy::trivially_copy_pass_by_ref)] // serde's signature
    pub fn serialize<S: Serializer>(
        value: &std::time::Duration,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.serialize_f64(value.as_secs_f64())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<std::time::Duration, D::Error> {
        let value = f64::deserialize(deserializer)?;
        std::time::Duration::try_from_secs_f64(value).map_err(serde::de::Error::custom)
    }
}

/// A fresh run id: 8 lower-case hex digits, a valid label value and name part.
#[must_use]
pub fn run_id() -> String {
    format!("{:08x}", fastrand::u32(..))
}

/// The time one call of a fast function takes, measured in batches (so that the clock's own
/// cost does not count), in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Timing {
    /// Calls measured.
    pub iterations: u64,
    /// Mean time per call.
    pub mean_us: f64,
    /// The median over batches.
    pub p50_us: f64,
    /// The 99th percentile over batches.
    pub p99_us: f64,
}

/// Times `f` for about `budget`: batches long enough (≥ 50 µs) that the clock does not
/// matter, at least 5 of them.
#[allow(clippy::cast_precision_loss)] // times and counts
pub(crate) fn time_per_op(budget: std::time::Duration, mut f: impl FnMut()) -> Timing {
    use std::time::{Duration, Instant};
    f();
    let mut batch: u64 = 1;
    loop {
        let started = Instant::now();
        for _ in 0..batch {
            f();
        }
        if started.elapsed() >= Duration::from_micros(50) || batch >= 1 << 20 {
            break;
        }
        batch *= 2;
    }
    let mut per_op = Vec::new();
    let (mut iterations, mut total) = (0_u64, Duration::ZERO);
    let started = Instant::now();
    while per_op.len() < 5 || started.elapsed() < budget {
        let batch_started = Instant::now();
        for _ in 0..batch {
            f();
        }
        let elapsed = batch_started.elapsed();
        total += elapsed;
        iterations += batch;
        per_op.push(elapsed.as_secs_f64() * 1e6 / batch as f64);
        if per_op.len() >= 100_000 {
            break;
        }
    }
    per_op.sort_by(f64::total_cmp);
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // an index, 0..len
    let at = |q: f64| per_op[((per_op.len() - 1) as f64 * q).round() as usize];
    Timing {
        iterations,
        mean_us: total.as_secs_f64() * 1e6 / iterations as f64,
        p50_us: at(0.5),
        p99_us: at(0.99),
    }
}
