//! A rollout: the targets fed in waves, in input order, to the user's own
//! pipeline (`sh -c COMMAND`), under one budget of failures for the whole
//! run; past it the rollout stops, and the targets it did not reach come
//! out `skipped`.
//!
//! The rollout decides only which targets go when, and counts what comes
//! back: what a release does to a target is COMMAND's (vd-push | vd-migrate
//! | vd-reload --revert, typically). A wave starts once the one before it
//! has given back its records and they are counted. Records that come in
//! with an `error` pass through in their place, are not released and do not
//! count against the budget (they failed before the rollout, and the tool
//! that failed them said so). A target counts as failed when its record
//! comes back with an `error`, does not come back at all, or fails its
//! check again after `--pause`; a line COMMAND gives back that is no
//! target of the wave counts as a failure too.
//!
//! Its parts: [`command`] runs one wave's COMMAND and matches
//! its output to the wave's targets; [`hosts`] does the work between waves
//! on the released targets' hosts (the checks after a pause, the switch
//! back of `--revert-wave`), reusing vd-reload's check and vd-rollback's
//! switch; [`amount`] reads counts and percentages. The input is read as it
//! comes, a wave at a time, unless a percentage needs the count of the
//! whole input: then it is first spooled to an unlinked temporary file.

mod amount;
mod command;
mod hosts;

pub use amount::{Amount, Rounding};
pub use hosts::Hosts;

use crate::console;
use crate::fleet::set_target_error;
use crate::log::{Event, EventWriter};
use crate::output::Output;
use crate::record::{
    self, error_of, target_label, Changed, Checked, Field, Generation, Line, Reader, Record,
    Reloaded, RolledBack, Skipped, Target,
};
use crate::remote::reload;
use crate::tools::rollback;
use anyhow::{Context, Result};
use command::{Answer, End};
use hosts::Session;
use serde::{Deserialize, Serialize};
use std::io::{self, BufRead, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::time::Duration;

/// The tool's name, in its messages and the errors it puts in records.
pub const TOOL: &str = "vd-rollout";

/// How often a check run by the rollout is tried, and the wait before the
/// first retry (twice as long before each next one): a service just
/// switched back may take a moment to answer.
const CHECK_TRIES: u32 = 3;
const CHECK_DELAY: Duration = Duration::from_secs(1);

/// What the user asked of the rollout.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The size of the first wave.
    pub canary: Option<u64>,
    /// The size of each wave after the canary; none: all the rest at once.
    pub wave: Option<Amount>,
    /// Failures allowed in the whole run.
    pub max_fail: Amount,
    /// The wait after each wave before its targets are checked again.
    pub pause: Option<Duration>,
    /// Switch the breaching wave's released targets back.
    pub revert_wave: bool,
    /// The shell text run once per wave.
    pub command: String,
}

impl Plan {
    /// Whether the whole input must be counted before the first wave.
    pub fn needs_count(&self) -> bool {
        self.max_fail.is_percent() || self.wave.is_some_and(|w| w.is_percent())
    }
}

/// `rollout` (from vd-rollout): the wave a target went out in, or, for a
/// target the rollout did not reach, the wave it would have gone out in
/// and why the rollout stopped before it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolloutField {
    pub wave: u64,
    /// The wave after which the rollout stopped (on skipped targets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_after: Option<u64>,
    /// The targets that had failed when it stopped.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed: Vec<String>,
    /// Why it stopped, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// True on a target `--revert-wave` switched back.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reverted_wave: bool,
}

impl Field for RolloutField {
    const NAME: &'static str = "rollout";
}

/// The records of the input, with the count of its targets when `plan`
/// needs it: then the input is first read whole into an unlinked file, so
/// a long input is counted without being held in memory.
pub fn input(
    plan: &Plan,
    stdin: impl BufRead + Send + 'static,
) -> Result<(Option<u64>, Box<dyn Iterator<Item = Line> + Send>)> {
    let reader = Reader::new(stdin, TOOL);
    if !plan.needs_count() {
        return Ok((None, Box::new(reader)));
    }
    let path = std::env::temp_dir().join(format!("vd-rollout-{}", std::process::id()));
    // New (never a file or link someone put there) and the user's alone:
    // the records may say more than the user would show.
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("cannot make {} to count the input in", path.display()))?;
    let _ = std::fs::remove_file(&path);
    let mut spool = io::BufWriter::new(&mut file);
    let mut total = 0;
    for line in reader {
        total += u64::from(error_of(&line.record).is_none());
        serde_json::to_writer(&mut spool, &line.record)?;
        spool.write_all(b"\n")?;
    }
    spool.flush()?;
    drop(spool);
    file.rewind()?;
    let spooled = Reader::new(io::BufReader::new(file), TOOL);
    Ok((Some(total), Box::new(spooled)))
}

