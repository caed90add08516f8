//! Where records go: JSON lines for the next tool, a table for a person.
//!
//! Piped, each record is written as one JSON line and flushed at once, so the
//! next tool in the pipeline starts on a target while this one works on the
//! rest. At a terminal the same records are shown as a table once the input
//! ends (`--json` forces JSON lines). The writer also remembers whether any
//! record it wrote carries an `error`, which decides the exit status.

use crate::cli::Status;
use crate::record::{error_of, Record};
use std::io::{self, BufWriter, IsTerminal, Stdout, Write};

/// How one tool shows its records as a table.
pub struct Table {
    pub headers: &'static [&'static str],
    pub row: fn(&Record) -> Vec<String>,
}

enum Mode {
    Json,
    Table(&'static Table, Vec<Vec<String>>),
}

/// Records on their way to `W`: stdout for the tools, a buffer in tests.
pub struct Output<W: Write = Stdout> {
    out: BufWriter<W>,
    mode: Mode,
    failed: bool,
}

impl Output {
    /// JSON lines when `json` is set or stdout is not a terminal, else a table.
    pub fn new(json: bool, table: &'static Table) -> Output {
        let stdout = io::stdout();
        let table = (!json && stdout.is_terminal()).then_some(table);
        Output::to(stdout, table)
    }
}

impl<W: Write> Output<W> {
    /// Records to `out`: as a table when one is given, else as JSON lines.
    pub fn to(out: W, table: Option<&'static Table>) -> Output<W> {
        let mode = match table {
            Some(table) => Mode::Table(table, Vec::new()),
            None => Mode::Json,
        };
        Output {
            out: BufWriter::new(out),
            mode,
            failed: false,
        }
    }

    /// Write one record. An error here is the reader having gone away (a
    /// closed pipe), which the caller turns into a quiet exit.
    pub fn write(&mut self, record: &Record) -> io::Result<()> {
        if error_of(record).is_some() {
            self.failed = true;
        }
        match &mut self.mode {
            Mode::Json => {
                serde_json::to_writer(&mut self.out, record)?;
                self.out.write_all(b"\n")?;
                self.out.flush()
            }
            Mode::Table(table, rows) => {
                rows.push((table.row)(record));
                Ok(())
            }
        }
    }

    /// Flush what is left (the table, at a terminal) and say how it went.
    pub fn finish(self) -> io::Result<Status> {
        self.finish_into().map(|(status, _)| status)
    }

    /// [`Output::finish`], handing back the writer.
    pub fn finish_into(mut self) -> io::Result<(Status, W)> {
        let status = if self.failed {
            Status::TargetFailed
        } else {
            Status::Ok
        };
        if let Mode::Table(table, rows) = &self.mode {
            self.out
                .write_all(render_table(table.headers, rows).as_bytes())?;
        }
        let out = self.out.into_inner().map_err(|e| e.into_error())?;
        Ok((status, out))
    }
}

/// Columns padded to their widest cell; the last column is not padded.
pub fn render_table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
    }
    let mut text = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut l = String::new();
        for (i, cell) in cells.enumerate() {
            if i > 0 {
                l.push_str("  ");
            }
            l.push_str(cell);
            if i + 1 < widths.len() {
                let pad = widths[i].saturating_sub(cell.chars().count());
                l.extend(std::iter::repeat_n(' ', pad));
            }
        }
        text.push_str(l.trim_end());
        text.push('\n');
    };
    line(&mut headers.iter().copied());
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
    text
}

/// The status cell most tables end with: the error, or what went right.
pub fn status_cell(record: &Record, ok: impl FnOnce() -> String) -> String {
    match error_of(record) {
        Some((tool, message)) => format!("error ({tool}): {message}"),
        None => ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    static NAMES: Table = Table {
        headers: &["NAME", "STATUS"],
        row: |r: &Record| {
            let name = r.get("name").and_then(|n| n.as_str()).unwrap_or("");
            vec![name.to_string(), status_cell(r, || "ok".to_string())]
        },
    };

    fn records() -> Vec<Record> {
        [
            json!({"name": "a", "user field": [1, 2]}),
            json!({"name": "b", "error": {"tool": "vd-x", "message": "no"}}),
        ]
        .into_iter()
        .map(|v| v.as_object().unwrap().clone())
        .collect()
    }

    #[test]
    fn json_lines_keep_every_field_and_an_error_fails_the_run() {
        let mut out = Output::to(Vec::new(), None);
        out.write(&records()[0]).unwrap();
        let (status, bytes) = out.finish_into().unwrap();
        assert_eq!(status, Status::Ok);
        assert_eq!(bytes, b"{\"name\":\"a\",\"user field\":[1,2]}\n");

        let mut out = Output::to(Vec::new(), None);
        for record in &records() {
            out.write(record).unwrap();
        }
        let (status, bytes) = out.finish_into().unwrap();
        assert_eq!(status, Status::TargetFailed);
        assert_eq!(String::from_utf8(bytes).unwrap().lines().count(), 2);
    }

    #[test]
    fn a_table_is_written_when_the_input_ends() {
        let mut out = Output::to(Vec::new(), Some(&NAMES));
        for record in &records() {
            out.write(record).unwrap();
        }
        let (status, bytes) = out.finish_into().unwrap();
        assert_eq!(status, Status::TargetFailed);
        assert_eq!(
            String::from_utf8(bytes).unwrap(),
            "NAME  STATUS\na     ok\nb     error (vd-x): no\n"
        );
    }

    #[test]
    fn table_aligns_columns() {
        let rows = vec![
            vec!["a".to_string(), "long cell".to_string(), "x".to_string()],
            vec!["bbb".to_string(), "c".to_string(), "y".to_string()],
        ];
        let text = render_table(&["ONE", "TWO", "THREE"], &rows);
        assert_eq!(
            text,
            "ONE  TWO        THREE\na    long cell  x\nbbb  c          y\n"
        );
    }
}
