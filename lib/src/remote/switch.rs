//! Switching a target with generations back to an older generation: what
//! vd-rollback does, and vd-reload --revert after a failed reload or check.
//!
//! The command runs [`SWITCH_SCRIPT`] (`switch.sh`, beside this file) as the
//! venv's user, under the same lock as vd-push's builds, with the freeze
//! script on stdin; what it prints is read into a [`Switched`]. The switch is
//! the one vd-push makes: a new link renamed over the old one. Nothing is
//! removed, so a rollback can be rolled forward with `--to`; only a
//! finished generation (`generations.sh`) is ever switched to.

use super::freeze::{FreezeOutput, FREEZE_SCRIPT};
use super::{program, said, script_command, steps, GENERATIONS, LOCK_WAIT_SECS};
use crate::transport::Finished;
use anyhow::{bail, Result};

/// The shell script of a switch.
pub const SWITCH_SCRIPT: &str = include_str!("switch.sh");

/// What [`switch_command`] sends on stdin: the freeze.
pub const SWITCH_STDIN: &str = FREEZE_SCRIPT;

/// The program [`switch_command`] runs.
pub fn switch_program() -> String {
    program(&[GENERATIONS, SWITCH_SCRIPT])
}

/// Switch `venv` to generation `to` (default: the kept one before the
/// active one), only when `from` (if given) is the active one. `intent`
/// (may be empty) is noted on the host with the switch.
pub fn switch_command(venv: &str, from: Option<u32>, to: Option<u32>, intent: &str) -> String {
    let lock_wait = LOCK_WAIT_SECS.to_string();
    let text = |n: Option<u32>| n.map(|n| n.to_string()).unwrap_or_default();
    script_command(
        &switch_program(),
        "vd-rollback",
        &[
            venv.trim_end_matches('/'),
            &lock_wait,
            &text(from),
            &text(to),
            intent,
        ],
    )
}

/// What [`switch_command`] printed: a switch done.
#[derive(Debug)]
pub struct Switched {
    pub from: u32,
    pub to: u32,
    /// The kept generation below `to`, if any.
    pub previous: Option<u32>,
    /// The freeze of generation `to`, now active.
    pub freeze: FreezeOutput,
}

impl Switched {
    pub fn parse(finished: &Finished) -> Result<Switched> {
        let stdout = String::from_utf8_lossy(&finished.stdout);
        let (mut from, mut to, mut previous, mut freeze, mut switched) =
            (None, None, None, None, false);
        for step in steps(&stdout) {
            match step.word {
                "from" => from = Some(step.number(0)?),
                "to" => {
                    to = Some(step.number(0)?);
                    freeze = step.freeze("the generation's freeze")?;
                }
                "previous" if step.args.is_empty() => previous = None,
                "previous" => previous = Some(step.number(0)?),
                "switched" => switched = true,
                _ => {}
            }
        }
        match (from, to, freeze, switched) {
            (Some(from), Some(to), Some(freeze), true) => Ok(Switched {
                from,
                to,
                previous,
                freeze,
            }),
            _ if finished.stderr.is_empty() => {
                bail!("the switch failed (exit status {})", finished.status)
            }
            _ => bail!("{}", said(finished)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_switch_and_its_refusal() {
        let freeze = r#"{"installed": {"a": "1"}, "markers": {}, "python": {"venv": true}}"#;
        let stdout = format!("vd-from 3\nvd-to 2\n{freeze}\nvd-previous 1\nvd-switched 2\n");
        let s = Switched::parse(&Finished::of(0, &stdout, "")).unwrap();
        assert_eq!((s.from, s.to, s.previous), (3, 2, Some(1)));
        assert_eq!(s.freeze.installed().unwrap()["a"], "1");
        let stdout = format!("vd-from 2\nvd-to 1\n{freeze}\nvd-previous \nvd-switched 1\n");
        assert_eq!(
            Switched::parse(&Finished::of(0, &stdout, ""))
                .unwrap()
                .previous,
            None
        );
        let refused = "/v is at generation 1 and keeps none before it to go back to";
        let err = Switched::parse(&Finished::of(5, "", refused)).unwrap_err();
        assert_eq!(format!("{err:#}"), refused);
    }
}
