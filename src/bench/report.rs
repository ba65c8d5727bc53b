//! What every report carries: the environment, verdicts, and changes against a baseline; and
//! the report as one JSON document that loads back.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::{BenchError, FORMAT, Latency, api, cache, cel, graph, http, latency::format_ms};
use crate::table::{Cell, Column, Table, Tabular, Tone};

/// Where and when a benchmark ran, and with what options.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Environment {
    /// The kubectl-zen version that measured.
    pub client_version: String,
    /// Its git commit.
    pub client_commit: String,
    /// The server measured: an API server's URL or the HTTP target, without credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// The API server's version (`gitVersion`), when the target is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_version: Option<String>,
    /// The client's rate limit, retries and timeout, when the target is an API server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<crate::cluster::ClientSettings>,
    /// CPU cores the client could use.
    pub cores: usize,
    /// The client's operating system and architecture.
    pub platform: String,
    /// When the benchmark started, RFC 3339.
    pub started: String,
    /// When it ended, RFC 3339.
    pub ended: String,
    /// The options it ran with.
    pub options: serde_json::Value,
}

impl Environment {
    /// The client's side of the environment, started now; `options` as given.
    pub fn start(options: &impl Serialize) -> Self {
        let version = crate::VersionInfo::current();
        Self {
            client_version: version.version.into(),
            client_commit: version.git_commit.into(),
            server: None,
            server_version: None,
            client: None,
            cores: std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
            platform: format!("{}/{}", std::env::consts::OS, std::env::consts::ARCH),
            started: now(),
            ended: String::new(),
            options: serde_json::to_value(options).unwrap_or_default(),
        }
    }

    /// Records the API server behind `cluster` and its version (left out if it does not say).
    pub async fn server(&mut self, cluster: &crate::cluster::Cluster) {
        self.server = Some(cluster.server().to_owned());
        self.client = Some(cluster.settings());
        self.server_version = cluster
            .client()
            .apiserver_version()
            .await
            .ok()
            .map(|info| info.git_version);
    }

    /// Marks the end of the benchmark.
    pub fn end(&mut self) {
        self.ended = now();
    }
}

fn now() -> String {
    chrono::DateTime::<chrono::Utc>::from(SystemTime::now())
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// One judgement: a measured figure against a limit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Verdict {
    /// What was judged, `get p99`.
    pub check: String,
    /// The figure measured.
    pub measured: f64,
    /// The limit.
    pub limit: f64,
    /// `ms`, `%`, `/s` or empty.
    pub unit: String,
    /// Whether the figure must be at most the limit (else at least).
    pub at_most: bool,
    /// Whether it passed.
    pub passed: bool,
    /// Where the limit comes from.
    pub source: String,
}

impl Verdict {
    /// A figure that must be at most `limit`.
    #[must_use]
    pub fn at_most(check: &str, measured: f64, limit: f64, unit: &str, source: &str) -> Self {
        Self {
            check: check.into(),
            measured,
            limit,
            unit: unit.into(),
            at_most: true,
            passed: measured <= limit,
            source: source.into(),
        }
    }

    /// A figure that must be at least `limit`.
    #[must_use]
    pub fn at_least(check: &str, measured: f64, limit: f64, unit: &str, source: &str) -> Self {
        Self {
            at_most: false,
            passed: measured >= limit,
            ..Self::at_most(check, measured, limit, unit, source)
        }
    }

    /// The verdict as a sentence: `PASS get p99 12.3ms <= 1.00s (Kubernetes API SLO: ...)`.
    #[must_use]
    pub fn sentence(&self) -> String {
        let show = |value: f64| match self.unit.as_str() {
            "ms" => format_ms(value),
            "%" => format!("{value:.2}%"),
            unit => format!("{}{unit}", trim_number(value)),
        };
        format!(
            "{} {} {} {} {} ({})",
            if self.passed { "PASS" } else { "FAIL" },
            self.check,
            show(self.measured),
            if self.at_most { "<=" } else { ">=" },
            show(self.limit),
            self.source
        )
    }
}

fn trim_number(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{value:.0}")
    } else {
        format!("{value:.2}")
    }
}

