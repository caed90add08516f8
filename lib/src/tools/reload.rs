//! `vd-reload`: reload the services of the targets that changed, and check
//! that they came back.
//!
//! A reload is the user's own shell command (`reload`), run on the target's
//! host as the login user; vd decides only when and how often. Per target by
//! default; with `reload_once`, once per host and command, after all of that
//! host's targets in the stream have arrived. Reloading after each venv, as
//! the fabfile vd replaces did, restarts a service between two venvs'
//! updates; here such targets are held ([`Host::hold`]) and reloaded together
//! in the fleet's finish, when the input has ended.

use crate::cli::{AfterPushArgs, ChangedArgs, TransportArgs};
use crate::console;
use crate::fleet::{self, Held, Host};
use crate::log::{Event, EventWriter, ReleaseLog};
use crate::messages;
use crate::output::{status_cell, Output, Status, Table};
use crate::record::{
    self, target_label, Changed, Checked, Generation, Reader, Record, Reloaded, Reverted, Switch,
    Target,
};
use crate::remote::reload;
use crate::remote::running::Scan;
use crate::repo::Repo;
use crate::tools::rollback;
use crate::transport::Connection;
use anyhow::{bail, Result};
use std::collections::{BTreeMap, HashMap};
use std::io;
use std::time::Duration;

const TOOL: &str = "vd-reload";

/// Reload the services of the targets that changed.
///
/// Reads target records (from vd-migrate) on stdin. For each record that
/// changed (`changed: true`; every record with --always) and carries no
/// `error`, runs its `reload` command on the target's host as the login user.
/// The command is shell text from the inventory and runs as written (it
/// carries its own sudo where one is needed). Sets `reloaded: true`, and logs
/// a `reload` event; a target without a `reload` command gets `reloaded:
/// false`. A reload that fails (exits non-zero) is an `error` on the record,
/// with the end of the command's output, and an `error` event.
///
/// With `reload_once` true, a host's targets share their reloads: each
/// distinct reload command runs once on the host, after every target of
/// that host has arrived on stdin (that is, when the input ends), and its
/// outcome goes to each of those targets. Their records, and those after
/// them, are written after it.
///
/// A target's `check` command, if any, runs after its reload, as the login
/// user on its host (for example curl -fsS against a health URL). It is
/// tried up to --check-tries times, waiting --check-delay before the first
/// retry and twice as long before each next one; success sets `checked:
/// true`, failure is an error on the record.
///
/// Records that did not change, or carry an error (a failed migration), pass
/// through untouched: they are not reloaded. The one exception is --revert's
/// (below): a target with generations whose migrations failed after vd-push
/// switched it is switched back. Exit status: 0 when every target
/// is fine, 1 when some record carries an error (or an event could not be
/// logged), 2 on a usage or setup error.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    after_push: AfterPushArgs,

    /// Run a target's `check` up to N times before calling it failed.
    #[arg(long, value_name = "N", default_value_t = 5,
          value_parser = clap::value_parser!(u32).range(1..=100))]
    check_tries: u32,

    /// The wait before the first retry of a failing check, in seconds or
    /// with a unit (500ms, 2s); each later wait is twice the one before.
    #[arg(long, value_name = "DELAY", default_value = "1s", value_parser = parse_delay)]
    check_delay: Duration,

    /// After a target's reload and check, wait this long at the most (in
    /// seconds, or with a unit: 500ms, 2m) for its processes on old code to
    /// end: those of another generation than the active one, or, for a
    /// venv changed in place, those that started before its last change.
    /// Old workers finish their requests meanwhile. Any left then fail the
    /// target, named with their pids and commands (a reload that forks new
    /// workers from a master that keeps running, such as HUP to gunicorn,
    /// leaves them all on the old generation). The record gets `running` as
    /// last read. Default: as long as --timeout.
    #[arg(long, value_name = "DURATION", value_parser = parse_delay)]
    drain: Option<Duration>,

    /// When the reload or the check of a target with generations fails,
    /// or processes of another generation are left after --drain, switch it
    /// back to the generation before the one vd-push made (its
    /// record's `generation`), reload and check again, and add `reverted`:
    /// {from, to}. The record keeps its error and the exit status is 1: the
    /// deploy failed. Targets with `reload_once` that failed are switched
    /// back together, and their reload commands and checks run once more.
    ///
    /// A target with generations whose record comes with vd-migrate's error
    /// after vd-push switched it (`changed`, and `generation` names the one
    /// before) is switched back as well, without a reload: its service was
    /// not reloaded and still runs the generation before, which the link
    /// then names again. It gains `reverted` and keeps vd-migrate's error.
    #[arg(long)]
    revert: bool,

    #[command(flatten)]
    transport: TransportArgs,
}

