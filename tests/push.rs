//! vd-push against a real sshd on loopback, real virtualenvs with pip, and
//! real wheels added with vd-add and planned with vd-freeze | vd-diff.

use crate::util::python::{install, pip_list, site_packages, venv_with_pip, Project};
use crate::util::record::{Action, Change};
use crate::util::sshd::{current_user, Sshd};
use crate::util::upload::{
    assert_rerun_completes, assert_upload_cut, cached, push_cut_off, sha256, BigPush,
};
use crate::util::{
    bin, error_message, installed, jsonl, repo, spawn_piped, stdout_of, tool, AsRecord, Outcome,
    Record,
};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A target record as a test builds it, to feed a tool.
pub(crate) type Target = Map<String, Value>;

/// Wheels of one project at several versions, each built once.
pub(crate) fn wheel(name: &str, version: &str) -> PathBuf {
    Project::new(name, version).build()
}

/// A target on host `i` whose wheel cache is `cache` (a directory of the
/// test's, never the real home's).
pub(crate) fn target(server: &Sshd, i: usize, venv: &Path, cache: &Path) -> Target {
    let mut t = server.target(i, venv);
    t.insert("cache".into(), json!(cache.display().to_string()));
    t
}

/// `vd-freeze | vd-diff [--exact] REQUIREMENTS`, the plans vd-push reads.
pub(crate) fn plan(
    server: &Sshd,
    repo: &Path,
    requirements: &Path,
    exact: bool,
    targets: &[Target],
) -> String {
    let frozen = server.tool("vd-freeze").stdin(jsonl(targets)).run();
    frozen.expect_code(0);
    let mut diff = tool("vd-diff").arg("--repo").arg(repo);
    if exact {
        diff = diff.arg("--exact");
    }
    let planned = diff.arg(requirements).stdin(frozen.stdout.clone()).run();
    planned.expect_code(0);
    planned.stdout
}

pub(crate) fn push(server: &Sshd, repo: &Path, args: &[&str], plans: &str) -> Outcome {
    server
        .tool("vd-push")
        .arg("--repo")
        .arg(repo)
        .args(args)
        .stdin(plans)
        .run()
}

/// Two runs of vd-push over the same `plans` at once, each of which must
/// succeed: the first record of each.
pub(crate) fn push_twice_at_once(server: &Sshd, repo: &Path, plans: &str) -> Vec<Record> {
    let pushes: Vec<_> = (0..2)
        .map(|_| {
            let run = server
                .tool("vd-push")
                .arg("--repo")
                .arg(repo)
                .stdin(plans.to_string());
            std::thread::spawn(move || run.run())
        })
        .collect();
    let outs: Vec<Outcome> = pushes.into_iter().map(|p| p.join().unwrap()).collect();
    outs.iter()
        .map(|out| {
            out.expect_code(0);
            let record = out.records().remove(0);
            assert_ok(&record);
            record
        })
        .collect()
}

#[track_caller]
pub(crate) fn assert_ok(record: &impl AsRecord) {
    assert!(record.error().is_none(), "{:?}", record.record());
}

/// The release log's events, read as vd reads it.
pub(crate) fn log_events(repo: &Path) -> Vec<vd::log::Event> {
    vd::log::ReleaseLog::new(repo).read().unwrap()
}

/// `(event, name, version, target)` of the log's events other than `release`.
pub(crate) fn push_events(repo: &Path) -> Vec<(String, String, String, String)> {
    log_events(repo)
        .into_iter()
        .filter(|e| e.event != "release")
        .map(|e| (e.event, e.name, e.version, e.target))
        .collect()
}

/// Where most pushes start: a server, a work folder, a repository that
/// holds vdp-beta 1.0, and `req.txt` asking for it.
fn beta_release() -> (Sshd, tempfile::TempDir, PathBuf, PathBuf) {
    let server = Sshd::start(1);
    let dir = tempfile::tempdir().unwrap();
    let repo = repo(dir.path(), &[wheel("vdp-beta", "1.0")]);
    let req = requirements(dir.path(), "req.txt", "vdp-beta\n");
    (server, dir, repo, req)
}

