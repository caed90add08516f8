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