/// `1.5` (seconds) or a duration with units (`500ms`, `2s`).
fn parse_delay(text: &str) -> Result<Duration, String> {
    if let Ok(secs) = text.trim().parse::<f64>() {
        return Duration::try_from_secs_f64(secs)
            .map_err(|_| format!("{text:?} is not a delay (seconds, 0 or more)"));
    }
    humantime::parse_duration(text.trim())
        .map_err(|e| format!("{text:?} is not a delay like 2 or 500ms: {e}"))
}

static TABLE: Table = Table {
    headers: &["TARGET", "RELOAD", "STATUS"],
    row: |r: &Record| {
        let reload = match record::get::<Reloaded>(r) {
            Ok(Some(Reloaded(true))) => {
                let once = Target::parse(r).is_ok_and(|t| t.reload_once);
                let mut cell = if once { "once per host" } else { "reloaded" }.to_string();
                if let Ok(Some(Checked(true))) = record::get(r) {
                    cell.push_str(", checked");
                }
                cell
            }
            Ok(Some(Reloaded(false))) => "no reload command".to_string(),
            _ => String::new(),
        };
        let status = status_cell(r, || {
            if record::has::<Reloaded>(r) {
                "ok".to_string()
            } else {
                "unchanged".to_string()
            }
        });
        vec![target_label(r), reload, status]
    },
};

tool!(VdReload);

fn run(args: Args, out: &mut Output) -> Result<Status> {
    let repo = Repo::open(&args.after_push.repo.repo)?;
    let reloader = Reloader {
        changed: args.after_push.changed,
        revert: args.revert,
        check_tries: args.check_tries,
        check_delay: args.check_delay,
        drain: args
            .drain
            .unwrap_or(Duration::from_secs(args.transport.timeout)),
        log: EventWriter::new(ReleaseLog::new(repo.dir()), TOOL),
    };
    let stdin = Reader::new(io::BufReader::new(io::stdin()), TOOL);
    let mut fleet = args.transport.fleet(TOOL)?;
    if args.revert {
        fleet = fleet.taking_errors(is_armed_after_failed_migration);
    }
    fleet.run_with_finish(
        stdin,
        out,
        |host, target, record| reloader.target(host, target, record),
        |host, held| reloader.once_per_host(host, held),
    )?;
    Ok(if reloader.log.failed() {
        Status::TargetFailed
    } else {
        Status::Ok
    })
}

/// What every target's work shares.
struct Reloader {
    changed: ChangedArgs,
    /// Switch a failed target with generations back (`--revert`).
    revert: bool,
    check_tries: u32,
    check_delay: Duration,
    /// How long a reloaded target's processes on old code may take to end.
    drain: Duration,
    log: EventWriter,
}

