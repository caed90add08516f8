//! Where more than one closure is valid, vd-diff picks pip's: each case
//! builds a small repository of wheels and compares vd-diff's plan with
//! pip's own `install --dry-run --report` on the same wheels and the same
//! requirements file. And an old pip in a venv gets wheels it can install:
//! a real push into a 3.6 venv with ensurepip's pip 18.1.

use crate::resolve::{diff, facts, pip_choice, planned, write};
use crate::util::python::{download, own_pip_list, pyenv_python, python3, venv_of, Project};
use crate::util::sshd::Sshd;
use crate::util::{jsonl, repo, stdout_of, Run};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// `{name: (version, wheel file)}` of a closure.
type Choice = BTreeMap<String, (String, String)>;

/// vd-diff's plan and pip's choice for `requirements` on this machine's
/// Python, from a repository of `wheels`.
fn both_choices(wheels: &[PathBuf], requirements: &str) -> (Choice, Choice) {
    let dir = tempfile::tempdir().unwrap();
    let repo = repo(dir.path(), wheels);
    let reqs = write(dir.path(), "requirements.txt", requirements);
    let python = python3();
    let out = diff(&repo, &[path(&reqs)], &[facts(&python, "web1")]);
    out.expect_code(0);
    let ours = planned(&out.records()[0]);
    (ours, pip_choice(&python, &repo, &reqs))
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn version_of(choice: &Choice, name: &str) -> String {
    choice
        .get(name)
        .unwrap_or_else(|| panic!("{name} in {choice:?}"))
        .0
        .clone()
}

#[test]
fn two_named_projects_in_conflict_resolve_as_pip_in_either_order() {
    // The newest worker pins the newest but one of the date library, as
    // celery 5.7.0 pins python-dateutil 2.9.0.post0 while 3.0.0 exists.
    let wheels = vec![
        Project::new("vdp-worker", "5.7.0")
            .requires("vdp-dates==2.9.0.post0")
            .build(),
        Project::new("vdp-worker", "5.6.3")
            .requires("vdp-dates>=2.8")
            .build(),
        Project::new("vdp-dates", "2.9.0.post0").build(),
        Project::new("vdp-dates", "3.0.0").build(),
    ];
    for requirements in ["vdp-worker\nvdp-dates\n", "vdp-dates\nvdp-worker\n"] {
        let (ours, pips) = both_choices(&wheels, requirements);
        assert_eq!(ours, pips, "vd-diff and pip for {requirements:?}");
        assert_eq!(version_of(&ours, "vdp-worker"), "5.7.0", "{requirements:?}");
        assert_eq!(version_of(&ours, "vdp-dates"), "2.9.0.post0");
    }
}

#[test]
fn excluding_a_pre_release_is_no_opt_in_to_pre_releases() {
    // `Django!=5.2rc1` with 4.2.30, 5.2b1 and 5.2rc1 published.
    let wheels = vec![
        Project::new("vdp-web", "4.2.30").build(),
        Project::new("vdp-web", "5.2b1").build(),
        Project::new("vdp-web", "5.2rc1").build(),
    ];
    let (ours, pips) = both_choices(&wheels, "vdp-web!=5.2rc1\n");
    assert_eq!(ours, pips, "vd-diff and pip");
    assert_eq!(version_of(&ours, "vdp-web"), "4.2.30");
    // Naming a pre-release to ask for one still opts in.
    let (ours, pips) = both_choices(&wheels, "vdp-web>=5.2b1\n");
    assert_eq!(ours, pips, "vd-diff and pip");
    assert_eq!(version_of(&ours, "vdp-web"), "5.2rc1");
}

#[test]
fn a_pre_release_named_in_a_dependencys_requires_dist_opts_in() {
    let wheels = vec![
        Project::new("vdp-app", "1.0")
            .requires("vdp-dep>=1.0b1")
            .build(),
        Project::new("vdp-dep", "1.0").build(),
        Project::new("vdp-dep", "2.0b1").build(),
    ];
    let (ours, pips) = both_choices(&wheels, "vdp-app\n");
    assert_eq!(ours, pips, "vd-diff and pip");
    assert_eq!(version_of(&ours, "vdp-dep"), "2.0b1");
}

/// numpy 1.19.5's published wheel for CPython 3.6 on one manylinux platform.
fn numpy_1_19_5(platform: &str) -> Vec<PathBuf> {
    download(
        "numpy==1.19.5",
        &[
            "--no-deps",
            "--python-version",
            "3.6",
            "--implementation",
            "cp",
            "--abi",
            "cp36m",
            "--platform",
            platform,
        ],
    )
}

/// A tool run against the server with the repository `repo`.
fn with_repo(server: &Sshd, tool: &str, repo: &Path) -> Run {
    server.tool(tool).arg("--repo").arg(repo)
}

#[test]
fn an_old_pip_in_a_3_6_venv_gets_the_numpy_wheel_it_can_install() {
    let server = Sshd::start(1);
    let dir = tempfile::tempdir().unwrap();
    let mut wheels = numpy_1_19_5("manylinux1_x86_64");
    wheels.extend(numpy_1_19_5("manylinux2010_x86_64"));
    wheels.sort();
    wheels.dedup();
    let names: Vec<String> = wheels
        .iter()
        .map(|w| w.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().any(|n| n.contains("manylinux2010"))
            && names.iter().any(|n| n.ends_with("manylinux1_x86_64.whl")),
        "both of numpy's wheels: {names:?}"
    );
    let repo = repo(dir.path(), &wheels);
    let reqs = write(dir.path(), "requirements.txt", "numpy==1.19.5\n");
    // `python3.6 -m venv` gives ensurepip's pip 18.1, which knows manylinux1
    // only.
    let venv = dir.path().join("venv-3.6");
    venv_of(&pyenv_python("3.6"), &venv);
    assert_eq!(own_pip_list(&venv)["pip"], "18.1");

    let frozen = server
        .tool("vd-freeze")
        .stdin(jsonl(&[server.target(0, &venv)]))
        .run();
    frozen.expect_code(0);
    let diff = with_repo(&server, "vd-diff", &repo)
        .arg(&reqs)
        .stdin(jsonl(&frozen.records()))
        .run();
    diff.expect_code(0);
    let plan = planned(&diff.records()[0]);
    let (version, wheel) = &plan["numpy"];
    assert_eq!(version, "1.19.5");
    assert!(wheel.ends_with("manylinux1_x86_64.whl"), "{wheel}");
    with_repo(&server, "vd-push", &repo)
        .stdin(jsonl(&diff.records()))
        .run()
        .expect_code(0);
    assert_eq!(own_pip_list(&venv)["numpy"], "1.19.5");
    let imported = stdout_of(
        Command::new(venv.join("bin/python")).args([
            "-c",
            "import numpy; print(numpy.__version__, numpy.arange(4).sum())",
        ]),
        "import numpy in the 3.6 venv",
    );
    assert_eq!(imported.trim(), "1.19.5 6");
}
