//! The plan: for one target, exactly which wheel files to install and which
//! packages to remove so its virtualenv meets the requirements.
//!
//! vd plans offline against its own repository, and vd-push installs exactly
//! the planned files, so there is no resolver to fall back on: everything pip
//! would later refuse must be caught here. For each required project the
//! highest repository version that satisfies every line naming it (and every
//! constraint) and has a wheel the interpreter accepts is chosen; among that
//! version's wheels the one with the most specific tag (then the highest
//! build tag, as pip prefers); with `--hash` lines,
//! only a wheel whose sha256 is listed. Then each chosen wheel's
//! `Requires-Dist` (markers evaluated for the target, requested extras
//! included) must be met by what the venv will hold afterwards.
//!
//! Planning is per target and keeps nothing of one target for the next, so a
//! run over many targets streams; what is shared is the repository [`Index`]
//! (which reads each wheel at most once) and the parsed dependencies here.

use crate::repo::Index;
use crate::requirement::{Origin, Requirement, Requirements};
use crate::tags::Tags;
use pep508_rs::pep440_rs::{Version, VersionSpecifiers};
use pep508_rs::{ExtraName, MarkerEnvironment};
use serde::{Deserialize, Serialize};
use std::cell::OnceCell;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::str::FromStr;

/// What to do with one package.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Not installed: install the wheel.
    Install,
    /// Installed at an older version: install the newer wheel.
    Upgrade,
    /// Installed at a newer version the specifier excludes: install the older wheel.
    Downgrade,
    /// Installed but not required (`--exact`): uninstall it.
    Remove,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Install => "install",
            Action::Upgrade => "upgrade",
            Action::Downgrade => "downgrade",
            Action::Remove => "remove",
        }
    }
}

/// One change to a venv: an element of a record's `plan`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub name: String,
    pub action: Action,
    /// The installed version, if any.
    pub from: Option<String>,
    /// The version to install; none for `remove`.
    pub to: Option<String>,
    /// The repository's wheel file to install.
    pub wheel: Option<String>,
    /// sha256 of the whole wheel file.
    pub sha256: Option<String>,
}

/// An installed package newer than anything in the repository that still
/// satisfies the requirements: kept, and reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ahead {
    pub name: String,
    pub installed: String,
    /// The best version the repository has for this target, if any.
    pub repository: Option<String>,
}

/// The plan for one target: changes and `ahead` packages, each sorted by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub changes: Vec<Change>,
    pub ahead: Vec<Ahead>,
}

/// What is known about one target.
pub struct Target<'a> {
    pub env: &'a MarkerEnvironment,
    pub tags: &'a Tags,
    /// `{PEP 503 name: version}`; empty for a venv still to be created.
    pub installed: &'a BTreeMap<String, String>,
}

/// Packages `--exact` never removes: the venv's own tools.
pub const KEEP: &[&str] = &["pip", "setuptools", "wheel"];

/// Plans targets against one repository, remembering what it parsed from
/// wheels (`Requires-Python`, `Requires-Dist`) for the whole run.
pub struct Planner<'a> {
    index: &'a Index,
    parsed: Vec<OnceCell<Result<Parsed, String>>>,
}

struct Parsed {
    requires_python: Option<VersionSpecifiers>,
    requires_dist: Vec<Requirement>,
}

/// The requirements naming one project, after markers.
struct Group<'r> {
    name: String,
    lines: Vec<&'r Requirement>,
    constraints: Vec<&'r Requirement>,
    extras: BTreeSet<ExtraName>,
}

impl Group<'_> {
    fn specifiers(&self) -> impl Iterator<Item = &pep508_rs::pep440_rs::VersionSpecifier> {
        self.lines
            .iter()
            .chain(&self.constraints)
            .flat_map(|r| r.specifiers.iter())
    }

    fn satisfied_by(&self, version: &Version) -> bool {
        self.specifiers().all(|s| s.contains(version))
    }

    /// PEP 440: pre-releases only when a specifier names one.
    fn allows_prerelease(&self) -> bool {
        self.specifiers().any(|s| s.any_prerelease())
    }

    /// `` `foo>=1` (req.txt line 3) `` for each line, for messages.
    fn described(&self) -> String {
        self.lines
            .iter()
            .chain(&self.constraints)
            .map(|r| format!("`{}` ({})", r.text, r.origin))
            .collect::<Vec<_>>()
            .join(" and ")
    }
}

