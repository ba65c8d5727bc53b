//! `kubectl zen tune`: right-size workloads from measured usage, lint their specs, write or
//! apply the patches; record snapshots; size controllers and gateways.

use std::io::{self, IsTerminal as _, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use kubezen::Tabular as _;
use kubezen::cluster::Cluster;
use kubezen::tune::{
    self, ControllerLoad, CpuLimit, Inventory, Options, Profile, Report, Severity, TuneError,
    Usage, live, prometheus, snapshot,
};
use tokio_util::sync::CancellationToken;

use crate::{
    cli::GlobalArgs,
    commands::{exit_on_interrupt, on_interrupt, runtime, sim::parse_duration},
    error::{EXIT_FAILURE, EXIT_OK, Failure},
    output::{Output, OutputFormat},
};

/// What `kubectl zen tune --help` says first.
pub const LONG_ABOUT: &str = "Right-size workloads from their measured usage, and lint their specs.\n\n\
    Usage comes from the cluster's metrics.k8s.io, sampled over --sample-for every --every; \
    from Prometheus history (--prometheus URL --history 14d); or from a snapshot directory \
    recorded earlier (--snapshot DIR, see `tune snapshot`). Manifests (-f) get lint findings \
    and presets only. Per container: CPU request = the --cpu-percentile of usage (highest over \
    pods), no CPU limit; memory request = limit = peak + --memory-buffer; raised after \
    OOMKills and to hold a configured JVM/Go/Node heap; at least 10m and 100Mi; no number \
    below --min-samples (the reason is shown). These are KRR's simple strategy, so the numbers \
    compare. Workloads an HPA scales on utilisation keep their request and get replica-range \
    advice instead. Samples stream into bounded-memory sketches: no series is kept.";

const HELP: &str = "\
Exit code 0 when the analysis ran (1 when a finding of severity error was made, or a patch
failed to apply), 2 for usage errors. Progress goes to standard error. -o csv prints one row
a container (CPU in millicores, memory in bytes); -o json|yaml the whole report.

Examples:
  # Sample the current namespace's usage for 10 minutes, then recommend
  kubectl zen tune

  # Two weeks of history from Prometheus, every namespace, sorted by impact
  kubectl zen tune -A --prometheus http://prometheus:9090 --history 14d

  # Record now, analyse later (offline, or in Jupyter with kubezen.tune(snapshot=...))
  kubectl zen tune snapshot ./snap -A --sample-for 30m
  kubectl zen tune --snapshot ./snap -o csv > tune.csv

  # Lint manifests; web-api preset where there is no usage
  kubectl zen tune -f k8s/ --profile web-api

  # Write server-side-apply patches, or apply them after a diff and a question
  kubectl zen tune deploy/web --patch ./patches
  kubectl zen tune deploy/web --apply

  # Size a controller, or a gateway
  kubectl zen tune controller -A
  kubectl zen tune gateway --rps 3000 --concurrency 10000";

/// Right-size workloads, lint them, record snapshots, size controllers and gateways
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, after_help = HELP)]
pub struct TuneArgs {
    /// Record a snapshot, or size a controller or gateway.
    #[command(subcommand)]
    pub command: Option<TuneCommand>,

    /// Workloads to tune: NAME or KIND/NAME (deploy/web, sts/db); all when none
    #[arg(value_name = "WORKLOAD")]
    pub workloads: Vec<String>,

    /// Manifests to lint (files or directories of YAML/JSON; - for standard input)
    #[arg(short = 'f', long = "filename", value_name = "FILE|DIR", conflicts_with_all = ["snapshot", "prometheus"])]
    pub files: Vec<PathBuf>,

    /// A snapshot directory recorded by `tune snapshot` (or in its documented format)
    #[arg(long, value_name = "DIR", conflicts_with = "prometheus")]
    pub snapshot: Option<PathBuf>,

    /// How usage is measured and what is recommended.
    #[command(flatten)]
    pub usage: UsageArgs,

