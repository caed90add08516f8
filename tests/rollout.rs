//! vd-rollout over six local targets with generations and real venvs: a
//! canary, then waves, each wave released by the real vd-push | vd-reload
//! --revert; a check that fails on the third target; one failure budget.
//! And what the rollout makes of a COMMAND that misbehaves, and what it
//! shows at a terminal.

use crate::push::{log_events, requirements, wheel};
use crate::terminal::{at_terminal, plain, screen, Gate};
use crate::util::python::{install, pip_list, venv_with_pip};
use crate::util::record::Switch;
use crate::util::sshd::Sshd;
use crate::util::{
    bin, empty_repo, error_message, jsonl, pipeline, repo, tool, without_vd_environment, Outcome,
    Record,
};
use serde_json::{json, Value};
use std::fs;
use std::path::{Path, PathBuf};

/// Six venvs on this machine, holding vdp-alpha 1.0, planned to go to 2.0.
struct Six {
    dir: tempfile::TempDir,
    repo: PathBuf,
    venvs: Vec<PathBuf>,
    /// vd-freeze | vd-diff's records: the rollout's input.
    plans: String,
}

/// A health check that passes while `venv` holds vdp-alpha 1.0 only.
fn healthy_on_alpha_1(venv: &Path) -> String {
    format!(
        "'{}/bin/python' -c 'import sys, vdp_alpha; sys.exit(vdp_alpha.VERSION != \"1.0\")'",
        venv.display()
    )
}

impl Six {
    /// The six targets (`via = local`, 3 generations); the third's check
    /// fails once vdp-alpha 2.0 is in, the others' checks ask the venv's
    /// Python to start.
    fn new() -> Six {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let alpha1 = wheel("vdp-alpha", "1.0");
        let repo = repo(d, &[alpha1.clone(), wheel("vdp-alpha", "2.0")]);
        let mut targets = Vec::new();
        let mut venvs = Vec::new();
        for i in 1..=6 {
            let venv = d.join(format!("t{i}"));
            venv_with_pip(&venv);
            install(&venv, std::slice::from_ref(&alpha1));
            let check = match i {
                3 => healthy_on_alpha_1(&venv),
                _ => format!("'{}/bin/python' -c pass", venv.display()),
            };
            targets.push(json!({
                "host": "localhost", "via": "local", "venv": venv.display().to_string(),
                "generations": 3, "cache": d.join("cache").display().to_string(),
                "reload": "true", "check": check,
            }));
            venvs.push(venv);
        }
        let frozen = tool("vd-freeze").stdin(jsonl(&targets)).run();
        frozen.expect_code(0);
        let two = requirements(d, "two.txt", "vdp-alpha==2.0\n");
        let planned = tool("vd-diff")
            .arg("--repo")
            .arg(&repo)
            .arg(&two)
            .stdin(frozen.stdout.clone())
            .run();
        planned.expect_code(0);
        Six {
            plans: planned.stdout,
            dir,
            repo,
            venvs,
        }
    }

    /// vd-rollout with `args` over `input`, each wave pushed into a new
    /// generation and reloaded, reverted where its check fails.
    fn rollout(&self, args: &[&str], input: &str) -> Outcome {
        let command = pipeline(&["vd-push --adopt", "vd-reload --revert --check-tries 1"]);
        tool("vd-rollout")
            .env("VD_REPO", &self.repo)
            .env("HOME", self.dir.path())
            .args(args)
            .arg("--")
            .arg(command)
            .stdin(input)
            .run()
    }

    /// vdp-alpha's version in target `i` (1-based).
    fn alpha(&self, i: usize) -> String {
        pip_list(&self.venvs[i - 1])["vdp-alpha"].clone()
    }

    /// Whether target `i`'s venv is still the plain venv it was.
    fn untouched(&self, i: usize) -> bool {
        let venv = &self.venvs[i - 1];
        venv.is_dir() && !venv.is_symlink() && self.alpha(i) == "1.0"
    }
}

/// The wave the record went out in.
#[track_caller]
fn wave(record: &Record) -> u64 {
    record.rollout.as_ref().expect("no rollout").wave
}

/// A record released and left on vdp-alpha 2.0 in generation 2.
#[track_caller]
fn assert_released(six: &Six, records: &[Record], i: usize) {
    let record = &records[i - 1];
    assert!(record.error.is_none(), "t{i}: {record:?}");
    assert_eq!(record.skipped, None, "t{i}");
    assert_eq!(record.checked, Some(true), "t{i}");
    assert_eq!(six.alpha(i), "2.0", "t{i}");
}