/// What was decided for one required project.
struct Resolved {
    version: Version,
    /// The repository wheel for `version`, when there is one.
    wheel: Option<usize>,
}

impl<'a> Planner<'a> {
    pub fn new(index: &'a Index) -> Planner<'a> {
        Planner {
            index,
            parsed: (0..index.len()).map(|_| OnceCell::new()).collect(),
        }
    }

    /// Plan one target. The requirements are every `sources` entry's
    /// requirements and constraints together; `exact` removes what is
    /// installed but not required. On failure, every problem found, one
    /// per element.
    pub fn plan_target(
        &self,
        target: &Target,
        sources: &[&Requirements],
        exact: bool,
    ) -> Result<Plan, Vec<String>> {
        let mut problems = Vec::new();
        let no_extras: &[ExtraName] = &[];
        let mut groups: Vec<Group> = Vec::new();
        let mut by_name: HashMap<&str, usize> = HashMap::new();
        for r in sources.iter().flat_map(|s| &s.requirements) {
            if !r.applies(target.env, no_extras) {
                continue;
            }
            let i = *by_name.entry(r.name.as_str()).or_insert_with(|| {
                groups.push(Group {
                    name: r.name.clone(),
                    lines: Vec::new(),
                    constraints: Vec::new(),
                    extras: BTreeSet::new(),
                });
                groups.len() - 1
            });
            groups[i].lines.push(r);
            groups[i].extras.extend(r.extras.iter().cloned());
        }
        for c in sources.iter().flat_map(|s| &s.constraints) {
            if let Some(&i) = by_name.get(c.name.as_str()) {
                if c.applies(target.env, no_extras) {
                    groups[i].constraints.push(c);
                }
            }
        }

        let mut plan = Plan::default();
        let mut resolved: HashMap<&str, Resolved> = HashMap::new();
        for group in &groups {
            let installed = match target.installed.get(&group.name) {
                None => None,
                Some(v) => match Version::from_str(v) {
                    Ok(v) => Some(v),
                    Err(_) => {
                        problems.push(format!(
                            "{} is installed at {v:?}, which is not a PEP 440 version",
                            group.name
                        ));
                        continue;
                    }
                },
            };
            let chosen = match self.choose(target, group) {
                Ok(chosen) => chosen,
                Err(problem) => {
                    // Already installed and acceptable: keep it.
                    if let Some(v) = installed.as_ref().filter(|v| group.satisfied_by(v)) {
                        plan.ahead.push(Ahead {
                            name: group.name.clone(),
                            installed: v.to_string(),
                            repository: None,
                        });
                        resolved.insert(
                            &group.name,
                            Resolved {
                                version: v.clone(),
                                wheel: None,
                            },
                        );
                    } else {
                        problems.push(problem);
                    }
                    continue;
                }
            };
            let version = self.index.name(chosen).version.clone();
            let action = match &installed {
                None => Some(Action::Install),
                Some(v) if *v == version => None,
                Some(v) if *v > version && group.satisfied_by(v) => {
                    plan.ahead.push(Ahead {
                        name: group.name.clone(),
                        installed: v.to_string(),
                        repository: Some(version.to_string()),
                    });
                    resolved.insert(
                        &group.name,
                        Resolved {
                            version: v.clone(),
                            wheel: self.wheel_for_version(target, &group.name, v),
                        },
                    );
                    continue;
                }
                Some(v) if *v > version => Some(Action::Downgrade),
                Some(_) => Some(Action::Upgrade),
            };
            if let Some(action) = action {
                let sha256 = match self.index.sha256(chosen) {
                    Ok(sha) => sha.to_string(),
                    Err(e) => {
                        problems.push(format!("{e:#}"));
                        continue;
                    }
                };
                plan.changes.push(Change {
                    name: group.name.clone(),
                    action,
                    from: target.installed.get(&group.name).cloned(),
                    to: Some(version.to_string()),
                    wheel: Some(self.index.name(chosen).file.clone()),
                    sha256: Some(sha256),
                });
            }
            resolved.insert(
                &group.name,
                Resolved {
                    version,
                    wheel: Some(chosen),
                },
            );
        }

        let mut removed = HashSet::new();
        if exact {
            for (name, version) in target.installed {
                if !by_name.contains_key(name.as_str()) && !KEEP.contains(&name.as_str()) {
                    removed.insert(name.as_str());
                    plan.changes.push(Change {
                        name: name.clone(),
                        action: Action::Remove,
                        from: Some(version.clone()),
                        to: None,
                        wheel: None,
                        sha256: None,
                    });
                }
            }
        }

        if problems.is_empty() {
            self.check_dependencies(target, &groups, &resolved, &removed, &mut problems);
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        plan.changes.sort_by(|a, b| a.name.cmp(&b.name));
        plan.ahead.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(plan)
    }

    /// The wheel to install for a group, or a message saying why there is none.
    fn choose(&self, target: &Target, group: &Group) -> Result<usize, String> {
        let wheels = self.index.wheels_of(&group.name);
        let allow_pre = group.allows_prerelease();
        let mut skipped: Vec<(usize, String)> = Vec::new();
        // For the chosen version: (tag priority, build tag, wheel) to sort by.
        type Fit<'n> = (usize, Reverse<(u64, &'n str)>, usize);
        let mut chosen: Option<(Version, Vec<Fit>)> = None;
        for &w in wheels {
            let name = self.index.name(w);
            if let Some((version, _)) = &chosen {
                if name.version != *version {
                    break; // wheels come highest version first
                }
            }
            if !group.satisfied_by(&name.version) {
                skipped.push((w, format!("{} does not satisfy", name.version)));
                continue;
            }
            if name.version.any_prerelease() && !allow_pre {
                skipped.push((w, "a pre-release, not asked for".to_string()));
                continue;
            }
            let Some(priority) = target.tags.priority(name) else {
                skipped.push((w, "not for this interpreter".to_string()));
                continue;
            };
            match self.python_ok(target, w) {
                Ok(true) => {}
                Ok(false) => {
                    skipped.push((w, "Requires-Python excludes this interpreter".to_string()));
                    continue;
                }
                Err(e) => {
                    skipped.push((w, e));
                    continue;
                }
            }
            chosen
                .get_or_insert_with(|| (name.version.clone(), Vec::new()))
                .1
                .push((priority, Reverse(name.build_key()), w));
        }
        let Some((version, mut fits)) = chosen else {
            return Err(self.no_wheel_message(target, group, &skipped));
        };
        fits.sort();
        let hashed: Vec<&Requirement> = group
            .lines
            .iter()
            .chain(&group.constraints)
            .filter(|r| !r.hashes.is_empty())
            .copied()
            .collect();
        if hashed.is_empty() {
            return Ok(fits[0].2);
        }
        let mut seen = Vec::new();
        for &(_, _, w) in &fits {
            let sha = self.index.sha256(w).map_err(|e| format!("{e:#}"))?;
            if hashed.iter().all(|r| r.hashes.iter().any(|h| h == sha)) {
                return Ok(w);
            }
            seen.push(format!("{} (sha256 {sha})", self.index.name(w).file));
        }
        Err(format!(
            "no wheel of {} {version} matches the hashes of {}: the repository has {}",
            group.name,
            hashed
                .iter()
                .map(|r| r.origin.to_string())
                .collect::<Vec<_>>()
                .join(" and "),
            seen.join(", ")
        ))
    }

