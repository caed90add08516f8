//! vd-reload against a real sshd: reload commands that count their runs in
//! files, so a test can tell how often, and when, each one ran.

use crate::util::sshd::Sshd;
use crate::util::{bin, empty_repo, error_message, jsonl, AsRecord, Outcome, Record, Running};
use serde_json::{json, Map, Value};
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use vd::log::ReleaseLog;

/// A target record as a test builds it, to feed a tool.
type Target = Map<String, Value>;

/// A changed target on host `i` whose reload is `reload`.
fn target(server: &Sshd, i: usize, venv: &str, reload: &str, once: bool) -> Target {
    let mut record = server.target(i, Path::new(venv));
    record.insert("changed".into(), json!(true));
    record.insert("reload".into(), json!(reload));
    if once {
        record.insert("reload_once".into(), json!(true));
    }
    record
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_default()
}

fn line(record: &Target) -> Vec<u8> {
    let mut text = serde_json::to_vec(record).unwrap();
    text.push(b'\n');
    text
}

#[test]
fn reload_once_runs_once_per_host_after_its_last_target() {
    let server = Sshd::start(2);
    let dir = tempfile::tempdir().unwrap();
    let repo = empty_repo(dir.path());
    let file = |name: &str| dir.path().join(name);
    let append = |text: &str, name: &str| format!("echo {text} >> {}", file(name).display());
    let loop_command = format!(
        "for i in 1 2; do echo $i; done >> {}",
        file("loop0").display()
    );
    let mut unchanged = target(&server, 0, "/srv/d", &append("no", "count0"), true);
    unchanged.insert("changed".into(), json!(false));
    let mut no_reload = target(&server, 1, "/srv/f", "", false);
    no_reload.remove("reload");
    let input = [
        target(&server, 1, "/srv/e", &append("y", "count1"), false),
        target(&server, 0, "/srv/a", &append("x", "count0"), true),
        target(&server, 0, "/srv/b", &append("x", "count0"), true),
        target(&server, 0, "/srv/c", &append("x", "count0"), true),
        // Sent once the records above are out.
        target(&server, 1, "/srv/g", &append("z", "count1once"), true),
        no_reload,
        unchanged.clone(),
        target(&server, 0, "/srv/h", &loop_command, true),
    ];
    let mut child = Command::new(bin("vd-reload"))
        .arg("--repo")
        .arg(&repo)
        .env("HOME", server.home())
        .env_remove("SSH_AUTH_SOCK")
        .env_remove("VD_REPO")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    for record in &input[..4] {
        stdin.write_all(&line(record)).unwrap();
    }
    stdin.flush().unwrap();
    // The per-target reload is done and written while the input is open...
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    let first: Record = serde_json::from_str(&first).unwrap();
    assert_eq!(first.venv.as_deref(), Some("/srv/e"));
    assert_eq!(first.reloaded, Some(true));
    assert_eq!(read(&file("count1")), "y\n");
    // ...and host 0's reload waits: another of its targets may yet come.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(read(&file("count0")), "", "reloaded before the input ended");
    for record in &input[4..] {
        stdin.write_all(&line(record)).unwrap();
    }
    drop(stdin);
    let mut rest = String::new();
    for text in stdout.lines() {
        rest.push_str(&text.unwrap());
        rest.push('\n');
    }
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(0), "stderr:\n{stderr}");
    assert_eq!(read(&file("count0")), "x\n", "one reload for three targets");
    assert_eq!(read(&file("loop0")), "1\n2\n", "the command ran as written");
    assert_eq!(read(&file("count1")), "y\n");
    assert_eq!(read(&file("count1once")), "z\n");
    let records: Vec<Record> = rest
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), input.len() - 1);
    for (record, sent) in records.iter().zip(&input[1..]) {
        assert_eq!(record.venv, sent.record().venv, "out of order");
    }
    for i in [0, 1, 2, 3, 6] {
        assert_eq!(records[i].reloaded, Some(true), "{:?}", records[i]);
    }
    assert_eq!(records[4].reloaded, Some(false));
    let unchanged_out: Target = serde_json::from_str(rest.lines().nth(5).unwrap()).unwrap();
    assert_eq!(unchanged_out, unchanged, "an unchanged target was touched");
    let log = ReleaseLog::new(&repo).read().unwrap();
    let reloads = log.iter().filter(|e| e.event == "reload").count();
    assert_eq!(reloads, 6, "{log:?}");
    assert_eq!(server.logins(), 2, "{}", server.log());
}

