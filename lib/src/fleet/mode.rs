//! What a worker does with a host's turn (the targets queued for it since
//! its last turn), in the scheduler's two modes: the work on each target
//! then the finish of the held ones ([`EachTarget`], for
//! [`super::Fleet::run_with_finish`]), or the work on the whole batch at
//! once ([`Batched`], for [`super::Fleet::run_batched`]).
//!
//! Also the one place where a panic in the work (a bug in vd) becomes the
//! error of the targets it was working on, so that the other targets and
//! hosts go on: [`catch_bug`].

use super::schedule::Outlet;
use super::{set_target_error, Held, Host};
use crate::console;
use crate::record::{self, Record, Target};
use anyhow::Result;
use std::panic::{self, AssertUnwindSafe};

/// The scheduler went away (stdout closed): a worker stops sending.
pub(super) struct Gone;

/// A kind of work a worker does with a host's turn.
pub(super) trait Mode<S>: Sync {
    /// Whether a host's targets wait to go in one batch, rather than
    /// start as soon as the first of them arrives.
    const BATCHED: bool;

    /// Work on `turn` with `host`, sending each record to `outlet` as it is
    /// done. `last`: the input has ended, so no more of the host's targets
    /// can come.
    fn work_turn(
        &self,
        host: &mut Host<S>,
        turn: Vec<(usize, Held)>,
        last: bool,
        outlet: &Outlet<S>,
    ) -> Result<(), Gone>;
}

/// Work on each target in turn; a host's held records go to `finish` once
/// its last target is done.
pub(super) struct EachTarget<'a, F, G> {
    pub work: &'a F,
    pub finish: &'a G,
}

impl<S, F, G> Mode<S> for EachTarget<'_, F, G>
where
    F: Fn(&mut Host<S>, &Target, &mut Record) -> Result<()> + Sync,
    G: Fn(&mut Host<S>, &mut [Held]) + Sync,
{
    const BATCHED: bool = false;

    fn work_turn(
        &self,
        host: &mut Host<S>,
        turn: Vec<(usize, Held)>,
        last: bool,
        outlet: &Outlet<S>,
    ) -> Result<(), Gone> {
        for (seq, mut job) in turn {
            if outlet.stopped() {
                break;
            }
            host.hold = false;
            work_on(outlet.tool, self.work, host, &job.target, &mut job.record);
            outlet.worked();
            if std::mem::take(&mut host.hold) && record::error_of(&job.record).is_none() {
                host.held.push((seq, job));
            } else {
                outlet.send(seq, job.record)?;
            }
        }
        if last && !host.held.is_empty() && !outlet.stopped() {
            let held = std::mem::take(&mut host.held);
            for (seq, record) in on_all(outlet.tool, held, |jobs| (self.finish)(host, jobs)) {
                outlet.send(seq, record)?;
            }
        }
        Ok(())
    }
}

/// Work on a host's whole turn at once.
pub(super) struct Batched<'a, B>(pub &'a B);

impl<S, B> Mode<S> for Batched<'_, B>
where
    B: Fn(&mut Host<S>, &mut [Held]) + Sync,
{
    const BATCHED: bool = true;

    /// Nothing runs once stdout is closed.
    fn work_turn(
        &self,
        host: &mut Host<S>,
        turn: Vec<(usize, Held)>,
        _last: bool,
        outlet: &Outlet<S>,
    ) -> Result<(), Gone> {
        let stopped = outlet.stopped();
        let done = on_all(outlet.tool, turn, |jobs| {
            if !stopped {
                let _doing = jobs.first().map(|job| console::doing("", &job.record));
                (self.0)(host, jobs);
            }
        });
        for (seq, record) in done {
            outlet.worked();
            outlet.send(seq, record)?;
        }
        Ok(())
    }
}

/// Do `work` on a host's records at once (a batch, or the held records'
/// finish); a panic in it becomes an error on each of them.
fn on_all(
    tool: &str,
    jobs: Vec<(usize, Held)>,
    work: impl FnOnce(&mut [Held]),
) -> Vec<(usize, Record)> {
    let (seqs, mut held): (Vec<usize>, Vec<Held>) = jobs.into_iter().unzip();
    if let Err(bug) = catch_bug(tool, || work(&mut held)) {
        for job in &mut held {
            set_target_error(tool, &mut job.record, &bug);
        }
    }
    seqs.into_iter()
        .zip(held.into_iter().map(|job| job.record))
        .collect()
}

/// Do the work on one target; an error (or a panic) goes into the record,
/// named by target.
fn work_on<S, F>(tool: &str, work: &F, host: &mut Host<S>, target: &Target, record: &mut Record)
where
    F: Fn(&mut Host<S>, &Target, &mut Record) -> Result<()>,
{
    let doing = console::doing("", record);
    let outcome = catch_bug(tool, || work(host, target, record));
    drop(doing);
    let message = match outcome {
        Ok(Ok(())) => return,
        Ok(Err(e)) => format!("{e:#}"),
        Err(bug) => bug,
    };
    set_target_error(tool, record, &message);
}

/// Run `work`. A panic in it is a bug in vd, not in a target: it comes back
/// as the message for the error of the targets it was working on, and the
/// worker goes on with the others.
fn catch_bug<T>(tool: &str, work: impl FnOnce() -> T) -> Result<T, String> {
    panic::catch_unwind(AssertUnwindSafe(work)).map_err(|panic| {
        format!(
            "internal error in {tool} (please report it): {}",
            panic_text(&*panic)
        )
    })
}

/// What a panic said.
fn panic_text(panic: &(dyn std::any::Any + Send)) -> &str {
    panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("unknown panic")
}
