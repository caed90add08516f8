//! vd-reload on targets with generations, against a real sshd: a real
//! gunicorn whose reload by HUP keeps its old generation (and vd(7)'s
//! recipe that does not), and a real Django migration that fails after
//! vd-push switched the link.

use crate::generations::{active, generations_target, Service};
use crate::push::{self, log_events, plan, push, requirements, wheel, Target};
use crate::util::gunicorn::{gunicorn_wheels, hello_wheel, Gunicorn};
use crate::util::python::{self, install, python3, venv_with_pip};
use crate::util::record::Switch;
use crate::util::sshd::Sshd;
use crate::util::{repo, tool, Outcome, Record};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Duration;

const BROKEN: &str = "fixture_shop.broken_settings";

/// A generations target on host 0 keeping `keep`, made with python3, that
/// reloads with `reload`.
fn target(server: &Sshd, dir: &Path, venv: &Path, keep: u32, reload: &str) -> Target {
    let mut t = generations_target(server, venv, &dir.join("cache"), keep);
    t.insert("python".into(), json!(python3()));
    t.insert("reload".into(), json!(reload));
    t
}

/// Plan `reqs` for `t` and push it (creating the venv when `create`): the
/// pushed records, which must be fine.
fn push_requirements(server: &Sshd, repo: &Path, t: &Target, reqs: &Path, create: bool) -> String {
    let plans = plan(server, repo, reqs, false, std::slice::from_ref(t));
    let args: &[&str] = if create { &["--create"] } else { &[] };
    let out = push(server, repo, args, &plans);
    out.expect_code(0);
    out.stdout
}

fn reload(server: &Sshd, repo: &Path, args: &[&str], input: &str) -> Outcome {
    server
        .tool("vd-reload")
        .arg("--repo")
        .arg(repo)
        .args(args)
        .stdin(input)
        .run()
}

/// Django's wheels, the fixture shop (whose ledger migration raises), and
/// vdp-alpha 1.0 and 2.0 to tell two generations apart.
fn shop_wheels() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut wheels = python::download("Django>=4.2,<6", &[]);
    wheels.push(python::build_tree(
        &root.join("tests/fixtures/fixture-shop"),
    ));
    wheels.push(wheel("vdp-alpha", "1.0"));
    wheels.push(wheel("vdp-alpha", "2.0"));
    wheels
}

#[test]
fn a_migration_that_fails_after_the_switch_is_switched_back_with_revert() {
    let server = Sshd::start(1);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let repo = repo(d, &shop_wheels());
    let v = d.join("venv");
    let reloads = d.join("reloads");
    let mut t = target(
        &server,
        d,
        &v,
        3,
        &format!("echo reload >>'{}'", reloads.display()),
    );
    t.insert("settings".into(), json!(BROKEN));
    let shop = "Django>=4.2,<6\nvd-fixture-shop\n";
    let one = requirements(d, "one.txt", &format!("{shop}vdp-alpha==1.0\n"));
    push_requirements(&server, &repo, &t, &one, true);
    let two = requirements(d, "two.txt", &format!("{shop}vdp-alpha==2.0\n"));
    let pushed = push_requirements(&server, &repo, &t, &two, false);
    assert_eq!(active(&v), "2");

    let migrated = server
        .tool("vd-migrate")
        .arg("--repo")
        .arg(&repo)
        .stdin(pushed)
        .run();
    migrated.expect_code(1);
    let failed = &migrated.records()[0];
    let message = failed.error_message();
    assert!(
        message.contains("ledger.0002_broken fails on purpose")
            && message.contains("the venv's link names generation 2, whose migrations failed")
            && message.contains("still run generation 1")
            && message.contains("vd-reload --revert"),
        "{message}"
    );

    // Without --revert: passed through untouched, the link left on 2.
    let out = reload(&server, &repo, &[], &migrated.stdout);
    out.expect_code(1);
    assert_eq!(out.json(), migrated.json(), "the failed record was touched");
    assert_eq!(active(&v), "2");

    // With --revert: back on 1, the migration's error kept, not reloaded.
    let out = reload(&server, &repo, &["--revert"], &migrated.stdout);
    out.expect_code(1)
        .expect_stderr("switched back from generation 2 to 1 after its migrations failed");
    let record = &out.records()[0];
    assert_eq!(active(&v), "1");
    assert_eq!(record.reverted, Some(Switch { from: 2, to: 1 }));
    assert_eq!(record.error, failed.error, "the migration's error was lost");
    assert_eq!(record.generation.unwrap().active, 1);
    assert_eq!(record.installed()["vdp-alpha"], "1.0");
    assert!(record.reloaded.is_none(), "{record:?}");
    assert!(!reloads.exists(), "a service was reloaded");
    let reverts: Vec<_> = log_events(&repo)
        .into_iter()
        .filter(|e| e.event == "revert")
        .collect();
    assert_eq!(reverts.len(), 1, "{reverts:?}");
    assert!(
        reverts[0]
            .detail
            .starts_with("generation 2 to 1 after: vd-migrate failed: "),
        "{}",
        reverts[0].detail
    );

    // The same records again: the link no longer names 2, so nothing moves.
    let out = reload(&server, &repo, &["--revert"], &migrated.stdout);
    out.expect_code(1);
    assert_eq!(active(&v), "1");
}

