//! The command line: the root command, the kubectl global flags every subcommand shares, and
//! the subcommands.

use std::path::PathBuf;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::logging::{LogFormat, LogLevel};
use crate::{commands, output::OutputFormat};

const EXAMPLES: &str = "\
Examples:
  # Evaluate a KRO-style CEL expression against variables
  kubectl zen cel eval 'schema.spec.replicas > 2' --vars instance.yaml

  # Load an API server as the KRO guide does, judged against the API SLOs
  kubectl zen bench api --duration=300s --workers=4 --resources=500

  # Which build is this (also as JSON, for scripts)
  kubectl zen version
  kubectl zen version -o json

  # Enable shell completion for this session
  source <(kubectl-zen completion bash)";

/// Reconcile, tune, benchmark and inspect Kubernetes resource graphs.
#[derive(Debug, Parser)]
#[command(
    name = "kubectl-zen",
    version,
    about,
    long_about = "kubectl zen: a Kubernetes performance toolkit.\n\n\
        Reconcile, tune, benchmark and inspect resource graphs from the shell. The same engine \
        is the `kubezen` Python module, for scripts and Jupyter.",
    after_help = EXAMPLES,
    propagate_version = true,
    subcommand_required = true,
    arg_required_else_help = true
)]
pub struct Cli {
    /// The kubectl flags, shared by every subcommand.
    #[command(flatten)]
    pub global: GlobalArgs,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// Parses the process's arguments. Help and usage messages name the command as users type
    /// it, `kubectl zen`; the executable (and its completion scripts) is `kubectl-zen`.
    pub fn parse_args() -> Result<Self, clap::Error> {
        let mut matches = Self::command().bin_name("kubectl zen").try_get_matches()?;
        Self::from_arg_matches_mut(&mut matches)
    }
}

/// The kubectl global flags: parsed once here, accepted anywhere on the command line, and read
/// by every command that talks to a cluster or prints a result.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Global options")]
pub struct GlobalArgs {
    /// Path to the kubeconfig file [default: $KUBECONFIG, then ~/.kube/config]
    #[arg(long, global = true, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,

    /// The kubeconfig context to use [default: the current context]
    #[arg(long, global = true, value_name = "NAME")]
    pub context: Option<String>,

    /// The namespace to work in [default: the context's namespace]
    #[arg(short = 'n', long, global = true, value_name = "NAMESPACE")]
    pub namespace: Option<String>,

    /// Work across all namespaces; wins over --namespace, as in kubectl
    #[arg(short = 'A', long, global = true)]
    pub all_namespaces: bool,

    /// Label selector to filter on, e.g. 'app=web,tier!=cache'
    #[arg(short = 'l', long, global = true, value_name = "SELECTOR")]
    pub selector: Option<String>,

    /// Client-side requests per second to the API server, 0 for unlimited [default: 50; bench:
    /// unlimited]
    #[arg(long, global = true, value_name = "QPS")]
    pub qps: Option<f64>,

    /// Client-side burst of requests to the API server [default: 100]
    #[arg(long, global = true, value_name = "N")]
    pub burst: Option<u32>,

    /// How long to wait for the API server to answer a request, e.g. 30s, 1m; 0 waits for ever
    #[arg(long, global = true, value_name = "DURATION", default_value = "30s", value_parser = commands::sim::parse_duration)]
    pub request_timeout: std::time::Duration,

    /// Output format
    #[arg(
        short = 'o',
        long,
        global = true,
        value_enum,
        value_name = "FORMAT",
        default_value_t = OutputFormat::Table
    )]
    pub output: OutputFormat,

    /// How log lines on standard error are written: text, or one JSON object a line
    #[arg(long, global = true, value_enum, value_name = "FORMAT", default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// The least severe log level written [default: `RUST_LOG` when set, else info]
    #[arg(long, global = true, value_enum, value_name = "LEVEL")]
    pub log_level: Option<LogLevel>,

    /// More log lines: -v for debug (kube-rs's and hyper's own too), -vv for trace
    #[arg(short = 'v', long = "verbose", global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

impl GlobalArgs {
    /// How to reach the cluster: kubeconfig, context and namespace, rate limit and timeout.
    pub fn cluster_options(&self) -> kubezen::cluster::ClusterOptions {
        kubezen::cluster::ClusterOptions {
            kubeconfig: self.kubeconfig.clone(),
            context: self.context.clone(),
            namespace: self.namespace.clone(),
            qps: self.qps.unwrap_or(kubezen::cluster::DEFAULT_QPS),
            burst: self.burst.unwrap_or(kubezen::cluster::DEFAULT_BURST),
            request_timeout: (!self.request_timeout.is_zero()).then_some(self.request_timeout),
            ..kubezen::cluster::ClusterOptions::default()
        }
    }

    /// The cluster these flags name, connected.
    pub async fn connect(&self) -> Result<kubezen::cluster::Cluster, crate::error::Failure> {
        kubezen::cluster::Cluster::connect(&self.cluster_options())
            .await
            .map_err(|error| crate::error::Failure::new(error.to_string()))
    }
}

