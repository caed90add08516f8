//! Running one tool's work over many targets: one session per host, hosts in
//! parallel, records out in input order as early as possible.
//!
//! Every remote tool (vd-freeze, vd-push, vd-migrate, vd-reload) has the same
//! shape: read target records, do something to each target over its host's
//! connection, write the records back. [`run`] is that shape, written once;
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
//! the work may [`Host::hold`] a target's record, and [`run_with_finish`]
//! takes a second closure that gets a host's held records once the input has
//! ended and the host's last target is done; they are written after it.

use crate::cli;
use crate::output::Output;
use crate::record::{self, Reader, Record, Target};
use crate::transport::{Connection, Destination, Settings, TransportArgs};
use anyhow::{anyhow, bail, Result};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::BufRead;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};

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
    held: Vec<(usize, Record)>,
    /// Whether the work asked to hold the record it is working on.
    hold: bool,
    pub state: S,
}

impl<S> Host<S> {
    /// Where this host is.
    pub fn destination(&self) -> &Destination {
        &self.destination
    }

    /// The host's connection, opened on the first call. A failure is
    /// remembered and returned to every later target of the host.
    pub fn connection(&mut self) -> Result<&mut Connection> {
        if self.connection.is_none() {
            let opened = Connection::open(&self.destination, &self.settings);
            self.connection = Some(opened.map_err(|e| format!("{e:#}")));
        }
        match self.connection.as_mut() {
            Some(Ok(connection)) => Ok(connection),
            Some(Err(message)) => Err(anyhow!("{message}")),
            None => unreachable!("the connection was just opened"),
        }
    }

    /// Keep the record being worked on back from the output until the host
    /// is finished: it goes to the `finish` closure of [`run_with_finish`]
    /// (with everything the work wrote into it), and is written after that.
    /// Records after it in the input wait for it, since output keeps input
    /// order. Under [`run`], which has no finish, held records are written
    /// once the input ends.
    pub fn hold(&mut self) {
        self.hold = true;
    }
}

enum Event<S> {
    /// A line of input: its number and record.
    Line(usize, Record),
    /// The input ended.
    End,
    /// A target is done: its sequence number and record.
    Target(usize, Record),
    /// A host's batch is done; the host comes back with its connection.
    HostDone(Destination, Host<S>),
}

/// A host and its targets waiting to run.
struct Slot<S> {
    /// The host, or `None` while a worker has it.
    host: Option<Host<S>>,
    queue: VecDeque<(usize, Record)>,
}

/// Read target records from `input`, do `work` to each one that carries no
/// error over its host's connection, and write every record to `out` in
/// input order. An `Err` from `work` becomes the record's `error` (with the
/// target's name) and a line on stderr; the other targets go on. Returns an
/// error only when the run cannot go on (setup, or stdout closed).
pub fn run<S, F>(
    tool: &'static str,
    transport: &TransportArgs,
    input: impl BufRead + Send + 'static,
    out: &mut Output,
    work: F,
) -> Result<()>
where
    S: Default + Send + 'static,
    F: Fn(&mut Host<S>, &mut Record) -> Result<()> + Sync,
{
    run_with_finish(tool, transport, input, out, work, |_: &mut Host<S>, _| {})
}

