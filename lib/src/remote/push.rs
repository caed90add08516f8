//! The push: one venv changed by pip, under a lock, between two freezes.
//!
//! The command runs [`PUSH_SCRIPT`] (`push.sh`, beside this file) as the
//! venv's user, with every value as a quoted argument and the freeze script
//! on stdin; what it prints is read into a [`PushOutcome`]. Which changes to
//! make, and whether the venv ended as the plan says, is [`crate::push`]'s.

use super::freeze::{FreezeOutput, FREEZE_SCRIPT};
use super::venv_python;
use crate::shell;
use crate::transport::Finished;
use anyhow::{bail, Result};

/// The shell program of a push (see its header for its arguments and output).
pub const PUSH_SCRIPT: &str = include_str!("push.sh");

/// What [`push_command`] sends on stdin: the freeze, run before and after pip.
pub const PUSH_STDIN: &str = FREEZE_SCRIPT;

/// How long a push waits for another push's lock on a venv, in seconds.
pub const LOCK_WAIT_SECS: u32 = 900;

/// How many lines of pip's output an error carries.
const PIP_TAIL_LINES: usize = 20;

/// `VENV/bin/python -m pip` with the options every vd-push pip run takes
/// (the same as `pip()` in `push.sh`): no user or site configuration
/// (`--isolated`), no prompts, no cache in the venv user's home.
fn pip(venv: &str) -> Vec<String> {
    [
        venv_python(venv).as_str(),
        "-m",
        "pip",
        "--isolated",
        "--disable-pip-version-check",
        "--no-input",
        "--no-cache-dir",
    ]
    .map(str::to_string)
    .to_vec()
}

/// One pip call that installs every file (upgrades and downgrades alike):
/// from the files only, dependencies not resolved (vd-diff checked them).
/// What [`push_command`] runs, as `--dry-run` shows it.
pub fn pip_install_command(venv: &str, files: &[String]) -> String {
    let mut words = pip(venv);
    words.extend(["install", "--no-index", "--no-deps"].map(str::to_string));
    words.extend(files.iter().cloned());
    shell::join(&words)
}

/// One pip call that uninstalls the named packages.
pub fn pip_uninstall_command(venv: &str, names: &[String]) -> String {
    let mut words = pip(venv);
    words.extend(["uninstall", "-y"].map(str::to_string));
    words.extend(names.iter().cloned());
    shell::join(&words)
}

/// Make a virtualenv with `python`.
pub fn create_venv_command(python: &str, venv: &str) -> String {
    shell::join(&[python, "-m", "venv", venv])
}

/// What [`push_command`] does to one venv.
pub struct PushSteps<'a> {
    pub venv: &'a str,
    /// Make the venv first (when it has no interpreter) with this python.
    pub create_with: Option<&'a str>,
    /// Wheel files on the host, to install with one pip call.
    pub install: &'a [String],
    /// Packages to uninstall first.
    pub remove: &'a [String],
}

/// vd-push's change to one venv: [`PUSH_SCRIPT`] run by `/bin/sh` with the
/// steps as arguments, to be sent [`PUSH_STDIN`] on stdin.
pub fn push_command(steps: &PushSteps) -> String {
    let lock_wait = LOCK_WAIT_SECS.to_string();
    let nremove = steps.remove.len().to_string();
    let mut words = vec![
        "/bin/sh",
        "-c",
        PUSH_SCRIPT,
        "vd-push",
        steps.venv.trim_end_matches('/'),
        &lock_wait,
        steps.create_with.unwrap_or(""),
        &nremove,
    ];
    words.extend(steps.remove.iter().map(String::as_str));
    words.extend(steps.install.iter().map(String::as_str));
    shell::join(&words)
}

/// What [`push_command`] printed: the venv as pip found it and left it.
#[derive(Debug)]
pub struct PushOutcome {
    /// The venv was made by this push.
    pub created: bool,
    /// The freeze under the lock, before pip ran.
    pub before: FreezeOutput,
    /// pip's exit statuses (0 for a step not run).
    pub uninstall_status: i32,
    pub install_status: i32,
    /// The freeze under the lock, after pip ran.
    pub after: FreezeOutput,
    /// The end of pip's output (stderr), for errors.
    pub pip_output: String,
}

