//! Pushing a plan into one virtualenv: the wheels to the host's cache, then
//! one locked pip run, then a check that the venv is what the plan says.
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
//! The wheel cache on the hosts is [`crate::cache`]'s; the commands are
//! [`crate::remote`]'s; the prompt is [`crate::confirm`]'s.

use crate::cache::{HostCaches, Wheel};
use crate::fleet::Host;
use crate::log::{Event, EventWriter};
use crate::plan::{Action, Change, KEEP};
use crate::record::{
    self, target_label, Changed, Changes, Freeze, Installed, Pushed, Record, Skipped, Target,
};
use crate::remote::{self, PushSteps};
use crate::repo::Repo;
use crate::transport::Finished;
use crate::wheel::{self, WheelName};
use anyhow::{anyhow, bail, Context, Result};
use pep508_rs::pep440_rs::Version;
use pep508_rs::PackageName;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::str::FromStr;
use std::sync::Mutex;

/// How many lines of pip's output an error carries.
const PIP_TAIL_LINES: usize = 20;

/// What the command line asked for.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Change nothing on any host; say what would be done.
    pub dry_run: bool,
    /// Make venvs that do not exist yet.
    pub create: bool,
    /// Records were put to the user, who declined those marked `skipped`.
    pub confirmed: bool,
}

/// A repository file's sha256 and size, or why it cannot be read.
type Source = Result<(String, u64), String>;

/// Pushes plans from one repository; shared by every host's worker.
pub struct Pusher {
    repo: Repo,
    options: Options,
    /// The release log; one that cannot be written fails no target.
    log: EventWriter,
    /// sha256 and size of each repository file used so far, read once.
    sources: Mutex<HashMap<String, Source>>,
}

impl Pusher {
    pub fn new(repo: Repo, options: Options, log: EventWriter) -> Pusher {
        Pusher {
            repo,
            options,
            log,
            sources: Mutex::new(HashMap::new()),
        }
    }

    /// Push one target's plan (the work for [`crate::fleet::Fleet::run`]). A failed
    /// target also gets an `error` event in the release log.
    pub fn push_target(&self, host: &mut Host<HostCaches>, record: &mut Record) -> Result<()> {
        // The connection and the cache listing both live in `host`.
        let mut caches = std::mem::take(&mut host.state);
        let result = self.push(host, &mut caches, record);
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
        let target = Target::parse(record)?;
        let changes = plan_of(record)?;
        if changes.is_empty() {
            set_pushed(record, &Pushed::default(), false);
            return Ok(());
        }
        let venv = target.venv.clone();
        let exists = record::venv_exists(record);
        let create_with = (!exists).then(|| target.python_for_new_venv());
        if let (Some(python), false) = (&create_with, self.options.create) {
            bail!(
                "{venv} does not exist (venv_exists is false): run vd-push with --create to make \
                 it with {python}"
            );
        }
        let frozen = record::installed(record)?.by_name();
        let wheels = changes
            .iter()
            .filter(|c| c.action != Action::Remove)
            .map(|c| self.wheel(c))
            .collect::<Result<Vec<Wheel>>>()?;
        let remove: Vec<String> = changes
            .iter()
            .filter(|c| c.action == Action::Remove)
            .map(|c| c.name.clone())
            .collect();

        let spec = target.cache.as_deref().unwrap_or(remote::DEFAULT_CACHE);
        let connection = host.connection()?;
        let run_as = target.run_as(connection.user()).map(str::to_string);
        let cache = caches.open(connection, spec, self.options.dry_run)?;
        let missing = cache.missing(&wheels);
        let files: Vec<String> = wheels.iter().map(|w| cache.path_of(w)).collect();
        let mut pushed = Pushed {
            uploaded: missing.iter().map(|w| w.file.clone()).collect(),
            uploaded_bytes: missing.iter().map(|w| w.size).sum(),
            ..Pushed::default()
        };

        if self.options.dry_run {
            cache.suppose_held(&missing);
            let run_as = run_as.as_deref();
            if let Some(python) = &create_with {
                let create = remote::create_venv_command(python, &venv);
                pushed.commands.push(remote::as_user(run_as, &create));
            }
            if !remove.is_empty() {
                let uninstall = remote::pip_uninstall_command(&venv, &remove);
                pushed.commands.push(remote::as_user(run_as, &uninstall));
            }
            if !files.is_empty() {
                let install = remote::pip_install_command(&venv, &files);
                pushed.commands.push(remote::as_user(run_as, &install));
            }
            pushed.installed = changes.iter().filter_map(installs).collect();
            pushed.removed = remove;
            pushed.dry_run = true;
            set_pushed(record, &pushed, false);
            return Ok(());
        }

        cache.upload(connection, &missing)?;
        let command = remote::as_user(
            run_as.as_deref(),
            &remote::push_command(&PushSteps {
                venv: &venv,
                create_with: create_with.as_deref(),
                install: &files,
                remove: &remove,
            }),
        );
        let finished = connection.run(&command, remote::FREEZE_SCRIPT.as_bytes())?;
        if let Some(message) = remote::sudo_refusal(&finished, run_as.as_deref()) {
            bail!(message);
        }
        let run = PushRun::parse(&finished)?;

        // The truth first: whatever else happened, the record says what the
        // venv holds now.
        let after = installed_of(&run.after)?;
        let locked = installed_of(&run.before)?;
        record::merge(
            record,
            &record::Frozen {
                python: run.after.python.clone(),
                markers: run.after.markers.clone(),
                installed: Installed::from_names(&after)?,
                venv_exists: true,
            },
        );
        for change in &changes {
            let (was, now) = (locked.get(&change.name), after.get(&change.name));
            if change.action == Action::Remove {
                if was.is_some() && now.is_none() {
                    pushed.removed.push(change.name.clone());
                }
            } else if now.is_some_and(|v| same_version(Some(v), change.to.as_deref()))
                && !same_version(was.map(String::as_str), change.to.as_deref())
            {
                pushed.installed.extend(installs(change));
            }
        }
        let changed = run.created || locked != after;
        set_pushed(record, &pushed, changed);
        self.log_changes(record, &changes, &pushed);

        let mut problems = Vec::new();
        if run.uninstall_status != 0 {
            problems.push(format!(
                "pip uninstall failed (exit status {}): {}",
                run.uninstall_status, run.pip_output
            ));
        } else if run.install_status != 0 {
            problems.push(format!(
                "pip install failed (exit status {}): {}",
                run.install_status, run.pip_output
            ));
        }
        let expected = expected_after(&frozen, &changes);
        let differences = differences(&expected, &after, create_with.is_some());
        if !differences.is_empty() {
            let mut text = format!(
                "after the push, {venv} is not what the plan makes it: {}",
                differences.join("; ")
            );
            let drift = differences_since_freeze(&frozen, &locked);
            if !drift.is_empty() {
                text.push_str(&format!(
                    " (it had changed since vd-freeze: {})",
                    drift.join("; ")
                ));
            }
            problems.push(text);
        }
        if !problems.is_empty() {
            bail!("{}", problems.join("; and "));
        }
        Ok(())
    }

