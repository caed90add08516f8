//! The fields each tool adds to a record, one Rust type per field.
//!
//! The JSON of each type is the contract in vd(7); serde writes it and reads
//! it back, so a tool never builds or picks apart a field by hand. Each type
//! implements [`Field`], which names its field; [`super::get`] reads it,
//! [`super::put`] writes it back in its place.

use super::entries::{AheadPackage, Change, UnchangedPackage};
use super::{Field, Record};
use anyhow::{anyhow, bail, Result};
use indexmap::IndexMap;
use pep508_rs::{MarkerEnvironment, PackageName};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Declare a record field whose value is one JSON value of another type:
/// the newtype over it, the derives every such field has (and `$extra`
/// ones: `Copy`, `Default`), and its [`Field`] name on the wire.
macro_rules! newtype_field {
    ($(#[$attr:meta])* $name:ident($inner:ty) = $wire:literal $(, $extra:ident)*) => {
        $(#[$attr])*
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize $(, $extra)*)]
        #[serde(transparent)]
        pub struct $name(pub $inner);

        impl Field for $name {
            const NAME: &'static str = $wire;
        }
    };
}

/// The facts of an interpreter, as vd-freeze's remote script prints them
/// (the `python` field after vd-freeze). Facts vd does not use are kept in
/// `other`, so a newer script's additions travel on.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Facts {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub executable: Option<String>,
    /// `sys.implementation.name`: cpython, pypy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub implementation: Option<String>,
    /// `platform.python_version()`, like 3.11.4.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub soabi: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ext_suffix: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub py_debug: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gil_disabled: Option<bool>,
    /// `WITH_PYMALLOC`: the `m` of the ABI of CPython before 3.8 (`cp37m`);
    /// null where the build does not say.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub with_pymalloc: Option<bool>,
    /// `Py_UNICODE_SIZE` (2 or 4; null from 3.3 on): the `u` of `cp27mu`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unicode_size: Option<u32>,
    /// `sys.maxunicode`, which says the unicode width where
    /// `unicode_size` does not (0x10FFFF: UCS-4).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maxunicode: Option<u32>,
    /// `sysconfig.get_platform()`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub machine: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pointer_bits: Option<u32>,
    /// `glibc`, `musl`, or empty when unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub libc: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub libc_version: Option<String>,
    /// `platform.mac_ver()[0]`, the macOS release: its platform tags
    /// depend on it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mac_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_prefix: Option<String>,
    /// Whether the interpreter is a virtualenv's (it has a pyvenv.cfg).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub venv: Option<bool>,
    /// Facts vd does not read, kept as they came.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// `markers`: the interpreter's PEP 508 environment, kept as the script
/// printed it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Markers(pub Map<String, Value>);

impl Field for Markers {
    const NAME: &'static str = "markers";
}

impl Markers {
    /// The environment markers are evaluated in.
    pub fn environment(&self) -> Result<MarkerEnvironment> {
        MarkerEnvironment::deserialize(&Value::Object(self.0.clone()))
            .map_err(|e| anyhow!("field `markers`: {e}"))
    }
}

/// `installed`: every distribution in the venv, `{normalized name: version}`.
/// The one type of an installed set: read from a record or a freeze on a
/// host, it is what fingerprints, plans, pushes and the release log read,
/// as the map it derefs to. Names are PEP 503 normalized when read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Map<String, Value>")]
pub struct Installed(BTreeMap<String, String>);

impl TryFrom<Map<String, Value>> for Installed {
    type Error = String;

    fn try_from(map: Map<String, Value>) -> Result<Installed, String> {
        map.into_iter()
            .map(|(name, version)| {
                let Value::String(version) = version else {
                    return Err(format!("version of {name} must be a string, not {version}"));
                };
                let name = name
                    .parse::<PackageName>()
                    .map_err(|e| format!("package name {name:?}: {e}"))?;
                Ok((name.to_string(), version))
            })
            .collect::<Result<_, String>>()
            .map(Installed)
    }
}

impl std::ops::Deref for Installed {
    type Target = BTreeMap<String, String>;

    fn deref(&self) -> &BTreeMap<String, String> {
        &self.0
    }
}

/// From names already normalized (a plan's, a freeze's).
impl FromIterator<(String, String)> for Installed {
    fn from_iter<I: IntoIterator<Item = (String, String)>>(pairs: I) -> Installed {
        Installed(pairs.into_iter().collect())
    }
}

