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
use serde_json::Value;

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

/// How the freeze script is run: isolated from the remote user's
/// environment (no PYTHON* variables, no user site). Python 2.7 has no `-I`;
/// `-E -s` is its equivalent but for the current directory on sys.path,
/// which the script itself leaves out.
pub const ISOLATED: &str = "-E -s";

/// Django's `showmigrations --plan` for one settings module: the plan of
/// Django before 2.2, whose `migrate` has no `--plan` (read it with
/// [`django::unapplied_in_showmigrations`](crate::django::unapplied_in_showmigrations)).
pub fn showmigrations_plan_command(venv: &str, settings: &str) -> String {
    let admin = format!("{}/bin/django-admin", venv.trim_end_matches('/'));
    let module = format!("DJANGO_SETTINGS_MODULE={settings}");
    shell::join(&["exec", "env", &module, &admin, "showmigrations", "--plan"])
}

/// Run the script on stdin with the venv's interpreter, isolated from the
/// remote user's environment ([`ISOLATED`]). When the venv does not exist, the host's `python`
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
           if [ -f {interpreter} ] && [ -x {interpreter} ]; then exec {interpreter} {ISOLATED} -; fi; \
           if [ -L {interpreter} ] || [ -e {interpreter} ]; then echo {cannot_run} >&2; \
           else echo {not_a_venv} >&2; fi; \
           exit {NOT_A_VENV}; \
         fi; \
         exec {python} {ISOLATED} - --no-installed",
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

/// vd-push's cache commit: checks uploaded wheels' sha256 on the host and
/// renames them into place (`remote/cache.sh`, sent on stdin).
pub const CACHE_SCRIPT: &str = include_str!("remote/cache.sh");

/// The wheel cache when the record names none: under the login user's home.
pub const DEFAULT_CACHE: &str = "~/.cache/vd/wheels";

/// How long a push waits for another push's lock on a venv, in seconds.
pub const LOCK_WAIT_SECS: u32 = 900;

/// A directory for a remote command: an absolute path quoted, or `~` /
/// `~/...` as `"$HOME"/...`, so the remote shell expands the login user's
/// home and quotes the rest. Anything else is an error naming the value.
pub fn home_path_word(path: &str) -> anyhow::Result<String> {
    if path.starts_with('/') {
        return Ok(shell::quote(path));
    }
    if path == "~" {
        return Ok("\"$HOME\"".to_string());
    }
    match path.strip_prefix("~/") {
        Some(rest) if !rest.is_empty() => Ok(format!("\"$HOME\"/{}", shell::quote(rest))),
        Some(_) => Ok("\"$HOME\"".to_string()),
        None => anyhow::bail!(
            "{path:?} is not an absolute path or one under ~/ (the login user's home)"
        ),
    }
}

/// List a wheel cache: the first line is the directory (absolute), then one
/// `./SHA256/FILE` per cached wheel. With `create`, the directory is made
/// (mode 0755) and temporary files of uploads cut off over an hour ago are
/// deleted; without, nothing on the host changes and a missing directory
/// lists as empty.
pub fn cache_listing_command(dir_word: &str, create: bool) -> String {
    let list = "find . -mindepth 2 -maxdepth 2 -type f -name '*.whl' ! -name '.*' -print";
    if create {
        format!(
            "dir={dir_word} && umask 022 && mkdir -p \"$dir\" && cd \"$dir\" && pwd && \
             {{ find . -mindepth 1 -maxdepth 1 -type f -name '.*.part' -mmin +60 -exec rm -f {{}} + ; {list}; }}"
        )
    } else {
        format!(
            "dir={dir_word} && printf '%s\\n' \"$dir\" && \
             if [ -d \"$dir\" ]; then cd \"$dir\" && {list}; fi"
        )
    }
}

/// Run [`CACHE_SCRIPT`] over uploaded files: `(sha256, file name, temporary
/// name)` each, in the cache directory `dir` (absolute).
pub fn cache_commit_command(dir: &str, uploads: &[(&str, &str, &str)]) -> String {
    let mut words = vec!["/bin/sh", "-s", "--", dir];
    for (sha, file, temp) in uploads {
        words.extend([*sha, *file, *temp]);
    }
    shell::join(&words)
}

