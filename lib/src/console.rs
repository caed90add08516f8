//! What a tool says on stderr, and when: warnings, errors, the progress bar
//! and the summary line.
//!
//! A pipeline's stages share one terminal, so at a terminal the stage that
//! ends the pipeline speaks for all of them. That stage is the one whose
//! stdout is not a pipe (the terminal, or a file): it alone draws a progress
//! bar, one line at the bottom of stderr; when it ends, the bar gives way to
//! the summary line (or, when stdout is the table, the table's last line is
//! the summary). The stages before it draw nothing: each posts its own
//! status (records done of those read, bytes uploaded, the target it is
//! working on) as a one-line file in a folder the pipeline's stages share
//! ([`Board`]: one per terminal and process group, which a shell gives each
//! pipeline), and the bar shows every stage's status, in pipeline order,
//! each prefixed with its tool's short name:
//!
//! ```text
//! vd-reload [=>   ] freeze 6/6 · push 2/6+ 14.2 MiB · migrate 1/2+ · reload 0/1+ · pip web2:/srv/a  41s
//! ```
//!
//! A single tool at a terminal shows its own counts: records done and
//! read, hosts connected, the summary so far, what a worker is doing. A target's error travels in its record to the
//! last stage, which shows it once: in the table, or on stderr when stdout
//! is a file. Warnings (not errors of a target) are printed by whichever
//! stage has them, each line prefixed with the tool's name; at a terminal
//! such a line first clears the line it lands on, which may be the bar of
//! another stage, and the bar is drawn again below it. Those lines are
//! said through [`crate::messages`], which every layer may call; [`init`]
//! tells it how this tool's stderr shows them.
//!
//! When stderr is not a terminal (cron, a log file) nothing is drawn and no
//! summary is written: stderr gets each warning, and each target's error
//! from the tool that found it, as it always did. `--quiet` drops the bar,
//! the summary line on stderr and the warnings; errors are always written.
//!
//! `vd-push --confirm` asks its questions on the same terminal. While a
//! question waits for its answer, the asking tool holds an exclusive flock
//! on the terminal's device ([`prompt_turn`]); the bar is not drawn, and
//! table rows wait, while another process holds it.

