//! The resolver's view of the repository for one target: pubgrub asks it
//! which versions a package has, which one to try, and what a version needs.

use super::budget::{Budget, GaveUp};
use super::{Candidates, Chosen, Request, Resolution, Venv};
use crate::requirement::Requirement;
use pep508_rs::pep440_rs::Version;
use pep508_rs::ExtraName;
use pubgrub::{Dependencies, DependencyConstraints, PackageResolutionStatistics, Ranges};
use std::cell::{OnceCell, RefCell};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::rc::Rc;
use std::str::FromStr;

/// What pubgrub resolves: the requirements themselves, a project, or a
/// project with one extra (which depends on the project at its own version,
/// so an extra's dependencies join the closure only when it is asked for).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Package {
    Root,
    Project(String),
    Extra(String, ExtraName),
}

impl Package {
    pub fn name(&self) -> Option<&str> {
        match self {
            Package::Root => None,
            Package::Project(n) | Package::Extra(n, _) => Some(n),
        }
    }
}

impl fmt::Display for Package {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Package::Root => f.write_str("the requirements"),
            Package::Project(n) => f.write_str(n),
            Package::Extra(n, e) => write!(f, "{n}[{e}]"),
        }
    }
}

/// One version of a project the target might get.
#[derive(Clone)]
pub(crate) struct Candidate {
    pub version: Version,
    /// Wheels whose tags the target accepts, best fit first.
    pub compatible: Vec<usize>,
    /// Of those, the ones whose Requires-Python admits the interpreter,
    /// found on first use (it needs the wheel's METADATA); and the first
    /// error met reading one.
    usable: OnceCell<(Vec<usize>, Option<String>)>,
    /// The installed version, which the repository has no wheel of.
    pub installed_only: bool,
}

/// A wheel's rank among its version's wheels: tag priority (lower is
/// better), then the highest build tag, then the wheel.
type Fit = (usize, Reverse<(u64, String)>, usize);

/// What the requirements say of one project they name.
pub(super) struct Named<'r> {
    pub range: Ranges<Version>,
    pub extras: BTreeSet<ExtraName>,
    pub lines: Vec<&'r Requirement>,
    /// Where the first line naming it stands among the requirements.
    pub order: usize,
}

pub(super) struct Provider<'a> {
    pub candidates: &'a dyn Candidates,
    pub target: &'a Venv<'a>,
    upgrade_deps: bool,
    pub named: BTreeMap<String, Named<'a>>,
    pub constraints: HashMap<String, (Ranges<Version>, Vec<&'a Requirement>)>,
    /// Projects whose requirements, constraints or dependents' Requires-Dist
    /// name a pre-release.
    prerelease: RefCell<HashSet<String>>,
    installed: HashMap<String, Version>,
    versions: RefCell<HashMap<String, Rc<Vec<Candidate>>>>,
    /// The repository's candidates for this kind of interpreter, shared
    /// with other targets of the kind.
    shared: Rc<RefCell<HashMap<String, Rc<Vec<Candidate>>>>>,
    /// What the search may still use.
    pub budget: Budget,
    /// How far each project is from the requirements, as pip infers it:
    /// one less than the nearest project found depending on it.
    depths: RefCell<HashMap<String, u32>>,
    /// Named projects that another named project's best version requires.
    named_dependencies: OnceCell<HashSet<String>>,
}

