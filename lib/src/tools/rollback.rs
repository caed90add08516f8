//! `vd-rollback`: switch targets with generations back to an older
//! generation.

use crate::cli::{RepoArgs, TransportArgs};
use crate::fleet::Host;
use crate::log::{Event, EventWriter, ReleaseLog};
use crate::output::{status_cell, Output, Status, Table};
use crate::push::intent::{Intents, Kind, Pending};
use crate::record::{
    self, target_label, Changed, Frozen, Generation, Reader, Record, RolledBack, Switch, Target,
};
use crate::remote;
use crate::remote::switch::{switch_command, Switched, SWITCH_STDIN};
use crate::repo::Repo;
use crate::transport::Connection;
use anyhow::{bail, Result};
use std::io;

const TOOL: &str = "vd-rollback";

/// Switch each target with generations back to its previous generation.
///
/// Reads target records on stdin (from vd-targets, or saved vd-push output).
/// For each target with `generations`, under the lock vd-push takes
/// (VENV.generations/.vd-lock), points the venv's path back at the kept
/// generation before the active one (or at --to N) with one rename(2) of a
/// new link over the old one. Nothing is removed: the generation left stays
/// kept, so a later vd-rollback --to can go forward again. Adds to the
/// record `rolled_back`: {from, to}, `changed: true`, `generation`: {active,
/// previous}, and the now-active generation's `installed`, `python` and
/// `markers`; logs a `rollback` event. Pipe into vd-reload to reload the
/// services: `vd-targets shop@ | vd-rollback | vd-reload`. Only a
/// generation whose build finished and was checked is ever switched to.
///
/// A rollback (or a push's build) killed before logging its switch is
/// logged by the next vd-rollback or vd-push to the target, as the host
/// noted the switch.
///
/// Migrations are not reversed: when the release log shows migrations
/// applied since the generation left was made, a warning on stderr names
/// them (the database stays migrated; the older code must cope with it).
///
/// A target changed in place (no `generations`) cannot be switched back:
/// that is an error pointing at re-applying a saved freeze (vd-diff --lock
/// FILE | vd-push). Records with an `error` pass through untouched. Exit
/// status: 0 when every target was switched, 1 when some record carries an
/// error, 2 on a usage or setup error.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    repo: RepoArgs,

    /// Switch to generation N instead of the one before the active one (N
    /// must still be kept; it may be newer than the active one).
    #[arg(long, value_name = "N")]
    to: Option<u32>,

    #[command(flatten)]
    transport: TransportArgs,
}

static TABLE: Table = Table {
    headers: &["TARGET", "ROLLED BACK", "STATUS"],
    row: |r: &Record| {
        let cell = match record::get::<RolledBack>(r) {
            Ok(Some(RolledBack(Switch { from, to }))) => {
                format!("generation {from} -> {to}")
            }
            _ => String::new(),
        };
        vec![target_label(r), cell, status_cell(r, || "ok".to_string())]
    },
};

tool!(VdRollback);

fn run(args: Args, out: &mut Output) -> Result<Status> {
    let repo = Repo::open(&args.repo.repo)?;
    let log = EventWriter::new(ReleaseLog::new(repo.dir()), TOOL);
    let intents = Intents::new(repo.dir());
    let stdin = Reader::new(io::BufReader::new(io::stdin()), TOOL);
    let to = args.to;
    args.transport
        .fleet(TOOL)?
        .run(stdin, out, |host: &mut Host<()>, target, record| {
            let rollback = Rollback {
                intents: &intents,
                log: &log,
                repo: repo.dir(),
                to,
            };
            rollback.run(host.connection()?, target, record)
        })?;
    Ok(if log.failed() {
        Status::TargetFailed
    } else {
        Status::Ok
    })
}

/// vd-rollback's work, shared by every host's worker.
struct Rollback<'a> {
    intents: &'a Intents,
    log: &'a EventWriter,
    repo: &'a std::path::Path,
    /// --to.
    to: Option<u32>,
}

