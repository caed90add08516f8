//! PEP 751 lock files (`pylock.toml`): read as the requirements of vd-diff,
//! and written by vd-export from what a target holds.
//!
//! A lock names every package to install and the files that may be
//! installed for it, by hash. vd installs wheels from its own repository
//! and never from the URLs a lock names, so reading one keeps, per target,
//! the packages whose `marker` and `requires-python` apply there, pinned to
//! their version and to the lock's sha256 digests; a package the repository
//! has no wheel of with one of those digests is an error naming it, and so
//! is a package the lock gives only as a source (sdist, VCS, directory,
//! archive), which vd cannot install. What the lock says of indexes,
//! dependencies, extras and groups is not needed for that and is not read.
//!
//! The file is TOML, read and written by the `toml` crate through the
//! serde types here; no TOML is written by hand.

use crate::bounded;
use crate::repo::Index;
use crate::requirement::{Origin, Requirement, Requirements};
use crate::wheel;
use anyhow::{anyhow, bail, Context, Result};
use pep508_rs::pep440_rs::Version;
use pep508_rs::{MarkerEnvironment, MarkerTree};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use toml::Spanned;

/// The lock-version vd writes; it reads any 1.x.
pub const LOCK_VERSION: &str = "1.0";

/// Whether a file's name says it is a PEP 751 lock: `pylock.toml`, or
/// `pylock.NAME.toml` with no dot in NAME.
pub fn is_lock_file(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    match name
        .strip_prefix("pylock.")
        .and_then(|n| n.strip_suffix("toml"))
    {
        Some("") => true,
        Some(middle) => middle
            .strip_suffix('.')
            .is_some_and(|m| !m.is_empty() && !m.contains('.')),
        None => false,
    }
}

/// A pylock.toml, as far as vd reads or writes it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Lock {
    pub lock_version: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub environments: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requires_python: Option<String>,
    #[serde(default)]
    pub created_by: String,
    /// Each package with where it is in the file (for messages).
    #[serde(default)]
    pub packages: Vec<Spanned<Package>>,
}

/// One `[[packages]]` entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Package {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub marker: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requires_python: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub wheels: Vec<LockedWheel>,
    /// The sources vd cannot install, kept only to name them in errors.
    #[serde(default, skip_serializing)]
    pub sdist: Option<toml::Value>,
    #[serde(default, skip_serializing)]
    pub vcs: Option<toml::Value>,
    #[serde(default, skip_serializing)]
    pub directory: Option<toml::Value>,
    #[serde(default, skip_serializing)]
    pub archive: Option<toml::Value>,
}

/// One `[[packages.wheels]]` entry: a wheel file, where it is, its hashes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LockedWheel {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Algorithm name to hex digest.
    #[serde(default)]
    pub hashes: BTreeMap<String, String>,
}

/// A lock read from a file: what it says, and where it was read from.
#[derive(Debug)]
pub struct LockFile {
    path: PathBuf,
    text: String,
    lock: Lock,
}

impl LockFile {
    /// Read and check a pylock.toml: TOML that has the keys of a lock, of a
    /// lock-version whose major version is 1. Errors name the file, and the
    /// line where the TOML parser gives one.
    pub fn read(path: &Path) -> Result<LockFile> {
        let text = bounded::read_text(path, bounded::REQUIREMENTS, "lock file")?;
        let lock: Lock = toml::from_str(&text).map_err(|e| {
            let place = match e.span() {
                Some(span) => format!("{} line {}", path.display(), line_at(&text, span.start)),
                None => path.display().to_string(),
            };
            anyhow!("{place}: not a PEP 751 lock: {}", e.message().trim_end())
        })?;
        let major = lock.lock_version.split('.').next().unwrap_or_default();
        if major != "1" {
            bail!(
                "{}: lock-version {:?} is not one vd reads (it reads 1.x locks, PEP 751)",
                path.display(),
                lock.lock_version
            );
        }
        Ok(LockFile {
            path: path.to_path_buf(),
            text,
            lock,
        })
    }

