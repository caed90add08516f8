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
//! This is all local to vd-push: the release log's format does not change,
//! and a target never pushed again keeps its file (a pending intent says
//! only that a push's outcome was never seen).

use crate::log::{now_rfc3339, Event};
use crate::push::verify::same_version;
use crate::record::{Action, Change, Installed};
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// The directory's name inside the repository.
const DIR_NAME: &str = ".vd-intents";

/// What one push meant to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Intent {
    /// The target, as the release log names it.
    pub target: String,
    /// When the push began, as the log writes times.
    pub time: String,
    pub changes: Vec<Change>,
}

/// A repository's intent records.
pub struct Intents {
    dir: PathBuf,
}

/// The intent of the push under way, locked while it runs.
pub struct Pending {
    path: PathBuf,
    _file: File,
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

    /// Record, before the remote run, what the push to `target` will do.
    /// The file appears under its final name already locked, so no other
    /// push can take it for an orphan.
    pub fn begin(&self, target: &str, changes: &[Change]) -> Result<Pending> {
        static COUNT: AtomicU64 = AtomicU64::new(0);
        let intent = Intent {
            target: target.to_string(),
            time: now_rfc3339(),
            changes: changes.to_vec(),
        };
        fs::create_dir_all(&self.dir)
            .with_context(|| format!("cannot make {}", self.dir.display()))?;
        let unique = format!(
            "{}.{}.{}",
            key(target),
            std::process::id(),
            COUNT.fetch_add(1, Ordering::Relaxed)
        );
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
            Ok(file) => Ok(Pending { path, _file: file }),
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
    pub fn done(self) {
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
            let (kind, version) = match change.action {
                Action::Remove => ("remove", change.from.clone()),
                _ => ("install", change.to.clone()),
            };
            let version = version.unwrap_or_default();
            if !done {
                not_done.push(format!("{kind} {}=={version}", change.name));
                continue;
            }
            let mut event = Event::now(kind);
            event.name = change.name.clone();
            event.version = version;
            event.wheel = change.wheel.clone().unwrap_or_default();
            event.sha256 = change.sha256.clone().unwrap_or_default();
            event.target = intent.target.clone();
            event.detail = format!(
                "{}; found done by a later push: the push begun {} ended before logging it",
                change.action.as_str(),
                intent.time
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

    /// Its events are logged: delete it.
    pub fn done(self) {
        let _ = fs::remove_file(&self.path);
    }
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
        let live = intents.begin("u@h:22:/v", &changes).unwrap();
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
        orphans.into_iter().for_each(Orphan::done);
        assert!(intents.orphans("u@h:22:/v").is_empty());
        let done = intents.begin("u@h:22:/v", &changes).unwrap();
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
        drop(intents.begin("t", &changes).unwrap());
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
