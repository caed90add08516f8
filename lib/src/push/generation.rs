//! Pushing to a target with generations: the plan applied by building a
//! new venv beside the active one, checked, then switched to with one
//! rename(2). The new venv starts as a copy of the active one with only the
//! plan's changes installed, where the host can trust the copy; else it is
//! built whole from the host's wheel cache in one call of the installer (uv
//! where it runs, else the new venv's pip). Either way every wheel of the
//! new set is sent, since the host decides.
//!
//! The new generation holds what the plan makes of the frozen venv: every
//! package the plan installs, upgrades or downgrades, from its wheel, and
//! every other package it keeps, from the wheel vd-diff named for it in
//! `unchanged`. A kept package with no wheel (one in `ahead`, newer than the
//! repository) cannot be rebuilt, and the push is an error before anything
//! is sent. pip, setuptools and wheel come with the new venv unless the
//! plan names them. The host checks the new generation holds exactly that
//! set before it switches; a failed build is removed and the active
//! generation stays as it was.

use super::installer::{Choice, Ready};
use super::intent::{Intents, Kind, Pending};
use super::{installs, merge_freeze, removed, set_pushed, Job, Pusher, Run};
use crate::cache::{HostCaches, Wheel};
use crate::console;
use crate::fleet::Host;
use crate::plan::KEEP;
use crate::record::{
    self, Action, BuildWay, Built, Change, Generation, Installed, KeptRunning, Pushed, Python,
    Record, Target, Unchanged,
};
use crate::remote;
use crate::remote::generation::{
    generation_command, generation_stdin, generations_dir, GenerationOutcome, GenerationSteps,
};
use crate::remote::push as remote_push;
use crate::shell;
use crate::wheel::WheelName;
use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;

impl Pusher {
    /// Push `job` into a new generation of a target that keeps `keep`.
    pub(super) fn push_generation(
        &self,
        host: &mut Host<HostCaches>,
        caches: &mut HostCaches,
        target: &Target,
        record: &mut Record,
        keep: u32,
        job: Job,
    ) -> Result<()> {
        let venv = &target.venv;
        let connection = host.connection()?;
        let run_as = target.run_as(connection.user()).map(str::to_string);
        // Builds and rollbacks to this target that ended without logging.
        Intents::settle_switches(connection, run_as.as_deref(), venv, &job.orphans, &self.log)?;
        if job.changes.is_empty() {
            set_pushed(record, &Pushed::default(), false);
            return Ok(());
        }
        if let Some(Python::Facts(facts)) = &target.python {
            if let Some(version) = facts.version.as_deref().filter(|v| v.starts_with("2.")) {
                bail!(
                    "generations are built with `python -m venv`, which Python {version} lacks: \
                     leave this target's `generations` empty to push to it in place"
                );
            }
        }
        let sources = new_set(record, &job)?;
        let holds: Vec<String> = sources.iter().filter_map(installs).collect();
        let choice = self.choose_installer(target, record)?;
        let build = Build {
            target,
            job: &job,
            keep,
            holds: &holds,
            choice: &choice,
            record,
        };
        if self.options.dry_run {
            let (files, mut pushed, ready) = self.stage_changes(host, caches, &build, &sources)?;
            let run = Run {
                as_user: run_as.as_deref(),
                installer: ready.binary(),
            };
            pushed.commands = build_commands(target, &job, run, &files);
            pushed.installed = job.changes.iter().filter_map(installs).collect();
            pushed.removed = removed(&job.changes);
            pushed.dry_run = true;
            set_pushed(record, &pushed, false);
            return Ok(());
        }

        // The copy needs the wheels of the plan's changes only; every wheel
        // of the new set is sent, and the build run again the full way, only
        // when the host says the copy cannot be trusted or failed.
        let (mut outcome, mut pushed, mut pending) = match job.create_with {
            Some(_) => {
                let (mut outcome, pushed, pending) =
                    self.build_way(host, caches, &build, &sources, BuildWay::Full)?;
                outcome.way = Some(Built::full("there is no generation to copy".into()));
                (outcome, pushed, pending)
            }
            None => {
                let planned: Vec<Change> = job
                    .changes
                    .iter()
                    .filter(|c| installs(c).is_some())
                    .cloned()
                    .collect();
                self.build_way(host, caches, &build, &planned, BuildWay::Copy)?
            }
        };
        if outcome.needs_full() {
            if let Some(failure) = outcome.copy_failure() {
                crate::messages::warn("vd-push", &format!("{}: {failure}", job.label));
            }
            let (mut full, more, again) =
                self.build_way(host, caches, &build, &sources, BuildWay::Full)?;
            full.adopted = full.adopted.or(outcome.adopted);
            full.way = outcome.way.take();
            pushed.uploaded.extend(more.uploaded);
            pushed.uploaded_bytes += more.uploaded_bytes;
            (outcome, pending) = (full, again);
        }
        pushed.built = outcome.way.clone();
        if outcome.drifted {
            let before = outcome
                .before
                .as_ref()
                .context("no freeze before the drift")?;
            return Err(self.drifted(record, target, before));
        }
        self.record_generation(record, target, &job, &outcome, pushed, pending)
    }