/// One record of a wave, in input order.
struct Slot {
    record: Record,
    /// A target to release (not a record that came in with an error).
    target: bool,
    /// Given back by COMMAND without an error.
    released: bool,
}

/// Why the rollout stopped.
struct Stop {
    after: u64,
    reason: String,
}

/// A rollout under way: its plan, where its records go, and its counts.
pub struct Rollout<'a, W: Write> {
    plan: &'a Plan,
    out: &'a mut Output<W>,
    log: &'a EventWriter,
    hosts: &'a Hosts,
    /// Targets in the whole input, when counted.
    total: Option<u64>,
    budget: u64,
    /// The wave the next target goes into, and how many it holds so far.
    wave: u64,
    fill: u64,
    released: u64,
    /// The names of the targets that failed so far.
    failed: Vec<String>,
    stop: Option<Stop>,
}

impl<'a, W: Write> Rollout<'a, W> {
    pub fn new(
        plan: &'a Plan,
        total: Option<u64>,
        out: &'a mut Output<W>,
        log: &'a EventWriter,
        hosts: &'a Hosts,
    ) -> Self {
        Rollout {
            plan,
            out,
            log,
            hosts,
            total,
            budget: plan.max_fail.of(total, Rounding::Down),
            wave: 1,
            fill: 0,
            released: 0,
            failed: Vec::new(),
            stop: None,
        }
    }

    /// Read every record, run the waves and write every record; whether
    /// the rollout stopped before the end.
    pub fn run(mut self, input: impl Iterator<Item = Line>) -> Result<bool> {
        let mut slots = Vec::new();
        self.show("waiting for input");
        for line in input {
            console::read(Some(()));
            let mut record = line.record;
            let target = error_of(&record).is_none();
            if self.stop.is_some() {
                if target {
                    self.skip(&mut record);
                    self.advance();
                }
                self.out.write(&record)?;
                continue;
            }
            if target {
                // What an earlier rollout said of the target is not this one's.
                record::remove::<Skipped>(&mut record);
                record::remove::<RolloutField>(&mut record);
            }
            slots.push(Slot {
                record,
                target,
                released: false,
            });
            if target && self.advance() {
                self.run_wave(std::mem::take(&mut slots))?;
            }
        }
        console::read(None);
        if slots.iter().any(|s| s.target) {
            self.run_wave(slots)?;
        } else {
            for slot in slots {
                self.out.write(&slot.record)?;
            }
        }
        self.show("done");
        Ok(self.stop.is_some())
    }

    /// Count one more target into the current wave; whether it is full.
    fn advance(&mut self) -> bool {
        self.fill += 1;
        if self.fill < self.size(self.wave) {
            return false;
        }
        self.wave += 1;
        self.fill = 0;
        true
    }

    /// How many targets wave `number` holds.
    fn size(&self, number: u64) -> u64 {
        match (number, self.plan.canary) {
            (1, Some(canary)) => canary,
            _ => self
                .plan
                .wave
                .map_or(u64::MAX, |w| w.of(self.total, Rounding::Up)),
        }
    }

    /// How many waves the input makes, when it was counted.
    fn waves(&self) -> Option<u64> {
        let total = self.total?;
        let canary = self.plan.canary.unwrap_or(0).min(total);
        let rest = total - canary;
        let wave = self.size(2).max(1);
        Some(u64::from(canary > 0) + rest.div_ceil(wave))
    }

    /// `wave 2 of 4`, or `wave 2` when the input was not counted.
    fn name(&self, number: u64) -> String {
        match self.waves() {
            Some(waves) => format!("wave {number} of {waves}"),
            None => format!("wave {number}"),
        }
    }

    /// The rollout's line on the progress bar, with what it does now.
    fn show(&self, doing: &str) {
        let left = self.budget.saturating_sub(self.failed.len() as u64);
        console::status(&format!(
            "{doing} · {} released, {} failed, budget {left} left",
            self.released,
            self.failed.len()
        ));
    }

