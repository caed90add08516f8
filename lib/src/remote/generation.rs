//! A push to a target with generations: a whole new venv built beside the
//! active one, checked, and switched to atomically.
//!
//! The command runs [`GENERATION_SCRIPT`] (`generation.sh`, beside this
//! file) as the venv's user, with every value as a quoted argument and the
//! freeze script on stdin; what it prints, a line per step, is read into a
//! [`GenerationOutcome`]. Which wheels make the new set, and whether it
//! ended as the plan says, is [`crate::push`]'s. The layout: `VENV` is a
//! symlink to `BASE.generations/N` beside it (BASE is VENV's last
//! component), and each generation is a complete venv made at its own path;
//! which of them count is `generations.sh`'s (its `finished`). A new
//! generation starts as a copy of the active one where it can
//! ([`GENERATION_COPY_SCRIPT`] plans the copy and makes its files its own),
//! else it is built in full; [`GenerationOutcome::built`] says which.

use super::freeze::{FreezeOutput, FREEZE_SCRIPT};
use super::running::{with_running, RUNNING_SH};
use super::{pip_tail, program, said, script_command, steps, GENERATIONS, INSTALL, LOCK_WAIT_SECS};
use crate::record::{BuildWay, Built, KeptGeneration};
use crate::transport::Finished;
use anyhow::{bail, Result};

/// The shell script of a generation's build and switch.
pub const GENERATION_SCRIPT: &str = include_str!("generation.sh");

/// The plan of a generation built as a copy of the active one, and the
/// fixing of the copy's files (`generation_copy.py`, see its header).
pub const GENERATION_COPY_SCRIPT: &str = include_str!("generation_copy.py");

/// What [`generation_command`] sends on stdin: the freeze, the scan of
/// running processes that pruning asks, and the copy's program (on stdin,
/// not as an argument: the command must fit in one SSH channel request).
pub fn generation_stdin() -> String {
    format!(
        "{}\nvd-generation-copy.py\n{GENERATION_COPY_SCRIPT}",
        with_running(FREEZE_SCRIPT)
    )
}

/// The program [`generation_command`] runs.
pub fn generation_program() -> String {
    program(&[GENERATIONS, RUNNING_SH, INSTALL, GENERATION_SCRIPT])
}

/// The folder of a venv's generations.
pub fn generations_dir(venv: &str) -> String {
    format!("{}.generations", venv.trim_end_matches('/'))
}

/// What [`generation_command`] does to one target.
pub struct GenerationSteps<'a> {
    pub venv: &'a str,
    /// Generations to keep.
    pub keep: u32,
    /// Make a plain venv at `venv` a generation first.
    pub adopt: bool,
    /// Make the first generation with this python when `venv` is absent.
    pub create_with: Option<&'a str>,
    /// The fingerprints of the state planned from and of the state the plan
    /// makes; empty: not checked.
    pub accept: &'a [String],
    /// `name==version` of every package the new generation must hold.
    pub holds: &'a [String],
    /// The wheel files on the host of the new generation.
    pub install: &'a [String],
    /// The push's intent, noted on the host with the switch it makes.
    pub intent: &'a str,
    /// The uv binary on the host that installs the new generation; `None`:
    /// its pip.
    pub installer: Option<&'a str>,
    /// Copy: build the new generation as a copy of the active one with
    /// `install` the plan's wheels, or say why not and build nothing; full:
    /// a new venv with `install` every wheel of the new set.
    pub way: BuildWay,
}

/// The build of a new generation, as `/bin/sh -c` with the steps as
/// arguments, to be sent [`generation_stdin`] on stdin.
pub fn generation_command(steps: &GenerationSteps) -> String {
    let lock_wait = LOCK_WAIT_SECS.to_string();
    let keep = steps.keep.to_string();
    let accept = steps.accept.join(" ");
    let holds = steps.holds.join(" ");
    let mut args = vec![
        steps.venv.trim_end_matches('/'),
        &lock_wait,
        &keep,
        if steps.adopt { "1" } else { "0" },
        steps.create_with.unwrap_or(""),
        &accept,
        &holds,
        steps.intent,
        steps.installer.unwrap_or(""),
        match steps.way {
            BuildWay::Copy => "copy",
            BuildWay::Full => "full",
        },
    ];
    args.extend(steps.install.iter().map(String::as_str));
    script_command(&generation_program(), "vd-push", &args)
}

