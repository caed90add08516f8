//! The freeze: one interpreter's facts and what its venv has installed.
//!
//! The command runs [`FREEZE_SCRIPT`] (`freeze.py`, beside this file, sent on
//! stdin) with the venv's interpreter; what it prints is one JSON object read
//! here into a [`FreezeOutput`]. vd-push runs the same script twice under its
//! lock (see [`super::push`]) and reads each freeze with [`FreezeOutput::parse`].
//!
//! vd-freeze asks for many venvs of a host at once: [`batch_command`] runs
//! [`BATCH_SCRIPT`] (`freeze_batch.sh`) with the venvs and the scripts on
//! stdin ([`batch_stdin`]); it tells the venvs apart as [`freeze_command`] does and
//! has `freeze.py --venvs` read the venvs of one interpreter in one process.
//! Its output gives each venv what [`freeze_command`] would have ended with
//! (stdout, stderr, exit status), read back by [`read_batch`]; a venv it did
//! not answer for is frozen on its own.

use super::running::{RUNNING_SCRIPT, RUNNING_SH};
use super::{exit, program, script_command};
use crate::record::{Facts, Freeze, Installed, Markers};
use crate::transport::Finished;
use anyhow::{bail, Context, Result};
use std::hash::{BuildHasher, Hasher};

/// Prints the interpreter's facts and its installed distributions as one
/// JSON object (`python`, `markers`, `installed`).
pub const FREEZE_SCRIPT: &str = include_str!("freeze.py");

/// The exit status of [`freeze_command`] when the venv path exists but has
/// no interpreter.
pub const NOT_A_VENV: i32 = exit::NOT_A_VENV;

/// The shell script of [`freeze_command`].
pub const FREEZE_SH: &str = include_str!("freeze.sh");

/// How the freeze script is run: isolated from the remote user's
/// environment (no PYTHON* variables, no user site). Python 2.7 has no `-I`;
/// `-E -s` is its equivalent but for the current directory on sys.path,
/// which the script itself leaves out. prelude.sh runs the script the same way.
#[cfg(test)]
pub const ISOLATED: &str = "-E -s";

/// Run the script on stdin with the venv's interpreter, isolated from the
/// remote user's environment (`-E -s`), by [`FREEZE_SH`] (`freeze.sh`).
/// When the venv does not exist, the host's `python` describes the
/// interpreter a new venv would get, without `installed`; when the path
/// exists but has no interpreter, exit [`NOT_A_VENV`].
pub fn freeze_command(venv: &str, python: &str) -> String {
    script_command(&program(&[FREEZE_SH]), "vd-freeze", &[venv, python])
}

/// Freezes many venvs of one host; see the module's documentation.
pub const BATCH_SCRIPT: &str = include_str!("freeze_batch.sh");

/// Whether a venv can go into [`batch_command`]: its path and interpreter
/// must pass through the script's input lines (no control characters), and
/// the path must be the one its interpreter will report (absolute and
/// normal: no `.`, `..`, `//` or trailing `/`, which interpreters of
/// different versions report differently). Any other venv is frozen alone.
pub fn batchable(venv: &str, python: &str) -> bool {
    let plain = |text: &str| !text.is_empty() && !text.chars().any(char::is_control);
    plain(venv)
        && plain(python)
        && venv.starts_with('/')
        && venv.len() > 1
        && venv[1..]
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != "..")
}

/// A fresh word that marks the sections of one [`batch_command`]'s output.
pub fn batch_token() -> String {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    hasher.write_u32(std::process::id());
    format!("vd-freeze-{:016x}", hasher.finish())
}

/// The program of [`batch_command`]: the batch, after the scan of
/// running processes it calls.
pub fn batch_program() -> String {
    program(&[RUNNING_SH, BATCH_SCRIPT])
}

/// The command that freezes many venvs of one host ([`BATCH_SCRIPT`]; the
/// venvs and freeze.py go on stdin, [`batch_stdin`], so the command's
/// length does not grow with the number of venvs, nor pass what an SSH
/// server takes); with `scan`, it also reads what runs from them
/// ([`read_batch_scan`]), with running.py as an argument.
pub fn batch_command(token: &str, scan: bool) -> String {
    script_command(
        &batch_program(),
        "vd-freeze",
        &[token, if scan { RUNNING_SCRIPT } else { "" }],
    )
}

