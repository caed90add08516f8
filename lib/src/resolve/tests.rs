//! The resolver on wheels that exist only in memory: each is a filename (for
//! its project, version and tags) and the METADATA lines it would carry.

use super::*;
use crate::requirement::Origin;
use crate::tags::Interpreter;
use serde_json::json;
use std::collections::HashMap;

#[derive(Default)]
struct Wheels {
    names: Vec<WheelName>,
    dists: Vec<Result<Dist, String>>,
    by_name: HashMap<String, Vec<usize>>,
}

impl Wheels {
    /// A wheel with its `Requires-Python` (or none) and `Requires-Dist` lines.
    fn add(mut self, file: &str, requires_python: Option<&str>, requires: &[&str]) -> Wheels {
        let name = WheelName::parse(file).unwrap();
        let dist = Dist {
            requires_python: requires_python.map(|s| s.parse().unwrap()),
            requires_dist: requires
                .iter()
                .map(|r| {
                    Requirement::parse(
                        r,
                        Origin::Wheel {
                            file: file.to_string(),
                        },
                    )
                    .unwrap()
                })
                .collect(),
        };
        self.push(name, Ok(dist));
        self
    }

    /// A wheel whose METADATA cannot be read.
    fn broken(mut self, file: &str) -> Wheels {
        let name = WheelName::parse(file).unwrap();
        self.push(name, Err(format!("{file}: METADATA is not UTF-8")));
        self
    }

    fn push(&mut self, name: WheelName, dist: Result<Dist, String>) {
        self.by_name
            .entry(name.name.clone())
            .or_default()
            .push(self.names.len());
        self.names.push(name);
        self.dists.push(dist);
        let names = &self.names;
        for ids in self.by_name.values_mut() {
            ids.sort_by(|&a, &b| names[b].version.cmp(&names[a].version).then(a.cmp(&b)));
        }
    }
}

impl Candidates for Wheels {
    fn wheels_of(&self, name: &str) -> &[usize] {
        self.by_name.get(name).map_or(&[], Vec::as_slice)
    }
    fn wheel_name(&self, wheel: usize) -> &WheelName {
        &self.names[wheel]
    }
    fn dist(&self, wheel: usize) -> Result<&Dist, String> {
        self.dists[wheel].as_ref().map_err(Clone::clone)
    }
}

/// A CPython on Linux x86_64 with glibc 2.31.
struct Python {
    env: MarkerEnvironment,
    tags: Tags,
}

fn python(version: &str) -> Python {
    let short: String = version.split('.').take(2).collect::<Vec<_>>().join(".");
    let markers = json!({
        "implementation_name": "cpython", "implementation_version": version,
        "os_name": "posix", "platform_machine": "x86_64", "platform_python_implementation": "CPython",
        "platform_release": "6.1", "platform_system": "Linux", "platform_version": "#1",
        "python_full_version": version, "python_version": short, "sys_platform": "linux",
    });
    let facts: crate::record::Facts = serde_json::from_value(
        json!({"implementation": "cpython", "version": version, "platform": "linux-x86_64",
                "soabi": format!("cpython-{}-x86_64-linux-gnu", short.replace('.', "")),
                "ext_suffix": "", "pointer_bits": 64, "libc": "glibc", "libc_version": "2.31"}),
    )
    .unwrap();
    let interpreter = Interpreter::from_facts(&facts, "Linux").unwrap();
    Python {
        env: serde_json::from_value(markers).unwrap(),
        tags: Tags::new(&interpreter),
    }
}

fn lines(texts: &[&str]) -> Vec<Requirement> {
    texts
        .iter()
        .enumerate()
        .map(|(i, t)| {
            Requirement::parse(
                t,
                Origin::File {
                    path: "reqs.txt".into(),
                    line: i + 1,
                },
            )
            .unwrap()
        })
        .collect()
}

struct Case<'a> {
    wheels: &'a Wheels,
    python: &'a Python,
    installed: BTreeMap<String, String>,
    requirements: Vec<Requirement>,
    constraints: Vec<Requirement>,
    upgrade_deps: bool,
}

