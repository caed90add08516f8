//! A target's reload and health check: the user's own shell commands; and
//! the wait after them for the processes the reload left on old code.
//!
//! Both commands come from the inventory as shell text and run as written,
//! as the login user (they carry their own sudo where one is needed): vd
//! builds nothing into them. What is read back is only how each ended. When
//! and how often they run is [`crate::tools::reload`]'s.
//!
//! A reload that ended well says nothing of what the service runs now: one
//! that forks new workers from a master that keeps running leaves them in
//! the master's generation. [`drain`] reads what runs from the venv
//! ([`super::running::scan`]) until the stale processes (another generation
//! than the active one; in place, started before the venv's last change)
//! are gone or the time is up, and [`left_behind`] words what is left.

use super::running::{self, Scan};
use crate::record::{RunningProcess, Target};
use crate::transport::{Connection, Finished};
use std::time::{Duration, Instant};

/// The first pause between two scans of a draining target; each next one
/// is twice as long, up to [`DRAIN_POLL_MAX`]: old workers that finish a
/// short request are seen gone at once, and a long wait costs few scans.
const DRAIN_POLL: Duration = Duration::from_millis(200);
const DRAIN_POLL_MAX: Duration = Duration::from_secs(2);

/// How many lines of a failed command's output an error keeps.
const TAIL_LINES: usize = 10;

/// How a reload or check command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandOutcome {
    Succeeded,
    /// A non-zero exit, with the end of what the command said.
    Failed {
        status: i32,
        output: String,
    },
}

impl CommandOutcome {
    pub fn read(finished: &Finished) -> CommandOutcome {
        if finished.success() {
            CommandOutcome::Succeeded
        } else {
            CommandOutcome::Failed {
                status: finished.status,
                output: finished.tail(TAIL_LINES),
            }
        }
    }
}

/// Run a reload command; a failure in words, naming the command.
pub fn reload(connection: &mut Connection, command: &str) -> Result<(), String> {
    let finished = connection
        .run(command, b"")
        .map_err(|e| format!("reload command `{command}` could not run: {e:#}"))?;
    match CommandOutcome::read(&finished) {
        CommandOutcome::Succeeded => Ok(()),
        CommandOutcome::Failed { status, output } => Err(format!(
            "reload command `{command}` failed (exit status {status}): {output}"
        )),
    }
}

/// Run a check until it succeeds or `tries` are used up, waiting `delay`
/// before the first retry and twice as long before each next one.
pub fn check(
    connection: &mut Connection,
    command: &str,
    tries: u32,
    delay: Duration,
) -> Result<(), String> {
    let mut delay = delay;
    let mut last = String::new();
    for attempt in 1..=tries {
        if attempt > 1 {
            std::thread::sleep(delay);
            delay = delay.saturating_mul(2);
        }
        let finished = connection
            .run(command, b"")
            .map_err(|e| format!("check `{command}` could not run: {e:#}"))?;
        match CommandOutcome::read(&finished) {
            CommandOutcome::Succeeded => return Ok(()),
            CommandOutcome::Failed { status, output } => {
                last = format!("exit status {status}: {output}");
            }
        }
    }
    Err(format!(
        "check `{command}` still failed after {tries} tries ({last})"
    ))
}

/// Scan what runs from `target`'s venv until none of it is stale, or
/// `within` has passed (then once more): the last scan. A host that cannot
/// be scanned (not Linux) is not waited for: its scan says why.
pub fn drain(
    connection: &mut Connection,
    target: &Target,
    within: Duration,
) -> anyhow::Result<Scan> {
    let deadline = Instant::now() + within;
    let mut pause = DRAIN_POLL;
    loop {
        let scan = running::scan(connection, target)?;
        let now = Instant::now();
        if !scan.supported() || scan.stale().next().is_none() || now >= deadline {
            return Ok(scan);
        }
        std::thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(DRAIN_POLL_MAX);
    }
}

