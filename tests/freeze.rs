//! vd-freeze against a real sshd on loopback and real virtualenvs.

use crate::util::python::{self, install, pip_list, plant_marker, venv, Project};
use crate::util::sshd::{self, current_user, fingerprint, free_port, keygen, Sshd};
use crate::util::{error_message, installed, jsonl};
use serde_json::json;
use std::fs;
use std::net::TcpListener;
use std::time::{Duration, Instant};

fn wheels() -> (std::path::PathBuf, std::path::PathBuf) {
    (
        Project::new("Vd.Demo_Pkg", "1.0").build(),
        Project::new("zope_Thing.Extra", "2.5.1").build(),
    )
}

#[test]
fn three_venvs_on_two_hosts_match_pip_list() {
    let server = Sshd::start(2);
    let dir = tempfile::tempdir().unwrap();
    let (demo, zope) = wheels();
    let (a, b, c) = (
        dir.path().join("a"),
        dir.path().join("b"),
        dir.path().join("c"),
    );
    for v in [&a, &b, &c] {
        venv(v);
    }
    install(&a, std::slice::from_ref(&demo));
    install(&b, &[demo.clone(), zope.clone()]);
    install(&c, std::slice::from_ref(&zope));
    let mut first = server.target(0, &a);
    first.insert("mine".into(), json!({"kept": true}));
    let input = [first, server.target(1, &b), server.target(0, &c)];
    let out = server.tool("vd-freeze").stdin(jsonl(&input)).run();
    out.expect_code(0);
    let records = out.records();
    assert_eq!(records.len(), 3);
    for (record, (v, sent)) in records.iter().zip([&a, &b, &c].iter().zip(&input)) {
        assert_eq!(record["venv"], sent["venv"], "records out of order");
        assert_eq!(record["host"], sent["host"]);
        assert_eq!(installed(record), pip_list(v), "{}", v.display());
        assert_eq!(record["venv_exists"], json!(true));
        assert_eq!(record["python"]["venv"], json!(true));
        assert_eq!(
            record["python"]["executable"],
            json!(v.join("bin/python").display().to_string())
        );
        assert_eq!(record["markers"]["sys_platform"], json!("linux"));
    }
    assert_eq!(installed(&records[1])["vd-demo-pkg"], "1.0");
    assert_eq!(installed(&records[1])["zope-thing-extra"], "2.5.1");
    assert_eq!(records[0]["mine"], json!({"kept": true}));
    // One session per host, shared by its targets.
    assert_eq!(server.logins(), 2, "{}", server.log());
}

