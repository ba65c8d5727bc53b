//! The tabular form of a result.
//!
//! Every result a face shows as a table implements [`Tabular`]. The plugin writes the
//! [`Table`] as kubectl-style aligned text (colour comes from its own [`Painter`]); the Python
//! face will render the same table as HTML. JSON and YAML come from the result's `Serialize`
//! implementation, not from here.

use std::{borrow::Cow, io, io::Write};

use unicode_width::UnicodeWidthStr;

/// Columns are separated by three spaces, as in `kubectl get`.
const GUTTER: &str = "   ";

/// A result that can be shown as a table.
pub trait Tabular {
    /// The table for this result: every column, wide-only ones included.
    fn to_table(&self) -> Table;
}

/// What a cell means, for a painter that colours it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Tone {
    /// Ordinary text.
    #[default]
    Plain,
    /// A column header.
    Heading,
    /// A good outcome: a passed check, a healthy state.
    Good,
    /// Worth a look: a finding, a degraded state.
    Warning,
    /// A failure.
    Bad,
    /// Less important detail.
    Muted,
}

/// How a column's cells line up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Align {
    /// Text, names: padded on the right.
    #[default]
    Left,
    /// Numbers: padded on the left so the digits line up.
    Right,
}

/// A column of a [`Table`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// The header, upper case by kubectl convention.
    pub header: String,
    /// Shown only with `-o wide`.
    pub wide_only: bool,
    /// How the cells line up.
    pub align: Align,
}

impl Column {
    /// A left-aligned column shown in every table.
    #[must_use]
    pub fn new(header: impl Into<String>) -> Self {
        Self {
            header: header.into(),
            wide_only: false,
            align: Align::Left,
        }
    }

    /// A left-aligned column shown only with `-o wide`.
    #[must_use]
    pub fn wide(header: impl Into<String>) -> Self {
        Self {
            wide_only: true,
            ..Self::new(header)
        }
    }

    /// The same column, right-aligned (for numbers).
    #[must_use]
    pub fn right(self) -> Self {
        Self {
            align: Align::Right,
            ..self
        }
    }
}

/// One cell: its text and what it means.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Cell {
    /// The text shown; control characters are escaped when written.
    pub text: String,
    /// What the text means, for colour.
    pub tone: Tone,
}

impl Cell {
    /// A cell with a tone other than plain.
    #[must_use]
    pub fn toned(text: impl Into<String>, tone: Tone) -> Self {
        Self {
            text: text.into(),
            tone,
        }
    }
}

impl From<&str> for Cell {
    fn from(text: &str) -> Self {
        Self::toned(text, Tone::Plain)
    }
}

impl From<String> for Cell {
    fn from(text: String) -> Self {
        Self::toned(text, Tone::Plain)
    }
}

/// Writes a cell's text, coloured or not. The table pads outside what the painter writes, so
/// escape codes never count towards a column's width.
pub trait Painter {
    /// Writes `text` with the look of `tone`.
    ///
    /// # Errors
    /// Any error of `out`.
    fn paint(&self, out: &mut dyn Write, text: &str, tone: Tone) -> io::Result<()>;
}

/// A [`Painter`] that writes text as it is.
#[derive(Debug, Clone, Copy, Default)]
pub struct Plain;

impl Painter for Plain {
    fn paint(&self, out: &mut dyn Write, text: &str, _tone: Tone) -> io::Result<()> {
        out.write_all(text.as_bytes())
    }
}

/// Rows of cells under named columns.
///
/// ```
/// use kubezen::{Cell, Column, Table};
///
/// let mut table = Table::new(vec![Column::new("NAME"), Column::new("READY").right()]);
/// table.push_row(vec![Cell::from("api"), Cell::from("3/3")]);
/// table.push_row(vec![Cell::from("worker-long-name"), Cell::from("1/2")]);
/// assert_eq!(
///     table.to_plain_text(false),
///     "NAME               READY\napi                  3/3\nworker-long-name     1/2\n"
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Table {
    columns: Vec<Column>,
    rows: Vec<Vec<Cell>>,
}

impl Table {
    /// An empty table with these columns.
    #[must_use]
    pub fn new(columns: Vec<Column>) -> Self {
        Self {
            columns,
            rows: Vec::new(),
        }
    }

