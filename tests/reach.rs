//! Reaching hosts that are not on a flat network: through bastions (the
//! inventory's `jump`, `ProxyJump` in ~/.ssh/config, chains of them), over a
//! `ProxyCommand`, with host keys checked at every hop; and hosts whose sshd
//! offers no SFTP.
//!
//! The hosts behind the bastion live in a network namespace of their own:
//! the test (the client) cannot reach them, the bastion (in the namespace,
//! reachable on a veth pair) can, so a run that works went the way it says.

use crate::util::netns::Netns;
use crate::util::python::{pip_list, venv_with_pip, Project};
use crate::util::sshd::{current_user, Options, Sshd};
use crate::util::upload::{
    assert_upload_cut, cache_key, cached, push_cut_off, rerun_push, BigPush,
};
use crate::util::{
    assert_contains, error_message, installed, jsonl, repo, targets_from, tool, AsRecord, Record,
};
use serde_json::{json, Map, Value};
use std::fs;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A target record as a test builds it, to feed a tool.
type Target = Map<String, Value>;

/// Two hosts in a namespace, and a bastion in it that lets through to them
/// alone (`PermitOpen`). The tools run with the bastion's HOME; its user
/// key logs in everywhere.
struct Behind {
    hosts: Sshd,
    bastion: Sshd,
    /// Dropped last, after the servers in it.
    _netns: Netns,
}

impl Behind {
    fn new() -> Behind {
        let netns = Netns::new();
        let hosts = Sshd::start_with(
            2,
            Options {
                netns: Some(&netns),
                ..Options::default()
            },
        );
        let permit: Vec<String> = (0..2)
            .map(|i| format!("{}:{}", hosts.host(i), hosts.port))
            .collect();
        let bastion = Sshd::start_with(
            1,
            Options {
                addresses: vec![netns.inside.clone()],
                netns: Some(&netns),
                config: format!("PermitOpen {}\n", permit.join(" ")),
                ..Options::default()
            },
        );
        hosts.authorize(&bastion.user_key().with_extension("pub"));
        let known = format!("{}{}", bastion.known_hosts(), hosts.known_hosts());
        fs::write(bastion.home().join(".ssh/known_hosts"), known).unwrap();
        // Out of the client's reach: only the bastion gets there.
        assert!(
            TcpStream::connect((hosts.host(0), hosts.port)).is_err(),
            "the hosts behind the bastion are reachable directly"
        );
        Behind {
            hosts,
            bastion,
            _netns: netns,
        }
    }

    /// `user@bastion:port`, as the `jump` column and ProxyJump name it.
    fn jump(&self) -> String {
        format!(
            "{}@{}:{}",
            current_user(),
            self.bastion.host(0),
            self.bastion.port
        )
    }

    fn known_hosts(&self) -> PathBuf {
        self.bastion.home().join(".ssh/known_hosts")
    }

    fn tool(&self, name: &str) -> crate::util::Run {
        self.bastion.tool(name)
    }
}

#[track_caller]
fn assert_ok(record: &Record) {
    assert!(record.error.is_none(), "{record:?}");
}

