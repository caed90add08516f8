//! vd-diff reading a PEP 751 lock written by uv from the repository: it
//! plans exactly the lock's packages, with the lock's hashes, and names the
//! package of a lock it cannot follow.

use crate::export::{published_wheels, Frozen};
use crate::util::record::Action;
use crate::util::uv::uv_command;
use crate::util::{changes, error_message, stdout_of, Record};
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

/// A lock uv writes for `requirement` from the repository alone, for the
/// Python of `record`: `dir`/pylock.toml.
fn uv_lock(repo: &Path, record: &Record, requirement: &str, dir: &Path) -> PathBuf {
    let input = dir.join("requirements.in");
    fs::write(&input, format!("{requirement}\n")).unwrap();
    let version: Vec<&str> = record.facts().version().split('.').take(2).collect();
    let lock = dir.join("pylock.toml");
    stdout_of(
        uv_command()
            .args([
                "pip",
                "compile",
                "--offline",
                "--no-index",
                "--format",
                "pylock.toml",
            ])
            .arg("--find-links")
            .arg(repo)
            .args(["--python-version", &version.join(".")])
            .arg("-o")
            .arg(&lock)
            .arg(&input),
        "uv pip compile --format pylock.toml",
    );
    lock
}

/// `name version sha256` of each package of a lock, by the toml crate.
fn locked(lock: &Path) -> BTreeMap<String, (String, String)> {
    let table: toml::Table = toml::from_str(&fs::read_to_string(lock).unwrap()).unwrap();
    table["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let sha = p["wheels"][0]["hashes"]["sha256"].as_str().unwrap();
            let name = p["name"].as_str().unwrap().to_string();
            (
                name,
                (p["version"].as_str().unwrap().to_string(), sha.to_string()),
            )
        })
        .collect()
}

#[test]
fn a_lock_written_by_uv_plans_exactly_its_packages_and_hashes() {
    let wheels = published_wheels();
    let six: Vec<PathBuf> = wheels
        .iter()
        .filter(|w| w.file_name().unwrap().to_string_lossy().starts_with("six-"))
        .cloned()
        .collect();
    // An empty venv, and one that holds six, which the lock leaves out.
    let fleet = Frozen::new(&[&[], &six], &wheels);
    let lock = uv_lock(&fleet.repo, &fleet.records[0], "django", fleet.dir.path());
    let packages = locked(&lock);
    assert!(packages.contains_key("django") && packages.contains_key("asgiref"));

    let run = fleet.diff(&[&lock]);
    run.expect_code(0);
    let records = run.records();
    for record in &records {
        let installs: BTreeMap<String, (String, String)> = record
            .plan()
            .iter()
            .filter(|c| c.action == Action::Install)
            .map(|c| {
                let sha = c.sha256.clone().unwrap();
                (c.name.clone(), (c.to.clone().unwrap(), sha))
            })
            .collect();
        assert_eq!(installs, packages);
    }
    assert!(changes(&records[1]).contains(&"six remove 1.16.0 -".to_string()));
}

#[test]
fn a_lock_vd_cannot_follow_is_an_error_naming_the_package_or_file() {
    let wheels = published_wheels();
    let fleet = Frozen::new(&[&[]], &wheels);
    let lock = uv_lock(&fleet.repo, &fleet.records[0], "django", fleet.dir.path());
    let text = fs::read_to_string(&lock).unwrap();
    let (_, django_sha) = locked(&lock)["django"].clone();
    // Each variant of the lock, by its name; the message of the error its
    // target gets.
    let variant = |name: &str, text: String| {
        let path = fleet.dir.path().join(format!("pylock.{name}.toml"));
        fs::write(&path, text).unwrap();
        fleet.diff(&[&path])
    };
    let target_error = |name: &str, text: String| {
        let run = variant(name, text);
        run.expect_code(1);
        error_message(&run.records()[0])
    };
    let other = "ab".repeat(32);
    // The lock with one more package, whose `source` is `ENTRY` put
    // into it.
    let added = |package: &str, source: &str| {
        let entry = format!(
            "{{ url = \"https://example.invalid/{package}\", hashes = {{ sha256 = \"{other}\" }} }}"
        );
        let source = source.replace("ENTRY", &entry);
        format!("{text}\n[[packages]]\nname = \"{package}\"\nversion = \"1.0\"\n{source}\n")
    };

    let wrong = target_error("hash", text.replace(&django_sha, &other));
    assert!(wrong.contains("pylock.hash.toml line "), "{wrong}");
    assert!(
        wrong.contains("package django: no wheel of django")
            && wrong.contains("has a sha256 the lock lists"),
        "{wrong}"
    );
    let missing = target_error("missing", added("left-out", "wheels = [ENTRY]"));
    assert!(
        missing.contains("package left-out: the repository has no wheel of left-out 1.0"),
        "{missing}"
    );
    let sdist = target_error("sdist", added("from-source", "sdist = ENTRY"));
    assert!(
        sdist.contains("package from-source: the lock gives no wheel of it, only an sdist"),
        "{sdist}"
    );

    let future = variant(
        "future",
        text.replace("lock-version = \"1.0\"", "lock-version = \"2.0\""),
    );
    future.expect_code(2);
    future.expect_stderr("pylock.future.toml: lock-version \"2.0\" is not one vd reads");
    // A lock is the whole of what a target gets: it comes alone.
    let requirements = fleet.dir.path().join("requirements.txt");
    fs::write(&requirements, "six\n").unwrap();
    let both = fleet.diff(&[&lock, &requirements]);
    both.expect_code(2);
    both.expect_stderr("give it as the only REQUIREMENTS");
}
