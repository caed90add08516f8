#![allow(dead_code)] // each test module uses its own part of the helpers
//! What the tests share: running a tool and reading what it wrote into the
//! record types of vd(7) (record.rs), and making the real things it works
//! on (wheels built by pip, wheels downloaded from the index once and cached,
//! virtualenvs, an OpenSSH server on loopback, a wheel cache to cut an
//! upload into).

pub mod gunicorn;
pub mod netns;
pub mod python;
pub mod record;
pub mod sshd;
pub mod upload;
pub mod uv;

pub use record::Record;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The path of one of the tools, built by cargo for this test run.
pub fn bin(tool: &str) -> PathBuf {
    let path = match tool {
        "vd-add" => env!("CARGO_BIN_EXE_vd-add"),
        "vd-diff" => env!("CARGO_BIN_EXE_vd-diff"),
        "vd-export" => env!("CARGO_BIN_EXE_vd-export"),
        "vd-fetch" => env!("CARGO_BIN_EXE_vd-fetch"),
        "vd-freeze" => env!("CARGO_BIN_EXE_vd-freeze"),
        "vd-push" => env!("CARGO_BIN_EXE_vd-push"),
        "vd-targets" => env!("CARGO_BIN_EXE_vd-targets"),
        "vd-migrate" => env!("CARGO_BIN_EXE_vd-migrate"),
        "vd-reload" => env!("CARGO_BIN_EXE_vd-reload"),
        "vd-rollback" => env!("CARGO_BIN_EXE_vd-rollback"),
        "vd-rollout" => env!("CARGO_BIN_EXE_vd-rollout"),
        other => panic!("no tool named {other}"),
    };
    PathBuf::from(path)
}

/// Where tests keep what is worth keeping between runs (built and
/// downloaded wheels, the builder venv).
pub fn cache_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("vd-cache");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// What a finished tool run left behind.
#[derive(Debug)]
pub struct Outcome {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Outcome {
    /// The stdout JSON lines as target records.
    #[track_caller]
    pub fn records(&self) -> Vec<Record> {
        self.lines_as()
    }

    /// The stdout JSON lines as vd-add's records.
    #[track_caller]
    pub fn added(&self) -> Vec<record::Added> {
        self.lines_as()
    }

    /// The stdout JSON lines as they are on the wire, for what only the raw
    /// JSON shows (field order, a field's JSON type).
    #[track_caller]
    pub fn json(&self) -> Vec<serde_json::Map<String, serde_json::Value>> {
        self.lines_as()
    }

    #[track_caller]
    fn lines_as<T: serde::de::DeserializeOwned>(&self) -> Vec<T> {
        self.stdout
            .lines()
            .enumerate()
            .map(|(i, l)| {
                serde_json::from_str(l).unwrap_or_else(|e| {
                    panic!("stdout line {} is not a record: {e}\n{l}\n{self:?}", i + 1)
                })
            })
            .collect()
    }

    #[track_caller]
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code, code,
            "exit status {} (wanted {code})\nstdout:\n{}\nstderr:\n{}",
            self.code, self.stdout, self.stderr
        );
        self
    }

    #[track_caller]
    pub fn expect_stderr(&self, needle: &str) -> &Self {
        assert!(
            self.stderr.contains(needle),
            "stderr lacks {needle:?}\nstderr:\n{}",
            self.stderr
        );
        self
    }
}

/// A tool invocation being set up.
pub struct Run {
    command: Command,
    stdin: Vec<u8>,
}

/// Start describing a run of `tool`.
pub fn tool(tool: &str) -> Run {
    command(&bin(tool).display().to_string())
}

/// Start describing a run of any program (a shell running a pipeline).
pub fn command(program: &str) -> Run {
    Run {
        command: without_vd_environment(Command::new(program)),
        stdin: Vec::new(),
    }
}

