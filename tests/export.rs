//! vd-export: a real venv on a real sshd, frozen, exported as a PEP 751
//! lock that uv installs into a fresh venv, and as a CycloneDX SBOM
//! checked against the CycloneDX JSON schema kept in tests/fixtures; and
//! file names that hostile or clashing records cannot turn against --out.

use crate::util::python::{download, install, pip_list, venv};
use crate::util::sshd::Sshd;
use crate::util::uv::uv_command;
use crate::util::{jsonl, repo, stdout_of, Record};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use tempfile::TempDir;

/// Django's wheels and six's, from the index once.
pub fn published_wheels() -> Vec<PathBuf> {
    let mut wheels = download("Django>=4.2,<6", &[]);
    wheels.extend(download("six==1.16.0", &[]));
    wheels
}

/// One venv per entry of `venvs` (the wheels it holds) on a real sshd,
/// frozen by vd-freeze; and a repository of `in_repo`.
pub struct Frozen {
    pub server: Sshd,
    pub dir: TempDir,
    pub repo: PathBuf,
    pub records: Vec<Record>,
}

impl Frozen {
    pub fn new(venvs: &[&[PathBuf]], in_repo: &[PathBuf]) -> Frozen {
        let server = Sshd::start(1);
        let dir = tempfile::tempdir().unwrap();
        let targets: Vec<_> = venvs
            .iter()
            .enumerate()
            .map(|(i, wheels)| {
                let path = dir.path().join(format!("venv{i}"));
                venv(&path);
                if !wheels.is_empty() {
                    install(&path, wheels);
                }
                server.target(0, &path)
            })
            .collect();
        let out = server.tool("vd-freeze").stdin(jsonl(&targets)).run();
        out.expect_code(0);
        let repo = repo(dir.path(), in_repo);
        Frozen {
            records: out.records(),
            server,
            dir,
            repo,
        }
    }

    /// vd-diff of the fleet's records against `requirements`.
    pub fn diff(&self, requirements: &[&Path]) -> crate::util::Outcome {
        self.server
            .tool("vd-diff")
            .arg("--repo")
            .arg(&self.repo)
            .args(requirements)
            .stdin(jsonl(&self.records))
            .run()
    }

    /// vd-export of `records` in `format` into `out`.
    pub fn export(&self, records: &[Record], format: &str, out: &Path) -> crate::util::Outcome {
        self.server
            .tool("vd-export")
            .args(["--format", format, "--out"])
            .arg(out)
            .arg("--repo")
            .arg(&self.repo)
            .stdin(jsonl(records))
            .run()
    }
}

/// The sha256 of every wheel in the repository, by `sha256sum`.
fn repository_hashes(repo: &Path) -> BTreeMap<String, String> {
    let mut wheels: Vec<PathBuf> = fs::read_dir(repo)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "whl"))
        .collect();
    wheels.sort();
    let out = stdout_of(
        std::process::Command::new("sha256sum").args(&wheels),
        "sha256sum",
    );
    out.lines()
        .map(|l| {
            let (sha, path) = l.split_once("  ").unwrap();
            let file = Path::new(path).file_name().unwrap().to_string_lossy();
            (sha.to_string(), file.to_string())
        })
        .collect()
}

/// The path a record's `exported` names; a test failure without one.
#[track_caller]
fn exported(record: &Record) -> PathBuf {
    PathBuf::from(
        record
            .exported
            .clone()
            .unwrap_or_else(|| panic!("no exported in {record:?}")),
    )
}

