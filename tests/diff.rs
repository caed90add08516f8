//! vd-diff: plans against a real repository (made by vd-add from wheels built
//! by pip or downloaded from the index), for targets whose facts come from
//! the real remote script run by a real interpreter.

use crate::util::python::{download, freeze_script, python3, wheel_with_metadata_of, Project};
use crate::util::record::{Ahead, Markers};
use crate::util::{
    assert_contains, changes, error_message as error, jsonl, lines_of, stdout_of, tool, AsRecord,
    Outcome, Record,
};
use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use tempfile::TempDir;

/// A target record as a test builds it, to feed a tool.
type Target = Map<String, Value>;

/// The test interpreter's facts, without its installed packages (tests
/// say what is installed).
fn facts() -> &'static Record {
    static FACTS: OnceLock<Record> = OnceLock::new();
    FACTS.get_or_init(|| freeze_script(Path::new(&python3()), &["--no-installed"]))
}

/// `cp311` for the test interpreter.
fn cp_tag() -> String {
    let version = facts().facts().version();
    let mut parts = version.split('.');
    format!("cp{}{}", parts.next().unwrap(), parts.next().unwrap())
}

/// A target record: the real facts, a name, and what is installed.
fn target(host: &str, installed: &[(&str, &str)]) -> Target {
    let mut r = Target::new();
    r.insert("host".into(), json!(host));
    r.insert("venv".into(), json!("/srv/app/venv"));
    r.insert("custom".into(), json!({"kept": true}));
    for (k, v) in facts().to_json() {
        r.insert(k.clone(), v.clone());
    }
    let installed: Map<String, Value> = installed
        .iter()
        .map(|(n, v)| (n.to_string(), json!(v)))
        .collect();
    r.insert("installed".into(), Value::Object(installed));
    r.insert("venv_exists".into(), json!(true));
    r
}

/// A target with nothing installed whose record asks for `packages`.
fn needing(host: &str, packages: &[&str]) -> Target {
    with(target(host, &[]), "packages", json!(packages))
}

fn with(mut r: Target, key: &str, value: Value) -> Target {
    r.insert(key.into(), value);
    r
}

/// A repository made by vd-add from these wheels.
fn repo(wheels: &[PathBuf]) -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    tool("vd-add")
        .arg("--repo")
        .arg(dir.path().join("wheels"))
        .args(wheels)
        .run()
        .expect_code(0);
    dir
}

fn wheels_dir(dir: &TempDir) -> PathBuf {
    dir.path().join("wheels")
}

fn write(dir: &TempDir, name: &str, text: &str) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, text).unwrap();
    path
}

fn sha256_of(path: &Path) -> String {
    vd::wheel::sha256_file(path).unwrap().0
}

fn diff(dir: &TempDir, args: &[&str], records: &[impl serde::Serialize]) -> Outcome {
    tool("vd-diff")
        .arg("--repo")
        .arg(wheels_dir(dir))
        .args(args)
        .current_dir(dir.path())
        .stdin(jsonl(records))
        .run()
}

// Fixture projects, built once by pip and cached.
fn alpha(version: &str) -> PathBuf {
    Project::new("alpha", version).build()
}
fn six() -> PathBuf {
    download("six==1.16.0", &[]).remove(0)
}

#[test]
fn computed_tags_match_packaging_sys_tags() {
    let f = facts();
    let python: vd::tags::Facts =
        serde_json::from_value(serde_json::to_value(f.facts()).unwrap()).unwrap();
    let interp = vd::tags::Interpreter::from_facts(&python, &f.markers().platform_system).unwrap();
    let ours: Vec<String> = vd::tags::sys_tags(&interp)
        .iter()
        .map(ToString::to_string)
        .collect();
    let list_tags = |prelude: &str| -> (String, Vec<String>) {
        let code =
            format!("{prelude}\nprint(packaging.__version__)\nfor t in sys_tags(): print(t)");
        let mut lines = lines_of(
            Command::new(python3()).args(["-c", &code]),
            "python3 with packaging",
        )
        .into_iter();
        (lines.next().unwrap(), lines.collect())
    };

    // The packaging pip vendors: what pip on this interpreter installs by.
    let (version, vendored) = list_tags(
        "from pip._vendor import packaging\nfrom pip._vendor.packaging.tags import sys_tags",
    );
    let major: u32 = version.split('.').next().unwrap().parse().unwrap();
    let mut expected = ours.clone();
    if major < 22 {
        // packaging 22.0 added the interpreter's own `cpXY-none-any` tag.
        let own = format!("{}-none-any", cp_tag());
        expected.retain(|t| *t != own);
    }
    assert_eq!(expected, vendored, "pip's vendored packaging {version}");

    // And the current packaging release, which pip will vendor next.
    let wheel = download("packaging==24.2", &["--no-deps"]).remove(0);
    let (_, current) = list_tags(&format!(
        "import sys\nsys.path.insert(0, {:?})\nimport packaging\nfrom packaging.tags import sys_tags",
        wheel.display().to_string()
    ));
    assert_eq!(ours, current, "packaging 24.2");
}

