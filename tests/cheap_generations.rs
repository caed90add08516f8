//! A new generation built as a copy of the active one (hard links on this
//! machine's ext4), with only the plan's changes installed: against a real
//! sshd on loopback, real virtualenvs and real Django wheels. The active
//! generation must not change by one byte while the next is built, and a
//! copy that cannot be trusted, or fails, is built in full instead.

use crate::generations::{active, generations_target, kept, Service};
use crate::push::{assert_ok, plan, push, requirements, wheel};
use crate::util::python::{
    download, install, pip_list, site_packages, venv_with_pip, wheel_with_files,
};
use crate::util::record::Built;
use crate::util::sshd::Sshd;
use crate::util::{repo, stdout_of, Outcome, Record};
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Every file, link and folder under `root`: a file's sha256, mode, size
/// and mtime, a link's target, a folder's mode; by path under `root`.
fn state_of(root: &Path) -> BTreeMap<String, String> {
    let mut state = BTreeMap::new();
    let listed = stdout_of(
        Command::new("find")
            .arg(root)
            .args(["-printf", "%P\\t%y %m %s %T@ %l\\n"]),
        "find",
    );
    for line in listed.lines() {
        let (path, what) = line.split_once('\t').unwrap();
        let what = match what.starts_with('d') {
            // A folder's size and mtime change with its entries; no
            // build adds one to the active generation, which the files'
            // own entries would show.
            true => what.split(' ').take(2).collect::<Vec<_>>().join(" "),
            false => what.to_string(),
        };
        state.insert(path.to_string(), what);
    }
    let sums = stdout_of(
        Command::new("sh")
            .arg("-c")
            .arg("cd \"$1\" && find . -type f -print0 | xargs -0 sha256sum")
            .arg("sh")
            .arg(root),
        "sha256sum",
    );
    for line in sums.lines() {
        let (sum, path) = line.split_once("  ./").unwrap();
        state.get_mut(path).unwrap().push_str(&format!(" {sum}"));
    }
    state
}

/// How `record`'s push built its generation.
#[track_caller]
fn built(record: &Record) -> Built {
    let pushed = record.pushed.as_ref().expect("no pushed");
    pushed.built.clone().expect("no pushed.built")
}

/// The record of a push that must succeed.
#[track_caller]
fn pushed_ok(out: &Outcome) -> Record {
    out.expect_code(0);
    let record = out.records().remove(0);
    assert_ok(&record);
    record
}

/// The generations' folder of `venv`, and generation `n`'s folder in it.
fn generation_dir(venv: &Path, n: u32) -> PathBuf {
    PathBuf::from(format!("{}.generations/{n}", venv.display()))
}

/// The one file under `dir` whose name starts with `prefix`.
fn file_starting(dir: &Path, prefix: &str) -> PathBuf {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
        .unwrap_or_else(|| panic!("no {prefix}* in {}", dir.display()))
}

