//! The fingerprint of the state a plan was made from, and the words for how
//! a venv drifted from it.
//!
//! vd-diff plans against a freeze; a plan saved and reviewed is only right
//! for the venv as it was frozen. vd-diff stamps each plan with
//! [`of_state`] (`planned_from`): a sha256 over the interpreter
//! (implementation and version) and every installed `name==version`, or
//! over "absent" for a venv still to create. vd-push checks it on the host,
//! under the venv's lock and before pip runs, with `freeze.py` (beside the
//! remote scripts), which computes the same text from the freeze it just
//! took, in the same process; the two are tested against each other. When they differ, nothing
//! is installed and [`drift`] names what changed.

use crate::record::{self, Facts, Installed, Python, Record};
use anyhow::{bail, Result};
use sha2::{Digest, Sha256};

/// The first line of the text hashed: its version, should it ever change.
const HEADER: &str = "vd-state 1";

/// The fingerprint of a venv's state: `sha256:HEX` over the interpreter and
/// every installed distribution, or over "absent" when `installed` is
/// `None` (a venv still to create).
pub fn of_state(python: Option<&Facts>, installed: Option<&Installed>) -> String {
    let mut text = format!("{HEADER}\n");
    match installed {
        None => text.push_str("absent\n"),
        Some(installed) => {
            let fact = |f: Option<&Option<String>>| f.and_then(|v| v.clone()).unwrap_or_default();
            text.push_str(&format!(
                "python {} {}\n",
                fact(python.map(|p| &p.implementation)),
                fact(python.map(|p| &p.version))
            ));
            for (name, version) in installed {
                text.push_str(&format!("{name}=={version}\n"));
            }
        }
    }
    format!("sha256:{:x}", Sha256::digest(text.as_bytes()))
}

/// Whether `text` is a fingerprint as [`of_state`] writes it (`sha256:`
/// and 64 hex digits). A `planned_from` that is anything else is an error:
/// taken as it is, two words would read as two accepted states on the
/// host, and a push would check against a state nobody planned from.
pub fn check(text: &str) -> Result<()> {
    let hex = text.strip_prefix("sha256:").unwrap_or_default();
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!(
            "{text:?} is not a fingerprint (`sha256:` and 64 hex digits, as vd-diff writes it): \
             plan again with vd-diff"
        );
    }
    Ok(())
}

/// The fingerprint of the state a frozen record describes: its `python`
/// facts and `installed`, or a venv still to create (`venv_exists: false`).
pub fn of_record(record: &Record) -> Result<String> {
    let facts = match record::get::<Python>(record)? {
        Some(Python::Facts(facts)) => Some(*facts),
        _ => None,
    };
    if !record::venv_exists(record) {
        return Ok(of_state(facts.as_ref(), None));
    }
    let installed = record::installed(record)?;
    Ok(of_state(facts.as_ref(), Some(&installed)))
}

