//! Targets with generations, against a real sshd on loopback and real
//! virtualenvs: a new generation built beside the active one and switched
//! to atomically, kept N at a time, adopted from a plain venv, refused when
//! it drifted, left alone when its build fails.

use crate::push::{
    assert_ok, log_events, plan, push, push_twice_at_once, requirements, target, wheel, Target,
};
use crate::util::python::{install, pip_list, venv_with_pip};
use crate::util::record::Switch;
use crate::util::sshd::Sshd;
use crate::util::upload::sha256;
use crate::util::{error_message, installed, repo, Record};
use serde_json::json;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A target on host 0 that keeps `keep` generations.
pub(crate) fn generations_target(server: &Sshd, venv: &Path, cache: &Path, keep: u32) -> Target {
    let mut t = target(server, 0, venv, cache);
    t.insert("generations".into(), json!(keep));
    t
}

/// A health check that passes only while `venv` holds vdp-alpha 1.0.
fn healthy_with_alpha_1_0(venv: &Path) -> String {
    format!(
        "'{}/bin/python' -c 'import sys, vdp_alpha; sys.exit(vdp_alpha.VERSION != \"1.0\")'",
        venv.display()
    )
}

/// `vd-reload --revert` with one try per check over `input`, which must
/// fail (a reverted deploy failed): its records.
fn revert(server: &Sshd, repo: &Path, input: &str) -> Vec<Record> {
    let out = server
        .tool("vd-reload")
        .arg("--repo")
        .arg(repo)
        .args(["--revert", "--check-tries", "1"])
        .stdin(input)
        .run();
    out.expect_code(1);
    out.records()
}

/// A record whose check failed on generation 2 and that was switched back
/// to generation 1, reloaded and checked there.
fn assert_reverted_to_1_and_checked(record: &Record) {
    let message = error_message(record);
    assert!(
        message.contains("still failed after 1 tries")
            && message.contains("reverted to generation 1, reloaded and checked"),
        "{message}"
    );
    assert_eq!(record.reverted, Some(Switch { from: 2, to: 1 }));
    assert_eq!(record.checked, Some(true));
}

/// The generation `venv` points at, by its link.
pub(crate) fn active(venv: &Path) -> String {
    let link = fs::read_link(venv).unwrap_or_else(|e| panic!("{} is no link: {e}", venv.display()));
    let name = venv.file_name().unwrap().to_string_lossy();
    let link = link.display().to_string();
    link.strip_prefix(&format!("{name}.generations/"))
        .unwrap_or_else(|| panic!("{} points at {link}", venv.display()))
        .to_string()
}

/// The numbers of the generations kept beside `venv`.
pub(crate) fn kept(venv: &Path) -> Vec<u32> {
    let dir = PathBuf::from(format!("{}.generations", venv.display()));
    let mut numbers: Vec<u32> = fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.unwrap().file_name().to_str()?.parse().ok())
        .collect();
    numbers.sort();
    numbers
}

/// A Python process started through `venv` that imports `module` when told
/// to (a line on its stdin) and prints where from and its VERSION.
pub(crate) struct Service(pub(crate) std::process::Child);

