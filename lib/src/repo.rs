//! The repository: a directory of wheels, and its release log.
//!
//! Wheels enter it only through [`Adder::add`], which checks them first and
//! then copies them in atomically (temporary file, fsync, link into place), so
//! a reader never sees half a wheel and two writers never overwrite each
//! other. A filename, once in the repository, always means the same bytes.
//!
//! One project is told apart: [`UV`], the installer vd-push runs instead of
//! pip where it can. Its wheels are added like any other (sha256-checked,
//! logged), but they are not a requirement of any venv: vd-diff plans uv
//! into a venv only when the venv's requirements name it, and vd-push picks
//! the uv wheel for a host's platform with [`uv_wheel_for`].

use crate::bounded;
use crate::log::{Event, ReleaseLog};
use crate::tags::Tags;
use crate::wheel::{self, CheckedWheel, Metadata, WheelName};
use anyhow::{anyhow, bail, Context, Result};
use std::cell::OnceCell;
use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// What [`Adder::add`] did with a wheel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Added {
    /// Copied in, and a `release` event logged.
    Added,
    /// The same bytes were already there; nothing was done.
    Present,
}

impl Added {
    pub fn as_str(self) -> &'static str {
        match self {
            Added::Added => "added",
            Added::Present => "present",
        }
    }
}

pub struct Repo {
    dir: PathBuf,
    log: ReleaseLog,
}

/// Wheels larger than this are checked and copied from disk in a stream
/// rather than read into memory once.
const IN_MEMORY_LIMIT: u64 = 256 << 20;

impl Repo {
    /// Open a repository for reading; it must exist.
    pub fn open(dir: &Path) -> Result<Repo> {
        if !dir.is_dir() {
            bail!(
                "repository {} is not a directory (set --repo or VD_REPO)",
                dir.display()
            );
        }
        Ok(Repo {
            dir: dir.to_path_buf(),
            log: ReleaseLog::new(dir),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Start adding wheels: create the directory if needed, and check that
    /// the release log reads cleanly — vd appends to a log it can read, and
    /// never rewrites one it cannot.
    pub fn adder(dir: &Path) -> Result<Adder> {
        fs::create_dir_all(dir)
            .with_context(|| format!("cannot create repository {}", dir.display()))?;
        let repo = Repo::open(dir)?;
        sweep_temporary_files(dir);
        let released = repo
            .log
            .read()?
            .into_iter()
            .filter(|e| e.event == "release")
            .map(|e| (e.wheel, e.sha256))
            .collect();
        let mut identities: HashMap<Identity, Vec<String>> = HashMap::new();
        for name in repo.wheel_names()? {
            identities
                .entry(Identity::of(&name))
                .or_default()
                .push(name.file);
        }
        Ok(Adder {
            repo,
            released,
            identities,
            pending: Vec::new(),
        })
    }

    /// Every wheel filename in the repository, sorted; files that are not
    /// wheels (the log, temporary files) are left out.
    pub fn wheel_names(&self) -> Result<Vec<WheelName>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(&self.dir)
            .with_context(|| format!("cannot list {}", self.dir.display()))?
        {
            let entry = entry?;
            let Some(file) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if file.starts_with('.') || !file.ends_with(".whl") {
                continue;
            }
            names.push(WheelName::parse(&file)?);
        }
        names.sort_by(|a, b| a.file.cmp(&b.file));
        Ok(names)
    }

    /// The repository's wheels of the installer [`UV`].
    pub fn uv_wheels(&self) -> Result<Vec<WheelName>> {
        let mut wheels = self.wheel_names()?;
        wheels.retain(|w| w.name == UV);
        Ok(wheels)
    }
}

/// The project name of the installer a repository may carry.
pub const UV: &str = "uv";

/// The uv wheel of `wheels` an interpreter with `tags` runs best: the
/// highest version with a tag it supports, its most specific tag first (a
/// uv wheel is `py3-none-PLATFORM`: the platform decides). `None` when no
/// wheel is for its platform.
pub fn uv_wheel_for<'w>(wheels: &'w [WheelName], tags: &Tags) -> Option<&'w WheelName> {
    wheels
        .iter()
        .filter(|w| w.name == UV)
        .filter_map(|w| Some((w, tags.priority(w)?)))
        .max_by(|(a, a_rank), (b, b_rank)| {
            (&a.version, a.build_key())
                .cmp(&(&b.version, b.build_key()))
                .then(b_rank.cmp(a_rank))
        })
        .map(|(w, _)| w)
}

