//! Where records go: JSON lines for the next tool, a table for a person.
//!
//! Piped, each record is written as one JSON line and flushed at once, so the
//! next tool in the pipeline starts on a target while this one works on the
//! rest. At a terminal the same records are shown as a table (`--json`
//! forces JSON lines) that streams too: each row is written as its record
//! is, in input order, so the columns cannot be sized to their widest cell.
//! Every column but the last gets a fixed share of the terminal's width and
//! a longer cell is cut with an ellipsis (the whole text is in `--json`;
//! the target's name, in the first column, and a cell holding a path are
//! cut in the middle, where their ends tell them apart);
//! the last column, the status that carries a target's error, is written
//! whole. The table ends with the summary line ([`Summary`]).
//!
//! The writer also remembers whether any record it wrote carries an `error`,
//! which decides the exit status, and tells the console (the progress bar)
//! about each record.

use crate::console;
use crate::escape;
use crate::record::{error_of, Record};
use crate::summary::Summary;
use std::io::{self, BufWriter, Stdout, Write};
use std::time::Instant;

/// How a tool's run ended when it did not stop on a setup error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    TargetFailed,
    /// An exit status the tool chose itself (`vd-diff --check`'s 1 for
    /// drift); it stands over the others.
    Exit(u8),
}

impl Status {
    /// Failed when either is.
    pub fn or(self, other: Status) -> Status {
        match (self, other) {
            (Status::Ok, other) => other,
            (Status::TargetFailed, Status::Exit(code)) => Status::Exit(code),
            (this, _) => this,
        }
    }
}

/// How one tool shows its records as a table.
pub struct Table {
    pub headers: &'static [&'static str],
    pub row: fn(&Record) -> Vec<String>,
}

/// The terminal width assumed when it cannot be read.
const DEFAULT_WIDTH: usize = 100;

enum Mode {
    Json,
    Table {
        table: &'static Table,
        /// Widths of every column but the last.
        widths: Vec<usize>,
        /// Whether the header row is out.
        started: bool,
    },
}

/// A record done with but not written yet, kept in as little memory as its
/// output needs: records wait for the ones before them (output keeps input
/// order), and a long run may hold many. As a JSON line it is the line and
/// the few fields the counts read ([`Summary::COUNTED`]), a fraction of the
/// record's size as a map; for a table it is the record.
pub enum Ready {
    Record(Record),
    Line { line: String, counted: Record },
}

/// Records on their way to `W`: stdout for the tools, a buffer in tests.
pub struct Output<W: Write = Stdout> {
    out: BufWriter<W>,
    mode: Mode,
    failed: bool,
    summary: Summary,
    started: Instant,
    /// Writes go to the terminal, where the progress bar steps aside.
    terminal: bool,
    /// Records wait in the buffer for [`Output::flush`] (see
    /// [`Output::flush_when_told`]).
    hold: bool,
}

impl Output {
    /// JSON lines when `json` is set or stdout is not a terminal, else a table.
    pub fn new(json: bool, table: &'static Table) -> Output {
        let stdout = io::stdout();
        let terminal = console::stdout_is_terminal();
        let width = terminal_size::terminal_size_of(&stdout)
            .map_or(DEFAULT_WIDTH, |(w, _)| usize::from(w.0));
        let table = (!json && terminal).then_some(table);
        let mut out = Output::with_width(stdout, table, width);
        out.terminal = terminal;
        out
    }
}

impl<W: Write> Output<W> {
    /// Records to `out`: as a table when one is given, else as JSON lines.
    pub fn to(out: W, table: Option<&'static Table>) -> Output<W> {
        Output::with_width(out, table, DEFAULT_WIDTH)
    }

    /// [`Output::to`], the table fitted to a terminal `width` columns wide.
    pub fn with_width(out: W, table: Option<&'static Table>, width: usize) -> Output<W> {
        let mode = match table {
            Some(table) => Mode::Table {
                table,
                widths: column_widths(table.headers, width),
                started: false,
            },
            None => Mode::Json,
        };
        Output {
            // Room for a run of records held back (flush_when_told).
            out: BufWriter::with_capacity(1 << 16, out),
            mode,
            failed: false,
            summary: Summary::new("targets"),
            started: Instant::now(),
            terminal: false,
            hold: false,
        }
    }

