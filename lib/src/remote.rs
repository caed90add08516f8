//! The commands vd runs on targets: one module per remote operation.
//!
//! Each operation's module holds its command, the script it sends (a real
//! file beside it that a linter can read: `freeze.py`, `freeze.sh`,
//! `freeze_batch.sh`, `push.sh`, `push_step.sh`, `generation.sh`, `switch.sh`,
//! `journal.sh`, `cache.sh`, `running.py`), the parser of what the host
//! prints, and that typed result: [`freeze`], [`push`], [`generation`],
//! [`switch`], [`journal`], [`cache`], [`migrate`], [`reload`],
//! [`running`]. What is shared is here:
//! the prelude every shell script starts with (`prelude.sh`: `fail`, the
//! lock, `cd /`, umask), how the scripts that change a venv install
//! (`install.sh`: uv or pip), the exit statuses the scripts and their parsers
//! agree on ([`exit`]), the one reader of the `vd-WORD` lines the scripts
//! print ([`steps`]), who a command runs as, and sudo's refusals. Every value that
//! comes from a record (a venv path, an interpreter, a user) goes through
//! [`shell::quote`], so a path like `/srv/$(id)` is a path and never code;
//! a script takes its values as quoted arguments, never as text put into
//! it. Scripts are embedded in the binaries and sent with the command:
//! nothing is installed on the targets.

pub mod cache;
pub mod freeze;
pub mod generation;
pub mod journal;
pub mod migrate;
pub mod push;
pub mod reload;
pub mod running;
pub mod switch;

use crate::shell;
use crate::transport::Finished;
use anyhow::{anyhow, Result};
use freeze::FreezeOutput;

/// The exit statuses the remote scripts end with, named once: every shell
/// program vd sends begins by setting `VD_EXIT_<NAME>` from these
/// ([`program`]), and the parsers of what the scripts print compare
/// against the same constants.
pub mod exit {
    /// The script gave up (the prelude's `fail`): why is on stderr.
    pub const FAILED: i32 = 5;
    /// freeze.sh: the venv's path exists but holds no interpreter that runs.
    pub const NOT_A_VENV: i32 = 3;
    /// freeze.py's check: the freeze is neither the state the plan was made
    /// from nor the state it makes.
    pub const DRIFTED: i32 = 3;
    /// freeze.py's check: the freeze is the state the plan makes.
    pub const MADE: i32 = 4;

    /// Each status by the name the scripts know it by.
    pub(super) const NAMED: [(&str, i32); 4] = [
        ("FAILED", FAILED),
        ("NOT_A_VENV", NOT_A_VENV),
        ("DRIFTED", DRIFTED),
        ("MADE", MADE),
    ];
}

/// What every shell program vd sends starts with (see its header).
pub const PRELUDE: &str = include_str!("remote/prelude.sh");

/// What a target with generations is on its host, and which generations
/// count (see its header): the part generation.sh, switch.sh and
/// journal.sh share.
pub const GENERATIONS: &str = include_str!("remote/generations.sh");

/// How the scripts that change a venv install and uninstall, with uv or
/// pip (see its header): the part push_step.sh and generation.sh share.
pub const INSTALL: &str = include_str!("remote/install.sh");

/// How long a change to a venv waits for another's lock on it, in seconds.
pub const LOCK_WAIT_SECS: u32 = 900;

/// How many lines of pip's output an error carries.
const PIP_TAIL_LINES: usize = 20;

/// The shell program made of `parts` (scripts' texts, in order): the exit
/// statuses' names, the prelude, then the parts.
pub fn program(parts: &[&str]) -> String {
    let mut text: String = exit::NAMED
        .iter()
        .map(|(name, status)| format!("VD_EXIT_{name}={status}\n"))
        .collect();
    for part in std::iter::once(&PRELUDE).chain(parts) {
        text.push_str(&without_comments(part));
    }
    text
}

/// A script's text without its comment lines (shellcheck's directives
/// kept): a command is one SSH request of at most about 32 KiB, shared
/// with its arguments (a generation's wheel files), and the comments are
/// for the reader of the file, not the host. No script has a line starting
/// with `#` inside a quoted string or a here-document.
fn without_comments(script: &str) -> String {
    script
        .lines()
        .filter(|line| {
            let line = line.trim_start();
            !line.starts_with('#') || line.starts_with("# shellcheck")
        })
        .flat_map(|line| [line, "\n"])
        .collect()
}

/// `/bin/sh -c PROGRAM NAME ARGS...`: a [`program`] run with every value as
/// a quoted argument, never as text put into it (NAME is its `$0`).
pub fn script_command<S: AsRef<str>>(program: &str, name: &str, args: &[S]) -> String {
    let mut words = vec!["/bin/sh", "-c", program, name];
    words.extend(args.iter().map(AsRef::as_ref));
    shell::join(&words)
}

/// One line a script printed to say how far it got, `vd-WORD ARGS...`, with
/// the line after it when that is no such line (a freeze's JSON).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step<'a> {
    pub word: &'a str,
    pub args: Vec<&'a str>,
    pub body: Option<&'a str>,
}

/// The steps a script printed on stdout, in order; any other line is the
/// body of the step before it (its first such line only).
pub fn steps(stdout: &str) -> Vec<Step<'_>> {
    let mut steps: Vec<Step> = Vec::new();
    for line in stdout.lines() {
        if let Some(rest) = line.strip_prefix("vd-") {
            let mut words = rest.split_whitespace();
            let word = words.next().unwrap_or_default();
            steps.push(Step {
                word,
                args: words.collect(),
                body: None,
            });
        } else if let Some(step) = steps.last_mut().filter(|s| s.body.is_none()) {
            step.body = Some(line);
        }
    }
    steps
}

