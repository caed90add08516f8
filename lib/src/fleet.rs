//! Running one tool's work over many targets: one session per host, hosts in
//! parallel, records out in input order as early as possible.
//!
//! Every remote tool (vd-freeze, vd-push, vd-migrate, vd-reload) has the same
//! shape: read target records, do something to each target over its host's
//! connection, write the records back. [`Fleet::run`] is that shape, written once;
//! a tool gives it the per-target work as a closure.
//!
//! Targets are grouped by [`Destination`] (host, port, user, via, identity):
//! a group's targets run one after another over one [`Connection`], opened
//! when the first of them needs it and kept until the input ends, and up to
//! `--jobs` groups run at once. Records are read as they arrive, so a
//! pipeline's stages overlap: a record is written as soon as it and every
//! record before it are done. Records that already carry an `error` pass
//! through untouched; a line that is not a usable target (not JSON, no host
//! or venv) becomes an error record naming its line, and the rest go on; a
//! host that cannot be reached fails its own targets only.
//!
//! Some work can only be done once every target of a host is known: vd-reload
//! restarts a host's service once for all its venvs (`reload_once`). For that
//! the work may [`Host::hold`] a target's record, and [`Fleet::run_with_finish`]
//! takes a second closure that gets a host's held records once the input has
//! ended and the host's last target is done; they are written after it.
//!
//! Other work is cheaper done for many targets of a host at once: vd-freeze
//! reads all of a host's venvs with one remote command. [`Fleet::run_batched`]
//! hands the work a host's whole batch of targets; so that a batch holds most
//! of a host's targets, its hosts are not started as soon as their first
//! target arrives but once the input has ended, or once the read-ahead
//! window is full (then every host with waiting targets starts, so a long
//! input neither stalls nor is held whole).
//!
//! A record's target fields are parsed once, here, where the record enters
//! the tool ([`Target::parse`]): the work gets the typed [`Target`] beside
//! the record, and a record with a bad field fails before any host is asked.
//!
//! Memory stays flat however long the input: the reader stops reading while
//! [`READ_AHEAD`] records wait for their work, a host that never needed
//! its connection is forgotten when its targets are done (a fleet of ten
//! thousand hosts with nothing to do keeps no ten thousand idle hosts), and
//! of the hosts done so far only the last [`IDLE_SESSIONS`] keep their
//! sessions open for targets of theirs still to come.
//! Records already done wait for the ones before them only, as output keeps
//! input order.

use crate::console;
use crate::messages;
use crate::output::{Output, Ready};
use crate::record::{self, Line, Record, Target};
use crate::transport::{self, Connection, Destination, Settings};
use anyhow::{anyhow, bail, Result};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::Write;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex};

/// How many records may be read and not yet worked on. Enough to keep
/// `--jobs` hosts busy; few enough that a long input is not held whole.
pub const READ_AHEAD: usize = 256;

/// How many hosts done with their targets so far keep their sessions open
/// while the input goes on, in case more of their targets come. A session
/// holds about 85 KiB (libssh2 embeds two 35 KB packet buffers in each): a
/// fleet of thousands of hosts must not keep them all. Beyond this the host idle the
/// longest is forgotten, and a later target of it logs in again. Hosts
/// holding records for their finish, and hosts that could not be reached
/// (tried once per run), are kept.
pub const IDLE_SESSIONS: usize = 32;

/// Hosts done with their targets so far, sessions open, the longest idle
/// first.
struct Idle {
    hosts: VecDeque<Destination>,
    limit: usize,
}

impl Idle {
    fn new(limit: usize) -> Idle {
        Idle {
            hosts: VecDeque::new(),
            limit,
        }
    }

    /// `dest` went idle with its session open: the host whose session is to
    /// close now, if the limit is passed.
    fn went_idle(&mut self, dest: &Destination) -> Option<Destination> {
        self.busy(dest);
        self.hosts.push_back(dest.clone());
        if self.hosts.len() > self.limit {
            self.hosts.pop_front()
        } else {
            None
        }
    }

    /// `dest` has work again (or is gone): it is not idle.
    fn busy(&mut self, dest: &Destination) {
        self.hosts.retain(|d| d != dest);
    }
}

/// Room for records read ahead of the work: the reader takes a place per
/// record, and a place is given back once the work on that record is done
/// (or it needs none), not once it is written: a record held for the
/// finish, or waiting for a slow one before it, must not stop the reading
/// that the finish waits for.
struct Window {
    free: Mutex<usize>,
    freed: Condvar,
}

impl Window {
    fn new(size: usize) -> Window {
        Window {
            free: Mutex::new(size),
            freed: Condvar::new(),
        }
    }

    fn take(&self) {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        while *free == 0 {
            free = self.freed.wait(free).unwrap_or_else(|e| e.into_inner());
        }
        *free -= 1;
    }

    /// Whether the reader has taken every place: it reads no more until
    /// some work is done.
    fn is_full(&self) -> bool {
        *self.free.lock().unwrap_or_else(|e| e.into_inner()) == 0
    }

    fn give(&self) {
        *self.free.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        self.freed.notify_one();
    }
}