#[test]
fn freeze_and_push_through_a_bastion_with_one_session_each() {
    let behind = Behind::new();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Host 0 through the inventory's `jump`; host 1 through ProxyJump in a
    // file ~/.ssh/config includes. The same bastion: one session for both.
    let ssh = behind.bastion.home().join(".ssh");
    fs::create_dir_all(ssh.join("config.d")).unwrap();
    fs::write(ssh.join("config"), "Include config.d/*.conf\n").unwrap();
    fs::write(
        ssh.join("config.d/behind.conf"),
        format!(
            "Host inner\n  HostName {}\n  Port {}\n  ProxyJump {}\n",
            behind.hosts.host(1),
            behind.hosts.port,
            behind.jump()
        ),
    )
    .unwrap();
    let (v0, v1) = (d.join("venv0"), d.join("venv1"));
    venv_with_pip(&v0);
    venv_with_pip(&v1);
    let mut t0 = behind.hosts.target(0, &v0);
    t0.insert("jump".into(), json!(behind.jump()));
    t0.insert(
        "cache".into(),
        json!(d.join("cache0").display().to_string()),
    );
    let t1: Target = json!({
        "host": "inner",
        "user": current_user(),
        "venv": v1.display().to_string(),
        "cache": d.join("cache1").display().to_string(),
    })
    .as_object()
    .unwrap()
    .clone();

    let frozen = behind.tool("vd-freeze").stdin(jsonl(&[t0, t1])).run();
    frozen.expect_code(0);
    let records = frozen.records();
    assert_eq!(records.len(), 2);
    records.iter().for_each(assert_ok);
    assert_eq!(behind.bastion.logins(), 1, "{}", behind.bastion.log());
    assert_eq!(behind.hosts.logins(), 2, "{}", behind.hosts.log());

    let wheel = Project::new("vdr-behind", "1.0").build();
    let repo = d.join("wheels");
    tool("vd-add")
        .arg("--repo")
        .arg(&repo)
        .arg(&wheel)
        .run()
        .expect_code(0);
    fs::write(d.join("req.txt"), "vdr-behind\n").unwrap();
    let planned = tool("vd-diff")
        .arg("--repo")
        .arg(&repo)
        .arg(d.join("req.txt"))
        .stdin(frozen.stdout.clone())
        .run();
    planned.expect_code(0);
    let pushed = behind
        .tool("vd-push")
        .arg("--repo")
        .arg(&repo)
        .stdin(planned.stdout.clone())
        .run();
    pushed.expect_code(0);
    for (record, venv) in pushed.records().iter().zip([&v0, &v1]) {
        assert_ok(record);
        assert_eq!(pip_list(venv)["vdr-behind"], "1.0");
        assert_eq!(installed(record), pip_list(venv));
    }
    // One more session each: one to the bastion for the whole run, one per
    // host through it.
    assert_eq!(behind.bastion.logins(), 2, "{}", behind.bastion.log());
    assert_eq!(behind.hosts.logins(), 4, "{}", behind.hosts.log());
}

#[test]
fn host_keys_are_checked_at_both_hops() {
    let behind = Behind::new();
    let dir = tempfile::tempdir().unwrap();
    let venv = dir.path().join("venv");
    venv_with_pip(&venv);
    let mut target = behind.hosts.target(0, &venv);
    target.insert("jump".into(), json!(behind.jump()));
    let right = fs::read_to_string(behind.known_hosts()).unwrap();
    // Another server's key in place of each hop's, in turn.
    let other = Sshd::start(1);
    let wrong_key = other.host_key();
    let bastion_entry = behind.bastion.known_hosts();
    let hosts_entry = behind.hosts.known_hosts();

    let swap = |entries: &str| {
        entries
            .lines()
            .map(|l| {
                let name = l.split_whitespace().next().unwrap();
                format!("{name} {wrong_key}\n")
            })
            .collect::<String>()
    };
    // The error vd-freeze gives for the target with `known` as known_hosts.
    let refused_with = |known: String| {
        fs::write(behind.known_hosts(), known).unwrap();
        let out = behind
            .tool("vd-freeze")
            .stdin(jsonl(std::slice::from_ref(&target)))
            .run();
        out.expect_code(1);
        error_message(&out.records()[0])
    };
    let message = refused_with(format!("{}{hosts_entry}", swap(&bastion_entry)));
    assert!(
        message.contains("HOST KEY CHANGED")
            && message.contains(&format!("bastion {}", behind.jump()))
            && message.contains(&format!(
                "[{}]:{}",
                behind.bastion.host(0),
                behind.bastion.port
            )),
        "{message}"
    );
    assert_eq!(behind.bastion.logins(), 0);
    assert_eq!(behind.hosts.logins(), 0);

    let message = refused_with(format!("{bastion_entry}{}", swap(&hosts_entry)));
    assert!(
        message.contains("HOST KEY CHANGED")
            && message.contains(&format!("[{}]:{}", behind.hosts.host(0), behind.hosts.port))
            && !message.contains("bastion"),
        "{message}"
    );
    // Refused before logging in: nothing ran there.
    assert_eq!(behind.hosts.logins(), 0, "{}", behind.hosts.log());

    // With the right keys it goes through.
    fs::write(behind.known_hosts(), right).unwrap();
    behind
        .tool("vd-freeze")
        .stdin(jsonl(&[target]))
        .run()
        .expect_code(0);
}

