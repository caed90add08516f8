//! The command line's edge: the options several tools share (clap structs
//! that the domain modules never see; they get plain settings, such as
//! [`crate::transport::Reach`]), and what every tool does around its own
//! work: report errors and exit.
//!
//! Exit 0 means every target is fine, 1 that some target failed (its record
//! carries an `error`), 2 a usage or setup error that stopped the tool. Errors
//! print once, to stderr, with the tool's name and the whole context chain. A
//! closed stdout is the reader's choice (`| head`), not a failure: quiet exit 0.

use crate::fleet::Fleet;
use crate::messages;
use crate::output::Status;
use crate::transport;
use clap::Args;
use std::io;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

// The options every tool takes, whatever it does: how it writes records and
// how much it says on stderr. A new tool gets them by being a `Tool` (a
// plain comment: a doc comment here would become every tool's --help, as
// this struct is flattened after the tool's own options).
#[derive(Args, Debug, Clone)]
pub struct OutputArgs {
    /// Write JSON lines even when stdout is a terminal (piped output always is).
    #[arg(long)]
    pub json: bool,

    /// Write nothing on stderr but errors: no progress bar, no summary line,
    /// no warnings. Without it, at a terminal, the last tool of a pipeline
    /// shows a progress bar on stderr and ends with a summary line.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

/// The option every tool that reads the repository takes.
#[derive(Args, Debug, Clone)]
pub struct RepoArgs {
    /// The repository: a directory of wheels with its `release_log`.
    #[arg(long, value_name = "DIR", env = "VD_REPO", default_value = "wheels")]
    pub repo: PathBuf,
}

/// How the remote tools reach their targets.
#[derive(Args, Debug, Clone)]
pub struct TransportArgs {
    /// Work on up to N hosts at once. The targets of one host share one SSH
    /// session and run one after another.
    #[arg(long, short = 'j', value_name = "N", env = "VD_JOBS", default_value_t = 8,
          value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub jobs: u32,

    /// Give up on a host whose name does not resolve, or that does not
    /// connect, greet or log in, within SECS seconds; also the keepalive
    /// interval while a command runs: a host that sends nothing, not even a
    /// reply to a keepalive, for three intervals is given up (a command that
    /// runs long on a host that answers is not).
    #[arg(long, value_name = "SECS", env = "VD_TIMEOUT", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub timeout: u64,

    /// Check host keys against FILE only, and record new ones there, instead
    /// of ~/.ssh/known_hosts (and /etc/ssh/ssh_known_hosts).
    #[arg(long, value_name = "FILE", env = "VD_KNOWN_HOSTS")]
    pub known_hosts: Option<PathBuf>,

    /// Connect to hosts whose key is not yet known, and record their key.
    /// A key that differs from the one on file is refused all the same.
    #[arg(long)]
    pub accept_new: bool,
}

impl TransportArgs {
    /// The hosts, reached as these options say.
    pub fn fleet(&self, tool: &'static str) -> anyhow::Result<Fleet> {
        let reach = transport::Reach {
            timeout: Duration::from_secs(self.timeout),
            known_hosts: self.known_hosts.clone(),
            accept_new: self.accept_new,
        };
        Fleet::new(tool, self.jobs, &reach)
    }
}

/// The options of the tools after vd-push that log to the repository
/// (vd-migrate, vd-reload): the repository, and which records they act on.
#[derive(Args, Debug, Clone)]
pub struct AfterPushArgs {
    #[command(flatten)]
    pub repo: RepoArgs,

    #[command(flatten)]
    pub changed: ChangedArgs,
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
        Ok(Status::Exit(code)) => ExitCode::from(code),
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            messages::error(tool, &format!("{e:#}"));
            ExitCode::from(2)
        }
    }
}

fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    })
}
