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

use crate::record::{Action, AheadPackage, Change, UnchangedPackage};
use crate::repo::Index;
use crate::requirement::{Origin, Requirement, Requirements};
use crate::resolve::{resolve, Candidates, Dist, Memo, Request, Resolution};
use crate::tags::Tags;
use crate::wheel::{self, WheelName};
use pep508_rs::pep440_rs::Version;
use std::cell::OnceCell;
use std::str::FromStr;

pub use crate::resolve::Venv;
pub use memo::{clear_plan, set_plan, Kinds, Planned, Plans};

mod memo;

/// The plan for one target: changes and `ahead` packages, each sorted by
/// name; with [`Policy::unchanged`], the closure's other packages too.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub changes: Vec<Change>,
    pub ahead: Vec<AheadPackage>,
    pub unchanged: Vec<UnchangedPackage>,
}

/// Packages `--exact` never removes: the venv's own tools.
pub const KEEP: &[&str] = &["pip", "setuptools", "wheel"];

/// How a plan chooses: what it removes, how far it upgrades, what it names.
#[derive(Debug, Clone, Copy, Default)]
pub struct Policy {
    /// Remove what is installed but outside the resolved closure.
    pub exact: bool,
    /// Choose the highest version for dependencies too, not the installed one.
    pub upgrade_deps: bool,
    /// Also name the wheel of each package the plan leaves as it is (for a
    /// target with generations, whose every push builds a whole venv).
    pub unchanged: bool,
}

/// Plans targets against one repository, remembering what it parsed from
/// wheels (`Requires-Python`, `Requires-Dist`) for the whole run.
pub struct Planner<'a> {
    index: &'a Index,
    parsed: Vec<OnceCell<Result<Dist, String>>>,
    memo: Memo,
}

impl<'a> Planner<'a> {
    /// The repository the plans come from.
    pub fn index(&self) -> &'a Index {
        self.index
    }
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
                let requires_python = match &metadata.requires_python {
                    None => None,
                    Some(text) => Some(
                        wheel::requires_python(text)
                            .map_err(|e| format!("{file}: METADATA {e:#}"))?,
                    ),
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

    fn memo(&self) -> Option<&Memo> {
        Some(&self.memo)
    }
}

