//! vd-diff's resolver on real wheels: the closure of a Django project
//! fetched from the package index once, compared with pip's own choice on
//! the same repository; dependencies kept, upgraded and removed; conflicts
//! explained; and the pipeline installing what a one-line requirements file
//! names, rolled back with --lock.

use crate::util::python::{self, download, download_with, pip_list, python3, Project};
use crate::util::record::Action;
use crate::util::sshd::Sshd;
use crate::util::{
    assert_contains, changes, error_message as error, jsonl, lines_of, repo, stdout_of, tool,
    Outcome, Record,
};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A target record as a test builds it, to feed a tool.
pub(crate) type Target = Map<String, Value>;

/// The newest CPython `version` (like `3.8`) pyenv has here.
fn pyenv_python(version: &str) -> String {
    let root = Command::new("pyenv")
        .arg("root")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .or_else(|| std::env::var("HOME").ok().map(|h| format!("{h}/.pyenv")))
        .unwrap_or_default();
    let prefix = format!("{version}.");
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir(Path::new(&root).join("versions"))
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let patch = name.strip_prefix(&prefix)?.parse().ok()?;
            Some((patch, e.path().join("bin/python")))
        })
        .filter(|(_, p)| p.exists())
        .collect();
    found.sort();
    match found.pop() {
        Some((_, path)) => path.display().to_string(),
        None => panic!(
            "this test needs CPython {version} from pyenv (root {root:?}): install it with `pyenv install {version}`"
        ),
    }
}

/// The interpreter's facts as vd-freeze's remote script reports them, for a
/// venv still to be created.
pub(crate) fn facts(python: &str, host: &str) -> Target {
    let mut record = python::freeze_script(Path::new(python), &["--no-installed"]);
    record.host = Some(host.into());
    record.venv = Some("/srv/shop/venv".into());
    record.installed = Some(BTreeMap::new());
    record.venv_exists = Some(true);
    record.to_json()
}

fn with_installed(mut record: Target, installed: &[(&str, &str)]) -> Target {
    let map: Map<String, Value> = installed
        .iter()
        .map(|(n, v)| (n.to_string(), json!(v)))
        .collect();
    record.insert("installed".into(), Value::Object(map));
    record
}

pub(crate) fn diff(repo: &Path, args: &[&str], records: &[Target]) -> Outcome {
    tool("vd-diff")
        .arg("--repo")
        .arg(repo)
        .args(args)
        .stdin(jsonl(records))
        .run()
}

pub(crate) fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// `{name: (to, wheel)}` of a plan's installs and upgrades.
pub(crate) fn planned(record: &Record) -> BTreeMap<String, (String, String)> {
    record
        .plan()
        .iter()
        .filter(|c| c.action != Action::Remove)
        .map(|c| {
            let to = c.to.clone().expect("an install without a version");
            let wheel = c.wheel.clone().expect("an install without a wheel");
            (c.name.clone(), (to, wheel))
        })
        .collect()
}

/// What pip itself would install from `repo` for `requirements`, on
/// `python`: `{name: (version, wheel file)}`.
pub(crate) fn pip_choice(
    python: &str,
    repo: &Path,
    requirements: &Path,
) -> BTreeMap<String, (String, String)> {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.json");
    stdout_of(
        Command::new(python)
            .args(["-m", "pip", "--disable-pip-version-check", "install", "-q"])
            .args(["--dry-run", "--ignore-installed", "--no-index", "--report"])
            .arg(&report)
            .arg("--find-links")
            .arg(repo)
            .arg("-r")
            .arg(requirements),
        &format!("pip install --dry-run with {python}"),
    );
    let report: PipReport = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    report
        .install
        .into_iter()
        .map(|item| {
            let file = item
                .download_info
                .url
                .rsplit('/')
                .next()
                .unwrap()
                .to_string();
            let name = python::normalize(&item.metadata.name);
            (name, (item.metadata.version, file))
        })
        .collect()
}

/// The part of pip's installation report (`pip install --report`) read here.
#[derive(serde::Deserialize)]
struct PipReport {
    install: Vec<PipInstall>,
}

#[derive(serde::Deserialize)]
struct PipInstall {
    download_info: PipDownload,
    metadata: PipMetadata,
}

#[derive(serde::Deserialize)]
struct PipDownload {
    url: String,
}

#[derive(serde::Deserialize)]
struct PipMetadata {
    name: String,
    version: String,
}

/// A Django project's closure for two interpreters: Django with argon2,
/// Django REST framework, Celery with Redis, and Pillow (manylinux wheels),
/// each fetched once for this machine's Python and once for Python 3.8.
fn shop_wheels() -> Vec<PathBuf> {
    let mut wheels = download("django[argon2]", &SHOP_TOO);
    wheels.extend(older_shop_wheels());
    wheels
}

