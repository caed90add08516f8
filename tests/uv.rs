//! vd-push installs with uv where uv can run, and with pip elsewhere: a
//! real uv wheel (fetched once from the package index) in the repository,
//! real venvs of CPython 3.11, 3.7 and 2.7, a real sshd on loopback; and
//! the same venv whichever installer made it.

use crate::push::{assert_ok, log_events, plan, push, target};
use crate::util::python::{
    download, pyenv_python, python27_with_virtualenv, site_packages, venv_of,
};
use crate::util::sshd::{is_root, Sshd};
use crate::util::{repo, stdout_of, targets_from, tool, AsRecord, Record};
use serde_json::json;
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// uv's wheel for this machine, from the package index (cached).
fn uv_wheel() -> PathBuf {
    crate::util::uv::wheel("uv's wheel into the tests' download cache")
}

/// A wheel named like uv's for `platform` whose binary is `script` (a shell
/// script), with a RECORD vd-add takes.
fn fake_uv_wheel(dir: &Path, version: &str, platform: &str, script: &str) -> PathBuf {
    let program = r#"
import base64, hashlib, sys, zipfile
out, version, platform, script = sys.argv[1:]
stem = "uv-" + version
info = stem + ".dist-info/"
files = {
    stem + ".data/scripts/uv": script.encode(),
    info + "METADATA": ("Metadata-Version: 2.1\nName: uv\nVersion: %s\n" % version).encode(),
    info + "WHEEL": ("Wheel-Version: 1.0\nRoot-Is-Purelib: false\nTag: py3-none-%s\n" % platform).encode(),
}
record = ""
for name, data in files.items():
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    record += "%s,sha256=%s,%d\n" % (name, digest, len(data))
files[info + "RECORD"] = (record + info + "RECORD,,\n").encode()
with zipfile.ZipFile(out, "w") as archive:
    for name, data in files.items():
        archive.writestr(name, data)
"#;
    let path = dir.join(format!("uv-{version}-py3-none-{platform}.whl"));
    stdout_of(
        Command::new("python3")
            .args(["-c", program])
            .arg(&path)
            .args([version, platform, script]),
        "write a uv wheel",
    );
    path
}

/// A venv at `dir`/`name` made by `python`, with its own pip.
fn venv_by(python: &str, dir: &Path, name: &str) -> PathBuf {
    let venv = dir.join(name);
    venv_of(python, &venv);
    venv
}

/// The records vd-push wrote for `plans`, which must all succeed; and its
/// stderr.
fn pushed_ok(server: &Sshd, repo: &Path, args: &[&str], plans: &str) -> (Vec<Record>, String) {
    let out = push(server, repo, args, plans);
    out.expect_code(0);
    let records = out.records();
    records.iter().for_each(assert_ok);
    (records, out.stderr)
}

/// `installer` of each record's `pushed`.
fn installers(records: &[Record]) -> Vec<String> {
    records
        .iter()
        .map(|r| r.pushed().installer.clone().unwrap_or_default())
        .collect()
}

/// The release log's `install` events' details, by target venv's last
/// component.
fn install_details(repo: &Path) -> BTreeMap<String, Vec<String>> {
    let mut details: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for event in log_events(repo)
        .into_iter()
        .filter(|e| e.event == "install")
    {
        let venv = event
            .target
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_string();
        details.entry(venv).or_default().push(event.detail);
    }
    details
}

/// `python -c code` in `venv`, its stdout trimmed.
fn run_in(venv: &Path, code: &str) -> String {
    stdout_of(
        Command::new(venv.join("bin/python")).args(["-c", code]),
        &format!("{}: python -c {code}", venv.display()),
    )
    .trim()
    .to_string()
}

/// Where most tests start: a server of `hosts` hosts, a work folder with a
/// wheel cache path, a repository of six 1.16.0 and `wheels`, and
/// `requirements.txt` asking for six.
struct Release {
    server: Sshd,
    dir: tempfile::TempDir,
    cache: PathBuf,
    repo: PathBuf,
    reqs: PathBuf,
}

impl Release {
    fn new(hosts: usize, wheels: &[PathBuf]) -> Release {
        let server = Sshd::start(hosts);
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");
        let mut all = download("six==1.16.0", &["--no-deps"]);
        all.extend_from_slice(wheels);
        let repo = repo(dir.path(), &all);
        let reqs = dir.path().join("requirements.txt");
        fs::write(&reqs, "six==1.16.0\n").unwrap();
        Release {
            server,
            dir,
            cache,
            repo,
            reqs,
        }
    }

