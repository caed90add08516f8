//! Hostile conditions on the remote side, against a real sshd on loopback,
//! real virtualenvs and real wheels: a generation's build killed half way,
//! switches whose run never logged them, cached wheels changed on the host,
//! a venv link that leaves its generations folder, and a `planned_from`
//! that is no fingerprint.

use crate::push::{log_events, plan, push, requirements, target, wheel};
use crate::util::python::{pip_list, python3, venv, venv_with_pip};
use crate::util::sshd::Sshd;
use crate::util::upload::sha256;
use crate::util::{error_message, repo, Outcome};
use serde_json::{json, Map, Value};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

type Record = Map<String, Value>;

/// A target on host 0 that keeps `keep` generations, made with the tests'
/// python when it does not exist.
fn generations_target(server: &Sshd, venv: &Path, cache: &Path, keep: u32) -> Record {
    let mut t = target(server, 0, venv, cache);
    t.insert("generations".into(), json!(keep));
    t.insert("python".into(), json!(python3()));
    t
}

/// What `venv`'s link says, as it says it.
fn link(venv: &Path) -> String {
    fs::read_link(venv).unwrap().display().to_string()
}

/// The generations' folder of `venv`.
fn generations(venv: &Path) -> PathBuf {
    PathBuf::from(format!("{}.generations", venv.display()))
}

/// The numbered folders beside `venv`, finished or not.
fn folders(venv: &Path) -> Vec<u32> {
    let mut numbers: Vec<u32> = fs::read_dir(generations(venv))
        .unwrap()
        .filter_map(|e| e.unwrap().file_name().to_str()?.parse().ok())
        .collect();
    numbers.sort();
    numbers
}

fn rollback(server: &Sshd, repo: &Path, args: &[&str], records: &str) -> Outcome {
    server
        .tool("vd-rollback")
        .arg("--repo")
        .arg(repo)
        .args(args)
        .stdin(records)
        .run()
}

/// `(event, name, version, detail)` of the release log's events of `kind`.
fn events(repo: &Path, kind: &str) -> Vec<(String, String, String, String)> {
    log_events(repo)
        .into_iter()
        .filter(|e| e.event == kind)
        .map(|e| (e.event, e.name, e.version, e.detail))
        .collect()
}

/// The pids of the processes that hold `file` open: a remote script holds
/// its lock file, and every process it starts inherits it.
fn holders(file: &Path) -> Vec<u32> {
    let holds = |pid: &u32| {
        fs::read_dir(format!("/proc/{pid}/fd")).is_ok_and(|fds| {
            fds.filter_map(|fd| fs::read_link(fd.ok()?.path()).ok())
                .any(|open| open == file)
        })
    };
    fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(holds)
        .collect()
}

