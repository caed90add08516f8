//! Why a target's requirements cannot be met, told from pubgrub's
//! derivation tree: the chain of requirements that conflict, with the
//! requirement lines they come from, and for a project with no version to
//! offer, what the repository does have (versions outside the range, wheels
//! for other interpreters, a Requires-Python that excludes this one).

use super::budget::MAX_DERIVATIONS;
use super::provider::{Package, Provider};
use pep508_rs::pep440_rs::Version;
use pubgrub::{
    DefaultStringReporter, DerivationTree, Derived, External, Map, Ranges, ReportFormatter,
    Reporter, Term,
};
use std::collections::BTreeSet;
use std::ops::Bound;
use std::sync::Arc;

type Tree = DerivationTree<Package, Ranges<Version>, String>;
type Ext = External<Package, Ranges<Version>, String>;
type Der = Derived<Package, Ranges<Version>, String>;
type Terms = Map<Package, Term<Ranges<Version>>>;

/// The whole explanation, one paragraph; or, for a tree too large to tell
/// ([`MAX_DERIVATIONS`]), what to do about it.
pub(super) fn explain(provider: &Provider, tree: &Tree) -> String {
    if derivations(tree, MAX_DERIVATIONS + 1) > MAX_DERIVATIONS {
        return provider.budget.too_large_to_explain();
    }
    let mut tree = tree.clone();
    fold_absent_versions(provider, &mut tree);
    let words = Words { provider };
    let report = DefaultStringReporter::report_with_formatter(&tree, &words);
    let report = report.lines().collect::<Vec<_>>().join(" ");
    format!("cannot resolve the requirements: {report}")
}

/// The nodes of `tree` as telling it walks them (a shared node once per
/// use, as folding and the report do), counted up to `cap`: shared nodes
/// make the walk exponential in the tree's depth, so it must stop early.
fn derivations(tree: &Tree, cap: usize) -> usize {
    fn walk(tree: &Tree, count: &mut usize, cap: usize) {
        if *count >= cap {
            return;
        }
        *count += 1;
        if let DerivationTree::Derived(derived) = tree {
            walk(&derived.cause1, count, cap);
            walk(&derived.cause2, count, cap);
        }
    }
    let mut count = 0;
    walk(tree, &mut count, cap);
    count
}

/// pubgrub notes "no version of P in R" for every gap between the versions
/// the repository has; next to "Q requires P …" that says nothing a person
/// can use, so the two are folded into one "Q requires P" (as pubgrub's own
/// `collapse_no_versions` does), but only where R holds no version at all
/// and P is the one that requires: where R does hold versions, the note is
/// why they cannot be installed here, and where P is the one required, it
/// says what the repository lacks.
fn fold_absent_versions(provider: &Provider, tree: &mut Tree) {
    let DerivationTree::Derived(derived) = tree else {
        return;
    };
    fold_absent_versions(provider, Arc::make_mut(&mut derived.cause1));
    fold_absent_versions(provider, Arc::make_mut(&mut derived.cause2));
    let absent = |p: &Package, r: &Ranges<Version>| {
        p.name().is_some_and(|name| {
            !provider.candidates.wheels_of(name).is_empty()
                && !provider
                    .versions(name)
                    .iter()
                    .any(|c| r.contains(&c.version))
                && !provider
                    .candidates
                    .wheels_of(name)
                    .iter()
                    .any(|&w| r.contains(&provider.candidates.wheel_name(w).version))
        })
    };
    let folded = match (&*derived.cause1, &*derived.cause2) {
        (
            DerivationTree::External(External::NoVersions(p, r)),
            DerivationTree::External(External::FromDependencyOf(p1, r1, p2, r2)),
        )
        | (
            DerivationTree::External(External::FromDependencyOf(p1, r1, p2, r2)),
            DerivationTree::External(External::NoVersions(p, r)),
        ) if p == p1 && absent(p, r) => Some(External::FromDependencyOf(
            p1.clone(),
            r1.union(r),
            p2.clone(),
            r2.clone(),
        )),
        _ => None,
    };
    if let Some(external) = folded {
        *tree = DerivationTree::External(external);
    }
}

struct Words<'p, 'a> {
    provider: &'p Provider<'a>,
}

