//! Pushing a plan into one virtualenv: the wheels to the host's cache, then
//! one locked run of the installer (uv where it can run, else pip: see
//! [`installer`]), then a check that the venv is what the plan says.
//!
//! vd-push changes production venvs, so every push ends in a record that
//! tells the truth: the venv is frozen again under the same lock as pip ran,
//! the record's `installed` becomes that freeze, and a venv that is not what
//! the plan makes of it is an error naming each difference, even when pip
//! said it succeeded. A push does exactly what the plan says and nothing
//! else: the files it names (checked against the plan's sha256 before a byte
//! is sent), one `pip install --no-index --no-deps` with all of them, one
//! `pip uninstall -y` with the packages to remove.
//!
//! This module is the orchestration of one target's push. The wheel cache
//! on the hosts is [`crate::cache`]'s; the command, its shell program and
//! what it prints are [`crate::remote::push`]'s; the check of the result
//! against the plan is [`verify`]'s; the prompt is [`crate::confirm`]'s;
//! the record that lets a later push log what a killed one did is
//! [`intent`]'s.

mod generation;
mod installer;
pub mod intent;
pub mod verify;

use crate::cache::{HostCaches, Wheel};
use crate::console;
use crate::fingerprint;
use crate::fleet::Host;
use crate::log::{Event, EventWriter};
use crate::plan::KEEP;
use crate::record::{
    self, target_label, Changed, Changes, Installed, PlannedFrom, Pushed, Python, Record, Skipped,
    Target,
};
use crate::record::{Action, Change, Installer};
use crate::remote;
use crate::remote::cache::DEFAULT_CACHE;
use crate::remote::freeze::FreezeOutput;
use crate::remote::push::{self as remote_push, PushOutcome, PushSteps};
use crate::repo::Repo;
use crate::transport::Connection;
use crate::wheel::{self, WheelName};
use anyhow::{anyhow, bail, Context, Result};
use installer::{Choice, Ready};
use intent::{Intents, Kind, Orphan, Pending};
use pep508_rs::PackageName;
use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::sync::{Mutex, OnceLock};
use verify::{installs, same_version};

/// How a push runs, as the command line asked: for real or dry, whether
/// it creates venvs, whether the user confirmed.
#[derive(Debug, Clone, Copy, Default)]
pub struct Mode {
    /// Change nothing on any host; say what would be done.
    pub dry_run: bool,
    /// Make venvs that do not exist yet.
    pub create: bool,
    /// Records were put to the user, who declined those marked `skipped`.
    pub confirmed: bool,
    /// Make a plain venv at the path of a target with `generations` its
    /// first generation.
    pub adopt: bool,
    /// The installer every target gets (`--installer`), over each
    /// target's own `installer`.
    pub installer: Option<Installer>,
}

/// A repository file's sha256 and size, or why it cannot be read.
type Source = Result<(String, u64), String>;

/// Pushes plans from one repository; shared by every host's worker.
pub struct Pusher {
    repo: Repo,
    options: Mode,
    /// The release log; one that cannot be written fails no target.
    log: EventWriter,
    /// sha256 and size of each repository file used so far, read once.
    sources: Mutex<HashMap<String, Source>>,
    /// What each push is about to do, until its events are logged.
    intents: Intents,
    /// The repository's uv wheels, listed once, or why they cannot be.
    uv_wheels: OnceLock<Result<Vec<WheelName>, String>>,
}

impl Pusher {
    pub fn new(repo: Repo, options: Mode, log: EventWriter) -> Pusher {
        Pusher {
            intents: Intents::new(repo.dir()),
            repo,
            options,
            log,
            sources: Mutex::new(HashMap::new()),
            uv_wheels: OnceLock::new(),
        }
    }

    /// Push one target's plan (the work for [`crate::fleet::Fleet::run`]). A failed
    /// target also gets an `error` event in the release log.
    pub fn push_target(
        &self,
        host: &mut Host<HostCaches>,
        target: &Target,
        record: &mut Record,
    ) -> Result<()> {
        // The connection and the cache listing both live in `host`.
        let mut caches = std::mem::take(&mut host.state);
        let result = self.push(host, &mut caches, target, record);
        host.state = caches;
        if let Err(e) = &result {
            if !self.options.dry_run {
                let mut event = Event::now("error");
                event.target = target_label(record);
                event.detail = format!("{e:#}");
                self.log.write(&[event]);
            }
        }
        result
    }