use crate::escape;
use crate::messages::{self, Display};
use crate::summary::Summary;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle, TermLike};
use std::fs::File;
use std::io::{self, IsTerminal, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

/// How often the bar is drawn again when nothing changed (for its clock).
const TICK: Duration = Duration::from_millis(500);

static CONSOLE: OnceLock<Console> = OnceLock::new();

/// The tool's stderr, as decided when it started.
struct Console {
    tool: &'static str,
    stderr_tty: bool,
    stdout_tty: bool,
    /// stdout is not a pipe: this tool ends the pipeline.
    last: bool,
    started: Instant,
    /// The terminal stderr is on, opened again for its flock (the turn
    /// between the bar and a question).
    tty: Option<File>,
    bar: Option<ProgressBar>,
    /// Where the stages of this pipeline post their status.
    board: Option<Board>,
    live: Mutex<Live>,
}

/// What the bar shows, besides the time.
#[derive(Default)]
struct Live {
    /// Records read so far (by tools that read ahead of their work).
    read: u64,
    input_done: bool,
    written: u64,
    /// Records done, some perhaps not yet written ([`finished`]).
    finished: u64,
    hosts: u64,
    /// The summary's counts of the records written so far.
    counts: String,
    /// What the workers are doing now, by ticket and thread.
    doing: Vec<(u64, ThreadId, String)>,
    next_ticket: u64,
    /// The failures among the records written.
    failed: u64,
    /// Bytes this tool uploaded (vd-push).
    bytes: u64,
    /// When this stage last posted its status.
    posted: Option<Instant>,
    /// The tool's own word on where it is (vd-rollout's wave), shown
    /// before its counts.
    status: String,
}

impl Live {
    /// Records done: written, or finished and waiting for their turn.
    fn done(&self) -> u64 {
        self.written.max(self.finished)
    }
}

/// Decide, once, what this tool writes on stderr.
pub fn init(tool: &'static str, quiet: bool) {
    let stderr_tty = io::stderr().is_terminal();
    let stdout_tty = io::stdout().is_terminal();
    let last = !stdout_is_pipe();
    let tty = if stderr_tty { stderr_device() } else { None };
    let bar = (stderr_tty && last && !quiet).then(|| {
        // Opened on its own: a flock belongs to one open file, and the bar
        // and the rows take theirs apart.
        let term = Stderr {
            tty: stderr_device(),
        };
        let bar = ProgressBar::with_draw_target(
            None,
            ProgressDrawTarget::term_like_with_hz(Box::new(term), 10),
        );
        let style = ProgressStyle::with_template("{prefix} [{bar:20}] {wide_msg} {elapsed:>4}")
            .expect("the bar's template is valid")
            .progress_chars("=> ");
        bar.set_style(style);
        bar.set_prefix(tool);
        bar.set_message("waiting for input");
        bar.enable_steady_tick(TICK);
        bar
    });
    let board = (stderr_tty && !quiet).then(Board::open).flatten();
    let ticking = board.is_some();
    messages::set_display(Display {
        quiet,
        // At a terminal the last stage shows each target's error once.
        target_errors_shown_by_last_stage: stderr_tty,
        line,
    });
    let _ = CONSOLE.set(Console {
        tool,
        stderr_tty,
        stdout_tty,
        last,
        started: Instant::now(),
        tty,
        bar,
        board,
        live: Mutex::new(Live::default()),
    });
    if ticking {
        // The other stages' posts are read, and a stage in the middle posts
        // what its last news left unposted, on every tick, not only when
        // this stage has news.
        std::thread::spawn(|| loop {
            std::thread::sleep(TICK);
            update(|_| {});
        });
    }
}

/// Whether stdout goes to another program (a pipe or a socket).
fn stdout_is_pipe() -> bool {
    let Ok(fd) = io::stdout().as_fd().try_clone_to_owned() else {
        return false;
    };
    File::from(fd)
        .metadata()
        .is_ok_and(|m| m.file_type().is_fifo() || m.file_type().is_socket())
}

/// The device stderr is on (`/dev/pts/3`), opened again.
fn stderr_device() -> Option<File> {
    let path: PathBuf = std::fs::read_link("/proc/self/fd/2").ok()?;
    path.starts_with("/dev/")
        .then(|| File::open(&path).ok())
        .flatten()
}

/// One line on stderr, above the bar.
fn line(text: &str) {
    // Much of what is said comes from hosts and records.
    let text = escape::line(text);
    let console = CONSOLE.get();
    let write = || {
        let mut err = io::stderr().lock();
        // At a terminal, the line we land on may hold another stage's bar.
        let clear = if console.is_some_and(|c| c.stderr_tty) {
            "\r\x1b[K"
        } else {
            ""
        };
        let _ = writeln!(err, "{clear}{text}");
    };
    match console.and_then(|c| c.bar.as_ref()) {
        Some(bar) => bar.suspend(write),
        None => write(),
    }
}

/// Whether stdout is a terminal (for the table).
pub fn stdout_is_terminal() -> bool {
    match CONSOLE.get() {
        Some(console) => console.stdout_tty,
        None => io::stdout().is_terminal(),
    }
}

/// Write to stdout at the terminal: the bar steps aside, and a question
/// another tool is asking is waited for.
pub fn show<R>(write: impl FnOnce() -> R) -> R {
    let Some(console) = CONSOLE.get() else {
        return write();
    };
    let turn = console.tty.as_ref().filter(|_| console.stdout_tty);
    if let Some(tty) = turn {
        let _ = tty.lock_shared();
    }
    let result = match &console.bar {
        Some(bar) => bar.suspend(write),
        None => write(),
    };
    if let Some(tty) = turn {
        let _ = tty.unlock();
    }
    result
}

/// A record was read; `None`: the input ended.
pub fn read(record: Option<()>) {
    update(|live| match record {
        Some(()) => live.read += 1,
        None => live.input_done = true,
    });
}

/// How many records are done, written or not (output keeps input order,
/// so a slow target holds back the records after it).
pub fn finished(count: usize) {
    let count = count as u64;
    let Some(console) = CONSOLE.get() else { return };
    let known = console.live.lock().map_or(0, |l| l.finished);
    if count != known {
        update(|live| live.finished = count);
    }
}

/// A host's session was opened.
pub fn host_connected() {
    update(|live| live.hosts += 1);
}

/// A record was written, and the summary of every record so far. The last
/// stage, when stdout is not a terminal, says the record's error here.
pub fn written(record_error: Option<(String, String)>, summary: &Summary) {
    let Some(console) = CONSOLE.get() else { return };
    if let Some((tool, message)) = record_error {
        if console.last && console.stderr_tty && !console.stdout_tty {
            line(&format!("{tool}: {message}"));
        }
    }
    update(|live| {
        live.written = summary.records;
        live.counts = summary.counts();
        live.failed = summary.failed;
    });
}

/// The run is over: the bar gives way to the summary line, unless the
/// table on stdout ends with it (`in_table`).
pub fn finish(summary: &Summary, in_table: bool) {
    let Some(console) = CONSOLE.get() else { return };
    if let Some(board) = &console.board {
        board.leave(console.last);
    }
    let Some(bar) = &console.bar else { return };
    bar.finish_and_clear();
    if !in_table {
        line(&format!("{}: {}", console.tool, summary.line(elapsed())));
    }
}

/// Time since the tool started.
pub fn elapsed() -> Duration {
    CONSOLE
        .get()
        .map_or(Duration::ZERO, |c| c.started.elapsed())
}

/// What a worker is doing to a target now (`pip web1:/srv/shop`), shown
/// on the bar until the guard is dropped; `what` may be empty (the fleet
/// names the target it works on, the tool says what it does to it).
pub fn doing(what: &str, record: &crate::record::Record) -> Doing {
    let target = short_label(record);
    let what = match what {
        "" => target,
        what => format!("{what} {target}"),
    };
    let what = escape::cell(&what).into_owned();
    let mut ticket = None;
    update(|live| {
        live.next_ticket += 1;
        ticket = Some(live.next_ticket);
        live.doing
            .push((live.next_ticket, std::thread::current().id(), what));
    });
    Doing { ticket }
}

/// A target named short enough for the bar: `host:venv`, without the user
/// and port, a long venv path cut at its start (its end tells venvs apart).
fn short_label(record: &crate::record::Record) -> String {
    const VENV: usize = 28;
    let names = crate::record::Names::of(record);
    let venv = names.venv.unwrap_or("?");
    let count = venv.chars().count();
    let venv = if count > VENV {
        let tail: String = venv.chars().skip(count - (VENV - 1)).collect();
        format!("…{tail}")
    } else {
        venv.to_string()
    };
    format!("{}:{venv}", names.host.unwrap_or("?"))
}

/// The tool's own line on where it is (vd-rollout: the wave, its counts,
/// a pause), shown on the bar before the counts, and posted with them.
pub fn status(text: &str) {
    update(|live| live.status = text.to_string());
}

/// Bytes sent to a host (vd-push), as they go.
pub fn uploaded(bytes: u64) {
    update(|live| live.bytes += bytes);
}

/// See [`doing`].
pub struct Doing {
    ticket: Option<u64>,
}

impl Drop for Doing {
    fn drop(&mut self) {
        if let Some(ticket) = self.ticket {
            update(|live| live.doing.retain(|(t, _, _)| *t != ticket));
        }
    }
}

/// Change what the bar shows, or what this stage posts for the last one.
fn update(change: impl FnOnce(&mut Live)) {
    let Some(console) = CONSOLE.get() else { return };
    let mut live = console.live.lock().unwrap_or_else(|e| e.into_inner());
    change(&mut live);
    if let (Some(board), false) = (&console.board, console.last) {
        // Posted at most a few times a second: the last stage reads it on
        // its ticks.
        if live.posted.is_none_or(|t| t.elapsed() >= POST_EVERY) {
            live.posted = Some(Instant::now());
            let (mut counts, doing) = stage_status(console.tool, &live);
            if !live.status.is_empty() {
                counts.push_str(&format!(" {}", live.status));
            }
            board.post(&(counts, doing));
        }
        return;
    }
    let Some(bar) = &console.bar else { return };
    let total = if live.read > 0 {
        live.read
    } else {
        live.written
    };
    if total > 0 {
        bar.set_length(total);
        bar.set_position(live.done());
    }
    let others = console.board.as_ref().map(|b| b.read()).unwrap_or_default();
    if others.is_empty() {
        bar.set_message(message(&live));
    } else {
        bar.set_message(pipeline_message(console.tool, &live, &others));
    }
}

/// How often a stage in the middle posts its status.
const POST_EVERY: Duration = Duration::from_millis(200);

/// One stage's status on the board: its counts, then what it is doing.
fn stage_status(tool: &str, live: &Live) -> (String, String) {
    let short = tool.strip_prefix("vd-").unwrap_or(tool);
    let mut counts = match (live.read, live.input_done) {
        (0, _) => format!("{short} {}", live.written),
        (read, done) => format!(
            "{short} {}/{read}{}",
            live.done(),
            if done { "" } else { "+" }
        ),
    };
    if live.bytes > 0 {
        counts.push_str(&format!(" {} up", crate::summary::bytes(live.bytes)));
    }
    let doing = live
        .doing
        .last()
        .map(|(_, _, what)| what.clone())
        .unwrap_or_default();
    (counts, doing)
}

/// The bar's text in a pipeline: every stage's counts in pipeline order
/// (the posts of the stages before, this one last), the failures that
/// reached the end, then what each stage is doing.
fn pipeline_message(tool: &str, live: &Live, others: &[(String, String)]) -> String {
    let own = stage_status(tool, live);
    let stages: Vec<&(String, String)> = others.iter().chain([&own]).collect();
    // A tool's own line (vd-rollout's wave) leads: the stages it runs
    // are its detail.
    let mut parts: Vec<String> = Vec::new();
    if !live.status.is_empty() {
        parts.push(live.status.clone());
    }
    parts.extend(stages.iter().map(|(counts, _)| counts.clone()));
    if live.failed > 0 {
        parts.push(format!("{} failed", live.failed));
    }
    parts.extend(
        stages
            .iter()
            .filter(|(_, doing)| !doing.is_empty())
            .map(|(_, doing)| doing.clone()),
    );
    parts.join(" · ")
}

/// The bar's text: `3/5+ · 2 hosts · 3 targets: 0 failed · pip web1:/srv/a`.
fn message(live: &Live) -> String {
    let mut parts = Vec::new();
    if !live.status.is_empty() {
        parts.push(live.status.clone());
    }
    if live.read > 0 {
        let more = if live.input_done { "" } else { "+" };
        parts.push(format!("{}/{}{more}", live.done(), live.read));
    }
    match live.hosts {
        0 => {}
        1 => parts.push("1 host".to_string()),
        n => parts.push(format!("{n} hosts")),
    }
    if !live.counts.is_empty() {
        parts.push(live.counts.clone());
    } else if live.read == 0 {
        parts.push("waiting for input".to_string());
    }
    if live.bytes > 0 {
        parts.push(format!("{} up", crate::summary::bytes(live.bytes)));
    }
    if let Some((_, _, now)) = live.doing.last() {
        // A worker's latest activity stands for it (the fleet names the
        // target, the tool says what it does to it).
        let mut workers: Vec<ThreadId> = live.doing.iter().map(|(_, w, _)| *w).collect();
        workers.sort_unstable_by_key(|w| format!("{w:?}"));
        workers.dedup();
        let others = workers.len() - 1;
        if others > 0 {
            parts.push(format!("{now} (+{others})"));
        } else {
            parts.push(now.clone());
        }
    }
    parts.join(" · ")
}

/// The folder where a pipeline's stages post their status for its last
/// stage to show: `vd-UID/TTY-PGID` in the temporary folder, one file per
/// stage named by its process id, holding its counts and what it is doing.
/// The folder is the user's alone (mode 0700); a stage that cannot use it
/// posts nothing, and the bar shows the last stage only.
struct Board {
    dir: PathBuf,
    me: u32,
}

impl Board {
    fn open() -> Option<Board> {
        use std::os::unix::fs::{DirBuilderExt, MetadataExt};
        let uid = std::fs::metadata("/proc/self").ok()?.uid();
        let tty = std::fs::metadata("/proc/self/fd/2").ok()?.rdev();
        // The process group: the fifth field of /proc/self/stat, after the
        // command name in parentheses.
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        let pgid: u32 = stat
            .rsplit_once(')')?
            .1
            .split_whitespace()
            .nth(2)?
            .parse()
            .ok()?;
        let mine = std::env::temp_dir().join(format!("vd-{uid}"));
        let _ = std::fs::DirBuilder::new().mode(0o700).create(&mine);
        let meta = std::fs::symlink_metadata(&mine).ok()?;
        if !meta.is_dir() || meta.uid() != uid || meta.mode() & 0o077 != 0 {
            return None;
        }
        let dir = mine.join(format!("{tty}-{pgid}"));
        let _ = std::fs::DirBuilder::new().mode(0o700).create(&dir);
        dir.is_dir().then(|| Board {
            dir,
            me: std::process::id(),
        })
    }

    /// Post this stage's status (replacing the last post whole).
    fn post(&self, (counts, doing): &(String, String)) {
        let tmp = self.dir.join(format!(".{}", self.me));
        let text = format!(
            "{}\t{}\n",
            counts.replace('\t', " "),
            doing.replace('\t', " ")
        );
        if std::fs::write(&tmp, text).is_ok() {
            let _ = std::fs::rename(&tmp, self.dir.join(self.me.to_string()));
        }
    }

    /// The posts of the other stages still running, in pipeline order (a
    /// shell starts a pipeline's stages from left to right).
    fn read(&self) -> Vec<(String, String)> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut posts: Vec<(u32, String, String)> = Vec::new();
        for entry in entries.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            if pid == self.me {
                continue;
            }
            if !Path::new(&format!("/proc/{pid}")).exists() {
                // A stage that ended without leaving.
                let _ = std::fs::remove_file(entry.path());
                continue;
            }
            let Ok(text) = std::fs::read_to_string(entry.path()) else {
                continue;
            };
            let (counts, doing) = text
                .trim_end()
                .split_once('\t')
                .unwrap_or((text.trim_end(), ""));
            posts.push((pid, counts.to_string(), doing.to_string()));
        }
        posts.sort_by_key(|(pid, _, _)| *pid);
        posts.into_iter().map(|(_, c, d)| (c, d)).collect()
    }

    /// This stage is done: its post goes; the last stage removes the folder.
    fn leave(&self, last: bool) {
        let _ = std::fs::remove_file(self.dir.join(self.me.to_string()));
        if last {
            let _ = std::fs::remove_dir(&self.dir);
        }
    }
}

