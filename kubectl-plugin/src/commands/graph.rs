//! `kubectl zen graph inspect|validate|order|export`: KRO resource graphs, offline.

use std::{
    io::{self, Write},
    path::{Path, PathBuf},
    process::ExitCode,
};

use clap::{Args, Subcommand};
use kubezen::{
    Cell, Column, Table, Tabular, Tone,
    graph::{self, Catalog, Diagnostic, LoadError, ResourceGraph, Severity},
    table::{Painter, escape_controls},
};
use serde::Serialize;

use crate::{
    cli::GlobalArgs,
    error::{EXIT_FAILURE, EXIT_OK, Failure},
    output::{Output, OutputFormat},
};

/// What SOURCE may be, for every subcommand's help.
macro_rules! sources_help {
    () => {
        "SOURCE is a YAML or JSON file (one or more documents; only ResourceGraphDefinitions are
read), a directory (its .yaml, .yml and .json files, recursively, in name order), - for
standard input, or rgd/NAME to read it from the cluster (--kubeconfig, --context)."
    };
}

/// Inspect, validate, order and export KRO ResourceGraphDefinitions, offline
#[derive(Debug, Args)]
pub struct GraphArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: GraphCommand,
}

/// The `graph` subcommands.
#[derive(Debug, Subcommand)]
pub enum GraphCommand {
    /// Show a graph: apply waves, dependencies, critical path, metrics and problems
    #[command(after_help = INSPECT_HELP)]
    Inspect(SourceArgs),
    /// Check graphs with KRO's rules; exit 1 on errors (or on warnings with --strict)
    #[command(after_help = VALIDATE_HELP)]
    Validate(ValidateArgs),
    /// Print KRO's topological order, with each resource's apply wave and start level
    #[command(after_help = ORDER_HELP)]
    Order(SourceArgs),
    /// Export a graph as Graphviz DOT (the default), Mermaid, JSON or YAML
    #[command(after_help = EXPORT_HELP)]
    Export(SourceArgs),
}

const INSPECT_HELP: &str = concat!(
    "\
Waves are KRO's apply order: KRO peels layers off from the resources nothing depends on, so
each resource is applied as late as its dependents allow; deletion runs the waves backwards.
Levels are the earliest a resource can start: one after its latest dependency. The critical
path is the longest chain of dependencies. Exit code 1 when a graph has errors.

",
    sources_help!(),
    "

Examples:
  kubectl zen graph inspect examples/rgd/web-app.yaml
  kubectl zen graph inspect examples/rgd/ -o wide
  kubectl zen graph inspect rgd.yaml -o json | jq '.order'"
);

const VALIDATE_HELP: &str = concat!(
    "\
Every problem is reported in one run, each with its file, resource id, field path and a hint;
messages follow KRO's wording, so searching one finds KRO's explanations. -o json prints
{valid, graphs, errors, warnings, diagnostics[]} for CI.

",
    sources_help!(),
    "

Examples:
  kubectl zen graph validate rgds/
  kubectl zen graph validate app.yaml --strict -o json"
);

const ORDER_HELP: &str = concat!(
    "\
The order is KRO's: Kahn's algorithm taking, among the resources whose dependencies are all
placed, the one declared first. A graph with a cycle has no order: the cycle is reported and
the exit code is 1.

",
    sources_help!(),
    "

Examples:
  kubectl zen graph order app.yaml
  kubectl zen graph order app.yaml -o json | jq -r '.order[]'"
);

const EXPORT_HELP: &str = concat!(
    "\
Arrows run from a dependency to what depends on it. In DOT, external references are dashed,
conditional resources (includeWhen) dotted, collections (forEach) doubled, and cycles red.

",
    sources_help!(),
    "

Examples:
  kubectl zen graph export app.yaml | dot -Tsvg > app.svg
  kubectl zen graph export app.yaml -o mermaid
  kubectl zen graph export app.yaml -o json"
);

/// The graphs to read.
#[derive(Debug, Args)]
pub struct SourceArgs {
    /// Files, directories, or - for standard input
    #[arg(value_name = "SOURCE", required = true)]
    pub sources: Vec<PathBuf>,