#[test]
fn a_chain_of_bastions_and_a_proxy_command() {
    let behind = Behind::new();
    // An outer bastion on this side: `jump` = outer,inner.
    let outer = Sshd::start(1);
    outer.authorize(&behind.bastion.user_key().with_extension("pub"));
    let known = fs::read_to_string(behind.known_hosts()).unwrap() + &outer.known_hosts();
    fs::write(behind.known_hosts(), known).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (v0, v1) = (dir.path().join("venv0"), dir.path().join("venv1"));
    venv_with_pip(&v0);
    venv_with_pip(&v1);
    let mut t0 = behind.hosts.target(0, &v0);
    t0.insert(
        "jump".into(),
        json!(format!(
            "{}@{}:{},{}",
            current_user(),
            outer.host(0),
            outer.port,
            behind.jump()
        )),
    );
    // Host 1 over `ssh -W` through the bastion, the classic ProxyCommand.
    let ssh = behind.bastion.home().join(".ssh");
    fs::write(
        ssh.join("config"),
        format!(
            "Host broken\n  ProxyCommand false\n\
             Host {host}\n  ProxyCommand ssh -F none -o BatchMode=yes -o StrictHostKeyChecking=yes \
             -o UserKnownHostsFile={known} -i {key} -p {port} -W %h:%p {user}@{bastion}\n",
            host = behind.hosts.host(1),
            known = behind.known_hosts().display(),
            key = ssh.join("id_ed25519").display(),
            port = behind.bastion.port,
            user = current_user(),
            bastion = behind.bastion.host(0),
        ),
    )
    .unwrap();
    let t1 = behind.hosts.target(1, &v1);
    let mut t2 = t1.clone();
    t2.insert("host".into(), json!("broken"));
    let out = behind.tool("vd-freeze").stdin(jsonl(&[t0, t1, t2])).run();
    out.expect_code(1);
    let records = out.records();
    assert_ok(&records[0]);
    assert_ok(&records[1]);
    // A command that fails is named, not just a failed SSH greeting.
    let message = error_message(&records[2]);
    assert!(
        message.contains("ProxyCommand false ended (exit status: 1)"),
        "{message}"
    );
    assert_eq!(outer.logins(), 1, "{}", outer.log());
    // The chain's inner bastion, and ssh -W's own login.
    assert_eq!(behind.bastion.logins(), 2, "{}", behind.bastion.log());
    assert_eq!(behind.hosts.logins(), 2, "{}", behind.hosts.log());
}

#[test]
fn a_bad_jump_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let csv = "host,venv,jump\nweb1,/srv/a,deploy@gw:99999\nweb2,/srv/b,deploy@gw:2222\n";
    let out = targets_from(dir.path(), "targets.csv", csv, &[]);
    out.expect_code(1);
    // The bad line carries its port as written: read raw.
    let records = out.json();
    assert_contains(&error_message(&records[0]), &["line 2", "99999"]);
    assert_eq!(records[1].record().jump.as_deref(), Some("deploy@gw:2222"));
}

/// `vd-freeze | vd-diff REQUIREMENTS` for `targets`.
fn plan(server: &Sshd, repo: &Path, requirements: &str, targets: &[Target]) -> String {
    let frozen = server.tool("vd-freeze").stdin(jsonl(targets)).run();
    frozen.expect_code(0);
    let req = repo.with_file_name("requirements.txt");
    fs::write(&req, requirements).unwrap();
    let planned = tool("vd-diff")
        .arg("--repo")
        .arg(repo)
        .arg(&req)
        .stdin(frozen.stdout.clone())
        .run();
    planned.expect_code(0);
    planned.stdout
}

const NO_SFTP_WARNING: &str = "the server offers no SFTP";

