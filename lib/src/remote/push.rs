//! The push: one venv changed by its installer (pip, or uv where it runs),
//! under a lock, between two freezes.
//!
//! The command runs [`PUSH_SCRIPT`] (`push.sh`, beside this file) as the
//! venv's user, with every value as a quoted argument and the freeze script
//! on stdin; what it prints is read into a [`PushOutcome`]. Which changes to
//! make, and whether the venv ended as the plan says, is [`crate::push`]'s.

use super::freeze::{FreezeOutput, FREEZE_SCRIPT};
use super::{pip_tail, program, said, script_command, steps, venv_python, INSTALL, LOCK_WAIT_SECS};
use crate::shell;
use crate::transport::Finished;
use anyhow::{bail, Result};

/// The shell script of a push (see its header for its arguments and output).
pub const PUSH_SCRIPT: &str = include_str!("push.sh");

/// The installer's step of a push (see its header), which `freeze.py
/// --around` runs between its two freezes.
pub const PUSH_STEP_SCRIPT: &str = include_str!("push_step.sh");

/// The program [`push_command`] runs: the prelude, then [`PUSH_SCRIPT`].
pub fn push_program() -> String {
    program(&[PUSH_SCRIPT])
}

/// The program of the installer's step: how it installs, then
/// [`PUSH_STEP_SCRIPT`]. Not the prelude: the step runs from push.sh's
/// directory with its umask, and everything in the command counts against
/// the SSH server's limit on one request, which the wheel files share.
pub fn push_step_program() -> String {
    format!("set -u\n{INSTALL}{PUSH_STEP_SCRIPT}")
}

/// What [`push_command`] sends on stdin: the freeze, run before and after
/// the installer (and around it, see `freeze.py --around`).
pub const PUSH_STDIN: &str = FREEZE_SCRIPT;

/// `VENV/bin/python -m pip` with the options every vd-push pip run takes
/// (the same as `pip_with` in `install.sh`): no user or site configuration
/// (`--isolated`), no prompts, no cache in the venv user's home. Every option
/// here exists since pip 6, so the pips old interpreters carry take them as
/// they are: 18.1 (ensurepip of 3.6), 19.2.3 (2.7's ensurepip) and 20.3.4
/// (virtualenv's for 2.7, the last pip for Python 2); nothing newer
/// (`--root-user-action`, `--python`) is used.
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

/// `uv pip SUBCOMMAND` into `venv` with the options every vd-push uv run
/// takes (the same as `install_wheels` in `install.sh`), then `args`.
fn uv_command(uv: &str, subcommand: &str, options: &[&str], venv: &str, args: &[String]) -> String {
    let python = venv_python(venv);
    let mut words = vec![uv, "pip", subcommand, "--no-config", "--offline"];
    words.extend(options);
    words.extend(["--python", python.as_str()]);
    words.extend(args.iter().map(String::as_str));
    shell::join(&words)
}

/// The call that installs every file: [`pip_install_command`], or with the
/// uv binary `uv`, its `uv pip install` from the files alone, which compiles
/// the venv's bytecode when `uv_compiles` (a new generation); a push in
/// place compiles only what it installed, in its freeze (as pip does).
pub fn install_command(
    uv: Option<&str>,
    venv: &str,
    files: &[String],
    uv_compiles: bool,
) -> String {
    match uv {
        None => pip_install_command(venv, files),
        Some(uv) => {
            let bytecode = match uv_compiles {
                true => "--compile-bytecode",
                false => "--no-compile-bytecode",
            };
            let options = ["--no-index", "--no-deps", bytecode];
            uv_command(
                uv,
                "install",
                &[&options[..], &["--link-mode", "copy"]].concat(),
                venv,
                files,
            )
        }
    }
}

/// The call that uninstalls the named packages, by pip or by the uv `uv`.
pub fn uninstall_command(uv: Option<&str>, venv: &str, names: &[String]) -> String {
    match uv {
        None => pip_uninstall_command(venv, names),
        Some(uv) => uv_command(uv, "uninstall", &[], venv, names),
    }
}

/// Make a virtualenv with `python`, as `make_venv` in `push.sh` does:
/// `python -m venv`, or for a Python 2, which has no venv module, `python
/// -m virtualenv`. On the host the interpreter itself says which; this is
/// what `--dry-run` shows, by what the record knows (`python2`).
pub fn create_venv_command(python: &str, venv: &str, python2: bool) -> String {
    match python2 {
        true => shell::join(&[python, "-m", "virtualenv", "--quiet", venv]),
        false => shell::join(&[python, "-m", "venv", venv]),
    }
}