impl Step<'_> {
    /// Argument `i` as a generation's number.
    pub fn number(&self, i: usize) -> Result<u32> {
        let word = self.args.get(i).copied().unwrap_or_default();
        word.parse().map_err(|_| {
            anyhow!(
                "the script printed {word:?} for a number in `vd-{}`",
                self.word
            )
        })
    }

    /// Every argument as a generation's number.
    pub fn numbers(&self) -> Result<Vec<u32>> {
        (0..self.args.len()).map(|i| self.number(i)).collect()
    }

    /// Argument `i` as an exit status (-1 when it is none).
    pub fn status(&self, i: usize) -> i32 {
        self.args.get(i).and_then(|s| s.parse().ok()).unwrap_or(-1)
    }

    /// The freeze that follows the step, if any; `what` names it in errors.
    pub fn freeze(&self, what: &str) -> Result<Option<FreezeOutput>> {
        self.body
            .map(|line| FreezeOutput::parse(line).map_err(|e| anyhow!("{what}: {e:#}")))
            .transpose()
    }
}

/// What a failed command said on stderr, or that it said nothing.
pub fn said(finished: &Finished) -> String {
    let stderr = finished.stderr_text();
    match stderr.is_empty() {
        true => "no message".to_string(),
        false => stderr,
    }
}

/// The end of a command's stderr (pip's output), for an error.
pub fn pip_tail(finished: &Finished) -> String {
    let stderr = finished.stderr_text();
    let lines: Vec<&str> = stderr.lines().collect();
    lines[lines.len().saturating_sub(PIP_TAIL_LINES)..].join("\n")
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
    fn reads_steps_with_their_bodies() {
        let out = "vd-active 4\nvd-before\n{}\nnoise\nvd-pruned 1 2\nvd-previous \n";
        let steps = steps(out);
        let words: Vec<&str> = steps.iter().map(|s| s.word).collect();
        assert_eq!(words, ["active", "before", "pruned", "previous"]);
        assert_eq!(steps[0].number(0).unwrap(), 4);
        assert_eq!(steps[1].body, Some("{}"));
        assert_eq!(steps[2].numbers().unwrap(), [1, 2]);
        assert!(steps[3].args.is_empty() && steps[3].body.is_none());
        let err = steps[1].number(0).unwrap_err().to_string();
        assert_eq!(err, "the script printed \"\" for a number in `vd-before`");
        assert!(format!("{:#}", steps[1].freeze("the freeze").unwrap_err())
            .starts_with("the freeze: the freeze script printed no `python`"));
    }

    /// Every shell script vd sends, as the host gets it.
    fn programs() -> Vec<(&'static str, String)> {
        vec![
            ("push.sh", push::push_program()),
            ("push_step.sh", push::push_step_program()),
            ("generation.sh", generation::generation_program()),
            ("switch.sh", switch::switch_program()),
            ("journal.sh", journal::journal_program()),
            ("cache.sh", program(&[cache::CACHE_SCRIPT])),
            ("freeze.sh", program(&[freeze::FREEZE_SH])),
            ("freeze_batch.sh", freeze::batch_program()),
            ("running.sh", running::scan_program()),
        ]
    }

    fn shellcheck(dir: &std::path::Path, files: &[&str], exclude: &[&str]) {
        let out = std::process::Command::new("shellcheck")
            .args(["--norc", "--shell=sh"])
            .args(exclude.iter().flat_map(|code| ["--exclude", code]))
            .args(files)
            .current_dir(dir)
            .output()
            .unwrap_or_else(|e| {
                panic!("cannot run shellcheck ({e}): install it (apt-get install shellcheck)")
            });
        assert!(
            out.status.success(),
            "shellcheck {files:?}:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }

    #[test]
    fn the_shell_scripts_pass_shellcheck_alone_and_as_sent() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/remote");
        let mut files = vec!["prelude.sh", "generations.sh", "install.sh"];
        files.extend(programs().iter().map(|(name, _)| *name));
        shellcheck(&dir, &files, &[]);
        let sent = tempfile::tempdir().unwrap();
        for (name, text) in programs() {
            std::fs::write(sent.path().join(name), text).unwrap();
        }
        let names: Vec<&str> = programs().iter().map(|(name, _)| *name).collect();
        // As sent, each program holds every exit status's name and the whole
        // prelude, of which it may use only some (SC2034, SC2317).
        shellcheck(sent.path(), &names, &["SC2034", "SC2317"]);
    }

    #[test]
    fn the_makefile_lints_every_script() {
        let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let makefile = std::fs::read_to_string(manifest.join("../Makefile")).unwrap();
        let mut listed = vec!["prelude.sh", "generations.sh", "install.sh"];
        listed.extend(programs().iter().map(|(name, _)| *name));
        for name in listed {
            assert!(
                makefile.contains(&format!("lib/src/remote/{name}")),
                "the Makefile's SHELL_SCRIPTS lacks {name}"
            );
        }
    }

    #[test]
    fn every_program_knows_the_exit_statuses_by_name() {
        let text = program(&[]);
        for (name, status) in exit::NAMED {
            assert!(
                text.contains(&format!("VD_EXIT_{name}={status}\n")),
                "{name}"
            );
        }
        for (name, script) in programs() {
            for used in script.split("VD_EXIT_").skip(1) {
                let used: String = used
                    .chars()
                    .take_while(|c| c.is_ascii_uppercase() || *c == '_')
                    .collect();
                let known = used.is_empty() || exit::NAMED.iter().any(|(n, _)| *n == used);
                assert!(known, "{name}: VD_EXIT_{used}");
            }
        }
    }
}