    /// CRDs (a file or directory) whose schemas check templates of
    /// custom kinds, as the built-in kinds are checked
    #[arg(long, value_name = "FILE|DIR")]
    pub crd: Vec<PathBuf>,
}

/// `graph validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// The graphs.
    #[command(flatten)]
    pub source: SourceArgs,

    /// Fail (exit 1) on warnings too
    #[arg(long)]
    pub strict: bool,
}

/// Runs a `graph` subcommand.
pub fn run(args: &GraphArgs, global: &GlobalArgs) -> Result<ExitCode, Failure> {
    match &args.command {
        GraphCommand::Inspect(source) => inspect(&load(source, global)?, global),
        GraphCommand::Validate(validate) => {
            validate_graphs(&load(&validate.source, global)?, validate.strict, global)
        }
        GraphCommand::Order(source) => order(&load(source, global)?, global),
        GraphCommand::Export(source) => export(&load(source, global)?, global),
    }
}

fn load(args: &SourceArgs, global: &GlobalArgs) -> Result<Vec<ResourceGraph>, Failure> {
    let catalog = catalog(&args.crd)?;
    let mut graphs = Vec::new();
    for source in &args.sources {
        match rgd_name(source) {
            Some(name) => {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|error| Failure::new("cannot start the runtime").caused_by(&error))?;
                let (graph, _) = runtime.block_on(fetch(&name, &catalog, global))?;
                graphs.push(graph);
            }
            None => graphs.extend(load_local(source, &catalog)?),
        }
    }
    Ok(graphs)
}

/// The built-in kinds and the CRDs in `crds` (files or directories).
pub fn catalog(crds: &[PathBuf]) -> Result<Catalog, Failure> {
    let mut catalog = Catalog::builtin();
    for crd in crds {
        catalog
            .add_crds_from_path(crd)
            .map_err(|error| load_failure(&error))?;
    }
    Ok(catalog)
}

/// NAME when `source` is `rgd/NAME` and no such file exists.
pub fn rgd_name(source: &Path) -> Option<String> {
    source
        .to_string_lossy()
        .strip_prefix("rgd/")
        .filter(|_| !source.exists())
        .map(str::to_owned)
}

/// The graphs of a file, a directory, or standard input (`-`).
pub fn load_local(source: &Path, catalog: &Catalog) -> Result<Vec<ResourceGraph>, Failure> {
    if source == Path::new("-") {
        graph::load_reader(io::stdin().lock(), "-", catalog)
    } else {
        graph::load_path(source, catalog)
    }
    .map_err(|error| load_failure(&error))
}

/// The graph `rgd/NAME` from the cluster the flags name, and that cluster, connected.
pub async fn fetch(
    name: &str,
    catalog: &Catalog,
    global: &GlobalArgs,
) -> Result<(ResourceGraph, kubezen::cluster::Cluster), Failure> {
    let cluster = global.connect().await?;
    let graph = graph::fetch(&cluster, name, catalog)
        .await
        .map_err(|error| load_failure(&error))?;
    Ok((graph, cluster))
}

/// What could not be read, with the hint for it.
pub fn load_failure(error: &LoadError) -> Failure {
    let failure = Failure::new(error.to_string());
    match error.hint() {
        Some(hint) => failure.hint(hint),
        None => failure,
    }
}

/// Exit 1 when any graph has errors.
fn findings_exit(graphs: &[ResourceGraph]) -> ExitCode {
    ExitCode::from(if graphs.iter().any(ResourceGraph::has_errors) {
        EXIT_FAILURE
    } else {
        EXIT_OK
    })
}

/// One JSON value for one graph, a list for several.
fn one_or_many<T: Serialize>(mut items: Vec<T>) -> OneOrMany<T> {
    if items.len() == 1 {
        OneOrMany::One(items.remove(0))
    } else {
        OneOrMany::Many(items)
    }
}

#[derive(Serialize)]
#[serde(untagged)]
enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