/// A range as PEP 440 specifiers: `>=1.4, <2`, `==1.0`, `!=1.5`, `any version`.
pub(super) fn range_text(range: &Ranges<Version>) -> String {
    let segments: Vec<_> = range.iter().collect();
    if segments.is_empty() {
        return "(no version)".to_string();
    }
    if let [(Bound::Unbounded, Bound::Excluded(a)), (Bound::Excluded(b), Bound::Unbounded)] =
        segments.as_slice()
    {
        if a == b {
            return format!("!={a}");
        }
    }
    let upper = |v: &Version| -> String {
        // `~=` and `<` ranges end just below the next release's first dev
        // release; written as people write them.
        if v.dev() == Some(0) && v.pre().is_none() && v.post().is_none() {
            v.clone().with_dev(None).to_string()
        } else {
            v.to_string()
        }
    };
    segments
        .iter()
        .map(|(low, high)| match (low, high) {
            (Bound::Unbounded, Bound::Unbounded) => "(any version)".to_string(),
            (Bound::Included(a), Bound::Included(b)) if a == b => format!("=={a}"),
            _ => {
                let mut parts = Vec::new();
                match low {
                    Bound::Included(a) => parts.push(format!(">={a}")),
                    Bound::Excluded(a) => parts.push(format!(">{a}")),
                    Bound::Unbounded => {}
                }
                match high {
                    Bound::Included(b) => parts.push(format!("<={b}")),
                    Bound::Excluded(b) => parts.push(format!("<{}", upper(b))),
                    Bound::Unbounded => {}
                }
                parts.join(", ")
            }
        })
        .collect::<Vec<_>>()
        .join(" or ")
}

/// `django >=5` or `django` for any version.
fn package_range(package: &Package, range: &Ranges<Version>) -> String {
    if *range == Ranges::full() {
        package.to_string()
    } else {
        format!("{package} {}", range_text(range))
    }
}

impl Words<'_, '_> {
    /// `` `django>=5` (reqs.txt line 1) `` for the lines naming a project.
    fn origins(&self, name: &str) -> String {
        let mut lines: Vec<String> = Vec::new();
        if let Some(named) = self.provider.named.get(name) {
            lines.extend(
                named
                    .lines
                    .iter()
                    .map(|r| format!("`{}` ({})", r.text, r.origin)),
            );
        }
        if let Some((_, constraints)) = self.provider.constraints.get(name) {
            lines.extend(
                constraints
                    .iter()
                    .map(|r| format!("constraint `{}` ({})", r.text, r.origin)),
            );
        }
        lines.join(" and ")
    }

    /// `the repository has 1.0, 2.0` (the newest few), for messages.
    fn repository_has(&self, name: &str) -> String {
        let candidates = self.provider.candidates;
        let all: BTreeSet<&Version> = candidates
            .wheels_of(name)
            .iter()
            .map(|&w| &candidates.wheel_name(w).version)
            .collect();
        if all.is_empty() {
            return format!("the repository has no wheel of {name}");
        }
        let mut has: Vec<String> = all.iter().rev().take(6).map(|v| v.to_string()).collect();
        if all.len() > 6 {
            has.push(format!("and {} older", all.len() - 6));
        }
        format!("the repository has {}", has.join(", "))
    }

    /// Why no version of a project in `range` can be installed here.
    fn no_versions(&self, package: &Package, range: &Ranges<Version>) -> String {
        let Some(name) = package.name() else {
            return "the requirements cannot be met".to_string();
        };
        let candidates = self.provider.candidates;
        let wheels = candidates.wheels_of(name);
        if wheels.is_empty() {
            return format!("the repository has no wheel of {name}");
        }
        let all: BTreeSet<&Version> = wheels
            .iter()
            .map(|&w| &candidates.wheel_name(w).version)
            .collect();
        let in_range: Vec<&Version> = all
            .iter()
            .rev()
            .copied()
            .filter(|v| range.contains(v))
            .collect();
        if in_range.is_empty() {
            let only_these = range.complement().iter().all(
                |(low, high)| matches!((low, high), (Bound::Included(a), Bound::Included(b)) if a == b),
            );
            if only_these {
                let has: Vec<String> = all.iter().rev().map(|v| v.to_string()).collect();
                return format!("the repository has only {name} {}", has.join(", "));
            }
            return format!(
                "the repository has no {} ({})",
                package_range(package, range),
                self.repository_has(name)
                    .replacen("the repository has", "it has", 1)
            );
        }
        let target = self.provider.target;
        let python = target.env.python_full_version();
        let versions = self.provider.versions(name);
        const SHOWN: usize = 3;
        let mut reasons: Vec<String> = in_range
            .iter()
            .take(SHOWN)
            .map(|&v| {
                let Some(c) = versions.iter().find(|c| c.version == *v) else {
                    let mut files: Vec<&str> = wheels
                        .iter()
                        .map(|&w| candidates.wheel_name(w))
                        .filter(|w| w.version == *v)
                        .map(|w| w.file.as_str())
                        .collect();
                    let more = files.len().saturating_sub(SHOWN);
                    files.truncate(SHOWN);
                    let more = if more > 0 {
                        format!(" and {more} more")
                    } else {
                        String::new()
                    };
                    return format!(
                        "{name} {v} has wheels only for other interpreters ({}{more})",
                        files.join(", ")
                    );
                };
                let (_, error) = self.provider.usable(c);
                if let Some(e) = error {
                    return format!("{name} {v} cannot be read: {e}");
                }
                let spec = c
                    .compatible
                    .iter()
                    .find_map(|&w| candidates.dist(w).ok()?.requires_python.clone());
                match spec {
                    Some(spec) => {
                        format!("{name} {v} needs Python {spec} (Requires-Python)")
                    }
                    None => format!("{name} {v} has no wheel this interpreter can use"),
                }
            })
            .collect();
        if in_range.len() > SHOWN {
            reasons.push(format!(
                "and {} older versions likewise",
                in_range.len() - SHOWN
            ));
        }
        format!(
            "no {} can be installed on this interpreter ({}, Python {python}): {}",
            package_range(package, range),
            target.tags.describe(),
            reasons.join("; ")
        )
    }