impl<'a> Provider<'a> {
    pub fn new(
        candidates: &'a dyn Candidates,
        target: &'a Venv<'a>,
        request: &'a Request<'a>,
    ) -> Result<Provider<'a>, String> {
        let mut installed = HashMap::new();
        for (name, version) in target.installed {
            let v = Version::from_str(version).map_err(|_| {
                format!("{name} is installed at {version:?}, which is not a PEP 440 version")
            })?;
            installed.insert(name.clone(), v);
        }
        let mut named: BTreeMap<String, Named> = BTreeMap::new();
        let mut prerelease = HashSet::new();
        for (order, r) in request.requirements.iter().enumerate() {
            if !r.applies(target.env, &[]) {
                continue;
            }
            let entry = named.entry(r.name.clone()).or_insert_with(|| Named {
                range: Ranges::full(),
                extras: BTreeSet::new(),
                lines: Vec::new(),
                order,
            });
            entry.range = entry
                .range
                .intersection(&Ranges::from(r.specifiers.clone()));
            entry.extras.extend(r.extras.iter().cloned());
            entry.lines.push(r);
            if r.names_prerelease() {
                prerelease.insert(r.name.clone());
            }
        }
        let mut constraints: HashMap<String, (Ranges<Version>, Vec<&Requirement>)> = HashMap::new();
        for c in &request.constraints {
            if !c.applies(target.env, &[]) {
                continue;
            }
            let entry = constraints
                .entry(c.name.clone())
                .or_insert_with(|| (Ranges::full(), Vec::new()));
            entry.0 = entry.0.intersection(&Ranges::from(c.specifiers.clone()));
            entry.1.push(c);
            if c.names_prerelease() {
                prerelease.insert(c.name.clone());
            }
        }
        let shared = match candidates.memo() {
            Some(memo) => memo.kind(target.tags, target.env.python_full_version()),
            None => Rc::default(),
        };
        Ok(Provider {
            shared,
            candidates,
            target,
            upgrade_deps: request.upgrade_deps,
            named,
            constraints,
            prerelease: RefCell::new(prerelease),
            installed,
            versions: RefCell::new(HashMap::new()),
            budget: Budget::new(),
            depths: RefCell::new(HashMap::new()),
            named_dependencies: OnceCell::new(),
        })
    }

    /// The versions of a project this target might get, highest first.
    pub fn versions(&self, name: &str) -> Rc<Vec<Candidate>> {
        if let Some(v) = self.versions.borrow().get(name) {
            return v.clone();
        }
        let shared = self.shared.borrow().get(name).cloned();
        let shared = shared.unwrap_or_else(|| {
            let list = Rc::new(self.repository_versions(name));
            self.shared
                .borrow_mut()
                .insert(name.to_string(), list.clone());
            list
        });
        let list = match self.installed.get(name) {
            Some(v) if !shared.iter().any(|c| c.version == *v) => {
                let mut list = shared.as_ref().clone();
                let at = list.partition_point(|c| c.version > *v);
                list.insert(
                    at,
                    Candidate {
                        version: v.clone(),
                        compatible: Vec::new(),
                        usable: OnceCell::new(),
                        installed_only: true,
                    },
                );
                Rc::new(list)
            }
            _ => shared,
        };
        self.versions
            .borrow_mut()
            .insert(name.to_string(), list.clone());
        list
    }

    /// The versions of a project the repository has wheels of for this
    /// interpreter, highest first.
    fn repository_versions(&self, name: &str) -> Vec<Candidate> {
        let mut list: Vec<Candidate> = Vec::new();
        let mut fits: Vec<Fit> = Vec::new();
        let wheels = self.candidates.wheels_of(name);
        for (i, &w) in wheels.iter().enumerate() {
            let wheel = self.candidates.wheel_name(w);
            if let Some(priority) = self.target.tags.priority(wheel) {
                let (n, rest) = wheel.build_key();
                fits.push((priority, Reverse((n, rest.to_string())), w));
            }
            let last_of_version = wheels
                .get(i + 1)
                .is_none_or(|&next| self.candidates.wheel_name(next).version != wheel.version);
            if last_of_version && !fits.is_empty() {
                fits.sort();
                list.push(Candidate {
                    version: wheel.version.clone(),
                    compatible: fits.drain(..).map(|(_, _, w)| w).collect(),
                    usable: OnceCell::new(),
                    installed_only: false,
                });
            }
        }
        list
    }

    /// The candidate's wheels the interpreter can use, and the first error
    /// met reading their METADATA.
    pub fn usable<'c>(&self, c: &'c Candidate) -> &'c (Vec<usize>, Option<String>) {
        c.usable.get_or_init(|| {
            let python = self.target.env.python_full_version();
            let mut usable = Vec::new();
            let mut error = None;
            for &w in &c.compatible {
                match self.candidates.dist(w) {
                    Ok(dist) => {
                        if dist
                            .requires_python
                            .as_ref()
                            .is_none_or(|s| s.contains(python))
                        {
                            usable.push(w);
                        }
                    }
                    Err(e) => {
                        error.get_or_insert(e);
                    }
                }
            }
            (usable, error)
        })
    }

    fn is_candidate(&self, c: &Candidate) -> bool {
        c.installed_only || !self.usable(c).0.is_empty()
    }

    /// Every edge naming `name` is narrowed by its `-c` constraints.
    fn constrained(&self, name: &str, range: Ranges<Version>) -> Ranges<Version> {
        match self.constraints.get(name) {
            Some((c, _)) => range.intersection(c),
            None => range,
        }
    }

    /// The dependencies of a wheel's METADATA that hold for this target with
    /// `extras` asked of it, added to `deps`.
    fn add_requires_dist(
        &self,
        name: &str,
        version: &Version,
        requires: &[Requirement],
        extras: &[ExtraName],
        deps: &mut BTreeMap<Package, Ranges<Version>>,
    ) {
        for r in requires {
            if !r.applies(self.target.env, extras) {
                continue;
            }
            if r.name == name {
                // `foo[a]` requiring `foo[b]`: the other extra, same version.
                for e in &r.extras {
                    add(
                        deps,
                        Package::Extra(name.to_string(), e.clone()),
                        Ranges::singleton(version.clone()),
                    );
                }
                continue;
            }
            if r.names_prerelease() {
                // pip lets a dependency's own line opt in, as a user's does.
                self.prerelease.borrow_mut().insert(r.name.clone());
            }
            let range = self.constrained(&r.name, Ranges::from(r.specifiers.clone()));
            for e in &r.extras {
                add(
                    deps,
                    Package::Extra(r.name.clone(), e.clone()),
                    range.clone(),
                );
            }
            add(deps, Package::Project(r.name.clone()), range);
        }
    }

    /// The highest version in `range` this target can use, a release before
    /// any pre-release unless the requirements opt in to pre-releases.
    fn best_version(&self, name: &str, range: &Ranges<Version>) -> Option<Version> {
        let versions = self.versions(name);
        let fits = |c: &&Candidate| range.contains(&c.version) && self.is_candidate(c);
        let pre_allowed = self.prerelease.borrow().contains(name);
        versions
            .iter()
            .filter(|c| pre_allowed || !c.version.any_prerelease())
            .find(fits)
            // Only pre-releases fit: PEP 440 accepts them then.
            .or_else(|| versions.iter().find(fits))
            .map(|c| c.version.clone())
    }

    /// How far a project is from the requirements: 1 for a named one (2
    /// when another named one needs it), else one more than the nearest
    /// project seen requiring it.
    fn depth(&self, name: &str) -> u32 {
        if self.named.contains_key(name) {
            let needed = self
                .named_dependencies
                .get_or_init(|| self.find_named_dependencies());
            return if needed.contains(name) { 2 } else { 1 };
        }
        self.depths.borrow().get(name).copied().unwrap_or(u32::MAX)
    }

    /// Record the depth of a version's dependencies, one below its own.
    fn note_depths(&self, depth: u32, deps: &BTreeMap<Package, Ranges<Version>>) {
        let mut depths = self.depths.borrow_mut();
        for name in deps.keys().filter_map(Package::name) {
            let d = depths.entry(name.to_string()).or_insert(u32::MAX);
            *d = (*d).min(depth.saturating_add(1));
        }
    }

    /// The named projects that the best version of another named project
    /// requires (with the extras the requirements ask of it).
    fn find_named_dependencies(&self) -> HashSet<String> {
        let mut needed = HashSet::new();
        for (name, named) in &self.named {
            let range = self.constrained(name, named.range.clone());
            let Some(best) = self.best_version(name, &range) else {
                continue;
            };
            let versions = self.versions(name);
            let Some(c) = versions.iter().find(|c| c.version == best) else {
                continue;
            };
            let Some(dist) = self
                .usable(c)
                .0
                .first()
                .and_then(|&w| self.candidates.dist(w).ok())
            else {
                continue;
            };
            let extras: Vec<ExtraName> = named.extras.iter().cloned().collect();
            needed.extend(
                dist.requires_dist
                    .iter()
                    .filter(|r| r.name != *name && self.named.contains_key(&r.name))
                    .filter(|r| r.applies(self.target.env, &extras))
                    .map(|r| r.name.clone()),
            );
        }
        needed
    }

    /// The solution as a [`Resolution`].
    pub fn resolution(
        &self,
        solution: pubgrub::SelectedDependencies<Package, Version>,
    ) -> Resolution {
        let mut packages: BTreeMap<String, Chosen> = BTreeMap::new();
        let mut extras: BTreeMap<String, BTreeSet<ExtraName>> = BTreeMap::new();
        for (package, version) in solution {
            match package {
                Package::Root => {}
                Package::Extra(name, e) => {
                    extras.entry(name).or_default().insert(e);
                }
                Package::Project(name) => {
                    let wheels = self
                        .versions(&name)
                        .iter()
                        .find(|c| c.version == version)
                        .map(|c| self.usable(c).0.clone())
                        .unwrap_or_default();
                    let named = self.named.contains_key(&name);
                    packages.insert(
                        name,
                        Chosen {
                            version,
                            wheels,
                            named,
                            extras: BTreeSet::new(),
                        },
                    );
                }
            }
        }
        for (name, e) in extras {
            if let Some(chosen) = packages.get_mut(&name) {
                chosen.extras = e;
            }
        }
        Resolution { packages }
    }
}

