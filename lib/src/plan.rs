//! The plan: for one target, exactly which wheel files to install and which
//! packages to remove so its virtualenv holds the requirements' closure.
//!
//! vd plans offline against its own repository, and vd-push installs exactly
//! the planned files with pip's dependency resolution turned off, so the plan
//! must be whole: the [`resolve`](crate::resolve) module works out every
//! project and version the requirements need, for this target's interpreter.
//! Here each chosen version becomes a change: among its wheels the one with
//! the most specific tag (then the highest build tag, as pip prefers); with
//! `--hash` lines, only a wheel whose sha256 is listed. `--exact` removes
//! what is installed outside the closure.
//!
//! Planning keeps nothing of one target for the next, so a run over many
//! targets streams; what is shared is the repository [`Index`] (which reads
//! each wheel at most once) and the parsed dependencies here.

use crate::repo::Index;
use crate::requirement::{Origin, Requirement, Requirements};
use crate::resolve::{resolve, Candidates, Dist, Request};
use crate::wheel::WheelName;
use pep508_rs::pep440_rs::{Version, VersionSpecifiers};
use serde::{Deserialize, Serialize};
use std::cell::OnceCell;
use std::str::FromStr;

pub use crate::resolve::Target;

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
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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

/// Packages `--exact` never removes: the venv's own tools.
pub const KEEP: &[&str] = &["pip", "setuptools", "wheel"];

/// How to choose.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Remove what is installed but outside the resolved closure.
    pub exact: bool,
    /// Choose the highest version for dependencies too, not the installed one.
    pub upgrade_deps: bool,
}

/// Plans targets against one repository, remembering what it parsed from
/// wheels (`Requires-Python`, `Requires-Dist`) for the whole run.
pub struct Planner<'a> {
    index: &'a Index,
    parsed: Vec<OnceCell<Result<Dist, String>>>,
}

impl Candidates for Planner<'_> {
    fn wheels_of(&self, name: &str) -> &[usize] {
        self.index.wheels_of(name)
    }

    fn wheel_name(&self, wheel: usize) -> &WheelName {
        self.index.name(wheel)
    }

    /// What the wheel's METADATA says it needs, parsed once per run.
    fn dist(&self, wheel: usize) -> Result<&Dist, String> {
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
                Ok(Dist {
                    requires_python,
                    requires_dist,
                })
            })
            .as_ref()
            .map_err(Clone::clone)
    }
}

impl<'a> Planner<'a> {
    pub fn new(index: &'a Index) -> Planner<'a> {
        Planner {
            index,
            parsed: (0..index.len()).map(|_| OnceCell::new()).collect(),
        }
    }

    /// Plan one target. The requirements are every `sources` entry's
    /// requirements and constraints together, resolved to their closure
    /// from the repository. On failure, every problem found, one per
    /// element.
    pub fn plan_target(
        &self,
        target: &Target,
        sources: &[&Requirements],
        options: Options,
    ) -> Result<Plan, Vec<String>> {
        let request = Request {
            requirements: sources.iter().flat_map(|s| &s.requirements).collect(),
            constraints: sources.iter().flat_map(|s| &s.constraints).collect(),
            upgrade_deps: options.upgrade_deps,
        };
        let resolution = resolve(self, target, &request).map_err(|e| vec![e])?;
        let mut plan = Plan::default();
        let mut problems = Vec::new();
        for (name, chosen) in &resolution.packages {
            let from = target.installed.get(name);
            let installed = from.and_then(|v| Version::from_str(v).ok());
            if chosen.wheels.is_empty() {
                // The installed version, kept; the repository has no wheel
                // of it. A warning when the repository has nothing as new.
                let best = self.best_version(target, name, &request);
                if best.as_ref().is_none_or(|b| *b < chosen.version) {
                    plan.ahead.push(Ahead {
                        name: name.clone(),
                        installed: chosen.version.to_string(),
                        repository: best.map(|v| v.to_string()),
                    });
                }
                continue;
            }
            let action = match &installed {
                None => Action::Install,
                Some(v) if *v == chosen.version => continue,
                Some(v) if *v > chosen.version => Action::Downgrade,
                Some(_) => Action::Upgrade,
            };
            match self.pick_wheel(name, &chosen.version, &chosen.wheels, &request) {
                Ok((wheel, sha256)) => plan.changes.push(Change {
                    name: name.clone(),
                    action,
                    from: from.cloned(),
                    to: Some(chosen.version.to_string()),
                    wheel: Some(self.index.name(wheel).file.clone()),
                    sha256: Some(sha256),
                }),
                Err(problem) => problems.push(problem),
            }
        }
        if options.exact {
            for (name, version) in target.installed {
                if !resolution.packages.contains_key(name) && !KEEP.contains(&name.as_str()) {
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
        if !problems.is_empty() {
            return Err(problems);
        }
        plan.changes.sort_by(|a, b| a.name.cmp(&b.name));
        plan.ahead.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(plan)
    }

    /// The highest version the repository has for this target that the
    /// requirements naming `name` allow, if any.
    fn best_version(&self, target: &Target, name: &str, request: &Request) -> Option<Version> {
        let allowed = |v: &Version| {
            request
                .requirements
                .iter()
                .chain(&request.constraints)
                .filter(|r| r.name == name && r.applies(target.env, &[]))
                .all(|r| r.specifiers.contains(v))
        };
        self.index
            .wheels_of(name)
            .iter()
            .map(|&w| self.index.name(w))
            .filter(|w| target.tags.priority(w).is_some() && allowed(&w.version))
            .map(|w| w.version.clone())
            .max()
    }

    /// Of a chosen version's wheels (best fit first), the first whose
    /// sha256 every `--hash` line naming the project lists; with its sha256.
    fn pick_wheel(
        &self,
        name: &str,
        version: &Version,
        wheels: &[usize],
        request: &Request,
    ) -> Result<(usize, String), String> {
        let hashed: Vec<&Requirement> = request
            .requirements
            .iter()
            .chain(&request.constraints)
            .filter(|r| r.name == name && !r.hashes.is_empty())
            .copied()
            .collect();
        let mut seen = Vec::new();
        for &w in wheels {
            let sha = self.index.sha256(w).map_err(|e| format!("{e:#}"))?;
            if hashed.iter().all(|r| r.hashes.iter().any(|h| h == sha)) {
                return Ok((w, sha.to_string()));
            }
            seen.push(format!("{} (sha256 {sha})", self.index.name(w).file));
        }
        Err(format!(
            "no wheel of {name} {version} matches the hashes of {}: the repository has {}",
            hashed
                .iter()
                .map(|r| r.origin.to_string())
                .collect::<Vec<_>>()
                .join(" and "),
            seen.join(", ")
        ))
    }
}
