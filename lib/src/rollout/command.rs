//! One wave's run of the user's COMMAND: `sh -c COMMAND` with the wave's
//! records on its stdin, and the records it gives back, matched to the
//! wave's targets.
//!
//! The records go in while the command's output is read, on a thread of
//! their own, so a command that answers before it has read all of its
//! input cannot stall on a full pipe. The command's stderr is this tool's:
//! the inner tools' warnings and progress reach the terminal as they would
//! without the rollout (and their progress is shown in the rollout's bar,
//! see [`crate::console`]). Records are matched to targets by their
//! identity, the target's name ([`target_label`]: user, host, port and
//! venv); a target that appears twice in a wave is matched in order. What
//! the command gives back that matches no target of the wave, or is not a
//! record at all, is kept apart as foreign, for the rollout to fail.

use crate::record::{self, target_label, Record};
use anyhow::{Context, Result};
use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};

/// What a wave's COMMAND gave back.
pub struct Answer {
    /// For each record fed to the command, in order, the one it gave
    /// back for that target, if it did.
    pub returned: Vec<Option<Record>>,
    /// Lines that were no record of the wave's targets, each as an error
    /// record naming what it was.
    pub foreign: Vec<Record>,
    pub end: End,
}

/// How the command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    Exited(i32),
    Killed(i32),
    /// `sh` could not be started (said on stderr).
    Unstarted,
}

impl std::fmt::Display for End {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            End::Exited(status) => write!(f, "exited with status {status}"),
            End::Killed(signal) => write!(f, "was killed by signal {signal}"),
            End::Unstarted => write!(f, "could not be started"),
        }
    }
}

/// Run `sh -c command` with `records` as JSON lines on its stdin; `tool`
/// and `wave` name the error records made of foreign lines.
pub fn run(command: &str, records: &[Record], tool: &str, wave: u64) -> Result<Answer> {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(command)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("cannot start sh to run COMMAND")?;
    let mut stdin = child.stdin.take().expect("stdin is piped");
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut input = String::new();
    for record in records {
        input.push_str(&serde_json::to_string(record)?);
        input.push('\n');
    }
    // A command that stops reading (it failed to start, or it exits
    // early) closes its end: what it did not take is what it gave no
    // record back for, which the matching finds.
    let feeder = std::thread::spawn(move || {
        let _ = stdin.write_all(input.as_bytes());
    });
    let mut matcher = Matcher::new(records);
    let mut reader = BufReader::new(stdout);
    let mut buf = Vec::new();
    let mut number = 0;
    loop {
        buf.clear();
        if reader.read_until(b'\n', &mut buf)? == 0 {
            break;
        }
        number += 1;
        let text = String::from_utf8_lossy(&buf);
        if text.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<serde_json::Value>(text.trim()) {
            Ok(serde_json::Value::Object(record)) => matcher.take(record, tool, wave),
            _ => matcher.foreign.push(record::error_record(
                tool,
                &format!(
                    "wave {wave}: COMMAND's output line {number} is not a JSON object: {}",
                    crate::escape::line(text.trim())
                ),
            )),
        }
    }
    let status = child.wait().context("cannot wait for COMMAND")?;
    let _ = feeder.join();
    let end = match status.signal() {
        Some(signal) => End::Killed(signal),
        None => End::Exited(status.code().unwrap_or(-1)),
    };
    Ok(Answer {
        returned: matcher.returned,
        foreign: matcher.foreign,
        end,
    })
}

/// Matches the records given back to the records fed, by target name.
struct Matcher {
    /// The fed records not yet given back, by name, in order.
    waiting: HashMap<String, VecDeque<usize>>,
    returned: Vec<Option<Record>>,
    foreign: Vec<Record>,
}

impl Matcher {
    fn new(records: &[Record]) -> Matcher {
        let mut waiting: HashMap<String, VecDeque<usize>> = HashMap::new();
        for (i, record) in records.iter().enumerate() {
            waiting
                .entry(target_label(record))
                .or_default()
                .push_back(i);
        }
        Matcher {
            waiting,
            returned: vec![None; records.len()],
            foreign: Vec::new(),
        }
    }

    /// One record given back: its target's, or foreign.
    fn take(&mut self, mut record: Record, tool: &str, wave: u64) {
        let label = target_label(&record);
        match self.waiting.get_mut(&label).and_then(VecDeque::pop_front) {
            Some(i) => self.returned[i] = Some(record),
            None => {
                let message = format!(
                    "wave {wave}: COMMAND gave back a record of {label}, which is not a \
                     target of the wave (or was given back twice)"
                );
                record::set_error(&mut record, tool, &message);
                self.foreign.push(record);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn records() -> Vec<Record> {
        ["/a", "/b", "/c"]
            .iter()
            .map(|v| record::of_json(json!({"host": "h", "venv": v})))
            .collect()
    }

    #[test]
    fn records_come_back_matched_by_target_in_any_order() {
        let answer = run("tac", &records(), "vd-test", 1).unwrap();
        assert_eq!(answer.end, End::Exited(0));
        assert!(answer.foreign.is_empty());
        let venvs: Vec<String> = answer
            .returned
            .iter()
            .map(|r| r.as_ref().unwrap()["venv"].to_string())
            .collect();
        assert_eq!(venvs, ["\"/a\"", "\"/b\"", "\"/c\""]);
    }

    #[test]
    fn missing_foreign_and_broken_lines_are_told_apart() {
        let command = "head -n 1; echo '{\"host\":\"h\",\"venv\":\"/z\"}'; echo oops; exit 3";
        let answer = run(command, &records(), "vd-test", 2).unwrap();
        assert_eq!(answer.end, End::Exited(3));
        assert!(answer.returned[0].is_some());
        assert!(answer.returned[1].is_none() && answer.returned[2].is_none());
        let messages: Vec<String> = answer
            .foreign
            .iter()
            .map(|r| record::error_of(r).unwrap().1)
            .collect();
        assert!(
            messages[0].contains("h:/z, which is not a target"),
            "{messages:?}"
        );
        assert!(
            messages[1].contains("line 3 is not a JSON object: oops"),
            "{messages:?}"
        );
        let answer = run("kill -9 $$", &records(), "vd-test", 1).unwrap();
        assert_eq!(answer.end, End::Killed(9));
        assert!(answer.returned.iter().all(Option::is_none));
    }
}