#[test]
fn refusals_run_nothing_on_the_target() {
    let server = Sshd::start(3);
    let dir = tempfile::tempdir().unwrap();
    let v = dir.path().join("venv");
    venv(&v);
    let marker = dir.path().join("ran");
    plant_marker(&v, &marker);

    // Host 0 is on file with another key; host 1 is not on file at all.
    let other = dir.path().join("other_host_key");
    keygen(&other, "");
    let other_key: Vec<String> = fs::read_to_string(other.with_extension("pub"))
        .unwrap()
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let known = format!(
        "[{}]:{} {} {}\n[{}]:{} {}\n",
        server.host(0),
        server.port,
        other_key[0],
        other_key[1],
        server.host(2),
        server.port,
        server.host_key()
    );
    let known_hosts = dir.path().join("known_hosts");
    fs::write(&known_hosts, &known).unwrap();
    let input = [server.target(0, &v), server.target(1, &v)];
    let out = server
        .tool("vd-freeze")
        .arg("--known-hosts")
        .arg(&known_hosts)
        .stdin(jsonl(&input))
        .run();
    out.expect_code(1);
    let records = out.records();
    let changed = error_message(&records[0]);
    assert!(changed.contains("HOST KEY CHANGED"), "{changed}");
    assert!(changed.contains(&server.host_fingerprint()), "{changed}");
    assert!(
        changed.contains(&fingerprint(&other.with_extension("pub"))),
        "{changed}"
    );
    let unknown = error_message(&records[1]);
    assert!(unknown.contains("not in known_hosts"), "{unknown}");
    assert!(unknown.contains("--accept-new"), "{unknown}");
    assert!(!marker.exists(), "a refused host ran the command");
    assert_eq!(server.logins(), 0, "{}", server.log());

    // A user key the server does not accept.
    let wrong_home = dir.path().join("wrong-home");
    fs::create_dir_all(wrong_home.join(".ssh")).unwrap();
    keygen(&wrong_home.join(".ssh/id_ed25519"), "");
    let out = server
        .tool_with_home("vd-freeze", &wrong_home)
        .arg("--known-hosts")
        .arg(&known_hosts)
        .stdin(jsonl(&[server.target(2, &v)]))
        .run();
    out.expect_code(1);
    let refused = error_message(&out.records()[0]);
    assert!(
        refused.contains("login as") && refused.contains("refused"),
        "{refused}"
    );
    // An encrypted key, and no agent: an error that says what to do, no prompt.
    let locked_home = dir.path().join("locked-home");
    fs::create_dir_all(locked_home.join(".ssh")).unwrap();
    keygen(&locked_home.join(".ssh/id_ed25519"), "a passphrase");
    let out = server
        .tool_with_home("vd-freeze", &locked_home)
        .arg("--known-hosts")
        .arg(&known_hosts)
        .stdin(jsonl(&[server.target(2, &v)]))
        .run();
    out.expect_code(1);
    let locked = error_message(&out.records()[0]);
    assert!(
        locked.contains("encrypted") && locked.contains("ssh-add"),
        "{locked}"
    );
    assert!(!marker.exists(), "a refused login ran the command");

    // The control: the same venv through a good host runs the command.
    let out = server
        .tool("vd-freeze")
        .arg("--known-hosts")
        .arg(&known_hosts)
        .stdin(jsonl(&[server.target(2, &v)]))
        .run();
    out.expect_code(0);
    assert!(marker.exists(), "the good host did not run the command");

    // --accept-new records an unknown key, and still refuses a changed one.
    fs::remove_file(&marker).unwrap();
    let out = server
        .tool("vd-freeze")
        .args(["--accept-new", "--known-hosts"])
        .arg(&known_hosts)
        .stdin(jsonl(&input))
        .run();
    out.expect_code(1).expect_stderr("recorded new host key");
    let records = out.records();
    assert!(error_message(&records[0]).contains("HOST KEY CHANGED"));
    assert!(records[1].get("error").is_none(), "{:?}", records[1]);
    let recorded = fs::read_to_string(&known_hosts).unwrap();
    assert!(recorded.starts_with(&known), "known_hosts was rewritten");
    assert!(
        recorded.contains(&format!(
            "[{}]:{} {}",
            server.host(1),
            server.port,
            server.host_key()
        )),
        "{recorded}"
    );
    let out = server
        .tool("vd-freeze")
        .arg("--known-hosts")
        .arg(&known_hosts)
        .stdin(jsonl(&input[1..]))
        .run();
    out.expect_code(0);
}

#[test]
fn unreachable_hosts_fail_within_the_timeout_and_others_go_on() {
    let server = Sshd::start(1);
    let dir = tempfile::tempdir().unwrap();
    let v = dir.path().join("venv");
    venv(&v);
    // A listener that accepts connections (the kernel does) and never speaks.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    let closed_port = free_port();
    let target_on = |port: u16| {
        let mut t = server.target(0, &v);
        t.insert("host".into(), json!("127.0.0.1"));
        t.insert("port".into(), json!(port));
        t
    };
    let input = [
        target_on(silent_port),
        target_on(closed_port),
        server.target(0, &v),
        target_on(silent_port),
    ];
    let started = Instant::now();
    let out = server
        .tool("vd-freeze")
        .args(["--timeout", "2"])
        .stdin(jsonl(&input))
        .run();
    let took = started.elapsed();
    out.expect_code(1);
    assert!(took < Duration::from_secs(8), "took {took:?}");
    let records = out.records();
    assert_eq!(records.len(), 4);
    let silent_error = error_message(&records[0]);
    assert!(
        silent_error.contains("no SSH greeting within 2s"),
        "{silent_error}"
    );
    let closed_error = error_message(&records[1]);
    assert!(closed_error.contains("cannot connect"), "{closed_error}");
    assert!(records[2].get("error").is_none(), "{:?}", records[2]);
    assert_eq!(installed(&records[2]), pip_list(&v));
    // The silent host was tried once for both of its targets (else 4s+).
    assert_eq!(error_message(&records[3]), silent_error);
    drop(silent);
}

