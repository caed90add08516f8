//! vd-freeze against a real sshd on loopback and real virtualenvs.

use crate::util::python::{self, install, pip_list, plant_marker, venv, Project};
use crate::util::sshd::{self, current_user, fingerprint, free_port, keygen, Sshd};
use crate::util::{error_message, installed, jsonl, path_text, stdout_of, AsRecord};
use serde_json::json;
use std::fs;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
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
        let sent = sent.record();
        assert_eq!(record.venv, sent.venv, "records out of order");
        assert_eq!(record.host, sent.host);
        assert_eq!(installed(record), pip_list(v), "{}", v.display());
        assert_eq!(record.venv_exists, Some(true));
        assert_eq!(record.facts().venv, Some(true));
        assert_eq!(
            record.facts().executable,
            Some(path_text(&v.join("bin/python")))
        );
        assert_eq!(record.markers().sys_platform, "linux");
    }
    assert_eq!(installed(&records[1])["vd-demo-pkg"], "1.0");
    assert_eq!(installed(&records[1])["zope-thing-extra"], "2.5.1");
    assert_eq!(records[0].rest.get("mine"), Some(&json!({"kept": true})));
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

    // The error of a login from a home whose only key is one of `passphrase`.
    let login_error = |home: &str, passphrase: &str| {
        let home = dir.path().join(home);
        fs::create_dir_all(home.join(".ssh")).unwrap();
        keygen(&home.join(".ssh/id_ed25519"), passphrase);
        let out = server
            .tool_with_home("vd-freeze", &home)
            .arg("--known-hosts")
            .arg(&known_hosts)
            .stdin(jsonl(&[server.target(2, &v)]))
            .run();
        out.expect_code(1);
        error_message(&out.records()[0])
    };
    // A user key the server does not accept.
    let refused = login_error("wrong-home", "");
    assert!(
        refused.contains("login as") && refused.contains("refused"),
        "{refused}"
    );
    // An encrypted key, and no agent: an error that says what to do, no prompt.
    let locked = login_error("locked-home", "a passphrase");
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
    assert!(records[1].error.is_none(), "{:?}", records[1]);
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
    assert!(records[2].error.is_none(), "{:?}", records[2]);
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
        "it's a \"venv\" \\ café 🐍 $(touch {p}) `touch {p}` ; touch {p}",
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
    assert_eq!(records[0].venv, Some(path_text(&v)));
    // Quotes, a backslash and characters beyond ASCII come back whole from
    // the remote side's JSON.
    assert_eq!(
        records[0].facts().executable,
        Some(path_text(&v.join("bin/python")))
    );
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
    let records = out.json();
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
        assert_eq!(records[0].venv_exists, Some(true), "{:?}", records[0]);
        assert_eq!(records[1].venv_exists, Some(false), "{:?}", records[1]);
        assert!(installed(&records[1]).is_empty());
        assert_eq!(records[1].facts().venv, Some(false));
        // Markers read into their type: python_version is a string.
        records[1].markers();
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
    let home = server.home_with_deploy_key(dir.path());
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
    assert!(records[0].error.is_none(), "{:?}", records[0]);
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
    stdout_of(
        Command::new("ssh-add")
            .arg(server.user_key())
            .env("SSH_AUTH_SOCK", &socket),
        "ssh-add (Debian: apt-get install openssh-client)",
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
    let records = out.json();
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
        let record = record.record();
        assert!(record.error.is_none(), "{record:?}");
        assert_eq!(record.venv_exists, Some(true));
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
    let home = server.home_with_deploy_key(dir.path());
    let mut target = server.target(0, &v);
    target.insert("identity".into(), json!("~/keys/deploy"));
    let out = server
        .tool_with_home("vd-freeze", &home)
        .stdin(jsonl(&[target]))
        .run();
    out.expect_code(0);
    let record = &out.records()[0];
    assert_eq!(record.venv_exists, Some(true));
    assert_eq!(record.identity.as_deref(), Some("~/keys/deploy"));
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
        assert_eq!(record.venv_exists, Some(false), "{record:?}");
    }
}

