//! `vd-freeze`: what is installed in each target's virtualenv, and what
//! interpreter it runs.

use crate::cli::TransportArgs;
use crate::fleet::{set_target_error, Held, Host};
use crate::messages;
use crate::output::{status_cell, Output, Status, Table};
use crate::record::{self, target_label, Frozen, Installed, Python, Reader, Record};
use crate::remote;
use crate::remote::freeze::{self, FreezeOutput, Listing};
use crate::remote::running::{self, Scan};
use crate::transport::Finished;
use anyhow::{anyhow, bail, Result};
use std::collections::BTreeMap;
use std::io;

const TOOL: &str = "vd-freeze";

/// Record what is installed in each target's virtualenv.
///
/// Reads target records (from vd-targets) on stdin. It adds to each record:
/// `python`, the interpreter (implementation, version, ABI flags, platform,
/// machine, libc); `markers`, its PEP 508 environment; `installed`, every
/// distribution as {normalized name: version}, read from the distributions'
/// metadata files on the venv's sys.path as pip finds them (pip is not needed
/// and not imported); and `venv_exists`. A venv path that does not exist gives
/// `venv_exists: false`, an empty `installed` and the facts of the host's
/// `python` (the record's field, default python3), so a later step can create
/// the venv; a path that exists but is not a virtualenv is an error. With
/// `venv_user`, the command runs through `sudo -n -u USER`.
///
/// Each record also gets `running`: the processes that run from the venv,
/// each {pid, generation, command, started} (started: RFC 3339 UTC), with
/// `stale: true` where it runs other code than the venv holds now: for a
/// target with generations, another generation than the active one (each
/// generation marks the processes that start in it with a descriptor on
/// its .vd-running, which forked workers inherit); for a venv changed in
/// place (generation null), a process started before its site-packages
/// last changed. A process runs from a venv when one of its open files,
/// its executable, the first word of its command line or a file it maps
/// lies inside it. The scan reads Linux's /proc as the user the freeze runs
/// as; processes it may not read are counted by user in `running_unseen`,
/// and on a host without /proc/PID/fd it says so there and on stderr
/// (`man 7 vd`, WHAT RUNS). It runs within the same command as the freeze.
///
/// All the targets of a host that are read as one user are read by one
/// command, with the list of venvs on its stdin: it starts one Python process
/// per distinct interpreter behind the venvs' bin/python, not one per venv,
/// which reads that interpreter's facts once and each venv's distributions
/// from its site-packages (and the directories its .pth files add), as the
/// venv's own python would see them. A venv that cannot be read that way
/// exactly (no pyvenv.cfg, system site-packages, Python 2, a --copies venv, a
/// .pth file that runs code) is read by its own bin/python within the same
/// command, and one that the command did not answer for, by a command of its
/// own. The script runs unchanged on CPython 2.7 and 3.6 to 3.13.
///
/// The targets of one host share one SSH session; hosts run in parallel. A
/// host starts once the input has ended, has paused for half a second, or
/// 256 records wait, so that input that comes at once puts each host's
/// targets in one command, and input from a slow producer (a script, a
/// FIFO) is frozen and written as it comes; no target waits more than 5
/// seconds for its host to start. A host's targets that come after its
/// command started go in another command, over the same session. Records
/// are written in input order, each as soon as it and those before it are
/// done. Host keys must be in known_hosts
/// (see --accept-new). Records that carry an `error` pass through untouched.
///
/// Exit status: 0 when every target was frozen, 1 when some record carries an
/// error, 2 on a usage or setup error.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    transport: TransportArgs,
}

static TABLE: Table = Table {
    headers: &["TARGET", "PYTHON", "PACKAGES", "STATUS"],
    row: |r: &Record| {
        let python = match record::get::<Python>(r) {
            Ok(Some(Python::Facts(facts))) => facts.version.unwrap_or_default(),
            _ => String::new(),
        };
        let packages = match record::get::<Installed>(r) {
            Ok(Some(installed)) => installed.len().to_string(),
            _ => String::new(),
        };
        vec![
            target_label(r),
            python,
            packages,
            status_cell(r, || match record::venv_exists(r) {
                false => "no venv yet".to_string(),
                true => "ok".to_string(),
            }),
        ]
    },
};

tool!(VdFreeze);

fn run(args: Args, out: &mut Output) -> Result<Status> {
    let stdin = Reader::new(io::BufReader::new(io::stdin()), TOOL);
    args.transport
        .fleet(TOOL)?
        .run_batched(stdin, out, freeze_batch)?;
    Ok(Status::Ok)
}

