//! The one output layer: every command hands its result here, and the `-o` flag decides how it
//! is shown. Tables are coloured only on a terminal and never under `NO_COLOR`; JSON and YAML
//! are never coloured, so scripts can always parse them.

use std::{
    ffi::OsStr,
    io::{self, IsTerminal, Write},
};

use clap::ValueEnum;
use colored::Colorize;
use kubezen::{
    Tabular, Tone,
    table::{Painter, Plain},
};
use serde::Serialize;

use crate::error::Failure;

/// The `-o/--output` formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Aligned columns for people
    Table,
    /// The table with every column
    Wide,
    /// Pretty-printed JSON for scripts
    Json,
    /// YAML, as `kubectl get -o yaml` prints it
    Yaml,
    /// Graphviz DOT (graph export)
    Dot,
    /// A Mermaid flowchart (graph export)
    Mermaid,
    /// Comma-separated values, one row a result (tune)
    Csv,
}

/// How results reach the user: a stream and a format.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    format: OutputFormat,
    colour: bool,
    stream: Stream,
}

/// Results go to standard output; side reports (statistics, progress) to standard error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stream {
    Stdout,
    Stderr,
}

impl Output {
    /// Output in `format` to standard output, coloured when it is a terminal and the
    /// environment allows it.
    pub fn stdout(format: OutputFormat) -> Self {
        Self {
            format,
            colour: colour_enabled(io::stdout().is_terminal()),
            stream: Stream::Stdout,
        }
    }

    /// Output in `format` to standard error, for reports beside the result.
    pub fn stderr(format: OutputFormat) -> Self {
        Self {
            format,
            colour: colour_enabled(io::stderr().is_terminal()),
            stream: Stream::Stderr,
        }
    }

    /// Prints a result in the chosen format.
    pub fn print<T: Serialize + Tabular>(self, result: &T) -> Result<(), Failure> {
        self.with_stream(|out| self.write(result, out))
    }

    /// Prints data that has no table form as JSON or YAML: the YAML format writes YAML, every
    /// other format JSON.
    pub fn print_data<T: Serialize>(self, data: &T) -> Result<(), Failure> {
        self.with_stream(|out| self.write_data(data, out))
    }

    /// Prints a result that people read as free-form text: `text` writes it for the table
    /// formats (with the painter and whether `-o wide` was asked), JSON and YAML print `data`.
    pub fn print_text<T: Serialize>(
        self,
        data: &T,
        text: impl FnOnce(&mut dyn Write, &dyn Painter, bool) -> io::Result<()>,
    ) -> Result<(), Failure> {
        self.with_stream(|out| {
            let written = match self.format {
                OutputFormat::Table | OutputFormat::Wide => {
                    let painter: &dyn Painter = if self.colour { &Colour } else { &Plain };
                    text(out, painter, self.format == OutputFormat::Wide)
                }
                OutputFormat::Json
                | OutputFormat::Dot
                | OutputFormat::Mermaid
                | OutputFormat::Csv => {
                    return self.with_format(OutputFormat::Json).write_data(data, out);
                }
                OutputFormat::Yaml => return self.write_data(data, out),
            };
            written
                .and_then(|()| out.flush())
                .map_err(|error| Failure::output(&error))
        })
    }

    /// Prints text as it is (a DOT or Mermaid document).
    pub fn print_raw(self, text: &str) -> Result<(), Failure> {
        self.with_stream(|out| {
            out.write_all(text.as_bytes())
                .and_then(|()| out.flush())
                .map_err(|error| Failure::output(&error))
        })
    }

    /// Writes a result in the chosen format to `out`, coloured as this stream would be (for
    /// output redrawn in place).
    pub fn write_to<T: Serialize + Tabular>(
        self,
        result: &T,
        out: &mut dyn Write,
    ) -> Result<(), Failure> {
        self.write(result, out)
    }

    fn with_format(self, format: OutputFormat) -> Self {
        Self { format, ..self }
    }

    fn write_data<T: Serialize>(self, data: &T, out: &mut dyn Write) -> Result<(), Failure> {
        let written = if self.format == OutputFormat::Yaml {
            serde_norway::to_writer(&mut *out, data).map_err(io::Error::other)
        } else {
            write_json(out, data)
        };
        written
            .and_then(|()| out.flush())
            .map_err(|error| Failure::output(&error))
    }

    fn with_stream(
        self,
        write: impl FnOnce(&mut dyn Write) -> Result<(), Failure>,
    ) -> Result<(), Failure> {
        match self.stream {
            Stream::Stdout => write(&mut io::stdout().lock()),
            Stream::Stderr => write(&mut io::stderr().lock()),
        }
    }

    fn write<T: Serialize + Tabular>(self, result: &T, out: &mut dyn Write) -> Result<(), Failure> {
        let written = match self.format {
            OutputFormat::Table | OutputFormat::Wide => {
                let wide = self.format == OutputFormat::Wide;
                let painter: &dyn Painter = if self.colour { &Colour } else { &Plain };
                result.to_table().write_text(out, wide, painter)
            }
            OutputFormat::Json => write_json(out, result),
            OutputFormat::Yaml => serde_norway::to_writer(&mut *out, result).map_err(|error| {
                // serde_norway folds the writer's own errors into its error type.
                io::Error::other(error)
            }),
            OutputFormat::Dot | OutputFormat::Mermaid => {
                return Err(
                    Failure::usage("-o dot and -o mermaid are for `graph export`")
                        .hint("use -o table, wide, json or yaml here"),
                );
            }
            OutputFormat::Csv => {
                return Err(Failure::usage("-o csv is for `tune`")
                    .hint("use -o table, wide, json or yaml here"));
            }
        };
        written
            .and_then(|()| out.flush())
            .map_err(|error| Failure::output(&error))
    }
}