    /// Feed one wave to COMMAND, count what comes back, watch it through
    /// the pause, stop past the budget, and write the wave's records.
    fn run_wave(&mut self, mut slots: Vec<Slot>) -> Result<()> {
        // A full wave has moved the count on to the next one already.
        let number = match self.fill {
            0 => self.wave - 1,
            _ => self.wave,
        };
        let name = self.name(number);
        let failed_before = self.failed.len();
        let answer = self.feed(&name, number, &mut slots);
        if let End::Killed(signal) = answer.end {
            self.stop = Some(Stop {
                after: number,
                reason: format!("{name}: COMMAND was killed by signal {signal}"),
            });
        }
        if let (None, false, Some(pause)) = (&self.stop, self.over_budget(), self.plan.pause) {
            self.show(&format!(
                "{name}: pausing {}",
                humantime::format_duration(pause)
            ));
            std::thread::sleep(pause);
            self.show(&format!("{name}: checking"));
            self.check_again(&mut slots);
        }
        self.log_wave(&name, &slots, failed_before);
        if self.stop.is_none() && self.over_budget() {
            self.stop = Some(Stop {
                after: number,
                reason: format!(
                    "{} failed, past the budget of {} (--max-fail {})",
                    targets(self.failed.len()),
                    self.budget,
                    self.plan.max_fail
                ),
            });
        }
        if let Some(stop) = &self.stop {
            self.event(format!("stopped after {name}: {}", stop.reason));
            if self.plan.revert_wave {
                self.show(&format!("{name}: switching back"));
                self.revert(&mut slots);
            }
        }
        for record in slots.iter().map(|s| &s.record).chain(&answer.foreign) {
            self.out.write(record)?;
        }
        Ok(())
    }

    /// Run COMMAND on the wave's targets and take back what it gives:
    /// into the slots, and the foreign lines counted as failures.
    fn feed(&mut self, name: &str, number: u64, slots: &mut [Slot]) -> Answer {
        let fed: Vec<Record> = slots
            .iter()
            .filter(|s| s.target)
            .map(|s| s.record.clone())
            .collect();
        self.event(format!("{name} started: {}", targets(fed.len())));
        self.show(&format!("{name}: running"));
        let answer = command::run(&self.plan.command, &fed, TOOL, number).unwrap_or_else(|e| {
            crate::messages::error(TOOL, &format!("{name}: {e:#}"));
            Answer {
                returned: vec![None; fed.len()],
                foreign: Vec::new(),
                end: End::Unstarted,
            }
        });
        self.take_answer(slots, &answer, number);
        self.failed.extend(answer.foreign.iter().map(target_label));
        answer
    }

    /// The wave's `failed` event (when some failed) and `released` event.
    fn log_wave(&self, name: &str, slots: &[Slot], failed_before: usize) {
        let count = targets(slots.iter().filter(|s| s.target).count());
        let failed = &self.failed[failed_before..];
        if !failed.is_empty() {
            self.event(format!(
                "{name} failed: {} of {count} ({}); {} failed in all, budget {}",
                failed.len(),
                failed.join(", "),
                self.failed.len(),
                self.budget
            ));
        }
        // A target that failed its check after the pause stays `released`
        // for --revert-wave, but is not counted so here.
        let released = slots
            .iter()
            .filter(|s| s.released && error_of(&s.record).is_none())
            .count();
        self.event(format!("{name} released: {released} of {count}"));
    }

    /// Put what COMMAND gave back into the wave's slots; a target it gave
    /// nothing back for fails, named in its own record.
    fn take_answer(&mut self, slots: &mut [Slot], answer: &Answer, number: u64) {
        let mut returned = answer.returned.iter();
        for slot in slots.iter_mut().filter(|s| s.target) {
            match returned.next().cloned().flatten() {
                Some(record) => slot.record = record,
                None => {
                    let message = format!(
                        "wave {number}: COMMAND gave back no record of this target (it {}); \
                         whether it was released is unknown",
                        answer.end
                    );
                    set_target_error(TOOL, &mut slot.record, &message);
                }
            }
            record::put(
                &mut slot.record,
                &RolloutField {
                    wave: number,
                    ..RolloutField::default()
                },
            );
            if error_of(&slot.record).is_some() {
                self.failed.push(target_label(&slot.record));
            } else {
                slot.released = true;
                self.released += 1;
            }
        }
    }

    fn over_budget(&self) -> bool {
        self.failed.len() as u64 > self.budget
    }

    /// After the pause: each released target's `check`, once more; a
    /// failure is the target's error and counts.
    fn check_again(&mut self, slots: &mut [Slot]) {
        let has_check = |target: &Target, _: &Record| target.check.is_some();
        let checked = self.on_released(slots, &has_check, &|session, target, _| {
            let check = target.check.as_deref().unwrap_or_default();
            reload::check(session.connection, check, CHECK_TRIES, CHECK_DELAY)
                .map_err(|e| format!("after the pause: {e}"))
        });
        for (i, outcome) in checked {
            if let Err(message) = outcome {
                set_target_error(TOOL, &mut slots[i].record, &message);
                self.failed.push(target_label(&slots[i].record));
                self.released -= 1;
            }
        }
    }

