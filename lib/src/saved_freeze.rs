//! A saved freeze: the `installed` set each target had when its vd-freeze
//! (or vd-push) output was saved, turned back into requirements that pin
//! exactly those versions. Re-applying it (`vd-diff --lock FILE`, the
//! user's word for it) rolls the packages of a fleet back to that moment.
//!
//! Targets are matched by host, port, user and venv, the fields that say
//! where a venv is; the venv's own tools (pip, setuptools, wheel) are not
//! pinned, as `--exact` never removes them either.

use crate::bounded;
use crate::messages;
use crate::plan::KEEP;
use crate::record::{self, Record, Target};
use crate::repo::Index;
use crate::requirement::{Origin, Requirement, Requirements};
use anyhow::{bail, Result};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// The saved records of one file, by where their venv is.
pub struct SavedFreeze {
    path: PathBuf,
    targets: HashMap<Key, Result<Rc<Requirements>, String>>,
}

/// Where a venv is: host, port (22 when not named), login user and path.
type Key = (String, u16, Option<String>, String);

fn key(target: &Target) -> Key {
    (
        target.host.clone(),
        target.port.unwrap_or(22),
        target.user.clone(),
        target.venv.clone(),
    )
}

impl SavedFreeze {
    /// Read a saved vd-freeze or vd-push output. A record that cannot serve
    /// as pins (an error, no `installed`, a bad version) is remembered as
    /// an error for its target, not for the whole file; so is a target
    /// saved twice, since which of its records to apply is a guess. The
    /// file must be a regular file within [`bounded::SAVED_FREEZE`] bytes, each line
    /// within [`bounded::SAVED_FREEZE_LINE`]: a device, a FIFO or a huge file is
    /// refused, not read until memory runs out.
    pub fn read(path: &Path) -> Result<SavedFreeze> {
        let text = bounded::read_text(path, bounded::SAVED_FREEZE, "lock")?;
        let mut targets = HashMap::new();
        let mut lines: HashMap<Key, usize> = HashMap::new();
        for (i, text) in text.lines().enumerate() {
            let number = i + 1;
            if text.trim().is_empty() {
                continue;
            }
            let origin = format!("{} line {number}", path.display());
            if text.len() > bounded::SAVED_FREEZE_LINE {
                bail!(
                    "{origin}: longer than {} bytes (refused; a saved record is far shorter)",
                    bounded::SAVED_FREEZE_LINE
                );
            }
            let record = record::parse_line("vd-diff", number, text);
            // A line that names no venv cannot stand for any target: said
            // once here; a target it was meant for is then "not found".
            let target = match Target::parse(&record) {
                Ok(target) => target,
                Err(e) => {
                    messages::warn("vd-diff", &format!("{origin}: not a target record: {e:#}"));
                    continue;
                }
            };
            let key = key(&target);
            if let Some(first) = lines.get(&key) {
                let message = format!(
                    "{} lines {first} and {number} both hold a saved record of {}; a lock holds one record per target (remove the one not to roll back to)",
                    path.display(),
                    record::target_label(&record)
                );
                targets.insert(key, Err(message));
                continue;
            }
            lines.insert(key.clone(), number);
            let pins = if let Some((_, message)) = record::error_of(&record) {
                Err(format!(
                    "{origin}: the saved record carries an error: {message}"
                ))
            } else {
                pins(&record, path, number).map_err(|e| format!("{origin}: {e:#}"))
            };
            targets.insert(key, pins.map(Rc::new));
        }
        Ok(SavedFreeze {
            path: path.to_path_buf(),
            targets,
        })
    }