/// Adds wheels to a repository. Each wheel is checked, written to a temporary
/// file, fsynced and linked into place at once; the directory sync and the
/// `release` events are batched into [`Adder::commit`], one fsync and one log
/// write for many wheels. A crash before the commit leaves wheels in place
/// without their events; the next add of such a wheel writes the event, since
/// the adder knows from the log which files have been released.
pub struct Adder {
    repo: Repo,
    released: HashSet<(String, String)>,
    /// The repository's wheel files by what they are to pip.
    identities: HashMap<Identity, Vec<String>>,
    pending: Vec<Event>,
}

/// What a wheel is to pip and to the planner: its normalized name and
/// version, and its tags. `Alpha-1.0-py3-none-any.whl` and
/// `alpha-1.0.0-py3-none-any.whl` are one wheel under two filenames, so
/// other bytes under the second would shadow the first. The build tag is
/// left out on purpose: `alpha-1.0-1-py3-none-any.whl` wins over
/// `alpha-1.0-py3-none-any.whl` for new venvs, so other bytes under it
/// would give them another build than the venvs made before, and the drift
/// fingerprint (name and version) could not tell.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Identity {
    name: String,
    /// PEP 440 normal form with trailing `.0` release parts dropped.
    version: String,
    tags: Vec<(String, String, String)>,
}

impl Identity {
    fn of(wheel: &WheelName) -> Identity {
        let mut release = wheel.version.release().to_vec();
        while release.len() > 1 && release.last() == Some(&0) {
            release.pop();
        }
        let version = wheel.version.clone().with_release(release).to_string();
        let mut tags: Vec<(String, String, String)> = wheel
            .tags()
            .map(|(p, a, pl)| (p.to_string(), a.to_string(), pl.to_string()))
            .collect();
        tags.sort();
        tags.dedup();
        Identity {
            name: wheel.name.clone(),
            version,
            tags,
        }
    }
}

impl Adder {
    /// Check the wheel at `source` and link it in. The same file again is
    /// [`Added::Present`]; other bytes under a name already taken are refused.
    pub fn add(&mut self, source: &Path) -> Result<(CheckedWheel, Added)> {
        let shown = source.display();
        // A device or a FIFO would be read forever, or waited on.
        let size = bounded::regular_file(source)?.len();
        let (checked, bytes) = if size <= IN_MEMORY_LIMIT {
            let bytes = fs::read(source).with_context(|| format!("{shown}: cannot read"))?;
            (wheel::check_bytes(source, &bytes)?, Some(bytes))
        } else {
            (wheel::check(source)?, None)
        };
        self.refuse_shadowing(&checked)?;
        let dest = self.repo.dir.join(&checked.filename.file);
        // Most adds are of new wheels: try the link first and compare only
        // when the name is taken.
        let status = self.link_new(source, bytes.as_deref(), &checked, &dest)?;
        let key = (checked.filename.file.clone(), checked.sha256.clone());
        if !self.released.contains(&key) {
            let mut event = Event::now("release");
            event.name = checked.filename.name.clone();
            event.version = checked.filename.version.to_string();
            event.wheel = checked.filename.file.clone();
            event.sha256 = checked.sha256.clone();
            if status == Added::Present {
                event.detail = "found in the repository without its release event".into();
            }
            self.pending.push(event);
            self.released.insert(key);
        }
        let files = self
            .identities
            .entry(Identity::of(&checked.filename))
            .or_default();
        if !files.contains(&checked.filename.file) {
            files.push(checked.filename.file.clone());
        }
        Ok((checked, status))
    }

    /// Refuse a wheel that another file in the repository, under another
    /// filename, already is (same name, version and tags, whatever the build
    /// tag) with other bytes.
    fn refuse_shadowing(&self, checked: &CheckedWheel) -> Result<()> {
        let Some(files) = self.identities.get(&Identity::of(&checked.filename)) else {
            return Ok(());
        };
        for file in files {
            if *file == checked.filename.file {
                continue;
            }
            let path = self.repo.dir.join(file);
            let sha = match wheel::sha256_file(&path) {
                Ok((sha, _)) => sha,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
            };
            if sha != checked.sha256 {
                bail!(
                    "{} is the same wheel as {file}, already in the repository with other content (same name, version and tags; a build tag does not make another release; sha256 {sha} there, {} here); a released wheel is never shadowed: give the new build a new version",
                    checked.filename.file,
                    checked.sha256
                );
            }
        }
        Ok(())
    }

    /// Make the wheels added so far durable and log their `release` events.
    pub fn commit(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        sync_dir(&self.repo.dir)?;
        self.repo.log.append_releases(&self.pending)?;
        self.pending.clear();
        Ok(())
    }

