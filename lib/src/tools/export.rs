//! `vd-export`: write what each target holds as a standard document, a PEP
//! 751 lock or a CycloneDX SBOM, one file per target.

use crate::cli::RepoArgs;
use crate::console;
use crate::export::{self, FileNames, Format};
use crate::messages;
use crate::output::{status_cell, Output, Status, Table};
use crate::record::{self, target_label, Exported, Markers, Reader, Record, Target, Unexported};
use crate::repo::{Index, Repo};
use crate::tags::{Interpreter, Tags};
use anyhow::{anyhow, bail, Context, Result};
use std::collections::HashMap;
use std::io::{self, IsTerminal};
use std::path::{Path, PathBuf};
use std::rc::Rc;

const TOOL: &str = "vd-export";

/// Write each target's installed set as a pylock.toml or a CycloneDX SBOM.
///
/// Reads target records from vd-freeze (their `python`, `markers` and
/// `installed` fields) and writes, for each, one file into --out: what its
/// venv holds, each distribution with the repository's wheel of exactly
/// its installed version that the target's interpreter installs (by its
/// tags, as vd-diff chooses) and that wheel's sha256.
///
/// --format pylock writes a PEP 751 lock (lock-version 1.0, created-by vd):
/// each package with its version and its wheel, by absolute path into the
/// repository, with its sha256; `uv pip sync` or `pip install -r` of the
/// file rebuilds the set from the repository. --format cyclonedx writes a
/// CycloneDX 1.5 JSON SBOM: a library component per distribution with the
/// package URL pkg:pypi/NAME@VERSION and the SHA-256 of its wheel, and the
/// host, venv, user, port and interpreter as the metadata's properties.
/// A distribution the repository has no wheel of is written without one
/// (and without a hash), named in the record's `unexported` and in a
/// warning.
///
/// Files are named after the target: pylock.STEM.toml or STEM.cdx.json,
/// where STEM is USER@HOST-PORT_VENV-PATH (user and port where the record
/// names them) with the venv's slashes as dashes, and every character but
/// letters, digits, `@`, `_` and `-` as `_` (PEP 751 allows no dot in
/// STEM): web1_srv-shop-venv for web1:/srv/shop/venv. No name leaves --out
/// or starts with a dot. When two targets of one run would share a name,
/// the second's gets a digest of its user, host, port and venv added; the
/// same target twice is an error for its second record. A file is written
/// whole (a new file renamed over the old one).
///
/// Adds to each record `exported`: the path of its file. Records that
/// already carry an error pass through untouched; a target without
/// `installed` or `python` (run vd-freeze first) gets an error, and the
/// others go on. Exit status: 0 when every target's file was written, 1
/// when some record carries an error, 2 on a usage or setup error (no
/// repository, an --out that cannot be made).
#[derive(clap::Args, Debug)]
pub struct Args {
    /// What to write: a PEP 751 lock (pylock) or a CycloneDX JSON SBOM
    /// (cyclonedx).
    #[arg(long, value_enum)]
    format: FormatArg,

    /// The folder the files go into (created if missing).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,

    #[command(flatten)]
    repo: RepoArgs,
}

/// `--format`'s values.
#[derive(clap::ValueEnum, Debug, Clone, Copy)]
enum FormatArg {
    /// A PEP 751 pylock.toml.
    Pylock,
    /// A CycloneDX 1.5 JSON SBOM.
    Cyclonedx,
}

static TABLE: Table = Table {
    headers: &["TARGET", "FILE", "STATUS"],
    row: |r: &Record| {
        let file = match record::get::<Exported>(r) {
            Ok(Some(Exported(path))) => path,
            _ => String::new(),
        };
        vec![target_label(r), file, status_cell(r, || unexported_cell(r))]
    },
};