impl<'a> Case<'a> {
    fn new(wheels: &'a Wheels, python: &'a Python, requirements: &[&str]) -> Case<'a> {
        Case {
            wheels,
            python,
            installed: BTreeMap::new(),
            requirements: lines(requirements),
            constraints: Vec::new(),
            upgrade_deps: false,
        }
    }

    fn installed(mut self, pairs: &[(&str, &str)]) -> Self {
        self.installed = pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        self
    }

    fn run(&self) -> Result<Resolution, String> {
        let target = Target {
            env: &self.python.env,
            tags: &self.python.tags,
            installed: &self.installed,
        };
        let request = Request {
            requirements: self.requirements.iter().collect(),
            constraints: self.constraints.iter().collect(),
            upgrade_deps: self.upgrade_deps,
        };
        resolve(self.wheels, &target, &request)
    }

    /// `name version` for each package of the closure.
    fn versions(&self) -> Vec<String> {
        let resolution = self.run().unwrap();
        resolution
            .packages
            .iter()
            .map(|(n, c)| format!("{n} {}", c.version))
            .collect()
    }
}

fn django_like() -> Wheels {
    Wheels::default()
        .add(
            "Django-5.2-py3-none-any.whl",
            Some(">=3.10"),
            &[
                "asgiref>=3.8.1",
                "sqlparse>=0.3.1",
                "tzdata; sys_platform == 'win32'",
                "argon2-cffi>=19.1.0; extra == 'argon2'",
            ],
        )
        .add(
            "Django-4.2-py3-none-any.whl",
            Some(">=3.8"),
            &[
                "asgiref<4,>=3.6.0",
                "sqlparse>=0.3.1",
                "backports.zoneinfo; python_version < '3.9'",
            ],
        )
        .add("asgiref-3.7.2-py3-none-any.whl", Some(">=3.7"), &[])
        .add("asgiref-3.8.1-py3-none-any.whl", Some(">=3.8"), &[])
        .add("sqlparse-0.5.0-py3-none-any.whl", Some(">=3.8"), &[])
        .add("tzdata-2024.1-py2.py3-none-any.whl", None, &[])
        .add(
            "backports.zoneinfo-0.2.1-cp38-cp38-manylinux1_x86_64.whl",
            Some(">=3.6"),
            &[],
        )
        .add(
            "argon2_cffi-23.1.0-py3-none-any.whl",
            Some(">=3.7"),
            &["argon2-cffi-bindings"],
        )
        .add(
            "argon2_cffi_bindings-21.2.0-cp36-abi3-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
            Some(">=3.6"),
            &[],
        )
}

#[test]
fn a_bare_name_brings_its_whole_closure_per_interpreter() {
    let wheels = django_like();
    let py311 = python("3.11.4");
    assert_eq!(
        Case::new(&wheels, &py311, &["django"]).versions(),
        ["asgiref 3.8.1", "django 5.2", "sqlparse 0.5.0"]
    );
    // Django 5.2 needs Python 3.10; on 3.8 the marker brings the backport.
    let py38 = python("3.8.18");
    assert_eq!(
        Case::new(&wheels, &py38, &["django"]).versions(),
        [
            "asgiref 3.8.1",
            "backports-zoneinfo 0.2.1",
            "django 4.2",
            "sqlparse 0.5.0"
        ]
    );
}

#[test]
fn extras_bring_their_dependencies_and_are_recorded() {
    let wheels = django_like();
    let py = python("3.12.1");
    let case = Case::new(&wheels, &py, &["Django[argon2]>=5"]);
    assert_eq!(
        case.versions(),
        [
            "argon2-cffi 23.1.0",
            "argon2-cffi-bindings 21.2.0",
            "asgiref 3.8.1",
            "django 5.2",
            "sqlparse 0.5.0"
        ]
    );
    let resolution = case.run().unwrap();
    let django = &resolution.packages["django"];
    assert!(django.named);
    assert_eq!(
        django
            .extras
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>(),
        ["argon2"]
    );
    assert!(!resolution.packages["asgiref"].named);
}

#[test]
fn dependencies_keep_a_satisfying_installed_version_unless_asked() {
    let wheels = django_like();
    let py = python("3.11.4");
    // Installed asgiref 3.7.2 satisfies nothing Django 5.2 needs (>=3.8.1).
    let upgraded = Case::new(&wheels, &py, &["django"]).installed(&[("asgiref", "3.7.2")]);
    assert!(upgraded.versions().contains(&"asgiref 3.8.1".to_string()));
    // With Django 4.2 it does, and is kept (pip's only-if-needed) …
    let mut kept = Case::new(&wheels, &py, &["django<5"]).installed(&[("asgiref", "3.7.2")]);
    assert!(kept.versions().contains(&"asgiref 3.7.2".to_string()));
    // … unless dependencies are upgraded too.
    kept.upgrade_deps = true;
    assert!(kept.versions().contains(&"asgiref 3.8.1".to_string()));
    // A named requirement gets the highest version whatever is installed.
    let named =
        Case::new(&wheels, &py, &["django<5", "asgiref"]).installed(&[("asgiref", "3.7.2")]);
    assert!(named.versions().contains(&"asgiref 3.8.1".to_string()));
}