/// A repository with gunicorn and vdp-hello 1.0 and 2.0; a generations
/// target keeping `keep` whose reload is `reload` and whose check asks the
/// server; generation 1 (hello 1.0) pushed and served, generation 2 (hello
/// 2.0) pushed: the pushed records.
struct Served {
    server: Sshd,
    dir: tempfile::TempDir,
    repo: PathBuf,
    venv: PathBuf,
    gunicorn: Gunicorn,
    pushed: String,
}

fn serve_1_and_push_2(reload: impl Fn(&Gunicorn) -> String, keep: u32) -> Served {
    let server = Sshd::start(1);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut wheels = gunicorn_wheels();
    wheels.push(hello_wheel("1.0"));
    wheels.push(hello_wheel("2.0"));
    let repo = repo(d, &wheels);
    let venv = d.join("venv");
    let gunicorn = Gunicorn::new(d);
    let mut t = target(&server, d, &venv, keep, &reload(&gunicorn));
    t.insert(
        "check".into(),
        json!(format!(
            "python3 -c 'import urllib.request as u; u.urlopen(\"http://127.0.0.1:{}/\", timeout=5)'",
            gunicorn.port
        )),
    );
    let one = requirements(d, "one.txt", "gunicorn\nvdp-hello==1.0\n");
    push_requirements(&server, &repo, &t, &one, true);
    gunicorn.start(&venv);
    assert_eq!(gunicorn.version(), "1.0");
    let two = requirements(d, "two.txt", "gunicorn\nvdp-hello==2.0\n");
    let pushed = push_requirements(&server, &repo, &t, &two, false);
    assert_eq!(active(&venv), "2");
    Served {
        server,
        dir,
        repo,
        venv,
        gunicorn,
        pushed,
    }
}

/// `running` of a record: `(pid, generation)` by pid.
fn generations_running(record: &Record) -> Vec<(u32, Option<u32>)> {
    let mut seen: Vec<(u32, Option<u32>)> = record
        .running
        .as_ref()
        .unwrap_or_else(|| panic!("no running in {record:?}"))
        .iter()
        .map(|p| (p.pid, p.generation))
        .collect();
    seen.sort();
    seen
}

/// The pids of `gunicorn`'s master and workers, each in `generation`.
fn served_by(gunicorn: &Gunicorn, generation: u32) -> Vec<(u32, Option<u32>)> {
    let mut pids = gunicorn.workers();
    pids.push(gunicorn.master());
    let mut expected: Vec<(u32, Option<u32>)> =
        pids.into_iter().map(|p| (p, Some(generation))).collect();
    expected.sort();
    expected
}

/// `vd-freeze | vd-diff --check` of the served target against generation
/// 2's requirements: the freeze's one record, and the check's outcome.
fn freeze_and_check(s: &Served) -> (Record, Outcome) {
    let frozen = s.server.tool("vd-freeze").stdin(s.pushed.clone()).run();
    frozen.expect_code(0);
    let checked = tool("vd-diff")
        .arg("--repo")
        .arg(&s.repo)
        .arg("--check")
        .arg(s.dir.path().join("two.txt"))
        .stdin(frozen.stdout.clone())
        .run();
    (frozen.records().remove(0), checked)
}