    /// The CPU request is this percentile of usage
    #[arg(
        long,
        value_name = "P",
        default_value_t = 95.0,
        help_heading = "Recommendations"
    )]
    pub cpu_percentile: f64,

    /// CPU limits: none, or ratio=R for a limit of R x the request
    #[arg(long, value_name = "none|ratio=R", default_value = "none", value_parser = parse_cpu_limit, help_heading = "Recommendations")]
    pub cpu_limit: CpuLimit,

    /// Memory request = limit = peak + this percentage
    #[arg(
        long,
        value_name = "PERCENT",
        default_value_t = 15.0,
        help_heading = "Recommendations"
    )]
    pub memory_buffer: f64,

    /// After an OOM kill, memory is at least the killed limit + this percentage
    #[arg(
        long,
        value_name = "PERCENT",
        default_value_t = 25.0,
        help_heading = "Recommendations"
    )]
    pub oom_buffer: f64,

    /// Fewer samples than this (over all pods) give no number, and say so
    #[arg(
        long,
        value_name = "N",
        default_value_t = 100,
        help_heading = "Recommendations"
    )]
    pub min_samples: u64,

    /// The preset for workloads without enough usage: web-api, heavy-compute, background-job,
    /// database or cache (a workload's tune.kubezen.io/profile annotation wins)
    #[arg(long, value_name = "PROFILE", value_parser = parse_profile, help_heading = "Recommendations")]
    pub profile: Option<Profile>,

    /// Write a server-side-apply patch per changed workload and a kustomization into DIR
    #[arg(long, value_name = "DIR", help_heading = "Changes")]
    pub patch: Option<PathBuf>,

    /// Apply the patches to the cluster (field manager kubectl-zen) after showing the diff and
    /// asking
    #[arg(long, help_heading = "Changes")]
    pub apply: bool,

    /// With --apply: do not ask
    #[arg(long, short = 'y', requires = "apply", help_heading = "Changes")]
    pub yes: bool,

    /// With --apply: take the resources fields over from other field managers
    #[arg(long, requires = "apply", help_heading = "Changes")]
    pub force_conflicts: bool,
}

/// Where usage comes from, and how it is sampled.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Usage")]
pub struct UsageArgs {
    /// Read usage history from this Prometheus (http:// or https://)
    #[arg(long, value_name = "URL")]
    pub prometheus: Option<String>,

    /// With --prometheus: how far back
    #[arg(long, value_name = "DURATION", default_value = "14d", value_parser = parse_duration)]
    pub history: Duration,

    /// With --prometheus: the resolution (query step and rate window)
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration)]
    pub step: Duration,

    /// Live: how long to sample metrics.k8s.io
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = parse_duration)]
    pub sample_for: Duration,

    /// Live: how often to sample
    #[arg(long, value_name = "DURATION", default_value = "15s", value_parser = parse_duration)]
    pub every: Duration,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum TuneCommand {
    /// Record workloads and their usage into a snapshot directory, to analyse later
    Snapshot(SnapshotArgs),
    /// Size a controller's client, workers and caches from the cluster's object counts
    Controller(ControllerArgs),
    /// Size an API gateway (replicas, resources, Redis pool, cache TTLs) from its load
    Gateway(GatewayArgs),
}

/// `tune snapshot DIR`.
#[derive(Debug, Args)]
#[command(after_help = "\
The directory gets snapshot.json, objects.jsonl, series.csv and samples.csv (the format is in
docs/tune.md); samples are written as they arrive. Ctrl-C stops sampling and keeps what was
recorded.

Examples:
  kubectl zen tune snapshot ./snap -A --sample-for 30m --every 15s
  kubectl zen tune snapshot ./snap -A --prometheus http://prometheus:9090 --history 14d")]
pub struct SnapshotArgs {
    /// The directory to write (created if missing; its snapshot files are replaced)
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,

    /// Where usage comes from.
    #[command(flatten)]
    pub usage: UsageArgs,
}