    /// Appends a row.
    ///
    /// # Panics
    /// When the row does not have one cell per column: a bug in the caller, not bad input.
    pub fn push_row(&mut self, cells: Vec<Cell>) {
        assert_eq!(
            cells.len(),
            self.columns.len(),
            "a table row needs one cell per column"
        );
        self.rows.push(cells);
    }

    /// The columns, wide-only ones included.
    #[must_use]
    pub fn columns(&self) -> &[Column] {
        &self.columns
    }

    /// The rows, each with one cell per column.
    #[must_use]
    pub fn rows(&self) -> &[Vec<Cell>] {
        &self.rows
    }

    /// Writes the table as aligned text: a header line, then one line per row. Columns marked
    /// wide-only appear when `wide` is set. Lines carry no trailing spaces.
    ///
    /// # Errors
    /// Any error of `out`.
    pub fn write_text(
        &self,
        out: &mut dyn Write,
        wide: bool,
        painter: &dyn Painter,
    ) -> io::Result<()> {
        let shown: Vec<usize> = (0..self.columns.len())
            .filter(|&i| wide || !self.columns[i].wide_only)
            .collect();
        let mut widths: Vec<usize> = shown
            .iter()
            .map(|&i| self.columns[i].header.width())
            .collect();
        for row in &self.rows {
            for (width, &i) in widths.iter_mut().zip(&shown) {
                *width = (*width).max(escape_controls(&row[i].text).width());
            }
        }

        let headings = shown
            .iter()
            .map(|&i| (self.columns[i].header.as_str(), Tone::Heading));
        self.write_line(out, &shown, &widths, headings, painter)?;
        for row in &self.rows {
            let cells = shown.iter().map(|&i| (row[i].text.as_str(), row[i].tone));
            self.write_line(out, &shown, &widths, cells, painter)?;
        }
        Ok(())
    }

    /// The table as plain text, for tests and logs.
    ///
    /// # Panics
    /// Never: writing to memory cannot fail.
    #[must_use]
    pub fn to_plain_text(&self, wide: bool) -> String {
        let mut out = Vec::new();
        self.write_text(&mut out, wide, &Plain)
            .expect("writing to a Vec cannot fail");
        String::from_utf8(out).expect("the table writes only UTF-8")
    }

    fn write_line<'a>(
        &self,
        out: &mut dyn Write,
        shown: &[usize],
        widths: &[usize],
        cells: impl Iterator<Item = (&'a str, Tone)>,
        painter: &dyn Painter,
    ) -> io::Result<()> {
        let last = shown.len().saturating_sub(1);
        for (position, ((text, tone), (&column, &width))) in
            cells.zip(shown.iter().zip(widths)).enumerate()
        {
            if position > 0 {
                out.write_all(GUTTER.as_bytes())?;
            }
            let text = escape_controls(text);
            let padding = width - text.width();
            let align = self.columns[column].align;
            if align == Align::Right {
                write_spaces(out, padding)?;
            }
            painter.paint(out, &text, tone)?;
            if align == Align::Left && position != last {
                write_spaces(out, padding)?;
            }
        }
        out.write_all(b"\n")
    }
}

fn write_spaces(out: &mut dyn Write, count: usize) -> io::Result<()> {
    const SPACES: &[u8; 64] = &[b' '; 64];
    let mut left = count;
    while left > 0 {
        let chunk = left.min(SPACES.len());
        out.write_all(&SPACES[..chunk])?;
        left -= chunk;
    }
    Ok(())
}

/// Control characters from cluster data (a newline in an annotation, an escape sequence in a
/// name) would break the alignment or drive the terminal; they are shown escaped instead.
#[must_use]
pub fn escape_controls(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    let mut escaped = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            escaped.extend(c.escape_default());
        } else {
            escaped.push(c);
        }
    }
    Cow::Owned(escaped)
}

