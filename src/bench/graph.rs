//! `bench graph`: resource graph analysis against size. For each size a synthetic graph
//! ([`crate::graph::synthetic_rgd`]: a wide tree with ~2 expressions per resource) is loaded
//! (parsed, validated, its CEL checked and its dependencies found), ordered, and compiled
//! into a reconcile plan; the growth exponent says how the cost scales (1 = linear).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{BenchError, Environment, FORMAT, Timing, Verdict, cel::micros, time_per_op};
use crate::graph::{Catalog, parse_str, synthetic_rgd};
use crate::table::{Column, Table, Tabular};

/// How to run `bench graph`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GraphOptions {
    /// Graph sizes, in resources.
    pub sizes: Vec<usize>,
    /// Time spent on each measurement (3 per size).
    #[serde(with = "super::seconds")]
    pub budget: Duration,
}

impl Default for GraphOptions {
    fn default() -> Self {
        Self {
            sizes: vec![10, 30, 100, 1000],
            budget: Duration::from_millis(300),
        }
    }
}

/// The largest graph measured.
pub const MAX_SIZE: usize = 20_000;

/// One size's timings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GraphRow {
    /// Resources in the graph.
    pub resources: usize,
    /// CEL expressions in it.
    pub expressions: usize,
    /// Dependency levels.
    pub levels: usize,
    /// Parse, validate and analyse the YAML.
    pub load: Timing,
    /// Topological order of the analysed graph.
    pub order: Timing,
    /// Compile the reconcile plan (every expression compiled).
    pub plan: Timing,
    /// `load` per resource.
    pub load_per_resource_us: f64,
}

/// The report of `bench graph`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GraphReport {
    /// [`FORMAT`].
    pub format: String,
    /// Where, when and how.
    pub environment: Environment,
    /// One row per size.
    pub rows: Vec<GraphRow>,
    /// How load time grows with size: the slope of log(time) against log(size) (1 = linear,
    /// 2 = quadratic); `None` with fewer than two sizes.
    pub growth_exponent: Option<f64>,
    /// The same for the plan.
    pub plan_growth_exponent: Option<f64>,
    /// Judgements.
    pub verdicts: Vec<Verdict>,
}

impl Tabular for GraphReport {
    fn to_table(&self) -> Table {
        let mut table = Table::new(vec![
            Column::new("RESOURCES").right(),
            Column::new("EXPRESSIONS").right(),
            Column::new("LEVELS").right(),
            Column::new("LOAD").right(),
            Column::new("ORDER").right(),
            Column::new("PLAN").right(),
            Column::new("LOAD/RESOURCE").right(),
        ]);
        for row in &self.rows {
            table.push_row(vec![
                row.resources.to_string().into(),
                row.expressions.to_string().into(),
                row.levels.to_string().into(),
                micros(row.load.mean_us).into(),
                micros(row.order.mean_us).into(),
                micros(row.plan.mean_us).into(),
                micros(row.load_per_resource_us).into(),
            ]);
        }
        table
    }
}

/// The least-squares slope of log(y) against log(x).
#[must_use]
#[allow(clippy::cast_precision_loss)] // point counts
pub fn growth_exponent(points: &[(f64, f64)]) -> Option<f64> {
    let logs: Vec<(f64, f64)> = points
        .iter()
        .filter(|(x, y)| *x > 0.0 && *y > 0.0)
        .map(|(x, y)| (x.ln(), y.ln()))
        .collect();
    if logs.len() < 2 {
        return None;
    }
    let n = logs.len() as f64;
    let (mx, my) = (
        logs.iter().map(|p| p.0).sum::<f64>() / n,
        logs.iter().map(|p| p.1).sum::<f64>() / n,
    );
    let sxx: f64 = logs.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = logs.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    (sxx > 0.0).then(|| sxy / sxx)
}

/// Runs `bench graph`.
///
/// # Errors
/// No sizes, or a size of 0 or above [`MAX_SIZE`].
#[allow(clippy::cast_precision_loss)] // sizes
pub fn run(options: &GraphOptions) -> Result<GraphReport, BenchError> {
    if options.sizes.is_empty() {
        return Err(BenchError::Options("--sizes names no size".into()));
    }
    if let Some(bad) = options.sizes.iter().find(|&&n| n == 0 || n > MAX_SIZE) {
        return Err(BenchError::Options(format!(
            "--sizes: {bad} is not a size from 1 to {MAX_SIZE}"
        )));
    }
    let mut environment = Environment::start(options);
    let catalog = Catalog::builtin();
    let mut rows = Vec::new();
    for &size in &options.sizes {
        let yaml = synthetic_rgd(size);
        let graphs = parse_str(&yaml, "synthetic", &catalog)
            .map_err(|e| BenchError::Target(format!("synthetic graph of {size}: {e}")))?;
        let graph = graphs
            .into_iter()
            .next()
            .ok_or_else(|| BenchError::Target("synthetic graph missing".into()))?;
        let load = time_per_op(options.budget, || {
            std::hint::black_box(
                parse_str(std::hint::black_box(&yaml), "synthetic", &catalog).ok(),
            );
        });
        let order = time_per_op(options.budget, || {
            std::hint::black_box(graph.order());
        });
        let plan = time_per_op(options.budget, || {
            std::hint::black_box(crate::reconcile::Plan::new(&graph).ok());
        });
        rows.push(GraphRow {
            resources: size,
            expressions: graph.metrics.expressions,
            levels: graph.metrics.depth,
            load_per_resource_us: load.mean_us / size as f64,
            load,
            order,
            plan,
        });
    }
    let points = |f: fn(&GraphRow) -> f64| -> Vec<(f64, f64)> {
        rows.iter().map(|r| (r.resources as f64, f(r))).collect()
    };
    let growth = growth_exponent(&points(|r| r.load.mean_us));
    let plan_growth = growth_exponent(&points(|r| r.plan.mean_us));
    let mut verdicts = Vec::new();
    if let Some(exponent) = growth {
        verdicts.push(Verdict::at_most(
            "load growth exponent",
            exponent,
            1.3,
            "",
            "analysis grows about linearly with graph size",
        ));
    }
    if let Some(row) = rows.iter().find(|r| r.resources >= 1000) {
        verdicts.push(Verdict::at_most(
            &format!("load of {} resources", row.resources),
            row.load.mean_us / 1000.0,
            100.0 * row.resources as f64 / 1000.0,
            "ms",
            "a 1,000-resource graph analysed in 100ms",
        ));
    }
    environment.end();
    Ok(GraphReport {
        format: FORMAT.into(),
        environment,
        rows,
        growth_exponent: growth,
        plan_growth_exponent: plan_growth,
        verdicts,
    })
}
