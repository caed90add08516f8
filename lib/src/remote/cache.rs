//! The wheel cache's four remote operations, by one script (`cache.sh`,
//! beside this file): list a cache directory, check the wheels a push is
//! about to use, commit uploaded wheels into it, and make the installer of
//! a cached uv wheel ready to run (unpacked by `unpack_uv.py`). What the
//! cache is for, and when each runs, is [`crate::cache`]'s.

use super::{program, said, script_command, steps};
use crate::transport::Finished;
use anyhow::{bail, Result};
use std::collections::HashSet;

/// Lists the cache, checks cached wheels' sha256, and checks uploaded
/// wheels' sha256 and renames them into place (see its header).
pub const CACHE_SCRIPT: &str = include_str!("cache.sh");

/// Takes uv's binary out of its wheel and checks it against the wheel's
/// RECORD (see its header); run by the target's python.
pub const UNPACK_UV_SCRIPT: &str = include_str!("unpack_uv.py");

/// The wheel cache when the record names none: under the login user's home.
pub const DEFAULT_CACHE: &str = "~/.cache/vd/wheels";

/// `path` as a cache directory the script takes: an absolute path, or `~`
/// or one under `~/` (the script expands the login user's home). Anything
/// else is an error naming the value.
pub fn cache_dir(path: &str) -> Result<&str> {
    match path.starts_with('/') || path == "~" || path.starts_with("~/") {
        true => Ok(path),
        false => {
            bail!("{path:?} is not an absolute path or one under ~/ (the login user's home)")
        }
    }
}

/// [`CACHE_SCRIPT`] doing `mode` to the cache `dir` with `args`.
fn cache_command<S: AsRef<str>>(mode: &str, dir: &str, args: &[S]) -> String {
    let mut words = vec![mode, dir];
    words.extend(args.iter().map(AsRef::as_ref));
    script_command(&program(&[CACHE_SCRIPT]), "vd-cache", &words)
}

/// List a wheel cache: the first line is the directory (absolute), then one
/// `./SHA256/FILE` per cached wheel. With `create`, the directory is made
/// (mode 0755) and temporary files of uploads cut off over an hour ago are
/// deleted; without, nothing on the host changes and a missing directory
/// lists as empty. `dir` is a [`cache_dir`].
pub fn cache_listing_command(dir: &str, create: bool) -> String {
    cache_command("list", dir, &[if create { "1" } else { "0" }])
}

/// What [`cache_listing_command`] printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheListing {
    /// The directory, absolute (the home expanded by the host).
    pub dir: String,
    /// `SHA256/FILE` of every wheel it holds.
    pub held: HashSet<String>,
}

impl CacheListing {
    pub fn parse(finished: &Finished) -> Result<CacheListing> {
        if !finished.success() {
            bail!(
                "cannot list it on the host (exit status {}): {}",
                finished.status,
                finished.stderr_text()
            );
        }
        let text = String::from_utf8_lossy(&finished.stdout);
        let mut lines = text.lines();
        let dir = match lines.next() {
            Some(dir) if dir.starts_with('/') => dir.trim_end_matches('/').to_string(),
            other => bail!("the host named no absolute directory for it (it printed {other:?})"),
        };
        let held = lines
            .filter_map(|line| line.strip_prefix("./"))
            .map(str::to_string)
            .collect();
        Ok(CacheListing { dir, held })
    }
}

/// Check the cached wheels `held` (`SHA256/FILE` each) of the cache `dir`
/// (absolute) still hash to their folder's name; a bad one is deleted.
pub fn cache_check_command(dir: &str, held: &[String]) -> String {
    cache_command("check", dir, held)
}

/// What [`cache_check_command`] printed: the wheels found bad and deleted.
pub fn read_cache_check(finished: &Finished) -> Result<Vec<String>> {
    if !finished.success() {
        bail!(
            "cannot check the cached wheels (exit status {}): {}",
            finished.status,
            super::said(finished)
        );
    }
    let stdout = String::from_utf8_lossy(&finished.stdout);
    Ok(stdout
        .lines()
        .filter_map(|line| line.strip_prefix("bad "))
        .map(str::to_string)
        .collect())
}

