//! `vd-freeze`: what is installed in each target's virtualenv, and what
//! interpreter it runs.

use crate::cli::{Status, TransportArgs};
use crate::fleet::{set_target_error, Held, Host};
use crate::output::{status_cell, Output, Table};
use crate::record::{self, target_label, Frozen, Installed, Python, Reader, Record};
use crate::remote;
use crate::remote::freeze::{self, FreezeOutput, Installed as Listed};
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
            Ok(Some(installed)) => installed.0.len().to_string(),
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
/// answer for (or cannot take, see [`freeze::batchable`]).
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
    let asks: Vec<(String, String, Option<String>)> = batch
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
    let mut answers: Vec<Option<Result<Finished>>> = batch.iter().map(|_| None).collect();
    for (run_as, indexes) in by_user {
        let token = freeze::batch_token();
        let command = remote::as_user(run_as, &freeze::batch_command(&token));
        let stdin = freeze::batch_stdin(
            indexes
                .iter()
                .map(|&i| (asks[i].0.as_str(), asks[i].1.as_str())),
        );
        let finished = host
            .connection()
            .and_then(|connection| connection.run(&command, &stdin));
        match finished {
            Ok(finished) => {
                if let Some(message) = remote::sudo_refusal(&finished, run_as) {
                    for &i in &indexes {
                        answers[i] = Some(Err(anyhow!("{message}")));
                    }
                    continue;
                }
                let read = freeze::read_batch(&finished.stdout, &token, indexes.len());
                for (&i, answer) in indexes.iter().zip(read) {
                    answers[i] = answer.map(Ok);
                }
            }
            Err(e) => {
                let message = format!("{e:#}");
                for &i in &indexes {
                    answers[i] = Some(Err(anyhow!("{message}")));
                }
            }
        }
    }
    for ((job, answer), (venv, python, run_as)) in batch.iter_mut().zip(answers).zip(&asks) {
        let finished = match answer {
            Some(answer) => answer,
            None => freeze_alone(host, venv, python, run_as.as_deref()),
        };
        let outcome = finished.and_then(|finished| frozen(&finished, venv, run_as.as_deref()));
        match outcome {
            Ok(frozen) => record::merge(&mut job.record, &frozen),
            Err(e) => set_target_error(TOOL, &mut job.record, &format!("{e:#}")),
        }
    }
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
        Listed::Listed(installed) => (Installed::from_names(installed)?, true),
        _ => (Installed::default(), false),
    };
    Ok(Frozen {
        python: facts.python,
        markers: facts.markers,
        installed,
        venv_exists: exists,
    })
}
