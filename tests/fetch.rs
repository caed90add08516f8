//! vd-fetch against the real package index: a fleet of CPython 3.11 and
//! 3.12 venvs on a real sshd, frozen, fetched for outside, added and planned
//! inside. The tests' cache of downloads is given to pip as --find-links,
//! so only a first run downloads the bytes.

use crate::util::python::{download_with, pyenv_python, venv_of};
use crate::util::record::{Fetched, Record, Source};
use crate::util::sshd::Sshd;
use crate::util::{error_message, jsonl, repo, AsRecord, Outcome, Run};
use std::fs;
use std::path::{Path, PathBuf};

/// vd-fetch, with the tests' cache of downloads as `--find-links`: pip
/// still asks the index what there is and chooses, but copies a chosen file
/// the cache holds instead of downloading it again. `cached` is
/// (interpreter version, requirement) pairs to have in the cache.
fn fetch(server: &Sshd, cached: &[(&str, &str)]) -> Run {
    let mut run = server.tool("vd-fetch");
    for (version, requirement) in cached {
        let wheels = download_with(&pyenv_python(version), requirement, &[]);
        let folder = wheels[0].parent().unwrap();
        run = run.arg("--find-links").arg(folder);
    }
    run
}

/// A test's fleet: one host, a venv of each of pyenv's CPython `versions`
/// in a scratch folder, frozen over SSH, and the folder to fetch into.
struct Fleet {
    server: Sshd,
    dir: tempfile::TempDir,
    records: Vec<Record>,
    dest: PathBuf,
}

impl Fleet {
    fn frozen(versions: &[&str]) -> Fleet {
        let server = Sshd::start(1);
        let dir = tempfile::tempdir().unwrap();
        let targets: Vec<_> = versions
            .iter()
            .map(|version| {
                let venv = dir.path().join(format!("venv-{version}"));
                venv_of(&pyenv_python(version), &venv);
                server.target(0, &venv)
            })
            .collect();
        let out = server.tool("vd-freeze").stdin(jsonl(&targets)).run();
        out.expect_code(0);
        let dest = dir.path().join("dest");
        Fleet {
            records: out.records(),
            server,
            dir,
            dest,
        }
    }
}

fn wheels_in(dir: &Path) -> Vec<PathBuf> {
    let mut wheels: Vec<PathBuf> = fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    wheels.retain(|p| p.extension().is_some_and(|e| e == "whl"));
    wheels.sort();
    wheels
}

fn names(wheels: &[Fetched], prefix: &str) -> Vec<String> {
    wheels
        .iter()
        .filter(|w| w.wheel.to_ascii_lowercase().starts_with(prefix))
        .map(|w| w.wheel.clone())
        .collect()
}

const DJANGO: &str = "django>=5.2,<5.3";

/// What the fleet of 3.11 and 3.12 fetches, for the cache.
const FLEET_CACHE: &[(&str, &str)] = &[("3.11", "pillow"), ("3.12", "pillow"), ("3.11", DJANGO)];

#[test]
fn fetch_fills_a_repository_for_3_11_and_3_12_and_fetches_nothing_twice() {
    let Fleet {
        server,
        dir,
        records: fleet,
        dest,
    } = Fleet::frozen(&["3.11", "3.12"]);
    let out = fetch(&server, FLEET_CACHE)
        .arg("--dest")
        .arg(&dest)
        .args(["pillow", DJANGO])
        .stdin(jsonl(&fleet))
        .run();
    out.expect_code(0)
        .expect_stderr("downloaded into")
        .expect_stderr("then, inside the network: vd-add");
    let records = out.records();
    assert_eq!(records.len(), 2);
    let (for_311, for_312) = (records[0].fetched(), records[1].fetched());
    let pillow_311 = names(for_311, "pillow-");
    let pillow_312 = names(for_312, "pillow-");
    assert!(
        pillow_311.len() == 1 && pillow_311[0].contains("-cp311-cp311-manylinux"),
        "{pillow_311:?}"
    );
    assert!(
        pillow_312.len() == 1 && pillow_312[0].contains("-cp312-cp312-manylinux"),
        "{pillow_312:?}"
    );
    // Django is one wheel for both, downloaded by the first group only.
    let django: Vec<&Fetched> = for_311
        .iter()
        .chain(for_312)
        .filter(|w| w.wheel.starts_with("django-5.2."))
        .collect();
    assert_eq!(django.len(), 2, "{for_311:?} {for_312:?}");
    assert_eq!(django[0].wheel, django[1].wheel);
    assert_eq!(django[0].sha256, django[1].sha256);
    let sources: Vec<Source> = django.iter().map(|w| w.source).collect();
    assert_eq!(sources, [Source::Downloaded, Source::Dest]);
    // What the records say is what DEST holds, byte for byte.
    let in_dest = wheels_in(&dest);
    for wheel in for_311.iter().chain(for_312) {
        let path = dest.join(&wheel.wheel);
        let bytes = fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(bytes.len() as u64, wheel.size, "{}", wheel.wheel);
    }
    let django_files = in_dest
        .iter()
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("django-")
        })
        .count();
    assert_eq!(django_files, 1, "{in_dest:?}");
    assert!(
        !fs::read_dir(&dest).unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with('.')),
        "a download folder was left in DEST"
    );

    // Inside: add, then plan both targets from the repository alone.
    let repo = repo(dir.path(), &in_dest);
    let reqs = dir.path().join("requirements.txt");
    fs::write(&reqs, format!("pillow\n{DJANGO}\n")).unwrap();
    let diff = server
        .tool("vd-diff")
        .arg("--repo")
        .arg(&repo)
        .arg(&reqs)
        .stdin(jsonl(&fleet))
        .run();
    diff.expect_code(0);
    for (record, pillow) in diff.records().iter().zip([&pillow_311, &pillow_312]) {
        let wheels: Vec<&str> = record
            .plan()
            .iter()
            .filter_map(|c| c.wheel.as_deref())
            .collect();
        assert!(wheels.contains(&pillow[0].as_str()), "{wheels:?}");
        assert!(wheels.contains(&django[0].wheel.as_str()), "{wheels:?}");
    }

    // Again with the repository: nothing is downloaded.
    let again = dir.path().join("again");
    let out = fetch(&server, FLEET_CACHE)
        .arg("--dest")
        .arg(&again)
        .arg("--repo")
        .arg(&repo)
        .args(["pillow", DJANGO])
        .stdin(jsonl(&fleet))
        .run();
    out.expect_code(0).expect_stderr("0 wheels");
    // Nothing was fetched: nothing to carry in and add.
    assert!(!out.stderr.contains("vd-add"), "{}", out.stderr);
    for record in out.records() {
        let wheels = record.fetched();
        assert!(!wheels.is_empty());
        for wheel in wheels {
            assert_eq!(wheel.source, Source::Repository, "{wheel:?}");
        }
    }
    assert_eq!(wheels_in(&again), Vec::<PathBuf>::new());
}

