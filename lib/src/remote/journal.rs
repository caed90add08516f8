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
    use super::super::switch::{switch_command, Switched as Switch, SWITCH_STDIN};
    use super::*;
    use crate::transport::LocalConnection;
    use std::fs;
    use std::os::unix::fs::{symlink, PermissionsExt};
    use std::path::Path;

    /// Generations 1 and 2 beside `venv`, finished, each with a python that
    /// prints an empty freeze; `venv` points at 2.
    fn layout(venv: &Path) {
        let gens = Path::new(&format!("{}.generations", venv.display())).to_path_buf();
        for n in ["1", "2"] {
            let python = gens.join(n).join("bin/python");
            fs::create_dir_all(python.parent().unwrap()).unwrap();
            fs::write(
                &python,
                "#!/bin/sh\ncat >/dev/null\n\
                 echo '{\"installed\": {}, \"markers\": {}, \"python\": {\"venv\": true}}'\n",
            )
            .unwrap();
            fs::set_permissions(&python, fs::Permissions::from_mode(0o755)).unwrap();
            fs::write(gens.join(n).join(".vd-finished"), "").unwrap();
        }
        fs::write(gens.join(".vd-lock"), "").unwrap();
        symlink("venv.generations/2", venv).unwrap();
    }

    #[test]
    fn the_host_notes_each_switch_and_keeps_the_last_hundred() {
        let dir = tempfile::tempdir().unwrap();
        let venv = dir.path().join("venv");
        layout(&venv);
        let venv = venv.display().to_string();
        let mut host = LocalConnection::new("me");
        let mut switch = |to: u32, id: &str| {
            let command = switch_command(&venv, None, Some(to), id);
            let finished = host.run(&command, SWITCH_STDIN.as_bytes()).unwrap();
            Switch::parse(&finished).unwrap();
        };
        switch(1, "first");
        switch(2, "");
        for i in 0..200 {
            switch(1 + i % 2, &format!("later-{i}"));
        }
        let journal = |ids: &[&str]| {
            let finished = LocalConnection::new("me")
                .run(&journal_command(&venv, ids), b"")
                .unwrap();
            read_journal(&finished).unwrap()
        };
        let noted = journal(&["later-199", "later-100", "later-99", "first", "never"]);
        let ids: Vec<&str> = noted.keys().map(String::as_str).collect();
        assert_eq!(ids, ["later-100", "later-199"]);
        assert_eq!(
            noted["later-199"],
            Switched {
                from: Some(1),
                to: 2
            }
        );
        let notes = fs::read_to_string(format!("{venv}.generations/.vd-switches")).unwrap();
        assert!(notes.lines().count() <= 200);
    }

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
