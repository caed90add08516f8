//! Switching a target with generations back to an older generation: what
//! vd-rollback does, and vd-reload --revert after a failed reload or check.
//!
//! The command runs [`SWITCH_SCRIPT`] (`switch.sh`, beside this file) as the
//! venv's user, under the same lock as vd-push's builds, with the freeze
//! script on stdin; what it prints is read into a [`Switched`]. The switch is
//! the one vd-push makes: a new link renamed over the old one. Nothing is
//! removed, so a rollback can be rolled forward with `--to`.

use super::freeze::{FreezeOutput, FREEZE_SCRIPT};
use super::push::LOCK_WAIT_SECS;
use crate::shell;
use crate::transport::Finished;
use anyhow::{anyhow, bail, Result};

/// The shell program of a switch.
pub const SWITCH_SCRIPT: &str = include_str!("switch.sh");

/// What [`switch_command`] sends on stdin: the freeze.
pub const SWITCH_STDIN: &str = FREEZE_SCRIPT;

/// Switch `venv` to generation `to` (default: the kept one before the
/// active one), only when `from` (if given) is the active one.
pub fn switch_command(venv: &str, from: Option<u32>, to: Option<u32>) -> String {
    let lock_wait = LOCK_WAIT_SECS.to_string();
    let text = |n: Option<u32>| n.map(|n| n.to_string()).unwrap_or_default();
    shell::join(&[
        "/bin/sh",
        "-c",
        SWITCH_SCRIPT,
        "vd-rollback",
        venv.trim_end_matches('/'),
        &lock_wait,
        &text(from),
        &text(to),
    ])
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
        let mut lines = stdout.lines();
        let (mut from, mut to, mut previous, mut freeze, mut switched) =
            (None, None, None, None, false);
        let number = |word: &str| {
            word.parse::<u32>()
                .map_err(|_| anyhow!("the switch printed {word:?} for a generation"))
        };
        while let Some(line) = lines.next() {
            match line.split_whitespace().collect::<Vec<_>>().as_slice() {
                ["vd-from", n] => from = Some(number(n)?),
                ["vd-to", n] => {
                    to = Some(number(n)?);
                    freeze = lines
                        .next()
                        .map(FreezeOutput::parse)
                        .transpose()
                        .map_err(|e| anyhow!("the generation's freeze: {e:#}"))?;
                }
                ["vd-previous", n] => previous = Some(number(n)?),
                ["vd-previous"] => previous = None,
                ["vd-switched", _] => switched = true,
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
            _ => {
                let stderr = finished.stderr_text();
                bail!(
                    "{}",
                    if stderr.is_empty() {
                        format!("the switch failed (exit status {})", finished.status)
                    } else {
                        stderr
                    }
                )
            }
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