const SHOP_TOO: [&str; 3] = ["djangorestframework", "celery[redis]", "pillow"];

/// The same project's closure for Python 3.8, fetched by its own pip.
fn older_shop_wheels() -> Vec<PathBuf> {
    download_with(&pyenv_python("3.8"), "django[argon2]", &SHOP_TOO)
}

const SHOP: &str = "django[argon2]\ndjangorestframework\ncelery[redis]\npillow\n";

#[test]
fn the_closure_equals_pips_choice_on_each_interpreter() {
    let dir = tempfile::tempdir().unwrap();
    let repo = repo(dir.path(), &shop_wheels());
    let reqs = write(dir.path(), "requirements.txt", SHOP);
    let interpreters = [python3(), pyenv_python("3.8")];
    let records: Vec<Target> = interpreters
        .iter()
        .enumerate()
        .map(|(i, p)| facts(p, &format!("host{i}")))
        .collect();
    // One run, two targets: the markers and tags of each decide.
    let out = diff(&repo, &[reqs.to_str().unwrap()], &records);
    out.expect_code(0);
    let planned_per_target: Vec<_> = out.records().iter().map(planned).collect();
    for (python, ours) in interpreters.iter().zip(&planned_per_target) {
        let pips = pip_choice(python, &repo, &reqs);
        assert!(pips.len() > 15, "a real closure: {pips:?}");
        assert_eq!(*ours, pips, "vd-diff and pip on {python}");
        for name in ["django", "asgiref", "redis", "argon2-cffi-bindings", "cffi"] {
            assert!(ours.contains_key(name), "{name} in {ours:?}");
        }
    }
    assert_ne!(
        planned_per_target[0].get("django"),
        planned_per_target[1].get("django"),
        "Django 5 needs Python 3.10; the 3.8 target gets 4.2"
    );
}

#[test]
fn a_conflict_and_wheels_for_another_interpreter_are_explained() {
    let dir = tempfile::tempdir().unwrap();
    let repo = repo(dir.path(), &shop_wheels());
    let target = facts(&python3(), "web1");
    // Celery 5.5 needs kombu older than 5.6.
    let out = diff(
        &repo,
        &[],
        &[with_packages(&target, &["celery<5.6", "kombu>=5.7"])],
    );
    out.expect_code(1);
    let message = error(&out.json()[0]);
    assert_contains(
        &message,
        &[
            "cannot resolve the requirements: Because ",
            "requires kombu >=5.5.2, <5.6",
            "`kombu>=5.7` (field `packages`)",
            "`celery<5.6` (field `packages`)",
            "the requirements cannot all be met",
        ],
    );

    // Only Python 3.8's wheels: the dependency with a binary wheel for 3.8
    // alone is named, with its file.
    let dir = tempfile::tempdir().unwrap();
    let older = older_shop_wheels();
    let cffi = older
        .iter()
        .map(|w| w.file_name().unwrap().to_str().unwrap().to_string())
        .find(|f| f.starts_with("cffi-"))
        .expect("a cffi wheel for 3.8");
    let repo = repo_of(dir.path(), &older);
    let out = diff(&repo, &[], &[with_packages(&target, &["argon2-cffi"])]);
    out.expect_code(1);
    assert_contains(
        &error(&out.json()[0]),
        &[
            "requires cffi",
            "has wheels only for other interpreters",
            &cffi,
            "Python 3.",
        ],
    );
}

fn repo_of(dir: &Path, wheels: &[PathBuf]) -> PathBuf {
    repo(dir, wheels)
}

fn with_packages(target: &Target, packages: &[&str]) -> Target {
    let mut r = target.clone();
    r.insert("packages".into(), json!(packages));
    r
}

/// app 1.0 needs helper<2 and old-dep; app 2.0 needs helper>=1.5 and new-dep.
fn app_wheels() -> Vec<PathBuf> {
    vec![
        Project::new("vdr-app", "1.0")
            .requires("vdr-helper<2")
            .requires("vdr-old-dep")
            .build(),
        Project::new("vdr-app", "2.0")
            .requires("vdr-helper>=1.5")
            .requires("vdr-new-dep")
            .extra("cache", &["vdr-cache>=1"])
            .build(),
        Project::new("vdr-helper", "1.0").build(),
        Project::new("vdr-helper", "1.5").build(),
        Project::new("vdr-helper", "2.0").build(),
        Project::new("vdr-old-dep", "1.0").build(),
        Project::new("vdr-new-dep", "1.0").build(),
        Project::new("vdr-cache", "1.0").build(),
    ]
}