#[test]
fn a_venv_path_with_shell_syntax_is_only_a_path() {
    let server = Sshd::start(1);
    let dir = tempfile::tempdir().unwrap();
    let pwned = dir.path().join("pwned");
    let name = format!(
        "it's a \"venv\" $(touch {p}) `touch {p}` ; touch {p}",
        p = pwned.display()
    );
    let v = dir.path().join(name).join("venv");
    fs::create_dir_all(v.parent().unwrap()).unwrap();
    venv(&v);
    let (demo, _) = wheels();
    install(&v, &[demo]);
    let out = server
        .tool("vd-freeze")
        .stdin(jsonl(&[server.target(0, &v)]))
        .run();
    out.expect_code(0);
    let records = out.records();
    assert_eq!(installed(&records[0]), pip_list(&v));
    assert_eq!(records[0]["venv"], json!(v.display().to_string()));
    assert!(!pwned.exists(), "something in the path was executed");
}

#[test]
fn bad_lines_are_errors_naming_the_line_and_the_rest_go_on() {
    let server = Sshd::start(1);
    let dir = tempfile::tempdir().unwrap();
    let v = dir.path().join("venv");
    venv(&v);
    let good = serde_json::to_string(&server.target(0, &v)).unwrap();
    let upstream =
        json!({"host": "x", "venv": "/v", "error": {"tool": "vd-targets", "message": "bad row"}});
    let input = format!("{good}\nthis is not json\n{{\"host\":\"h\"}}\n{upstream}\n\n{good}\n");
    let out = server.tool("vd-freeze").stdin(input).run();
    out.expect_code(1)
        .expect_stderr("stdin line 2: not JSON")
        .expect_stderr("stdin line 3");
    let records = out.records();
    assert_eq!(records.len(), 5);
    assert!(records[0].get("error").is_none());
    assert!(error_message(&records[1]).starts_with("stdin line 2: not JSON"));
    assert!(error_message(&records[2]).contains("stdin line 3"));
    assert!(error_message(&records[2]).contains("venv"));
    assert_eq!(
        records[3],
        *upstream.as_object().unwrap(),
        "an upstream error was touched"
    );
    assert!(records[4].get("error").is_none());
}

#[test]
fn absent_venvs_and_paths_that_are_not_venvs() {
    let server = Sshd::start(1);
    let dir = tempfile::tempdir().unwrap();
    let v = dir.path().join("venv");
    venv(&v);
    let absent = dir.path().join("still to create");
    let plain = dir.path().join("plain");
    fs::create_dir(&plain).unwrap();
    let prefix_without_cfg = dir.path().join("fake");
    fs::create_dir_all(prefix_without_cfg.join("bin")).unwrap();
    std::os::unix::fs::symlink(
        fs::canonicalize(v.join("bin/python")).unwrap(),
        prefix_without_cfg.join("bin/python"),
    )
    .unwrap();
    let mut with_python = server.target(0, &absent);
    with_python.insert("python".into(), json!(python::python3()));
    let mut missing_python = server.target(0, &absent);
    missing_python.insert("python".into(), json!("/nonexistent/python3"));
    for via_local in [false, true] {
        let mut input = vec![
            server.target(0, &v),
            with_python.clone(),
            server.target(0, &plain),
            server.target(0, &prefix_without_cfg),
            missing_python.clone(),
        ];
        if via_local {
            for record in &mut input {
                record.insert("via".into(), json!("local"));
                record.insert("host".into(), json!("this-machine"));
            }
        }
        let out = server.tool("vd-freeze").stdin(jsonl(&input)).run();
        out.expect_code(1);
        let records = out.records();
        assert_eq!(records[0]["venv_exists"], json!(true), "{:?}", records[0]);
        assert_eq!(records[1]["venv_exists"], json!(false), "{:?}", records[1]);
        assert_eq!(records[1]["installed"], json!({}));
        assert_eq!(records[1]["python"]["venv"], json!(false));
        assert!(records[1]["markers"]["python_version"].is_string());
        let not_venv = error_message(&records[2]);
        assert!(not_venv.contains("is not a virtualenv"), "{not_venv}");
        let no_cfg = error_message(&records[3]);
        assert!(no_cfg.contains("is not a virtualenv"), "{no_cfg}");
        let no_python = error_message(&records[4]);
        assert!(no_python.contains("/nonexistent/python3"), "{no_python}");
    }
    assert_eq!(server.logins(), 1, "via local used SSH");
}