#[test]
fn an_exported_lock_rebuilds_the_venv_with_uv() {
    let wheels = published_wheels();
    let fleet = Frozen::new(&[&wheels], &wheels);
    let out = fleet.dir.path().join("locks");
    let run = fleet.export(&fleet.records, "pylock", &out);
    run.expect_code(0);
    let record = &run.records()[0];
    assert!(record.error.is_none(), "{record:?}");
    let lock = exported(record);
    let venv_path = fleet.records[0].venv.clone().unwrap();
    // Named so a person finds it by host and venv.
    let name = lock.file_name().unwrap().to_string_lossy().to_string();
    let host = fleet.records[0].host.clone().unwrap();
    // PEP 751 names have no dot between `pylock.` and `.toml`.
    assert!(name.starts_with("pylock."), "{name}");
    assert!(name.contains(&host.replace('.', "_")), "{name}");
    let venv_name = venv_path
        .trim_start_matches('/')
        .replace('/', "-")
        .replace('.', "_");
    assert!(name.ends_with(&format!("_{venv_name}.toml")), "{name}");
    assert_eq!(lock.parent().unwrap(), out);

    let text = fs::read_to_string(&lock).unwrap();
    let parsed: toml::Table = toml::from_str(&text).unwrap();
    assert_eq!(parsed["lock-version"].as_str(), Some("1.0"));
    assert_eq!(parsed["created-by"].as_str(), Some("vd"));

    // vd-diff reads it back: the venv it was written from is in sync.
    let again = fleet.diff(&[&lock]);
    again.expect_code(0);
    assert_eq!(again.records()[0].plan(), &[]);

    let fresh = fleet.dir.path().join("fresh");
    venv(&fresh);
    stdout_of(
        uv_command()
            .args(["pip", "sync", "--offline", "--python"])
            .arg(fresh.join("bin/python"))
            .arg(&lock),
        "uv pip sync of the exported lock",
    );
    let installed = fleet.records[0].installed().clone();
    assert!(installed.contains_key("django") && installed.contains_key("six"));
    assert_eq!(pip_list(&fresh), installed);
}

#[test]
fn the_sbom_follows_the_cyclonedx_schema_and_names_repository_wheels() {
    let wheels = published_wheels();
    let (six, others): (Vec<PathBuf>, Vec<PathBuf>) = wheels
        .iter()
        .cloned()
        .partition(|w| w.file_name().unwrap().to_string_lossy().starts_with("six-"));
    // six is installed but not in the repository: listed without a hash.
    let fleet = Frozen::new(&[&wheels], &others);
    assert_eq!(six.len(), 1);
    let out = fleet.dir.path().join("sboms");
    let run = fleet.export(&fleet.records, "cyclonedx", &out);
    run.expect_code(0);
    run.expect_stderr("the repository has no wheel of six 1.16.0");
    let record = &run.records()[0];
    assert_eq!(record.unexported, Some(vec!["six 1.16.0".to_string()]));
    let sbom: Value = serde_json::from_str(&fs::read_to_string(exported(record)).unwrap()).unwrap();
    let errors = schema_errors(&sbom);
    assert!(errors.is_empty(), "{}", errors.join("\n"));
    // The schema is read and applied: a hash of no known algorithm fails.
    let mut broken = sbom.clone();
    broken["components"][0]["hashes"] = serde_json::json!([{"alg": "SHA-257", "content": "0"}]);
    assert!(!schema_errors(&broken).is_empty());

    let hashes = repository_hashes(&fleet.repo);
    let installed = fleet.records[0].installed().clone();
    let components = sbom["components"].as_array().unwrap();
    assert_eq!(components.len(), installed.len());
    for component in components {
        let (name, version) = (
            component["name"].as_str().unwrap(),
            component["version"].as_str().unwrap(),
        );
        assert_eq!(installed.get(name).map(String::as_str), Some(version));
        assert_eq!(component["purl"], format!("pkg:pypi/{name}@{version}"));
        if name == "six" {
            assert!(component.get("hashes").is_none(), "{component}");
            continue;
        }
        let hash = &component["hashes"][0];
        assert_eq!(hash["alg"], "SHA-256");
        let wheel = hashes
            .get(hash["content"].as_str().unwrap())
            .unwrap_or_else(|| panic!("{component} names no repository wheel"));
        assert!(
            wheel.starts_with(&format!("{name}-{version}-")),
            "{wheel} for {name}"
        );
    }
    let properties: BTreeMap<&str, &str> = sbom["metadata"]["properties"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["name"].as_str().unwrap(), p["value"].as_str().unwrap()))
        .collect();
    assert_eq!(
        properties["vd:host"],
        fleet.records[0].host.as_deref().unwrap()
    );
    assert_eq!(
        properties["vd:venv"],
        fleet.records[0].venv.as_deref().unwrap()
    );
    let version = fleet.records[0].facts().version();
    assert_eq!(properties["vd:interpreter"], format!("cpython {version}"));
}