/// kubectl's short age of a number of seconds: `45s`, `3m12s`, `45m`, `3h12m`, `23h`, `2d5h`,
/// `45d`, `2y` (negative counts as 0).
#[must_use]
pub fn short_age(seconds: i64) -> String {
    let seconds = seconds.max(0);
    let (minutes, hours, days) = (seconds / 60, seconds / 3600, seconds / 86_400);
    match seconds {
        0..120 => format!("{seconds}s"),
        120..600 if seconds % 60 == 0 => format!("{minutes}m"),
        120..600 => format!("{minutes}m{}s", seconds % 60),
        600..10_800 => format!("{minutes}m"),
        10_800..28_800 if minutes % 60 == 0 => format!("{hours}h"),
        10_800..28_800 => format!("{hours}h{}m", minutes % 60),
        28_800..172_800 => format!("{hours}h"),
        172_800..691_200 if hours % 24 == 0 => format!("{days}d"),
        172_800..691_200 => format!("{days}d{}h", hours % 24),
        _ if days < 730 => format!("{days}d"),
        _ => format!("{}y", days / 365),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Table {
        let mut table = Table::new(vec![
            Column::new("NAME"),
            Column::new("COUNT").right(),
            Column::wide("NODE"),
            Column::new("STATUS"),
        ]);
        table.push_row(vec![
            Cell::from("a"),
            Cell::from("7"),
            Cell::from("node-1"),
            Cell::toned("Running", Tone::Good),
        ]);
        table.push_row(vec![
            Cell::from("longer-name"),
            Cell::from("1234"),
            Cell::from("n2"),
            Cell::toned("Failed", Tone::Bad),
        ]);
        table
    }

    #[test]
    fn narrow_text_skips_wide_columns_and_aligns() {
        assert_eq!(
            sample().to_plain_text(false),
            "NAME          COUNT   STATUS\n\
             a                 7   Running\n\
             longer-name    1234   Failed\n"
        );
    }

    #[test]
    fn wide_text_shows_every_column() {
        assert_eq!(
            sample().to_plain_text(true),
            "NAME          COUNT   NODE     STATUS\n\
             a                 7   node-1   Running\n\
             longer-name    1234   n2       Failed\n"
        );
    }

    #[test]
    fn an_empty_table_is_its_header() {
        let table = Table::new(vec![Column::new("NAME"), Column::new("AGE")]);
        assert_eq!(table.to_plain_text(false), "NAME   AGE\n");
    }

    #[test]
    fn wide_characters_count_by_display_width() {
        let mut table = Table::new(vec![Column::new("NAME"), Column::new("X")]);
        table.push_row(vec![Cell::from("日本"), Cell::from("1")]);
        table.push_row(vec![Cell::from("abcdef"), Cell::from("2")]);
        assert_eq!(
            table.to_plain_text(false),
            "NAME     X\n日本     1\nabcdef   2\n"
        );
    }

    #[test]
    fn control_characters_are_escaped_not_written() {
        let mut table = Table::new(vec![Column::new("NAME"), Column::new("X")]);
        table.push_row(vec![Cell::from("evil\u{1b}[2Jname\n"), Cell::from("1")]);
        let text = table.to_plain_text(false);
        assert!(!text.contains('\u{1b}'));
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(text.contains(r"evil\u{1b}[2Jname\n   1"), "{text}");
    }

    #[test]
    fn painter_sees_tones_and_padding_stays_outside_paint() {
        struct Brackets;
        impl Painter for Brackets {
            fn paint(&self, out: &mut dyn Write, text: &str, tone: Tone) -> io::Result<()> {
                match tone {
                    Tone::Plain => write!(out, "{text}"),
                    other => write!(out, "[{other:?}:{text}]"),
                }
            }
        }
        let mut out = Vec::new();
        sample().write_text(&mut out, false, &Brackets).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text.lines().nth(1).unwrap(),
            "a                 7   [Good:Running]"
        );
        assert!(text.starts_with("[Heading:NAME]          [Heading:COUNT]   "));
    }

    #[test]
    fn long_padding_is_written_in_full() {
        let mut table = Table::new(vec![Column::new("A"), Column::new("B")]);
        table.push_row(vec![Cell::from("x".repeat(200)), Cell::from("1")]);
        table.push_row(vec![Cell::from("y"), Cell::from("2")]);
        let text = table.to_plain_text(false);
        let last = text.lines().last().unwrap();
        assert_eq!(last.len(), 200 + GUTTER.len() + 1);
        assert!(last.ends_with(" 2"));
    }

    #[test]
    #[should_panic(expected = "one cell per column")]
    fn a_short_row_is_a_caller_bug() {
        Table::new(vec![Column::new("A"), Column::new("B")]).push_row(vec![Cell::from("x")]);
    }
}