/// The turn of a question on the terminal: while it is held, no other vd
/// tool draws its bar or writes table rows there.
pub struct Turn {
    tty: File,
}

impl Drop for Turn {
    fn drop(&mut self) {
        let _ = self.tty.unlock();
    }
}

/// Take the terminal for a question (waiting while another tool writes a
/// row); `None` when stderr is not on a terminal.
pub fn prompt_turn() -> Option<Turn> {
    let tty = stderr_device()?;
    tty.lock().ok()?;
    Some(Turn { tty })
}

/// stderr at the terminal, drawn on only while no question holds the
/// terminal ([`prompt_turn`]).
#[derive(Debug)]
struct Stderr {
    tty: Option<File>,
}

impl Stderr {
    /// Move the cursor `n` cells (none: no escape at all) in the direction
    /// of the ANSI code `direction` (A up, B down, C right, D left).
    fn move_cursor(&self, n: usize, direction: char) -> io::Result<()> {
        match n {
            0 => Ok(()),
            n => self.write(&format!("\x1b[{n}{direction}")),
        }
    }

    /// Write, unless another tool is asking a question.
    fn write(&self, text: &str) -> io::Result<()> {
        if let Some(tty) = &self.tty {
            match tty.try_lock_shared() {
                Ok(()) => {}
                Err(std::fs::TryLockError::WouldBlock) => return Ok(()),
                Err(std::fs::TryLockError::Error(e)) => return Err(e),
            }
        }
        let result = io::stderr().lock().write_all(text.as_bytes());
        if let Some(tty) = &self.tty {
            let _ = tty.unlock();
        }
        result
    }
}