    /// The repository file a change installs, checked against the plan.
    fn wheel(&self, change: &Change) -> Result<Wheel> {
        let file = change.wheel.clone().expect("checked by plan_of");
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
        if let Some(planned) = &change.sha256 {
            if *planned != sha256 {
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

    /// `install` and `remove` events for what this push changed.
    fn log_changes(&self, record: &Record, changes: &[Change], pushed: &Pushed) {
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
            let (kind, version) = match change.action {
                Action::Remove => ("remove", change.from.clone()),
                _ => ("install", change.to.clone()),
            };
            let mut event = Event::now(kind);
            event.name = change.name.clone();
            event.version = version.unwrap_or_default();
            event.wheel = change.wheel.clone().unwrap_or_default();
            event.sha256 = change.sha256.clone().unwrap_or_default();
            event.target = target.clone();
            event.detail = match (&change.action, &change.from) {
                (Action::Install | Action::Remove, _) | (_, None) => {
                    change.action.as_str().to_string()
                }
                (action, Some(from)) => format!("{} from {from}", action.as_str()),
            };
            events.push(event);
        }
        self.log.write(&events);
    }
}

/// `name==version` of what an install, upgrade or downgrade puts in.
fn installs(change: &Change) -> Option<String> {
    match change.action {
        Action::Remove => None,
        _ => Some(format!("{}=={}", change.name, change.to.as_deref()?)),
    }
}

fn set_pushed(record: &mut Record, pushed: &Pushed, changed: bool) {
    record::put(record, pushed);
    record::put(record, &Changed(changed));
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

/// What a venv holds after the plan: the frozen `installed`, changed.
pub fn expected_after(
    installed: &BTreeMap<String, String>,
    changes: &[Change],
) -> BTreeMap<String, Option<String>> {
    let mut expected: BTreeMap<String, Option<String>> = installed
        .iter()
        .map(|(name, version)| (name.clone(), Some(version.clone())))
        .collect();
    for change in changes {
        let version = match change.action {
            Action::Remove => None,
            _ => change.to.clone(),
        };
        expected.insert(change.name.clone(), version);
    }
    expected
}

/// How `actual` differs from `expected` (`None`: must be absent), in words.
/// In a venv just made, the packages `python -m venv` puts in (pip,
/// setuptools) are no difference.
fn differences(
    expected: &BTreeMap<String, Option<String>>,
    actual: &BTreeMap<String, String>,
    created: bool,
) -> Vec<String> {
    let mut found = Vec::new();
    for (name, want) in expected {
        let have = actual.get(name).map(String::as_str);
        match (want, have) {
            (Some(want), None) => {
                found.push(format!("{name} is not installed, the plan says {want}"))
            }
            (None, Some(have)) => found.push(format!(
                "{name} {have} is still installed, the plan removes it"
            )),
            (Some(want), Some(have)) if !same_version(Some(have), Some(want)) => {
                found.push(format!("{name} is {have}, the plan says {want}"))
            }
            _ => {}
        }
    }
    for (name, have) in actual {
        let seeded = created && KEEP.contains(&name.as_str());
        if !expected.contains_key(name) && !seeded {
            found.push(format!(
                "{name} {have} is installed, the plan does not have it"
            ));
        }
    }
    found
}

/// How the venv under the lock differed from the record's freeze.
fn differences_since_freeze(
    frozen: &BTreeMap<String, String>,
    locked: &BTreeMap<String, String>,
) -> Vec<String> {
    let expected = frozen
        .iter()
        .map(|(n, v)| (n.clone(), Some(v.clone())))
        .collect();
    differences(&expected, locked, false)
}

/// Two versions are the same by PEP 440 (`1.0` is `1.0.0`), or as text when
/// either does not parse.
fn same_version(a: Option<&str>, b: Option<&str>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => match (Version::from_str(a), Version::from_str(b)) {
            (Ok(a), Ok(b)) => a == b,
            _ => a == b,
        },
        (None, None) => true,
        _ => false,
    }
}

/// `installed` of a freeze printed on the host.
fn installed_of(facts: &Freeze) -> Result<BTreeMap<String, String>> {
    match &facts.installed {
        Some(Some(installed)) => Ok(installed.by_name()),
        _ => bail!("the venv's freeze printed no `installed`"),
    }
}

/// What [`remote::push_command`] printed.
struct PushRun {
    created: bool,
    before: Freeze,
    uninstall_status: i32,
    install_status: i32,
    after: Freeze,
    /// The end of pip's output (stderr), for errors.
    pip_output: String,
}

impl PushRun {
    fn parse(finished: &Finished) -> Result<PushRun> {
        let stdout = String::from_utf8_lossy(&finished.stdout);
        let mut lines = stdout.lines();
        let mut created = false;
        let mut before = None;
        let mut statuses = None;
        let mut after = None;
        while let Some(line) = lines.next() {
            match line.split_whitespace().collect::<Vec<_>>().as_slice() {
                ["vd-created"] => created = true,
                ["vd-before"] => before = lines.next().map(parse_facts).transpose()?,
                ["vd-pip", un, inst] => {
                    statuses = Some((un.parse().unwrap_or(-1), inst.parse().unwrap_or(-1)));
                    after = lines.next().map(parse_facts).transpose()?;
                }
                _ => {}
            }
        }
        let stderr = finished.stderr_text();
        let (Some(before), Some((uninstall_status, install_status))) = (before, statuses) else {
            bail!(
                "the push command failed before pip ran (exit status {}): {}",
                finished.status,
                if stderr.is_empty() {
                    "no message"
                } else {
                    &stderr
                }
            );
        };
        let Some(after) = after else {
            bail!(
                "the venv could not be read after pip ran (exit status {}): {stderr}",
                finished.status
            );
        };
        let lines: Vec<&str> = stderr.lines().collect();
        let pip_output = lines[lines.len().saturating_sub(PIP_TAIL_LINES)..].join("\n");
        Ok(PushRun {
            created,
            before,
            uninstall_status,
            install_status,
            after,
            pip_output,
        })
    }
}

fn parse_facts(line: &str) -> Result<Freeze> {
    serde_json::from_str(line)
        .with_context(|| format!("the venv's freeze printed no JSON object: {line:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn record(plan: Value) -> Record {
        json!({"host": "h", "venv": "/v", "plan": plan})
            .as_object()
            .unwrap()
            .clone()
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
    }

    #[test]
    fn the_expected_venv_is_the_freeze_changed_by_the_plan() {
        let installed: BTreeMap<String, String> = [("a", "1.0"), ("b", "2.0"), ("keep", "1")]
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        let changes = plan_of(&record(json!([
            {"name": "a", "action": "upgrade", "from": "1.0", "to": "1.1", "wheel": "a-1.1-py3-none-any.whl"},
            {"name": "b", "action": "remove", "from": "2.0"},
            {"name": "c", "action": "install", "to": "3", "wheel": "c-3-py3-none-any.whl"},
        ])))
        .unwrap();
        let expected = expected_after(&installed, &changes);
        let mut actual: BTreeMap<String, String> = [("a", "1.1.0"), ("c", "3"), ("keep", "1")]
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        assert!(differences(&expected, &actual, false).is_empty());
        actual.insert("b".into(), "2.0".into());
        actual.insert("pip".into(), "24".into());
        actual.remove("c");
        assert_eq!(
            differences(&expected, &actual, false),
            [
                "b 2.0 is still installed, the plan removes it",
                "c is not installed, the plan says 3",
                "pip 24 is installed, the plan does not have it",
            ]
        );
        assert_eq!(differences(&expected, &actual, true).len(), 2);
    }
}
