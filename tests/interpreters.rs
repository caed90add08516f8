//! Every CPython vd serves, for real: pyenv's 2.7 and 3.6 to 3.13 in venvs
//! on a real sshd, their own pips and packaging as the reference, and
//! Django 1.11 on 2.7 and 3.2 on 3.6 deployed with their published wheels.

use crate::pipeline::{assert_shop_deployed, deploy_through, SETTINGS};
use crate::util::python::{
    self, download, install_with_own_pip, own_pip_list, pyenv_python, python27_with_virtualenv,
    venv_of,
};
use crate::util::sshd::{current_user, Sshd};
use crate::util::{
    assert_contains, error_message, installed, jsonl, lines_of, read_records, Outcome, Record,
};
use serde_json::{Map, Value};
use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A target record as a test builds it, to feed a tool.
type Target = Map<String, Value>;

/// A distribution installed the distutils way: one `.egg-info` file.
fn plant_egg_info(venv: &Path) {
    fs::write(
        python::site_packages(venv).join("Legacy.Dist-0.1-py2.7.egg-info"),
        "Metadata-Version: 1.0\nName: Legacy.Dist\nVersion: 0.1\nSummary: old\n\nName: not-this\n",
    )
    .unwrap();
}

/// The interpreter a frozen record describes, as vd-diff reads it.
fn interpreter(record: &Record) -> vd::tags::Interpreter {
    let python: vd::tags::Facts =
        serde_json::from_value(serde_json::to_value(record.facts()).unwrap()).unwrap();
    vd::tags::Interpreter::from_facts(&python, &record.markers().platform_system).unwrap()
}

fn freeze(server: &Sshd, targets: &[Target]) -> Vec<Record> {
    let out = server.tool("vd-freeze").stdin(jsonl(targets)).run();
    out.expect_code(0);
    out.records()
}

#[test]
fn freeze_lists_what_pip_lists_on_2_7_3_6_3_7_3_8_and_3_13_at_once() {
    let server = Sshd::start(1);
    let dir = tempfile::tempdir().unwrap();
    let six = download("six==1.16.0", &[]);
    // (version, the ABI its first tag names)
    let lines = [
        ("2.7", "cp27mu"),
        ("3.6", "cp36m"),
        ("3.7", "cp37m"),
        ("3.8", "cp38"),
        ("3.13", "cp313"),
    ];
    let mut targets = Vec::new();
    for (version, _) in &lines {
        let venv = dir.path().join(format!("venv-{version}"));
        venv_of(&pyenv_python(version), &venv);
        install_with_own_pip(&venv, &six);
        plant_egg_info(&venv);
        targets.push(server.target(0, &venv));
    }
    let records = freeze(&server, &targets);
    assert_eq!(records.len(), lines.len());
    for ((version, abi), record) in lines.iter().zip(&records) {
        let venv = Path::new(record.venv.as_deref().unwrap());
        let listed = own_pip_list(venv);
        assert_eq!(installed(record), listed, "{version}: vd-freeze and pip");
        assert!(listed.contains_key("six") && listed.contains_key("legacy-dist"));
        let python = record.facts();
        let full = python.version();
        assert!(full.starts_with(&format!("{version}.")), "{full}");
        assert_eq!(python.implementation.as_deref(), Some("cpython"));
        assert_eq!(python.venv, Some(true));
        let interp = interpreter(record);
        assert_eq!(&vd::tags::sys_tags(&interp)[0].abi, abi, "{version}");
    }
    // Python 2 has no sys.implementation: packaging's markers say "" and "0".
    assert_eq!(records[0].markers().implementation_name, "");
    assert_eq!(records[0].markers().python_version, "2.7");
}

/// The tags of an interpreter by its own packaging (and pip, where asked).
fn reference_tags(venv: &Path, code: &str) -> Vec<String> {
    lines_of(
        Command::new(venv.join("bin/python")).args(["-c", code]),
        "the venv's packaging",
    )
}