#[test]
fn plans_install_upgrade_downgrade_and_ahead() {
    let wheels = [alpha("1.0"), alpha("1.1"), alpha("2.0"), six()];
    let dir = repo(&wheels);
    let fresh = with(
        with(target("fresh", &[]), "venv_exists", json!(false)),
        "installed",
        Value::Null,
    );
    let records = [
        with(fresh, "packages", json!(["alpha", "six"])),
        with(
            target("old", &[("alpha", "1.0"), ("six", "1.16.0")]),
            "packages",
            json!(["alpha", "six"]),
        ),
        with(
            target("new", &[("alpha", "3.0")]),
            "packages",
            json!(["alpha<3"]),
        ),
        with(
            target("ahead", &[("alpha", "2.5")]),
            "packages",
            json!(["alpha>=2"]),
        ),
        with(
            target("same", &[("alpha", "2.0")]),
            "packages",
            json!("alpha six"),
        ),
    ];
    let out = diff(&dir, &[], &records);
    out.expect_code(0);
    let r = out.records();
    assert_eq!(r.len(), 5);
    assert_eq!(
        changes(&r[0]),
        ["alpha install - 2.0", "six install - 1.16.0"]
    );
    // The change names the repository's file and the sha256 of all of it.
    let plan = r[0].plan();
    assert_eq!(
        plan[1].wheel.as_deref(),
        Some("six-1.16.0-py2.py3-none-any.whl")
    );
    assert_eq!(plan[1].sha256, Some(sha256_of(&wheels[3])));
    assert_eq!(
        plan[0].sha256,
        Some(sha256_of(
            &wheels_dir(&dir).join("alpha-2.0-py3-none-any.whl")
        ))
    );
    assert_eq!(changes(&r[1]), ["alpha upgrade 1.0 2.0"]);
    assert_eq!(changes(&r[2]), ["alpha downgrade 3.0 2.0"]);
    assert!(changes(&r[3]).is_empty());
    assert_eq!(
        r[3].ahead,
        Some(vec![Ahead {
            name: "alpha".into(),
            installed: "2.5".into(),
            repository: Some("2.0".into())
        }])
    );
    assert_eq!(changes(&r[4]), ["six install - 1.16.0"]);
    assert_eq!(r[4].ahead, Some(vec![]));
    // Every field the tool does not own is kept, in place.
    for (record, raw) in r.iter().zip(out.json()) {
        assert_eq!(record.rest.get("custom"), Some(&json!({"kept": true})));
        assert_eq!(raw.keys().next().unwrap(), "host");
    }
}

#[test]
fn exact_removes_what_is_not_required() {
    let dir = repo(&[alpha("2.0"), six()]);
    write(&dir, "requirements.txt", "alpha\n");
    let installed = [
        ("alpha", "2.0"),
        ("six", "1.16.0"),
        ("pip", "24.0"),
        ("setuptools", "69.0"),
        ("wheel", "0.42"),
        ("leftover", "0.1"),
    ];
    let out = diff(
        &dir,
        &["--exact", "requirements.txt"],
        &[target("h", &installed)],
    );
    out.expect_code(0);
    assert_eq!(
        changes(&out.json()[0]),
        ["leftover remove 0.1 -", "six remove 1.16.0 -"]
    );
    // Without --exact nothing is removed.
    let out = diff(&dir, &["requirements.txt"], &[target("h", &installed)]);
    assert!(changes(&out.json()[0]).is_empty());
}

#[test]
fn markers_decide_what_applies_to_each_target() {
    let dir = repo(&[alpha("1.0"), six(), Project::new("gamma", "1.0").build()]);
    let platform = &facts().markers().sys_platform;
    write(
        &dir,
        "requirements.txt",
        &format!(
            "gamma ; python_version < \"3\"\nsix; python_version >= \"3\"\nalpha; sys_platform == '{platform}' and os_name == 'nonesuch'\n"
        ),
    );
    let out = diff(
        &dir,
        &["--exact", "requirements.txt"],
        &[target("h", &[("gamma", "1.0")])],
    );
    out.expect_code(0);
    assert_eq!(
        changes(&out.json()[0]),
        ["gamma remove 1.0 -", "six install - 1.16.0"]
    );

    // The same file, for a target whose markers say otherwise.
    let mut other = target("old-python", &[]).record();
    other.markers = Some(Markers {
        python_version: "2.7".into(),
        python_full_version: "2.7.18".into(),
        os_name: "nonesuch".into(),
        ..facts().markers().clone()
    });
    let out = diff(&dir, &["requirements.txt"], &[other]);
    out.expect_code(0);
    assert_eq!(
        changes(&out.json()[0]),
        ["alpha install - 1.0", "gamma install - 1.0"]
    );
}

