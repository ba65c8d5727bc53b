//! `kubectl zen forward`: supervise many port-forwards from one configuration.

use std::io::{self, IsTerminal as _, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use kubezen::forward::{
    self, Allocation, Config, Reason, State, Status, SuperviseOptions, Supervisor,
};
use kubezen::table::{Cell, Column, Table, short_age};
use kubezen::{Tabular, Tone};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::on_interrupt;
use crate::cli::GlobalArgs;
use crate::error::{EXIT_FAILURE, EXIT_OK, Failure};
use crate::output::{Output, OutputFormat};

pub const LONG_ABOUT: &str = "\
Supervise many port-forwards from one configuration, natively (no kubectl processes), without
ever handing one local port to two targets.

The configuration is the embedded defaults, then ~/.config/kubectl-zen/forward.yaml (or
$XDG_CONFIG_HOME/kubectl-zen/forward.yaml) when it exists, then each -f FILE, merged field by
field: a later file can change one field of an earlier entry. kportforward's files load as
they are.

  portForwards:
    api:                      # the entry's name
      target: svc/api         # svc/NAME, pod/NAME or deploy/NAME
      namespace: shop         # default: the context's namespace (or -n)
      targetPort: http        # the Service's port (svc) or a container port: number or name
      localPort: 8080         # optional; without it a port of localPorts is chosen
      type: rest              # rest, rpc, web or other
      disabled: false
  localPorts: 50000-59999     # automatic ports
  portCheckTTL: 5s            # how long a port's availability check is trusted
  backoff: {initial: 250ms, max: 30s}

Local ports are allocated in a stable order: entries by name; first every entry that asks for
a free port gets it; then, by name again, an entry whose port was taken gets the first free port
above it, and an entry without one the first free port of localPorts.

Each entry listens on 127.0.0.1:PORT. A svc/ or deploy/ target forwards to the pod Ready the
longest; when that pod goes (deleted, not Ready) the entry reconnects to another, waiting
250ms, 500ms, 1s, ... up to 30s between tries. States: Starting, Running, Degraded (the last
connection failed), Reconnecting, Failed (needs a change: no such port, no selector, forbidden;
tried again at the longest wait), Suspended (disabled, or no local port left).";

const EXAMPLES: &str = "\
Examples:
  # Check the merged configuration, then see it (-o yaml prints a file -f accepts)
  kubectl zen forward config validate -f team.yaml
  kubectl zen forward config show -f team.yaml -o yaml

  # The local ports this machine would give each entry, and why
  kubectl zen forward plan -f team.yaml

  # Run them all: a live table until Ctrl-C
  kubectl zen forward -f team.yaml

  # One JSON line per change, for scripts
  kubectl zen forward -f team.yaml -o json | jq -c 'select(.state != \"Running\")'";

/// `kubectl zen forward`.
#[derive(Debug, Args)]
#[command(after_help = EXAMPLES)]
pub struct ForwardArgs {
    /// Check, show or plan the configuration instead of running it.
    #[command(subcommand)]
    pub command: Option<ForwardCommand>,

    #[command(flatten)]
    pub files: ConfigArgs,

    /// Redraw the status table at most this often (the table output on a terminal)
    #[arg(long, default_value = "1s", value_parser = super::sim::parse_duration, value_name = "DURATION")]
    pub refresh: Duration,

    /// How long connections in flight may finish after Ctrl-C
    #[arg(long, default_value = "2s", value_parser = super::sim::parse_duration, value_name = "DURATION")]
    pub grace: Duration,
}

/// The configuration's layers.
#[derive(Debug, Clone, Args)]
pub struct ConfigArgs {
    /// A configuration file merged over the defaults and the user's file (repeatable, in
    /// order; - reads standard input)
    #[arg(short = 'f', long = "filename", global = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,

    /// Leave out ~/.config/kubectl-zen/forward.yaml
    #[arg(long, global = true)]
    pub no_user_config: bool,
}

/// The `forward` subcommands.
#[derive(Debug, Subcommand)]
pub enum ForwardCommand {
    /// Check the configuration (exit 1 on the first problem, with its file, entry and field)
    #[command(subcommand)]
    Config(ConfigCommand),
    /// The local port each enabled entry would get on this machine, and why
    Plan,
}

/// `forward config`.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Check the merged configuration
    Validate,
    /// Print the merged configuration (-o yaml or json: a file -f accepts)
    Show,
}