    /// Whether every event so far reached the release log.
    pub fn logged(&self) -> bool {
        !self.log.failed()
    }

    fn push(
        &self,
        host: &mut Host<HostCaches>,
        caches: &mut HostCaches,
        target: &Target,
        record: &mut Record,
    ) -> Result<()> {
        record::remove::<Pushed>(record);
        record::remove::<Changed>(record);
        let skipped = record::get::<Skipped>(record)? == Some(Skipped(true));
        if self.options.confirmed && skipped {
            record::put(record, &Changed(false));
            return Ok(());
        }
        record::remove::<Skipped>(record);
        let changes = plan_of(record)?;
        // Pushes to this target that ended without logging: this push
        // looks at the venv under its lock, and logs what they did.
        let label = target_label(record);
        let orphans = match self.options.dry_run {
            true => Vec::new(),
            false => self.intents.orphans(&label),
        };
        if changes.is_empty() && orphans.is_empty() {
            set_pushed(record, &Pushed::default(), false);
            return Ok(());
        }
        let exists = record::venv_exists(record);
        let create_with = (!exists).then(|| target.python_for_new_venv(exists));
        if let (Some(python), false) = (&create_with, self.options.create) {
            bail!(
                "{} does not exist (venv_exists is false): run vd-push with --create to make \
                 it with {python}",
                target.venv
            );
        }
        let frozen = record::installed(record)?;
        let accept = accepted_states(record, target, &frozen, &changes)?;
        let job = Job {
            label,
            changes,
            orphans,
            frozen,
            accept,
            create_with,
        };
        match target.generations {
            Some(keep) => self.push_generation(host, caches, target, record, keep, job),
            None => self.push_in_place(host, caches, target, record, job),
        }
    }

    /// Push `job` into the venv itself: one locked run of pip.
    fn push_in_place(
        &self,
        host: &mut Host<HostCaches>,
        caches: &mut HostCaches,
        target: &Target,
        record: &mut Record,
        job: Job,
    ) -> Result<()> {
        let wheels = job
            .changes
            .iter()
            .filter(|c| c.action != Action::Remove)
            .map(|c| self.wheel(c))
            .collect::<Result<Vec<Wheel>>>()?;
        let remove = removed(&job.changes);
        let choice = self.choose_installer(target, record)?;
        let connection = host.connection()?;
        let run_as = target.run_as(connection.user()).map(str::to_string);
        let (files, mut pushed, ready) =
            self.stage(connection, caches, target, &wheels, &choice, record)?;
        if self.options.dry_run {
            let run = Run {
                as_user: run_as.as_deref(),
                installer: ready.binary(),
            };
            pushed.commands = in_place_commands(target, &job, run, &files, &remove);
            pushed.installed = job.changes.iter().filter_map(installs).collect();
            pushed.removed = remove;
            pushed.dry_run = true;
            set_pushed(record, &pushed, false);
            return Ok(());
        }

        let _pip = console::doing(ready.name(), record);
        let mut pending = self.begin(&job, Kind::InPlace);
        let command = remote::as_user(
            run_as.as_deref(),
            &remote_push::push_command(&PushSteps {
                venv: &target.venv,
                create_with: job.create_with.as_deref(),
                accept: &job.accept,
                installer: ready.binary(),
                install: &files,
                remove: &remove,
            }),
        );
        let finished = connection.run(&command, remote_push::PUSH_STDIN.as_bytes())?;
        // Refused, or failed before pip: nothing was done, nothing to log later.
        let pip_ran = String::from_utf8_lossy(&finished.stdout).contains("\nvd-pip ");
        let refusal = remote::sudo_refusal(&finished, run_as.as_deref());
        if refusal.is_some() || !pip_ran {
            if let Some(pending) = pending.take() {
                pending.done();
            }
        }
        if let Some(message) = refusal {
            bail!(message);
        }
        let outcome = PushOutcome::parse(&finished)?;
        if outcome.drifted {
            return Err(self.drifted(record, target, &outcome.before));
        }
        self.record_in_place(record, target, &job, &outcome, pushed, pending)
    }