fn size(path: &Path) -> u64 {
    fs::metadata(path).unwrap().len()
}

pub(crate) fn requirements(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, text).unwrap();
    path
}

fn versions(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

#[test]
fn three_venvs_on_two_hosts_upload_once_then_nothing() {
    let server = Sshd::start(2);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (alpha1, alpha2, beta, zeta) = (
        wheel("vdp-alpha", "1.0"),
        wheel("vdp-alpha", "2.0"),
        wheel("vdp-beta", "1.0"),
        wheel("vdp-zeta", "1.0"),
    );
    let repo = repo(
        d,
        &[alpha1.clone(), alpha2.clone(), beta.clone(), zeta.clone()],
    );
    let (a, b, c) = (d.join("a"), d.join("b"), d.join("c"));
    for v in [&a, &b, &c] {
        venv_with_pip(v);
    }
    install(&a, &[alpha1.clone(), zeta.clone()]);
    install(&b, std::slice::from_ref(&alpha1));
    let (cache0, cache1) = (d.join("host0 cache"), d.join("host1-cache"));
    let targets = [
        target(&server, 0, &a, &cache0),
        target(&server, 1, &b, &cache1),
        target(&server, 0, &c, &cache0),
    ];
    let upgrade = requirements(d, "up.txt", "vdp-alpha==2.0\nvdp-beta\n");
    let plans = plan(&server, &repo, &upgrade, true, &targets);
    let before: Vec<_> = [&a, &b, &c].iter().map(|v| pip_list(v)).collect();
    let log_before = log_events(&repo);

    // --dry-run: what would happen, and nothing on the hosts changes.
    let dry = push(&server, &repo, &["--dry-run"], &plans);
    dry.expect_code(0);
    let dry = dry.records();
    for record in &dry {
        assert_ok(record);
        assert_eq!(record.changed, Some(false));
        assert_eq!(record.pushed().dry_run, Some(true));
    }
    let commands = dry[0]
        .pushed()
        .commands
        .clone()
        .expect("--dry-run lists its commands");
    assert_eq!(commands.len(), 2, "{commands:?}");
    assert!(commands[0].contains("-m pip") && commands[0].contains("uninstall -y vdp-zeta"));
    assert!(
        commands[1].contains("install --no-index --no-deps"),
        "{commands:?}"
    );
    assert!(
        commands[1].contains(&format!("{}/", cache0.display())),
        "{commands:?}"
    );
    let want_bytes = size(&alpha2) + size(&beta);
    assert_eq!(dry[0].pushed().uploaded_bytes, want_bytes);
    assert_eq!(dry[1].pushed().uploaded_bytes, want_bytes);
    assert_eq!(dry[2].pushed().uploaded_bytes, 0, "c shares a's host");
    assert!(
        !cache0.exists() && !cache1.exists(),
        "--dry-run made the cache"
    );
    for (v, was) in [&a, &b, &c].iter().zip(&before) {
        assert_eq!(&pip_list(v), was, "--dry-run changed {}", v.display());
        assert!(!v.join(".vd-lock").exists());
    }
    assert_eq!(
        log_events(&repo),
        log_before,
        "--dry-run wrote the release log"
    );

    // The push: each wheel crosses to each host once.
    let out = push(&server, &repo, &[], &plans);
    out.expect_code(0);
    let records = out.records();
    for (record, v) in records.iter().zip([&a, &b, &c]) {
        assert_ok(record);
        assert_eq!(record.changed, Some(true));
        assert_eq!(installed(record), pip_list(v), "{}", v.display());
        assert_eq!(pip_list(v)["vdp-alpha"], "2.0");
        assert_eq!(pip_list(v)["vdp-beta"], "1.0");
    }
    assert!(
        !pip_list(&a).contains_key("vdp-zeta"),
        "--exact did not remove"
    );
    assert_eq!(records[0].pushed().removed, ["vdp-zeta"]);
    assert_eq!(
        records[0].pushed().installed,
        ["vdp-alpha==2.0", "vdp-beta==1.0"]
    );
    let host0_bytes = records[0].pushed().uploaded_bytes + records[2].pushed().uploaded_bytes;
    assert_eq!(host0_bytes, want_bytes, "a wheel went to host 0 twice");
    assert_eq!(records[1].pushed().uploaded_bytes, want_bytes);
    assert_eq!(cached(&cache0).len(), 2);
    assert_eq!(cached(&cache0), cached(&cache1));
    let events = push_events(&repo);
    let label = |i: usize| {
        let target = targets[i].record();
        format!(
            "{}@{}:{}:{}",
            target.user.unwrap(),
            server.host(if i == 1 { 1 } else { 0 }),
            server.port,
            target.venv.unwrap()
        )
    };
    assert!(events.contains(&("remove".into(), "vdp-zeta".into(), "1.0".into(), label(0))));
    for i in 0..3 {
        assert!(events.contains(&("install".into(), "vdp-alpha".into(), "2.0".into(), label(i))));
    }
    assert_eq!(events.len(), 7, "{events:?}");

    // The same pipeline again: nothing to do, no connection, no pip.
    let plans = plan(&server, &repo, &upgrade, true, &targets);
    let logins = server.logins();
    let mtimes: Vec<_> = [&a, &b, &c]
        .iter()
        .map(|v| fs::metadata(site_packages(v)).unwrap().modified().unwrap())
        .collect();
    let out = push(&server, &repo, &[], &plans);
    out.expect_code(0);
    for record in out.records() {
        assert_ok(&record);
        assert_eq!(record.changed, Some(false));
        assert_eq!(record.pushed().uploaded_bytes, 0);
    }
    assert_eq!(server.logins(), logins, "an empty plan cost a connection");
    assert_eq!(push_events(&repo).len(), 7, "the release log grew");
    for (v, mtime) in [&a, &b, &c].iter().zip(mtimes) {
        assert_eq!(
            fs::metadata(site_packages(v)).unwrap().modified().unwrap(),
            mtime
        );
    }

    // A downgrade: alpha 1.0 goes to each host once more, beta stays.
    let down = requirements(d, "down.txt", "vdp-alpha==1.0\nvdp-beta\n");
    let plans = plan(&server, &repo, &down, false, &targets);
    assert!(plans.contains("\"downgrade\""), "{plans}");
    let out = push(&server, &repo, &[], &plans);
    out.expect_code(0);
    let records = out.records();
    for (record, v) in records.iter().zip([&a, &b, &c]) {
        assert_ok(record);
        assert_eq!(pip_list(v)["vdp-alpha"], "1.0");
        assert_eq!(installed(record), pip_list(v));
    }
    let sent: u64 = records.iter().map(|r| r.pushed().uploaded_bytes).sum();
    assert_eq!(sent, 2 * size(&alpha1));
    assert_eq!(cached(&cache0).len(), 3);
}

/// Run `vd-push --confirm` with a pseudo-terminal as its controlling
/// terminal (util-linux `script`), stdin and stdout redirected to files as
/// in a pipeline, typing `answers` at the terminal. Returns what the
/// terminal showed, the exit status, and stdout.
fn push_at_terminal(
    server: &Sshd,
    repo: &Path,
    plans: &str,
    answers: &str,
) -> (String, i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("plans.jsonl");
    let output = dir.path().join("out.jsonl");
    fs::write(&input, plans).unwrap();
    let command = format!(
        "{} --confirm --repo {} < {} > {}",
        bin("vd-push").display(),
        repo.display(),
        input.display(),
        output.display()
    );
    let mut child = spawn_piped(
        Command::new("script")
            .args(["-qefc", &command, "/dev/null"])
            .env("HOME", server.home())
            .env_remove("SSH_AUTH_SOCK"),
        "script (util-linux)",
    );
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut shown = String::new();
        let _ = stdout.read_to_string(&mut shown);
        shown
    });
    stdin.write_all(answers.as_bytes()).unwrap();
    // The terminal stays open until vd-push is done: its end would be `quit`.
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "vd-push --confirm did not finish"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    drop(stdin);
    let shown = reader.join().unwrap();
    (
        shown,
        status.code().unwrap_or(-1),
        fs::read_to_string(&output).unwrap(),
    )
}

