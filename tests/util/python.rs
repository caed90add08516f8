//! Real Python things for the tests: wheels built by `pip wheel` from small
//! generated projects, and published wheels fetched once with `pip download`.
//! Both are cached under the target directory, so only a first run pays.

use super::{cache_dir, lines_of, stdout_of, Record};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// Serializes pip runs: pip's own cache is not safe against itself.
static PIP: Mutex<()> = Mutex::new(());

/// The Python used for building and for test virtualenvs.
pub fn python3() -> String {
    std::env::var("VD_TEST_PYTHON").unwrap_or_else(|_| "python3".to_string())
}

#[track_caller]
fn run_ok(command: &mut Command, what: &str) {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}; install python3 with venv and pip (Debian: apt-get install python3-venv python3-pip)"));
    if !out.status.success() {
        panic!(
            "{what} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Whether the cached venv at `venv` was made there. A venv's scripts name
/// its own path, so one copied along with a build directory from elsewhere
/// is made again rather than used.
fn made_here(venv: &Path) -> bool {
    std::fs::read_to_string(venv.join(".ready")).is_ok_and(|p| Path::new(&p) == venv)
}

/// Mark the cached venv at `venv` as complete, made at this path.
fn mark_made(venv: &Path) {
    std::fs::write(venv.join(".ready"), venv.as_os_str().as_encoded_bytes()).unwrap();
}

/// A virtualenv with setuptools and wheel, for building fixture wheels
/// without build isolation (fast, and one download for the whole suite).
fn builder() -> PathBuf {
    let venv = cache_dir().join("builder-venv");
    if !made_here(&venv) {
        let _ = std::fs::remove_dir_all(&venv);
        run_ok(
            Command::new(python3()).args(["-m", "venv"]).arg(&venv),
            "python3 -m venv (Debian: apt-get install python3-venv)",
        );
        run_ok(
            Command::new(venv.join("bin/pip")).args(["install", "-q", "setuptools>=68", "wheel"]),
            "pip install setuptools wheel (needs the package index)",
        );
        mark_made(&venv);
    }
    venv
}

/// A fixture project to build into a wheel.
#[derive(Debug, Clone, Default)]
pub struct Project {
    pub name: String,
    pub version: String,
    pub requires: Vec<String>,
    /// `(extra, requirements)`.
    pub extras: Vec<(String, Vec<String>)>,
    pub requires_python: Option<String>,
    /// Bytes of incompressible text in the module, for a large wheel.
    pub payload: usize,
}

impl Project {
    pub fn new(name: &str, version: &str) -> Project {
        Project {
            name: name.to_string(),
            version: version.to_string(),
            ..Project::default()
        }
    }

    pub fn requires(mut self, req: &str) -> Project {
        self.requires.push(req.to_string());
        self
    }

    pub fn extra(mut self, extra: &str, reqs: &[&str]) -> Project {
        self.extras.push((
            extra.to_string(),
            reqs.iter().map(|r| r.to_string()).collect(),
        ));
        self
    }

    /// Make the wheel about `bytes` large (for transfers worth cutting).
    pub fn payload(mut self, bytes: usize) -> Project {
        self.payload = bytes;
        self
    }

    fn pyproject(&self) -> String {
        let quote = |items: &[String]| {
            items
                .iter()
                .map(|i| format!("{i:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut text = format!(
            "[build-system]\nrequires = [\"setuptools\"]\nbuild-backend = \"setuptools.build_meta\"\n\n[project]\nname = {:?}\nversion = {:?}\ndependencies = [{}]\n",
            self.name,
            self.version,
            quote(&self.requires)
        );
        if let Some(rp) = &self.requires_python {
            text.push_str(&format!("requires-python = {rp:?}\n"));
        }
        if !self.extras.is_empty() {
            text.push_str("\n[project.optional-dependencies]\n");
            for (extra, reqs) in &self.extras {
                text.push_str(&format!("{extra} = [{}]\n", quote(reqs)));
            }
        }
        text.push_str(&format!(
            "\n[tool.setuptools]\npy-modules = [{:?}]\n",
            self.module()
        ));
        text
    }

    fn module(&self) -> String {
        self.name.to_ascii_lowercase().replace(['-', '.'], "_")
    }

    /// Build with `pip wheel` (cached by the project's whole definition) and
    /// return the wheel's path.
    pub fn build(&self) -> PathBuf {
        let pyproject = self.pyproject();
        let key = match self.payload {
            0 => format!("{:016x}", fnv(&pyproject)),
            n => format!("{:016x}", fnv(&format!("{pyproject}payload {n}"))),
        };
        let what = format!("{} {}", self.name, self.version);
        build_cached(&key, &what, |src| {
            std::fs::create_dir_all(src).unwrap();
            std::fs::write(src.join("pyproject.toml"), &pyproject).unwrap();
            std::fs::write(
                src.join(format!("{}.py", self.module())),
                match self.payload {
                    0 => format!("VERSION = {:?}\n", self.version),
                    n => format!("VERSION = {:?}\nDATA = {:?}\n", self.version, noise(n)),
                },
            )
            .unwrap();
        })
    }
}

/// The wheel `pip wheel` builds from a source tree that `write_source`
/// makes, cached under `key`: built once per key, by one pip at a time.
fn build_cached(key: &str, what: &str, write_source: impl FnOnce(&Path)) -> PathBuf {
    let out = cache_dir().join("built").join(key);
    if let Some(found) = find_wheel(&out) {
        return found;
    }
    let _guard = PIP.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(found) = find_wheel(&out) {
        return found;
    }
    let src = cache_dir().join("src").join(key);
    let _ = std::fs::remove_dir_all(&src);
    write_source(&src);
    let tmp_out = out.with_extension("partial");
    let _ = std::fs::remove_dir_all(&tmp_out);
    run_ok(
        Command::new(builder().join("bin/pip"))
            // Fixtures may be for other Pythons than the one building them.
            .args(["wheel", "-q", "--no-deps", "--no-build-isolation"])
            .arg("--ignore-requires-python")
            .arg("-w")
            .arg(&tmp_out)
            .arg(&src),
        &format!("pip wheel {what}"),
    );
    std::fs::rename(&tmp_out, &out).unwrap();
    find_wheel(&out).expect("pip wheel wrote no wheel")
}

/// Build the Python project in the directory `tree` (a pyproject.toml
/// tree, such as examples/demo-shop) with `pip wheel`, from a copy since pip
/// writes build/ into its source; cached by every file's path and content.
pub fn build_tree(tree: &Path) -> PathBuf {
    let mut files = Vec::new();
    list_files(tree, &mut files);
    files.sort();
    let mut fingerprint = String::new();
    for file in &files {
        let relative = file.strip_prefix(tree).unwrap();
        let content = std::fs::read(file).unwrap();
        fingerprint.push_str(&format!(
            "{} {:016x}\n",
            relative.display(),
            fnv(&String::from_utf8_lossy(&content))
        ));
    }
    let key = format!("tree-{:016x}", fnv(&fingerprint));
    build_cached(&key, &tree.display().to_string(), |src| {
        for file in &files {
            let to = src.join(file.strip_prefix(tree).unwrap());
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::copy(file, to).unwrap();
        }
    })
}

/// Every file under `dir`, leaving out what builds and runs leave behind.
fn list_files(dir: &Path, files: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy();
        if name == "build" || name == "__pycache__" || name.ends_with(".egg-info") {
            continue;
        }
        if path.is_dir() {
            list_files(&path, files);
        } else {
            files.push(path);
        }
    }
}

fn find_wheel(dir: &Path) -> Option<PathBuf> {
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "whl"))
}

/// Published wheels fetched once from the package index with `pip download`
/// (`requirement` like `six==1.16.0`; extra pip arguments select platforms).
pub fn download(requirement: &str, extra: &[&str]) -> Vec<PathBuf> {
    download_with(&python3(), requirement, extra)
}

/// [`download`] by another interpreter's pip: its markers decide which
/// dependencies are fetched (`--python-version` alone does not change them).
pub fn download_with(python: &str, requirement: &str, extra: &[&str]) -> Vec<PathBuf> {
    let key = match python == python3() {
        true => format!("{:016x}", fnv(&format!("{requirement} {extra:?}"))),
        false => format!("{:016x}", fnv(&format!("{python} {requirement} {extra:?}"))),
    };
    let out = cache_dir().join("downloads").join(&key);
    let list = |dir: &Path| -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
            .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).collect())
            .unwrap_or_default();
        v.retain(|p| p.extension().is_some_and(|e| e == "whl"));
        v.sort();
        v
    };
    if out.exists() {
        return list(&out);
    }
    let _guard = PIP.lock().unwrap_or_else(|e| e.into_inner());
    if out.exists() {
        return list(&out);
    }
    let tmp_out = out.with_extension("partial");
    let _ = std::fs::remove_dir_all(&tmp_out);
    run_ok(
        Command::new(python)
            .args(["-m", "pip", "download", "-q", "--only-binary=:all:", "-d"])
            .arg(&tmp_out)
            .arg(requirement)
            .args(extra),
        &format!("pip download {requirement} (needs the package index)"),
    );
    std::fs::rename(&tmp_out, &out).unwrap();
    list(&out)
}

