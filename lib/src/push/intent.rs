//! Intent records: what a push is about to do to a venv, kept until its
//! events are in the release log, so a push killed after pip started does
//! not leave the log silent about a change it made.
//!
//! Before its remote run, a push writes the target and its plan to a file
//! of the repository's `.vd-intents` directory, and holds an exclusive lock
//! on that file while it runs; once the run's events are logged, it deletes
//! the file. A file whose lock is free therefore belongs to a push that
//! ended without logging (killed, or cut off from its host). The next push
//! to that target reconciles it against the venv's real state: its freeze
//! under the venv's lock, taken after any pip the lost push left running
//! has ended. Each planned change found done is logged then (an `install`
//! or `remove` event whose detail says it was found done after an
//! interrupted push), the changes not done are named in one `error` event,
//! and the file is deleted.
//!
//! A target with generations changes only by a switch, so its runs (a
//! generation's build by vd-push, a switch back by vd-rollback) keep an
//! intent too, with an id they hand to the host, which notes it with the
//! switch the run makes (see [`crate::remote::journal`]). The next vd-push
//! or vd-rollback to that target reads those notes under the generations'
//! lock ([`Intents::settle_switches`]): a build that switched is logged as
//! its `install` and `remove` events in the generation it made, a rollback
//! that switched as its `rollback` event, and a run that switched nothing
//! as an `error` event saying so.
//!
//! This is all local to vd: the release log's format does not change, and
//! a target never pushed again keeps its file (a pending intent says only
//! that a run's outcome was never seen).

use crate::log::{now_rfc3339, Event, EventWriter};
use crate::push::verify::same_version;
use crate::record::{Action, Change, Installed};
use crate::remote::{self, journal};
use crate::transport::Connection;
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// The directory's name inside the repository.
const DIR_NAME: &str = ".vd-intents";

/// What kind of run an intent is of.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// vd-push's pip run in the venv itself (intents written before kinds
    /// were are of this kind).
    #[default]
    InPlace,
    /// vd-push's build of a new generation and its switch.
    Generation,
    /// vd-rollback's switch back.
    Rollback,
}

/// What one push meant to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Intent {
    /// The target, as the release log names it.
    pub target: String,
    /// When the push began, as the log writes times.
    pub time: String,
    pub changes: Vec<Change>,
    #[serde(default)]
    pub kind: Kind,
    /// The word the host notes with a switch the run makes (letters,
    /// digits and `-` only); empty for pushes in place.
    #[serde(default)]
    pub id: String,
}

/// A repository's intent records.
pub struct Intents {
    dir: PathBuf,
}

/// The intent of the push under way, locked while it runs.
pub struct Pending {
    path: PathBuf,
    _file: File,
    /// The intent's id, for the host to note with a switch.
    pub id: String,
}

/// An intent whose push ended without logging; locked by this process
/// while it is reconciled.
pub struct Orphan {
    path: PathBuf,
    _file: File,
    pub intent: Intent,
}

impl Intents {
    pub fn new(repo_dir: &Path) -> Intents {
        Intents {
            dir: repo_dir.join(DIR_NAME),
        }
    }

    /// Record, before the remote run, what the run of `kind` to `target`
    /// will do. The file appears under its final name already locked, so no
    /// other run can take it for an orphan.
    pub fn begin(&self, target: &str, kind: Kind, changes: &[Change]) -> Result<Pending> {
        static COUNT: AtomicU64 = AtomicU64::new(0);
        let count = COUNT.fetch_add(1, Ordering::Relaxed);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let intent = Intent {
            target: target.to_string(),
            time: now_rfc3339(),
            changes: changes.to_vec(),
            kind,
            id: format!("{nanos:x}-{}-{count}", std::process::id()),
        };
        fs::create_dir_all(&self.dir)
            .with_context(|| format!("cannot make {}", self.dir.display()))?;
        let unique = format!("{}.{}.{count}", key(target), std::process::id());
        let temp = self.dir.join(format!(".{unique}.tmp"));
        let path = self.dir.join(format!("{unique}.json"));
        let write = || -> std::io::Result<File> {
            let mut file = File::create(&temp)?;
            file.lock()?;
            file.write_all(&serde_json::to_vec(&intent)?)?;
            file.sync_all()?;
            fs::rename(&temp, &path)?;
            Ok(file)
        };
        match write() {
            Ok(file) => Ok(Pending {
                path,
                _file: file,
                id: intent.id,
            }),
            Err(e) => {
                let _ = fs::remove_file(&temp);
                Err(e).with_context(|| format!("cannot write {}", path.display()))
            }
        }
    }

