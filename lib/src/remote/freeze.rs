//! The freeze: one interpreter's facts and what its venv has installed.
//!
//! The command runs [`FREEZE_SCRIPT`] (`freeze.py`, beside this file, sent on
//! stdin) with the venv's interpreter; what it prints is one JSON object read
//! here into a [`FreezeOutput`]. vd-freeze runs it on its own; vd-push runs
//! the same script twice under its lock (see [`super::push`]) and reads each
//! freeze with [`FreezeOutput::parse`].

use super::venv_python;
use crate::record::{Facts, Freeze, Markers};
use crate::shell;
use crate::transport::Finished;
use anyhow::{bail, Context, Result};
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
    /// The interpreter's facts (`python`).
    pub python: Facts,
    /// The PEP 508 environment (`markers`).
    pub markers: Markers,
    /// What the venv holds.
    pub installed: Installed,
}

/// The `installed` part of a freeze.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Installed {
    /// Not asked for: the venv does not exist yet (`--no-installed`).
    NotAsked,
    /// Asked for, but the interpreter could not list its distributions.
    Unknown,
    /// {normalized name: version}.
    Listed(BTreeMap<String, String>),
}

impl FreezeOutput {
    /// Read the JSON object the freeze script prints.
    pub fn parse(text: &str) -> Result<FreezeOutput> {
        let object: serde_json::Map<String, serde_json::Value> = serde_json::from_str(text)
            .with_context(|| format!("the freeze script printed no JSON object: {text:?}"))?;
        for name in ["python", "markers"] {
            if !object.contains_key(name) {
                bail!("the freeze script printed no `{name}`");
            }
        }
        let facts: Freeze = serde_json::from_value(serde_json::Value::Object(object))
            .context("the freeze script printed facts vd cannot read")?;
        let installed = match facts.installed {
            None => Installed::NotAsked,
            Some(None) => Installed::Unknown,
            Some(Some(installed)) => Installed::Listed(installed.by_name()),
        };
        Ok(FreezeOutput {
            python: facts.python,
            markers: facts.markers,
            installed,
        })
    }

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
                output.python.version.as_deref().unwrap_or("?")
            ),
            Installed::Listed(_) => {
                if output.python.venv != Some(true) {
                    bail!(
                        "{venv} is not a virtualenv: its bin/python is the interpreter of {} (there is no pyvenv.cfg)",
                        output.python.prefix.as_deref().unwrap_or("?")
                    );
                }
            }
        }
        Ok(output)
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

    #[test]
    fn reads_a_venv_freeze() {
        let out = FreezeOutput::read(&Finished::of(0, VENV, ""), "/srv/shop/venv").unwrap();
        assert!(matches!(out.installed, Installed::Listed(_)));
        let installed = out.installed().unwrap();
        assert_eq!(installed.len(), 3);
        assert_eq!(installed["pip"], "23.2.1");
        assert_eq!(installed["vdp-alpha"], "1.0");
        assert_eq!(out.python.version.as_deref(), Some("3.11.7"));
        assert_eq!(
            out.python.executable.as_deref(),
            Some("/srv/shop/venv/bin/python")
        );
        assert_eq!(out.markers.0["python_version"], "3.11");
        // Names are PEP 503 names, whoever printed them.
        let text = r#"{"installed": {"Django": "5.0.6", "zope.interface": "6.4"}, "markers": {}, "python": {"venv": true}}"#;
        let out = FreezeOutput::parse(text).unwrap();
        let names: Vec<&String> = out.installed().unwrap().keys().collect();
        assert_eq!(names, ["django", "zope-interface"]);
    }

    #[test]
    fn a_freeze_without_installed_is_a_venv_to_create() {
        let out = FreezeOutput::read(&Finished::of(0, NO_VENV, ""), "/srv/new").unwrap();
        assert_eq!(out.installed, Installed::NotAsked);
        assert!(!matches!(out.installed, Installed::Listed(_)));
        assert!(out.installed().is_err());
        assert_eq!(out.python.executable.as_deref(), Some("/usr/bin/python3"));
    }

    #[test]
    fn says_why_there_is_no_freeze() {
        let err = |f: Finished| format!("{:#}", FreezeOutput::read(&f, "/srv/shop").unwrap_err());
        let not_a_venv = "/srv/shop exists but is not a virtualenv (it has no bin/python)\n";
        assert_eq!(
            err(Finished::of(NOT_A_VENV, "", not_a_venv)),
            not_a_venv.trim()
        );
        assert_eq!(
            err(Finished::of(127, "", "sh: python3: not found\n")),
            "the freeze command failed (exit status 127): sh: python3: not found"
        );
        assert!(err(Finished::of(0, "Traceback", "")).contains("printed no JSON object"));
        assert!(err(Finished::of(0, r#"{"python": {}}"#, "")).contains("printed no `markers`"));
        let old =
            r#"{"installed": null, "markers": {}, "python": {"version": "3.6.15", "venv": true}}"#;
        assert!(err(Finished::of(0, old, "")).contains("python 3.6.15 in /srv/shop is too old"));
        let system =
            r#"{"installed": {}, "markers": {}, "python": {"venv": false, "prefix": "/usr"}}"#;
        assert!(err(Finished::of(0, system, "")).contains("interpreter of /usr"));
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
