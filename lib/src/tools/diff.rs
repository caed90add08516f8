//! `vd-diff`: plan, per target, which wheels to install and which packages
//! to remove.

use crate::cli::{self, RepoArgs, Status};
use crate::fingerprint;
use crate::lock::Lock;
use crate::output::{status_cell, Output, Table};
use crate::plan::{self, Action, Options, Plan, Planner};
use crate::record::{
    self, target_label, Ahead, Changes, Error, Field, Installed, Markers, PlannedFrom, Python,
    RawRecord, Reader, Record, Target, Unchanged, VenvExists,
};
use crate::repo::Repo;
use crate::requirement::Requirements;
use crate::tags::{Interpreter, Tags};
use anyhow::{anyhow, bail, Result};
use std::collections::HashMap;
use std::io::{self, IsTerminal};
use std::path::PathBuf;
use std::rc::Rc;

const TOOL: &str = "vd-diff";

/// How many distinct kinds of target keep their plan for the next target
/// of the same kind.
const MEMO_LIMIT: usize = 128;

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

    /// Requirements files that apply to every target. With none, each
    /// record's `requirements` file and `packages` list apply.
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
    let planner = Planner::new(&index);
    let common = if args.requirements.is_empty() {
        None
    } else {
        let mut all = Requirements::default();
        for path in &args.requirements {
            let reqs = Requirements::read(path)?;
            for warning in &reqs.warnings {
                cli::warn(TOOL, warning);
            }
            all.extend(&reqs);
        }
        Some(all)
    };
    let lock = args.lock.as_deref().map(Lock::read).transpose()?;
    if io::stdin().is_terminal() {
        cli::warn(
            TOOL,
            "reading target records from the terminal (pipe vd-freeze into vd-diff)",
        );
    }
    let mut state = State {
        planner,
        common,
        lock,
        options: Options {
            exact: args.exact || args.lock.is_some(),
            upgrade_deps: args.upgrade_deps,
            unchanged: false,
        },
        tags: HashMap::new(),
        files: HashMap::new(),
        plans: HashMap::new(),
    };
    let mut drift = false;
    let mut failed = false;
    // Targets of a kind planned before skip the reading: only with the
    // plans of a lock, which are each target's own, or a table, which
    // reads every record anyway, is each one read whole.
    let mut kinds = (out.is_json() && state.lock.is_none()).then(Kinds::default);
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
        let Some(next) = reader.next_text() else {
            break;
        };
        let (number, text) = match next {
            Ok(line) => line,
            Err(line) => {
                failed = true;
                out.write(&line.record)?;
                continue;
            }
        };
        let raw = kinds.as_ref().and_then(|_| RawRecord::parse(text));
        if let (Some(kinds), Some(raw)) = (&mut kinds, &raw) {
            if let Some((kind, target)) = kinds.find(raw) {
                drift |= kind.plan.drift;
                let line = kind.write(raw);
                out.write_json_line(&line, &target)?;
                continue;
            }
        }
        let mut record = record::parse_line(TOOL, number, text);
        if record::error_of(&record).is_none() {
            out.flush()?;
            let planned = state
                .plan_record(&record)
                .and_then(|plan| Ok((plan, fingerprint::of_record(&record)?)));
            match planned {
                Ok((plan, planned_from)) => {
                    drift |= plan.drift;
                    set_plan(&mut record, &plan, &planned_from);
                    if let (Some(kinds), Some(raw)) = (&mut kinds, &raw) {
                        kinds.remember(raw, plan, &planned_from);
                    }
                }
                Err(e) => {
                    let message = format!("{e:#}");
                    cli::target_error(TOOL, &format!("{}: {message}", target_label(&record)));
                    record::remove::<Changes>(&mut record);
                    record::remove::<Ahead>(&mut record);
                    record::remove::<PlannedFrom>(&mut record);
                    record::remove::<Unchanged>(&mut record);
                    record::set_error(&mut record, TOOL, &message);
                }
            }
        }
        failed |= record::error_of(&record).is_some();
        out.write(&record)?;
    }
    // For cron: drift and failure as exit statuses of their own.
    Ok(match (args.check, failed, drift) {
        (true, true, _) => Status::Exit(2),
        (true, false, true) => Status::Exit(1),
        _ => Status::Ok,
    })
}