fn write_json<T: Serialize>(out: &mut dyn Write, data: &T) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, data)
        .map_err(io::Error::from)
        .and_then(|()| out.write_all(b"\n"))
}

/// Whether to colour a stream: never when `NO_COLOR` is set (no-color.org) or `TERM=dumb`,
/// always when `CLICOLOR_FORCE` is set and not `0`, otherwise only on a terminal.
pub fn colour_enabled(is_terminal: bool) -> bool {
    decide_colour(
        is_terminal,
        std::env::var_os("NO_COLOR").as_deref(),
        std::env::var_os("CLICOLOR_FORCE").as_deref(),
        std::env::var_os("TERM").as_deref(),
    )
}

fn decide_colour(
    is_terminal: bool,
    no_color: Option<&OsStr>,
    clicolor_force: Option<&OsStr>,
    term: Option<&OsStr>,
) -> bool {
    let set = |value: Option<&OsStr>| value.is_some_and(|v| !v.is_empty());
    if set(no_color) {
        return false;
    }
    if set(clicolor_force) && clicolor_force != Some(OsStr::new("0")) {
        return true;
    }
    is_terminal && term != Some(OsStr::new("dumb"))
}

/// Paints table cells with ANSI colours. Used only once [`colour_enabled`] said yes, so the
/// `colored` crate's own environment checks are switched off in `main`.
pub struct Colour;

impl Painter for Colour {
    fn paint(&self, out: &mut dyn Write, text: &str, tone: Tone) -> io::Result<()> {
        match tone {
            Tone::Plain => out.write_all(text.as_bytes()),
            Tone::Heading => write!(out, "{}", text.bold()),
            Tone::Good => write!(out, "{}", text.green()),
            Tone::Warning => write!(out, "{}", text.yellow()),
            Tone::Bad => write!(out, "{}", text.red().bold()),
            Tone::Muted => write!(out, "{}", text.dimmed()),
        }
    }
}

#[cfg(test)]
mod tests {
    use kubezen::{Cell, Column, Table};

    use super::*;

    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Sample {
        name: &'static str,
        ready_replicas: u32,
        healthy: bool,
    }

    impl Tabular for Sample {
        fn to_table(&self) -> Table {
            let mut table = Table::new(vec![
                Column::new("NAME"),
                Column::new("READY").right(),
                Column::wide("HEALTHY"),
            ]);
            let health = if self.healthy {
                Cell::toned("yes", Tone::Good)
            } else {
                Cell::toned("no", Tone::Bad)
            };
            table.push_row(vec![
                Cell::from(self.name),
                Cell::from(self.ready_replicas.to_string()),
                health,
            ]);
            table
        }
    }

    const SAMPLE: Sample = Sample {
        name: "api",
        ready_replicas: 3,
        healthy: true,
    };

    fn render(format: OutputFormat, colour: bool) -> String {
        let mut out = Vec::new();
        Output {
            format,
            colour,
            stream: Stream::Stdout,
        }
        .write(&SAMPLE, &mut out)
        .unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn table_and_wide() {
        assert_eq!(
            render(OutputFormat::Table, false),
            "NAME   READY\napi        3\n"
        );
        assert_eq!(
            render(OutputFormat::Wide, false),
            "NAME   READY   HEALTHY\napi        3   yes\n"
        );
    }

    #[test]
    fn json_is_pretty_and_ends_with_a_newline() {
        assert_eq!(
            render(OutputFormat::Json, false),
            "{\n  \"name\": \"api\",\n  \"readyReplicas\": 3,\n  \"healthy\": true\n}\n"
        );
    }

    #[test]
    fn yaml_has_no_document_marker() {
        assert_eq!(
            render(OutputFormat::Yaml, false),
            "name: api\nreadyReplicas: 3\nhealthy: true\n"
        );
    }

    #[test]
    fn colour_applies_to_tables_only() {
        colored::control::set_override(true);
        let table = render(OutputFormat::Wide, true);
        assert!(table.contains("\u{1b}[32myes\u{1b}[0m"), "{table:?}");
        assert!(!render(OutputFormat::Json, true).contains('\u{1b}'));
        assert!(!render(OutputFormat::Yaml, true).contains('\u{1b}'));
    }

    #[test]
    fn a_failing_writer_becomes_a_failure() {
        struct Full;
        impl Write for Full {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::from_raw_os_error(28))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        for format in [OutputFormat::Table, OutputFormat::Json, OutputFormat::Yaml] {
            let failure = Output {
                format,
                colour: false,
                stream: Stream::Stdout,
            }
            .write(&SAMPLE, &mut Full)
            .unwrap_err();
            assert!(
                failure.to_string().contains("cannot write the output"),
                "{format:?}: {failure}"
            );
        }
    }

    #[test]
    fn colour_decision_follows_no_color_clicolor_force_and_the_terminal() {
        let os = |s: &'static str| Some(OsStr::new(s));
        assert!(decide_colour(true, None, None, os("xterm")));
        assert!(!decide_colour(false, None, None, os("xterm")));
        assert!(!decide_colour(true, os("1"), None, None), "NO_COLOR wins");
        assert!(
            !decide_colour(true, os("1"), os("1"), None),
            "even over CLICOLOR_FORCE"
        );
        assert!(
            decide_colour(true, os(""), None, None),
            "an empty NO_COLOR is unset"
        );
        assert!(decide_colour(false, None, os("1"), None));
        assert!(!decide_colour(false, None, os("0"), None));
        assert!(!decide_colour(true, None, None, os("dumb")));
    }
}
