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
//! The cache holds the installer too: a uv wheel of the repository is sent
//! like any wheel, and its binary is unpacked beside it (`SHA256/uv`) by the
//! target's python and started once per run and host ([`WheelCache::uv`]);
//! a uv that cannot run there is remembered for the rest of the run, so the
//! host's other targets neither try it again nor say so again.
//!
//! What is not here: which wheels a target needs (the plan, [`crate::push`])
//! how a command reaches the host ([`crate::transport`]), and the commands
//! and what they print ([`crate::remote::cache`]).

use crate::remote::cache::{self as remote, CacheCommit, CacheListing, ReadyUv};
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
    /// By uv wheel (`SHA256/FILE`): its binary ready to run, or why it
    /// cannot run on this host.
    uv: HashMap<String, Result<ReadyUv, String>>,
}

/// What [`WheelCache::uv`] found.
pub struct UvOnHost {
    /// The binary, or why it cannot run here.
    pub ready: Result<ReadyUv, String>,
    /// This is the first time this run asked (for a message said once).
    pub first: bool,
}

impl WheelCache {
    fn list(connection: &mut Connection, dir: &str, create: bool) -> Result<WheelCache> {
        let finished = connection.run(&remote::cache_listing_command(dir, create), b"")?;
        let CacheListing { dir, held } = CacheListing::parse(&finished)?;
        Ok(WheelCache {
            dir,
            held,
            checked: HashSet::new(),
            uv: HashMap::new(),
        })
    }

    /// The uv of the cached uv wheel `wheel` ready on the host, unpacked by
    /// `python` (a CPython 3.8 or newer there), or why it cannot run there;
    /// asked of the host once per run. The wheel must be held (checked and
    /// uploaded first).
    pub fn uv(
        &mut self,
        connection: &mut Connection,
        wheel: &Wheel,
        python: &str,
    ) -> Result<UvOnHost> {
        let wheel = key(wheel);
        if let Some(ready) = self.uv.get(&wheel) {
            return Ok(UvOnHost {
                ready: ready.clone(),
                first: false,
            });
        }
        let command = remote::cache_uv_command(&self.dir, &wheel, python);
        let ready = remote::read_cache_uv(&connection.run(&command, b"")?)?;
        self.uv.insert(wheel, ready.clone());
        Ok(UvOnHost { ready, first: true })
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

    /// A wheel named like uv's whose binary is the shell script `script`,
    /// with its RECORD, written by python3's zipfile.
    fn uv_wheel(dir: &std::path::Path, version: &str, script: &str) -> Wheel {
        let file = format!("uv-{version}-py3-none-manylinux_2_17_x86_64.whl");
        let program = r#"
import base64, hashlib, sys, zipfile
out, version, script = sys.argv[1:]
files = {"uv-%s.data/scripts/uv" % version: script.encode()}
rows = ["%s,sha256=%s,%d" % (n, base64.urlsafe_b64encode(hashlib.sha256(d).digest()).rstrip(b"=").decode(), len(d)) for n, d in files.items()]
files["uv-%s.dist-info/RECORD" % version] = "\n".join(rows).encode()
with zipfile.ZipFile(out, "w") as archive:
    for name, data in files.items():
        archive.writestr(name, data)
"#;
        let path = dir.join(&file);
        let made = std::process::Command::new("python3")
            .args(["-c", program])
            .arg(&path)
            .args([version, script])
            .status()
            .unwrap();
        assert!(made.success());
        wheel(dir, &file, &fs::read(&path).unwrap())
    }

    #[test]
    fn uv_is_unpacked_beside_its_wheel_and_started_once_per_run() {
        let local = tempfile::tempdir().unwrap();
        let remote_dir = tempfile::tempdir().unwrap();
        let spec = remote_dir.path().display().to_string();
        let mut connection = Connection::Local(LocalConnection::new("me"));
        let good = uv_wheel(local.path(), "1.0", "#!/bin/sh\necho 'uv 1.0 (test)'\n");
        let broken = uv_wheel(
            local.path(),
            "2.0",
            "#!/bin/sh\necho 'needs GLIBC_2.99' >&2\nexit 3\n",
        );

        let mut caches = HostCaches::default();
        let cache = caches.open(&mut connection, &spec, false).unwrap();
        cache.upload(&mut connection, &[&good, &broken]).unwrap();
        let first = cache.uv(&mut connection, &good, "python3").unwrap();
        let ready = first.ready.unwrap();
        assert!(first.first);
        assert_eq!(ready.version, "uv 1.0 (test)");
        assert_eq!(ready.path, format!("{}/{}/uv", cache.dir, good.sha256));
        assert!(!cache.uv(&mut connection, &good, "python3").unwrap().first);
        let why = cache.uv(&mut connection, &broken, "python3").unwrap().ready;
        let why = why.unwrap_err();
        assert!(
            why.contains("--version failed (exit status 3): needs GLIBC_2.99"),
            "{why}"
        );

        // A binary changed on the host is put back from its wheel by the
        // next run.
        fs::write(&ready.path, "#!/bin/sh\necho tampered\n").unwrap();
        let mut next = HostCaches::default();
        let cache = next.open(&mut connection, &spec, false).unwrap();
        let again = cache.uv(&mut connection, &good, "python3").unwrap();
        assert_eq!(again.ready.unwrap().version, "uv 1.0 (test)");
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
