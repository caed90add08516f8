//! The release log: an append-only CSV file inside the repository.
//!
//! Every change vd makes is one line: `vd-add` writes `release` events, the
//! deploying tools `install`, `remove`, `migrate`, `reload` and `error` events,
//! and `vd-rollout` a `rollout` event as each wave starts, fails, is released
//! and stops (what happened in its `detail`, no target: a wave is many).
//! Many processes append at once (a pipeline, parallel cron jobs), so each
//! append takes an exclusive lock on the file and writes its lines with one
//! `write` call: a line is there whole or not at all (a write that fails
//! part way, on a full disk, is cut back off under the lock). The log is
//! never rewritten; a malformed line is reported by number and left as it is.

use crate::escape;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

/// The file's name inside the repository.
pub(crate) const FILE_NAME: &str = "release_log";

/// The header row, which is also the column order.
pub(crate) const HEADER: &str = "time,event,name,version,wheel,sha256,target,detail";

/// One line of the log.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// UTC, RFC 3339, whole seconds.
    pub time: String,
    pub event: String,
    pub name: String,
    pub version: String,
    pub wheel: String,
    pub sha256: String,
    pub target: String,
    pub detail: String,
}

impl Event {
    /// An event of kind `event`, stamped now.
    pub(crate) fn now(event: &str) -> Event {
        Event {
            time: now_rfc3339(),
            event: event.to_string(),
            ..Event::default()
        }
    }
}

/// The current time as the log writes it: `2026-11-24T14:31:45Z`.
pub(crate) fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

/// The release log of one repository.
pub struct ReleaseLog {
    path: PathBuf,
}

impl ReleaseLog {
    pub fn new(repo_dir: &Path) -> ReleaseLog {
        ReleaseLog {
            path: repo_dir.join(FILE_NAME),
        }
    }

    /// Read every event; a malformed line is an error naming the file and
    /// line. A log that does not exist yet is empty.
    pub fn read(&self) -> Result<Vec<Event>> {
        let file = match File::open(&self.path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(e).with_context(|| format!("cannot read {}", self.path.display()))
            }
        };
        parse(file, &self.path)
    }

    /// Append events under the lock, writing the header first into a new or
    /// empty file. All lines go out in one write.
    pub(crate) fn append(&self, events: &[Event]) -> Result<()> {
        self.append_with(events, false)
    }

    /// [`ReleaseLog::append`] for `release` events, leaving out those whose
    /// wheel and sha256 the log already holds: read under the same lock, so
    /// two vd-add runs that add one wheel at once log its release once.
    pub(crate) fn append_releases(&self, events: &[Event]) -> Result<()> {
        self.append_with(events, true)
    }

    fn append_with(&self, events: &[Event], skip_released: bool) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        let shown = self.path.display();
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(&self.path)
            .with_context(|| format!("cannot open {shown} for appending"))?;
        file.lock()
            .with_context(|| format!("cannot lock {shown}"))?;
        let mut kept = std::borrow::Cow::Borrowed(events);
        if skip_released {
            file.seek(SeekFrom::Start(0))?;
            let released: std::collections::HashSet<(String, String)> =
                parse(&mut file, &self.path)?
                    .into_iter()
                    .filter(|e| e.event == "release")
                    .map(|e| (e.wheel, e.sha256))
                    .collect();
            kept = std::borrow::Cow::Owned(
                events
                    .iter()
                    .filter(|e| {
                        e.event != "release"
                            || !released.contains(&(e.wheel.clone(), e.sha256.clone()))
                    })
                    .cloned()
                    .collect(),
            );
            if kept.is_empty() {
                return Ok(());
            }
        }
        let events: &[Event] = &kept;
        let mut text = String::new();
        let len = file.metadata()?.len();
        if len == 0 {
            text.push_str(HEADER);
            text.push('\n');
        } else if !ends_with_newline(&mut file)? {
            // A line cut short by a crash: start ours on a line of its own
            // rather than glue it to the remains.
            text.push('\n');
        }
        let mut writer = csv::WriterBuilder::new()
            .has_headers(false)
            .from_writer(Vec::new());
        for event in events {
            writer.serialize(escaped(event))?;
        }
        text.push_str(std::str::from_utf8(&writer.into_inner()?)?);
        let written = file
            .write_all(text.as_bytes())
            .with_context(|| format!("cannot append to {shown}"))
            .and_then(|()| {
                file.sync_data()
                    .with_context(|| format!("cannot sync {shown}"))
            });
        if let Err(e) = written {
            // A full disk may have taken part of the lines: cut them off
            // while the lock is still held, or every later reader would
            // stop at a malformed line even once space is freed.
            return Err(match file.set_len(len).and_then(|()| file.sync_data()) {
                Ok(()) => e,
                Err(undo) => e.context(format!(
                    "and cannot cut {shown} back to its {len} bytes ({undo}): \
                     its last line may be partial"
                )),
            });
        }
        Ok(())
    }
}