/// `tune controller`.
#[derive(Debug, Args)]
#[command(after_help = "\
Counts the objects of --kinds in the cluster (or takes --objects), measures their mean size,
and advises QPS/burst (netweave's tiers: <1k objects 50/100, 1k-10k 100/200, >10k 200/400),
workers for --cores, the informer cache's memory, the resync period and zen-lead's
per-namespace cache cap.

Examples:
  kubectl zen tune controller -A --cores 4
  kubectl zen tune controller --objects 25000 --largest-namespace 3000 --cores 8")]
pub struct ControllerArgs {
    /// Kinds the controller watches (plural resource names of the core, apps and batch
    /// groups)
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "KINDS",
        default_value = "pods,services,endpoints,configmaps,deployments,replicasets"
    )]
    pub kinds: Vec<String>,

    /// Take this object count instead of counting
    #[arg(long, value_name = "N")]
    pub objects: Option<u64>,

    /// With --objects: the most objects in one namespace
    #[arg(long, value_name = "N", requires = "objects")]
    pub largest_namespace: Option<u64>,

    /// With --objects: the mean object size as JSON, bytes
    #[arg(long, value_name = "BYTES", requires = "objects")]
    pub object_bytes: Option<u64>,

    /// CPU cores the controller runs with
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub cores: u32,
}

/// `tune gateway`.
#[derive(Debug, Args)]
#[command(after_help = "\
From the netweave O2 gateway's performance guide: replicas by request rate, requests and
limits by load level, Redis pool size = (concurrency / 100) + 10, cache TTLs per resource
type, and the latency targets to hold it to (check them with `kubectl zen bench http`).

Example:
  kubectl zen tune gateway --rps 3000 --concurrency 10000")]
pub struct GatewayArgs {
    /// Requests per second expected at peak
    #[arg(long, value_name = "N")]
    pub rps: u64,

    /// Requests in flight at peak
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub concurrency: u64,
}

fn parse_cpu_limit(text: &str) -> Result<CpuLimit, String> {
    text.parse()
}

fn parse_profile(text: &str) -> Result<Profile, String> {
    text.parse()
}

fn tune_failure(error: &TuneError) -> Failure {
    let failure = Failure::new(error.to_string());
    match error {
        TuneError::Prometheus(_) => failure.hint("check the URL, and that Prometheus scrapes cAdvisor (container_cpu_usage_seconds_total)"),
        TuneError::Snapshot { .. } => failure.hint("the snapshot format is in docs/tune.md"),
        _ => failure,
    }
}

/// Runs `tune`.
pub fn run(args: &TuneArgs, global: &GlobalArgs) -> Result<ExitCode, Failure> {
    match &args.command {
        Some(TuneCommand::Gateway(gateway)) => {
            let advice = tune::presets::gateway(gateway.rps, gateway.concurrency);
            no_csv(global)?;
            Output::stdout(global.output).print(&advice)?;
            return Ok(ExitCode::from(EXIT_OK));
        }
        Some(TuneCommand::Controller(controller)) => return run_controller(controller, global),
        Some(TuneCommand::Snapshot(snapshot)) => return run_snapshot(snapshot, global),
        None => {}
    }
    let options = Options {
        cpu_percentile: args.cpu_percentile,
        cpu_limit: args.cpu_limit,
        memory_buffer: args.memory_buffer / 100.0,
        oom_buffer: args.oom_buffer / 100.0,
        min_samples: args.min_samples,
        profile: args.profile,
        ..Options::default()
    };
    options.validate().map_err(Failure::usage)?;
    if args.apply && !args.yes && !io::stdin().is_terminal() {
        return Err(Failure::usage(
            "--apply asks before it writes, and standard input is not a terminal",
        )
        .hint("add --yes to apply without asking"));
    }
    let live = args.files.is_empty() && args.snapshot.is_none();
    let usage_source = if live {
        Some(args.usage.source().map_err(Failure::usage)?)
    } else {
        None
    };
    runtime()?.block_on(async {
        let cancel = CancellationToken::new();
        // Sampling stops at Ctrl-C and what was sampled is analysed; reading history or a
        // snapshot just stops.
        let sampling = matches!(usage_source, Some(live::UsageSource::Metrics(_)));
        let watcher = on_interrupt(
            cancel.clone(),
            Some(if sampling {
                "interrupted: analysing what was sampled (Ctrl-C again to quit now)"
            } else {
                "interrupted: stopping (Ctrl-C again to quit now)"
            }),
        )?;
        let (inventory, usage, source, cluster) =
            gather(args, global, usage_source.as_ref(), &cancel).await?;
        // From here on (printing, patches, the question, the writes) Ctrl-C quits at once.
        watcher.abort();
        exit_on_interrupt()?;
        for problem in &inventory.problems {
            let _ = writeln!(io::stderr(), "warning: skipped {problem}");
        }
        let report = tune::analyse(&inventory, usage.as_ref(), &options, &source);
        print_report(&report, global)?;
        if let Some(dir) = &args.patch {
            let written = report.write_patches(dir).map_err(|e| tune_failure(&e))?;
            let _ = writeln!(
                io::stderr(),
                "wrote {} patches and kustomization.yaml to {}",
                written.len() - 1,
                dir.display()
            );
        }
        let mut failed = report.worst() == Some(Severity::Error);
        if args.apply {
            let cluster = match cluster {
                Some(cluster) => cluster,
                None => global.connect().await?,
            };
            failed |= apply(&cluster, &report, args).await?;
        }
        Ok(ExitCode::from(if failed { EXIT_FAILURE } else { EXIT_OK }))
    })
}

