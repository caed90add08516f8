//! The commands vd runs on targets: one module per remote operation.
//!
//! Each operation's module holds its command, the script it sends (a real
//! file beside it that a linter can read: `freeze.py`, `push.sh`,
//! `cache.sh`), the parser of what the host prints, and that typed result:
//! [`freeze`], [`push`], [`cache`], [`migrate`], [`reload`]. What is shared
//! is here: who a command runs as, and sudo's refusals. Every value that
//! comes from a record (a venv path, an interpreter, a user) goes through
//! [`shell::quote`], so a path like `/srv/$(id)` is a path and never code;
//! a script takes its values as quoted arguments, never as text put into
//! it. Scripts are embedded in the binaries and sent with the command:
//! nothing is installed on the targets.

pub mod cache;
pub mod freeze;
pub mod migrate;
pub mod push;
pub mod reload;

use crate::record::{self, Record};
use crate::shell;
use crate::transport::Finished;
use serde_json::Value;

/// The user a target's commands run as when that is not the login user
/// (`venv_user`).
pub fn run_as<'a>(record: &'a Record, login_user: &str) -> Option<&'a str> {
    record::str_field(record, "venv_user").filter(|user| *user != login_user)
}

/// The user a target's migrations run as when that is not the login user:
/// `migrate_user`, else `venv_user`.
pub fn migrate_as<'a>(record: &'a Record, login_user: &str) -> Option<&'a str> {
    record::str_field(record, "migrate_user")
        .or_else(|| record::str_field(record, "venv_user"))
        .filter(|user| *user != login_user)
}

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

/// The interpreter a venv still to create would get: the record's `python`,
/// or, in a record frozen before (where `python` holds facts), the executable
/// those facts describe when it was not a venv's; else python3.
pub fn python_for_new_venv(record: &Record) -> String {
    match record.get("python") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(Value::Object(facts)) if facts.get("venv") == Some(&Value::Bool(false)) => {
            record::str_field(facts, "executable")
                .unwrap_or("python3")
                .to_string()
        }
        _ => "python3".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn venv_user_only_when_it_differs() {
        let record = json!({"venv_user": "app"}).as_object().unwrap().clone();
        assert_eq!(run_as(&record, "deploy"), Some("app"));
        assert_eq!(run_as(&record, "app"), None);
        assert_eq!(run_as(&Record::new(), "deploy"), None);
    }

    #[test]
    fn migrate_user_before_venv_user() {
        let both = json!({"venv_user": "app", "migrate_user": "owner"});
        let both = both.as_object().unwrap();
        assert_eq!(migrate_as(both, "deploy"), Some("owner"));
        assert_eq!(migrate_as(both, "owner"), None);
        let venv_only = json!({"venv_user": "app"}).as_object().unwrap().clone();
        assert_eq!(migrate_as(&venv_only, "deploy"), Some("app"));
        assert_eq!(migrate_as(&Record::new(), "deploy"), None);
    }

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
            .args(["push.sh", "cache.sh"])
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
