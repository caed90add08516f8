//! What runs from a target's venv: the processes, and which generation each
//! runs.
//!
//! A generation marks the processes that start in it: its
//! `vd_generation.pth` (whose line `running.py --mark` writes) keeps a
//! close-on-exec descriptor open on `VENV.generations/N/.vd-running`, so
//! `/proc/PID/fd` names the generation from outside, forked workers inherit
//! it, and a process that execs loses it (a Python that execs gets its own
//! from the generation it starts in). [`RUNNING_SCRIPT`] (`running.py`)
//! reads `/proc` once for any number of venvs of a host: for each process,
//! its descriptors, executable, first word of its command line and mapped
//! files, and which venv (and generation) they lie in; for a venv changed in
//! place, whether the process started before the venv's last change. It
//! runs as the target's user, so it sees what that user may read, and
//! counts the processes it could not read ([`RunningUnseen`]).
//!
//! vd-freeze runs it inside its batch command ([`super::freeze`]); a tool
//! that needs one target's processes over a session it holds calls
//! [`scan`]; vd-push's pruning calls it on the host from `generation.sh`
//! (`scan_running --busy`), with the script on its stdin
//! ([`with_running`]) after freeze.py: an SSH server limits a command's
//! length.

use super::{as_user, program, said, script_command, sudo_refusal};
use crate::record::{self, Record, Running, RunningProcess, RunningUnseen, Target};
use crate::transport::{Connection, Finished};
use anyhow::{anyhow, bail, Context, Result};
use serde::Deserialize;

/// Reads which processes run from venvs (see the module's documentation).
pub const RUNNING_SCRIPT: &str = include_str!("running.py");

/// The shell functions that take [`RUNNING_SCRIPT`] from stdin
/// (`take_running`) and run it (`scan_running`), for the programs that
/// scan.
pub const RUNNING_SH: &str = include_str!("running.sh");

/// The marker a generation's processes hold open, inside its folder
/// (generation.sh makes it, running.py reads it).
#[cfg(test)]
const MARKER: &str = ".vd-running";

/// The line between the two scripts a program that scans gets on stdin
/// (`running.sh`'s `take_running`).
const STDIN_MARK: &str = "\nvd-running.py\n";

/// What generation.sh reads on stdin: `before` (freeze.py), the mark, and
/// running.py.
pub fn with_running(before: &str) -> String {
    format!("{before}{STDIN_MARK}{RUNNING_SCRIPT}")
}

/// The program of [`scan_command`].
pub fn scan_program() -> String {
    program(&[RUNNING_SH, SCAN_MAIN])
}

/// What [`scan_program`] runs: running.py, its first argument, with the
/// others.
const SCAN_MAIN: &str = "running_py=$1\nshift\nscan_running \"$@\"\n";

/// The command that reads what runs from `venvs` (a host's, read as one
/// user), by the interpreter `python` when it runs (else the host's
/// python3, python or python2). Its output is read by [`read_scans`].
pub fn scan_command(python: &str, venvs: &[&str]) -> String {
    let mut args = vec![RUNNING_SCRIPT, python];
    args.extend(venvs.iter().map(|v| v.trim_end_matches('/')));
    script_command(&scan_program(), "vd-running", &args)
}

/// What runs from one venv, as far as the scan could see.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scan {
    /// The processes that run from the venv, by pid.
    pub processes: Vec<RunningProcess>,
    /// What the scan could not see: other users' processes, or the whole
    /// host (`reason`).
    pub unseen: RunningUnseen,
}

impl Scan {
    /// No scan, and why.
    pub fn unseen(reason: String) -> Scan {
        Scan {
            processes: Vec::new(),
            unseen: RunningUnseen {
                reason: Some(reason),
                ..RunningUnseen::default()
            },
        }
    }

    /// Write the scan into a target's record: `running`, and
    /// `running_unseen` when something was not seen (`running` is left out
    /// when nothing could be scanned).
    pub fn put(&self, record: &mut Record) {
        if self.supported() {
            record::put(record, &Running(self.processes.clone()));
        } else {
            record::remove::<Running>(record);
        }
        if self.unseen.is_empty() {
            record::remove::<RunningUnseen>(record);
        } else {
            record::put(record, &self.unseen);
        }
    }

    /// Whether the host could be scanned at all.
    pub fn supported(&self) -> bool {
        self.unseen.reason.is_none()
    }

    /// The processes that run other code than the venv holds now.
    // For the tools that wait on what runs (vd-reload's drain).
    #[allow(dead_code)]
    pub fn stale(&self) -> impl Iterator<Item = &RunningProcess> {
        self.processes.iter().filter(|p| p.stale)
    }

    /// The processes whose generation is known and is not `generation`
    /// (for a target with generations: what a reload left running).
    #[allow(dead_code)]
    pub fn other_generations(&self, generation: u32) -> impl Iterator<Item = &RunningProcess> {
        self.processes
            .iter()
            .filter(move |p| p.generation.is_some_and(|g| g != generation))
    }
}