fn no_csv(global: &GlobalArgs) -> Result<(), Failure> {
    if global.output == OutputFormat::Csv {
        return Err(
            Failure::usage("-o csv is for the recommendations of `tune`")
                .hint("use -o table, wide, json or yaml here"),
        );
    }
    Ok(())
}

fn scope(global: &GlobalArgs, cluster: &kubezen::cluster::Cluster) -> live::Scope {
    live::Scope {
        namespace: (!global.all_namespaces).then(|| cluster.namespace().to_owned()),
        selector: global.selector.clone(),
    }
}

fn select(mut inventory: Inventory, names: &[String]) -> Result<Inventory, Failure> {
    inventory.select(names).map_err(|e| {
        Failure::new(e.to_string()).hint(
            "name workloads as NAME or KIND/NAME: deploy/web, sts/db, ds/agent, cronjob/nightly",
        )
    })?;
    Ok(inventory)
}

/// What to analyse: from the cluster (workloads listed, usage measured), a snapshot, or
/// manifests, narrowed to the workloads named; with where it came from and the cluster, when
/// one was used.
async fn gather(
    args: &TuneArgs,
    global: &GlobalArgs,
    usage_source: Option<&live::UsageSource>,
    cancel: &CancellationToken,
) -> Result<(Inventory, Option<Usage>, String, Option<Cluster>), Failure> {
    if let Some(usage_source) = usage_source {
        let connected = global.connect().await?;
        let scope = scope(global, &connected);
        let inventory = live::inventory(&connected, &scope)
            .await
            .map_err(|e| tune_failure(&e))?;
        let inventory = select(inventory, &args.workloads)?;
        let mut usage = Usage::new();
        let source = measure(
            &connected,
            &inventory,
            &scope,
            usage_source,
            cancel,
            &mut usage,
        )
        .await?;
        return Ok((inventory, Some(usage), source, Some(connected)));
    }
    if let Some(dir) = &args.snapshot {
        let flag = cancel.clone();
        let read =
            snapshot::read(dir, &move || flag.is_cancelled()).map_err(|e| tune_failure(&e))?;
        let source = format!(
            "snapshot {} ({}, {} samples)",
            dir.display(),
            read.meta.source,
            read.samples
        );
        let inventory = select(read.inventory, &args.workloads)?;
        return Ok((inventory, Some(read.usage), source, None));
    }
    let namespace = global.namespace.as_deref().unwrap_or("default");
    let inventory =
        Inventory::from_manifests(&args.files, namespace).map_err(|e| tune_failure(&e))?;
    Ok((
        select(inventory, &args.workloads)?,
        None,
        "manifests".to_owned(),
        None,
    ))
}

