//! `kubectl zen reconcile`: apply a resource graph instance in dependency order, diff it,
//! delete it, render it offline, or run the controller for a graph's instances.

use std::fmt::Write as _;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Subcommand};
use kubezen::cluster::Cluster;
use kubezen::graph::{self, ResourceGraph};
use kubezen::reconcile::{
    self, ControllerOptions, Event, ObjectDiff, Options, Outcome, Plan, Progress, Reconciler,
    Rendering,
};
use kubezen::table::Painter;
use kubezen::{Tabular as _, Tone};
use serde_json::Value as Json;
use tokio_util::sync::CancellationToken;

use super::election::ElectionArgs;
use crate::{
    cli::GlobalArgs,
    commands::{graph as graph_command, graph::load_failure, on_interrupt, sim::parse_duration},
    error::{EXIT_FAILURE, EXIT_OK, Failure},
    output::{Output, OutputFormat, colour_enabled},
};

/// What `kubectl zen reconcile --help` says first.
pub const LONG_ABOUT: &str = "Apply a KRO resource graph instance in dependency order.\n\n\
    The instance (YAML of the graph's kind) is checked and defaulted against the graph's \
    SimpleSchema. Resources are rendered level by level from the instance and the live state of \
    what they depend on, applied with server-side apply (field manager kubectl-zen) up to \
    --workers at a time, and each waits for its readyWhen (watched, not polled) before what \
    depends on it is rendered. includeWhen false leaves a resource out; externalRef resources \
    are read, never written. Objects carry labels naming the graph, the instance and the \
    resource, and belong to the instance's apply set (a ConfigMap zen-<graph>-<instance>-<hash>), so a \
    re-run writes nothing when nothing changed and prunes what is no longer wanted.";

const HELP: &str = "\
Exit code 0 when every resource is applied and ready, 1 when any failed, was blocked by a
failed dependency, or the run was interrupted (Ctrl-C stops between levels; a re-run
converges), 2 for usage errors. Progress goes to standard error, one line per level and
object with timings; the summary and the instance status to standard output (-o json for
scripts).

RGD is a file, - for standard input, or rgd/NAME to read it from the cluster.

Examples:
  # What would be applied, with no cluster at all
  kubectl zen reconcile -f examples/rgd/web-app.yaml -i examples/reconcile/web-app-instance.yaml --dry-run

  # Apply it, then again (nothing is written the second time)
  kubectl zen reconcile -f examples/rgd/web-app.yaml -i examples/reconcile/web-app-instance.yaml

  # What a changed instance would change, asked of the server
  kubectl zen reconcile -f examples/rgd/web-app.yaml -i instance.yaml --diff

  # Delete it: the last level first, each waited for until gone
  kubectl zen reconcile -f examples/rgd/web-app.yaml -i instance.yaml --delete

  # Run the controller for every instance of the graph
  kubectl zen reconcile controller --rgd examples/rgd/web-app.yaml --metrics-addr 127.0.0.1:9090";

/// Apply, diff, delete or render a resource graph instance; or run the graph's controller
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, after_help = HELP)]
pub struct ReconcileArgs {
    /// The controller.
    #[command(subcommand)]
    pub command: Option<ReconcileCommand>,

    /// The ResourceGraphDefinition: a file, - for standard input, or rgd/NAME
    #[arg(short = 'f', long = "filename", value_name = "RGD")]
    pub rgd: Option<PathBuf>,

    /// The instance: a YAML or JSON file holding one object of the graph's kind, or -
    #[arg(short = 'i', long, value_name = "INSTANCE")]
    pub instance: Option<PathBuf>,

    /// Render every object offline, with no cluster, and print them as a YAML stream
    #[arg(long, conflicts_with_all = ["diff", "delete"])]
    pub dry_run: bool,

    /// Show what applying would change (live vs desired, by server-side dry run); exit 1 when
    /// anything would
    #[arg(long, conflicts_with = "delete")]
    pub diff: bool,

    /// Delete what the instance made, in reverse dependency order
    #[arg(long)]
    pub delete: bool,

    #[command(flatten)]
    pub run: RunArgs,

    /// CRDs (files or directories) for type-checking templates of custom kinds
    #[arg(long, value_name = "FILE|DIR")]
    pub crd: Vec<PathBuf>,
}

/// The flags a one-off run and the controller share.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Objects applied at once within a level
    #[arg(long, default_value_t = 4, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub workers: u16,

    /// How long a run may take, readiness waits included, e.g. 90s, 5m
    #[arg(long, default_value = "5m", value_parser = parse_duration, value_name = "DURATION")]
    pub timeout: Duration,

    /// Take over fields another field manager owns instead of failing with a 409 conflict
    #[arg(long)]
    pub force_conflicts: bool,

    /// Keep objects the instance no longer wants instead of deleting them
    #[arg(long)]
    pub no_prune: bool,
}