/// A server whose every command first adds a line to a log: the number of
/// SSH commands vd-freeze ran, counted by the host.
fn counting_server(hosts: usize, dir: &Path) -> (Sshd, PathBuf) {
    let log = dir.join("commands.log");
    let wrapper = dir.join("count-commands");
    fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\necho command >>'{}'\nexec /bin/sh -c \"$SSH_ORIGINAL_COMMAND\"\n",
            log.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&wrapper, fs::Permissions::from_mode(0o755)).unwrap();
    let options = sshd::Options {
        config: format!("ForceCommand {}\n", wrapper.display()),
        ..sshd::Options::default()
    };
    (Sshd::start_with(hosts, options), log)
}

fn commands(log: &Path) -> usize {
    fs::read_to_string(log).unwrap_or_default().lines().count()
}

/// A distribution's metadata planted by hand, as installers other than
/// pip's wheel installs leave it: a setuptools `.egg-info` directory, or
/// distutils' single `.egg-info` file.
fn plant_egg_info(site: &Path, name: &str, version: &str, as_file: bool) {
    let text =
        format!("Metadata-Version: 1.0\nName: {name}\nVersion: {version}\n\nName: not-this\n");
    let path = site.join(format!("{name}-{version}-py3.egg-info"));
    if as_file {
        fs::write(path, text).unwrap();
    } else {
        fs::create_dir_all(&path).unwrap();
        fs::write(path.join("PKG-INFO"), text).unwrap();
    }
}

fn plant_dist_info(dir: &Path, name: &str, version: &str) {
    let path = dir.join(format!("{name}-{version}.dist-info"));
    fs::create_dir_all(&path).unwrap();
    fs::write(
        path.join("METADATA"),
        format!("Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"),
    )
    .unwrap();
}