/// The third target: its check failed, vd-reload --revert took it back.
#[track_caller]
fn assert_third_reverted(six: &Six, record: &Record) {
    let message = error_message(record);
    assert!(message.contains("reverted to generation 1"), "{message}");
    assert_eq!(record.reverted, Some(Switch { from: 2, to: 1 }));
    assert_eq!(six.alpha(3), "1.0");
}

/// A target the stopped rollout never reached: `skipped`, naming the
/// wave it stopped after and the failure, its venv as it was.
#[track_caller]
fn assert_skipped(six: &Six, records: &[Record], i: usize) {
    let record = &records[i - 1];
    assert_eq!(record.skipped, Some(true), "t{i}: {record:?}");
    assert!(record.error.is_none(), "t{i}");
    let rollout = record.rollout.as_ref().unwrap();
    assert_eq!(rollout.stopped_after, Some(2), "t{i}");
    assert_eq!(rollout.failed.len(), 1, "t{i}: {rollout:?}");
    assert!(rollout.failed[0].ends_with("/t3"), "t{i}: {rollout:?}");
    assert!(six.untouched(i), "t{i} was touched");
}

/// The details of the release log's `rollout` events.
fn rollout_events(repo: &Path) -> Vec<String> {
    log_events(repo)
        .into_iter()
        .filter(|e| e.event == "rollout")
        .map(|e| e.detail)
        .collect()
}

#[test]
fn a_failure_past_the_budget_stops_the_rollout_and_its_skipped_records_finish_it() {
    let six = Six::new();
    let out = six.rollout(&["--canary", "1", "--wave", "2"], &six.plans);
    out.expect_code(1);
    let records = out.records();
    assert_eq!(records.len(), 6, "{}", out.stdout);
    assert_released(&six, &records, 1);
    assert_released(&six, &records, 2);
    assert_third_reverted(&six, &records[2]);
    for i in 4..=6 {
        assert_skipped(&six, &records, i);
    }
    let waves: Vec<u64> = records.iter().map(wave).collect();
    assert_eq!(waves, [1, 2, 2, 3, 3, 4]);
    let events = rollout_events(&six.repo);
    assert_eq!(
        events.iter().filter(|e| e.contains("started")).count(),
        2,
        "{events:?}"
    );
    assert!(
        events
            .iter()
            .any(|e| e.starts_with("wave 2 failed: 1 of 2")),
        "{events:?}"
    );
    assert!(
        events.last().unwrap().starts_with("stopped after wave 2"),
        "{events:?}"
    );

    // The skipped records, as they came out, are the rest of the rollout.
    let skipped: Vec<&Record> = records.iter().filter(|r| r.skipped == Some(true)).collect();
    let out = six.rollout(&["--wave", "2"], &jsonl(&skipped));
    out.expect_code(0);
    let rest = out.records();
    assert_eq!(rest.len(), 3, "{}", out.stdout);
    for (record, i) in rest.iter().zip(4..=6) {
        assert!(
            record.error.is_none() && record.skipped.is_none(),
            "{record:?}"
        );
        assert_eq!(record.rollout.as_ref().unwrap().stopped_after, None);
        assert_eq!(six.alpha(i), "2.0", "t{i}");
    }
    assert_eq!(rest.iter().map(wave).collect::<Vec<_>>(), [1, 1, 2]);
}

#[test]
fn revert_wave_takes_the_breaching_waves_released_targets_back_too() {
    let six = Six::new();
    let out = six.rollout(
        &["--canary", "1", "--wave", "2", "--revert-wave"],
        &six.plans,
    );
    out.expect_code(1);
    let records = out.records();
    assert_released(&six, &records, 1);
    let second = &records[1];
    assert!(second.error.is_none(), "{second:?}");
    assert_eq!(second.rolled_back, Some(Switch { from: 2, to: 1 }));
    assert_eq!(second.rollout.as_ref().unwrap().reverted_wave, Some(true));
    assert_eq!(second.checked, Some(true));
    assert_eq!(six.alpha(2), "1.0");
    assert_third_reverted(&six, &records[2]);
    for i in 4..=6 {
        assert_skipped(&six, &records, i);
    }
    let rollbacks: Vec<_> = log_events(&six.repo)
        .into_iter()
        .filter(|e| e.event == "rollback")
        .collect();
    assert_eq!(rollbacks.len(), 1, "{rollbacks:?}");
    assert!(rollbacks[0].target.ends_with("/t2"));
}

