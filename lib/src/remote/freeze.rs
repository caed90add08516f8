//! The freeze: one interpreter's facts and what its venv has installed.
//!
//! The command runs [`FREEZE_SCRIPT`] (`freeze.py`, beside this file, sent on
//! stdin) with the venv's interpreter; what it prints is one JSON object read
//! here into a [`FreezeOutput`]. vd-freeze runs it on its own; vd-push runs
//! the same script twice under its lock (see [`super::push`]) and reads each
//! freeze with [`FreezeOutput::parse`].

use super::venv_python;
use crate::shell;
use crate::transport::Finished;
use crate::wheel::normalize;
use anyhow::{anyhow, bail, Context, Result};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Prints the interpreter's facts and its installed distributions as one
/// JSON object (`python`, `markers`, `installed`).
pub const FREEZE_SCRIPT: &str = include_str!("freeze.py");

/// The exit status of [`freeze_command`] when the venv path exists but has
/// no interpreter.
pub const NOT_A_VENV: i32 = 3;

/// Run the script on stdin with the venv's interpreter, isolated from the
/// remote user's environment (`-I`: no PYTHONPATH, no user site, no current
/// directory on sys.path). When the venv does not exist, the host's `python`
/// describes the interpreter a new venv would get, without `installed`; when
/// the path exists but has no interpreter, exit [`NOT_A_VENV`].
pub fn freeze_command(venv: &str, python: &str) -> String {
    let interpreter = shell::quote(&venv_python(venv));
    let not_a_venv = format!(
        "{} exists but is not a virtualenv (it has no bin/python)",
        venv.trim_end_matches('/')
    );
    let cannot_run = format!(
        "{} cannot be run here (a broken link, or no permission for this user)",
        venv_python(venv)
    );
    format!(
        "if [ -e {venv} ]; then \
           if [ -f {interpreter} ] && [ -x {interpreter} ]; then exec {interpreter} -I -; fi; \
           if [ -L {interpreter} ] || [ -e {interpreter} ]; then echo {cannot_run} >&2; \
           else echo {not_a_venv} >&2; fi; \
           exit {NOT_A_VENV}; \
         fi; \
         exec {python} -I - --no-installed",
        venv = shell::quote(venv),
        not_a_venv = shell::quote(&not_a_venv),
        cannot_run = shell::quote(&cannot_run),
        python = shell::quote(python),
    )
}

/// What the freeze script printed, read.
#[derive(Debug, Clone, PartialEq)]
pub struct FreezeOutput {
    /// The interpreter's facts (a record's `python` after vd-freeze).
    pub python: Value,
    /// Its PEP 508 environment (a record's `markers`).
    pub markers: Value,
    pub installed: Installed,
}

/// What a freeze says is installed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Installed {
    /// Not asked (`--no-installed`): the venv does not exist yet.
    NotAsked,
    /// The interpreter cannot list its distributions (`null`).
    Unknown,
    /// `{normalized name: version}`.
    Listed(BTreeMap<String, String>),
}

impl FreezeOutput {
    /// One JSON object as the script prints it.
    pub fn parse(text: &str) -> Result<FreezeOutput> {
        let facts: Map<String, Value> = serde_json::from_str(text)
            .with_context(|| format!("the freeze script printed no JSON object: {text:?}"))?;
        let field = |name: &str| {
            facts
                .get(name)
                .cloned()
                .ok_or_else(|| anyhow!("the freeze script printed no `{name}`"))
        };
        let installed = match facts.get("installed") {
            None => Installed::NotAsked,
            Some(Value::Null) => Installed::Unknown,
            Some(Value::Object(map)) => Installed::Listed(
                map.iter()
                    .map(|(n, v)| (normalize(n), v.as_str().unwrap_or("").to_string()))
                    .collect(),
            ),
            Some(other) => bail!("the freeze script printed `installed` as {other}, not a map"),
        };
        Ok(FreezeOutput {
            python: field("python")?,
            markers: field("markers")?,
            installed,
        })
    }

    /// What [`freeze_command`] ended with, for the venv `venv`: the freeze
    /// of a virtualenv (or of the host's python for a venv still to create),
    /// or an error saying why there is none.
    pub fn read(finished: &Finished, venv: &str) -> Result<FreezeOutput> {
        if finished.status == NOT_A_VENV {
            bail!("{}", finished.stderr_text());
        }
        if !finished.success() {
            let stderr = finished.stderr_text();
            bail!(
                "the freeze command failed (exit status {}){}",
                finished.status,
                if stderr.is_empty() {
                    String::new()
                } else {
                    format!(": {stderr}")
                }
            );
        }
        let output = FreezeOutput::parse(String::from_utf8_lossy(&finished.stdout).trim())?;
        match &output.installed {
            Installed::NotAsked => {}
            Installed::Unknown => bail!(
                "python {} in {venv} is too old to list its distributions (vd needs 3.8 or newer)",
                output
                    .python
                    .get("version")
                    .and_then(Value::as_str)
                    .unwrap_or("?")
            ),
            Installed::Listed(_) => {
                if output.python.get("venv") != Some(&Value::Bool(true)) {
                    bail!(
                        "{venv} is not a virtualenv: its bin/python is the interpreter of {} (there is no pyvenv.cfg)",
                        output.python.get("prefix").and_then(Value::as_str).unwrap_or("?")
                    );
                }
            }
        }
        Ok(output)
    }