/// The batched freeze against the per-venv one, venv by venv: two
/// interpreters, dist-info and both kinds of egg-info, a .pth directory,
/// names with dots, underscores and capitals, a venv reached through a
/// symlink (as generations make them), and the venvs it must leave to their
/// own python (--copies, Python 2.7, system site-packages, a .pth that runs
/// code) or tell apart (absent, not a venv, a broken bin/python), all on
/// one host and in one SSH command.
#[test]
fn one_command_per_host_freezes_each_venv_as_its_own_python_would() {
    let dir = tempfile::tempdir().unwrap();
    let (server, log) = counting_server(1, dir.path());
    let (demo, zope) = wheels();
    let py38 = python::pyenv_python("3.8");
    let v = |name: &str| dir.path().join(name);

    // Python 2.7's virtualenv first: its interpreter starts the batch, and
    // hands the other interpreters' venvs on.
    let py27 = v("py27");
    python::venv_of(&python::python27_with_virtualenv(), &py27);
    plant_egg_info(&python::site_packages(&py27), "Old_Style.Dist", "0.3", true);

    let plain_311 = v("a 3.11 venv");
    venv(&plain_311);
    install(&plain_311, &[demo.clone(), zope.clone()]);
    let site = python::site_packages(&plain_311);
    plant_egg_info(&site, "Setuptools_Style.Egg", "2.0", false);
    plant_egg_info(&site, "Distutils.Style", "0.1", true);
    // A .pth file naming a directory outside site-packages that holds a
    // distribution, next to a comment, a blank line and a missing directory.
    let extra = v("extra dir");
    plant_dist_info(&extra, "Pth_Added.Pkg", "3.0");
    fs::write(
        site.join("extra.pth"),
        format!("# a comment\n\n{}\n/nonexistent/dir\n", extra.display()),
    )
    .unwrap();
    // The same name twice: the first on sys.path wins, as for pip.
    plant_dist_info(&extra, "Vd.Demo_Pkg", "9.9");
    // Name and Version after other headers: past the first lines freeze.py
    // looks at, across that boundary, and past the 4 KiB it reads first.
    // (Split.Pair's Name ends at byte 506, its Version at 519.)
    for (name, before, pad) in [
        ("Late_Name", 40, 0),
        ("Split.Pair", 9, 25),
        ("Far-Headers", 120, 0),
    ] {
        let path = site.join(format!("{name}-4.0.dist-info"));
        fs::create_dir_all(&path).unwrap();
        let classifiers = "Classifier: Programming Language :: Python :: 3\n".repeat(before);
        let summary = "x".repeat(pad);
        fs::write(
            path.join("METADATA"),
            format!(
                "Metadata-Version: 2.1\n{classifiers}Summary: {summary}\n\
                 Name: {name}\nVersion: 4.0\n\nBody\n"
            ),
        )
        .unwrap();
    }
    // Metadata that cannot be read is passed over, as pip does.
    let unreadable = site.join("Broken_Meta-1.0.dist-info");
    fs::create_dir_all(unreadable.join("METADATA")).unwrap();

    let second_311 = v("second");
    venv(&second_311);
    install(&second_311, std::slice::from_ref(&zope));
    let through_link = v("current");
    std::os::unix::fs::symlink(&second_311, &through_link).unwrap();

    let first_38 = v("venv-3.8");
    python::venv_with(&py38, &first_38);
    install(&first_38, std::slice::from_ref(&demo));
    plant_egg_info(
        &python::site_packages(&first_38),
        "Egg.Only_Pkg",
        "1.2",
        false,
    );
    let second_38 = v("venv-3.8-b");
    python::venv_with(&py38, &second_38);

    let copies = v("copies");
    Command::new(python::python3())
        .args(["-m", "venv", "--without-pip", "--copies"])
        .arg(&copies)
        .status()
        .unwrap();
    install(&copies, std::slice::from_ref(&demo));
    let system_site = v("system-site");
    Command::new(python::python3())
        .args(["-m", "venv", "--without-pip", "--system-site-packages"])
        .arg(&system_site)
        .status()
        .unwrap();
    let runs_code = v("runs-code");
    venv(&runs_code);
    fs::write(
        python::site_packages(&runs_code).join("adds.pth"),
        format!(
            "import sys; sys.path.append({:?})\n",
            extra.display().to_string()
        ),
    )
    .unwrap();

    let absent = v("still to create");
    let not_a_venv = v("plain");
    fs::create_dir(&not_a_venv).unwrap();
    let broken = v("broken");
    venv(&broken);
    fs::remove_file(broken.join("bin/python")).unwrap();
    std::os::unix::fs::symlink("/nonexistent/python3", broken.join("bin/python")).unwrap();

    let venvs = [
        &py27,
        &plain_311,
        &absent,
        &first_38,
        &through_link,
        &not_a_venv,
        &copies,
        &second_38,
        &broken,
        &system_site,
        &runs_code,
        &second_311,
    ];
    // The interpreter a new venv gets, named so that the host's PATH does
    // not decide which python3 that is.
    let new_venv_python = python::real_executable(&python::python3()).unwrap();
    let input: Vec<_> = venvs
        .iter()
        .map(|p| {
            let mut target = server.target(0, p);
            target.insert("python".into(), json!(new_venv_python));
            target
        })
        .collect();
    let out = server.tool("vd-freeze").stdin(jsonl(&input)).run();
    out.expect_code(1);
    let records = out.records();
    assert_eq!(records.len(), venvs.len());
    assert_eq!(commands(&log), 1, "one host, one command");

    for (venv, record) in venvs.iter().zip(&records) {
        assert_eq!(record.venv, Some(path_text(venv)));
        if *venv == &not_a_venv || *venv == &broken {
            continue;
        }
        assert!(record.error.is_none(), "{record:?}");
        let (reference, listed) = if *venv == &absent {
            let python = PathBuf::from(&new_venv_python);
            (python::freeze_script(&python, &["--no-installed"]), None)
        } else if *venv == &py27 {
            let python = venv.join("bin/python");
            (
                python::freeze_script(&python, &[]),
                Some(python::own_pip_list(venv)),
            )
        } else {
            let python = venv.join("bin/python");
            (python::freeze_script(&python, &[]), Some(pip_list(venv)))
        };
        assert_eq!(record.python, reference.python, "{}", venv.display());
        assert_eq!(record.markers, reference.markers, "{}", venv.display());
        match listed {
            None => assert!(installed(record).is_empty()),
            Some(listed) => {
                assert_eq!(record.installed, reference.installed, "{}", venv.display());
                assert_eq!(installed(record), listed, "{}: pip list", venv.display());
            }
        }
    }
    let at = |venv: &PathBuf| &records[venvs.iter().position(|v| *v == venv).unwrap()];
    let listed = installed(at(&plain_311));
    for (name, version) in [
        ("vd-demo-pkg", "1.0"),
        ("zope-thing-extra", "2.5.1"),
        ("setuptools-style-egg", "2.0"),
        ("distutils-style", "0.1"),
        ("pth-added-pkg", "3.0"),
        ("late-name", "4.0"),
        ("split-pair", "4.0"),
        ("far-headers", "4.0"),
    ] {
        assert_eq!(
            listed.get(name).map(String::as_str),
            Some(version),
            "{name}"
        );
    }
    assert_eq!(installed(at(&first_38))["egg-only-pkg"], "1.2");
    assert_eq!(installed(at(&py27))["old-style-dist"], "0.3");
    assert!(installed(at(&runs_code)).contains_key("pth-added-pkg"));
    assert_eq!(
        at(&through_link).facts().prefix,
        Some(path_text(&through_link))
    );
    assert_eq!(&at(&first_38).facts().version()[..4], "3.8.");
    // The broken ones fail alone, each with the per-venv freeze's words.
    let message = error_message(at(&not_a_venv));
    assert!(
        message.ends_with("exists but is not a virtualenv (it has no bin/python)"),
        "{message}"
    );
    let message = error_message(at(&broken));
    assert!(
        message.contains("bin/python cannot be run here"),
        "{message}"
    );
}