/// One host as the work sees it: its destination, its connection (opened on
/// first use, then shared by the host's targets), and state the tool keeps
/// per host (`S`, e.g. which reload commands already ran there).
pub struct Host<S> {
    destination: Destination,
    settings: Arc<Settings>,
    /// The connection, or why it could not be opened: a host that is down is
    /// tried once, not once per target.
    connection: Option<Result<Connection, String>>,
    /// Records held for the finish, with their sequence numbers.
    held: Vec<(usize, Held)>,
    /// Whether the work asked to hold the record it is working on.
    hold: bool,
    /// Kept as long as the host is: a host that never opened its
    /// connection is forgotten between its targets, so keep here only what
    /// comes of the connection (vd-push: the host's cache listings).
    pub state: S,
}

impl<S> Host<S> {
    /// The host's connection, opened on the first call. A failure is
    /// remembered and returned to every later target of the host.
    pub fn connection(&mut self) -> Result<&mut Connection> {
        if self.connection.is_none() {
            let opened = Connection::open(&self.destination, &self.settings);
            if opened.is_ok() {
                console::host_connected();
            }
            self.connection = Some(opened.map_err(|e| format!("{e:#}")));
        }
        match self.connection.as_mut() {
            Some(Ok(connection)) => Ok(connection),
            Some(Err(message)) => Err(anyhow!("{message}")),
            None => unreachable!("the connection was just opened"),
        }
    }

    /// Keep the record being worked on back from the output until the host
    /// is finished: it goes to the `finish` closure of [`Fleet::run_with_finish`]
    /// (with everything the work wrote into it), and is written after that.
    /// Records after it in the input wait for it, since output keeps input
    /// order. Under [`Fleet::run`], which has no finish, held records are written
    /// once the input ends.
    pub fn hold(&mut self) {
        self.hold = true;
    }
}

/// A target held for its host's finish: its parsed fields and its record
/// (with everything the work wrote into it).
pub struct Held {
    pub target: Target,
    pub record: Record,
}

enum Event<S> {
    /// A line of input: its number and record.
    Line(usize, Record),
    /// The input ended.
    End,
    /// A target is done: its sequence number and record.
    Target(usize, Record),
    /// A host's batch is done; the host comes back with its connection.
    /// (Boxed: a host is large, and the channel carries many small events.)
    HostDone(Destination, Box<Host<S>>),
}

/// The work a run does: per target (with the finish of held records), or
/// per batch of a host's targets.
enum Work<'a, F, G, B> {
    Each { work: &'a F, finish: &'a G },
    Batch(&'a B),
}

/// What [`Fleet::run_batched`] stands in for the per-target work it has not.
type NoWork<S> = fn(&mut Host<S>, &Target, &mut Record) -> Result<()>;
/// What [`Fleet::run_with_finish`] stands in for the batch work it has not.
type BatchWork<S> = fn(&mut Host<S>, &mut [Held]);

/// A host and its targets waiting to run.
struct Slot<S> {
    /// The host, or `None` while a worker has it.
    host: Option<Host<S>>,
    queue: VecDeque<(usize, Held)>,
}

/// glibc's malloc gives each thread that allocates an arena of its own, up
/// to eight per core, and memory freed in one arena serves only that one.
/// A fleet's workers (a thread per host at work) parse each host's output
/// into records that the writer frees later, so every arena keeps pages of
/// its own: with the default, vd-freeze's peak memory grew by a sixth with
/// the number of records read ahead. The workers mostly wait on the
/// network, so two arenas cost no time. Call before the workers start.
fn few_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[allow(unsafe_code)]
    // SAFETY: mallopt only sets a tunable of glibc's allocator; it takes
    // no pointers, and an arena limit may be set at any time.
    unsafe {
        nix::libc::mallopt(nix::libc::M_ARENA_MAX, 2);
    }
}

/// The hosts a tool works on, and how: `jobs` hosts at once, reached with
/// the transport's settings.
pub struct Fleet {
    tool: &'static str,
    settings: Arc<Settings>,
    jobs: usize,
}

impl Fleet {
    /// Read what reaching hosts needs (`~/.ssh/config`, known_hosts) once.
    pub fn new(tool: &'static str, jobs: u32, reach: &transport::Reach) -> Result<Fleet> {
        few_malloc_arenas();
        let settings = Settings::new(reach, move |m| messages::warn(tool, m))?;
        Ok(Fleet {
            tool,
            settings: Arc::new(settings),
            jobs: jobs.max(1) as usize,
        })
    }

    /// Take target records from `input` (numbered lines, as
    /// [`crate::record::Reader`] yields them from a stream), do `work` to
    /// each one that carries no error over its host's connection, and write
    /// every record to `out` in input order. An `Err` from `work` becomes
    /// the record's `error` (with the target's name) and a line on stderr;
    /// the other targets go on. Returns an error only when the run cannot
    /// go on (stdout closed).
    pub fn run<S, F, W>(
        &self,
        input: impl Iterator<Item = Line> + Send + 'static,
        out: &mut Output<W>,
        work: F,
    ) -> Result<()>
    where
        S: Default + Send + 'static,
        F: Fn(&mut Host<S>, &Target, &mut Record) -> Result<()> + Sync,
        W: Write,
    {
        self.run_with_finish(input, out, work, |_: &mut Host<S>, _| {})
    }