    /// What the summary calls a record (`wheels` for vd-add).
    pub fn counting(&mut self, noun: &'static str) {
        self.summary.noun = noun;
    }

    /// Write one record. An error here is the reader having gone away (a
    /// closed pipe), which the caller turns into a quiet exit.
    pub fn write(&mut self, record: &Record) -> io::Result<()> {
        let error = self.count(record);
        let text = match &mut self.mode {
            Mode::Json => {
                let mut line = serde_json::to_string(record)?;
                line.push('\n');
                line
            }
            Mode::Table {
                table,
                widths,
                started,
            } => {
                let mut text = String::new();
                if !std::mem::replace(started, true) {
                    text.push_str(&table_row(widths, table.headers.iter().copied()));
                }
                let cells = (table.row)(record);
                text.push_str(&table_row(widths, cells.iter().map(String::as_str)));
                text
            }
        };
        self.put(&text)?;
        console::written(error, &self.summary);
        Ok(())
    }

    /// `record` as it will be written, to be written later with
    /// [`Output::write_ready`].
    pub fn ready(&self, record: Record) -> Ready {
        if !self.is_json() {
            return Ready::Record(record);
        }
        let Ok(mut line) = serde_json::to_string(&record) else {
            // Cannot happen to a map with string keys; if it did, the
            // write says so.
            return Ready::Record(record);
        };
        line.push('\n');
        let counted = Summary::COUNTED
            .iter()
            .filter_map(|&field| Some((field.to_string(), record.get(field)?.clone())))
            .collect();
        Ready::Line { line, counted }
    }

    /// Write a record made ready with [`Output::ready`].
    pub fn write_ready(&mut self, ready: &Ready) -> io::Result<()> {
        match ready {
            Ready::Record(record) => self.write(record),
            Ready::Line { line, counted } => self.write_json_line(line, counted),
        }
    }

    /// Whether records go out as JSON lines (not as a table).
    pub fn is_json(&self) -> bool {
        matches!(self.mode, Mode::Json)
    }

    /// Write a record its tool has written as a JSON line itself (`line`,
    /// with its newline): JSON mode only ([`Output::is_json`]). `record`
    /// holds the fields the counts read (at least `error` and the stages'
    /// outcomes), and may leave out the rest.
    pub fn write_json_line(&mut self, line: &str, record: &Record) -> io::Result<()> {
        debug_assert!(self.is_json());
        let error = self.count(record);
        self.put(line)?;
        console::written(error, &self.summary);
        Ok(())
    }

    /// Flush records only when told to, not after each one: for a tool
    /// that writes many records in the time a write(2) takes, and that
    /// calls [`Output::flush`] whenever it is about to wait (for input, or
    /// on long work), so a record still reaches the next tool as soon as
    /// waiting for this one could delay it. Not at a terminal.
    pub fn flush_when_told(&mut self) {
        self.hold = !self.terminal;
    }

    /// Write out the records held back ([`Output::flush_when_told`]).
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// Count a record for the exit status and the summary; its error.
    fn count(&mut self, record: &Record) -> Option<(String, String)> {
        let error = error_of(record);
        self.failed |= error.is_some();
        self.summary.add(record);
        error
    }

    /// Write and flush `text`, the bar stepping aside at a terminal.
    fn put(&mut self, text: &str) -> io::Result<()> {
        let out = &mut self.out;
        let hold = self.hold;
        let mut write = || {
            out.write_all(text.as_bytes())?;
            if hold {
                return Ok(());
            }
            out.flush()
        };
        if self.terminal {
            console::show(write)
        } else {
            write()
        }
    }

    /// Flush what is left (the table's summary, at a terminal) and say how
    /// it went.
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
        let in_table = matches!(self.mode, Mode::Table { .. });
        if let Mode::Table {
            table,
            widths,
            started,
        } = &self.mode
        {
            let mut text = String::new();
            if !started {
                text.push_str(&table_row(widths, table.headers.iter().copied()));
            }
            text.push_str(&self.summary.line(self.started.elapsed()));
            text.push('\n');
            self.put(&text)?;
        }
        console::finish(&self.summary, in_table);
        let out = self.out.into_inner().map_err(|e| e.into_error())?;
        Ok((status, out))
    }
}