    /// The installer's name in `pushed`, for the record and the release
    /// log's events.
    fn installer_name(pushed: &Pushed) -> &str {
        pushed.installer.as_deref().unwrap_or("pip")
    }

    /// Write what a push in place did into the record and the release log
    /// (with what the orphans of earlier pushes did); the error for a venv
    /// that is not what the plan makes it.
    fn record_in_place(
        &self,
        record: &mut Record,
        target: &Target,
        job: &Job,
        outcome: &PushOutcome,
        mut pushed: Pushed,
        mut pending: Option<Pending>,
    ) -> Result<()> {
        // The truth first: whatever else happened, the record says what the
        // venv holds now.
        let after = outcome.after.installed()?;
        let locked = outcome.before.installed()?;
        merge_freeze(record, &outcome.after)?;
        let applied = verify::applied(&job.changes, locked, after);
        pushed.installed = applied.installed;
        pushed.removed = applied.removed;
        let changed = outcome.created || locked != after;
        set_pushed(record, &pushed, changed);
        for orphan in &job.orphans {
            if orphan.intent.kind == Kind::InPlace && self.log.write(&orphan.events(locked)) {
                orphan.done();
            }
        }
        if self.log_changes(record, &job.changes, &pushed, None) {
            if let Some(pending) = pending.take() {
                pending.done();
            }
        }

        let mut problems = Vec::new();
        problems.extend(outcome.pip_failure(Self::installer_name(&pushed)));
        problems.extend(verify::mismatch(
            &target.venv,
            &job.frozen,
            &job.changes,
            locked,
            after,
            job.create_with.is_some(),
        ));
        if !problems.is_empty() {
            bail!("{}", problems.join("; and "));
        }
        Ok(())
    }

    /// The intent of the push `job` is about to make, kept until its events
    /// are logged; `None` (with a warning) when it cannot be written, or
    /// when the plan is empty.
    fn begin(&self, job: &Job, kind: Kind) -> Option<Pending> {
        if job.changes.is_empty() {
            return None;
        }
        self.intents
            .begin(&job.label, kind, &job.changes)
            .map_err(|e| {
                let message = format!("{}: {e:#}; a push killed now would go unlogged", job.label);
                crate::messages::warn("vd-push", &message);
            })
            .ok()
    }

    /// The error for a venv that is not the state its plan was made from,
    /// naming each change; the record says what the venv holds.
    fn drifted(
        &self,
        record: &mut Record,
        target: &Target,
        before: &FreezeOutput,
    ) -> anyhow::Error {
        let planned = record::venv_exists(record).then(|| {
            let installed = record::installed(record).unwrap_or_default();
            let python = match &target.python {
                Some(Python::Facts(facts)) => facts.version.clone(),
                _ => None,
            };
            (installed, python)
        });
        let now = match before.installed() {
            Ok(now) => now.clone(),
            Err(e) => return e,
        };
        let mut words = fingerprint::drift(
            planned.as_ref().map(|(i, p)| (i, p.as_deref())),
            &now,
            before.python.version.as_deref(),
        );
        if words.is_empty() {
            words.push(
                "the record's `installed` or `python` is not what vd-diff planned from".into(),
            );
        }
        let _ = merge_freeze(record, before);
        anyhow!(
            "{} changed since the plan was made: {}; nothing was installed (run vd-freeze | \
             vd-diff again, and review the new plan)",
            target.venv,
            words.join(", ")
        )
    }