    /// The intents of `target` left by pushes that ended without logging,
    /// oldest first, each locked until it is dropped or done. One another
    /// push still holds is not among them; one that cannot be read is
    /// skipped (and stays for a person to look at).
    pub fn orphans(&self, target: &str) -> Vec<Orphan> {
        let prefix = format!("{}.", key(target));
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut found = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if !name.starts_with(&prefix) || !name.ends_with(".json") {
                continue;
            }
            if let Some(orphan) = Orphan::take(&entry.path(), target) {
                found.push(orphan);
            }
        }
        found.sort_by(|a, b| a.intent.time.cmp(&b.intent.time));
        found
    }
}

impl Pending {
    /// The push's events are logged: the intent is no longer needed.
    pub fn done(&self) {
        let _ = fs::remove_file(&self.path);
    }
}

impl Orphan {
    /// Lock and read the intent at `path`, if no push holds it and it is
    /// still there (another reconciling push may have just deleted it).
    fn take(path: &Path, target: &str) -> Option<Orphan> {
        let mut file = OpenOptions::new().read(true).open(path).ok()?;
        file.try_lock().ok()?;
        let same = fs::metadata(path).ok()?.ino() == file.metadata().ok()?.ino();
        let mut text = Vec::new();
        file.read_to_end(&mut text).ok()?;
        let intent: Intent = serde_json::from_slice(&text).ok()?;
        (same && intent.target == target).then(|| Orphan {
            path: path.to_path_buf(),
            _file: file,
            intent,
        })
    }

    /// The events that tell what the interrupted push did, judged by the
    /// venv as it is now (`installed`: its freeze under the venv's lock).
    pub fn events(&self, installed: &Installed) -> Vec<Event> {
        let intent = &self.intent;
        let mut events = Vec::new();
        let mut not_done = Vec::new();
        for change in &intent.changes {
            let now = installed.get(&change.name).map(String::as_str);
            let done = match change.action {
                Action::Remove => now.is_none(),
                _ => now.is_some() && same_version(now, change.to.as_deref()),
            };
            let mut event = change_event(change, &intent.target);
            if !done {
                not_done.push(format!(
                    "{} {}=={}",
                    event.event, change.name, event.version
                ));
                continue;
            }
            event.detail = format!(
                "{}; found done by a later push: the push begun {} ended before logging it",
                event.detail, intent.time
            );
            events.push(event);
        }
        if !not_done.is_empty() {
            let mut event = Event::now("error");
            event.target = intent.target.clone();
            event.detail = format!(
                "the push begun {} ended before logging its outcome; a later push found not \
                 done: {}",
                intent.time,
                not_done.join(", ")
            );
            events.push(event);
        }
        events
    }

    /// The events that tell what an interrupted build or rollback did, by
    /// the switch the host noted for it (`None`: it switched nothing).
    pub fn switch_events(&self, switched: Option<journal::Switched>) -> Vec<Event> {
        let intent = &self.intent;
        let what = match intent.kind {
            Kind::Rollback => "rollback",
            _ => "push",
        };
        let ended = format!(
            "the {what} begun {} ended before logging its outcome",
            intent.time
        );
        let Some(switched) = switched else {
            let mut event = Event::now("error");
            event.target = intent.target.clone();
            event.detail = format!("{ended}; a later run found it switched to no generation");
            return vec![event];
        };
        let found = format!("found done by a later run: {ended}");
        if intent.kind == Kind::Rollback {
            let mut event = Event::now("rollback");
            event.target = intent.target.clone();
            let from = switched.from.map(|n| n.to_string()).unwrap_or("-".into());
            event.detail = format!("generation {from} to {}; {found}", switched.to);
            return vec![event];
        }
        intent
            .changes
            .iter()
            .map(|change| {
                let mut event = change_event(change, &intent.target);
                event.detail = format!("{}; {found}; in generation {}", event.detail, switched.to);
                event
            })
            .collect()
    }

    /// Its events are logged: delete it.
    pub fn done(&self) {
        let _ = fs::remove_file(&self.path);
    }
}

