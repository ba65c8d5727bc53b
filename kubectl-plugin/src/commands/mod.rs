//! One module per subcommand; each takes its parsed arguments and the shared flags, calls the
//! core and hands the result to the output layer.

pub mod bench;
pub mod cel;
pub mod completion;
pub mod election;
pub mod forward;
pub mod graph;
pub mod install;
pub mod lead;
pub mod reconcile;
pub mod sim;
pub mod tune;
pub mod version;

use std::io::{self, Write as _};
use std::process::ExitCode;

use tokio_util::sync::CancellationToken;

use crate::{
    cli::{Cli, Command},
    error::{EXIT_OK, Failure},
};

/// Runs the parsed command line.
pub fn run(cli: Cli) -> Result<ExitCode, Failure> {
    // `colored` would otherwise make its own, different decision from the environment; the
    // output layer decides per stream instead, and calls it only when colour is wanted.
    colored::control::set_override(true);
    match cli.command {
        Command::Bench(args) => bench::run(&args, &cli.global),
        Command::Cel(args) => cel::run(&args, &cli.global),
        Command::Graph(args) => graph::run(&args, &cli.global),
        Command::Version(args) => {
            version::run(&args, &cli.global).map(|()| ExitCode::from(EXIT_OK))
        }
        Command::Forward(args) => forward::run(&args, &cli.global),
        Command::Install(args) => install::run(&args, &cli.global),
        Command::Lead(args) => lead::run(&args, &cli.global),
        Command::Reconcile(args) => reconcile::run(&args, &cli.global),
        Command::Sim(args) => sim::run(&args, &cli.global),
        Command::Tune(args) => tune::run(&args, &cli.global),
        Command::Completion(args) => completion::run(&args).map(|()| ExitCode::from(EXIT_OK)),
    }
}

/// The runtime of commands that talk to a cluster: two worker threads are plenty for a
/// client.
pub fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|error| Failure::new("cannot start the runtime").caused_by(&error))
}

/// Cancels `cancel` on Ctrl-C (SIGINT) or SIGTERM, listening from now on, before any work
/// starts; with `again` (what to say on the first), a second Ctrl-C quits at once (exit code
/// 130).
pub fn on_interrupt(
    cancel: CancellationToken,
    again: Option<&'static str>,
) -> Result<tokio::task::JoinHandle<()>, Failure> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let listen = |kind| {
            signal(kind).map_err(|error| Failure::new("cannot listen for Ctrl-C").caused_by(&error))
        };
        let (mut interrupt, mut terminate) = (
            listen(SignalKind::interrupt())?,
            listen(SignalKind::terminate())?,
        );
        Ok(tokio::spawn(async move {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
            if let Some(message) = again {
                let _ = writeln!(io::stderr(), "{message}");
            }
            cancel.cancel();
            if again.is_some() && interrupt.recv().await.is_some() {
                std::process::exit(130);
            }
        }))
    }
    #[cfg(not(unix))]
    Ok(tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            cancel.cancel();
        }
    }))
}

/// Quits at once (exit code 130) on Ctrl-C or SIGTERM: for the phases after a cancellable
/// one, once its listener is gone (a signal handler, once installed, replaces the default of
/// quitting for the rest of the process).
pub fn exit_on_interrupt() -> Result<tokio::task::JoinHandle<()>, Failure> {
    let cancel = CancellationToken::new();
    let watcher = on_interrupt(cancel.clone(), None)?;
    Ok(tokio::spawn(async move {
        cancel.cancelled().await;
        watcher.abort();
        std::process::exit(130);
    }))
}