impl IntoIterator for Installed {
    type Item = (String, String);
    type IntoIter = std::collections::btree_map::IntoIter<String, String>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a Installed {
    type Item = (&'a String, &'a String);
    type IntoIter = std::collections::btree_map::Iter<'a, String, String>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl Field for Installed {
    const NAME: &'static str = "installed";
}

newtype_field! {
    /// `venv_exists`: false for a venv still to be created.
    VenvExists(bool) = "venv_exists", Copy
}

/// Whether the record says the venv exists: anything but `venv_exists:
/// false` means yes.
pub fn venv_exists(record: &Record) -> bool {
    !matches!(get::<VenvExists>(record), Ok(Some(VenvExists(false))))
}

/// The `installed` a plan starts from: the record's, or nothing for a venv
/// still to be created (`venv_exists: false`).
pub fn installed(record: &Record) -> Result<Installed> {
    if !venv_exists(record) {
        return Ok(Installed::default());
    }
    match get::<Installed>(record) {
        Ok(Some(installed)) => Ok(installed),
        Ok(None) => bail!("missing field `installed` (run vd-freeze first)"),
        Err(e) => Err(e),
    }
}

use super::get;

/// What the freeze script prints on a host: the interpreter's facts, its
/// markers, and `installed`, which is absent when the venv does not exist
/// (null, which an older script printed for Python before 3.8, is read as
/// such so the message can say so).
#[derive(Debug, Clone, Deserialize)]
pub struct Freeze {
    pub python: Facts,
    pub markers: Markers,
    #[serde(default, deserialize_with = "present")]
    pub installed: Option<Option<Installed>>,
}

/// A field that is present (even as null) is `Some`.
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// What vd-freeze adds to a record, written in one go.
#[derive(Debug, Clone, Serialize)]
pub struct Frozen {
    pub python: Facts,
    pub markers: Markers,
    pub installed: Installed,
    pub venv_exists: bool,
}

newtype_field! {
    /// `plan` (from vd-diff): the changes to make, sorted by name.
    Changes(Vec<Change>) = "plan", Default
}

impl Changes {
    /// A record's `plan`, entry by entry, so an error names the entry:
    /// `None` when the record has none.
    pub fn of(record: &Record) -> Result<Option<Changes>> {
        match record.get(Changes::NAME) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Array(entries)) => entries
                .iter()
                .enumerate()
                .map(|(i, entry)| {
                    Change::deserialize(entry).map_err(|e| anyhow!("plan entry {}: {e}", i + 1))
                })
                .collect::<Result<_>>()
                .map(|changes| Some(Changes(changes))),
            Some(other) => bail!("field `plan` must be a list, not {other}"),
        }
    }
}

newtype_field! {
    /// `ahead` (from vd-diff): installed versions newer than the repository's
    /// best that still satisfy the requirements. A warning, not an error: the
    /// plan keeps them.
    Ahead(Vec<AheadPackage>) = "ahead", Default
}

newtype_field! {
    /// `unchanged` (from vd-diff, for targets with `generations`): the
    /// packages of the closure the plan leaves as they are, each with its wheel,
    /// so vd-push can build a whole new generation.
    Unchanged(Vec<UnchangedPackage>) = "unchanged", Default
}

/// `generation` (from vd-push and vd-rollback, for targets with
/// `generations`): the number of the generation `venv` points at, and of
/// the one before it (none before the first).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Generation {
    pub active: Option<u32>,
    pub previous: Option<u32>,
}

impl Field for Generation {
    const NAME: &'static str = "generation";
}

/// `rolled_back` (from vd-rollback) and `reverted` (from vd-reload
/// --revert): the generations switched from and to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Switch {
    pub from: u32,
    pub to: u32,
}

newtype_field! {
    /// `rolled_back`: vd-rollback switched the target back.
    RolledBack(Switch) = "rolled_back", Copy
}

newtype_field! {
    /// `reverted`: vd-reload --revert switched the target back after its
    /// reload or check failed.
    Reverted(Switch) = "reverted", Copy
}

newtype_field! {
    /// `planned_from` (from vd-diff): the fingerprint of the state the plan
    /// was made from ([`crate::fingerprint::of_state`]); vd-push refuses a
    /// target whose venv no longer has it.
    PlannedFrom(String) = "planned_from"
}

/// `pushed` (from vd-push): what the push did, or with `--dry-run` would do.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Pushed {
    /// `name==version` of each package installed.
    pub installed: Vec<String>,
    /// Names of the packages removed.
    pub removed: Vec<String>,
    /// Wheel files this target sent to the host's cache.
    pub uploaded: Vec<String>,
    pub uploaded_bytes: u64,
    /// What installed and removed the packages: `uv` or `pip`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub installer: Option<String>,
    /// True for `vd-push --dry-run`: nothing ran on the host, and the other
    /// fields say what a push would do.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
    /// With `--dry-run`: the commands a push would run, as it would run them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub commands: Vec<String>,
    /// For a target with generations: how the new generation was built.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub built: Option<Built>,
}