/// A server of `hosts` hosts that offers no SFTP subsystem.
fn without_sftp(hosts: usize) -> Sshd {
    let options = Options {
        no_sftp: true,
        ..Options::default()
    };
    Sshd::start_with(hosts, options)
}

#[test]
fn push_to_hosts_without_sftp() {
    let server = without_sftp(2);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let wheel = Project::new("vdr-nosftp", "1.0").payload(100_000).build();
    let repo = repo(d, std::slice::from_ref(&wheel));
    // Two venvs on host 0 (the second used to fail), one on host 1.
    let venvs: Vec<PathBuf> = (0..3).map(|i| d.join(format!("venv{i}"))).collect();
    let targets: Vec<Target> = venvs
        .iter()
        .zip([0, 0, 1])
        .map(|(v, host)| {
            venv_with_pip(v);
            let mut t = server.target(host, v);
            let cache = d.join(format!("cache{host}"));
            t.insert("cache".into(), json!(cache.display().to_string()));
            t
        })
        .collect();
    let plans = plan(&server, &repo, "vdr-nosftp\n", &targets);
    let logins = server.logins();
    let out = server
        .tool("vd-push")
        .arg("--repo")
        .arg(&repo)
        .stdin(plans)
        .run();
    out.expect_code(0);
    let records = out.records();
    records.iter().for_each(assert_ok);
    for v in &venvs {
        assert_eq!(pip_list(v)["vdr-nosftp"], "1.0");
    }
    // Each wheel once per host, each host warned about once, one session each.
    let size = fs::metadata(&wheel).unwrap().len();
    let bytes = |i: usize| records[i].pushed().uploaded_bytes;
    assert_eq!(bytes(0) + bytes(1), size);
    assert_eq!(bytes(2), size);
    for host in 0..2 {
        assert_eq!(cached(&d.join(format!("cache{host}"))), [cache_key(&wheel)]);
    }
    assert_eq!(
        out.stderr.matches(NO_SFTP_WARNING).count(),
        2,
        "{}",
        out.stderr
    );
    for host in 0..2 {
        assert!(
            out.stderr.contains(&format!(
                "{}:{}: {NO_SFTP_WARNING}",
                server.host(host),
                server.port
            )),
            "{}",
            out.stderr
        );
    }
    assert_eq!(server.logins() - logins, 2);
}

#[test]
fn a_transfer_without_sftp_cut_off_leaves_nothing_and_a_rerun_completes() {
    let server = without_sftp(1);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let big = BigPush::new(d, "vdr-big");
    let mut target = server.target(0, &big.venv);
    target.insert("cache".into(), json!(big.cache.display().to_string()));
    let plans = plan(&server, &big.repo, "vdr-big\n", &[target]);

    // Once the first piece has landed, kill the host's end mid-transfer.
    let out = push_cut_off(server.tool("vd-push"), &big, &plans, server.pid());
    assert_upload_cut(&out);

    let out = rerun_push(server.tool("vd-push"), &big, &plans);
    assert_eq!(
        out.records()[0].pushed().uploaded_bytes,
        fs::metadata(&big.wheel).unwrap().len()
    );
    assert_eq!(pip_list(&big.venv)["vdr-big"], "1.0");
}

#[test]
fn a_bastion_lost_mid_transfer_fails_its_targets_and_a_rerun_completes() {
    let behind = Behind::new();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let big = BigPush::new(d, "vdr-big");
    let mut target = behind.hosts.target(0, &big.venv);
    target.insert("jump".into(), json!(behind.jump()));
    target.insert("cache".into(), json!(big.cache.display().to_string()));
    let plans = plan(&behind.bastion, &big.repo, "vdr-big\n", &[target]);

    // The bastion's session goes; the host's own is untouched.
    let started = Instant::now();
    push_cut_off(behind.tool("vd-push"), &big, &plans, behind.bastion.pid());
    assert!(
        started.elapsed() < Duration::from_secs(45),
        "took {:?}",
        started.elapsed()
    );

    rerun_push(behind.tool("vd-push"), &big, &plans);
    assert_eq!(pip_list(&big.venv)["vdr-big"], "1.0");
}