    /// Stage the wheels of `sources` in the host's cache: their paths
    /// there, `pushed` begun, and the installer ready.
    fn stage_changes(
        &self,
        host: &mut Host<HostCaches>,
        caches: &mut HostCaches,
        build: &Build,
        sources: &[Change],
    ) -> Result<(Vec<String>, Pushed, Ready)> {
        let wheels = sources
            .iter()
            .map(|c| self.wheel(c))
            .collect::<Result<Vec<Wheel>>>()?;
        let connection = host.connection()?;
        self.stage(
            connection,
            caches,
            build.target,
            &wheels,
            build.choice,
            build.record,
        )
    }

    /// One run of generation.sh the way `way` with the wheels of
    /// `sources`: what it printed, `pushed` begun, and the push's intent
    /// while its outcome is not yet logged.
    fn build_way(
        &self,
        host: &mut Host<HostCaches>,
        caches: &mut HostCaches,
        build: &Build,
        sources: &[Change],
        way: BuildWay,
    ) -> Result<(GenerationOutcome, Pushed, Option<Pending>)> {
        let (files, pushed, ready) = self.stage_changes(host, caches, build, sources)?;
        let target = build.target;
        let connection = host.connection()?;
        let run_as = target.run_as(connection.user()).map(str::to_string);
        let _pip = console::doing(ready.name(), build.record);
        let pending = self.begin(build.job, Kind::Generation);
        let command = remote::as_user(
            run_as.as_deref(),
            &generation_command(&GenerationSteps {
                venv: &target.venv,
                keep: build.keep,
                adopt: self.options.adopt,
                create_with: build.job.create_with.as_deref(),
                accept: &build.job.accept,
                holds: build.holds,
                install: &files,
                intent: pending.as_ref().map(|p| p.id.as_str()).unwrap_or_default(),
                installer: ready.binary(),
                way,
            }),
        );
        let finished = connection.run(&command, generation_stdin().as_bytes())?;
        if let Some(message) = remote::sudo_refusal(&finished, run_as.as_deref()) {
            pending.iter().for_each(Pending::done);
            bail!(message);
        }
        let outcome = GenerationOutcome::parse(&finished)?;
        // The run's outcome is seen: whatever it did is logged below.
        if outcome.switched.is_none() {
            pending.iter().for_each(Pending::done);
        }
        Ok((outcome, pushed, pending))
    }

    /// Write what a generation's build did into the record and the release
    /// log; the error for a build that failed.
    fn record_generation(
        &self,
        record: &mut Record,
        target: &Target,
        job: &Job,
        outcome: &GenerationOutcome,
        mut pushed: Pushed,
        pending: Option<Pending>,
    ) -> Result<()> {
        // The truth first: the record says what the active generation holds.
        let active = outcome.switched.or(outcome.active);
        let now = match outcome.switched {
            Some(_) => outcome.after.as_ref(),
            None => outcome.before.as_ref(),
        };
        if let Some(now) = now {
            merge_freeze(record, now)?;
        }
        let previous = outcome.switched.and(outcome.active);
        let kept_previous = record::get::<Generation>(record)
            .ok()
            .flatten()
            .filter(|g| g.active == active)
            .and_then(|g| g.previous);
        record::put(
            record,
            &Generation {
                active,
                previous: previous.or(kept_previous),
            },
        );
        if let Some(failure) = outcome.build_failure(Self::installer_name(&pushed)) {
            set_pushed(record, &pushed, outcome.adopted.is_some());
            bail!("{}: {failure}", target.venv);
        }
        let Some(new) = outcome.switched else {
            // vd-done: another push of this plan made it already.
            set_pushed(record, &pushed, false);
            return Ok(());
        };
        let empty = Installed::default();
        let before = match &outcome.before {
            Some(before) => before.installed()?,
            None => &empty,
        };
        let after = outcome
            .after
            .as_ref()
            .context("no freeze of the new generation")?
            .installed()?;
        if !outcome.busy.is_empty() {
            crate::messages::warn("vd-push", &kept_message(&job.label, outcome));
            record::put(record, &KeptRunning(outcome.busy.clone()));
        }
        let applied = super::verify::applied(&job.changes, before, after);
        pushed.installed = applied.installed;
        pushed.removed = applied.removed;
        set_pushed(record, &pushed, true);
        if self.log_changes(record, &job.changes, &pushed, Some(new)) {
            pending.iter().for_each(Pending::done);
        }
        Ok(())
    }
}

