//! What became of a generation build or a rollback that ended without
//! reporting (its vd-push or vd-rollback killed, or cut off from its host):
//! the switches such runs made, as the host noted them.
//!
//! A run that may switch a target with generations passes its intent's id
//! to the script, which notes `ID FROM TO` in `VENV.generations/.vd-switches`
//! right after the switch (`switch_to` in `generations.sh`). The next run to
//! that target asks, with [`journal_command`], for the lines of the intents
//! it found unreported; the script takes the generations' lock first, so a
//! build a killed run left going has ended. Which events that makes is
//! [`crate::push::intent`]'s.

use super::{program, said, script_command, steps, GENERATIONS, LOCK_WAIT_SECS};
use crate::transport::Finished;
use anyhow::{bail, Result};
use std::collections::BTreeMap;

/// The shell script that reads the switches' notes.
pub const JOURNAL_SCRIPT: &str = include_str!("journal.sh");

/// The program [`journal_command`] runs.
pub fn journal_program() -> String {
    program(&[GENERATIONS, JOURNAL_SCRIPT])
}

/// The switches the runs `ids` made to `venv`, under its generations' lock.
pub fn journal_command(venv: &str, ids: &[&str]) -> String {
    let lock_wait = LOCK_WAIT_SECS.to_string();
    let mut args = vec![venv.trim_end_matches('/'), &lock_wait];
    args.extend(ids);
    script_command(&journal_program(), "vd-push", &args)
}

/// A switch a run made: from generation `from` (none for the first) to `to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Switched {
    pub from: Option<u32>,
    pub to: u32,
}

/// What [`journal_command`] printed: the switch each id made, by id.
pub fn read_journal(finished: &Finished) -> Result<BTreeMap<String, Switched>> {
    if !finished.success() {
        bail!(
            "cannot read what earlier runs switched (exit status {}): {}",
            finished.status,
            said(finished)
        );
    }
    let stdout = String::from_utf8_lossy(&finished.stdout);
    let mut switched = BTreeMap::new();
    for step in steps(&stdout).iter().filter(|s| s.word == "journal") {
        let id = step.args.first().copied().unwrap_or_default().to_string();
        let from = step.number(1).ok();
        switched.insert(
            id,
            Switched {
                from,
                to: step.number(2)?,
            },
        );
    }
    Ok(switched)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_switches_of_runs_that_did_not_report() {
        let out = "vd-journal a1 3 4\nvd-journal b2 - 1\n";
        let read = read_journal(&Finished::of(0, out, "")).unwrap();
        assert_eq!(
            read["a1"],
            Switched {
                from: Some(3),
                to: 4
            }
        );
        assert_eq!(read["b2"], Switched { from: None, to: 1 });
        assert!(read_journal(&Finished::of(5, "", "busy")).is_err());
    }
}