#[test]
fn dependencies_kept_upgraded_and_removed() {
    let dir = tempfile::tempdir().unwrap();
    let repo = repo(dir.path(), &app_wheels());
    let base = facts(&python3(), "web1");
    let at = |installed: &[(&str, &str)]| {
        with_packages(&with_installed(base.clone(), installed), &["vdr-app"])
    };
    let records = [
        // helper 1.5 satisfies app 2.0: kept (pip's only-if-needed).
        at(&[
            ("vdr-app", "1.0"),
            ("vdr-helper", "1.5"),
            ("vdr-old-dep", "1.0"),
        ]),
        // helper 1.0 does not: upgraded, to the highest.
        at(&[
            ("vdr-app", "1.0"),
            ("vdr-helper", "1.0"),
            ("vdr-old-dep", "1.0"),
        ]),
    ];
    let out = diff(&repo, &[], &records);
    out.expect_code(0);
    let r = out.json();
    assert_eq!(
        changes(&r[0]),
        ["vdr-app upgrade 1.0 2.0", "vdr-new-dep install - 1.0"]
    );
    assert_eq!(
        changes(&r[1]),
        [
            "vdr-app upgrade 1.0 2.0",
            "vdr-helper upgrade 1.0 2.0",
            "vdr-new-dep install - 1.0"
        ]
    );

    // --upgrade-deps: the highest for dependencies too; --exact: the
    // dependency app 2.0 dropped goes.
    let out = diff(&repo, &["--upgrade-deps", "--exact"], &records[..1]);
    out.expect_code(0);
    assert_eq!(
        changes(&out.json()[0]),
        [
            "vdr-app upgrade 1.0 2.0",
            "vdr-helper upgrade 1.5 2.0",
            "vdr-new-dep install - 1.0",
            "vdr-old-dep remove 1.0 -"
        ]
    );

    // An extra, asked for on the requirement line.
    let out = diff(&repo, &[], &[with_packages(&base, &["vdr-app[cache]"])]);
    out.expect_code(0);
    assert_eq!(
        changes(&out.json()[0]),
        [
            "vdr-app install - 2.0",
            "vdr-cache install - 1.0",
            "vdr-helper install - 2.0",
            "vdr-new-dep install - 1.0"
        ]
    );
}

#[test]
fn check_exits_one_on_drift_zero_in_sync_and_two_on_errors() {
    let dir = tempfile::tempdir().unwrap();
    let repo = repo(dir.path(), &app_wheels());
    let reqs = write(dir.path(), "req.txt", "vdr-app==1.0\n");
    let base = facts(&python3(), "web1");
    let synced = with_installed(
        base.clone(),
        &[
            ("vdr-app", "1.0"),
            ("vdr-helper", "1.5"),
            ("vdr-old-dep", "1.0"),
        ],
    );
    let behind = with_installed(base.clone(), &[("vdr-app", "1.0")]);
    let args = ["--check", reqs.to_str().unwrap()];
    diff(&repo, &args, &[synced.clone(), synced.clone()]).expect_code(0);
    diff(&repo, &args, &[synced.clone(), behind.clone()]).expect_code(1);
    let mut broken = synced.clone();
    broken.remove("python");
    diff(&repo, &args, &[behind.clone(), broken]).expect_code(2);
    // Without --check a plan that is not empty is no failure.
    diff(&repo, &[reqs.to_str().unwrap()], &[behind]).expect_code(0);
}

/// A target on the test sshd whose venv vd-push creates, with its wheel
/// cache in the test's directory.
fn remote_target(server: &Sshd, dir: &Path, venv: &str) -> Target {
    let mut t = server.target(0, &dir.join(venv));
    t.insert(
        "cache".into(),
        json!(dir.join("cache").display().to_string()),
    );
    t.insert(
        "python".into(),
        json!(python::real_executable(&python3()).unwrap()),
    );
    t
}

/// vd-freeze of `targets`, its stdout.
fn freeze(server: &Sshd, targets: &[Target]) -> String {
    let out = server.tool("vd-freeze").stdin(jsonl(targets)).run();
    out.expect_code(0);
    out.stdout
}

/// vd-diff ARGS over `frozen`, then vd-push --create of the plans.
fn deploy(server: &Sshd, repo: &Path, args: &[&str], frozen: &str) -> Vec<Record> {
    let planned = tool("vd-diff")
        .arg("--repo")
        .arg(repo)
        .args(args)
        .stdin(frozen)
        .run();
    planned.expect_code(0);
    let pushed = server
        .tool("vd-push")
        .arg("--repo")
        .arg(repo)
        .arg("--create")
        .stdin(planned.stdout)
        .run();
    pushed.expect_code(0);
    pushed.records()
}