    /// [`Fleet::run`], and then, once per host that held records
    /// ([`Host::hold`]), `finish` with that host and its held records, in
    /// input order. It runs after the input has ended and the host's last
    /// target is done (only then is it sure that no more of the host's
    /// targets can come), over the same connection, counted against
    /// `--jobs` like the work. `finish` reports a failure by putting an
    /// `error` into the records it concerns; a panic in it becomes an error
    /// on every held record.
    pub fn run_with_finish<S, F, G, W>(
        &self,
        input: impl Iterator<Item = Line> + Send + 'static,
        out: &mut Output<W>,
        work: F,
        finish: G,
    ) -> Result<()>
    where
        S: Default + Send + 'static,
        F: Fn(&mut Host<S>, &Target, &mut Record) -> Result<()> + Sync,
        G: Fn(&mut Host<S>, &mut [Held]) + Sync,
        W: Write,
    {
        let how: Work<F, G, BatchWork<S>> = Work::Each {
            work: &work,
            finish: &finish,
        };
        self.schedule(input, out, how)
    }

    /// Like [`Fleet::run`], but `work` gets a host's batch of targets at
    /// once, over the host's connection: what it writes into each record,
    /// and the `error` it puts into the records that failed ([`set_target_error`]),
    /// is written as each record's outcome. A panic in it (a bug in vd)
    /// becomes an error on every record of the batch. A host's targets wait
    /// until the input has ended or [`READ_AHEAD`] records are waiting, so a
    /// batch holds all of a host's targets as far as memory allows.
    pub fn run_batched<S, B, W>(
        &self,
        input: impl Iterator<Item = Line> + Send + 'static,
        out: &mut Output<W>,
        work: B,
    ) -> Result<()>
    where
        S: Default + Send + 'static,
        B: Fn(&mut Host<S>, &mut [Held]) + Sync,
        W: Write,
    {
        let how: Work<NoWork<S>, BatchWork<S>, B> = Work::Batch(&work);
        self.schedule(input, out, how)
    }