    /// The pins for `target` (whose record is `record`). Every pinned
    /// version must be in the repository, even one the venv still has: a
    /// rollback that only holds on the venvs that kept their packages is
    /// not one to rely on.
    pub fn pins_for(
        &self,
        target: &Target,
        record: &Record,
        index: &Index,
    ) -> Result<Rc<Requirements>, String> {
        match self.targets.get(&key(target)) {
            Some(Ok(pins)) => {
                for pin in &pins.requirements {
                    let present = index
                        .wheels_of(&pin.name)
                        .iter()
                        .any(|&w| pin.specifiers.contains(&index.name(w).version));
                    if !present {
                        return Err(format!(
                            "{}: the repository has no {} {} (vd-add its wheel to roll back to it)",
                            pin.origin, pin.name, pin.specifiers
                        ));
                    }
                }
                Ok(pins.clone())
            }
            Some(Err(e)) => Err(e.clone()),
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
    let installed = record::installed(record)?;
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

    /// A repository of these wheels, in memory.
    fn index(files: &[&str]) -> Index {
        let files: Vec<(&str, &str)> = files.iter().map(|f| (*f, "")).collect();
        crate::testing::wheel_index(&files)
    }

    #[test]
    fn a_target_saved_twice_is_an_error_naming_both_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("saved.jsonl");
        let line = |version: &str| {
            format!(r#"{{"host":"web1","venv":"/srv/a","installed":{{"six":"{version}"}}}}"#)
        };
        let text = format!(
            "{}\n\n{}\n{}\n",
            line("1.16.0"),
            line("1.15.0"),
            r#"{"host":"web2","venv":"/srv/a","installed":{}}"#
        );
        std::fs::write(&path, text).unwrap();
        let saved = SavedFreeze::read(&path).unwrap();
        let repo = index(&["six-1.16.0-py2.py3-none-any.whl"]);
        let pins_for = |text: &str| {
            let record: Record = serde_json::from_str(text).unwrap();
            saved.pins_for(&Target::parse(&record).unwrap(), &record, &repo)
        };
        let e = pins_for(r#"{"host":"web1","venv":"/srv/a"}"#).unwrap_err();
        assert!(
            e.contains("saved.jsonl lines 1 and 3 both hold a saved record of web1:/srv/a"),
            "{e}"
        );
        assert!(pins_for(r#"{"host":"web2","venv":"/srv/a"}"#).is_ok());
    }

    #[test]
    fn a_line_past_the_bound_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("saved.jsonl");
        let long = format!("{{\"x\":\"{}\"}}\n", "a".repeat(bounded::SAVED_FREEZE_LINE));
        std::fs::write(&path, format!("{{}}\n{long}")).unwrap();
        let e = format!("{:#}", SavedFreeze::read(&path).err().unwrap());
        assert!(e.contains("saved.jsonl line 2: longer than"), "{e}");
    }

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
                r#"{"host":"web4","venv":"relative"}"#,
                "\n",
            ),
        )
        .unwrap();
        let saved = SavedFreeze::read(&path).unwrap();
        let repo = index(&[
            "Django-5.2-py3-none-any.whl",
            "asgiref-3.8.1-py3-none-any.whl",
            "six-1.16.0-py2.py3-none-any.whl",
        ]);
        let pins_for = |text: &str| {
            let record: Record = serde_json::from_str(text).unwrap();
            saved.pins_for(&Target::parse(&record).unwrap(), &record, &repo)
        };
        let a = pins_for(
            r#"{"host":"web1","port":"22","user":"deploy","venv":"/srv/a","installed":{}}"#,
        )
        .unwrap();
        let texts: Vec<&str> = a.requirements.iter().map(|r| r.text.as_str()).collect();
        assert_eq!(texts, ["asgiref==3.8.1", "django==5.2"]);
        assert_eq!(
            a.requirements[0].origin.to_string(),
            format!("{} line 1", path.display())
        );
        // The port defaults to 22, and the user must match.
        assert!(pins_for(r#"{"host":"web1","venv":"/srv/b"}"#).is_ok());
        let missing = pins_for(r#"{"host":"web1","user":"other","venv":"/srv/a"}"#).unwrap_err();
        assert!(
            missing.contains("has no saved record of other@web1:/srv/a"),
            "{missing}"
        );
        let failed = pins_for(r#"{"host":"web2","venv":"/srv/a"}"#).unwrap_err();
        assert!(failed.contains("line 3: the saved record carries an error: ssh: refused"));
        let bad = pins_for(r#"{"host":"web3","venv":"/srv/a"}"#).unwrap_err();
        assert!(bad.contains("line 4: "), "{bad}");

        // A saved version the repository lost is an error even where the
        // venv still has it.
        let without_six = index(&["Django-5.2-py3-none-any.whl"]);
        let record: Record =
            serde_json::from_str(r#"{"host":"web1","venv":"/srv/b","installed":{"six":"1.16.0"}}"#)
                .unwrap();
        let gone = saved
            .pins_for(&Target::parse(&record).unwrap(), &record, &without_six)
            .unwrap_err();
        assert!(
            gone.contains("line 2: the repository has no six ==1.16.0"),
            "{gone}"
        );
    }
}
