//! Work on the hosts of a wave's released targets, between waves: their
//! health checks again after `--pause`, and the switch back of
//! `--revert-wave`.
//!
//! Not [`crate::fleet`]: that one streams a tool's whole input to its
//! output and drives the progress bar with its counts, while here a
//! handful of records already read and counted are worked on and handed
//! back to the rollout. The targets of one destination share one
//! connection and run one after another; up to `jobs` destinations at
//! once.

use crate::record::{Record, Target};
use crate::transport::{Connection, Destination, Settings};
use std::collections::HashSet;
use std::sync::Mutex;

/// A destination's connection as the work sees it, with what it already
/// ran there.
pub struct Session<'a> {
    pub connection: &'a mut Connection,
    /// Reload commands of `reload_once` targets that already ran on the
    /// host: the host's targets share them.
    pub reloaded_once: HashSet<String>,
}

/// Work on a target; what failed, in words.
pub type Work<'w> = dyn Fn(&mut Session, &Target, &mut Record) -> Result<(), String> + Sync + 'w;

/// The hosts, reached with the tool's transport settings.
pub struct Hosts {
    pub settings: Settings,
    pub jobs: usize,
}

/// One destination's share of the items: `(index, target, record)`.
type Group = (Destination, Vec<(usize, Target, Record)>);

impl Hosts {
    /// Do `work` to each `(target, record)`; the records back in the
    /// order given, each with its outcome. A destination that cannot be
    /// reached fails each of its targets.
    pub fn on_each(
        &self,
        items: Vec<(Target, Record)>,
        work: &Work,
    ) -> Vec<(Record, Result<(), String>)> {
        let count = items.len();
        let mut groups: Vec<Group> = Vec::new();
        for (i, (target, record)) in items.into_iter().enumerate() {
            let destination = Destination::of(&target);
            match groups.iter_mut().find(|(d, _)| *d == destination) {
                Some((_, members)) => members.push((i, target, record)),
                None => groups.push((destination, vec![(i, target, record)])),
            }
        }
        let workers = self.jobs.clamp(1, groups.len().max(1));
        let queue = Mutex::new(groups);
        let done = Mutex::new(Vec::with_capacity(count));
        std::thread::scope(|scope| {
            for _ in 0..workers {
                scope.spawn(|| loop {
                    let Some(group) = queue.lock().unwrap_or_else(|e| e.into_inner()).pop() else {
                        break;
                    };
                    let outcomes = self.on_group(group, work);
                    done.lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .extend(outcomes);
                });
            }
        });
        let mut done = done.into_inner().unwrap_or_else(|e| e.into_inner());
        done.sort_by_key(|(i, _, _)| *i);
        done.into_iter()
            .map(|(_, r, outcome)| (r, outcome))
            .collect()
    }

    /// One destination's targets, one after another over one connection.
    fn on_group(
        &self,
        (destination, members): Group,
        work: &Work,
    ) -> Vec<(usize, Record, Result<(), String>)> {
        let mut connection = match Connection::open(&destination, &self.settings) {
            Ok(connection) => connection,
            Err(e) => {
                let message = format!("{e:#}");
                return members
                    .into_iter()
                    .map(|(i, _, record)| (i, record, Err(message.clone())))
                    .collect();
            }
        };
        let mut session = Session {
            connection: &mut connection,
            reloaded_once: HashSet::new(),
        };
        members
            .into_iter()
            .map(|(i, target, mut record)| {
                let outcome = work(&mut session, &target, &mut record);
                (i, record, outcome)
            })
            .collect()
    }
}