impl Reloader {
    /// Reload one target now, or hold it for its host's reload; or (only
    /// with --revert) switch back a target whose migrations failed.
    fn target(&self, host: &mut Host<()>, target: &Target, record: &mut Record) -> Result<()> {
        if let Some((_, message)) = record::error_of(record) {
            return self.revert_failed_migration(host, target, record, &message);
        }
        if !self.changed.selects(record)? {
            return Ok(());
        }
        // Every field is read before anything runs: a bad one is this
        // target's error, not a surprise after its reload.
        let Target {
            reload,
            reload_once: once,
            ..
        } = target;
        if reload.is_none() {
            record::put(record, &Reloaded(false));
            return Ok(());
        }
        if *once {
            host.hold();
            return Ok(());
        }
        let label = target_label(record);
        let _doing = console::doing("reload", record);
        let connection = host.connection()?;
        let failed = match self.reload_and_check(connection, &label, target, record) {
            Ok(()) => return Ok(()),
            Err(message) => message,
        };
        self.log_error(&label, &failed);
        if !self.revert || target.generations.is_none() {
            bail!(failed);
        }
        // deploy-rs's magic rollback: back to the generation before the
        // push's, reloaded and checked again. The deploy still failed.
        let switch = match self.switch_back(connection, &label, target, record, &failed) {
            Ok(switch) => switch,
            Err(message) => bail!(message),
        };
        let again = self.reload_and_check(connection, &label, target, record);
        if let Err(again) = &again {
            self.log_error(&label, again);
        }
        bail!(after_revert(&failed, switch, target, &again))
    }

    /// With --revert, a target whose migrations failed after vd-push switched
    /// its link ([`is_armed_after_failed_migration`]) goes back to the
    /// generation before, so that the link names what runs: its service was
    /// not reloaded, so it is not reloaded now either. The record keeps
    /// vd-migrate's error and gains `reverted`; a revert that fails is this
    /// tool's error, with vd-migrate's message in it.
    fn revert_failed_migration(
        &self,
        host: &mut Host<()>,
        target: &Target,
        record: &mut Record,
        migrate_error: &str,
    ) -> Result<()> {
        let label = target_label(record);
        let failed = format!("vd-migrate failed: {migrate_error}");
        let connection = match host.connection() {
            Ok(connection) => connection,
            Err(e) => bail!("{failed}; not reverted: {e:#}"),
        };
        let switch = match self.switch_back(connection, &label, target, record, &failed) {
            Ok(switch) => switch,
            Err(message) => bail!(message),
        };
        messages::warn(
            TOOL,
            &format!(
                "{label}: switched back from generation {} to {} after its migrations failed \
                 (not reloaded: its service still runs generation {})",
                switch.from, switch.to, switch.to
            ),
        );
        Ok(())
    }

    /// Switch a target whose reload or check failed (`failed`) back to the
    /// generation before the push's (its record's `generation`): `reverted`
    /// in its record and a `revert` event; or why not, as its error.
    fn switch_back(
        &self,
        connection: &mut Connection,
        label: &str,
        target: &Target,
        record: &mut Record,
        failed: &str,
    ) -> Result<Switch, String> {
        let Ok(Some(Generation {
            active: Some(active),
            previous: Some(previous),
        })) = record::get::<Generation>(record)
        else {
            return Err(format!(
                "{failed}; not reverted: the record names no previous generation"
            ));
        };
        let switch =
            match rollback::roll_back(connection, target, record, Some(active), Some(previous)) {
                Ok(switch) => switch,
                Err(e) => {
                    let message =
                        format!("{failed}; the revert to generation {previous} failed: {e:#}");
                    self.log_error(label, &message);
                    return Err(message);
                }
            };
        record::put(record, &Reverted(switch));
        record::remove::<Reloaded>(record);
        record::remove::<Checked>(record);
        self.log.write(&[Event {
            target: label.to_string(),
            detail: format!(
                "generation {} to {} after: {failed}",
                switch.from, switch.to
            ),
            ..Event::now("revert")
        }]);
        Ok(switch)
    }