/// Wait until `done` holds, or fail saying `what` never happened.
fn wait_for(what: &str, seconds: u64, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    while !done() {
        assert!(Instant::now() < deadline, "{what} never happened");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A test's server (one host), folder, and repository of `wheels` in it.
fn fleet(wheels: &[PathBuf]) -> (Sshd, tempfile::TempDir, PathBuf) {
    let server = Sshd::start(1);
    let dir = tempfile::tempdir().unwrap();
    let repo = repo(dir.path(), wheels);
    (server, dir, repo)
}

/// A test's server, folder and repository of `wheels`, and a target with
/// generations at `venv` in it whose first generation holds vdp-alpha
/// (the repository must have it).
fn first_generation(
    wheels: &[PathBuf],
    venv: &str,
) -> (Sshd, tempfile::TempDir, PathBuf, PathBuf, Record) {
    let (server, dir, repo) = fleet(wheels);
    let d = dir.path();
    let v = d.join(venv);
    let t = generations_target(&server, &v, &d.join("cache"), 3);
    let one = requirements(d, "one.txt", "vdp-alpha\n");
    let plans = plan(&server, &repo, &one, false, std::slice::from_ref(&t));
    push(&server, &repo, &["--create"], &plans).expect_code(0);
    assert_eq!(link(&v), format!("{venv}.generations/1"));
    (server, dir, repo, v, t)
}

/// The release log moved aside and a directory put in its place, which no
/// user can append to: a run's events are then lost as a killed run's are.
fn break_log(repo: &Path) {
    fs::rename(repo.join("release_log"), repo.join("release_log.kept")).unwrap();
    fs::create_dir(repo.join("release_log")).unwrap();
}

fn mend_log(repo: &Path) {
    fs::remove_dir(repo.join("release_log")).unwrap();
    fs::rename(repo.join("release_log.kept"), repo.join("release_log")).unwrap();
}

#[test]
fn a_build_killed_during_pip_is_never_switched_to_and_the_next_push_removes_it() {
    let wheels = [wheel("vdp-alpha", "1.0"), wheel("vdp-beta", "1.0")];
    let (server, dir, repo, v, t) = first_generation(&wheels, "venv");
    let d = dir.path();

    // The build of generation 2 is killed, with the processes it started
    // on the host, once its venv has a runnable python: a folder is left
    // that holds less than the plan.
    let two = requirements(d, "two.txt", "vdp-alpha\nvdp-beta\n");
    let plans = plan(&server, &repo, &two, false, std::slice::from_ref(&t));
    let running = server
        .tool("vd-push")
        .arg("--repo")
        .arg(&repo)
        .stdin(plans.clone())
        .spawn();
    let half = generations(&v).join("2");
    wait_for("the build of generation 2", 120, || {
        half.join("bin/python").exists()
    });
    let lock = generations(&v).join(".vd-lock");
    let _ = Command::new("kill")
        .args(["-KILL", &running.pid().to_string()])
        .status();
    for pid in holders(&lock) {
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
    }
    running.finish();
    wait_for("the end of the killed build", 60, || {
        holders(&lock).is_empty()
    });
    assert!(half.join("bin/python").exists(), "no half-built generation");
    assert_eq!(link(&v), "venv.generations/1");

    // It is never switched to, not even when asked for by number.
    let out = rollback(&server, &repo, &["--to", "2"], &plans);
    out.expect_code(1);
    let message = error_message(&out.json()[0]);
    assert!(message.contains("no finished generation 2"), "{message}");
    assert_eq!(link(&v), "venv.generations/1");

    // The next push builds past it and removes it, and logs that the killed
    // one switched to no generation.
    let out = push(&server, &repo, &[], &plans);
    out.expect_code(0);
    let record = &out.json()[0];
    assert_eq!(record["generation"], json!({"active": 3, "previous": 1}));
    assert_eq!(folders(&v), [1, 3]);
    assert_eq!(pip_list(&v)["vdp-beta"], "1.0");
    let settled: Vec<String> = events(&repo, "error")
        .into_iter()
        .map(|e| e.3)
        .filter(|detail| detail.contains("ended before logging its outcome"))
        .collect();
    assert_eq!(settled.len(), 1, "{settled:?}");
    assert!(
        settled[0].contains("switched to no generation"),
        "{settled:?}"
    );

    // A rollback goes back to the generation before, which was finished.
    let out = rollback(&server, &repo, &[], &plans);
    out.expect_code(0);
    assert_eq!(out.json()[0]["rolled_back"], json!({"from": 3, "to": 1}));
    assert_eq!(link(&v), "venv.generations/1");
}

#[test]
fn switches_no_run_logged_are_logged_by_the_next_run() {
    let wheels = [wheel("vdp-alpha", "1.0"), wheel("vdp-beta", "1.0")];
    let (server, dir, repo, v, t) = first_generation(&wheels, "venv");
    let d = dir.path();
    let installs = events(&repo, "install").len();

    // A build that switches, and whose events never reach the log.
    let two = requirements(d, "two.txt", "vdp-alpha\nvdp-beta\n");
    let plans = plan(&server, &repo, &two, false, std::slice::from_ref(&t));
    break_log(&repo);
    push(&server, &repo, &[], &plans)
        .expect_code(1)
        .expect_stderr("not logged");
    mend_log(&repo);
    assert_eq!(link(&v), "venv.generations/2");
    assert_eq!(events(&repo, "install").len(), installs);

    // The next push, with nothing to do, logs it as done, in generation 2.
    let plans = plan(&server, &repo, &two, false, std::slice::from_ref(&t));
    assert!(plans.contains("\"plan\":[]"), "{plans}");
    push(&server, &repo, &[], &plans).expect_code(0);
    let found = events(&repo, "install");
    assert_eq!(found.len(), installs + 1, "{found:?}");
    let (_, name, version, detail) = found.last().unwrap();
    assert_eq!((name.as_str(), version.as_str()), ("vdp-beta", "1.0"));
    assert!(
        detail.contains("found done by a later run") && detail.ends_with("in generation 2"),
        "{detail}"
    );

    // A rollback whose event is lost is logged by the next rollback.
    break_log(&repo);
    rollback(&server, &repo, &[], &plans).expect_code(1);
    mend_log(&repo);
    assert_eq!(link(&v), "venv.generations/1");
    rollback(&server, &repo, &["--to", "2"], &plans).expect_code(0);
    let details: Vec<String> = events(&repo, "rollback").into_iter().map(|e| e.3).collect();
    assert_eq!(details.len(), 2, "{details:?}");
    assert!(
        details[0].starts_with("generation 2 to 1; found done by a later run"),
        "{details:?}"
    );
    assert_eq!(details[1], "generation 1 to 2");
    // Once told, never told again.
    push(&server, &repo, &[], &plans).expect_code(0);
    assert_eq!(events(&repo, "rollback").len(), 2);
    assert_eq!(events(&repo, "install").len(), installs + 1);
    assert!(events(&repo, "error").is_empty());
}

#[test]
fn a_cached_wheel_changed_on_the_host_is_sent_again_and_never_installed() {
    let (alpha1, alpha2) = (wheel("vdp-alpha", "1.0"), wheel("vdp-alpha", "2.0"));
    let (server, dir, repo) = fleet(&[alpha1.clone(), alpha2.clone()]);
    let d = dir.path();
    let cache = d.join("cache");
    let req = requirements(d, "req.txt", "vdp-alpha==1.0\n");
    let cached = cache
        .join(sha256(&alpha1))
        .join(alpha1.file_name().unwrap());
    let pushed_to = |name: &str| {
        let v = d.join(name);
        venv_with_pip(&v);
        let t = target(&server, 0, &v, &cache);
        let plans = plan(&server, &repo, &req, false, &[t]);
        let out = push(&server, &repo, &[], &plans);
        out.expect_code(0);
        (v, out.json().remove(0))
    };
    let (first, record) = pushed_to("first");
    assert_eq!(pip_list(&first)["vdp-alpha"], "1.0");
    assert_eq!(record["pushed"]["uploaded"].as_array().unwrap().len(), 1);

    // Replaced on the host by other bytes (another version's wheel): those
    // are never installed; the wheel is sent again.
    fs::copy(&alpha2, &cached).unwrap();
    let (second, record) = pushed_to("second");
    assert_eq!(pip_list(&second)["vdp-alpha"], "1.0");
    assert_eq!(record["pushed"]["uploaded"].as_array().unwrap().len(), 1);
    assert_eq!(sha256(&cached), sha256(&alpha1));

    // Cut short: replaced, and the push succeeds.
    let bytes = fs::read(&alpha1).unwrap();
    fs::write(&cached, &bytes[..bytes.len() / 2]).unwrap();
    let (third, record) = pushed_to("third");
    assert_eq!(pip_list(&third)["vdp-alpha"], "1.0");
    assert_eq!(record["pushed"]["uploaded"].as_array().unwrap().len(), 1);
    assert_eq!(sha256(&cached), sha256(&alpha1));

    // Whole again, it is used as it is.
    let (_, record) = pushed_to("fourth");
    assert_eq!(record["pushed"]["uploaded"], json!([]));
}

#[test]
fn a_venv_link_out_of_its_generations_folder_is_refused() {
    let (server, dir, repo) = fleet(&[wheel("vdp-alpha", "1.0")]);
    let d = dir.path();
    let v = d.join("venv");
    for n in ["1", "2", "3"] {
        venv(&generations(&v).join(n));
    }
    venv(&d.join("outside/4"));
    fs::write(generations(&v).join(".vd-lock"), "").unwrap();
    let sneaky = "venv.generations/../outside/4";
    std::os::unix::fs::symlink(sneaky, &v).unwrap();
    let t = generations_target(&server, &v, &d.join("cache"), 3);
    let req = requirements(d, "req.txt", "vdp-alpha\n");
    let plans = plan(&server, &repo, &req, false, std::slice::from_ref(&t));

    let refused = |out: Outcome| {
        out.expect_code(1);
        let message = error_message(&out.json()[0]);
        assert!(
            message.contains(&format!("{} is a symlink to {sneaky}", v.display()))
                && message.contains("vd does not manage it"),
            "{message}"
        );
    };
    refused(rollback(&server, &repo, &[], &plans));
    refused(push(&server, &repo, &[], &plans));
    assert_eq!(link(&v), sneaky);
    assert_eq!(folders(&v), [1, 2, 3]);
    assert!(!d.join("outside/4/.vd-finished").exists());
}

#[test]
fn a_malformed_planned_from_fails_its_target_only() {
    let wheels = [wheel("vdp-alpha", "1.0"), wheel("vdp-beta", "1.0")];
    let (server, dir, repo, g, t) = first_generation(&wheels, "generations");
    let d = dir.path();
    let plain = d.join("plain");
    venv_with_pip(&plain);
    let targets = [t, target(&server, 0, &plain, &d.join("cache"))];

    let two = requirements(d, "two.txt", "vdp-alpha\nvdp-beta\n");
    let plans = plan(&server, &repo, &two, false, &targets);
    let mut records: Vec<Record> = plans
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // Two words: a state nobody planned from, then the real one.
    let real = records[0]["planned_from"].as_str().unwrap().to_string();
    let words = format!("sha256:{} {real}", "0".repeat(64));
    records[0].insert("planned_from".into(), json!(words));
    let input: String = records
        .iter()
        .map(|r| serde_json::to_string(r).unwrap() + "\n")
        .collect();

    let out = push(&server, &repo, &[], &input);
    out.expect_code(1);
    let records = out.json();
    let message = error_message(&records[0]);
    assert!(
        message.contains("field `planned_from`") && message.contains("is not a fingerprint"),
        "{message}"
    );
    assert_eq!(link(&g), "generations.generations/1");
    assert_eq!(folders(&g), [1]);
    assert!(records[1].get("error").is_none(), "{:?}", records[1]);
    assert_eq!(pip_list(&plain)["vdp-beta"], "1.0");
}