/// What [`batch_command`] reads: each venv's path and the interpreter a new
/// venv would get, a line each (only [`batchable`] ones), an empty line,
/// and freeze.py.
pub fn batch_stdin<'a>(venvs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Vec<u8> {
    let mut stdin = String::new();
    for (venv, python) in venvs {
        stdin.push_str(venv);
        stdin.push('\n');
        stdin.push_str(python);
        stdin.push('\n');
    }
    stdin.push('\n');
    stdin.push_str(FREEZE_SCRIPT);
    stdin.into_bytes()
}

/// What [`batch_command`] printed, per venv in input order: what the
/// per-venv [`freeze_command`] would have ended with, or `None` for a venv
/// it did not answer for (freeze that one on its own).
pub fn read_batch(stdout: &[u8], token: &str, count: usize) -> Vec<Option<Finished>> {
    #[derive(Default)]
    struct Parts {
        stdout: Vec<u8>,
        stderr: Vec<u8>,
        status: Option<i32>,
    }
    let mut parts: Vec<Parts> = (0..count).map(|_| Parts::default()).collect();
    for (head, body) in sections(stdout, token) {
        let words: Vec<&str> = head.split(' ').collect();
        let Some(part) = words
            .first()
            .and_then(|i| i.parse::<usize>().ok())
            .and_then(|i| parts.get_mut(i))
        else {
            continue; // the batch's own stderr ("batch N"), or nothing vd asked for
        };
        match words[1..] {
            ["out"] => part.stdout = body.to_vec(),
            ["err"] => part.stderr = body.to_vec(),
            ["status", status] => part.status = status.parse().ok(),
            _ => {}
        }
    }
    parts
        .into_iter()
        .map(|p| {
            p.status.map(|status| Finished {
                status,
                stdout: p.stdout,
                stderr: p.stderr,
            })
        })
        .collect()
}

/// What the scan in [`batch_command`] ended with (stdout: running.py's
/// JSON, stderr, exit status), when the batch got that far.
pub fn read_batch_scan(stdout: &[u8], token: &str) -> Option<Finished> {
    let mut out: Option<&[u8]> = None;
    for (head, body) in sections(stdout, token) {
        let words: Vec<&str> = head.split(' ').collect();
        match (&words[..], out) {
            (["running"], _) => out = Some(body),
            (["running-status", status], Some(stdout)) => {
                return Some(Finished {
                    status: status.parse().ok()?,
                    stdout: stdout.to_vec(),
                    stderr: body.to_vec(),
                })
            }
            _ => {}
        }
    }
    None
}

/// The marked sections of a batch's output: each mark's words after the
/// token, and the bytes up to the next mark.
fn sections<'a>(stdout: &'a [u8], token: &str) -> impl Iterator<Item = (String, &'a [u8])> {
    let mark = format!("\n{token} ").into_bytes();
    split_bytes(stdout, &mark)
        .into_iter()
        .skip(1)
        .map(|section| {
            let (head, body) = match section.iter().position(|b| *b == b'\n') {
                Some(at) => (&section[..at], &section[at + 1..]),
                None => (section, &[][..]),
            };
            (String::from_utf8_lossy(head).into_owned(), body)
        })
}

/// `bytes` cut at every `mark` (the marks left out).
fn split_bytes<'a>(bytes: &'a [u8], mark: &[u8]) -> Vec<&'a [u8]> {
    let mut cut = Vec::new();
    let mut rest = bytes;
    while let Some(at) = rest.windows(mark.len()).position(|w| w == mark) {
        cut.push(&rest[..at]);
        rest = &rest[at + mark.len()..];
    }
    cut.push(rest);
    cut
}

/// What the freeze script printed, read.
#[derive(Debug, Clone, PartialEq)]
pub struct FreezeOutput {
    /// The interpreter's facts (`python`).
    pub python: Facts,
    /// The PEP 508 environment (`markers`).
    pub markers: Markers,
    /// What the venv holds.
    pub installed: Listing,
}

/// The `installed` part of a freeze.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listing {
    /// Not asked for: the venv does not exist yet (`--no-installed`).
    NotAsked,
    /// Asked for, but the script printed null: what vd's script printed
    /// for Python before 3.8 until it read the metadata files itself.
    Unknown,
    /// {normalized name: version}.
    Listed(Installed),
}