    /// The pins of one target (its PEP 508 environment `env`): the packages
    /// whose marker and requires-python apply, each `==` its version and
    /// to the sha256 digests of its wheels, each checked against the
    /// repository.
    pub fn pins_for(&self, env: &MarkerEnvironment, index: &Index) -> Result<Requirements> {
        self.check_environment(env)?;
        let mut reqs = Requirements::default();
        for package in &self.lock.packages {
            let origin = Origin::File {
                path: self.path.clone(),
                line: line_at(&self.text, package.span().start),
            };
            let pin = self
                .pin(package.get_ref(), env, origin.clone(), index)
                .with_context(|| format!("{origin}: package {}", package.get_ref().name))?;
            reqs.requirements.extend(pin);
        }
        Ok(reqs)
    }

    /// The lock's own `requires-python` and `environments`, for the target.
    fn check_environment(&self, env: &MarkerEnvironment) -> Result<()> {
        let python = &env.python_full_version().version;
        if let Some(text) = &self.lock.requires_python {
            let wanted = wheel::requires_python(text)
                .with_context(|| format!("{}: requires-python", self.path.display()))?;
            if !wanted.contains(python) {
                bail!(
                    "{}: the lock requires Python {text}, and the target's is {python}",
                    self.path.display()
                );
            }
        }
        if self.lock.environments.is_empty() {
            return Ok(());
        }
        for text in &self.lock.environments {
            let marker = MarkerTree::from_str(text)
                .map_err(|e| anyhow!("{}: environments: {text:?}: {e}", self.path.display()))?;
            if marker.evaluate(env, &[]) {
                return Ok(());
            }
        }
        bail!(
            "{}: the lock is for none of the target's environments (its environments: {})",
            self.path.display(),
            self.lock.environments.join("; ")
        )
    }

    /// One package's pin for the target, or none when its marker or
    /// requires-python leaves it out.
    fn pin(
        &self,
        package: &Package,
        env: &MarkerEnvironment,
        origin: Origin,
        index: &Index,
    ) -> Result<Option<Requirement>> {
        if let Some(text) = &package.marker {
            let marker = MarkerTree::from_str(text).map_err(|e| anyhow!("marker {text:?}: {e}"))?;
            if !marker.evaluate(env, &[]) {
                return Ok(None);
            }
        }
        if let Some(text) = &package.requires_python {
            let wanted = wheel::requires_python(text).context("requires-python")?;
            if !wanted.contains(&env.python_full_version().version) {
                return Ok(None);
            }
        }
        if package.wheels.is_empty() {
            bail!(
                "the lock gives no wheel of it, only {}; vd installs wheels from its repository (build one and vd-add it)",
                package.sources()
            );
        }
        let version = package
            .version
            .as_deref()
            .ok_or_else(|| anyhow!("no version (vd pins every package of a lock)"))?;
        let version =
            Version::from_str(version).map_err(|e| anyhow!("version {version:?}: {e}"))?;
        let hashes = package
            .wheels
            .iter()
            .map(|w| w.sha256())
            .collect::<Result<Vec<_>>>()?;
        let name = wheel::normalize(&package.name);
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            bail!("not a project name");
        }
        check_repository(index, &name, &version, &hashes)?;
        let mut pin = Requirement::parse(&format!("{name}=={version}"), origin)?;
        pin.hashes = hashes;
        Ok(Some(pin))
    }
}

impl Package {
    /// The kinds of source the package names besides wheels, for messages.
    fn sources(&self) -> String {
        let kinds: Vec<&str> = [
            ("an sdist", &self.sdist),
            ("a VCS checkout", &self.vcs),
            ("a directory", &self.directory),
            ("an archive", &self.archive),
        ]
        .iter()
        .filter(|(_, source)| source.is_some())
        .map(|(kind, _)| *kind)
        .collect();
        match kinds.is_empty() {
            true => "no file at all".to_string(),
            false => kinds.join(" and "),
        }
    }
}

impl LockedWheel {
    /// The wheel's sha256, lower-case hex; a wheel without one cannot be
    /// matched to the repository.
    fn sha256(&self) -> Result<String> {
        let digest = self.hashes.get("sha256").ok_or_else(|| {
            anyhow!(
                "wheel {} has no sha256 hash (vd matches a lock's wheels to its repository by sha256)",
                self.name.as_deref().or(self.url.as_deref()).or(self.path.as_deref()).unwrap_or("")
            )
        })?;
        if digest.len() != 64 || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
            bail!("sha256 {digest:?} is not 64 hex digits");
        }
        Ok(digest.to_ascii_lowercase())
    }
}

