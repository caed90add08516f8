//! Hostile input: names that would reach a shell through the user's own
//! `ProxyCommand`, repositories that make the resolver's search explode,
//! control characters meant for the operator's terminal, wheels that shadow
//! a release, and locks that are not files. Each case runs the real tools
//! (against the real sshd where a host is involved) and checks that nothing
//! injected ran, that the error names the field and line, and that the other
//! targets went on.

use crate::util::python::{python3, synthetic_wheels, venv};
use crate::util::sshd::{current_user, Sshd};
use crate::util::{assert_contains, error_message, jsonl, targets_from, tool, Outcome};
use serde_json::{json, Map, Value};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

type Record = Map<String, Value>;

/// A `~/.ssh/config` for `server` whose `Host *` reaches every host over a
/// `ProxyCommand` that uses `%h`, `%p`, `%r` and `%n` unquoted, as many
/// users' configs do: `ssh -W` to the host itself.
fn proxy_everything(server: &Sshd) {
    let ssh = server.home().join(".ssh");
    fs::write(
        ssh.join("config"),
        format!(
            "Host evil-hostname\n  HostName 127.0.0.2;touch${{IFS}}{marks}/hostname\n\
             Host *\n  ProxyCommand ssh -F none -o BatchMode=yes -o StrictHostKeyChecking=yes \
             -o UserKnownHostsFile={known} -i {key} -p %p -W %h:%p %r@%h # %n\n",
            marks = server.home().display(),
            known = ssh.join("known_hosts").display(),
            key = ssh.join("id_ed25519").display(),
        ),
    )
    .unwrap();
}

/// The files an injected `touch` would have made under `dir`.
fn marks(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("pwn") || n == "hostname")
        .collect()
}

#[test]
fn names_with_shell_metacharacters_never_reach_a_proxy_command() {
    let server = Sshd::start(1);
    proxy_everything(&server);
    let dir = tempfile::tempdir().unwrap();
    let good_venv = dir.path().join("venv");
    venv(&good_venv);
    let home = server.home();
    let mark = |name: &str| format!("$(touch {}/pwn-{name})", home.display());
    let with = |field: &str, value: String| {
        let mut t = server.target(0, &good_venv);
        t.insert(field.into(), json!(value));
        t
    };
    let records = [
        with("user", format!("x{}", mark("user"))),
        server.target(0, &good_venv),
        with("host", format!("127.0.0.2{}", mark("host"))),
        with("jump", format!("x{}@{}", mark("jump"), server.host(0))),
        with("host", "evil-hostname".to_string()),
        with("user", "-oProxyCommand=touch".to_string()),
    ];
    let out = server.tool("vd-freeze").stdin(jsonl(&records)).run();
    out.expect_code(1);
    let got = out.json();
    assert_eq!(got.len(), records.len(), "{out:?}");
    // A legitimate name still goes through the ProxyCommand.
    assert!(got[1].get("error").is_none(), "{:?}", got[1]);
    assert!(got[1]["installed"].is_object(), "{:?}", got[1]);
    for (i, needle) in [
        (0, "stdin line 1"),
        (0, "field `user`"),
        (2, "stdin line 3"),
        (2, "field `host`"),
        (3, "stdin line 4"),
        (3, "field `jump`"),
        (4, "config line 2: HostName"),
        (5, "starts with `-`"),
    ] {
        let message = error_message(&got[i]);
        assert!(message.contains(needle), "record {i}: {message}");
    }
    assert_eq!(marks(&home), Vec::<String>::new(), "{out:?}");
}

#[test]
fn inventories_refuse_shell_metacharacters_in_names_by_line() {
    let dir = tempfile::tempdir().unwrap();
    let csv = "host,user,venv,jump\n\
         web1,deploy,/srv/a,\n\
         web2,x$(id),/srv/b,\n\
         web3;id,deploy,/srv/c,\n\
         web4,first.last,/srv/d,gw`id`\n\
         ::1,_svc-web,/srv/e,ops@[fe80::1%eth0]:2222\n";
    let out = targets_from(dir.path(), "targets.csv", csv, &[]);
    out.expect_code(1);
    let got = out.json();
    assert_eq!(got.len(), 5, "{out:?}");
    assert!(got[0].get("error").is_none(), "{:?}", got[0]);
    assert!(got[4].get("error").is_none(), "{:?}", got[4]);
    for (i, line, field) in [(1, 3, "user"), (2, 4, "host"), (3, 5, "jump")] {
        let message = error_message(&got[i]);
        assert!(
            message.contains(&format!("targets.csv line {line}"))
                && message.contains(&format!("field `{field}`")),
            "{message}"
        );
    }
    let out = targets_from(
        dir.path(),
        "targets.jsonl",
        &jsonl(&[
            json!({"host": "web1", "venv": "/srv/a", "user": current_user()})
                .as_object()
                .unwrap()
                .clone(),
            json!({"host": "web2", "venv": "/srv/b", "user": "a|b"})
                .as_object()
                .unwrap()
                .clone(),
        ]),
        &[],
    );
    out.expect_code(1);
    let got = out.json();
    assert!(got[0].get("error").is_none(), "{:?}", got[0]);
    let message = error_message(&got[1]);
    assert!(
        message.contains("targets.jsonl line 2") && message.contains("field `user`"),
        "{message}"
    );
}

