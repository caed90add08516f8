//! What vd-export writes for a target: the distributions its venv holds,
//! each with the repository's wheel it came from, as a PEP 751 lock or a
//! CycloneDX SBOM; and the name of the file, one per target.
//!
//! The installed set is vd-freeze's (the venv as it is, not a plan), and
//! the wheel of each distribution is the repository's wheel of exactly that
//! version that the target's interpreter installs (by its tags), as vd-diff
//! chooses it. A distribution the repository has no such wheel of is still
//! listed, without a wheel or hash, and named to the caller.
//!
//! File names come from the record's host and venv, which any line of
//! input may set: they are cut down to characters that cannot leave the
//! output folder, and a name two targets would share is told apart by a
//! digest of the whole target, so no target's file replaces another's.

use crate::plan::wheel_of_version;
use crate::pylock::{Lock, LockedWheel, Package};
use crate::record::{Facts, Installed, Target};
use crate::repo::Index;
use crate::tags::Tags;
use anyhow::{anyhow, bail, Context, Result};
use cyclonedx_bom::external_models::date_time::DateTime;
use cyclonedx_bom::external_models::uri::Purl;
use cyclonedx_bom::models::bom::Bom;
use cyclonedx_bom::models::component::{Classification, Component, Components};
use cyclonedx_bom::models::hash::{Hash, HashAlgorithm, HashValue, Hashes};
use cyclonedx_bom::models::metadata::Metadata;
use cyclonedx_bom::models::property::{Properties, Property};
use cyclonedx_bom::models::tool::Tools;
use pep508_rs::pep440_rs::Version;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// The two formats vd-export writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A PEP 751 `pylock.toml`.
    Pylock,
    /// A CycloneDX 1.5 JSON SBOM.
    CycloneDx,
}

impl Format {
    /// The name of a file of this format about `stem`, as the format's
    /// tools look for it: `pylock.STEM.toml` (PEP 751 allows no dot in
    /// STEM), `STEM.cdx.json`.
    fn file_name(self, stem: &str) -> String {
        match self {
            Format::Pylock => format!("pylock.{stem}.toml"),
            Format::CycloneDx => format!("{stem}.cdx.json"),
        }
    }
}

/// One distribution a venv holds, and the repository's wheel of it.
#[derive(Debug, Clone)]
pub struct Holding {
    pub name: String,
    pub version: String,
    pub wheel: Option<HeldWheel>,
}

/// A repository wheel: its file name, its absolute path, its sha256.
#[derive(Debug, Clone)]
pub struct HeldWheel {
    pub file: String,
    pub path: PathBuf,
    pub sha256: String,
}

/// Each installed distribution, by name, with the repository's wheel of its
/// version for an interpreter of `tags`.
pub fn holdings(
    index: &Index,
    repo_dir: &Path,
    tags: &Tags,
    installed: &Installed,
) -> Result<Vec<Holding>> {
    let mut held = Vec::new();
    for (name, version) in installed {
        let wheel = match Version::from_str(version) {
            Ok(v) => wheel_of_version(index, tags, name, &v),
            Err(_) => None,
        };
        let wheel = match wheel {
            None => None,
            Some(w) => {
                let file = index.name(w).file.clone();
                Some(HeldWheel {
                    path: repo_dir.join(&file),
                    sha256: index.sha256(w)?.to_string(),
                    file,
                })
            }
        };
        held.push(Holding {
            name: name.clone(),
            version: version.clone(),
            wheel,
        });
    }
    Ok(held)
}

/// The holdings as a pylock.toml: each package with its version and its
/// wheel, by absolute path, with its sha256.
pub fn pylock(holdings: &[Holding]) -> Result<String> {
    let packages = holdings
        .iter()
        .map(|h| {
            let wheel = h.wheel.as_ref().map(|w| LockedWheel {
                name: Some(w.file.clone()),
                url: None,
                path: Some(w.path.display().to_string()),
                hashes: BTreeMap::from([("sha256".to_string(), w.sha256.clone())]),
            });
            Package::pinned(&h.name, &h.version, wheel)
        })
        .collect();
    Lock::of_packages(packages).to_toml()
}

