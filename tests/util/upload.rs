//! The wheel cache a push fills on a host, and pushes cut off half way
//! through an upload: what the cache holds, and how a test cuts a
//! connection at the moment bytes are on their way.

use super::python::{pip_list, venv_with_pip, Project};
use super::{Outcome, Run};
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// What a test of a cut-off upload works with, in its folder: a wheel big
/// enough to be caught in flight (32 MiB that do not compress), a
/// repository holding it, a venv with pip, and where the wheel cache goes.
pub struct BigPush {
    pub wheel: PathBuf,
    pub repo: PathBuf,
    pub venv: PathBuf,
    pub cache: PathBuf,
}

impl BigPush {
    /// The wheel of project `name`, and the rest in `dir`.
    pub fn new(dir: &Path, name: &str) -> BigPush {
        let wheel = Project::new(name, "1.0").payload(32 << 20).build();
        let repo = super::repo(dir, std::slice::from_ref(&wheel));
        let venv = dir.join("venv");
        venv_with_pip(&venv);
        BigPush {
            wheel,
            repo,
            venv,
            cache: dir.join("cache"),
        }
    }
}

/// The sha256 of a file, by coreutils (not by the code under test).
pub fn sha256(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// Where a wheel lands in a cache: `SHA256/FILE`.
pub fn cache_key(wheel: &Path) -> String {
    format!(
        "{}/{}",
        sha256(wheel),
        wheel.file_name().unwrap().to_string_lossy()
    )
}

/// The wheels a cache holds, as `SHA256/FILE`, each checked to hash to its
/// directory's name; temporary files beside them are not wheels.
pub fn cached(cache: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let Ok(entries) = fs::read_dir(cache) else {
        return found;
    };
    for entry in entries {
        let entry = entry.unwrap();
        if !entry.path().is_dir() {
            continue;
        }
        let sha = entry.file_name().to_string_lossy().into_owned();
        for file in fs::read_dir(entry.path()).unwrap() {
            let file = file.unwrap();
            assert_eq!(
                sha256(&file.path()),
                sha,
                "{} is not its hash",
                file.path().display()
            );
            found.push(format!("{sha}/{}", file.file_name().to_string_lossy()));
        }
    }
    found.sort();
    found
}

/// Run `push` (a vd-push into `cache`) and, once its upload is under way
/// (a temporary file with bytes in it), kill every process below the sshd
/// `server_pid` that was not there before: the connection is cut mid
/// transfer. What the push then wrote.
fn cut_off_mid_upload(push: Run, cache: &Path, server_pid: u32) -> Outcome {
    let sessions_before = descendants(server_pid);
    let child = push.spawn();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !uploading(cache) {
        assert!(Instant::now() < deadline, "the upload never started");
        std::thread::sleep(Duration::from_millis(2));
    }
    for pid in descendants(server_pid) {
        if !sessions_before.contains(&pid) {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
    }
    child.finish()
}

/// What a push cut off mid upload must leave: its target failed, no wheel
/// in the cache, and the venv holding what it held `before`.
#[track_caller]
fn assert_left_nothing(cut: &Outcome, big: &BigPush, before: &BTreeMap<String, String>) {
    cut.expect_code(1);
    assert!(cut.records()[0].error.is_some(), "{cut:?}");
    assert!(
        cached(&big.cache).is_empty(),
        "a cut-off upload is in the cache"
    );
    assert_eq!(
        &pip_list(&big.venv),
        before,
        "a cut-off push changed the venv"
    );
}

/// `push` (vd-push, run as the test's user) of `plans` (the big wheel's),
/// its connection cut mid upload below the sshd `server_pid`: the push
/// fails and leaves nothing behind. What it wrote.
pub fn push_cut_off(push: Run, big: &BigPush, plans: &str, server_pid: u32) -> Outcome {
    let before = pip_list(&big.venv);
    let run = push
        .arg("--repo")
        .arg(&big.repo)
        .args(["--timeout", "3"])
        .stdin(plans.to_string());
    let out = cut_off_mid_upload(run, &big.cache, server_pid);
    assert_left_nothing(&out, big, &before);
    out
}

/// The error of a push cut off at the host's end names the broken upload
/// or connection.
#[track_caller]
pub fn assert_upload_cut(out: &Outcome) {
    let message = out.records()[0].error_message().to_string();
    assert!(
        message.contains("upload") || message.contains("connection"),
        "{message}"
    );
}

/// What the push after a cut-off one must do: send the wheel whole into
/// the cache and succeed.
#[track_caller]
pub fn assert_rerun_completes(rerun: &Outcome, big: &BigPush) {
    rerun.expect_code(0);
    assert!(rerun.records()[0].error.is_none(), "{rerun:?}");
    assert_eq!(cached(&big.cache), [cache_key(&big.wheel)]);
}

/// `push` (vd-push) of `plans` again after a cut-off one, checked by
/// [`assert_rerun_completes`]. What it wrote.
#[track_caller]
pub fn rerun_push(push: Run, big: &BigPush, plans: &str) -> Outcome {
    let out = push.arg("--repo").arg(&big.repo).stdin(plans).run();
    assert_rerun_completes(&out, big);
    out
}

/// Whether an upload into `cache` has begun: a `.part` file with bytes.
fn uploading(cache: &Path) -> bool {
    fs::read_dir(cache).ok().is_some_and(|entries| {
        entries.filter_map(|e| e.ok()).any(|e| {
            e.file_name().to_string_lossy().ends_with(".part")
                && e.metadata().is_ok_and(|m| m.len() > 0)
        })
    })
}

/// The pids of the processes below `ancestor`.
fn descendants(ancestor: u32) -> Vec<u32> {
    let mut found = children(ancestor);
    let mut i = 0;
    while i < found.len() {
        let more = children(found[i]);
        found.extend(more);
        i += 1;
    }
    found
}

/// The pids of processes whose parent is `parent`.
fn children(parent: u32) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in fs::read_dir("/proc").unwrap().filter_map(|e| e.ok()) {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid ...: comm may hold spaces; split after ')'.
        let after = &stat[stat.rfind(')').unwrap() + 2..];
        if after.split(' ').nth(1).and_then(|p| p.parse().ok()) == Some(parent) {
            found.push(pid);
        }
    }
    found
}
