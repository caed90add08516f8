//! vd-add: wheels in, checked, copied atomically, logged.

use crate::util::python::{download, wheel_with_metadata_of, Project};
use crate::util::{assert_contains, empty_repo, stdout_of, tool};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

fn log_lines(repo: &Path) -> Vec<String> {
    fs::read_to_string(repo.join("release_log"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Rewrite a wheel with Python's zipfile, applying `edit` (Python code that
/// may change `files`, a dict of member name to bytes) on the way.
fn rewrite_wheel(src: &Path, dest: &Path, edit: &str) {
    let script = format!(
        "import sys, zipfile\nsrc, dest = sys.argv[1], sys.argv[2]\nwith zipfile.ZipFile(src) as z:\n    files = {{n: z.read(n) for n in z.namelist()}}\n{edit}\nwith zipfile.ZipFile(dest, 'w') as z:\n    for n, b in files.items():\n        z.writestr(n, b)\n"
    );
    stdout_of(
        Command::new("python3")
            .arg("-c")
            .arg(script)
            .arg(src)
            .arg(dest),
        "python3 (needed for the tests)",
    );
}

/// One vd-add per wheel into `repo`, all running at once; each must succeed.
fn add_at_once(repo: &Path, wheels: &[PathBuf]) {
    let runs: Vec<_> = wheels
        .iter()
        .map(|w| tool("vd-add").arg("--repo").arg(repo).arg(w).spawn())
        .collect();
    for run in runs {
        run.finish().expect_code(0);
    }
}

#[test]
fn adds_checked_wheels_and_logs_a_release() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("wheels");
    let alpha = Project::new("vd-alpha", "1.0").build();
    let dotted = Project::new("Vd.Dotted_Name", "2.0rc1").build();
    let out = tool("vd-add")
        .arg("--repo")
        .arg(&repo)
        .arg(&alpha)
        .arg(&dotted)
        .run();
    out.expect_code(0);
    let records = out.added();
    assert_eq!(records.len(), 2);
    assert_eq!(records[0].name.as_deref(), Some("vd-alpha"));
    assert_eq!(records[0].version.as_deref(), Some("1.0"));
    assert_eq!(records[0].status.as_deref(), Some("added"));
    assert_eq!(records[1].name.as_deref(), Some("vd-dotted-name"));
    assert_eq!(records[1].version.as_deref(), Some("2.0rc1"));
    let wheel = records[0].wheel.as_deref().unwrap();
    assert_eq!(
        fs::read(repo.join(wheel)).unwrap(),
        fs::read(&alpha).unwrap()
    );
    let sha = records[0].sha256.as_deref().unwrap();
    let expected = Command::new("sha256sum").arg(&alpha).output().unwrap();
    assert!(String::from_utf8_lossy(&expected.stdout).starts_with(sha));

    let lines = log_lines(&repo);
    assert_eq!(
        lines[0],
        "time,event,name,version,wheel,sha256,target,detail"
    );
    assert_eq!(lines.len(), 3);
    assert!(lines[1].contains(",release,vd-alpha,1.0,"), "{}", lines[1]);
    assert!(lines[1].contains(sha));

    // Again: nothing changes, nothing is logged.
    let again = tool("vd-add").arg("--repo").arg(&repo).arg(&alpha).run();
    again.expect_code(0);
    assert_eq!(again.added()[0].status.as_deref(), Some("present"));
    assert_eq!(log_lines(&repo).len(), 3);
}

#[test]
fn reads_paths_from_stdin_and_adds_a_published_wheel() {
    let dir = tempfile::tempdir().unwrap();
    let published = download("six==1.16.0", &["--no-deps"]);
    assert_eq!(published.len(), 1, "{published:?}");
    let built = Project::new("vd-stdin", "0.1").build();
    let input = format!("{}\n\n{}\n", published[0].display(), built.display());
    let out = tool("vd-add").env("VD_REPO", dir.path()).stdin(input).run();
    out.expect_code(0);
    let records = out.added();
    assert_eq!(
        records[0].wheel.as_deref(),
        Some("six-1.16.0-py2.py3-none-any.whl")
    );
    assert_eq!(records[1].name.as_deref(), Some("vd-stdin"));
    assert!(dir.path().join("six-1.16.0-py2.py3-none-any.whl").is_file());
}

#[test]
fn refuses_bad_wheels_by_name_and_adds_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("wheels");
    let bad = dir.path().join("bad");
    fs::create_dir(&bad).unwrap();
    let good = Project::new("vd-good", "1.0").build();

    let missing = bad.join("vd_missing-1.0-py3-none-any.whl");
    let not_zip = bad.join("vd_notzip-1.0-py3-none-any.whl");
    fs::write(&not_zip, "this is not a zip").unwrap();
    let malformed = bad.join("not-a-wheel.whl");
    fs::copy(&good, &malformed).unwrap();
    let no_dist_info = bad.join("vd_good-1.0-py2-none-any.whl");
    rewrite_wheel(
        &good,
        &no_dist_info,
        "    files = {n: b for n, b in files.items() if '.dist-info/' not in n}",
    );
    let wrong_version = bad.join("vd_good-9.0-py3-none-any.whl");
    fs::copy(&good, &wrong_version).unwrap();
    let wrong_name = bad.join("vd_other-1.0-py3-none-any.whl");
    fs::copy(&good, &wrong_name).unwrap();
    let tampered_dir = bad.join("tampered");
    fs::create_dir(&tampered_dir).unwrap();
    let tampered = tampered_dir.join(good.file_name().unwrap());
    rewrite_wheel(
        &good,
        &tampered,
        "    files['vd_good.py'] = b'import os; os.system(\"id\")\\n'",
    );

    let cases: Vec<(&PathBuf, &str)> = vec![
        (&missing, "cannot read"),
        (&not_zip, "not a zip archive"),
        (&malformed, "malformed wheel filename"),
        (&no_dist_info, "no .dist-info folder"),
        (
            &wrong_version,
            "METADATA says version 1.0, the filename 9.0",
        ),
        (&wrong_name, "METADATA names the project"),
        (&tampered, "vd_good.py does not match its hash in"),
    ];
    let mut run = tool("vd-add").arg("--repo").arg(&repo);
    for (path, _) in &cases {
        run = run.arg(path);
    }
    let out = run.arg(&good).run();
    out.expect_code(1);
    let records = out.added();
    assert_eq!(records.len(), cases.len() + 1);
    for ((path, needle), record) in cases.iter().zip(&records) {
        let message = record.error_message();
        assert!(message.contains(needle), "{path:?}: {message}");
        assert!(
            message.contains(path.file_name().unwrap().to_str().unwrap()),
            "the error must name the wheel: {message}"
        );
        assert_eq!(record.error.as_ref().unwrap().tool, "vd-add");
        out.expect_stderr(message);
    }
    assert_eq!(records.last().unwrap().status.as_deref(), Some("added"));
    // Only the good wheel is in the repository, and only it is logged.
    let mut names: Vec<String> = fs::read_dir(&repo)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["release_log", "vd_good-1.0-py3-none-any.whl"]);
    assert_eq!(log_lines(&repo).len(), 2);
}