fn beta() -> PathBuf {
    Project::new("beta", "1.0")
        .requires("alpha>=1.1")
        .requires("nonesuch>=1; python_version < '3'")
        .extra("fast", &["gamma>=1.0"])
        .build()
}

#[test]
fn extras_and_dependencies_are_checked() {
    let gamma = Project::new("gamma", "1.0").build();
    let dir = repo(&[alpha("1.0"), alpha("1.1"), beta(), gamma]);

    // Dependencies met by the plan; a dependency whose marker is false is
    // not needed.
    let out = diff(&dir, &[], &[needing("a", &["beta", "alpha"])]);
    out.expect_code(0);
    assert_eq!(
        changes(&out.json()[0]),
        ["alpha install - 1.1", "beta install - 1.0"]
    );

    // The extra brings gamma; beta's dependency on alpha is resolved: kept
    // when installed and satisfying, upgraded when not, installed when
    // missing, and a conflict when a requirement line rules it out.
    let records = [
        with(
            target("b", &[]),
            "packages",
            json!(["beta[fast]", "alpha", "gamma"]),
        ),
        with(
            target("c", &[("gamma", "1.0")]),
            "packages",
            json!(["beta[fast]", "alpha"]),
        ),
        with(target("d", &[]), "packages", json!(["beta[fast]", "alpha"])),
        needing("e", &["beta", "alpha==1.0"]),
        with(
            target("f", &[("alpha", "1.0")]),
            "packages",
            json!(["beta"]),
        ),
        needing("g", &["beta"]),
        with(
            target("i", &[("alpha", "1.1"), ("gamma", "0.5")]),
            "packages",
            json!(["beta"]),
        ),
    ];
    let out = diff(&dir, &[], &records);
    out.expect_code(1);
    let r = out.json();
    assert_eq!(changes(&r[0]).len(), 3);
    assert_eq!(changes(&r[1]).len(), 2);
    assert_eq!(
        changes(&r[2]),
        [
            "alpha install - 1.1",
            "beta install - 1.0",
            "gamma install - 1.0"
        ]
    );
    assert_contains(
        &error(&r[3]),
        &[
            "beta requires alpha >=1.1",
            "`alpha==1.0` (field `packages`)",
            "the requirements cannot all be met",
        ],
    );
    assert_eq!(
        changes(&r[4]),
        ["alpha upgrade 1.0 1.1", "beta install - 1.0"]
    );
    assert_eq!(
        changes(&r[5]),
        ["alpha install - 1.1", "beta install - 1.0"]
    );
    // Without the extra, gamma is not needed and stays as it is.
    assert_eq!(changes(&r[6]), ["beta install - 1.0"]);

    // --exact keeps the dependencies of what is required, and removes the
    // rest.
    let out = diff(
        &dir,
        &["--exact"],
        &[with(
            target("h", &[("alpha", "1.1"), ("gamma", "1.0")]),
            "packages",
            json!(["beta"]),
        )],
    );
    out.expect_code(0);
    assert_eq!(
        changes(&out.json()[0]),
        ["beta install - 1.0", "gamma remove 1.0 -"]
    );
}

#[test]
fn pre_releases_only_when_the_specifier_names_one() {
    let dir = repo(&[
        Project::new("omega", "1.0").build(),
        Project::new("omega", "2.0b1").build(),
    ]);
    let plan_for = |spec: &str| {
        let out = diff(&dir, &[], &[needing("h", &[spec])]);
        out.json().remove(0)
    };
    assert_eq!(changes(&plan_for("omega")), ["omega install - 1.0"]);
    assert_eq!(
        changes(&plan_for("omega>=2.0b1")),
        ["omega install - 2.0b1"]
    );
    assert_eq!(
        changes(&plan_for("omega==2.0b1")),
        ["omega install - 2.0b1"]
    );
    // Only a pre-release satisfies: PEP 440 (and pip) accept it then.
    assert_eq!(changes(&plan_for("omega>1.0")), ["omega install - 2.0b1"]);
    assert_contains(
        &error(&plan_for("omega>2.0")),
        &[
            "the repository has no omega >2.0 (it has 2.0b1, 1.0)",
            "`omega>2.0`",
        ],
    );
}

#[test]
fn requires_python_rules_out_a_version() {
    let future = Project {
        requires_python: Some(">=3.99".to_string()),
        ..Project::new("zeta", "2.0")
    }
    .build();
    let dir = repo(&[Project::new("zeta", "1.0").build(), future]);
    let out = diff(&dir, &[], &[needing("h", &["zeta"])]);
    out.expect_code(0);
    assert_eq!(changes(&out.json()[0]), ["zeta install - 1.0"]);
    let out = diff(&dir, &[], &[needing("h", &["zeta>=2"])]);
    out.expect_code(1);
    assert_contains(
        &error(&out.json()[0]),
        &[
            "no zeta >=2 can be installed on this interpreter",
            "zeta 2.0 needs Python >=3.99 (Requires-Python)",
        ],
    );
}

