//! One error style and one set of exit codes for every command.
//!
//! A failure says what went wrong, where, and what to try:
//!
//! ```text
//! error: cannot write the output
//!   where: standard output
//!   cause: No space left on device (os error 28)
//!   hint: check that the file system has room
//! ```
//!
//! Exit codes: 0 ok, 1 a failure or findings, 2 a usage error (clap's own errors included).

use std::{
    fmt,
    io::{self, IsTerminal, Write},
    process::ExitCode,
};

use colored::Colorize;

use crate::output::colour_enabled;

/// The command ran and found nothing wrong.
pub const EXIT_OK: u8 = 0;
/// The command failed, or ran and has findings to report.
pub const EXIT_FAILURE: u8 = 1;
/// The command line was wrong.
pub const EXIT_USAGE: u8 = 2;

/// A command that could not do its work. Boxed: it travels in every command's `Err`, and the
/// happy path should not pay for its size.
#[derive(Debug)]
pub struct Failure(Box<Report>);

/// What a [`Failure`] reports.
#[derive(Debug)]
pub struct Report {
    what: String,
    location: Option<String>,
    snippet: Option<String>,
    causes: Vec<String>,
    hint: Option<String>,
    code: u8,
    /// The output went to a reader that stopped reading (`kubectl zen ... | head`): not a
    /// failure of ours, and not reported.
    closed_pipe: bool,
}

impl Failure {
    /// A failure (exit code 1) saying what went wrong.
    pub fn new(what: impl Into<String>) -> Self {
        Self(Box::new(Report {
            what: what.into(),
            location: None,
            snippet: None,
            causes: Vec::new(),
            hint: None,
            code: EXIT_FAILURE,
            closed_pipe: false,
        }))
    }

    /// A usage error (exit code 2) found after parsing: flags that do not go together.
    pub fn usage(what: impl Into<String>) -> Self {
        let mut failure = Self::new(what);
        failure.code = EXIT_USAGE;
        failure
    }

    /// The result could not be written to standard output.
    pub fn output(error: &io::Error) -> Self {
        let mut failure = Self::new("cannot write the output")
            .at("standard output")
            .caused_by(error)
            .hint("check the file, pipe or device that standard output is redirected to");
        failure.closed_pipe = error.kind() == io::ErrorKind::BrokenPipe;
        failure
    }

    /// Where it went wrong: a file and field, an object, a stream.
    #[must_use]
    pub fn at(mut self, location: impl Into<String>) -> Self {
        self.location = Some(location.into());
        self
    }

    /// The text around the place, such as a line with a caret under a column; printed
    /// indented under `where:`.
    #[must_use]
    pub fn snippet(mut self, snippet: impl Into<String>) -> Self {
        self.snippet = Some(snippet.into());
        self
    }

    /// The error that caused it, with that error's own sources.
    #[must_use]
    pub fn caused_by(mut self, error: &(dyn std::error::Error + 'static)) -> Self {
        let mut next = Some(error);
        while let Some(error) = next {
            self.causes.push(error.to_string());
            next = error.source();
        }
        self
    }

    /// What the user can do about it.
    #[must_use]
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Prints the failure on stderr and gives the exit code to end with.
    pub fn report(self) -> ExitCode {
        if self.closed_pipe {
            return ExitCode::from(EXIT_OK);
        }
        let colour = colour_enabled(io::stderr().is_terminal());
        let mut stderr = io::stderr().lock();
        // If stderr itself is gone there is nowhere left to report to; the exit code still says it.
        let _ = self.write(&mut stderr, colour);
        ExitCode::from(self.code)
    }

    fn write(&self, out: &mut dyn Write, colour: bool) -> io::Result<()> {
        let label = |text: &str| {
            if colour {
                text.bold().to_string()
            } else {
                text.to_owned()
            }
        };
        let error = if colour {
            "error:".red().bold().to_string()
        } else {
            "error:".to_owned()
        };
        writeln!(out, "{error} {}", self.what)?;
        if let Some(location) = &self.location {
            writeln!(out, "  {} {location}", label("where:"))?;
        }
        if let Some(snippet) = &self.snippet {
            for line in snippet.lines() {
                writeln!(out, "    {line}")?;
            }
        }
        for cause in &self.causes {
            writeln!(out, "  {} {cause}", label("cause:"))?;
        }
        if let Some(hint) = &self.hint {
            let hint_label = if colour {
                "hint:".cyan().bold().to_string()
            } else {
                "hint:".to_owned()
            };
            writeln!(out, "  {hint_label} {hint}")?;
        }
        Ok(())
    }
}

impl std::ops::Deref for Failure {
    type Target = Report;