#[test]
fn an_installed_version_the_repository_lacks_is_kept_when_it_fits() {
    let wheels = django_like();
    let py = python("3.11.4");
    let case = Case::new(&wheels, &py, &["django"]).installed(&[("sqlparse", "0.5.3")]);
    let resolution = case.run().unwrap();
    let sqlparse = &resolution.packages["sqlparse"];
    assert_eq!(sqlparse.version.to_string(), "0.5.3");
    assert!(sqlparse.wheels.is_empty());
}

#[test]
fn constraints_narrow_dependencies_without_adding_any() {
    let wheels = django_like();
    let py = python("3.11.4");
    let mut case = Case::new(&wheels, &py, &["django"]);
    case.constraints = lines(&["asgiref<3.8", "tzdata==2024.1"]);
    // asgiref<3.8 rules out Django 5.2; tzdata is not needed on Linux.
    assert_eq!(
        case.versions(),
        ["asgiref 3.7.2", "django 4.2", "sqlparse 0.5.0"]
    );
}

#[test]
fn markers_on_requirement_lines_are_per_target() {
    let wheels = django_like();
    let py38 = python("3.8.18");
    let py311 = python("3.11.4");
    let reqs = ["sqlparse", "asgiref==3.7.2; python_version < '3.10'"];
    assert_eq!(
        Case::new(&wheels, &py38, &reqs).versions(),
        ["asgiref 3.7.2", "sqlparse 0.5.0"]
    );
    assert_eq!(
        Case::new(&wheels, &py311, &reqs).versions(),
        ["sqlparse 0.5.0"]
    );
}

#[test]
fn pre_releases_only_when_asked_or_when_nothing_else_fits() {
    let wheels = Wheels::default()
        .add("a-1.0-py3-none-any.whl", None, &[])
        .add("a-2.0b1-py3-none-any.whl", None, &[])
        .add("b-1.0rc1-py3-none-any.whl", None, &[]);
    let py = python("3.11.4");
    assert_eq!(
        Case::new(&wheels, &py, &["a", "b"]).versions(),
        ["a 1.0", "b 1.0rc1"]
    );
    assert_eq!(
        Case::new(&wheels, &py, &["a>=2.0b1"]).versions(),
        ["a 2.0b1"]
    );
}

#[test]
fn the_best_fitting_wheel_comes_first() {
    let wheels = Wheels::default()
        .add("c-1.0-py3-none-any.whl", None, &[])
        .add("c-1.0-cp311-cp311-manylinux_2_17_x86_64.whl", None, &[])
        .add("c-1.0-cp312-cp312-manylinux_2_17_x86_64.whl", None, &[]);
    let py = python("3.11.4");
    let resolution = Case::new(&wheels, &py, &["c"]).run().unwrap();
    let files: Vec<&str> = resolution.packages["c"]
        .wheels
        .iter()
        .map(|&w| wheels.names[w].file.as_str())
        .collect();
    assert_eq!(
        files,
        [
            "c-1.0-cp311-cp311-manylinux_2_17_x86_64.whl",
            "c-1.0-py3-none-any.whl"
        ]
    );
}

#[test]
fn a_conflict_is_explained_with_the_lines_and_versions() {
    let wheels = django_like();
    let py = python("3.11.4");
    let e = Case::new(&wheels, &py, &["django>=5", "asgiref<3.8"])
        .run()
        .unwrap_err();
    assert!(e.starts_with("cannot resolve the requirements: "), "{e}");
    for needle in [
        "django >=5 requires asgiref >=3.8.1",
        "`django>=5` (reqs.txt line 1)",
        "`asgiref<3.8` (reqs.txt line 2)",
        "the requirements cannot all be met",
    ] {
        assert!(e.contains(needle), "{needle:?} not in: {e}");
    }
}

#[test]
fn wheels_only_for_other_interpreters_are_named() {
    let wheels = Wheels::default()
        .add("app-1.0-py3-none-any.whl", None, &["fast>=2"])
        .add("fast-2.0-cp312-cp312-manylinux_2_17_x86_64.whl", None, &[])
        .add("fast-2.0-cp313-cp313-manylinux_2_17_x86_64.whl", None, &[])
        .add("fast-1.0-cp311-cp311-manylinux_2_17_x86_64.whl", None, &[]);
    let py = python("3.11.4");
    let e = Case::new(&wheels, &py, &["app"]).run().unwrap_err();
    for needle in [
        "app ==1.0 requires fast >=2",
        "the repository has only app 1.0",
        "fast 2.0 has wheels only for other interpreters (fast-2.0-cp312-cp312-manylinux_2_17_x86_64.whl, fast-2.0-cp313-cp313-manylinux_2_17_x86_64.whl)",
        "cp311",
    ] {
        assert!(e.contains(needle), "{needle:?} not in: {e}");
    }
}

