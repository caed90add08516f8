//! What runs from a venv, against a real sshd on loopback, real venvs with
//! generations and real long-running Python processes: vd-freeze lists
//! them with their generation, `vd-diff --check` calls old code drift, and
//! vd-push keeps a generation a process still runs.

use crate::push::{assert_ok, plan, push, requirements, target, wheel, Target};
use crate::util::python::{install, venv_with_pip};
use crate::util::record::{Kept, Process};
use crate::util::sshd::Sshd;
use crate::util::{jsonl, repo, tool, Outcome, Record};
use serde_json::json;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use tempfile::TempDir;

/// A Python process started through a venv's bin/python, in a process
/// group of its own with whatever it forks: the group is killed when the
/// value is dropped, so no process outlives a test, even one that fails.
struct Service {
    child: Child,
    /// The pids it printed (its own, and its fork's).
    printed: Vec<u32>,
    stopped: bool,
}

impl Service {
    /// Run `code` with `venv`'s python; it prints one line of pids once
    /// it is ready, which is waited for.
    fn start(venv: &Path, code: &str) -> Service {
        let mut child = Command::new(venv.join("bin/python"))
            .args(["-c", code])
            .stdout(Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let printed = line
            .split_whitespace()
            .map(|p| p.parse().unwrap())
            .collect();
        Service {
            child,
            printed,
            stopped: false,
        }
    }

    /// A process that sleeps, and a fork of it (a gunicorn master and its
    /// worker, in small).
    fn forking(venv: &Path) -> Service {
        Service::start(
            venv,
            "import os, sys, time\nchild = os.fork()\nif child == 0:\n    time.sleep(600)\n    \
             os._exit(0)\nprint(os.getpid(), child)\nsys.stdout.flush()\ntime.sleep(600)",
        )
    }

    /// A process that sleeps.
    fn sleeping(venv: &Path) -> Service {
        Service::start(
            venv,
            "import os, sys, time\nprint(os.getpid())\nsys.stdout.flush()\ntime.sleep(600)",
        )
    }

    /// A Python that execs /bin/sleep: no Python runs from the venv.
    fn exec_sleep(venv: &Path) -> Service {
        Service::start(
            venv,
            "import os, sys\nprint(os.getpid())\nsys.stdout.flush()\n\
             os.execv('/bin/sleep', ['sleep', '600'])",
        )
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kill the group and wait for its leader; its forks are reaped by
    /// init, so wait until /proc has none of them.
    fn stop(&mut self) {
        if std::mem::replace(&mut self.stopped, true) {
            return;
        }
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.wait();
        for pid in &self.printed {
            let proc = PathBuf::from(format!("/proc/{pid}"));
            for _ in 0..100 {
                if !proc.exists() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A target on host 0 that keeps `keep` generations.
fn generations_target(server: &Sshd, venv: &Path, cache: &Path, keep: u32) -> Target {
    let mut t = target(server, 0, venv, cache);
    t.insert("generations".into(), json!(keep));
    t
}

/// The repository with vdp-alpha 1.0 and 2.0, and the requirements files
/// that ask for each.
fn alpha_release(d: &Path) -> (PathBuf, [PathBuf; 2]) {
    let repo = repo(d, &[wheel("vdp-alpha", "1.0"), wheel("vdp-alpha", "2.0")]);
    let reqs = [
        requirements(d, "one.txt", "vdp-alpha==1.0\n"),
        requirements(d, "two.txt", "vdp-alpha==2.0\n"),
    ];
    (repo, reqs)
}

/// A plain venv made a target with `generations` by `vd-push --adopt` (it
/// is generation 1; the push installs `reqs` into 2 and switches to it).
fn adopted(server: &Sshd, d: &Path, repo: &Path, reqs: &Path, keep: u32) -> (PathBuf, Target) {
    let v = d.join("venv");
    venv_with_pip(&v);
    let t = generations_target(server, &v, &d.join("cache"), keep);
    let plans = plan(server, repo, reqs, false, std::slice::from_ref(&t));
    let out = push(server, repo, &["--adopt"], &plans);
    out.expect_code(0);
    assert_ok(&out.records()[0]);
    assert_eq!(
        std::fs::read_link(&v).unwrap(),
        Path::new("venv.generations/2")
    );
    (v, t)
}

/// What the tests of a target with generations start from: a server, the
/// repository and requirements of [`alpha_release`], the venv [`adopted`]
/// with vdp-alpha 1.0 in generation 2 keeping `keep`, its target, and the
/// work folder (removed when dropped).
fn adopted_fleet(keep: u32) -> (Sshd, PathBuf, [PathBuf; 2], PathBuf, Target, TempDir) {
    let server = Sshd::start(1);
    let dir = tempfile::tempdir().unwrap();
    let (repo, reqs) = alpha_release(dir.path());
    let (venv, target) = adopted(&server, dir.path(), &repo, &reqs[0], keep);
    (server, repo, reqs, venv, target, dir)
}

/// vd-freeze of `target`: its one record.
fn freeze(server: &Sshd, target: &Target) -> Record {
    let out = server
        .tool("vd-freeze")
        .stdin(jsonl(std::slice::from_ref(target)))
        .run();
    out.expect_code(0);
    let record = out.records().remove(0);
    assert_ok(&record);
    record
}

/// `vd-freeze | vd-diff --check REQS` of `target`.
fn check(server: &Sshd, repo: &Path, reqs: &Path, target: &Target) -> Outcome {
    let frozen = server
        .tool("vd-freeze")
        .stdin(jsonl(std::slice::from_ref(target)))
        .run();
    frozen.expect_code(0);
    tool("vd-diff")
        .arg("--repo")
        .arg(repo)
        .arg("--check")
        .arg(reqs)
        .stdin(frozen.stdout.clone())
        .run()
}

/// A push of `reqs` to `target`: its one record.
fn push_to(server: &Sshd, repo: &Path, reqs: &Path, target: &Target) -> (Record, Outcome) {
    let plans = plan(server, repo, reqs, false, std::slice::from_ref(target));
    let out = push(server, repo, &[], &plans);
    out.expect_code(0);
    let record = out.records().remove(0);
    assert_ok(&record);
    (record, out)
}

/// The entries of `running` with these pids, in their order.
fn entries<'a>(record: &'a Record, pids: &[u32]) -> Vec<&'a Process> {
    let running = record.running.as_ref().expect("no `running`");
    pids.iter()
        .map(|pid| {
            running
                .iter()
                .find(|p| p.pid == *pid)
                .unwrap_or_else(|| panic!("pid {pid} is not in {running:?}"))
        })
        .collect()
}

#[test]
fn freeze_lists_a_generations_processes_and_check_calls_old_ones_drift() {
    let (server, repo, [one, two], v, t, _dir) = adopted_fleet(3);
    let mut service = Service::forking(&v);
    let exec = Service::exec_sleep(&v);

    // The process and its fork, in generation 2; the exec'd sleep is not
    // Python from the venv.
    let record = freeze(&server, &t);
    for p in entries(&record, &service.printed) {
        assert_eq!(p.generation, Some(2), "{p:?}");
        assert_eq!(p.stale, None, "{p:?}");
        assert!(p.command.contains("os.fork()"), "{p:?}");
        let started = p.started.as_str().unwrap();
        assert!(started.ends_with('Z') && started.len() == 20, "{started}");
    }
    let running = record.running.as_ref().unwrap();
    assert!(!running.iter().any(|p| p.pid == exec.pid()), "{running:?}");
    check(&server, &repo, &one, &t).expect_code(0);

    // Generation 3 is active; the processes still run 2: drift.
    push_to(&server, &repo, &two, &t);
    let record = freeze(&server, &t);
    for p in entries(&record, &service.printed) {
        assert_eq!((p.generation, p.stale), (Some(2), Some(true)), "{p:?}");
    }
    let out = check(&server, &repo, &two, &t);
    out.expect_code(1);
    let record = out.records().remove(0);
    assert_eq!(record.plan, Some(Vec::new()), "the venv holds the plan");
    let why = record.running_drift.expect("no running_drift");
    assert_eq!(why.len(), 2, "{why:?}");
    let master = service.printed[0];
    assert!(
        why[0].starts_with(&format!("pid {master} ("))
            && why[0].ends_with("runs generation 2, not the active one"),
        "{why:?}"
    );

    // Once they end, the fleet runs what was deployed.
    service.stop();
    let out = check(&server, &repo, &two, &t);
    out.expect_code(0);
    assert_eq!(out.records()[0].running_drift, None);
}

#[test]
fn a_generation_a_process_runs_is_kept_until_it_ends() {
    let (server, repo, [one, two], v, t, _dir) = adopted_fleet(2);
    let mut service = Service::sleeping(&v);
    let pid = service.pid();
    let generations = |v: &Path| -> Vec<u32> {
        let mut numbers: Vec<u32> = std::fs::read_dir(format!("{}.generations", v.display()))
            .unwrap()
            .filter_map(|e| e.unwrap().file_name().to_str()?.parse().ok())
            .collect();
        numbers.sort();
        numbers
    };

    // keep + 1 pushes: generation 2 would have gone with the second.
    for (i, reqs) in [&two, &one, &two].into_iter().enumerate() {
        let (record, out) = push_to(&server, &repo, reqs, &t);
        let new = 3 + i as u32;
        assert_eq!(record.generation.unwrap().active, new);
        let on_disk = generations(&v);
        assert!(on_disk.contains(&2), "push {}: {on_disk:?}", i + 1);
        if new > 3 {
            assert_eq!(
                record.kept_running,
                Some(vec![Kept {
                    generation: 2,
                    pids: vec![pid]
                }]),
                "push {}",
                i + 1
            );
            out.expect_stderr(&format!("kept generation 2 (pids {pid})"));
        }
        // The process's generation is all that is kept past `keep`.
        let expected = match new {
            3 => vec![2, 3],
            _ => vec![2, new - 1, new],
        };
        assert_eq!(on_disk, expected, "push {}", i + 1);
    }

    // The first push after it ended prunes it.
    service.stop();
    let (record, _) = push_to(&server, &repo, &one, &t);
    assert_eq!(record.kept_running, None);
    assert_eq!(generations(&v), [5, 6]);
}

#[test]
fn an_in_place_venvs_process_started_before_a_push_is_stale() {
    let server = Sshd::start(1);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (repo, [one, two]) = alpha_release(d);
    let v = d.join("venv");
    venv_with_pip(&v);
    install(&v, &[wheel("vdp-alpha", "1.0")]);
    let t = target(&server, 0, &v, &d.join("cache"));
    let mut service = Service::sleeping(&v);

    let record = freeze(&server, &t);
    let p = entries(&record, &[service.pid()])[0];
    assert_eq!((p.generation, p.stale), (None, None), "{p:?}");
    check(&server, &repo, &one, &t).expect_code(0);

    // The push changes site-packages after the process started.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    push_to(&server, &repo, &two, &t);
    let record = freeze(&server, &t);
    let p = entries(&record, &[service.pid()])[0];
    assert_eq!((p.generation, p.stale), (None, Some(true)), "{p:?}");
    let out = check(&server, &repo, &two, &t);
    out.expect_code(1);
    let why = out.records()[0].running_drift.clone().unwrap();
    assert!(why[0].ends_with("before the venv last changed"), "{why:?}");

    // A process started after the push runs what the venv holds.
    service.stop();
    let fresh = Service::sleeping(&v);
    let record = freeze(&server, &t);
    let p = entries(&record, &[fresh.pid()])[0];
    assert_eq!(p.stale, None, "{p:?}");
    check(&server, &repo, &two, &t).expect_code(0);
}

#[test]
fn a_process_started_in_an_adopted_generation_after_a_rollback_is_marked() {
    let (server, repo, _reqs, v, t, _dir) = adopted_fleet(3);
    // Back to the adopted venv, generation 1: what starts through the link
    // now runs it, though nothing in its command line or maps says so.
    let out = server
        .tool("vd-rollback")
        .arg("--repo")
        .arg(&repo)
        .args(["--to", "1"])
        .stdin(jsonl(std::slice::from_ref(&t)))
        .run();
    out.expect_code(0);
    assert_ok(&out.records()[0]);
    let service = Service::sleeping(&v);
    let record = freeze(&server, &t);
    for p in entries(&record, &service.printed) {
        assert_eq!((p.generation, p.stale), (Some(1), None), "{p:?}");
    }
}