#[test]
fn a_budget_of_one_releases_every_target_but_the_failing_one() {
    let six = Six::new();
    let out = six.rollout(
        &["--canary", "1", "--wave", "2", "--max-fail", "1"],
        &six.plans,
    );
    out.expect_code(1);
    let records = out.records();
    assert_eq!(records.len(), 6);
    for i in [1, 2, 4, 5, 6] {
        assert_released(&six, &records, i);
    }
    assert_third_reverted(&six, &records[2]);
    assert!(records.iter().all(|r| r.skipped.is_none()));
    let events = rollout_events(&six.repo);
    assert!(
        !events.iter().any(|e| e.starts_with("stopped")),
        "{events:?}"
    );
    assert_eq!(
        events.iter().filter(|e| e.contains("released")).count(),
        4,
        "{events:?}"
    );
}

/// Targets whose reload stamps the time and whose check passes only
/// within a second of it (a service that dies soon after it starts);
/// nothing to push: the COMMAND is vd-reload alone. Each is `base(i)`
/// (where it is) with the venv `/srv/tI`.
fn stamped_targets(dir: &Path, count: usize, base: impl Fn(usize) -> Value) -> String {
    let targets: Vec<Value> = (1..=count)
        .map(|i| {
            let stamp = dir.join(format!("stamp{i}")).display().to_string();
            let check = format!("[ $(( $(date +%s) - $(cat '{stamp}') )) -lt 2 ]");
            let mut target = base(i);
            let fields = json!({
                "venv": format!("/srv/t{i}"), "changed": true,
                "reload": format!("date +%s >'{stamp}'"), "check": check,
            });
            target
                .as_object_mut()
                .unwrap()
                .extend(fields.as_object().unwrap().clone());
            target
        })
        .collect();
    jsonl(&targets)
}

/// This machine, reached without SSH.
fn local(_: usize) -> Value {
    json!({"host": "localhost", "via": "local"})
}

#[test]
fn a_check_that_starts_failing_during_the_pause_stops_the_rollout() {
    let dir = tempfile::tempdir().unwrap();
    let repo = empty_repo(dir.path());
    let run = |input: String, pause: &str| {
        tool("vd-rollout")
            .arg("--repo")
            .arg(&repo)
            .args(["--canary", "1", "--wave", "2", "--pause", pause, "--"])
            .arg(pipeline(&["vd-reload --check-tries 1"]))
            .env("VD_REPO", &repo)
            .env("HOME", dir.path())
            .stdin(input)
            .run()
    };
    // Without a pause long enough to see it, the checks pass.
    let out = run(stamped_targets(dir.path(), 3, local), "10ms");
    out.expect_code(0);
    for i in 1..=3 {
        fs::remove_file(dir.path().join(format!("stamp{i}"))).unwrap();
    }
    // Healthy for a second after its reload: the canary fails its check
    // after the pause, and the rest are not reached.
    let out = run(stamped_targets(dir.path(), 3, local), "3s");
    out.expect_code(1);
    let records = out.records();
    let message = error_message(&records[0]);
    assert!(
        message.contains("after the pause") && message.contains("still failed"),
        "{message}"
    );
    assert!(
        !dir.path().join("stamp2").exists(),
        "the second target was reloaded"
    );
    for record in &records[1..] {
        assert_eq!(record.skipped, Some(true), "{record:?}");
        assert_eq!(record.reloaded, None, "{record:?}");
    }
    let events = rollout_events(&repo);
    assert!(
        events.iter().any(|e| e == "wave 1 released: 0 of 1 target")
            && events
                .last()
                .unwrap()
                .starts_with("stopped after wave 1: 1 target failed"),
        "{events:?}"
    );
}

#[test]
fn the_checks_after_a_pause_go_to_the_targets_host_over_ssh() {
    let server = Sshd::start(1);
    let dir = tempfile::tempdir().unwrap();
    let repo = empty_repo(dir.path());
    let on_server = |i: usize| Value::Object(server.target(0, Path::new(&format!("/srv/t{i}"))));
    let out = server
        .tool("vd-rollout")
        .arg("--repo")
        .arg(&repo)
        .args(["--canary", "1", "--pause", "3s", "--"])
        .arg(pipeline(&["vd-reload --check-tries 1"]))
        .env("VD_REPO", &repo)
        .stdin(stamped_targets(dir.path(), 2, on_server))
        .run();
    out.expect_code(1);
    let records = out.records();
    let message = error_message(&records[0]);
    assert!(message.contains("after the pause"), "{message}");
    assert_eq!(records[1].skipped, Some(true));
    // vd-reload's session, then the rollout's own for the check.
    assert_eq!(server.logins(), 2);
}

