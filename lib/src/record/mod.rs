//! Target records: the JSON objects, one per line, that flow between the tools.
//!
//! A record is an open JSON object. Tools read the fields they need, add the
//! fields they own, and keep every other field untouched and in its place, so
//! users can carry their own data through a pipeline. This module reads records
//! from a stream one line at a time — a bad line becomes an error record naming
//! its line number, and the lines after it go on — and holds the conventions
//! every tool shares: the `error` field and the name of a target in messages.
//!
//! It is also the only place that knows field names. [`Target`] is the typed
//! view of what the inventory says about a target, parsed once where a record
//! enters a tool; [`stage`] holds one type per field a tool writes, read with
//! [`get`] and written back in place with [`put`] or [`merge`].

mod entries;
mod raw;
mod stage;
mod target;

pub use entries::{Action, AheadPackage, Change, UnchangedPackage};
pub use raw::RawRecord;

pub use stage::*;
pub use target::{
    resolve_local_paths, typed_cell, Installer, Python, Target, Via, COLUMNS, PLAN_COLUMNS,
};

use anyhow::{anyhow, Result};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};
use std::io::BufRead;

/// One target record.
pub type Record = Map<String, Value>;

/// A record read from the input, with the line it came from.
#[derive(Debug)]
pub struct Line {
    /// 1-based line number in the input stream.
    pub number: usize,
    /// The record; for a line that could not be read, an error record.
    pub record: Record,
}

/// Reads records from JSON lines. Blank lines are skipped; a line that is not a
/// JSON object yields an error record from `tool` naming the line, so the
/// problem travels down the pipeline with the other targets instead of
/// stopping them.
pub struct Reader<R> {
    input: R,
    tool: &'static str,
    number: usize,
    buf: Vec<u8>,
}

impl<R: BufRead> Reader<R> {
    pub fn new(input: R, tool: &'static str) -> Self {
        Reader {
            input,
            tool,
            number: 0,
            buf: Vec::new(),
        }
    }
}

impl<R: BufRead> Reader<R> {
    /// What the records are read from (to ask a buffer what it holds).
    pub fn input(&self) -> &R {
        &self.input
    }

    /// The next line that is not blank, as text not yet read as JSON, with
    /// its number; or, for a line that cannot be read as text (not UTF-8,
    /// an I/O error), its error record. For a tool that looks at the text
    /// before reading it ([`RawRecord`]); [`parse_line`] reads it as
    /// iterating does.
    pub fn next_text(&mut self) -> Option<Result<(usize, &str), Line>> {
        loop {
            self.buf.clear();
            self.number += 1;
            let number = self.number;
            match self.input.read_until(b'\n', &mut self.buf) {
                Ok(0) => return None,
                Ok(_) => {}
                Err(e) => {
                    let record = error_record(self.tool, &format!("stdin line {number}: {e}"));
                    return Some(Err(Line { number, record }));
                }
            }
            match std::str::from_utf8(&self.buf) {
                Ok(text) if text.trim().is_empty() => continue,
                Ok(_) => break,
                Err(e) => {
                    let message = format!("stdin line {number}: not UTF-8: {e}");
                    let record = error_record(self.tool, &message);
                    return Some(Err(Line { number, record }));
                }
            }
        }
        let text = std::str::from_utf8(&self.buf).expect("checked above");
        Some(Ok((self.number, text.trim())))
    }
}

impl<R: BufRead> Iterator for Reader<R> {
    type Item = Line;

    fn next(&mut self) -> Option<Line> {
        let tool = self.tool;
        match self.next_text()? {
            Ok((number, text)) => Some(Line {
                number,
                record: parse_line(tool, number, text),
            }),
            Err(line) => Some(line),
        }
    }
}

/// A record written as JSON in a unit test (`json!({...})`).
#[cfg(test)]
pub fn of_json(value: Value) -> Record {
    value.as_object().expect("a JSON object").clone()
}

/// A line's text as a record; for one that is not a JSON object, an error
/// record from `tool` naming the line.
pub fn parse_line(tool: &str, number: usize, text: &str) -> Record {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => map,
        Ok(_) => error_record(tool, &format!("stdin line {number}: not a JSON object")),
        Err(e) => error_record(tool, &format!("stdin line {number}: not JSON: {e}")),
    }
}

/// A record that holds nothing but an error from `tool`.
pub fn error_record(tool: &str, message: &str) -> Record {
    let mut record = Record::new();
    set_error(&mut record, tool, message);
    record
}

/// Mark the record as failed by `tool`. Later tools pass it through untouched.
pub fn set_error(record: &mut Record, tool: &str, message: &str) {
    put(
        record,
        &Error {
            tool: tool.to_string(),
            message: message.to_string(),
        },
    );
}

/// The error a record carries, if any: `(tool, message)`. An `error` of
/// another shape still counts as an error, shown as it is.
pub fn error_of(record: &Record) -> Option<(String, String)> {
    let error = record.get(Error::NAME)?;
    if error.is_null() {
        return None;
    }
    match serde_json::from_value::<Error>(error.clone()) {
        Ok(Error { tool, message }) => Some((tool, message)),
        Err(_) => Some((String::new(), error.to_string())),
    }
}

/// One field of a record, typed: the field's name and the Rust type of its
/// value. Each stage's fields implement it in [`stage`].
pub trait Field: Serialize + DeserializeOwned {
    /// The field's name on the wire.
    const NAME: &'static str;
}

