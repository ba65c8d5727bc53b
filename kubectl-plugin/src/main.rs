//! `kubectl-zen`: the kubectl plugin face of kubectl-zen.
//!
//! `main` stays thin: parse the command line once, run the command, turn the outcome into an
//! exit code. Everything a command shares lives in [`cli`] (flags), [`output`] (rendering) and
//! [`error`] (failures and exit codes); [`logging`] writes what the core logs.

mod cli;
mod commands;
mod error;
mod logging;
mod output;

use std::process::ExitCode;

/// The static Linux build's allocator: musl's own serialises every thread on one lock.
#[cfg(target_env = "musl")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The stack the command runs on: glibc's usual main-thread stack. It is a thread's, not the
/// main thread's, because musl reports only the part of the main thread's stack mapped so far:
/// there the core's deep-recursion guard (`stacker`) would map a fresh stack for every CEL
/// expression it compiles or evaluates (17,000 a `bench graph --sizes 1000`, seen with strace).
/// A thread's stack bounds are known on every platform.
const STACK_SIZE: usize = 8 << 20;

fn main() -> ExitCode {
    let command = std::thread::Builder::new()
        .name("kubectl-zen".to_owned())
        .stack_size(STACK_SIZE)
        .spawn(run);
    match command {
        Ok(command) => command
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
        // No thread to be had: the main thread does the work.
        Err(_) => run(),
    }
}

fn run() -> ExitCode {
    let cli = match cli::Cli::parse_args() {
        Ok(cli) => cli,
        Err(usage) => return error::usage(&usage),
    };
    logging::init(
        cli.global.log_format,
        cli.global.log_level,
        cli.global.verbose,
    );
    match commands::run(cli) {
        Ok(code) => code,
        Err(failure) => failure.report(),
    }
}