/// Records of local targets `/srv/t1`... that no host is asked about.
fn plain_targets(count: usize) -> String {
    let targets: Vec<Value> = (1..=count)
        .map(|i| json!({"host": "localhost", "via": "local", "venv": format!("/srv/t{i}")}))
        .collect();
    jsonl(&targets)
}

/// vd-rollout over `input` with `args` and the shell text `command`.
fn rollout_with(dir: &Path, args: &[&str], command: &str, input: &str) -> Outcome {
    let repo = dir.join("wheels");
    if !repo.exists() {
        empty_repo(dir);
    }
    tool("vd-rollout")
        .arg("--repo")
        .arg(&repo)
        .args(args)
        .arg("--")
        .arg(command)
        .stdin(input)
        .run()
}

/// A COMMAND that gives every record back, failing the target `venv`.
fn failing(venv: &str) -> String {
    format!("sed '\\#\"{venv}\"#s#}}$#,\"error\":{{\"tool\":\"t\",\"message\":\"boom\"}}}}#'")
}

#[test]
fn counts_and_percentages_that_are_neither_are_refused_naming_the_option() {
    let dir = tempfile::tempdir().unwrap();
    for (option, value) in [
        ("--wave", "0"),
        ("--wave", "-1"),
        ("--wave", "abc"),
        ("--wave", "101%"),
        ("--wave", "0%"),
        ("--max-fail", "101%"),
        ("--max-fail", "-2"),
        ("--max-fail", "two"),
        ("--canary", "0"),
        ("--pause", "soon"),
    ] {
        let arg = format!("{option}={value}");
        let out = rollout_with(dir.path(), &[&arg], "cat", &plain_targets(2));
        out.expect_code(2);
        assert!(
            out.stderr.contains(option) && out.stderr.contains(value),
            "{option} {value}: {}",
            out.stderr
        );
        assert!(out.stdout.is_empty());
    }
    let out = rollout_with(dir.path(), &[], "  ", &plain_targets(2));
    out.expect_code(2);
    assert!(out.stderr.contains("COMMAND is empty"), "{}", out.stderr);
    let out = tool("vd-rollout").stdin(plain_targets(1)).run();
    out.expect_code(2);
    assert!(out.stderr.contains("COMMAND"), "{}", out.stderr);
}

#[test]
fn percentages_are_of_the_whole_input_and_records_with_errors_pass_through() {
    let dir = tempfile::tempdir().unwrap();
    let mut input = plain_targets(10);
    input.push_str("{\"host\":\"localhost\",\"venv\":\"/srv/x\",\"error\":{\"tool\":\"vd-diff\",\"message\":\"earlier\"}}\n");
    input.push_str("not json\n");
    // 10 targets: waves of 25% hold 3 (rounded up); a budget of 19% is 1
    // (rounded down), so the two failures stop it after the wave of t5.
    let command = format!("{} | {}", failing("/srv/t2"), failing("/srv/t5"));
    let out = rollout_with(
        dir.path(),
        &["--wave", "25%", "--max-fail", "19%"],
        &command,
        &input,
    );
    out.expect_code(1);
    let records = out.records();
    assert_eq!(records.len(), 12);
    let waves: Vec<u64> = records[..10].iter().map(wave).collect();
    assert_eq!(waves, [1, 1, 1, 2, 2, 2, 3, 3, 3, 4]);
    assert!(records[..6].iter().all(|r| r.skipped.is_none()));
    assert!(records[6..10].iter().all(|r| r.skipped == Some(true)));
    assert_eq!(error_message(&records[10]), "earlier");
    assert!(records[10].rollout.is_none());
    assert!(error_message(&records[11]).contains("line 12"));
    let rollout = records[6].rollout.as_ref().unwrap();
    assert_eq!(rollout.stopped_after, Some(2));
    assert!(
        rollout.reason.as_deref().unwrap().contains("budget of 1"),
        "{rollout:?}"
    );
    assert!(out.stderr.is_empty() || !out.stderr.contains("panicked"));
    let events = rollout_events(&dir.path().join("wheels"));
    assert!(events[0].starts_with("wave 1 of 4 started"), "{events:?}");
}