/// A field's value: `None` when absent or null; an error naming the field
/// when it holds something of another type.
pub fn get<F: Field>(record: &Record) -> Result<Option<F>> {
    match record.get(F::NAME) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => F::deserialize(value)
            .map(Some)
            .map_err(|e| anyhow!("field `{}`: {e}", F::NAME)),
    }
}

/// Whether the record holds the field (with any value but null).
pub fn has<F: Field>(record: &Record) -> bool {
    record.get(F::NAME).is_some_and(|v| !v.is_null())
}

/// Write a field: in its place when the record has it, else at the end.
pub fn put<F: Field>(record: &mut Record, value: &F) {
    let value = serde_json::to_value(value).expect("a record field serializes");
    record.insert(F::NAME.to_string(), value);
}

/// Set a field to a value serialized before: one plan shared by many
/// targets is turned into JSON once, not once per record.
pub fn put_json<F: Field>(record: &mut Record, value: Value) {
    record.insert(F::NAME.to_string(), value);
}

/// Drop a field, keeping the order of the others.
pub fn remove<F: Field>(record: &mut Record) {
    record.shift_remove(F::NAME);
}

/// Write every field of a stage's struct (one that serializes to an object)
/// into the record: each in its place when present, new ones at the end.
pub fn merge<T: Serialize>(record: &mut Record, fields: &T) {
    match serde_json::to_value(fields).expect("a stage serializes") {
        Value::Object(map) => {
            for (name, value) in map {
                record.insert(name, value);
            }
        }
        other => unreachable!("a stage serializes to an object, not {other}"),
    }
}

/// A string field, or `None` when absent, null or empty.
fn str_field<'a>(record: &'a Record, name: &str) -> Option<&'a str> {
    match record.get(name) {
        Some(Value::String(s)) if !s.is_empty() => Some(s),
        _ => None,
    }
}

/// The words vd takes for yes and no in inventories and records.
pub fn parse_bool(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "" | "false" | "no" | "0" | "off" => Some(false),
        "true" | "yes" | "1" | "on" => Some(true),
        _ => None,
    }
}

/// The names of a target, read leniently (a field of the wrong type is
/// absent here): what messages and selection by name need, even from a
/// record that [`Target::parse`] refuses.
#[derive(Debug, Clone, Copy, Default)]
pub struct Names<'a> {
    pub host: Option<&'a str>,
    pub venv: Option<&'a str>,
    pub user: Option<&'a str>,
    pub venv_user: Option<&'a str>,
}

impl<'a> Names<'a> {
    pub fn of(record: &'a Record) -> Names<'a> {
        Names {
            host: str_field(record, "host"),
            venv: str_field(record, "venv"),
            user: str_field(record, "user"),
            venv_user: str_field(record, "venv_user"),
        }
    }
}

/// How a target is named in messages and tables: `user@host:port:/venv`, with
/// the parts that are defaults left out. It works on any record, even one
/// whose fields are of the wrong type, since it names the target in the
/// message that says so.
pub fn target_label(record: &Record) -> String {
    let names = Names::of(record);
    let host = names.host.unwrap_or("?");
    let venv = names.venv.unwrap_or("?");
    let mut label = String::new();
    if let Some(user) = names.user {
        label.push_str(user);
        label.push('@');
    }
    label.push_str(host);
    match record.get("port") {
        Some(Value::Number(n)) if n.as_u64() != Some(22) => label.push_str(&format!(":{n}")),
        Some(Value::String(s)) if !s.is_empty() && s != "22" => label.push_str(&format!(":{s}")),
        _ => {}
    }
    label.push(':');
    label.push_str(venv);
    label
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(input: &str) -> Vec<Line> {
        Reader::new(input.as_bytes(), "vd-test").collect()
    }

    #[test]
    fn keeps_unknown_fields_in_order() {
        let lines = read("{\"zeta\":1,\"host\":\"a\",\"alpha\":[1,2]}\n");
        let out = serde_json::to_string(&lines[0].record).unwrap();
        assert_eq!(out, "{\"zeta\":1,\"host\":\"a\",\"alpha\":[1,2]}");
    }

    #[test]
    fn bad_lines_become_errors_and_the_rest_go_on() {
        let lines = read("{\"host\":\"a\"}\nnot json\n\n[1]\n{\"host\":\"b\"}\n");
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[0].number, 1);
        let (tool, message) = error_of(&lines[1].record).unwrap();
        assert_eq!(tool, "vd-test");
        assert!(message.starts_with("stdin line 2: not JSON"), "{message}");
        let (_, message) = error_of(&lines[2].record).unwrap();
        assert_eq!(message, "stdin line 4: not a JSON object");
        assert_eq!(lines[3].number, 5);
        assert_eq!(str_field(&lines[3].record, "host"), Some("b"));
    }

    #[test]
    fn invalid_utf8_is_an_error_for_that_line_only() {
        let input: &[u8] = b"{\"host\":\"a\"}\n{\"host\":\"\xff\"}\n{\"host\":\"c\"}\n";
        let lines: Vec<Line> = Reader::new(input, "vd-test").collect();
        assert_eq!(lines.len(), 3);
        assert!(error_of(&lines[1].record).unwrap().1.contains("line 2"));
        assert_eq!(str_field(&lines[2].record, "host"), Some("c"));
    }

    #[test]
    fn labels_leave_out_defaults() {
        let lines = read(
            "{\"host\":\"h\",\"venv\":\"/v\"}\n{\"host\":\"h\",\"user\":\"u\",\"port\":2222,\"venv\":\"/v\"}\n",
        );
        assert_eq!(target_label(&lines[0].record), "h:/v");
        assert_eq!(target_label(&lines[1].record), "u@h:2222:/v");
    }
}