#[test]
fn binary_wheels_are_chosen_for_the_interpreter() {
    let machine = facts().facts().machine.clone().unwrap();
    let cp = cp_tag();
    let other = if cp == "cp311" { "cp312" } else { "cp311" };
    let fetch = |cp: &str| {
        let version = format!("{}.{}", &cp[2..3], &cp[3..]);
        download(
            "markupsafe==3.0.2",
            &[
                "--no-deps",
                "--platform",
                &format!("manylinux2014_{machine}"),
                "--python-version",
                &version,
                "--implementation",
                "cp",
                "--abi",
                cp,
            ],
        )
        .remove(0)
    };
    let own = fetch(&cp);
    let foreign = fetch(other);
    // A pure build of the same version: compatible, but less specific.
    let pure = Project::new("MarkupSafe", "3.0.2").build();
    let dir = repo(&[foreign.clone(), own.clone(), pure]);
    let out = diff(&dir, &[], &[needing("h", &["MarkupSafe==3.0.2"])]);
    out.expect_code(0);
    let r = out.records();
    let plan = r[0].plan();
    assert_eq!(
        plan[0].wheel.as_deref(),
        Some(own.file_name().unwrap().to_str().unwrap())
    );
    assert_eq!(plan[0].name, "markupsafe");

    // Only another Python's wheel: an error that names it.
    let dir = repo(std::slice::from_ref(&foreign));
    let out = diff(&dir, &[], &[needing("h", &["markupsafe"])]);
    out.expect_code(1);
    assert_contains(
        &error(&out.json()[0]),
        &[
            "the requirements ask for markupsafe (`markupsafe` (field `packages`))",
            &format!(
                "markupsafe 3.0.2 has wheels only for other interpreters ({})",
                foreign.file_name().unwrap().to_str().unwrap()
            ),
        ],
    );
}

#[test]
fn a_pip_compile_lock_file_with_hashes() {
    let six = six();
    let sha = sha256_of(&six);
    let dir = repo(&[six.clone(), alpha("1.0")]);
    let lock = |hashes: &[&str]| {
        let mut text = String::from(
            "#\n# This file is autogenerated by pip-compile with Python 3.11\n#\n#    pip-compile --generate-hashes requirements.in\n#\nsix==1.16.0 \\\n",
        );
        for (i, h) in hashes.iter().enumerate() {
            let end = if i + 1 < hashes.len() { " \\" } else { "" };
            text.push_str(&format!("    --hash=sha256:{h}{end}\n"));
        }
        text.push_str("    # via -r requirements.in\nalpha==1.0\n    # via -r requirements.in\n");
        text
    };
    let other = "0".repeat(64);
    write(&dir, "good.txt", &lock(&[&other, &sha]));
    let out = diff(&dir, &["good.txt"], &[target("h", &[])]);
    out.expect_code(0);
    assert_eq!(
        changes(&out.json()[0]),
        ["alpha install - 1.0", "six install - 1.16.0"]
    );

    // pip-compile's header may say where it found the packages: ignored,
    // with a warning, since vd reads its repository.
    write(
        &dir,
        "indexed.txt",
        &format!(
            "--index-url https://pypi.org/simple\n--extra-index-url https://example.com/simple\n--trusted-host example.com\n--find-links ./dist\n{}",
            lock(&[&sha])
        ),
    );
    let out = diff(&dir, &["indexed.txt"], &[target("h", &[])]);
    out.expect_code(0)
        .expect_stderr("indexed.txt line 1: --index-url https://pypi.org/simple ignored")
        .expect_stderr("indexed.txt line 4: --find-links ./dist ignored");
    assert_eq!(changes(&out.json()[0]).len(), 2);

    write(&dir, "bad.txt", &lock(&[&other, &"f".repeat(64)]));
    let out = diff(&dir, &["bad.txt"], &[target("h", &[])]);
    out.expect_code(1);
    assert_contains(
        &error(&out.json()[0]),
        &[
            "no wheel of six 1.16.0 matches the hashes of bad.txt line 6",
            &format!("six-1.16.0-py2.py3-none-any.whl (sha256 {sha})"),
        ],
    );
}