    /// Run a target's reload, then its check, then wait for its processes
    /// on old code to end; the first failure in words.
    fn reload_and_check(
        &self,
        connection: &mut Connection,
        label: &str,
        target: &Target,
        record: &mut Record,
    ) -> Result<(), String> {
        let reload = target.reload.as_deref().unwrap_or_default();
        self.reload(connection, reload)?;
        record::put(record, &Reloaded(true));
        self.log_reload(label, reload);
        if let Some(check) = &target.check {
            self.check(connection, check)?;
            record::put(record, &Checked(true));
        }
        self.drain(connection, target, record)
    }

    /// Wait up to --drain for what runs from the target's venv to be the
    /// code it holds now; `running` as last read goes into the record. What
    /// is left is the target's failure. A scan that cannot run is said on
    /// stderr and in `running_unseen`: it does not fail a reload that went
    /// well, it only cannot confirm it.
    fn drain(
        &self,
        connection: &mut Connection,
        target: &Target,
        record: &mut Record,
    ) -> Result<(), String> {
        let label = target_label(record);
        let scan = match reload::drain(connection, target, self.drain) {
            Ok(scan) => scan,
            Err(e) => Scan::unseen(format!("{e:#}")),
        };
        scan.put(record);
        if let Some(reason) = &scan.unseen.reason {
            messages::warn(
                TOOL,
                &format!("{label}: cannot tell what runs after the reload: {reason}"),
            );
        }
        match reload::left_behind(&scan, target.generations.is_some(), self.drain) {
            Some(message) => Err(message),
            None => Ok(()),
        }
    }

    /// The held `reload_once` targets of one host, once its last target has
    /// arrived: each distinct reload command once, then each target's check
    /// (each distinct check once, since it asks the same host the same
    /// question). With --revert, the targets that failed and have
    /// generations are switched back, and their reload commands run once
    /// more, then their checks.
    fn once_per_host(&self, host: &mut Host<()>, held: &mut [Held]) {
        let all: Vec<usize> = (0..held.len()).collect();
        let failures = self.reload_together(host, held, &all);
        let mut reverted: Vec<(usize, String, Switch)> = Vec::new();
        for (i, failed) in failures {
            let Held { target, record } = &mut held[i];
            if !self.revert || target.generations.is_none() {
                fleet::set_target_error(TOOL, record, &failed);
                continue;
            }
            let label = target_label(record);
            let switched = host
                .connection()
                .map_err(|e| format!("{failed}; not reverted: {e:#}"))
                .and_then(|c| self.switch_back(c, &label, target, record, &failed));
            match switched {
                Ok(switch) => reverted.push((i, failed, switch)),
                Err(message) => fleet::set_target_error(TOOL, record, &message),
            }
        }
        if reverted.is_empty() {
            return;
        }
        // A command that other held targets share restarts their service
        // too; their checks passed once and are not run again.
        let members: Vec<usize> = reverted.iter().map(|(i, ..)| *i).collect();
        let mut again = self.reload_together(host, held, &members);
        for (i, failed, switch) in reverted {
            let Held { target, record } = &mut held[i];
            let outcome = match again.remove(&i) {
                Some(message) => Err(message),
                None => Ok(()),
            };
            let message = after_revert(&failed, switch, target, &outcome);
            fleet::set_target_error(TOOL, record, &message);
        }
    }