#[test]
fn tags_of_2_7_and_3_6_are_their_own_packagings() {
    let server = Sshd::start(1);
    let dir = tempfile::tempdir().unwrap();
    let cases = [("2.7", "packaging==20.9"), ("3.6", "packaging==21.3")];
    let mut venvs = Vec::new();
    for (version, packaging) in &cases {
        let venv = dir.path().join(format!("venv-{version}"));
        venv_of(&pyenv_python(version), &venv);
        let wheels = download(packaging, &["--python-version", version]);
        install_with_own_pip(&venv, &wheels);
        venvs.push(venv);
    }
    let targets: Vec<Target> = venvs.iter().map(|v| server.target(0, v)).collect();
    let records = freeze(&server, &targets);
    for (((version, packaging), venv), record) in cases.iter().zip(&venvs).zip(&records) {
        let interp = interpreter(record);
        let ours: Vec<String> = vd::tags::sys_tags(&interp)
            .iter()
            .map(ToString::to_string)
            .collect();
        let mut theirs = reference_tags(
            venv,
            "import packaging, packaging.tags\n\
             print(packaging.__version__)\n\
             for t in packaging.tags.sys_tags(): print(t)",
        );
        assert_eq!(format!("packaging=={}", theirs.remove(0)), *packaging);
        // packaging before 22 leaves cpXY-none-any out of sys_tags(); pip
        // adds it (compatible_tags with the interpreter), and pip decides.
        let interpreter_any = format!("cp{}-none-any", version.replace('.', ""));
        let without: Vec<String> = ours
            .iter()
            .filter(|t| **t != interpreter_any)
            .cloned()
            .collect();
        assert_eq!(without, theirs, "{version}: vd and {packaging}");
        assert!(ours.contains(&interpreter_any));
    }
    // pip 20.3.4, which virtualenv puts in 2.7 venvs, installs by exactly
    // these tags.
    let pip = reference_tags(
        &venvs[0],
        "import pip\n\
         from pip._internal.utils.compatibility_tags import get_supported\n\
         print(pip.__version__)\n\
         for t in get_supported(): print(t)",
    );
    assert_eq!(pip[0], "20.3.4");
    let interp = interpreter(&records[0]);
    let ours: Vec<String> = vd::tags::sys_tags(&interp)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(ours, pip[1..], "2.7: vd and pip 20.3.4");
}

/// Published wheels for one Python version, fetched once.
fn wheels_for(requirement: &str, version: &str) -> Vec<PathBuf> {
    download(requirement, &["--python-version", version])
}

/// The demo shop as a universal (py2.py3) wheel for Django 1.11 and newer:
/// the same sources as examples/demo-shop, its metadata widened.
fn legacy_shop(dir: &Path) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let tree = dir.join("legacy-shop");
    fs::create_dir_all(&tree).unwrap();
    let copied = Command::new("cp")
        .arg("-r")
        .arg(root.join("examples/demo-shop/src"))
        .arg(tree.join("src"))
        .status()
        .unwrap();
    assert!(copied.success());
    fs::write(
        tree.join("pyproject.toml"),
        "[build-system]\nrequires = [\"setuptools>=61\"]\nbuild-backend = \"setuptools.build_meta\"\n\n\
         [project]\nname = \"demo-shop\"\nversion = \"1.0\"\nrequires-python = \">=2.7\"\n\
         dependencies = [\"Django>=1.11,<6\"]\n\n[tool.setuptools.packages.find]\nwhere = [\"src\"]\n",
    )
    .unwrap();
    fs::write(tree.join("setup.cfg"), "[bdist_wheel]\nuniversal = 1\n").unwrap();
    let wheel = python::build_tree(&tree);
    let name = wheel.file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.contains("py2.py3-none-any"), "{name}");
    wheel
}

/// vd-targets | vd-freeze | vd-diff | vd-push --create | vd-migrate --plan
/// | vd-migrate | vd-reload, as one shell pipeline with the server's HOME;
/// the plan of migrations saved in planned.jsonl.
fn deploy(server: &Sshd, dir: &Path) -> Outcome {
    let tee = format!("tee {}/planned.jsonl", dir.display());
    deploy_through(server, dir, &["vd-migrate --plan", &tee])
}