/// That the repository has a wheel of `name` `version` with one of the
/// lock's digests: else which of the two it lacks, the version or a wheel
/// with the lock's hash.
fn check_repository(index: &Index, name: &str, version: &Version, hashes: &[String]) -> Result<()> {
    let mut others = Vec::new();
    for &w in index.wheels_of(name) {
        let file = index.name(w);
        if file.version != *version {
            continue;
        }
        let sha = index.sha256(w)?;
        if hashes.iter().any(|h| h == sha) {
            return Ok(());
        }
        others.push(format!("{} (sha256 {sha})", file.file));
    }
    if others.is_empty() {
        bail!("the repository has no wheel of {name} {version} (vd-add it)");
    }
    bail!(
        "no wheel of {name} {version} in the repository has a sha256 the lock lists: it has {}",
        others.join(", ")
    )
}

/// The line (from 1) of a byte offset in `text`.
fn line_at(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

impl Lock {
    /// A new lock of `packages`, written by vd.
    pub fn of_packages(packages: Vec<Package>) -> Lock {
        Lock {
            lock_version: LOCK_VERSION.to_string(),
            environments: Vec::new(),
            requires_python: None,
            created_by: "vd".to_string(),
            packages: packages
                .into_iter()
                .map(|p| Spanned::new(0..0, p))
                .collect(),
        }
    }

    /// The lock as TOML text.
    pub fn to_toml(&self) -> Result<String> {
        toml::to_string(self).context("cannot write the lock as TOML")
    }
}

impl Package {
    /// A package of `name` and `version` with one wheel, or none.
    pub fn pinned(name: &str, version: &str, wheel: Option<LockedWheel>) -> Package {
        Package {
            name: name.to_string(),
            version: Some(version.to_string()),
            marker: None,
            requires_python: None,
            wheels: wheel.into_iter().collect(),
            sdist: None,
            vcs: None,
            directory: None,
            archive: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{assert_contains, wheel_index as index};

    fn env(python: &str, platform: &str) -> MarkerEnvironment {
        let short: String = python.split('.').take(2).collect::<Vec<_>>().join(".");
        serde_json::from_value(serde_json::json!({
            "implementation_name": "cpython", "implementation_version": python,
            "os_name": "posix", "platform_machine": "x86_64",
            "platform_python_implementation": "CPython", "platform_release": "6.1",
            "platform_system": "Linux", "platform_version": "#1", "python_full_version": python,
            "python_version": short, "sys_platform": platform,
        }))
        .unwrap()
    }

    fn lock(text: &str) -> (tempfile::TempDir, Result<LockFile>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pylock.toml");
        std::fs::write(&path, text).unwrap();
        let read = LockFile::read(&path);
        (dir, read)
    }

    const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    #[test]
    fn lock_files_are_known_by_their_names() {
        for name in ["pylock.toml", "pylock.web.toml", "/x/pylock.prod-1.toml"] {
            assert!(is_lock_file(Path::new(name)), "{name}");
        }
        for name in [
            "pylock.a.b.toml",
            "pylock..toml",
            "requirements.txt",
            "xpylock.toml",
        ] {
            assert!(!is_lock_file(Path::new(name)), "{name}");
        }
    }

    #[test]
    fn markers_and_requires_python_choose_the_packages_of_a_target() {
        let text = format!(
            r#"lock-version = "1.0"
created-by = "test"
[[packages]]
name = "Six"
version = "1.17.0"
wheels = [{{ name = "six-1.17.0-py2.py3-none-any.whl", url = "https://x/six.whl", hashes = {{ sha256 = "{A}" }} }}]
[[packages]]
name = "win-only"
version = "1.0"
marker = "sys_platform == 'win32'"
sdist = {{ url = "https://x/w.tar.gz", hashes = {{ sha256 = "{B}" }} }}
[[packages]]
name = "old"
version = "1.0"
requires-python = "<3"
wheels = [{{ url = "https://x/old.whl", hashes = {{ sha256 = "{B}" }} }}]
"#
        );
        let (_dir, read) = lock(&text);
        let read = read.unwrap();
        let repo = index(&[("six-1.17.0-py2.py3-none-any.whl", A)]);
        let pins = read.pins_for(&env("3.12.1", "linux"), &repo).unwrap();
        let texts: Vec<(&str, &Vec<String>)> = pins
            .requirements
            .iter()
            .map(|r| (r.text.as_str(), &r.hashes))
            .collect();
        assert_eq!(texts, [("six==1.17.0", &vec![A.to_string()])]);
        assert_contains(
            &pins.requirements[0].origin.to_string(),
            &["pylock.toml line 3"],
        );
        // On Windows the sdist-only package applies, and is an error.
        let e = format!(
            "{:#}",
            read.pins_for(&env("3.12.1", "win32"), &repo).unwrap_err()
        );
        assert_contains(
            &e,
            &["line 7: package win-only: the lock gives no wheel of it, only an sdist"],
        );
    }

    #[test]
    fn a_marker_on_dependency_groups_is_an_error_naming_the_package() {
        let text = format!(
            "lock-version = \"1.0\"\n[[packages]]\nname = \"pytest\"\nversion = \"8.0\"\nmarker = \"'dev' in dependency_groups\"\nwheels = [{{ url = \"u\", hashes = {{ sha256 = \"{A}\" }} }}]\n"
        );
        let (_dir, read) = lock(&text);
        let repo = index(&[("pytest-8.0-py3-none-any.whl", A)]);
        let e = read.unwrap().pins_for(&env("3.12.1", "linux"), &repo);
        let e = format!("{:#}", e.unwrap_err());
        assert_contains(&e, &["pylock.toml line 2: package pytest: marker"]);
    }

    #[test]
    fn a_wheel_the_repository_lacks_or_hashes_otherwise_is_named() {
        let text = format!(
            "lock-version = \"1.0\"\n[[packages]]\nname = \"six\"\nversion = \"1.17.0\"\nwheels = [{{ url = \"u\", hashes = {{ sha256 = \"{A}\" }} }}]\n"
        );
        let (_dir, read) = lock(&text);
        let read = read.unwrap();
        let e = env("3.12.1", "linux");
        let other = index(&[("six-1.17.0-py2.py3-none-any.whl", B)]);
        let msg = format!("{:#}", read.pins_for(&e, &other).unwrap_err());
        assert_contains(
            &msg,
            &["package six: no wheel of six 1.17.0 in the repository has a sha256 the lock lists"],
        );
        let empty = index(&[("six-1.16.0-py2.py3-none-any.whl", A)]);
        let msg = format!("{:#}", read.pins_for(&e, &empty).unwrap_err());
        assert_contains(
            &msg,
            &["package six: the repository has no wheel of six 1.17.0"],
        );
    }

    #[test]
    fn an_unknown_lock_version_or_bad_toml_names_the_file() {
        let (_dir, read) = lock("lock-version = \"2.0\"\n");
        assert_contains(
            &format!("{:#}", read.unwrap_err()),
            &["pylock.toml: lock-version \"2.0\" is not one vd reads"],
        );
        let (_dir, read) = lock("lock-version = \"1.0\"\n[[packages]]\nname = 3\n");
        assert_contains(
            &format!("{:#}", read.unwrap_err()),
            &["pylock.toml line 3: not a PEP 751 lock"],
        );
    }

    #[test]
    fn a_written_lock_reads_back() {
        let wheel = LockedWheel {
            name: Some("six-1.17.0-py2.py3-none-any.whl".to_string()),
            url: None,
            path: Some("/srv/wheels/six-1.17.0-py2.py3-none-any.whl".to_string()),
            hashes: BTreeMap::from([("sha256".to_string(), A.to_string())]),
        };
        let lock = Lock::of_packages(vec![
            Package::pinned("six", "1.17.0", Some(wheel)),
            Package::pinned("private", "0.1", None),
        ]);
        let text = lock.to_toml().unwrap();
        let back: Lock = toml::from_str(&text).unwrap();
        assert_eq!(back.lock_version, "1.0");
        assert_eq!(back.created_by, "vd");
        assert_eq!(back.packages.len(), 2);
        assert_eq!(back.packages[0].get_ref().wheels[0].sha256().unwrap(), A);
        assert!(back.packages[1].get_ref().wheels.is_empty());
    }
}