/// `command` without the variables vd reads: tests say where things are;
/// the user's environment must not.
pub fn without_vd_environment(mut command: Command) -> Command {
    for var in [
        "VD_REPO",
        "VD_INVENTORY",
        "VD_JOBS",
        "VD_TIMEOUT",
        "VD_KNOWN_HOSTS",
    ] {
        command.env_remove(var);
    }
    command
}

/// A shell pipeline of `stages`, joined by pipes; a stage that starts with
/// a tool's name (`vd-push --create`) runs this build's binary.
pub fn pipeline(stages: &[&str]) -> String {
    stages
        .iter()
        .map(|stage| match stage.split_once(' ') {
            Some((name, args)) if name.starts_with("vd-") => {
                format!("{} {args}", bin(name).display())
            }
            None if stage.starts_with("vd-") => bin(stage).display().to_string(),
            _ => stage.to_string(),
        })
        .collect::<Vec<_>>()
        .join(" | ")
}

/// An empty repository, `dir`/wheels: where the tools after vd-add keep
/// their release log.
pub fn empty_repo(dir: &Path) -> PathBuf {
    let repo = dir.join("wheels");
    std::fs::create_dir(&repo).unwrap();
    repo
}

/// vd-targets over the inventory `text`, written as `dir`/`name` (whose
/// suffix says CSV or JSON lines), selecting `names`.
pub fn targets_from(dir: &Path, name: &str, text: &str, names: &[&str]) -> Outcome {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    tool("vd-targets")
        .arg("--inventory")
        .arg(&path)
        .args(names)
        .run()
}

/// A repository made by vd-add from `wheels`: `dir`/wheels.
pub fn repo(dir: &Path, wheels: &[PathBuf]) -> PathBuf {
    let repo = dir.join("wheels");
    tool("vd-add")
        .arg("--repo")
        .arg(&repo)
        .args(wheels)
        .run()
        .expect_code(0);
    repo
}

impl Run {
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        self.command.args(args);
        self
    }

    pub fn arg(mut self, arg: impl AsRef<std::ffi::OsStr>) -> Self {
        self.command.arg(arg);
        self
    }

    pub fn env(mut self, key: &str, value: impl AsRef<std::ffi::OsStr>) -> Self {
        self.command.env(key, value);
        self
    }

    pub fn env_remove(mut self, key: &str) -> Self {
        self.command.env_remove(key);
        self
    }

    pub fn current_dir(mut self, dir: &Path) -> Self {
        self.command.current_dir(dir);
        self
    }

    pub fn stdin(mut self, input: impl Into<Vec<u8>>) -> Self {
        self.stdin = input.into();
        self
    }

    /// Run to the end with the given stdin; stdout is a pipe, so tools write
    /// JSON lines.
    pub fn run(self) -> Outcome {
        self.spawn().finish()
    }

    /// Start the run, its stdin fed from a thread, and come back at once.
    pub fn spawn(mut self) -> Running {
        let mut child = spawn_piped(&mut self.command, "the tool");
        let mut stdin = child.stdin.take().unwrap();
        let input = std::mem::take(&mut self.stdin);
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
        Running { child, writer }
    }
}

/// Start `command` with its stdin, stdout and stderr pipes to this test;
/// a test failure naming `what` when it cannot start.
#[track_caller]
pub fn spawn_piped(command: &mut Command, what: &str) -> std::process::Child {
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"))
}

/// A tool run under way.
pub struct Running {
    child: std::process::Child,
    writer: std::thread::JoinHandle<()>,
}