/// `VENV/bin/python -m pip` with the options every vd-push pip run takes:
/// no user or site configuration (`--isolated`), no prompts, no cache in the
/// venv user's home. `python -m pip` rather than `bin/pip`, whose `#!` line
/// breaks when a venv is moved. Every option here exists since pip 6, so the
/// pips old interpreters carry take them as they are: 18.1 (ensurepip of
/// 3.6), 19.2.3 (2.7's ensurepip) and 20.3.4 (virtualenv's for 2.7), the last
/// pip for Python 2; nothing newer (`--root-user-action`, `--python`) is used.
fn pip(venv: &str) -> Vec<String> {
    [
        venv_python(venv).as_str(),
        "-m",
        "pip",
        "--isolated",
        "--disable-pip-version-check",
        "--no-input",
        "--no-cache-dir",
    ]
    .map(str::to_string)
    .to_vec()
}

/// One pip call that installs every file (upgrades and downgrades alike):
/// from the files only, dependencies not resolved (vd-diff checked them).
pub fn pip_install_command(venv: &str, files: &[String]) -> String {
    let mut words = pip(venv);
    words.extend(["install", "--no-index", "--no-deps"].map(str::to_string));
    words.extend(files.iter().cloned());
    shell::join(&words)
}

/// One pip call that uninstalls the named packages.
pub fn pip_uninstall_command(venv: &str, names: &[String]) -> String {
    let mut words = pip(venv);
    words.extend(["uninstall", "-y"].map(str::to_string));
    words.extend(names.iter().cloned());
    shell::join(&words)
}

/// Make a virtualenv with `python`: `python -m venv` (3.3 and newer), or on
/// Python 2, which has no venv module, `python -m virtualenv` (releases
/// before 21 run on 2.7) when that interpreter has it, else a message
/// saying what to install and exit status 5. Which one is decided on the
/// host, by the interpreter itself.
pub fn create_venv_command(python: &str, venv: &str) -> String {
    let q = shell::quote;
    let missing = format!(
        "{python} is Python 2, which has no venv module, and virtualenv is not installed for it: \
         install it on the host ({python} -m pip install 'virtualenv<21'), or name a Python 3 \
         in the target's python"
    );
    format!(
        "if {py} -c 'import sys; sys.exit(sys.version_info[0] != 2)' </dev/null 2>/dev/null; then \
           {py} -c 'import virtualenv' </dev/null 2>/dev/null || {{ echo {missing} >&2; exit 5; }}; \
           {virtualenv}; \
         else {venv_module}; fi",
        py = q(python),
        missing = q(&missing),
        virtualenv = shell::join(&[python, "-m", "virtualenv", "--quiet", venv]),
        venv_module = shell::join(&[python, "-m", "venv", venv]),
    )
}

/// The name of the lock file inside a venv that vd-push holds with `flock`.
pub const VENV_LOCK: &str = ".vd-lock";

/// What [`push_command`] does to one venv.
pub struct PushSteps<'a> {
    pub venv: &'a str,
    /// Make the venv first (when it has no interpreter) with this python.
    pub create_with: Option<&'a str>,
    /// Wheel files on the host, to install with one pip call.
    pub install: &'a [String],
    /// Packages to uninstall first.
    pub remove: &'a [String],
}