#[test]
fn includes_and_constraints() {
    let dir = repo(&[
        alpha("1.0"),
        alpha("1.1"),
        alpha("2.0"),
        six(),
        Project::new("gamma", "1.0").build(),
    ]);
    write(
        &dir,
        "deploy/requirements.txt",
        "-r base/common.txt\n--constraint=base/pins.txt\n",
    );
    write(
        &dir,
        "deploy/base/common.txt",
        "alpha\nsix\n-c ../extra-pins.txt\n",
    );
    write(&dir, "deploy/base/pins.txt", "alpha<2\ngamma==1.0\n");
    write(&dir, "deploy/extra-pins.txt", "six<1.16\n");
    let out = diff(&dir, &["deploy/requirements.txt"], &[target("h", &[])]);
    out.expect_code(1);
    assert_contains(
        &error(&out.json()[0]),
        &[
            "the repository has no six <1.16 (it has 1.16.0)",
            "constraint `six<1.16` (deploy/base/../extra-pins.txt line 1)",
        ],
    );
    write(&dir, "deploy/extra-pins.txt", "six<=1.16\n");
    let out = diff(&dir, &["deploy/requirements.txt"], &[target("h", &[])]);
    out.expect_code(0);
    // Constraints limit alpha, and install nothing (no gamma).
    assert_eq!(
        changes(&out.json()[0]),
        ["alpha install - 1.1", "six install - 1.16.0"]
    );
}

#[test]
fn requirements_from_the_record() {
    let dir = repo(&[alpha("1.0"), six()]);
    write(&dir, "app/requirements.txt", "alpha\n");
    write(
        &dir,
        "app/broken.txt",
        "alpha\n-e git+https://example.com/x.git\n",
    );
    let records = [
        with(
            with(
                target("a", &[]),
                "requirements",
                json!("app/requirements.txt"),
            ),
            "packages",
            json!(["six"]),
        ),
        with(target("b", &[]), "requirements", json!("app/broken.txt")),
        with(target("c", &[]), "requirements", json!("app/missing.txt")),
        target("d", &[]),
    ];
    let out = diff(&dir, &[], &records);
    out.expect_code(1);
    let r = out.json();
    assert_eq!(
        changes(&r[0]),
        ["alpha install - 1.0", "six install - 1.16.0"]
    );
    assert_contains(
        &error(&r[1]),
        &["app/broken.txt line 2: editable installs (-e)"],
    );
    assert_contains(
        &error(&r[2]),
        &["cannot read requirements file app/missing.txt"],
    );
    assert_contains(&error(&r[3]), &["no requirements"]);
    out.expect_stderr("vd-diff: b:/srv/app/venv: app/broken.txt line 2");
}

#[test]
fn bad_requirements_files_name_file_and_line() {
    let dir = repo(&[alpha("1.0")]);
    for (text, needle) in [
        (
            "alpha\n\nalpha @ https://example.com/alpha-1.0-py3-none-any.whl\n",
            "req.txt line 3: `alpha @ https://example.com/alpha-1.0-py3-none-any.whl`: URLs",
        ),
        (
            "https://example.com/alpha.tar.gz\n",
            "req.txt line 1: `https://example.com/alpha.tar.gz`: URLs and paths",
        ),
        ("# c\n-e .\n", "req.txt line 2: editable installs (-e)"),
        (
            "git+https://example.com/alpha.git#egg=alpha\n",
            "req.txt line 1",
        ),
        (
            "--no-binary :all:\nalpha\n",
            "req.txt line 1: pip option --no-binary",
        ),
        (
            "alpha \\\n  --install-option=x\n",
            "req.txt line 1: pip option --install-option",
        ),
        (
            "alpha; '3' ~= sys_platform\n",
            "req.txt line 1: `alpha; '3' ~= sys_platform`",
        ),
        (
            "alpha; python_version ~= '3'\n",
            "req.txt line 1: `alpha; python_version ~= '3'`: marker cannot be evaluated",
        ),
        ("alpha >=1 <2\n", "req.txt line 1: `alpha >=1 <2`"),
        (
            "alpha==1.0 --hash=sha256:abc\n",
            "req.txt line 1: --hash=sha256:abc",
        ),
        (
            "-r other.txt\n",
            "req.txt line 1: -r other.txt: cannot read requirements file",
        ),
    ] {
        write(&dir, "req.txt", text);
        let out = diff(&dir, &["req.txt"], &[target("h", &[])]);
        out.expect_code(2).expect_stderr(needle);
        assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
        assert_eq!(out.stdout, "");
    }
}

