//! `bench reconcile`: an N-resource graph instance reconciled end to end against a cluster:
//! the first apply (every object created), an unchanged re-apply (nothing written), and the
//! delete; wall time, API calls and writes of each, over a few runs. Everything lives in a
//! fresh benchmark namespace, deleted at the end.

use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::{BenchError, Environment, FORMAT, Verdict, Watcher, api, latency::format_ms};
use crate::cluster::Cluster;
use crate::graph::{Catalog, parse_str, synthetic_rgd};
use crate::reconcile::{Options, Plan, Reconciler};
use crate::table::{Column, Table, Tabular};

/// How to run `bench reconcile`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReconcileBenchOptions {
    /// Resources in the synthetic graph.
    pub resources: usize,
    /// Objects applied at once within a level.
    pub workers: usize,
    /// Apply, re-apply and delete this many times.
    pub runs: usize,
}

impl Default for ReconcileBenchOptions {
    fn default() -> Self {
        Self {
            resources: 100,
            workers: 4,
            runs: 3,
        }
    }
}

/// One phase of one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReconcileRow {
    /// The run, from 1.
    pub run: usize,
    /// `apply`, `unchanged` or `delete`.
    pub phase: String,
    /// Wall time, milliseconds.
    pub millis: f64,
    /// API requests made.
    pub api_calls: u64,
    /// Objects written.
    pub writes: u64,
    /// Whether every object reached its outcome.
    pub ok: bool,
}

/// The report of `bench reconcile`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReconcileReport {
    /// [`FORMAT`].
    pub format: String,
    /// Where, when and how.
    pub environment: Environment,
    /// Whether the run was interrupted.
    pub interrupted: bool,
    /// The namespace the instance lived in.
    pub namespace: String,
    /// Whether it was seen gone at the end.
    pub cleaned_up: bool,
    /// One row per run and phase.
    pub rows: Vec<ReconcileRow>,
    /// Judgements.
    pub verdicts: Vec<Verdict>,
}

impl Tabular for ReconcileReport {
    fn to_table(&self) -> Table {
        let mut table = Table::new(vec![
            Column::new("RUN").right(),
            Column::new("PHASE"),
            Column::new("WALL").right(),
            Column::new("API CALLS").right(),
            Column::new("WRITES").right(),
            Column::new("OK"),
        ]);
        for row in &self.rows {
            table.push_row(vec![
                row.run.to_string().into(),
                row.phase.clone().into(),
                format_ms(row.millis).into(),
                row.api_calls.to_string().into(),
                row.writes.to_string().into(),
                (if row.ok { "yes" } else { "no" }).into(),
            ]);
        }
        table
    }
}

/// Runs `bench reconcile` against `cluster`.
///
/// # Errors
/// Bad options, a namespace the server refuses, or a reconcile that cannot start.
pub async fn run(
    cluster: &Cluster,
    options: &ReconcileBenchOptions,
    watcher: &dyn Watcher,
    cancel: &CancellationToken,
) -> Result<ReconcileReport, BenchError> {
    if !(1..=crate::bench::graph::MAX_SIZE).contains(&options.resources) {
        return Err(BenchError::Options(format!(
            "--resources must be 1 to {}, not {}",
            crate::bench::graph::MAX_SIZE,
            options.resources
        )));
    }
    if !(1..=100).contains(&options.runs) || !(1..=256).contains(&options.workers) {
        return Err(BenchError::Options(
            "--runs must be 1 to 100 and --workers 1 to 256".into(),
        ));
    }
    let graphs = parse_str(
        &synthetic_rgd(options.resources),
        "synthetic",
        &Catalog::builtin(),
    )
    .map_err(|e| BenchError::Target(e.to_string()))?;
    let plan = graphs
        .first()
        .map(Plan::new)
        .ok_or_else(|| BenchError::Target("synthetic graph missing".into()))?
        .map_err(|e| BenchError::Target(e.to_string()))?;
    let mut environment = Environment::start(options);
    environment.server(cluster).await;
    let run = super::run_id();
    let reconciler = Reconciler::new(cluster.clone(), Arc::new(plan));
    let done = api::in_namespace(
        cluster,
        &run,
        api::CLEANUP_TIMEOUT,
        watcher,
        |namespace| async move { measure(&reconciler, options, &namespace, watcher, cancel).await },
    )
    .await?;
    environment.end();
    let rows = done.value;
    let mut verdicts = Vec::new();
    if rows.iter().any(|r| r.phase == "unchanged") {
        let writes: u64 = rows
            .iter()
            .filter(|r| r.phase == "unchanged")
            .map(|r| r.writes)
            .sum();
        #[allow(clippy::cast_precision_loss)] // a count
        verdicts.push(Verdict::at_most(
            "writes of unchanged re-applies",
            writes as f64,
            0.0,
            "",
            "an instance that has not changed is not written again",
        ));
    }
    if !rows.is_empty() {
        #[allow(clippy::cast_precision_loss)] // a count
        let failed = rows.iter().filter(|r| !r.ok).count() as f64;
        verdicts.push(Verdict::at_most(
            "failed phases",
            failed,
            0.0,
            "",
            "every object reaches its outcome",
        ));
    }
    verdicts.push(api::cleanup_verdict(done.cleaned_up));
    Ok(ReconcileReport {
        format: FORMAT.into(),
        environment,
        interrupted: cancel.is_cancelled(),
        namespace: done.namespace,
        cleaned_up: done.cleaned_up,
        rows,
        verdicts,
    })
}

async fn measure(
    reconciler: &Reconciler,
    options: &ReconcileBenchOptions,
    namespace: &str,
    watcher: &dyn Watcher,
    cancel: &CancellationToken,
) -> Result<Vec<ReconcileRow>, BenchError> {
    let instance = reconciler
        .admit(serde_json::json!({
            "apiVersion": reconciler.plan().api_version(),
            "kind": reconciler.plan().kind(),
            "metadata": {"name": "bench", "namespace": namespace},
            "spec": {"name": "bench"},
        }))
        .map_err(|e| BenchError::Target(e.to_string()))?;
    let reconcile_options = Options {
        workers: options.workers,
        ..Options::default()
    };
    let mut rows = Vec::new();
    for run in 1..=options.runs {
        for phase in ["apply", "unchanged", "delete"] {
            if cancel.is_cancelled() {
                return Ok(rows);
            }
            watcher.phase(&format!("run {run}/{}: {phase}", options.runs));
            let started = Instant::now();
            let report = if phase == "delete" {
                reconciler
                    .delete(&instance, &reconcile_options, &(), cancel)
                    .await
            } else {
                reconciler
                    .apply(&instance, &reconcile_options, &(), cancel)
                    .await
            }
            .map_err(|e| BenchError::Target(format!("{phase}: {e}")))?;
            rows.push(ReconcileRow {
                run,
                phase: phase.into(),
                millis: started.elapsed().as_secs_f64() * 1000.0,
                api_calls: report.api_calls,
                writes: report.writes,
                ok: report.ok(),
            });
        }
    }
    Ok(rows)
}