#[test]
fn the_active_generation_keeps_every_byte_while_the_next_is_copied_from_it() {
    let server = Sshd::start(1);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut wheels = download("Django>=4.2,<6", &[]);
    let (alpha1, alpha2, beta) = (
        wheel("vdp-alpha", "1.0"),
        wheel("vdp-alpha", "2.0"),
        wheel("vdp-beta", "1.0"),
    );
    wheels.extend([alpha1.clone(), alpha2, beta]);
    let repo = repo(d, &wheels);
    let v = d.join("venv");
    venv_with_pip(&v);
    install(&v, std::slice::from_ref(&alpha1));
    let t = generations_target(&server, &v, &d.join("cache"), 3);

    // An adopted venv is no build of vd-push's: generation 2 is built in full.
    let one = requirements(d, "one.txt", "django\nvdp-alpha==1.0\nvdp-beta\n");
    let plans = plan(&server, &repo, &one, false, std::slice::from_ref(&t));
    let record = pushed_ok(&push(&server, &repo, &["--adopt"], &plans));
    let full = built(&record);
    assert_eq!((full.way.as_str(), full.from), ("full", None));
    assert!(full
        .why
        .unwrap()
        .contains("generation 1 was not built by vd-push"));
    assert_eq!(active(&v), "2");

    // A process of generation 2 that has imported nothing yet.
    let mut old = Service::start(&v);
    let two = generation_dir(&v, 2);
    let before = state_of(&two);
    let two_txt = requirements(d, "two.txt", "django\nvdp-alpha==2.0\nvdp-beta\n");
    let plans = plan(&server, &repo, &two_txt, false, std::slice::from_ref(&t));
    let record = pushed_ok(&push(&server, &repo, &[], &plans));
    let copy = built(&record);
    assert_eq!(
        (copy.way.as_str(), copy.from, copy.why),
        ("copy", Some(2), None)
    );
    assert_eq!(active(&v), "3");
    assert_eq!(pip_list(&v)["vdp-alpha"], "2.0");

    // Not one byte, mode or mtime of generation 2 changed, and its process
    // imports its unchanged modules from it after the switch.
    let after = state_of(&two);
    let changed: Vec<_> = before
        .iter()
        .filter(|(path, was)| after.get(*path) != Some(was))
        .map(|(path, _)| path)
        .collect();
    assert!(changed.is_empty(), "generation 2 changed: {changed:?}");
    assert_eq!(before.len(), after.len());
    let beta_seen = old.import("vdp_beta");
    assert!(
        beta_seen.starts_with("1.0 ") && beta_seen.contains(".generations/2/"),
        "{beta_seen}"
    );
    let django_seen = old.import("django");
    assert!(django_seen.contains(".generations/2/"), "{django_seen}");
    let mut new = Service::start(&v);
    let alpha_seen = new.import("vdp_alpha");
    assert!(
        alpha_seen.starts_with("2.0 ") && alpha_seen.contains(".generations/3/"),
        "{alpha_seen}"
    );

    // Generation 3 names its own path, keeps the unchanged packages'
    // bytecode, and has files of its own where the install wrote.
    let three = generation_dir(&v, 3);
    let admin = fs::read_to_string(three.join("bin/django-admin")).unwrap();
    let shebang = format!("#!{}/bin/python", three.display());
    assert!(admin.starts_with(&shebang), "{admin}");
    for file in ["pyvenv.cfg", "bin/activate", "bin/django-admin"] {
        let text = fs::read_to_string(three.join(file)).unwrap();
        assert!(
            !text.contains(&format!("{}/", two.display())),
            "{file}: {text}"
        );
    }
    let (site2, site3) = (site_packages(&two), site_packages(&three));
    let beta_pyc = file_starting(&site3.join("__pycache__"), "vdp_beta.");
    let beta_pyc_was = site2
        .join("__pycache__")
        .join(beta_pyc.file_name().unwrap());
    let inode = |p: &Path| fs::metadata(p).unwrap().ino();
    assert_eq!(inode(&beta_pyc), inode(&beta_pyc_was));
    assert_ne!(
        inode(&site3.join("vdp_alpha.py")),
        inode(&site2.join("vdp_alpha.py"))
    );
    assert!(three.join(".vd-built").is_file() && three.join(".vd-finished").is_file());
    assert_ne!(
        inode(&three.join(".vd-running")),
        inode(&two.join(".vd-running"))
    );
}

/// A repository of vdp-alpha 1.0 and 2.0, vdp-beta, vdp-gamma and
/// vdp-delta, and a target on it that keeps 3 generations, adopted from a
/// venv and pushed to generation 2 (built in full) holding alpha 1.0 and
/// the other three.
struct Small {
    server: Sshd,
    dir: tempfile::TempDir,
    repo: PathBuf,
    target: crate::push::Target,
    venv: PathBuf,
}

