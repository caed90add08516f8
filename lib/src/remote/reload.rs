//! A target's reload and health check: the user's own shell commands.
//!
//! Both come from the inventory as shell text and run as written, as the
//! login user (they carry their own sudo where one is needed): vd builds
//! nothing into them. What is read back is only how each ended. When and how
//! often they run is [`crate::tools::reload`]'s.

use crate::transport::{Connection, Finished};
use std::time::Duration;

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