    /// Put `wheels`, and uv's wheel when `choice` is uv, in the host's
    /// cache named by the target, each wheel once per host (in a dry run,
    /// only count what would be sent): the paths the installer will read
    /// them from, `pushed` begun with what was sent and the installer's
    /// name, and the installer that runs.
    fn stage(
        &self,
        connection: &mut Connection,
        caches: &mut HostCaches,
        target: &Target,
        wheels: &[Wheel],
        choice: &Choice,
        record: &Record,
    ) -> Result<(Vec<String>, Pushed, Ready)> {
        let spec = target.cache.as_deref().unwrap_or(DEFAULT_CACHE);
        let cache = caches.open(connection, spec, self.options.dry_run)?;
        let files = wheels.iter().map(|w| cache.path_of(w)).collect();
        let mut sent = wheels.to_vec();
        if let Choice::Uv(uv) = choice {
            sent.push(uv.clone());
        }
        if !self.options.dry_run {
            cache.check(connection, &sent)?;
        }
        let missing = cache.missing(&sent);
        let mut pushed = Pushed {
            uploaded: missing.iter().map(|w| w.file.clone()).collect(),
            uploaded_bytes: missing.iter().map(|w| w.size).sum(),
            ..Pushed::default()
        };
        let ready = if self.options.dry_run {
            cache.suppose_held(&missing);
            Ready::supposed(cache, choice)
        } else {
            let _uploading = console::doing("upload", record);
            cache.upload(connection, &missing)?;
            console::uploaded(pushed.uploaded_bytes);
            self.ready_installer(connection, cache, target, choice)?
        };
        pushed.installer = Some(ready.name().to_string());
        Ok((files, pushed, ready))
    }

    /// The repository file a change installs, checked against the plan.
    fn wheel(&self, change: &Change) -> Result<Wheel> {
        let file = change.wheel.as_deref().expect("checked by plan_of");
        self.file(file, change.sha256.as_deref())
    }

    /// The repository's file `file`, read once per run, checked against
    /// the sha256 a plan gave it (`planned`).
    fn file(&self, file: &str, planned: Option<&str>) -> Result<Wheel> {
        let file = file.to_string();
        let path = self.repo.dir().join(&file);
        let read = {
            let mut sources = self.sources.lock().unwrap_or_else(|e| e.into_inner());
            sources
                .entry(file.clone())
                .or_insert_with(|| {
                    wheel::sha256_file(&path)
                        .map_err(|e| format!("cannot read {}: {e}", path.display()))
                })
                .clone()
        };
        let (sha256, size) = read.map_err(|e| anyhow!("wheel {file}: {e}"))?;
        if let Some(planned) = planned {
            if planned != sha256 {
                bail!(
                    "wheel {file}: {} has sha256 {sha256}, but the plan says {planned} (the \
                     repository changed since vd-diff: plan again)",
                    path.display()
                );
            }
        }
        Ok(Wheel {
            file,
            sha256,
            size,
            path,
        })
    }

    /// `install` and `remove` events for what this push changed (in
    /// `generation`, for a target with generations); whether they reached
    /// the log.
    fn log_changes(
        &self,
        record: &Record,
        changes: &[Change],
        pushed: &Pushed,
        generation: Option<u32>,
    ) -> bool {
        let target = target_label(record);
        let removed: HashSet<&String> = pushed.removed.iter().collect();
        let installed: HashSet<String> = pushed.installed.iter().cloned().collect();
        let mut events = Vec::new();
        for change in changes {
            let did = match change.action {
                Action::Remove => removed.contains(&change.name),
                _ => installs(change).is_some_and(|i| installed.contains(&i)),
            };
            if !did {
                continue;
            }
            let mut event = intent::change_event(change, &target);
            event.detail = match (&change.action, &change.from) {
                (Action::Install | Action::Remove, _) | (_, None) => {
                    change.action.as_str().to_string()
                }
                (action, Some(from)) => format!("{} from {from}", action.as_str()),
            };
            event.detail.push_str(" with ");
            event.detail.push_str(Self::installer_name(pushed));
            if let Some(n) = generation {
                event.detail.push_str(&format!(" in generation {n}"));
            }
            events.push(event);
        }
        self.log.write(&events)
    }
}

/// What one target's push starts from, once its plan is read.
struct Job {
    /// The target, as the release log names it.
    label: String,
    changes: Vec<Change>,
    /// Intents of earlier pushes to the target that ended without logging.
    orphans: Vec<Orphan>,
    /// The record's `installed`.
    frozen: Installed,
    /// The fingerprints the venv may have under the lock (see `PushSteps`).
    accept: Vec<String>,
    /// The python to make the venv with, when it does not exist.
    create_with: Option<String>,
}