impl Small {
    fn new() -> Small {
        let server = Sshd::start(1);
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let wheels = [
            wheel("vdp-alpha", "1.0"),
            wheel("vdp-alpha", "2.0"),
            wheel("vdp-beta", "1.0"),
            wheel("vdp-gamma", "1.0"),
            wheel("vdp-delta", "1.0"),
            wheel("vdp-beta", "2.0"),
            wheel("vdp-gamma", "2.0"),
        ];
        let repo = repo(d, &wheels);
        let venv = d.join("venv");
        venv_with_pip(&venv);
        let target = generations_target(&server, &venv, &d.join("cache"), 3);
        let small = Small {
            server,
            dir,
            repo,
            target,
            venv,
        };
        let first = small.push(
            "vdp-alpha==1.0\nvdp-beta==1.0\nvdp-gamma==1.0\nvdp-delta\n",
            &["--adopt"],
        );
        assert_eq!(built(&pushed_ok(&first)).way, "full");
        small
    }

    /// vd-push of the plan to exactly `requirements_text` (vd-diff
    /// --exact: what it leaves out is removed).
    fn push(&self, requirements_text: &str, args: &[&str]) -> Outcome {
        let reqs = requirements(self.dir.path(), "requirements.txt", requirements_text);
        let plans = plan(
            &self.server,
            &self.repo,
            &reqs,
            true,
            std::slice::from_ref(&self.target),
        );
        push(&self.server, &self.repo, args, &plans)
    }

    fn generation(&self, n: u32) -> PathBuf {
        generation_dir(&self.venv, n)
    }
}

#[test]
fn a_cut_off_copy_is_removed_by_the_next_push_and_never_counts() {
    let small = Small::new();
    let two = small.generation(2);
    let gens = two.parent().unwrap().to_path_buf();
    // What a push killed while copying leaves: the copy under its working
    // name, or already numbered and stripped of the marks of a finished
    // build (hard links to generation 2's files, as the copy makes them).
    for cut in [gens.join(".vd-copy"), gens.join("3")] {
        stdout_of(Command::new("cp").arg("-al").arg(&two).arg(&cut), "cp -al");
        fs::remove_file(cut.join(".vd-finished")).unwrap();
        fs::remove_file(site_packages(&cut).join("vd_generation.pth")).unwrap();
    }
    let before = state_of(&two);
    let record = pushed_ok(&small.push(
        "vdp-alpha==2.0\nvdp-beta==1.0\nvdp-gamma==1.0\nvdp-delta\n",
        &[],
    ));
    assert_eq!(built(&record).from, Some(2));
    assert_eq!(active(&small.venv), "4");
    assert_eq!(kept(&small.venv), [1, 2, 4]);
    assert!(!gens.join(".vd-copy").exists());
    assert_eq!(state_of(&two), before);
    assert_eq!(pip_list(&small.venv)["vdp-alpha"], "2.0");
}