#[test]
fn never_replaces_a_released_wheel() {
    let dir = tempfile::tempdir().unwrap();
    let first = Project::new("vd-same", "1.0").build();
    let second = Project::new("vd-same", "1.0").requires("six").build();
    assert_eq!(first.file_name(), second.file_name());
    tool("vd-add")
        .arg("--repo")
        .arg(dir.path())
        .arg(&first)
        .run()
        .expect_code(0);
    let out = tool("vd-add")
        .arg("--repo")
        .arg(dir.path())
        .arg(&second)
        .run();
    out.expect_code(1).expect_stderr(
        "vd_same-1.0-py3-none-any.whl is already in the repository with other content",
    );
    let kept = dir.path().join(first.file_name().unwrap());
    assert_eq!(fs::read(kept).unwrap(), fs::read(&first).unwrap());
}

#[test]
fn an_unwritable_repository_is_a_setup_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    fs::write(&file, "").unwrap();
    let wheel = Project::new("vd-alpha", "1.0").build();
    tool("vd-add")
        .arg("--repo")
        .arg(file.join("wheels"))
        .arg(&wheel)
        .run()
        .expect_code(2)
        .expect_stderr("vd-add: cannot create repository");
}

#[test]
fn a_malformed_release_log_is_named_and_never_rewritten() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("release_log");
    let text = "time,event,name,version,wheel,sha256,target,detail\n2026-01-01T00:00:00Z,release,a,1,a-1-py3-none-any.whl,00,,\nnot,a,line\n";
    fs::write(&log, text).unwrap();
    let wheel = Project::new("vd-alpha", "1.0").build();
    tool("vd-add")
        .arg("--repo")
        .arg(dir.path())
        .arg(&wheel)
        .run()
        .expect_code(2)
        .expect_stderr("release_log line 3: malformed line");
    assert_eq!(fs::read_to_string(&log).unwrap(), text);
    assert!(!dir.path().join(wheel.file_name().unwrap()).exists());
}

