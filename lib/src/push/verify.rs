//! Checking a pushed venv against its plan.
//!
//! pip's exit status is not the truth about a venv: the truth is the freeze
//! taken under the push's lock after pip ran. This module compares that
//! freeze with what the plan makes of the venv the record was planned from,
//! says what the push did (for `pushed` and the release log), and words every
//! difference, so a venv that is not what the plan says is an error even when
//! pip said it succeeded.

use crate::plan::KEEP;
use crate::record::{Action, Change, Installed};
use pep508_rs::pep440_rs::Version;
use std::collections::BTreeMap;
use std::str::FromStr;

/// `name==version` of what an install, upgrade or downgrade puts in.
pub fn installs(change: &Change) -> Option<String> {
    match change.action {
        Action::Remove => None,
        _ => Some(format!("{}=={}", change.name, change.to.as_deref()?)),
    }
}

/// What a push did, by the freezes before and after pip.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// `name==version` of each planned install now in place that was not.
    pub installed: Vec<String>,
    /// Names of the planned removals that were installed and are not.
    pub removed: Vec<String>,
}

/// The changes of the plan that the push made: compared under the lock,
/// before and after pip, so a change another push had made already is not
/// counted twice.
pub fn applied(changes: &[Change], before: &Installed, after: &Installed) -> Applied {
    let mut applied = Applied::default();
    for change in changes {
        let (was, now) = (before.get(&change.name), after.get(&change.name));
        if change.action == Action::Remove {
            if was.is_some() && now.is_none() {
                applied.removed.push(change.name.clone());
            }
        } else if now.is_some_and(|v| same_version(Some(v), change.to.as_deref()))
            && !same_version(was.map(String::as_str), change.to.as_deref())
        {
            applied.installed.extend(installs(change));
        }
    }
    applied
}

/// Why `venv` after the push is not what the plan makes of the freeze the
/// record carries (`frozen`), in words; `None` when it is. `locked` is the
/// venv as the push found it under the lock, named when it had drifted;
/// `created`: the push made the venv.
pub fn mismatch(
    venv: &str,
    frozen: &Installed,
    changes: &[Change],
    locked: &Installed,
    after: &Installed,
    created: bool,
) -> Option<String> {
    let expected = expected_after(frozen, changes);
    let differences = differences(&expected, after, created);
    if differences.is_empty() {
        return None;
    }
    let mut text = format!(
        "after the push, {venv} is not what the plan makes it: {}",
        differences.join("; ")
    );
    let drift = differences_since_freeze(frozen, locked);
    if !drift.is_empty() {
        text.push_str(&format!(
            " (it had changed since vd-freeze: {})",
            drift.join("; ")
        ));
    }
    Some(text)
}

/// What a venv holds after the plan: the frozen `installed`, changed.
pub fn expected_after(
    installed: &Installed,
    changes: &[Change],
) -> BTreeMap<String, Option<String>> {
    let mut expected: BTreeMap<String, Option<String>> = installed
        .iter()
        .map(|(name, version)| (name.clone(), Some(version.clone())))
        .collect();
    for change in changes {
        let version = match change.action {
            Action::Remove => None,
            _ => change.to.clone(),
        };
        expected.insert(change.name.clone(), version);
    }
    expected
}

/// How `actual` differs from `expected` (`None`: must be absent), in words.
/// In a venv just made, the packages `python -m venv` puts in (pip,
/// setuptools) are no difference.
fn differences(
    expected: &BTreeMap<String, Option<String>>,
    actual: &Installed,
    created: bool,
) -> Vec<String> {
    let mut found = Vec::new();
    for (name, want) in expected {
        let have = actual.get(name).map(String::as_str);
        match (want, have) {
            (Some(want), None) => {
                found.push(format!("{name} is not installed, the plan says {want}"))
            }
            (None, Some(have)) => found.push(format!(
                "{name} {have} is still installed, the plan removes it"
            )),
            (Some(want), Some(have)) if !same_version(Some(have), Some(want)) => {
                found.push(format!("{name} is {have}, the plan says {want}"))
            }
            _ => {}
        }
    }
    for (name, have) in actual {
        let seeded = created && KEEP.contains(&name.as_str());
        if !expected.contains_key(name) && !seeded {
            found.push(format!(
                "{name} {have} is installed, the plan does not have it"
            ));
        }
    }
    found
}

