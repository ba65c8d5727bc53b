//! `bench cel`: the CEL engine on the documented set of 20 expressions (simple to very
//! complex, `benches/cel_expressions.json`): compiling, looking a compiled program up in the
//! cache, and evaluating it; by cost class, how much the cache saves.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{BenchError, Environment, FORMAT, Timing, Verdict, time_per_op};
use crate::cel::{Engine, Variables};
use crate::table::{Column, Table, Tabular};

/// The documented expression set and the variables it is evaluated against.
pub const EXPRESSION_SET: &str = include_str!("../../benches/cel_expressions.json");

/// How to run `bench cel`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CelOptions {
    /// Time spent on each measurement (3 per expression).
    #[serde(with = "super::seconds")]
    pub budget: Duration,
    /// Only expressions whose name contains this.
    pub filter: Option<String>,
}

impl Default for CelOptions {
    fn default() -> Self {
        Self {
            budget: Duration::from_millis(100),
            filter: None,
        }
    }
}

/// One expression's timings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CelRow {
    /// Its name in the set.
    pub name: String,
    /// The expression.
    pub expression: String,
    /// Its cost class: simple, moderate or complex.
    pub class: String,
    /// Parsing and checking it, every time (no cache).
    pub compile: Timing,
    /// Finding the compiled program in the engine's cache.
    pub cached: Timing,
    /// Evaluating the compiled program.
    pub evaluate: Timing,
    /// Compile time over cached-lookup time: what the cache saves.
    pub compile_over_cached: f64,
}

/// A cost class's medians.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CelClass {
    /// simple, moderate or complex.
    pub class: String,
    /// Expressions in it.
    pub expressions: usize,
    /// Median compile time, µs.
    pub compile_us: f64,
    /// Median cached lookup, µs.
    pub cached_us: f64,
    /// Median evaluation, µs.
    pub evaluate_us: f64,
}

/// The report of `bench cel`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CelReport {
    /// [`FORMAT`].
    pub format: String,
    /// Where, when and how.
    pub environment: Environment,
    /// One row per expression.
    pub rows: Vec<CelRow>,
    /// Medians by cost class.
    pub classes: Vec<CelClass>,
    /// The median evaluation of complex expressions over that of simple ones (the KRO guide
    /// says 20-30x); `None` without both classes.
    pub complex_over_simple: Option<f64>,
    /// Judgements.
    pub verdicts: Vec<Verdict>,
}

impl Tabular for CelReport {
    fn to_table(&self) -> Table {
        let mut table = Table::new(vec![
            Column::new("EXPRESSION"),
            Column::new("CLASS"),
            Column::new("COMPILE").right(),
            Column::new("CACHED").right(),
            Column::new("EVALUATE").right(),
            Column::new("COMPILE/CACHED").right(),
            Column::wide("SOURCE"),
        ]);
        for row in &self.rows {
            table.push_row(vec![
                row.name.clone().into(),
                row.class.clone().into(),
                micros(row.compile.mean_us).into(),
                micros(row.cached.mean_us).into(),
                micros(row.evaluate.mean_us).into(),
                format!("{:.0}x", row.compile_over_cached).into(),
                row.expression.clone().into(),
            ]);
        }
        table
    }
}

/// Microseconds as people read them: `85ns`, `1.24µs`, `310µs`.
pub(crate) fn micros(us: f64) -> String {
    if us < 1.0 {
        format!("{:.0}ns", us * 1000.0)
    } else if us < 100.0 {
        format!("{us:.2}µs")
    } else if us < 10_000.0 {
        format!("{us:.0}µs")
    } else {
        format!("{:.1}ms", us / 1000.0)
    }
}