    fn no_wheel_message(
        &self,
        target: &Target,
        group: &Group,
        skipped: &[(usize, String)],
    ) -> String {
        let wanted = group.described();
        if skipped.is_empty() {
            return format!(
                "{} is required by {wanted}, but the repository has no wheel of {}",
                group.name, group.name
            );
        }
        let several = group.lines.len() + group.constraints.len() > 1;
        if several
            && !skipped
                .iter()
                .any(|&(w, _)| group.satisfied_by(&self.index.name(w).version))
        {
            let versions: BTreeSet<&Version> = skipped
                .iter()
                .map(|&(w, _)| &self.index.name(w).version)
                .collect();
            return format!(
                "{} is required more than once, as {wanted}, and no version in the repository satisfies all of them (it has {})",
                group.name,
                versions.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(", ")
            );
        }
        const SHOWN: usize = 8;
        let mut listed: Vec<String> = skipped
            .iter()
            .take(SHOWN)
            .map(|(w, why)| format!("{} ({why})", self.index.name(*w).file))
            .collect();
        if skipped.len() > SHOWN {
            listed.push(format!("and {} more", skipped.len() - SHOWN));
        }
        format!(
            "no wheel of {} fits {wanted} on this interpreter ({}): the repository has {}",
            group.name,
            target.tags.describe(),
            listed.join(", ")
        )
    }