/// vd-push's change to one venv, as one command run as the venv's user,
/// with [`FREEZE_SCRIPT`] on stdin: under an exclusive `flock` on
/// `VENV/.vd-lock` (waiting up to [`LOCK_WAIT_SECS`]), make the venv if
/// asked, check every wheel file is readable, freeze, uninstall, install,
/// freeze again. stdout is `vd-created` when the venv was made, `vd-before`, the first freeze's JSON, `vd-pip U
/// I` (pip's exit statuses, 0 for a step not run), the second freeze's
/// JSON; pip's output goes to stderr. A failure before pip prints a message
/// on stderr and no `vd-pip` line.
pub fn push_command(steps: &PushSteps) -> String {
    let venv = steps.venv.trim_end_matches('/');
    let q = shell::quote;
    let lock = format!("{venv}/{VENV_LOCK}");
    let python = q(&venv_python(venv));
    let mut script = String::from("cd / && umask 022 && script=$(cat) || exit 5\n");
    match steps.create_with {
        Some(_) => script.push_str(&format!("mkdir -p {} || exit 5\n", q(venv))),
        None => script.push_str(&format!(
            "[ -d {v} ] || {{ echo {msg} >&2; exit 5; }}\n",
            v = q(venv),
            msg = q(&format!(
                "{venv} does not exist (vd-push --create makes it; run vd-freeze again first)"
            )),
        )),
    }
    script.push_str(&format!(
        "command -v flock >/dev/null 2>&1 || {{ echo {msg} >&2; exit 5; }}\n\
         [ -e {lock} ] || : >>{lock} || exit 5\n\
         exec 9<{lock} || exit 5\n\
         flock -w {LOCK_WAIT_SECS} 9 || {{ echo {busy} >&2; exit 5; }}\n",
        msg = q("flock is not installed on this host (util-linux): vd-push locks the venv with it"),
        lock = q(&lock),
        busy = q(&format!(
            "another push has held the lock {lock} for {LOCK_WAIT_SECS}s; gave up"
        )),
    ));
    if let Some(base) = steps.create_with {
        script.push_str(&format!(
            "if [ ! -e {python} ]; then ( {create} ) </dev/null 1>&2 || {{ echo {failed} >&2; exit 5; }}; \
             echo vd-created; fi\n",
            create = create_venv_command(base, venv),
            failed = q(&format!("{base} could not make the venv {venv}")),
        ));
    }
    if !steps.install.is_empty() {
        script.push_str(&format!(
            "for f in {files}; do [ -r \"$f\" ] || {{ echo \"$f cannot be read by $(id -un): \
             every directory of the cache must be searchable, and its files readable, by the venv's user \
             (set the target's cache to such a directory)\" >&2; exit 5; }}; done\n",
            files = shell::join(steps.install),
        ));
    }
    script.push_str(&format!(
        "echo vd-before && printf '%s\\n' \"$script\" | {python} {ISOLATED} - || exit 5\nun=0 in=0\n"
    ));
    if !steps.remove.is_empty() {
        script.push_str(&format!(
            "{} </dev/null 1>&2 || un=$?\n",
            pip_uninstall_command(venv, steps.remove)
        ));
    }
    if !steps.install.is_empty() {
        script.push_str(&format!(
            "if [ $un = 0 ]; then {} </dev/null 1>&2 || in=$?; fi\n",
            pip_install_command(venv, steps.install)
        ));
    }
    script.push_str(&format!(
        "echo \"vd-pip $un $in\" && printf '%s\\n' \"$script\" | exec {python} {ISOLATED} -\n"
    ));
    script
}

/// The interpreter a venv still to create would get: the record's `python`,
/// or, in a record frozen before (where `python` holds facts), the executable
/// those facts describe when it was not the target venv's own: a host python
/// (`venv: false`), or the one vd-freeze ran for a venv still to create,
/// which may itself live in a venv (a Python 2.7 with virtualenv often
/// does); else python3.
pub fn python_for_new_venv(record: &Record) -> String {
    let to_create = record.get("venv_exists") == Some(&Value::Bool(false));
    match record.get("python") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(Value::Object(facts))
            if to_create || facts.get("venv") == Some(&Value::Bool(false)) =>
        {
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
        // A stand-in for the host's python that prints its arguments (echo
        // would take `-E` as its own option).
        let python = dir.path().join("python");
        std::fs::write(&python, "#!/bin/sh\nprintf '%s\\n' \"$*\"\n").unwrap();
        std::fs::set_permissions(&python, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let python = python.display().to_string();
        let run = |venv: &str| {
            Command::new("/bin/sh")
                .arg("-c")
                .arg(freeze_command(venv, &python))
                .output()
                .unwrap()
        };
        // Absent: the host's python runs, told there is nothing installed.
        let absent = run(&dir.path().join("nope").display().to_string());
        assert_eq!(
            String::from_utf8_lossy(&absent.stdout),
            "-E -s - --no-installed\n"
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
    fn a_new_venv_gets_the_interpreter_its_record_named() {
        let record = |v: serde_json::Value| v.as_object().unwrap().clone();
        assert_eq!(
            python_for_new_venv(&record(json!({"python": "python2.7"}))),
            "python2.7"
        );
        // vd-freeze ran this python for a venv still to create: it may live
        // in a venv of its own (a 2.7 with virtualenv).
        let tools = json!({"executable": "/opt/py27/bin/python", "venv": true});
        assert_eq!(
            python_for_new_venv(&record(json!({"python": tools, "venv_exists": false}))),
            "/opt/py27/bin/python"
        );
        // The facts of the target venv's own python are no base for it.
        assert_eq!(
            python_for_new_venv(&record(json!({"python": tools, "venv_exists": true}))),
            "python3"
        );
        let host = json!({"executable": "/usr/bin/python3.6", "venv": false});
        assert_eq!(
            python_for_new_venv(&record(json!({"python": host}))),
            "/usr/bin/python3.6"
        );
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
