//! `kubectl zen sim`: run zen-sim, a Kubernetes-API-compatible server, in the foreground.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use kubezen::sim::{BackgroundSim, SimOptions, UsageModel};

use crate::{
    cli::GlobalArgs,
    error::{EXIT_OK, Failure},
    output::Output,
};

/// What `kubectl zen sim --help` says first (the subcommand's one line is in the CLI's list).
pub const LONG_ABOUT: &str = "Run zen-sim, a Kubernetes-API-compatible server, until Ctrl-C.\n\n\
        kubectl and the kube client work against it unchanged: discovery, JSON and protobuf \
        (kubectl create/run/expose), CRUD, patches, \
        server-side apply, watches, selectors, paging, status/scale subresources, finalizers, \
        garbage collection, CRDs, and a small control plane (Deployments -> ReplicaSets -> Pods \
        that become Ready, Endpoints, metrics.k8s.io). Everything lives in memory and is gone \
        when it stops.\n\n\
        Without --write-kubeconfig the kubeconfig is printed on standard output; the address and \
        how to use it go to standard error.";

/// Run zen-sim, a Kubernetes API server for tests, demos and notebooks, until Ctrl-C.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  # Start it and point kubectl at it
  kubectl zen sim --write-kubeconfig /tmp/zen-sim.yaml &
  kubectl --kubeconfig /tmp/zen-sim.yaml get nodes

  # HTTPS with a bearer token, on a fixed port
  kubectl zen sim --tls --token s3cret --port 6443 --write-kubeconfig ~/.kube/zen-sim

  # Pods that take 2 s to become Ready and use 70 % of their CPU requests (+-10 %)
  kubectl zen sim --ready-delay 2s --usage-cpu 0.7 --usage-noise 0.1 --write-kubeconfig kc.yaml

A pod's annotations zen-sim.kubezen.io/cpu and zen-sim.kubezen.io/memory (e.g. 250m, 300Mi)
set its usage outright.")]
pub struct SimArgs {
    /// The port to listen on; 0 picks a free one
    #[arg(long, default_value_t = 0, value_name = "PORT")]
    pub port: u16,

    /// The address to listen on
    #[arg(long, default_value = "127.0.0.1", value_name = "ADDRESS")]
    pub address: IpAddr,

    /// Write a kubeconfig for the server to FILE (mode 0600)
    #[arg(long, value_name = "FILE")]
    pub write_kubeconfig: Option<PathBuf>,

    /// Serve HTTPS with a fresh self-signed CA (the kubeconfig carries it)
    #[arg(long)]
    pub tls: bool,

    /// Require this bearer token (the kubeconfig carries it)
    #[arg(long, value_name = "TOKEN")]
    pub token: Option<String>,

    /// Nodes to create
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub nodes: usize,

    /// How long a scheduled pod takes to become Ready, e.g. 200ms, 2s
    #[arg(long, default_value = "200ms", value_parser = parse_duration, value_name = "DURATION")]
    pub ready_delay: Duration,

    /// metrics.k8s.io: CPU used, as a fraction of each container's CPU request
    #[arg(
        long,
        default_value_t = 0.4,
        value_name = "FRACTION",
        help_heading = "Usage model"
    )]
    pub usage_cpu: f64,

    /// metrics.k8s.io: memory used, as a fraction of each container's memory request
    #[arg(
        long,
        default_value_t = 0.6,
        value_name = "FRACTION",
        help_heading = "Usage model"
    )]
    pub usage_memory: f64,

    /// metrics.k8s.io: how far usage swings around its level over 5 minutes (0.2 = +-20 %)
    #[arg(
        long,
        default_value_t = 0.2,
        value_name = "FRACTION",
        help_heading = "Usage model"
    )]
    pub usage_noise: f64,
}

/// Every duration flag reads as the core does: `200ms`, `2s`, `1m`, `3h`, `14d`, `2w`, or seconds.
pub use kubezen::quantity::parse_duration;

/// Runs the simulator until Ctrl-C or SIGTERM.
pub fn run(args: &SimArgs, global: &GlobalArgs) -> Result<ExitCode, Failure> {
    let usage = UsageModel::with_levels(args.usage_cpu, args.usage_memory, args.usage_noise)
        .map_err(Failure::usage)?;
    let options = SimOptions {
        usage,
        host: args.address,
        port: args.port,
        tls: args.tls,
        token: args.token.clone(),
        ready_delay: args.ready_delay,
        nodes: args.nodes,
        ..SimOptions::default()
    };
    // Listen for the signals before saying where zen-sim serves: a script that reads the
    // kubeconfig and stops zen-sim at once must find the handler already there.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| Failure::new("cannot wait for Ctrl-C").caused_by(&error))?;
    let stop = tokio_util::sync::CancellationToken::new();
    runtime.block_on(async { super::on_interrupt(stop.clone(), None) })?;
    let sim = BackgroundSim::start(options).map_err(|error| {
        Failure::new("cannot start zen-sim")
            .caused_by(&error)
            .hint("choose another --port, or 0 for any free one")
    })?;
    let url = sim.sim().url().to_owned();
    let notes = Output::stderr(global.output);
    if let Some(path) = &args.write_kubeconfig {
        sim.sim()
            .write_kubeconfig(path)
            .map_err(|error| Failure::new("cannot write the kubeconfig").caused_by(&error))?;
        notes.print_raw(&format!(
            "zen-sim serving at {url}\nkubeconfig: {path}\n  export KUBECONFIG={path}\nCtrl-C to stop.\n",
            path = path.display()
        ))?;
    } else {
        Output::stdout(global.output).print_raw(&sim.sim().kubeconfig())?;
        notes.print_raw(&format!(
            "zen-sim serving at {url}; the kubeconfig is on standard output. Ctrl-C to stop.\n"
        ))?;
    }
    runtime.block_on(stop.cancelled());
    sim.stop();
    Ok(ExitCode::from(EXIT_OK))
}
