//! vd-migrate against a real sshd, real virtualenvs and real Django: the demo
//! shop from examples/, and a fixture project (tests/fixtures/fixture-shop)
//! whose migrations fail or take their time.

use crate::util::python::{self, install, sqlite_tables, venv_with};
use crate::util::record::by_module;
use crate::util::sshd::{self, Sshd};
use crate::util::{empty_repo, error_message, jsonl, AsRecord, Outcome};
use serde_json::{json, Map, Value};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use vd::log::{Event, ReleaseLog};

/// A target record as a test builds it, to feed a tool.
type Target = Map<String, Value>;

const DEMO: &str = "demo_shop.settings";
const BROKEN: &str = "fixture_shop.broken_settings";
const SLOW: &str = "fixture_shop.slow_settings";

/// Django's wheels (fetched once), the demo shop's and the fixture shop's.
fn shop_wheels() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut wheels = python::download("Django>=4.2,<6", &[]);
    wheels.push(python::build_tree(&root.join("examples/demo-shop")));
    wheels.push(python::build_tree(
        &root.join("tests/fixtures/fixture-shop"),
    ));
    wheels
}

/// A virtualenv at `path`, made by `interpreter`, with Django and both shops.
fn shop_venv(path: &Path, interpreter: &str) {
    venv_with(interpreter, path);
    install(path, &shop_wheels());
}

/// A changed target on host `i` that migrates `settings`.
fn target(server: &Sshd, i: usize, venv: &Path, settings: &str) -> Target {
    let mut record = server.target(i, venv);
    record.insert("settings".into(), json!(settings));
    record.insert("changed".into(), json!(true));
    record
}

fn events(repo: &Path, kind: &str) -> Vec<Event> {
    ReleaseLog::new(repo)
        .read()
        .unwrap()
        .into_iter()
        .filter(|e| e.event == kind)
        .collect()
}

/// How messages and the release log name a target: `user@host:port:venv`.
fn label(target: &Target) -> String {
    let target = target.record();
    format!(
        "{}@{}:{}:{}",
        target.user.unwrap(),
        target.host.unwrap(),
        target.port.unwrap(),
        target.venv.unwrap()
    )
}

fn migrate(server: &Sshd, repo: &Path, args: &[&str], input: &[Target]) -> Outcome {
    server
        .tool("vd-migrate")
        .arg("--repo")
        .arg(repo)
        .args(args)
        .stdin(jsonl(input))
        .run()
}

/// `start` and `end` stamps from the slow migration's log, in order.
fn slow_stamps(dir: &Path) -> Vec<(String, f64)> {
    fs::read_to_string(dir.join("migrations.log"))
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let words: Vec<&str> = l.split(' ').collect();
            (words[0].to_string(), words[2].parse().unwrap())
        })
        .collect()
}