/// `pushed.built`: how vd-push built a new generation: as a copy of the
/// active one with only the plan's changes installed, or in full (a new
/// venv with every wheel of the new set), and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Built {
    pub way: BuildWay,
    /// The generation it is a copy of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<u32>,
    /// Why it was built in full.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
}

impl Built {
    pub fn copy_of(generation: u32) -> Built {
        Built {
            way: BuildWay::Copy,
            from: Some(generation),
            why: None,
        }
    }

    pub fn full(why: String) -> Built {
        Built {
            way: BuildWay::Full,
            from: None,
            why: Some(why),
        }
    }
}

/// The two ways of building a generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BuildWay {
    Copy,
    Full,
}

impl Field for Pushed {
    const NAME: &'static str = "pushed";
}

newtype_field! {
    /// `changed` (from vd-push): whether the venv changed; what vd-migrate and
    /// vd-reload --changed select on.
    Changed(bool) = "changed", Copy
}

newtype_field! {
    /// `skipped` (from vd-push's prompt): the user declined this target.
    Skipped(bool) = "skipped", Copy
}

newtype_field! {
    /// `migrated` (from vd-migrate): per settings module, in the order migrated,
    /// the migrations applied (`app.0002_name`).
    Migrated(IndexMap<String, Vec<String>>) = "migrated", Default
}

newtype_field! {
    /// `pending` (from vd-migrate --plan): per settings module, the migrations
    /// `migrate` would apply; nothing was applied.
    Pending(IndexMap<String, Vec<String>>) = "pending", Default
}

newtype_field! {
    /// `migrated_elsewhere` (from vd-migrate --once): per settings module, the
    /// target whose run migrated that database, so this one did not.
    MigratedElsewhere(IndexMap<String, String>) = "migrated_elsewhere", Default
}

newtype_field! {
    /// `reloaded` (from vd-reload): true when the reload command ran, false
    /// when the target has none.
    Reloaded(bool) = "reloaded", Copy
}

newtype_field! {
    /// `checked` (from vd-reload): true when the target's health check passed
    /// after its reload; absent when it has no check.
    Checked(bool) = "checked", Copy
}

/// One process that runs from a target's venv (an entry of `running`, from
/// vd-freeze; vd-reload reads the same scan).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunningProcess {
    pub pid: u32,
    /// The generation it runs, for a target with generations: from the
    /// marker it holds open, or a path into that generation's folder; null
    /// when unknown, and always for a venv changed in place.
    pub generation: Option<u32>,
    /// Its command line, the words joined by spaces.
    pub command: String,
    /// When it started, RFC 3339 UTC.
    pub started: String,
    /// It runs other code than the venv holds now: a generation other than
    /// the active one, or (unmarked, or in place) it started before the
    /// venv's last switch or change.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stale: bool,
    /// Another user's process whose command line names the venv but whose
    /// descriptors this user may not read: its generation is unknown
    /// unless the command line names a generation's folder.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unreadable: bool,
}

newtype_field! {
    /// `running` (from vd-freeze): the processes that run from the venv.
    Running(Vec<RunningProcess>) = "running", Default
}

/// `running_unseen` (from vd-freeze): what the scan of `running` could not
/// see: the processes of other users it may not read, or why it saw
/// nothing at all.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RunningUnseen {
    /// How many processes the scan could not read, and whose they are.
    pub processes: u32,
    pub users: Vec<String>,
    /// Why there was no scan (the host is not Linux, the scan failed);
    /// `running` is then absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl RunningUnseen {
    /// Nothing was unseen: the field is left out of the record.
    pub fn is_empty(&self) -> bool {
        self.processes == 0 && self.reason.is_none()
    }
}

impl Field for RunningUnseen {
    const NAME: &'static str = "running_unseen";
}

newtype_field! {
    /// `running_drift` (from vd-diff): why the processes that run from the
    /// venv are not what it holds, one sentence per stale process of
    /// `running`; `vd-diff --check` counts it as drift.
    RunningDrift(Vec<String>) = "running_drift", Default
}

/// A generation vd-push kept past the number to keep, because processes
/// still run from it (an entry of `kept_running`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeptGeneration {
    pub generation: u32,
    /// The processes that run from it.
    pub pids: Vec<u32>,
}

newtype_field! {
    /// `kept_running` (from vd-push, for targets with `generations`): the
    /// generations it did not prune because processes still run from them;
    /// the first push after they end prunes them.
    KeptRunning(Vec<KeptGeneration>) = "kept_running", Default
}

newtype_field! {
    /// `exported` (from vd-export): the path of the file written for the
    /// target.
    Exported(String) = "exported"
}