/// Freeze a batch of one host's targets: one command per user the venvs
/// are read as, and a command of its own for each venv that command did not
/// answer for (or cannot take, see [`freeze::batchable`]). The same
/// commands read what runs from the venvs ([`running`]).
fn freeze_batch(host: &mut Host<()>, batch: &mut [Held]) {
    let login = match host.connection() {
        Ok(connection) => connection.user().to_string(),
        Err(e) => {
            for job in batch.iter_mut() {
                set_target_error(TOOL, &mut job.record, &format!("{e:#}"));
            }
            return;
        }
    };
    // (venv, python for a new venv, run as), per target.
    let asks: Vec<Ask> = batch
        .iter()
        .map(|job| {
            let python = job
                .target
                .python_for_new_venv(record::venv_exists(&job.record));
            let run_as = job.target.run_as(&login).map(str::to_string);
            (job.target.venv.clone(), python, run_as)
        })
        .collect();
    let mut by_user: BTreeMap<Option<&str>, Vec<usize>> = BTreeMap::new();
    for (i, (venv, python, run_as)) in asks.iter().enumerate() {
        if freeze::batchable(venv, python) {
            by_user.entry(run_as.as_deref()).or_default().push(i);
        }
    }
    let mut answers: Vec<Answer> = batch.iter().map(|_| Answer::default()).collect();
    for (run_as, indexes) in by_user {
        let group = freeze_group(host, run_as, &indexes, &asks);
        for (i, answer) in indexes.into_iter().zip(group) {
            answers[i] = answer;
        }
    }
    for ((job, answer), (venv, python, run_as)) in batch.iter_mut().zip(answers).zip(&asks) {
        let finished = match answer.freeze {
            Some(freeze) => freeze,
            None => freeze_alone(host, venv, python, run_as.as_deref()),
        };
        let outcome = finished.and_then(|finished| frozen(&finished, venv, run_as.as_deref()));
        match outcome {
            Ok(frozen) => record::merge(&mut job.record, &frozen),
            Err(e) => {
                set_target_error(TOOL, &mut job.record, &format!("{e:#}"));
                continue;
            }
        }
        if scanning() {
            let scan = match answer.scan {
                Some(scan) => scan,
                None => host
                    .connection()
                    .and_then(|connection| running::scan(connection, &job.target)),
            };
            put_scan(&mut job.record, scan);
        }
    }
}

/// A target's venv, the python a new venv would get, and the user it is
/// read as.
type Ask = (String, String, Option<String>);

/// What a group's command answered for one venv.
#[derive(Default)]
struct Answer {
    /// Its freeze; `None`: freeze it on its own.
    freeze: Option<Result<Finished>>,
    /// What runs from it; `None`: scan it on its own.
    scan: Option<Result<Scan>>,
}

/// Whether vd-freeze reads what runs from the venvs. Only the benchmark
/// turns it off (`VD_BENCH_NO_SCAN=1`), to weigh the scan's cost against
/// the same run without it.
fn scanning() -> bool {
    std::env::var_os("VD_BENCH_NO_SCAN").is_none_or(|v| v.is_empty())
}

/// Freeze and scan the venvs `indexes` of `asks`, read as `run_as`, with
/// one command: what it answered for each, in order.
fn freeze_group(
    host: &mut Host<()>,
    run_as: Option<&str>,
    indexes: &[usize],
    asks: &[Ask],
) -> Vec<Answer> {
    let token = freeze::batch_token();
    let command = remote::as_user(run_as, &freeze::batch_command(&token, scanning()));
    let stdin = freeze::batch_stdin(
        indexes
            .iter()
            .map(|&i| (asks[i].0.as_str(), asks[i].1.as_str())),
    );
    let failed = |message: String| {
        let answer = |_| Answer {
            freeze: Some(Err(anyhow!("{message}"))),
            scan: None,
        };
        indexes.iter().map(answer).collect()
    };
    let finished = match host
        .connection()
        .and_then(|connection| connection.run(&command, &stdin))
    {
        Ok(finished) => finished,
        Err(e) => return failed(format!("{e:#}")),
    };
    if let Some(message) = remote::sudo_refusal(&finished, run_as) {
        return failed(message);
    }
    let mut scans: Vec<Option<Result<Scan>>> =
        match freeze::read_batch_scan(&finished.stdout, &token) {
            Some(scan) => match running::scans_of(&scan, run_as, indexes.len()) {
                Ok(scans) => scans.into_iter().map(|s| Some(Ok(s))).collect(),
                Err(e) => {
                    let message = format!("{e:#}");
                    indexes
                        .iter()
                        .map(|_| Some(Err(anyhow!("{message}"))))
                        .collect()
                }
            },
            None => indexes.iter().map(|_| None).collect(),
        };
    freeze::read_batch(&finished.stdout, &token, indexes.len())
        .into_iter()
        .zip(scans.iter_mut())
        .map(|(freeze, scan)| Answer {
            freeze: freeze.map(Ok),
            scan: scan.take(),
        })
        .collect()
}

/// Write what runs from a target's venv into its record; a scan that
/// failed, or a host that cannot be scanned, is said on stderr and in
/// `running_unseen`, and the freeze stands.
fn put_scan(record: &mut Record, scan: Result<Scan>) {
    let scan = scan
        .unwrap_or_else(|e| Scan::unseen(format!("the scan of running processes failed: {e:#}")));
    if let Some(reason) = &scan.unseen.reason {
        messages::warn(TOOL, &format!("{}: {reason}", target_label(record)));
    }
    scan.put(record);
}

/// Freeze one venv with a command of its own.
fn freeze_alone(
    host: &mut Host<()>,
    venv: &str,
    python: &str,
    run_as: Option<&str>,
) -> Result<Finished> {
    let command = remote::as_user(run_as, &freeze::freeze_command(venv, python));
    host.connection()?
        .run(&command, freeze::FREEZE_SCRIPT.as_bytes())
}

/// The fields a venv's freeze adds to its record, from what the freeze
/// command ended with.
fn frozen(finished: &Finished, venv: &str, run_as: Option<&str>) -> Result<Frozen> {
    if let Some(message) = remote::sudo_refusal(finished, run_as) {
        bail!(message);
    }
    let facts = FreezeOutput::read(finished, venv)?;
    let (installed, exists) = match &facts.installed {
        Listing::Listed(installed) => (installed.clone(), true),
        _ => (Installed::default(), false),
    };
    Ok(Frozen {
        python: facts.python,
        markers: facts.markers,
        installed,
        venv_exists: exists,
    })
}