/// Which package pubgrub decides next, highest first. The order is pip's
/// (its resolvelib provider's `get_preference`): a package with nothing left
/// to choose from, so the search fails early; then one pinned to a single
/// version; then one in more conflicts (pip prefers the causes of its
/// backtracking); then the one nearest the requirements; then the one whose
/// line comes first; then one that any specifier bounds; then by name.
///
/// Pip may also change a version it chose when a later choice narrows that
/// project, which pubgrub never does; so a named project that another named
/// project's best version requires counts one step further away, and is
/// decided after it, as pip's final answer has it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Preference {
    empty: bool,
    pinned: bool,
    conflicts: u32,
    depth: Reverse<u32>,
    order: Reverse<usize>,
    bounded: bool,
    name: Reverse<String>,
}

impl Preference {
    /// The requirements themselves, or a package nothing fits.
    fn first() -> Preference {
        Preference {
            empty: true,
            pinned: true,
            conflicts: u32::MAX,
            depth: Reverse(0),
            order: Reverse(0),
            bounded: true,
            name: Reverse(String::new()),
        }
    }
}

fn add(deps: &mut BTreeMap<Package, Ranges<Version>>, package: Package, range: Ranges<Version>) {
    match deps.get_mut(&package) {
        Some(r) => *r = r.intersection(&range),
        None => {
            deps.insert(package, range);
        }
    }
}