    /// The plans of `targets`.
    fn plan(&self, targets: &[crate::push::Target]) -> String {
        plan(&self.server, &self.repo, &self.reqs, false, targets)
    }
}

#[test]
fn auto_installs_with_uv_on_3_8_and_newer_and_with_pip_below_or_where_asked() {
    let Release {
        server,
        dir,
        cache,
        repo,
        reqs,
    } = Release::new(1, &[uv_wheel()]);
    let py311 = pyenv_python("3.11");
    let venvs = [
        venv_by(&py311, dir.path(), "auto-3.11"),
        venv_by(&py311, dir.path(), "pip-3.11"),
        venv_by(&pyenv_python("3.7"), dir.path(), "auto-3.7"),
        venv_by(&python27_with_virtualenv(), dir.path(), "auto-2.7"),
    ];
    let mut targets: Vec<_> = venvs
        .iter()
        .map(|v| target(&server, 0, v, &cache))
        .collect();
    targets[1].insert("installer".into(), json!("pip"));
    let plans = plan(&server, &repo, &reqs, false, &targets);
    // The installer is not a requirement: no venv is planned to get uv.
    assert!(!plans.contains("\"name\":\"uv\""), "{plans}");

    // A dry run shows the uv command it would run, and sends nothing.
    let (dry, _) = pushed_ok(&server, &repo, &["--dry-run"], &plans);
    let commands = dry[0].pushed().commands.clone().unwrap_or_default();
    assert!(
        commands.iter().any(|c| c.contains(
            "/uv pip install --no-config --offline --no-index \
             --no-deps --no-compile-bytecode --link-mode copy --python"
        )),
        "{commands:?}"
    );
    assert!(!cache.exists(), "a dry run made the cache");

    let (records, stderr) = pushed_ok(&server, &repo, &[], &plans);
    assert_eq!(
        installers(&records),
        ["uv", "pip", "pip", "pip"],
        "{stderr}"
    );
    assert!(!stderr.contains("uv cannot run"), "{stderr}");
    // uv's wheel went to the host once, with the first target that needed it.
    let sent: Vec<&Vec<String>> = records.iter().map(|r| &r.pushed().uploaded).collect();
    assert!(sent[0].iter().any(|w| w.starts_with("uv-")), "{sent:?}");
    assert!(
        sent[1..]
            .iter()
            .all(|s| s.iter().all(|w| !w.starts_with("uv-"))),
        "{sent:?}"
    );
    for venv in &venvs {
        assert_eq!(run_in(venv, "import six; print(six.__version__)"), "1.16.0");
    }
    let installer_file = |venv: &Path| {
        fs::read_to_string(site_packages(venv).join("six-1.16.0.dist-info/INSTALLER")).unwrap()
    };
    assert_eq!(installer_file(&venvs[0]).trim(), "uv");
    assert_eq!(installer_file(&venvs[1]).trim(), "pip");
    let details = install_details(&repo);
    assert_eq!(details["auto-3.11"], ["install with uv"]);
    for pip in ["pip-3.11", "auto-3.7", "auto-2.7"] {
        assert_eq!(details[pip], ["install with pip"], "{pip}");
    }
}

#[test]
fn installer_uv_where_uv_cannot_run_is_an_error_naming_why() {
    // A repository without uv first.
    let Release {
        server,
        dir,
        cache,
        repo: bare,
        reqs,
    } = Release::new(1, &[]);
    let py37 = venv_by(&pyenv_python("3.7"), dir.path(), "old");
    let py311 = venv_by(&pyenv_python("3.11"), dir.path(), "new");
    let targets = [
        target(&server, 0, &py37, &cache),
        target(&server, 0, &py311, &cache),
    ];

    // Without uv in the repository, `--installer uv` fails every target.
    let plans = plan(&server, &bare, &reqs, false, &targets);
    let out = push(&server, &bare, &["--installer", "uv"], &plans);
    out.expect_code(1);
    let errors: Vec<String> = out
        .records()
        .iter()
        .map(|r| r.error_message().to_string())
        .collect();
    assert!(
        errors[0].contains("installer uv: Python 3.7."),
        "{errors:?}"
    );
    assert!(
        errors[0].contains("older than uv installs into (3.8)"),
        "{errors:?}"
    );
    assert!(
        errors[1].contains("installer uv: the repository holds no uv wheel"),
        "{errors:?}"
    );
    assert_eq!(
        run_in(
            &py311,
            "import importlib.util as u; print(u.find_spec('six'))"
        ),
        "None"
    );

    // With uv in the repository, the 3.11 venv gets it; the 3.7 one is
    // still an error, and nothing was installed into it.
    let mut wheels = download("six==1.16.0", &["--no-deps"]);
    wheels.push(uv_wheel());
    let repo = repo(&dir.path().join("with-uv"), &wheels);
    let out = push(&server, &repo, &["--installer", "uv"], &plans);
    out.expect_code(1);
    let records = out.records();
    assert!(records[0]
        .error_message()
        .contains("installer uv: Python 3.7."));
    assert_ok(&records[1]);
    assert_eq!(records[1].pushed().installer.as_deref(), Some("uv"));
    assert_eq!(
        run_in(&py37, "import pkgutil; print(pkgutil.find_loader('six'))"),
        "None"
    );

    // `--installer pip` over a target's `installer=uv`.
    let mut forced = targets[0].clone();
    forced.insert("installer".into(), json!("uv"));
    let plans = plan(&server, &repo, &reqs, false, &[forced]);
    let (records, _) = pushed_ok(&server, &repo, &["--installer", "pip"], &plans);
    assert_eq!(installers(&records), ["pip"]);
}