impl Intents {
    /// Log what the builds and rollbacks among `orphans` (of `target`, a
    /// target with generations at `venv`) did, as its host noted their
    /// switches, read under the generations' lock as `run_as`; each one
    /// logged is deleted. The others are left for their kind of run.
    pub fn settle_switches(
        connection: &mut Connection,
        run_as: Option<&str>,
        venv: &str,
        orphans: &[Orphan],
        log: &EventWriter,
    ) -> Result<()> {
        let switches: Vec<&Orphan> = orphans
            .iter()
            .filter(|o| o.intent.kind != Kind::InPlace && !o.intent.id.is_empty())
            .collect();
        if switches.is_empty() {
            return Ok(());
        }
        let ids: Vec<&str> = switches.iter().map(|o| o.intent.id.as_str()).collect();
        let command = remote::as_user(run_as, &journal::journal_command(venv, &ids));
        let finished = connection.run(&command, b"")?;
        if let Some(message) = remote::sudo_refusal(&finished, run_as) {
            anyhow::bail!(message);
        }
        let noted = journal::read_journal(&finished)?;
        for orphan in switches {
            let switched = noted.get(&orphan.intent.id).copied();
            if log.write(&orphan.switch_events(switched)) {
                orphan.done();
            }
        }
        Ok(())
    }
}

/// The `install` or `remove` event of a planned change, for `target`.
pub(super) fn change_event(change: &Change, target: &str) -> Event {
    let (kind, version) = match change.action {
        Action::Remove => ("remove", change.from.clone()),
        _ => ("install", change.to.clone()),
    };
    let mut event = Event::now(kind);
    event.name = change.name.clone();
    event.version = version.unwrap_or_default();
    event.wheel = change.wheel.clone().unwrap_or_default();
    event.sha256 = change.sha256.clone().unwrap_or_default();
    event.target = target.to_string();
    event.detail = change.action.as_str().to_string();
    event
}

/// A target's part of a file name: its label, hashed (labels hold `/`, `:`).
fn key(target: &str) -> String {
    let digest = Sha256::digest(target.as_bytes());
    digest[..10].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(name: &str, action: Action, from: Option<&str>, to: Option<&str>) -> Change {
        Change {
            name: name.into(),
            action,
            from: from.map(Into::into),
            to: to.map(Into::into),
            wheel: to.map(|v| format!("{name}-{v}-py3-none-any.whl")),
            sha256: None,
        }
    }

    #[test]
    fn a_live_push_holds_its_intent_and_an_ended_one_leaves_an_orphan() {
        let repo = tempfile::tempdir().unwrap();
        let intents = Intents::new(repo.path());
        let changes = [change("a", Action::Install, None, Some("1.0"))];
        let live = intents.begin("u@h:22:/v", Kind::InPlace, &changes).unwrap();
        assert!(
            intents.orphans("u@h:22:/v").is_empty(),
            "a live push's intent"
        );
        drop(live);
        let orphans = intents.orphans("u@h:22:/v");
        assert_eq!(orphans.len(), 1);
        assert_eq!(orphans[0].intent.changes, changes);
        assert!(intents.orphans("u@h:22:/other").is_empty());
        // Held by the reconciler, it is no other reconciler's.
        assert!(intents.orphans("u@h:22:/v").is_empty());
        orphans.iter().for_each(Orphan::done);
        assert!(intents.orphans("u@h:22:/v").is_empty());
        let done = intents.begin("u@h:22:/v", Kind::InPlace, &changes).unwrap();
        done.done();
        assert!(intents.orphans("u@h:22:/v").is_empty());
        assert_eq!(fs::read_dir(repo.path().join(DIR_NAME)).unwrap().count(), 0);
    }

    #[test]
    fn an_orphan_is_logged_as_the_venv_shows_it() {
        let repo = tempfile::tempdir().unwrap();
        let intents = Intents::new(repo.path());
        let changes = [
            change("a", Action::Install, None, Some("1.0")),
            change("b", Action::Upgrade, Some("1.0"), Some("2.0")),
            change("c", Action::Remove, Some("3.0"), None),
        ];
        drop(intents.begin("t", Kind::InPlace, &changes).unwrap());
        let orphan = intents.orphans("t").pop().unwrap();
        let installed: Installed = [("a", "1.0"), ("b", "1.0")]
            .map(|(n, v)| (n.into(), v.into()))
            .into_iter()
            .collect();
        let events = orphan.events(&installed);
        let kinds: Vec<(&str, &str, &str)> = events
            .iter()
            .map(|e| (e.event.as_str(), e.name.as_str(), e.version.as_str()))
            .collect();
        assert_eq!(
            kinds,
            [
                ("install", "a", "1.0"),
                ("remove", "c", "3.0"),
                ("error", "", "")
            ]
        );
        assert!(events[0].detail.contains("found done by a later push"));
        assert!(
            events[2].detail.contains("install b==2.0"),
            "{}",
            events[2].detail
        );
    }
}