#[test]
fn django_1_11_on_2_7_and_3_2_on_3_6_deploy_beside_3_11() {
    let server = Sshd::start(1);
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();

    // One repository for every interpreter: Django 1.11 with its pytz, a
    // py2-only backport, Django 3.2 with what it needs on 3.6, and
    // today's Django; vd-diff picks by Requires-Python and tags.
    let mut wheels = wheels_for("Django==1.11.29", "2.7");
    wheels.extend(wheels_for("futures==3.3.0", "2.7"));
    wheels.extend(wheels_for("Django>=3.2,<3.3", "3.6"));
    // asgiref's marker-only dependency, which pip download evaluates for
    // the Python it runs on, not the one it downloads for.
    wheels.extend(wheels_for("typing-extensions<4.2", "3.6"));
    wheels.extend(wheels_for("Django>=4.2,<6", "3.11"));
    wheels.push(legacy_shop(dir));
    let mut seen = BTreeSet::new();
    wheels.retain(|w| seen.insert(w.file_name().unwrap().to_owned()));
    let mut add = server.tool("vd-add").arg("--repo").arg(dir.join("wheels"));
    for wheel in &wheels {
        add = add.arg(wheel);
    }
    add.run().expect_code(0);
    fs::write(
        dir.join("requirements.txt"),
        "demo-shop\ndjango\npytz; python_version < \"3.8\"\n\
         asgiref; python_version >= \"3\"\nsqlparse; python_version >= \"3\"\n\
         typing-extensions; python_version >= \"3\" and python_version < \"3.8\"\n\
         futures; python_version < \"3\"\n",
    )
    .unwrap();

    // Three venvs still to create, by 2.7 (with virtualenv), 3.6 and
    // 3.11; a fourth by a 2.7 that has no virtualenv, which must fail
    // alone, saying what to install.
    let python27 = python27_with_virtualenv();
    let bare27 = dir.join("bare27");
    venv_of(&python27, &bare27);
    let bare27 = bare27.join("bin/python").display().to_string();
    let reloads = dir.join("reloads.log");
    let rows = [
        ("shop-27", python27.clone()),
        ("shop-36", pyenv_python("3.6")),
        ("shop-311", pyenv_python("3.11")),
        ("shop-bare27", bare27.clone()),
    ];
    let mut csv = String::from("host,port,user,venv,settings,reload,python\n");
    for (venv, python) in &rows {
        csv.push_str(&format!(
            "{},{},{},{}/venvs/{venv},{SETTINGS},echo {venv} >> {},{python}\n",
            server.host(0),
            server.port,
            current_user(),
            dir.display(),
            reloads.display(),
        ));
    }
    fs::write(dir.join("targets.csv"), csv).unwrap();

    let out = deploy(&server, dir);
    out.expect_code(1);
    let records = out.records();
    assert_eq!(records.len(), 4, "{}", out.stderr);
    let (good, bare) = records.split_at(3);

    let message = error_message(&bare[0]);
    assert!(
        message.contains("virtualenv is not installed for it")
            && message.contains(&format!("{bare27} -m pip install 'virtualenv<21'")),
        "{message}"
    );

    let planned = read_records(&dir.join("planned.jsonl"));
    for (record, (django, futures)) in
        good.iter()
            .zip([("1.11.29", true), ("3.2.", false), ("5.", false)])
    {
        assert!(record.error.is_none(), "{record:?}");
        let have = installed(record);
        assert!(have["django"].starts_with(django), "{have:?}");
        assert_eq!(have.contains_key("futures"), futures, "{have:?}");
        assert_eq!(have["demo-shop"], "1.0");
        // Before the migration, --plan saw it pending (2.7: showmigrations).
        let plan = planned.iter().find(|p| p.venv == record.venv).unwrap();
        assert!(
            plan.pending(SETTINGS)
                .contains(&"catalog.0001_initial".to_string()),
            "{plan:?}"
        );
        assert_shop_deployed(record);
    }
    assert_eq!(good[0].facts().version(), "2.7.18");
    assert_eq!(good[1].facts().version(), "3.6.15");

    // After migrating, the plan of 1.11 and of 3.2 is empty.
    let replan = server
        .tool("vd-migrate")
        .arg("--plan")
        .stdin(jsonl(good))
        .run();
    replan.expect_code(0);
    for record in replan.records() {
        assert_eq!(record.pending(SETTINGS), Vec::<String>::new());
    }

    // vd-diff's error for the 3.6 target, for requirements `text`.
    let refused = |name: &str, text: &str| {
        fs::write(dir.join(name), text).unwrap();
        let diff = server
            .tool("vd-diff")
            .arg("--repo")
            .arg(dir.join("wheels"))
            .arg(dir.join(name))
            .stdin(jsonl(&good[1..2]))
            .run();
        diff.expect_code(1);
        error_message(&diff.records()[0])
    };

    // A py2-only wheel is never chosen for a Python 3 target.
    assert_contains(
        &refused("py2-only.txt", "futures\n"),
        &[
            "futures 3.3.0 has wheels only for other interpreters",
            "futures-3.3.0-py2-none-any.whl",
        ],
    );

    // Requires-Python: the repository's Django 5 wheel (the newest below 6,
    // fetched for 3.11) is py3-none-any, which 3.6's tags accept; its
    // Requires-Python does not, which is why 3.6 got 3.2 above, and the
    // message says so.
    assert_contains(
        &refused("django-4.txt", "django>=4.2\n"),
        &["django 5.", "needs Python >=3.10 (Requires-Python)"],
    );
}

