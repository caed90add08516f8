//! A pipeline at a terminal (a pseudo-terminal made by util-linux `script`)
//! and the same pipeline from cron (stderr not a terminal): the progress bar,
//! the streamed table, each error once, the summary line, `--quiet`, and the
//! VD_* variables for the shared options.

use crate::util::python::venv;
use crate::util::sshd::{current_user, Sshd};
use crate::util::{bin, jsonl, spawn_piped, without_vd_environment};
use serde_json::{json, Map, Value};
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

type Record = Map<String, Value>;

/// The fleet of the tests: five targets on two hosts, in this order:
/// a good one; one whose reload waits on `gate` (a fifo) when given; a
/// relative venv (vd-targets' error); a folder that is not a virtualenv
/// (vd-freeze's error); a reload that fails (vd-reload's error).
struct Fleet {
    server: Sshd,
    dir: tempfile::TempDir,
}

const TARGETS_ERROR: &str = "must be an absolute path";
const FREEZE_ERROR: &str = "is not a virtualenv";
/// What the failing reload says (its command has it in lower case).
const RELOAD_ERROR: &str = "RELOAD-BROKE-HERE";

impl Fleet {
    fn new() -> Fleet {
        let server = Sshd::start(2);
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("wheels")).unwrap();
        for v in ["v1", "v2", "v5"] {
            venv(&dir.path().join(v));
        }
        fs::create_dir(dir.path().join("plain")).unwrap();
        Fleet { server, dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The inventory (.jsonl), target 2's reload waiting on `gate` if given.
    fn inventory(&self, gate: Option<&Path>) -> PathBuf {
        let s = &self.server;
        let with_reload = |mut r: Record, reload: &str| {
            r.insert("reload".into(), json!(reload));
            r
        };
        let slow = match gate {
            Some(fifo) => format!("cat {} > /dev/null", fifo.display()),
            None => "true".to_string(),
        };
        let mut relative = s.target(0, Path::new("/x"));
        relative.insert("venv".into(), json!("relative/venv"));
        let records = [
            with_reload(s.target(0, &self.path("v1")), "true"),
            with_reload(s.target(1, &self.path("v2")), &slow),
            relative,
            with_reload(s.target(0, &self.path("plain")), "true"),
            with_reload(
                s.target(0, &self.path("v5")),
                "echo reload-broke-here | tr a-z A-Z >&2; exit 3",
            ),
        ];
        let path = self.path(if gate.is_some() {
            "gated.jsonl"
        } else {
            "targets.jsonl"
        });
        fs::write(&path, jsonl(&records)).unwrap();
        path
    }

    /// `vd-targets | vd-freeze | vd-reload --always`, each tool with `flags`.
    fn pipeline(&self, inventory: &Path, flags: &str) -> String {
        format!(
            "{} --inventory {} {flags} | {} {flags} | {} --always --repo {} {flags}",
            bin("vd-targets").display(),
            inventory.display(),
            bin("vd-freeze").display(),
            bin("vd-reload").display(),
            self.path("wheels").display(),
        )
    }

    /// A shell running `command`, with the server's HOME.
    fn shell(&self, program: &str) -> Command {
        let mut command = without_vd_environment(Command::new(program));
        command
            .env("HOME", self.server.home())
            .env_remove("SSH_AUTH_SOCK");
        command
    }

    /// `command` run by `sh` in a pseudo-terminal, which is its stdin,
    /// stdout and stderr: what the terminal shows, read as it comes.
    fn at_terminal(&self, command: &str) -> Terminal {
        at_terminal(self.shell("script"), command)
    }
}

/// `command` run by `sh` in a pseudo-terminal made by `script` (the
/// program, with its environment), which is its stdin, stdout and stderr:
/// what the terminal shows, read as it comes.
pub(crate) fn at_terminal(mut script: Command, command: &str) -> Terminal {
    // Wide enough that no target's name is cut in the table.
    let command = format!("stty cols 250 rows 50; {command}");
    let mut child = spawn_piped(
        script.args(["-qefc", &command, "/dev/null"]),
        "script (util-linux)",
    );
    let mut stdout = child.stdout.take().unwrap();
    let shown = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&shown);
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    });
    Terminal { child, shown }
}