/// vd-add of `wheels` into the repository `repo`.
fn add(repo: &Path, wheels: &[&Path]) -> Outcome {
    tool("vd-add").arg("--repo").arg(repo).args(wheels).run()
}

/// The facts of the test interpreter as vd-freeze's script reports them,
/// for a record planned without a host.
fn frozen(host: &str, packages: &[String]) -> Record {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("lib/src/remote/freeze.py");
    let out = Command::new(python3())
        .arg(script)
        .arg("--no-installed")
        .output()
        .expect("cannot run freeze.py");
    assert!(out.status.success(), "{out:?}");
    let mut record: Record = serde_json::from_slice(&out.stdout).unwrap();
    record.insert("host".into(), json!(host));
    record.insert("venv".into(), json!("/srv/app/venv"));
    record.insert("installed".into(), json!({}));
    record.insert("venv_exists".into(), json!(true));
    record.insert("packages".into(), json!(packages));
    record
}

#[test]
fn an_unsatisfiable_pigeonhole_is_bounded_and_the_other_targets_are_planned() {
    // Nine projects of eight versions each, every version of one requiring
    // every other project at another version: no solution, and a search
    // that, unbounded, grows past 4 GB before it says so.
    let dir = tempfile::tempdir().unwrap();
    let built = dir.path().join("built");
    fs::create_dir(&built).unwrap();
    let (projects, versions) = (9, 8);
    let mut specs = vec![("calm".to_string(), "1.0".to_string(), Vec::new())];
    let holes = (0..projects).flat_map(|p| {
        (1..=versions).map(move |v| {
            let others = (0..projects).filter(move |q| *q != p);
            let requires = others.map(|q| format!("hole{q}!={v}")).collect();
            (format!("hole{p}"), v.to_string(), requires)
        })
    });
    specs.extend(holes);
    let wheels = synthetic_wheels(&built, &specs);
    let repo = dir.path().join("wheels");
    let wheels: Vec<&Path> = wheels.iter().map(PathBuf::as_path).collect();
    add(&repo, &wheels).expect_code(0);
    let holes: Vec<String> = (0..projects).map(|p| format!("hole{p}")).collect();
    let records = [
        frozen("before", &["calm".to_string()]),
        frozen("pigeons", &holes),
        frozen("after", &["calm==1.0".to_string()]),
    ];
    let started = Instant::now();
    let out = tool("vd-diff")
        .arg("--repo")
        .arg(&repo)
        .arg("--json")
        .stdin(jsonl(&records))
        .spawn()
        .finish_by(started + Duration::from_secs(30))
        .expect("vd-diff still resolved after 30 s");
    out.expect_code(1);
    for line in out.stdout.lines().chain(out.stderr.lines()) {
        assert!(line.len() <= 64 << 10, "a line of {} bytes", line.len());
    }
    let got = out.json();
    assert_eq!(got.len(), 3, "{out:?}");
    for i in [0, 2] {
        assert!(got[i].get("error").is_none(), "{:?}", got[i]);
        assert_eq!(got[i]["plan"][0]["name"], "calm", "{:?}", got[i]);
    }
    let message = error_message(&got[1]);
    assert!(
        message.contains("gave up") && message.contains("pin"),
        "{message}"
    );
}

/// What a hostile host or record puts in its text for the operator's
/// terminal: a window title (OSC, ended by BEL), a screen clear, concealed
/// text, a C1 CSI, a carriage return over the line, a bidi override.
const RAW_CONTROLS: [&str; 7] = [
    "\u{1b}]0;",
    "\u{7}",
    "\u{1b}[2J",
    "\u{1b}[8m",
    "\u{9b}",
    "\u{202e}",
    "\rFAKE",
];