#[test]
fn push_works_with_pip_21_3_1_on_3_6_and_pip_20_3_4_on_2_7() {
    let server = Sshd::start(1);
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("wheels");
    let six = download("six==1.16.0", &[]);
    server
        .tool("vd-add")
        .arg("--repo")
        .arg(&repo)
        .args(&six)
        .run()
        .expect_code(0);
    fs::write(dir.path().join("requirements.txt"), "six==1.16.0\n").unwrap();
    // 3.6's venv gets ensurepip's pip 18.1; the last pip for 3.6 is 21.3.1.
    let venv36 = dir.path().join("venv-3.6");
    venv_of(&pyenv_python("3.6"), &venv36);
    install_with_own_pip(&venv36, &wheels_for("pip==21.3.1", "3.6"));
    let venv27 = dir.path().join("venv-2.7");
    venv_of(&pyenv_python("2.7"), &venv27);
    let venvs = [(&venv36, "21.3.1"), (&venv27, "20.3.4")];
    for (venv, pip) in &venvs {
        assert_eq!(own_pip_list(venv)["pip"], *pip);
    }

    let targets: Vec<Target> = venvs.iter().map(|(v, _)| server.target(0, v)).collect();
    let frozen = freeze(&server, &targets);
    let diff = server
        .tool("vd-diff")
        .arg("--repo")
        .arg(&repo)
        .arg(dir.path().join("requirements.txt"))
        .stdin(jsonl(&frozen))
        .run();
    diff.expect_code(0);
    let push = server
        .tool("vd-push")
        .arg("--repo")
        .arg(&repo)
        .stdin(jsonl(&diff.records()))
        .run();
    push.expect_code(0);
    for ((venv, _), record) in venvs.iter().zip(push.records()) {
        assert_eq!(record.changed, Some(true), "{record:?}");
        assert_eq!(record.pushed().installed, ["six==1.16.0"], "{record:?}");
        assert_eq!(installed(&record), own_pip_list(venv));
    }
}

#[test]
#[should_panic(expected = "pyenv install 2.5")]
fn a_missing_interpreter_fails_the_test_saying_how_to_get_it() {
    pyenv_python("2.5");
}

/// What the `platform` module says of an interpreter, by the names of the
/// reference script below.
#[derive(Debug, PartialEq, serde::Deserialize)]
struct Platform {
    machine: String,
    implementation: String,
    release: String,
    system: String,
    version: String,
    full: String,
    short: String,
}

/// freeze.py reads on Linux what the `platform` module would give (the
/// uname fields, the Python version) without importing it, and writes its
/// JSON without the `json` module: both are most of its start-up. The
/// facts must stay those of `platform` and `json` on every interpreter.
#[test]
fn freeze_facts_without_platform_and_json_equal_theirs_on_every_interpreter() {
    let reference = r#"
import json, os, platform, sys
print(json.dumps({
    "machine": platform.machine(), "implementation": platform.python_implementation(),
    "release": platform.release(), "system": platform.system(),
    "version": platform.version(), "full": platform.python_version(),
    "short": ".".join(platform.python_version_tuple()[:2]),
}))
"#;
    // The interpreters the other tests here need (.ci/run builds them).
    for version in ["2.7", "3.6", "3.7", "3.8", "3.11", "3.13"] {
        let python = pyenv_python(version);
        let out = Command::new(&python)
            .args(["-c", reference])
            .output()
            .unwrap();
        assert!(out.status.success(), "{python}: {out:?}");
        let want: Platform = serde_json::from_slice(&out.stdout).unwrap();
        let facts = python::freeze_script(Path::new(&python), &["--no-installed"]);
        let markers = facts.markers();
        let got = Platform {
            machine: markers.platform_machine.clone(),
            implementation: markers.platform_python_implementation.clone(),
            release: markers.platform_release.clone(),
            system: markers.platform_system.clone(),
            version: markers.platform_version.clone(),
            full: markers.python_full_version.clone(),
            short: markers.python_version.clone(),
        };
        assert_eq!(got, want, "{python}");
        assert_eq!(facts.facts().version(), want.full, "{python}");
        assert_eq!(facts.facts().machine, Some(want.machine), "{python}");
    }
}