    /// The scheduler behind [`Fleet::run_with_finish`] and [`Fleet::run_batched`].
    fn schedule<S, F, G, B, W>(
        &self,
        input: impl Iterator<Item = Line> + Send + 'static,
        out: &mut Output<W>,
        how: Work<F, G, B>,
    ) -> Result<()>
    where
        S: Default + Send + 'static,
        F: Fn(&mut Host<S>, &Target, &mut Record) -> Result<()> + Sync,
        G: Fn(&mut Host<S>, &mut [Held]) + Sync,
        B: Fn(&mut Host<S>, &mut [Held]) + Sync,
        W: Write,
    {
        let batched = matches!(how, Work::Batch(_));
        let Fleet {
            tool,
            ref settings,
            jobs,
        } = *self;
        let (tx, rx) = mpsc::channel::<Event<S>>();
        let reader_tx = tx.clone();
        let window = Arc::new(Window::new(READ_AHEAD));
        let reader_window = Arc::clone(&window);
        // Detached: it may sit in a read on stdin (or at a --confirm prompt)
        // after we are done (stdout closed); the process exit ends it.
        std::thread::spawn(move || {
            for line in input {
                reader_window.take();
                if reader_tx
                    .send(Event::Line(line.number, line.record))
                    .is_err()
                {
                    return;
                }
            }
            let _ = reader_tx.send(Event::End);
        });
        let stop = AtomicBool::new(false);
        let how = &how;
        let stop_ref = &stop;
        let window = &*window;
        let result = std::thread::scope(|scope| -> Result<()> {
            let mut slots: HashMap<Destination, Slot<S>> = HashMap::new();
            let mut ready: VecDeque<Destination> = VecDeque::new();
            // Batched: idle hosts with targets, not yet started (see run_batched).
            let mut waiting: Vec<Destination> = Vec::new();
            // Records done, as they will be written, waiting for the ones
            // before them.
            let mut done: BTreeMap<usize, Ready> = BTreeMap::new();
            let mut idle = Idle::new(IDLE_SESSIONS);
            let (mut total, mut next, mut running) = (0usize, 0usize, 0usize);
            let mut input_done = false;
            loop {
                while let Some(record) = done.remove(&next) {
                    if let Err(e) = out.write_ready(&record) {
                        // stdout is closed: the workers stop after their target.
                        stop_ref.store(true, Ordering::Relaxed);
                        return Err(e.into());
                    }
                    next += 1;
                }
                if input_done && next == total && running == 0 {
                    return Ok(());
                }
                // Done: written, and finished but waiting for one before it.
                console::finished(next + done.len());
                let Ok(event) = rx.recv() else {
                    bail!("internal error: the workers went away");
                };
                match event {
                    Event::Line(number, mut record) => {
                        console::read(Some(()));
                        let seq = total;
                        total += 1;
                        if let Some((by, message)) = record::error_of(&record) {
                            // A line this tool could not read is news; an error
                            // from an earlier tool was reported there.
                            if by == tool && record.len() == 1 {
                                messages::target_error(tool, &message);
                            }
                            window.give();
                            done.insert(seq, out.ready(record));
                            continue;
                        }
                        match Target::parse(&record) {
                            Ok(target) => {
                                let dest = Destination::of(&target);
                                let slot = slots.entry(dest.clone()).or_insert_with(|| Slot {
                                    host: Some(Host {
                                        destination: dest.clone(),
                                        settings: Arc::clone(settings),
                                        connection: None,
                                        held: Vec::new(),
                                        hold: false,
                                        state: S::default(),
                                    }),
                                    queue: VecDeque::new(),
                                });
                                // An idle host with queued targets is already ready
                                // (or, batched, waiting).
                                if slot.host.is_some() && slot.queue.is_empty() {
                                    match batched {
                                        true => waiting.push(dest),
                                        false => ready.push_back(dest),
                                    }
                                }
                                slot.queue.push_back((seq, Held { target, record }));
                            }
                            Err(e) => {
                                let message = format!(
                                    "stdin line {number} ({}): {e:#}",
                                    record::target_label(&record)
                                );
                                messages::target_error(tool, &message);
                                record::set_error(&mut record, tool, &message);
                                window.give();
                                done.insert(seq, out.ready(record));
                            }
                        }
                    }
                    Event::End => {
                        console::read(None);
                        input_done = true;
                        // Idle hosts with held records are finished now; sessions
                        // nobody will need again are closed.
                        slots.retain(|dest, slot| match &slot.host {
                            None => true,
                            Some(_) if !slot.queue.is_empty() => true,
                            Some(host) if !host.held.is_empty() => {
                                ready.push_back(dest.clone());
                                true
                            }
                            Some(_) => false,
                        });
                    }
                    Event::Target(seq, record) => {
                        done.insert(seq, out.ready(record));
                    }
                    Event::HostDone(dest, host) => {
                        running -= 1;
                        let slot = slots.get_mut(&dest).expect("a busy host has a slot");
                        if batched && !slot.queue.is_empty() {
                            waiting.push(dest);
                            slot.host = Some(*host);
                        } else if !slot.queue.is_empty() || (input_done && !host.held.is_empty()) {
                            // More targets, or (the input having ended while the
                            // batch ran) the finish.
                            ready.push_back(dest);
                            slot.host = Some(*host);
                        } else if input_done || (host.connection.is_none() && host.held.is_empty())
                        {
                            // Done for good, or never connected: nothing
                            // worth keeping until its next target.
                            slots.remove(&dest);
                        } else {
                            let open = matches!(host.connection, Some(Ok(_)));
                            let holds = !host.held.is_empty();
                            slot.host = Some(*host);
                            if open && !holds {
                                if let Some(old) = idle.went_idle(&dest) {
                                    forget_if_idle(&mut slots, &old);
                                }
                            }
                        }
                    }
                }
                // Batched hosts start once the input has ended, or once the
                // reader waits for room (else it would wait for good).
                if batched && !waiting.is_empty() && (input_done || window.is_full()) {
                    ready.extend(waiting.drain(..));
                }
                while running < jobs {
                    let Some(dest) = ready.pop_front() else { break };
                    idle.busy(&dest);
                    let slot = slots.get_mut(&dest).expect("a ready host has a slot");
                    let mut host = slot.host.take().expect("a ready host is idle");
                    let batch: Vec<(usize, Held)> = slot.queue.drain(..).collect();
                    // With the input ended, this batch is the host's last.
                    let last = input_done;
                    running += 1;
                    let tx = tx.clone();
                    scope.spawn(move || {
                        let (work, finish) = match how {
                            Work::Each { work, finish } => (work, finish),
                            Work::Batch(batch_work) => {
                                let done = batch_on(tool, batch_work, &mut host, batch, stop_ref);
                                for (seq, record) in done {
                                    window.give();
                                    if tx.send(Event::Target(seq, record)).is_err() {
                                        return;
                                    }
                                }
                                let _ = tx.send(Event::HostDone(dest, Box::new(host)));
                                return;
                            }
                        };
                        for (seq, mut job) in batch {
                            if stop_ref.load(Ordering::Relaxed) {
                                break;
                            }
                            host.hold = false;
                            work_on(tool, work, &mut host, &job.target, &mut job.record);
                            window.give();
                            if std::mem::take(&mut host.hold)
                                && record::error_of(&job.record).is_none()
                            {
                                host.held.push((seq, job));
                            } else if tx.send(Event::Target(seq, job.record)).is_err() {
                                return;
                            }
                        }
                        if last && !host.held.is_empty() && !stop_ref.load(Ordering::Relaxed) {
                            let held = std::mem::take(&mut host.held);
                            for (seq, record) in finish_host(tool, finish, &mut host, held) {
                                if tx.send(Event::Target(seq, record)).is_err() {
                                    return;
                                }
                            }
                        }
                        let _ = tx.send(Event::HostDone(dest, Box::new(host)));
                    });
                }
            }
        });
        result
    }
}

/// Forget a host (closing its session) if it is still idle, with no
/// targets queued and no records held: a later target of it starts anew.
fn forget_if_idle<S>(slots: &mut HashMap<Destination, Slot<S>>, dest: &Destination) {
    let idle = slots.get(dest).is_some_and(|slot| {
        slot.queue.is_empty() && slot.host.as_ref().is_some_and(|host| host.held.is_empty())
    });
    if idle {
        slots.remove(dest);
    }
}

/// Run `finish` on a host's held records; a panic (a bug in vd) becomes an
/// error on each of them.
fn finish_host<S, G>(
    tool: &str,
    finish: &G,
    host: &mut Host<S>,
    held: Vec<(usize, Held)>,
) -> Vec<(usize, Record)>
where
    G: Fn(&mut Host<S>, &mut [Held]),
{
    let (seqs, mut jobs): (Vec<usize>, Vec<Held>) = held.into_iter().unzip();
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| finish(host, &mut jobs)));
    if let Err(panic) = outcome {
        let message = format!(
            "internal error in {tool} (please report it): {}",
            panic_text(&*panic)
        );
        for job in &mut jobs {
            set_target_error(tool, &mut job.record, &message);
        }
    }
    seqs.into_iter()
        .zip(jobs.into_iter().map(|job| job.record))
        .collect()
}

