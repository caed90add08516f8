//! The commands vd runs on targets: one module per remote operation.
//!
//! Each operation's module holds its command, the script it sends (a real
//! file beside it that a linter can read: `freeze.py`, `freeze_batch.sh`, `push.sh`,
//! `generation.sh`, `switch.sh`, `cache.sh`), the parser of what the host
//! prints, and that typed result: [`freeze`], [`push`], [`generation`],
//! [`switch`], [`cache`], [`migrate`], [`reload`]. What is shared
//! is here: who a command runs as, and sudo's refusals. Every value that
//! comes from a record (a venv path, an interpreter, a user) goes through
//! [`shell::quote`], so a path like `/srv/$(id)` is a path and never code;
//! a script takes its values as quoted arguments, never as text put into
//! it. Scripts are embedded in the binaries and sent with the command:
//! nothing is installed on the targets.

pub mod cache;
pub mod freeze;
pub mod generation;
pub mod migrate;
pub mod push;
pub mod reload;
pub mod switch;

use crate::shell;
use crate::transport::Finished;

/// `command` (a shell command line) run as `user` through `sudo -n`, which
/// fails instead of asking for a password; as it is when `user` is `None`.
pub fn as_user(user: Option<&str>, command: &str) -> String {
    match user {
        Some(user) => shell::join(&["sudo", "-n", "-u", user, "--", "/bin/sh", "-c", command]),
        None => command.to_string(),
    }
}

/// The interpreter of a virtualenv.
pub fn venv_python(venv: &str) -> String {
    format!("{}/bin/python", venv.trim_end_matches('/'))
}

/// sudo's refusal to run without a password, as an error a person can act
/// on; `None` when the command did not fail that way.
pub fn sudo_refusal(finished: &Finished, user: Option<&str>) -> Option<String> {
    let user = user?;
    if finished.success() {
        return None;
    }
    let stderr = finished.stderr_text();
    let wants_password = stderr.lines().any(|l| {
        l.starts_with("sudo:")
            && (l.contains("password is required") || l.contains("terminal is required"))
    });
    wants_password.then(|| {
        format!(
            "sudo -n -u {user} wants a password, and vd never types one: allow the login user \
             to run commands as {user} without a password (NOPASSWD in sudoers), or log in as \
             {user} (sudo said: {stderr})"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sudo_wrapping_keeps_the_command_one_word() {
        let cmd = as_user(Some("app"), "echo 'a b'");
        assert_eq!(cmd, "sudo -n -u app -- /bin/sh -c 'echo '\\''a b'\\'''");
    }

    #[test]
    fn recognises_sudo_asking_for_a_password() {
        let finished = Finished {
            status: 1,
            stdout: Vec::new(),
            stderr: b"sudo: a password is required\n".to_vec(),
        };
        let message = sudo_refusal(&finished, Some("app")).unwrap();
        assert!(message.contains("NOPASSWD"), "{message}");
        assert!(sudo_refusal(&finished, None).is_none());
    }

    #[test]
    fn the_shell_scripts_pass_shellcheck() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/remote");
        let out = std::process::Command::new("shellcheck")
            .arg("--norc")
            .args([
                "push.sh",
                "generation.sh",
                "switch.sh",
                "cache.sh",
                "freeze_batch.sh",
            ])
            .current_dir(&dir)
            .output()
            .unwrap_or_else(|e| {
                panic!("cannot run shellcheck ({e}): install it (apt-get install shellcheck)")
            });
        assert!(
            out.status.success(),
            "shellcheck:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}