    fn deref(&self) -> &Report {
        &self.0
    }
}

impl std::ops::DerefMut for Failure {
    fn deref_mut(&mut self) -> &mut Report {
        &mut self.0
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut text = Vec::new();
        self.write(&mut text, false).map_err(|_| fmt::Error)?;
        f.write_str(String::from_utf8_lossy(&text).trim_end())
    }
}

/// Reports a command-line error the way clap formats it, and gives its exit code: 0 for
/// `--help` and `--version`, 2 for a usage error.
pub fn usage(error: &clap::Error) -> ExitCode {
    // A closed stdout while printing help is not worth a second error.
    let _ = error.print();
    if error.use_stderr() {
        ExitCode::from(EXIT_USAGE)
    } else {
        ExitCode::from(EXIT_OK)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_report_names_what_where_cause_and_hint() {
        let disk_full = io::Error::from_raw_os_error(28);
        let failure = Failure::new("cannot write the output")
            .at("standard output")
            .caused_by(&disk_full)
            .hint("check that the file system has room");
        assert_eq!(
            failure.to_string(),
            format!(
                "error: cannot write the output\n  where: standard output\n  cause: {disk_full}\n  \
                 hint: check that the file system has room"
            )
        );
        assert_eq!(failure.code, EXIT_FAILURE);
    }

    #[test]
    fn a_snippet_is_indented_under_where() {
        let failure = Failure::new("syntax error")
            .at("<expression>:1:3")
            .snippet("a +\n  ^");
        assert_eq!(
            failure.to_string(),
            "error: syntax error\n  where: <expression>:1:3\n    a +\n      ^"
        );
    }

    #[test]
    fn causes_follow_the_source_chain() {
        #[derive(Debug)]
        struct Outer(io::Error);
        impl fmt::Display for Outer {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("cannot read kubeconfig")
            }
        }
        impl std::error::Error for Outer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let outer = Outer(io::Error::new(io::ErrorKind::NotFound, "no such file"));
        let failure = Failure::new("cannot connect").caused_by(&outer);
        assert_eq!(failure.causes, ["cannot read kubeconfig", "no such file"]);
    }

    #[test]
    fn only_the_essentials_are_printed_when_nothing_else_is_known() {
        assert_eq!(Failure::new("it broke").to_string(), "error: it broke");
    }

    #[test]
    fn coloured_report_keeps_the_words() {
        colored::control::set_override(true);
        let mut out = Vec::new();
        Failure::new("it broke")
            .hint("try again")
            .write(&mut out, true)
            .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("\u{1b}["), "{text:?}");
        assert!(text.contains("it broke") && text.contains("try again"));
    }

    #[test]
    fn output_failures_are_quiet_only_for_a_closed_pipe() {
        let pipe = Failure::output(&io::Error::from(io::ErrorKind::BrokenPipe));
        assert!(pipe.closed_pipe);
        let disk_full = Failure::output(&io::Error::from_raw_os_error(28));
        assert!(!disk_full.closed_pipe);
        assert!(
            disk_full
                .to_string()
                .starts_with("error: cannot write the output\n  where: standard output\n  cause: ")
        );
    }
}
