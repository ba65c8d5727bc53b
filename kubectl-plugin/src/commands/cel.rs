//! `kubectl zen cel eval|check`: KRO's CEL from the shell.

use std::{io::Read, path::PathBuf, process::ExitCode};

use clap::{Args, Subcommand};
use kubezen::{
    Cell, Column, Table, Tabular, Tone,
    cel::{CelError, Check, Engine, Value, Variables},
};
use serde::Serialize;

use crate::{
    cli::GlobalArgs,
    error::{EXIT_FAILURE, EXIT_OK, Failure},
    output::{Output, OutputFormat},
};

/// Evaluate or check CEL expressions, as KRO's resource graphs use them.
#[derive(Debug, Args)]
pub struct CelArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: CelCommand,
}

/// The `cel` subcommands.
#[derive(Debug, Subcommand)]
pub enum CelCommand {
    /// Evaluate expressions against variables and print the results
    #[command(after_help = "\
Variables are a YAML or JSON mapping of names to values. YAML tags give the types JSON
lacks: !uint 5, !bytes aGk= (base64), !timestamp 2024-01-01T00:00:00Z, !duration 1m30s.

Examples:
  kubectl zen cel eval '1 + 2 * 3'
  kubectl zen cel eval 'schema.spec.replicas > 2' --vars instance.yaml
  echo '{schema: {spec: {name: web}}}' | kubectl zen cel eval 'schema.spec.name + \"-svc\"' --vars -
  kubectl zen cel eval '[1, 2, 3].map(x, x * 2)' -o json
  kubectl zen cel eval 'a' 'a' 'b' --vars v.yaml --cache-stats   # the second 'a' is a cache hit")]
    Eval(EvalArgs),
    /// Check expressions: syntax, references, complexity, and type errors against variables
    #[command(after_help = "\
Without --vars, check parses each expression and reports what it reads and how costly it is:
score = nodes + 2 x calls + 10 x comprehensions x nesting; the class is simple up to 20 with
no comprehension, moderate up to 80 with comprehensions at most one deep, complex beyond.
With --vars, it also reports references to variables that are not given, and evaluates the
expression to surface type and runtime errors. Exit code 1 when anything is reported.

Examples:
  kubectl zen cel check 'schema.spec.replicas > 2'
  kubectl zen cel check 'items.all(i, i.ready)' --vars vars.yaml -o json")]
    Check(CheckArgs),
}

/// `cel eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// The expressions, evaluated in order
    #[arg(value_name = "EXPR", required = true)]
    pub expressions: Vec<String>,

    /// A YAML or JSON file of variables, or - for standard input
    #[arg(long, value_name = "FILE")]
    pub vars: Option<PathBuf>,

    /// Print the compiled-program cache's counters on stderr afterwards
    #[arg(long)]
    pub cache_stats: bool,
}

/// `cel check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The expressions to check
    #[arg(value_name = "EXPR", required = true)]
    pub expressions: Vec<String>,

    /// A YAML or JSON file of variables, or - for standard input
    #[arg(long, value_name = "FILE")]
    pub vars: Option<PathBuf>,
}

/// Runs `cel eval` or `cel check`.
pub fn run(args: &CelArgs, global: &GlobalArgs) -> Result<ExitCode, Failure> {
    match &args.command {
        CelCommand::Eval(eval) => run_eval(eval, global),
        CelCommand::Check(check) => run_check(check, global),
    }
}

fn run_eval(args: &EvalArgs, global: &GlobalArgs) -> Result<ExitCode, Failure> {
    let variables = read_variables(args.vars.as_ref())?;
    let engine = Engine::global();
    let mut results = Vec::with_capacity(args.expressions.len());
    for expression in &args.expressions {
        let value = engine
            .evaluate(expression, &variables)
            .map_err(|error| failure(expression, &error))?;
        results.push(EvalResult {
            expression: expression.clone(),
            value,
        });
    }
    let output = Output::stdout(global.output);
    // JSON and YAML print the values as they are, for scripts (`... -o json | jq`): one
    // expression its value, several a list. YAML keeps the types JSON lacks as tags.
    let values = || -> Value {
        match results.as_slice() {
            [single] => single.value.clone(),
            many => Value::List(many.iter().map(|r| r.value.clone()).collect()),
        }
    };
    match global.output {
        OutputFormat::Json => output.print_data(&values())?,
        OutputFormat::Yaml => output.print_data(&values().to_yaml())?,
        OutputFormat::Table
        | OutputFormat::Wide
        | OutputFormat::Dot
        | OutputFormat::Mermaid
        | OutputFormat::Csv => {
            output.print(&EvalResults(results))?;
        }
    }
    if args.cache_stats {
        Output::stderr(OutputFormat::Table).print(&engine.cache_stats())?;
    }
    Ok(ExitCode::from(EXIT_OK))
}