/// Many venvs of one interpreter on each host: one SSH command per host,
/// and no start of any venv's own python. The proof of the latter is a
/// `distutils-precedence.pth` in each venv that leaves a mark whenever the
/// venv's python starts: setuptools' file of that name only installs a
/// distutils shim, so the batched freeze knows it leaves sys.path alone and
/// need not run it.
#[test]
fn many_venvs_of_a_host_cost_one_command_and_no_python_of_their_own() {
    let dir = tempfile::tempdir().unwrap();
    let (server, log) = counting_server(2, dir.path());
    let (demo, _) = wheels();
    let mut input = Vec::new();
    let mut venvs = Vec::new();
    for i in 0..12 {
        let path = dir.path().join(format!("venv-{i}"));
        venv(&path);
        if i % 3 == 0 {
            install(&path, std::slice::from_ref(&demo));
        }
        let mark = dir.path().join(format!("started-{i}"));
        fs::write(
            python::site_packages(&path).join("distutils-precedence.pth"),
            format!(
                "import os; open({:?}, 'w').close()\n",
                mark.display().to_string()
            ),
        )
        .unwrap();
        input.push(server.target(i % 2, &path));
        venvs.push((path, mark));
    }
    let out = server.tool("vd-freeze").stdin(jsonl(&input)).run();
    out.expect_code(0);
    assert_eq!(commands(&log), 2, "two hosts, two commands");
    for (path, mark) in &venvs {
        assert!(!mark.exists(), "{}/bin/python ran", path.display());
    }
    for ((path, mark), record) in venvs.iter().zip(out.records()) {
        assert_eq!(installed(&record), pip_list(path), "{}", path.display());
        let reference = python::freeze_script(&path.join("bin/python"), &[]);
        assert_eq!(record.installed, reference.installed);
        assert_eq!(record.facts().executable, reference.facts().executable);
        assert_eq!(record.facts().base_prefix, reference.facts().base_prefix);
        // The mark works: the reference run left it.
        assert!(mark.exists(), "{}", path.display());
    }
}

/// Targets read as another user (`venv_user`) go in a command of their own,
/// run through sudo; the login user's targets share another. (Which user a
/// venv's python runs as is `venv_user_runs_through_sudo`'s part.)
#[test]
fn each_user_a_hosts_venvs_are_read_as_gets_one_command() {
    let user = sshd::second_user();
    let dir = tempfile::tempdir().unwrap();
    let (server, log) = counting_server(1, dir.path());
    let python = python::interpreter_for(user);
    let (demo, _) = wheels();
    let chmod = Command::new("chmod")
        .arg("0777")
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(chmod.success());
    let mut input = Vec::new();
    let mut venvs = Vec::new();
    for i in 0..4 {
        let path = dir.path().join(format!("venv-{i}"));
        python::venv_with(&python, &path);
        install(&path, std::slice::from_ref(&demo));
        let mut target = server.target(0, &path);
        if i % 2 == 1 {
            target.insert("venv_user".into(), json!(user));
        }
        input.push(target);
        venvs.push(path);
    }
    let out = server.tool("vd-freeze").stdin(jsonl(&input)).run();
    out.expect_code(0);
    assert_eq!(commands(&log), 2, "one command per user");
    for (path, record) in venvs.iter().zip(out.records()) {
        assert_eq!(
            installed(&record)["vd-demo-pkg"],
            "1.0",
            "{}",
            path.display()
        );
        assert_eq!(
            record.facts().executable,
            Some(path_text(&path.join("bin/python")))
        );
    }
}