#[test]
fn two_hosts_plan_check_and_migrate_one_module_at_a_time() {
    let server = Sshd::start(2);
    let dir = tempfile::tempdir().unwrap();
    let repo = empty_repo(dir.path());
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    shop_venv(&a, &python::python3());
    shop_venv(&b, &python::python3());
    let venvs = [&a, &b];
    let both = format!("{DEMO} {SLOW}");
    let mut unchanged = target(&server, 0, &a, &both);
    unchanged.insert("changed".into(), json!(false));
    unchanged.insert("mine".into(), json!("kept"));
    let input = [
        target(&server, 0, &a, &both),
        target(&server, 1, &b, &both),
        unchanged.clone(),
    ];
    let has_products = |venv: &Path| {
        sqlite_tables(&venv.join("demo-shop.sqlite3")).contains(&"catalog_product".to_string())
    };

    // --check: every target is read (changed or not), nothing is applied.
    let out = migrate(&server, &repo, &["--check"], &input);
    out.expect_code(1)
        .expect_stderr(&format!(
            "{}: pending migrations: {DEMO}: ",
            label(&input[0])
        ))
        .expect_stderr(&label(&input[1]))
        .expect_stderr("slow.0001_slowly");
    for record in out.records() {
        let pending = record.pending(DEMO);
        assert!(
            pending.contains(&"catalog.0001_initial".to_string()),
            "{pending:?}"
        );
        assert!(pending.contains(&"contenttypes.0001_initial".to_string()));
        assert_eq!(record.pending(SLOW), ["slow.0001_slowly"]);
        assert!(record.migrated.is_none());
    }
    assert!(!has_products(&a) && !has_products(&b));
    assert!(events(&repo, "migrate").is_empty(), "--check logged");

    // --once: the module is migrated on one target; the other says where.
    let demo_only = [target(&server, 0, &a, DEMO), target(&server, 1, &b, DEMO)];
    let out = migrate(&server, &repo, &["--once"], &demo_only);
    out.expect_code(0);
    let records = out.records();
    let (here, there) = if records[0].migrated_elsewhere.is_some() {
        (1, 0)
    } else {
        (0, 1)
    };
    assert!(records[here]
        .migrated(DEMO)
        .contains(&"catalog.0001_initial".to_string()));
    let elsewhere = [(DEMO.to_string(), label(&demo_only[here]))];
    assert_eq!(
        records[there].migrated_elsewhere,
        Some(elsewhere.into_iter().collect())
    );
    assert_eq!(records[there].migrated, by_module(&[]));
    assert!(has_products(venvs[here]) && !has_products(venvs[there]));
    assert_eq!(events(&repo, "migrate").len(), 1);

    // Applied on the changed targets; the slow module, on two hosts in
    // parallel, one after the other; the unchanged record untouched.
    let out = migrate(&server, &repo, &[], &input);
    out.expect_code(0);
    let records = out.records();
    assert_eq!(records[here].migrated(DEMO), Vec::<String>::new());
    assert!(records[there]
        .migrated(DEMO)
        .contains(&"catalog.0001_initial".to_string()));
    for record in &records[..2] {
        assert_eq!(record.migrated(SLOW), ["slow.0001_slowly"]);
    }
    assert!(has_products(&a) && has_products(&b));
    assert_eq!(out.json()[2], unchanged, "the unchanged record was touched");
    let stamps = slow_stamps(dir.path());
    let kinds: Vec<&str> = stamps.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        kinds,
        ["start", "end", "start", "end"],
        "overlapping: {stamps:?}"
    );
    assert!(stamps[2].1 >= stamps[1].1, "overlapping: {stamps:?}");
    let logged = events(&repo, "migrate");
    assert_eq!(logged.len(), 4, "{logged:?}");
    let slow_targets: Vec<&str> = logged
        .iter()
        .filter(|e| e.name == SLOW && e.detail == "slow.0001_slowly")
        .map(|e| e.target.as_str())
        .collect();
    assert_eq!(slow_targets.len(), 2);
    assert!(slow_targets.contains(&label(&input[0]).as_str()));
    assert!(slow_targets.contains(&label(&input[1]).as_str()));

    // A second run applies nothing and logs nothing; --check is content.
    let out = migrate(&server, &repo, &["--always"], &input);
    out.expect_code(0);
    for record in out.records() {
        assert_eq!(record.migrated, by_module(&[(DEMO, &[]), (SLOW, &[])]));
    }
    assert_eq!(events(&repo, "migrate").len(), 4);
    let out = migrate(&server, &repo, &["--check"], &input[..2]);
    out.expect_code(0);
    assert_eq!(
        out.records()[1].pending,
        by_module(&[(DEMO, &[]), (SLOW, &[])])
    );

    // --once and a failure: the other target is not migrated and fails too.
    let broken = [
        target(&server, 0, &a, BROKEN),
        target(&server, 1, &b, BROKEN),
    ];
    let out = migrate(&server, &repo, &["--once"], &broken);
    out.expect_code(1);
    let messages: Vec<String> = out.records().iter().map(error_message).collect();
    let refused: Vec<usize> = (0..2)
        .filter(|&i| {
            messages[i].contains("was not migrated here") && messages[i].contains("--once")
        })
        .collect();
    assert_eq!(refused.len(), 1, "{messages:#?}");
    let failed = 1 - refused[0];
    assert!(messages[failed].contains("RuntimeError: ledger.0002_broken fails on purpose"));
    assert!(sqlite_tables(&venvs[refused[0]].join("fixture-ledger.sqlite3")).is_empty());
}