#[test]
fn confirm_asks_on_the_terminal_one_target_at_a_time() {
    let server = Sshd::start(2);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let beta = wheel("vdp-beta", "1.0");
    let repo = repo(d, std::slice::from_ref(&beta));
    let (yes, no, later) = (d.join("yes"), d.join("no"), d.join("later"));
    for v in [&yes, &no, &later] {
        venv_with_pip(v);
    }
    let cache = d.join("cache");
    let req = requirements(d, "req.txt", "vdp-beta\n");
    let targets = [
        target(&server, 0, &yes, &cache),
        target(&server, 1, &no, &cache),
        target(&server, 0, &later, &cache),
    ];
    let plans = plan(&server, &repo, &req, false, &targets);
    let before = pip_list(&no);

    // Without a terminal: an error before anything is done.
    let out = Command::new("setsid")
        .arg(bin("vd-push"))
        .args(["--confirm", "--repo"])
        .arg(&repo)
        .env("HOME", server.home())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("/dev/tty") && stderr.contains("--confirm"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
    assert!(!cache.exists());

    // yes for the first, no for the second, quit at the third.
    let (shown, code, stdout) = push_at_terminal(&server, &repo, &plans, "y\nn\nq\n");
    assert_eq!(code, 0, "{shown}\n{stdout}");
    let records: Vec<Record> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 3);
    assert_ok(&records[0]);
    assert_eq!(records[0].changed, Some(true));
    assert_eq!(pip_list(&yes)["vdp-beta"], "1.0");
    for (record, v) in records[1..].iter().zip([&no, &later]) {
        assert_ok(record);
        assert_eq!(record.skipped, Some(true));
        assert_eq!(record.changed, Some(false));
        assert_eq!(pip_list(v), before, "a declined venv changed");
    }
    // Each prompt named its target and showed its plan, in input order.
    let first = shown
        .find(&format!(
            "Push to {}@{}:{}",
            current_user(),
            server.host(0),
            server.port
        ))
        .expect("no prompt for the first target");
    let second = shown
        .find(&format!(
            "Push to {}@{}:{}",
            current_user(),
            server.host(1),
            server.port
        ))
        .unwrap_or_else(|| panic!("no prompt for the second target:\n{shown}"));
    assert!(first < second, "{shown}");
    assert!(
        shown.contains("install") && shown.contains("vdp-beta"),
        "{shown}"
    );
    assert_eq!(shown.matches("[y]es, [n]o").count(), 3, "{shown}");
    assert_eq!(push_events(&repo).len(), 1);

    // all: the rest without asking.
    let plans = plan(&server, &repo, &req, false, &targets);
    let (shown, code, stdout) = push_at_terminal(&server, &repo, &plans, "a\n");
    assert_eq!(code, 0, "{shown}\n{stdout}");
    assert_eq!(shown.matches("[y]es, [n]o").count(), 1, "{shown}");
    for v in [&yes, &no, &later] {
        assert_eq!(pip_list(v)["vdp-beta"], "1.0");
    }
}