    /// Whether the wheel's Requires-Python admits the target's interpreter.
    fn python_ok(&self, target: &Target, wheel: usize) -> Result<bool, String> {
        let parsed = self.parsed(wheel)?;
        Ok(parsed
            .requires_python
            .as_ref()
            .is_none_or(|s| s.contains(target.env.python_full_version())))
    }

    /// A compatible repository wheel of exactly this version, if any (for
    /// an installed package that is kept, to read its dependencies).
    fn wheel_for_version(&self, target: &Target, name: &str, version: &Version) -> Option<usize> {
        self.index
            .wheels_of(name)
            .iter()
            .copied()
            .filter(|&w| self.index.name(w).version == *version)
            .filter_map(|w| Some((target.tags.priority(self.index.name(w))?, w)))
            .min()
            .map(|(_, w)| w)
    }

    /// What the wheel's METADATA says it needs, parsed once per run.
    fn parsed(&self, wheel: usize) -> Result<&Parsed, String> {
        self.parsed[wheel]
            .get_or_init(|| {
                let file = &self.index.name(wheel).file;
                let metadata = self.index.metadata(wheel).map_err(|e| format!("{e:#}"))?;
                let requires_python =
                    match &metadata.requires_python {
                        None => None,
                        Some(text) => Some(VersionSpecifiers::from_str(text).map_err(|e| {
                            format!("{file}: METADATA Requires-Python {text:?}: {e}")
                        })?),
                    };
                let requires_dist = metadata
                    .requires_dist
                    .iter()
                    .map(|line| {
                        Requirement::parse(line, Origin::Wheel { file: file.clone() })
                            .map_err(|e| format!("{e:#}"))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(Parsed {
                    requires_python,
                    requires_dist,
                })
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    /// Every `Requires-Dist` of every required wheel (with the extras asked
    /// of it, and of its dependencies' extras in turn) must be met by what
    /// the venv holds after the plan.
    fn check_dependencies(
        &self,
        target: &Target,
        groups: &[Group],
        resolved: &HashMap<&str, Resolved>,
        removed: &HashSet<&str>,
        problems: &mut Vec<String>,
    ) {
        // After the plan: the installed versions, overlaid with the chosen.
        let version_after = |name: &str| -> Option<Version> {
            if let Some(r) = resolved.get(name) {
                return Some(r.version.clone());
            }
            if removed.contains(name) {
                return None;
            }
            target
                .installed
                .get(name)
                .and_then(|v| Version::from_str(v).ok())
        };
        let mut queue: Vec<(usize, Vec<ExtraName>)> = groups
            .iter()
            .filter_map(|g| {
                let wheel = resolved.get(g.name.as_str())?.wheel?;
                Some((wheel, g.extras.iter().cloned().collect()))
            })
            .collect();
        let mut seen: HashSet<(usize, Vec<ExtraName>)> = queue.iter().cloned().collect();
        while let Some((wheel, extras)) = queue.pop() {
            let file = &self.index.name(wheel).file;
            let parsed = match self.parsed(wheel) {
                Ok(p) => p,
                Err(e) => {
                    problems.push(e);
                    continue;
                }
            };
            for dep in &parsed.requires_dist {
                if !dep.applies(target.env, &extras) {
                    continue;
                }
                let dep_name = &dep.name;
                let Some(version) = version_after(dep_name) else {
                    let why = if removed.contains(dep_name.as_str()) {
                        "which --exact removes (it is not in the requirements)"
                    } else {
                        "which is neither installed nor in the requirements"
                    };
                    problems.push(format!("{file} requires `{}`, {why}", dep.text));
                    continue;
                };
                if !dep.specifiers.iter().all(|s| s.contains(&version)) {
                    let state = if resolved.contains_key(dep_name.as_str()) {
                        "the plan leaves"
                    } else {
                        "the venv has"
                    };
                    problems.push(format!(
                        "{file} requires `{}`, but {state} {dep_name} {version}",
                        dep.text
                    ));
                    continue;
                }
                if dep.extras.is_empty() {
                    continue;
                }
                let dep_wheel = match resolved.get(dep_name.as_str()) {
                    Some(r) => r.wheel,
                    None => self.wheel_for_version(target, dep_name, &version),
                };
                if let Some(dep_wheel) = dep_wheel {
                    let key = (dep_wheel, dep.extras.clone());
                    if seen.insert(key.clone()) {
                        queue.push(key);
                    }
                }
            }
        }
        problems.sort();
        problems.dedup();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tags::Interpreter;
    use crate::wheel::{Metadata, WheelName};
    use serde_json::{json, Value};
    use sha2::{Digest, Sha256};

    /// A wheel in the in-memory repository: its file name and METADATA.
    struct W(&'static str, &'static [&'static str], Option<&'static str>);

    fn sha_of(file: &str) -> String {
        format!("{:x}", Sha256::digest(file.as_bytes()))
    }

    fn index(wheels: &[W]) -> Index {
        Index::in_memory(
            wheels
                .iter()
                .map(|W(file, requires, python)| {
                    let name = WheelName::parse(file).unwrap();
                    let metadata = Metadata {
                        name: name.distribution.clone(),
                        version: name.version.clone(),
                        requires_dist: requires.iter().map(|r| r.to_string()).collect(),
                        requires_python: python.map(str::to_string),
                    };
                    (name, metadata, sha_of(file))
                })
                .collect(),
        )
    }

    /// CPython `version` on x86_64 glibc 2.31 Linux.
    fn markers(version: &str) -> Value {
        let short: String = version.split('.').take(2).collect::<Vec<_>>().join(".");
        json!({
            "implementation_name": "cpython", "implementation_version": version,
            "os_name": "posix", "platform_machine": "x86_64",
            "platform_python_implementation": "CPython", "platform_release": "6.1",
            "platform_system": "Linux", "platform_version": "#1", "python_full_version": version,
            "python_version": short, "sys_platform": "linux",
        })
    }

    fn tags(version: &str) -> Tags {
        let python = json!({"implementation": "cpython", "version": version,
            "platform": "linux-x86_64", "soabi": "", "ext_suffix": "", "pointer_bits": 64,
            "libc": "glibc", "libc_version": "2.31"});
        let python: crate::record::Facts = serde_json::from_value(python).unwrap();
        let system = markers(version)["platform_system"].clone();
        Tags::new(&Interpreter::from_facts(&python, system.as_str().unwrap()).unwrap())
    }

    fn requirements(lines: &[&str], constraints: &[&str]) -> Requirements {
        let parse = |items: &[&str]| {
            let items: Vec<String> = items.iter().map(|s| s.to_string()).collect();
            Requirements::from_list(&items, "packages")
                .unwrap()
                .requirements
        };
        Requirements {
            requirements: parse(lines),
            constraints: parse(constraints),
        }
    }

    /// Plan on CPython 3.11 with `installed` ({name: version}).
    fn plan(
        wheels: &[W],
        reqs: &Requirements,
        installed: &[(&str, &str)],
        exact: bool,
    ) -> Result<Plan, Vec<String>> {
        plan_on("3.11.4", wheels, reqs, installed, exact)
    }

    fn plan_on(
        python: &str,
        wheels: &[W],
        reqs: &Requirements,
        installed: &[(&str, &str)],
        exact: bool,
    ) -> Result<Plan, Vec<String>> {
        let index = index(wheels);
        let env: MarkerEnvironment = serde_json::from_value(markers(python)).unwrap();
        let tags = tags(python);
        let installed = installed
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        let target = Target {
            env: &env,
            tags: &tags,
            installed: &installed,
        };
        Planner::new(&index).plan_target(&target, &[reqs], exact)
    }

    /// `action name from->to wheel` per change, for short assertions.
    fn changes(plan: &Plan) -> Vec<String> {
        plan.changes
            .iter()
            .map(|c| {
                let v = |v: &Option<String>| v.clone().unwrap_or("-".into());
                let wheel = c.wheel.clone().unwrap_or("-".into());
                format!(
                    "{} {} {}->{} {wheel}",
                    c.action.as_str(),
                    c.name,
                    v(&c.from),
                    v(&c.to)
                )
            })
            .collect()
    }

    const SIX: &[W] = &[
        W("six-1.15.0-py2.py3-none-any.whl", &[], None),
        W("six-1.16.0-py2.py3-none-any.whl", &[], None),
        W("six-1.17.0rc1-py2.py3-none-any.whl", &[], None),
    ];

    #[test]
    fn every_action() {
        let wheels = &[
            W("six-1.16.0-py2.py3-none-any.whl", &[], None),
            W("attrs-23.1.0-py3-none-any.whl", &[], None),
            W("idna-3.4-py3-none-any.whl", &[], None),
            W("idna-3.6-py3-none-any.whl", &[], None),
        ];
        let reqs = requirements(&["six", "attrs", "idna<3.5", "pip"], &[]);
        let installed = [
            ("attrs", "22.2.0"),
            ("idna", "3.6"),
            ("old", "0.1"),
            ("pip", "23.0"),
            ("setuptools", "68.0"),
        ];
        // pip is required and installed, but the repository has none: kept.
        let plan = plan(wheels, &reqs, &installed, true).unwrap();
        assert_eq!(
            changes(&plan),
            [
                "upgrade attrs 22.2.0->23.1.0 attrs-23.1.0-py3-none-any.whl",
                "downgrade idna 3.6->3.4 idna-3.4-py3-none-any.whl",
                "remove old 0.1->- -",
                "install six -->1.16.0 six-1.16.0-py2.py3-none-any.whl",
            ]
        );
        assert_eq!(
            plan.changes[0].sha256.as_deref(),
            Some(sha_of("attrs-23.1.0-py3-none-any.whl").as_str())
        );
        // Without --exact nothing is removed; what is current is no change.
        let plan2 = super::tests::plan(wheels, &reqs, &installed, false).unwrap();
        assert_eq!(plan2.changes.len(), 3);
        let six = requirements(&["six"], &[]);
        let same = super::tests::plan(wheels, &six, &[("six", "1.16.0")], false).unwrap();
        assert_eq!(same, Plan::default());
    }

    #[test]
    fn an_installed_version_newer_than_the_repository_is_kept_as_ahead() {
        let reqs = requirements(&["six>=1.15"], &[]);
        let plan = plan(SIX, &reqs, &[("six", "1.18.0")], false).unwrap();
        assert!(plan.changes.is_empty());
        assert_eq!(
            plan.ahead,
            [Ahead {
                name: "six".into(),
                installed: "1.18.0".into(),
                repository: Some("1.16.0".into()),
            }]
        );
        // Not in the repository at all, but installed and acceptable.
        let plan = super::tests::plan(&[], &reqs, &[("six", "1.18.0")], false).unwrap();
        assert_eq!(plan.ahead[0].repository, None);
        // Newer but excluded by the specifier: a downgrade.
        let reqs = requirements(&["six<1.17"], &[]);
        let plan = super::tests::plan(SIX, &reqs, &[("six", "1.18.0")], false).unwrap();
        assert_eq!(
            changes(&plan)[0],
            "downgrade six 1.18.0->1.16.0 six-1.16.0-py2.py3-none-any.whl"
        );
    }

    #[test]
    fn pre_releases_only_when_a_specifier_names_one() {
        let plain = plan(SIX, &requirements(&["six"], &[]), &[], false).unwrap();
        assert_eq!(plain.changes[0].to.as_deref(), Some("1.16.0"));
        let pre = plan(SIX, &requirements(&["six>=1.17.0rc1"], &[]), &[], false).unwrap();
        assert_eq!(pre.changes[0].to.as_deref(), Some("1.17.0rc1"));
    }

    #[test]
    fn markers_and_constraints_narrow_what_is_required() {
        let reqs = requirements(
            &[
                "six",
                "idna; python_version < '3.8'",
                "attrs; sys_platform == 'linux'",
            ],
            &["six<1.16", "attrs<1; python_version < '3'"],
        );
        let wheels = &[
            W("six-1.15.0-py2.py3-none-any.whl", &[], None),
            W("six-1.16.0-py2.py3-none-any.whl", &[], None),
            W("attrs-23.1.0-py3-none-any.whl", &[], None),
        ];
        let plan = plan(wheels, &reqs, &[], false).unwrap();
        assert_eq!(
            changes(&plan),
            [
                "install attrs -->23.1.0 attrs-23.1.0-py3-none-any.whl",
                "install six -->1.15.0 six-1.15.0-py2.py3-none-any.whl",
            ]
        );
    }

    #[test]
    fn the_most_specific_tag_then_the_highest_build_tag() {
        let wheels = &[
            W("m-1.0-py3-none-any.whl", &[], None),
            W("m-1.0-cp311-cp311-manylinux_2_17_x86_64.whl", &[], None),
            W("m-1.0-1-cp311-cp311-manylinux_2_17_x86_64.whl", &[], None),
            W("m-1.0-2-cp311-cp311-manylinux_2_17_x86_64.whl", &[], None),
            W("m-1.0-cp311-cp311-win_amd64.whl", &[], None),
            W("m-2.0-cp312-cp312-manylinux_2_17_x86_64.whl", &[], None),
        ];
        let plan = plan(wheels, &requirements(&["m"], &[]), &[], false).unwrap();
        assert_eq!(
            plan.changes[0].wheel.as_deref(),
            Some("m-1.0-2-cp311-cp311-manylinux_2_17_x86_64.whl")
        );
    }

    #[test]
    fn requires_python_and_tags_rule_out_wheels_and_say_so() {
        let wheels = &[
            W("m-1.0-py3-none-any.whl", &[], None),
            W("m-2.0-py3-none-any.whl", &[], Some(">=3.12")),
            W("m-3.0-cp312-cp312-manylinux_2_17_x86_64.whl", &[], None),
        ];
        let plan = plan(wheels, &requirements(&["m"], &[]), &[], false).unwrap();
        assert_eq!(plan.changes[0].to.as_deref(), Some("1.0"));

        let problems =
            super::tests::plan(wheels, &requirements(&["m>=2"], &[]), &[], false).unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
        let problem = &problems[0];
        assert!(
            problem.starts_with("no wheel of m fits `m>=2` (field `packages`)"),
            "{problem}"
        );
        assert!(
            problem.contains("m-2.0-py3-none-any.whl (Requires-Python excludes"),
            "{problem}"
        );
        assert!(
            problem.contains("cp312-cp312-manylinux_2_17_x86_64.whl (not for this"),
            "{problem}"
        );
    }

    #[test]
    fn dependencies_and_extras_must_be_met_after_the_plan() {
        let wheels = &[
            W(
                "app-1.0-py3-none-any.whl",
                &[
                    "lib>=2",
                    "fast; extra == 'speed'",
                    "win; sys_platform == 'win32'",
                ],
                None,
            ),
            W("lib-2.0-py3-none-any.whl", &[], None),
            W("fast-1.0-py3-none-any.whl", &[], None),
        ];
        // lib is neither installed nor required.
        let problems = plan(wheels, &requirements(&["app"], &[]), &[], false).unwrap_err();
        assert_eq!(
            problems,
            ["app-1.0-py3-none-any.whl requires `lib>=2`, which is neither installed nor in the requirements"]
        );
        // Installed too old, or required: both are judged after the plan.
        let problems = plan(
            wheels,
            &requirements(&["app"], &[]),
            &[("lib", "1.0")],
            false,
        )
        .unwrap_err();
        assert!(
            problems[0].ends_with("but the venv has lib 1.0"),
            "{problems:?}"
        );
        let ok = plan(
            wheels,
            &requirements(&["app", "lib"], &[]),
            &[("lib", "1.0")],
            false,
        );
        assert_eq!(changes(&ok.unwrap()).len(), 2);
        // An extra asked for brings its own requirement.
        let problems = plan(
            wheels,
            &requirements(&["app[speed]", "lib"], &[]),
            &[],
            false,
        )
        .unwrap_err();
        assert!(
            problems[0].contains("requires `fast; extra == 'speed'`"),
            "{problems:?}"
        );
        let reqs = requirements(&["app[speed]", "lib", "fast"], &[]);
        assert_eq!(changes(&plan(wheels, &reqs, &[], false).unwrap()).len(), 3);
        // --exact removing a dependency is named as such.
        let problems = plan(
            wheels,
            &requirements(&["app"], &[]),
            &[("lib", "2.0")],
            true,
        )
        .unwrap_err();
        assert!(
            problems[0].contains("which --exact removes"),
            "{problems:?}"
        );
    }

    #[test]
    fn hashes_choose_among_a_versions_wheels() {
        let wheels = &[
            W("m-1.0-py3-none-any.whl", &[], None),
            W("m-1.0-cp311-cp311-manylinux_2_17_x86_64.whl", &[], None),
        ];
        let mut reqs = requirements(&["m==1.0"], &[]);
        reqs.requirements[0].hashes = vec![sha_of("m-1.0-py3-none-any.whl")];
        let plan = plan(wheels, &reqs, &[], false).unwrap();
        assert_eq!(
            plan.changes[0].wheel.as_deref(),
            Some("m-1.0-py3-none-any.whl")
        );
        reqs.requirements[0].hashes = vec!["0".repeat(64)];
        let problems = super::tests::plan(wheels, &reqs, &[], false).unwrap_err();
        assert!(
            problems[0].starts_with("no wheel of m 1.0 matches the hashes"),
            "{problems:?}"
        );
    }

    #[test]
    fn conflicting_lines_are_named_together() {
        let reqs = requirements(&["six<1.16", "six>1.16"], &[]);
        let problems = plan(SIX, &reqs, &[], false).unwrap_err();
        assert!(
            problems[0].starts_with(
                "six is required more than once, as `six<1.16` (field `packages`) and `six>1.16`"
            ),
            "{problems:?}"
        );
        let problems = plan(&[], &requirements(&["six"], &[]), &[], false).unwrap_err();
        assert_eq!(
            problems,
            ["six is required by `six` (field `packages`), but the repository has no wheel of six"]
        );
    }

    #[test]
    fn a_venv_to_be_created_gets_everything_installed() {
        let plan = plan_on("3.8.18", SIX, &requirements(&["six"], &[]), &[], false).unwrap();
        assert_eq!(
            changes(&plan),
            ["install six -->1.16.0 six-1.16.0-py2.py3-none-any.whl"]
        );
    }
}