    fn link_new(
        &self,
        source: &Path,
        bytes: Option<&[u8]>,
        checked: &CheckedWheel,
        dest: &Path,
    ) -> Result<Added> {
        if dest.exists() {
            if let Some(status) = self.compare_existing(dest, checked)? {
                return Ok(status);
            }
        }
        let temp = self.write_temp(source, bytes, checked)?;
        // A hard link fails when the name exists, where rename would replace
        // it: of two writers racing on one name, exactly one wins.
        let linked = fs::hard_link(&temp, dest);
        let _ = fs::remove_file(&temp);
        match linked {
            Ok(()) => Ok(Added::Added),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                match self.compare_existing(dest, checked)? {
                    Some(status) => Ok(status),
                    None => bail!("{} appeared while it was being added", dest.display()),
                }
            }
            Err(e) => Err(e).with_context(|| format!("cannot write {}", dest.display())),
        }
    }

    fn compare_existing(&self, dest: &Path, checked: &CheckedWheel) -> Result<Option<Added>> {
        match wheel::sha256_file(dest) {
            Ok((sha, _)) if sha == checked.sha256 => Ok(Some(Added::Present)),
            Ok((sha, _)) => Err(anyhow!(
                "{} is already in the repository with other content (sha256 {} there, {} here); a released wheel is never replaced: give the new build a new version",
                checked.filename.file,
                sha,
                checked.sha256
            )),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", dest.display())),
        }
    }

    /// Write the wheel to a temporary name in the repository and fsync it.
    /// From memory the bytes are the ones checked; streamed from disk they
    /// are hashed again, since the source may have changed in between.
    fn write_temp(
        &self,
        source: &Path,
        bytes: Option<&[u8]>,
        checked: &CheckedWheel,
    ) -> Result<PathBuf> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let dir = &self.repo.dir;
        let temp = dir.join(format!(
            ".{}.{}.{}.tmp",
            checked.filename.file,
            process_id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let result = (|| -> io::Result<()> {
            let mut to = File::create_new(&temp)?;
            match bytes {
                Some(bytes) => to.write_all(bytes)?,
                None => {
                    io::copy(&mut File::open(source)?, &mut to)?;
                }
            }
            to.sync_data()
        })();
        if let Err(e) = result {
            let _ = fs::remove_file(&temp);
            return Err(e).with_context(|| {
                format!("cannot copy {} into {}", source.display(), dir.display())
            });
        }
        if bytes.is_none() {
            let (sha, _) = wheel::sha256_file(&temp)?;
            if sha != checked.sha256 {
                let _ = fs::remove_file(&temp);
                bail!("{} changed while it was being added", source.display());
            }
        }
        Ok(temp)
    }
}

/// How old a temporary file left by [`Adder`] must be before another run
/// removes it: a copy takes seconds, and a repository on a shared file
/// system may have writers on other machines, whose processes this one
/// cannot see.
const ABANDONED_AFTER: std::time::Duration = std::time::Duration::from_secs(3600);

