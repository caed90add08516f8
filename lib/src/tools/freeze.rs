//! `vd-freeze`: what is installed in each target's virtualenv, and what
//! interpreter it runs.

use crate::cli::{Status, TransportArgs};
use crate::fleet::Host;
use crate::output::{status_cell, Output, Table};
use crate::record::{self, target_label, Frozen, Installed, Python, Reader, Record, Target};
use crate::remote;
use crate::remote::freeze::{self, FreezeOutput, Installed as Listed};
use anyhow::{bail, Result};
use std::io;

const TOOL: &str = "vd-freeze";

/// Record what is installed in each target's virtualenv.
///
/// Reads target records (from vd-targets) on stdin. For each target, one
/// command runs VENV/bin/python on the target's host with a small script, sent
/// on stdin, that reads the interpreter's own metadata (pip is not needed and
/// not imported). It adds to the record: `python`, the interpreter
/// (implementation, version, ABI, platform, machine, libc); `markers`, its PEP
/// 508 environment; `installed`, every distribution as {normalized name:
/// version}; and `venv_exists`. A venv path that does not exist gives
/// `venv_exists: false`, an empty `installed` and the facts of the host's
/// `python` (the record's field, default python3), so a later step can create
/// the venv; a path that exists but is not a virtualenv is an error. With
/// `venv_user`, the command runs through `sudo -n -u USER`.
///
/// The targets of one host share one SSH session; hosts run in parallel.
/// Records are written in input order, each as soon as it and those before it
/// are done. Host keys must be in known_hosts (see --accept-new). Records that
/// carry an `error` pass through untouched.
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
    args.transport.fleet(TOOL)?.run(stdin, out, freeze_target)?;
    Ok(Status::Ok)
}

/// Freeze one target: run the freeze, read what came back, add the fields.
fn freeze_target(host: &mut Host<()>, target: &Target, record: &mut Record) -> Result<()> {
    let venv = &target.venv;
    let python = target.python_for_new_venv();
    let connection = host.connection()?;
    let run_as = target.run_as(connection.user());
    let command = remote::as_user(run_as, &freeze::freeze_command(venv, &python));
    let finished = connection.run(&command, freeze::FREEZE_SCRIPT.as_bytes())?;
    if let Some(message) = remote::sudo_refusal(&finished, run_as) {
        bail!(message);
    }
    let facts = FreezeOutput::read(&finished, venv)?;
    let (installed, exists) = match &facts.installed {
        Listed::Listed(installed) => (Installed::from_names(installed)?, true),
        _ => (Installed::default(), false),
    };
    record::merge(
        record,
        &Frozen {
            python: facts.python,
            markers: facts.markers,
            installed,
            venv_exists: exists,
        },
    );
    Ok(())
}