/// Commit uploaded files: `(sha256, file name, temporary name)` each, in
/// the cache directory `dir` (absolute).
pub fn cache_commit_command(dir: &str, uploads: &[(&str, &str, &str)]) -> String {
    let args: Vec<&str> = uploads
        .iter()
        .flat_map(|(sha, file, temp)| [*sha, *file, *temp])
        .collect();
    cache_command("commit", dir, &args)
}

/// What [`cache_commit_command`] printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheCommit {
    /// `SHA256/FILE` of each wheel now in place.
    pub placed: Vec<String>,
    /// What the host said of the wheels that are not, if any.
    pub failure: Option<String>,
}

impl CacheCommit {
    pub fn parse(finished: &Finished) -> CacheCommit {
        CacheCommit {
            placed: String::from_utf8_lossy(&finished.stdout)
                .lines()
                .map(str::to_string)
                .collect(),
            failure: (!finished.success()).then(|| finished.stderr_text()),
        }
    }
}

/// Make the uv of the cached wheel `wheel` (`SHA256/FILE`) of the cache
/// `dir` (absolute) ready: unpacked beside it by `python` and started once.
pub fn cache_uv_command(dir: &str, wheel: &str, python: &str) -> String {
    cache_command("uv", dir, &[wheel, python, UNPACK_UV_SCRIPT])
}

/// A uv ready on a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadyUv {
    /// The binary's path on the host.
    pub path: String,
    /// What `uv --version` said.
    pub version: String,
}

/// What [`cache_uv_command`] printed: the uv ready, or why it cannot be
/// used on this host (an error: the command itself failed).
pub fn read_cache_uv(finished: &Finished) -> Result<Result<ReadyUv, String>> {
    let stdout = String::from_utf8_lossy(&finished.stdout);
    for step in steps(&stdout) {
        match (step.word, step.body) {
            ("uv", Some(path)) => {
                return Ok(Ok(ReadyUv {
                    path: path.to_string(),
                    version: step.args.join(" "),
                }))
            }
            ("unusable", why) => return Ok(Err(why.unwrap_or_default().trim().to_string())),
            _ => {}
        }
    }
    bail!(
        "cannot make uv ready in the cache (exit status {}): {}",
        finished.status,
        said(finished)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    #[test]
    fn reads_a_listing() {
        let out =
            format!("/home/deploy/.cache/vd/wheels/\n./{SHA}/six-1.16.0-py2.py3-none-any.whl\n");
        let listing = CacheListing::parse(&Finished::of(0, &out, "")).unwrap();
        assert_eq!(listing.dir, "/home/deploy/.cache/vd/wheels");
        assert_eq!(
            listing.held,
            HashSet::from([format!("{SHA}/six-1.16.0-py2.py3-none-any.whl")])
        );
        let empty = CacheListing::parse(&Finished::of(0, "/var/cache/vd\n", "")).unwrap();
        assert!(empty.held.is_empty());
    }

    #[test]
    fn a_listing_without_its_directory_is_an_error() {
        let err = |f: Finished| CacheListing::parse(&f).unwrap_err().to_string();
        assert_eq!(
            err(Finished::of(1, "", "mkdir: cannot create directory '/var/cache/vd': Permission denied\n")),
            "cannot list it on the host (exit status 1): mkdir: cannot create directory '/var/cache/vd': Permission denied"
        );
        assert!(err(Finished::of(0, "", "")).contains("no absolute directory"));
        assert!(err(Finished::of(0, "~/wheels\n", "")).contains("\"~/wheels\""));
    }

    #[test]
    fn reads_a_commit() {
        let commit = CacheCommit::parse(&Finished::of(
            1,
            &format!("{SHA}/a-1.0-py3-none-any.whl\n"),
            "b-1.0-py3-none-any.whl: the uploaded copy has sha256 1234, not 0000; it was discarded\n",
        ));
        assert_eq!(commit.placed, [format!("{SHA}/a-1.0-py3-none-any.whl")]);
        assert!(commit
            .failure
            .unwrap()
            .starts_with("b-1.0-py3-none-any.whl: "));
        let good = CacheCommit::parse(&Finished::of(
            0,
            &format!("{SHA}/a-1.0-py3-none-any.whl\n"),
            "",
        ));
        assert_eq!(good.failure, None);
    }
}