#[test]
fn a_failing_pip_fails_its_target_only_and_concurrent_pushes_serialize() {
    let server = Sshd::start(1);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (gamma, beta) = (wheel("vdp-gamma", "1.0"), wheel("vdp-beta", "1.0"));
    let repo = repo(d, &[gamma.clone(), beta.clone()]);
    let (good, broken) = (d.join("good"), d.join("broken"));
    for v in [&good, &broken] {
        venv_with_pip(v);
    }
    // Where the wheel puts its module file, the venv has a directory: pip
    // cannot write it (as root too).
    fs::create_dir(site_packages(&broken).join("vdp_gamma.py")).unwrap();
    let cache = d.join("cache");
    let targets = [
        target(&server, 0, &broken, &cache),
        target(&server, 0, &good, &cache),
    ];
    let req = requirements(d, "req.txt", "vdp-gamma\nvdp-beta\n");
    let plans = plan(&server, &repo, &req, false, &targets);
    let out = push(&server, &repo, &[], &plans);
    out.expect_code(1);
    let records = out.records();
    let message = error_message(&records[0]);
    assert!(message.contains("pip install failed"), "{message}");
    assert!(
        message.contains("vdp_gamma.py"),
        "pip's output is missing: {message}"
    );
    assert!(message.contains(broken.to_str().unwrap()), "{message}");
    assert_eq!(installed(&records[0]), pip_list(&broken), "the record lies");
    assert!(!pip_list(&broken).contains_key("vdp-gamma"));
    assert_ok(&records[1]);
    assert_eq!(pip_list(&good)["vdp-gamma"], "1.0");
    let errors: Vec<_> = log_events(&repo)
        .into_iter()
        .filter(|e| e.event == "error")
        .collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].target.ends_with(broken.to_str().unwrap()));
    assert!(errors[0].detail.contains("pip install failed"));

    // Two pushes of one plan to one venv at once: one changes it, the
    // other, after the lock, finds it done; both end correct.
    let fresh = d.join("fresh");
    venv_with_pip(&fresh);
    let fresh_target = target(&server, 0, &fresh, &cache);
    let plans = plan(&server, &repo, &req, false, &[fresh_target]);
    let events_before = push_events(&repo).len();
    let records = push_twice_at_once(&server, &repo, &plans);
    let mut changed = 0;
    for record in &records {
        assert_eq!(installed(record), pip_list(&fresh));
        changed += usize::from(record.changed == Some(true));
    }
    assert_eq!(changed, 1, "both pushes changed the venv: not serialized");
    assert_eq!(
        pip_list(&fresh),
        versions(&[
            ("pip", &pip_list(&fresh)["pip"]),
            ("vdp-beta", "1.0"),
            ("vdp-gamma", "1.0")
        ])
    );
    assert_eq!(push_events(&repo).len(), events_before + 2);
}

