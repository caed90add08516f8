//! `via = local`: the same commands, run on this machine by `/bin/sh`, for a
//! target on the deploying host (and for trying a pipeline without a server).

use super::Finished;
use anyhow::{Context, Result};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

pub struct LocalConnection {
    user: String,
}

impl LocalConnection {
    pub fn new(user: &str) -> LocalConnection {
        LocalConnection {
            user: user.to_string(),
        }
    }

    pub fn user(&self) -> &str {
        &self.user
    }

    /// Run `command` with `sh -c`, as a login shell over SSH would; stdin is
    /// fed from its own thread while stdout and stderr are collected.
    pub fn run(&mut self, command: &str, stdin: &[u8]) -> Result<Finished> {
        let mut child = Command::new("/bin/sh")
            .arg("-c")
            .arg(command)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("cannot start /bin/sh")?;
        let mut pipe = child.stdin.take().context("no stdin pipe")?;
        let input = stdin.to_vec();
        // The command may exit without reading all its input; that is its
        // business, so a write error is not ours.
        let feeder = std::thread::spawn(move || {
            let _ = pipe.write_all(&input);
        });
        let out = child
            .wait_with_output()
            .context("cannot wait for /bin/sh")?;
        let _ = feeder.join();
        let status = match out.status.code() {
            Some(code) => code,
            None => {
                use std::os::unix::process::ExitStatusExt;
                anyhow::bail!(
                    "the command was killed by signal {}",
                    out.status.signal().unwrap_or(0)
                );
            }
        };
        Ok(Finished {
            status,
            stdout: out.stdout,
            stderr: out.stderr,
        })
    }

    pub fn upload(&mut self, local: &Path, remote: &str) -> Result<()> {
        std::fs::copy(local, remote)
            .with_context(|| format!("cannot copy {} to {remote}", local.display()))?;
        Ok(())
    }
}
