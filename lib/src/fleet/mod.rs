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
//! target arrives but once the input has ended, has paused ([`schedule::BATCH_PAUSE`]:
//! a slow producer's records stream out rather than wait for its end), or
//! the read-ahead window is full (then every host with waiting targets
//! starts, so a long input neither stalls nor is held whole). Targets of a
//! host that arrive while its batch runs make its next batch, over the same
//! session.
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
//!
//! The parts: [`schedule`] is the scheduler (the events it answers, the
//! hosts it keeps), [`mode`] the two kinds of work a worker does with a
//! host's turn, [`outlet`] the way between the two, [`window`] the room
//! for records read ahead, [`idle`] the hosts whose sessions are kept,
//! [`malloc`] the allocator setting the workers want.

mod idle;
mod malloc;
mod mode;
mod outlet;
mod schedule;
mod window;

use crate::console;
use crate::messages;
use crate::output::Output;
use crate::record::{self, Line, Record, Target};
use crate::transport::{self, Connection, Destination, Settings};
use anyhow::{anyhow, Result};
use mode::{Batched, EachTarget};
use schedule::Patience;
use std::io::Write;
use std::sync::Arc;

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

impl<S: Default> Host<S> {
    /// A host not yet reached, with nothing held.
    fn new(destination: Destination, settings: Arc<Settings>) -> Host<S> {
        Host {
            destination,
            settings,
            connection: None,
            held: Vec::new(),
            hold: false,
            state: S::default(),
        }
    }
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

/// The hosts a tool works on, and how: `jobs` hosts at once, reached with
/// the transport's settings.
pub struct Fleet {
    tool: &'static str,
    settings: Arc<Settings>,
    jobs: usize,
    /// When a batched run's hosts start while the input goes on.
    patience: Patience,
    /// Which records that carry an `error` get the work all the same
    /// ([`Fleet::taking_errors`]).
    takes_error: Option<fn(&Record) -> bool>,
}

impl Fleet {
    /// Read what reaching hosts needs (`~/.ssh/config`, known_hosts) once.
    pub fn new(tool: &'static str, jobs: u32, reach: &transport::Reach) -> Result<Fleet> {
        malloc::limit_arenas();
        let settings = Settings::new(reach, move |m| messages::warn(tool, m))?;
        Ok(Fleet {
            tool,
            settings: Arc::new(settings),
            jobs: jobs.max(1) as usize,
            patience: Patience::default(),
            takes_error: None,
        })
    }

    /// Give the work the records with an `error` that `takes` picks, not
    /// only those without. The one use: vd-reload --revert switches back a
    /// generation whose migrations failed (the documented exception to
    /// passing error records through untouched). The work keeps their
    /// `error`; an `Err` from it replaces it.
    pub fn taking_errors(mut self, takes: fn(&Record) -> bool) -> Fleet {
        self.takes_error = Some(takes);
        self
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
        let mode = EachTarget {
            work: &work,
            finish: &finish,
        };
        schedule::run(self, input, out, &mode)
    }

    /// Like [`Fleet::run`], but `work` gets a host's batch of targets at
    /// once, over the host's connection: what it writes into each record,
    /// and the `error` it puts into the records that failed ([`set_target_error`]),
    /// is written as each record's outcome. A panic in it (a bug in vd)
    /// becomes an error on every record of the batch. A host's targets wait
    /// until the input has ended, has paused for [`schedule::BATCH_PAUSE`], or
    /// [`READ_AHEAD`] records are waiting (and no target waits longer than
    /// [`schedule::BATCH_WAIT`]), so a batch holds all of a host's targets as far as
    /// memory allows when the input comes at once, and a slow input's
    /// records still come out as it goes.
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
        schedule::run(self, input, out, &Batched(&work))
    }
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
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    const TOOL: &str = "vd-test";

    /// A fleet of `jobs` workers that reads no file.
    fn offline_fleet(jobs: usize) -> Fleet {
        Fleet {
            tool: TOOL,
            settings: Arc::new(Settings::offline()),
            jobs,
            patience: Patience::default(),
            takes_error: None,
        }
    }