#[test]
fn a_connection_killed_during_upload_leaves_nothing_and_a_rerun_completes() {
    let server = Sshd::start(1);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let big = BigPush::new(d, "vdp-big");
    let req = requirements(d, "req.txt", "vdp-big\n");
    let plans = plan(
        &server,
        &big.repo,
        &req,
        false,
        &[target(&server, 0, &big.venv, &big.cache)],
    );

    // The host's end killed while the upload is under way.
    let out = push_cut_off(server.tool("vd-push"), &big, &plans, server.pid());
    assert_upload_cut(&out);

    // The rerun sends the wheel whole and installs it.
    let out = push(&server, &big.repo, &[], &plans);
    assert_rerun_completes(&out, &big);
    let record = &out.records()[0];
    assert_eq!(record.pushed().uploaded_bytes, size(&big.wheel));
    assert_eq!(pip_list(&big.venv)["vdp-big"], "1.0");
    assert_eq!(installed(record), pip_list(&big.venv));
}

#[test]
fn create_makes_missing_venvs_only_when_asked() {
    let (server, dir, repo, req) = beta_release();
    let d = dir.path();
    let v = d.join("new venv");
    let cache = d.join("cache");
    let mut t = target(&server, 0, &v, &cache);
    t.insert("python".into(), json!(crate::util::python::python3()));
    let plans = plan(&server, &repo, &req, false, &[t]);
    assert!(plans.contains("\"venv_exists\":false"), "{plans}");

    let out = push(&server, &repo, &[], &plans);
    out.expect_code(1);
    let message = error_message(&out.records()[0]);
    assert!(message.contains("--create"), "{message}");
    assert!(!v.exists(), "a venv was made without --create");

    let out = push(&server, &repo, &["--create"], &plans);
    out.expect_code(0);
    let record = &out.records()[0];
    assert_ok(record);
    assert_eq!(record.changed, Some(true));
    assert_eq!(record.venv_exists, Some(true));
    assert_eq!(pip_list(&v)["vdp-beta"], "1.0");
    assert_eq!(installed(record), pip_list(&v));
    assert_eq!(record.facts().venv, Some(true));
}