fn inspect(graphs: &[ResourceGraph], global: &GlobalArgs) -> Result<ExitCode, Failure> {
    let reports = one_or_many(graphs.iter().map(ResourceGraph::report).collect());
    Output::stdout(global.output).print_text(&reports, |out, painter, wide| {
        for (n, graph) in graphs.iter().enumerate() {
            if n > 0 {
                writeln!(out)?;
            }
            write_inspection(out, painter, wide, graph)?;
        }
        Ok(())
    })?;
    Ok(findings_exit(graphs))
}

/// Writes `text` with its control characters escaped, in `tone`.
fn put(out: &mut dyn Write, painter: &dyn Painter, text: &str, tone: Tone) -> io::Result<()> {
    painter.paint(out, &escape_controls(text), tone)
}

fn write_inspection(
    out: &mut dyn Write,
    painter: &dyn Painter,
    wide: bool,
    graph: &ResourceGraph,
) -> io::Result<()> {
    let m = &graph.metrics;
    put(out, painter, &graph.name, Tone::Heading)?;
    put(
        out,
        painter,
        &format!(
            "  {}  {}/{}, {}",
            graph.origin, graph.schema.group, graph.schema.api_version, graph.schema.kind
        ),
        Tone::Muted,
    )?;
    writeln!(out)?;
    writeln!(
        out,
        "{} resources, {} dependencies, {} waves, widest level {}, {} expressions ({} simple, {} moderate, {} complex)",
        m.nodes,
        m.edges,
        graph.waves().map_or(0, |w| w.len()),
        m.widest_level,
        m.expressions,
        m.simple_expressions,
        m.moderate_expressions,
        m.complex_expressions
    )?;
    writeln!(out)?;
    resource_table(graph).write_text(out, wide, painter)?;
    if let Some(path) = graph.critical_path() {
        writeln!(out)?;
        put(out, painter, "Critical path", Tone::Heading)?;
        writeln!(
            out,
            " ({} resources): {}",
            path.len(),
            escape_controls(&path.join(" -> "))
        )?;
    }
    if let Some(levels) = graph.levels() {
        put(out, painter, "Start levels", Tone::Heading)?;
        let text: Vec<String> = levels
            .iter()
            .enumerate()
            .map(|(n, l)| format!("{n}: {}", l.join(" ")))
            .collect();
        writeln!(out, ": {}", escape_controls(&text.join(" | ")))?;
    }
    for cycle in graph.cycles() {
        put(out, painter, "Cycle", Tone::Bad)?;
        writeln!(out, ": {}", escape_controls(&cycle.join(" -> ")))?;
    }
    if !graph.diagnostics.is_empty() {
        writeln!(out)?;
        write_diagnostics(out, painter, &graph.diagnostics)?;
    }
    Ok(())
}