#[test]
fn conflicting_and_missing_requirements() {
    let dir = repo(&[alpha("1.0"), alpha("2.0")]);
    write(&dir, "a.txt", "alpha>=2\n");
    write(&dir, "b.txt", "# pinned\nalpha<2\n");
    let out = diff(&dir, &["a.txt", "b.txt"], &[target("h", &[])]);
    out.expect_code(1);
    assert_eq!(
        error(&out.json()[0]),
        "cannot resolve the requirements: alpha is required as `alpha>=2` (a.txt line 1) and `alpha<2` (b.txt line 2), and no version satisfies all of them (the repository has 2.0, 1.0)"
    );

    write(&dir, "c.txt", "alpha>=5\nnonesuch==1.0\n");
    let out = diff(&dir, &["c.txt"], &[target("h", &[])]);
    out.expect_code(1);
    let message = error(&out.json()[0]);
    assert_contains(
        &message,
        &[
            "the repository has no alpha >=5 (it has 2.0, 1.0)",
            "`alpha>=5` (c.txt line 1)",
        ],
    );
    // Each problem is told on its own: pubgrub stops at the first.
    write(&dir, "d.txt", "alpha\nnonesuch==1.0\n");
    let out = diff(&dir, &["d.txt"], &[target("h", &[])]);
    out.expect_code(1);
    assert_contains(
        &error(&out.json()[0]),
        &[
            "the repository has no wheel of nonesuch",
            "`nonesuch==1.0` (d.txt line 2)",
        ],
    );
}

#[test]
fn bad_lines_and_failed_records() {
    let dir = repo(&[alpha("1.0")]);
    write(&dir, "req.txt", "alpha\n");
    let failed = r#"{"host":"x","venv":"/v","error":{"tool":"vd-freeze","message":"ssh: refused"},"plan":[]}"#;
    let mut no_facts = target("nofacts", &[]);
    no_facts.remove("python");
    let mut bad_installed = target("badinstalled", &[]);
    bad_installed.insert("installed".into(), json!({"alpha": 1}));
    let input = format!(
        "{}\nnot json\n{failed}\n{}\n{}\n{}\n",
        serde_json::to_string(&target("a", &[])).unwrap(),
        serde_json::to_string(&no_facts).unwrap(),
        serde_json::to_string(&bad_installed).unwrap(),
        serde_json::to_string(&target("b", &[("alpha", "not a version!")])).unwrap(),
    );
    let out = tool("vd-diff")
        .arg("--repo")
        .arg(wheels_dir(&dir))
        .arg(dir.path().join("req.txt"))
        .stdin(input)
        .run();
    out.expect_code(1);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 6);
    let r = out.json();
    assert_eq!(changes(&r[0]), ["alpha install - 1.0"]);
    assert_eq!(
        error(&r[1]),
        "stdin line 2: not JSON: expected ident at line 1 column 2"
    );
    assert_eq!(lines[2], failed, "a failed record passes through untouched");
    assert_eq!(error(&r[3]), "missing field `python` (run vd-freeze first)");
    assert_contains(
        &error(&r[4]),
        &["field `installed`: version of alpha must be a string"],
    );
    assert_contains(&error(&r[5]), &["alpha is installed at \"not a version!\""]);
}

#[test]
fn a_real_venv_frozen_and_planned() {
    let six = six();
    let dir = repo(&[alpha("1.0"), alpha("2.0"), six]);
    let venv = dir.path().join("venv");
    stdout_of(
        Command::new(python3()).args(["-m", "venv"]).arg(&venv),
        "python3 -m venv",
    );
    stdout_of(
        Command::new(venv.join("bin/python"))
            .args(["-m", "pip", "install", "-q", "--no-index", "--no-deps"])
            .arg(wheels_dir(&dir).join("alpha-1.0-py3-none-any.whl")),
        "pip install",
    );
    let mut record = freeze_script(&venv.join("bin/python"), &[]);
    record.host = Some("localhost".into());
    record.venv = Some(venv.to_str().unwrap().into());
    assert_eq!(
        record.installed().get("alpha").map(String::as_str),
        Some("1.0")
    );
    assert!(record.installed().contains_key("pip"));
    write(&dir, "requirements.txt", "alpha==2.0\nsix\n");
    let out = diff(&dir, &["--exact", "requirements.txt"], &[record]);
    out.expect_code(0);
    // pip (and setuptools, where the venv has it) stay.
    assert_eq!(
        changes(&out.json()[0]),
        ["alpha upgrade 1.0 2.0", "six install - 1.16.0"]
    );
}

#[test]
fn a_rebuilt_wheel_wins_over_its_first_build() {
    let first = alpha("1.0");
    let dist = tempfile::tempdir().unwrap();
    let rebuilt = dist.path().join("alpha-1.0-2-py3-none-any.whl");
    std::fs::copy(&first, &rebuilt).unwrap();
    let dir = repo(&[first, rebuilt]);
    let out = diff(&dir, &[], &[needing("h", &["alpha"])]);
    out.expect_code(0);
    assert_eq!(
        out.records()[0].plan()[0].wheel.as_deref(),
        Some("alpha-1.0-2-py3-none-any.whl")
    );
}