/// The widths of a streamed table's columns but the last, for a terminal
/// `width` columns wide: about two thirds of it, the first column (the
/// target) taking half of that and the others sharing the rest, none
/// narrower than its header.
fn column_widths(headers: &[&str], width: usize) -> Vec<usize> {
    let fixed = headers.len().saturating_sub(1);
    if fixed == 0 {
        return Vec::new();
    }
    let budget = width.saturating_sub(2 * fixed) * 2 / 3;
    let first = if fixed == 1 { budget } else { budget / 2 };
    let others = (budget - first) / (fixed - 1).max(1);
    headers[..fixed]
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let share = if i == 0 { first } else { others };
            share.max(h.chars().count())
        })
        .collect()
}

/// One row of a streamed table: cells padded or cut to `widths`, the last
/// cell whole.
fn table_row<'a>(widths: &[usize], cells: impl Iterator<Item = &'a str>) -> String {
    let mut line = String::new();
    for (i, cell) in cells.enumerate() {
        let cell: &str = &escape::cell(cell);
        if i > 0 {
            line.push_str("  ");
        }
        match widths.get(i) {
            Some(&width) => {
                // The first column names the target: its start (user and
                // host) and its end (the venv) tell targets apart. So do a
                // path's ends (the folder, and the file's own name).
                let cut = if i == 0 || cell.contains('/') {
                    truncate_middle(cell, width)
                } else {
                    truncate(cell, width)
                };
                let pad = width.saturating_sub(cut.chars().count());
                line.push_str(&cut);
                line.extend(std::iter::repeat_n(' ', pad));
            }
            None => line.push_str(cell),
        }
    }
    let mut line = line.trim_end().to_string();
    line.push('\n');
    line
}

/// `text` cut to `width` characters in the middle, marked with an ellipsis.
fn truncate_middle(text: &str, width: usize) -> String {
    let text = text.replace(['\n', '\r'], " ");
    let count = text.chars().count();
    if count <= width || width < 3 {
        return truncate(&text, width);
    }
    let tail = (width - 1) / 2;
    let head = width - 1 - tail;
    let mut cut: String = text.chars().take(head).collect();
    cut.push('…');
    cut.extend(text.chars().skip(count - tail));
    cut
}