fn pip_check(venv: &Path) {
    stdout_of(
        Command::new(venv.join("bin/python")).args([
            "-m",
            "pip",
            "--disable-pip-version-check",
            "check",
        ]),
        &format!("pip check in {}", venv.display()),
    );
}

#[test]
fn one_line_requirements_install_django_and_every_dependency() {
    let server = Sshd::start(1);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let wheels = download("Django>=4.2,<6", &[]);
    let repo = repo(d, &wheels);
    let reqs = write(d, "requirements.txt", "django\n");
    let target = remote_target(&server, d, "shop");
    let records = deploy(
        &server,
        &repo,
        &[reqs.to_str().unwrap()],
        &freeze(&server, std::slice::from_ref(&target)),
    );
    assert!(records[0].error.is_none(), "{:?}", records[0]);
    let venv = d.join("shop");
    let installed = pip_list(&venv);
    // Every wheel of the download is Django's closure on this interpreter.
    for wheel in &wheels {
        let name = vd::wheel::WheelName::parse(wheel.to_str().unwrap()).unwrap();
        assert_eq!(
            installed.get(&name.name),
            Some(&name.version.to_string()),
            "{installed:?}"
        );
    }
    pip_check(&venv);
}

#[test]
fn lock_rolls_a_venv_back_to_a_saved_freeze() {
    let server = Sshd::start(1);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let repo = repo(d, &app_wheels());
    let target = remote_target(&server, d, "app");
    let venv = d.join("app");
    let first = write(d, "first.txt", "vdr-app==1.0\n");
    let second = write(d, "second.txt", "vdr-app\n");

    let frozen = freeze(&server, std::slice::from_ref(&target));
    deploy(&server, &repo, &[first.to_str().unwrap()], &frozen);
    let saved = freeze(&server, std::slice::from_ref(&target));
    let saved_file = write(d, "before.jsonl", &saved);
    let before = pip_list(&venv);
    assert_eq!(before["vdr-helper"], "1.5");
    assert_eq!(before["vdr-old-dep"], "1.0");

    let frozen = freeze(&server, std::slice::from_ref(&target));
    deploy(&server, &repo, &[second.to_str().unwrap()], &frozen);
    assert_eq!(pip_list(&venv)["vdr-app"], "2.0");

    let frozen = freeze(&server, std::slice::from_ref(&target));
    let records = deploy(
        &server,
        &repo,
        &["--lock", saved_file.to_str().unwrap()],
        &frozen,
    );
    assert!(records[0].error.is_none(), "{:?}", records[0]);
    assert_eq!(
        pip_list(&venv),
        before,
        "the venv is its saved freeze again"
    );
    pip_check(&venv);

    // A target the lock does not know, and a saved version the repository
    // does not have, are errors naming them.
    let other = remote_target(&server, d, "other");
    let mut frozen_other = freeze(&server, std::slice::from_ref(&other));
    frozen_other.push_str(&saved.replace("\"vdr-helper\":\"1.5\"", "\"vdr-helper\":\"1.2\""));
    let bad_lock = write(
        d,
        "bad.jsonl",
        &saved.replace("\"vdr-helper\":\"1.5\"", "\"vdr-helper\":\"0.5\""),
    );
    let out = tool("vd-diff")
        .arg("--repo")
        .arg(&repo)
        .arg("--lock")
        .arg(&bad_lock)
        .stdin(frozen_other)
        .run();
    out.expect_code(1);
    let r = out.json();
    assert_contains(
        &error(&r[0]),
        &["bad.jsonl has no saved record of", "/other"],
    );
    assert_contains(
        &error(&r[1]),
        &["the repository has no vdr-helper ==0.5", "bad.jsonl line 1"],
    );
}

#[test]
fn macos_platform_tags_are_packagings_ladder() {
    // packaging computes the ladder from the version and CPU it is given,
    // on any system: pip's vendored copy is what pip installs by.
    for (version, arch) in [
        ((14, 2), "arm64"),
        ((14, 2), "x86_64"),
        ((11, 0), "arm64"),
        ((10, 15), "x86_64"),
        ((10, 9), "i386"),
    ] {
        let code = format!(
            "from pip._vendor.packaging.tags import mac_platforms\nfor p in mac_platforms({version:?}, {arch:?}): print(p)"
        );
        let packaging = lines_of(
            Command::new(python3()).args(["-c", &code]),
            "pip's vendored packaging",
        );
        assert_eq!(
            vd::tags::mac_platforms(version, arch),
            packaging,
            "macOS {version:?} {arch}"
        );
    }
}