/// `len` characters that deflate cannot shrink much (a xorshift stream over
/// 64 letters), the same every time.
fn noise(len: usize) -> String {
    const LETTERS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut x: u64 = 0x9e3779b97f4a7c15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            LETTERS[(x % 64) as usize] as char
        })
        .collect()
}

/// A small stable hash for cache keys.
fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf29ce484222325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100000001b3)
    })
}

/// A fresh virtualenv at `path`, without pip (fast): the tests install with
/// the outer pip's `--python`, as they list with it.
pub fn venv(path: &Path) {
    venv_with(&python3(), path)
}

/// The interpreter file `python` runs (symlinks and shims resolved).
pub fn real_executable(python: &str) -> Option<String> {
    let out = Command::new(python)
        .args([
            "-c",
            "import os, sys; print(os.path.realpath(sys.executable))",
        ])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// An interpreter `user` may run through sudo (a pyenv under /root is not
/// one), for venvs that user works in.
pub fn interpreter_for(user: &str) -> String {
    [python3(), "/usr/bin/python3".to_string()]
        .into_iter()
        .filter_map(|p| real_executable(&p))
        .find(|p| {
            Command::new("sudo")
                .args(["-n", "-u", user, p.as_str(), "-c", "pass"])
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .unwrap_or_else(|| panic!("no python3 that {user} may run (apt-get install python3)"))
}

/// A fresh virtualenv at `path` made by `python`, without pip.
pub fn venv_with(python: &str, path: &Path) {
    run_ok(
        Command::new(python)
            .args(["-m", "venv", "--without-pip"])
            .arg(path),
        "python3 -m venv (Debian: apt-get install python3-venv)",
    );
}

fn pip_for(venv: &Path) -> Command {
    let mut command = Command::new(python3());
    command
        .args(["-m", "pip", "--disable-pip-version-check", "--python"])
        .arg(venv.join("bin/python"));
    command
}

/// Install wheel files into `venv`, offline (and without compiling
/// bytecode, which the interpreter does when it needs it).
pub fn install(venv: &Path, wheels: &[PathBuf]) {
    run_ok(
        pip_for(venv)
            .args(["install", "-q", "--no-index", "--no-deps", "--no-compile"])
            .args(wheels),
        "pip install into a test venv",
    );
}

/// What `pip list` reports for `venv`: {normalized name: version}.
pub fn pip_list(venv: &Path) -> std::collections::BTreeMap<String, String> {
    let list = stdout_of(pip_for(venv).args(["list", "--format", "json"]), "pip list");
    listed(list.as_bytes())
}

/// One entry of `pip list --format json`.
#[derive(serde::Deserialize)]
struct Listed {
    name: String,
    version: String,
}

/// `pip list --format json` as {normalized name: version}.
fn listed(json: &[u8]) -> std::collections::BTreeMap<String, String> {
    let list: Vec<Listed> = serde_json::from_slice(json).expect("pip list wrote no JSON list");
    list.into_iter()
        .map(|d| (normalize(&d.name), d.version))
        .collect()
}

/// PEP 503 name normalization.
pub fn normalize(name: &str) -> String {
    let mut out = String::new();
    let mut sep = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            sep = true;
        } else {
            if sep && !out.is_empty() {
                out.push('-');
            }
            sep = false;
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

/// Make `venv`'s interpreter write its user id to `marker` whenever it
/// starts (a `.pth` line in site-packages): proof of whether, and as whom, a
/// tool ran something in the venv.
pub fn plant_marker(venv: &Path, marker: &Path) {
    let lib = venv.join("lib");
    let site = std::fs::read_dir(&lib)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("site-packages"))
        .find(|p| p.is_dir())
        .expect("no site-packages in the venv");
    std::fs::write(
        site.join("vd_test_marker.pth"),
        format!(
            "import os; open({:?}, 'w').write(str(os.getuid()))\n",
            marker.display().to_string()
        ),
    )
    .unwrap();
}

/// The site-packages directory of `venv`.
pub fn site_packages(venv: &Path) -> PathBuf {
    std::fs::read_dir(venv.join("lib"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("site-packages"))
        .find(|p| p.is_dir())
        .expect("no site-packages in the venv")
}

/// A fresh virtualenv at `path` with pip in it, as vd-push needs: made
/// without pip (fast), then given the pip of a venv made once with
/// ensurepip (copying it takes a fraction of ensurepip's seconds).
pub fn venv_with_pip(path: &Path) {
    let template = cache_dir().join("pip-venv");
    if !made_here(&template) {
        let _guard = PIP.lock().unwrap_or_else(|e| e.into_inner());
        if !made_here(&template) {
            let _ = std::fs::remove_dir_all(&template);
            run_ok(
                Command::new(python3()).args(["-m", "venv"]).arg(&template),
                "python3 -m venv (Debian: apt-get install python3-venv)",
            );
            mark_made(&template);
        }
    }
    venv(path);
    let from = site_packages(&template);
    let to = site_packages(path);
    for entry in std::fs::read_dir(&from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == "pip" || (name.starts_with("pip-") && name.ends_with(".dist-info")) {
            run_ok(
                Command::new("cp").arg("-r").arg(entry.path()).arg(&to),
                "cp -r pip into a test venv",
            );
        }
    }
}

/// The tables of a SQLite database, read by Python's sqlite3 (none when
/// the file does not exist).
pub fn sqlite_tables(db: &Path) -> Vec<String> {
    if !db.exists() {
        return Vec::new();
    }
    lines_of(
        Command::new(python3()).args([
            "-c",
            "import sqlite3, sys\n\
             db = sqlite3.connect(sys.argv[1])\n\
             for (name,) in db.execute(\"select name from sqlite_master where type = 'table' order by name\"):\n\
             \x20   print(name)",
        ])
        .arg(db),
        "python3 with sqlite3",
    )
}

/// The `bin/python` of pyenv's newest CPython `version` (`2.7`, `3.6`). A
/// test that needs an interpreter this machine lacks fails saying which,
/// and how to get it.
pub fn pyenv_python(version: &str) -> String {
    let root = std::env::var("PYENV_ROOT")
        .ok()
        .filter(|r| !r.is_empty())
        .or_else(|| {
            let out = Command::new("pyenv").arg("root").output().ok()?;
            out.status
                .success()
                .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
        })
        .or_else(|| std::env::var("HOME").ok().map(|h| format!("{h}/.pyenv")));
    let prefix = format!("{version}.");
    let found = root.as_ref().and_then(|root| {
        std::fs::read_dir(Path::new(root).join("versions"))
            .ok()?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let patch: u32 = name.strip_prefix(&prefix)?.parse().ok()?;
                Some((patch, e.path().join("bin/python")))
            })
            .filter(|(_, python)| python.is_file())
            .max()
    });
    match found {
        Some((_, python)) => python.display().to_string(),
        None => panic!(
            "this test needs CPython {version}, which pyenv does not have here (pyenv root: {}): \
             install it with `pyenv install {version}` (pyenv: https://github.com/pyenv/pyenv#installation)",
            root.as_deref().unwrap_or("none found")
        ),
    }
}

/// pyenv's CPython 2.7, with `virtualenv` importable: Python 2 has no venv
/// module, so its venvs are made by virtualenv (releases before 21 run on
/// 2.7 and seed pip 20.3.4). Installed once with 2.7's own pip when missing,
/// as a host that serves 2.7 targets has it.
pub fn python27_with_virtualenv() -> String {
    let python = pyenv_python("2.7");
    let has = |python: &str| {
        Command::new(python)
            .args(["-c", "import virtualenv"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !has(&python) {
        let _guard = PIP.lock().unwrap_or_else(|e| e.into_inner());
        if !has(&python) {
            run_ok(
                Command::new(&python).args([
                    "-m",
                    "pip",
                    "install",
                    "-q",
                    "--disable-pip-version-check",
                    "virtualenv<21",
                ]),
                &format!("{python} -m pip install 'virtualenv<21' (needs the package index)"),
            );
        }
    }
    python
}

/// A fresh virtualenv at `path` made by `python` (pyenv's, any version),
/// with the pip, setuptools and wheel that interpreter's venvs get: on 2.7
/// through virtualenv, else `-m venv` (ensurepip's pip: 18.1 on 3.6).
pub fn venv_of(python: &str, path: &Path) {
    let major = Command::new(python)
        .args(["-c", "import sys; print(sys.version_info[0])"])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python}: {e}"));
    let mut command = if String::from_utf8_lossy(&major.stdout).trim() == "2" {
        let mut c = Command::new(python27_with_virtualenv());
        c.args(["-m", "virtualenv", "-q"]);
        c
    } else {
        let mut c = Command::new(python);
        c.args(["-m", "venv"]);
        c
    };
    run_ok(command.arg(path), &format!("{python}: make a venv"));
}

/// Install wheel files into `venv` with the venv's own pip (whatever its
/// version), offline and without dependencies.
pub fn install_with_own_pip(venv: &Path, wheels: &[PathBuf]) {
    run_ok(
        Command::new(venv.join("bin/python"))
            .args(["-m", "pip", "install", "-q", "--disable-pip-version-check"])
            .args(["--no-index", "--no-deps"])
            .args(wheels),
        &format!("{}: pip install", venv.display()),
    );
}

/// What the venv's own pip lists: `pip list --format=json`, or where that
/// is missing (pip before 9), `pip freeze --all`; {normalized name: version}.
pub fn own_pip_list(venv: &Path) -> std::collections::BTreeMap<String, String> {
    let pip = |args: &[&str]| {
        Command::new(venv.join("bin/python"))
            .args(["-m", "pip", "--disable-pip-version-check"])
            .args(args)
            .output()
            .expect("cannot run the venv's pip")
    };
    let list = pip(&["list", "--format=json"]);
    if list.status.success() {
        return listed(&list.stdout);
    }
    let freeze = pip(&["freeze", "--all"]);
    assert!(
        freeze.status.success(),
        "neither pip list --format=json nor pip freeze ran in {}: {}",
        venv.display(),
        String::from_utf8_lossy(&freeze.stderr)
    );
    String::from_utf8_lossy(&freeze.stdout)
        .lines()
        .filter_map(|l| l.split_once("=="))
        .map(|(name, version)| (normalize(name), version.to_string()))
        .collect()
}

/// What lib/src/remote/freeze.py prints when `python` runs it here, as the
/// per-venv freeze runs it (the reference for the batched one), read as a
/// record; vd's record leaves out the facts the interpreter says are null,
/// and so does this.
pub fn freeze_script(python: &Path, args: &[&str]) -> Record {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = Command::new(python)
        .args(["-E", "-s", "-"])
        .args(args)
        .current_dir("/")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(include_bytes!("../../lib/src/remote/freeze.py"))
        .unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}: freeze.py failed",
        python.display()
    );
    let mut reference: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    if let Some(serde_json::Value::Object(facts)) = reference.get_mut("python") {
        facts.retain(|_, value| !value.is_null());
    }
    Record::from_json(&reference)
}

/// Wheels of `(name, version, requirements)`, written from scratch by one
/// python3 (no build backend: dozens of them must be quick to make), each
/// with its RECORD right so that vd-add takes it.
pub fn synthetic_wheels(dir: &Path, specs: &[(String, String, Vec<String>)]) -> Vec<PathBuf> {
    let padded: Vec<_> = specs
        .iter()
        .map(|(name, version, requires)| (name, version, requires, 0))
        .collect();
    write_synthetic_wheels(dir, &serde_json::to_string(&padded).unwrap());
    specs
        .iter()
        .map(|(n, v, _)| dir.join(format!("{n}-{v}-py3-none-any.whl")))
        .collect()
}

/// A wheel of the project vd-huge 1.0 in `dir` whose METADATA is `size`
/// bytes, most of them a description: small on disk, large once read.
pub fn wheel_with_metadata_of(dir: &Path, size: usize) -> PathBuf {
    let spec = serde_json::json!([["vd-huge", "1.0", [], size]]);
    write_synthetic_wheels(dir, &spec.to_string());
    dir.join("vd_huge-1.0-py3-none-any.whl")
}

/// A wheel of `name` `version` in `dir` that holds `files` (path in the
/// wheel, text) beside its module, such as a file of another package's.
pub fn wheel_with_files(dir: &Path, name: &str, version: &str, files: &[(&str, &str)]) -> PathBuf {
    let files: serde_json::Map<String, serde_json::Value> = files
        .iter()
        .map(|(path, text)| (path.to_string(), serde_json::json!(text)))
        .collect();
    let spec = serde_json::json!([[name, version, [], 0, files]]);
    write_synthetic_wheels(dir, &spec.to_string());
    dir.join(format!(
        "{}-{version}-py3-none-any.whl",
        name.replace('-', "_")
    ))
}

/// Writes into `dir` the wheels of `specs`, a JSON list of `[name, version,
/// requirements, metadata size]` (0: no description), each with an
/// optional fifth item, more files `{path: text}`.
fn write_synthetic_wheels(dir: &Path, specs: &str) {
    let script = r#"
import base64, hashlib, json, os, sys, zipfile
out, specs = sys.argv[1], json.loads(sys.argv[2])
for spec in specs:
    name, version, requires, size = spec[:4]
    head = "Metadata-Version: 2.1\nName: %s\nVersion: %s\n" % (name, version)
    head += "".join("Requires-Dist: %s\n" % r for r in requires)
    head = head.encode()
    if size:
        head += b"\n" + b"x" * (size - len(head) - 1)
    stem = "%s-%s" % (name.replace("-", "_"), version)
    info = stem + ".dist-info/"
    files = {
        name.replace("-", "_") + ".py": b"",
        info + "METADATA": head,
        info + "WHEEL": b"Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    for path, text in (spec[4] if len(spec) > 4 else {}).items():
        files[path] = text.encode()
    record = ""
    for n, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record += "%s,sha256=%s,%d\n" % (n, digest, len(data))
    files[info + "RECORD"] = (record + info + "RECORD,,\n").encode()
    dest = os.path.join(out, stem + "-py3-none-any.whl")
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as z:
        for n, data in files.items():
            z.writestr(n, data)
"#;
    stdout_of(
        Command::new(python3())
            .arg("-c")
            .arg(script)
            .arg(dir)
            .arg(specs),
        "python3 writing wheels (needed for the tests)",
    );
}
