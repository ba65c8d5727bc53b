//! `kubectl zen completion SHELL`.

use std::io::{self, Write};

use clap::{Args, CommandFactory, ValueEnum};
use clap_complete::Shell;

use crate::{cli::Cli, error::Failure};

/// The shells completion scripts are made for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CompletionShell {
    /// GNU bash 4 or later
    Bash,
    /// Z shell
    Zsh,
    /// fish 3 or later
    Fish,
}

impl From<CompletionShell> for Shell {
    fn from(shell: CompletionShell) -> Self {
        match shell {
            CompletionShell::Bash => Shell::Bash,
            CompletionShell::Zsh => Shell::Zsh,
            CompletionShell::Fish => Shell::Fish,
        }
    }
}

/// Print a shell completion script for the `kubectl-zen` binary.
#[derive(Debug, Args)]
#[command(after_help = "\
The script completes the `kubectl-zen` command (the plugin binary itself).

Examples:
  # bash, this session only (needs the bash-completion package)
  source <(kubectl-zen completion bash)

  # bash, every session
  kubectl-zen completion bash > ~/.local/share/bash-completion/completions/kubectl-zen

  # zsh: a directory on $fpath, then restart the shell
  kubectl-zen completion zsh > \"${fpath[1]}/_kubectl-zen\"

  # fish
  kubectl-zen completion fish > ~/.config/fish/completions/kubectl-zen.fish")]
pub struct CompletionArgs {
    /// The shell to complete for
    #[arg(value_enum)]
    pub shell: CompletionShell,
}

/// Writes the completion script to standard output.
pub fn run(args: &CompletionArgs) -> Result<(), Failure> {
    let mut script = Vec::new();
    write_script(args.shell, &mut script);
    let mut stdout = io::stdout().lock();
    stdout
        .write_all(&script)
        .and_then(|()| stdout.flush())
        .map_err(|error| Failure::output(&error))
}

/// The executable's own name: shells complete it, not `kubectl zen` as help shows it.
const BIN: &str = "kubectl-zen";

fn write_script(shell: CompletionShell, out: &mut Vec<u8>) {
    clap_complete::generate(Shell::from(shell), &mut Cli::command(), BIN, out);
    if shell == CompletionShell::Bash {
        mend_bash_case_labels(out);
    }
}

/// `clap_complete` 4.6 names bash's per-subcommand cases by turning every `-` of the binary
/// name into `__subcmd__`, but dispatches to them with `-` turned into `__`; for a hyphenated
/// binary like ours no subcommand's arguments would ever complete. Rename the cases to match
/// the dispatch (the completion test proves it).
fn mend_bash_case_labels(script: &mut Vec<u8>) {
    let broken = format!("{}__subcmd__", BIN.replace('-', "__subcmd__"));
    let dispatched = format!("{}__subcmd__", BIN.replace('-', "__"));
    let text = String::from_utf8_lossy(script).replace(&broken, &dispatched);
    *script = text.into_bytes();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn script(shell: CompletionShell) -> String {
        let mut out = Vec::new();
        write_script(shell, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn every_script_names_the_binary_and_its_subcommands() {
        for shell in [
            CompletionShell::Bash,
            CompletionShell::Zsh,
            CompletionShell::Fish,
        ] {
            let text = script(shell);
            assert!(text.contains("kubectl-zen"), "{shell:?}");
            assert!(
                text.contains("version") && text.contains("completion"),
                "{shell:?}"
            );
            assert!(
                text.contains("namespace"),
                "{shell:?}: global flags complete too"
            );
        }
        assert!(script(CompletionShell::Zsh).starts_with("#compdef kubectl-zen"));
        assert!(script(CompletionShell::Fish).contains("complete -c kubectl-zen"));
    }
}