impl FreezeOutput {
    /// Read the JSON object the freeze script prints.
    pub fn parse(text: &str) -> Result<FreezeOutput> {
        let object: serde_json::Map<String, serde_json::Value> = serde_json::from_str(text)
            .with_context(|| format!("the freeze script printed no JSON object: {text:?}"))?;
        for name in ["python", "markers"] {
            if !object.contains_key(name) {
                bail!("the freeze script printed no `{name}`");
            }
        }
        let facts: Freeze = serde_json::from_value(serde_json::Value::Object(object))
            .context("the freeze script printed facts vd cannot read")?;
        let installed = match facts.installed {
            None => Listing::NotAsked,
            Some(None) => Listing::Unknown,
            Some(Some(installed)) => Listing::Listed(installed),
        };
        Ok(FreezeOutput {
            python: facts.python,
            markers: facts.markers,
            installed,
        })
    }

    pub fn read(finished: &Finished, venv: &str) -> Result<FreezeOutput> {
        if finished.status == NOT_A_VENV {
            bail!("{}", finished.stderr_text());
        }
        if !finished.success() {
            let stderr = finished.stderr_text();
            bail!(
                "the freeze command failed (exit status {}){}",
                finished.status,
                if stderr.is_empty() {
                    String::new()
                } else {
                    format!(": {stderr}")
                }
            );
        }
        let output = FreezeOutput::parse(String::from_utf8_lossy(&finished.stdout).trim())?;
        match &output.installed {
            Listing::NotAsked => {}
            Listing::Unknown => bail!(
                "the freeze script printed no list of distributions for python {} in {venv} \
                 (`installed` is null)",
                output.python.version.as_deref().unwrap_or("?")
            ),
            Listing::Listed(_) => {
                if output.python.venv != Some(true) {
                    bail!(
                        "{venv} is not a virtualenv: its bin/python is the interpreter of {} (there is no pyvenv.cfg)",
                        output.python.prefix.as_deref().unwrap_or("?")
                    );
                }
            }
        }
        Ok(output)
    }

