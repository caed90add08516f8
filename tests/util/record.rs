//! The target record as vd(7) and the design document describe it, as
//! types: what the tests read the tools' JSON lines into.
//!
//! These are written from the documentation, not taken from the `vd`
//! library, so a test that reads a record here checks the library against
//! the document: a field of the wrong JSON type fails the read, naming the
//! line. The record is open (users carry their own fields), so whatever the
//! document does not name lands in `rest`, still readable. A field vd knows
//! is never null: absent and null are told apart by failing on null, so
//! `record.error.is_none()` says the field is absent, as the raw JSON would.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// A struct of optional record fields: each is absent (`None`) or holds
/// its documented type, null fails the read, and `None` is left out when
/// the struct is written. Fields under `lenient` take their own attributes;
/// `rest` holds the fields the struct does not name.
macro_rules! optional_fields {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $( $(#[doc = $doc:literal])* $field:ident: $ty:ty, )*
        }
        $(#[doc = $rest_doc:literal])*
        rest: $rest:ident,
        $( lenient { $($lenient:tt)* } )?
    ) => {
        $(#[$meta])*
        pub struct $name {
            $(
                $(#[doc = $doc])*
                #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
                pub $field: Option<$ty>,
            )*
            $($($lenient)*)?
            $(#[doc = $rest_doc])*
            #[serde(flatten)]
            pub $rest: Map<String, Value>,
        }
    };
}

optional_fields! {
    /// One line of a tool's output or input: one virtualenv on one host.
    #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
    pub struct Record {
        // vd-targets: the inventory's columns, typed.
        host: String,
        port: u16,
        user: String,
        venv: String,
        venv_user: String,
        requirements: String,
        packages: Words,
        settings: Words,
        migrate_user: String,
        reload: String,
        reload_once: bool,
        via: String,
        identity: String,
        /// The interpreter's name before vd-freeze, its facts after.
        python: Python,
        cache: String,
        check: String,
        generations: u32,
        jump: String,
        // vd-freeze.
        markers: Markers,
        venv_exists: bool,
        /// Processes that run from the target's venv (vd-freeze, vd-reload).
        running: Vec<Process>,
        /// What the scan of `running` could not see (vd.7).
        running_unseen: Unseen,
        // vd-diff.
        plan: Vec<Change>,
        ahead: Vec<Ahead>,
        /// `sha256:HEX` of the state the plan was made from.
        planned_from: String,
        unchanged: Vec<Unchanged>,
        /// Why processes of `running` run stale code, one sentence each.
        running_drift: Vec<String>,
        // vd-push.
        pushed: Pushed,
        changed: bool,
        skipped: bool,
        generation: Generation,
        /// Generations not pruned because processes run from them.
        kept_running: Vec<Kept>,
        // vd-migrate: per settings module.
        migrated: BTreeMap<String, Vec<String>>,
        /// The target that migrated each module for this one (`--once`).
        migrated_elsewhere: BTreeMap<String, String>,
        pending: BTreeMap<String, Vec<String>>,
        // vd-reload and vd-rollback.
        reloaded: bool,
        checked: bool,
        rolled_back: Switch,
        reverted: Switch,
        /// vd-rollout: the wave a target went out in, or why it did not.
        rollout: Rollout,
        error: Error,
        /// The file vd-export wrote for this target.
        exported: String,
        /// `NAME VERSION` of what vd-export wrote without a wheel.
        unexported: Vec<String>,
        // vd-fetch.
        fetched: Vec<Fetched>,
    }
    /// Every field the document does not name: the user's own, kept.
    rest: rest,
    lenient {
        /// `{normalized name: version}`. A record written by hand for a
        /// virtualenv still to create may hold null here, which vd-diff takes
        /// as empty: it reads as absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub installed: Option<BTreeMap<String, String>>,
    }
}

/// `packages` and `settings`: a list as vd-targets writes them, or the
/// space-separated text a record written by hand may carry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Words {
    List(Vec<String>),
    Text(String),
}

impl Words {
    /// The words, one per item.
    pub fn words(&self) -> Vec<String> {
        match self {
            Words::List(list) => list.clone(),
            Words::Text(text) => text.split_whitespace().map(str::to_string).collect(),
        }
    }
}

/// A field vd knows is there with its value, or absent; null is neither.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// `python`: a name or path before vd-freeze, the interpreter's facts after.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Python {
    Name(String),
    Facts(Box<Facts>),
}

optional_fields! {
    /// The interpreter's facts vd-freeze reports: implementation, version,
    /// platform, machine, libc, and the virtualenv's executable and prefix.
    /// Whether it is a virtualenv's (`venv`) and its `base_prefix` are not in
    /// vd(7) but the tests rely on them; the rest stays in `other`.
    #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
    pub struct Facts {
        implementation: String,
        version: String,
        platform: String,
        machine: String,
        libc: String,
        executable: String,
        prefix: String,
        base_prefix: String,
        venv: bool,
    }
    rest: other,
}

/// `markers`: the interpreter's PEP 508 environment, every variable of it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Markers {
    pub implementation_name: String,
    pub implementation_version: String,
    pub os_name: String,
    pub platform_machine: String,
    pub platform_python_implementation: String,
    pub platform_release: String,
    pub platform_system: String,
    pub platform_version: String,
    pub python_full_version: String,
    pub python_version: String,
    pub sys_platform: String,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// One entry of `plan`; `from`, `to`, `wheel` and `sha256` are null where
/// they do not apply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub name: String,
    pub action: Action,
    pub from: Option<String>,
    pub to: Option<String>,
    pub wheel: Option<String>,
    pub sha256: Option<String>,
}

/// What a plan does to one package.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Install,
    Upgrade,
    Downgrade,
    Remove,
}