/// The version of [`Package::Root`].
fn root_version() -> Version {
    Version::new([0])
}

impl pubgrub::DependencyProvider for Provider<'_> {
    type P = Package;
    type V = Version;
    type VS = Ranges<Version>;
    type M = String;
    type Err = GaveUp;
    /// Pip's order of preference; see [`Preference`].
    type Priority = Preference;

    fn prioritize(
        &self,
        package: &Package,
        range: &Ranges<Version>,
        statistics: &PackageResolutionStatistics,
    ) -> Preference {
        let Some(name) = package.name() else {
            return Preference::first();
        };
        self.budget
            .note_conflicts(name, statistics.conflict_count());
        if !self
            .versions(name)
            .iter()
            .any(|c| range.contains(&c.version))
        {
            // Nothing to choose: fail now, before deciding anything else.
            return Preference::first();
        }
        Preference {
            empty: false,
            pinned: range.as_singleton().is_some(),
            conflicts: statistics.conflict_count(),
            depth: Reverse(self.depth(name)),
            order: Reverse(self.named.get(name).map_or(usize::MAX, |n| n.order)),
            bounded: *range != Ranges::full(),
            name: Reverse(name.to_string()),
        }
    }

    /// Called before every step of the search: the bound on it.
    fn should_cancel(&self) -> Result<(), GaveUp> {
        self.budget.step()
    }

    fn choose_version(
        &self,
        package: &Package,
        range: &Ranges<Version>,
    ) -> Result<Option<Version>, GaveUp> {
        let Some(name) = package.name() else {
            let root = root_version();
            return Ok(range.contains(&root).then_some(root));
        };
        let keep_installed = !self.upgrade_deps && !self.named.contains_key(name);
        if keep_installed {
            // A dependency: keep what is installed when it fits.
            if let Some(v) = self.installed.get(name) {
                if let Some(c) = self.versions(name).iter().find(|c| c.version == *v) {
                    if range.contains(&c.version) && self.is_candidate(c) {
                        return Ok(Some(c.version.clone()));
                    }
                }
            }
        }
        Ok(self.best_version(name, range))
    }

    fn get_dependencies(
        &self,
        package: &Package,
        version: &Version,
    ) -> Result<Dependencies<Package, Ranges<Version>, String>, GaveUp> {
        let mut deps = BTreeMap::new();
        let (name, extra) = match package {
            Package::Root => {
                for (name, named) in &self.named {
                    let range = self.constrained(name, named.range.clone());
                    for e in &named.extras {
                        add(
                            &mut deps,
                            Package::Extra(name.clone(), e.clone()),
                            range.clone(),
                        );
                    }
                    add(&mut deps, Package::Project(name.clone()), range);
                }
                return Ok(Dependencies::Available(into_constraints(deps)));
            }
            Package::Project(name) => (name, None),
            Package::Extra(name, e) => (name, Some(e)),
        };
        if extra.is_some() {
            add(
                &mut deps,
                Package::Project(name.clone()),
                Ranges::singleton(version.clone()),
            );
        }
        let depth = self.depth(name);
        let versions = self.versions(name);
        let Some(c) = versions.iter().find(|c| c.version == *version) else {
            return Ok(Dependencies::Unavailable(
                "is not in the repository".to_string(),
            ));
        };
        if c.installed_only {
            // Installed, and the repository has no wheel of it to read.
            return Ok(Dependencies::Available(into_constraints(deps)));
        }
        let (usable, error) = self.usable(c);
        let Some(&best) = usable.first() else {
            return Ok(Dependencies::Unavailable(
                error
                    .clone()
                    .unwrap_or_else(|| "has no usable wheel".into()),
            ));
        };
        let dist = match self.candidates.dist(best) {
            Ok(d) => d,
            Err(e) => return Ok(Dependencies::Unavailable(e)),
        };
        let extras: Vec<ExtraName> = extra.into_iter().cloned().collect();
        self.add_requires_dist(name, version, &dist.requires_dist, &extras, &mut deps);
        self.note_depths(depth, &deps);
        Ok(Dependencies::Available(into_constraints(deps)))
    }
}

fn into_constraints(
    deps: BTreeMap<Package, Ranges<Version>>,
) -> DependencyConstraints<Package, Ranges<Version>> {
    deps.into_iter().collect()
}