#[test]
fn a_copy_that_fails_or_cannot_be_trusted_is_built_in_full() {
    let small = Small::new();
    let reqs =
        |alpha: &str| format!("vdp-alpha=={alpha}\nvdp-beta==1.0\nvdp-gamma==1.0\nvdp-delta\n");

    // The copy cannot write a file of its own in place of a shared one (a
    // folder is in the way of the new file): built in full, said on stderr.
    let bin = small.generation(2).join("bin");
    fs::write(bin.join("vd-trap"), "#!/bin/sh\n").unwrap();
    fs::create_dir(bin.join("vd-trap.vd-new")).unwrap();
    let before = state_of(&small.generation(2));
    let out = small.push(&reqs("2.0"), &[]);
    let record = pushed_ok(&out);
    let why = built(&record).why.unwrap();
    assert!(
        why.contains("cannot give the copy files of its own"),
        "{why}"
    );
    assert!(
        out.stderr
            .contains("generation 3 is built in full, not as a copy of generation 2"),
        "{}",
        out.stderr
    );
    assert_eq!(state_of(&small.generation(2)), before);
    assert_eq!(active(&small.venv), "3");
    assert!(!small.generation(3).join("bin/vd-trap").exists());

    // The interpreter generation 3 runs is not the one it was built with.
    fs::write(
        small.generation(3).join(".vd-built"),
        "/usr/bin/python2.7\n",
    )
    .unwrap();
    let record = pushed_ok(&small.push(&reqs("1.0"), &[]));
    let why = built(&record).why.unwrap();
    assert!(
        why.contains("was built with /usr/bin/python2.7, and runs"),
        "{why}"
    );

    // A plan that changes most of the packages.
    let record = pushed_ok(&small.push("vdp-alpha==2.0\nvdp-beta==2.0\nvdp-gamma==2.0\n", &[]));
    let why = built(&record).why.unwrap();
    assert!(why.contains("the plan changes 4 of 4 packages"), "{why}");
    assert_eq!(active(&small.venv), "5");
    let now = pip_list(&small.venv);
    assert_eq!(
        (now.get("vdp-delta"), now["vdp-beta"].as_str()),
        (None, "2.0")
    );

    // And back to a copy, which removes what the plan drops.
    let record = pushed_ok(&small.push("vdp-alpha==2.0\nvdp-beta==2.0\n", &[]));
    assert_eq!(built(&record).from, Some(5));
    assert_eq!(pip_list(&small.venv).get("vdp-gamma"), None);
}

#[test]
fn a_copy_upgraded_by_uv_leaves_the_active_generation_as_it_was() {
    let server = Sshd::start(1);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let uv = crate::util::uv::wheel("uv's wheel into the tests' download cache");
    let wheels = [
        uv,
        wheel("vdp-alpha", "1.0"),
        wheel("vdp-alpha", "2.0"),
        wheel("vdp-beta", "1.0"),
        wheel("vdp-gamma", "1.0"),
        // An install that writes over a file of vdp-beta's.
        wheel_with_files(
            d,
            "vdp-overlay",
            "1.0",
            &[("vdp_beta.py", "VERSION = 'overlay'\n")],
        ),
    ];
    let repo = repo(d, &wheels);
    let v = d.join("venv");
    let mut t = generations_target(&server, &v, &d.join("cache"), 3);
    t.insert(
        "python".into(),
        serde_json::json!(crate::util::python::pyenv_python("3.11")),
    );
    let push_to = |text: &str, args: &[&str]| {
        let reqs = requirements(d, "requirements.txt", text);
        let plans = plan(&server, &repo, &reqs, false, std::slice::from_ref(&t));
        pushed_ok(&push(&server, &repo, args, &plans))
    };
    let first = push_to("vdp-alpha==1.0\nvdp-beta\nvdp-gamma\n", &["--create"]);
    assert_eq!(first.pushed().installer.as_deref(), Some("uv"));
    assert_eq!(
        built(&first).why.as_deref(),
        Some("there is no generation to copy")
    );

    // An upgrade, and an install that writes over vdp-beta's file: in the
    // copy, until it got a file of its own, a hard link to generation 1's,
    // which uv's copy would have truncated and written.
    let one = generation_dir(&v, 1);
    let before = state_of(&one);
    let second = push_to("vdp-alpha==2.0\nvdp-beta\nvdp-gamma\nvdp-overlay\n", &[]);
    assert_eq!(second.pushed().installer.as_deref(), Some("uv"));
    assert_eq!(built(&second).from, Some(1));
    assert_eq!(state_of(&one), before);
    let module = |n: u32, name: &str| {
        fs::read_to_string(site_packages(&generation_dir(&v, n)).join(name)).unwrap()
    };
    assert!(module(1, "vdp_alpha.py").contains("1.0") && module(2, "vdp_alpha.py").contains("2.0"));
    assert!(
        module(1, "vdp_beta.py").contains("1.0"),
        "{}",
        module(1, "vdp_beta.py")
    );
    assert!(
        module(2, "vdp_beta.py").contains("overlay"),
        "{}",
        module(2, "vdp_beta.py")
    );
}