impl RunArgs {
    fn options(&self) -> Options {
        Options {
            workers: usize::from(self.workers),
            timeout: self.timeout,
            force_conflicts: self.force_conflicts,
            prune: !self.no_prune,
        }
    }
}

/// The `reconcile` subcommands.
#[derive(Debug, Subcommand)]
pub enum ReconcileCommand {
    /// Run a controller for every instance of a graph until Ctrl-C
    #[command(after_help = CONTROLLER_HELP)]
    Controller(ControllerArgs),
}

const CONTROLLER_HELP: &str = "\
The controller installs the CRD generated from the graph's SimpleSchema, then reconciles every
instance with the same engine as a one-off run: a finalizer (zen.kubezen.io/finalizer) deletes
an instance's objects in reverse order before the instance goes, and status.state and a Ready
condition say how it went. Instances are reconciled again after --resync, on any change, and
with backoff after failures.

Metrics (Prometheus text format) on --metrics-addr /metrics, with /healthz and /readyz:
  kubezen_reconcile_duration_seconds   histogram of reconcile durations, by action
  kubezen_reconcile_errors_total       failed reconciles
  kubezen_reconcile_queue_depth        instances changed and not yet reconciled
  kubezen_reconcile_applied_objects_total  objects written, by outcome

Examples:
  kubectl zen reconcile controller --rgd examples/rgd/web-app.yaml
  kubectl zen reconcile controller --rgd rgd/web-app --workers 8 --qps 100 --burst 200 \\
      --metrics-addr 0.0.0.0:9090";

/// `kubectl zen reconcile controller`.
#[derive(Debug, Args)]
pub struct ControllerArgs {
    /// The ResourceGraphDefinition: a file, - for standard input, or rgd/NAME
    #[arg(long, value_name = "FILE|rgd/NAME")]
    pub rgd: PathBuf,

    #[command(flatten)]
    pub run: RunArgs,

    /// Reconcile every instance again this often, e.g. 5m
    #[arg(long, default_value = "5m", value_parser = parse_duration, value_name = "DURATION")]
    pub resync: Duration,

    /// Serve Prometheus metrics and health checks here
    #[arg(long, default_value = "127.0.0.1:9090", value_name = "ADDRESS:PORT")]
    pub metrics_addr: SocketAddr,

    /// CRDs (files or directories) for type-checking templates of custom kinds
    #[arg(long, value_name = "FILE|DIR")]
    pub crd: Vec<PathBuf>,

    #[command(flatten)]
    pub election: ElectionArgs,
}

/// Runs `reconcile`.
pub fn run(args: &ReconcileArgs, global: &GlobalArgs) -> Result<ExitCode, Failure> {
    super::runtime()?.block_on(async {
        if let Some(ReconcileCommand::Controller(controller)) = &args.command {
            return run_controller(controller, global).await;
        }
        let (Some(rgd), Some(instance)) = (&args.rgd, &args.instance) else {
            return Err(Failure::usage(
                "reconcile needs the graph (-f RGD) and the instance (-i INSTANCE)",
            )
            .hint(
                "kubectl zen reconcile -f rgd.yaml -i instance.yaml [--dry-run|--diff|--delete]",
            ));
        };
        let mut cluster = None;
        let graph = load_graph(rgd, &args.crd, global, &mut cluster).await?;
        let plan = Arc::new(Plan::new(&graph).map_err(|e| reconcile_failure(&e))?);
        let object = read_instance(instance, &plan)?;
        if args.dry_run {
            let namespace = global.namespace.as_deref().unwrap_or("default");
            let instance = plan
                .admit(object, namespace)
                .map_err(|e| reconcile_failure(&e).at(instance.display().to_string()))?;
            let rendering = plan
                .render_offline(&instance)
                .map_err(|e| reconcile_failure(&e))?;
            return print_rendering(&rendering, global).map(|()| ExitCode::from(EXIT_OK));
        }
        let cluster = match cluster {
            Some(cluster) => cluster,
            None => global.connect().await?,
        };
        let reconciler = Reconciler::new(cluster, plan);
        let instance_path = instance.display().to_string();
        let instance = reconciler
            .admit(object)
            .map_err(|e| reconcile_failure(&e).at(instance_path))?;
        let options = args.run.options();
        if args.diff {
            let diffs = reconciler
                .diff(&instance, &options)
                .await
                .map_err(|e| reconcile_failure(&e))?;
            return print_diffs(&diffs, global);
        }
        let cancel = CancellationToken::new();
        let progress = Lines::new();
        let watcher = on_interrupt(
            cancel.clone(),
            Some("interrupted: finishing the writes in flight (Ctrl-C again to quit now)"),
        )?;
        let report = if args.delete {
            reconciler
                .delete(&instance, &options, &progress, &cancel)
                .await
        } else {
            reconciler
                .apply(&instance, &options, &progress, &cancel)
                .await
        }
        .map_err(|e| reconcile_failure(&e))?;
        watcher.abort();
        print_report(&report, global)?;
        Ok(ExitCode::from(if report.ok() {
            EXIT_OK
        } else {
            EXIT_FAILURE
        }))
    })
}