fn resource_table(graph: &ResourceGraph) -> Table {
    let waves = graph.wave_positions();
    let levels = graph.level_positions();
    let rows: Vec<usize> = graph
        .order_positions()
        .unwrap_or_else(|| (0..graph.resources.len()).collect());
    let critical = graph.critical_path().unwrap_or_default();
    let mut table = Table::new(vec![
        Column::new("WAVE").right(),
        Column::wide("LEVEL").right(),
        Column::new("RESOURCE"),
        Column::new("KIND"),
        Column::wide("API VERSION"),
        Column::new("DEPENDS ON"),
        Column::new("EXPR").right(),
        Column::new("NOTES"),
    ]);
    for n in rows {
        let resource = &graph.resources[n];
        let mut notes = Vec::new();
        match resource.kind {
            graph::ResourceKind::External => notes.push("external".to_owned()),
            graph::ResourceKind::Collection => notes.push(format!(
                "forEach {}",
                resource
                    .for_each
                    .iter()
                    .map(|i| i.name.as_str())
                    .collect::<Vec<_>>()
                    .join(" x ")
            )),
            graph::ResourceKind::Template => {}
        }
        if !resource.include_when.is_empty() {
            notes.push("conditional".into());
        }
        if !resource.ready_when.is_empty() {
            notes.push("readyWhen".into());
        }
        if critical.contains(&resource.id.as_str()) {
            notes.push("critical".into());
        }
        let errors = graph
            .diagnostics
            .iter()
            .filter(|d| {
                d.severity == Severity::Error && d.resource.as_deref() == Some(&resource.id)
            })
            .count();
        let id = if errors > 0 {
            Cell::toned(resource.id.as_str(), Tone::Bad)
        } else {
            Cell::from(resource.id.as_str())
        };
        table.push_row(vec![
            Cell::from(
                waves
                    .as_ref()
                    .map_or("-".to_owned(), |w| (w[n] + 1).to_string()),
            ),
            Cell::from(levels.as_ref().map_or("-".to_owned(), |l| l[n].to_string())),
            id,
            Cell::from(resource.object_kind.as_deref().unwrap_or("?")),
            Cell::toned(resource.api_version.as_deref().unwrap_or("?"), Tone::Muted),
            Cell::from(if resource.dependencies.is_empty() {
                "-".to_owned()
            } else {
                resource.dependencies.join(",")
            }),
            Cell::from(
                resource
                    .fields
                    .iter()
                    .map(|f| f.expressions.len())
                    .sum::<usize>()
                    .to_string(),
            ),
            Cell::toned(notes.join(", "), Tone::Muted),
        ]);
    }
    table
}

fn write_diagnostics(
    out: &mut dyn Write,
    painter: &dyn Painter,
    diagnostics: &[Diagnostic],
) -> io::Result<()> {
    for diagnostic in diagnostics {
        let (label, tone) = match diagnostic.severity {
            Severity::Error => ("error", Tone::Bad),
            Severity::Warning => ("warning", Tone::Warning),
        };
        put(out, painter, label, tone)?;
        writeln!(out, ": {}", escape_controls(&diagnostic.message))?;
        let mut place = diagnostic.origin.to_string();
        if let Some(path) = &diagnostic.path {
            place = format!("{place}: {path}");
        }
        if let Some(resource) = &diagnostic.resource {
            place = format!("{place} (resource {resource})");
        }
        put(out, painter, "  where:", Tone::Muted)?;
        writeln!(out, " {}", escape_controls(&place))?;
        if let Some(hint) = &diagnostic.hint {
            put(out, painter, "  hint:", Tone::Muted)?;
            writeln!(out, " {}", escape_controls(hint))?;
        }
    }
    Ok(())
}

/// `graph validate -o json`: one verdict over every graph read.
#[derive(Debug, Serialize)]
struct Validation<'g> {
    valid: bool,
    graphs: usize,
    errors: usize,
    warnings: usize,
    diagnostics: Vec<&'g Diagnostic>,
}

impl Tabular for Validation<'_> {
    fn to_table(&self) -> Table {
        let mut table = Table::new(vec![
            Column::new("SEVERITY"),
            Column::new("FILE"),
            Column::new("RESOURCE"),
            Column::new("FIELD"),
            Column::new("MESSAGE"),
            Column::wide("HINT"),
        ]);
        for d in &self.diagnostics {
            table.push_row(vec![
                match d.severity {
                    Severity::Error => Cell::toned("error", Tone::Bad),
                    Severity::Warning => Cell::toned("warning", Tone::Warning),
                },
                Cell::from(d.origin.to_string()),
                Cell::from(d.resource.as_deref().unwrap_or("-")),
                Cell::toned(d.path.as_deref().unwrap_or("-"), Tone::Muted),
                Cell::from(d.message.as_str()),
                Cell::toned(d.hint.as_deref().unwrap_or(""), Tone::Muted),
            ]);
        }
        table
    }
}

