//! Uploading without SFTP: many hardened servers run sshd with no `Subsystem
//! sftp`, yet run commands. There a file goes over the command channel, as
//! the stdin of `cat` writing the name the caller gave, in pieces of
//! [`PIECE`] bytes (the first truncates, the others append), so a large
//! wheel is never held in memory whole.
//!
//! The guarantees are the caller's, as with SFTP: the name is a temporary
//! one that only a sha256 check on the host renames into use, so a transfer
//! cut off between pieces or within one leaves nothing that is used later.

use super::SshConnection;
use crate::shell::quote;
use anyhow::{bail, Context, Result};
use std::io::Read;
use std::path::Path;

/// The bytes sent per command: large enough that the round trip per piece
/// does not count, small enough to hold in memory.
const PIECE: usize = 8 << 20;

/// Write the local file to `remote` on the host with `cat`.
pub fn upload(connection: &mut SshConnection, local: &Path, remote: &str) -> Result<()> {
    let mut source =
        std::fs::File::open(local).with_context(|| format!("cannot open {}", local.display()))?;
    let mut piece = vec![0u8; PIECE];
    let mut first = true;
    loop {
        let n = read_full(&mut source, &mut piece)
            .with_context(|| format!("cannot read {}", local.display()))?;
        if n == 0 && !first {
            return Ok(());
        }
        let redirect = if first { ">" } else { ">>" };
        let finished = connection
            .run(
                &format!("umask 022 && cat {redirect} {}", quote(remote)),
                &piece[..n],
            )
            .with_context(|| format!("cannot upload {} to {remote}", local.display()))?;
        if !finished.success() {
            bail!(
                "cannot write {remote} on the host (exit status {}): {}",
                finished.status,
                finished.tail(3)
            );
        }
        first = false;
        if n < PIECE {
            return Ok(());
        }
    }
}

/// Fill `buf` from `source` unless it ends first; how many bytes were read.
fn read_full(source: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match source.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}