impl Running {
    /// The process id, to signal it.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Wait for the end and collect what it wrote.
    pub fn finish(self) -> Outcome {
        let out = self.child.wait_with_output().unwrap();
        self.writer.join().unwrap();
        Outcome {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// A record as the tests hold it: read from a tool's output, or a JSON
/// object built as input.
pub trait AsRecord {
    /// The record read into the documented types.
    fn record(&self) -> Record;

    /// Its `error`, read alone: a record carrying a bad field is still
    /// an error record whose message a test reads.
    fn error(&self) -> Option<record::Error>;
}

impl AsRecord for Record {
    fn record(&self) -> Record {
        self.clone()
    }

    fn error(&self) -> Option<record::Error> {
        self.error.clone()
    }
}

impl AsRecord for serde_json::Map<String, serde_json::Value> {
    #[track_caller]
    fn record(&self) -> Record {
        Record::from_json(&serde_json::Value::Object(self.clone()))
    }

    #[track_caller]
    fn error(&self) -> Option<record::Error> {
        self.get("error").map(|e| {
            serde_json::from_value(e.clone())
                .unwrap_or_else(|err| panic!("error is not {{tool, message}}: {err}: {e}"))
        })
    }
}

/// The message of a record's `error`; a test failure when it has none.
#[track_caller]
pub fn error_message(record: &impl AsRecord) -> String {
    match record.error() {
        Some(error) => error.message,
        None => panic!("no error in {:?}", record.record()),
    }
}

/// JSON lines from records (typed or raw), for a tool's stdin.
pub fn jsonl<T: serde::Serialize>(records: &[T]) -> String {
    records
        .iter()
        .map(|r| serde_json::to_string(r).unwrap() + "\n")
        .collect()
}

/// A record's `installed`, as {name: version}; a test failure without one.
#[track_caller]
pub fn installed(record: &impl AsRecord) -> std::collections::BTreeMap<String, String> {
    record.record().installed().clone()
}

impl Running {
    /// [`Running::finish`], or `None` (the run killed) when it is not done
    /// by `deadline`: for tests of hangs, which must fail, not hang.
    pub fn finish_by(mut self, deadline: std::time::Instant) -> Option<Outcome> {
        while std::time::Instant::now() < deadline {
            if self.child.try_wait().unwrap().is_some() {
                return Some(self.finish());
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.finish();
        None
    }
}

/// A path as records carry it: its text.
pub fn path_text(path: &Path) -> String {
    path.display().to_string()
}

/// The records of a saved stage (a JSON lines file).
#[track_caller]
pub fn read_records(path: &Path) -> Vec<Record> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    text.lines()
        .map(|l| Record::from_json(&serde_json::from_str(l).unwrap()))
        .collect()
}

/// `name action from to` of each change in a record's plan, `-` where a
/// field is null; a test failure when the record has no plan.
#[track_caller]
pub fn changes(record: &impl AsRecord) -> Vec<String> {
    let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    record
        .record()
        .plan()
        .iter()
        .map(|c| format!("{} {} {} {}", c.name, c.action, dash(&c.from), dash(&c.to)))
        .collect()
}

/// Run `command` to its end and return its stdout; a test failure naming
/// `what` (with what to install, where that is the fix) when it cannot
/// start or fails.
#[track_caller]
pub fn stdout_of(command: &mut Command, what: &str) -> String {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// [`stdout_of`], line by line.
#[track_caller]
pub fn lines_of(command: &mut Command, what: &str) -> Vec<String> {
    stdout_of(command, what)
        .lines()
        .map(str::to_string)
        .collect()
}

/// A file generated from the clap definitions (`folder/name`, under the
/// project's root) is checked in as `make_target` renders it now.
#[track_caller]
pub fn assert_generated_current(folder: &str, name: &str, text: &[u8], make_target: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(folder)
        .join(name);
    let on_disk = std::fs::read(&path).unwrap_or_default();
    assert!(
        on_disk == text,
        "{folder}/{name} is stale or missing: run `make {make_target}` and commit the result"
    );
}

/// Each of `needles` is in `text`; a test failure naming the first that
/// is not.
#[track_caller]
pub fn assert_contains(text: &str, needles: &[&str]) {
    for needle in needles {
        assert!(text.contains(needle), "{needle:?} not in:\n{text}");
    }
}