/// A pipeline running at a pseudo-terminal.
pub(crate) struct Terminal {
    child: Child,
    shown: Arc<Mutex<Vec<u8>>>,
}

impl Terminal {
    pub(crate) fn shown(&self) -> String {
        String::from_utf8_lossy(&self.shown.lock().unwrap()).into_owned()
    }

    /// Wait until what the terminal shows satisfies `done`; false at the
    /// deadline.
    pub(crate) fn wait_for(&self, done: impl Fn(&str) -> bool) -> bool {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if done(&self.shown()) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// The exit status and everything shown.
    pub(crate) fn finish(mut self) -> (i32, String) {
        let deadline = Instant::now() + Duration::from_secs(120);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("the pipeline did not finish:\n{}", self.shown());
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        // The reader drains what is left.
        std::thread::sleep(Duration::from_millis(200));
        (status.code().unwrap_or(-1), self.shown())
    }
}

/// A fifo that a reload command reads; opening it for writing (and closing
/// it) lets that command end. Dropped, it is opened in any case, so a
/// failing test does not leave a reload waiting.
pub(crate) struct Gate {
    pub(crate) path: PathBuf,
}

impl Gate {
    pub(crate) fn new(path: PathBuf) -> Gate {
        let made = Command::new("mkfifo").arg(&path).status().unwrap();
        assert!(made.success(), "mkfifo {}", path.display());
        Gate { path }
    }

    pub(crate) fn open(&self) {
        let path = self.path.clone();
        // Blocks until the reader is there; detached, so a reader that
        // never comes does not hang the test.
        std::thread::spawn(move || drop(fs::OpenOptions::new().write(true).open(path)));
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        self.open();
    }
}

/// The lines a terminal is left showing: of each line, what was written
/// after its last carriage return (a bar drawn over, a row written over the
/// cleared bar), without escape sequences.
pub(crate) fn screen(text: &str) -> Vec<String> {
    text.split('\n')
        .map(|line| {
            // The terminal sends a line's end as \r\n.
            let line = line.strip_suffix('\r').unwrap_or(line);
            plain(line.rsplit('\r').next().unwrap_or(""))
        })
        .collect()
}

/// What a terminal was sent, without the escape sequences that draw the bar.
pub(crate) fn plain(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            continue;
        }
        if c != '\r' {
            out.push(c);
        }
    }
    out
}

/// Each of the fleet's three errors is shown exactly once in `text`,
/// named as `named` spells the tool that found it.
#[track_caller]
fn assert_each_error_once(text: &str, named: impl Fn(&str) -> String) {
    for (tool, error) in [
        ("vd-targets", TARGETS_ERROR),
        ("vd-freeze", FREEZE_ERROR),
        ("vd-reload", RELOAD_ERROR),
    ] {
        assert_eq!(text.matches(error).count(), 1, "{error}:\n{text}");
        assert!(text.contains(&named(tool)), "{tool}:\n{text}");
    }
}

