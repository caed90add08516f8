//! The commands vd runs on targets, built in one place.
//!
//! Each builder returns one shell command line for a
//! [`Connection`](crate::transport::Connection). Every value that comes from
//! a record (a venv path, an interpreter, a user) goes through
//! [`shell::quote`], so a path like `/srv/$(id)` is a path and never code.
//! Scripts for the remote interpreter live beside this file (`remote/*.py`),
//! are embedded in the binaries, and are sent on the command's stdin: nothing
//! is installed on the targets, and nothing long lands in `ps` or sudo's log.

use crate::shell;
use crate::transport::Finished;

/// vd-freeze's remote side: prints the interpreter's facts and its installed
/// distributions as one JSON object (`python`, `markers`, `installed`).
pub const FREEZE_SCRIPT: &str = include_str!("remote/freeze.py");

/// The exit status of [`freeze_command`] when the venv path exists but has
/// no interpreter.
pub const NOT_A_VENV: i32 = 3;

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
/// breaks when a venv is moved.
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

/// Make a virtualenv with `python`.
pub fn create_venv_command(python: &str, venv: &str) -> String {
    shell::join(&[python, "-m", "venv", venv])
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
            "if [ ! -e {python} ]; then {create} </dev/null 1>&2 || {{ echo {failed} >&2; exit 5; }}; \
             echo vd-created; fi\n",
            create = create_venv_command(base, venv),
            failed = q(&format!("{base} -m venv {venv} failed")),
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
        "echo vd-before && printf '%s\\n' \"$script\" | {python} -I - || exit 5\nun=0 in=0\n"
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
        "echo \"vd-pip $un $in\" && printf '%s\\n' \"$script\" | exec {python} -I -\n"
    ));
    script
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

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