/// Fills `sink` from Prometheus or metrics.k8s.io, with a progress line; returns the source
/// in words.
async fn measure(
    cluster: &kubezen::cluster::Cluster,
    inventory: &Inventory,
    scope: &live::Scope,
    source: &live::UsageSource,
    cancel: &CancellationToken,
    sink: &mut dyn live::Sink,
) -> Result<String, Failure> {
    let mut line = ProgressLine::new();
    let measured = live::measure(
        cluster,
        inventory,
        scope,
        source,
        cancel,
        sink,
        &mut |text| line.show(text),
    )
    .await;
    line.done();
    measured.map_err(|e| tune_failure(&e))
}

impl UsageArgs {
    fn source(&self) -> Result<live::UsageSource, String> {
        if let Some(url) = &self.prometheus {
            let source = prometheus::Source {
                url: url.clone(),
                history: self.history,
                step: self.step,
                end: None,
            };
            source.validate()?;
            return Ok(live::UsageSource::Prometheus(source));
        }
        let sampling = live::Sampling {
            duration: self.sample_for,
            every: self.every,
        };
        sampling.validate()?;
        Ok(live::UsageSource::Metrics(sampling))
    }
}

/// A progress line on standard error: rewritten in place on a terminal, one line every ten
/// updates otherwise.
struct ProgressLine {
    terminal: bool,
    updates: u64,
    last: String,
}

impl ProgressLine {
    fn new() -> Self {
        Self {
            terminal: io::stderr().is_terminal(),
            updates: 0,
            last: String::new(),
        }
    }

    fn show(&mut self, text: &str) {
        let mut err = io::stderr().lock();
        if self.terminal {
            let _ = write!(err, "\r\x1b[2K{text}");
        } else if self.updates.is_multiple_of(10) {
            let _ = writeln!(err, "{text}");
        }
        self.updates += 1;
        text.clone_into(&mut self.last);
    }

    fn done(&mut self) {
        let mut err = io::stderr().lock();
        if self.terminal {
            let _ = writeln!(err);
        } else if self.updates % 10 != 1 && !self.last.is_empty() {
            let _ = writeln!(err, "{}", self.last);
        }
    }
}

fn print_report(report: &Report, global: &GlobalArgs) -> Result<(), Failure> {
    let output = Output::stdout(global.output);
    match global.output {
        OutputFormat::Csv => {
            let mut text = Vec::new();
            report
                .write_csv(&mut text)
                .map_err(|e| Failure::output(&e))?;
            output.print_raw(&String::from_utf8_lossy(&text))
        }
        OutputFormat::Json | OutputFormat::Yaml => output.print_data(report),
        OutputFormat::Table | OutputFormat::Wide => {
            output.print_text(report, |out, painter, wide| {
                writeln!(out, "source: {}", report.source)?;
                if report.recommendations.is_empty() {
                    writeln!(out, "no workloads found")?;
                    return Ok(());
                }
                report.to_table().write_text(out, wide, painter)?;
                if !report.findings.is_empty() {
                    writeln!(out)?;
                    report.findings_table().write_text(out, wide, painter)?;
                }
                writeln!(out)?;
                writeln!(out, "{}", report.summary())?;
                if report.unmatched_samples > 0 {
                    writeln!(
                        out,
                        "{} samples were of pods of no workload listed",
                        report.unmatched_samples
                    )?;
                }
                Ok(())
            })
        }
        OutputFormat::Dot | OutputFormat::Mermaid => output.print(report),
    }
}

