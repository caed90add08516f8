//! vd-freeze fed by a slow producer, as a script that emits targets over
//! minutes feeds it: what it has read is frozen and written while the input
//! goes on, not once it ends.

use crate::util::python::{pip_list, venv};
use crate::util::sshd::Sshd;
use crate::util::{bin, command, installed, jsonl};
use std::fs;

/// The producer writes host A's targets, then waits (a minute at the most)
/// until it sees their records on vd-freeze's stdout, then writes host B's
/// and one more of A's. A's records come out while the input is still open,
/// and A's later target goes over A's same session.
#[test]
fn a_slow_producers_first_host_comes_out_before_its_input_ends() {
    let server = Sshd::start(2);
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    let venvs = [path("a1"), path("a2"), path("b"), path("a3")];
    for v in &venvs {
        venv(v);
    }
    let first = [server.target(0, &venvs[0]), server.target(0, &venvs[1])];
    let then = [server.target(1, &venvs[2]), server.target(0, &venvs[3])];
    fs::write(path("first.jsonl"), jsonl(&first)).unwrap();
    fs::write(path("then.jsonl"), jsonl(&then)).unwrap();
    // Created before the pipeline starts, for the producer to read.
    fs::write(path("out.jsonl"), "").unwrap();
    let producer = r#"
        first=$1 then=$2 out=$3 seen=$4 freeze=$5
        {
            cat "$first"
            i=0
            until [ "$(wc -l <"$out")" -ge 2 ] || [ "$i" -ge 600 ]; do
                sleep 0.1
                i=$((i + 1))
            done
            wc -l <"$out" >"$seen"
            cat "$then"
        } | "$freeze" >"$out"
    "#;
    let run = command("sh")
        .arg("-c")
        .arg(producer)
        .arg("sh")
        .args([
            path("first.jsonl"),
            path("then.jsonl"),
            path("out.jsonl"),
            path("seen"),
            bin("vd-freeze"),
        ])
        .env("HOME", server.home())
        .env_remove("SSH_AUTH_SOCK")
        .env_remove("VD_JOBS")
        .env_remove("VD_TIMEOUT")
        .env_remove("VD_KNOWN_HOSTS")
        .run();
    run.expect_code(0);
    let seen = fs::read_to_string(path("seen")).unwrap();
    assert_eq!(
        seen.trim(),
        "2",
        "A's records did not come out before the input ended\n{run:?}"
    );
    let out = fs::read_to_string(path("out.jsonl")).unwrap();
    let records: Vec<serde_json::Map<String, serde_json::Value>> = out
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(records.len(), 4, "{out}");
    for (record, v) in records.iter().zip(&venvs) {
        assert_eq!(record["venv"], v.display().to_string(), "out of order");
        assert_eq!(installed(record), pip_list(v), "{}", v.display());
    }
    // A's later target went over A's session: one login per host.
    assert_eq!(server.logins(), 2, "{}", server.log());
}