/// One figure against the same figure in a baseline report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Change {
    /// The row compared: a verb, or `requests`.
    pub subject: String,
    /// `p50_ms`, `p99_ms` or `per_second`.
    pub metric: String,
    /// The baseline's figure.
    pub baseline: f64,
    /// This run's.
    pub current: f64,
    /// The change, in percent of the baseline (positive: grew).
    pub change_percent: f64,
    /// Whether it is worse than the threshold allows: latency up, or rate down, by more.
    pub regression: bool,
}

/// The name, latency and rate of one row, for [`compare`].
pub type Figures = (String, Latency, f64);

/// Compares rows present in both runs: p50 and p99 latency (a regression when they grow by
/// more than `threshold_percent`) and the achieved rate (when it falls by more). Rows with
/// no measurements on either side are left out.
#[must_use]
pub fn compare(baseline: &[Figures], current: &[Figures], threshold_percent: f64) -> Vec<Change> {
    let mut changes = Vec::new();
    for (subject, now, rate) in current {
        let Some((_, before, before_rate)) = baseline.iter().find(|(s, ..)| s == subject) else {
            continue;
        };
        if now.count == 0 || before.count == 0 {
            continue;
        }
        let mut push = |metric: &str, old: f64, new: f64, higher_is_worse: bool| {
            let change_percent = if old > 0.0 {
                (new - old) / old * 100.0
            } else {
                0.0
            };
            let regression = if higher_is_worse {
                change_percent > threshold_percent
            } else {
                change_percent < -threshold_percent
            };
            changes.push(Change {
                subject: subject.clone(),
                metric: metric.into(),
                baseline: old,
                current: new,
                change_percent,
                regression,
            });
        };
        push("p50_ms", before.p50_ms, now.p50_ms, true);
        push("p99_ms", before.p99_ms, now.p99_ms, true);
        push("per_second", *before_rate, *rate, false);
    }
    changes
}

/// The changes as a table.
#[must_use]
pub fn changes_table(changes: &[Change]) -> Table {
    let mut table = Table::new(vec![
        Column::new("ROW"),
        Column::new("METRIC"),
        Column::new("BASELINE").right(),
        Column::new("NOW").right(),
        Column::new("CHANGE").right(),
        Column::new("VERDICT"),
    ]);
    for change in changes {
        let show = |value: f64| {
            if change.metric.ends_with("_ms") {
                format_ms(value)
            } else {
                format!("{value:.1}")
            }
        };
        table.push_row(vec![
            change.subject.clone().into(),
            change.metric.clone().into(),
            show(change.baseline).into(),
            show(change.current).into(),
            format!("{:+.1}%", change.change_percent).into(),
            if change.regression {
                Cell::toned("regression", Tone::Bad)
            } else {
                Cell::toned("ok", Tone::Good)
            },
        ]);
    }
    table
}

/// The verdicts as a table.
#[must_use]
pub fn verdicts_table(verdicts: &[Verdict]) -> Table {
    let mut table = Table::new(vec![Column::new("VERDICT"), Column::new("CHECK")]);
    for verdict in verdicts {
        let sentence = verdict.sentence();
        let (word, rest) = sentence.split_once(' ').unwrap_or((&sentence, ""));
        table.push_row(vec![
            Cell::toned(
                word,
                if verdict.passed {
                    Tone::Good
                } else {
                    Tone::Bad
                },
            ),
            rest.into(),
        ]);
    }
    table
}

/// Any benchmark's report, tagged by `kind`: what `-o json` writes and
/// [`Report::from_json`] reads back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
#[allow(clippy::large_enum_variant)] // one report at a time
pub enum Report {
    /// `bench api`.
    Api(api::ApiReport),
    /// `bench http`.
    Http(http::HttpReport),
    /// `bench cel`.
    Cel(cel::CelReport),
    /// `bench graph`.
    Graph(graph::GraphReport),
    /// `bench cache`.
    Cache(cache::CacheReport),
    /// `bench reconcile`.
    Reconcile(super::reconcile::ReconcileReport),
}