/// What the CycloneDX 1.5 schema (with the SPDX and JSF schemas it refers
/// to, all kept in tests/fixtures/cyclonedx) finds wrong with `sbom`.
fn schema_errors(sbom: &Value) -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cyclonedx");
    let read = |name: &str| -> Value {
        serde_json::from_str(&fs::read_to_string(dir.join(name)).unwrap()).unwrap()
    };
    let base = "http://cyclonedx.org/schema/";
    let registry = jsonschema::Registry::new()
        .add(format!("{base}spdx.schema.json"), read("spdx.schema.json"))
        .and_then(|r| {
            r.add(
                format!("{base}jsf-0.82.schema.json"),
                read("jsf-0.82.schema.json"),
            )
        })
        .and_then(|r| r.prepare())
        .unwrap();
    let validator = jsonschema::options()
        .offline()
        .with_registry(&registry)
        .build(&read("bom-1.5.schema.json"))
        .unwrap();
    validator
        .iter_errors(sbom)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

#[test]
fn hostile_and_clashing_targets_keep_to_their_own_files() {
    let six = download("six==1.16.0", &[]);
    let fleet = Frozen::new(&[&six], &six);
    let frozen = &fleet.records[0];
    let with_venv = |venv: &str| {
        let mut r = frozen.clone();
        r.venv = Some(venv.to_string());
        r
    };
    let records = [
        with_venv("/../../../../tmp/escape"),
        with_venv("/srv/a-b"),
        with_venv("/srv/a/b"),
        with_venv("/srv/a/b"),
    ];
    let out = fleet.dir.path().join("out");
    let run = fleet.export(&records, "pylock", &out);
    run.expect_code(1);
    let written = run.records();
    let paths: Vec<PathBuf> = written[..3].iter().map(exported).collect();
    for path in &paths {
        assert_eq!(path.parent().unwrap(), out, "{path:?}");
        let name = path.file_name().unwrap().to_string_lossy();
        assert!(!name.starts_with('.') && !name.contains(".."), "{name}");
        assert!(path.is_file(), "{path:?}");
    }
    assert_ne!(paths[1], paths[2]);
    // The same target twice: its second record is an error, and nothing
    // of the first is replaced.
    assert!(written[3]
        .error_message()
        .contains("the input holds this target twice"));
    let mut files: Vec<String> = fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    files.sort();
    assert_eq!(files.len(), 3, "{files:?}");
    assert!(!fleet.dir.path().join("tmp").exists());
}

#[test]
fn records_without_a_freeze_or_with_an_error_are_named_or_passed_on() {
    let dir = tempfile::tempdir().unwrap();
    let repo = repo(dir.path(), &download("six==1.16.0", &[]));
    let input = "{\"host\":\"web1\",\"venv\":\"/srv/a\"}\n\
        {\"host\":\"web2\",\"venv\":\"/srv/a\",\"error\":{\"tool\":\"vd-freeze\",\"message\":\"refused\"}}\n\
        not json\n";
    let run = crate::util::tool("vd-export")
        .args(["--format", "cyclonedx", "--out"])
        .arg(dir.path().join("out"))
        .arg("--repo")
        .arg(&repo)
        .stdin(input)
        .run();
    run.expect_code(1);
    let records = run.records();
    assert_eq!(records.len(), 3);
    assert!(records[0]
        .error_message()
        .contains("missing field `python` (run vd-freeze first)"));
    assert_eq!(records[1].error.as_ref().unwrap().tool, "vd-freeze");
    assert!(records[2].error_message().contains("line 3"));
}