/// Remove the `.{wheel}.{pid}.{n}.tmp` files a killed vd-add left behind:
/// those older than [`ABANDONED_AFTER`] whose process is gone. Best effort:
/// a file that cannot be removed is left for the next run.
fn sweep_temporary_files(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(stem) = name.strip_prefix('.').and_then(|n| n.strip_suffix(".tmp")) else {
            continue;
        };
        let mut parts = stem.rsplitn(3, '.');
        let (Some(counter), Some(pid), Some(wheel)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let Ok(pid) = pid.parse::<u32>() else {
            continue;
        };
        if !wheel.ends_with(".whl") || counter.parse::<u64>().is_err() || pid == process_id() {
            continue;
        }
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > ABANDONED_AFTER);
        let alive = Path::new(&format!("/proc/{pid}")).exists();
        if old && !alive {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// This process's id, asked of the kernel once.
fn process_id() -> u32 {
    static PID: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *PID.get_or_init(std::process::id)
}

/// The repository's wheels by project, listed once, for planning: what is
/// inside a wheel (METADATA) and the sha256 of the whole file are read only
/// when asked for, and at most once, so a run over many targets costs one
/// directory listing plus a read of each wheel it actually considers.
pub struct Index {
    dir: PathBuf,
    wheels: Vec<IndexedWheel>,
    by_name: HashMap<String, Vec<usize>>,
}

struct IndexedWheel {
    name: WheelName,
    metadata: OnceCell<Result<Metadata, String>>,
    sha256: OnceCell<Result<String, String>>,
}

impl Repo {
    /// List the repository into an [`Index`].
    pub fn index(&self) -> Result<Index> {
        let wheels = self.wheel_names()?.into_iter().map(|name| IndexedWheel {
            name,
            metadata: OnceCell::new(),
            sha256: OnceCell::new(),
        });
        Ok(Index::of(self.dir.clone(), wheels.collect()))
    }
}

impl Index {
    fn of(dir: PathBuf, wheels: Vec<IndexedWheel>) -> Index {
        let mut by_name: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, wheel) in wheels.iter().enumerate() {
            by_name.entry(wheel.name.name.clone()).or_default().push(i);
        }
        for ids in by_name.values_mut() {
            // Highest version first; the filename order breaks ties.
            ids.sort_by(|&a, &b| {
                let (a_name, b_name) = (&wheels[a].name, &wheels[b].name);
                b_name
                    .version
                    .cmp(&a_name.version)
                    .then(a_name.file.cmp(&b_name.file))
            });
        }
        Index {
            dir,
            wheels,
            by_name,
        }
    }

    /// An index of wheels that exist only in memory, with their METADATA
    /// and sha256 given: a repository for the planner's tests.
    #[cfg(test)]
    pub(crate) fn in_memory(wheels: Vec<(WheelName, Metadata, String)>) -> Index {
        let wheels = wheels
            .into_iter()
            .map(|(name, metadata, sha256)| IndexedWheel {
                name,
                metadata: OnceCell::from(Ok(metadata)),
                sha256: OnceCell::from(Ok(sha256)),
            })
            .collect();
        Index::of(PathBuf::from("/nonexistent"), wheels)
    }
}

impl Index {
    /// How many wheels the repository holds.
    pub fn len(&self) -> usize {
        self.wheels.len()
    }

    /// The wheels of one project (PEP 503 name), highest version first.
    pub fn wheels_of(&self, name: &str) -> &[usize] {
        self.by_name.get(name).map_or(&[], Vec::as_slice)
    }

    pub fn name(&self, wheel: usize) -> &WheelName {
        &self.wheels[wheel].name
    }

    /// The wheel's METADATA, read on first use.
    pub fn metadata(&self, wheel: usize) -> Result<&Metadata> {
        let entry = &self.wheels[wheel];
        entry
            .metadata
            .get_or_init(|| {
                wheel::read_metadata(&self.dir.join(&entry.name.file)).map_err(|e| format!("{e:#}"))
            })
            .as_ref()
            .map_err(|e| anyhow!("{e}"))
    }

    /// The sha256 of the whole wheel file, computed on first use.
    pub fn sha256(&self, wheel: usize) -> Result<&str> {
        let entry = &self.wheels[wheel];
        entry
            .sha256
            .get_or_init(|| {
                let path = self.dir.join(&entry.name.file);
                wheel::sha256_file(&path)
                    .map(|(sha, _)| sha)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))
            })
            .as_ref()
            .map(String::as_str)
            .map_err(|e| anyhow!("{e}"))
    }
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("cannot sync {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tags::Interpreter;

    fn linux_tags(libc_version: &str) -> Tags {
        let python = serde_json::json!({"implementation": "cpython", "version": "3.11.4",
            "platform": "linux-x86_64", "soabi": "", "ext_suffix": "", "pointer_bits": 64,
            "libc": "glibc", "libc_version": libc_version});
        let python: crate::record::Facts = serde_json::from_value(python).unwrap();
        Tags::new(&Interpreter::from_facts(&python, "Linux").unwrap())
    }

    #[test]
    fn picks_the_newest_uv_for_the_platform() {
        let wheels: Vec<WheelName> = [
            "uv-0.13.9-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
            "uv-0.13.9-py3-none-musllinux_1_1_x86_64.whl",
            "uv-0.14.0-py3-none-macosx_11_0_arm64.whl",
            "uv-0.12.0-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
            "uv-0.12.0-py3-none-manylinux_2_28_x86_64.whl",
            "six-1.16.0-py2.py3-none-any.whl",
        ]
        .iter()
        .map(|f| WheelName::parse(f).unwrap())
        .collect();
        let picked = |libc| uv_wheel_for(&wheels, &linux_tags(libc)).map(|w| w.file.as_str());
        // A newer uv for another platform is never chosen.
        assert_eq!(
            picked("2.31"),
            Some("uv-0.13.9-py3-none-manylinux_2_17_x86_64.manylinux2014_x86_64.whl")
        );
        // A glibc older than every uv wheel needs: none.
        assert_eq!(picked("2.12"), None);
        assert_eq!(uv_wheel_for(&wheels[5..], &linux_tags("2.31")), None);
    }
}