#[test]
fn a_plan_that_removes_pip_is_refused_and_its_venv_left_alone() {
    let (server, dir, repo, req) = beta_release();
    let d = dir.path();
    let (kept, fine) = (d.join("kept"), d.join("fine"));
    for v in [&kept, &fine] {
        venv_with_pip(v);
    }
    let (kept_cache, fine_cache) = (d.join("kept-cache"), d.join("fine-cache"));
    let plans = plan(
        &server,
        &repo,
        &req,
        false,
        &[
            target(&server, 0, &kept, &kept_cache),
            target(&server, 0, &fine, &fine_cache),
        ],
    );
    // A saved plan edited by hand (or written by another tool): besides the
    // install, it removes pip.
    let mut records: Vec<Record> = plans
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let pip_version = pip_list(&kept)["pip"].clone();
    records[0].plan.as_mut().unwrap().push(Change {
        from: Some(pip_version.clone()),
        ..Change::new("pip", Action::Remove)
    });
    let before = pip_list(&kept);

    let out = push(&server, &repo, &[], &jsonl(&records));
    out.expect_code(1);
    let records = out.records();
    let message = error_message(&records[0]);
    assert!(message.contains("removes pip"), "{message}");
    assert!(message.contains("nothing was done"), "{message}");
    assert_eq!(pip_list(&kept), before, "the refused plan changed the venv");
    assert!(
        !kept_cache.exists(),
        "the refused plan's wheels were uploaded"
    );
    // The other target goes on.
    assert_ok(&records[1]);
    assert_eq!(pip_list(&fine)["vdp-beta"], "1.0");
    let events = push_events(&repo);
    let kept_events: Vec<_> = events
        .iter()
        .filter(|(_, _, _, target)| target.ends_with(kept.to_str().unwrap()))
        .collect();
    assert_eq!(kept_events.len(), 1, "{events:?}");
    assert_eq!(kept_events[0].0, "error");

    // The venv still takes a push: the plan without the removal goes in.
    let out = push(&server, &repo, &[], &plans);
    out.expect_code(0);
    assert_ok(&out.records()[0]);
    assert_eq!(pip_list(&kept)["vdp-beta"], "1.0");
    assert_eq!(pip_list(&kept)["pip"], pip_version);
}

#[test]
fn venv_user_pushes_through_sudo() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let user = crate::util::sshd::second_user();
    let server = Sshd::start(1);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Every directory on the way to the venv and the cache must be
    // searchable by the venv's user.
    fs::set_permissions(d, fs::Permissions::from_mode(0o755)).unwrap();
    let beta = wheel("vdp-beta", "1.0");
    let repo = repo(d, std::slice::from_ref(&beta));
    let home = d.join("app");
    fs::create_dir(&home).unwrap();
    let chown = Command::new("chown").arg(user).arg(&home).status().unwrap();
    assert!(chown.success());
    let v = home.join("venv $(touch pwned) 'x'");
    let python = crate::util::python::interpreter_for(user);
    stdout_of(
        Command::new("sudo")
            .args(["-n", "-u", user, &python, "-m", "venv"])
            .arg(&v)
            .current_dir("/"),
        &format!("python3 -m venv as {user} (Debian: apt-get install python3-venv)"),
    );
    let mut t = target(&server, 0, &v, &d.join("cache"));
    t.insert("venv_user".into(), json!(user));
    let req = requirements(d, "req.txt", "vdp-beta\n");
    let plans = plan(&server, &repo, &req, false, &[t]);

    let out = push(&server, &repo, &[], &plans);
    out.expect_code(0);
    let record = &out.records()[0];
    assert_ok(record);
    assert_eq!(record.changed, Some(true));
    assert_eq!(pip_list(&v)["vdp-beta"], "1.0");
    assert_eq!(installed(record), pip_list(&v));
    // pip ran as the venv's user: what it wrote is that user's.
    let uid = Command::new("id").args(["-u", user]).output().unwrap();
    let uid: u32 = String::from_utf8_lossy(&uid.stdout).trim().parse().unwrap();
    let written: Vec<u32> = fs::read_dir(site_packages(&v))
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name().to_string_lossy().starts_with("vdp_beta"))
        .map(|e| e.metadata().unwrap().uid())
        .collect();
    assert!(
        !written.is_empty() && written.iter().all(|&u| u == uid),
        "{written:?}"
    );
    assert!(!home.join("pwned").exists() && !Path::new("/pwned").exists());
}

