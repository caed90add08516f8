//! A record as the text it came in: each top-level field's value kept as
//! its raw JSON, nothing below the top level read.
//!
//! A fleet is mostly targets of a few kinds: a thousand venvs with the same
//! interpreter, the same installed set and the same requirements. vd-diff
//! plans a kind once; for every other target of that kind, reading the
//! record into a tree of values (a hundred installed packages, each a
//! string to allocate and free) and writing it back costs many times what
//! the plan lookup does. [`RawRecord`] lets it recognize the kind from the
//! raw text of the fields a plan depends on ([`RawRecord::key`]) and write
//! the record back with its plan fields put in ([`RawRecord::write_with`]),
//! reading only the small fields a target is checked by
//! ([`RawRecord::without`]).

use super::Record;
use indexmap::IndexMap;
use serde_json::value::RawValue;
use serde_json::Value;

/// One line's record, its fields in their order, each value unread.
pub struct RawRecord<'a> {
    fields: IndexMap<&'a str, &'a RawValue>,
}

impl<'a> RawRecord<'a> {
    /// Read a line's top level. `None` for anything that is not a plain
    /// JSON object, or whose field names carry escapes: such a line takes
    /// the way of a whole [`Record`], which reports what is wrong with it.
    pub fn parse(text: &'a str) -> Option<RawRecord<'a>> {
        serde_json::from_str::<IndexMap<&'a str, &'a RawValue>>(text)
            .ok()
            .map(|fields| RawRecord { fields })
    }

    /// Whether the record has the field (with any value but null).
    pub fn has(&self, name: &str) -> bool {
        self.fields.get(name).is_some_and(|v| v.get() != "null")
    }

    /// The raw JSON text of a field, unread.
    pub fn text(&self, name: &str) -> Option<&'a str> {
        self.fields.get(name).map(|v| v.get())
    }

    /// Write the raw text of the `names` fields into `key` (cleared first),
    /// each with its name, absent ones as absent: two records with the same
    /// key have the same text in each of those fields.
    pub fn key(&self, names: &[&str], key: &mut Vec<u8>) {
        key.clear();
        for name in names {
            key.extend_from_slice(name.as_bytes());
            match self.fields.get(name) {
                Some(value) => {
                    key.push(b'=');
                    key.extend_from_slice(value.get().as_bytes());
                }
                None => key.push(b'!'),
            }
            // Not in any JSON text outside a string, where it is escaped.
            key.push(0);
        }
    }

    /// The record without the `names` fields, read whole: what the fields
    /// left say (the target, an error from an earlier tool) for the price
    /// of reading those alone.
    pub fn without(&self, names: &[&str]) -> serde_json::Result<Record> {
        let mut record = Record::new();
        for (name, value) in &self.fields {
            if !names.contains(name) {
                let value: Value = serde_json::from_str(value.get())?;
                record.insert((*name).to_string(), value);
            }
        }
        Ok(record)
    }

    /// The record as one JSON line (with its newline) into `out`, each
    /// field of `set` in its place when the record has it, else at the end
    /// in `set`'s order, as [`super::put`] places them; a field set to
    /// `None` is left out. Values are the JSON text given; the rest are
    /// written as they came, without the spaces between their tokens, as
    /// `serde_json` writes a record.
    pub fn write_with(&self, set: &[(&str, Option<&str>)], out: &mut String) {
        let size: usize = self.fields.values().map(|v| v.get().len() + 16).sum();
        out.reserve(size + set.iter().flat_map(|(_, v)| v.map(str::len)).sum::<usize>());
        let mut first = true;
        let mut field = |out: &mut String, name: &str, value: &str| {
            out.push(if std::mem::take(&mut first) { '{' } else { ',' });
            push_json_string(out, name);
            out.push(':');
            push_compact(out, value);
        };
        for (name, value) in &self.fields {
            match set.iter().find(|(n, _)| n == name) {
                Some((_, Some(new))) => field(out, name, new),
                Some((_, None)) => {}
                None => field(out, name, value.get()),
            }
        }
        for (name, value) in set {
            if let (false, Some(value)) = (self.fields.contains_key(name), value) {
                field(out, name, value);
            }
        }
        if first {
            out.push('{');
        }
        out.push_str("}\n");
    }
}