#[test]
fn interpreter_facts_beyond_any_real_one_fail_their_target_only() {
    let dir = repo(&[alpha("1.0")]);
    write(&dir, "requirements.txt", "alpha\n");
    let odd = |host: &str, key: &str, value: &str| {
        let mut r = target(host, &[]);
        let python = r.get_mut("python").unwrap().as_object_mut().unwrap();
        python.insert("libc".into(), json!("glibc"));
        python.insert(key.into(), json!(value));
        r
    };
    let records = [
        odd("version-a", "version", "3.1000000"),
        odd("libc-a", "libc_version", "2.10000000"),
        target("fine", &[]),
        odd("version-b", "version", "3.100000"),
        odd("libc-b", "libc_version", "2.100000"),
        odd("major", "version", "4000000000.1"),
    ];
    let started = std::time::Instant::now();
    let out = diff(&dir, &["requirements.txt"], &records);
    let took = started.elapsed();
    out.expect_code(1);
    let got = out.json();
    assert_eq!(got.len(), records.len(), "{out:?}");
    assert_eq!(
        changes(&got[2]),
        vec!["alpha install - 1.0"],
        "{:?}",
        got[2]
    );
    for (i, (field, value)) in [
        (0, ("version", "3.1000000")),
        (1, ("libc_version", "2.10000000")),
        (3, ("version", "3.100000")),
        (4, ("libc_version", "2.100000")),
        (5, ("version", "4000000000.1")),
    ] {
        assert_contains(&error(&got[i]), &[field, value]);
    }
    assert!(
        took < std::time::Duration::from_secs(10),
        "odd facts took {took:?}"
    );
}

#[test]
fn a_requirements_file_that_is_a_device_or_a_fifo_fails_its_target_only() {
    let dir = repo(&[alpha("1.0")]);
    write(&dir, "requirements.txt", "alpha\n");
    let fifo = dir.path().join("fifo.txt");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success(), "mkfifo failed");
    let records = [
        with(target("zero", &[]), "requirements", json!("/dev/zero")),
        with(target("fifo", &[]), "requirements", json!("fifo.txt")),
        with(
            target("fine", &[]),
            "requirements",
            json!("requirements.txt"),
        ),
    ];
    let started = std::time::Instant::now();
    let out = tool("vd-diff")
        .arg("--repo")
        .arg(wheels_dir(&dir))
        .current_dir(dir.path())
        .stdin(jsonl(&records))
        .spawn()
        .finish_by(started + std::time::Duration::from_secs(30))
        .expect("vd-diff still read a requirements file after 30 s");
    out.expect_code(1);
    let got = out.json();
    assert_contains(
        &error(&got[0]),
        &["requirements file /dev/zero: not a regular file (a character device)"],
    );
    assert_contains(
        &error(&got[1]),
        &["requirements file fifo.txt: not a regular file (a FIFO)"],
    );
    assert_eq!(changes(&got[2]), vec!["alpha install - 1.0"]);
}

#[test]
fn errors_about_a_private_file_name_its_line_and_quote_none_of_it() {
    use std::os::unix::fs::PermissionsExt;
    let dir = repo(&[alpha("1.0")]);
    // Files a record may name that are not requirements files, readable by
    // this user only, as /etc/shadow and private keys are.
    let secrets = [
        ("shadow", "root:$6$SECRET0salt$hash:19000:0:99999:7:::\n"),
        ("key", "alpha\n-----BEGIN SECRET1 PRIVATE KEY-----\n"),
        ("netrc", "https://bob:SECRET2@example.com/x\n"),
        ("token", "# a token\nSECRET3 SECRET4\n"),
        ("hash", "alpha --hash=sha256:SECRET5\n"),
        ("index", "--index-url https://SECRET6@example.com alpha\n"),
        ("include", "-r SECRET7.txt\n"),
    ];
    let mut records = Vec::new();
    for (name, text) in secrets {
        write(&dir, name, text);
        let path = dir.path().join(name);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        records.push(with(
            target(name, &[]),
            "requirements",
            json!(path.display().to_string()),
        ));
    }
    // The same bad line in a file everyone may read is quoted, as before.
    write(&dir, "public.txt", "SECRET3 SECRET4\n");
    let public = dir.path().join("public.txt");
    std::fs::set_permissions(&public, std::fs::Permissions::from_mode(0o644)).unwrap();
    records.push(with(
        target("public", &[]),
        "requirements",
        json!(public.display().to_string()),
    ));
    let out = diff(&dir, &[], &records);
    out.expect_code(1);
    let r = out.json();
    let lines = [1, 2, 1, 2, 1, 1, 1];
    for (i, ((name, _), line)) in secrets.iter().zip(lines).enumerate() {
        let message = error(&r[i]);
        let path = dir.path().join(name);
        assert_contains(&message, &[&format!("{} line {line}", path.display())]);
        assert!(!message.contains("SECRET"), "{name}: {message}");
    }
    for secret in [
        "SECRET0", "SECRET1", "SECRET2", "SECRET5", "SECRET6", "SECRET7",
    ] {
        assert!(!out.stderr.contains(secret), "{}", out.stderr);
    }
    assert_contains(&error(&r[7]), &["`SECRET3 SECRET4`"]);
    assert_contains(&error(&r[3]), &["column 9", "not shown"]);
}

