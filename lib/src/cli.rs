//! What every tool does around its own work: report errors and exit.
//!
//! Exit 0 means every target is fine, 1 that some target failed (its record
//! carries an `error`), 2 a usage or setup error that stopped the tool. Errors
//! print once, to stderr, with the tool's name and the whole context chain. A
//! closed stdout is the reader's choice (`| head`), not a failure: quiet exit 0.

use clap::Args;
use std::io::{self, Write};
use std::process::ExitCode;

/// How a tool's run ended when it did not stop on a setup error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    TargetFailed,
}

/// The output option every record-writing tool takes.
#[derive(Args, Debug, Clone)]
pub struct OutputArgs {
    /// Write JSON lines even when stdout is a terminal (piped output always is).
    #[arg(long)]
    pub json: bool,
}

/// Which records the tools after vd-push act on: the ones it changed.
#[derive(Args, Debug, Clone)]
pub struct ChangedArgs {
    /// Act on every record that carries no error, whether it changed or not
    /// (by default only on records with `changed: true`).
    #[arg(long)]
    pub always: bool,
}

impl ChangedArgs {
    /// Whether to act on `record` (one that carries no error); a `changed`
    /// that is not true or false is an error naming the field.
    pub fn selects(&self, record: &crate::record::Record) -> anyhow::Result<bool> {
        use crate::record::{get, Changed};
        Ok(self.always || get::<Changed>(record)?.is_some_and(|Changed(c)| c))
    }
}

/// Run a tool's body and turn its result into the exit code.
pub fn run(tool: &str, body: impl FnOnce() -> anyhow::Result<Status>) -> ExitCode {
    match body() {
        Ok(Status::Ok) => ExitCode::SUCCESS,
        Ok(Status::TargetFailed) => ExitCode::from(1),
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(io::stderr(), "{tool}: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// A warning or progress line on stderr, prefixed with the tool's name.
pub fn warn(tool: &str, message: &str) {
    let _ = writeln!(io::stderr(), "{tool}: {message}");
}

fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    })
}