impl<'a> Planner<'a> {
    pub fn new(index: &'a Index) -> Planner<'a> {
        Planner {
            index,
            parsed: (0..index.len()).map(|_| OnceCell::new()).collect(),
            memo: Memo::default(),
        }
    }

    /// Plan one target. The requirements are every `sources` entry's
    /// requirements and constraints together, resolved to their closure
    /// from the repository. On failure, every problem found, one per
    /// element.
    pub fn plan_target(
        &self,
        target: &Venv,
        sources: &[&Requirements],
        policy: Policy,
    ) -> Result<Plan, Vec<String>> {
        let request = Request {
            requirements: sources.iter().flat_map(|s| &s.requirements).collect(),
            constraints: sources.iter().flat_map(|s| &s.constraints).collect(),
            upgrade_deps: policy.upgrade_deps,
        };
        let resolution = resolve(self, target, &request).map_err(|e| vec![e])?;
        let mut plan = Plan::default();
        let mut problems = Vec::new();
        // Kept versions the repository has no wheel of: their dependencies
        // are unknown, so the closure may lack some of them.
        let mut unread = Vec::new();
        for (name, chosen) in &resolution.packages {
            let from = target.installed.get(name);
            let installed = from.and_then(|v| Version::from_str(v).ok());
            if chosen.wheels.is_empty() {
                // The installed version, kept; the repository has no wheel
                // of it. A warning when the repository has nothing as new.
                let best = self.best_version(target, name, &request);
                if best.as_ref().is_none_or(|b| *b < chosen.version) {
                    plan.ahead.push(AheadPackage {
                        name: name.clone(),
                        installed: chosen.version.to_string(),
                        repository: best.map(|v| v.to_string()),
                    });
                }
                // The venv's own tools depend on nothing it could lose.
                if !KEEP.contains(&name.as_str()) {
                    unread.push(format!("{name} {}", chosen.version));
                }
                continue;
            }
            let action = match &installed {
                None => Action::Install,
                Some(v) if *v == chosen.version => {
                    if policy.unchanged {
                        match self.pick_wheel(name, &chosen.version, &chosen.wheels, &request) {
                            Ok((wheel, sha256)) => plan.unchanged.push(UnchangedPackage {
                                name: name.clone(),
                                version: from.cloned().unwrap_or_default(),
                                wheel: self.index.name(wheel).file.clone(),
                                sha256,
                            }),
                            Err(problem) => problems.push(problem),
                        }
                    }
                    continue;
                }
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
        if policy.exact {
            let removals = removals(target, &resolution);
            // What a kept package without a wheel needs may be among the
            // removals: removing it could break the venv, so say so rather
            // than guess.
            if !removals.is_empty() && !unread.is_empty() {
                problems.push(unknown_needs(&unread, &removals));
            }
            plan.changes.extend(removals);
        }
        if policy.unchanged && !policy.exact {
            plan.unchanged
                .extend(self.kept_outside(target, &resolution));
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        plan.changes.sort_by(|a, b| a.name.cmp(&b.name));
        plan.ahead.sort_by(|a, b| a.name.cmp(&b.name));
        plan.unchanged.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(plan)
    }

    /// The packages installed outside the closure, which a plan without
    /// `--exact` keeps: a new generation needs their wheels too, where the
    /// repository has that very version.
    fn kept_outside(&self, target: &Venv, resolution: &Resolution) -> Vec<UnchangedPackage> {
        target
            .installed
            .iter()
            .filter(|(name, _)| {
                !resolution.packages.contains_key(*name) && !KEEP.contains(&name.as_str())
            })
            .filter_map(|(name, version)| self.installed_wheel(target, name, version))
            .collect()
    }

    /// The highest version the repository has for this target that the
    /// requirements naming `name` allow, if any; a pre-release only when a
    /// specifier names one or nothing else is allowed.
    fn best_version(&self, target: &Venv, name: &str, request: &Request) -> Option<Version> {
        let lines: Vec<&Requirement> = request
            .requirements
            .iter()
            .chain(&request.constraints)
            .filter(|r| r.name == name && r.applies(target.env, &[]))
            .copied()
            .collect();
        let allowed: Vec<&Version> = self
            .index
            .wheels_of(name)
            .iter()
            .map(|&w| self.index.name(w))
            .filter(|w| target.tags.priority(w).is_some())
            .map(|w| &w.version)
            .filter(|v| lines.iter().all(|r| r.specifiers.contains(v)))
            .collect();
        let pre_named = lines.iter().any(|r| r.names_prerelease());
        allowed
            .iter()
            .filter(|v| pre_named || !v.any_prerelease())
            .max()
            .or_else(|| allowed.iter().max())
            .map(|v| (*v).clone())
    }

    /// The repository's best wheel for this target of exactly the installed
    /// `version` of `name`, if it has one.
    fn installed_wheel(
        &self,
        target: &Venv,
        name: &str,
        version: &str,
    ) -> Option<UnchangedPackage> {
        let wanted = Version::from_str(version).ok()?;
        let wheel = wheel_of_version(self.index, target.tags, name, &wanted)?;
        let sha256 = self.index.sha256(wheel).ok()?.to_string();
        Some(UnchangedPackage {
            name: name.to_string(),
            version: version.to_string(),
            wheel: self.index.name(wheel).file.clone(),
            sha256,
        })
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

/// The repository's best wheel of exactly `version` of `name` for an
/// interpreter of these tags (the most specific tag, then the filename
/// order), if it has one: the wheel an installed version came from.
pub(crate) fn wheel_of_version(
    index: &Index,
    tags: &Tags,
    name: &str,
    version: &Version,
) -> Option<usize> {
    index
        .wheels_of(name)
        .iter()
        .map(|&w| (index.name(w), w))
        .filter(|(n, _)| n.version == *version)
        .filter_map(|(n, w)| Some((tags.priority(n)?, w)))
        .min()
        .map(|(_, w)| w)
}

/// `--exact`'s removals: what is installed outside the closure, but the
/// venv's own tools.
fn removals(target: &Venv, resolution: &Resolution) -> Vec<Change> {
    target
        .installed
        .iter()
        .filter(|(name, _)| {
            !resolution.packages.contains_key(*name) && !KEEP.contains(&name.as_str())
        })
        .map(|(name, version)| Change {
            name: name.clone(),
            action: Action::Remove,
            from: Some(version.clone()),
            to: None,
            wheel: None,
            sha256: None,
        })
        .collect()
}

/// Why `--exact` refuses to remove anything while the dependencies of the
/// `unread` packages (kept, without a wheel in the repository) are unknown.
fn unknown_needs(unread: &[String], removals: &[Change]) -> String {
    let one = unread.len() == 1;
    format!(
        "--exact cannot tell what {} need{} (the repository has no wheel of {}, so \
         {} dependencies are unknown) and would remove {}: vd-add {} wheel{}, or \
         leave out --exact",
        unread.join(", "),
        if one { "s" } else { "" },
        if one { "it" } else { "them" },
        if one { "its" } else { "their" },
        removals
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        if one { "its" } else { "their" },
        if one { "" } else { "s" },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tags::{Interpreter, Tags};
    use crate::testing::assert_contains;
    use crate::wheel::Metadata;
    use pep508_rs::MarkerEnvironment;
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
        // Python 2 has no sys.implementation: packaging says "" and "0".
        let (name, implementation) = match version.starts_with("2.") {
            true => ("", "0"),
            false => ("cpython", version),
        };
        json!({
            "implementation_name": name, "implementation_version": implementation,
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
            warnings: Vec::new(),
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
        let target = Venv {
            env: &env,
            tags: &tags,
            installed: &installed,
        };
        let policy = Policy {
            exact,
            upgrade_deps: false,
            unchanged: false,
        };
        Planner::new(&index).plan_target(&target, &[reqs], policy)
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
            [AheadPackage {
                name: "six".into(),
                installed: "1.18.0".into(),
                repository: Some("1.16.0".into()),
            }]
        );
        // Not in the repository at all, but installed and acceptable.
        let plan = super::tests::plan(&[], &reqs, &[("six", "1.18.0")], false).unwrap();
        assert_eq!(plan.ahead[0].repository, None);
        // With --exact, nothing is removed on a guess: what the kept six
        // needs is unknown, and `other` might be it.
        let installed = &[("six", "1.18.0"), ("other", "1.0")];
        let problems = super::tests::plan(&[], &reqs, installed, true).unwrap_err();
        assert_eq!(
            problems,
            [
                "--exact cannot tell what six 1.18.0 needs (the repository has no wheel of it, so \
              its dependencies are unknown) and would remove other: vd-add its wheel, or leave \
              out --exact"
            ]
        );
        // Nothing to remove: nothing to fear.
        let plan = super::tests::plan(&[], &reqs, &[("six", "1.18.0")], true).unwrap();
        assert!(plan.changes.is_empty());
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
        assert_contains(
            &problems[0],
            &[
                "no m >=2 can be installed on this interpreter",
                "m 3.0 has wheels only for other interpreters (m-3.0-cp312-cp312-manylinux_2_17_x86_64.whl)",
                "m 2.0 needs Python >=3.12 (Requires-Python)",
                "`m>=2` (field `packages`)",
            ],
        );
    }

    #[test]
    fn python_2_7_and_3_6_resolve_from_one_repository_by_tags_requires_python_and_markers() {
        // Their real METADATA, trimmed; `old` and `typed` carry the
        // Requires-Python forms of their day (a stray comma, `>=3.5.*`).
        let wheels = &[
            W(
                "Django-1.11.29-py2.py3-none-any.whl",
                &["pytz"],
                Some(">=2.7, !=3.0.*, !=3.1.*, !=3.2.*, !=3.3.*"),
            ),
            W(
                "Django-3.2.25-py3-none-any.whl",
                &[
                    "asgiref (<4,>=3.3.2)",
                    "pytz",
                    "sqlparse (>=0.2.2)",
                    "argon2-cffi (>=19.1.0) ; extra == 'argon2'",
                ],
                Some(">=3.6"),
            ),
            W(
                "Django-4.2.16-py3-none-any.whl",
                &[
                    "asgiref<4,>=3.6.0",
                    "backports.zoneinfo; python_version < \"3.9\"",
                    "sqlparse>=0.3.1",
                    "tzdata; sys_platform == \"win32\"",
                ],
                Some(">=3.8"),
            ),
            W(
                "asgiref-3.4.1-py3-none-any.whl",
                &["typing-extensions; python_version < \"3.8\""],
                Some(">=3.6"),
            ),
            W(
                "typing_extensions-4.1.1-py3-none-any.whl",
                &[],
                Some(">=3.6"),
            ),
            W("pytz-2024.2-py2.py3-none-any.whl", &[], None),
            W("sqlparse-0.4.4-py3-none-any.whl", &[], Some(">=3.5")),
            W("futures-3.3.0-py2-none-any.whl", &[], Some(">=2.6, <3")),
            W(
                "old-1.0-py2.py3-none-any.whl",
                &["futures; python_version == \"2.7\""],
                Some(">=2.7, !=3.0.*,"),
            ),
            W("typed-1.0-py2.py3-none-any.whl", &[], Some(">=3.5.*")),
        ];
        let reqs = requirements(&["django", "old", "typed; python_version >= '3'"], &[]);
        let installs = |python: &str| {
            let plan = plan_on(python, wheels, &reqs, &[], false).unwrap();
            changes(&plan)
        };
        assert_eq!(
            installs("2.7.18"),
            [
                "install django -->1.11.29 Django-1.11.29-py2.py3-none-any.whl",
                "install futures -->3.3.0 futures-3.3.0-py2-none-any.whl",
                "install old -->1.0 old-1.0-py2.py3-none-any.whl",
                "install pytz -->2024.2 pytz-2024.2-py2.py3-none-any.whl",
            ]
        );
        assert_eq!(
            installs("3.6.15"),
            [
                "install asgiref -->3.4.1 asgiref-3.4.1-py3-none-any.whl",
                "install django -->3.2.25 Django-3.2.25-py3-none-any.whl",
                "install old -->1.0 old-1.0-py2.py3-none-any.whl",
                "install pytz -->2024.2 pytz-2024.2-py2.py3-none-any.whl",
                "install sqlparse -->0.4.4 sqlparse-0.4.4-py3-none-any.whl",
                "install typed -->1.0 typed-1.0-py2.py3-none-any.whl",
                "install typing-extensions -->4.1.1 typing_extensions-4.1.1-py3-none-any.whl",
            ]
        );

        // The first problem planning `requirement` alone on `python`.
        let problem = |python: &str, requirement: &str| {
            let problems = plan_on(
                python,
                wheels,
                &requirements(&[requirement], &[]),
                &[],
                false,
            )
            .unwrap_err();
            problems[0].clone()
        };
        // The py2-only wheel is refused for 3.x, by its tag.
        let message = problem("3.6.15", "futures");
        assert!(
            message.contains(
                "futures 3.3.0 has wheels only for other interpreters (futures-3.3.0-py2-none-any.whl)"
            ),
            "{message}"
        );
        // Django 4.2 fits 3.6's tags, not its Requires-Python; `>=3.5.*`
        // is read as `>=3.5`, which 2.7 is not.
        let message = problem("3.6.15", "django>=4");
        assert!(
            message.contains("django 4.2.16 needs Python >=3.8 (Requires-Python)"),
            "{message}"
        );
        let message = problem("2.7.18", "typed");
        assert!(
            message.contains("typed 1.0 needs Python >=3.5 (Requires-Python)"),
            "{message}"
        );
    }

    #[test]
    fn dependencies_and_extras_are_resolved_with_the_plan() {
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
            W("lib-1.0-py3-none-any.whl", &[], None),
            W("lib-2.0-py3-none-any.whl", &[], None),
            W("fast-1.0-py3-none-any.whl", &[], None),
        ];
        // lib is neither installed nor required: the plan brings it; the
        // dependency whose marker is false for the target is not needed.
        let plan = plan(wheels, &requirements(&["app"], &[]), &[], false).unwrap();
        assert_eq!(
            changes(&plan),
            [
                "install app -->1.0 app-1.0-py3-none-any.whl",
                "install lib -->2.0 lib-2.0-py3-none-any.whl",
            ]
        );
        // Installed too old: upgraded with the plan.
        let plan = super::tests::plan(
            wheels,
            &requirements(&["app"], &[]),
            &[("lib", "1.0")],
            false,
        )
        .unwrap();
        assert_eq!(
            changes(&plan)[1],
            "upgrade lib 1.0->2.0 lib-2.0-py3-none-any.whl"
        );
        // An extra asked for brings its own requirement.
        let reqs = requirements(&["app[speed]"], &[]);
        assert_eq!(changes(&plan_of(wheels, &reqs, &[], false)).len(), 3);
        // --exact keeps what the requirements need, and removes the rest.
        let plan = super::tests::plan(
            wheels,
            &requirements(&["app"], &[]),
            &[("lib", "2.0"), ("fast", "1.0")],
            true,
        )
        .unwrap();
        assert_eq!(
            changes(&plan),
            [
                "install app -->1.0 app-1.0-py3-none-any.whl",
                "remove fast 1.0->- -",
            ]
        );
        // A line that rules out what a dependency needs: the conflict told.
        let problems =
            super::tests::plan(wheels, &requirements(&["app", "lib<2"], &[]), &[], false)
                .unwrap_err();
        assert!(
            problems[0].contains("app requires lib >=2")
                && problems[0].contains("`lib<2` (field `packages`)"),
            "{problems:?}"
        );
    }

    fn plan_of(wheels: &[W], reqs: &Requirements, installed: &[(&str, &str)], exact: bool) -> Plan {
        plan(wheels, reqs, installed, exact).unwrap()
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
            problems[0].contains(
                "six is required as `six<1.16` (field `packages`) and `six>1.16` (field `packages`), and no version satisfies all of them"
            ),
            "{problems:?}"
        );
        let problems = plan(&[], &requirements(&["six"], &[]), &[], false).unwrap_err();
        assert_eq!(
            problems,
            ["cannot resolve the requirements: Because the repository has no wheel of six and the requirements ask for six (`six` (field `packages`)), the requirements cannot all be met."]
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