/// Shows what the patches change (a server-side dry run), asks, applies. Returns whether any
/// patch failed.
async fn apply(
    cluster: &kubezen::cluster::Cluster,
    report: &Report,
    args: &TuneArgs,
) -> Result<bool, Failure> {
    let patches = report.patches();
    let mut err = io::stderr().lock();
    if patches.is_empty() {
        let _ = writeln!(
            err,
            "nothing to apply: no workload has a change with a number"
        );
        return Ok(false);
    }
    let preview = tune::apply::apply(cluster, &patches, true, args.force_conflicts).await;
    let mut failed = false;
    let mut changing = 0;
    for result in &preview {
        if let Some(error) = &result.error {
            failed = true;
            let _ = writeln!(err, "{}: {error}", result.workload);
        } else if !result.diff.is_empty() {
            changing += 1;
            let _ = writeln!(err, "--- {}\n{}", result.workload, result.diff);
        }
    }
    if changing == 0 {
        let _ = writeln!(
            err,
            "{}",
            if failed {
                "nothing applied"
            } else {
                "nothing to apply: the cluster already has these values"
            }
        );
        return Ok(failed);
    }
    if !args.yes {
        let _ = write!(
            err,
            "apply {changing} changes (field manager kubectl-zen)? [y/N] "
        );
        let _ = err.flush();
        let mut answer = String::new();
        io::stdin()
            .read_line(&mut answer)
            .map_err(|e| Failure::new("cannot read the answer").caused_by(&e))?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            let _ = writeln!(err, "nothing applied");
            return Ok(failed);
        }
    }
    let keep: Vec<_> = patches
        .into_iter()
        .zip(&preview)
        .filter(|(_, p)| p.error.is_none() && !p.diff.is_empty())
        .map(|(patch, _)| patch)
        .collect();
    for result in tune::apply::apply(cluster, &keep, false, args.force_conflicts).await {
        match &result.error {
            Some(error) => {
                failed = true;
                let _ = writeln!(err, "{}: {error}", result.workload);
            }
            None => {
                let _ = writeln!(err, "{}: applied", result.workload);
            }
        }
    }
    Ok(failed)
}

fn run_snapshot(args: &SnapshotArgs, global: &GlobalArgs) -> Result<ExitCode, Failure> {
    let usage_source = args.usage.source().map_err(Failure::usage)?;
    runtime()?.block_on(async {
        let cancel = CancellationToken::new();
        let watcher = on_interrupt(
            cancel.clone(),
            Some("interrupted: keeping what was recorded (Ctrl-C again to quit now)"),
        )?;
        let cluster = global.connect().await?;
        let scope = scope(global, &cluster);
        let mut line = ProgressLine::new();
        let recorded = live::record(
            &cluster,
            &scope,
            &usage_source,
            &args.dir,
            &cancel,
            &mut |text| line.show(text),
        )
        .await;
        line.done();
        watcher.abort();
        exit_on_interrupt()?;
        let recorded = recorded.map_err(|e| tune_failure(&e))?;
        let _ = writeln!(
            io::stderr(),
            "recorded {} workloads and {} samples from {} into {}",
            recorded.workloads,
            recorded.samples,
            recorded.source,
            args.dir.display()
        );
        Ok(ExitCode::from(EXIT_OK))
    })
}

fn run_controller(args: &ControllerArgs, global: &GlobalArgs) -> Result<ExitCode, Failure> {
    no_csv(global)?;
    let load = if let Some(objects) = args.objects {
        ControllerLoad {
            objects,
            largest_namespace: args.largest_namespace.unwrap_or(objects),
            mean_object_bytes: args.object_bytes.unwrap_or(0),
            cores: args.cores,
        }
    } else {
        runtime()?.block_on(async {
            let cluster = global.connect().await?;
            let namespace = (!global.all_namespaces).then(|| cluster.namespace().to_owned());
            tune::live::count_objects(&cluster, namespace.as_deref(), &args.kinds, args.cores)
                .await
                .map_err(|e| tune_failure(&e))
        })?
    };
    let advice = tune::presets::controller(load);
    Output::stdout(global.output).print_text(&advice, |out, painter, wide| {
        writeln!(
            out,
            "{} objects ({} in the largest namespace, {} bytes each on average), {} cores",
            advice.objects, advice.largest_namespace, advice.mean_object_bytes, advice.cores
        )?;
        advice.to_table().write_text(out, wide, painter)
    })?;
    Ok(ExitCode::from(EXIT_OK))
}
