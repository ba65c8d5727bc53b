//! Right-size workloads and controllers from measured usage, and lint their specs.
//!
//! Usage comes from a live cluster (metrics.k8s.io sampled over a window: [`live`]), from
//! Prometheus history ([`prometheus`]) or from a snapshot directory recorded earlier
//! ([`snapshot`]); manifests alone give lint findings and presets. Samples stream into
//! bounded-memory sketches ([`sketch`]); [`analyse`] turns an [`Inventory`] and its
//! [`Usage`] into a [`Report`]: a [`Recommendation`] per container (KRR's simple strategy,
//! plus OOM kill, heap and HPA awareness) and [`Finding`]s, sorted by impact, with totals,
//! patches and the means to apply them.
//!
//! ```
//! use kubezen::tune::{self, Inventory, Options};
//! let manifest = serde_json::json!({
//!     "apiVersion": "apps/v1", "kind": "Deployment",
//!     "metadata": {"name": "web", "namespace": "shop"},
//!     "spec": {"replicas": 3, "template": {"metadata": {"labels": {"app": "web"}},
//!              "spec": {"containers": [{"name": "app", "image": "web:1"}]}}}});
//! let inventory = Inventory::from_objects([manifest], "default");
//! let report = tune::analyse(&inventory, None, &Options::default(), "manifests");
//! assert!(report.findings.iter().any(|f| f.check == "best-effort"));
//! assert!(report.recommendations[0].recommended.cpu_request.is_none());
//! ```

pub mod apply;
mod lint;
pub mod live;
mod model;
pub mod presets;
pub mod prometheus;
mod recommend;
mod report;
mod runtime;
pub mod sketch;
pub mod snapshot;
mod usage;

#[cfg(test)]
mod tests;

pub use lint::{CHECKS, Finding, MAX_LIMIT_RATIO, Severity};
pub use model::{
    Autoscaler, Budget, ContainerRole, ContainerSpec, Inventory, InventoryBuilder, ReadProblem,
    Resources, Workload, WorkloadKind, WorkloadRef,
};
pub use presets::{ControllerAdvice, ControllerLoad, GatewayAdvice, Profile, Setting};
pub use recommend::{Confidence, CpuLimit, HpaAdvice, Options, Recommendation, span_text};
pub use report::{Patch, Report, Totals};
pub use runtime::{Heap, Runtime};
pub use usage::{SeriesId, SeriesKey, SeriesStats, Usage, UsageSummary};

/// Why tuning could not run.
#[derive(Debug, thiserror::Error)]
pub enum TuneError {
    /// An option out of range.
    #[error("{0}")]
    Invalid(String),
    /// A file or directory could not be read or written.
    #[error("{path}: {message}")]
    Io {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// A snapshot that does not read as the documented format.
    #[error("{path}:{line}: {message}")]
    Snapshot {
        /// The file.
        path: String,
        /// The line (1-based; 0 for the whole file).
        line: u64,
        /// What is wrong.
        message: String,
    },
    /// The API server refused or failed.
    #[error("{0}")]
    Api(String),
    /// Prometheus refused or failed.
    #[error("prometheus: {0}")]
    Prometheus(String),
    /// Stopped by the user.
    #[error("interrupted")]
    Interrupted,
}

/// Analyses `inventory` with its `usage` (None: manifests only) into a report; `source` says
/// where the data came from (shown in the report).
#[must_use]
pub fn analyse(
    inventory: &Inventory,
    usage: Option<&Usage>,
    options: &Options,
    source: &str,
) -> Report {
    let groups = usage.map(Usage::by_container).unwrap_or_default();
    let mut recommendations = Vec::new();
    let mut findings = Vec::new();
    for workload in inventory.workloads() {
        findings.extend(lint::lint(workload));
        for container in &workload.containers {
            let summary = groups
                .get(&(&workload.id, container.name.as_str()))
                .and_then(|series| UsageSummary::of(series, options.cpu_percentile));
            recommendations.push(recommend::recommend(workload, container, summary, options));
        }
    }
    Report::new(
        source,
        options.clone(),
        recommendations,
        findings,
        inventory.problems.clone(),
        usage.map_or(0, |u| u.unmatched),
    )
}
