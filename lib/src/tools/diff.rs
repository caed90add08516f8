//! `vd-diff`: plan, per target, which wheels to install and which packages
//! to remove.

use crate::cli::RepoArgs;
use crate::fingerprint;
use crate::messages;
use crate::output::{status_cell, Output, Status, Table};
use crate::plan::{self, Kinds, Planned, Planner, Plans, Policy};
use crate::pylock::{self, LockFile};
use crate::record::{
    self, target_label, Action, Ahead, Changes, Markers, RawRecord, Reader, Record, Target,
};
use crate::repo::Repo;
use crate::requirement::Requirements;
use crate::saved_freeze::SavedFreeze;
use crate::tags::{Interpreter, Tags};
use anyhow::{anyhow, bail, Result};
use pep508_rs::MarkerEnvironment;
use std::collections::HashMap;
use std::io::{self, IsTerminal};
use std::path::{Path, PathBuf};
use std::rc::Rc;

const TOOL: &str = "vd-diff";

/// Plan the change: which wheels to install and which packages to remove.
///
/// Reads target records from vd-freeze (their `python`, `markers` and
/// `installed` fields) and the repository, never the network, and adds to
/// each record a `plan`: a list of {name, action, from, to, wheel, sha256},
/// sorted by name, where action is install (not installed), upgrade (the
/// chosen version is newer), downgrade (the chosen version is older) or
/// remove (with --exact). A target with `venv_exists: false` is planned
/// against an empty venv.
///
/// The requirements name what a target needs; vd-diff resolves the closure
/// (every dependency the wheels declare, with versions that satisfy all of
/// them at once) per target, with PubGrub over PEP 440 ranges. A version is
/// a candidate only when the repository has a wheel of it the target's
/// interpreter accepts, by its tags (as pip's packaging.tags.sys_tags()
/// computes them) and Requires-Python. Markers are evaluated for the target,
/// extras bring their dependencies, and -c constraints narrow every
/// requirement on their project. A project the requirements name gets the
/// highest version that satisfies; a dependency keeps its installed version
/// when that satisfies (pip's only-if-needed), else the highest
/// (--upgrade-deps: always the highest). Pre-releases only where a
/// specifier names one or nothing else satisfies. Of the chosen version's
/// wheels, the most specific tag, then the highest build tag; with --hash
/// options the wheel's sha256 must be listed. An installed version newer
/// than anything in the repository that still satisfies is kept and listed
/// in `ahead` (a warning, not an error). Targets with the same facts,
/// installed packages and requirements are resolved once, and a record
/// whose text in those fields repeats one before is written with that
/// plan without being read whole: a fleet of many targets of a few kinds
/// costs about what its kinds cost.
///
/// Requirements files take names with extras, PEP 440 specifiers and PEP 508
/// markers, comments, `\` continuations, -r and -c includes (relative to the
/// including file) and --hash=sha256:...; a pip-compile lock file works as
/// is (its --index-url, --extra-index-url, --find-links and --trusted-host
/// lines are ignored with a warning). URLs, paths, -e and other pip options
/// are errors naming file and line.
///
/// A REQUIREMENTS argument named pylock.toml or pylock.NAME.toml is read
/// as a PEP 751 lock, and must be the only one. For each target, the lock's
/// packages whose `marker` and `requires-python` apply there (evaluated
/// with the target's `markers`) are pinned to their version and to the
/// sha256 digests of the lock's wheels of them, and nothing else is kept
/// (as with --exact). The repository must have a wheel of each such
/// package whose sha256 the lock lists, and the target must accept it by
/// its tags; a package the repository has no wheel of, one whose wheels
/// hash otherwise, or one the lock gives only as an sdist, VCS checkout,
/// directory or archive is an error naming the file, the line and the
/// package. A lock whose `requires-python` or `environments` leave the
/// target out is an error for that target; one of an unknown major
/// lock-version (2.0) an error for the run. The URLs and paths of the
/// lock's files are not used: vd installs from its repository.
///
/// Each plan is stamped with `planned_from`, a fingerprint (sha256) of the
/// state it was made from: the interpreter's implementation and version and
/// the `installed` set. vd-push refuses a target whose venv no longer has
/// it, so a saved and reviewed plan applies to exactly that state.
///
/// A target that cannot be resolved gets an `error` explaining why: the
/// chain of requirements that conflict, where each was written, the versions
/// the repository has and the wheels that exist only for other interpreters.
/// The other targets go on. Records that already carry an error pass through
/// untouched. Exit status: 0 when every target has a plan, 1 when some
/// target has an error, 2 on a usage or setup error (no repository, a bad
/// REQUIREMENTS file); with --check, 1 means drift and 2 any error.
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    repo: RepoArgs,

    /// Also remove packages that are installed but outside the resolved
    /// closure (pip, setuptools and wheel are kept), so the venv holds the
    /// requirements and their dependencies and nothing else. When a kept
    /// installed version has no wheel in the repository, its dependencies
    /// are unknown, and a plan that would remove anything is an error.
    #[arg(long)]
    exact: bool,

    /// Choose the highest version for dependencies too. By default a
    /// dependency keeps its installed version when that satisfies every
    /// requirement on it (pip's only-if-needed); projects the requirements
    /// name always get the highest version that satisfies.
    #[arg(long)]
    upgrade_deps: bool,

    /// Plan each target to exactly the packages its own record in FILE
    /// had: FILE is saved vd-freeze (or vd-push) output, matched by host,
    /// port, user and venv, and applied with --exact. A target missing from
    /// FILE, saved twice in it, or a saved version the repository does not
    /// have, is an error naming it. FILE must be a regular file of at most
    /// 256 MiB (lines of at most 16 MiB). Takes the place of REQUIREMENTS.
    #[arg(long, value_name = "FILE", conflicts_with = "requirements")]
    lock: Option<PathBuf>,

    /// Report drift for cron: exit 1 when any target's plan is not empty, 0
    /// when every target is in sync, 2 when a target or the run failed.
    #[arg(long)]
    check: bool,

    /// Requirements files that apply to every target, or one PEP 751 lock
    /// (pylock.toml, pylock.NAME.toml). With none, each record's
    /// `requirements` file and `packages` list apply.
    #[arg(value_name = "REQUIREMENTS")]
    requirements: Vec<PathBuf>,
}