/// The holdings as a CycloneDX 1.5 JSON SBOM of the target's venv: a
/// library component per distribution (purl `pkg:pypi/NAME@VERSION`, the
/// SHA-256 of its wheel), and the host, venv and interpreter as metadata.
pub fn cyclonedx(holdings: &[Holding], target: &Target, python: &Facts) -> Result<String> {
    let components = holdings
        .iter()
        .map(component_of)
        .collect::<Result<Vec<_>>>()?;
    let interpreter = format!(
        "{} {}",
        python.implementation.as_deref().unwrap_or("python"),
        python.version.as_deref().unwrap_or("unknown")
    );
    let mut properties = vec![
        Property::new("vd:host", &target.host),
        Property::new("vd:venv", &target.venv),
        Property::new("vd:interpreter", &interpreter),
    ];
    if let Some(user) = &target.user {
        properties.push(Property::new("vd:user", user));
    }
    if let Some(port) = target.port {
        properties.push(Property::new("vd:port", &port.to_string()));
    }
    if let Some(executable) = &python.executable {
        properties.push(Property::new("vd:executable", executable));
    }
    let mut venv = Component::new(
        Classification::Application,
        &format!("{}:{}", target.host, target.venv),
        "",
        None,
    );
    venv.version = None;
    venv.description = Some(cyclonedx_bom::prelude::NormalizedString::new(&format!(
        "the virtualenv {} on {}, run by {interpreter}",
        target.venv, target.host
    )));
    let tool = Component::new(
        Classification::Application,
        "vd-export",
        env!("CARGO_PKG_VERSION"),
        None,
    );
    let bom = Bom {
        metadata: Some(Metadata {
            timestamp: Some(DateTime::now().map_err(|e| anyhow!("the clock: {e}"))?),
            tools: Some(Tools::Object {
                services: None,
                components: Some(Components(vec![tool])),
            }),
            component: Some(venv),
            properties: Some(Properties(properties)),
            ..Metadata::default()
        }),
        components: Some(Components(components)),
        ..Bom::default()
    };
    let mut text = Vec::new();
    bom.output_as_json_v1_5(&mut text)
        .map_err(|e| anyhow!("cannot write the SBOM: {e}"))?;
    String::from_utf8(text).context("the SBOM is not UTF-8")
}

/// One distribution as a CycloneDX library component.
fn component_of(holding: &Holding) -> Result<Component> {
    let purl = Purl::new("pypi", &holding.name, &holding.version)
        .map_err(|e| anyhow!("{} {}: no package URL: {e}", holding.name, holding.version))?;
    let mut component = Component::new(
        Classification::Library,
        &holding.name,
        &holding.version,
        Some(purl.to_string()),
    );
    component.purl = Some(purl);
    component.hashes = holding.wheel.as_ref().map(|w| {
        Hashes(vec![Hash {
            alg: HashAlgorithm::SHA_256,
            content: HashValue(w.sha256.clone()),
        }])
    });
    Ok(component)
}

/// The names of the files written in one run, so that no two targets get
/// the same one.
#[derive(Default)]
pub struct FileNames {
    taken: HashSet<String>,
}

