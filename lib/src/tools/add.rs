//! `vd-add`: check wheels and add them to the repository.

use crate::cli::{self, RepoArgs, Status};
use crate::output::{status_cell, Output, Table};
use crate::record::{self, Added, Record};
use crate::repo::Repo;
use anyhow::{Context, Result};
use std::ffi::OsString;
use std::io::{self, BufRead, IsTerminal};
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

const TOOL: &str = "vd-add";

/// Wheels per commit: one directory fsync and one release_log write.
const BATCH: usize = 64;

/// Check wheels and add them to the repository.
///
/// Each wheel is read before it is trusted: its filename must follow PEP 427,
/// it must be a zip with a .dist-info folder whose METADATA agrees with the
/// filename on name and version, a WHEEL file must be present, and every file
/// in it must match its hash in RECORD. It is then copied in atomically and a
/// `release` event is appended to the repository's release_log. Adding the same
/// file again changes nothing (status `present`); other content under a
/// filename already in the repository is refused, and so is other content
/// under another filename for the same wheel (same normalized name, version
/// and tags, whatever the build tag: a released version is one set of bytes
/// per tag set). Filenames may hold only letters, digits, `_`, `.`, `+` and
/// `!` in their parts, tags must be in lower case, members must be relative
/// paths inside the wheel and not symbolic links, and the `.dist-info`
/// folder must be the project's own. Only regular files are read
/// (a device or a FIFO is refused unread), and a METADATA larger than 32 MiB or
/// a RECORD larger than 64 MiB, unpacked, is refused.
///
/// Writes one JSON line per wheel: name, version, wheel, sha256 and status
/// (`added` or `present`), or an `error`. Exit status: 0 when every wheel is in
/// the repository, 1 when some wheel was refused, 2 on a usage or setup error
/// (the repository cannot be created, its release_log is malformed).
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    repo: RepoArgs,

    /// Wheel files to add. With none, paths are read from stdin, one per
    /// line (`ls dist/*.whl | vd-add`).
    #[arg(value_name = "WHEEL")]
    wheels: Vec<PathBuf>,
}

static TABLE: Table = Table {
    headers: &["WHEEL", "STATUS"],
    row: |r: &Record| {
        let added: Added = record::read(r).unwrap_or_default();
        vec![
            added.wheel.unwrap_or_default(),
            status_cell(r, || added.status.clone().unwrap_or_default()),
        ]
    },
};

tool!(VdAdd);

fn run(args: Args, out: &mut Output) -> Result<Status> {
    out.counting("wheels");
    let mut adder = Repo::adder(&args.repo.repo)?;
    let paths: Box<dyn Iterator<Item = io::Result<PathBuf>>> = if args.wheels.is_empty() {
        if io::stdin().is_terminal() {
            cli::warn(TOOL, "reading wheel paths from the terminal, one per line (give WHEEL arguments instead)");
        }
        // Paths are bytes, not text: a name that is not UTF-8 is still a
        // path, and never a reason to drop the rest of the batch.
        Box::new(
            io::stdin()
                .lock()
                .split(b'\n')
                .map(|l| l.map(|l| l.trim_ascii().to_vec()))
                .filter(|l| l.as_ref().map_or(true, |l| !l.is_empty()))
                .map(|l| l.map(|l| PathBuf::from(OsString::from_vec(l)))),
        )
    } else {
        Box::new(args.wheels.into_iter().map(Ok))
    };
    // Records wait for the commit that makes their wheels durable and logged;
    // committing in batches keeps fsyncs and log writes few.
    let mut done: Vec<Record> = Vec::new();
    for path in paths {
        let path = match path {
            Ok(path) => path,
            Err(e) => {
                // What was added so far is logged and reported all the same.
                adder.commit()?;
                for record in done.drain(..) {
                    out.write(&record)?;
                }
                return Err(e).context("cannot read wheel paths from stdin");
            }
        };
        let mut record = Record::new();
        let given = Added {
            wheel: Some(path.display().to_string()),
            ..Added::default()
        };
        record::merge(&mut record, &given);
        match adder.add(&path) {
            Ok((checked, added)) => {
                let added = Added {
                    name: Some(checked.filename.name),
                    version: Some(checked.filename.version.to_string()),
                    wheel: Some(checked.filename.file),
                    sha256: Some(checked.sha256),
                    status: Some(added.as_str().to_string()),
                };
                record::merge(&mut record, &added);
            }
            Err(e) => {
                let message = format!("{e:#}");
                cli::target_error(TOOL, &message);
                record::set_error(&mut record, TOOL, &message);
            }
        }
        done.push(record);
        if done.len() >= BATCH {
            adder.commit()?;
            for record in done.drain(..) {
                out.write(&record)?;
            }
        }
    }
    adder.commit()?;
    for record in &done {
        out.write(record)?;
    }
    Ok(Status::Ok)
}