    /// Reload the held targets `members` together: each distinct reload
    /// command once, then their checks (each distinct check once). Puts
    /// `reloaded` and `checked` into the records, logs each reload and
    /// failure, and returns the failures in words, by target.
    fn reload_together(
        &self,
        host: &mut Host<()>,
        held: &mut [Held],
        members: &[usize],
    ) -> BTreeMap<usize, String> {
        let mut commands: Vec<(String, Vec<usize>)> = Vec::new();
        for &i in members {
            let command = held[i].target.reload.clone().unwrap_or_default();
            match commands.iter_mut().find(|(c, _)| *c == command) {
                Some((_, members)) => members.push(i),
                None => commands.push((command, vec![i])),
            }
        }
        let mut failures = BTreeMap::new();
        let mut checks: HashMap<String, Result<(), String>> = HashMap::new();
        for (command, members) in commands {
            let reloaded = match host.connection() {
                Ok(connection) => self.reload(connection, &command),
                Err(e) => Err(format!("{e:#}")),
            };
            for &i in &members {
                let Held { target, record } = &mut held[i];
                let label = target_label(record);
                match &reloaded {
                    Ok(()) => {
                        record::put(record, &Reloaded(true));
                        self.log_reload(&label, &command);
                    }
                    Err(message) => {
                        self.log_error(&label, message);
                        failures.insert(i, message.clone());
                        continue;
                    }
                }
                let Some(check) = &target.check else {
                    continue;
                };
                let checked = match checks.get(check) {
                    Some(outcome) => outcome.clone(),
                    None => {
                        let outcome = match host.connection() {
                            Ok(connection) => self.check(connection, check),
                            Err(e) => Err(format!("{e:#}")),
                        };
                        checks.insert(check.clone(), outcome.clone());
                        outcome
                    }
                };
                let checked = checked.map(|()| record::put(record, &Checked(true)));
                let drained = checked.and_then(|()| match host.connection() {
                    Ok(connection) => self.drain(connection, target, record),
                    Err(e) => Err(format!("{e:#}")),
                });
                if let Err(message) = drained {
                    self.log_error(&label, &message);
                    failures.insert(i, message);
                }
            }
        }
        failures
    }

    /// Run a reload command as it is written.
    fn reload(&self, connection: &mut Connection, command: &str) -> Result<(), String> {
        reload::reload(connection, command)
    }

    /// Run a check until it succeeds or its tries are used up.
    fn check(&self, connection: &mut Connection, command: &str) -> Result<(), String> {
        reload::check(connection, command, self.check_tries, self.check_delay)
    }

    fn log_reload(&self, label: &str, command: &str) {
        self.log.write(&[Event {
            target: label.to_string(),
            detail: command.to_string(),
            ..Event::now("reload")
        }]);
    }

    fn log_error(&self, label: &str, message: &str) {
        self.log.write(&[Event {
            target: label.to_string(),
            detail: format!("{TOOL}: {message}"),
            ..Event::now("error")
        }]);
    }
}

/// Whether a record that carries an error is one --revert switches back:
/// vd-migrate failed on a target with `generations` that vd-push changed,
/// and its `generation` names the one before (so the link names code whose
/// migrations failed, while the service, not reloaded, runs the one
/// before). Every other error record passes through untouched.
fn is_armed_after_failed_migration(record: &Record) -> bool {
    let by_migrate = record::error_of(record).is_some_and(|(tool, _)| tool == "vd-migrate");
    let has_generations = Target::parse(record).is_ok_and(|t| t.generations.is_some());
    let changed = matches!(record::get::<Changed>(record), Ok(Some(Changed(true))));
    let switched = matches!(
        record::get::<Generation>(record),
        Ok(Some(Generation {
            active: Some(_),
            previous: Some(_)
        }))
    );
    let reverted = record::has::<Reverted>(record);
    by_migrate && has_generations && changed && switched && !reverted
}

/// A reverted target's error: what failed, the revert, and how the reload
/// and check after it went (the deploy failed either way).
fn after_revert(
    failed: &str,
    switch: Switch,
    target: &Target,
    again: &Result<(), String>,
) -> String {
    match again {
        Ok(()) => format!(
            "{failed}; reverted to generation {}, reloaded{}",
            switch.to,
            if target.check.is_some() {
                " and checked"
            } else {
                ""
            }
        ),
        Err(again) => format!(
            "{failed}; reverted to generation {}, and then: {again}",
            switch.to
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_in_seconds_or_with_units() {
        assert_eq!(parse_delay("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_delay("0.25"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_delay("500ms"), Ok(Duration::from_millis(500)));
        assert!(parse_delay("-1").is_err());
        assert!(parse_delay("soon").unwrap_err().contains("soon"));
    }
}