/// What running.py printed.
#[derive(Deserialize)]
struct Printed {
    #[serde(default)]
    venvs: Vec<PrintedVenv>,
    #[serde(default)]
    unseen: RunningUnseen,
    #[serde(default)]
    unsupported: Option<String>,
}

#[derive(Deserialize)]
struct PrintedVenv {
    running: Vec<RunningProcess>,
}

/// The scans of `count` venvs, in the order they were given, from what
/// running.py printed (its one JSON line).
pub fn read_scans(stdout: &[u8], count: usize) -> Result<Vec<Scan>> {
    let text = String::from_utf8_lossy(stdout);
    let printed: Printed = serde_json::from_str(text.trim())
        .with_context(|| format!("the scan of running processes printed {:?}", text.trim()))?;
    if let Some(why) = printed.unsupported {
        return Ok(vec![Scan::unseen(why); count]);
    }
    if printed.venvs.len() != count {
        bail!(
            "the scan of running processes answered for {} venvs, not {count}",
            printed.venvs.len()
        );
    }
    Ok(printed
        .venvs
        .into_iter()
        .map(|venv| Scan {
            processes: venv.running,
            unseen: printed.unseen.clone(),
        })
        .collect())
}

/// The scans from a finished [`scan_command`] run as `run_as`.
pub fn scans_of(finished: &Finished, run_as: Option<&str>, count: usize) -> Result<Vec<Scan>> {
    if let Some(message) = sudo_refusal(finished, run_as) {
        bail!(message);
    }
    if !finished.success() {
        bail!(
            "the scan of running processes failed (exit status {}): {}",
            finished.status,
            said(finished)
        );
    }
    read_scans(&finished.stdout, count)
}

/// What runs from `target`'s venv now, read over `connection` (the
/// target's host) as the target's user: the entry point for a tool that
/// holds a session. The scan takes one command and about as long as an
/// interpreter's start.
pub fn scan(connection: &mut Connection, target: &Target) -> Result<Scan> {
    let run_as = target.run_as(connection.user()).map(str::to_string);
    let python = super::venv_python(&target.venv);
    let command = as_user(run_as.as_deref(), &scan_command(&python, &[&target.venv]));
    let finished = connection.run(&command, b"")?;
    scans_of(&finished, run_as.as_deref(), 1)?
        .pop()
        .ok_or_else(|| anyhow!("the scan of running processes answered for no venv"))
}

