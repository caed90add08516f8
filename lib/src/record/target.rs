//! The typed view of a target: what the inventory says about one virtualenv
//! on one host, parsed once where a record enters a tool.
//!
//! Every field of the wrong type is an error naming the field, never a
//! default: a `venv_user` of `1001` must not quietly drop the `sudo -u`
//! wrapper and run pip as the login user. [`Target::parse`] reports every bad
//! field at once, so one run of the tool shows all there is to fix.

use super::{get, Field, Record};
use crate::hop::{parse_chain, Hop};
use crate::record::stage::Facts;
use crate::ssh_name::{check_host, check_user};
use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// How vd reaches a target's host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Via {
    /// Over SSH (the default).
    #[default]
    Ssh,
    /// On this machine, without SSH.
    Local,
}

/// The `python` field: before vd-freeze, the interpreter to create a venv
/// with (a name or path on the host); after, the facts of the venv's
/// interpreter. One type, so no tool mistakes one for the other.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Python {
    Name(String),
    Facts(Box<Facts>),
}

impl Field for Python {
    const NAME: &'static str = "python";
}

/// One target, as its record describes it. Fields the record leaves out or
/// leaves empty are `None` (or empty lists, or `false`).
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// The host as the inventory names it: an alias in ~/.ssh/config, a
    /// name, an address.
    pub host: String,
    /// The SSH port, when the record names one.
    pub port: Option<u16>,
    /// The login user, when the record names one.
    pub user: Option<String>,
    /// Absolute path of the virtualenv.
    pub venv: String,
    /// pip and migrations run as this user (`sudo -n -u`).
    pub venv_user: Option<String>,
    /// Migrations run as this user, else as `venv_user`.
    pub migrate_user: Option<String>,
    /// The target's requirements file, on this machine.
    pub requirements: Option<PathBuf>,
    /// Extra requirements, one per item.
    pub packages: Vec<String>,
    /// Django settings modules to migrate.
    pub settings: Vec<String>,
    /// The reload command.
    pub reload: Option<String>,
    /// Reload once per host (true) or per target.
    pub reload_once: bool,
    /// The health check run after the reload.
    pub check: Option<String>,
    pub via: Via,
    /// The SSH key file, with `~/` expanded to this user's home.
    pub identity: Option<PathBuf>,
    /// The interpreter for a new venv, or (after vd-freeze) the facts.
    pub python: Option<Python>,
    /// The wheel cache on the host.
    pub cache: Option<String>,
    /// Keep this many generations (2 or more): `venv` is a symlink vd
    /// manages into `VENV.generations/N`. `None`: the venv is changed in
    /// place.
    pub generations: Option<u32>,
    /// The bastions to reach the host through, the first one first.
    pub jump: Option<Vec<Hop>>,
}

impl Target {
    /// The interpreter's facts vd-freeze put in `python`: what the tools
    /// after it plan and write from.
    pub fn facts(&self) -> Result<&Facts> {
        match &self.python {
            Some(Python::Facts(facts)) => Ok(facts),
            Some(Python::Name(_)) => {
                bail!("field `python` must be an object of interpreter facts (from vd-freeze)")
            }
            None => bail!("missing field `python` (run vd-freeze first)"),
        }
    }