/// The release log policy every deploying tool shares: a log that cannot be
/// written fails no target (the venv has changed), names what went unlogged
/// on stderr, and makes the exit status 1.
#[test]
fn a_release_log_that_cannot_be_written_fails_no_target() {
    let server = Sshd::start(1);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let repo = repo(d, &[wheel("vdp-alpha", "1.0")]);
    let venv = d.join("venv");
    venv_with_pip(&venv);
    let targets = [target(&server, 0, &venv, &d.join("cache"))];
    let wanted = requirements(d, "req.txt", "vdp-alpha==1.0\n");
    let plans = plan(&server, &repo, &wanted, false, &targets);
    // A directory where the log should be: no user, not even root, can
    // append to it.
    let log = repo.join("release_log");
    fs::remove_file(&log).unwrap();
    fs::create_dir(&log).unwrap();

    let out = push(&server, &repo, &[], &plans);
    out.expect_code(1)
        .expect_stderr("not logged: install")
        .expect_stderr("vdp-alpha");
    let records = out.records();
    assert_ok(&records[0]);
    assert_eq!(records[0].changed, Some(true));
    assert_eq!(pip_list(&venv)["vdp-alpha"], "1.0");
}

#[test]
fn a_venv_changed_since_the_plan_is_refused_with_nothing_changed() {
    let server = Sshd::start(1);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (alpha1, alpha2, beta) = (
        wheel("vdp-alpha", "1.0"),
        wheel("vdp-alpha", "2.0"),
        wheel("vdp-beta", "1.0"),
    );
    let repo = repo(d, &[alpha1.clone(), beta.clone()]);
    let v = d.join("venv");
    venv_with_pip(&v);
    install(&v, std::slice::from_ref(&alpha1));
    let cache = d.join("cache");
    let req = requirements(d, "req.txt", "vdp-alpha\nvdp-beta\n");
    let targets = [target(&server, 0, &v, &cache)];
    let plans = plan(&server, &repo, &req, false, &targets);
    assert!(plans.contains("\"planned_from\":\"sha256:"), "{plans}");

    // Someone upgrades the venv by hand between the review and the push.
    install(&v, std::slice::from_ref(&alpha2));
    let drifted = pip_list(&v);
    let out = push(&server, &repo, &[], &plans);
    out.expect_code(1);
    let record = &out.records()[0];
    let message = error_message(record);
    assert!(
        message.contains(
            "changed since the plan was made: vdp-alpha 1.0 → 2.0; nothing was installed"
        ),
        "{message}"
    );
    assert_eq!(pip_list(&v), drifted, "a drifted venv was changed");
    assert_eq!(installed(record), drifted, "the record lies");
    let events = push_events(&repo);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].0, "error");

    // Planned again, it goes in.
    let plans = plan(&server, &repo, &req, false, &targets);
    push(&server, &repo, &[], &plans).expect_code(0);
    assert_eq!(pip_list(&v)["vdp-beta"], "1.0");
}

#[test]
fn a_cache_path_with_a_newline_or_semicolon_is_refused_naming_field_and_line() {
    let (server, dir, repo, req) = beta_release();
    let d = dir.path();
    let venvs = [d.join("newline"), d.join("semicolon"), d.join("fine")];
    for v in &venvs {
        venv_with_pip(v);
    }
    let good = d.join("cache");
    let targets: Vec<Target> = venvs.iter().map(|v| target(&server, 0, v, &good)).collect();
    let plans = plan(&server, &repo, &req, false, &targets);
    // A saved plan edited by hand: the first two targets' caches are paths
    // no push can carry as one path.
    let bad = [
        format!("{}/new\n{}/line", d.display(), d.display()),
        format!("{}/semi;touch {}/pwned", d.display(), d.display()),
    ];
    let mut records: Vec<Target> = plans
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for (record, cache) in records.iter_mut().zip(&bad) {
        record.insert("cache".into(), json!(cache));
    }
    let before = pip_list(&venvs[0]);

    let out = push(&server, &repo, &[], &jsonl(&records));
    out.expect_code(1);
    let records = out.records();
    for (i, record) in records[..2].iter().enumerate() {
        let message = error_message(record);
        assert!(
            message.contains("field `cache`") && message.contains(&format!("line {}", i + 1)),
            "{message}"
        );
        assert_eq!(pip_list(&venvs[i]), before, "a refused target changed");
    }
    for leftover in ["new", "new\nline", "semi", "semi;touch", "pwned"] {
        assert!(!d.join(leftover).exists(), "{leftover:?} was made");
    }
    assert_ok(&records[2]);
    assert_eq!(pip_list(&venvs[2])["vdp-beta"], "1.0");
}