impl TermLike for Stderr {
    fn width(&self) -> u16 {
        terminal_size::terminal_size_of(io::stderr()).map_or(80, |(w, _)| w.0)
    }

    fn move_cursor_up(&self, n: usize) -> io::Result<()> {
        self.move_cursor(n, 'A')
    }

    fn move_cursor_down(&self, n: usize) -> io::Result<()> {
        self.move_cursor(n, 'B')
    }

    fn move_cursor_right(&self, n: usize) -> io::Result<()> {
        self.move_cursor(n, 'C')
    }

    fn move_cursor_left(&self, n: usize) -> io::Result<()> {
        self.move_cursor(n, 'D')
    }

    fn write_line(&self, s: &str) -> io::Result<()> {
        self.write(&format!("{s}\n"))
    }

    fn write_str(&self, s: &str) -> io::Result<()> {
        self.write(s)
    }

    fn clear_line(&self) -> io::Result<()> {
        self.write("\r\x1b[2K")
    }

    fn flush(&self) -> io::Result<()> {
        io::stderr().flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bar_says_what_is_read_done_and_under_way() {
        let mut live = Live::default();
        assert_eq!(message(&live), "waiting for input");
        live.read = 5;
        live.written = 3;
        live.hosts = 2;
        live.counts = "3 targets: 0 failed".to_string();
        let (one, two) = (
            std::thread::current().id(),
            std::thread::spawn(|| std::thread::current().id())
                .join()
                .unwrap(),
        );
        live.doing = vec![
            (1, one, "a:/v".to_string()),
            (2, two, "pip b:/v".to_string()),
            (3, one, "pip a:/v".to_string()),
        ];
        assert_eq!(
            message(&live),
            "3/5+ · 2 hosts · 3 targets: 0 failed · pip a:/v (+1)"
        );
        live.input_done = true;
        live.doing.clear();
        assert_eq!(message(&live), "3/5 · 2 hosts · 3 targets: 0 failed");
    }

    #[test]
    fn in_a_pipeline_the_bar_shows_every_stage_in_order() {
        let push = Live {
            read: 6,
            written: 2,
            bytes: 3 * 1024 * 1024,
            doing: vec![(
                1,
                std::thread::current().id(),
                "pip web2:/srv/a".to_string(),
            )],
            ..Live::default()
        };
        let others = [
            ("freeze 6/6".to_string(), String::new()),
            stage_status("vd-push", &push),
        ];
        let reload = Live {
            read: 1,
            written: 0,
            failed: 1,
            ..Live::default()
        };
        assert_eq!(
            pipeline_message("vd-reload", &reload, &others),
            "freeze 6/6 · push 2/6+ 3.0 MiB up · reload 0/1+ · 1 failed · pip web2:/srv/a"
        );
    }

    #[test]
    fn a_tools_own_line_leads_the_stages_it_runs() {
        let rollout = Live {
            read: 3,
            written: 1,
            status: "wave 2 of 3: running · 1 released, 0 failed, budget 0 left".to_string(),
            ..Live::default()
        };
        let inner = [("reload 0/1+".to_string(), "reload h:/v2".to_string())];
        assert_eq!(
            pipeline_message("vd-rollout", &rollout, &inner),
            "wave 2 of 3: running · 1 released, 0 failed, budget 0 left · reload 0/1+ · \
             rollout 1/3+ · reload h:/v2"
        );
        assert!(message(&rollout).starts_with("wave 2 of 3: running · "));
    }
}