pub(crate) fn median(values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Runs `bench cel` on the documented set. Single-threaded; takes about 3 × `budget` per
/// expression.
///
/// # Errors
/// A filter that matches nothing.
pub fn run(options: &CelOptions) -> Result<CelReport, BenchError> {
    let mut environment = Environment::start(options);
    let set: serde_json::Value = serde_json::from_str(EXPRESSION_SET)
        .map_err(|e| BenchError::Target(format!("the expression set: {e}")))?;
    let variables = Variables::from_json(&set["variables"])
        .map_err(|e| BenchError::Target(format!("the expression set's variables: {e}")))?;
    let engine = Engine::new(1024);
    let mut rows = Vec::new();
    for entry in set["expressions"].as_array().into_iter().flatten() {
        let (Some(name), Some(source)) = (entry["name"].as_str(), entry["expression"].as_str())
        else {
            continue;
        };
        if options
            .filter
            .as_ref()
            .is_some_and(|f| !name.contains(f.as_str()))
        {
            continue;
        }
        let program = engine
            .compile(source)
            .map_err(|e| BenchError::Target(format!("expression {name}: {e}")))?;
        let compile = time_per_op(options.budget, || {
            std::hint::black_box(engine.compile_uncached(std::hint::black_box(source)).ok());
        });
        let cached = time_per_op(options.budget, || {
            std::hint::black_box(engine.compile(std::hint::black_box(source)).ok());
        });
        let evaluate = time_per_op(options.budget, || {
            std::hint::black_box(program.evaluate(std::hint::black_box(&variables)).ok());
        });
        rows.push(CelRow {
            name: name.into(),
            expression: source.into(),
            class: program.complexity().class.as_str().into(),
            compile_over_cached: compile.mean_us / cached.mean_us.max(1e-6),
            compile,
            cached,
            evaluate,
        });
    }
    if rows.is_empty() {
        return Err(BenchError::Options(format!(
            "no expression of the set matches {:?}",
            options.filter.as_deref().unwrap_or_default()
        )));
    }
    let classes: Vec<CelClass> = ["simple", "moderate", "complex"]
        .into_iter()
        .filter_map(|class| {
            let members: Vec<&CelRow> = rows.iter().filter(|row| row.class == class).collect();
            let pick = |f: fn(&CelRow) -> f64| {
                median(&mut members.iter().map(|r| f(r)).collect::<Vec<_>>())
            };
            (!members.is_empty()).then(|| CelClass {
                class: class.into(),
                expressions: members.len(),
                compile_us: pick(|r| r.compile.mean_us),
                cached_us: pick(|r| r.cached.mean_us),
                evaluate_us: pick(|r| r.evaluate.mean_us),
            })
        })
        .collect();
    let evaluation = |class: &str| {
        classes
            .iter()
            .find(|c| c.class == class)
            .map(|c| c.evaluate_us)
    };
    let complex_over_simple = evaluation("complex")
        .zip(evaluation("simple"))
        .map(|(complex, simple)| complex / simple.max(1e-6));
    let verdicts = verdicts(&rows);
    environment.end();
    Ok(CelReport {
        format: FORMAT.into(),
        environment,
        rows,
        classes,
        complex_over_simple,
        verdicts,
    })
}

/// The KRO guide's claims: a compiled expression is cached, so a repeated one costs a lookup,
/// far less than compiling; and evaluation stays in microseconds.
fn verdicts(rows: &[CelRow]) -> Vec<Verdict> {
    let mut ratios: Vec<f64> = rows.iter().map(|r| r.compile_over_cached).collect();
    let mut evaluations: Vec<f64> = rows.iter().map(|r| r.evaluate.mean_us).collect();
    let slowest = evaluations.iter().copied().fold(0.0, f64::max);
    vec![
        Verdict::at_least(
            "compile/cached (median)",
            median(&mut ratios),
            10.0,
            "x",
            "caching compiled programs saves at least 10x",
        ),
        Verdict::at_most(
            "evaluation (median)",
            median(&mut evaluations) / 1000.0,
            0.1,
            "ms",
            "a cached expression evaluates in under 100µs",
        ),
        Verdict::at_most(
            "evaluation (slowest)",
            slowest / 1000.0,
            1.0,
            "ms",
            "no expression of the set takes 1ms",
        ),
    ]
}