/// One entry of `ahead`: installed, newer than the repository's best.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ahead {
    pub name: String,
    pub installed: String,
    pub repository: Option<String>,
}

/// One entry of `unchanged`: a kept package and the wheel that holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unchanged {
    pub name: String,
    pub version: String,
    pub wheel: String,
    pub sha256: String,
}

/// `pushed`: what vd-push installed, removed and uploaded (or with
/// `--dry-run`, would have, and the commands it would run).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pushed {
    /// `name==version` of each package installed.
    pub installed: Vec<String>,
    pub removed: Vec<String>,
    /// Wheel files sent to the host's cache.
    pub uploaded: Vec<String>,
    pub uploaded_bytes: u64,
    /// What installed and removed: `uv` or `pip`; absent when nothing ran.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub installer: Option<String>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub dry_run: Option<bool>,
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub commands: Option<Vec<String>>,
    /// With generations: how the new generation was built.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub built: Option<Built>,
}

/// `pushed.built`: `way` is `copy` (of generation `from`, with the plan's
/// changes installed) or `full` (a new venv with every wheel; `why`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Built {
    pub way: String,
    #[serde(default, deserialize_with = "present")]
    pub from: Option<u32>,
    #[serde(default, deserialize_with = "present")]
    pub why: Option<String>,
}

/// `generation`: the generation the venv's path points at, and the one
/// before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Generation {
    pub active: u32,
    pub previous: Option<u32>,
}

/// `rolled_back` and `reverted`: the generations switched from and to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Switch {
    pub from: u32,
    pub to: u32,
}

/// `rollout` (vd-rollout): the wave a target went out in (or would have);
/// on a target the rollout did not reach, the wave it stopped after, the
/// targets that had failed, and why; on a target `--revert-wave` switched
/// back, `reverted_wave`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rollout {
    pub wave: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_after: Option<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reverted_wave: Option<bool>,
}

/// One entry of `running`: a process that runs from the target's venv.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Process {
    pub pid: u32,
    /// Null for a venv changed in place.
    pub generation: Option<u32>,
    pub command: String,
    /// When it started; the design names the field, not its form.
    pub started: Value,
    /// True where the process started before the venv's last change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stale: Option<bool>,
    /// True for another user's process whose command line names the venv
    /// but whose descriptors the scan may not read (vd.7).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unreadable: Option<bool>,
}

/// `running_unseen`: the processes the scan could not read, by user, or
/// why there was no scan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Unseen {
    pub processes: u32,
    pub users: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// One entry of `kept_running`: a generation vd-push did not prune, and
/// the processes that run from it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Kept {
    pub generation: u32,
    pub pids: Vec<u32>,
}

/// One entry of `fetched`: a wheel of the target's closure and where it
/// came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fetched {
    pub wheel: String,
    pub sha256: String,
    pub size: u64,
    pub source: Source,
}

/// Where vd-fetch found a wheel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// Downloaded by this run.
    Downloaded,
    /// Already in the destination folder.
    Dest,
    /// Held by the repository; not fetched.
    Repository,
}

/// `error`: the tool that failed the target, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Error {
    pub tool: String,
    pub message: String,
}

optional_fields! {
    /// A vd-add record: one wheel and what became of it.
    #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
    pub struct Added {
        wheel: String,
        name: String,
        version: String,
        sha256: String,
        /// added, or present (already in the repository).
        status: String,
        error: Error,
    }
    rest: rest,
}