/// The pids and commands of `processes`, for a message: `123 (gunicorn:
/// master [shop]), 124 (...)`.
#[allow(dead_code)]
pub fn listed(processes: &[&RunningProcess]) -> String {
    processes
        .iter()
        .map(|p| format!("{} ({})", p.pid, p.command))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::LocalConnection;
    use std::process::{Child, Command};

    /// A process, in a group of its own with its forks, all killed when
    /// the test ends, even when it fails.
    struct Killed(Child);

    impl Drop for Killed {
        fn drop(&mut self) {
            let group = format!("-{}", self.0.id());
            let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
            let _ = self.0.wait();
        }
    }

    fn target(venv: &str) -> Target {
        let record = crate::record::of_json(serde_json::json!({"host": "h", "venv": venv}));
        Target::parse(&record).unwrap()
    }

    /// A venv in a generation's layout, made by hand: VENV.generations/N
    /// with a bin/python that is the host's python3, the marking .pth, and
    /// VENV a link to generation `active`.
    fn generations(dir: &std::path::Path, numbers: &[u32], active: u32) -> String {
        let venv = dir.join("app");
        for n in numbers {
            let gen = dir.join(format!("app.generations/{n}"));
            let out = Command::new("python3")
                .args(["-m", "venv", "--without-pip"])
                .arg(&gen)
                .output()
                .unwrap();
            assert!(out.status.success(), "{out:?}");
            let marker = gen.join(MARKER);
            std::fs::write(&marker, "").unwrap();
            let python = gen.join("bin/python");
            let mark = Command::new(&python)
                .args(["-E", "-s", "-S", "-c", RUNNING_SCRIPT, "--mark"])
                .arg(&marker)
                .output()
                .unwrap();
            let site = Command::new(&python)
                .args([
                    "-c",
                    "import sysconfig; print(sysconfig.get_paths()['purelib'])",
                ])
                .output()
                .unwrap();
            let site = String::from_utf8(site.stdout).unwrap();
            std::fs::write(
                std::path::Path::new(site.trim()).join("vd_generation.pth"),
                mark.stdout,
            )
            .unwrap();
        }
        std::os::unix::fs::symlink(format!("app.generations/{active}"), &venv).unwrap();
        venv.display().to_string()
    }

    /// Run `code` with `python` until the test ends; wait until it has
    /// printed its first line (it started, and forked if it forks).
    fn started(python: &str, code: &str) -> Killed {
        use std::io::BufRead;
        use std::os::unix::process::CommandExt;
        let mut child = Command::new(python)
            .args(["-c", code])
            .stdout(std::process::Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap();
        let mut line = String::new();
        let out = child.stdout.take().unwrap();
        std::io::BufReader::new(out).read_line(&mut line).unwrap();
        Killed(child)
    }

    fn scan_here(venv: &str) -> Scan {
        let mut connection = Connection::Local(LocalConnection::new("me"));
        scan(&mut connection, &target(venv)).unwrap()
    }

    #[test]
    fn a_generations_processes_and_forks_carry_its_marker() {
        let dir = tempfile::tempdir().unwrap();
        let venv = generations(dir.path(), &[1, 2], 1);
        let python = format!("{venv}/bin/python");
        let parent = started(
            &python,
            "import os, sys, time\nif os.fork() == 0:\n    time.sleep(60)\n    os._exit(0)\nprint(1)\nsys.stdout.flush()\ntime.sleep(60)",
        );
        // An exec of something that is not Python drops the marker.
        let exec = started(
            &python,
            "import os, sys\nprint(1)\nsys.stdout.flush()\nos.execv('/bin/sleep', ['sleep', '60'])",
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
        let scan = scan_here(&venv);
        let pids: Vec<u32> = scan.processes.iter().map(|p| p.pid).collect();
        assert!(pids.contains(&parent.0.id()), "{scan:?}");
        assert!(!pids.contains(&exec.0.id()), "{scan:?}");
        assert_eq!(scan.processes.len(), 2, "the parent and its fork: {scan:?}");
        for p in &scan.processes {
            assert_eq!(p.generation, Some(1));
            assert!(!p.stale && !p.unreadable);
            assert!(p.command.starts_with(&python), "{}", p.command);
            assert!(p.started.ends_with('Z') && p.started.len() == 20);
        }
        assert!(scan.supported());
        // Switched to 2, they run the old generation: stale.
        let link = dir.path().join("app");
        std::fs::remove_file(&link).unwrap();
        std::os::unix::fs::symlink("app.generations/2", &link).unwrap();
        let scan = scan_here(&venv);
        assert_eq!(scan.stale().count(), 2, "{scan:?}");
        assert_eq!(scan.other_generations(2).count(), 2);
        assert_eq!(scan.other_generations(1).count(), 0);
    }

    #[test]
    fn an_in_place_venvs_process_is_stale_once_the_venv_changed() {
        let dir = tempfile::tempdir().unwrap();
        let venv = dir.path().join("plain");
        let out = Command::new("python3")
            .args(["-m", "venv", "--without-pip"])
            .arg(&venv)
            .output()
            .unwrap();
        assert!(out.status.success());
        let venv = venv.display().to_string();
        let python = format!("{venv}/bin/python");
        let process = started(
            &python,
            "import sys, time\nprint(1)\nsys.stdout.flush()\ntime.sleep(60)",
        );
        let scan = scan_here(&venv);
        let found: Vec<&RunningProcess> = scan.processes.iter().collect();
        assert_eq!(found.len(), 1, "{scan:?}");
        assert_eq!((found[0].pid, found[0].generation), (process.0.id(), None));
        assert!(!found[0].stale);
        // An install adds a folder to site-packages: the venv changed.
        std::thread::sleep(std::time::Duration::from_millis(1100));
        let site = std::fs::read_dir(format!("{venv}/lib"))
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path()
            .join("site-packages/new-1.0.dist-info");
        std::fs::create_dir(site).unwrap();
        let scan = scan_here(&venv);
        assert_eq!(scan.stale().count(), 1, "{scan:?}");
    }

    #[test]
    fn the_scripts_on_stdin_part_at_the_mark() {
        let stdin = with_running(super::super::freeze::FREEZE_SCRIPT);
        assert_eq!(stdin.matches(STDIN_MARK).count(), 1);
        let marker = format!("/{MARKER}");
        assert!(super::super::generation::GENERATION_SCRIPT.contains(&format!("\"$1{marker}\"")));
        assert!(RUNNING_SCRIPT.contains(&format!("MARKER = \"{MARKER}\"")));
        // What an SSH server takes, even with sudo's quoting.
        let command = as_user(Some("app"), &scan_command("/v/bin/python", &["/v"]));
        assert!(command.len() < 32 * 1024);
    }

    #[test]
    fn reads_what_the_script_printed() {
        let printed = br#"{"unseen": {"processes": 3, "users": ["root"]}, "venvs": [{"running": [{"command": "gunicorn: master [shop]", "generation": 1, "pid": 10, "started": "2026-01-02T03:04:05Z", "stale": true}]}, {"running": []}]}"#;
        let scans = read_scans(printed, 2).unwrap();
        assert_eq!(scans[0].processes[0].generation, Some(1));
        assert!(scans[0].processes[0].stale);
        assert_eq!(scans[1].unseen.processes, 3);
        assert_eq!(
            listed(&scans[0].stale().collect::<Vec<_>>()),
            "10 (gunicorn: master [shop])"
        );
        assert!(read_scans(printed, 3).is_err());
        let other = br#"{"unsupported": "no /proc here"}"#;
        let scans = read_scans(other, 2).unwrap();
        assert_eq!(scans.len(), 2);
        assert!(!scans[1].supported());
        let err = format!("{:#}", read_scans(b"Traceback", 1).unwrap_err());
        assert!(err.contains("printed \"Traceback\""), "{err}");
    }
}