/// Run the batch work on a host's targets; a panic (a bug in vd) becomes
/// an error on each of them. Nothing runs once stdout is closed.
fn batch_on<S, B>(
    tool: &str,
    work: &B,
    host: &mut Host<S>,
    batch: Vec<(usize, Held)>,
    stop: &AtomicBool,
) -> Vec<(usize, Record)>
where
    B: Fn(&mut Host<S>, &mut [Held]),
{
    let (seqs, mut jobs): (Vec<usize>, Vec<Held>) = batch.into_iter().unzip();
    if !stop.load(Ordering::Relaxed) {
        let doing = jobs.first().map(|job| console::doing("", &job.record));
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| work(host, &mut jobs)));
        drop(doing);
        if let Err(panic) = outcome {
            let message = format!(
                "internal error in {tool} (please report it): {}",
                panic_text(&*panic)
            );
            for job in &mut jobs {
                set_target_error(tool, &mut job.record, &message);
            }
        }
    }
    seqs.into_iter()
        .zip(jobs.into_iter().map(|job| job.record))
        .collect()
}

/// What a panic said.
fn panic_text(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("unknown panic")
}

/// Do the work on one target; an error (or a panic, which is a bug in vd)
/// goes into the record, named by target.
fn work_on<S, F>(tool: &str, work: &F, host: &mut Host<S>, target: &Target, record: &mut Record)
where
    F: Fn(&mut Host<S>, &Target, &mut Record) -> Result<()>,
{
    let doing = console::doing("", record);
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| work(host, target, record)));
    drop(doing);
    let message = match outcome {
        Ok(Ok(())) => return,
        Ok(Err(e)) => format!("{e:#}"),
        Err(panic) => {
            let what = panic_text(&*panic);
            format!("internal error in {tool} (please report it): {what}")
        }
    };
    set_target_error(tool, record, &message);
}

/// Fail a target: its `error`, and a line on stderr, both naming it. What
/// [`Fleet::run`] does with an `Err` from the work, for a `finish` to do the same.
pub fn set_target_error(tool: &str, record: &mut Record, message: &str) {
    let message = format!("{}: {message}", record::target_label(record));
    messages::target_error(tool, &message);
    record::set_error(record, tool, &message);
}

