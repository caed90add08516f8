//! A saved freeze as a lock: the `installed` set each target had when its
//! vd-freeze (or vd-push) output was saved, turned back into requirements
//! that pin exactly those versions. Re-applying it (`vd-diff --lock FILE`)
//! rolls the packages of a fleet back to that moment.
//!
//! Targets are matched by host, port, user and venv, the fields that say
//! where a venv is; the venv's own tools (pip, setuptools, wheel) are not
//! pinned, as `--exact` never removes them either.

use crate::plan::KEEP;
use crate::record::{self, Reader, Record};
use crate::requirement::{Origin, Requirement, Requirements};
use anyhow::{Context, Result};
use serde_json::Value;
use std::collections::HashMap;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// The saved records of one file, by where their venv is.
pub struct Lock {
    path: PathBuf,
    targets: HashMap<String, Result<Rc<Requirements>, String>>,
}

/// `host port user venv`, each as written (a port as text), for matching.
fn key(record: &Record) -> String {
    let part = |name: &str| match record.get(name) {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    };
    let port = match part("port").as_str() {
        "" => "22".to_string(),
        p => p.to_string(),
    };
    [part("host"), port, part("user"), part("venv")].join("\u{1f}")
}

impl Lock {
    /// Read a saved vd-freeze or vd-push output. A record that cannot serve
    /// as a lock (an error, no `installed`, a bad version) is remembered as
    /// an error for its target, not for the whole file.
    pub fn read(path: &Path) -> Result<Lock> {
        let file =
            File::open(path).with_context(|| format!("cannot read lock {}", path.display()))?;
        let mut targets = HashMap::new();
        for line in Reader::new(BufReader::new(file), "vd-diff") {
            let origin = format!("{} line {}", path.display(), line.number);
            let record = line.record;
            let pins = if let Some((_, message)) = record::error_of(&record) {
                Err(format!(
                    "{origin}: the saved record carries an error: {message}"
                ))
            } else {
                pins(&record, path, line.number).map_err(|e| format!("{origin}: {e:#}"))
            };
            targets.insert(key(&record), pins.map(Rc::new));
        }
        Ok(Lock {
            path: path.to_path_buf(),
            targets,
        })
    }

    /// The pins for the target this record names.
    pub fn pins_for(&self, record: &Record) -> Result<Rc<Requirements>, String> {
        match self.targets.get(&key(record)) {
            Some(pins) => pins.clone(),
            None => Err(format!(
                "{} has no saved record of {} (matched by host, port, user and venv)",
                self.path.display(),
                record::target_label(record)
            )),
        }
    }
}

/// `name==version` for each package the saved record lists as installed.
fn pins(record: &Record, path: &Path, line: usize) -> Result<Requirements> {
    let installed = record::installed(record)?.by_name();
    let mut reqs = Requirements::default();
    for (name, version) in installed {
        if KEEP.contains(&name.as_str()) {
            continue;
        }
        let origin = Origin::File {
            path: path.to_path_buf(),
            line,
        };
        reqs.requirements
            .push(Requirement::parse(&format!("{name}=={version}"), origin)?);
    }
    Ok(reqs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saved_records_become_pins_matched_by_where_the_venv_is() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("saved.jsonl");
        std::fs::write(
            &path,
            concat!(
                r#"{"host":"web1","port":22,"user":"deploy","venv":"/srv/a","installed":{"Django":"5.2","pip":"24.0","asgiref":"3.8.1"}}"#,
                "\n",
                r#"{"host":"web1","venv":"/srv/b","installed":{"six":"1.16.0"}}"#,
                "\n",
                r#"{"host":"web2","venv":"/srv/a","error":{"tool":"vd-freeze","message":"ssh: refused"}}"#,
                "\n",
                r#"{"host":"web3","venv":"/srv/a","installed":{"six":"not a version"}}"#,
                "\n",
            ),
        )
        .unwrap();
        let lock = Lock::read(&path).unwrap();
        let record = |text: &str| -> Record { serde_json::from_str(text).unwrap() };
        let a = lock
            .pins_for(&record(
                r#"{"host":"web1","port":"22","user":"deploy","venv":"/srv/a","installed":{}}"#,
            ))
            .unwrap();
        let texts: Vec<&str> = a.requirements.iter().map(|r| r.text.as_str()).collect();
        assert_eq!(texts, ["asgiref==3.8.1", "django==5.2"]);
        assert_eq!(
            a.requirements[0].origin.to_string(),
            format!("{} line 1", path.display())
        );
        // The port defaults to 22, and the user must match.
        assert!(lock
            .pins_for(&record(r#"{"host":"web1","venv":"/srv/b"}"#))
            .is_ok());
        let missing = lock
            .pins_for(&record(r#"{"host":"web1","user":"other","venv":"/srv/a"}"#))
            .unwrap_err();
        assert!(
            missing.contains("has no saved record of other@web1:/srv/a"),
            "{missing}"
        );
        let failed = lock
            .pins_for(&record(r#"{"host":"web2","venv":"/srv/a"}"#))
            .unwrap_err();
        assert!(failed.contains("line 3: the saved record carries an error: ssh: refused"));
        let bad = lock
            .pins_for(&record(r#"{"host":"web3","venv":"/srv/a"}"#))
            .unwrap_err();
        assert!(bad.contains("line 4: "), "{bad}");
    }
}