/// How the venv found under the lock (`now`, with its interpreter's
/// version) differs from the state planned from, one change per element:
/// `django 5.2.1 → 5.2.3`, `six 1.16.0 installed`, `attrs 23.1.0 removed`.
/// `planned` is `None` for a venv planned as absent.
pub fn drift(
    planned: Option<(&Installed, Option<&str>)>,
    now: &Installed,
    now_python: Option<&str>,
) -> Vec<String> {
    let Some((before, before_python)) = planned else {
        return vec!["the venv was made".to_string()];
    };
    let mut words = Vec::new();
    if before_python != now_python {
        words.push(format!(
            "python {} → {}",
            before_python.unwrap_or("?"),
            now_python.unwrap_or("?")
        ));
    }
    for (name, was) in before {
        match now.get(name) {
            None => words.push(format!("{name} {was} removed")),
            Some(is) if is != was => words.push(format!("{name} {was} → {is}")),
            Some(_) => {}
        }
    }
    for (name, is) in now {
        if !before.contains_key(name) {
            words.push(format!("{name} {is} installed"));
        }
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::push::verify::tests::versions;
    use crate::remote::exit;
    use crate::remote::freeze::FREEZE_SCRIPT;
    use std::io::Write;
    use std::process::{Command, Stdio};

    fn facts(version: &str) -> Facts {
        serde_json::from_value(serde_json::json!({
            "implementation": "cpython", "version": version, "executable": "/v/bin/python"
        }))
        .unwrap()
    }

    /// The exit status of freeze.py's check (`--check ACCEPT [HOLDS]`) of
    /// `freeze`, run by this machine's python3.
    fn script(freeze: &serde_json::Value, accept: &str, holds: Option<&str>) -> Option<i32> {
        let mut child = Command::new("python3")
            .args(["-E", "-s", "-c", FREEZE_SCRIPT, "--check", accept])
            .args(holds)
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run python3 ({e}): install Python 3"));
        child
            .stdin
            .take()
            .unwrap()
            .write_all(freeze.to_string().as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.stderr.is_empty(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.status.code()
    }

    /// Whether freeze.py says `freeze` has the fingerprint `expected`.
    fn script_matches(freeze: &serde_json::Value, expected: &str) -> bool {
        match script(freeze, expected, None) {
            Some(0) => true,
            Some(exit::DRIFTED) => false,
            other => panic!("freeze.py --check exited {other:?}"),
        }
    }

    #[test]
    fn the_host_tells_planned_from_made_and_checks_a_new_set() {
        let freeze = serde_json::json!({
            "python": {"implementation": "cpython", "version": "3.11.7"},
            "markers": {}, "installed": {"a": "1.0", "pip": "24.0"},
        });
        let from = of_state(Some(&facts("3.11.7")), Some(&versions(&[("a", "0.9")])));
        let made = of_state(
            Some(&facts("3.11.7")),
            Some(&versions(&[("a", "1.0"), ("pip", "24.0")])),
        );
        let (made_, drifted) = (Some(exit::MADE), Some(exit::DRIFTED));
        assert_eq!(script(&freeze, &format!("{from} {made}"), None), made_);
        assert_eq!(script(&freeze, &format!("{made} {from}"), None), Some(0));
        assert_eq!(script(&freeze, &from, None), drifted);
        // Holding exactly the new set (pip aside) is the state made too.
        assert_eq!(script(&freeze, "", Some("a==1.0")), made_);
        assert_eq!(script(&freeze, &from, Some("a==1.0")), made_);
        assert_eq!(script(&freeze, "", Some("a==1.0 b==2")), drifted);
        assert_eq!(script(&freeze, "", Some("a==0.9")), drifted);
        // An empty set is held by a venv with nothing but pip and its kin.
        assert_eq!(script(&freeze, "", Some("")), drifted);
        let bare = serde_json::json!({"python": {}, "installed": {"pip": "24.0"}});
        assert_eq!(script(&bare, "", Some("")), made_);
        // Nothing asked: nothing to tell apart.
        assert_eq!(script(&freeze, "", None), Some(0));
    }

    #[test]
    fn the_host_computes_the_same_fingerprint() {
        let installed = versions(&[("django", "5.2.1"), ("zope-interface", "6.4"), ("é", "1")]);
        let planned = of_state(Some(&facts("3.11.7")), Some(&installed));
        assert!(planned.starts_with("sha256:") && planned.len() == 7 + 64);
        let freeze = serde_json::json!({
            "python": {"implementation": "cpython", "version": "3.11.7", "executable": "/g/2/bin/python"},
            "markers": {}, "installed": {"zope-interface": "6.4", "é": "1", "django": "5.2.1"},
        });
        assert!(script_matches(&freeze, &planned));
        let mut upgraded = freeze.clone();
        upgraded["installed"]["django"] = "5.2.3".into();
        assert!(!script_matches(&upgraded, &planned));
        let mut newer = freeze.clone();
        newer["python"]["version"] = "3.11.9".into();
        assert!(!script_matches(&newer, &planned));
        assert!(!script_matches(&freeze, &of_state(None, None)));
    }

    #[test]
    fn only_a_fingerprint_passes_the_check() {
        let good = of_state(None, None);
        assert!(check(&good).is_ok());
        for bad in [
            "".to_string(),
            format!("{good} {good}"),
            good.replace("sha256:", "md5:"),
            good[..40].to_string(),
            format!("{}z", &good[..good.len() - 1]),
        ] {
            assert!(check(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn drift_names_each_change() {
        let before = versions(&[("django", "5.2.1"), ("attrs", "23.1.0")]);
        let now = versions(&[("django", "5.2.3"), ("six", "1.16.0")]);
        assert_eq!(
            drift(Some((&before, Some("3.11.7"))), &now, Some("3.11.9")),
            [
                "python 3.11.7 → 3.11.9",
                "attrs 23.1.0 removed",
                "django 5.2.1 → 5.2.3",
                "six 1.16.0 installed"
            ]
        );
        assert!(drift(Some((&before, None)), &before, None).is_empty());
        assert_eq!(drift(None, &now, None), ["the venv was made"]);
    }
}