/// The records of a JSON array as numbered lines, as a [`record::Reader`]
/// yields them: input for tests.
#[cfg(test)]
pub(crate) fn lines(records: serde_json::Value) -> Vec<Line> {
    let serde_json::Value::Array(records) = records else {
        panic!("not an array of records: {records}")
    };
    records
        .into_iter()
        .enumerate()
        .map(|(i, r)| Line {
            number: i + 1,
            record: r.as_object().expect("a record is an object").clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};
    use std::time::Duration;

    const TOOL: &str = "vd-test";

    /// Schedule `input` over `jobs` workers; the records written, read back.
    fn schedule_records<S, F, G>(jobs: usize, input: Value, work: F, finish: G) -> Vec<Record>
    where
        S: Default + Send + 'static,
        F: Fn(&mut Host<S>, &Target, &mut Record) -> Result<()> + Sync,
        G: Fn(&mut Host<S>, &mut [Held]) + Sync,
    {
        let fleet = Fleet {
            tool: TOOL,
            settings: Arc::new(Settings::offline()),
            jobs,
        };
        let mut out = Output::to(Vec::new(), None);
        let input = lines(input).into_iter();
        fleet
            .run_with_finish(input, &mut out, work, finish)
            .unwrap();
        let (_, bytes) = out.finish_into().unwrap();
        String::from_utf8(bytes)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn field<'r>(record: &'r Record, name: &str) -> &'r Value {
        record.get(name).unwrap_or(&Value::Null)
    }

    #[test]
    fn records_come_out_in_input_order_and_a_host_works_in_turn() {
        // Host a is slow, so b and c finish first; the output waits for a.
        let input = json!([
            {"host": "a", "venv": "/v/1"}, {"host": "b", "venv": "/v/2"},
            {"host": "a", "venv": "/v/3"}, {"host": "c", "venv": "/v/4"},
            {"host": "b", "venv": "/v/5"}, {"host": "a", "venv": "/v/6"},
        ]);
        let work = |host: &mut Host<u32>, _: &Target, record: &mut Record| {
            if record["host"] == "a" {
                std::thread::sleep(Duration::from_millis(20));
            }
            host.state += 1;
            record.insert("turn".into(), json!(host.state));
            Ok(())
        };
        let out = schedule_records(3, input, work, |_: &mut Host<u32>, _| {});
        let venvs: Vec<&Value> = out.iter().map(|r| field(r, "venv")).collect();
        assert_eq!(venvs, ["/v/1", "/v/2", "/v/3", "/v/4", "/v/5", "/v/6"]);
        // One host's targets share its state: they ran one after another.
        let turns: Vec<&Value> = out.iter().map(|r| field(r, "turn")).collect();
        assert_eq!(turns, [1, 1, 2, 1, 2, 3]);
    }

    #[test]
    fn the_input_is_read_at_most_a_window_ahead_of_the_work() {
        use std::sync::atomic::AtomicUsize;
        let n = 3 * READ_AHEAD;
        let pulled = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&pulled);
        let input = (0..n).map(move |i| {
            counter.fetch_add(1, Ordering::SeqCst);
            let record = json!({"host": format!("h{}", i % 3), "venv": format!("/v/{i}")});
            Line {
                number: i + 1,
                record: record.as_object().unwrap().clone(),
            }
        });
        let (worked, ahead) = (AtomicUsize::new(0), AtomicUsize::new(0));
        let work = |_: &mut Host<()>, _: &Target, _: &mut Record| {
            let done = worked.fetch_add(1, Ordering::SeqCst);
            ahead.fetch_max(pulled.load(Ordering::SeqCst) - done, Ordering::SeqCst);
            std::thread::sleep(Duration::from_micros(200));
            Ok(())
        };
        let fleet = Fleet {
            tool: TOOL,
            settings: Arc::new(Settings::offline()),
            jobs: 2,
        };
        let mut out = Output::to(Vec::new(), None);
        fleet.run(input, &mut out, work).unwrap();
        let (_, bytes) = out.finish_into().unwrap();
        assert_eq!(bytes.iter().filter(|b| **b == b'\n').count(), n);
        let ahead = ahead.load(Ordering::SeqCst);
        assert!(ahead <= READ_AHEAD + 1, "read {ahead} records ahead");
    }

    #[test]
    fn more_held_records_than_the_window_are_all_finished() {
        let records: Vec<Value> = (0..2 * READ_AHEAD)
            .map(|i| json!({"host": "a", "venv": format!("/v/{i}")}))
            .collect();
        let work = |host: &mut Host<()>, _: &Target, _: &mut Record| {
            host.hold();
            Ok(())
        };
        let finish = |_: &mut Host<()>, held: &mut [Held]| {
            let count = held.len();
            for job in held.iter_mut() {
                job.record.insert("with".into(), json!(count));
            }
        };
        let out = schedule_records(2, Value::Array(records), work, finish);
        assert_eq!(out.len(), 2 * READ_AHEAD);
        assert!(out.iter().all(|r| r["with"] == json!(2 * READ_AHEAD)));
    }

    #[test]
    fn only_the_last_hosts_to_go_idle_keep_their_sessions() {
        let dest = |host: &str| Destination {
            host: host.into(),
            port: None,
            user: None,
            via: Default::default(),
            identity: None,
            jump: None,
        };
        let mut idle = Idle::new(2);
        assert_eq!(idle.went_idle(&dest("a")), None);
        assert_eq!(idle.went_idle(&dest("b")), None);
        assert_eq!(idle.went_idle(&dest("c")), Some(dest("a")));
        // Idle again: the longest idle is now c.
        assert_eq!(idle.went_idle(&dest("b")), None);
        assert_eq!(idle.went_idle(&dest("d")), Some(dest("c")));
        // A host with work again is not idle, and is never closed for it.
        idle.busy(&dest("b"));
        assert_eq!(idle.went_idle(&dest("e")), None);
        assert_eq!(idle.went_idle(&dest("f")), Some(dest("d")));
    }

    #[test]
    fn a_host_idle_past_the_last_sessions_kept_starts_anew_and_a_recent_one_does_not() {
        // 40 hosts done early, then more records than the window, then the
        // first and the last of those hosts again: the first was forgotten
        // (its state starts over), the last kept its connection and state.
        let hosts = 40;
        let mut records: Vec<Value> = (0..hosts)
            .map(|i| json!({"host": format!("h{i}"), "venv": "/v", "via": "local"}))
            .collect();
        records.extend(
            (0..READ_AHEAD)
                .map(|i| json!({"host": "pad", "venv": format!("/v/{i}"), "via": "local"})),
        );
        records.push(json!({"host": "h0", "venv": "/again", "via": "local"}));
        records.push(json!({"host": format!("h{}", hosts - 1), "venv": "/again", "via": "local"}));
        let work = |host: &mut Host<u32>, _: &Target, record: &mut Record| {
            host.connection()?;
            host.state += 1;
            record.insert("turn".into(), json!(host.state));
            Ok(())
        };
        let out = schedule_records(2, Value::Array(records), work, |_: &mut Host<u32>, _| {});
        let again: Vec<(&Value, &Value)> = out
            .iter()
            .filter(|r| r["venv"] == "/again")
            .map(|r| (field(r, "host"), field(r, "turn")))
            .collect();
        assert_eq!(
            again,
            [(&json!("h0"), &json!(1)), (&json!("h39"), &json!(2))]
        );
        assert!(hosts > IDLE_SESSIONS);
    }

    #[test]
    fn hosts_holding_records_are_kept_past_the_last_sessions_kept() {
        // 40 hosts hold a record each for their finish, then more records
        // than the window, then one more held target of each host: every
        // host is kept (not forgotten as an idle one would be), so it is
        // finished once, with both records, its state counting both.
        let hosts = 40;
        let target = |host: String, venv: &str| json!({"host": host, "venv": venv, "via": "local"});
        let mut records: Vec<Value> = (0..hosts)
            .map(|i| target(format!("h{i}"), "/first"))
            .collect();
        records.extend((0..READ_AHEAD).map(|i| target("pad".into(), &format!("/v/{i}"))));
        records.extend((0..hosts).map(|i| target(format!("h{i}"), "/second")));
        let work = |host: &mut Host<u32>, target: &Target, _: &mut Record| {
            host.connection()?;
            host.state += 1;
            if target.host != "pad" {
                host.hold();
            }
            Ok(())
        };
        let finish = |host: &mut Host<u32>, held: &mut [Held]| {
            let finished = json!({"with": held.len(), "after": host.state});
            for job in held.iter_mut() {
                job.record.insert("finished".into(), finished.clone());
            }
        };
        let out = schedule_records(2, Value::Array(records), work, finish);
        assert_eq!(out.len(), 2 * hosts + READ_AHEAD);
        let held: Vec<&Record> = out.iter().filter(|r| r["host"] != "pad").collect();
        assert_eq!(held.len(), 2 * hosts);
        for record in held {
            assert_eq!(
                record["finished"],
                json!({"with": 2, "after": 2}),
                "{record:?}"
            );
        }
        assert!(hosts > IDLE_SESSIONS);
    }

    #[test]
    fn one_worker_runs_every_host() {
        let input = json!([
            {"host": "a", "venv": "/v/1"}, {"host": "b", "venv": "/v/2"},
            {"host": "a", "venv": "/v/3"},
        ]);
        let work = |_: &mut Host<()>, _: &Target, record: &mut Record| {
            record.insert("done".into(), json!(true));
            Ok(())
        };
        let out = schedule_records(1, input, work, |_: &mut Host<()>, _| {});
        assert_eq!(out.len(), 3);
        assert!(out.iter().all(|r| r["done"] == true));
    }

    #[test]
    fn held_records_are_finished_once_per_host_after_its_last_target() {
        let input = json!([
            {"host": "a", "venv": "/v/1", "once": true},
            {"host": "b", "venv": "/v/2", "once": true},
            {"host": "a", "venv": "/v/3"},
            {"host": "a", "venv": "/v/4", "once": true},
            {"host": "b", "venv": "/v/5", "once": true},
        ]);
        let work = |host: &mut Host<Vec<String>>, _: &Target, record: &mut Record| {
            host.state
                .push(record["venv"].as_str().unwrap().to_string());
            if record.contains_key("once") {
                host.hold();
            }
            Ok(())
        };
        let finish = |host: &mut Host<Vec<String>>, held: &mut [Held]| {
            // Every target of the host was worked on before its finish.
            let seen = host.state.join(" ");
            let venvs: Vec<&str> = held.iter().map(|h| h.target.venv.as_str()).collect();
            let finished = json!({"with": venvs.join(" "), "after": seen});
            for job in held.iter_mut() {
                job.record.insert("finished".into(), finished.clone());
            }
        };
        let out = schedule_records(2, input, work, finish);
        let venvs: Vec<&Value> = out.iter().map(|r| field(r, "venv")).collect();
        assert_eq!(venvs, ["/v/1", "/v/2", "/v/3", "/v/4", "/v/5"]);
        let a = json!({"with": "/v/1 /v/4", "after": "/v/1 /v/3 /v/4"});
        let b = json!({"with": "/v/2 /v/5", "after": "/v/2 /v/5"});
        let finished: Vec<&Value> = out.iter().map(|r| field(r, "finished")).collect();
        assert_eq!(finished, [&a, &b, &Value::Null, &a, &b]);
    }

    #[test]
    fn errors_pass_through_and_the_other_targets_go_on() {
        let input = json!([
            {"host": "a", "venv": "/v/1", "error": {"tool": "vd-diff", "message": "earlier"}},
            {"host": "a", "venv": "relative"},
            {"host": "a", "venv": "/v/3", "fail": true},
            {"host": "a", "venv": "/v/4", "panic": true},
            {"venv": "/v/5"},
            {"host": "a", "venv": "/v/6"},
        ]);
        let work = |_: &mut Host<()>, _: &Target, record: &mut Record| {
            assert!(!record.contains_key("error"), "work on a failed record");
            if record.contains_key("fail") {
                anyhow::bail!("it broke");
            }
            if record.contains_key("panic") {
                panic!("a bug");
            }
            record.insert("done".into(), json!(true));
            Ok(())
        };
        let out = schedule_records(2, input, work, |_: &mut Host<()>, _| {});
        let error = |i: usize| -> (String, String) {
            record::error_of(&out[i]).unwrap_or_else(|| panic!("no error in {:?}", out[i]))
        };
        assert_eq!(error(0), ("vd-diff".to_string(), "earlier".to_string()));
        let (tool, message) = error(1);
        assert_eq!(tool, TOOL);
        assert!(
            message.starts_with("stdin line 2 (a:relative): "),
            "{message}"
        );
        assert!(message.contains("must be an absolute path"), "{message}");
        assert_eq!(error(2).1, "a:/v/3: it broke");
        assert!(
            error(3).1.contains("internal error in vd-test"),
            "{:?}",
            error(3)
        );
        assert!(error(3).1.ends_with("a bug"), "{:?}", error(3));
        assert!(error(4).1.starts_with("stdin line 5"), "{:?}", error(4));
        assert!(
            error(4).1.contains("missing field `host`"),
            "{:?}",
            error(4)
        );
        assert_eq!(out[5]["done"], true);
        assert!(record::error_of(&out[5]).is_none());
    }

    #[test]
    fn a_panic_in_the_finish_fails_the_held_records() {
        let input = json!([{"host": "a", "venv": "/v/1"}, {"host": "b", "venv": "/v/2"}]);
        let work = |host: &mut Host<()>, _: &Target, record: &mut Record| {
            if record["host"] == "a" {
                host.hold();
            }
            Ok(())
        };
        let finish = |_: &mut Host<()>, _: &mut [Held]| panic!("finish broke");
        let out = schedule_records(2, input, work, finish);
        let (_, message) = record::error_of(&out[0]).unwrap();
        assert!(message.starts_with("a:/v/1: internal error"), "{message}");
        assert!(record::error_of(&out[1]).is_none());
    }

    /// Run `work` batched over `jobs` workers; the records written, read back.
    fn batched_records<F>(
        jobs: usize,
        input: impl Iterator<Item = Line> + Send + 'static,
        work: F,
    ) -> Vec<Record>
    where
        F: Fn(&mut Host<()>, &mut [Held]) + Sync,
    {
        let fleet = Fleet {
            tool: TOOL,
            settings: Arc::new(Settings::offline()),
            jobs,
        };
        let mut out = Output::to(Vec::new(), None);
        fleet.run_batched(input, &mut out, work).unwrap();
        let (_, bytes) = out.finish_into().unwrap();
        String::from_utf8(bytes)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Each record of a batch learns the venvs of its batch.
    fn mark_batch(_: &mut Host<()>, batch: &mut [Held]) {
        let venvs: Vec<String> = batch.iter().map(|h| h.target.venv.clone()).collect();
        for job in batch.iter_mut() {
            job.record.insert("batch".into(), json!(venvs.join(" ")));
        }
    }

    #[test]
    fn a_batched_run_hands_each_host_all_its_targets_at_once() {
        let input = json!([
            {"host": "a", "venv": "/v/1"}, {"host": "b", "venv": "/v/2"},
            {"host": "a", "venv": "/v/3"}, {"host": "c", "venv": "/v/4"},
            {"host": "b", "venv": "/v/5"}, {"host": "a", "venv": "/v/6"},
            {"host": "a", "venv": "/v/7", "error": {"tool": "vd-diff", "message": "earlier"}},
        ]);
        for jobs in [1, 3] {
            let out = batched_records(jobs, lines(input.clone()).into_iter(), mark_batch);
            let venvs: Vec<&Value> = out.iter().map(|r| field(r, "venv")).collect();
            assert_eq!(
                venvs,
                ["/v/1", "/v/2", "/v/3", "/v/4", "/v/5", "/v/6", "/v/7"]
            );
            let batches: Vec<&Value> = out.iter().map(|r| field(r, "batch")).collect();
            let (a, b, c) = (json!("/v/1 /v/3 /v/6"), json!("/v/2 /v/5"), json!("/v/4"));
            assert_eq!(batches, [&a, &b, &a, &c, &b, &a, &Value::Null]);
            assert_eq!(record::error_of(&out[6]).unwrap().1, "earlier");
        }
    }

    #[test]
    fn a_batched_run_longer_than_the_window_goes_on_in_batches_of_at_most_a_window() {
        use std::sync::atomic::AtomicUsize;
        let n = 3 * READ_AHEAD + 7;
        let pulled = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&pulled);
        let input = (0..n).map(move |i| {
            counter.fetch_add(1, Ordering::SeqCst);
            let record = json!({"host": format!("h{}", i % 3), "venv": format!("/v/{i}")});
            Line {
                number: i + 1,
                record: record.as_object().unwrap().clone(),
            }
        });
        let (worked, ahead, batches) = (
            AtomicUsize::new(0),
            AtomicUsize::new(0),
            AtomicUsize::new(0),
        );
        let work = |host: &mut Host<()>, batch: &mut [Held]| {
            let done = worked.fetch_add(batch.len(), Ordering::SeqCst);
            ahead.fetch_max(pulled.load(Ordering::SeqCst) - done, Ordering::SeqCst);
            batches.fetch_add(1, Ordering::SeqCst);
            assert!(batch.len() <= READ_AHEAD, "a batch of {}", batch.len());
            mark_batch(host, batch);
        };
        let out = batched_records(2, input, work);
        assert_eq!(out.len(), n);
        for (i, record) in out.iter().enumerate() {
            assert_eq!(record["venv"], json!(format!("/v/{i}")));
            assert!(record["batch"]
                .as_str()
                .unwrap()
                .contains(&format!("/v/{i}")));
        }
        let ahead = ahead.load(Ordering::SeqCst);
        assert!(ahead <= READ_AHEAD + 1, "read {ahead} records ahead");
        // Each host starts when the window fills, not once per target.
        let batches = batches.load(Ordering::SeqCst);
        assert!(batches < n / 20, "{batches} batches for {n} targets");
    }

    #[test]
    fn a_batch_fails_its_own_records_only() {
        let input = json!([
            {"host": "a", "venv": "/v/1"}, {"host": "b", "venv": "/v/2"},
            {"host": "a", "venv": "/v/3", "fail": true}, {"host": "b", "venv": "/v/4"},
            {"host": "c", "venv": "/v/5"},
        ]);
        let work = |_: &mut Host<()>, batch: &mut [Held]| {
            if batch[0].record["host"] == "b" {
                panic!("a bug");
            }
            for job in batch.iter_mut() {
                if job.record.contains_key("fail") {
                    set_target_error(TOOL, &mut job.record, "it broke");
                } else {
                    job.record.insert("done".into(), json!(true));
                }
            }
        };
        let out = batched_records(2, lines(input).into_iter(), work);
        assert_eq!(out[0]["done"], true);
        assert_eq!(record::error_of(&out[2]).unwrap().1, "a:/v/3: it broke");
        for i in [1, 3] {
            let (_, message) = record::error_of(&out[i]).unwrap();
            assert!(message.contains("internal error in vd-test"), "{message}");
            assert!(message.ends_with("a bug"), "{message}");
        }
        assert_eq!(out[4]["done"], true);
    }
}