    /// `--revert-wave`: the wave's released targets back to the generation
    /// before the one COMMAND made, reloaded and checked; logged as
    /// vd-rollback and vd-reload log theirs.
    fn revert(&mut self, slots: &mut [Slot]) {
        let changed = |_: &Target, record: &Record| {
            record::get::<Changed>(record).is_ok_and(|c| c == Some(Changed(true)))
        };
        let reverted = self.on_released(slots, &changed, &revert_target);
        for (i, outcome) in reverted {
            let record = &mut slots[i].record;
            let label = target_label(record);
            match outcome {
                Ok(()) => {
                    let Ok(Some(RolledBack(switch))) = record::get::<RolledBack>(record) else {
                        continue;
                    };
                    let mut field = record::get::<RolloutField>(record)
                        .ok()
                        .flatten()
                        .unwrap_or_default();
                    field.reverted_wave = true;
                    record::put(record, &field);
                    self.log.write(&[Event {
                        target: label,
                        detail: format!(
                            "generation {} to {} by --revert-wave",
                            switch.from, switch.to
                        ),
                        ..Event::now("rollback")
                    }]);
                }
                Err(message) => {
                    let message = match error_of(record) {
                        Some((_, before)) => format!("{before}; not reverted: {message}"),
                        None => format!("not reverted by --revert-wave: {message}"),
                    };
                    record::remove::<record::Error>(record);
                    set_target_error(TOOL, record, &message);
                    self.log.write(&[Event {
                        target: label,
                        detail: format!("{TOOL}: {message}"),
                        ..Event::now("error")
                    }]);
                }
            }
        }
    }

    /// Do `work` to the wave's released targets that `needs` it, on their
    /// hosts; each one's slot and outcome. A record whose target fields
    /// cannot be read fails as its outcome.
    fn on_released(
        &self,
        slots: &mut [Slot],
        needs: &dyn Fn(&Target, &Record) -> bool,
        work: &hosts::Work,
    ) -> Vec<(usize, Result<(), String>)> {
        let mut chosen = Vec::new();
        let mut items = Vec::new();
        let mut outcomes = Vec::new();
        for (i, slot) in slots.iter_mut().enumerate().filter(|(_, s)| s.released) {
            match Target::parse(&slot.record) {
                Ok(target) if !needs(&target, &slot.record) => {}
                Ok(target) => {
                    chosen.push(i);
                    items.push((target, std::mem::take(&mut slot.record)));
                }
                Err(e) => outcomes.push((i, Err(format!("{e:#}")))),
            }
        }
        let done = self.hosts.on_each(items, work);
        for (i, (record, outcome)) in chosen.into_iter().zip(done) {
            slots[i].record = record;
            outcomes.push((i, outcome));
        }
        outcomes
    }

    /// Mark a target the rollout did not reach: `skipped`, and why.
    fn skip(&self, record: &mut Record) {
        let stop = self.stop.as_ref().expect("only a stopped rollout skips");
        record::put(record, &Skipped(true));
        record::put(
            record,
            &RolloutField {
                wave: self.wave,
                stopped_after: Some(stop.after),
                failed: self.failed.clone(),
                reason: Some(stop.reason.clone()),
                reverted_wave: false,
            },
        );
    }

    /// A `rollout` event in the release log.
    fn event(&self, detail: String) {
        self.log.write(&[Event {
            detail,
            ..Event::now("rollout")
        }]);
    }
}

/// `1 target`, `2 targets`.
fn targets(count: usize) -> String {
    match count {
        1 => "1 target".to_string(),
        n => format!("{n} targets"),
    }
}

/// Switch one released target back to the generation before the one its
/// record names (only from that one, as vd-reload --revert does), then run
/// its reload (once per host and command for `reload_once` targets) and
/// its check.
fn revert_target(
    session: &mut Session,
    target: &Target,
    record: &mut Record,
) -> Result<(), String> {
    let Ok(Some(Generation {
        active: Some(active),
        previous: Some(previous),
    })) = record::get::<Generation>(record)
    else {
        return Err("the record names no previous generation to go back to".to_string());
    };
    let switch = rollback::roll_back(
        session.connection,
        target,
        record,
        Some(active),
        Some(previous),
    )
    .map_err(|e| format!("the switch back to generation {previous} failed: {e:#}"))?;
    record::put(record, &RolledBack(switch));
    record::remove::<Reloaded>(record);
    record::remove::<Checked>(record);
    if let Some(command) = &target.reload {
        if !target.reload_once || session.reloaded_once.insert(command.clone()) {
            reload::reload(session.connection, command)
                .map_err(|e| format!("switched back to generation {previous}, then: {e}"))?;
        }
        record::put(record, &Reloaded(true));
    }
    if let Some(check) = &target.check {
        reload::check(session.connection, check, CHECK_TRIES, CHECK_DELAY)
            .map_err(|e| format!("switched back to generation {previous}, then: {e}"))?;
        record::put(record, &Checked(true));
    }
    Ok(())
}