#[test]
fn failing_reloads_and_checks_are_errors_and_the_rest_go_on() {
    let server = Sshd::start(2);
    let dir = tempfile::tempdir().unwrap();
    let repo = empty_repo(dir.path());
    let file = |name: &str| dir.path().join(name).display().to_string();
    let with_check = |mut record: Target, check: String| {
        record.insert("check".into(), json!(check));
        record
    };
    let upstream = json!({"host": "x", "venv": "/v", "changed": true, "reload": "true",
                          "error": {"tool": "vd-migrate", "message": "broken migration"}});
    let upstream = upstream.as_object().unwrap().clone();
    let mut bad_reload = target(&server, 0, "/srv/h", "true", false);
    bad_reload.insert("reload".into(), json!(5));
    let mut bad_once = target(&server, 0, "/srv/i", "true", false);
    bad_once.insert("reload_once".into(), json!("maybe"));
    let once = format!("echo once >> {}; echo down >&2; exit 4", file("once1"));
    let input = [
        target(
            &server,
            0,
            "/srv/a",
            "echo starting; echo boom >&2; exit 3",
            false,
        ),
        with_check(
            target(&server, 0, "/srv/b", "true", false),
            format!("echo try >> {}; echo unhealthy; exit 1", file("tries_b")),
        ),
        with_check(
            target(&server, 0, "/srv/c", "true", false),
            format!(
                "echo try >> {f}; [ \"$(wc -l < {f})\" -ge 3 ]",
                f = file("tries_c")
            ),
        ),
        target(&server, 1, "/srv/d", &once, true),
        target(&server, 1, "/srv/e", &once, true),
        upstream.clone(),
        bad_reload,
        bad_once,
    ];
    let out = server
        .tool("vd-reload")
        .arg("--repo")
        .arg(&repo)
        .args(["--check-tries", "3", "--check-delay", "50ms"])
        .stdin(jsonl(&input))
        .run();
    out.expect_code(1);
    let records = out.json();
    let a = error_message(&records[0]);
    assert!(a.contains("exit status 3") && a.contains("boom"), "{a}");
    let b = error_message(&records[1]);
    assert!(
        b.contains("still failed after 3 tries") && b.contains("unhealthy"),
        "{b}"
    );
    assert_eq!(records[1].record().reloaded, Some(true));
    assert_eq!(read(Path::new(&file("tries_b"))).lines().count(), 3);
    let c = records[2].record();
    assert!(c.error.is_none(), "{c:?}");
    assert_eq!(c.checked, Some(true));
    assert_eq!(read(Path::new(&file("tries_c"))).lines().count(), 3);
    for record in &records[3..5] {
        let message = error_message(record);
        assert!(
            message.contains("exit status 4") && message.contains("down"),
            "{message}"
        );
        assert!(record.record().reloaded.is_none());
    }
    assert_eq!(read(Path::new(&file("once1"))), "once\n");
    assert_eq!(records[5], upstream, "an upstream error was touched");
    assert!(error_message(&records[6]).contains("field `reload`"));
    assert!(error_message(&records[7]).contains("field `reload_once`"));
    let log = ReleaseLog::new(&repo).read().unwrap();
    let errors: Vec<&str> = log
        .iter()
        .filter(|e| e.event == "error")
        .map(|e| e.target.as_str())
        .collect();
    assert_eq!(errors.len(), 4, "{log:?}");
    assert_eq!(log.iter().filter(|e| e.event == "reload").count(), 2);
}

/// The sshd processes of the session running process `pid` (not the listener).
pub(crate) fn session_of(server: &Sshd, pid: u32) -> Vec<u32> {
    let mut found = Vec::new();
    let mut pid = pid;
    while let Some((parent, _)) = parent_of(pid) {
        if parent == server.pid() || parent <= 1 {
            break;
        }
        let (_, comm) = parent_of(parent).unwrap();
        if comm.starts_with("sshd") {
            found.push(parent);
        }
        pid = parent;
    }
    found
}