/// What one push to a target with generations builds from.
struct Build<'a> {
    target: &'a Target,
    job: &'a Job,
    keep: u32,
    /// `name==version` of every package of the new set.
    holds: &'a [String],
    choice: &'a Choice,
    record: &'a Record,
}

/// What vd-push says of the generations it kept because processes run
/// from them.
fn kept_message(label: &str, outcome: &GenerationOutcome) -> String {
    let kept: Vec<String> = outcome
        .busy
        .iter()
        .map(|kept| {
            let pids: Vec<String> = kept.pids.iter().map(u32::to_string).collect();
            format!("generation {} (pids {})", kept.generation, pids.join(", "))
        })
        .collect();
    format!(
        "{}: kept {} past the generations to keep: processes still run from it; the first \
         push after they end prunes it",
        label,
        kept.join(" and ")
    )
}

/// The commands a generation's build would run, as `--dry-run` shows them.
fn build_commands(target: &Target, job: &Job, run: Run, files: &[String]) -> Vec<String> {
    let venv = &target.venv;
    let next = format!("{}/NEXT", generations_dir(venv));
    let python = job.create_with.as_deref().unwrap_or("ACTIVE/bin/python");
    let mut commands = vec![remote_push::create_venv_command(python, &next, false)];
    if !files.is_empty() {
        commands.push(remote_push::install_command(
            run.installer,
            &next,
            files,
            true,
        ));
    }
    commands.push(shell::join(&["mv", "-T", &format!("{venv}.vd-new"), venv]));
    commands
        .iter()
        .map(|command| remote::as_user(run.as_user, command))
        .collect()
}

/// Every package of the new generation as a change that installs its
/// wheel: the plan's own, then the kept packages' from `unchanged`. A kept
/// package without a wheel is an error naming each one.
fn new_set(record: &Record, build: &Job) -> Result<Vec<Change>> {
    let unchanged = record::get::<Unchanged>(record)?.unwrap_or_default();
    let mut sources: BTreeMap<String, Change> = BTreeMap::new();
    for (i, kept) in unchanged.0.into_iter().enumerate() {
        let what = format!("unchanged entry {} ({})", i + 1, kept.name);
        if kept.wheel.contains('/') || kept.wheel.starts_with('.') {
            bail!(
                "{what}: wheel {:?} is not a file name in the repository",
                kept.wheel
            );
        }
        let parsed = WheelName::parse(&kept.wheel).with_context(|| what.clone())?;
        if parsed.name != kept.name {
            bail!(
                "{what}: wheel {} is not a wheel of {}",
                kept.wheel,
                kept.name
            );
        }
        sources.insert(
            kept.name.clone(),
            Change {
                name: kept.name,
                action: Action::Install,
                from: None,
                to: Some(kept.version),
                wheel: Some(kept.wheel),
                sha256: Some(kept.sha256),
            },
        );
    }
    for change in &build.changes {
        match change.action {
            Action::Remove => sources.remove(&change.name),
            _ => sources.insert(change.name.clone(), change.clone()),
        };
    }
    let mut without = Vec::new();
    for (name, version) in &build.frozen {
        let removed = build
            .changes
            .iter()
            .any(|c| c.name == *name && c.action == Action::Remove);
        if !removed && !sources.contains_key(name) && !KEEP.contains(&name.as_str()) {
            without.push(format!("{name} {version}"));
        }
    }
    if !without.is_empty() {
        bail!(
            "a new generation cannot be built: the plan keeps {} but names no wheel of {} \
             (plan again with vd-diff, which names the wheel of each package it keeps for a \
             target with generations; a package the repository lacks, or has only older \
             versions of, must be added with vd-add or left out with vd-diff --exact)",
            without.join(", "),
            if without.len() == 1 { "it" } else { "them" }
        );
    }
    Ok(sources.into_values().collect())
}
