//! `vd-targets`: select targets from the inventory and start a pipeline.

use crate::inventory::{self, Selector};
use crate::messages;
use crate::output::{status_cell, Output, Status, Table};
use crate::record::{self, target_label, Record, Target, Via};
use anyhow::Result;
use std::path::PathBuf;

const TOOL: &str = "vd-targets";

/// Select targets from the inventory and write their records.
///
/// The inventory is a CSV file with a header row naming its columns: host,
/// port, user, venv, venv_user, requirements, packages, settings, migrate_user,
/// reload, reload_once, via, identity, python, cache, check, generations,
/// jump. Only host and venv are required; packages and settings are
/// space-separated lists; generations (a number, 2 or more) makes the venv
/// path a symlink vd-push manages over that many kept generations;
/// jump names the bastions to reach the host through (user@host:port, a
/// comma-separated chain, as ProxyJump writes them). A file
/// ending in .jsonl holds target records instead. Relative requirements and
/// identity paths are resolved against the inventory's folder; an identity
/// starting with ~/ is in the home of the user running vd. An unknown column
/// is passed through as a field, with a warning; a column named twice is an
/// error.
///
/// NAMES select targets; a target is written when any name matches it, and
/// with no names every target is. The forms are host, user@host,
/// user@host:/path, host:/path, :/path and user@; the host part may be a
/// shell-style glob (web*). The user matches venv_user, or user where no
/// venv_user is set. A name that matches no target is an error, so a typo in a
/// cron job never quietly deploys nothing.
///
/// A bad row (a relative venv, a port that is not a number, a field of the
/// wrong type in a .jsonl record, a duplicate target) becomes a record with an
/// `error` naming the file, line and field; the other targets go on. Exit status: 0 when every selected target is good, 1 when
/// some row is bad, 2 on a usage or setup error (no inventory, no host or venv
/// column, a column named twice, a name that matches nothing).
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The inventory: CSV with a header row, or .jsonl target records.
    #[arg(
        long,
        short = 'i',
        value_name = "FILE",
        env = "VD_INVENTORY",
        default_value = "targets.csv"
    )]
    inventory: PathBuf,

    /// Targets to select: host, user@host, user@host:/path, host:/path,
    /// :/path or user@ (all targets when none is given).
    #[arg(value_name = "NAME")]
    names: Vec<String>,
}

static TABLE: Table = Table {
    headers: &["TARGET", "VIA", "SETTINGS", "RELOAD", "STATUS"],
    row: |r: &Record| {
        let target = Target::parse(r).ok();
        let target = target.as_ref();
        vec![
            target_label(r),
            match target.map(|t| t.via) {
                Some(Via::Local) => "local",
                _ => "ssh",
            }
            .to_string(),
            target.map(|t| t.settings.join(" ")).unwrap_or_default(),
            target.and_then(|t| t.reload.clone()).unwrap_or_default(),
            status_cell(r, || "ok".to_string()),
        ]
    },
};

tool!(VdTargets);

fn run(args: Args, out: &mut Output) -> Result<Status> {
    let selectors = args
        .names
        .iter()
        .map(|n| Selector::parse(n))
        .collect::<Result<Vec<_>>>()?;
    let inventory = inventory::load(&args.inventory)?;
    for warning in &inventory.warnings {
        messages::warn(TOOL, warning);
    }
    let chosen = inventory::select(&inventory.entries, &selectors)?;
    // A bad row that no name selected is still worth a word on stderr.
    for entry in &inventory.entries {
        if let Some((_, message)) = record::error_of(&entry.record) {
            if !chosen.iter().any(|c| std::ptr::eq(*c, entry)) {
                messages::warn(TOOL, &format!("not selected, but bad: {message}"));
            }
        }
    }
    for entry in chosen {
        if let Some((_, message)) = record::error_of(&entry.record) {
            messages::target_error(TOOL, &message);
        }
        out.write(&entry.record)?;
    }
    Ok(Status::Ok)
}