/// The parent of process `pid`, and its command name, from /proc.
/// Once the command on the host has written its pid to `pid_file` (within
/// `start`), stop its session's sshd processes (not the listener): the
/// host's kernel still acknowledges, but nothing answers any more. Then
/// give `running` `end` to finish (a test failure when it does not, or
/// when it does not fail), and kill what was stopped: its outcome.
pub(crate) fn silence_host(
    server: &Sshd,
    running: Running,
    pid_file: &Path,
    start: Duration,
    end: Duration,
) -> Outcome {
    let started = Instant::now();
    let pid: u32 = loop {
        if let Some(pid) = fs::read_to_string(pid_file)
            .ok()
            .and_then(|t| t.trim().parse().ok())
        {
            break pid;
        }
        assert!(
            started.elapsed() < start,
            "the command on the host never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let stopped = session_of(server, pid);
    assert!(!stopped.is_empty(), "no sshd process above {pid}");
    signal("-STOP", &stopped);
    let stop = Instant::now();
    let outcome = running.finish_by(stop + end);
    let waited = stop.elapsed();
    eprintln!("the run ended {waited:?} after the host stopped");
    signal("-KILL", &stopped);
    signal("-KILL", &[pid]);
    let out = outcome
        .unwrap_or_else(|| panic!("the run went on {waited:?} after its host stopped answering"));
    out.expect_code(1);
    out
}

pub(crate) fn parent_of(pid: u32) -> Option<(u32, String)> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ppid ...`; comm may hold spaces and parentheses.
    let (head, tail) = stat.rsplit_once(')')?;
    let comm = head.split_once('(')?.1.to_string();
    let ppid = tail.split_whitespace().nth(1)?.parse().ok()?;
    Some((ppid, comm))
}

/// Send `signal` to the processes.
pub(crate) fn signal(signal: &str, pids: &[u32]) {
    for pid in pids {
        let _ = Command::new("kill")
            .args([signal, &pid.to_string()])
            .status();
    }
}

#[test]
fn a_host_that_stops_answering_mid_command_is_given_up_and_the_others_go_on() {
    // A run from cron: nobody watches, so a hang is never noticed.
    let timeout = 3;
    let server = Sshd::start(2);
    let dir = tempfile::tempdir().unwrap();
    let repo = empty_repo(dir.path());
    let pid_file = dir.path().join("pid");
    let stuck = format!("echo $$ > {}; sleep 1000", pid_file.display());
    // Silent for longer than three keepalive intervals, but alive.
    let slow = format!("sleep {}; echo done", 3 * timeout + 1);
    let input = [
        target(&server, 0, "/srv/stuck", &stuck, false),
        target(&server, 1, "/srv/slow", &slow, false),
    ];
    let running = server
        .tool("vd-reload")
        .arg("--repo")
        .arg(&repo)
        .args(["--timeout", &timeout.to_string()])
        .stdin(jsonl(&input))
        .spawn();
    let (start, end) = (Duration::from_secs(30), Duration::from_secs(4 * timeout));
    let out = silence_host(&server, running, &pid_file, start, end);
    let records = out.records();
    assert_eq!(records.len(), 2, "{out:?}");
    let message = error_message(&records[0]);
    assert!(
        message.contains("127.0.0.2") && message.contains("stopped answering"),
        "{message}"
    );
    assert!(
        records[1].error.is_none(),
        "a slow but alive host was cut off: {:?}",
        records[1]
    );
    assert_eq!(records[1].reloaded, Some(true));
}

#[test]
fn nul_characters_never_reach_the_release_log_raw() {
    let dir = tempfile::tempdir().unwrap();
    let repo = empty_repo(dir.path());
    let record = json!({"host": "localhost", "via": "local", "venv": "/srv/a\u{0}b",
                        "changed": true, "reload": "exit 3"});
    let out = crate::util::tool("vd-reload")
        .arg("--repo")
        .arg(&repo)
        .env("HOME", dir.path())
        .stdin(jsonl(&[record.as_object().unwrap().clone()]))
        .run();
    out.expect_code(1);
    let log = fs::read(repo.join("release_log")).unwrap();
    assert!(!log.contains(&0), "a raw NUL in the log");
    let text = String::from_utf8(log).unwrap();
    assert!(text.contains("/srv/a\\0b"), "{text}");
    let events = ReleaseLog::new(&repo).read().unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
}

/// The release log policy vd-push, vd-migrate and vd-reload share: a log
/// that cannot be written fails no target, and makes the exit status 1.
#[test]
fn a_release_log_that_cannot_be_written_fails_no_target() {
    let server = Sshd::start(1);
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("wheels");
    // A directory where the log should be: not even root can append to it.
    fs::create_dir_all(repo.join("release_log")).unwrap();
    let ran = dir.path().join("ran");
    let reload = format!("echo x >> {}", ran.display());
    let out = server
        .tool("vd-reload")
        .arg("--repo")
        .arg(&repo)
        .stdin(jsonl(&[target(&server, 0, "/srv/a", &reload, false)]))
        .run();
    out.expect_code(1).expect_stderr("not logged: reload");
    let records = out.records();
    assert!(records[0].error.is_none(), "{:?}", records[0]);
    assert_eq!(records[0].reloaded, Some(true));
    assert_eq!(read(&ran), "x\n");
}