#[test]
fn a_wheel_with_huge_metadata_put_in_the_repository_by_hand_fails_its_target_only() {
    let dir = repo(&[alpha("1.0")]);
    // Not through vd-add, which refuses it: copied in by hand.
    wheel_with_metadata_of(&wheels_dir(&dir), 40 << 20);
    write(&dir, "huge.txt", "vd-huge\n");
    write(&dir, "fine.txt", "alpha\n");
    let records = [
        with(target("huge", &[]), "requirements", json!("huge.txt")),
        with(target("fine", &[]), "requirements", json!("fine.txt")),
    ];
    let out = diff(&dir, &[], &records);
    out.expect_code(1);
    let r = out.json();
    assert_contains(&error(&r[0]), &["vd_huge-1.0-py3-none-any.whl", "METADATA"]);
    assert_eq!(changes(&r[1]), ["alpha install - 1.0"]);
}

/// Targets of one kind (same facts, installed set and requirements) are
/// planned once, and each of the others is written without being read
/// whole: what comes out must be, line for line, what vd-diff writes for
/// each record on its own.
#[test]
fn targets_of_one_kind_come_out_as_each_would_alone() {
    let dir = repo(&[alpha("1.0"), alpha("2.0"), six()]);
    let kind = |host: &str| {
        with(
            target(host, &[("alpha", "1.0")]),
            "packages",
            json!(["alpha", "six"]),
        )
    };
    // With generations, the plan names the wheels of what stays.
    let current = |host: &str| {
        with(
            target(host, &[("alpha", "2.0")]),
            "packages",
            json!(["alpha", "six"]),
        )
    };
    let mut stale = Target::new();
    stale.insert("host".into(), json!("stale"));
    stale.insert("plan".into(), json!("from an earlier run"));
    stale.insert("unchanged".into(), json!(["left over"]));
    for (k, v) in kind("stale") {
        stale.entry(k).or_insert(v);
    }
    let compact = |r: &Target| serde_json::to_string(r).unwrap();
    // Spaces between the tokens, as Python's json.dumps writes them.
    let spaced = |r: &Target| compact(r).replace("\":", "\": ").replace(",\"", ", \"");
    let lines = [
        compact(&kind("web1")),
        compact(&kind("web2")),
        spaced(&kind("web3")),
        spaced(&kind("web4")),
        compact(&stale),
        compact(&with(kind("badport"), "port", json!("twenty-two"))),
        compact(&with(
            kind("failed"),
            "error",
            json!({"tool": "vd-freeze", "message": "ssh: refused"}),
        )),
        compact(&with(current("gen1"), "generations", json!(2))),
        compact(&with(current("gen2"), "generations", json!(2))),
        compact(&with(
            kind("quoted"),
            "note",
            json!("é \"quoted\" \\ \t tab"),
        )),
        compact(&with(
            kind("web5"),
            "python",
            serde_json::to_value(&facts().python).unwrap(),
        )),
    ];
    let run = |input: String| {
        tool("vd-diff")
            .arg("--repo")
            .arg(wheels_dir(&dir))
            .stdin(input)
            .run()
    };
    let together = run(lines.iter().map(|l| format!("{l}\n")).collect());
    together.expect_code(1);
    let alone: Vec<String> = lines
        .iter()
        .map(|line| run(format!("{line}\n")).stdout)
        .collect();
    let out: Vec<&str> = together.stdout.lines().collect();
    assert_eq!(out.len(), lines.len());
    for (i, line) in out.iter().enumerate() {
        assert_eq!(format!("{line}\n"), alone[i], "record {i}");
    }
    let r = together.json();
    assert_eq!(
        changes(&r[1]),
        ["alpha upgrade 1.0 2.0", "six install - 1.16.0"]
    );
    // A stale plan is replaced where it was, a stale `unchanged` dropped.
    let keys: Vec<&String> = r[4].keys().collect();
    assert_eq!(keys[..2], ["host", "plan"]);
    assert!(!r[4].contains_key("unchanged"));
    // Each target is still checked: a bad field fails its own record.
    assert_contains(&error(&r[5]), &["port"]);
    assert_eq!(out[6], lines[6], "a failed record passes through");
    assert!(r[8].contains_key("unchanged") && !r[1].contains_key("unchanged"));
    assert_eq!(
        r[9].record().rest.get("note"),
        Some(&json!("é \"quoted\" \\ \t tab"))
    );
    assert!(together.stderr.contains("badport"));
}