impl Report {
    /// Reads a report written by `-o json` (or [`serde_json::to_string`] of a report).
    ///
    /// # Errors
    /// Text that is not JSON, of another format, or not a report.
    pub fn from_json(text: &str) -> Result<Self, BenchError> {
        let value: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| BenchError::Report(format!("not a JSON document: {e}")))?;
        match value.get("format").and_then(serde_json::Value::as_str) {
            Some(FORMAT) => {}
            Some(other) => {
                return Err(BenchError::Report(format!(
                    "a report of format {other}, not {FORMAT}"
                )));
            }
            None => {
                return Err(BenchError::Report(format!(
                    "not a kubectl-zen bench report (no \"format\": \"{FORMAT}\")"
                )));
            }
        }
        serde_json::from_value(value)
            .map_err(|e| BenchError::Report(format!("not a bench report: {e}")))
    }

    /// Compares with an earlier report of the same benchmark (`--baseline`): p50, p99 and rate
    /// of each row, a regression past `threshold_percent` (see [`compare`]).
    ///
    /// # Errors
    /// A threshold below 0, or a baseline of another benchmark (only api and http compare).
    pub fn compare_with(
        &mut self,
        baseline: &Self,
        threshold_percent: f64,
    ) -> Result<(), BenchError> {
        if !(threshold_percent.is_finite() && threshold_percent >= 0.0) {
            return Err(BenchError::Options(format!(
                "the threshold must be a percentage of 0 or more, not {threshold_percent}"
            )));
        }
        match (self, baseline) {
            (Self::Api(now), Self::Api(before)) => now.compare_with(before, threshold_percent),
            (Self::Http(now), Self::Http(before)) => now.compare_with(before, threshold_percent),
            (now, before) => {
                return Err(BenchError::Options(format!(
                    "a {} report cannot be compared with a {} baseline: only api and http reports compare, each with its own kind",
                    now.kind(),
                    before.kind()
                )));
            }
        }
        Ok(())
    }

    /// The benchmark: `api`, `http`, `cel`, `graph`, `cache` or `reconcile`.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Api(_) => "api",
            Self::Http(_) => "http",
            Self::Cel(_) => "cel",
            Self::Graph(_) => "graph",
            Self::Cache(_) => "cache",
            Self::Reconcile(_) => "reconcile",
        }
    }

    /// Whether the run was interrupted before its end.
    #[must_use]
    pub fn interrupted(&self) -> bool {
        match self {
            Self::Api(r) => r.interrupted,
            Self::Http(r) => r.interrupted,
            Self::Cache(r) => r.interrupted,
            Self::Reconcile(r) => r.interrupted,
            Self::Cel(_) | Self::Graph(_) => false,
        }
    }

    /// Its verdicts.
    #[must_use]
    pub fn verdicts(&self) -> &[Verdict] {
        match self {
            Self::Api(r) => &r.verdicts,
            Self::Http(r) => &r.verdicts,
            Self::Cel(r) => &r.verdicts,
            Self::Graph(r) => &r.verdicts,
            Self::Cache(r) => &r.verdicts,
            Self::Reconcile(r) => &r.verdicts,
        }
    }

    /// Its changes against a baseline.
    #[must_use]
    pub fn changes(&self) -> &[Change] {
        match self {
            Self::Api(r) => &r.changes,
            Self::Http(r) => &r.changes,
            _ => &[],
        }
    }

    /// Whether every verdict passed and nothing regressed.
    #[must_use]
    pub fn passed(&self) -> bool {
        self.verdicts().iter().all(|v| v.passed) && !self.changes().iter().any(|c| c.regression)
    }

    /// The environment it ran in.
    #[must_use]
    pub fn environment(&self) -> &Environment {
        match self {
            Self::Api(r) => &r.environment,
            Self::Http(r) => &r.environment,
            Self::Cel(r) => &r.environment,
            Self::Graph(r) => &r.environment,
            Self::Cache(r) => &r.environment,
            Self::Reconcile(r) => &r.environment,
        }
    }
}

impl Tabular for Report {
    fn to_table(&self) -> Table {
        match self {
            Self::Api(r) => r.to_table(),
            Self::Http(r) => r.to_table(),
            Self::Cel(r) => r.to_table(),
            Self::Graph(r) => r.to_table(),
            Self::Cache(r) => r.to_table(),
            Self::Reconcile(r) => r.to_table(),
        }
    }
}