/// What the run keeps from one target to the next: nothing of the targets
/// themselves, only what many of them share.
struct State<'a> {
    lock: Option<Lock>,
    options: Options,
    /// Plans by everything they depend on (interpreter facts, installed
    /// set, requirements): targets of one kind are resolved once.
    plans: HashMap<String, Result<Rc<Planned>, String>>,
    planner: Planner<'a>,
    /// The REQUIREMENTS arguments, read once.
    common: Option<Requirements>,
    /// Tags per distinct interpreter.
    tags: HashMap<Interpreter, Rc<Tags>>,
    /// Per-target requirements files, read once each.
    files: HashMap<PathBuf, Result<Rc<Requirements>, String>>,
}

impl State<'_> {
    fn plan_record(&mut self, record: &Record) -> Result<Rc<Planned>> {
        let target = Target::parse(record)?;
        let python = match &target.python {
            Some(Python::Facts(facts)) => facts,
            Some(Python::Name(_)) => {
                bail!("field `python` must be an object of interpreter facts (from vd-freeze)")
            }
            None => bail!("missing field `python` (run vd-freeze first)"),
        };
        let env = record::get::<Markers>(record)?
            .ok_or_else(|| anyhow!("missing field `markers` (run vd-freeze first)"))?
            .environment()?;
        let interpreter = Interpreter::from_facts(python, env.platform_system())?;
        let tags = self
            .tags
            .entry(interpreter)
            .or_insert_with_key(|i| Rc::new(Tags::new(i)))
            .clone();
        let installed = record::installed(record)?.by_name();

        let per_target;
        let pins;
        let mut sources: Vec<&Requirements> = Vec::new();
        let mut requirements_key = String::new();
        match (&self.lock, &self.common) {
            (Some(lock), _) => {
                pins = lock
                    .pins_for(&target, record, self.planner.index())
                    .map_err(|e| anyhow!("{e}"))?;
                requirements_key = format!("{:p}", Rc::as_ptr(&pins));
                sources.push(&pins);
            }
            (None, Some(common)) => sources.push(common),
            (None, None) => {
                let file = target.requirements.clone();
                let packages = target.packages.clone();
                if file.is_none() && packages.is_empty() {
                    bail!("no requirements: give REQUIREMENTS files, or set `requirements` or `packages` on the target");
                }
                requirements_key = format!("{file:?} {packages:?}");
                let from_file = match file {
                    Some(path) => Some(
                        self.files
                            .entry(path)
                            .or_insert_with_key(|p| {
                                Requirements::read(p)
                                    .inspect(|reqs| {
                                        for warning in &reqs.warnings {
                                            cli::warn(TOOL, warning);
                                        }
                                    })
                                    .map(Rc::new)
                                    .map_err(|e| format!("{e:#}"))
                            })
                            .clone()
                            .map_err(|e| anyhow!("{e}"))?,
                    ),
                    None => None,
                };
                per_target = (from_file, Requirements::from_list(&packages, "packages")?);
                if let Some(f) = &per_target.0 {
                    sources.push(f);
                }
                sources.push(&per_target.1);
            }
        }
        // The interpreter by its tags' identity, not its facts: those name
        // the venv's own paths, which do not change the plan.
        let options = Options {
            unchanged: target.generations.is_some(),
            ..self.options
        };
        let key = serde_json::to_string(&(
            tags.id(),
            &env,
            &installed,
            &requirements_key,
            options.unchanged,
        ))
        .expect("facts serialize");
        if let Some(plan) = self.plans.get(&key) {
            return plan.clone().map_err(|e| anyhow!("{e}"));
        }
        let known = plan::Target {
            env: &env,
            tags: &tags,
            installed: &installed,
        };
        let plan = self
            .planner
            .plan_target(&known, &sources, options)
            .map(|plan| Rc::new(Planned::from(plan)))
            .map_err(|problems| problems.join("; "));
        if self.plans.len() >= MEMO_LIMIT {
            // A fleet of all-different targets: memory stays flat.
            self.plans.clear();
        }
        self.plans.insert(key, plan.clone());
        plan.map_err(|e| anyhow!("{e}"))
    }
}

/// Plans by the text of what they were made from, as the records carried
/// it ([`RawRecord`]): for a target of a kind seen before, vd-diff reads
/// its target fields only (to check them, as for any target) and writes
/// the record with its kind's plan, without reading or writing the
/// installed set and the interpreter's facts as values. Records alike in
/// what the plan depends on but not in its text (other spacing, another
/// venv path in the facts) still share the resolution, in [`State`].
#[derive(Default)]
struct Kinds {
    known: HashMap<Vec<u8>, Rc<Kind>>,
    /// The last key looked up, kept for [`Kinds::remember`].
    key: Vec<u8>,
}