impl Rollback<'_> {
    /// Switch one target back and log it: first the earlier runs to the
    /// target that ended without logging are settled (see
    /// [`crate::push::intent`]), then this run's intent is written, its id
    /// handed to the host with the switch, and deleted once its event is in
    /// the release log.
    fn run(&self, connection: &mut Connection, target: &Target, record: &mut Record) -> Result<()> {
        let label = target_label(record);
        let mut pending = None;
        if target.generations.is_some() {
            let run_as = target.run_as(connection.user()).map(str::to_string);
            let orphans = self.intents.orphans(&label);
            Intents::settle_switches(
                connection,
                run_as.as_deref(),
                &target.venv,
                &orphans,
                self.log,
            )?;
            pending = self
                .intents
                .begin(&label, Kind::Rollback, &[])
                .map_err(|e| {
                    let message =
                        format!("{label}: {e:#}; a rollback killed now would go unlogged");
                    crate::messages::warn(TOOL, &message);
                })
                .ok();
        }
        let id = pending.as_ref().map(|p| p.id.as_str()).unwrap_or_default();
        let mut answered = false;
        let result = switch_back(connection, target, record, None, self.to, id, &mut answered);
        let event = match &result {
            Ok(switch) => {
                warn_of_migrations(self.repo, &label, switch);
                Event {
                    target: label,
                    detail: format!("generation {} to {}", switch.from, switch.to),
                    ..Event::now("rollback")
                }
            }
            Err(e) => Event {
                target: label,
                detail: format!("{TOOL}: {e:#}"),
                ..Event::now("error")
            },
        };
        // A run the host did not answer may have switched: its intent stays
        // for the next run to settle.
        if self.log.write(&[event]) && answered {
            pending.iter().for_each(Pending::done);
        }
        result.map(|_| ())
    }
}

/// Switch one target back (to `to`, or the generation before the active
/// one; only from `from`, when given) and write what it now is into its
/// record: `generation`, the freeze, and `rolled_back`. vd-reload --revert
/// uses it too, and records `reverted` instead.
pub(crate) fn roll_back(
    connection: &mut Connection,
    target: &Target,
    record: &mut Record,
    from: Option<u32>,
    to: Option<u32>,
) -> Result<Switch> {
    switch_back(connection, target, record, from, to, "", &mut false)
}

/// [`roll_back`], with the id of the run's intent (may be empty) for the
/// host to note with the switch; `answered` is set once the host's answer
/// came back (without it, whether it switched is unknown).
fn switch_back(
    connection: &mut Connection,
    target: &Target,
    record: &mut Record,
    from: Option<u32>,
    to: Option<u32>,
    intent: &str,
    answered: &mut bool,
) -> Result<Switch> {
    if target.generations.is_none() {
        bail!(
            "{} is changed in place (it has no `generations`), so there is no generation to \
             switch back to: re-apply a saved freeze instead (vd-diff --lock FREEZE.jsonl | \
             vd-push), or a saved requirements file",
            target.venv
        );
    }
    let run_as = target.run_as(connection.user()).map(str::to_string);
    let command = remote::as_user(
        run_as.as_deref(),
        &switch_command(&target.venv, from, to, intent),
    );
    let finished = connection.run(&command, SWITCH_STDIN.as_bytes())?;
    *answered = true;
    if let Some(message) = remote::sudo_refusal(&finished, run_as.as_deref()) {
        bail!(message);
    }
    let switched = Switched::parse(&finished)?;
    record::merge(
        record,
        &Frozen {
            python: switched.freeze.python.clone(),
            markers: switched.freeze.markers.clone(),
            installed: switched.freeze.installed()?.clone(),
            venv_exists: true,
        },
    );
    record::put(
        record,
        &Generation {
            active: Some(switched.to),
            previous: switched.previous,
        },
    );
    record::put(record, &Changed(true));
    let switch = Switch {
        from: switched.from,
        to: switched.to,
    };
    if from.is_none() {
        record::put(record, &RolledBack(switch));
    }
    Ok(switch)
}

/// Say on stderr which migrations the release log shows applied to this
/// target since the generation it left was made: they are not reversed.
fn warn_of_migrations(repo: &std::path::Path, label: &str, switch: &Switch) {
    let Ok(events) = ReleaseLog::new(repo).read() else {
        return;
    };
    let made = format!("in generation {}", switch.from);
    let Some(since) = events
        .iter()
        .filter(|e| e.target == label && e.event == "install" && e.detail.ends_with(&made))
        .map(|e| e.time.clone())
        .min()
    else {
        return;
    };
    let applied: Vec<String> = events
        .iter()
        .filter(|e| e.target == label && e.event == "migrate" && e.time >= since)
        .map(|e| format!("{}: {}", e.name, e.detail))
        .collect();
    if !applied.is_empty() {
        crate::messages::warn(
            TOOL,
            &format!(
                "{label}: generation {} applied migrations that generation {} predates ({}); \
                 migrations are not reversed, so the database stays as they left it",
                switch.from,
                switch.to,
                applied.join("; ")
            ),
        );
    }
}
