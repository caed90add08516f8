//! Reading files whose size and kind vd does not control, within bounds.
//!
//! A path may name a device (`/dev/zero` never ends), a FIFO (a read waits
//! for a writer that may never come), or a file far larger than any real one
//! of its kind (a wheel's METADATA that unpacks to a gigabyte). vd reads such
//! input only from regular files, and only up to a limit far beyond what real
//! files need; past that it is an error naming the file, not a process that
//! runs out of memory. The limits for each kind of file live here, together.

use anyhow::{bail, Context, Result};
use std::fs::{self, File, Metadata};
use std::io::Read;
use std::path::Path;

/// A wheel's `.dist-info/METADATA` (the largest real ones, with a long
/// description, are a few megabytes).
pub const METADATA: u64 = 32 << 20;
/// A wheel's `.dist-info/RECORD`: one line per file in the wheel.
pub const RECORD: u64 = 64 << 20;
/// A wheel's `.dist-info/WHEEL`: a few lines.
pub const WHEEL: u64 = 1 << 20;
/// A requirements or constraints file.
pub const REQUIREMENTS: u64 = 16 << 20;
/// A saved freeze read as a lock (`vd-diff --lock`): a record per target,
/// each a few kilobytes to a few hundred.
pub const LOCK: u64 = 256 << 20;
/// One line of a lock: one saved record.
pub const LOCK_LINE: usize = 16 << 20;
/// A private or public key file (the largest real ones are a few kilobytes).
pub const KEY: u64 = 1 << 20;

/// The metadata of `path`, which must be a regular file (symbolic links are
/// followed). Nothing is opened, so a FIFO is refused without waiting.
pub fn regular_file(path: &Path) -> Result<Metadata> {
    let shown = path.display();
    let meta = fs::metadata(path).with_context(|| format!("{shown}: cannot read"))?;
    if let Some(kind) = not_regular(&meta) {
        bail!("{shown}: not a regular file ({kind})");
    }
    Ok(meta)
}

/// The whole of the regular file at `path`, refused when it is larger than
/// `limit` bytes. `what` says what the file is: errors read `cannot read
/// {what} {path}: {why}`.
pub fn read(path: &Path, limit: u64, what: &str) -> Result<Vec<u8>> {
    let failed = || format!("cannot read {what} {}", path.display());
    let meta = fs::metadata(path).with_context(failed)?;
    if let Some(kind) = not_regular(&meta) {
        bail!("{}: not a regular file ({kind})", failed());
    }
    let mut file = File::open(path).with_context(failed)?;
    // Checked again on what was opened: the path may have changed meanwhile.
    let meta = file.metadata().with_context(failed)?;
    if let Some(kind) = not_regular(&meta) {
        bail!("{}: not a regular file ({kind})", failed());
    }
    let mut bytes = Vec::with_capacity(meta.len().min(limit) as usize);
    file.by_ref()
        .take(limit + 1)
        .read_to_end(&mut bytes)
        .with_context(failed)?;
    if bytes.len() as u64 > limit {
        bail!("{}: larger than {} (refused)", failed(), size(limit));
    }
    Ok(bytes)
}

/// [`read`], as UTF-8 text.
pub fn read_text(path: &Path, limit: u64, what: &str) -> Result<String> {
    let bytes = read(path, limit, what)?;
    String::from_utf8(bytes).map_err(|e| {
        anyhow::anyhow!(
            "cannot read {what} {}: not UTF-8 text (invalid byte at offset {})",
            path.display(),
            e.utf8_error().valid_up_to()
        )
    })
}

/// Up to `limit` bytes of `reader` (an archive member), as UTF-8 text; more
/// is an error naming `name`.
pub fn read_member(reader: impl Read, limit: u64, name: &str) -> Result<String> {
    let mut bytes = Vec::new();
    reader
        .take(limit + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read {name}"))?;
    if bytes.len() as u64 > limit {
        bail!("{name} is larger than {} (refused)", size(limit));
    }
    String::from_utf8(bytes).with_context(|| format!("{name} is not UTF-8 text"))
}

/// What the file is when it is not a regular file.
fn not_regular(meta: &Metadata) -> Option<&'static str> {
    use std::os::unix::fs::FileTypeExt;
    let kind = meta.file_type();
    Some(if kind.is_file() {
        return None;
    } else if kind.is_dir() {
        "a directory"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "not a file"
    })
}

/// `32 MiB`, for messages.
fn size(bytes: u64) -> String {
    if bytes >= 1 << 20 {
        format!("{} MiB", bytes >> 20)
    } else {
        format!("{bytes} bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_devices_fifos_and_directories_and_caps_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let e = read(Path::new("/dev/zero"), 10, "a key").unwrap_err();
        assert_eq!(
            format!("{e:#}"),
            "cannot read a key /dev/zero: not a regular file (a character device)"
        );
        let e = read(dir.path(), 10, "a key").unwrap_err();
        assert!(format!("{e:#}").contains("(a directory)"), "{e:#}");
        let file = dir.path().join("f");
        fs::write(&file, "0123456789").unwrap();
        assert_eq!(read(&file, 10, "a key").unwrap(), b"0123456789");
        let e = read(&file, 9, "a key").unwrap_err();
        assert!(
            format!("{e:#}").ends_with("larger than 9 bytes (refused)"),
            "{e:#}"
        );
        let e = read_member(&b"abcdef"[..], 5, "x/METADATA").unwrap_err();
        assert!(format!("{e:#}").contains("x/METADATA is larger than 5 bytes"));
    }
}