    /// Parse the target fields of a record. The error names every bad field,
    /// one per `; `; the caller adds the line.
    pub fn parse(record: &Record) -> Result<Target> {
        let mut errors = Vec::new();
        let mut take = |result: Result<()>| {
            if let Err(e) = result {
                errors.push(format!("{e:#}"));
            }
        };
        let mut target = Target {
            host: String::new(),
            port: None,
            user: None,
            venv: String::new(),
            venv_user: None,
            migrate_user: None,
            requirements: None,
            packages: Vec::new(),
            settings: Vec::new(),
            reload: None,
            reload_once: false,
            check: None,
            via: Via::Ssh,
            identity: None,
            python: None,
            cache: None,
            generations: None,
            jump: None,
        };
        take(required(record, "host").and_then(|v| {
            check_host("field `host`", &v)?;
            target.host = v;
            Ok(())
        }));
        take(required(record, "venv").and_then(|v| {
            if !v.starts_with('/') {
                bail!("venv {v:?} must be an absolute path");
            }
            target.venv = v;
            Ok(())
        }));
        take(port(record).map(|v| target.port = v));
        take(optional(record, "user").and_then(|v| {
            if let Some(user) = &v {
                check_user("field `user`", user)?;
            }
            target.user = v;
            Ok(())
        }));
        take(optional(record, "venv_user").map(|v| target.venv_user = v));
        take(optional(record, "migrate_user").map(|v| target.migrate_user = v));
        take(optional(record, "requirements").map(|v| target.requirements = v.map(PathBuf::from)));
        take(list(record, "packages").map(|v| target.packages = v));
        take(list(record, "settings").map(|v| target.settings = v));
        take(optional(record, "reload").map(|v| target.reload = v));
        take(boolean(record, "reload_once").map(|v| target.reload_once = v));
        take(optional(record, "check").map(|v| target.check = v));
        take(optional(record, "cache").and_then(|v| {
            if let Some(path) = &v {
                check_cache_path(path)?;
            }
            target.cache = v;
            Ok(())
        }));
        take(generations(record).map(|v| target.generations = v));
        take(optional(record, "via").and_then(|v| {
            target.via = match v.as_deref() {
                None | Some("ssh") => Via::Ssh,
                Some("local") => Via::Local,
                Some(other) => bail!("via {other:?} must be `ssh` or `local`"),
            };
            Ok(())
        }));
        take(optional(record, "identity").map(|v| target.identity = v.map(|p| expand_home(&p))));
        take(python(record).map(|v| target.python = v));
        take(optional(record, "jump").and_then(|v| {
            target.jump = match v.as_deref().map(str::trim) {
                None | Some("") => None,
                Some(text) => Some(parse_chain(text).context("field `jump`")?),
            };
            Ok(())
        }));
        if errors.is_empty() {
            Ok(target)
        } else {
            Err(anyhow!("{}", errors.join("; ")))
        }
    }

    /// The user the target's commands run as when that is not the login
    /// user: `venv_user`.
    pub fn run_as(&self, login_user: &str) -> Option<&str> {
        self.venv_user.as_deref().filter(|u| *u != login_user)
    }

    /// The user the target's migrations run as when that is not the login
    /// user: `migrate_user`, else `venv_user`.
    pub fn migrate_as(&self, login_user: &str) -> Option<&str> {
        self.migrate_user
            .as_deref()
            .or(self.venv_user.as_deref())
            .filter(|u| *u != login_user)
    }

    /// The interpreter a venv still to create would get: the record's
    /// `python`, or, in a record frozen before (where `python` holds facts),
    /// the executable those facts describe when it was not the target venv's
    /// own: the one vd-freeze ran for a venv still to create
    /// (`venv_exists` false), which may itself live in a venv (a Python 2.7
    /// with virtualenv often does), or any that is no venv's; else python3.
    pub fn python_for_new_venv(&self, venv_exists: bool) -> String {
        match &self.python {
            Some(Python::Name(name)) => name.clone(),
            Some(Python::Facts(facts)) if !venv_exists || facts.venv == Some(false) => facts
                .executable
                .clone()
                .filter(|e| !e.is_empty())
                .unwrap_or_else(|| "python3".to_string()),
            _ => "python3".to_string(),
        }
    }

    /// Whether the interpreter a venv still to create would get is a
    /// Python 2, as far as the record knows (the facts vd-freeze collected
    /// for it): such a venv is made by virtualenv, not `-m venv`.
    pub fn new_venv_is_python2(&self, venv_exists: bool) -> bool {
        match &self.python {
            Some(Python::Facts(facts)) if !venv_exists || facts.venv == Some(false) => facts
                .version
                .as_deref()
                .is_some_and(|v| v.starts_with("2.")),
            _ => false,
        }
    }
}

/// The target fields vd-diff's plan depends on: the interpreter and what
/// the target asks for (beside vd-freeze's `markers`, `installed` and
/// `venv_exists`). Targets alike in these, and in those, get one plan.
pub const PLAN_COLUMNS: &[&str] = &["python", "requirements", "packages", "generations"];

/// The fields an inventory may set, in the documented order: the columns
/// of a CSV inventory.
pub const COLUMNS: &[&str] = &[
    "host",
    "port",
    "user",
    "venv",
    "venv_user",
    "requirements",
    "packages",
    "settings",
    "migrate_user",
    "reload",
    "reload_once",
    "via",
    "identity",
    "python",
    "cache",
    "check",
    "generations",
    "jump",
];

