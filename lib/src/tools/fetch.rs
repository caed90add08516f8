//! `vd-fetch`: download, on a machine that reaches a package index, the
//! wheels a fleet's interpreters need, to carry into its network.

use crate::console;
use crate::fetch::{self, Fetched, Group, Settings, Source};
use crate::messages;
use crate::output::{status_cell, Output, Status, Table};
use crate::record::{self, target_label, Reader, Record};
use crate::repo::Repo;
use crate::requirement::{Origin, Requirement};
use crate::summary;
use anyhow::{bail, Result};
use std::collections::BTreeMap;
use std::io::{self, IsTerminal};
use std::path::PathBuf;

const TOOL: &str = "vd-fetch";

/// Download the wheels every interpreter of a fleet needs.
///
/// Reads target records on stdin: a saved vd-freeze of a fleet that has no
/// route to the package index, carried to a machine that has one. Targets
/// whose interpreters agree on their compatibility tags (as vd-diff computes
/// them from `python`), their `markers` (but platform_release and
/// platform_version, the kernel's, which differ from host to host: the
/// group's first target's apply) and their Python version (Requires-Python)
/// form one group, and for each group vd-fetch downloads
/// into DEST the wheels that resolving REQS needs: the requirements and
/// their whole closure, one wheel per project, the one pip would install on
/// that interpreter.
///
/// The download is pip's own `pip download --only-binary=:all:` with the
/// group's --python-version, --implementation, --abi and --platform options,
/// run by the pip of --pip, with the group's markers in place of those of
/// the Python that runs it. Index options are pip's: --index-url,
/// --extra-index-url and --find-links are passed on, and pip.conf and PIP_*
/// variables apply as they do to pip. A wheel that DEST holds (from another
/// group, or an earlier run) is not downloaded again, and with --repo
/// neither is one the repository holds (same filename and sha256); each
/// group downloads into a folder of its own under DEST first, so a group
/// that fails leaves nothing half-done.
///
/// Writes each record with `fetched`: the wheels of its group's closure, as
/// {wheel, sha256, size, source}, where source is `downloaded` (by this run,
/// for this target's group first), `dest` (already in DEST) or `repository`.
/// A target whose group cannot be resolved gets an `error`: a requirement
/// with no wheel for its interpreter is named with the platforms the index
/// has wheels of it for; a project with only source distributions is named
/// with the `pip wheel` command to build one. The other groups go on.
/// Records that already carry an error pass through untouched. Then add the
/// wheels to the repository inside the network: `vd-add --repo R DEST/*.whl`.
///
/// Exit status: 0 when every target's wheels are in DEST or the repository,
/// 1 when some record carries an error, 2 on a usage or setup error.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Where the wheels are downloaded (created if missing).
    #[arg(long, value_name = "DIR")]
    dest: PathBuf,

    /// A repository whose wheels are not fetched again.
    #[arg(long, value_name = "DIR", env = "VD_REPO")]
    repo: Option<PathBuf>,

    /// The Python whose pip downloads (its `pip` module, pip 20 or newer); by
    /// default the first python3 on PATH.
    #[arg(long, value_name = "PYTHON", default_value = "python3")]
    pip: String,

    /// A requirements file, as pip reads it (-r); may be given more than once.
    #[arg(long, short = 'r', value_name = "FILE")]
    requirement: Vec<PathBuf>,

    /// The package index, passed to pip.
    #[arg(long, value_name = "URL")]
    index_url: Option<String>,

    /// Another package index, passed to pip; may be given more than once.
    #[arg(long, value_name = "URL")]
    extra_index_url: Vec<String>,

    /// A folder or page of wheels, passed to pip; may be given more than once.
    #[arg(long, value_name = "URL_OR_DIR")]
    find_links: Vec<String>,

    /// Requirements (`django>=5`, `pillow`) that apply to every target.
    #[arg(value_name = "REQS", required_unless_present = "requirement")]
    requirements: Vec<String>,
}

static TABLE: Table = Table {
    headers: &["TARGET", "WHEELS", "DOWNLOADED", "STATUS"],
    row: |r: &Record| {
        let (wheels, downloaded) = match record::get::<Fetched>(r) {
            Ok(Some(Fetched(wheels))) => {
                let downloaded = wheels
                    .iter()
                    .filter(|w| w.source == Source::Downloaded)
                    .count();
                (wheels.len().to_string(), downloaded.to_string())
            }
            _ => (String::new(), String::new()),
        };
        vec![
            target_label(r),
            wheels,
            downloaded,
            status_cell(r, || "ok".to_string()),
        ]
    },
};

tool!(VdFetch);