#[test]
fn at_a_terminal_rows_and_progress_stream_and_each_error_shows_once() {
    let fleet = Fleet::new();
    let gate = Gate::new(fleet.path("gate"));
    let inventory = fleet.inventory(Some(&gate.path));
    let terminal = fleet.at_terminal(&fleet.pipeline(&inventory, ""));
    let s = &fleet.server;
    let label = |i: usize, v: &str| {
        format!(
            "{}@{}:{}:{}",
            current_user(),
            s.host(i),
            s.port,
            fleet.path(v).display()
        )
    };
    let row = |screen: &[String], label: &str| screen.iter().position(|l| l.starts_with(label));

    // Target 2 waits on the gate: the header, the first row and the bar are
    // on the terminal already, and target 2's row is not.
    let streamed = terminal.wait_for(|shown| {
        let lines = screen(shown);
        lines.iter().any(|l| l.starts_with("TARGET"))
            && row(&lines, &label(0, "v1")).is_some()
            && plain(shown).contains("vd-reload [")
    });
    let before = terminal.shown();
    assert!(
        streamed,
        "no row or no progress before the last target:\n{before}"
    );
    assert!(row(&screen(&before), &label(1, "v2")).is_none(), "{before}");
    assert!(
        before.contains("\x1b[2K"),
        "the bar is drawn in place: {before:?}"
    );

    gate.open();
    let (code, shown) = terminal.finish();
    let text = plain(&shown);
    assert_eq!(code, 1, "targets failed:\n{text}");
    // Each error once, in its row, named with the tool that found it.
    assert_each_error_once(&text, |tool| format!("error ({tool})"));
    // Rows in input order, and the summary at the end of the table.
    let lines = screen(&shown);
    let relative = format!("{}@{}:{}:relative/venv", current_user(), s.host(0), s.port);
    let rows: Vec<usize> = [
        label(0, "v1"),
        label(1, "v2"),
        relative,
        label(0, "plain"),
        label(0, "v5"),
    ]
    .iter()
    .map(|l| row(&lines, l).unwrap_or_else(|| panic!("no row for {l}:\n{}", lines.join("\n"))))
    .collect();
    assert!(
        rows.windows(2).all(|w| w[0] + 1 == w[1]),
        "{}",
        lines.join("\n")
    );
    let summary = &lines[rows[4] + 1];
    assert!(
        summary.starts_with("5 targets: 3 failed; 2 reloaded in "),
        "{summary}"
    );
    let summaries = lines.iter().filter(|l| l.contains("5 targets:")).count();
    assert_eq!(summaries, 1, "{}", lines.join("\n"));
}

#[test]
fn from_cron_stderr_has_the_errors_and_nothing_else() {
    let fleet = Fleet::new();
    let inventory = fleet.inventory(None);
    for flags in ["", "--quiet"] {
        let out = fleet
            .shell("sh")
            .arg("-c")
            .arg(fleet.pipeline(&inventory, flags))
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(
            lines.len(),
            3,
            "one line per error, nothing else:\n{stderr}"
        );
        for (line, (tool, error)) in lines.iter().zip([
            ("vd-targets", TARGETS_ERROR),
            ("vd-freeze", FREEZE_ERROR),
            ("vd-reload", RELOAD_ERROR),
        ]) {
            assert!(line.starts_with(&format!("{tool}: ")), "{stderr}");
            assert!(line.contains(error), "{stderr}");
        }
        assert!(
            !stderr.contains('\x1b') && !stderr.contains('\r'),
            "{stderr:?}"
        );
        let records: Vec<Record> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(records.len(), 5);
    }
}

#[test]
fn quiet_drops_warnings_and_progress_but_never_errors() {
    let fleet = Fleet::new();
    let inventory = fleet.inventory(None);
    // An unknown column is a warning.
    let csv = fleet.path("targets.csv");
    fs::write(
        &csv,
        format!("host,venv,team\n{},relative,web\n", fleet.server.host(0)),
    )
    .unwrap();
    let targets = |flags: &[&str]| {
        crate::util::tool("vd-targets")
            .arg("--inventory")
            .arg(&csv)
            .args(flags)
            .run()
    };
    let loud = targets(&[]);
    loud.expect_code(1).expect_stderr("team");
    let quiet = targets(&["-q"]);
    quiet.expect_code(1);
    assert!(!quiet.stderr.contains("team"), "{}", quiet.stderr);
    assert!(quiet.stderr.contains(TARGETS_ERROR), "{}", quiet.stderr);

    // At a terminal, the last tool writing to a file: its bar, then its
    // summary and every error on stderr; with --quiet only the errors.
    for (flags, bar) in [("", true), ("--quiet", false)] {
        let out = fleet.path("out.jsonl");
        let command = format!("{} > {}", fleet.pipeline(&inventory, flags), out.display());
        let (code, shown) = fleet.at_terminal(&command).finish();
        let text = plain(&shown);
        assert_eq!(code, 1, "{text}");
        assert_each_error_once(&text, |tool| format!("{tool}: "));
        assert_eq!(shown.contains("vd-reload ["), bar, "{shown:?}");
        assert_eq!(
            text.contains("vd-reload: 5 targets: 3 failed; 2 reloaded in "),
            bar,
            "{text}"
        );
        assert_eq!(fs::read_to_string(&out).unwrap().lines().count(), 5);
    }
}

