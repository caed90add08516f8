//! The whole deployment, as the README shows it: every tool in one shell
//! pipeline, against a real sshd, virtualenvs still to be created, and real
//! Django — then the same pipeline again, which must change nothing.

use crate::reload::{parent_of, signal};
use crate::util::python::{self, sqlite_tables};
use crate::util::sshd::{current_user, Sshd};
use crate::util::{bin, strings, Outcome};
use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use vd::log::ReleaseLog;

const SETTINGS: &str = "demo_shop.settings";

/// Run the six tools as one `sh` pipeline, with the server's HOME.
fn deploy(server: &Sshd, dir: &Path) -> Outcome {
    let pipeline = format!(
        "{targets} --inventory {dir}/targets.csv | {freeze} | {diff} --repo {dir}/wheels {dir}/requirements.txt \
         | {push} --repo {dir}/wheels --create | {migrate} --repo {dir}/wheels | {reload} --repo {dir}/wheels",
        targets = bin("vd-targets").display(),
        freeze = bin("vd-freeze").display(),
        diff = bin("vd-diff").display(),
        push = bin("vd-push").display(),
        migrate = bin("vd-migrate").display(),
        reload = bin("vd-reload").display(),
        dir = dir.display(),
    );
    let out = Command::new("sh")
        .arg("-c")
        .arg(pipeline)
        .env("HOME", server.home())
        .env_remove("SSH_AUTH_SOCK")
        .env_remove("VD_REPO")
        .env_remove("VD_INVENTORY")
        .output()
        .unwrap();
    Outcome {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn the_whole_pipeline_deploys_migrates_reloads_and_then_changes_nothing() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let server = Sshd::start(2);
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();

    // The repository: the demo shop and Django's wheels, through vd-add.
    let mut wheels = python::download("Django>=4.2,<6", &[]);
    wheels.push(python::build_tree(&root.join("examples/demo-shop")));
    let mut add = crate::util::tool("vd-add")
        .arg("--repo")
        .arg(dir.join("wheels"));
    for wheel in &wheels {
        add = add.arg(wheel);
    }
    add.run().expect_code(0);
    // Every wheel is required: the shop and what it depends on.
    let names: Vec<String> = wheels
        .iter()
        .map(|w| {
            let file = w.file_name().unwrap().to_str().unwrap();
            vd::wheel::WheelName::parse(file).unwrap().name
        })
        .collect();
    fs::write(dir.join("requirements.txt"), names.join("\n") + "\n").unwrap();

    // Three venvs still to create: two on the first host, one on the second;
    // one reload per host.
    let python = python::real_executable(&python::python3()).unwrap();
    let reloads = dir.join("reloads.log");
    let mut csv = String::from("host,port,user,venv,settings,reload,reload_once,python\n");
    for (host, venv) in [(0, "shop-a"), (0, "shop-b"), (1, "shop-c")] {
        csv.push_str(&format!(
            "{},{},{},{}/venvs/{venv},{SETTINGS},echo {} >> {},true,{python}\n",
            server.host(host),
            server.port,
            current_user(),
            dir.display(),
            server.host(host),
            reloads.display(),
        ));
    }
    fs::write(dir.join("targets.csv"), csv).unwrap();

    let first = deploy(&server, dir);
    first.expect_code(0);
    let records = first.json();
    assert_eq!(records.len(), 3, "{}", first.stderr);
    for record in &records {
        assert!(record.get("error").is_none(), "{record:?}");
        assert_eq!(record["changed"], true);
        assert_eq!(record["venv_exists"], true, "the freeze after the push");
        let installed = strings(&record["pushed"]["installed"]);
        assert!(
            installed.contains(&"demo-shop==1.0".to_string()),
            "{installed:?}"
        );
        let migrated = strings(&record["migrated"][SETTINGS]);
        assert!(
            migrated.contains(&"catalog.0001_initial".to_string()),
            "{migrated:?}"
        );
        assert_eq!(record["reloaded"], true);
        let venv = Path::new(record["venv"].as_str().unwrap());
        let tables = sqlite_tables(&venv.join("demo-shop.sqlite3"));
        assert!(
            tables.contains(&"catalog_product".to_string()),
            "{tables:?}"
        );
    }
    let mut reloaded: Vec<String> = fs::read_to_string(&reloads)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    reloaded.sort();
    assert_eq!(
        reloaded,
        [server.host(0), server.host(1)],
        "one reload per host"
    );
    let log = ReleaseLog::new(&dir.join("wheels"));
    let events_after_first = log.read().unwrap().len();

    let second = deploy(&server, dir);
    second.expect_code(0);
    let records = second.json();
    assert_eq!(records.len(), 3);
    for record in &records {
        assert!(record.get("error").is_none(), "{record:?}");
        assert_eq!(record["changed"], false);
        assert!(record.get("migrated").is_none() || record["migrated"] == serde_json::json!({}));
        assert_ne!(record.get("reloaded"), Some(&serde_json::json!(true)));
    }
    assert_eq!(fs::read_to_string(&reloads).unwrap().lines().count(), 2);
    assert_eq!(
        log.read().unwrap().len(),
        events_after_first,
        "the second run logged nothing"
    );
}

/// The sshd processes of the session running process `pid` (not the listener).
fn session_of(server: &Sshd, pid: u32) -> Vec<u32> {
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

#[test]
fn a_cron_run_with_a_host_stopped_mid_command_ends_with_that_targets_error() {
    // A host is given up three keepalive intervals (of --timeout) after it
    // was last heard, at worst; the rest of the pipeline (the other host's
    // reload, every tool's exit) must fit in the fourth.
    let timeout = 6;
    let server = Sshd::start(2);
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let beta = python::Project::new("vdp-beta", "1.0").build();
    crate::util::tool("vd-add")
        .arg("--repo")
        .arg(dir.join("wheels"))
        .arg(&beta)
        .run()
        .expect_code(0);
    fs::write(dir.join("requirements.txt"), "vdp-beta\n").unwrap();
    let (stuck, fine) = (dir.join("stuck"), dir.join("fine"));
    for venv in [&stuck, &fine] {
        python::venv_with_pip(venv);
    }
    // pip on the first host says it started, then waits on a FIFO nobody
    // opens: the command is under way when its host stops.
    let (gate, started) = (dir.join("gate"), dir.join("started"));
    assert!(Command::new("mkfifo")
        .arg(&gate)
        .status()
        .unwrap()
        .success());
    fs::write(
        python::site_packages(&stuck).join("vd_test_gate.pth"),
        format!(
            "import sys, os; sys.flags.ignore_environment or (open('{}', 'w').write(str(os.getpid())), \
             open('{}').read())\n",
            started.display(),
            gate.display()
        ),
    )
    .unwrap();
    let reloads = dir.join("reloads.log");
    let mut csv = String::from("host,port,user,venv,reload,cache\n");
    for (host, venv) in [(0, &stuck), (1, &fine)] {
        csv.push_str(&format!(
            "{},{},{},{},echo {} >> {},{}/cache\n",
            server.host(host),
            server.port,
            current_user(),
            venv.display(),
            server.host(host),
            reloads.display(),
            dir.display(),
        ));
    }
    fs::write(dir.join("targets.csv"), csv).unwrap();

    // As cron runs it: no terminal, stdin not a terminal either.
    let t = format!("--timeout {timeout}");
    let pipeline = format!(
        "{targets} --inventory {dir}/targets.csv | {freeze} {t} | {diff} --repo {dir}/wheels \
         {dir}/requirements.txt | {push} --repo {dir}/wheels {t} | {reload} --repo {dir}/wheels {t}",
        targets = bin("vd-targets").display(),
        freeze = bin("vd-freeze").display(),
        diff = bin("vd-diff").display(),
        push = bin("vd-push").display(),
        reload = bin("vd-reload").display(),
        dir = dir.display(),
    );
    let running = crate::util::command("setsid")
        .args(["sh", "-c", &pipeline])
        .env("HOME", server.home())
        .env_remove("SSH_AUTH_SOCK")
        .spawn();
    let begun = Instant::now();
    let pip: u32 = loop {
        if let Some(pid) = fs::read_to_string(&started)
            .ok()
            .and_then(|t| t.trim().parse().ok())
        {
            break pid;
        }
        assert!(
            begun.elapsed() < Duration::from_secs(120),
            "pip never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let stopped = session_of(&server, pip);
    assert!(!stopped.is_empty(), "no sshd process above pip ({pip})");
    signal("-STOP", &stopped);
    let stop = Instant::now();
    let outcome = running.finish_by(stop + Duration::from_secs(4 * timeout));
    let waited = stop.elapsed();
    eprintln!("the pipeline ended {waited:?} after the host stopped");
    signal("-KILL", &stopped);
    signal("-KILL", &[pip]);
    let out = outcome.unwrap_or_else(|| {
        panic!("the pipeline still ran {waited:?} after a host stopped answering")
    });
    out.expect_code(1);
    let records = out.json();
    assert_eq!(records.len(), 2, "{out:?}");
    let message = crate::util::error_message(&records[0]);
    assert!(
        message.contains(server.host(0)) && message.contains("stopped answering"),
        "{message}"
    );
    assert_eq!(records[0]["error"]["tool"], "vd-push");
    assert!(records[1].get("error").is_none(), "{:?}", records[1]);
    assert_eq!(records[1]["reloaded"], true);
    assert_eq!(
        fs::read_to_string(&reloads).unwrap().trim(),
        server.host(1),
        "only the host that answered was reloaded"
    );
}