fn set_pushed(record: &mut Record, pushed: &Pushed, changed: bool) {
    record::put(record, pushed);
    record::put(record, &Changed(changed));
}

/// The record says what `freeze` found: its `installed`, `python` and
/// `markers`.
fn merge_freeze(record: &mut Record, freeze: &FreezeOutput) -> Result<()> {
    record::merge(
        record,
        &record::Frozen {
            python: freeze.python.clone(),
            markers: freeze.markers.clone(),
            installed: freeze.installed()?.clone(),
            venv_exists: true,
        },
    );
    Ok(())
}

/// The names a plan removes.
fn removed(changes: &[Change]) -> Vec<String> {
    changes
        .iter()
        .filter(|c| c.action == Action::Remove)
        .map(|c| c.name.clone())
        .collect()
}

/// The states the venv may be in when the push takes its lock: as planned
/// from (the record's `planned_from`), or as the plan makes it (a push of
/// the same plan got there first, and pip will find nothing to do). Empty
/// for a plan with no `planned_from`; an error naming the field for one
/// that is not a fingerprint.
fn accepted_states(
    record: &Record,
    target: &Target,
    frozen: &Installed,
    changes: &[Change],
) -> Result<Vec<String>> {
    let Some(PlannedFrom(from)) = record::get::<PlannedFrom>(record)? else {
        return Ok(Vec::new());
    };
    fingerprint::check(&from).context("field `planned_from`")?;
    let python = match &target.python {
        Some(Python::Facts(facts)) => Some(facts.as_ref()),
        _ => None,
    };
    let made: Installed = verify::expected_after(frozen, changes)
        .into_iter()
        .filter_map(|(name, version)| Some((name, version?)))
        .collect();
    Ok(vec![from, fingerprint::of_state(python, Some(&made))])
}

/// Who runs a push's commands on the host, and with which installer.
#[derive(Clone, Copy)]
struct Run<'a> {
    /// The user they run as, when not the login user.
    as_user: Option<&'a str>,
    /// The uv binary; `None`: pip.
    installer: Option<&'a str>,
}

/// The commands a push in place would run, as `--dry-run` shows them.
fn in_place_commands(
    target: &Target,
    job: &Job,
    run: Run,
    files: &[String],
    remove: &[String],
) -> Vec<String> {
    let venv = &target.venv;
    let mut commands = Vec::new();
    if let Some(python) = &job.create_with {
        let python2 = target.new_venv_is_python2(false);
        commands.push(remote_push::create_venv_command(python, venv, python2));
    }
    if !remove.is_empty() {
        commands.push(remote_push::uninstall_command(run.installer, venv, remove));
    }
    if !files.is_empty() {
        commands.push(remote_push::install_command(
            run.installer,
            venv,
            files,
            false,
        ));
    }
    commands
        .iter()
        .map(|command| remote::as_user(run.as_user, command))
        .collect()
}

