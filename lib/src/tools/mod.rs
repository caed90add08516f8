//! One module per tool: its command line, its table and its work, as a
//! [`Tool`]; and [`main`], what every tool's binary runs.
//!
//! The clap definitions live here rather than in `tools/*/main.rs` so that
//! the man pages are generated from the same definitions as `--help`.

use crate::cli::{self, OutputArgs};
use crate::output::{Output, Status, Table};
use anyhow::Result;
use clap::{CommandFactory, FromArgMatches, Parser};
use std::process::ExitCode;

/// What makes one of the tools.
pub trait Tool {
    /// The binary's name; its messages on stderr start with it.
    const NAME: &'static str;
    /// The tool's own options and arguments. Their doc comments are
    /// `--help` and the man page; `--json` is added to them.
    type Args: clap::Args + FromArgMatches;
    /// How the tool's records are shown at a terminal.
    const TABLE: &'static Table;
    /// Do the tool's work, writing its records to `out`. The status says
    /// whether something failed that no record carries (a release log that
    /// could not be written); a record with an `error` fails the run anyway.
    fn run(args: Self::Args, out: &mut Output) -> Result<Status>;
}

/// Make the unit struct `$name` the [`Tool`] of the module it is used in,
/// from the module's `TOOL` (the name), `Args`, `TABLE` and `run`: each tool
/// module says `tool!(VdDiff);` instead of spelling the impl out.
macro_rules! tool {
    ($name:ident) => {
        /// The tool, for [`crate::tools::main`].
        pub struct $name;

        impl $crate::tools::Tool for $name {
            const NAME: &'static str = TOOL;
            type Args = Args;
            const TABLE: &'static $crate::output::Table = &TABLE;

            fn run(
                args: Args,
                out: &mut $crate::output::Output,
            ) -> anyhow::Result<$crate::output::Status> {
                run(args, out)
            }
        }
    };
}

pub mod add;
pub mod diff;
pub mod export;
pub mod fetch;
pub mod freeze;
pub mod migrate;
pub mod push;
pub mod reload;
pub mod rollback;
pub mod rollout;
pub mod targets;

// The whole command line: the tool's own, then what every tool takes. No
// doc comment here: the tool's is the command's --help.
#[derive(Parser)]
#[command(version)]
struct CommandLine<A: clap::Args> {
    #[command(flatten)]
    tool: A,

    #[command(flatten)]
    output: OutputArgs,
}

/// The tool's command-line definition, named after the tool.
pub fn command<T: Tool>() -> clap::Command {
    CommandLine::<T::Args>::command().name(T::NAME)
}

/// A tool's `main`: parse the command line, run the tool, write its records
/// (JSON lines, or a table at a terminal) and turn the outcome into the exit
/// status.
pub fn main<T: Tool>() -> ExitCode {
    let mut cmd = command::<T>();
    let mut matches = cmd.get_matches_mut();
    let line = CommandLine::<T::Args>::from_arg_matches_mut(&mut matches)
        .unwrap_or_else(|e| e.format(&mut cmd).exit());
    crate::console::init(T::NAME, line.output.quiet);
    cli::run(T::NAME, || {
        let mut out = Output::new(line.output.json, T::TABLE);
        let status = T::run(line.tool, &mut out)?;
        Ok(status.or(out.finish()?))
    })
}

/// Every tool's command definition, for generating man pages.
pub fn commands() -> Vec<clap::Command> {
    vec![
        command::<add::VdAdd>(),
        command::<targets::VdTargets>(),
        command::<freeze::VdFreeze>(),
        command::<diff::VdDiff>(),
        command::<export::VdExport>(),
        command::<fetch::VdFetch>(),
        command::<push::VdPush>(),
        command::<migrate::VdMigrate>(),
        command::<reload::VdReload>(),
        command::<rollback::VdRollback>(),
        command::<rollout::VdRollout>(),
    ]
}