#[test]
fn bad_installer_values_are_errors_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let out = targets_from(
        dir.path(),
        "targets.csv",
        "host,venv,installer\nweb1,/srv/a,uv\nweb2,/srv/b,conda\nweb3,/srv/c,\n",
        &[],
    );
    out.expect_code(1);
    let records = out.records();
    assert!(records[0].error().is_none() && records[2].error().is_none());
    let message = records[1].error_message();
    assert!(
        message.contains("targets.csv line 3")
            && message
                .contains("field `installer`: installer \"conda\" must be `auto`, `uv` or `pip`"),
        "{message}"
    );

    let out = tool("vd-push")
        .arg("--repo")
        .arg(dir.path())
        .args(["--installer", "conda"])
        .stdin("")
        .run();
    out.expect_code(2);
    assert!(
        out.stderr.contains("'conda'") && out.stderr.contains("--installer"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("[possible values: auto, uv, pip]"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_uv_that_does_not_start_falls_back_to_pip_with_one_warning_per_host() {
    let made = tempfile::tempdir().unwrap();
    let wheels_dir = made.path();
    let broken = "#!/bin/sh\necho 'uv: /lib/libc.so.6: version GLIBC_2.99 not found' >&2\nexit 1\n";
    let fine = "#!/bin/sh\necho 'uv 99.0.0'\n";
    let wheels = [
        fake_uv_wheel(wheels_dir, "0.13.9", "manylinux_2_17_x86_64", broken),
        // Newer, but for another platform: never chosen here.
        fake_uv_wheel(wheels_dir, "99.0.0", "macosx_11_0_arm64", fine),
    ];
    let release = Release::new(2, &wheels);
    let (server, dir, cache, repo) = (&release.server, &release.dir, &release.cache, &release.repo);
    let py311 = pyenv_python("3.11");
    let mut targets = Vec::new();
    for (host, name) in [(0, "a1"), (0, "a2"), (1, "b1"), (1, "b2")] {
        let venv = venv_by(&py311, dir.path(), name);
        targets.push(target(server, host, &venv, cache));
    }
    let mut insisting = targets.pop().unwrap();
    insisting.insert("installer".into(), json!("uv"));
    targets.push(insisting);
    let plans = release.plan(&targets);

    let out = push(server, repo, &[], &plans);
    out.expect_code(1);
    let records = out.records();
    for record in &records[..3] {
        assert_ok(record);
        assert_eq!(record.pushed().installer.as_deref(), Some("pip"));
    }
    let message = records[3].error_message();
    assert!(
        message.contains("installer uv: uv cannot run on")
            && message.contains("--version failed (exit status 1)")
            && message.contains("GLIBC_2.99 not found"),
        "{message}"
    );
    let warnings: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.contains("uv cannot run there, so pip installs"))
        .collect();
    assert_eq!(warnings.len(), 2, "one per host: {}", out.stderr);
    for (warning, host) in warnings.iter().zip([server.host(0), server.host(1)]) {
        assert!(warning.contains("GLIBC_2.99 not found"), "{warning}");
        assert!(
            out.stderr
                .contains(&format!("vd-push: {host}: uv cannot run")),
            "{}",
            out.stderr
        );
    }
}

/// A tmpfs mounted noexec at `path`, unmounted when dropped.
struct NoexecMount(PathBuf);

impl NoexecMount {
    fn new(path: &Path) -> NoexecMount {
        fs::create_dir_all(path).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "noexec,size=128m", "tmpfs"])
            .arg(path)
            .status()
            .expect("cannot run mount");
        assert!(
            status.success(),
            "mount -o noexec {} failed",
            path.display()
        );
        NoexecMount(path.to_path_buf())
    }
}