/// What [`generation_command`] printed.
#[derive(Debug, Default)]
pub struct GenerationOutcome {
    /// A plain venv was made this generation.
    pub adopted: Option<u32>,
    /// The generation active when the lock was taken, and its freeze.
    pub active: Option<u32>,
    pub before: Option<FreezeOutput>,
    /// The active generation was not the state planned from: nothing done.
    pub drifted: bool,
    /// The active generation already was what the plan makes: nothing done.
    pub done: bool,
    /// The new generation's number, once its build began.
    pub built: Option<u32>,
    /// How it was built, once that was decided.
    pub way: Option<Built>,
    /// The copy was tried and failed (`way` says why), then the full build.
    pub copy_failed: bool,
    /// Exit statuses of `python -m venv` and of pip's install.
    pub create_status: i32,
    pub install_status: i32,
    /// The new generation's freeze, when it got that far.
    pub after: Option<FreezeOutput>,
    /// The new generation was removed, not switched to.
    pub discarded: bool,
    /// The generation `venv` points at now, when the push switched.
    pub switched: Option<u32>,
    /// Generations removed as older than the kept ones.
    pub pruned: Vec<u32>,
    /// Generations past the number to keep, kept because processes still
    /// run from them.
    pub busy: Vec<KeptGeneration>,
    /// The end of the command's stderr (pip's output), for errors.
    pub output: String,
}

impl GenerationOutcome {
    pub fn parse(finished: &Finished) -> Result<GenerationOutcome> {
        let stdout = String::from_utf8_lossy(&finished.stdout);
        let mut outcome = GenerationOutcome::default();
        const FREEZE: &str = "the generation's freeze";
        for step in steps(&stdout) {
            match step.word {
                "adopted" => outcome.adopted = Some(step.number(0)?),
                "active" => outcome.active = Some(step.number(0)?),
                "before" => outcome.before = step.freeze(FREEZE)?,
                "drifted" => outcome.drifted = true,
                "done" => outcome.done = true,
                "generation" => outcome.built = Some(step.number(0)?),
                "copy" => outcome.way = Some(Built::copy_of(step.number(0)?)),
                "full" | "uncopied" => {
                    outcome.copy_failed = step.word == "uncopied";
                    outcome.way = Some(Built::full(step.args.join(" ")));
                }
                "built" => {
                    outcome.create_status = step.status(0);
                    outcome.install_status = step.status(1);
                    outcome.after = step.freeze(FREEZE)?;
                }
                "discarded" => outcome.discarded = true,
                "switched" => outcome.switched = Some(step.number(0)?),
                "pruned" => outcome.pruned = step.numbers()?,
                "busy" => outcome.busy.push(KeptGeneration {
                    generation: step.number(0)?,
                    pids: step.numbers()?.into_iter().skip(1).collect(),
                }),
                _ => {}
            }
        }
        outcome.output = pip_tail(finished);
        let finished_steps = outcome.drifted
            || outcome.done
            || outcome.discarded
            || outcome.switched.is_some()
            || outcome.needs_full();
        if !finished_steps {
            bail!(
                "the push command failed{} (exit status {}): {}",
                match (outcome.built, outcome.active) {
                    (Some(n), Some(active)) =>
                        format!(" while building generation {n} (generation {active} stays active)"),
                    (Some(n), None) => format!(" while building generation {n}"),
                    (None, _) => " before building a new generation".to_string(),
                },
                finished.status,
                said(finished)
            );
        }
        Ok(outcome)
    }

    /// The copy was refused or failed, nothing was built, and the new
    /// generation is to be built the full way.
    pub fn needs_full(&self) -> bool {
        self.switched.is_none() && self.way.as_ref().is_some_and(|b| b.way == BuildWay::Full)
    }