#[test]
fn ssh_config_aliases_resolve_and_a_bastion_that_fails_names_its_line() {
    let server = Sshd::start(2);
    let dir = tempfile::tempdir().unwrap();
    let v = dir.path().join("venv");
    venv(&v);
    let home = dir.path().join("home");
    fs::create_dir_all(home.join(".ssh")).unwrap();
    fs::create_dir_all(home.join("keys")).unwrap();
    fs::copy(server.user_key(), home.join("keys/deploy")).unwrap();
    fs::write(home.join(".ssh/known_hosts"), server.known_hosts()).unwrap();
    fs::write(
        home.join(".ssh/config"),
        format!(
            "Host web*\n  HostName {}\n  Port {}\n  User {}\n  IdentityFile ~/keys/deploy\n\
             Host web-behind\n  ProxyJump bastion.example\n",
            server.host(1),
            server.port,
            current_user()
        ),
    )
    .unwrap();
    let alias = |host: &str| {
        json!({"host": host, "venv": v.display().to_string()})
            .as_object()
            .unwrap()
            .clone()
    };
    let out = server
        .tool_with_home("vd-freeze", &home)
        .stdin(jsonl(&[alias("web1"), alias("web-behind")]))
        .run();
    out.expect_code(1);
    let records = out.records();
    assert!(records[0].get("error").is_none(), "{:?}", records[0]);
    assert_eq!(installed(&records[0]), pip_list(&v));
    // The bastion is tried, and its failure names where it was configured.
    let proxy = error_message(&records[1]);
    assert!(
        proxy.contains("ProxyJump bastion.example")
            && proxy.contains("config line 7")
            && proxy.contains("cannot resolve bastion.example"),
        "{proxy}"
    );
}

#[test]
fn venv_user_runs_through_sudo() {
    let user = sshd::second_user();
    let server = Sshd::start(1);
    let dir = tempfile::tempdir().unwrap();
    let v = dir.path().join("venv");
    python::venv_with(&python::interpreter_for(user), &v);
    let marker = dir.path().join("uid");
    plant_marker(&v, &marker);
    let mut target = server.target(0, &v);
    target.insert("venv_user".into(), json!(user));
    // The marker file must be writable by the venv user.
    let chmod = std::process::Command::new("chmod")
        .args(["0777"])
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(chmod.success());
    let out = server.tool("vd-freeze").stdin(jsonl(&[target])).run();
    out.expect_code(0);
    let uid = std::process::Command::new("id")
        .args(["-u", user])
        .output()
        .unwrap();
    assert_eq!(
        fs::read_to_string(&marker).unwrap(),
        String::from_utf8_lossy(&uid.stdout).trim(),
        "the venv's python did not run as {user}"
    );
}

#[test]
fn ssh_agent_identities_come_first_and_unlock_encrypted_keys() {
    let server = Sshd::start(1);
    let dir = tempfile::tempdir().unwrap();
    let v = dir.path().join("venv");
    venv(&v);
    let socket = dir.path().join("agent.sock");
    let started = std::process::Command::new("ssh-agent")
        .arg("-a")
        .arg(&socket)
        .output()
        .expect("cannot run ssh-agent (apt-get install openssh-client)");
    assert!(started.status.success(), "ssh-agent failed to start");
    // `SSH_AGENT_PID=1234; export …`: stop this agent, and only it, at the end.
    let text = String::from_utf8_lossy(&started.stdout).into_owned();
    let pid = text
        .split("SSH_AGENT_PID=")
        .nth(1)
        .and_then(|rest| rest.split(';').next())
        .expect("ssh-agent printed no pid")
        .to_string();
    struct Agent(String);
    impl Drop for Agent {
        fn drop(&mut self) {
            let _ = std::process::Command::new("kill").arg(&self.0).status();
        }
    }
    let _agent = Agent(pid);
    let added = std::process::Command::new("ssh-add")
        .arg(server.user_key())
        .env("SSH_AUTH_SOCK", &socket)
        .output()
        .unwrap();
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    // The only key file is encrypted: the login must come from the agent.
    let home = dir.path().join("home");
    fs::create_dir_all(home.join(".ssh")).unwrap();
    keygen(&home.join(".ssh/id_ed25519"), "a passphrase");
    fs::write(home.join(".ssh/known_hosts"), server.known_hosts()).unwrap();
    let out = server
        .tool_with_home("vd-freeze", &home)
        .env("SSH_AUTH_SOCK", &socket)
        .stdin(jsonl(&[server.target(0, &v)]))
        .run();
    out.expect_code(0);
    assert_eq!(installed(&out.records()[0]), pip_list(&v));
}

