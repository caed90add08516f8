//! Target records: the JSON objects, one per line, that flow between the tools.
//!
//! A record is an open JSON object. Tools read the fields they need, add the
//! fields they own, and keep every other field untouched and in its place, so
//! users can carry their own data through a pipeline. This module reads records
//! from a stream one line at a time — a bad line becomes an error record naming
//! its line number, and the lines after it go on — and holds the conventions
//! every tool shares: the `error` field and the name of a target in messages.

use crate::wheel::normalize;
use anyhow::{anyhow, Result};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
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

impl<R: BufRead> Iterator for Reader<R> {
    type Item = Line;

    fn next(&mut self) -> Option<Line> {
        loop {
            self.buf.clear();
            self.number += 1;
            let number = self.number;
            match self.input.read_until(b'\n', &mut self.buf) {
                Ok(0) => return None,
                Ok(_) => {}
                Err(e) => {
                    let record = error_record(self.tool, &format!("stdin line {number}: {e}"));
                    return Some(Line { number, record });
                }
            }
            let text = match std::str::from_utf8(&self.buf) {
                Ok(text) => text.trim(),
                Err(e) => {
                    let message = format!("stdin line {number}: not UTF-8: {e}");
                    let record = error_record(self.tool, &message);
                    return Some(Line { number, record });
                }
            };
            if text.is_empty() {
                continue;
            }
            let record = match serde_json::from_str::<Value>(text) {
                Ok(Value::Object(map)) => map,
                Ok(_) => error_record(
                    self.tool,
                    &format!("stdin line {number}: not a JSON object"),
                ),
                Err(e) => error_record(self.tool, &format!("stdin line {number}: not JSON: {e}")),
            };
            return Some(Line { number, record });
        }
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
    record.insert(
        "error".to_string(),
        json!({ "tool": tool, "message": message }),
    );
}

/// The error a record carries, if any: `(tool, message)`.
pub fn error_of(record: &Record) -> Option<(String, String)> {
    let error = record.get("error")?;
    if error.is_null() {
        return None;
    }
    let tool = error.get("tool").and_then(Value::as_str).unwrap_or("");
    let message = match error.get("message").and_then(Value::as_str) {
        Some(m) => m.to_string(),
        None => error.to_string(),
    };
    Some((tool.to_string(), message))
}

/// A string field, or `None` when absent, null or empty.
pub fn str_field<'a>(record: &'a Record, name: &str) -> Option<&'a str> {
    match record.get(name) {
        Some(Value::String(s)) if !s.is_empty() => Some(s),
        _ => None,
    }
}

/// A required string field; the error names the field.
pub fn required_str<'a>(record: &'a Record, name: &str) -> Result<&'a str> {
    match record.get(name) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        Some(Value::String(_)) | None | Some(Value::Null) => Err(anyhow!("missing field `{name}`")),
        Some(other) => Err(anyhow!("field `{name}` must be a string, not {other}")),
    }
}

/// An optional string field: `None` when absent, null or empty; an error
/// naming the field when it holds something else.
pub fn optional_str<'a>(record: &'a Record, name: &str) -> Result<Option<&'a str>> {
    match record.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str()).filter(|s| !s.trim().is_empty())),
        Some(other) => Err(anyhow!("field `{name}` must be a string, not {other}")),
    }
}

/// A list field: a JSON array of strings, or one string of space-separated
/// words (the inventory's form). Absent means empty.
pub fn list_field(record: &Record, name: &str) -> Result<Vec<String>> {
    match record.get(name) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(s.split_whitespace().map(str::to_string).collect()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.clone()),
                other => Err(anyhow!("field `{name}` must hold strings, not {other}")),
            })
            .collect(),
        Some(other) => Err(anyhow!(
            "field `{name}` must be a list of strings, not {other}"
        )),
    }
}

/// A boolean field; absent or null is `false`. Accepts the inventory's text
/// forms (`true`/`false`, `yes`/`no`, `1`/`0`).
pub fn bool_field(record: &Record, name: &str) -> Result<bool> {
    match record.get(name) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::String(s)) => parse_bool(s)
            .ok_or_else(|| anyhow!("field `{name}`: expected true or false, not {s:?}")),
        Some(other) => Err(anyhow!(
            "field `{name}`: expected true or false, not {other}"
        )),
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

/// How a target is named in messages and tables: `user@host:port:/venv`, with
/// the parts that are defaults left out.
pub fn target_label(record: &Record) -> String {
    let host = str_field(record, "host").unwrap_or("?");
    let venv = str_field(record, "venv").unwrap_or("?");
    let mut label = String::new();
    if let Some(user) = str_field(record, "user") {
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

/// `installed` as {normalized name: version}, or nothing for a venv still to
/// be created (`venv_exists: false`).
pub fn installed(record: &Record) -> Result<BTreeMap<String, String>> {
    if record.get("venv_exists") == Some(&Value::Bool(false)) {
        return Ok(BTreeMap::new());
    }
    match record.get("installed") {
        Some(Value::Object(map)) => map
            .iter()
            .map(|(name, version)| match version {
                Value::String(v) => Ok((normalize(name), v.clone())),
                other => Err(anyhow!(
                    "field `installed`: version of {name} must be a string, not {other}"
                )),
            })
            .collect(),
        None | Some(Value::Null) => Err(anyhow!("missing field `installed` (run vd-freeze first)")),
        Some(other) => Err(anyhow!(
            "field `installed` must be an object of name: version, not {other}"
        )),
    }
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

    #[test]
    fn list_fields_take_words_or_arrays() {
        let lines = read("{\"a\":\"x y  z\",\"b\":[\"p\"],\"c\":3}\n");
        let r = &lines[0].record;
        assert_eq!(list_field(r, "a").unwrap(), ["x", "y", "z"]);
        assert_eq!(list_field(r, "b").unwrap(), ["p"]);
        assert!(list_field(r, "missing").unwrap().is_empty());
        assert!(list_field(r, "c").is_err());
    }
}
