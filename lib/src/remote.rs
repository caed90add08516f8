//! The commands vd runs on targets, built in one place.
//!
//! Each builder returns one shell command line for a
//! [`Connection`](crate::transport::Connection). Every value that comes from
//! a record (a venv path, an interpreter, a user) goes through
//! [`shell::quote`], so a path like `/srv/$(id)` is a path and never code.
//! Scripts for the remote interpreter live beside this file (`remote/*.py`),
//! are embedded in the binaries, and are sent on the command's stdin: nothing
//! is installed on the targets, and nothing long lands in `ps` or sudo's log.

use crate::record::{self, Record};
use crate::shell;
use crate::transport::Finished;

/// vd-freeze's remote side: prints the interpreter's facts and its installed
/// distributions as one JSON object (`python`, `markers`, `installed`).
pub const FREEZE_SCRIPT: &str = include_str!("remote/freeze.py");

/// The exit status of [`freeze_command`] when the venv path exists but has
/// no interpreter.
pub const NOT_A_VENV: i32 = 3;

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

/// What [`migrate_command`] asks Django for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Migrate {
    /// Apply the pending migrations.
    Apply,
    /// List them (`--plan`), applying nothing.
    Plan,
}

/// The exit status of [`migrate_command`] when the venv has no
/// `bin/django-admin` (the shell's "command not found").
pub const NO_DJANGO_ADMIN: i32 = 127;

/// Django's `migrate` for one settings module, with the venv's
/// `django-admin` and `DJANGO_SETTINGS_MODULE` set for it alone.
pub fn migrate_command(venv: &str, settings: &str, what: Migrate) -> String {
    let admin = format!("{}/bin/django-admin", venv.trim_end_matches('/'));
    let module = format!("DJANGO_SETTINGS_MODULE={settings}");
    let mut words = vec!["exec", "env", &module, &admin, "migrate", "--noinput"];
    if what == Migrate::Plan {
        words.push("--plan");
    }
    shell::join(&words)
}

/// Run the script on stdin with the venv's interpreter, isolated from the
/// remote user's environment (`-I`: no PYTHONPATH, no user site, no current
/// directory on sys.path). When the venv does not exist, the host's `python`
/// describes the interpreter a new venv would get, without `installed`; when
/// the path exists but has no interpreter, exit [`NOT_A_VENV`].
pub fn freeze_command(venv: &str, python: &str) -> String {
    let interpreter = shell::quote(&venv_python(venv));
    let not_a_venv = format!(
        "{} exists but is not a virtualenv (it has no bin/python)",
        venv.trim_end_matches('/')
    );
    let cannot_run = format!(
        "{} cannot be run here (a broken link, or no permission for this user)",
        venv_python(venv)
    );
    format!(
        "if [ -e {venv} ]; then \
           if [ -f {interpreter} ] && [ -x {interpreter} ]; then exec {interpreter} -I -; fi; \
           if [ -L {interpreter} ] || [ -e {interpreter} ]; then echo {cannot_run} >&2; \
           else echo {not_a_venv} >&2; fi; \
           exit {NOT_A_VENV}; \
         fi; \
         exec {python} -I - --no-installed",
        venv = shell::quote(venv),
        not_a_venv = shell::quote(&not_a_venv),
        cannot_run = shell::quote(&cannot_run),
        python = shell::quote(python),
    )
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
    use serde_json::json;
    use std::process::Command;

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
    fn migrate_command_quotes_what_the_record_says() {
        assert_eq!(
            migrate_command("/srv/shop/", "shop.settings", Migrate::Apply),
            "exec env DJANGO_SETTINGS_MODULE=shop.settings /srv/shop/bin/django-admin migrate --noinput"
        );
        assert_eq!(
            migrate_command("/srv/my shop", "s", Migrate::Plan),
            "exec env DJANGO_SETTINGS_MODULE=s '/srv/my shop/bin/django-admin' migrate --noinput --plan"
        );
    }

    #[test]
    fn sudo_wrapping_keeps_the_command_one_word() {
        let cmd = as_user(Some("app"), "echo 'a b'");
        assert_eq!(cmd, "sudo -n -u app -- /bin/sh -c 'echo '\\''a b'\\'''");
    }

    #[test]
    fn freeze_command_tells_the_three_cases_apart() {
        let dir = tempfile::tempdir().unwrap();
        let run = |venv: &str| {
            Command::new("/bin/sh")
                .arg("-c")
                .arg(freeze_command(venv, "/bin/echo"))
                .output()
                .unwrap()
        };
        // Absent: the host's python runs, told there is nothing installed.
        let absent = run(&dir.path().join("nope").display().to_string());
        assert_eq!(
            String::from_utf8_lossy(&absent.stdout),
            "-I - --no-installed\n"
        );
        // Present without bin/python: not a venv.
        let plain = dir.path().join("plain $(touch pwned)");
        std::fs::create_dir(&plain).unwrap();
        let out = run(&plain.display().to_string());
        assert_eq!(out.status.code(), Some(NOT_A_VENV));
        assert!(String::from_utf8_lossy(&out.stderr).contains("is not a virtualenv"));
        assert!(!std::path::Path::new("pwned").exists());
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
}