/// `text` cut to `width` characters, the cut marked with an ellipsis.
fn truncate(text: &str, width: usize) -> String {
    // A cell is one line: a line break inside would break the table.
    let text = text.replace(['\n', '\r'], " ");
    if text.chars().count() <= width {
        return text;
    }
    let mut cut: String = text.chars().take(width.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// Columns padded to their widest cell; the last column is not padded.
pub fn render_table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|row| row.iter().map(|c| escape::cell(c).into_owned()).collect())
        .collect();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
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
    for row in &rows {
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

    /// Records kept as lines until their turn are written, counted and
    /// summed up as the records themselves would be, and keep only the
    /// counted fields beside the line.
    #[test]
    fn a_record_kept_ready_is_written_and_counted_as_itself() {
        let full = |v: serde_json::Value| v.as_object().unwrap().clone();
        let records = [
            full(json!({
                "host": "web1", "venv": "/srv/a", "installed": {"django": "5.2"},
                "changed": true, "migrated": {"shop.settings": ["0002_x", "0003_y"]},
                "pushed": {"installed": ["django==5.2"], "removed": [],
                           "uploaded": ["django-5.2-py3-none-any.whl"], "uploaded_bytes": 8_000_000},
                "reloaded": true
            })),
            full(json!({"host": "web2", "venv": "/srv/b", "changed": false, "skipped": true})),
            full(
                json!({"host": "web3", "venv": "/srv/c", "error": {"tool": "vd-push", "message": "no"}}),
            ),
        ];
        let mut direct = Output::to(Vec::new(), None);
        let mut later = Output::to(Vec::new(), None);
        for record in &records {
            direct.write(record).unwrap();
            let ready = later.ready(record.clone());
            let Ready::Line { counted, .. } = &ready else {
                panic!("a JSON output keeps a line");
            };
            assert!(counted
                .keys()
                .all(|k| Summary::COUNTED.contains(&k.as_str())));
            assert!(!counted.contains_key("installed") && !counted.contains_key("host"));
            later.write_ready(&ready).unwrap();
        }
        assert_eq!(direct.summary, later.summary);
        assert_eq!(direct.summary.counts(), later.summary.counts());
        assert_eq!(direct.finish_into().unwrap(), later.finish_into().unwrap());

        // A table needs the whole record.
        let table = Output::to(Vec::new(), Some(&NAMES));
        assert!(matches!(table.ready(records[0].clone()), Ready::Record(_)));
    }

    /// A buffer that can be read while an [`Output`] writes into it.
    #[derive(Clone, Default)]
    struct Screen(std::rc::Rc<std::cell::RefCell<Vec<u8>>>);

    impl Write for Screen {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.borrow_mut().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Screen {
        fn text(&self) -> String {
            String::from_utf8(self.0.borrow().clone()).unwrap()
        }
    }

    #[test]
    fn a_table_streams_its_rows_and_ends_with_the_summary() {
        let screen = Screen::default();
        // 40 columns: the NAME column gets (40 - 2) * 2 / 3 = 25 of them.
        let mut out = Output::with_width(screen.clone(), Some(&NAMES), 40);
        let mut long = records()[0].clone();
        long.insert("name".into(), json!("a-name-far-too-long-for-its-column"));
        out.write(&records()[0]).unwrap();
        let name = |n: &str| format!("{n:<25}  ");
        let mut want = format!("{}STATUS\n{}ok\n", name("NAME"), name("a"));
        assert_eq!(
            screen.text(),
            want,
            "the first row is out before the input ends"
        );
        out.write(&records()[1]).unwrap();
        out.write(&long).unwrap();
        want += &format!("{}error (vd-x): no\n", name("b"));
        want += &format!("{}ok\n", name("a-name-far-t…r-its-column"));
        assert_eq!(screen.text(), want);
        let (status, _) = out.finish_into().unwrap();
        assert_eq!(status, Status::TargetFailed);
        let text = screen.text();
        let summary = text.strip_prefix(&want).unwrap();
        assert!(summary.starts_with("3 targets: 1 failed in "), "{summary}");
        assert_eq!(summary.lines().count(), 1);
    }

    #[test]
    fn a_long_error_is_shown_whole_in_the_last_column() {
        let screen = Screen::default();
        let mut out = Output::with_width(screen.clone(), Some(&NAMES), 20);
        let mut record = records()[1].clone();
        let message = "no: ".to_string() + &"x".repeat(100);
        record.insert("error".into(), json!({"tool": "vd-x", "message": message}));
        out.write(&record).unwrap();
        assert!(screen.text().contains(&message), "{}", screen.text());
    }

    #[test]
    fn columns_share_the_width_and_never_hide_a_header() {
        assert_eq!(column_widths(&["TARGET", "STATUS"], 100), [65]);
        assert_eq!(
            column_widths(&["TARGET", "PUSHED", "UPLOADED", "STATUS"], 100),
            [31, 15, 15]
        );
        assert_eq!(
            column_widths(&["TARGET", "PUSHED", "UPLOADED", "STATUS"], 20),
            [6, 6, 8]
        );
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate_middle("user@host:/srv/venv-1", 11), "user@…env-1");
        // A path is cut in the middle in any column: files written for two
        // targets differ at their names' ends.
        assert_eq!(
            table_row(
                &[8, 12],
                ["web1", "out/pylock.web1_srv-a.toml", "ok"].into_iter()
            ),
            "web1      out/py….toml  ok\n"
        );
        assert_eq!(
            table_row(&[8, 12], ["web1", "a long plain cell", "ok"].into_iter()),
            "web1      a long plai…  ok\n"
        );
        assert_eq!(truncate("two\nlines", 20), "two lines");
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
