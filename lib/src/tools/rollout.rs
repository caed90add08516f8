//! `vd-rollout`: release to a canary, then in waves, under one budget of
//! failures for the whole run. The waves themselves are [`crate::rollout`]'s;
//! this is the command line and the table.

use crate::cli::{RepoArgs, TransportArgs};
use crate::log::{EventWriter, ReleaseLog};
use crate::output::{status_cell, Output, Status, Table};
use crate::record::{self, target_label, Record, RolledBack, Skipped};
use crate::repo::Repo;
use crate::rollout::{self, Amount, Hosts, Plan, Rollout, RolloutField, TOOL};
use crate::transport::{Reach, Settings};
use anyhow::Result;
use std::io;
use std::time::Duration;

/// Release to a canary, then in waves, and stop past a budget of failures.
///
/// Reads target records (from vd-diff) on stdin and feeds them, in input
/// order, to COMMAND, one shell string run with `sh -c` once per wave with
/// that wave's records on its stdin: first the --canary targets, then
/// --wave targets at a time (all the rest at once without --wave). A wave
/// starts only once the COMMAND of the one before has exited and its
/// records are counted. The records COMMAND gives back are written on, in
/// input order, each with `rollout`: {wave}.
///
/// A target fails when its record comes back with an `error`, does not come
/// back at all (COMMAND exited or was killed first: that target's record
/// gets the error), or fails its check again after --pause; each line
/// COMMAND gives back that is not a record of the wave's targets (records
/// are matched by host, port, user and venv) fails too. A failing target
/// does not stop the rest of its wave. Failures count against one budget
/// for the whole run, --max-fail. Past it, and when COMMAND is killed by a
/// signal, the rollout stops: the records of the waves not started come out
/// untouched but for `skipped`: true and `rollout`: {wave, stopped_after,
/// failed, reason}, naming the wave each would have gone out in, the wave
/// the rollout stopped after, and the targets that had failed.
///
/// A stopped rollout is finished by feeding its skipped records to
/// vd-rollout again (a target's old `skipped` and `rollout` are dropped on
/// the way in): jq -c 'select(.skipped)' out.jsonl | vd-rollout ... -- COMMAND.
///
/// Records that come in with an `error` pass through in their place: they
/// are not released and do not count against the budget. A percentage is
/// of the targets in the whole input (records without an `error`), which
/// is then read whole before the first wave; a wave's size rounds up (and
/// is at least 1), the budget rounds down.
///
/// At a terminal, the progress bar shows the rollout's line (released,
/// failed, budget left, the wave and what it does) with the progress of
/// COMMAND's tools folded in. The release log gets `rollout` events: each
/// wave started, failed and released, and the stop.
///
/// Exit status: 0 when every target was released, 1 when some target
/// failed (within the budget or not) or the rollout stopped, 2 on a usage
/// or setup error.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Release the first N targets alone, as the first wave.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    canary: Option<u64>,

    /// Release N targets, or P% of the input's targets (rounded up), per
    /// wave after the canary. Without it, the rest go out in one wave.
    #[arg(long, value_name = "N|P%", value_parser = parse_wave)]
    wave: Option<Amount>,

    /// Stop once more than N targets, or more than P% of the input's
    /// targets (rounded down), failed in the whole run.
    #[arg(long, value_name = "N|P%", default_value = "0", value_parser = parse_budget)]
    max_fail: Amount,

    /// After each wave (the last too), wait DURATION (30s, 2m), then run
    /// each of the wave's released targets' `check` again, as vd-reload
    /// does, over the same transport (tried 3 times, 1s apart and then
    /// twice as long); a failure is that target's error and counts.
    #[arg(long, value_name = "DURATION", value_parser = parse_pause)]
    pause: Option<Duration>,

    /// When a wave takes the rollout past its budget, switch that wave's
    /// released targets that changed back to the generation before the one
    /// COMMAND made (their record's `generation`), as vd-rollback does,
    /// then run their reload and check, as vd-reload does: they get
    /// `rolled_back`: {from, to}, and `rollout`.reverted_wave: true, and a
    /// `rollback` event is logged. A target without generations cannot be
    /// switched back: that is its error.
    #[arg(long)]
    revert_wave: bool,

    #[command(flatten)]
    repo: RepoArgs,

    #[command(flatten)]
    transport: TransportArgs,

    /// The pipeline each wave's records go through, one shell string:
    /// 'vd-push | vd-migrate | vd-reload --revert'. Its tools take their
    /// own options: --repo here names the release log vd-rollout writes
    /// to, VD_REPO (and VD_JOBS, VD_TIMEOUT...) set them for every tool.
    #[arg(last = true, required = true, value_name = "COMMAND", value_parser = parse_command)]
    command: String,
}

fn parse_wave(text: &str) -> Result<Amount, String> {
    Amount::parse(text, 1)
}

fn parse_budget(text: &str) -> Result<Amount, String> {
    Amount::parse(text, 0)
}

/// A duration with its unit: `30s`, `2m`, `500ms`.
fn parse_pause(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim())
        .map_err(|e| format!("{text:?} is not a duration like 30s or 2m: {e}"))
}

fn parse_command(text: &str) -> Result<String, String> {
    if text.trim().is_empty() {
        return Err("COMMAND is empty: give the pipeline to run per wave, \
                    like 'vd-push | vd-reload --revert'"
            .to_string());
    }
    Ok(text.to_string())
}

static TABLE: Table = Table {
    headers: &["TARGET", "WAVE", "STATUS"],
    row: |r: &Record| {
        let field = record::get::<RolloutField>(r).ok().flatten();
        let wave = field.as_ref().map_or(String::new(), |f| f.wave.to_string());
        let status = status_cell(r, || {
            if let Ok(Some(Skipped(true))) = record::get(r) {
                return match field.and_then(|f| f.stopped_after) {
                    Some(after) => format!("skipped: stopped after wave {after}"),
                    None => "skipped".to_string(),
                };
            }
            match record::get::<RolledBack>(r) {
                Ok(Some(RolledBack(s))) => format!("rolled back {} -> {}", s.from, s.to),
                _ => "released".to_string(),
            }
        });
        vec![target_label(r), wave, status]
    },
};

tool!(VdRollout);

fn run(args: Args, out: &mut Output) -> Result<Status> {
    let repo = Repo::open(&args.repo.repo)?;
    let log = EventWriter::new(ReleaseLog::new(repo.dir()), TOOL);
    let reach = Reach {
        timeout: Duration::from_secs(args.transport.timeout),
        known_hosts: args.transport.known_hosts.clone(),
        accept_new: args.transport.accept_new,
    };
    let hosts = Hosts {
        settings: Settings::new(&reach, |m| crate::messages::warn(TOOL, m))?,
        jobs: args.transport.jobs as usize,
    };
    let plan = Plan {
        canary: args.canary,
        wave: args.wave,
        max_fail: args.max_fail,
        pause: args.pause,
        revert_wave: args.revert_wave,
        command: args.command,
    };
    let (total, input) = rollout::input(&plan, io::BufReader::new(io::stdin()))?;
    let stopped = Rollout::new(&plan, total, out, &log, &hosts).run(input)?;
    Ok(if stopped || log.failed() {
        Status::TargetFailed
    } else {
        Status::Ok
    })
}