impl Record {
    /// Read a record from a JSON object; a test failure naming the field
    /// when it does not match the document.
    #[track_caller]
    pub fn from_json(value: &Value) -> Record {
        serde_json::from_value(value.clone())
            .unwrap_or_else(|e| panic!("not a target record as vd(7) has it: {e}\n{value}"))
    }

    /// The record as a JSON object, to edit or to feed a tool.
    pub fn to_json(&self) -> Map<String, Value> {
        match serde_json::to_value(self).unwrap() {
            Value::Object(map) => map,
            _ => unreachable!("a record is an object"),
        }
    }

    /// `error.message`; a test failure when the record has no error.
    #[track_caller]
    pub fn error_message(&self) -> &str {
        match &self.error {
            Some(e) => &e.message,
            None => panic!("no error in {self:?}"),
        }
    }

    /// The interpreter's facts; a test failure before vd-freeze.
    #[track_caller]
    pub fn facts(&self) -> &Facts {
        match &self.python {
            Some(Python::Facts(facts)) => facts,
            other => panic!("python is not the interpreter's facts: {other:?}"),
        }
    }

    /// `markers`; a test failure when absent.
    #[track_caller]
    pub fn markers(&self) -> &Markers {
        self.markers
            .as_ref()
            .unwrap_or_else(|| panic!("no markers in {self:?}"))
    }

    /// `installed`; a test failure when absent.
    #[track_caller]
    pub fn installed(&self) -> &BTreeMap<String, String> {
        self.installed
            .as_ref()
            .unwrap_or_else(|| panic!("no installed in {self:?}"))
    }

    /// `plan`; a test failure when absent.
    #[track_caller]
    pub fn plan(&self) -> &[Change] {
        self.plan
            .as_deref()
            .unwrap_or_else(|| panic!("no plan in {self:?}"))
    }

    /// `fetched`; a test failure when absent.
    #[track_caller]
    pub fn fetched(&self) -> &[Fetched] {
        self.fetched
            .as_deref()
            .unwrap_or_else(|| panic!("no fetched in {self:?}"))
    }

    /// `pushed`; a test failure when absent.
    #[track_caller]
    pub fn pushed(&self) -> &Pushed {
        self.pushed
            .as_ref()
            .unwrap_or_else(|| panic!("no pushed in {self:?}"))
    }

    /// The migrations `migrated` lists for `settings`; a test failure when
    /// it lists nothing for them.
    #[track_caller]
    pub fn migrated(&self, settings: &str) -> &[String] {
        module_list(&self.migrated, "migrated", settings)
    }

    /// The migrations `pending` lists for `settings`; a test failure when
    /// it lists nothing for them.
    #[track_caller]
    pub fn pending(&self, settings: &str) -> &[String] {
        module_list(&self.pending, "pending", settings)
    }
}

#[track_caller]
fn module_list<'a>(
    field: &'a Option<BTreeMap<String, Vec<String>>>,
    name: &str,
    settings: &str,
) -> &'a [String] {
    field
        .as_ref()
        .and_then(|m| m.get(settings))
        .unwrap_or_else(|| panic!("no {name} for {settings} in {field:?}"))
}

/// Migrations by settings module, as `migrated` and `pending` hold them.
pub fn by_module(modules: &[(&str, &[&str])]) -> Option<BTreeMap<String, Vec<String>>> {
    let list = |names: &[&str]| names.iter().map(|n| n.to_string()).collect();
    Some(
        modules
            .iter()
            .map(|(m, names)| (m.to_string(), list(names)))
            .collect(),
    )
}

impl Facts {
    /// `version` as the interpreter reported it; a test failure when absent.
    #[track_caller]
    pub fn version(&self) -> &str {
        self.version.as_deref().expect("facts without a version")
    }
}

impl Change {
    /// A plan entry as vd-diff writes one, for plans written by hand.
    pub fn new(name: &str, action: Action) -> Change {
        Change {
            name: name.to_string(),
            action,
            from: None,
            to: None,
            wheel: None,
            sha256: None,
        }
    }
}

impl std::fmt::Display for Action {
    /// The action as the plan spells it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let word = match self {
            Action::Install => "install",
            Action::Upgrade => "upgrade",
            Action::Downgrade => "downgrade",
            Action::Remove => "remove",
        };
        f.write_str(word)
    }
}

impl Added {
    /// `error.message`; a test failure when the record has no error.
    #[track_caller]
    pub fn error_message(&self) -> &str {
        match &self.error {
            Some(e) => &e.message,
            None => panic!("no error in {self:?}"),
        }
    }
}