    fn term(&self, package: &Package, term: &Term<Ranges<Version>>) -> String {
        match term {
            Term::Positive(r) => package_range(package, r),
            Term::Negative(r) => package_range(package, &r.complement()),
        }
    }
}

impl ReportFormatter<Package, Ranges<Version>, String> for Words<'_, '_> {
    type Output = String;

    fn format_external(&self, external: &Ext) -> String {
        match external {
            External::NotRoot(..) => "vd resolves the requirements".to_string(),
            External::NoVersions(p, r) => self.no_versions(p, r),
            External::FromDependencyOf(Package::Root, _, d, rd) => {
                let name = d.name().unwrap_or_default();
                let origins = self.origins(name);
                if rd.is_empty() {
                    return format!(
                        "{name} is required as {origins}, and no version satisfies all of them ({})",
                        self.repository_has(name)
                    );
                }
                format!(
                    "the requirements ask for {} ({origins})",
                    package_range(d, rd)
                )
            }
            External::FromDependencyOf(p, rp, d, rd) => {
                format!("{} requires {}", package_range(p, rp), package_range(d, rd))
            }
            External::Custom(p, r, m) => {
                format!("{} cannot be used: {m}", package_range(p, r))
            }
        }
    }

    fn format_terms(&self, terms: &Terms) -> String {
        // The requirements are always chosen: a term saying so adds nothing.
        let list: Vec<_> = terms
            .iter()
            .filter(|(p, t)| !(**p == Package::Root && matches!(t, Term::Positive(_))))
            .collect();
        match list.as_slice() {
            [] | [(Package::Root, _)] => "the requirements cannot all be met".to_string(),
            [(p, Term::Positive(r))] => format!("{} cannot be installed", package_range(p, r)),
            [(p, Term::Negative(r))] => {
                format!(
                    "the requirements need {}",
                    package_range(p, &r.complement())
                )
            }
            [(p, Term::Positive(rp)), (d, Term::Negative(rd))]
            | [(d, Term::Negative(rd)), (p, Term::Positive(rp))] => format!(
                "{} requires {}",
                package_range(p, rp),
                package_range(d, &rd.complement())
            ),
            many => format!(
                "{} cannot be installed together",
                many.iter()
                    .map(|(p, t)| self.term(p, t))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }

    fn explain_both_external(&self, e1: &Ext, e2: &Ext, terms: &Terms) -> String {
        format!(
            "Because {} and {}, {}.",
            self.format_external(e1),
            self.format_external(e2),
            self.format_terms(terms)
        )
    }

    fn explain_both_ref(
        &self,
        id1: usize,
        d1: &Der,
        id2: usize,
        d2: &Der,
        terms: &Terms,
    ) -> String {
        format!(
            "Because {} ({id1}) and {} ({id2}), {}.",
            self.format_terms(&d1.terms),
            self.format_terms(&d2.terms),
            self.format_terms(terms)
        )
    }

    fn explain_ref_and_external(&self, id: usize, d: &Der, e: &Ext, terms: &Terms) -> String {
        format!(
            "Because {} ({id}) and {}, {}.",
            self.format_terms(&d.terms),
            self.format_external(e),
            self.format_terms(terms)
        )
    }

    fn and_explain_external(&self, e: &Ext, terms: &Terms) -> String {
        format!(
            "And because {}, {}.",
            self.format_external(e),
            self.format_terms(terms)
        )
    }

    fn and_explain_ref(&self, id: usize, d: &Der, terms: &Terms) -> String {
        format!(
            "And because {} ({id}), {}.",
            self.format_terms(&d.terms),
            self.format_terms(terms)
        )
    }

    fn and_explain_prior_and_external(&self, prior: &Ext, e: &Ext, terms: &Terms) -> String {
        format!(
            "And because {} and {}, {}.",
            self.format_external(prior),
            self.format_external(e),
            self.format_terms(terms)
        )
    }
}