/// The subcommands. A command appears here when it works.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Inspect, validate, order and export KRO resource graphs (RGDs), offline
    Graph(commands::graph::GraphArgs),
    /// Evaluate or check CEL expressions, as KRO's resource graphs use them
    Cel(commands::cel::CelArgs),
    /// Apply, diff, delete or render a resource graph instance in dependency order
    #[command(long_about = commands::reconcile::LONG_ABOUT)]
    Reconcile(commands::reconcile::ReconcileArgs),
    /// Right-size workloads from measured usage, lint them, size controllers and gateways
    #[command(long_about = commands::tune::LONG_ABOUT)]
    Tune(commands::tune::TuneArgs),
    /// Measure API servers, HTTP endpoints, CEL, graphs, the cache and reconciles; judge them
    #[command(long_about = commands::bench::LONG_ABOUT)]
    Bench(commands::bench::BenchArgs),
    /// Run zen-lead's leader-Service controller (a single active pod behind SERVICE-leader), or
    /// show its state
    #[command(long_about = commands::lead::LONG_ABOUT)]
    Lead(commands::lead::LeadArgs),
    /// Supervise many port-forwards from one configuration, one local port per target
    #[command(long_about = commands::forward::LONG_ABOUT)]
    Forward(commands::forward::ForwardArgs),
    /// Print, apply or remove the manifests that run a controller (lead, reconcile-controller)
    /// in the cluster
    #[command(long_about = commands::install::LONG_ABOUT)]
    Install(commands::install::InstallArgs),
    /// Run zen-sim, a Kubernetes API server for tests, demos and notebooks
    #[command(long_about = commands::sim::LONG_ABOUT)]
    Sim(commands::sim::SimArgs),
    /// Print the version, git commit and build target
    Version(commands::version::VersionArgs),
    /// Print a shell completion script (bash, zsh or fish)
    Completion(commands::completion::CompletionArgs),
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, error::ErrorKind};

    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("kubectl-zen").chain(args.iter().copied()))
    }

    #[test]
    fn the_command_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_flags_parse_before_and_after_the_subcommand() {
        let before = parse(&[
            "--kubeconfig",
            "/tmp/kc",
            "--context",
            "prod",
            "-n",
            "web",
            "-l",
            "app=api",
            "-o",
            "json",
            "version",
        ])
        .unwrap();
        let after = parse(&[
            "version",
            "--kubeconfig=/tmp/kc",
            "--context=prod",
            "--namespace=web",
            "--selector=app=api",
            "--output=json",
        ])
        .unwrap();
        for cli in [before, after] {
            let global = cli.global;
            assert_eq!(global.kubeconfig, Some(PathBuf::from("/tmp/kc")));
            assert_eq!(global.context.as_deref(), Some("prod"));
            assert_eq!(global.namespace.as_deref(), Some("web"));
            assert_eq!(global.selector.as_deref(), Some("app=api"));
            assert_eq!(global.output, OutputFormat::Json);
            assert!(!global.all_namespaces);
        }
    }

    #[test]
    fn defaults_are_table_output_and_the_context_namespace() {
        let global = parse(&["version"]).unwrap().global;
        assert_eq!(global.output, OutputFormat::Table);
        assert_eq!(global.namespace, None);
        assert!(!global.all_namespaces);
    }

    #[test]
    fn cluster_flags_reach_the_cluster_options() {
        let global = parse(&[
            "version",
            "--qps",
            "5",
            "--burst",
            "10",
            "--request-timeout",
            "0",
            "--context",
            "c",
        ])
        .unwrap()
        .global;
        let options = global.cluster_options();
        assert_eq!(
            (options.qps, options.burst, options.request_timeout),
            (5.0, 10, None)
        );
        assert_eq!(options.context.as_deref(), Some("c"));
        let defaults = parse(&["version"]).unwrap().global.cluster_options();
        assert_eq!(
            (defaults.qps, defaults.burst),
            (50.0, 100),
            "the zen-lead guide's defaults"
        );
        assert_eq!(
            defaults.request_timeout,
            Some(std::time::Duration::from_secs(30))
        );
        assert!(parse(&["version", "--request-timeout", "soon"]).is_err());
    }

    #[test]
    fn all_namespaces_is_accepted_beside_a_namespace() {
        let global = parse(&["version", "-A", "-n", "web"]).unwrap().global;
        assert!(global.all_namespaces);
    }

    #[test]
    fn an_unknown_output_format_is_a_usage_error() {
        let error = parse(&["version", "-o", "xml"]).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::InvalidValue);
        assert!(error.to_string().contains("table"), "{error}");
    }

    #[test]
    fn no_subcommand_shows_help() {
        let error = parse(&[]).unwrap_err();
        assert_eq!(
            error.kind(),
            ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
        );
    }
}