impl FileNames {
    /// The file name for a target, about `[USER@]HOST[-PORT]_VENV-PATH`
    /// with the venv's slashes as dashes ([`Format::file_name`]). Every
    /// character but letters, digits, `@`, `_` and `-` becomes `_` (dots
    /// too: PEP 751 names have none there), and leading dashes go, so the
    /// name never leaves the folder, hides in it or reads as an option. A
    /// name already given in this run gets a digest of the whole target
    /// (user, host, port, venv) added.
    pub fn claim(&mut self, target: &Target, format: Format) -> Result<String> {
        let mut host = String::new();
        if let Some(user) = &target.user {
            host.push_str(user);
            host.push('@');
        }
        host.push_str(&target.host);
        if let Some(port) = target.port.filter(|&p| p != 22) {
            host.push_str(&format!("-{port}"));
        }
        let host = match safe_part(&host) {
            part if part.is_empty() => "host".to_string(),
            part => part,
        };
        let stem: String = format!("{host}_{}", safe_part(&target.venv))
            .chars()
            .take(160)
            .collect();
        let plain = format.file_name(&stem);
        if self.taken.insert(plain.clone()) {
            return Ok(plain);
        }
        let identity = format!(
            "{}\0{}\0{}\0{}",
            target.user.as_deref().unwrap_or(""),
            target.host,
            target.port.unwrap_or(22),
            target.venv
        );
        let digest = format!("{:x}", Sha256::digest(identity.as_bytes()));
        let marked = format.file_name(&format!("{stem}-{}", &digest[..12]));
        if self.taken.insert(marked.clone()) {
            return Ok(marked);
        }
        bail!("the input holds this target twice; its file {plain} is written once, for its first record")
    }
}

/// `text` as a part of a file name that stays in its folder.
fn safe_part(text: &str) -> String {
    let out: String = text
        .chars()
        .map(|c| match c {
            '/' => '-',
            c if c.is_ascii_alphanumeric() || matches!(c, '@' | '_' | '-') => c,
            _ => '_',
        })
        .collect();
    out.trim_start_matches('-').to_string()
}

/// Write `text` as `dir/name`, whole or not at all: into a new file
/// beside it first, then renamed over it.
pub fn write_file(dir: &Path, name: &str, text: &str) -> Result<PathBuf> {
    let path = dir.join(name);
    let partial = dir.join(format!(".{name}.{}.partial", std::process::id()));
    let _ = fs::remove_file(&partial);
    let written = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&partial)
        .and_then(|mut file| {
            file.write_all(text.as_bytes())?;
            file.sync_all()
        })
        .and_then(|()| fs::rename(&partial, &path));
    if let Err(e) = written {
        let _ = fs::remove_file(&partial);
        return Err(anyhow!("cannot write {}: {e}", path.display()));
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn target(value: serde_json::Value) -> Target {
        let serde_json::Value::Object(record) = value else {
            unreachable!()
        };
        Target::parse(&record).unwrap()
    }

    #[test]
    fn file_names_stay_in_the_folder_and_never_repeat() {
        let mut names = FileNames::default();
        let mut claim = |value| names.claim(&target(value), Format::Pylock).unwrap();
        assert_eq!(
            claim(json!({"host": "web1", "venv": "/srv/shop/venv"})),
            "pylock.web1_srv-shop-venv.toml"
        );
        assert_eq!(
            claim(json!({"host": "web1", "user": "deploy", "port": 2222, "venv": "/srv/a"})),
            "pylock.deploy@web1-2222_srv-a.toml"
        );
        let hostile = claim(json!({"host": "..", "venv": "/x/../../y z"}));
        assert_eq!(hostile, "pylock.___x-__-__-y_z.toml");
        let dotted = claim(json!({"host": "fe80::1%eth0", "venv": "/.."}));
        assert_eq!(dotted, "pylock.fe80__1_eth0___.toml");
        // Two venvs that read alike get apart by a digest.
        let first = claim(json!({"host": "web1", "venv": "/srv/a-b"}));
        let second = claim(json!({"host": "web1", "venv": "/srv/a/b"}));
        assert_eq!(first, "pylock.web1_srv-a-b.toml");
        assert!(second.starts_with("pylock.web1_srv-a-b-") && second.ends_with(".toml"));
        assert_ne!(first, second);
        for name in [&hostile, &dotted, &second] {
            assert!(
                !name.contains('/') && name.matches('.').count() == 2,
                "{name}"
            );
            assert!(crate::pylock::is_lock_file(Path::new(name)), "{name}");
        }
        let e = names
            .claim(
                &target(json!({"host": "web1", "venv": "/srv/a/b"})),
                Format::Pylock,
            )
            .unwrap_err();
        assert!(format!("{e}").contains("holds this target twice"), "{e}");
    }
}