#[test]
fn a_broken_migration_keeps_what_was_applied_and_is_not_reloaded() {
    let server = Sshd::start(1);
    let dir = tempfile::tempdir().unwrap();
    let repo = empty_repo(dir.path());
    let v = dir.path().join("venv");
    shop_venv(&v, &python::python3());
    let reloads = dir.path().join("reloads");
    let reload = |name: &str| format!("echo {name} >> {}", reloads.display());
    // Two targets on one venv, one after the other: the first migrates the
    // demo shop and fails on the broken module, the second finds the demo
    // shop done.
    let mut broken = target(&server, 0, &v, &format!("{DEMO} {BROKEN} {SLOW}"));
    broken.insert("reload".into(), json!(reload("broken")));
    let mut fine = target(&server, 0, &v, DEMO);
    fine.insert("reload".into(), json!(reload("fine")));
    let out = migrate(&server, &repo, &[], &[broken.clone(), fine]);
    out.expect_code(1)
        .expect_stderr("ledger.0002_broken fails on purpose");
    let records = out.records();
    let message = error_message(&records[0]);
    assert!(
        message.starts_with(&label(&broken))
            && message.contains(BROKEN)
            && message.contains("RuntimeError: ledger.0002_broken fails on purpose"),
        "{message}"
    );
    // What was applied before the failure is in the record; the module
    // after the failing one was not tried.
    assert!(records[0]
        .migrated(DEMO)
        .contains(&"catalog.0001_initial".to_string()));
    assert_eq!(records[0].migrated(BROKEN), ["ledger.0001_initial"]);
    assert!(!records[0].migrated.as_ref().unwrap().contains_key(SLOW));
    assert!(sqlite_tables(&v.join("fixture-ledger.sqlite3")).contains(&"ledger_entry".to_string()));
    assert!(records[1].error.is_none(), "{:?}", records[1]);
    assert_eq!(records[1].migrated, by_module(&[(DEMO, &[])]));
    let errors = events(&repo, "error");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].target, label(&broken));
    assert!(errors[0].detail.contains("fails on purpose"));
    assert_eq!(events(&repo, "migrate").len(), 2);

    // vd-reload reloads the target that migrated and leaves the other alone.
    let reloaded = server
        .tool("vd-reload")
        .arg("--repo")
        .arg(&repo)
        .stdin(out.stdout.clone())
        .run();
    reloaded.expect_code(1);
    let after = reloaded.records();
    assert_eq!(
        reloaded.json()[0],
        out.json()[0],
        "the failed target's record was touched"
    );
    assert_eq!(after[1].reloaded, Some(true));
    assert_eq!(fs::read_to_string(&reloads).unwrap(), "fine\n");
}

#[test]
fn bad_settings_and_missing_django_are_errors_naming_the_target() {
    let server = Sshd::start(1);
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("plain");
    venv_with(&python::python3(), &plain);
    let repo = empty_repo(dir.path());
    let pwned = dir.path().join("pwned");
    let input = [
        target(
            &server,
            0,
            &plain,
            &format!("shop;touch {}", pwned.display()),
        ),
        target(&server, 0, &plain, DEMO),
        {
            let mut r = target(&server, 0, &plain, DEMO);
            r.insert("changed".into(), json!("perhaps"));
            r
        },
    ];
    let out = migrate(&server, &repo, &[], &input);
    out.expect_code(1);
    // The last record keeps its `changed` of the wrong type: read raw.
    let messages: Vec<String> = out.json().iter().map(error_message).collect();
    assert!(
        messages[0].contains("is not a Python module name"),
        "{}",
        messages[0]
    );
    assert!(
        messages[0].starts_with(&label(&input[0])),
        "{}",
        messages[0]
    );
    assert!(
        messages[1].contains("bin/django-admin is missing"),
        "{}",
        messages[1]
    );
    assert!(messages[2].contains("field `changed`"), "{}", messages[2]);
    assert!(!pwned.exists());

    // No repository: a setup error before anything runs.
    let out = server
        .tool("vd-migrate")
        .arg("--repo")
        .arg(dir.path().join("nowhere"))
        .stdin(jsonl(&input[1..2]))
        .run();
    out.expect_code(2).expect_stderr("nowhere");
}

#[test]
fn migrate_user_then_venv_user_run_through_sudo() {
    let user = sshd::second_user();
    let server = Sshd::start(1);
    let dir = tempfile::tempdir().unwrap();
    let repo = empty_repo(dir.path());
    let v = dir.path().join("venv");
    shop_venv(&v, &python::interpreter_for(user));
    // The databases go into the venv, and the slow log beside it.
    for path in [dir.path(), v.as_path()] {
        let chmod = Command::new("chmod")
            .arg("0777")
            .arg(path)
            .status()
            .unwrap();
        assert!(chmod.success());
    }
    let mut by_migrate_user = target(&server, 0, &v, DEMO);
    by_migrate_user.insert("migrate_user".into(), json!(user));
    by_migrate_user.insert("venv_user".into(), json!("no-such-user-here"));
    let mut by_venv_user = target(&server, 0, &v, SLOW);
    by_venv_user.insert("venv_user".into(), json!(user));
    let out = migrate(&server, &repo, &[], &[by_migrate_user, by_venv_user]);
    out.expect_code(0);
    let uid = Command::new("id").args(["-u", user]).output().unwrap();
    let uid: u32 = String::from_utf8_lossy(&uid.stdout).trim().parse().unwrap();
    use std::os::unix::fs::MetadataExt;
    for db in ["demo-shop.sqlite3", "fixture-slow.sqlite3"] {
        let owner = fs::metadata(v.join(db)).unwrap().uid();
        assert_eq!(owner, uid, "{db} was not made by {user}");
    }
}