fn unexported_cell(record: &Record) -> String {
    match record::get::<Unexported>(record) {
        Ok(Some(Unexported(names))) if !names.is_empty() => {
            format!("ok; no wheel in the repository: {}", names.join(", "))
        }
        _ => "ok".to_string(),
    }
}

tool!(VdExport);

fn run(args: Args, out: &mut Output) -> Result<Status> {
    let repo = Repo::open(&args.repo.repo)?;
    let index = repo.index()?;
    let repo_dir = repo
        .dir()
        .canonicalize()
        .with_context(|| format!("cannot resolve {}", repo.dir().display()))?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot make --out {}", args.out.display()))?;
    let mut export = Export {
        format: match args.format {
            FormatArg::Pylock => Format::Pylock,
            FormatArg::Cyclonedx => Format::CycloneDx,
        },
        out: args.out,
        index: &index,
        repo_dir: &repo_dir,
        names: FileNames::default(),
        tags: HashMap::new(),
    };
    if io::stdin().is_terminal() {
        messages::warn(
            TOOL,
            "reading target records from the terminal (pipe vd-freeze into vd-export)",
        );
    }
    for line in Reader::new(io::BufReader::new(io::stdin()), TOOL) {
        console::read(Some(()));
        let mut record = line.record;
        if record::error_of(&record).is_none() {
            export.write_record(&mut record);
        }
        out.write(&record)?;
    }
    console::read(None);
    Ok(Status::Ok)
}

/// One run's settings, and the file names it gave.
struct Export<'a> {
    format: Format,
    out: PathBuf,
    index: &'a Index,
    repo_dir: &'a Path,
    names: FileNames,
    /// Tags per distinct interpreter: a fleet has few kinds of them.
    tags: HashMap<Interpreter, Rc<Tags>>,
}

impl Export<'_> {
    /// Write the target's file and say so in its record, or put the
    /// reason it could not be written there.
    fn write_record(&mut self, record: &mut Record) {
        match self.export(record) {
            Ok((path, unexported)) => {
                record::put(record, &Exported(path.display().to_string()));
                if unexported.is_empty() {
                    record::remove::<Unexported>(record);
                } else {
                    messages::warn(
                        TOOL,
                        &format!(
                            "{}: the repository has no wheel of {}; written without wheel or hash",
                            target_label(record),
                            unexported.join(", ")
                        ),
                    );
                    record::put(record, &Unexported(unexported));
                }
            }
            Err(e) => {
                let message = format!("{e:#}");
                messages::target_error(TOOL, &format!("{}: {message}", target_label(record)));
                record::set_error(record, TOOL, &message);
            }
        }
    }

    /// The target's file, written; with the distributions written without
    /// a wheel.
    fn export(&mut self, record: &Record) -> Result<(PathBuf, Vec<String>)> {
        let target = Target::parse(record)?;
        let python = target.facts()?;
        if !record::has::<record::Installed>(record) {
            bail!("missing field `installed` (run vd-freeze first)");
        }
        let installed = record::installed(record)?;
        let env = record::get::<Markers>(record)?
            .ok_or_else(|| anyhow!("missing field `markers` (run vd-freeze first)"))?
            .environment()?;
        let interpreter = Interpreter::from_facts(python, env.platform_system())?;
        let tags = self
            .tags
            .entry(interpreter)
            .or_insert_with_key(|i| Rc::new(Tags::new(i)))
            .clone();
        let holdings = export::holdings(self.index, self.repo_dir, &tags, &installed)?;
        let text = match self.format {
            Format::Pylock => export::pylock(&holdings)?,
            Format::CycloneDx => export::cyclonedx(&holdings, &target, python)?,
        };
        let name = self.names.claim(&target, self.format)?;
        let path = export::write_file(&self.out, &name, &text)?;
        let unexported = holdings
            .iter()
            .filter(|h| h.wheel.is_none())
            .map(|h| format!("{} {}", h.name, h.version))
            .collect();
        Ok((path, unexported))
    }
}