fn run(args: Args, out: &mut Output) -> Result<Status> {
    let settings = settings(args)?;
    if io::stdin().is_terminal() {
        messages::warn(
            TOOL,
            "reading target records from the terminal (pipe a saved vd-freeze into vd-fetch)",
        );
    }
    // Every record is read first: a group is fetched once for all its
    // targets, wherever they are in the input.
    let mut records: Vec<Record> = Vec::new();
    // Each group's targets, by the group's key, in order of appearance.
    let mut groups: BTreeMap<String, usize> = BTreeMap::new();
    let mut order: Vec<(Group, Vec<usize>)> = Vec::new();
    for line in Reader::new(io::BufReader::new(io::stdin()), TOOL) {
        console::read(Some(()));
        let mut record = line.record;
        if record::error_of(&record).is_none() {
            match Group::of(&record) {
                Ok(group) => {
                    let n = *groups.entry(group.key()).or_insert(order.len());
                    if n == order.len() {
                        order.push((group, Vec::new()));
                    }
                    order[n].1.push(records.len());
                }
                Err(e) => fail(&mut record, &format!("{e:#}")),
            }
        }
        records.push(record);
    }
    console::read(None);
    let mut tally = Tally::default();
    for (group, targets) in &order {
        let first = &records[targets[0]];
        let doing = console::doing(&format!("pip download {}", group.describe()), first);
        let outcome = fetch::fetch_group(&settings, group);
        drop(doing);
        if let Ok(fetched) = &outcome {
            tally.count(fetched);
        }
        for &i in targets {
            match &outcome {
                Ok(fetched) => record::put(&mut records[i], fetched),
                Err(e) => fail(&mut records[i], &format!("{e:#}")),
            }
        }
    }
    for record in &records {
        out.write(record)?;
    }
    tally.report(&settings, order.len());
    Ok(Status::Ok)
}

/// The domain's settings from the command line. Bad requirements, a pip
/// that cannot run and a DEST that cannot be made stop the run (status 2)
/// before anything is downloaded.
fn settings(args: Args) -> Result<Settings> {
    let mut requirements = Vec::new();
    for text in &args.requirements {
        let origin = Origin::Field {
            name: "REQS".to_string(),
        };
        Requirement::parse(text, origin)?;
        requirements.push(text.clone());
    }
    for file in &args.requirement {
        if !file.is_file() {
            bail!("requirements file {} does not exist", file.display());
        }
        requirements.push("-r".to_string());
        requirements.push(file.display().to_string());
    }
    if let Some(repo) = &args.repo {
        Repo::open(repo)?;
    }
    fetch::check_pip(&args.pip)?;
    fetch::prepare_dest(&args.dest)?;
    let mut index = Vec::new();
    if let Some(url) = args.index_url {
        index.extend(["--index-url".to_string(), url]);
    }
    for url in args.extra_index_url {
        index.extend(["--extra-index-url".to_string(), url]);
    }
    for place in args.find_links {
        index.extend(["--find-links".to_string(), place]);
    }
    Ok(Settings {
        python: args.pip,
        dest: args.dest,
        repo: args.repo,
        requirements,
        index,
    })
}

fn fail(record: &mut Record, message: &str) {
    messages::target_error(TOOL, &format!("{}: {message}", target_label(record)));
    record::set_error(record, TOOL, message);
}

/// What the run fetched, over all groups: each wheel counted once.
#[derive(Default)]
struct Tally {
    downloaded: BTreeMap<String, u64>,
    dest: BTreeMap<String, u64>,
    repository: BTreeMap<String, u64>,
}

impl Tally {
    fn count(&mut self, fetched: &Fetched) {
        for wheel in &fetched.0 {
            let into = match wheel.source {
                Source::Downloaded => &mut self.downloaded,
                Source::Dest => &mut self.dest,
                Source::Repository => &mut self.repository,
            };
            into.insert(wheel.wheel.clone(), wheel.size);
        }
        // A wheel one group downloaded is in DEST for the next.
        self.dest
            .retain(|wheel, _| !self.downloaded.contains_key(wheel));
    }

    /// The summary line on stderr, and what to run next.
    fn report(&self, settings: &Settings, groups: usize) {
        let bytes: u64 = self.downloaded.values().sum();
        let mut line = format!(
            "{groups} interpreter{}: {} wheel{} ({}) downloaded into {}, {} already there",
            if groups == 1 { "" } else { "s" },
            self.downloaded.len(),
            if self.downloaded.len() == 1 { "" } else { "s" },
            summary::bytes(bytes),
            settings.dest.display(),
            self.dest.len()
        );
        let repo = match &settings.repo {
            Some(repo) => {
                line.push_str(&format!(", {} in the repository", self.repository.len()));
                format!("--repo {} ", repo.display())
            }
            None => String::new(),
        };
        // Nothing to carry in, nothing to add: no command to suggest.
        if !self.downloaded.is_empty() || !self.dest.is_empty() {
            line.push_str(&format!(
                "; then, inside the network: vd-add {repo}{}/*.whl",
                settings.dest.display()
            ));
        }
        messages::warn(TOOL, &line);
    }
}
