//! The scheduler: one thread that reads events (a line read, the input's
//! end, a target done, a host's turn done), keeps the hosts and their
//! queues, hands hosts with work to workers (a thread per host at work, up
//! to `--jobs`), and writes the records done in input order.
//!
//! It is not the work: what a worker does with a host's turn is the
//! [`Mode`]'s (its records come back through an [`Outlet`]), and a panic in it is the mode's to turn into errors. Nor does
//! it read the input: a thread of its own does, a place in the [`Window`]
//! per record, and sends the lines as events.

use super::idle::Idle;
use super::mode::Mode;
use super::outlet::{Event, Outlet};
use super::window::Window;
use super::{Fleet, Held, Host, IDLE_SESSIONS, READ_AHEAD};
use crate::console;
use crate::messages;
use crate::output::{Output, Ready};
use crate::record::{self, Line, Record, Target};
use crate::transport::{Destination, Settings};
use anyhow::{bail, Result};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::{self, Scope};
use std::time::{Duration, Instant};

/// How long the input must be quiet before a batched run's waiting hosts
/// start: input that comes at once (from a file, from vd-targets) comes
/// faster than this, so each host gets one batch; a slow producer (a
/// script, a FIFO fed by hand) pauses longer, and what it wrote so far is
/// worked on and written while it goes on.
pub const BATCH_PAUSE: Duration = Duration::from_millis(500);

/// How long a batched run's target waits for its host to start at the
/// most, however steadily the input comes: a producer that writes a record
/// every tenth of a second never pauses, yet its records are to come out
/// as it goes.
pub const BATCH_WAIT: Duration = Duration::from_secs(5);

/// When a batched run's waiting hosts start while the input goes on (see
/// [`BATCH_PAUSE`], [`BATCH_WAIT`]): set apart so that tests may wait less.
#[derive(Clone, Copy, Debug)]
pub(super) struct Patience {
    /// How long the input must be quiet.
    pub pause: Duration,
    /// How long a target waits at the most.
    pub longest: Duration,
}

impl Default for Patience {
    fn default() -> Patience {
        Patience {
            pause: BATCH_PAUSE,
            longest: BATCH_WAIT,
        }
    }
}

/// A host and its targets waiting to run.
struct Slot<S> {
    /// The host, or `None` while a worker has it.
    host: Option<Host<S>>,
    queue: VecDeque<(usize, Held)>,
}

/// Run `mode`'s work over the targets of `input`, writing every record to
/// `out` in input order: what [`Fleet`]'s runs come to.
pub(super) fn run<S, M, W>(
    fleet: &Fleet,
    input: impl Iterator<Item = Line> + Send + 'static,
    out: &mut Output<W>,
    mode: &M,
) -> Result<()>
where
    S: Default + Send + 'static,
    M: Mode<S>,
    W: Write,
{
    let (events, received) = mpsc::channel::<Event<S>>();
    let window = Arc::new(Window::new(READ_AHEAD));
    spawn_reader(input, events.clone(), Arc::clone(&window));
    let stop = AtomicBool::new(false);
    thread::scope(|scope| {
        let outlet = Outlet {
            tool: fleet.tool,
            events,
            window: &window,
            stop: &stop,
        };
        Scheduler::new(fleet, out, mode, outlet).run(&received, scope)
    })
}

/// Read `input` on a thread of its own, taking a place in `window` for each
/// line before it is sent.
fn spawn_reader<S: Send + 'static>(
    input: impl Iterator<Item = Line> + Send + 'static,
    events: Sender<Event<S>>,
    window: Arc<Window>,
) {
    // Detached: it may sit in a read on stdin (or at a --confirm prompt)
    // after we are done (stdout closed); the process exit ends it.
    thread::spawn(move || {
        for line in input {
            window.take();
            if events.send(Event::Line(line.number, line.record)).is_err() {
                return;
            }
        }
        let _ = events.send(Event::End);
    });
}

/// The scheduler's state: the hosts, the queues, the records done.
struct Scheduler<'a, S, M, W: Write> {
    settings: &'a Arc<Settings>,
    jobs: usize,
    patience: Patience,
    /// Records with an `error` that get the work all the same.
    takes_error: Option<fn(&Record) -> bool>,
    mode: &'a M,
    out: &'a mut Output<W>,
    /// What the workers are given (a clone each).
    outlet: Outlet<'a, S>,
    /// Every host with targets queued, at work, holding records or kept
    /// idle with its session.
    slots: HashMap<Destination, Slot<S>>,
    /// Hosts with a turn to start, when a worker is free.
    ready: VecDeque<Destination>,
    /// Batched: idle hosts with targets, not yet started (see
    /// [`Fleet::run_batched`]), and since when the first of them waits.
    waiting: Vec<Destination>,
    waiting_since: Option<Instant>,
    /// Records done, as they will be written, waiting for the ones before
    /// them.
    done: BTreeMap<usize, Ready>,
    idle: Idle,
    /// Records read, records written, workers at work.
    read: usize,
    written: usize,
    running: usize,
    input_done: bool,
    /// When the last line came, to tell a pause in the input.
    last_line: Instant,
}