#[test]
fn fetch_names_what_has_no_wheel_and_the_other_targets_go_on() {
    let Fleet {
        server,
        dir,
        records: mut fleet,
        ..
    } = Fleet::frozen(&["3.11", "3.12"]);
    let unfrozen = server.target(0, &dir.path().join("never-frozen"));
    fleet.push(unfrozen.record());
    let input = format!("{}not json\n", jsonl(&fleet));
    let dest = dir.path().join("dest");
    // Pillow 9.5 has wheels up to CPython 3.11.
    let out: Outcome = fetch(&server, &[("3.11", "pillow==9.5.0")])
        .arg("--dest")
        .arg(&dest)
        .arg("pillow==9.5.0")
        .stdin(input)
        .run();
    out.expect_code(1);
    let records = out.records();
    assert_eq!(records.len(), 4, "{out:?}");
    let wheels = records[0].fetched();
    assert!(
        wheels.len() == 1 && wheels[0].wheel.contains("cp311"),
        "{wheels:?}"
    );
    let message = error_message(&records[1]);
    assert!(message.contains("pillow==9.5.0"), "{message}");
    assert!(message.contains("cp312"), "{message}");
    assert!(message.contains("manylinux"), "{message}");
    assert!(message.contains("cp311"), "{message}");
    assert!(error_message(&records[2]).contains("`python`"));
    assert!(error_message(&records[3]).contains("line 4"));
    assert_eq!(wheels_in(&dest).len(), 1);

    // A Python without pip is a setup error, before any target.
    let out = fetch(&server, &[])
        .args(["--pip", "/nonexistent/python3", "--dest"])
        .arg(&dest)
        .arg("six")
        .stdin(jsonl(&fleet[..1]))
        .run();
    out.expect_code(2).expect_stderr("/nonexistent/python3");
    assert_eq!(out.stdout, "");

    // A project with only a source distribution: named, with the hint.
    let out = fetch(&server, &[])
        .arg("--dest")
        .arg(&dest)
        .arg("docopt==0.6.2")
        .stdin(jsonl(&fleet[..1]))
        .run();
    out.expect_code(1);
    let message = error_message(&out.records()[0]);
    assert!(message.contains("docopt"), "{message}");
    assert!(message.contains("source distributions"), "{message}");
    assert!(message.contains("pip wheel"), "{message}");
}

#[test]
fn fetch_evaluates_markers_for_each_interpreter_not_for_the_one_running_pip() {
    let Fleet {
        server,
        dir: _dir,
        records: fleet,
        dest,
    } = Fleet::frozen(&["3.10", "3.12"]);
    // asgiref 3.9 needs `typing_extensions>=4; python_version < "3.11"`;
    // the pip that runs is 3.11's, for which the marker is false.
    let out = fetch(&server, &[("3.10", "asgiref==3.9.1")])
        .arg("--pip")
        .arg(pyenv_python("3.11"))
        .arg("--dest")
        .arg(&dest)
        .arg("asgiref==3.9.1")
        .stdin(jsonl(&fleet))
        .run();
    out.expect_code(0);
    let records = out.records();
    let typing = |record: &Record| names(record.fetched(), "typing_extensions-").len();
    assert_eq!(typing(&records[0]), 1, "3.10: {:?}", records[0].fetched());
    assert_eq!(typing(&records[1]), 0, "3.12: {:?}", records[1].fetched());
}