/// What a reload left on old code, in words a person can act on (`None`
/// when nothing): the generations (for a target with `generations`) or the
/// in-place venv's processes that started before its last change, their
/// pids and commands, how long vd waited, and what to do instead.
pub fn left_behind(scan: &Scan, generations: bool, waited: Duration) -> Option<String> {
    let stale: Vec<&RunningProcess> = scan.stale().collect();
    if stale.is_empty() {
        return None;
    }
    let waited = humantime::format_duration(waited);
    let listed = running::listed(&stale);
    if !generations {
        return Some(format!(
            "processes that started before the venv last changed still run {waited} after the \
             reload (--drain), on code that is no longer all on disk: {listed}; the reload did \
             not restart them: restart the service instead (systemctl restart, not reload), \
             see RELOADING WITH GENERATIONS in vd(7)"
        ));
    }
    let mut numbers: Vec<String> = Vec::new();
    for process in &stale {
        let name = match process.generation {
            Some(n) => n.to_string(),
            None => "unmarked (started before the switch)".to_string(),
        };
        if !numbers.contains(&name) {
            numbers.push(name);
        }
    }
    let (which, run) = match numbers.as_slice() {
        [one] => (format!("generation {one}"), "runs"),
        many => (format!("generations {}", many.join(", ")), "run"),
    };
    Some(format!(
        "{which} still {run} {waited} after the reload (--drain), not the active one: {listed}; \
         the reload forked new workers from a process that kept its generation (as HUP to a \
         gunicorn master does): restart instead: gunicorn: USR2, then TERM to the old master; \
         uWSGI: a graceful reload (HUP), not a chain reload; Celery, or a systemd unit whose \
         reload is HUP: systemctl restart; see RELOADING WITH GENERATIONS in vd(7)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::LocalConnection;

    #[test]
    fn a_failure_keeps_the_end_of_the_output() {
        let lines: String = (1..=12).map(|i| format!("line {i}\n")).collect();
        let outcome = CommandOutcome::read(&Finished {
            status: 3,
            stdout: Vec::new(),
            stderr: lines.into_bytes(),
        });
        let CommandOutcome::Failed { status, output } = outcome else {
            panic!("{outcome:?}");
        };
        assert_eq!(status, 3);
        assert!(
            output.starts_with("line 3\n") && output.ends_with("line 12"),
            "{output}"
        );
    }

    fn process(pid: u32, generation: Option<u32>, stale: bool) -> RunningProcess {
        RunningProcess {
            pid,
            generation,
            command: format!("worker {pid}"),
            started: "2026-01-01T00:00:00Z".to_string(),
            stale,
            unreadable: false,
        }
    }

    #[test]
    fn what_a_reload_left_behind_is_named_by_generation_pid_and_command() {
        let wait = Duration::from_secs(3);
        let scan = Scan {
            processes: vec![
                process(10, Some(1), true),
                process(11, Some(2), false),
                process(12, None, true),
            ],
            ..Scan::default()
        };
        let message = left_behind(&scan, true, wait).unwrap();
        assert!(
            message.starts_with(
                "generations 1, unmarked (started before the switch) still run 3s after"
            ) && message.contains("10 (worker 10), 12 (worker 12);")
                && !message.contains("worker 11"),
            "{message}"
        );
        let message = left_behind(&scan, false, wait).unwrap();
        assert!(
            message.starts_with("processes that started before the venv last changed"),
            "{message}"
        );
        let fresh = Scan {
            processes: vec![process(11, Some(2), false)],
            ..Scan::default()
        };
        assert_eq!(left_behind(&fresh, true, wait), None);
    }

    #[test]
    fn a_check_is_retried_until_it_passes() {
        let dir = tempfile::tempdir().unwrap();
        let mut connection = Connection::Local(LocalConnection::new("me"));
        let count = dir.path().join("count");
        let quoted = crate::shell::quote(&count.display().to_string());
        // Fails twice, then passes.
        let command = format!("echo x >>{quoted}; [ $(wc -l <{quoted}) -ge 3 ]");
        check(&mut connection, &command, 3, Duration::ZERO).unwrap();
        let err = check(&mut connection, "echo down >&2; exit 7", 2, Duration::ZERO).unwrap_err();
        assert_eq!(
            err,
            "check `echo down >&2; exit 7` still failed after 2 tries (exit status 7: down)"
        );
        let err = reload(&mut connection, "exit 1").unwrap_err();
        assert!(
            err.starts_with("reload command `exit 1` failed (exit status 1)"),
            "{err}"
        );
    }
}
