//! `vd-diff`: plan, per target, which wheels to install and which packages
//! to remove.

use crate::cli::{self, RepoArgs, Status};
use crate::output::{status_cell, Output, Table};
use crate::plan::{self, Action, Plan, Planner};
use crate::record::{self, target_label, Ahead, Changes, Markers, Python, Reader, Record, Target};
use crate::repo::Repo;
use crate::requirement::Requirements;
use crate::tags::{Interpreter, Tags};
use anyhow::{anyhow, bail, Result};
use std::collections::HashMap;
use std::io::{self, IsTerminal};
use std::path::PathBuf;
use std::rc::Rc;

const TOOL: &str = "vd-diff";

/// Plan the change: which wheels to install and which packages to remove.
///
/// Reads target records from vd-freeze (their `python`, `markers` and
/// `installed` fields) and the repository, never the network, and adds to
/// each record a `plan`: a list of {name, action, from, to, wheel, sha256},
/// sorted by name, where action is install (not installed), upgrade (the
/// chosen version is newer), downgrade (the installed version does not
/// satisfy the requirement and the chosen one is older) or remove (with
/// --exact). An installed version newer than anything in the repository that
/// still satisfies the requirement is kept and listed in `ahead` (a warning,
/// not an error). A target with `venv_exists: false` is planned against an
/// empty venv.
///
/// For each requirement whose marker is true for the target, the highest
/// version in the repository that satisfies every line naming the project
/// (and every -c constraint) and has a wheel the target's interpreter accepts
/// (by its tags and Requires-Python) is chosen; pre-releases only where a
/// specifier names one. Among that
/// version's wheels, the one with the most specific compatibility tag, as
/// pip's packaging.tags.sys_tags() ranks them, then the highest build tag.
/// With --hash options the wheel's sha256 must be listed. Then every Requires-Dist of every chosen wheel
/// (markers evaluated for the target, requested extras included) must be met
/// by what the venv will hold, since nothing will resolve dependencies later.
///
/// Requirements files take names with extras, PEP 440 specifiers and PEP 508
/// markers, comments, `\` continuations, -r and -c includes (relative to the
/// including file) and --hash=sha256:...; a pip-compile lock file works as
/// is. URLs, paths, -e and other pip options are errors naming file and line.
///
/// A target that cannot be planned gets an `error` naming every problem (the
/// package, the specifier, the wheels that exist), and the others go on.
/// Records that already carry an error pass through untouched. Exit status:
/// 0 when every target has a plan, 1 when some target has an error, 2 on a
/// usage or setup error (no repository, a bad REQUIREMENTS file).
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    repo: RepoArgs,

    /// Also remove packages that are installed but not required (pip,
    /// setuptools and wheel are kept), so the venv matches the requirements
    /// exactly.
    #[arg(long)]
    exact: bool,

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
            all.extend(&Requirements::read(path)?);
        }
        Some(all)
    };
    if io::stdin().is_terminal() {
        cli::warn(
            TOOL,
            "reading target records from the terminal (pipe vd-freeze into vd-diff)",
        );
    }
    let mut state = State {
        planner,
        common,
        exact: args.exact,
        tags: HashMap::new(),
        files: HashMap::new(),
    };
    for line in Reader::new(io::stdin().lock(), TOOL) {
        let mut record = line.record;
        if record::error_of(&record).is_none() {
            match state.plan_record(&record) {
                Ok(plan) => set_plan(&mut record, &plan),
                Err(e) => {
                    let message = format!("{e:#}");
                    cli::warn(TOOL, &format!("{}: {message}", target_label(&record)));
                    record::remove::<Changes>(&mut record);
                    record::remove::<Ahead>(&mut record);
                    record::set_error(&mut record, TOOL, &message);
                }
            }
        }
        out.write(&record)?;
    }
    Ok(Status::Ok)
}

/// What the run keeps from one target to the next: nothing of the targets
/// themselves, only what many of them share.
struct State<'a> {
    planner: Planner<'a>,
    /// The REQUIREMENTS arguments, read once.
    common: Option<Requirements>,
    exact: bool,
    /// Tags per distinct interpreter.
    tags: HashMap<Interpreter, Rc<Tags>>,
    /// Per-target requirements files, read once each.
    files: HashMap<PathBuf, Result<Rc<Requirements>, String>>,
}

impl State<'_> {
    fn plan_record(&mut self, record: &Record) -> Result<Plan> {
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
        let mut sources: Vec<&Requirements> = Vec::new();
        match &self.common {
            Some(common) => sources.push(common),
            None => {
                let file = target.requirements.clone();
                let packages = target.packages.clone();
                if file.is_none() && packages.is_empty() {
                    bail!("no requirements: give REQUIREMENTS files, or set `requirements` or `packages` on the target");
                }
                let from_file = match file {
                    Some(path) => Some(
                        self.files
                            .entry(path)
                            .or_insert_with_key(|p| {
                                Requirements::read(p)
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
        let known = plan::Target {
            env: &env,
            tags: &tags,
            installed: &installed,
        };
        self.planner
            .plan_target(&known, &sources, self.exact)
            .map_err(|problems| anyhow!("{}", problems.join("; ")))
    }
}

fn set_plan(record: &mut Record, plan: &Plan) {
    record::put(record, &Changes(plan.changes.clone()));
    record::put(record, &Ahead(plan.ahead.clone()));
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