#[test]
fn ten_concurrent_adds_keep_every_wheel_and_every_log_line_whole() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("wheels");
    let wheels: Vec<PathBuf> = (0..10)
        .map(|i| Project::new(&format!("vd-many-{i}"), "1.0").build())
        .collect();
    add_at_once(&repo, &wheels);
    for w in &wheels {
        let name = w.file_name().unwrap();
        assert_eq!(fs::read(repo.join(name)).unwrap(), fs::read(w).unwrap());
    }
    let events = vd::log::ReleaseLog::new(&repo).read().unwrap();
    assert_eq!(events.len(), 10);
    let mut names: Vec<&str> = events.iter().map(|e| e.name.as_str()).collect();
    names.sort();
    let expected: Vec<String> = (0..10).map(|i| format!("vd-many-{i}")).collect();
    assert_eq!(names, expected);
    assert!(events
        .iter()
        .all(|e| e.event == "release" && e.sha256.len() == 64));
}

#[test]
fn a_wheel_left_without_its_release_event_gets_one() {
    // As after a crash between linking a wheel in and logging it.
    let dir = tempfile::tempdir().unwrap();
    let wheel = Project::new("vd-alpha", "1.0").build();
    fs::copy(&wheel, dir.path().join(wheel.file_name().unwrap())).unwrap();
    let out = tool("vd-add")
        .arg("--repo")
        .arg(dir.path())
        .arg(&wheel)
        .run();
    out.expect_code(0);
    assert_eq!(out.added()[0].status.as_deref(), Some("present"));
    let events = vd::log::ReleaseLog::new(dir.path()).read().unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].event, "release");
    assert_eq!(
        events[0].detail,
        "found in the repository without its release event"
    );
    // Once logged, it is not logged again.
    tool("vd-add")
        .arg("--repo")
        .arg(dir.path())
        .arg(&wheel)
        .run()
        .expect_code(0);
    assert_eq!(
        vd::log::ReleaseLog::new(dir.path()).read().unwrap().len(),
        1
    );
}

#[test]
fn refuses_devices_fifos_and_oversized_metadata_without_reading_them() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("wheels");
    let fifo = dir.path().join("vd_fifo-1.0-py3-none-any.whl");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success(), "mkfifo failed");
    let huge = wheel_with_metadata_of(dir.path(), 40 << 20);
    assert!(fs::metadata(&huge).unwrap().len() < 1 << 20);
    let good = Project::new("vd-good", "1.0").build();
    let started = std::time::Instant::now();
    let out = tool("vd-add")
        .arg("--repo")
        .arg(&repo)
        .arg("/dev/zero")
        .arg(&fifo)
        .arg(&huge)
        .arg(&good)
        .spawn()
        .finish_by(started + std::time::Duration::from_secs(30))
        .expect("vd-add still read its input after 30 s");
    out.expect_code(1);
    let records = out.added();
    assert_eq!(records.len(), 4, "{out:?}");
    assert_contains(
        records[0].error_message(),
        &["/dev/zero: not a regular file (a character device)"],
    );
    assert_contains(
        records[1].error_message(),
        &["vd_fifo-1.0-py3-none-any.whl: not a regular file (a FIFO)"],
    );
    assert_contains(
        records[2].error_message(),
        &[
            "vd_huge-1.0-py3-none-any.whl",
            "vd_huge-1.0.dist-info/METADATA is larger than 32 MiB",
        ],
    );
    assert_eq!(records[3].status.as_deref(), Some("added"));
    assert_eq!(log_lines(&repo).len(), 2);
}