/// How the venv under the lock differed from the record's freeze.
fn differences_since_freeze(frozen: &Installed, locked: &Installed) -> Vec<String> {
    let expected = frozen
        .iter()
        .map(|(n, v)| (n.clone(), Some(v.clone())))
        .collect();
    differences(&expected, locked, false)
}

/// Two versions are the same by PEP 440 (`1.0` is `1.0.0`), or as text when
/// either does not parse.
pub fn same_version(a: Option<&str>, b: Option<&str>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => match (Version::from_str(a), Version::from_str(b)) {
            (Ok(a), Ok(b)) => a == b,
            _ => a == b,
        },
        (None, None) => true,
        _ => false,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    /// `{name: version}` of `pairs`.
    pub(crate) fn versions(pairs: &[(&str, &str)]) -> Installed {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    fn changes() -> Vec<Change> {
        serde_json::from_value(json!([
            {"name": "a", "action": "upgrade", "from": "1.0", "to": "1.1", "wheel": "a-1.1-py3-none-any.whl"},
            {"name": "b", "action": "remove", "from": "2.0"},
            {"name": "c", "action": "install", "to": "3", "wheel": "c-3-py3-none-any.whl"},
        ]))
        .unwrap()
    }

    #[test]
    fn the_expected_venv_is_the_freeze_changed_by_the_plan() {
        let installed = versions(&[("a", "1.0"), ("b", "2.0"), ("keep", "1")]);
        let expected = expected_after(&installed, &changes());
        let actual = versions(&[("a", "1.1.0"), ("c", "3"), ("keep", "1")]);
        assert!(differences(&expected, &actual, false).is_empty());
        // b left in place, pip added, c removed.
        let actual = versions(&[("a", "1.1.0"), ("b", "2.0"), ("keep", "1"), ("pip", "24")]);
        assert_eq!(
            differences(&expected, &actual, false),
            [
                "b 2.0 is still installed, the plan removes it",
                "c is not installed, the plan says 3",
                "pip 24 is installed, the plan does not have it",
            ]
        );
        assert_eq!(differences(&expected, &actual, true).len(), 2);
    }

    #[test]
    fn a_mismatch_names_the_drift_since_the_freeze() {
        let frozen = versions(&[("a", "1.0"), ("b", "2.0")]);
        let locked = versions(&[("a", "1.0"), ("b", "2.0"), ("x", "9")]);
        let after = versions(&[("a", "1.1"), ("c", "3"), ("x", "9")]);
        assert_eq!(
            mismatch("/v", &frozen, &changes(), &locked, &after, false).unwrap(),
            "after the push, /v is not what the plan makes it: x 9 is installed, the plan does \
             not have it (it had changed since vd-freeze: x 9 is installed, the plan does not \
             have it)"
        );
        let clean = versions(&[("a", "1.1"), ("c", "3")]);
        assert_eq!(
            mismatch("/v", &frozen, &changes(), &frozen, &clean, false),
            None
        );
    }

    #[test]
    fn only_what_changed_under_the_lock_was_applied() {
        // `a` was upgraded by an earlier push already; `b` was removed now.
        let before = versions(&[("a", "1.1"), ("b", "2.0")]);
        let after = versions(&[("a", "1.1"), ("c", "3")]);
        assert_eq!(
            applied(&changes(), &before, &after),
            Applied {
                installed: vec!["c==3".into()],
                removed: vec!["b".into()],
            }
        );
    }
}