/// Runs `forward`.
pub fn run(args: &ForwardArgs, global: &GlobalArgs) -> Result<ExitCode, Failure> {
    let config = load(&args.files);
    match &args.command {
        Some(ForwardCommand::Config(ConfigCommand::Validate)) => {
            let config = config?;
            let enabled = config.entries.iter().filter(|e| !e.disabled).count();
            Output::stderr(global.output).print_raw(&format!(
                "valid: {} entries ({enabled} enabled) from {}\n",
                config.entries.len(),
                config.layers.join(", ")
            ))?;
            Ok(ExitCode::from(EXIT_OK))
        }
        Some(ForwardCommand::Config(ConfigCommand::Show)) => {
            let config = config?;
            match global.output {
                OutputFormat::Json | OutputFormat::Yaml => {
                    Output::stdout(global.output).print_data(&config.to_document())?;
                }
                _ => Output::stdout(global.output).print(&Entries(&config))?,
            }
            Ok(ExitCode::from(EXIT_OK))
        }
        Some(ForwardCommand::Plan) => {
            let config = config?;
            let allocation = forward::allocate(&config);
            let exhausted = allocation
                .assignments
                .iter()
                .any(|a| a.reason == Reason::Exhausted);
            Output::stdout(global.output).print(&Plan(allocation))?;
            Ok(ExitCode::from(if exhausted {
                EXIT_FAILURE
            } else {
                EXIT_OK
            }))
        }
        None => supervise(&config?, args, global),
    }
}

fn load(files: &ConfigArgs) -> Result<Config, Failure> {
    forward::load(!files.no_user_config, &files.files).map_err(|error| {
        Failure::new(error.message.clone())
            .at(match &error.field {
                Some(field) => format!("{}: {field}", error.file),
                None => error.file.clone(),
            })
            .hint(
                "kubectl zen forward --help shows the fields; config show prints the merged result",
            )
    })
}

fn supervise(
    config: &Config,
    args: &ForwardArgs,
    global: &GlobalArgs,
) -> Result<ExitCode, Failure> {
    if config.entries.iter().all(|entry| entry.disabled) {
        return Err(
            Failure::usage(forward::ForwardError::NothingToForward.to_string()).hint(format!(
                "the configuration read: {}",
                config.layers.join(", ")
            )),
        );
    }
    super::runtime()?.block_on(async {
        let stop = CancellationToken::new();
        on_interrupt(
            stop.clone(),
            Some("stopping: closing the local ports (Ctrl-C again to quit now)"),
        )?;
        let cluster = global.connect().await?;
        let options = SuperviseOptions {
            grace: args.grace,
            ..SuperviseOptions::default()
        };
        let supervisor = Supervisor::start(&cluster, config, &options)
            .map_err(|error| Failure::new(error.to_string()))?;
        let mut changes = supervisor.subscribe();
        let mut view = View::new(global.output);
        view.show(&supervisor.statuses())?;
        // On a terminal the table is redrawn every --refresh too, so that SINCE moves on.
        let mut tick = tokio::time::interval(args.refresh.max(Duration::from_millis(100)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                _ = tick.tick(), if view.live => view.show(&supervisor.statuses())?,
                event = changes.changed() => {
                    if event.is_err() {
                        break;
                    }
                    // Changes come in bursts (a hundred entries starting): one table for
                    // each; JSON lines go out as they happen.
                    if !view.json {
                        tokio::select! {
                            () = stop.cancelled() => break,
                            () = tokio::time::sleep(args.refresh) => {}
                        }
                    }
                    changes.mark_unchanged();
                    view.show(&supervisor.statuses())?;
                }
            }
        }
        let watch_errors = supervisor.watch_errors();
        let last = supervisor.shutdown().await;
        // The Ctrl-C message went below the live table: the last one goes below both.
        view.lines = 0;
        view.show(&last)?;
        let (connections, bytes, restarts) = last.iter().fold((0, 0, 0), |(c, b, r), s| {
            (c + s.connections, b + s.bytes, r + u64::from(s.restarts))
        });
        Output::stderr(global.output).print_raw(&format!(
            "stopped {} forwards: {connections} connections, {bytes} bytes forwarded; rode out \
             {restarts} lost pods or connections and {watch_errors} watch errors\n",
            last.iter().filter(|s| s.state != State::Suspended).count()
        ))?;
        Ok(ExitCode::from(EXIT_OK))
    })
}