impl PushOutcome {
    pub fn parse(finished: &Finished) -> Result<PushOutcome> {
        let stdout = String::from_utf8_lossy(&finished.stdout);
        let mut lines = stdout.lines();
        let mut created = false;
        let mut before = None;
        let mut statuses = None;
        let mut after = None;
        let freeze = |line: &str| {
            FreezeOutput::parse(line).map_err(|e| anyhow::anyhow!("the venv's freeze: {e:#}"))
        };
        while let Some(line) = lines.next() {
            match line.split_whitespace().collect::<Vec<_>>().as_slice() {
                ["vd-created"] => created = true,
                ["vd-before"] => before = lines.next().map(freeze).transpose()?,
                ["vd-pip", un, inst] => {
                    statuses = Some((un.parse().unwrap_or(-1), inst.parse().unwrap_or(-1)));
                    after = lines.next().map(freeze).transpose()?;
                }
                _ => {}
            }
        }
        let stderr = finished.stderr_text();
        let (Some(before), Some((uninstall_status, install_status))) = (before, statuses) else {
            bail!(
                "the push command failed before pip ran (exit status {}): {}",
                finished.status,
                if stderr.is_empty() {
                    "no message"
                } else {
                    &stderr
                }
            );
        };
        let Some(after) = after else {
            bail!(
                "the venv could not be read after pip ran (exit status {}): {stderr}",
                finished.status
            );
        };
        let lines: Vec<&str> = stderr.lines().collect();
        let pip_output = lines[lines.len().saturating_sub(PIP_TAIL_LINES)..].join("\n");
        Ok(PushOutcome {
            created,
            before,
            uninstall_status,
            install_status,
            after,
            pip_output,
        })
    }