    /// `{normalized name: version}` of a venv's freeze; an error for a
    /// freeze without the list.
    pub fn installed(&self) -> Result<&Installed> {
        match &self.installed {
            Listing::Listed(map) => Ok(map),
            Listing::NotAsked => bail!("the venv's freeze printed no `installed`"),
            Listing::Unknown => bail!("the venv's freeze could not list its distributions"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    /// What freeze.py printed in a venv of CPython 3.11 on Linux, and for
    /// the host's python3 (`--no-installed`), captured.
    const VENV: &str = include_str!("testdata/freeze-venv.json");
    const NO_VENV: &str = include_str!("testdata/freeze-no-venv.json");
    /// The same script in a virtualenv (20.15) of CPython 2.7.18 with
    /// Django 1.11, and in a venv of 3.6.15 with Django 3.2, captured.
    const VENV_27: &str = include_str!("testdata/freeze-venv-2.7.json");
    const VENV_36: &str = include_str!("testdata/freeze-venv-3.6.json");

    /// What freeze_batch.sh printed for four venvs of a host, captured:
    /// a venv of the host's python3 holding Vd.Demo_Pkg (read by
    /// `freeze.py --venvs`), a venv still to create, a directory that is no
    /// venv, and a venv whose bin/python is a broken link.
    const BATCH: &[u8] = include_bytes!("testdata/freeze-batch.out");
    const BATCH_TOKEN: &str = "vd-freeze-0123456789abcdef";

    #[test]
    fn reads_each_venvs_part_of_a_batch() {
        let answers = read_batch(BATCH, BATCH_TOKEN, 4);
        let finished: Vec<&Finished> = answers.iter().map(|a| a.as_ref().unwrap()).collect();
        let shop = FreezeOutput::read(finished[0], "/srv/shop/venv").unwrap();
        assert_eq!(shop.installed().unwrap()["vd-demo-pkg"], "1.0");
        assert_eq!(
            shop.python.executable.as_deref(),
            Some("/srv/shop/venv/bin/python")
        );
        assert_eq!(shop.python.prefix.as_deref(), Some("/srv/shop/venv"));
        assert_eq!(shop.python.venv, Some(true));
        // Exactly one JSON line, as the per-venv freeze prints it.
        assert_eq!(
            finished[0].stdout.iter().filter(|b| **b == b'\n').count(),
            1
        );
        let blog = FreezeOutput::read(finished[1], "/srv/blog/venv").unwrap();
        assert_eq!(blog.installed, Listing::NotAsked);
        assert_eq!(blog.python.executable.as_deref(), Some("/usr/bin/python3"));
        let err =
            |f: &Finished, venv: &str| format!("{:#}", FreezeOutput::read(f, venv).unwrap_err());
        assert_eq!(
            err(finished[2], "/srv/data"),
            "/srv/data exists but is not a virtualenv (it has no bin/python)"
        );
        assert_eq!(finished[3].status, NOT_A_VENV);
        assert!(err(finished[3], "/srv/broken/venv")
            .starts_with("/srv/broken/venv/bin/python cannot be run here"));
        // Another token finds nothing: each venv is then frozen on its own.
        assert!(read_batch(BATCH, "vd-freeze-other", 4)
            .iter()
            .all(Option::is_none));
    }

    #[test]
    fn a_venv_the_batch_did_not_finish_is_not_answered() {
        let t = "vd-freeze-1";
        let text = format!(
            "\n{t} 1 out\n{{\"python\": {{}}}}\n{t} 1 err\nwarning\n\n{t} 1 status 0\n\
             \n{t} 0 out\n{{\"half\n{t} batch 1\nKilled\n\n{t} 7 status 0\n"
        );
        let answers = read_batch(text.as_bytes(), t, 2);
        assert!(answers[0].is_none(), "a venv without its status");
        let one = answers[1].as_ref().unwrap();
        assert_eq!(one.status, 0);
        assert_eq!(one.stdout, b"{\"python\": {}}");
        assert_eq!(one.stderr_text(), "warning");
        // A mark's word inside a venv's output is output, not a mark.
        let text = format!("\n{t} 0 out\nsee {t} 0 status 9\n\n{t} 0 err\n\n{t} 0 status 0\n");
        let answers = read_batch(text.as_bytes(), t, 1);
        let one = answers[0].as_ref().unwrap();
        assert_eq!(
            (one.status, one.stdout.as_slice()),
            (0, &b"see vd-freeze-1 0 status 9\n"[..])
        );
    }

    #[test]
    fn the_batch_runs_every_freeze_as_the_per_venv_command_does() {
        // Isolated from the remote user's environment, as freeze_command.
        assert!(FREEZE_SH.contains(&format!("exec \"$interpreter\" {ISOLATED} -;")));
        assert!(FREEZE_SH.contains(&format!("exec \"$python\" {ISOLATED} - --no-installed")));
        for run in [
            format!("\"$interpreter\" {ISOLATED} -"),
            format!("\"$python\" {ISOLATED} - --no-installed"),
            format!("\"$2/bin/python\" {ISOLATED} -S -c"),
        ] {
            assert!(BATCH_SCRIPT.contains(&run), "freeze_batch.sh: {run}");
        }
        assert!(FREEZE_SCRIPT.contains(r#"[python, "-E", "-s", "-"]"#));
        assert!(FREEZE_SCRIPT.contains(r#"[real, "-E", "-s", "-S", "-c""#));
        assert_eq!(ISOLATED, "-E -s");
        // The command does not grow with the venvs: they go on stdin.
        let command = batch_command(&batch_token(), true);
        // An SSH exec request longer than 32 KiB is refused (libssh2), even
        // when sudo's quoting makes it longer.
        let command = crate::remote::as_user(Some("app"), &command);
        assert!(command.len() < 32 * 1024, "{} bytes", command.len());
    }

    #[test]
    fn only_plain_absolute_paths_go_into_a_batch() {
        assert!(batchable("/srv/shop/venv", "python3"));
        assert!(batchable("/srv/it's a \"venv\" $(x)", "/usr/bin/python3"));
        for venv in [
            "srv/venv",
            "/",
            "/srv/venv/",
            "/srv//venv",
            "/srv/./venv",
            "/srv/../venv",
            "/srv/a\nb",
            "/srv/a\tb",
        ] {
            assert!(!batchable(venv, "python3"), "{venv:?}");
        }
        assert!(!batchable("/srv/venv", "python3\n"));
        assert!(!batchable("/srv/venv", ""));
        assert_ne!(batch_token(), batch_token());
        let stdin = batch_stdin([("/a", "python3"), ("/b", "py")]);
        assert!(stdin.starts_with(b"/a\npython3\n/b\npy\n\n# vd-freeze"));
    }

    #[test]
    fn reads_the_freezes_of_2_7_and_3_6_down_to_their_tags() {
        use crate::tags::{sys_tags, Interpreter};
        let read = |text: &str, venv: &str| {
            let out = FreezeOutput::read(&Finished::of(0, text, ""), venv).unwrap();
            let env = out.markers.environment().unwrap();
            let system = env.platform_system().to_string();
            let interp = Interpreter::from_facts(&out.python, &system).unwrap();
            (out, interp)
        };
        let (py27, interp) = read(VENV_27, "/srv/legacy/venv");
        let installed = py27.installed().unwrap();
        assert_eq!(installed["django"], "1.11.29");
        assert_eq!(installed["pip"], "20.3.4");
        assert!(!installed.contains_key("python") && !installed.contains_key("wsgiref"));
        assert_eq!(py27.markers.0["implementation_name"], "");
        assert_eq!(py27.python.unicode_size, Some(4));
        let tags: Vec<String> = sys_tags(&interp).iter().map(|t| t.to_string()).collect();
        assert_eq!(tags[0], "cp27-cp27mu-manylinux_2_36_x86_64");
        assert_eq!(tags.last().unwrap(), "py20-none-any");
        // packaging 20.9's sys_tags() on that interpreter: 405 tags, and
        // pip adds cp27-none-any.
        assert_eq!(tags.len(), 406);

        let (py36, interp) = read(VENV_36, "/srv/billing/venv");
        assert_eq!(py36.installed().unwrap()["django"], "3.2.25");
        assert_eq!(py36.python.with_pymalloc, Some(true));
        let tags: Vec<String> = sys_tags(&interp).iter().map(|t| t.to_string()).collect();
        assert_eq!(tags[0], "cp36-cp36m-manylinux_2_36_x86_64");
        // packaging 21.3's: 548, and cp36-none-any.
        assert_eq!(tags.len(), 549);
    }

    #[test]
    fn reads_a_venv_freeze() {
        let out = FreezeOutput::read(&Finished::of(0, VENV, ""), "/srv/shop/venv").unwrap();
        assert!(matches!(out.installed, Listing::Listed(_)));
        let installed = out.installed().unwrap();
        assert_eq!(installed.len(), 3);
        assert_eq!(installed["pip"], "23.2.1");
        assert_eq!(installed["vdp-alpha"], "1.0");
        assert_eq!(out.python.version.as_deref(), Some("3.11.7"));
        assert_eq!(
            out.python.executable.as_deref(),
            Some("/srv/shop/venv/bin/python")
        );
        assert_eq!(out.markers.0["python_version"], "3.11");
        // Names are PEP 503 names, whoever printed them.
        let text = r#"{"installed": {"Django": "5.0.6", "zope.interface": "6.4"}, "markers": {}, "python": {"venv": true}}"#;
        let out = FreezeOutput::parse(text).unwrap();
        let names: Vec<&String> = out.installed().unwrap().keys().collect();
        assert_eq!(names, ["django", "zope-interface"]);
    }

    #[test]
    fn a_freeze_without_installed_is_a_venv_to_create() {
        let out = FreezeOutput::read(&Finished::of(0, NO_VENV, ""), "/srv/new").unwrap();
        assert_eq!(out.installed, Listing::NotAsked);
        assert!(!matches!(out.installed, Listing::Listed(_)));
        assert!(out.installed().is_err());
        assert_eq!(out.python.executable.as_deref(), Some("/usr/bin/python3"));
    }

    #[test]
    fn says_why_there_is_no_freeze() {
        let err = |f: Finished| format!("{:#}", FreezeOutput::read(&f, "/srv/shop").unwrap_err());
        let not_a_venv = "/srv/shop exists but is not a virtualenv (it has no bin/python)\n";
        assert_eq!(
            err(Finished::of(NOT_A_VENV, "", not_a_venv)),
            not_a_venv.trim()
        );
        assert_eq!(
            err(Finished::of(127, "", "sh: python3: not found\n")),
            "the freeze command failed (exit status 127): sh: python3: not found"
        );
        assert!(err(Finished::of(0, "Traceback", "")).contains("printed no JSON object"));
        assert!(err(Finished::of(0, r#"{"python": {}}"#, "")).contains("printed no `markers`"));
        let old =
            r#"{"installed": null, "markers": {}, "python": {"version": "3.6.15", "venv": true}}"#;
        assert!(err(Finished::of(0, old, ""))
            .contains("no list of distributions for python 3.6.15 in /srv/shop"));
        let system =
            r#"{"installed": {}, "markers": {}, "python": {"venv": false, "prefix": "/usr"}}"#;
        assert!(err(Finished::of(0, system, "")).contains("interpreter of /usr"));
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
}