#[test]
fn gunicorn_reloaded_by_hup_keeps_the_old_generation_and_fails() {
    let s = serve_1_and_push_2(Gunicorn::hup_command, 3);
    let (master, workers) = (s.gunicorn.master(), s.gunicorn.workers());
    assert_eq!(workers.len(), 2, "{}", s.gunicorn.log());
    let out = reload(&s.server, &s.repo, &["--drain", "3s"], &s.pushed);
    out.expect_code(1);
    // HUP forks new workers from the master of generation 1: they import
    // generation 1 again, and the check passes.
    assert!(s
        .gunicorn
        .wait_gone(&workers, Duration::from_secs(10))
        .is_empty());
    assert_eq!(s.gunicorn.master(), master);
    assert_eq!(s.gunicorn.version(), "1.0");
    let record = &out.records()[0];
    assert_eq!((record.reloaded, record.checked), (Some(true), Some(true)));
    assert_eq!(generations_running(record), served_by(&s.gunicorn, 1));
    let message = record.error_message();
    assert!(
        message.contains("generation 1 still runs 3s after the reload")
            && message.contains("USR2, then TERM to the old master")
            && message.contains("RELOADING WITH GENERATIONS"),
        "{message}"
    );
    for pid in served_by(&s.gunicorn, 1) {
        assert!(message.contains(&format!("{} (", pid.0)), "{message}");
    }
    assert!(message.contains("gunicorn"), "{message}");
    assert_eq!(active(&s.venv), "2");

    // vd-freeze sees the same: the master and its workers in generation 1;
    // and the cron check calls it drift.
    let (frozen, checked) = freeze_and_check(&s);
    assert_eq!(generations_running(&frozen), served_by(&s.gunicorn, 1));
    checked.expect_code(1);
    assert!(checked.records()[0].running_drift.is_some(), "{checked:?}");

    // With --revert the link goes back to what runs: generation 1, reloaded
    // (by HUP again), checked, and nothing of another generation left.
    let out = reload(
        &s.server,
        &s.repo,
        &["--drain", "3s", "--revert", "--check-tries", "1"],
        &s.pushed,
    );
    out.expect_code(1);
    let record = &out.records()[0];
    assert_eq!(active(&s.venv), "1");
    assert_eq!(record.reverted, Some(Switch { from: 2, to: 1 }));
    let message = record.error_message();
    assert!(
        message.contains("generation 1 still runs")
            && message.contains("reverted to generation 1, reloaded and checked"),
        "{message}"
    );
    assert_eq!(generations_running(record), served_by(&s.gunicorn, 1));
    assert_eq!(s.gunicorn.version(), "1.0");
    let _ = &s.dir;
}

#[test]
fn gunicorn_upgraded_by_the_recipe_runs_the_new_generation() {
    let s = serve_1_and_push_2(Gunicorn::upgrade_command, 3);
    let old = s.gunicorn.processes();
    assert_eq!(old.len(), 3, "{}", s.gunicorn.log());
    let out = reload(&s.server, &s.repo, &[], &s.pushed);
    out.expect_code(0);
    // The old master and its workers were waited for, within --timeout.
    assert!(s.gunicorn.wait_gone(&old, Duration::ZERO).is_empty());
    let record = &out.records()[0];
    assert_eq!((record.reloaded, record.checked), (Some(true), Some(true)));
    assert_eq!(generations_running(record), served_by(&s.gunicorn, 2));
    assert_eq!(s.gunicorn.version(), "2.0");
    let (frozen, checked) = freeze_and_check(&s);
    assert_eq!(generations_running(&frozen), served_by(&s.gunicorn, 2));
    checked.expect_code(0);
    let _ = &s.venv;
}

/// A venv changed in place has no other generation, but a process that
/// started before its change runs code no longer all on disk: the reload
/// must restart it, and a target where it is left fails.
#[test]
fn a_process_older_than_an_in_place_change_fails_the_reload_until_it_ends() {
    let server = Sshd::start(1);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (alpha1, alpha2) = (wheel("vdp-alpha", "1.0"), wheel("vdp-alpha", "2.0"));
    let repo = repo(d, &[alpha1.clone(), alpha2]);
    let v = d.join("venv");
    venv_with_pip(&v);
    install(&v, &[alpha1]);
    let mut old = Service::start(&v);
    assert!(old.import("vdp_alpha").starts_with("1.0 "));
    let mut t = push::target(&server, 0, &v, &d.join("cache"));
    t.insert("reload".into(), json!("true"));
    let two = requirements(d, "two.txt", "vdp-alpha==2.0\n");
    let pushed = push_requirements(&server, &repo, &t, &two, false);

    let out = reload(&server, &repo, &["--drain", "1s"], &pushed);
    out.expect_code(1);
    let record = &out.records()[0];
    let message = record.error_message();
    let pid = old.0.id();
    assert!(
        message.contains("started before the venv last changed")
            && message.contains(&format!("{pid} ("))
            && message.contains("systemctl restart"),
        "{message}"
    );
    let running = record.running.as_ref().unwrap();
    assert!(
        running
            .iter()
            .any(|p| p.pid == pid && p.stale == Some(true)),
        "{running:?}"
    );

    // Restarted (here: ended), the same reload is fine.
    drop(old);
    let out = reload(&server, &repo, &["--drain", "1s"], &pushed);
    out.expect_code(0);
    assert_eq!(out.records()[0].running, Some(Vec::new()));
}