#[test]
fn control_characters_from_hosts_and_records_reach_no_terminal_and_no_log_raw() {
    let server = Sshd::start(1);
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("wheels");
    fs::create_dir(&repo).unwrap();
    let good_venv = dir.path().join("venv");
    venv(&good_venv);
    // The host says it on stderr as its reload fails: it becomes the
    // target's error, an error line, a table cell and a release log event.
    let mut from_host = server.target(0, &good_venv);
    from_host.insert(
        "reload".into(),
        json!(r"printf '\033]0;PWNED\007\033[2J\302\233 1m\033[8mHIDDEN\342\200\256txt\rFAKE' >&2; exit 3"),
    );
    from_host.insert("changed".into(), json!(true));
    // A record names its target with them: its label in the error line and
    // in the table's first cell.
    let mut from_record = server.target(0, &good_venv);
    from_record.insert("host".into(), json!("127.0.0.2\u{1b}]0;PWNED\u{7}\u{9b}1m"));
    from_record.insert(
        "venv".into(),
        json!("/srv/\u{1b}[2J\u{1b}[8m\u{202e}v\rFAKE"),
    );
    let input = dir.path().join("records.jsonl");
    fs::write(&input, jsonl(&[from_host, from_record])).unwrap();
    let command = format!(
        "stty cols 250 rows 50; {} --always --repo {} < {}",
        crate::util::bin("vd-reload").display(),
        repo.display(),
        input.display()
    );
    let out = Command::new("script")
        .args(["-qefc", &command, "/dev/null"])
        .env("HOME", server.home())
        .env_remove("SSH_AUTH_SOCK")
        .env_remove("VD_REPO")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("cannot run script (util-linux)");
    let shown = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(1), "{shown}");
    // The text is there, escaped: the operator sees what the host sent.
    assert!(
        shown.contains(r"\x1b]0;PWNED\x07\x1b[2J\u{9b} 1m\x1b[8mHIDDEN"),
        "{shown:?}"
    );
    assert!(
        shown.contains(r"127.0.0.2\x1b]0;PWNED\x07\u{9b}1m"),
        "{shown:?}"
    );
    for raw in RAW_CONTROLS {
        assert!(
            !shown.contains(raw),
            "{raw:?} reached the terminal: {shown:?}"
        );
    }
    let log = fs::read_to_string(repo.join("release_log")).unwrap();
    assert!(log.contains(r"\x1b]0;PWNED"), "{log:?}");
    for raw in RAW_CONTROLS {
        assert!(
            !log.contains(raw),
            "{raw:?} reached the release log: {log:?}"
        );
    }
    assert!(!log.chars().any(|c| c.is_control() && c != '\n'), "{log:?}");
}