/// One graph from a file, standard input or the cluster (`rgd/NAME`).
async fn load_graph(
    source: &Path,
    crds: &[PathBuf],
    global: &GlobalArgs,
    cluster: &mut Option<Cluster>,
) -> Result<ResourceGraph, Failure> {
    let catalog = graph_command::catalog(crds)?;
    let mut graphs = match graph_command::rgd_name(source) {
        Some(name) => {
            let (graph, connected) = graph_command::fetch(&name, &catalog, global).await?;
            *cluster = Some(connected);
            vec![graph]
        }
        None => graph_command::load_local(source, &catalog)?,
    };
    if graphs.len() > 1 {
        return Err(Failure::usage(format!(
            "{} holds {} ResourceGraphDefinitions; reconcile takes one",
            source.display(),
            graphs.len()
        ))
        .hint("pass the file of the one graph"));
    }
    Ok(graphs.remove(0))
}

/// The one object of the graph's kind in the instance file.
fn read_instance(path: &Path, plan: &Plan) -> Result<Json, Failure> {
    let shown = path.display().to_string();
    let documents = graph::read_documents(path).map_err(|error| load_failure(&error))?;
    let mut found: Vec<Json> = documents
        .into_iter()
        .map(|(_, document)| document)
        .filter(|document| !document.is_null())
        .collect();
    if found.len() > 1 {
        found.retain(|d| d.get("kind").and_then(Json::as_str) == Some(plan.kind()));
    }
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err(
            Failure::new(format!("{shown}: no {} instance found", plan.kind())).hint(format!(
                "write one: apiVersion: {}, kind: {}, metadata.name, spec",
                plan.api_version(),
                plan.kind()
            )),
        ),
        n => Err(Failure::usage(format!(
            "{shown} holds {n} {} instances; reconcile takes one",
            plan.kind()
        ))),
    }
}

fn reconcile_failure(error: &reconcile::ReconcileError) -> Failure {
    let failure = Failure::new(error.to_string());
    match error {
        reconcile::ReconcileError::Graph(_) => {
            failure.hint("kubectl zen graph validate RGD shows every problem with its hint")
        }
        reconcile::ReconcileError::Invalid(_) => {
            failure.hint("fix the fields named; defaults come from the graph's schema")
        }
        _ => failure,
    }
}

/// The rendered objects as a YAML stream, each with a comment saying where it comes from.
fn print_rendering(rendering: &Rendering, global: &GlobalArgs) -> Result<(), Failure> {
    if matches!(global.output, OutputFormat::Json | OutputFormat::Yaml) {
        return Output::stdout(global.output).print_data(rendering);
    }
    let mut text = String::new();
    for resource in &rendering.resources {
        let what = if resource.external {
            ", external: read, not written"
        } else {
            ""
        };
        if !resource.included {
            let _ = writeln!(
                text,
                "# {} (level {}): excluded by includeWhen",
                resource.id, resource.level
            );
            continue;
        }
        for object in &resource.objects {
            let _ = write!(
                text,
                "---\n# {} (level {}{what})\n",
                resource.id, resource.level
            );
            if !resource.unknown.is_empty() {
                let _ = writeln!(
                    text,
                    "# unknown until applied: {}",
                    resource.unknown.join(", ")
                );
            }
            text.push_str(&serde_norway::to_string(object).unwrap_or_default());
        }
    }
    if rendering.status.as_object().is_some_and(|s| !s.is_empty()) {
        text.push_str("---\n# the instance status, as far as it can be known offline\n");
        for line in serde_norway::to_string(&serde_json::json!({"status": rendering.status}))
            .unwrap_or_default()
            .lines()
        {
            let _ = writeln!(text, "# {line}");
        }
    }
    Output::stdout(global.output).print_raw(&text)
}

