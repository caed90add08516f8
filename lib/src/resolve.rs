//! Resolution: from what a target's requirements name to the whole closure
//! of projects and versions its venv must hold, worked out offline from the
//! repository's wheels alone.
//!
//! The search is pubgrub's (the algorithm uv uses), over PEP 440 version
//! ranges; this module decides what a candidate is and which one to try
//! first. A candidate is a version of a project with at least one wheel the
//! target can install: its tags accept the wheel and its interpreter meets
//! the wheel's `Requires-Python`. Dependencies are the `Requires-Dist` lines
//! whose markers hold for the target, so one requirements file resolves
//! differently per interpreter. Extras (`celery[redis]`) are packages of
//! their own that pin their project to the same version, as uv models them.
//! `-c` constraints narrow every edge that names their project.
//!
//! Which version, as pip chooses: a project the requirements name gets the
//! highest candidate that fits; a dependency keeps the installed version
//! when it fits (pip's `only-if-needed`), unless `upgrade_deps` asks for the
//! highest. Pre-releases are tried only when a line names one (other than
//! to exclude it), be it a requirement, a constraint or a dependency's
//! Requires-Dist, or when nothing else fits. Projects are decided in pip's
//! order of preference (see `provider::Preference`), so where two closures
//! are valid, pip's is the one chosen. An installed version the repository has no wheel
//! for is a candidate too (it is already there), with no known dependencies.
//!
//! The repository is read through [`Candidates`], so the resolver can be
//! tested on wheels that exist only in memory. When there is no solution, the
//! error is pubgrub's derivation tree told in words by [`explain`].

mod budget;
mod explain;
mod provider;

use crate::record::Installed;
use crate::requirement::Requirement;
use crate::tags::Tags;
use crate::wheel::WheelName;
use pep508_rs::pep440_rs::{Version, VersionSpecifiers};
use pep508_rs::{ExtraName, MarkerEnvironment};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::rc::Rc;

pub use provider::Package;

/// What a wheel's METADATA says it needs.
#[derive(Debug, Clone, Default)]
pub struct Dist {
    pub requires_python: Option<VersionSpecifiers>,
    pub requires_dist: Vec<Requirement>,
}

/// The repository as the resolver sees it: wheels by project, and what each
/// wheel needs, read when first asked for.
pub trait Candidates {
    /// The wheels of one project (PEP 503 name), highest version first.
    fn wheels_of(&self, name: &str) -> &[usize];
    /// The wheel's parsed filename.
    fn wheel_name(&self, wheel: usize) -> &WheelName;
    /// The wheel's `Requires-Python` and `Requires-Dist`, or why they cannot
    /// be read.
    fn dist(&self, wheel: usize) -> Result<&Dist, String>;
    /// Where targets with the same tags and Python share which versions of
    /// each project they can use; none, and each target works it out alone.
    fn memo(&self) -> Option<&Memo> {
        None
    }
}

/// Which versions of each project an interpreter (its tags and Python
/// version) can use, worked out once for all the targets that share it:
/// the part of a resolution that does not depend on the target's venv.
#[derive(Default)]
pub struct Memo {
    #[allow(clippy::type_complexity)]
    kinds: RefCell<
        HashMap<(u64, Version), Rc<RefCell<HashMap<String, Rc<Vec<provider::Candidate>>>>>>,
    >,
}

impl Memo {
    fn kind(
        &self,
        tags: &Tags,
        python: &Version,
    ) -> Rc<RefCell<HashMap<String, Rc<Vec<provider::Candidate>>>>> {
        self.kinds
            .borrow_mut()
            .entry((tags.id(), python.clone()))
            .or_default()
            .clone()
    }
}

/// The virtualenv being resolved for: its interpreter's environment
/// markers and tags, and what it holds.
pub struct Venv<'a> {
    pub env: &'a MarkerEnvironment,
    pub tags: &'a Tags,
    /// `{PEP 503 name: version}`; empty for a venv still to be created.
    pub installed: &'a Installed,
}

/// What to resolve: requirements (each applies where its marker holds) and
/// `-c` constraints.
#[derive(Default)]
pub struct Request<'r> {
    pub requirements: Vec<&'r Requirement>,
    pub constraints: Vec<&'r Requirement>,
    /// Choose the highest version for dependencies too, not the installed one.
    pub upgrade_deps: bool,
}

/// The version chosen for one project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chosen {
    pub version: Version,
    /// The version's wheels this target can install, best fit first (tag
    /// priority, then highest build tag); empty when the installed version is
    /// kept and the repository has no wheel of it.
    pub wheels: Vec<usize>,
    /// Named by the requirements themselves (not only a dependency).
    pub named: bool,
    /// The extras asked of it, by the requirements or by dependencies.
    pub extras: BTreeSet<ExtraName>,
}

/// The closure: every project the venv must hold, by PEP 503 name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolution {
    pub packages: BTreeMap<String, Chosen>,
}

/// Resolve one target's requirements against the repository. On failure,
/// one message explaining why, in words a person can act on.
pub fn resolve(
    candidates: &dyn Candidates,
    target: &Venv,
    request: &Request,
) -> Result<Resolution, String> {
    let provider = provider::Provider::new(candidates, target, request)?;
    match pubgrub::resolve(&provider, Package::Root, Version::new([0])) {
        Ok(solution) => Ok(provider.resolution(solution)),
        // The tree is not collapsed: its "no versions" leaves are where the
        // wheels for other interpreters get named.
        Err(pubgrub::PubGrubError::NoSolution(tree)) => Err(budget::bounded_explanation(
            explain::explain(&provider, &tree),
        )),
        // The provider's only error: the search went past its bound.
        Err(pubgrub::PubGrubError::ErrorInShouldCancel(gave_up)) => Err(gave_up.to_string()),
        Err(pubgrub::PubGrubError::ErrorRetrievingDependencies {
            package,
            version,
            source,
        }) => Err(format!("{package} {version}: {source}")),
        Err(pubgrub::PubGrubError::ErrorChoosingVersion { package, source }) => {
            Err(format!("{package}: {source}"))
        }
    }
}

#[cfg(test)]
mod tests;