    /// pip's failure in words, with the end of its output; `None` when
    /// every pip run succeeded. An install is not tried after a failed
    /// uninstall.
    pub fn pip_failure(&self) -> Option<String> {
        let (step, status) = if self.uninstall_status != 0 {
            ("uninstall", self.uninstall_status)
        } else if self.install_status != 0 {
            ("install", self.install_status)
        } else {
            return None;
        };
        Some(format!(
            "pip {step} failed (exit status {status}): {}",
            self.pip_output
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;
    use std::process::{Command, Stdio};

    /// What a push of one upgrade printed on a host (CPython 3.11, pip
    /// 23.2), captured.
    const UPGRADE_STDOUT: &str = include_str!("testdata/push-upgrade.stdout");
    const UPGRADE_STDERR: &str = include_str!("testdata/push-upgrade.stderr");

    #[test]
    fn reads_what_a_push_printed() {
        let outcome = PushOutcome::parse(&Finished::of(0, UPGRADE_STDOUT, UPGRADE_STDERR)).unwrap();
        assert!(!outcome.created);
        assert_eq!(outcome.before.installed().unwrap()["vdp-alpha"], "1.0");
        assert_eq!(outcome.after.installed().unwrap()["vdp-alpha"], "2.0");
        assert_eq!(
            outcome.after.python.prefix.as_deref(),
            Some("/srv/shop/venv")
        );
        assert_eq!(outcome.pip_failure(), None);
        assert!(outcome
            .pip_output
            .ends_with("Successfully installed vdp-alpha-2.0"));

        let failed = UPGRADE_STDOUT.replace("vd-pip 0 0", "vd-pip 0 1");
        let outcome =
            PushOutcome::parse(&Finished::of(1, &failed, "ERROR: no space left\n")).unwrap();
        assert_eq!(
            outcome.pip_failure().unwrap(),
            "pip install failed (exit status 1): ERROR: no space left"
        );
    }

    #[test]
    fn says_how_far_a_failed_push_got() {
        let err = |stdout: &str, stderr: &str| {
            format!(
                "{:#}",
                PushOutcome::parse(&Finished::of(5, stdout, stderr)).unwrap_err()
            )
        };
        let busy = "another push has held the lock /v/.vd-lock for 900s; gave up\n";
        assert_eq!(
            err("", busy),
            format!(
                "the push command failed before pip ran (exit status 5): {}",
                busy.trim()
            )
        );
        let cut = UPGRADE_STDOUT
            .lines()
            .take(3)
            .collect::<Vec<_>>()
            .join("\n");
        assert!(err(&cut, "Killed").contains("could not be read after pip ran"));
        assert!(err("vd-before\nTraceback (most recent call last):\n", "")
            .contains("the venv's freeze: the freeze script printed no JSON object"));
    }

    /// A venv whose `bin/python` is a shell script: it prints a freeze for
    /// `-I -` and logs any other call's arguments, one per line, to `calls`.
    fn fake_venv(venv: &Path) {
        fs::create_dir_all(venv.join("bin")).unwrap();
        let python = venv.join("bin/python");
        fs::write(
            &python,
            "#!/bin/sh\n\
             if [ \"$1\" = -I ]; then cat >/dev/null; \
               echo '{\"installed\": {}, \"markers\": {}, \"python\": {\"venv\": true}}'; exit 0; fi\n\
             for a; do printf '%s\\n' \"$a\"; done >>\"$(dirname \"$0\")/../calls\"\n\
             echo '--' >>\"$(dirname \"$0\")/../calls\"\n",
        )
        .unwrap();
        fs::set_permissions(&python, fs::Permissions::from_mode(0o755)).unwrap();
    }

    fn run(command: &str) -> Finished {
        let mut child = Command::new("/bin/sh")
            .arg("-c")
            .arg(command)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(PUSH_STDIN.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        Finished {
            status: out.status.code().unwrap_or(-1),
            stdout: out.stdout,
            stderr: out.stderr,
        }
    }

    #[test]
    fn the_script_runs_what_dry_run_shows_with_every_value_inert() {
        if Command::new("flock").arg("-V").output().is_err() {
            panic!("flock is not installed: apt-get install util-linux");
        }
        let dir = tempfile::tempdir().unwrap();
        let venv = dir.path().join("venv $(touch pwned) 'x'");
        fake_venv(&venv);
        let venv = venv.display().to_string();
        let file = dir.path().join("a b-1.0-py3-none-any.whl");
        fs::write(&file, b"wheel").unwrap();
        let install = vec![file.display().to_string()];
        let remove = vec!["old-one".to_string(), "$(id)".to_string()];
        let steps = PushSteps {
            venv: &venv,
            create_with: None,
            install: &install,
            remove: &remove,
        };
        let finished = run(&push_command(&steps));
        assert!(finished.success(), "{}", finished.stderr_text());
        let outcome = PushOutcome::parse(&finished).unwrap();
        assert!(!outcome.created);
        assert_eq!(outcome.pip_failure(), None);

        // The two pip runs, argument for argument as --dry-run shows them.
        let calls = fs::read_to_string(Path::new(&venv).join("calls")).unwrap();
        let calls: Vec<String> = calls
            .split("--\n")
            .filter(|c| !c.is_empty())
            .map(|c| {
                let mut words = vec![venv_python(&venv)];
                words.extend(c.lines().map(str::to_string));
                shell::join(&words)
            })
            .collect();
        assert_eq!(
            calls,
            [
                pip_uninstall_command(&venv, &remove),
                pip_install_command(&venv, &install)
            ]
        );
        assert!(Path::new(&venv).join(".vd-lock").exists());
        assert!(!dir.path().join("pwned").exists() && !Path::new("pwned").exists());
    }

    #[test]
    fn the_script_stops_before_pip_when_a_file_cannot_be_read_or_the_venv_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        let venv = dir.path().join("venv");
        fake_venv(&venv);
        let venv = venv.display().to_string();
        let install = vec![dir.path().join("missing.whl").display().to_string()];
        let steps = PushSteps {
            venv: &venv,
            create_with: None,
            install: &install,
            remove: &[],
        };
        let finished = run(&push_command(&steps));
        assert_eq!(finished.status, 5);
        let err = format!("{:#}", PushOutcome::parse(&finished).unwrap_err());
        assert!(err.contains("missing.whl cannot be read by"), "{err}");
        assert!(!Path::new(&venv).join("calls").exists());

        let absent = dir.path().join("absent").display().to_string();
        let steps = PushSteps {
            venv: &absent,
            create_with: None,
            install: &[],
            remove: &[],
        };
        let err = format!(
            "{:#}",
            PushOutcome::parse(&run(&push_command(&steps))).unwrap_err()
        );
        assert!(
            err.contains("absent does not exist (vd-push --create"),
            "{err}"
        );
    }
}