/// A CSV cell as the JSON value the record contract wants: `port` a number,
/// `reload_once` a boolean, `packages` and `settings` lists. Numbers and
/// booleans that do not parse stay strings, and [`Target::parse`] names them.
pub fn typed_cell(column: &str, cell: &str) -> Value {
    match column {
        "port" | "generations" => cell
            .parse::<u64>()
            .map(Value::from)
            .unwrap_or_else(|_| Value::from(cell)),
        "reload_once" => super::parse_bool(cell)
            .map(Value::from)
            .unwrap_or_else(|| Value::from(cell)),
        "packages" | "settings" => Value::from(cell.split_whitespace().collect::<Vec<_>>()),
        _ => Value::from(cell),
    }
}

/// Make the target's paths on this machine (`requirements`, `identity`)
/// absolute: relative ones are taken from `base`, the inventory's folder, so
/// the inventory means the same from any directory. `~/` stays for
/// [`Target::parse`] to expand.
pub fn resolve_local_paths(record: &mut Record, base: &Path) {
    for column in ["requirements", "identity"] {
        if let Some(Value::String(p)) = record.get(column) {
            if !p.is_empty() && !p.starts_with('/') && !p.starts_with('~') {
                let resolved = base.join(p).display().to_string();
                record.insert(column.to_string(), Value::from(resolved));
            }
        }
    }
}

/// A wheel cache directory must be a path every step of a push carries as
/// one path: absolute or under `~/`, with no control character (the host
/// reports the directory as one line of a listing, so a newline would split
/// it) and no `;` (pip reads `;` in an install argument as the start of an
/// environment marker, not as part of a file name). Quoting cannot save
/// either: the listing and pip see the value after the shell.
fn check_cache_path(path: &str) -> Result<()> {
    if !(path.starts_with('/') || path == "~" || path.starts_with("~/")) {
        bail!("field `cache`: {path:?} is not an absolute path or one under ~/ (the login user's home)");
    }
    if let Some(c) = path.chars().find(|c| c.is_control() || *c == ';') {
        bail!(
            "field `cache`: {path:?} holds {c:?}; a cache directory's path may not hold a control character (such as a newline) or `;`"
        );
    }
    Ok(())
}

/// `~/x` as x in this user's home (`$HOME`), as a shell would read it.
fn expand_home(path: &str) -> PathBuf {
    match (path.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(path),
    }
}

/// What a JSON value is, for messages: `1001 (a number)`.
fn shown(value: &Value) -> String {
    let kind = match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    };
    format!("{value} ({kind})")
}

/// An optional string field: `None` when absent, null or blank.
fn optional(record: &Record, name: &str) -> Result<Option<String>> {
    match record.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => bail!("field `{name}` must be a string, not {}", shown(other)),
    }
}

/// A required string field.
fn required(record: &Record, name: &str) -> Result<String> {
    optional(record, name)?.ok_or_else(|| anyhow!("missing field `{name}`"))
}

/// A list field: a JSON array of strings, or one string of space-separated
/// words (the inventory's form). Absent means empty.
fn list(record: &Record, name: &str) -> Result<Vec<String>> {
    match record.get(name) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(s.split_whitespace().map(str::to_string).collect()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.clone()),
                other => bail!("field `{name}` must hold strings, not {}", shown(other)),
            })
            .collect(),
        Some(other) => bail!(
            "field `{name}` must be a list of strings, not {}",
            shown(other)
        ),
    }
}

/// A boolean field; absent or null is `false`. Takes the inventory's text
/// forms too (`true`/`false`, `yes`/`no`, `1`/`0`).
fn boolean(record: &Record, name: &str) -> Result<bool> {
    match record.get(name) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::String(s)) => super::parse_bool(s)
            .ok_or_else(|| anyhow!("field `{name}`: expected true or false, not {s:?}")),
        Some(other) => bail!(
            "field `{name}`: expected true or false, not {}",
            shown(other)
        ),
    }
}

/// `port`: a number, or a string of digits (as a CSV cell is), 1-65535.
/// The one place vd reads a port from a record.
fn port(record: &Record) -> Result<Option<u16>> {
    let valid = |p: u64| u16::try_from(p).ok().filter(|p| *p > 0);
    match record.get("port") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_u64()
            .and_then(valid)
            .map(Some)
            .ok_or_else(|| anyhow!("port {n} is not a port number (1-65535)")),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => match s.trim().parse::<u64>() {
            Ok(p) => valid(p)
                .map(Some)
                .ok_or_else(|| anyhow!("port {s:?} is not a port number (1-65535)")),
            Err(_) => bail!("port {s:?} is not a number"),
        },
        Some(other) => bail!("port {} is not a number", shown(other)),
    }
}