impl Drop for NoexecMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_cache_mounted_noexec_falls_back_to_pip_saying_so() {
    assert!(
        is_root(),
        "this test mounts a tmpfs and needs root (CI runs the suite as root)"
    );
    let release = Release::new(1, &[uv_wheel()]);
    let mount = NoexecMount::new(&release.dir.path().join("noexec"));
    let cache = mount.0.join("cache");
    let venv = venv_by(&pyenv_python("3.11"), release.dir.path(), "venv");
    let plans = release.plan(&[target(&release.server, 0, &venv, &cache)]);
    let (records, stderr) = pushed_ok(&release.server, &release.repo, &[], &plans);
    assert_eq!(installers(&records), ["pip"]);
    assert!(
        stderr.contains("uv cannot run there, so pip installs") && stderr.contains("noexec"),
        "{stderr}"
    );
    assert_eq!(
        run_in(&venv, "import six; print(six.__version__)"),
        "1.16.0"
    );
}

/// Every file under `root` (relative path → sha256), but bytecode: pip and
/// uv compile it alike, but a .pyc holds its source's mtime, which differs.
fn files_of(root: &Path) -> BTreeMap<String, String> {
    let listing = stdout_of(
        Command::new("python3")
            .args([
                "-c",
                "import hashlib, os, sys\n\
             root = sys.argv[1]\n\
             for d, _, names in os.walk(root):\n\
             \x20   for n in names:\n\
             \x20       p = os.path.join(d, n)\n\
             \x20       h = hashlib.sha256(open(p, 'rb').read()).hexdigest()\n\
             \x20       print(os.path.relpath(p, root) + ' ' + h)\n",
            ])
            .arg(root),
        "list a venv's files",
    );
    listing
        .lines()
        .filter_map(|l| l.rsplit_once(' '))
        .map(|(p, h)| (p.to_string(), h.to_string()))
        .collect()
}

/// The rows of every RECORD under `site` (dist-info/path → hash column).
fn records_of(site: &Path) -> BTreeMap<String, String> {
    let mut rows = BTreeMap::new();
    for entry in fs::read_dir(site).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Ok(text) = fs::read_to_string(entry.path().join("RECORD")) else {
            continue;
        };
        for line in text.lines() {
            let mut cells = line.split(',');
            let path = cells.next().unwrap_or_default();
            let hash = cells.next().unwrap_or_default();
            rows.insert(format!("{name}: {path}"), hash.to_string());
        }
    }
    rows
}

/// What legitimately differs between a venv pip made and one uv made,
/// all of it naming or serving the installer: the INSTALLER file (`pip`
/// or `uv`), uv's `uv_cache.json` beside it, the console scripts in bin/
/// (each installer writes its own launcher), uv's `.lock` at the venv's
/// root, bytecode (pip lists each .pyc in RECORD, uv does not; a .pyc holds
/// its source's mtime either way), RECORD itself, and the RECORD rows of
/// `direct_url.json` (see [`comparable`]).
fn legitimately_differs(path: &str) -> bool {
    path.ends_with("/INSTALLER")
        || path.ends_with("/uv_cache.json")
        || path.ends_with("/RECORD")
        || path.ends_with("/direct_url.json")
        || path.contains("__pycache__")
        || path.ends_with(".pyc")
        || path.contains("../../../bin/")
        || path.starts_with("bin/")
        || path == ".lock"
        || path == ".vd-lock"
        || path == "pyvenv.cfg"
}

/// The `url` a `direct_url.json` names: pip adds the wheel's hash to it,
/// uv does not, and both name the same file of the host's cache.
fn direct_url(file: &Path) -> String {
    let text = fs::read_to_string(file).unwrap();
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    value["url"].as_str().unwrap_or_default().to_string()
}

/// Fail naming each key `pip` and `uv` do not agree on.
#[track_caller]
fn assert_same(pip: &BTreeMap<String, String>, uv: &BTreeMap<String, String>, what: &str) {
    let keys: std::collections::BTreeSet<&String> = pip.keys().chain(uv.keys()).collect();
    let differ: Vec<String> = keys
        .into_iter()
        .filter(|k| pip.get(*k) != uv.get(*k))
        .map(|k| format!("{k}: pip {:?}, uv {:?}", pip.get(k), uv.get(k)))
        .collect();
    assert!(differ.is_empty(), "{what} differ:\n{}", differ.join("\n"));
}