#[test]
fn a_failed_append_leaves_the_release_log_as_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let repo = empty_repo(dir.path());
    // A log larger than the wheel, so that a file size limit just above the
    // log's size lets the wheel in and stops the log's append part way.
    let mut log = String::from("time,event,name,version,wheel,sha256,target,detail\n");
    while log.len() < 64 << 10 {
        log.push_str("2026-01-01T00:00:00Z,reload,,,,,host:/srv/venv,\n");
    }
    fs::write(repo.join("release_log"), &log).unwrap();
    let good = Project::new("vd-good", "1.0").build();
    assert!(fs::metadata(&good).unwrap().len() < log.len() as u64);
    // As on a full disk: writes past the limit fail (EFBIG, with SIGXFSZ
    // ignored, as ENOSPC fails them), after a partial write.
    let limit = log.len() + 40;
    let script =
        format!("trap '' XFSZ; exec prlimit --fsize={limit} -- \"$0\" --repo \"$1\" \"$2\"");
    let out = Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg(crate::util::bin("vd-add"))
        .arg(&repo)
        .arg(&good)
        .env_remove("VD_REPO")
        .output()
        .expect("cannot run sh and prlimit (util-linux)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("cannot append to"), "{stderr}");
    assert_eq!(
        fs::read_to_string(repo.join("release_log")).unwrap(),
        log,
        "the failed append left part of its line"
    );
    // Space is back: the wheel gets its release event.
    let out = tool("vd-add").arg("--repo").arg(&repo).arg(&good).run();
    out.expect_code(0);
    assert_eq!(out.added()[0].status.as_deref(), Some("present"));
    let lines = log_lines(&repo);
    assert!(lines.last().unwrap().contains(",release,vd-good,1.0,"));
    assert_eq!(lines.len(), log.lines().count() + 1);
}

#[test]
fn a_released_wheel_is_not_shadowed_under_another_filename() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("wheels");
    let released = Project::new("vd-shadow", "1.0").build();
    tool("vd-add")
        .arg("--repo")
        .arg(&repo)
        .arg(&released)
        .run()
        .expect_code(0);
    // The same project, version and tags, written again: other bytes.
    let other = dir.path().join("other");
    fs::create_dir(&other).unwrap();
    let mut shadows = Vec::new();
    for name in [
        "Vd_Shadow-1.0-py3-none-any.whl",
        "vd_shadow-1.0.0-py3-none-any.whl",
    ] {
        let path = other.join(name);
        rewrite_wheel(&released, &path, "    pass");
        assert_ne!(fs::read(&path).unwrap(), fs::read(&released).unwrap());
        shadows.push(path);
    }
    let out = tool("vd-add").arg("--repo").arg(&repo).args(&shadows).run();
    out.expect_code(1);
    for (record, path) in out.added().iter().zip(&shadows) {
        let message = record.error.as_ref().map_or("", |e| e.message.as_str());
        let name = path.file_name().unwrap().to_str().unwrap();
        assert!(
            message.contains(name)
                && message.contains("the same wheel as vd_shadow-1.0-py3-none-any.whl"),
            "{record:?}"
        );
    }
    let mut names: Vec<String> = fs::read_dir(&repo)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["release_log", "vd_shadow-1.0-py3-none-any.whl"]);
}

#[test]
fn a_path_on_stdin_that_is_not_utf8_is_one_error_and_the_batch_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let first = Project::new("vd-good", "1.0").build();
    let last = Project::new("vd-shadow", "1.0").build();
    let repo = dir.path().join("wheels");
    let mut input = Vec::new();
    input.extend_from_slice(first.to_str().unwrap().as_bytes());
    input.extend_from_slice(b"\n/tmp/\xff\xfe-1.0-py3-none-any.whl\n");
    input.extend_from_slice(last.to_str().unwrap().as_bytes());
    input.push(b'\n');
    let out = tool("vd-add").arg("--repo").arg(&repo).stdin(input).run();
    out.expect_code(1);
    let records = out.added();
    assert_eq!(records.len(), 3, "{out:?}");
    assert_eq!(records[0].status.as_deref(), Some("added"));
    let message = records[1].error_message();
    assert!(message.contains("-1.0-py3-none-any.whl"), "{message}");
    assert_eq!(records[2].status.as_deref(), Some("added"));
    let releases = log_lines(&repo)
        .iter()
        .filter(|l| l.contains(",release,"))
        .count();
    assert_eq!(releases, 2);
}