/// A record's `plan`, checked: every entry names a package once, and what it
/// installs is a plain wheel file name of that package at that version.
pub fn plan_of(record: &Record) -> Result<Vec<Change>> {
    let Some(Changes(entries)) = Changes::of(record)? else {
        bail!("missing field `plan` (run vd-diff first)");
    };
    let mut seen = HashSet::new();
    let mut changes = Vec::with_capacity(entries.len());
    for (i, mut change) in entries.into_iter().enumerate() {
        let n = i + 1;
        if change.name.trim().is_empty() {
            bail!("plan entry {n}: no package name");
        }
        change.name = PackageName::from_str(&change.name)
            .map_err(|e| anyhow!("plan entry {n}: {e}"))?
            .to_string();
        if !seen.insert(change.name.clone()) {
            bail!("plan entry {n}: {} is planned twice", change.name);
        }
        if let Some(sha) = &change.sha256 {
            if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
                bail!(
                    "plan entry {n} ({}): sha256 {sha:?} is not a sha256",
                    change.name
                );
            }
            change.sha256 = Some(sha.to_ascii_lowercase());
        }
        if change.action == Action::Remove {
            // A saved plan is input like any other: the rule vd-diff keeps
            // holds here too, or one bad plan bricks the venv for good.
            if KEEP.contains(&change.name.as_str()) {
                bail!(
                    "plan entry {n} removes {}: vd keeps {} in every venv (without them no \
                     later push can run), so this plan is refused and nothing was done",
                    change.name,
                    KEEP.join(", ")
                );
            }
            changes.push(change);
            continue;
        }
        let what = format!(
            "plan entry {n} ({} {})",
            change.action.as_str(),
            change.name
        );
        let (Some(file), Some(to)) = (&change.wheel, &change.to) else {
            bail!("{what}: needs both `wheel` and `to`");
        };
        if file.contains('/') || file.starts_with('.') {
            bail!("{what}: wheel {file:?} is not a file name in the repository");
        }
        let parsed = WheelName::parse(file).with_context(|| what.clone())?;
        if parsed.name != change.name {
            bail!("{what}: wheel {file} is not a wheel of {}", change.name);
        }
        if !same_version(Some(&parsed.version.to_string()), Some(to)) {
            bail!(
                "{what}: wheel {file} is version {}, not {to}",
                parsed.version
            );
        }
        changes.push(change);
    }
    Ok(changes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn record(plan: Value) -> Record {
        crate::record::of_json(json!({"host": "h", "venv": "/v", "plan": plan}))
    }

    #[test]
    fn plans_are_checked_entry_by_entry() {
        let good = record(json!([
            {"name": "Six", "action": "upgrade", "from": "1.0", "to": "1.16.0",
             "wheel": "six-1.16.0-py2.py3-none-any.whl", "sha256": "A".repeat(64)},
            {"name": "old", "action": "remove", "from": "2", "to": null, "wheel": null, "sha256": null},
        ]));
        let changes = plan_of(&good).unwrap();
        assert_eq!(changes[0].name, "six");
        assert_eq!(changes[0].sha256.as_deref(), Some("a".repeat(64).as_str()));
        let bad = |plan: Value| format!("{:#}", plan_of(&record(plan)).unwrap_err());
        assert!(bad(json!([{"name": "six", "action": "upgrade", "to": "2.0",
            "wheel": "six-1.16.0-py2.py3-none-any.whl"}])).contains("plan entry 1 (upgrade six): wheel six-1.16.0-py2.py3-none-any.whl is version 1.16.0, not 2.0"));
        assert!(
            bad(json!([{"name": "six", "action": "install", "to": "1.16.0",
            "wheel": "../six-1.16.0-py2.py3-none-any.whl"}]))
            .contains("not a file name")
        );
        assert!(bad(json!([{"name": "six", "action": "install", "to": "1.0",
            "wheel": "attrs-1.0-py3-none-any.whl"}]))
        .contains("not a wheel of six"));
        assert!(bad(json!([{"name": "six", "action": "reinstall"}])).contains("plan entry 1"));
        assert!(
            bad(json!([{"name": "a", "action": "remove"}, {"name": "A", "action": "remove"}]))
                .contains("plan entry 2: a is planned twice")
        );
        assert!(format!("{:#}", plan_of(&Record::new()).unwrap_err()).contains("run vd-diff"));
        assert_eq!(
            bad(json!([{"name": "six", "action": "install", "to": "1.16.0",
                "wheel": "six-1.16.0-py2.py3-none-any.whl"},
                {"name": "Pip", "action": "remove", "from": "24.0"}])),
            "plan entry 2 removes pip: vd keeps pip, setuptools, wheel in every venv (without \
             them no later push can run), so this plan is refused and nothing was done"
        );
        for kept in ["setuptools", "wheel"] {
            assert!(bad(json!([{"name": kept, "action": "remove"}]))
                .contains(&format!("removes {kept}:")));
        }
        // Upgrading them is a plan like any other.
        assert!(plan_of(&record(
            json!([{"name": "pip", "action": "upgrade", "from": "23.0",
            "to": "24.0", "wheel": "pip-24.0-py3-none-any.whl"}])
        ))
        .is_ok());
    }
}