/// What [`push_command`] does to one venv.
pub struct PushSteps<'a> {
    pub venv: &'a str,
    /// Make the venv first (when it has no interpreter) with this python.
    pub create_with: Option<&'a str>,
    /// The fingerprints the venv may have under the lock, before pip runs:
    /// the state the plan was made from, and the state it makes (another
    /// push of the same plan got there first). Empty: not checked; not
    /// checked either for a venv this push made.
    pub accept: &'a [String],
    /// The uv binary on the host that installs and uninstalls; `None`: pip.
    pub installer: Option<&'a str>,
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
    let accept = steps.accept.join(" ");
    let step = push_step_program();
    let mut args = vec![
        steps.venv.trim_end_matches('/'),
        &lock_wait,
        steps.create_with.unwrap_or(""),
        &accept,
        steps.installer.unwrap_or(""),
        &step,
        &nremove,
    ];
    args.extend(steps.remove.iter().map(String::as_str));
    args.extend(steps.install.iter().map(String::as_str));
    script_command(&push_program(), "vd-push", &args)
}

/// What [`push_command`] printed: the venv as pip found it and left it.
#[derive(Debug)]
pub struct PushOutcome {
    /// The venv was made by this push.
    pub created: bool,
    /// The freeze under the lock, before pip ran.
    pub before: FreezeOutput,
    /// The venv was not the state the plan was made from: pip did not run,
    /// and `after` is `before`.
    pub drifted: bool,
    /// The installer's exit statuses (0 for a step not run).
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
        let mut created = false;
        let mut before = None;
        let mut statuses = None;
        let mut after = None;
        let mut drifted = false;
        const FREEZE: &str = "the venv's freeze";
        for step in steps(&stdout) {
            match step.word {
                "created" => created = true,
                "drifted" => drifted = true,
                "before" => before = step.freeze(FREEZE)?,
                "pip" => {
                    statuses = Some((step.status(0), step.status(1)));
                    after = step.freeze(FREEZE)?;
                }
                _ => {}
            }
        }
        if let (true, Some(before)) = (drifted, &before) {
            return Ok(PushOutcome {
                created,
                before: before.clone(),
                drifted,
                uninstall_status: 0,
                install_status: 0,
                after: before.clone(),
                pip_output: String::new(),
            });
        }
        let (Some(before), Some((uninstall_status, install_status))) = (before, statuses) else {
            bail!(
                "the push command failed before pip ran (exit status {}): {}",
                finished.status,
                said(finished)
            );
        };
        let Some(after) = after else {
            bail!(
                "the venv could not be read after pip ran (exit status {}): {}",
                finished.status,
                finished.stderr_text()
            );
        };
        let pip_output = pip_tail(finished);
        Ok(PushOutcome {
            created,
            before,
            drifted,
            uninstall_status,
            install_status,
            after,
            pip_output,
        })
    }

    /// The installer's (`pip`, `uv`) failure in words, with the end of its
    /// output; `None` when every run succeeded. An install is not tried
    /// after a failed uninstall.
    pub fn pip_failure(&self, installer: &str) -> Option<String> {
        let (step, status) = if self.uninstall_status != 0 {
            ("uninstall", self.uninstall_status)
        } else if self.install_status != 0 {
            ("install", self.install_status)
        } else {
            return None;
        };
        Some(format!(
            "{installer} {step} failed (exit status {status}): {}",
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
    use std::process::Command;

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
        assert_eq!(outcome.pip_failure("pip"), None);
        assert!(outcome
            .pip_output
            .ends_with("Successfully installed vdp-alpha-2.0"));

        let failed = UPGRADE_STDOUT.replace("vd-pip 0 0", "vd-pip 0 1");
        let outcome =
            PushOutcome::parse(&Finished::of(1, &failed, "ERROR: no space left\n")).unwrap();
        assert_eq!(
            outcome.pip_failure("pip").unwrap(),
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

    /// A venv whose `bin/python` is a shell script (not a link, so it runs
    /// freeze.py with site.py: `-E -s -c SCRIPT --around-own VENV ACCEPT COMPILE
    /// COMMAND...`): it prints a freeze, runs COMMAND and prints a freeze,
    /// as freeze.py does; it logs any other call's
    /// arguments, one per line, to `calls`.
    fn fake_venv(venv: &Path) {
        fs::create_dir_all(venv.join("bin")).unwrap();
        let python = venv.join("bin/python");
        fs::write(
            &python,
            "#!/bin/sh\n\
             freeze='{\"installed\": {}, \"markers\": {}, \"python\": {\"venv\": true}}'\n\
             case \"$5\" in --around-own) shift 8; echo vd-before; echo \"$freeze\"; \
               \"$@\"; echo \"$freeze\"; exit 0;; esac\n\
             for a; do printf '%s\\n' \"$a\"; done >>\"$(dirname \"$0\")/../calls\"\n\
             echo '--' >>\"$(dirname \"$0\")/../calls\"\n",
        )
        .unwrap();
        fs::set_permissions(&python, fs::Permissions::from_mode(0o755)).unwrap();
    }

    /// The steps of a push that checks no fingerprint and removes nothing.
    fn plain_steps<'a>(
        venv: &'a str,
        create_with: Option<&'a str>,
        install: &'a [String],
    ) -> PushSteps<'a> {
        PushSteps {
            venv,
            create_with,
            accept: &[],
            installer: None,
            install,
            remove: &[],
        }
    }

    /// `command` run here as a host runs it, sent [`PUSH_STDIN`].
    fn run(command: &str) -> Finished {
        crate::transport::LocalConnection::new("me")
            .run(command, PUSH_STDIN.as_bytes())
            .unwrap()
    }

    /// `bytes` as a wheel `file` of a cache in `dir`, at SHA256/FILE.
    fn cached(dir: &Path, file: &str, bytes: &[u8]) -> String {
        let (sha256, _) = {
            let path = dir.join(".upload");
            fs::write(&path, bytes).unwrap();
            crate::wheel::sha256_file(&path).unwrap()
        };
        fs::create_dir_all(dir.join(&sha256)).unwrap();
        let path = dir.join(sha256).join(file);
        fs::write(&path, bytes).unwrap();
        path.display().to_string()
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
        let install = vec![cached(dir.path(), "a b-1.0-py3-none-any.whl", b"wheel")];
        let remove = vec!["old-one".to_string(), "$(id)".to_string()];
        let steps = PushSteps {
            venv: &venv,
            create_with: None,
            accept: &[],
            installer: None,
            install: &install,
            remove: &remove,
        };
        let finished = run(&push_command(&steps));
        assert!(finished.success(), "{}", finished.stderr_text());
        let outcome = PushOutcome::parse(&finished).unwrap();
        assert!(!outcome.created);
        assert_eq!(outcome.pip_failure("pip"), None);

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
    fn uv_runs_as_dry_run_shows_it_in_pips_place() {
        let dir = tempfile::tempdir().unwrap();
        let venv = dir.path().join("venv");
        fake_venv(&venv);
        let venv = venv.display().to_string();
        // A uv that logs its calls beside the fake venv's python's.
        let uv = dir.path().join("bin dir/uv");
        fs::create_dir_all(uv.parent().unwrap()).unwrap();
        let calls = Path::new(&venv).join("calls");
        fs::write(
            &uv,
            format!(
                "#!/bin/sh\nfor a in \"$0\" \"$@\"; do printf '%s\\n' \"$a\"; done >>{}\necho -- >>{}\n",
                shell::quote(&calls.display().to_string()),
                shell::quote(&calls.display().to_string()),
            ),
        )
        .unwrap();
        fs::set_permissions(&uv, fs::Permissions::from_mode(0o755)).unwrap();
        let uv = uv.display().to_string();
        let install = vec![cached(dir.path(), "a-1.0-py3-none-any.whl", b"wheel")];
        let remove = vec!["old-one".to_string()];
        let steps = PushSteps {
            installer: Some(&uv),
            remove: &remove,
            ..plain_steps(&venv, None, &install)
        };
        let finished = run(&push_command(&steps));
        assert!(finished.success(), "{}", finished.stderr_text());
        assert_eq!(
            PushOutcome::parse(&finished).unwrap().pip_failure("uv"),
            None
        );
        let calls = fs::read_to_string(calls).unwrap();
        let calls: Vec<String> = calls
            .split("--\n")
            .filter(|c| !c.is_empty())
            .map(|c| shell::join(&c.lines().collect::<Vec<_>>()))
            .collect();
        assert_eq!(
            calls,
            [
                uninstall_command(Some(&uv), &venv, &remove),
                install_command(Some(&uv), &venv, &install, false)
            ]
        );
    }

    /// A push of `file` into a fake venv in `dir`, which the script must
    /// refuse before pip runs: its error.
    fn refused_before_pip(dir: &Path, file: &str) -> String {
        let venv = dir.join("venv");
        fake_venv(&venv);
        let venv = venv.display().to_string();
        let install = vec![file.to_string()];
        let steps = plain_steps(&venv, None, &install);
        let finished = run(&push_command(&steps));
        assert_eq!(finished.status, super::super::exit::FAILED);
        assert!(!Path::new(&venv).join("calls").exists(), "pip ran");
        format!("{:#}", PushOutcome::parse(&finished).unwrap_err())
    }

    #[test]
    fn a_cached_wheel_changed_on_the_host_never_reaches_pip() {
        let dir = tempfile::tempdir().unwrap();
        let file = cached(dir.path(), "a-1.0-py3-none-any.whl", b"wheel");
        fs::write(&file, b"other bytes").unwrap();
        let err = refused_before_pip(dir.path(), &file);
        assert!(
            err.contains("changed in the cache after it was uploaded"),
            "{err}"
        );
        assert!(!Path::new(&file).exists(), "the changed copy was kept");
    }

    #[test]
    fn the_script_stops_before_pip_when_a_file_cannot_be_read_or_the_venv_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("0/missing.whl").display().to_string();
        let err = refused_before_pip(dir.path(), &missing);
        assert!(err.contains("missing.whl cannot be read by"), "{err}");

        let absent = dir.path().join("absent").display().to_string();
        let steps = plain_steps(&absent, None, &[]);
        let err = format!(
            "{:#}",
            PushOutcome::parse(&run(&push_command(&steps))).unwrap_err()
        );
        assert!(
            err.contains("absent does not exist (vd-push --create"),
            "{err}"
        );
    }

    #[test]
    fn the_script_freezes_as_vd_freeze_does() {
        use super::super::freeze::ISOLATED;
        assert!(
            super::super::PRELUDE.contains(&format!("\"$1\" {ISOLATED} -")),
            "prelude.sh must run the freeze with {ISOLATED}"
        );
        // Every Python the remote scripts start runs as the freeze does:
        // `-I` would be refused by the Python 2.7 of an old venv.
        use super::super::{generation::GENERATION_SCRIPT, switch::SWITCH_SCRIPT, GENERATIONS};
        for (name, script) in [
            ("push.sh", PUSH_SCRIPT),
            ("generation.sh", GENERATION_SCRIPT),
            ("switch.sh", SWITCH_SCRIPT),
            ("generations.sh", GENERATIONS),
            ("prelude.sh", super::super::PRELUDE),
        ] {
            assert!(!script.contains("\" -I "), "{name} runs a python with -I");
        }
    }

    /// A base interpreter that says it is Python `major` and, when `with`,
    /// has virtualenv; making a venv with it makes a [`fake_venv`] and
    /// logs how, to `made`.
    fn fake_base(dir: &Path, major: u32, virtualenv: bool) -> String {
        let python = dir.join(format!("python{major}"));
        fs::write(
            &python,
            format!(
                "#!/bin/sh\n\
                 case \"$2\" in\n\
                 'import sys; sys.exit(sys.version_info[0] != 2)') [ {major} = 2 ]; exit;;\n\
                 'import virtualenv') [ {virtualenv} = true ]; exit;;\n\
                 esac\n\
                 for venv; do :; done\n\
                 echo \"$*\" >>{made}\n\
                 mkdir -p \"$venv/bin\" && cp {template} \"$venv/bin/python\"\n",
                made = shell::quote(&dir.join("made").display().to_string()),
                template = shell::quote(&dir.join("template/bin/python").display().to_string()),
            ),
        )
        .unwrap();
        fs::set_permissions(&python, fs::Permissions::from_mode(0o755)).unwrap();
        python.display().to_string()
    }

    #[test]
    fn the_script_makes_python_2_venvs_with_virtualenv_or_says_what_to_install() {
        let dir = tempfile::tempdir().unwrap();
        fake_venv(&dir.path().join("template"));
        let made = || fs::read_to_string(dir.path().join("made")).unwrap_or_default();
        for (major, virtualenv, how) in [(3, false, "-m venv"), (2, true, "-m virtualenv --quiet")]
        {
            let python = fake_base(dir.path(), major, virtualenv);
            let venv = dir.path().join(format!("new{major}")).display().to_string();
            let steps = plain_steps(&venv, Some(&python), &[]);
            let finished = run(&push_command(&steps));
            assert!(finished.success(), "{}", finished.stderr_text());
            assert!(PushOutcome::parse(&finished).unwrap().created);
            assert!(made().ends_with(&format!("{how} {venv}\n")), "{}", made());
            let shown = create_venv_command(&python, &venv, major == 2);
            assert_eq!(shown, format!("{python} {how} {}", shell::quote(&venv)));
        }

        let bare = fake_base(dir.path(), 2, false);
        let venv = dir.path().join("bare").display().to_string();
        let steps = plain_steps(&venv, Some(&bare), &[]);
        let before = made();
        let err = format!(
            "{:#}",
            PushOutcome::parse(&run(&push_command(&steps))).unwrap_err()
        );
        assert!(
            err.contains("has no venv module, and virtualenv is not installed for it")
                && err.contains(&format!("{bare} -m pip install 'virtualenv<21'")),
            "{err}"
        );
        assert_eq!(made(), before, "no venv made");
        assert!(!Path::new(&venv).join("bin/python").exists());
    }
}

#[cfg(test)]
mod size_tests {
    use super::*;

    #[test]
    fn the_command_leaves_room_for_the_wheel_files() {
        // A first push into a new venv sends every wheel of a site's set:
        // some 60 of them, at a cache path each.
        let file = format!(
            "/var/cache/vd/wheels/{}/package_name-1.0.0-py3-none-any.whl",
            "0".repeat(64)
        );
        let install = vec![file; 60];
        let accept = ["sha256:0".repeat(2)];
        let command = crate::remote::as_user(
            Some("app"),
            &push_command(&PushSteps {
                venv: "/srv/shop/venv",
                create_with: Some("/usr/bin/python3"),
                accept: &accept,
                installer: Some("/var/cache/vd/wheels/uv"),
                install: &install,
                remove: &[],
            }),
        );
        // libssh2 refuses an exec request over about 32 KiB.
        assert!(command.len() < 30_000, "{} bytes", command.len());
    }
}

/// `freeze.py --around` on real venvs of this machine's python3: the
/// freezes it prints are the per-venv freeze's, byte for byte, before and
/// after the command between them, whichever way it reads the venv.
#[cfg(test)]
mod around_tests {
    use super::super::freeze::FREEZE_SCRIPT;
    use crate::fingerprint::of_state;
    use crate::remote::freeze::FreezeOutput;
    use crate::transport::Finished;
    use std::fs;
    use std::io::Write;
    use std::path::{Path, PathBuf};
    use std::process::{Command, Output, Stdio};

    /// A venv made by python3, without pip, and its site-packages.
    fn venv(dir: &Path, name: &str) -> (String, PathBuf) {
        let venv = dir.join(name);
        let out = Command::new("python3")
            .args(["-m", "venv", "--without-pip"])
            .arg(&venv)
            .output()
            .unwrap_or_else(|e| panic!("cannot run python3 ({e}): install Python 3"));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let site = fs::read_dir(venv.join("lib"))
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path()
            .join("site-packages");
        (venv.display().to_string(), site)
    }

    /// A shell command that puts distribution NAME VERSION into `dir`.
    fn dist(dir: &Path, name: &str, version: &str) -> String {
        let info = dir.join(format!("{name}-{version}.dist-info"));
        format!(
            "mkdir -p '{0}' && printf 'Metadata-Version: 2.1\\nName: {name}\\nVersion: {version}\\n' >'{0}/METADATA'",
            info.display()
        )
    }

    fn sh(command: &str) {
        assert!(Command::new("sh")
            .args(["-c", command])
            .status()
            .unwrap()
            .success());
    }

    /// The per-venv freeze of `venv`, as vd-freeze takes it.
    fn own_freeze(venv: &str) -> String {
        let out = fed_freeze(Command::new(format!("{venv}/bin/python")).args(["-E", "-s", "-"]));
        String::from_utf8(out.stdout).unwrap()
    }

    /// `command` run with freeze.py on its stdin, as the scripts are sent.
    fn fed_freeze(command: &mut Command) -> Output {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(FREEZE_SCRIPT.as_bytes()).unwrap();
        drop(stdin);
        child.wait_with_output().unwrap()
    }

    /// freeze.py --around, compiling what `command` installed when
    /// `compile`.
    fn around(venv: &str, accept: &str, compile: bool, command: &str) -> Output {
        let compile = if compile { "1" } else { "" };
        let isolated = ["-E", "-s", "-S", "-c", FREEZE_SCRIPT];
        Command::new(format!("{venv}/bin/python"))
            .args(isolated)
            .args(["--around", venv, accept, compile, "sh", "-c", command])
            .env("VD_FREEZE_PY", FREEZE_SCRIPT)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// The fingerprint vd-diff would stamp on `freeze`.
    fn fingerprint(freeze: &str) -> String {
        let out = FreezeOutput::read(&Finished::of(0, freeze, ""), "/v").unwrap();
        of_state(Some(&out.python), Some(out.installed().unwrap()))
    }

    #[test]
    fn the_freezes_around_a_command_are_the_per_venv_freezes() {
        let dir = tempfile::tempdir().unwrap();
        // A plain venv (read without site.py) and one whose .pth runs code
        // (frozen by its own python): the same answers.
        for (name, runs_code) in [("plain", false), ("code", true)] {
            let (venv, site) = venv(dir.path(), name);
            sh(&dist(&site, "Old_One", "1.0"));
            if runs_code {
                fs::write(site.join("x.pth"), "import os\n").unwrap();
            }
            let before = own_freeze(&venv);
            let made_from = fingerprint(&before);
            // The command adds a distribution, and a .pth naming a
            // directory with another: the freeze after sees both.
            let extra = dir.path().join(format!("{name}-extra"));
            let command = format!(
                "{} && {} && echo '{}' >'{}/extra.pth' && echo vd-pip 0 0",
                dist(&site, "new", "2.0"),
                dist(&extra, "elsewhere", "3.0"),
                extra.display(),
                site.display()
            );
            let out = around(&venv, &format!("{made_from} sha256:00"), false, &command);
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let after = own_freeze(&venv);
            assert!(after.contains("\"elsewhere\": \"3.0\"") && after.contains("\"new\": \"2.0\""));
            assert_eq!(
                String::from_utf8(out.stdout).unwrap(),
                format!("vd-before\n{before}vd-pip 0 0\n{after}"),
                "{name}"
            );
        }
    }

    #[test]
    fn what_the_command_installed_is_compiled_as_pip_compiles_it() {
        let dir = tempfile::tempdir().unwrap();
        let (venv, site) = venv(dir.path(), "v");
        sh(&dist(&site, "old", "1.0"));
        fs::write(site.join("old.py"), "A = 1\n").unwrap();
        let record = site.join("old-1.0.dist-info/RECORD");
        fs::write(&record, "old.py,,\n").unwrap();
        sh(&format!("touch -d 2000-01-01 '{}'", record.display()));
        // What an installer writes: a module, a package and a file that
        // does not compile, listed in a new RECORD.
        let install = format!(
            "{} && cd '{site}' && mkdir -p pkg && echo 'B = 2' >new.py && echo 'C = 3' >pkg/__init__.py \
             && echo 'def (' >pkg/bad.py && printf 'new.py,,\\npkg/__init__.py,,\\npkg/bad.py,,\\n' \
             >new-2.0.dist-info/RECORD",
            dist(&site, "new", "2.0"),
            site = site.display()
        );
        let out = around(&venv, "", true, &install);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // Each compiled file is the .pyc import would accept and write.
        let valid = "import importlib.util as u, marshal, os, sys\n\
            for p in sys.argv[1:]:\n\
            \x20   d = open(u.cache_from_source(p), 'rb').read(); s = os.stat(p)\n\
            \x20   assert d[:4] == u.MAGIC_NUMBER, p\n\
            \x20   assert int.from_bytes(d[8:12], 'little') == int(s.st_mtime) & 0xFFFFFFFF, p\n\
            \x20   assert int.from_bytes(d[12:16], 'little') == s.st_size, p\n\
            \x20   assert marshal.loads(d[16:]).co_filename == p, p\n";
        let new = site.join("new.py").display().to_string();
        let init = site.join("pkg/__init__.py").display().to_string();
        let checked = Command::new(format!("{venv}/bin/python"))
            .args(["-c", valid, &new, &init])
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&checked.stderr);
        assert!(checked.status.success(), "{said}");
        // What was there before, and what does not compile, are not.
        let names = |dir: PathBuf| -> Vec<String> {
            let entries = fs::read_dir(dir).unwrap();
            entries
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect()
        };
        let top = names(site.join("__pycache__"));
        assert!(top.iter().all(|n| !n.starts_with("old.")), "{top:?}");
        let pkg = names(site.join("pkg/__pycache__"));
        assert!(pkg.iter().all(|n| !n.starts_with("bad.")), "{pkg:?}");
        // Without COMPILE, nothing is.
        let (venv, site) = super::around_tests::venv(dir.path(), "w");
        let install = install.replace(
            &dir.path().join("v").display().to_string(),
            &dir.path().join("w").display().to_string(),
        );
        let out = around(&venv, "", false, &install);
        assert!(out.status.success());
        assert!(!site.join("__pycache__").exists());
    }

    /// The prelude's freeze_py run on `venv` (`--venv`, no check), with
    /// its compiled code kept in `cache`: its stdout.
    fn freeze_py(venv: &str, cache: &Path) -> String {
        let script = format!(
            "take_freeze {}; freeze_py {venv}/bin/python {venv} --venv ''",
            crate::shell::quote(&cache.display().to_string())
        );
        let program = crate::remote::program(&[&script]);
        let out = fed_freeze(Command::new("/bin/sh").args(["-c", &program]));
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    }

    #[test]
    fn the_compiled_freeze_is_kept_and_used_only_for_its_own_text() {
        let dir = tempfile::tempdir().unwrap();
        let (venv, site) = venv(dir.path(), "v");
        sh(&dist(&site, "a", "1.0"));
        let want = own_freeze(&venv);
        let cache = dir.path().join(".vd-freeze.pyc");
        assert_eq!(freeze_py(&venv, &cache), want);
        let kept = fs::read(&cache).unwrap();
        assert!(
            kept.starts_with(b"vd-freeze "),
            "the first run keeps its code"
        );
        // The kept code is what runs, once its first line is right.
        let line = kept.iter().position(|b| *b == b'\n').unwrap();
        let marshal = "import marshal, sys; \
            sys.stdout.buffer.write(marshal.dumps(compile('print(\"kept\")', 'x', 'exec')))";
        let out = Command::new("python3")
            .args(["-c", marshal])
            .output()
            .unwrap();
        fs::write(&cache, [&kept[..=line], &out.stdout].concat()).unwrap();
        assert_eq!(freeze_py(&venv, &cache), "kept\n");
        // Code for another text (the first line differs) or cut short is
        // compiled anew and replaced.
        let other = [b"vd-freeze 1 2 x\n", &kept[line + 1..]].concat();
        for bad in [other, kept[..line + 10].to_vec()] {
            fs::write(&cache, bad).unwrap();
            assert_eq!(freeze_py(&venv, &cache), want);
            assert_eq!(fs::read(&cache).unwrap(), kept);
        }
        // A cache that cannot be written costs only the compile.
        let nowhere = dir.path().join("missing/.vd-freeze.pyc");
        assert_eq!(freeze_py(&venv, &nowhere), want);
    }

    #[test]
    fn a_venv_that_is_not_the_planned_state_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let (venv, site) = venv(dir.path(), "v");
        sh(&dist(&site, "a", "1.0"));
        let before = own_freeze(&venv);
        let ran = dir.path().join("ran");
        let command = format!("touch '{}'", ran.display());
        let planned = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
        let out = around(&venv, planned, true, &command);
        assert!(out.status.success());
        let stdout = String::from_utf8(out.stdout).unwrap();
        assert_eq!(stdout, format!("vd-before\n{before}vd-drifted\n"));
        assert!(!ran.exists(), "the command ran on a drifted venv");
        // The state the plan makes (the second fingerprint) goes on, as
        // does no fingerprint at all.
        for accept in [format!("{planned} {}", fingerprint(&before)), String::new()] {
            let out = around(&venv, &accept, false, &command);
            assert!(out.status.success());
            assert!(ran.exists(), "{accept}");
            fs::remove_file(&ran).unwrap();
        }
    }
}
