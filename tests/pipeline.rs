//! The whole deployment, as the README shows it: every tool in one shell
//! pipeline, against a real sshd, virtualenvs still to be created, and real
//! Django — then the same pipeline again, which must change nothing.

use crate::reload::silence_host;
use crate::util::python::{self, sqlite_tables};
use crate::util::record::by_module;
use crate::util::sshd::{current_user, Sshd};
use crate::util::{pipeline, Outcome, Record};
use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use vd::log::ReleaseLog;

pub(crate) const SETTINGS: &str = "demo_shop.settings";

/// The demo shop deployed on `record`'s target: its first migration
/// applied (which made its table in the venv's database), and reloaded.
#[track_caller]
pub(crate) fn assert_shop_deployed(record: &Record) {
    let migrated = record.migrated(SETTINGS);
    assert!(
        migrated.contains(&"catalog.0001_initial".to_string()),
        "{migrated:?}"
    );
    assert_eq!(record.reloaded, Some(true));
    let venv = Path::new(record.venv.as_deref().unwrap());
    let tables = sqlite_tables(&venv.join("demo-shop.sqlite3"));
    assert!(
        tables.contains(&"catalog_product".to_string()),
        "{tables:?}"
    );
}

/// Run the six tools as one `sh` pipeline, with the server's HOME.
fn deploy(server: &Sshd, dir: &Path) -> Outcome {
    deploy_through(server, dir, &[])
}

/// The six tools as one `sh` pipeline over `dir` (its targets.csv,
/// requirements.txt and wheels), with the server's HOME, and `between`
/// (more stages) after vd-push --create.
pub(crate) fn deploy_through(server: &Sshd, dir: &Path, between: &[&str]) -> Outcome {
    let d = dir.display();
    let (targets, diff) = (
        format!("vd-targets --inventory {d}/targets.csv"),
        format!("vd-diff --repo {d}/wheels {d}/requirements.txt"),
    );
    let push = format!("vd-push --repo {d}/wheels --create");
    let (migrate, reload) = (
        format!("vd-migrate --repo {d}/wheels"),
        format!("vd-reload --repo {d}/wheels"),
    );
    let mut stages = vec![targets.as_str(), "vd-freeze", &diff, &push];
    stages.extend(between);
    stages.extend([migrate.as_str(), &reload]);
    server.shell(&pipeline(&stages)).run()
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
    let records = first.records();
    assert_eq!(records.len(), 3, "{}", first.stderr);
    for record in &records {
        assert!(record.error.is_none(), "{record:?}");
        assert_eq!(record.changed, Some(true));
        assert_eq!(record.venv_exists, Some(true), "the freeze after the push");
        let installed = &record.pushed().installed;
        assert!(
            installed.contains(&"demo-shop==1.0".to_string()),
            "{installed:?}"
        );
        assert_shop_deployed(record);
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
    let records = second.records();
    assert_eq!(records.len(), 3);
    for record in &records {
        assert!(record.error.is_none(), "{record:?}");
        assert_eq!(record.changed, Some(false));
        assert!(record.migrated.is_none() || record.migrated == by_module(&[]));
        assert_ne!(record.reloaded, Some(true));
    }
    assert_eq!(fs::read_to_string(&reloads).unwrap().lines().count(), 2);
    assert_eq!(
        log.read().unwrap().len(),
        events_after_first,
        "the second run logged nothing"
    );
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
    let d = dir.display();
    let pipeline = pipeline(&[
        &format!("vd-targets --inventory {d}/targets.csv"),
        &format!("vd-freeze {t}"),
        &format!("vd-diff --repo {d}/wheels {d}/requirements.txt"),
        &format!("vd-push --repo {d}/wheels {t}"),
        &format!("vd-reload --repo {d}/wheels {t}"),
    ]);
    let running = crate::util::command("setsid")
        .args(["sh", "-c", &pipeline])
        .env("HOME", server.home())
        .env_remove("SSH_AUTH_SOCK")
        .spawn();
    let (start, end) = (Duration::from_secs(120), Duration::from_secs(4 * timeout));
    let out = silence_host(&server, running, &started, start, end);
    let records = out.records();
    assert_eq!(records.len(), 2, "{out:?}");
    let message = crate::util::error_message(&records[0]);
    assert!(
        message.contains(server.host(0)) && message.contains("stopped answering"),
        "{message}"
    );
    assert_eq!(records[0].error.as_ref().unwrap().tool, "vd-push");
    assert!(records[1].error.is_none(), "{:?}", records[1]);
    assert_eq!(records[1].reloaded, Some(true));
    assert_eq!(
        fs::read_to_string(&reloads).unwrap().trim(),
        server.host(1),
        "only the host that answered was reloaded"
    );
}
