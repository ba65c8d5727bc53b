//! `kubectl zen version`.

use clap::Args;
use kubezen::VersionInfo;

use crate::{cli::GlobalArgs, error::Failure, output::Output};

/// Print the version, git commit and build target.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  kubectl zen version
  kubectl zen version -o wide     # also the compiler and build profile
  kubectl zen version -o json     # for scripts: {\"version\": ..., \"gitCommit\": ...}")]
pub struct VersionArgs {}

/// Prints the build information of this binary.
pub fn run(_args: &VersionArgs, global: &GlobalArgs) -> Result<(), Failure> {
    Output::stdout(global.output).print(&VersionInfo::current())
}