    /// Schedule `input` over `jobs` workers; the records written, read back.
    fn schedule_records<S, F, G>(jobs: usize, input: Value, work: F, finish: G) -> Vec<Record>
    where
        S: Default + Send + 'static,
        F: Fn(&mut Host<S>, &Target, &mut Record) -> Result<()> + Sync,
        G: Fn(&mut Host<S>, &mut [Held]) + Sync,
    {
        let fleet = offline_fleet(jobs);
        let mut out = Output::to(Vec::new(), None);
        let input = lines(input).into_iter();
        fleet
            .run_with_finish(input, &mut out, work, finish)
            .unwrap();
        written(out)
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
        let fleet = offline_fleet(2);
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
    fn error_records_a_fleet_takes_get_the_work_and_keep_their_error() {
        let input = json!([
            {"host": "a", "venv": "/v/1", "error": {"tool": "vd-diff", "message": "left"}},
            {"host": "a", "venv": "/v/2", "take": true,
             "error": {"tool": "vd-migrate", "message": "taken"}},
        ]);
        let fleet = offline_fleet(1).taking_errors(|r| r.contains_key("take"));
        let mut out = Output::to(Vec::new(), None);
        let work = |_: &mut Host<()>, _: &Target, record: &mut Record| {
            record.insert("done".into(), json!(true));
            Ok(())
        };
        fleet.run(lines(input).into_iter(), &mut out, work).unwrap();
        let out = written(out);
        assert!(!out[0].contains_key("done"), "{:?}", out[0]);
        assert_eq!(out[1]["done"], true);
        assert_eq!(record::error_of(&out[1]).unwrap().1, "taken");
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

    /// Run `work` batched by `fleet`; the records written, read back.
    fn batched_by<S, F>(
        fleet: &Fleet,
        input: impl Iterator<Item = Line> + Send + 'static,
        work: F,
    ) -> Vec<Record>
    where
        S: Default + Send + 'static,
        F: Fn(&mut Host<S>, &mut [Held]) + Sync,
    {
        let mut out = Output::to(Vec::new(), None);
        fleet.run_batched(input, &mut out, work).unwrap();
        written(out)
    }

    /// The records `out` wrote, read back.
    fn written(out: Output<Vec<u8>>) -> Vec<Record> {
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
            let out = batched_by(
                &offline_fleet(jobs),
                lines(input.clone()).into_iter(),
                mark_batch,
            );
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
        let out = batched_by(&offline_fleet(2), input, work);
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
        let out = batched_by(&offline_fleet(2), lines(input).into_iter(), work);
        assert_eq!(out[0]["done"], true);
        assert_eq!(record::error_of(&out[2]).unwrap().1, "a:/v/3: it broke");
        for i in [1, 3] {
            let (_, message) = record::error_of(&out[i]).unwrap();
            assert!(message.contains("internal error in vd-test"), "{message}");
            assert!(message.ends_with("a bug"), "{message}");
        }
        assert_eq!(out[4]["done"], true);
    }

    /// Input from a slow producer: the records of `first`, then nothing
    /// until `until` is set (ten seconds at most), then those of `then`.
    /// `came` is set when `until` was, before the rest of the input.
    fn pausing_input(
        first: Value,
        until: Arc<AtomicBool>,
        came: Arc<AtomicBool>,
        then: Value,
    ) -> impl Iterator<Item = Line> + Send + 'static {
        let first = lines(first);
        let skip = first.len();
        let then = lines(then).into_iter().map(move |mut line| {
            line.number += skip;
            line
        });
        let wait = std::iter::from_fn(move || {
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while !until.load(Ordering::SeqCst) && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            came.store(until.load(Ordering::SeqCst), Ordering::SeqCst);
            None
        });
        first.into_iter().chain(wait).chain(then)
    }

    /// A batched fleet as patient as told.
    fn patient_fleet(pause: Duration, longest: Duration) -> Fleet {
        Fleet {
            patience: Patience { pause, longest },
            ..offline_fleet(2)
        }
    }

    /// Run `work` batched by `fleet` over the records of `first`, a pause
    /// until a batch is done, and those of `then`: the records written, and
    /// whether a batch was done before the input went on.
    fn batched_over_a_pause<S, F>(
        fleet: &Fleet,
        first: Value,
        then: Value,
        work: F,
    ) -> (Vec<Record>, bool)
    where
        S: Default + Send + 'static,
        F: Fn(&mut Host<S>, &mut [Held]) + Sync,
    {
        let worked = Arc::new(AtomicBool::new(false));
        let came = Arc::new(AtomicBool::new(false));
        let input = pausing_input(first, Arc::clone(&worked), Arc::clone(&came), then);
        let out = batched_by(fleet, input, |host: &mut Host<S>, batch: &mut [Held]| {
            work(host, batch);
            worked.store(true, Ordering::SeqCst);
        });
        (out, came.load(Ordering::SeqCst))
    }

    #[test]
    fn a_batched_host_starts_when_the_input_pauses_and_its_later_targets_make_another_batch() {
        let local = |host: &str, venv: &str| json!({"host": host, "venv": venv, "via": "local"});
        let first = json!([local("a", "/v/1"), local("a", "/v/2")]);
        let then = json!([local("b", "/v/3"), local("a", "/v/4")]);
        let work = |host: &mut Host<u32>, batch: &mut [Held]| {
            host.connection().unwrap();
            host.state += 1;
            let venvs: Vec<&str> = batch.iter().map(|h| h.target.venv.as_str()).collect();
            let turn = json!({"with": venvs.join(" "), "turn": host.state});
            for job in batch.iter_mut() {
                job.record.insert("batch".into(), turn.clone());
            }
        };
        let fleet = patient_fleet(Duration::from_millis(50), Duration::from_secs(3600));
        let (out, came) = batched_over_a_pause(&fleet, first, then, work);
        assert!(came, "a's batch waited for the input's end");
        let batches: Vec<&Value> = out.iter().map(|r| field(r, "batch")).collect();
        let a = json!({"with": "/v/1 /v/2", "turn": 1});
        let b = json!({"with": "/v/3", "turn": 1});
        // a's later target: a batch of its own, with the same host (its
        // state, its session) as the first.
        let again = json!({"with": "/v/4", "turn": 2});
        assert_eq!(batches, [&a, &a, &b, &again]);
    }

    #[test]
    fn a_batched_host_waits_no_longer_than_its_longest_for_an_input_that_never_pauses() {
        let first = json!([{"host": "a", "venv": "/v/1"}]);
        let then = json!([{"host": "b", "venv": "/v/2"}]);
        // A pause of an hour never comes: only the longest wait starts a.
        let fleet = patient_fleet(Duration::from_secs(3600), Duration::from_millis(50));
        let (out, came) = batched_over_a_pause(&fleet, first, then, mark_batch);
        assert!(came, "a's batch waited for the input's end");
        let batches: Vec<&Value> = out.iter().map(|r| field(r, "batch")).collect();
        assert_eq!(batches, ["/v/1", "/v/2"]);
    }
}