newtype_field! {
    /// `unexported` (from vd-export): `NAME VERSION` of each installed
    /// distribution the repository has no wheel of for the target, written
    /// without a wheel or hash (a warning).
    Unexported(Vec<String>) = "unexported", Default
}

/// `error`: the tool that failed the target and why. Later tools pass the
/// record through untouched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Error {
    pub tool: String,
    pub message: String,
}

impl Field for Error {
    const NAME: &'static str = "error";
}

/// A vd-add record: one wheel given on the command line and what became of
/// it. `wheel` is the path given until the wheel is checked, then its file
/// name in the repository.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Added {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wheel: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// What vd-add did: added, or already there.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
}

/// Read a stage's struct (one whose fields are record fields, like
/// [`Added`]) from a record; fields it does not name are ignored.
pub fn read<T: serde::de::DeserializeOwned>(record: &Record) -> Result<T> {
    T::deserialize(&Value::Object(record.clone())).map_err(|e| anyhow!("{e}"))
}

#[cfg(test)]
mod tests {
    use super::super::{merge, of_json, put, remove};
    use super::*;
    use serde_json::json;

    #[test]
    fn writing_a_stage_keeps_unknown_fields_in_place_and_order() {
        let mut r = of_json(json!({"zeta": 1, "pushed": null, "host": "h", "alpha": [1]}));
        put(
            &mut r,
            &Pushed {
                installed: vec!["six==1.16.0".into()],
                ..Pushed::default()
            },
        );
        put(&mut r, &Changed(true));
        let keys: Vec<&str> = r.keys().map(String::as_str).collect();
        assert_eq!(keys, ["zeta", "pushed", "host", "alpha", "changed"]);
        assert_eq!(
            serde_json::to_string(&r["pushed"]).unwrap(),
            r#"{"installed":["six==1.16.0"],"removed":[],"uploaded":[],"uploaded_bytes":0}"#
        );
        remove::<Pushed>(&mut r);
        let keys: Vec<&str> = r.keys().map(String::as_str).collect();
        assert_eq!(keys, ["zeta", "host", "alpha", "changed"]);
    }

    #[test]
    fn facts_round_trip_with_what_vd_does_not_read() {
        let text = r#"{"executable":"/v/bin/python","implementation":"cpython","version":"3.11.4","venv":true,"new_fact":[1,2]}"#;
        let facts: Facts = serde_json::from_str(text).unwrap();
        assert_eq!(facts.version.as_deref(), Some("3.11.4"));
        assert_eq!(serde_json::to_string(&facts).unwrap(), text);
    }

    #[test]
    fn merge_writes_in_place_and_appends_the_rest() {
        let mut r = of_json(json!({"wheel": "/tmp/a.whl", "mine": true}));
        merge(
            &mut r,
            &Added {
                wheel: Some("a-1.0-py3-none-any.whl".into()),
                name: Some("a".into()),
                ..Added::default()
            },
        );
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"wheel":"a-1.0-py3-none-any.whl","mine":true,"name":"a"}"#
        );
        let added: Added = read(&r).unwrap();
        assert_eq!(added.name.as_deref(), Some("a"));
    }

    #[test]
    fn installed_is_keyed_by_normalized_names() {
        let r = of_json(json!({"installed": {"Zope.Interface": "6.0", "six": "1.16.0"}}));
        let installed = installed(&r).unwrap();
        assert_eq!(
            installed.get("zope-interface").map(String::as_str),
            Some("6.0")
        );
        assert_eq!(
            serde_json::to_string(&installed).unwrap(),
            r#"{"six":"1.16.0","zope-interface":"6.0"}"#
        );
        let fresh = of_json(json!({"venv_exists": false}));
        assert!(super::installed(&fresh).unwrap().is_empty());
        let missing = format!("{:#}", super::installed(&of_json(json!({}))).unwrap_err());
        assert!(missing.contains("missing field `installed`"), "{missing}");
    }

    #[test]
    fn each_wrong_type_is_named() {
        let r = of_json(json!({
            "installed": {"a": 1}, "plan": {}, "pushed": 3, "migrated": {"m": "x"},
            "reloaded": "yes", "checked": 1, "markers": 2, "error": "boom"
        }));
        fn named<F: Field + std::fmt::Debug>(r: &Record) {
            let message = format!("{:#}", get::<F>(r).unwrap_err());
            assert!(
                message.starts_with(&format!("field `{}`", F::NAME)),
                "{message}"
            );
        }
        named::<Installed>(&r);
        named::<Changes>(&r);
        named::<Pushed>(&r);
        named::<Migrated>(&r);
        named::<Reloaded>(&r);
        named::<Checked>(&r);
        named::<Markers>(&r);
        named::<Error>(&r);
    }
}