#[test]
fn requires_python_and_missing_projects_are_explained() {
    let wheels = django_like();
    let py = python("3.9.18");
    let e = Case::new(&wheels, &py, &["django>=5"]).run().unwrap_err();
    assert!(
        e.contains("django 5.2 needs Python >=3.10 (Requires-Python)"),
        "{e}"
    );
    assert!(e.contains("Python 3.9.18"), "{e}");
    let e = Case::new(&wheels, &py, &["nothere"]).run().unwrap_err();
    assert!(e.contains("the repository has no wheel of nothere"), "{e}");
    let e = Case::new(&wheels, &py, &["sqlparse>1"]).run().unwrap_err();
    assert!(
        e.contains("the repository has no sqlparse >1 (it has 0.5.0)"),
        "{e}"
    );
}

#[test]
fn unreadable_metadata_is_named_and_an_older_version_used() {
    let wheels = Wheels::default()
        .add("d-1.0-py3-none-any.whl", None, &[])
        .broken("d-2.0-py3-none-any.whl");
    let py = python("3.11.4");
    assert_eq!(Case::new(&wheels, &py, &["d"]).versions(), ["d 1.0"]);
    let e = Case::new(&wheels, &py, &["d>=2"]).run().unwrap_err();
    assert!(
        e.contains("d-2.0-py3-none-any.whl: METADATA is not UTF-8"),
        "{e}"
    );
}

#[test]
fn a_package_requiring_its_own_extra_resolves() {
    let wheels = Wheels::default()
        .add(
            "e-1.0-py3-none-any.whl",
            None,
            &["e[b]; extra == 'all'", "f; extra == 'b'"],
        )
        .add("f-1.0-py3-none-any.whl", None, &[]);
    let py = python("3.11.4");
    assert_eq!(
        Case::new(&wheels, &py, &["e[all]"]).versions(),
        ["e 1.0", "f 1.0"]
    );
}

#[test]
fn explanations_read_as_sentences() {
    // Printed for review with `--nocapture`.
    let wheels = django_like();
    let py = python("3.11.4");
    for reqs in [
        &["django>=5", "asgiref<3.8"][..],
        &["sqlparse>1"],
        &["django>=5,<5.1"],
    ] {
        println!("{}\n", Case::new(&wheels, &py, reqs).run().unwrap_err());
    }
}

/// `projects` projects of `versions` versions each, every version of one
/// excluding that version of all the others: an unsatisfiable pigeonhole.
fn pigeonhole(projects: usize, versions: usize) -> (Wheels, Vec<String>) {
    let mut wheels = Wheels::default();
    for p in 0..projects {
        for v in 1..=versions {
            let requires: Vec<String> = (0..projects)
                .filter(|q| *q != p)
                .map(|q| format!("hole{q}!={v}"))
                .collect();
            let requires: Vec<&str> = requires.iter().map(String::as_str).collect();
            wheels = wheels.add(&format!("hole{p}-{v}-py3-none-any.whl"), None, &requires);
        }
    }
    (wheels, (0..projects).map(|p| format!("hole{p}")).collect())
}

#[test]
fn a_search_that_explodes_gives_up_within_its_bound() {
    let python = python("3.11.4");
    let (wheels, names) = pigeonhole(9, 8);
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let started = std::time::Instant::now();
    let message = Case::new(&wheels, &python, &names).run().unwrap_err();
    let elapsed = started.elapsed();
    eprintln!(
        "{elapsed:?}: {} bytes: {}",
        message.len(),
        &message[..message.len().min(600)]
    );
    assert!(
        elapsed < budget::MAX_TIME + std::time::Duration::from_secs(5),
        "{elapsed:?}"
    );
    assert!(
        message.len() <= budget::MAX_EXPLANATION + 400,
        "{}",
        message.len()
    );
    assert!(message.contains("pin versions"), "{message}");
}

#[test]
fn a_conflict_too_large_to_tell_is_summed_up() {
    let python = python("3.11.4");
    let (wheels, names) = pigeonhole(7, 6);
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let message = Case::new(&wheels, &python, &names).run().unwrap_err();
    assert!(
        message.len() <= budget::MAX_EXPLANATION + 400,
        "{}",
        message.len()
    );
    assert!(message.contains("pin versions"), "{message}");
}