fn validate_graphs(
    graphs: &[ResourceGraph],
    strict: bool,
    global: &GlobalArgs,
) -> Result<ExitCode, Failure> {
    let diagnostics: Vec<&Diagnostic> = graphs.iter().flat_map(|g| &g.diagnostics).collect();
    let errors = diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .count();
    let warnings = diagnostics.len() - errors;
    let failed = errors > 0 || (strict && warnings > 0);
    let validation = Validation {
        valid: !failed,
        graphs: graphs.len(),
        errors,
        warnings,
        diagnostics,
    };
    let output = Output::stdout(global.output);
    if matches!(global.output, OutputFormat::Table | OutputFormat::Wide) {
        output.print_text(&validation, |out, painter, wide| {
            if !validation.diagnostics.is_empty() {
                validation.to_table().write_text(out, wide, painter)?;
            }
            let verdict = format!(
                "{} graph(s): {errors} error(s), {warnings} warning(s)",
                graphs.len()
            );
            put(
                out,
                painter,
                &verdict,
                if failed { Tone::Bad } else { Tone::Good },
            )?;
            writeln!(out)
        })?;
    } else {
        output.print(&validation)?;
    }
    Ok(ExitCode::from(if failed { EXIT_FAILURE } else { EXIT_OK }))
}

/// `graph order` for one graph.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Ordering<'g> {
    name: &'g str,
    order: Option<Vec<&'g str>>,
    waves: Option<Vec<Vec<&'g str>>>,
    levels: Option<Vec<Vec<&'g str>>>,
    cycles: Vec<Vec<&'g str>>,
}

fn order(graphs: &[ResourceGraph], global: &GlobalArgs) -> Result<ExitCode, Failure> {
    let orderings: Vec<Ordering> = graphs
        .iter()
        .map(|g| Ordering {
            name: &g.name,
            order: g.order(),
            waves: g.waves(),
            levels: g.levels(),
            cycles: g.cycles(),
        })
        .collect();
    let cyclic = orderings.iter().any(|o| o.order.is_none());
    let data = one_or_many(orderings);
    Output::stdout(global.output).print_text(&data, |out, painter, wide| {
        for (n, graph) in graphs.iter().enumerate() {
            if graphs.len() > 1 {
                if n > 0 {
                    writeln!(out)?;
                }
                put(out, painter, &graph.name, Tone::Heading)?;
                writeln!(out)?;
            }
            let (Some(order), Some(waves), Some(levels)) = (
                graph.order_positions(),
                graph.wave_positions(),
                graph.level_positions(),
            ) else {
                for cycle in graph.cycles() {
                    put(out, painter, "cycle", Tone::Bad)?;
                    writeln!(out, ": {}", escape_controls(&cycle.join(" -> ")))?;
                }
                continue;
            };
            let mut table = Table::new(vec![
                Column::new("#").right(),
                Column::new("RESOURCE"),
                Column::new("WAVE").right(),
                Column::new("LEVEL").right(),
                Column::wide("KIND"),
            ]);
            for (position, n) in order.into_iter().enumerate() {
                let resource = &graph.resources[n];
                table.push_row(vec![
                    Cell::from((position + 1).to_string()),
                    Cell::from(resource.id.as_str()),
                    Cell::from((waves[n] + 1).to_string()),
                    Cell::from(levels[n].to_string()),
                    Cell::toned(resource.object_kind.as_deref().unwrap_or("?"), Tone::Muted),
                ]);
            }
            table.write_text(out, wide, painter)?;
        }
        Ok(())
    })?;
    Ok(ExitCode::from(if cyclic { EXIT_FAILURE } else { EXIT_OK }))
}

fn export(graphs: &[ResourceGraph], global: &GlobalArgs) -> Result<ExitCode, Failure> {
    let output = Output::stdout(global.output);
    match global.output {
        OutputFormat::Json | OutputFormat::Yaml => {
            output.print_data(&one_or_many(
                graphs.iter().map(ResourceGraph::report).collect(),
            ))?;
        }
        format => {
            let text: String = graphs
                .iter()
                .map(|g| {
                    if format == OutputFormat::Mermaid {
                        g.to_mermaid()
                    } else {
                        g.to_dot()
                    }
                })
                .collect::<Vec<_>>()
                .join("\n");
            output.print_raw(&text)?;
        }
    }
    Ok(ExitCode::from(EXIT_OK))
}