/// How statuses reach the user: a table redrawn in place on a terminal, the table again at
/// each change elsewhere, or a JSON line per changed entry.
struct View {
    format: OutputFormat,
    json: bool,
    live: bool,
    shown: Vec<Status>,
    lines: usize,
}

impl View {
    fn new(format: OutputFormat) -> Self {
        let json = matches!(format, OutputFormat::Json | OutputFormat::Yaml);
        Self {
            format,
            json,
            live: !json && io::stdout().is_terminal(),
            shown: Vec::new(),
            lines: 0,
        }
    }

    fn show(&mut self, statuses: &[Status]) -> Result<(), Failure> {
        let mut out = io::stdout().lock();
        let written = if self.json {
            statuses
                .iter()
                .filter(|status| !self.shown.iter().any(|shown| same(shown, status)))
                .try_for_each(|status| {
                    if self.format == OutputFormat::Yaml {
                        out.write_all(b"---\n")?;
                        serde_norway::to_writer(&mut out, status).map_err(io::Error::other)
                    } else {
                        serde_json::to_writer(&mut out, status).map_err(io::Error::other)?;
                        out.write_all(b"\n")
                    }
                })
        } else {
            if !self.live
                && statuses.len() == self.shown.len()
                && statuses.iter().zip(&self.shown).all(|(a, b)| same(a, b))
            {
                return Ok(());
            }
            let mut text = Vec::new();
            Output::stdout(self.format).write_to(&StatusRows(statuses), &mut text)?;
            let text = String::from_utf8_lossy(&text);
            let result = (|| {
                if self.live && self.lines > 0 {
                    // Up to the table's first line, and clear what was below.
                    write!(out, "\x1b[{}F\x1b[J", self.lines)?;
                } else if !self.shown.is_empty() {
                    writeln!(out)?;
                }
                out.write_all(text.as_bytes())
            })();
            self.lines = text.lines().count();
            result
        };
        self.shown = statuses.to_vec();
        written
            .and_then(|()| out.flush())
            .map_err(|error| Failure::output(&error))
    }
}

/// Whether two statuses say the same (the time aside).
fn same(a: &Status, b: &Status) -> bool {
    a.name == b.name
        && a.state == b.state
        && a.local_port == b.local_port
        && a.pod == b.pod
        && a.restarts == b.restarts
        && a.message == b.message
}

fn state_cell(state: State) -> Cell {
    let tone = match state {
        State::Running => Tone::Good,
        State::Starting | State::Reconnecting | State::Degraded => Tone::Warning,
        State::Failed => Tone::Bad,
        State::Suspended => Tone::Muted,
    };
    Cell::toned(state.as_str(), tone)
}

#[derive(Serialize)]
#[serde(transparent)]
struct StatusRows<'a>(&'a [Status]);