/// Python for [`rewrite_wheel`]: `add(name, bytes)` adds a member and lists
/// it in RECORD with its right hash, as a crafted wheel would.
const ADD_LISTED: &str = "    import base64, hashlib
    def add(n, b):
        files[n] = b
        rec = [k for k in files if k.endswith('.dist-info/RECORD')][0]
        d = base64.urlsafe_b64encode(hashlib.sha256(b).digest()).rstrip(b'=')
        files[rec] += n.encode() + b',sha256=' + d + b',' + str(len(b)).encode() + b'\\n'
";

#[test]
fn refuses_wheels_pip_would_refuse_to_install() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("wheels");
    let good = Project::new("vd-good", "1.0").build();
    let mut cases: Vec<(PathBuf, &str)> = Vec::new();
    for (i, (edit, needle)) in [
        (
            "    add('../evil.py', b'x')",
            "member \"../evil.py\" is not a relative path",
        ),
        (
            "    add('/etc/evil.py', b'x')",
            "member \"/etc/evil.py\" is not a relative path",
        ),
        (
            "    files = {n.replace('vd_good-1.0.dist-info', 'pip-1.0.dist-info'): \
             b.replace(b'vd_good-1.0.dist-info', b'pip-1.0.dist-info') for n, b in files.items()}",
            "pip-1.0.dist-info is not the .dist-info folder of vd-good 1.0",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let sub = dir.path().join(format!("crafted{i}"));
        fs::create_dir(&sub).unwrap();
        let path = sub.join(good.file_name().unwrap());
        rewrite_wheel(&good, &path, &format!("{ADD_LISTED}{edit}"));
        cases.push((path, needle));
    }
    for name in [
        "vd_good$(id)-1.0-py3-none-any.whl",
        "vd;good-1.0-py3-none-any.whl",
        "vd good-1.0-py3-none-any.whl",
    ] {
        let path = dir.path().join(name);
        fs::copy(&good, &path).unwrap();
        cases.push((path, "may hold only letters, digits"));
    }
    let out = tool("vd-add")
        .arg("--repo")
        .arg(&repo)
        .args(cases.iter().map(|(p, _)| p))
        .run();
    out.expect_code(1);
    let records = out.added();
    assert_eq!(records.len(), cases.len());
    for ((path, needle), record) in cases.iter().zip(&records) {
        let message = record.error.as_ref().map_or("", |e| e.message.as_str());
        assert!(message.contains(needle), "{path:?}: {record:?}");
    }
    assert_eq!(log_lines(&repo).len(), 0);
}

#[test]
fn temporary_files_of_a_killed_add_are_swept_once_old() {
    let dir = tempfile::tempdir().unwrap();
    let repo = empty_repo(dir.path());
    // No process has this id (above any pid_max).
    let old = repo.join(".vd_gone-1.0-py3-none-any.whl.999999999.0.tmp");
    let fresh = repo.join(".vd_gone-1.0-py3-none-any.whl.999999999.1.tmp");
    let other = repo.join(".notes.tmp");
    for path in [&old, &fresh, &other] {
        fs::write(path, "partial").unwrap();
    }
    for path in [&old, &other] {
        let touched = Command::new("touch")
            .args(["-d", "2 hours ago"])
            .arg(path)
            .status()
            .unwrap();
        assert!(touched.success());
    }
    let good = Project::new("vd-good", "1.0").build();
    tool("vd-add")
        .arg("--repo")
        .arg(&repo)
        .arg(&good)
        .run()
        .expect_code(0);
    assert!(!old.exists(), "an abandoned temporary file was kept");
    assert!(fresh.exists(), "a recent temporary file was removed");
    assert!(other.exists(), "a file vd did not write was removed");
}

#[test]
fn concurrent_adds_of_one_wheel_log_its_release_once() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("wheels");
    let wheel = Project::new("vd-good", "1.0").build();
    add_at_once(&repo, &vec![wheel; 8]);
    let events = vd::log::ReleaseLog::new(&repo).read().unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
}