/// The names of the files in the repository `repo`, sorted.
fn repository_files(repo: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(repo)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

#[test]
fn a_build_tag_does_not_shadow_a_released_version() {
    let dir = tempfile::tempdir().unwrap();
    let (first, second) = (dir.path().join("first"), dir.path().join("second"));
    fs::create_dir(&first).unwrap();
    fs::create_dir(&second).unwrap();
    let spec = |requires: &[&str]| {
        let requires = requires.iter().map(|r| r.to_string()).collect();
        vec![("alpha".to_string(), "1.0".to_string(), requires)]
    };
    let released = synthetic_wheels(&first, &spec(&[])).remove(0);
    let rebuilt = synthetic_wheels(&second, &spec(&["six"])).remove(0);
    let repo = dir.path().join("wheels");
    add(&repo, &[&released]).expect_code(0);
    // Other bytes under a build tag; the same bytes under one are the same
    // wheel, and welcome.
    let shadow = second.join("alpha-1.0-1-py3-none-any.whl");
    fs::rename(&rebuilt, &shadow).unwrap();
    let same = first.join("alpha-1.0-2-py3-none-any.whl");
    fs::copy(&released, &same).unwrap();
    let out = add(&repo, &[&shadow, &same]);
    out.expect_code(1);
    let got = out.json();
    assert_contains(
        &error_message(&got[0]),
        &[
            "alpha-1.0-1-py3-none-any.whl",
            "the same wheel as alpha-1.0-py3-none-any.whl",
        ],
    );
    assert!(got[1].get("error").is_none(), "{:?}", got[1]);
    assert_eq!(
        repository_files(&repo),
        [
            "alpha-1.0-2-py3-none-any.whl",
            "alpha-1.0-py3-none-any.whl",
            "release_log"
        ]
    );
}

#[test]
fn symlink_members_and_upper_case_tags_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let good = synthetic_wheels(
        dir.path(),
        &[("calm".to_string(), "1.0".to_string(), Vec::new())],
    )
    .remove(0);
    // A member whose zip entry says it is a symbolic link, listed in RECORD
    // with its right hash as a crafted wheel would have it.
    let linked = dir.path().join("linked");
    fs::create_dir(&linked).unwrap();
    let with_link = linked.join("calm-1.0-py3-none-any.whl");
    let script = r#"
import base64, hashlib, sys, zipfile
src, dest = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(src) as z:
    files = [(i, z.read(i.filename)) for i in z.infolist()]
target = b"/etc/passwd"
digest = base64.urlsafe_b64encode(hashlib.sha256(target).digest()).rstrip(b"=")
with zipfile.ZipFile(dest, "w") as z:
    for info, data in files:
        if info.filename.endswith("/RECORD"):
            data = b"calm_link.py,sha256=" + digest + b",%d\n" % len(target) + data
        z.writestr(info, data)
    link = zipfile.ZipInfo("calm_link.py")
    link.create_system = 3
    link.external_attr = 0o120777 << 16
    z.writestr(link, target)
"#;
    let made = Command::new("python3")
        .args(["-c", script])
        .arg(&good)
        .arg(&with_link)
        .status()
        .unwrap();
    assert!(made.success());
    let upper = dir.path().join("calm-1.0-PY3-NONE-ANY.whl");
    fs::copy(&good, &upper).unwrap();
    let repo = dir.path().join("wheels");
    let out = add(&repo, &[&with_link, &upper, &good]);
    out.expect_code(1);
    let got = out.json();
    let link_message = error_message(&got[0]);
    assert!(
        link_message.contains("calm-1.0-py3-none-any.whl")
            && link_message.contains("member \"calm_link.py\" is a symbolic link"),
        "{link_message}"
    );
    let tag_message = error_message(&got[1]);
    assert!(
        tag_message.contains("calm-1.0-PY3-NONE-ANY.whl") && tag_message.contains("\"ANY\""),
        "{tag_message}"
    );
    assert!(got[2].get("error").is_none(), "{:?}", got[2]);
    assert_eq!(
        repository_files(&repo),
        ["calm-1.0-py3-none-any.whl", "release_log"]
    );
}

#[test]
fn a_lock_that_is_no_file_is_refused_unread_and_a_target_saved_twice_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let wheels = synthetic_wheels(
        dir.path(),
        &[("calm".to_string(), "1.0".to_string(), Vec::new())],
    );
    let repo = dir.path().join("wheels");
    let wheels: Vec<&Path> = wheels.iter().map(PathBuf::as_path).collect();
    add(&repo, &wheels).expect_code(0);
    let fifo = dir.path().join("lock.fifo");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let records = [frozen("a", &[]), frozen("b", &[])];
    for (lock, needle) in [
        (
            Path::new("/dev/zero"),
            "not a regular file (a character device)",
        ),
        (fifo.as_path(), "not a regular file (a FIFO)"),
    ] {
        let started = Instant::now();
        let out = tool("vd-diff")
            .arg("--repo")
            .arg(&repo)
            .arg("--lock")
            .arg(lock)
            .stdin(jsonl(&records))
            .spawn()
            .finish_by(started + Duration::from_secs(20))
            .expect("vd-diff still read its lock after 20 s");
        out.expect_code(2);
        out.expect_stderr(needle);
        out.expect_stderr(&lock.display().to_string());
    }
    let saved = |host: &str, version: &str| {
        let mut r = frozen(host, &[]);
        r.insert("installed".into(), json!({ "calm": version }));
        r
    };
    let lock = dir.path().join("saved.jsonl");
    fs::write(
        &lock,
        jsonl(&[saved("a", "1.0"), saved("b", "1.0"), saved("b", "0.9")]),
    )
    .unwrap();
    let out = tool("vd-diff")
        .arg("--repo")
        .arg(&repo)
        .arg("--lock")
        .arg(&lock)
        .arg("--json")
        .stdin(jsonl(&records))
        .run();
    out.expect_code(1);
    let got = out.json();
    assert_eq!(got[0]["plan"][0]["name"], "calm", "{:?}", got[0]);
    let message = error_message(&got[1]);
    assert!(
        message.contains("saved.jsonl lines 2 and 3") && message.contains("b:/srv/app/venv"),
        "{message}"
    );
}
