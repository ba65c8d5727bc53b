//! `kubectl-zen`: the kubectl plugin face of kubectl-zen.
//!
//! `main` stays thin: parse the command line once, run the command, turn the outcome into an
//! exit code. Everything a command shares lives in [`cli`] (flags), [`output`] (rendering) and
//! [`error`] (failures and exit codes).

mod cli;
mod commands;
mod error;
mod output;

use std::process::ExitCode;

/// The static Linux build's allocator: musl's own serialises every thread on one lock.
#[cfg(target_env = "musl")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = match cli::Cli::parse_args() {
        Ok(cli) => cli,
        Err(usage) => return error::usage(&usage),
    };
    match commands::run(cli) {
        Ok(code) => code,
        Err(failure) => failure.report(),
    }
}