/// A field of the wrong type is never taken as absent: `venv_user: 1001`
/// must not drop the `sudo -u` wrapper and run as the login user. Each is an
/// error naming the field and the line, nothing runs for that target, and
/// the others go on.
#[test]
fn fields_of_the_wrong_type_are_errors_naming_field_and_line() {
    let server = Sshd::start(1);
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good");
    venv(&good);
    let guarded = dir.path().join("guarded");
    venv(&guarded);
    let marker = dir.path().join("ran");
    plant_marker(&guarded, &marker);
    let bad = [
        (
            "venv_user",
            json!(1001),
            "field `venv_user` must be a string, not 1001 (a number)",
        ),
        (
            "venv_user",
            json!(["app"]),
            "field `venv_user` must be a string, not [\"app\"] (a list)",
        ),
        (
            "migrate_user",
            json!(1001),
            "field `migrate_user` must be a string",
        ),
        ("user", json!(7), "field `user` must be a string"),
        ("cache", json!(false), "field `cache` must be a string"),
        (
            "python",
            json!(3),
            "field `python` must be an interpreter's name or its facts",
        ),
        (
            "identity",
            json!(["~/.ssh/id"]),
            "field `identity` must be a string",
        ),
        (
            "via",
            json!(1),
            "field `via` must be a string, not 1 (a number)",
        ),
        ("port", json!(true), "port true (a boolean) is not a number"),
        (
            "reload_once",
            json!(2),
            "field `reload_once`: expected true or false",
        ),
        (
            "settings",
            json!(1),
            "field `settings` must be a list of strings",
        ),
    ];
    let mut input = vec![server.target(0, &good)];
    for (field, value, _) in &bad {
        let mut record = server.target(0, &guarded);
        record.insert(field.to_string(), value.clone());
        input.push(record);
    }
    input.push(server.target(0, &good));
    let out = server.tool("vd-freeze").stdin(jsonl(&input)).run();
    out.expect_code(1);
    let records = out.records();
    assert_eq!(records.len(), input.len());
    for (i, (field, value, expected)) in bad.iter().enumerate() {
        let line = i + 2;
        let message = error_message(&records[line - 1]);
        assert!(
            message.starts_with(&format!("stdin line {line} (")),
            "{field}: {message}"
        );
        assert!(message.contains(expected), "{field}: {message}");
        // The record keeps the bad value, for the user to see and fix.
        assert_eq!(&records[line - 1][*field], value);
        out.expect_stderr(&format!("stdin line {line} "));
    }
    for record in [&records[0], &records[input.len() - 1]] {
        assert!(record.get("error").is_none(), "{record:?}");
        assert_eq!(record["venv_exists"], json!(true));
    }
    assert!(!marker.exists(), "a target with a bad field ran a command");
}

/// `identity: ~/key` is the key in the local user's home, as in a shell.
#[test]
fn identity_in_the_home_directory_is_expanded() {
    let server = Sshd::start(1);
    let dir = tempfile::tempdir().unwrap();
    let v = dir.path().join("venv");
    venv(&v);
    // A home whose only key is ~/keys/deploy: without expansion there is
    // no key to log in with.
    let home = dir.path().join("home");
    fs::create_dir_all(home.join(".ssh")).unwrap();
    fs::create_dir_all(home.join("keys")).unwrap();
    fs::copy(server.user_key(), home.join("keys/deploy")).unwrap();
    fs::write(home.join(".ssh/known_hosts"), server.known_hosts()).unwrap();
    let mut target = server.target(0, &v);
    target.insert("identity".into(), json!("~/keys/deploy"));
    let out = server
        .tool_with_home("vd-freeze", &home)
        .stdin(jsonl(&[target]))
        .run();
    out.expect_code(0);
    assert_eq!(out.records()[0]["venv_exists"], json!(true));
    assert_eq!(out.records()[0]["identity"], json!("~/keys/deploy"));
}

#[test]
fn an_identity_that_is_a_device_or_a_fifo_is_skipped_unread() {
    let server = Sshd::start(1);
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("key_fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success(), "mkfifo failed");
    let absent = dir.path().join("absent");
    let with_identity = |identity: &str| {
        let mut t = server.target(0, &absent);
        t.insert("identity".into(), json!(identity));
        t
    };
    let input = [
        with_identity("/dev/zero"),
        with_identity(fifo.to_str().unwrap()),
    ];
    let started = Instant::now();
    // The HOME's own key logs in once the odd ones are passed over.
    let out = server
        .tool("vd-freeze")
        .stdin(jsonl(&input))
        .spawn()
        .finish_by(started + Duration::from_secs(30))
        .expect("vd-freeze still read an identity file after 30 s");
    out.expect_code(0);
    for record in out.records() {
        assert_eq!(record["venv_exists"], json!(false), "{record:?}");
    }
}