fn run_check(args: &CheckArgs, global: &GlobalArgs) -> Result<ExitCode, Failure> {
    let variables = match &args.vars {
        Some(path) => Some(read_variables(Some(path))?),
        None => None,
    };
    let engine = Engine::global();
    let mut reports = Vec::with_capacity(args.expressions.len());
    for expression in &args.expressions {
        let program = engine
            .compile(expression)
            .map_err(|error| failure(expression, &error))?;
        reports.push(program.check(variables.as_ref()));
    }
    let findings = reports.iter().any(|r| !r.problems.is_empty());
    Output::stdout(global.output).print(&CheckReports(reports))?;
    Ok(ExitCode::from(if findings {
        EXIT_FAILURE
    } else {
        EXIT_OK
    }))
}

fn read_variables(path: Option<&PathBuf>) -> Result<Variables, Failure> {
    let Some(path) = path else {
        return Ok(Variables::new());
    };
    let (name, text) = if path.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).map_err(|e| {
            Failure::new("cannot read the variables")
                .at("standard input")
                .caused_by(&e)
        })?;
        ("standard input".to_owned(), text)
    } else {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Failure::new("cannot read the variables")
                .at(path.display().to_string())
                .caused_by(&e)
        })?;
        (path.display().to_string(), text)
    };
    Variables::from_yaml(&text).map_err(|e| {
        Failure::new(format!("invalid variables: {}", e.message))
            .at(format!("{name}, at {}", e.path))
            .hint("variables are a YAML or JSON mapping of names to values")
    })
}

/// A failure naming the expression's position, with the line and a caret under it.
fn failure(expression: &str, error: &CelError) -> Failure {
    let mut failure = Failure::new(error.to_string());
    if let Some(position) = error.position() {
        failure = failure
            .at(format!("<expression>:{position}"))
            .snippet(position.caret(expression));
    }
    match error {
        CelError::TooLong { .. } | CelError::TooDeep { .. } => {
            failure.hint("split the expression, or compute parts of it in the resource graph")
        }
        _ => failure,
    }
}

#[derive(Debug, Serialize)]
struct EvalResult {
    expression: String,
    value: Value,
}

#[derive(Debug, Serialize)]
#[serde(transparent)]
struct EvalResults(Vec<EvalResult>);

impl Tabular for EvalResults {
    fn to_table(&self) -> Table {
        let mut table = Table::new(vec![
            Column::new("EXPRESSION"),
            Column::new("TYPE"),
            Column::new("VALUE"),
        ]);
        for result in &self.0 {
            table.push_row(vec![
                Cell::from(result.expression.as_str()),
                Cell::toned(result.value.type_name(), Tone::Muted),
                Cell::from(result.value.to_json().to_string()),
            ]);
        }
        table
    }
}

#[derive(Debug, Serialize)]
#[serde(transparent)]
struct CheckReports(Vec<Check>);

impl Tabular for CheckReports {
    fn to_table(&self) -> Table {
        let mut table = Table::new(vec![
            Column::new("EXPRESSION"),
            Column::new("STATUS"),
            Column::new("CLASS"),
            Column::new("SCORE").right(),
            Column::wide("NODES").right(),
            Column::wide("DEPTH").right(),
            Column::wide("CALLS").right(),
            Column::wide("COMPREHENSIONS").right(),
            Column::new("REFERENCES"),
            Column::new("PROBLEMS"),
        ]);
        for report in &self.0 {
            let c = &report.complexity;
            let status = if report.problems.is_empty() {
                Cell::toned("ok", Tone::Good)
            } else {
                Cell::toned("problem", Tone::Bad)
            };
            table.push_row(vec![
                Cell::from(report.expression.as_str()),
                status,
                Cell::from(c.class.as_str()),
                Cell::from(c.score.to_string()),
                Cell::from(c.nodes.to_string()),
                Cell::from(c.depth.to_string()),
                Cell::from(c.calls.to_string()),
                Cell::from(c.comprehensions.to_string()),
                Cell::from(report.references.join(",")),
                Cell::toned(report.problems.join("; "), Tone::Warning),
            ]);
        }
        table
    }
}