impl<'a, S, M, W> Scheduler<'a, S, M, W>
where
    S: Default + Send + 'static,
    M: Mode<S>,
    W: Write,
{
    fn new(fleet: &'a Fleet, out: &'a mut Output<W>, mode: &'a M, outlet: Outlet<'a, S>) -> Self {
        Scheduler {
            settings: &fleet.settings,
            jobs: fleet.jobs,
            patience: fleet.patience,
            takes_error: fleet.takes_error,
            mode,
            out,
            outlet,
            slots: HashMap::new(),
            ready: VecDeque::new(),
            waiting: Vec::new(),
            waiting_since: None,
            done: BTreeMap::new(),
            idle: Idle::new(IDLE_SESSIONS),
            read: 0,
            written: 0,
            running: 0,
            input_done: false,
            last_line: Instant::now(),
        }
    }

    /// Answer events until every record read is written, the input has
    /// ended and no worker is at work.
    fn run<'scope>(
        &mut self,
        received: &Receiver<Event<S>>,
        scope: &'scope Scope<'scope, '_>,
    ) -> Result<()>
    where
        'a: 'scope,
    {
        loop {
            self.write_done()?;
            if self.input_done && self.written == self.read && self.running == 0 {
                return Ok(());
            }
            // Done: written, and finished but waiting for one before it.
            console::finished(self.written + self.done.len());
            match self.next_event(received)? {
                Some(Event::Line(number, record)) => self.line_read(number, record),
                Some(Event::End) => self.input_ended(),
                Some(Event::Target(seq, record)) => self.target_done(seq, record),
                Some(Event::HostDone(dest, host)) => self.host_done(dest, *host),
                None => self.release_waiting(),
            }
            self.start_ready(scope);
        }
    }

    /// Write the records done whose turn has come.
    fn write_done(&mut self) -> Result<()> {
        while let Some(record) = self.done.remove(&self.written) {
            if let Err(e) = self.out.write_ready(&record) {
                // stdout is closed: the workers stop after their target.
                self.outlet.stop.store(true, Ordering::Relaxed);
                return Err(e.into());
            }
            self.written += 1;
        }
        Ok(())
    }

    /// The next event; `None` when the hosts waiting for their batch to
    /// fill have waited long enough.
    fn next_event(&self, received: &Receiver<Event<S>>) -> Result<Option<Event<S>>> {
        let event = match self.batch_deadline() {
            Some(deadline) => {
                received.recv_timeout(deadline.saturating_duration_since(Instant::now()))
            }
            None => received.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        match event {
            Ok(event) => Ok(Some(event)),
            Err(RecvTimeoutError::Timeout) => Ok(None),
            Err(RecvTimeoutError::Disconnected) => bail!("internal error: the workers went away"),
        }
    }

    /// When the waiting hosts start if nothing starts them before: once the
    /// input has paused, or the first of them has waited its longest.
    fn batch_deadline(&self) -> Option<Instant> {
        let since = self.waiting_since?;
        let paused = self.last_line + self.patience.pause;
        Some(paused.min(since + self.patience.longest))
    }

    /// A line of input: a target for its host, or (an error record, a line
    /// that is not a target) a record done as it is.
    fn line_read(&mut self, number: usize, mut record: Record) {
        console::read(Some(()));
        self.last_line = Instant::now();
        let seq = self.read;
        self.read += 1;
        let tool = self.outlet.tool;
        let taken = self.takes_error.is_some_and(|takes| takes(&record));
        if let Some((by, message)) = record::error_of(&record).filter(|_| !taken) {
            // A line this tool could not read is news; an error from an
            // earlier tool was reported there.
            if by == tool && record.len() == 1 {
                messages::target_error(tool, &message);
            }
            return self.pass(seq, record);
        }
        match Target::parse(&record) {
            Ok(target) => self.queue(seq, Held { target, record }),
            Err(e) => {
                let message = format!(
                    "stdin line {number} ({}): {e:#}",
                    record::target_label(&record)
                );
                messages::target_error(tool, &message);
                record::set_error(&mut record, tool, &message);
                self.pass(seq, record);
            }
        }
    }

    /// A record that gets no work: done as it is.
    fn pass(&mut self, seq: usize, record: Record) {
        self.outlet.worked();
        self.done.insert(seq, self.out.ready(record));
    }

    /// Queue a target for its host; a host that is idle with nothing
    /// queued has a turn to come.
    fn queue(&mut self, seq: usize, job: Held) {
        let dest = Destination::of(&job.target);
        let settings = self.settings;
        let slot = self.slots.entry(dest.clone()).or_insert_with(|| Slot {
            host: Some(Host::new(dest.clone(), Arc::clone(settings))),
            queue: VecDeque::new(),
        });
        // A host at work, or with targets queued, has its turn coming.
        let comes = slot.host.is_some() && slot.queue.is_empty();
        slot.queue.push_back((seq, job));
        if comes {
            self.turn_comes(dest);
        }
    }

    /// An idle host with targets queued: ready, or (batched) waiting for
    /// more of them.
    fn turn_comes(&mut self, dest: Destination) {
        if !M::BATCHED {
            return self.ready.push_back(dest);
        }
        self.waiting_since.get_or_insert_with(Instant::now);
        self.waiting.push(dest);
    }

    /// The input ended: idle hosts with held records are finished now, and
    /// sessions nobody will need again are closed.
    fn input_ended(&mut self) {
        console::read(None);
        self.input_done = true;
        let ready = &mut self.ready;
        self.slots.retain(|dest, slot| match &slot.host {
            None => true,
            Some(_) if !slot.queue.is_empty() => true,
            Some(host) if !host.held.is_empty() => {
                ready.push_back(dest.clone());
                true
            }
            Some(_) => false,
        });
    }

    fn target_done(&mut self, seq: usize, record: Record) {
        self.done.insert(seq, self.out.ready(record));
    }

    /// A host's turn is done: it has another (targets came meanwhile, or
    /// the finish), or it goes idle, or it is forgotten.
    fn host_done(&mut self, dest: Destination, host: Host<S>) {
        self.running -= 1;
        let slot = self.slots.get_mut(&dest).expect("a busy host has a slot");
        if !slot.queue.is_empty() {
            slot.host = Some(host);
            self.turn_comes(dest);
        } else if self.input_done && !host.held.is_empty() {
            // The input having ended while the turn ran: the finish.
            slot.host = Some(host);
            self.ready.push_back(dest);
        } else if self.input_done || (host.connection.is_none() && host.held.is_empty()) {
            // Done for good, or never connected: nothing worth keeping
            // until its next target.
            self.slots.remove(&dest);
        } else {
            let keeps_session = matches!(host.connection, Some(Ok(_))) && host.held.is_empty();
            slot.host = Some(host);
            if keeps_session {
                if let Some(old) = self.idle.went_idle(&dest) {
                    self.forget_if_idle(&old);
                }
            }
        }
    }

    /// Forget a host (closing its session) if it is still idle, with no
    /// targets queued and no records held: a later target of it starts anew.
    fn forget_if_idle(&mut self, dest: &Destination) {
        let idle = self.slots.get(dest).is_some_and(|slot| {
            slot.queue.is_empty() && slot.host.as_ref().is_some_and(|host| host.held.is_empty())
        });
        if idle {
            self.slots.remove(dest);
        }
    }

    /// The waiting hosts start.
    fn release_waiting(&mut self) {
        self.ready.extend(self.waiting.drain(..));
        self.waiting_since = None;
    }

    /// Start the ready hosts' turns, as many as workers are free.
    fn start_ready<'scope>(&mut self, scope: &'scope Scope<'scope, '_>)
    where
        'a: 'scope,
    {
        // Waiting hosts start once the input has ended, or once the reader
        // waits for room (else it would wait for good).
        if !self.waiting.is_empty() && (self.input_done || self.outlet.window.is_full()) {
            self.release_waiting();
        }
        while self.running < self.jobs {
            let Some(dest) = self.ready.pop_front() else {
                break;
            };
            self.start(dest, scope);
        }
    }

    /// Start a host's turn on a worker: its targets queued so far.
    fn start<'scope>(&mut self, dest: Destination, scope: &'scope Scope<'scope, '_>)
    where
        'a: 'scope,
    {
        self.idle.busy(&dest);
        let slot = self.slots.get_mut(&dest).expect("a ready host has a slot");
        let mut host = slot.host.take().expect("a ready host is idle");
        let turn: Vec<(usize, Held)> = slot.queue.drain(..).collect();
        // With the input ended, this turn is the host's last.
        let last = self.input_done;
        self.running += 1;
        let mode = self.mode;
        let outlet = Outlet {
            events: self.outlet.events.clone(),
            ..self.outlet
        };
        scope.spawn(move || {
            let _ = mode
                .work_turn(&mut host, turn, last, &outlet)
                .and_then(|()| outlet.host_done(dest, host));
        });
    }
}