/// [`run`], and then, once per host that held records ([`Host::hold`]),
/// `finish` with that host and its held records, in input order. It runs
/// after the input has ended and the host's last target is done (only then
/// is it sure that no more of the host's targets can come), over the same
/// connection, counted against `--jobs` like the work. `finish` reports a
/// failure by putting an `error` into the records it concerns; a panic in it
/// becomes an error on every held record.
pub fn run_with_finish<S, F, G>(
    tool: &'static str,
    transport: &TransportArgs,
    input: impl BufRead + Send + 'static,
    out: &mut Output,
    work: F,
    finish: G,
) -> Result<()>
where
    S: Default + Send + 'static,
    F: Fn(&mut Host<S>, &mut Record) -> Result<()> + Sync,
    G: Fn(&mut Host<S>, &mut [Record]) + Sync,
{
    let settings = Arc::new(Settings::new(transport, move |m| cli::warn(tool, m))?);
    let jobs = transport.jobs.max(1) as usize;
    let (tx, rx) = mpsc::channel::<Event<S>>();
    let reader_tx = tx.clone();
    // Detached: it may sit in a read on stdin after we are done (stdout
    // closed); the process exit ends it.
    std::thread::spawn(move || {
        for line in Reader::new(input, tool) {
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
    let work = &work;
    let finish = &finish;
    let stop_ref = &stop;
    let result = std::thread::scope(|scope| -> Result<()> {
        let mut slots: HashMap<Destination, Slot<S>> = HashMap::new();
        let mut ready: VecDeque<Destination> = VecDeque::new();
        let mut done: BTreeMap<usize, Record> = BTreeMap::new();
        let (mut total, mut next, mut running) = (0usize, 0usize, 0usize);
        let mut input_done = false;
        loop {
            while let Some(record) = done.remove(&next) {
                if let Err(e) = out.write(&record) {
                    // stdout is closed: the workers stop after their target.
                    stop_ref.store(true, Ordering::Relaxed);
                    return Err(e.into());
                }
                next += 1;
            }
            if input_done && next == total && running == 0 {
                return Ok(());
            }
            let Ok(event) = rx.recv() else {
                bail!("internal error: the workers went away");
            };
            match event {
                Event::Line(number, mut record) => {
                    let seq = total;
                    total += 1;
                    if let Some((by, message)) = record::error_of(&record) {
                        // A line this tool could not read is news; an error
                        // from an earlier tool was reported there.
                        if by == tool && record.len() == 1 {
                            cli::warn(tool, &message);
                        }
                        done.insert(seq, record);
                        continue;
                    }
                    match target_destination(&record) {
                        Ok(dest) => {
                            let slot = slots.entry(dest.clone()).or_insert_with(|| Slot {
                                host: Some(Host {
                                    destination: dest.clone(),
                                    settings: Arc::clone(&settings),
                                    connection: None,
                                    held: Vec::new(),
                                    hold: false,
                                    state: S::default(),
                                }),
                                queue: VecDeque::new(),
                            });
                            // An idle host with queued targets is already ready.
                            if slot.host.is_some() && slot.queue.is_empty() {
                                ready.push_back(dest);
                            }
                            slot.queue.push_back((seq, record));
                        }
                        Err(e) => {
                            let message = format!(
                                "stdin line {number} ({}): {e:#}",
                                record::target_label(&record)
                            );
                            cli::warn(tool, &message);
                            record::set_error(&mut record, tool, &message);
                            done.insert(seq, record);
                        }
                    }
                }
                Event::End => {
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
                    done.insert(seq, record);
                }
                Event::HostDone(dest, host) => {
                    running -= 1;
                    let slot = slots.get_mut(&dest).expect("a busy host has a slot");
                    if !slot.queue.is_empty() || (input_done && !host.held.is_empty()) {
                        // More targets, or (the input having ended while the
                        // batch ran) the finish.
                        ready.push_back(dest);
                        slot.host = Some(host);
                    } else if input_done {
                        slots.remove(&dest);
                    } else {
                        slot.host = Some(host);
                    }
                }
            }
            while running < jobs {
                let Some(dest) = ready.pop_front() else { break };
                let slot = slots.get_mut(&dest).expect("a ready host has a slot");
                let mut host = slot.host.take().expect("a ready host is idle");
                let batch: Vec<(usize, Record)> = slot.queue.drain(..).collect();
                // With the input ended, this batch is the host's last.
                let last = input_done;
                running += 1;
                let tx = tx.clone();
                scope.spawn(move || {
                    for (seq, mut record) in batch {
                        if stop_ref.load(Ordering::Relaxed) {
                            break;
                        }
                        host.hold = false;
                        work_on(tool, work, &mut host, &mut record);
                        if std::mem::take(&mut host.hold) && record::error_of(&record).is_none() {
                            host.held.push((seq, record));
                        } else if tx.send(Event::Target(seq, record)).is_err() {
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
                    let _ = tx.send(Event::HostDone(dest, host));
                });
            }
        }
    });
    result
}

/// The destination of a target, or why the record is not a usable target:
/// the door where every target field is parsed, so a field of the wrong
/// type fails the target (named with its line) before anything runs.
fn target_destination(record: &Record) -> Result<Destination> {
    Ok(Destination::of(&Target::parse(record)?))
}

/// Run `finish` on a host's held records; a panic (a bug in vd) becomes an
/// error on each of them.
fn finish_host<S, G>(
    tool: &str,
    finish: &G,
    host: &mut Host<S>,
    held: Vec<(usize, Record)>,
) -> Vec<(usize, Record)>
where
    G: Fn(&mut Host<S>, &mut [Record]),
{
    let (seqs, mut records): (Vec<usize>, Vec<Record>) = held.into_iter().unzip();
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| finish(host, &mut records)));
    if let Err(panic) = outcome {
        let message = format!(
            "internal error in {tool} (please report it): {}",
            panic_text(&*panic)
        );
        for record in &mut records {
            set_target_error(tool, record, &message);
        }
    }
    seqs.into_iter().zip(records).collect()
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
fn work_on<S, F>(tool: &str, work: &F, host: &mut Host<S>, record: &mut Record)
where
    F: Fn(&mut Host<S>, &mut Record) -> Result<()>,
{
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| work(host, record)));
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
/// [`run`] does with an `Err` from the work, for a `finish` to do the same.
pub fn set_target_error(tool: &str, record: &mut Record, message: &str) {
    let message = format!("{}: {message}", record::target_label(record));
    cli::warn(tool, &message);
    record::set_error(record, tool, &message);
}