/// The release log as a deploying tool writes it while it works on many
/// targets at once. The change on the target is made by then, so a log that
/// cannot be written is no reason to stop or to call the target failed: the
/// failure is said on stderr, with what went unlogged, and remembered so the
/// tool can exit non-zero.
pub(crate) struct EventWriter {
    log: ReleaseLog,
    tool: &'static str,
    failed: AtomicBool,
}

impl EventWriter {
    pub(crate) fn new(log: ReleaseLog, tool: &'static str) -> EventWriter {
        EventWriter {
            log,
            tool,
            failed: AtomicBool::new(false),
        }
    }

    /// Append `events`, or say on stderr why they could not be; whether
    /// they were.
    pub(crate) fn write(&self, events: &[Event]) -> bool {
        if let Err(e) = self.log.append(events) {
            self.failed.store(true, Ordering::Relaxed);
            let what: Vec<String> = events
                .iter()
                .map(|e| format!("{} {} {}", e.event, e.target, e.name))
                .collect();
            crate::messages::error(
                self.tool,
                &format!("{e:#}; not logged: {}", what.join("; ")),
            );
            return false;
        }
        true
    }

    /// Whether some events could not be written.
    pub(crate) fn failed(&self) -> bool {
        self.failed.load(Ordering::Relaxed)
    }
}

/// The event with its control characters escaped ([`escape::line`]):
/// fields come from records and remote hosts, the log is read with `cat`
/// and `grep`, and one raw NUL makes it a binary file to every line-oriented
/// tool, one raw ESC a command to the terminal of whoever reads it.
fn escaped(event: &Event) -> std::borrow::Cow<'_, Event> {
    let fields = [
        &event.time,
        &event.event,
        &event.name,
        &event.version,
        &event.wheel,
        &event.sha256,
        &event.target,
        &event.detail,
    ];
    if fields
        .iter()
        .all(|f| matches!(escape::line(f), std::borrow::Cow::Borrowed(_)))
    {
        return std::borrow::Cow::Borrowed(event);
    }
    let clean = |f: &String| escape::line(f).into_owned();
    std::borrow::Cow::Owned(Event {
        time: clean(&event.time),
        event: clean(&event.event),
        name: clean(&event.name),
        version: clean(&event.version),
        wheel: clean(&event.wheel),
        sha256: clean(&event.sha256),
        target: clean(&event.target),
        detail: clean(&event.detail),
    })
}

fn ends_with_newline(file: &mut File) -> Result<bool> {
    file.seek(SeekFrom::End(-1))?;
    let mut last = [0u8; 1];
    file.read_exact(&mut last)?;
    Ok(last[0] == b'\n')
}

/// Parse a release log, naming the first malformed line.
pub(crate) fn parse(input: impl Read, path: &Path) -> Result<Vec<Event>> {
    let shown = path.display();
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(input);
    let header = reader
        .headers()
        .with_context(|| format!("{shown} line 1: cannot read the header"))?
        .iter()
        .collect::<Vec<_>>()
        .join(",");
    if header.is_empty() {
        return Ok(Vec::new());
    }
    if header != HEADER {
        bail!("{shown} line 1: header is {header:?}, expected {HEADER:?}");
    }
    let mut events = Vec::new();
    for row in reader.records() {
        let row = match row {
            Ok(row) => row,
            Err(e) => {
                let line = e.position().map(|p| p.line()).unwrap_or(0);
                bail!("{shown} line {line}: malformed line: {e}");
            }
        };
        let line = row.position().map(|p| p.line()).unwrap_or(0);
        let event: Event = row
            .deserialize(None)
            .with_context(|| format!("{shown} line {line}: malformed line"))?;
        if humantime::parse_rfc3339(&event.time).is_err() {
            bail!("{shown} line {line}: malformed time {:?}", event.time);
        }
        if event.event.is_empty() {
            bail!("{shown} line {line}: no event");
        }
        events.push(event);
    }
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let log = ReleaseLog::new(dir.path());
        let mut e = Event::now("release");
        e.name = "six".into();
        e.detail = "with, a comma and \"quotes\"".into();
        log.append(std::slice::from_ref(&e)).unwrap();
        log.append(&[Event::now("install")]).unwrap();
        let events = log.read().unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(events[0], e);
        let text = std::fs::read_to_string(&log.path).unwrap();
        assert!(text.starts_with(HEADER));
    }

    #[test]
    fn names_the_malformed_line() {
        let text = format!("{HEADER}\n2026-01-01T00:00:00Z,release,a,1,a.whl,x,,\nbroken line\n");
        let err = parse(text.as_bytes(), Path::new("wheels/release_log")).unwrap_err();
        assert!(
            format!("{err:#}").starts_with("wheels/release_log line 3:"),
            "{err:#}"
        );
        let text = format!("{HEADER}\nyesterday,release,a,1,a.whl,x,,\n");
        let err = parse(text.as_bytes(), Path::new("log")).unwrap_err();
        assert!(
            format!("{err:#}").contains("line 2: malformed time"),
            "{err:#}"
        );
    }
}