/// One kind's plan, and its fields as the JSON text every record of the
/// kind gets.
struct Kind {
    plan: Rc<Planned>,
    planned_from: String,
}

impl Kinds {
    /// The fields that make a kind: what the plan and the fingerprint of
    /// the state it was made from are computed from.
    fn key_fields() -> impl Iterator<Item = &'static str> {
        [Markers::NAME, Installed::NAME, VenvExists::NAME]
            .into_iter()
            .chain(record::PLAN_COLUMNS.iter().copied())
    }

    /// The plan of the record's kind, if planned before, with the fields
    /// the record keeps once the big ones are left out (its target,
    /// checked as every target is). `None` sends the record the long way:
    /// a kind not seen yet, an error from an earlier tool, or a target
    /// whose fields do not parse (there it gets its error).
    fn find(&mut self, raw: &RawRecord) -> Option<(Rc<Kind>, Record)> {
        if raw.has(Error::NAME) {
            return None;
        }
        let names: Vec<&str> = Kinds::key_fields().collect();
        raw.key(&names, &mut self.key);
        let kind = self.known.get(&self.key)?.clone();
        // The interpreter's facts are in the key: checked with the kind.
        let left = raw
            .without(&[
                Python::NAME,
                Installed::NAME,
                Markers::NAME,
                Changes::NAME,
                Ahead::NAME,
                Unchanged::NAME,
                PlannedFrom::NAME,
            ])
            .ok()?;
        Target::parse(&left).ok()?;
        Some((kind, left))
    }

    /// Keep the plan of the record last looked up with [`Kinds::find`].
    fn remember(&mut self, raw: &RawRecord, plan: Rc<Planned>, planned_from: &str) {
        let names: Vec<&str> = Kinds::key_fields().collect();
        raw.key(&names, &mut self.key);
        if self.known.len() >= MEMO_LIMIT {
            self.known.clear();
        }
        let planned_from = serde_json::to_string(planned_from).expect("a string serializes");
        let kind = Kind { plan, planned_from };
        self.known.insert(self.key.clone(), Rc::new(kind));
    }
}

impl Kind {
    /// The record as a JSON line, with the fields [`set_plan`] writes.
    fn write(&self, raw: &RawRecord) -> String {
        let plan = &self.plan;
        let mut line = String::new();
        raw.write_with(
            &[
                (Changes::NAME, Some(&plan.changes_text)),
                (Ahead::NAME, Some(&plan.ahead_text)),
                (Unchanged::NAME, plan.unchanged_text.as_deref()),
                (PlannedFrom::NAME, Some(&self.planned_from)),
            ],
            &mut line,
        );
        line
    }
}

/// The plan, and the fingerprint of the state it was made from.
fn set_plan(record: &mut Record, plan: &Planned, planned_from: &str) {
    record::put_json::<Changes>(record, plan.changes.clone());
    record::put_json::<Ahead>(record, plan.ahead.clone());
    match &plan.unchanged {
        Some(unchanged) => record::put_json::<Unchanged>(record, unchanged.clone()),
        None => record::remove::<Unchanged>(record),
    }
    record::put(record, &PlannedFrom(planned_from.to_string()));
}

/// A plan as the record carries it, serialized once for every target that
/// shares it.
struct Planned {
    /// `plan`
    changes: serde_json::Value,
    /// `ahead`
    ahead: serde_json::Value,
    /// `unchanged`, for a target with generations (none when empty).
    unchanged: Option<serde_json::Value>,
    /// Whether there is anything to change (for `--check`).
    drift: bool,
    /// The same three as JSON text, for [`Kinds`].
    changes_text: String,
    ahead_text: String,
    unchanged_text: Option<String>,
}

impl From<Plan> for Planned {
    fn from(plan: Plan) -> Planned {
        let drift = !plan.changes.is_empty();
        let changes = serde_json::to_value(Changes(plan.changes)).expect("a plan serializes");
        let ahead = serde_json::to_value(Ahead(plan.ahead)).expect("a plan serializes");
        let unchanged = (!plan.unchanged.is_empty())
            .then(|| serde_json::to_value(Unchanged(plan.unchanged)).expect("a plan serializes"));
        let text = |value: &serde_json::Value| value.to_string();
        Planned {
            drift,
            changes_text: text(&changes),
            ahead_text: text(&ahead),
            unchanged_text: unchanged.as_ref().map(text),
            changes,
            ahead,
            unchanged,
        }
    }
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
