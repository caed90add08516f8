//! One line that says how a run went: counted from the records a tool
//! writes, so the last stage of a pipeline sums up the whole pipeline (each
//! record carries what every stage before it did: `changed`, `pushed`,
//! `migrated`, `reloaded`).
//!
//! It is the last line of the table at a terminal, and the line the progress
//! bar leaves on stderr when stdout is not the terminal. Parts that no record
//! speaks of are left out: a vd-freeze run says nothing of uploads.

use crate::record::{
    self, error_of, Changed, Error, Field, Migrated, Pushed, Record, Reloaded, Skipped,
};
use std::fmt::Write as _;
use std::time::Duration;

/// The counts so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// What a record stands for: `targets`, or `wheels` for vd-add.
    pub noun: &'static str,
    pub records: u64,
    pub failed: u64,
    /// Records with a `changed` field, and of those the ones that changed.
    pub decided: u64,
    pub changed: u64,
    pub skipped: u64,
    /// Of the skipped, those with a `changed` field (vd-push's declined
    /// targets; a stopped rollout's skipped targets have none).
    pub skipped_decided: u64,
    /// Records with a `pushed` field, the wheels and bytes they uploaded.
    pub pushed: u64,
    pub wheels: u64,
    pub bytes: u64,
    /// Records with a `migrated` field, and the migrations applied.
    pub migrating: u64,
    pub migrations: u64,
    /// Records with a `reloaded` field, and the ones reloaded.
    pub reloading: u64,
    pub reloaded: u64,
}

impl Summary {
    pub fn new(noun: &'static str) -> Summary {
        Summary {
            noun,
            ..Summary::default()
        }
    }

    /// The only fields [`Summary::add`] reads: a record kept for later
    /// as text keeps these beside it (see [`crate::output::Ready`]).
    pub const COUNTED: [&'static str; 6] = [
        Error::NAME,
        Changed::NAME,
        Skipped::NAME,
        Pushed::NAME,
        Migrated::NAME,
        Reloaded::NAME,
    ];

    /// Count one record written. A field of the wrong type counts as absent:
    /// the summary never fails a run.
    pub fn add(&mut self, record: &Record) {
        self.records += 1;
        if error_of(record).is_some() {
            self.failed += 1;
        }
        if let Ok(Some(Changed(changed))) = record::get(record) {
            self.decided += 1;
            self.changed += u64::from(changed);
        }
        if let Ok(Some(Skipped(true))) = record::get(record) {
            self.skipped += 1;
            self.skipped_decided += u64::from(record::has::<Changed>(record));
        }
        if let Ok(Some(pushed)) = record::get::<Pushed>(record) {
            self.pushed += 1;
            if !pushed.dry_run {
                self.wheels += pushed.uploaded.len() as u64;
                self.bytes += pushed.uploaded_bytes;
            }
        }
        if let Ok(Some(Migrated(modules))) = record::get(record) {
            self.migrating += 1;
            self.migrations += modules.values().map(|m| m.len() as u64).sum::<u64>();
        }
        if let Ok(Some(Reloaded(reloaded))) = record::get(record) {
            self.reloading += 1;
            self.reloaded += u64::from(reloaded);
        }
    }

    /// What the counts say, without the time: `3 targets: 2 changed, 1
    /// unchanged, 0 failed; 4 wheels (1.2 MiB) uploaded`.
    pub fn counts(&self) -> String {
        // One target, one wheel.
        let noun = match self.records {
            1 => self.noun.strip_suffix('s').unwrap_or(self.noun),
            _ => self.noun,
        };
        let mut text = format!("{} {noun}", self.records);
        let mut parts = Vec::new();
        if self.decided > 0 {
            // Skipped targets did not change, but are not "unchanged".
            let unchanged = (self.decided - self.changed).saturating_sub(self.skipped_decided);
            parts.push(format!("{} changed", self.changed));
            parts.push(format!("{unchanged} unchanged"));
        }
        if self.skipped > 0 {
            parts.push(format!("{} skipped", self.skipped));
        }
        parts.push(format!("{} failed", self.failed));
        let _ = write!(text, ": {}", parts.join(", "));
        if self.pushed > 0 {
            let _ = write!(
                text,
                "; {} wheels ({}) uploaded",
                self.wheels,
                bytes(self.bytes)
            );
        }
        if self.migrating > 0 {
            let _ = write!(text, "; {} migrations applied", self.migrations);
        }
        if self.reloading > 0 {
            let _ = write!(text, "; {} reloaded", self.reloaded);
        }
        text
    }

    /// The summary line: the counts and the time taken.
    pub fn line(&self, elapsed: Duration) -> String {
        format!("{} in {}", self.counts(), seconds(elapsed))
    }
}

/// A byte count as people read it: `812 B`, `4.0 KiB`, `1.2 MiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// A duration as `0.4s`, `12.3s` or `4m05s`.
pub fn seconds(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs < 60.0 {
        format!("{secs:.1}s")
    } else {
        let whole = d.as_secs();
        format!("{}m{:02}s", whole / 60, whole % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn summary(records: serde_json::Value) -> Summary {
        let mut summary = Summary::new("targets");
        for record in records.as_array().unwrap() {
            summary.add(record.as_object().unwrap());
        }
        summary
    }

    #[test]
    fn a_frozen_fleet_says_only_what_it_knows() {
        let s = summary(
            json!([{"host": "a"}, {"host": "b", "error": {"tool": "vd-freeze", "message": "x"}}]),
        );
        assert_eq!(s.counts(), "2 targets: 1 failed");
        assert_eq!(
            s.line(Duration::from_millis(2345)),
            "2 targets: 1 failed in 2.3s"
        );
    }

    #[test]
    fn a_whole_pipeline_adds_up_every_stage() {
        let s = summary(json!([
            {"changed": true, "pushed": {"installed": [], "removed": [], "uploaded": ["a.whl", "b.whl"], "uploaded_bytes": 3 * 1024 * 1024},
             "migrated": {"shop.settings": ["catalog.0001", "catalog.0002"]}, "reloaded": true},
            {"changed": false, "pushed": {"installed": [], "removed": [], "uploaded": [], "uploaded_bytes": 0}},
            {"changed": false, "skipped": true},
            {"error": {"tool": "vd-push", "message": "pip failed"}, "changed": true,
             "pushed": {"installed": [], "removed": [], "uploaded": ["c.whl"], "uploaded_bytes": 512}},
        ]));
        assert_eq!(
            s.counts(),
            "4 targets: 2 changed, 1 unchanged, 1 skipped, 1 failed; 3 wheels (3.0 MiB) \
             uploaded; 2 migrations applied; 1 reloaded"
        );
    }

    #[test]
    fn targets_a_stopped_rollout_skipped_are_not_taken_from_the_unchanged() {
        let s = summary(json!([
            {"changed": true}, {"changed": false}, {"skipped": true, "rollout": {"wave": 2}},
        ]));
        assert_eq!(
            s.counts(),
            "3 targets: 1 changed, 1 unchanged, 1 skipped, 0 failed"
        );
    }

    #[test]
    fn sizes_and_times_read_like_a_person_wrote_them() {
        assert_eq!(bytes(812), "812 B");
        assert_eq!(bytes(4096), "4.0 KiB");
        assert_eq!(bytes(5 * 1024 * 1024 * 1024), "5.0 GiB");
        assert_eq!(seconds(Duration::from_millis(400)), "0.4s");
        assert_eq!(seconds(Duration::from_secs(245)), "4m05s");
    }
}