    /// What vd-push says when a copy of the active generation failed and
    /// the new one was built in full; `None` when it did not.
    pub fn copy_failure(&self) -> Option<String> {
        let why = self
            .way
            .as_ref()?
            .why
            .as_deref()
            .filter(|_| self.copy_failed)?;
        Some(format!(
            "generation {} is built in full, not as a copy of generation {}: {why}",
            self.built.unwrap_or_default(),
            self.active.unwrap_or_default()
        ))
    }

    /// Why the build was discarded, in words (`installer`: `pip` or `uv`,
    /// which installed it); `None` when it was not.
    pub fn build_failure(&self, installer: &str) -> Option<String> {
        if !self.discarded {
            return None;
        }
        let n = self.built.unwrap_or_default();
        let kept = match self.active {
            Some(active) => format!("generation {active} stays active"),
            None => "there is no generation yet".to_string(),
        };
        let why = if self.create_status != 0 {
            format!("python -m venv failed (exit status {})", self.create_status)
        } else if self.install_status != 0 {
            format!(
                "{installer} install failed (exit status {})",
                self.install_status
            )
        } else {
            "it does not hold what the plan makes".to_string()
        };
        Some(format!(
            "generation {n} was not built, {why}, and is removed; {kept}: {}",
            self.output
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// libssh2 sends a channel request of at most 40,000 bytes: the program
    /// and its arguments, but for the wheel files, must leave room for them
    /// (about 8,000 bytes: some 60 files of a full build in a cache of a
    /// usual path; the files belong on stdin for more).
    #[test]
    fn the_command_leaves_room_for_the_wheel_files() {
        let holds = vec!["package-name==1.0.0".to_string(); 100];
        let command = generation_command(&GenerationSteps {
            venv: "/srv/shop/venv",
            keep: 3,
            adopt: false,
            create_with: None,
            accept: &["sha256:0".repeat(2)],
            holds: &holds,
            install: &[],
            intent: "intent",
            installer: None,
            way: BuildWay::Copy,
        });
        // With room for some 100 wheel files at a cache path each.
        assert!(command.len() < 17_000, "{} bytes", command.len());
    }

    #[test]
    fn reads_each_step() {
        let freeze = r#"{"installed": {"a": "1"}, "markers": {}, "python": {"venv": true}}"#;
        let stdout = format!(
            "vd-adopted 1\nvd-active 1\nvd-before\n{freeze}\nvd-generation 2\nvd-built 0 0\n\
             {freeze}\nvd-switched 2\nvd-busy 1 10 11\nvd-pruned\n"
        );
        let outcome = GenerationOutcome::parse(&Finished::of(0, &stdout, "")).unwrap();
        assert_eq!(
            (
                outcome.adopted,
                outcome.active,
                outcome.built,
                outcome.switched
            ),
            (Some(1), Some(1), Some(2), Some(2))
        );
        assert!(outcome.after.is_some() && outcome.pruned.is_empty());
        assert_eq!(
            outcome.busy,
            [KeptGeneration {
                generation: 1,
                pids: vec![10, 11]
            }]
        );
        assert_eq!(outcome.build_failure("pip"), None);

        let failed = "vd-active 4\nvd-before\n".to_string()
            + freeze
            + "\nvd-generation 5\nvd-built 0 1\nvd-discarded 5\n";
        let outcome =
            GenerationOutcome::parse(&Finished::of(0, &failed, "ERROR: disk full\n")).unwrap();
        assert_eq!(
            outcome.build_failure("pip").unwrap(),
            "generation 5 was not built, pip install failed (exit status 1), and is removed; \
             generation 4 stays active: ERROR: disk full"
        );
        let cut = "vd-active 4\nvd-before\n".to_string() + freeze + "\nvd-generation 5\n";
        let err = format!(
            "{:#}",
            GenerationOutcome::parse(&Finished::of(137, &cut, "Killed")).unwrap_err()
        );
        assert!(
            err.contains("while building generation 5 (generation 4 stays active)"),
            "{err}"
        );
        let err = format!(
            "{:#}",
            GenerationOutcome::parse(&Finished::of(5, "", "/v is a plain virtualenv")).unwrap_err()
        );
        assert!(err.contains("before building a new generation"), "{err}");
    }
}