#[test]
fn records_command_does_not_give_back_fail_their_targets_and_stop_it() {
    let dir = tempfile::tempdir().unwrap();
    // The first record only: the second target of the wave is missing.
    let out = rollout_with(dir.path(), &["--wave", "2"], "head -n 1", &plain_targets(4));
    out.expect_code(1);
    let records = out.records();
    assert_eq!(records.len(), 4);
    assert!(records[0].error.is_none());
    let message = error_message(&records[1]);
    assert!(
        message.contains("/srv/t2")
            && message.contains("gave back no record of this target (it exited with status 0)"),
        "{message}"
    );
    assert!(records[2..].iter().all(|r| r.skipped == Some(true)));

    // Killed by a signal: its targets fail, and it stops whatever the budget.
    let out = rollout_with(
        dir.path(),
        &["--wave", "2", "--max-fail", "100%"],
        "kill -KILL $$",
        &plain_targets(4),
    );
    out.expect_code(1);
    let records = out.records();
    for record in &records[..2] {
        assert!(error_message(record).contains("killed by signal 9"));
    }
    let reason = records[2].rollout.as_ref().unwrap().reason.clone().unwrap();
    assert!(reason.contains("killed by signal 9"), "{reason}");
    assert!(records[2..].iter().all(|r| r.skipped == Some(true)));
}

#[test]
fn foreign_records_and_lines_that_are_not_json_count_as_failures() {
    let dir = tempfile::tempdir().unwrap();
    let command = "cat; echo '{\"host\":\"elsewhere\",\"venv\":\"/v\"}'; echo oops";
    let out = rollout_with(dir.path(), &["--max-fail", "1"], command, &plain_targets(2));
    out.expect_code(1);
    let records = out.records();
    assert_eq!(records.len(), 4, "{}", out.stdout);
    assert!(records[..2].iter().all(|r| r.error.is_none()));
    assert!(error_message(&records[2]).contains("elsewhere:/v, which is not a target"));
    assert!(error_message(&records[3]).contains("line 4 is not a JSON object: oops"));
    let events = rollout_events(&dir.path().join("wheels"));
    assert!(
        events.iter().any(|e| e.starts_with("stopped after wave 1")),
        "{events:?}"
    );
    // A duplicate of a record of the wave is one too many.
    let out = rollout_with(
        dir.path(),
        &["--max-fail", "1"],
        "tee /dev/stdout",
        &plain_targets(1),
    );
    let records = out.records();
    assert_eq!(records.len(), 2, "{}", out.stdout);
    assert!(error_message(&records[1]).contains("given back twice"));
}

#[test]
fn at_a_terminal_one_line_shows_the_wave_and_the_inner_tools_then_the_summary() {
    let dir = tempfile::tempdir().unwrap();
    let repo = empty_repo(dir.path());
    let gate = Gate::new(dir.path().join("gate"));
    // The second target's reload waits on the gate: the rollout is then in
    // its second wave, vd-reload inside it at work on that target.
    let targets: Vec<Value> = (1..=3)
        .map(|i| {
            let reload = match i {
                2 => format!("cat '{}' >/dev/null", gate.path.display()),
                _ => "true".to_string(),
            };
            json!({"host": "localhost", "via": "local", "venv": format!("/srv/t{i}"),
                   "reload": reload, "check": "true"})
        })
        .collect();
    let input = dir.path().join("targets.jsonl");
    fs::write(&input, jsonl(&targets)).unwrap();
    let command = format!(
        "{} --canary 1 --wave 1 --repo '{}' -- '{}' <'{}'",
        bin("vd-rollout").display(),
        repo.display(),
        pipeline(&["vd-reload --always"]),
        input.display()
    );
    let mut script = without_vd_environment(std::process::Command::new("script"));
    script.env("HOME", dir.path()).env("VD_REPO", &repo);
    let terminal = at_terminal(script, &command);
    let shown = terminal.wait_for(|shown| {
        let text = plain(shown);
        text.contains("vd-rollout [")
            && text.contains("wave 2: running · 1 released, 0 failed, budget 0 left")
            && text.contains("reload 0/1")
            && text.contains("reload localhost:/srv/t2")
    });
    assert!(
        shown,
        "the bar lacks the wave or vd-reload:\n{}",
        terminal.shown()
    );
    gate.open();
    let (code, shown) = terminal.finish();
    assert_eq!(code, 0, "{}", plain(&shown));
    let lines = screen(&shown);
    assert!(
        lines
            .iter()
            .any(|l| l.contains("/srv/t3") && l.contains("released")),
        "{}",
        lines.join("\n")
    );
    assert!(
        lines.iter().any(|l| l.starts_with("3 targets: 0 failed")),
        "{}",
        lines.join("\n")
    );
}