/// A field name as a JSON string. Names read by [`RawRecord::parse`] have
/// no escapes in their text, but may still hold characters that need one.
fn push_json_string(out: &mut String, name: &str) {
    out.push_str(&serde_json::to_string(name).expect("a string serializes"));
}

/// A valid JSON text without the whitespace between its tokens (the text
/// inside strings kept byte for byte). What the tools write has none, and
/// is copied whole; other text is copied a token at a time. Bytes, not
/// chars: every byte that matters here is ASCII, and a string's other
/// bytes are only skipped.
fn push_compact(out: &mut String, json: &str) {
    let bytes = json.as_bytes();
    // A line holds no newline; most values (names, versions) hold no other
    // whitespace either, which memchr tells faster than a walk through.
    if ![b' ', b'\t', b'\r'].iter().any(|b| bytes.contains(b)) {
        out.push_str(json);
        return;
    }
    let mut gaps = Gaps { bytes, at: 0 };
    let Some(first) = gaps.next() else {
        out.push_str(json);
        return;
    };
    out.push_str(&json[..first]);
    let mut start = first + 1;
    for gap in gaps {
        out.push_str(&json[start..gap]);
        start = gap + 1;
    }
    out.push_str(&json[start..]);
}

/// The places of the whitespace bytes outside strings in a JSON text.
struct Gaps<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Iterator for Gaps<'_> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        let bytes = self.bytes;
        while self.at < bytes.len() {
            let i = self.at;
            self.at += 1;
            match bytes[i] {
                b'"' => {
                    while self.at < bytes.len() && bytes[self.at] != b'"' {
                        self.at += if bytes[self.at] == b'\\' { 2 } else { 1 };
                    }
                    self.at += 1;
                }
                b' ' | b'\t' | b'\n' | b'\r' => return Some(i),
                _ => {}
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str = r#"{"host": "web1", "installed": {"django": "5.2", "a b": "1"}, "plan": [1, 2], "note": "x  y", "port": 22}"#;

    #[test]
    fn writes_the_record_back_as_serde_json_would_with_fields_set() {
        let raw = RawRecord::parse(LINE).unwrap();
        let mut out = String::new();
        raw.write_with(
            &[
                ("plan", Some("[]")),
                ("ahead", Some(r#"{"x": 1}"#)),
                ("port", None),
            ],
            &mut out,
        );
        // The same edits on a whole record, written by serde_json.
        let mut record: Record = serde_json::from_str(LINE).unwrap();
        record.insert("plan".into(), serde_json::json!([]));
        record.insert("ahead".into(), serde_json::json!({"x": 1}));
        record.shift_remove("port");
        assert_eq!(out, serde_json::to_string(&record).unwrap() + "\n");
    }

    #[test]
    fn keys_differ_exactly_when_a_named_field_does() {
        let key = |line: &str, names: &[&str]| {
            let mut key = Vec::new();
            RawRecord::parse(line).unwrap().key(names, &mut key);
            key
        };
        let names = ["installed", "python"];
        let other_host = LINE.replace("web1", "web2");
        assert_eq!(key(LINE, &names), key(&other_host, &names));
        assert_ne!(key(LINE, &["host"]), key(&other_host, &["host"]));
        let other_set = LINE.replace("5.2", "5.1");
        assert_ne!(key(LINE, &names), key(&other_set, &names));
        // Absent and null are not the same text.
        assert_ne!(key(r#"{"python": null}"#, &names), key(r#"{}"#, &names));
    }

    #[test]
    fn reads_only_the_fields_asked_for() {
        let raw = RawRecord::parse(LINE).unwrap();
        assert!(raw.has("plan") && !raw.has("ahead"));
        let small = raw.without(&["installed", "plan"]).unwrap();
        let names: Vec<&String> = small.keys().collect();
        assert_eq!(names, ["host", "note", "port"]);
        assert_eq!(small["note"], "x  y");
    }

    #[test]
    fn what_is_not_a_plain_object_is_left_to_the_record_reader() {
        for line in ["[1]", "not json", r#"{"a": 1"#, r#"{"h\u006fst": "x"}"#] {
            assert!(RawRecord::parse(line).is_none(), "{line}");
        }
    }
}