fn print_diffs(diffs: &[ObjectDiff], global: &GlobalArgs) -> Result<ExitCode, Failure> {
    let changed = diffs.iter().any(|d| d.change != "unchanged");
    Output::stdout(global.output).print_text(&diffs, |out, painter, _| {
        for diff in diffs {
            let tone = match diff.change {
                "unchanged" => Tone::Muted,
                "failed" => Tone::Bad,
                "prune" => Tone::Warning,
                _ => Tone::Heading,
            };
            painter.paint(
                out,
                &format!("# {} {} ({})\n", diff.change, diff.object, diff.id),
                tone,
            )?;
            for line in diff.diff.lines() {
                let tone = if line.starts_with('+') {
                    Tone::Good
                } else if line.starts_with('-') {
                    Tone::Bad
                } else {
                    Tone::Plain
                };
                painter.paint(out, line, tone)?;
                out.write_all(b"\n")?;
            }
        }
        Ok(())
    })?;
    Ok(ExitCode::from(if changed { EXIT_FAILURE } else { EXIT_OK }))
}

fn print_report(report: &reconcile::Report, global: &GlobalArgs) -> Result<(), Failure> {
    Output::stdout(global.output).print_text(report, |out, painter, wide| {
        report.to_table().write_text(out, wide, painter)?;
        let summary = format!(
            "\n{} {} in {} ms: {} API calls, {} writes{}\n",
            match report.action {
                reconcile::Action::Apply => "applied",
                reconcile::Action::Delete => "deleted",
            },
            report.instance,
            report.millis,
            report.api_calls,
            report.writes,
            if report.interrupted {
                " (interrupted)"
            } else {
                ""
            },
        );
        painter.paint(
            out,
            &summary,
            if report.ok() { Tone::Good } else { Tone::Bad },
        )?;
        if report.action == reconcile::Action::Apply {
            let status = serde_norway::to_string(&serde_json::json!({"status": report.status}))
                .unwrap_or_default();
            out.write_all(status.as_bytes())?;
            for (field, why) in &report.status_missing {
                painter.paint(out, &format!("# {field}: not known: {why}\n"), Tone::Muted)?;
            }
        }
        Ok(())
    })
}

/// Progress lines on standard error.
struct Lines {
    colour: bool,
}

impl Lines {
    fn new() -> Self {
        use std::io::IsTerminal as _;
        Self {
            colour: colour_enabled(io::stderr().is_terminal()),
        }
    }
}

impl Progress for Lines {
    fn event(&self, event: &Event<'_>) {
        let painter: &dyn Painter = if self.colour {
            &crate::output::Colour
        } else {
            &kubezen::table::Plain
        };
        let mut err = io::stderr().lock();
        let _ = match event {
            Event::Level { level, of, ids } => painter.paint(
                &mut err,
                &format!("level {}/{of}: {}\n", level + 1, ids.join(", ")),
                Tone::Heading,
            ),
            Event::Object(object) => {
                let tone = match object.outcome {
                    o if o.is_failure() => Tone::Bad,
                    Outcome::Unchanged | Outcome::Excluded | Outcome::Absent | Outcome::Read => {
                        Tone::Muted
                    }
                    _ => Tone::Good,
                };
                let detail = object
                    .message
                    .as_deref()
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default();
                painter.paint(
                    &mut err,
                    &format!(
                        "  {:<11} {} ({}, {} ms){detail}\n",
                        object.outcome.as_str(),
                        object.object(),
                        object.id,
                        object.millis
                    ),
                    tone,
                )
            }
            Event::LevelDone(level) => painter.paint(
                &mut err,
                &format!("  done in {} ms\n", level.millis),
                Tone::Muted,
            ),
        };
    }
}

async fn run_controller(args: &ControllerArgs, global: &GlobalArgs) -> Result<ExitCode, Failure> {
    let mut cluster = None;
    let graph = load_graph(&args.rgd, &args.crd, global, &mut cluster).await?;
    let plan = Arc::new(Plan::new(&graph).map_err(|e| reconcile_failure(&e))?);
    let cluster = match cluster {
        Some(cluster) => cluster,
        None => global.connect().await?,
    };
    let shutdown = CancellationToken::new();
    on_interrupt(shutdown.clone(), None)?;
    let options = ControllerOptions {
        run: args.run.options(),
        workers: usize::from(args.run.workers),
        resync: args.resync,
        metrics_addr: Some(args.metrics_addr),
        namespace: if global.all_namespaces {
            None
        } else {
            global.namespace.clone()
        },
        election: args.election.options(
            false,
            &format!("zen-reconcile-{}", plan.graph()),
            cluster.namespace(),
        ),
    };
    // The start-up line and the closing summary are the core's log lines.
    reconcile::run_controller(cluster, plan, &options, &shutdown)
        .await
        .map_err(|e| reconcile_failure(&e))?;
    Ok(ExitCode::from(EXIT_OK))
}