/// `generations`: how many generations to keep, 2 or more (a number, or a
/// string of digits as a CSV cell is); absent or blank: none.
fn generations(record: &Record) -> Result<Option<u32>> {
    let n = match record.get("generations") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => return Ok(None),
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.trim().parse::<u64>().ok(),
        Some(_) => None,
    };
    match n.and_then(|n| u32::try_from(n).ok()) {
        Some(n) if n >= 2 => Ok(Some(n)),
        _ => bail!(
            "field `generations` must be a number of generations to keep, 2 or more, not {}",
            shown(&record["generations"])
        ),
    }
}

/// `python`: an interpreter's name, or the facts of one.
fn python(record: &Record) -> Result<Option<Python>> {
    match record.get(Python::NAME) {
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(_) | Value::Object(_)) | None | Some(Value::Null) => get(record),
        Some(other) => bail!(
            "field `python` must be an interpreter's name or its facts, not {}",
            shown(other)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::super::of_json;
    use super::*;
    use serde_json::json;

    fn error(value: Value) -> String {
        format!("{:#}", Target::parse(&of_json(value)).unwrap_err())
    }

    #[test]
    fn reads_every_field() {
        let t = Target::parse(&of_json(json!({
            "host": "web1", "port": "2222", "user": "deploy", "venv": "/srv/v",
            "venv_user": "app", "migrate_user": "owner", "requirements": "/r.txt",
            "packages": "a b", "settings": ["shop.settings"], "reload": "touch x",
            "reload_once": "yes", "check": "true", "via": "local", "identity": "/k",
            "python": "python3.11", "cache": "/c", "generations": "3", "mine": 1
        })))
        .unwrap();
        assert_eq!(t.generations, Some(3));
        assert_eq!(t.port, Some(2222));
        assert_eq!(t.packages, ["a", "b"]);
        assert_eq!(t.settings, ["shop.settings"]);
        assert!(t.reload_once);
        assert_eq!(t.via, Via::Local);
        assert_eq!(t.python, Some(Python::Name("python3.11".into())));
        assert_eq!(t.run_as("deploy"), Some("app"));
        assert_eq!(t.migrate_as("deploy"), Some("owner"));
        assert_eq!(t.migrate_as("owner"), None);
        assert_eq!(t.python_for_new_venv(true), "python3.11");
    }

    #[test]
    fn each_wrong_type_is_named() {
        for field in [
            "user",
            "venv_user",
            "migrate_user",
            "cache",
            "identity",
            "via",
            "reload",
            "check",
            "requirements",
        ] {
            let mut r = of_json(json!({"host": "h", "venv": "/v"}));
            r.insert(field.into(), json!(1001));
            let message = format!("{:#}", Target::parse(&r).unwrap_err());
            assert!(message.contains(&format!("field `{field}`")), "{message}");
            assert!(message.contains("1001 (a number)"), "{message}");
            r.insert(field.into(), json!(["a"]));
            let message = format!("{:#}", Target::parse(&r).unwrap_err());
            assert!(message.contains(&format!("field `{field}`")), "{message}");
        }
        let message = error(json!({"host": "h", "venv": "/v", "python": 3}));
        assert!(message.contains("field `python`"), "{message}");
        let message = error(json!({"host": "h", "venv": "/v", "port": true}));
        assert!(message.contains("port true (a boolean)"), "{message}");
        let message = error(json!({"host": "h", "venv": "/v", "reload_once": 2}));
        assert!(message.contains("field `reload_once`"), "{message}");
        for bad in [json!(1), json!("x"), json!(true)] {
            let message = error(json!({"host": "h", "venv": "/v", "generations": bad}));
            assert!(message.contains("field `generations`"), "{message}");
        }
        let message = error(json!({"host": "h", "venv": "/v", "settings": [1]}));
        assert!(message.contains("field `settings`"), "{message}");
    }

    #[test]
    fn every_bad_field_is_named_at_once() {
        let message = error(json!({"host": 1, "venv": "rel", "venv_user": 2, "port": 0}));
        for part in [
            "field `host`",
            "venv \"rel\"",
            "field `venv_user`",
            "port 0",
        ] {
            assert!(message.contains(part), "{message}");
        }
        assert_eq!(message.matches("; ").count(), 3, "{message}");
    }

    #[test]
    fn names_a_shell_would_act_on_are_refused_by_field() {
        for (field, bad) in [
            ("host", "web1$(id)"),
            ("host", "deploy@web1"),
            ("user", "x;id"),
            ("jump", "gw`id`"),
        ] {
            let mut r = json!({"host": "web1", "venv": "/v"});
            r[field] = json!(bad);
            let message = error(r);
            assert!(message.contains(&format!("field `{field}`")), "{message}");
        }
        let t = Target::parse(&of_json(
            json!({"host": "::1", "user": "first.last", "venv": "/v", "jump": "_svc@[fe80::1%eth0]:22"}),
        ))
        .unwrap();
        assert_eq!(t.user.as_deref(), Some("first.last"));
    }

    #[test]
    fn blank_fields_are_absent_and_ports_are_checked() {
        let t = Target::parse(&of_json(
            json!({"host": "h", "venv": "/v", "venv_user": " ", "port": ""}),
        ))
        .unwrap();
        assert_eq!((t.venv_user, t.port), (None, None));
        assert!(error(json!({"host": "h", "venv": "/v", "port": 70000})).contains("1-65535"));
        assert!(error(json!({"host": "h", "venv": "/v", "port": "x"})).contains("port \"x\""));
        assert!(error(json!({"venv": "/v"})).contains("missing field `host`"));
    }

    #[test]
    fn identity_in_home_is_expanded() {
        let home = std::env::var("HOME").unwrap_or_default();
        let t = Target::parse(&of_json(
            json!({"host": "h", "venv": "/v", "identity": "~/.ssh/deploy"}),
        ))
        .unwrap();
        if !home.is_empty() {
            assert_eq!(t.identity, Some(PathBuf::from(home).join(".ssh/deploy")));
        }
    }

    #[test]
    fn a_cache_path_a_push_cannot_carry_is_refused() {
        for ok in ["/var/cache/vd wheels", "~/.cache/vd", "~", "/c/$(x)'q"] {
            let t = Target::parse(&of_json(json!({"host": "h", "venv": "/v", "cache": ok})));
            assert_eq!(t.unwrap().cache.as_deref(), Some(ok));
        }
        for bad in ["/c\nd", "/c;rm -rf ~", "/c\u{7f}", "cache", "~user/c"] {
            let message = error(json!({"host": "h", "venv": "/v", "cache": bad}));
            assert!(message.contains("field `cache`"), "{bad:?}: {message}");
        }
    }

    #[test]
    fn lists_take_words_or_arrays() {
        let r = of_json(json!({"a": "x y  z", "b": ["p"], "c": 3}));
        assert_eq!(list(&r, "a").unwrap(), ["x", "y", "z"]);
        assert_eq!(list(&r, "b").unwrap(), ["p"]);
        assert!(list(&r, "missing").unwrap().is_empty());
        assert!(list(&r, "c").is_err());
    }

    #[test]
    fn python_is_a_name_or_facts() {
        let facts = json!({"host": "h", "venv": "/v",
            "python": {"executable": "/usr/bin/python3", "venv": false, "version": "3.11.2"}});
        let t = Target::parse(&of_json(facts)).unwrap();
        assert_eq!(t.python_for_new_venv(true), "/usr/bin/python3");
        assert!(matches!(t.python, Some(Python::Facts(_))));
        let t = Target::parse(&of_json(json!({"host": "h", "venv": "/v"}))).unwrap();
        assert_eq!(t.python_for_new_venv(true), "python3");
    }

    #[test]
    fn a_new_venv_gets_the_interpreter_its_record_named() {
        let parse = |v: Value| Target::parse(&of_json(v)).unwrap();
        let t = parse(json!({"host": "h", "venv": "/v", "python": "python2.7"}));
        assert_eq!(t.python_for_new_venv(false), "python2.7");
        assert!(!t.new_venv_is_python2(false), "a name alone says nothing");
        // vd-freeze ran this python for a venv still to create: it may live
        // in a venv of its own (a 2.7 with virtualenv).
        let tools =
            json!({"executable": "/opt/py27/bin/python", "venv": true, "version": "2.7.18"});
        let t = parse(json!({"host": "h", "venv": "/v", "python": tools}));
        assert_eq!(t.python_for_new_venv(false), "/opt/py27/bin/python");
        assert!(t.new_venv_is_python2(false));
        // The facts of the target venv's own python are no base for it.
        assert_eq!(t.python_for_new_venv(true), "python3");
        assert!(!t.new_venv_is_python2(true));
        let host = json!({"executable": "/usr/bin/python3.6", "venv": false, "version": "3.6.15"});
        let t = parse(json!({"host": "h", "venv": "/v", "python": host}));
        assert_eq!(t.python_for_new_venv(true), "/usr/bin/python3.6");
        assert!(!t.new_venv_is_python2(false));
    }
}
