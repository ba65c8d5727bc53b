//! One module per subcommand; each takes its parsed arguments and the shared flags, calls the
//! core and hands the result to the output layer.

pub mod cel;
pub mod completion;
pub mod graph;
pub mod reconcile;
pub mod sim;
pub mod version;

use std::process::ExitCode;

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
        Command::Cel(args) => cel::run(&args, &cli.global),
        Command::Graph(args) => graph::run(&args, &cli.global),
        Command::Version(args) => {
            version::run(&args, &cli.global).map(|()| ExitCode::from(EXIT_OK))
        }
        Command::Reconcile(args) => reconcile::run(&args, &cli.global),
        Command::Sim(args) => sim::run(&args, &cli.global),
        Command::Completion(args) => completion::run(&args).map(|()| ExitCode::from(EXIT_OK)),
    }
}
