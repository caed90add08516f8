//! The wheel cache on each host: where vd-push puts wheels before pip
//! installs them, so a wheel crosses the network once per host, however many
//! of the host's venvs need it, and never again while it stays there.
//!
//! The cache is content-addressed: a wheel lives at `DIR/SHA256/FILE`, so a
//! listing says what is there without hashing anything, and two wheels of
//! the same name with other bytes (two repositories) never meet. A wheel is
//! uploaded (over SFTP, or over the command channel where the host has no
//! SFTP: [`Connection::upload`]) to a hidden temporary name in `DIR`, its
//! sha256 is checked on the host, and only then is it renamed to its place; an upload
//! cut off half way leaves a temporary file no listing reports (deleted by a
//! later push after an hour). The host is listed once per run, the first time
//! one of its targets needs the cache; what this run uploaded is added to
//! that listing, so the host's next target sends nothing it already has.
//!
//! A cached file is checked again before a push uses it: once per run and
//! host, the wheels a target needs that the cache holds are hashed on the
//! host, and one whose bytes changed since it was uploaded (replaced, cut
//! short) is deleted there and sent again. The script that runs pip checks
//! each file once more under the venv's lock, and never hands pip a file
//! that changed after that.
//!
//! What is not here: which wheels a target needs (the plan, [`crate::push`])
//! how a command reaches the host ([`crate::transport`]), and the commands
//! and what they print ([`crate::remote::cache`]).

use crate::remote::cache::{self as remote, CacheCommit, CacheListing};
use crate::transport::Connection;
use anyhow::{bail, Context, Result};
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

/// A wheel of the local repository that a target needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wheel {
    /// The file name (in the repository and in the cache).
    pub file: String,
    pub sha256: String,
    pub size: u64,
    /// Where it is on this machine.
    pub path: PathBuf,
}

/// A host's caches, by the `cache` value that names them: vd-push's
/// per-host state.
#[derive(Default)]
pub struct HostCaches {
    caches: HashMap<String, WheelCache>,
}

impl HostCaches {
    /// The cache `spec` (a record's `cache`: an absolute path or one under
    /// `~/`) on this host, listed on first use. With `dry_run`, the listing
    /// changes nothing on the host, not even to make the directory.
    pub fn open(
        &mut self,
        connection: &mut Connection,
        spec: &str,
        dry_run: bool,
    ) -> Result<&mut WheelCache> {
        if !self.caches.contains_key(spec) {
            let dir = remote::cache_dir(spec).context("field `cache`")?;
            let cache = WheelCache::list(connection, dir, !dry_run)
                .with_context(|| format!("wheel cache {spec}"))?;
            self.caches.insert(spec.to_string(), cache);
        }
        Ok(self.caches.get_mut(spec).expect("listed above"))
    }
}

/// One cache directory on one host, as far as this run knows it.
pub struct WheelCache {
    /// The directory, absolute (the home expanded by the host).
    dir: String,
    /// `SHA256/FILE` of every wheel it holds.
    held: HashSet<String>,
    /// Those of `held` whose bytes this run saw hash to their name.
    checked: HashSet<String>,
}

impl WheelCache {
    fn list(connection: &mut Connection, dir: &str, create: bool) -> Result<WheelCache> {
        let finished = connection.run(&remote::cache_listing_command(dir, create), b"")?;
        let CacheListing { dir, held } = CacheListing::parse(&finished)?;
        Ok(WheelCache {
            dir,
            held,
            checked: HashSet::new(),
        })
    }

    /// Hash on the host the wheels of `wheels` it holds that this run has
    /// not checked yet; one that no longer hashes to its name is deleted
    /// there and is no longer held (the push sends it again).
    pub fn check(&mut self, connection: &mut Connection, wheels: &[Wheel]) -> Result<()> {
        let mut unchecked: Vec<String> = wheels
            .iter()
            .map(key)
            .filter(|k| self.held.contains(k) && !self.checked.contains(k))
            .collect();
        unchecked.sort();
        unchecked.dedup();
        if unchecked.is_empty() {
            return Ok(());
        }
        let command = remote::cache_check_command(&self.dir, &unchecked);
        let bad = remote::read_cache_check(&connection.run(&command, b"")?)?;
        for wheel in &bad {
            self.held.remove(wheel);
        }
        self.checked
            .extend(unchecked.into_iter().filter(|k| !bad.contains(k)));
        Ok(())
    }

    /// Where `wheel` is (or will be) on the host.
    pub fn path_of(&self, wheel: &Wheel) -> String {
        format!("{}/{}", self.dir, key(wheel))
    }

