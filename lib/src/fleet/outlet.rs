//! The way between the scheduler and its workers: the events the scheduler
//! waits for ([`Event`]), and what a worker sends them through
//! ([`Outlet`]): its records as each is done, its host when its turn is
//! over. Both the scheduler and the work modes use it; it uses neither.

use super::window::Window;
use super::Host;
use crate::record::Record;
use crate::transport::Destination;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;

/// The scheduler went away (stdout closed): a worker stops sending.
pub(super) struct Gone;

/// What the scheduler waits for.
pub(super) enum Event<S> {
    /// A line of input: its number and record.
    Line(usize, Record),
    /// The input ended.
    End,
    /// A target is done: its sequence number and record.
    Target(usize, Record),
    /// A host's turn is done; the host comes back with its connection.
    /// (Boxed: a host is large, and the channel carries many small events.)
    HostDone(Destination, Box<Host<S>>),
}

/// Where a worker's records go, and what it shares with the scheduler.
pub(super) struct Outlet<'a, S> {
    pub tool: &'static str,
    pub events: Sender<Event<S>>,
    pub window: &'a Window,
    pub stop: &'a AtomicBool,
}

impl<S> Outlet<'_, S> {
    /// Whether stdout is closed: the workers stop after their target.
    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// The work on a record is done: its place in the window is free.
    pub fn worked(&self) {
        self.window.give();
    }

    /// A record done, to be written in its turn.
    pub fn send(&self, seq: usize, record: Record) -> Result<(), Gone> {
        self.events
            .send(Event::Target(seq, record))
            .map_err(|_| Gone)
    }

    /// The host's turn is done: the host goes back to the scheduler.
    pub fn host_done(&self, dest: Destination, host: Host<S>) -> Result<(), Gone> {
        self.events
            .send(Event::HostDone(dest, Box::new(host)))
            .map_err(|_| Gone)
    }
}