    /// The venv exists (the freeze listed what it holds).
    pub fn venv_exists(&self) -> bool {
        matches!(self.installed, Installed::Listed(_))
    }

    /// `{normalized name: version}` of a venv's freeze; an error for a
    /// freeze without the list.
    pub fn installed(&self) -> Result<&BTreeMap<String, String>> {
        match &self.installed {
            Installed::Listed(map) => Ok(map),
            Installed::NotAsked => bail!("the venv's freeze printed no `installed`"),
            Installed::Unknown => bail!("the venv's freeze could not list its distributions"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// What freeze.py printed in a venv of CPython 3.11 on Linux, and for
    /// the host's python3 (`--no-installed`), captured.
    const VENV: &str = include_str!("testdata/freeze-venv.json");
    const NO_VENV: &str = include_str!("testdata/freeze-no-venv.json");

    fn finished(status: i32, stdout: &str, stderr: &str) -> Finished {
        Finished {
            status,
            stdout: stdout.as_bytes().to_vec(),
            stderr: stderr.as_bytes().to_vec(),
        }
    }

    #[test]
    fn reads_a_venv_freeze() {
        let out = FreezeOutput::read(&finished(0, VENV, ""), "/srv/shop/venv").unwrap();
        assert!(out.venv_exists());
        let installed = out.installed().unwrap();
        assert_eq!(installed.len(), 3);
        assert_eq!(installed["pip"], "23.2.1");
        assert_eq!(installed["vdp-alpha"], "1.0");
        assert_eq!(out.python["version"], "3.11.7");
        assert_eq!(out.python["executable"], "/srv/shop/venv/bin/python");
        assert_eq!(out.markers["python_version"], "3.11");
        // Names are PEP 503 names, whoever printed them.
        let text = r#"{"installed": {"Django": "5.0.6", "zope.interface": "6.4"}, "markers": {}, "python": {"venv": true}}"#;
        let out = FreezeOutput::parse(text).unwrap();
        let names: Vec<&String> = out.installed().unwrap().keys().collect();
        assert_eq!(names, ["django", "zope-interface"]);
    }

    #[test]
    fn a_freeze_without_installed_is_a_venv_to_create() {
        let out = FreezeOutput::read(&finished(0, NO_VENV, ""), "/srv/new").unwrap();
        assert_eq!(out.installed, Installed::NotAsked);
        assert!(!out.venv_exists());
        assert!(out.installed().is_err());
        assert_eq!(out.python["executable"], "/usr/bin/python3");
    }

    #[test]
    fn says_why_there_is_no_freeze() {
        let err = |f: Finished| format!("{:#}", FreezeOutput::read(&f, "/srv/shop").unwrap_err());
        let not_a_venv = "/srv/shop exists but is not a virtualenv (it has no bin/python)\n";
        assert_eq!(err(finished(NOT_A_VENV, "", not_a_venv)), not_a_venv.trim());
        assert_eq!(
            err(finished(127, "", "sh: python3: not found\n")),
            "the freeze command failed (exit status 127): sh: python3: not found"
        );
        assert!(err(finished(0, "Traceback", "")).contains("printed no JSON object"));
        assert!(err(finished(0, r#"{"python": {}}"#, "")).contains("printed no `markers`"));
        let old =
            r#"{"installed": null, "markers": {}, "python": {"version": "3.6.15", "venv": true}}"#;
        assert!(err(finished(0, old, "")).contains("python 3.6.15 in /srv/shop is too old"));
        let system =
            r#"{"installed": {}, "markers": {}, "python": {"venv": false, "prefix": "/usr"}}"#;
        assert!(err(finished(0, system, "")).contains("interpreter of /usr"));
    }

    #[test]
    fn freeze_command_tells_the_three_cases_apart() {
        let dir = tempfile::tempdir().unwrap();
        let run = |venv: &str| {
            Command::new("/bin/sh")
                .arg("-c")
                .arg(freeze_command(venv, "/bin/echo"))
                .output()
                .unwrap()
        };
        // Absent: the host's python runs, told there is nothing installed.
        let absent = run(&dir.path().join("nope").display().to_string());
        assert_eq!(
            String::from_utf8_lossy(&absent.stdout),
            "-I - --no-installed\n"
        );
        // Present without bin/python: not a venv.
        let plain = dir.path().join("plain $(touch pwned)");
        std::fs::create_dir(&plain).unwrap();
        let out = run(&plain.display().to_string());
        assert_eq!(out.status.code(), Some(NOT_A_VENV));
        assert!(String::from_utf8_lossy(&out.stderr).contains("is not a virtualenv"));
        assert!(!std::path::Path::new("pwned").exists());
    }
}