    /// The wheels of `wheels` the cache does not hold, each once.
    pub fn missing<'w>(&self, wheels: &'w [Wheel]) -> Vec<&'w Wheel> {
        let mut seen = HashSet::new();
        wheels
            .iter()
            .filter(|w| !self.held.contains(&key(w)) && seen.insert(key(w)))
            .collect()
    }

    /// Count `wheels` as held without sending them (`--dry-run`: the host's
    /// next target would not send them again either).
    pub fn suppose_held(&mut self, wheels: &[&Wheel]) {
        self.held.extend(wheels.iter().map(|w| key(w)));
    }

    /// Send `wheels` (the missing ones) and put them in place: each to a
    /// temporary name ([`Connection::upload`]), then one command on the host
    /// checks every sha256 and renames the good ones. A wheel that fails is named in the
    /// error and not counted as held; those that passed are.
    pub fn upload(&mut self, connection: &mut Connection, wheels: &[&Wheel]) -> Result<()> {
        if wheels.is_empty() {
            return Ok(());
        }
        let nonce = format!(
            "{}-{}",
            std::process::id(),
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        );
        let temps: Vec<String> = wheels
            .iter()
            .map(|w| format!(".{}.{nonce}.part", w.file))
            .collect();
        for (wheel, temp) in wheels.iter().zip(&temps) {
            connection
                .upload(&wheel.path, &format!("{}/{temp}", self.dir))
                .with_context(|| format!("cannot upload {} to {}", wheel.file, self.dir))?;
        }
        let entries: Vec<(&str, &str, &str)> = wheels
            .iter()
            .zip(&temps)
            .map(|(w, t)| (w.sha256.as_str(), w.file.as_str(), t.as_str()))
            .collect();
        let finished = connection.run(&remote::cache_commit_command(&self.dir, &entries), b"")?;
        let commit = CacheCommit::parse(&finished);
        self.checked.extend(commit.placed.iter().cloned());
        self.held.extend(commit.placed);
        if let Some(failure) = commit.failure {
            bail!("uploading to {}: {failure}", self.dir);
        }
        Ok(())
    }
}

/// A wheel's name in the cache, relative to its directory.
fn key(wheel: &Wheel) -> String {
    format!("{}/{}", wheel.sha256, wheel.file)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::LocalConnection;
    use std::fs;

    fn wheel(dir: &std::path::Path, file: &str, bytes: &[u8]) -> Wheel {
        let path = dir.join(file);
        fs::write(&path, bytes).unwrap();
        let (sha256, size) = crate::wheel::sha256_file(&path).unwrap();
        Wheel {
            file: file.to_string(),
            sha256,
            size,
            path,
        }
    }

    #[test]
    fn uploads_land_under_their_hash_and_bad_ones_leave_nothing() {
        let local = tempfile::tempdir().unwrap();
        let remote_dir = tempfile::tempdir().unwrap();
        let spec = remote_dir.path().join("cache dir").display().to_string();
        let mut connection = Connection::Local(LocalConnection::new("me"));
        let good = wheel(local.path(), "a-1.0-py3-none-any.whl", b"good bytes");
        let mut bad = wheel(local.path(), "b-1.0-py3-none-any.whl", b"bad bytes");
        bad.sha256 = "0".repeat(64);

        // A dry run lists a missing directory as empty and makes nothing.
        let mut dry = HostCaches::default();
        let cache = dry.open(&mut connection, &spec, true).unwrap();
        assert_eq!(cache.missing(&[good.clone(), good.clone()]).len(), 1);
        assert!(!remote_dir.path().join("cache dir").exists());

        let mut caches = HostCaches::default();
        let cache = caches.open(&mut connection, &spec, false).unwrap();
        let err = cache
            .upload(&mut connection, &[&good, &bad])
            .unwrap_err()
            .to_string();
        assert!(err.contains("b-1.0-py3-none-any.whl"), "{err}");
        assert!(!err.contains("a-1.0"), "{err}");
        assert!(cache.missing(std::slice::from_ref(&good)).is_empty());
        assert_eq!(cache.missing(std::slice::from_ref(&bad)).len(), 1);
        let placed = fs::read(cache.path_of(&good)).unwrap();
        assert_eq!(placed, b"good bytes");
        // Nothing but the good wheel's directory: the bad upload is gone.
        let names: Vec<String> = fs::read_dir(&cache.dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, std::slice::from_ref(&good.sha256));

        // A new run lists what is there.
        let mut again = HostCaches::default();
        let cache = again.open(&mut connection, &spec, false).unwrap();
        assert!(cache.missing(std::slice::from_ref(&good)).is_empty());

        // A copy changed on the host is found by the check, deleted, and
        // missing again; a good one stays.
        fs::write(cache.path_of(&good), b"good").unwrap();
        cache
            .check(&mut connection, std::slice::from_ref(&good))
            .unwrap();
        assert_eq!(cache.missing(std::slice::from_ref(&good)).len(), 1);
        assert!(!std::path::Path::new(&cache.path_of(&good)).exists());
        cache.upload(&mut connection, &[&good]).unwrap();
        let mut third = HostCaches::default();
        let cache = third.open(&mut connection, &spec, false).unwrap();
        cache
            .check(&mut connection, std::slice::from_ref(&good))
            .unwrap();
        assert!(cache.missing(std::slice::from_ref(&good)).is_empty());
    }

    #[test]
    fn the_home_is_expanded_on_the_host() {
        let mut connection = Connection::Local(LocalConnection::new("me"));
        let home = tempfile::tempdir().unwrap();
        let dir = remote::cache_dir("~/it's here").unwrap();
        let command = format!(
            "HOME={}; {}",
            crate::shell::quote(&home.path().display().to_string()),
            remote::cache_listing_command(dir, true)
        );
        let finished = connection.run(&command, b"").unwrap();
        assert!(finished.success(), "{}", finished.stderr_text());
        assert!(home.path().join("it's here").is_dir());
        assert!(remote::cache_dir("relative/dir").is_err());
        assert!(remote::cache_dir("~other/dir").is_err());
    }
}