static TABLE: Table = Table {
    headers: &["TARGET", "CHANGES", "STATUS"],
    row: |r: &Record| {
        vec![
            target_label(r),
            changes_cell(r),
            status_cell(r, || ahead_cell(r)),
        ]
    },
};

fn changes_cell(record: &Record) -> String {
    let Ok(Some(Changes(plan))) = Changes::of(record) else {
        return String::new();
    };
    if plan.is_empty() {
        return "none".to_string();
    }
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    plan.iter()
        .map(|c| {
            let (action, name) = (c.action.as_str(), &c.name);
            match c.action {
                Action::Install => format!("install {name} {}", text(&c.to)),
                Action::Remove => format!("remove {name} {}", text(&c.from)),
                _ => format!("{action} {name} {} -> {}", text(&c.from), text(&c.to)),
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn ahead_cell(record: &Record) -> String {
    let ahead: Vec<String> = match record::get::<Ahead>(record) {
        Ok(Some(Ahead(items))) => items
            .iter()
            .map(|a| {
                format!(
                    "{} {} (repository: {})",
                    a.name,
                    a.installed,
                    a.repository.as_deref().unwrap_or("none")
                )
            })
            .collect(),
        _ => Vec::new(),
    };
    if ahead.is_empty() {
        "ok".to_string()
    } else {
        format!("ok; ahead: {}", ahead.join(", "))
    }
}

tool!(VdDiff);

fn run(args: Args, out: &mut Output) -> Result<Status> {
    let repo = Repo::open(&args.repo.repo)?;
    let index = repo.index()?;
    let mut state = State::new(&args, Planner::new(&index))?;
    if io::stdin().is_terminal() {
        messages::warn(
            TOOL,
            "reading target records from the terminal (pipe vd-freeze into vd-diff)",
        );
    }
    // Targets of a kind planned before skip the reading: only with the
    // plans of a saved freeze, which are each target's own, or a table,
    // which reads every record anyway, is each one read whole.
    let mut kinds = (out.is_json() && state.saved_freeze.is_none()).then(Kinds::default);
    // Written records are flushed when the input has no more lines at
    // hand, or before a target that takes a resolution: piped in all at
    // once, a fleet's records go out in few writes; from a stage that
    // sends them one by one, each goes on at once.
    out.flush_when_told();
    let input = io::BufReader::with_capacity(1 << 16, io::stdin());
    let mut reader = Reader::new(input, TOOL);
    loop {
        if reader.input().buffer().is_empty() {
            out.flush()?;
        }
        match reader.next_text() {
            None => break,
            Some(Ok((number, text))) => state.write_line(number, text, kinds.as_mut(), out)?,
            Some(Err(line)) => {
                state.failed = true;
                out.write(&line.record)?;
            }
        }
    }
    // For cron: drift and failure as exit statuses of their own.
    Ok(match (args.check, state.failed, state.drift) {
        (true, true, _) => Status::Exit(2),
        (true, false, true) => Status::Exit(1),
        _ => Status::Ok,
    })
}

/// What the run keeps from one target to the next: nothing of the targets
/// themselves, only what many of them share, and how the run is going.
struct State<'a> {
    saved_freeze: Option<SavedFreeze>,
    /// A PEP 751 lock given as REQUIREMENTS.
    pylock: Option<LockFile>,
    policy: Policy,
    plans: Plans,
    planner: Planner<'a>,
    /// The REQUIREMENTS arguments, read once.
    common: Option<Rc<Requirements>>,
    /// Tags per distinct interpreter.
    tags: HashMap<Interpreter, Rc<Tags>>,
    /// Per-target requirements files, read once each.
    files: HashMap<PathBuf, Result<Rc<Requirements>, String>>,
    /// Some target's plan is not empty.
    drift: bool,
    /// Some record written carries an error.
    failed: bool,
}

impl<'a> State<'a> {
    /// Read what the arguments name: the requirements every target shares,
    /// or the saved freeze.
    fn new(args: &Args, planner: Planner<'a>) -> Result<State<'a>> {
        let pylock = read_pylock(&args.requirements)?;
        let exact = args.exact || args.lock.is_some() || pylock.is_some();
        let common = if args.requirements.is_empty() || pylock.is_some() {
            None
        } else {
            let mut all = Requirements::default();
            for path in &args.requirements {
                all.extend(&read_requirements(path)?);
            }
            Some(Rc::new(all))
        };
        Ok(State {
            saved_freeze: args.lock.as_deref().map(SavedFreeze::read).transpose()?,
            pylock,
            policy: Policy {
                exact,
                upgrade_deps: args.upgrade_deps,
                unchanged: false,
            },
            plans: Plans::default(),
            planner,
            common,
            tags: HashMap::new(),
            files: HashMap::new(),
            drift: false,
            failed: false,
        })
    }

    /// Plan the record on one input line and write it: by its kind's plan
    /// when `kinds` knows it, else read whole.
    fn write_line(
        &mut self,
        number: usize,
        text: &str,
        mut kinds: Option<&mut Kinds>,
        out: &mut Output,
    ) -> Result<()> {
        let raw = kinds.as_ref().and_then(|_| RawRecord::parse(text));
        if let (Some(kinds), Some(raw)) = (kinds.as_deref_mut(), &raw) {
            if let Some((kind, target)) = kinds.find(raw) {
                self.drift |= kind.plan.drift;
                out.write_json_line(&kind.write(raw), &target)?;
                return Ok(());
            }
        }
        let mut record = record::parse_line(TOOL, number, text);
        if record::error_of(&record).is_none() {
            out.flush()?;
            let planned = self
                .plan_record(&record)
                .and_then(|plan| Ok((plan, fingerprint::of_record(&record)?)));
            match planned {
                Ok((plan, planned_from)) => {
                    self.drift |= plan.drift;
                    plan::set_plan(&mut record, &plan, &planned_from);
                    if let (Some(kinds), Some(raw)) = (kinds, &raw) {
                        kinds.remember(raw, plan, &planned_from);
                    }
                }
                Err(e) => {
                    let message = format!("{e:#}");
                    messages::target_error(TOOL, &format!("{}: {message}", target_label(&record)));
                    plan::clear_plan(&mut record);
                    record::set_error(&mut record, TOOL, &message);
                }
            }
        }
        self.failed |= record::error_of(&record).is_some();
        out.write(&record)?;
        Ok(())
    }

    fn plan_record(&mut self, record: &Record) -> Result<Rc<Planned>> {
        let target = Target::parse(record)?;
        let python = target.facts()?;
        let env = record::get::<Markers>(record)?
            .ok_or_else(|| anyhow!("missing field `markers` (run vd-freeze first)"))?
            .environment()?;
        let installed = record::installed(record)?;
        // The venv's own pip installs the plan: only wheels it accepts.
        let interpreter = Interpreter::from_facts(python, env.platform_system())?
            .installing_with_pip(installed.get("pip").map(String::as_str));
        if let Some(missing) = interpreter.missing_fact() {
            messages::warn(TOOL, &format!("{}:{}: {missing}", target.host, target.venv));
        }
        let tags = self
            .tags
            .entry(interpreter)
            .or_insert_with_key(|i| Rc::new(Tags::new(i)))
            .clone();
        let (sources, requirements) = self.requirements_of(&target, record, &env)?;
        let sources: Vec<&Requirements> = sources.iter().map(Rc::as_ref).collect();
        let venv = plan::Venv {
            env: &env,
            tags: &tags,
            installed: &installed,
        };
        let policy = Policy {
            unchanged: target.generations.is_some(),
            ..self.policy
        };
        self.plans
            .plan(&self.planner, &venv, &sources, &requirements, policy)
            .map_err(|e| anyhow!("{e}"))
    }

    /// The requirements a target is planned to, and a name for them that
    /// targets with the same requirements share: the saved freeze's pins,
    /// the REQUIREMENTS arguments, or the target's own file and packages.
    fn requirements_of(
        &mut self,
        target: &Target,
        record: &Record,
        env: &MarkerEnvironment,
    ) -> Result<(Vec<Rc<Requirements>>, String)> {
        if let Some(lock) = &self.pylock {
            // The pins follow from the environment alone, which the plan's
            // memo keys on too: one name serves every target.
            let pins = lock.pins_for(env, self.planner.index())?;
            return Ok((vec![Rc::new(pins)], "pylock".to_string()));
        }
        if let Some(saved) = &self.saved_freeze {
            let pins = saved
                .pins_for(target, record, self.planner.index())
                .map_err(|e| anyhow!("{e}"))?;
            let name = format!("{:p}", Rc::as_ptr(&pins));
            return Ok((vec![pins], name));
        }
        if let Some(common) = &self.common {
            return Ok((vec![common.clone()], String::new()));
        }
        let (file, packages) = (&target.requirements, &target.packages);
        if file.is_none() && packages.is_empty() {
            bail!("no requirements: give REQUIREMENTS files, or set `requirements` or `packages` on the target");
        }
        let name = format!("{file:?} {packages:?}");
        let mut sources = Vec::new();
        if let Some(path) = file {
            let read = self.files.entry(path.clone()).or_insert_with_key(|p| {
                read_requirements(p)
                    .map(Rc::new)
                    .map_err(|e| format!("{e:#}"))
            });
            sources.push(read.clone().map_err(|e| anyhow!("{e}"))?);
        }
        sources.push(Rc::new(Requirements::from_list(packages, "packages")?));
        Ok((sources, name))
    }
}

/// The REQUIREMENTS argument read as a PEP 751 lock, when it is named as
/// one (`pylock.toml`, `pylock.NAME.toml`). A lock is the whole of what a
/// target gets, so it comes alone.
fn read_pylock(paths: &[PathBuf]) -> Result<Option<LockFile>> {
    let Some(lock) = paths.iter().find(|p| pylock::is_lock_file(p)) else {
        return Ok(None);
    };
    if paths.len() > 1 {
        bail!(
            "{} is a PEP 751 lock, which names every package a target gets: give it as the only REQUIREMENTS",
            lock.display()
        );
    }
    LockFile::read(lock).map(Some)
}

/// A requirements file, its warnings said.
fn read_requirements(path: &Path) -> Result<Requirements> {
    let reqs = Requirements::read(path)?;
    for warning in &reqs.warnings {
        messages::warn(TOOL, warning);
    }
    Ok(reqs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    #[test]
    fn the_table_shows_changes_and_ahead_packages() {
        let Value::Object(record) = json!({
            "host": "web1", "venv": "/srv/venv",
            "plan": [
                {"name": "a", "action": "install", "from": null, "to": "1.0"},
                {"name": "b", "action": "upgrade", "from": "1.0", "to": "2.0"},
                {"name": "c", "action": "remove", "from": "0.1", "to": null},
            ],
            "ahead": [{"name": "d", "installed": "3.0", "repository": null}],
        }) else {
            unreachable!()
        };
        assert_eq!(
            (TABLE.row)(&record),
            [
                "web1:/srv/venv",
                "install a 1.0, upgrade b 1.0 -> 2.0, remove c 0.1",
                "ok; ahead: d 3.0 (repository: none)",
            ]
        );
    }
}