/// The files and RECORD rows of a venv, without what legitimately differs.
fn comparable(venv: &Path) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
    let mut files = files_of(venv);
    for (path, value) in files.iter_mut() {
        if path.ends_with("/direct_url.json") {
            *value = direct_url(&venv.join(path.as_str()));
        }
    }
    files.retain(|p, _| !legitimately_differs(p) || p.ends_with("/direct_url.json"));
    let mut rows = records_of(&site_packages(venv));
    rows.retain(|p, _| !legitimately_differs(p));
    (files, rows)
}

#[test]
fn pip_and_uv_make_the_same_venv_of_a_django_closure() {
    let server = Sshd::start(1);
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let mut wheels = download("django==4.2.16", &[]);
    wheels.push(uv_wheel());
    let repo = repo(dir.path(), &wheels);
    let reqs = dir.path().join("requirements.txt");
    fs::write(&reqs, "django==4.2.16\n").unwrap();
    // Both at one path's length under two folders, so that their scripts'
    // #! lines and paths compare.
    let py311 = pyenv_python("3.11");
    let by_pip = venv_by(&py311, &dir.path().join("pip"), "venv");
    let by_uv = venv_by(&py311, &dir.path().join("uvv"), "venv");
    let mut targets = vec![
        target(&server, 0, &by_pip, &cache),
        target(&server, 0, &by_uv, &cache),
    ];
    targets[0].insert("installer".into(), json!("pip"));
    targets[1].insert("installer".into(), json!("uv"));
    let plans = plan(&server, &repo, &reqs, false, &targets);
    let (records, _) = pushed_ok(&server, &repo, &[], &plans);
    assert_eq!(installers(&records), ["pip", "uv"]);
    assert_eq!(records[0].installed(), records[1].installed());
    assert_eq!(records[1].installed()["django"], "4.2.16");

    let (pip_files, pip_rows) = comparable(&by_pip);
    let (uv_files, uv_rows) = comparable(&by_uv);
    assert!(pip_files.keys().any(|p| p.ends_with("django/__init__.py")));
    assert!(pip_rows
        .keys()
        .any(|p| p.ends_with("django/db/models/base.py")));
    assert_same(
        &pip_files,
        &uv_files,
        "the files of the venvs pip and uv made",
    );
    assert_same(
        &pip_rows,
        &uv_rows,
        "the RECORD rows of the venvs pip and uv made",
    );
    // Both compiled bytecode, as pip does.
    for venv in [&by_pip, &by_uv] {
        let compiled = site_packages(venv).join("django/__pycache__");
        assert!(
            fs::read_dir(&compiled).is_ok_and(|mut d| d.next().is_some()),
            "{}",
            compiled.display()
        );
        // The console script runs.
        let version = stdout_of(
            Command::new(venv.join("bin/django-admin")).arg("--version"),
            "django-admin",
        );
        assert_eq!(version.trim(), "4.2.16");
    }

    // Removals leave nothing behind: with only sqlparse asked for, --exact
    // removes Django and asgiref, and the venvs are alike again, with no
    // file of either left.
    fs::write(&reqs, "sqlparse\n").unwrap();
    let plans = plan(&server, &repo, &reqs, true, &targets);
    let (records, _) = pushed_ok(&server, &repo, &[], &plans);
    assert_eq!(installers(&records), ["pip", "uv"]);
    assert!(records[1].pushed().removed.contains(&"django".to_string()));
    let (pip_files, _) = comparable(&by_pip);
    let (uv_files, _) = comparable(&by_uv);
    assert_same(&pip_files, &uv_files, "the venvs after the removal");
    let all_uv = files_of(&by_uv);
    let left: Vec<&String> = all_uv
        .keys()
        .filter(|p| p.contains("/django") || p.contains("asgiref") || p.ends_with("django-admin"))
        .collect();
    assert!(left.is_empty(), "uv's removal left {left:?}");
}

#[test]
fn a_new_generation_is_built_with_uv() {
    let release = Release::new(1, &[uv_wheel()]);
    let (server, repo) = (&release.server, &release.repo);
    let venv = release.dir.path().join("shop");
    let mut shop = target(server, 0, &venv, &release.cache);
    shop.insert("generations".into(), json!(2));
    shop.insert("python".into(), json!(pyenv_python("3.11")));
    let plans = release.plan(&[shop]);
    let (records, _) = pushed_ok(server, repo, &["--create"], &plans);
    assert_eq!(installers(&records), ["uv"]);
    assert!(fs::symlink_metadata(&venv)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(
        run_in(&venv, "import six; print(six.__version__)"),
        "1.16.0"
    );
    let details = install_details(repo);
    assert_eq!(details["shop"], ["install with uv in generation 1"]);
}