impl Service {
    pub(crate) fn start(venv: &Path) -> Service {
        let child = Command::new(venv.join("bin/python"))
            .args([
                "-c",
                "import sys\nfor name in sys.stdin:\n    m = __import__(name.strip())\n    \
                 print(m.VERSION, m.__file__, flush=True)",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        Service(child)
    }

    /// `VERSION path` of `module` as the running process imports it now.
    pub(crate) fn import(&mut self, module: &str) -> String {
        let stdin = self.0.stdin.as_mut().unwrap();
        writeln!(stdin, "{module}").unwrap();
        let mut line = String::new();
        BufReader::new(self.0.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        line.trim().to_string()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `generation`'s active and previous numbers.
#[track_caller]
fn generation(record: &Record) -> (u32, Option<u32>) {
    let generation = record.generation.expect("no generation");
    (generation.active, generation.previous)
}

/// The release log's events of `kind` ("install", "rollback").
fn logged(repo: &Path, kind: &str) -> Vec<vd::log::Event> {
    log_events(repo)
        .into_iter()
        .filter(|e| e.event == kind)
        .collect()
}

#[test]
fn a_generation_is_built_beside_the_active_one_and_switched_to() {
    let server = Sshd::start(1);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (alpha1, alpha2, beta, gamma) = (
        wheel("vdp-alpha", "1.0"),
        wheel("vdp-alpha", "2.0"),
        wheel("vdp-beta", "1.0"),
        wheel("vdp-gamma", "1.0"),
    );
    let repo = repo(
        d,
        &[alpha1.clone(), alpha2.clone(), beta.clone(), gamma.clone()],
    );
    let v = d.join("venv");
    venv_with_pip(&v);
    install(&v, std::slice::from_ref(&alpha1));
    let cache = d.join("cache");
    let t = generations_target(&server, &v, &cache, 3);
    let one = requirements(d, "one.txt", "vdp-alpha==1.0\nvdp-beta\n");
    let plans = plan(&server, &repo, &one, false, std::slice::from_ref(&t));
    assert!(
        plans.contains("\"unchanged\":[{\"name\":\"vdp-alpha\""),
        "{plans}"
    );

    // A plain venv is never moved silently.
    let out = push(&server, &repo, &[], &plans);
    out.expect_code(1);
    let message = error_message(&out.records()[0]);
    assert!(
        message.contains("plain virtualenv") && message.contains("--adopt"),
        "{message}"
    );
    assert!(v.is_dir() && !v.is_symlink(), "the venv was moved");

    // --adopt: the venv becomes generation 1, and the plan builds 2.
    let out = push(&server, &repo, &["--adopt"], &plans);
    out.expect_code(0);
    let record = &out.records()[0];
    assert_ok(record);
    assert_eq!(record.changed, Some(true));
    assert_eq!(generation(record), (2, Some(1)));
    assert_eq!(active(&v), "2");
    assert_eq!(kept(&v), [1, 2]);
    assert_eq!(pip_list(&v)["vdp-beta"], "1.0");
    assert_eq!(pip_list(&v)["vdp-alpha"], "1.0");
    assert_eq!(installed(record), pip_list(&v));
    let installs = logged(&repo, "install");
    assert_eq!(installs.len(), 1, "{installs:?}");
    assert_eq!(installs[0].detail, "install with pip in generation 2");

    // A process started now keeps generation 2 through the next switch.
    let mut old = Service::start(&v);
    assert!(old.import("vdp_beta").starts_with("1.0 "));
    let two = requirements(d, "two.txt", "vdp-alpha==2.0\nvdp-beta\n");
    let plans = plan(&server, &repo, &two, false, std::slice::from_ref(&t));
    let out = push(&server, &repo, &[], &plans);
    out.expect_code(0);
    let record = &out.records()[0];
    assert_ok(record);
    assert_eq!(generation(record), (3, Some(2)));
    assert_eq!(active(&v), "3");
    let seen = old.import("vdp_alpha");
    assert!(
        seen.starts_with("1.0 ") && seen.contains("venv.generations/2/"),
        "{seen}"
    );
    let mut new = Service::start(&v);
    let seen = new.import("vdp_alpha");
    assert!(
        seen.starts_with("2.0 ") && seen.contains("venv.generations/3/"),
        "{seen}"
    );

    // Keep 3: the fourth generation prunes the first.
    let three = requirements(d, "three.txt", "vdp-alpha==2.0\nvdp-beta\nvdp-gamma\n");
    let plans = plan(&server, &repo, &three, false, std::slice::from_ref(&t));
    push(&server, &repo, &[], &plans).expect_code(0);
    assert_eq!(active(&v), "4");
    assert_eq!(kept(&v), [2, 3, 4]);

    // A venv changed since the plan was made is refused; nothing is built.
    let plans = plan(&server, &repo, &one, false, std::slice::from_ref(&t));
    let uninstalled = Command::new(v.join("bin/python"))
        .args(["-m", "pip", "uninstall", "-q", "-y", "vdp-gamma"])
        .status()
        .unwrap();
    assert!(uninstalled.success());
    let drifted = pip_list(&v);
    let out = push(&server, &repo, &[], &plans);
    out.expect_code(1);
    let message = error_message(&out.records()[0]);
    assert!(
        message.contains("changed since the plan was made: vdp-gamma 1.0 removed"),
        "{message}"
    );
    assert_eq!((active(&v), kept(&v)), ("4".to_string(), vec![2, 3, 4]));
    assert_eq!(pip_list(&v), drifted);
}

#[test]
fn a_failed_build_leaves_the_active_generation_and_two_pushes_serialize() {
    let server = Sshd::start(1);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (alpha1, beta, gamma) = (
        wheel("vdp-alpha", "1.0"),
        wheel("vdp-beta", "1.0"),
        wheel("vdp-gamma", "1.0"),
    );
    let repo = repo(d, &[alpha1.clone(), beta.clone(), gamma.clone()]);
    let v = d.join("venv");
    let cache = d.join("cache");
    let mut t = generations_target(&server, &v, &cache, 2);
    t.insert("python".into(), json!(crate::util::python::python3()));
    let first = requirements(d, "first.txt", "vdp-alpha\n");
    let plans = plan(&server, &repo, &first, false, std::slice::from_ref(&t));
    let out = push(&server, &repo, &["--create"], &plans);
    out.expect_code(0);
    assert_eq!(generation(&out.records()[0]), (1, None));
    assert_eq!(active(&v), "1");

    // The plan names gamma's wheel (the same bytes, in the repository)
    // under a tag no Python 3 takes: pip refuses it mid-build. (A broken
    // copy in the cache no longer gets that far: it is sent again.)
    let more = requirements(d, "more.txt", "vdp-alpha\nvdp-gamma\n");
    let plans = plan(&server, &repo, &more, false, std::slice::from_ref(&t));
    let sha = sha256(&gamma);
    let name = gamma.file_name().unwrap().to_string_lossy().into_owned();
    let foreign = name.replace("-py3-", "-cp27-");
    fs::copy(&gamma, repo.join(&foreign)).unwrap();
    let mut service = Service::start(&v);
    let before = pip_list(&v);
    let out = push(&server, &repo, &[], &plans.replace(&name, &foreign));
    out.expect_code(1);
    let record = &out.records()[0];
    let message = error_message(record);
    assert!(
        message.contains("generation 2 was not built, pip install failed")
            && message.contains("generation 1 stays active"),
        "{message}"
    );
    assert_eq!(active(&v), "1");
    assert_eq!(kept(&v), [1], "the failed generation was left behind");
    assert_eq!(pip_list(&v), before);
    assert_eq!(installed(record), before, "the record lies");
    assert!(service.import("vdp_alpha").starts_with("1.0 "));

    // Mended, two pushes of one plan at once: one builds, one finds it done.
    fs::remove_dir_all(cache.join(&sha)).unwrap();
    let mut changed = 0;
    for record in &push_twice_at_once(&server, &repo, &plans) {
        assert_eq!(installed(record), pip_list(&v));
        assert_eq!(generation(record).0, 2);
        changed += usize::from(record.changed == Some(true));
    }
    assert_eq!(changed, 1, "both pushes built a generation");
    assert_eq!(active(&v), "2");
    assert_eq!(kept(&v), [1, 2]);
    assert_eq!(pip_list(&v)["vdp-gamma"], "1.0");
}

#[test]
fn rollback_restores_the_previous_generation_and_revert_undoes_a_failed_deploy() {
    let server = Sshd::start(1);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (alpha1, alpha2) = (wheel("vdp-alpha", "1.0"), wheel("vdp-alpha", "2.0"));
    let repo = repo(d, &[alpha1.clone(), alpha2.clone()]);
    let v = d.join("venv");
    let cache = d.join("cache");
    let reloads = d.join("reloads");
    let mut t = generations_target(&server, &v, &cache, 3);
    t.insert("python".into(), json!(crate::util::python::python3()));
    t.insert(
        "reload".into(),
        json!(format!("echo reload >>'{}'", reloads.display())),
    );
    t.insert("check".into(), json!(healthy_with_alpha_1_0(&v)));
    let one = requirements(d, "one.txt", "vdp-alpha==1.0\n");
    let plans = plan(&server, &repo, &one, false, std::slice::from_ref(&t));
    push(&server, &repo, &["--create"], &plans).expect_code(0);
    let first = pip_list(&v);
    let two = requirements(d, "two.txt", "vdp-alpha==2.0\n");
    let plans = plan(&server, &repo, &two, false, std::slice::from_ref(&t));
    let pushed = push(&server, &repo, &[], &plans);
    pushed.expect_code(0);
    let pushed = pushed.stdout;
    assert_eq!(active(&v), "2");

    let rollback = |args: &[&str], input: &str| {
        server
            .tool("vd-rollback")
            .arg("--repo")
            .arg(&repo)
            .args(args)
            .stdin(input)
            .run()
    };
    let out = rollback(&[], &pushed);
    out.expect_code(0);
    let record = &out.records()[0];
    assert_ok(record);
    assert_eq!(record.rolled_back, Some(Switch { from: 2, to: 1 }));
    assert_eq!(record.changed, Some(true));
    assert_eq!(generation(record), (1, None));
    assert_eq!(active(&v), "1");
    assert_eq!(pip_list(&v), first);
    assert_eq!(
        installed(record),
        first,
        "not exactly the previous installed"
    );
    let events = logged(&repo, "rollback");
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].detail, "generation 2 to 1");

    // Nothing before the first; --to goes forward again.
    let out = rollback(&[], &pushed);
    out.expect_code(1);
    assert!(error_message(&out.records()[0]).contains("keeps none before it"));
    assert_eq!(active(&v), "1");
    let out = rollback(&["--to", "2"], &pushed);
    out.expect_code(0);
    assert_eq!(
        out.records()[0].rolled_back,
        Some(Switch { from: 1, to: 2 })
    );
    assert_eq!(active(&v), "2");

    // The deploy of 2.0 fails its check: --revert ends on generation 1,
    // reloaded and checked, and the record keeps the error.
    let records = revert(&server, &repo, &pushed);
    let record = &records[0];
    assert_reverted_to_1_and_checked(record);
    assert_eq!(active(&v), "1");
    assert_eq!(installed(record), first);
    assert_eq!(fs::read_to_string(&reloads).unwrap().lines().count(), 2);

    // The same target reloaded once per host: held to the end of the input,
    // reloaded, its check failing, switched back, reloaded and checked again.
    rollback(&["--to", "2"], &pushed).expect_code(0);
    assert_eq!(active(&v), "2");
    let mut once: Target = serde_json::from_str(pushed.lines().next().unwrap()).unwrap();
    once.insert("reload_once".into(), json!(true));
    assert_reverted_to_1_and_checked(&revert(&server, &repo, &crate::util::jsonl(&[once]))[0]);
    assert_eq!(active(&v), "1");
    assert_eq!(fs::read_to_string(&reloads).unwrap().lines().count(), 4);
    let reverts = log_events(&repo)
        .into_iter()
        .filter(|e| e.event == "revert")
        .count();
    assert_eq!(reverts, 2);

    // A target changed in place has no generation to go back to.
    let plain = d.join("plain");
    venv_with_pip(&plain);
    let record = target(&server, 0, &plain, &cache);
    let out = rollback(&[], &crate::util::jsonl(&[record]));
    out.expect_code(1);
    let message = error_message(&out.records()[0]);
    assert!(message.contains("vd-diff --lock"), "{message}");
}

/// Two targets of one host share their reload (`reload_once`); after a
/// deploy, one fails its check and the other passes. --revert switches back
/// the one that failed only, reloads once more and checks it again; the
/// other keeps its new generation, reloaded once with it.
#[test]
fn a_revert_of_targets_reloaded_once_takes_back_only_those_that_failed() {
    let server = Sshd::start(1);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (alpha1, alpha2) = (wheel("vdp-alpha", "1.0"), wheel("vdp-alpha", "2.0"));
    let repo = repo(d, &[alpha1, alpha2]);
    let cache = d.join("cache");
    let reloads = d.join("reloads");
    let (picky, easy) = (d.join("picky"), d.join("easy"));
    let targets: Vec<Target> = [(&picky, true), (&easy, false)]
        .into_iter()
        .map(|(v, needs_1_0)| {
            let mut t = generations_target(&server, v, &cache, 3);
            t.insert("python".into(), json!(crate::util::python::python3()));
            t.insert("reload_once".into(), json!(true));
            t.insert(
                "reload".into(),
                json!(format!("echo reload >>'{}'", reloads.display())),
            );
            let check = match needs_1_0 {
                true => healthy_with_alpha_1_0(v),
                false => "true".to_string(),
            };
            t.insert("check".into(), json!(check));
            t
        })
        .collect();
    let one = requirements(d, "one.txt", "vdp-alpha==1.0\n");
    push(
        &server,
        &repo,
        &["--create"],
        &plan(&server, &repo, &one, false, &targets),
    )
    .expect_code(0);
    let two = requirements(d, "two.txt", "vdp-alpha==2.0\n");
    let pushed = push(
        &server,
        &repo,
        &[],
        &plan(&server, &repo, &two, false, &targets),
    );
    pushed.expect_code(0);
    assert_eq!((active(&picky), active(&easy)), ("2".into(), "2".into()));

    let records = revert(&server, &repo, &pushed.stdout);
    assert_reverted_to_1_and_checked(&records[0]);
    assert_ok(&records[1]);
    assert_eq!(records[1].reloaded, Some(true));
    assert_eq!(records[1].checked, Some(true));
    assert!(records[1].reverted.is_none(), "{:?}", records[1]);
    assert_eq!((active(&picky), active(&easy)), ("1".into(), "2".into()));
    // Once for both, once more for the one switched back.
    assert_eq!(fs::read_to_string(&reloads).unwrap().lines().count(), 2);
}