impl Tabular for StatusRows<'_> {
    fn to_table(&self) -> Table {
        let mut table = Table::new(vec![
            Column::new("NAME"),
            Column::new("TARGET"),
            Column::wide("NAMESPACE"),
            Column::new("LOCAL"),
            Column::new("STATE"),
            Column::new("SINCE").right(),
            Column::new("RESTARTS").right(),
            Column::wide("POD"),
            Column::wide("CONNECTIONS").right(),
            Column::new("MESSAGE"),
        ]);
        for status in self.0 {
            let since = status.seconds_in_state();
            table.push_row(vec![
                Cell::from(status.name.as_str()),
                Cell::from(status.target.as_str()),
                Cell::from(status.namespace.as_str()),
                status.local_port.map_or_else(
                    || Cell::toned("-", Tone::Muted),
                    |port| Cell::from(format!("127.0.0.1:{port}")),
                ),
                state_cell(status.state),
                Cell::toned(short_age(since), Tone::Muted),
                Cell::from(status.restarts.to_string()),
                Cell::from(match (&status.pod, status.pod_port) {
                    (Some(pod), Some(port)) => format!("{pod}:{port}"),
                    _ => "-".into(),
                }),
                Cell::from(status.connections.to_string()),
                Cell::toned(status.message.as_deref().unwrap_or("-"), Tone::Muted),
            ]);
        }
        table
    }
}

#[derive(Serialize)]
#[serde(transparent)]
struct Entries<'a>(&'a Config);

impl Tabular for Entries<'_> {
    fn to_table(&self) -> Table {
        let mut table = Table::new(vec![
            Column::new("NAME"),
            Column::new("TARGET"),
            Column::new("NAMESPACE"),
            Column::new("PORT").right(),
            Column::new("LOCAL").right(),
            Column::new("TYPE"),
            Column::new("ENABLED"),
            Column::wide("FROM"),
        ]);
        for entry in &self.0.entries {
            table.push_row(vec![
                Cell::from(entry.name.as_str()),
                Cell::from(entry.target.to_string()),
                Cell::toned(
                    entry.namespace.as_deref().unwrap_or("(context)"),
                    Tone::Muted,
                ),
                Cell::from(entry.target_port.to_string()),
                entry.local_port.map_or_else(
                    || Cell::toned("auto", Tone::Muted),
                    |p| Cell::from(p.to_string()),
                ),
                Cell::from(
                    serde_json::to_value(entry.kind)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default(),
                ),
                if entry.disabled {
                    Cell::toned("no", Tone::Muted)
                } else {
                    Cell::toned("yes", Tone::Good)
                },
                Cell::from(entry.sources.join(", ")),
            ]);
        }
        table
    }
}

#[derive(Serialize)]
#[serde(transparent)]
struct Plan(Allocation);

impl Tabular for Plan {
    fn to_table(&self) -> Table {
        let mut table = Table::new(vec![
            Column::new("NAME"),
            Column::new("REQUESTED").right(),
            Column::new("PORT").right(),
            Column::new("WHY"),
        ]);
        for assignment in &self.0.assignments {
            let (why, tone) = match &assignment.reason {
                Reason::Requested => ("requested".to_owned(), Tone::Good),
                Reason::Automatic => ("automatic".to_owned(), Tone::Plain),
                Reason::Conflict { with } => (
                    format!("{with} sorts first and holds the port"),
                    Tone::Warning,
                ),
                Reason::InUse => ("in use on this machine".to_owned(), Tone::Warning),
                Reason::Exhausted => ("no free port left".to_owned(), Tone::Bad),
            };
            table.push_row(vec![
                Cell::from(assignment.name.as_str()),
                assignment.requested.map_or_else(
                    || Cell::toned("-", Tone::Muted),
                    |p| Cell::from(p.to_string()),
                ),
                assignment.port.map_or_else(
                    || Cell::toned("-", Tone::Bad),
                    |p| Cell::from(p.to_string()),
                ),
                Cell::toned(why, tone),
            ]);
        }
        table
    }
}