#[test]
fn a_push_killed_while_pip_runs_is_logged_by_the_next_push() {
    let (server, dir, repo, req) = beta_release();
    let d = dir.path();
    let beta = wheel("vdp-beta", "1.0");
    let v = d.join("venv");
    venv_with_pip(&v);
    let cache = d.join("cache");
    let targets = [target(&server, 0, &v, &cache)];
    let plans = plan(&server, &repo, &req, false, &targets);

    // pip waits at a gate: a `.pth` file of the venv, run by every start of
    // its python but the freeze's (which runs with -E), says pip started, waits for
    // the gate (a FIFO) to be opened, then sends pip's output to a file, as
    // a pip with nothing left to print outlives the connection that ran it.
    let (gate, started, output) = (d.join("gate"), d.join("started"), d.join("pip-output"));
    assert!(Command::new("mkfifo")
        .arg(&gate)
        .status()
        .unwrap()
        .success());
    let pth = site_packages(&v).join("vd_test_gate.pth");
    fs::write(
        &pth,
        format!(
            "import sys, os; sys.flags.ignore_environment or (open('{s}', 'w').write(str(os.getpid())), \
             open('{g}').read(), os.dup2(os.open('{o}', os.O_WRONLY | os.O_CREAT), 1), \
             os.dup2(1, 2))\n",
            s = started.display(),
            g = gate.display(),
            o = output.display()
        ),
    )
    .unwrap();
    let running = server
        .tool("vd-push")
        .arg("--repo")
        .arg(&repo)
        .stdin(plans)
        .spawn();
    let deadline = Instant::now() + Duration::from_secs(60);
    let pip: u32 = loop {
        if let Some(pid) = fs::read_to_string(&started)
            .ok()
            .and_then(|t| t.trim().parse().ok())
        {
            break pid;
        }
        assert!(Instant::now() < deadline, "pip never started");
        std::thread::sleep(Duration::from_millis(20));
    };
    let _ = Command::new("kill")
        .args(["-KILL", &running.pid().to_string()])
        .status();
    running.finish();
    fs::remove_file(&pth).unwrap();
    fs::write(&gate, "").unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while Path::new(&format!("/proc/{pip}")).exists() {
        assert!(Instant::now() < deadline, "pip did not finish");
        std::thread::sleep(Duration::from_millis(50));
    }
    // pip did its work; the push that ran it logged nothing.
    assert_eq!(pip_list(&v)["vdp-beta"], "1.0");
    assert!(push_events(&repo).is_empty(), "{:?}", push_events(&repo));

    // The next run plans nothing for the venv, and logs what was done.
    let plans = plan(&server, &repo, &req, false, &targets);
    assert!(plans.contains("\"plan\":[]"), "{plans}");
    let out = push(&server, &repo, &[], &plans);
    out.expect_code(0);
    let record = &out.records()[0];
    assert_ok(record);
    assert_eq!(record.changed, Some(false));
    let events: Vec<_> = log_events(&repo)
        .into_iter()
        .filter(|e| e.event != "release")
        .collect();
    assert_eq!(events.len(), 1, "{events:?}");
    let e = &events[0];
    assert_eq!(
        (e.event.as_str(), e.name.as_str(), e.version.as_str()),
        ("install", "vdp-beta", "1.0")
    );
    assert_eq!(e.sha256, sha256(&beta));
    assert!(e.target.ends_with(v.to_str().unwrap()), "{e:?}");
    assert!(e.detail.contains("found done by a later push"), "{e:?}");

    // Once told, never told again.
    push(&server, &repo, &[], &plans).expect_code(0);
    assert_eq!(push_events(&repo).len(), 1);
}