#[test]
fn shared_options_come_from_the_environment() {
    let fleet = Fleet::new();
    let s = &fleet.server;
    // A home with the user's key but no known_hosts: only VD_KNOWN_HOSTS
    // lets vd-freeze in.
    let home = fleet.path("home");
    fs::create_dir_all(home.join(".ssh")).unwrap();
    for entry in fs::read_dir(s.home().join(".ssh")).unwrap() {
        let entry = entry.unwrap();
        if entry.file_name() != "known_hosts" {
            fs::copy(entry.path(), home.join(".ssh").join(entry.file_name())).unwrap();
        }
    }
    let known = fleet.path("known_hosts");
    fs::write(&known, s.known_hosts()).unwrap();
    let input = jsonl(&[s.target(0, &fleet.path("v1"))]);
    let freeze = || s.tool_with_home("vd-freeze", &home).stdin(input.clone());
    let refused = freeze().run();
    refused.expect_code(1);
    let out = freeze().env("VD_KNOWN_HOSTS", &known).run();
    out.expect_code(0);
    assert_eq!(out.records()[0].venv_exists, Some(true));

    // VD_JOBS and VD_TIMEOUT are read, and checked like the options.
    for (var, bad, option) in [
        ("VD_JOBS", "0", "--jobs"),
        ("VD_TIMEOUT", "soon", "--timeout"),
    ] {
        let out = freeze().env(var, bad).run();
        out.expect_code(2).expect_stderr(option);
        assert!(out.stderr.contains(bad), "{}", out.stderr);
        let help = crate::util::tool("vd-push").arg("--help").run();
        help.expect_code(0);
        assert!(
            help.stdout.contains(&format!("[env: {var}=")),
            "{}",
            help.stdout
        );
    }
    let out = freeze()
        .env("VD_KNOWN_HOSTS", &known)
        .env("VD_JOBS", "1")
        .env("VD_TIMEOUT", "5")
        .run();
    out.expect_code(0);
}

#[test]
fn the_last_stage_shows_what_the_stages_before_it_are_doing() {
    let fleet = Fleet::new();
    let gate = Gate::new(fleet.path("gate"));
    let inventory = fleet.inventory(Some(&gate.path));
    // vd-reload in the middle waits on target 2; vd-freeze ends the pipeline.
    let command = format!(
        "{} --inventory {} | {} --always --repo {} | {}",
        bin("vd-targets").display(),
        inventory.display(),
        bin("vd-reload").display(),
        fleet.path("wheels").display(),
        bin("vd-freeze").display(),
    );
    let terminal = fleet.at_terminal(&command);
    // The bar names vd-reload's target in the works (host:venv) and its
    // count of targets done (4 at most while target 2 waits) of the 5 read.
    let waiting = format!("reload {}:", fleet.server.host(1));
    let shown = terminal.wait_for(|shown| {
        let text = plain(shown);
        text.contains("vd-freeze [")
            && (1..5).any(|n| text.contains(&format!("reload {n}/5 ")))
            && text.contains(&waiting)
            && text.contains("/v2")
    });
    assert!(
        shown,
        "the bar lacks vd-reload's post:\n{}",
        terminal.shown()
    );
    gate.open();
    let (code, shown) = terminal.finish();
    assert_eq!(code, 1, "{}", plain(&shown));
    let lines = screen(&shown);
    assert!(
        lines.iter().any(|l| l.starts_with("5 targets: ")),
        "{}",
        lines.join("\n")
    );
}
