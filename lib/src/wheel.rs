//! Wheel files: their names (PEP 427), the names of projects (PEP 503), and
//! what is inside them (METADATA, WHEEL and RECORD).
//!
//! vd trusts a wheel only after reading it: the filename must parse, the
//! archive must be a zip with one `.dist-info` folder whose METADATA agrees
//! with the filename, and every file must hash to what RECORD says. This module
//! does the reading; copying into the repository is `repo`'s job.

use crate::bounded;
use anyhow::{anyhow, bail, Context, Result};
use base64::Engine;
use pep508_rs::pep440_rs::{Version, VersionSpecifiers};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::io::{self, Read, Seek};
use std::path::Path;
use std::str::FromStr;

/// PEP 503 normalized project name: lower case, runs of `-`, `_` and `.`
/// folded into one `-`. `Django_Foo.bar` and `django-foo-bar` are one project.
pub(crate) fn normalize(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut separator = false;
    for ch in name.trim().chars() {
        if ch == '-' || ch == '_' || ch == '.' {
            separator = true;
            continue;
        }
        if separator && !out.is_empty() {
            out.push('-');
        }
        separator = false;
        out.push(ch.to_ascii_lowercase());
    }
    out
}

/// A parsed wheel filename: `{name}-{version}(-{build})?-{python}-{abi}-{platform}.whl`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WheelName {
    /// The filename itself.
    pub file: String,
    /// The project name as written in the filename.
    pub distribution: String,
    /// PEP 503 normalized project name.
    pub name: String,
    pub version: Version,
    pub build: Option<String>,
    /// Compressed tag sets, e.g. `py2.py3` → `["py2", "py3"]`.
    pub python: Vec<String>,
    pub abi: Vec<String>,
    pub platform: Vec<String>,
}

impl WheelName {
    /// Parse a filename (a path's last component is used).
    pub fn parse(path: &str) -> Result<WheelName> {
        let file = path.rsplit('/').next().unwrap_or(path);
        let stem = file
            .strip_suffix(".whl")
            .ok_or_else(|| anyhow!("{file}: not a wheel filename (does not end in .whl)"))?;
        let parts: Vec<&str> = stem.split('-').collect();
        let (distribution, version, build, tags) = match parts.as_slice() {
            [d, v, p, a, pl] => (*d, *v, None, [*p, *a, *pl]),
            [d, v, b, p, a, pl] => (*d, *v, Some(*b), [*p, *a, *pl]),
            _ => bail!(
                "{file}: malformed wheel filename: expected name-version[-build]-python-abi-platform.whl"
            ),
        };
        if distribution.is_empty() || tags.iter().any(|t| t.is_empty()) {
            bail!("{file}: malformed wheel filename: an empty part");
        }
        if let Some(b) = build {
            if !b.starts_with(|c: char| c.is_ascii_digit()) {
                bail!("{file}: malformed wheel filename: build tag {b:?} must start with a digit");
            }
        }
        let version = Version::from_str(version)
            .map_err(|e| anyhow!("{file}: malformed wheel filename: version {version:?}: {e}"))?;
        let split = |t: &str| t.split('.').map(str::to_string).collect::<Vec<_>>();
        Ok(WheelName {
            file: file.to_string(),
            distribution: distribution.to_string(),
            name: normalize(distribution),
            version,
            build: build.map(str::to_string),
            python: split(tags[0]),
            abi: split(tags[1]),
            platform: split(tags[2]),
        })
    }

    /// The build tag as PEP 427 orders it: its leading number, then the
    /// rest as text; no build tag sorts first, as `(0, "")`.
    pub(crate) fn build_key(&self) -> (u64, &str) {
        match &self.build {
            None => (0, ""),
            Some(b) => {
                let digits = b.bytes().take_while(u8::is_ascii_digit).count();
                (b[..digits].parse().unwrap_or(u64::MAX), &b[digits..])
            }
        }
    }

    /// Every `(python, abi, platform)` tag triple this wheel declares.
    pub(crate) fn tags(&self) -> impl Iterator<Item = (&str, &str, &str)> {
        self.python.iter().flat_map(move |p| {
            self.abi.iter().flat_map(move |a| {
                self.platform
                    .iter()
                    .map(move |pl| (p.as_str(), a.as_str(), pl.as_str()))
            })
        })
    }
}

impl fmt::Display for WheelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)
    }
}

/// What a wheel says about itself, read from its `.dist-info`.
#[derive(Debug, Clone)]
pub(crate) struct Metadata {
    pub name: String,
    pub version: Version,
    /// `Requires-Dist` lines, as written (PEP 508 strings).
    pub requires_dist: Vec<String>,
    pub requires_python: Option<String>,
}

/// A wheel's `Requires-Python`, read as the pip of its day read it. Wheels
/// built for Python 2.7 and 3.4-3.6 sometimes carry forms that PEP 440 rules
/// out but the packaging of that time accepted: a wildcard after an ordering
/// operator (`>=3.5.*`, meaning `>=3.5`) and empty clauses left by a stray
/// comma (`>=2.7, !=3.0.*,`). Those are read in that sense; anything else
/// that is not PEP 440 is an error naming the text.
pub(crate) fn requires_python(text: &str) -> Result<VersionSpecifiers> {
    let strict = match VersionSpecifiers::from_str(text) {
        Ok(specifiers) => return Ok(specifiers),
        Err(e) => e,
    };
    let clauses: Vec<&str> = text
        .split(',')
        .map(str::trim)
        .filter(|clause| !clause.is_empty())
        .map(|clause| {
            let ordering = [">=", "<=", "~=", ">", "<"]
                .iter()
                .any(|op| clause.starts_with(op));
            match clause.strip_suffix(".*") {
                Some(bare) if ordering => bare,
                _ => clause,
            }
        })
        .collect();
    VersionSpecifiers::from_str(&clauses.join(", "))
        .map_err(|_| anyhow!("Requires-Python {text:?}: {strict}"))
}

/// A wheel that has been read and checked, with the sha256 of the whole file.
#[derive(Debug, Clone)]
pub(crate) struct CheckedWheel {
    pub filename: WheelName,
    pub sha256: String,
}

/// Hex sha256 of a whole file.
pub fn sha256_file(path: &Path) -> io::Result<(String, u64)> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let size = io::copy(&mut file, &mut hasher)?;
    Ok((format!("{:x}", hasher.finalize()), size))
}

/// Read a wheel and check it from end to end: filename, zip, `.dist-info`,
/// METADATA name and version, `WHEEL`, and every file against RECORD.
pub(crate) fn check(path: &Path) -> Result<CheckedWheel> {
    let shown = path.display().to_string();
    let filename = parse_file_name(path)?;
    let (sha256, _) = sha256_file(path).with_context(|| format!("{shown}: cannot read"))?;
    let file = File::open(path).with_context(|| format!("{shown}: cannot read"))?;
    check_archive(file, &shown, filename, sha256)
}

/// [`check`] for a wheel already read into memory: no file is read twice.
pub(crate) fn check_bytes(path: &Path, bytes: &[u8]) -> Result<CheckedWheel> {
    let shown = path.display().to_string();
    let filename = parse_file_name(path)?;
    let sha256 = format!("{:x}", Sha256::digest(bytes));
    check_archive(io::Cursor::new(bytes), &shown, filename, sha256)
}

/// The filename of a wheel coming in: parsed, and made only of the
/// characters PEP 427 allows, since the name ends up in paths and commands
/// on every target (pip refuses the others at install anyway).
fn parse_file_name(path: &Path) -> Result<WheelName> {
    let file_name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| anyhow!("{}: not a wheel filename", path.display()))?;
    let name = WheelName::parse(file_name)?;
    let plain = |part: &str| {
        part.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '+' || c == '!')
    };
    let stem = file_name.strip_suffix(".whl").unwrap_or(file_name);
    if let Some(part) = stem.split('-').find(|part| !plain(part)) {
        bail!(
            "{}: malformed wheel filename: {part:?} may hold only letters, digits, `_`, `.`, `+` and `!`",
            path.display()
        );
    }
    // Tags are compared as written, and PEP 425 writes them in lower case:
    // `PY3-NONE-ANY` would be planned for no interpreter, or, where another
    // tool lower-cases it, be a second wheel of one release.
    if let Some(tag) = stem
        .rsplit('-')
        .take(3)
        .find(|t| t.chars().any(|c| c.is_ascii_uppercase()))
    {
        bail!(
            "{}: malformed wheel filename: tag {tag:?} is not in lower case, as PEP 425 writes tags",
            path.display()
        );
    }
    Ok(name)
}

/// Refuse members pip would not install as the wheel means them: absolute
/// paths and paths that climb out of the install directory, and symbolic
/// links, which pip writes as a text file holding the link's target (so the
/// venv would not hold what the wheel's builder had).
fn check_members<R: Read + Seek>(archive: &mut zip::ZipArchive<R>) -> Result<()> {
    const FILE_TYPE: u32 = 0o170000;
    const SYMLINK: u32 = 0o120000;
    for i in 0..archive.len() {
        let member = archive
            .by_index_raw(i)
            .map_err(|e| anyhow!("member {i}: {e}"))?;
        let name = member.name();
        if name.starts_with('/') || name.contains('\\') || name.split('/').any(|c| c == "..") {
            bail!("member {name:?} is not a relative path inside the wheel");
        }
        if member
            .unix_mode()
            .is_some_and(|mode| mode & FILE_TYPE == SYMLINK)
        {
            bail!("member {name:?} is a symbolic link, which pip would install as a text file holding the link's target");
        }
    }
    Ok(())
}

fn check_archive<R: Read + Seek>(
    reader: R,
    shown: &str,
    filename: WheelName,
    sha256: String,
) -> Result<CheckedWheel> {
    let mut archive =
        zip::ZipArchive::new(reader).map_err(|e| anyhow!("{shown}: not a zip archive: {e}"))?;

    check_members(&mut archive).with_context(|| shown.to_string())?;
    let dist_info = dist_info(&archive).with_context(|| shown.to_string())?;
    let metadata_text = read_member(
        &mut archive,
        &format!("{dist_info}/METADATA"),
        bounded::METADATA,
    )
    .with_context(|| format!("{shown}: cannot read {dist_info}/METADATA"))?;
    let metadata =
        parse_metadata(&metadata_text).with_context(|| format!("{shown}: {dist_info}/METADATA"))?;
    if normalize(&metadata.name) != filename.name {
        bail!(
            "{shown}: METADATA names the project {:?}, the filename {:?}",
            metadata.name,
            filename.distribution
        );
    }
    if metadata.version != filename.version {
        bail!(
            "{shown}: METADATA says version {}, the filename {}",
            metadata.version,
            filename.version
        );
    }
    // `{name}-{version}.dist-info`: the folder pip reads must be this
    // project's, not another one's that the wheel would overwrite.
    let of_this_project = dist_info
        .strip_suffix(".dist-info")
        .and_then(|stem| stem.rsplit_once('-'))
        .is_some_and(|(name, version)| {
            normalize(name) == filename.name
                && Version::from_str(version).is_ok_and(|v| v == filename.version)
        });
    if !of_this_project {
        bail!(
            "{shown}: {dist_info} is not the .dist-info folder of {} {}",
            filename.name,
            filename.version
        );
    }
    read_member(&mut archive, &format!("{dist_info}/WHEEL"), bounded::WHEEL)
        .with_context(|| format!("{shown}: no {dist_info}/WHEEL file"))?;
    let record_name = format!("{dist_info}/RECORD");
    let record = read_member(&mut archive, &record_name, bounded::RECORD)
        .with_context(|| format!("{shown}: no {record_name} file"))?;
    check_record(&mut archive, &record, &record_name).with_context(|| shown.to_string())?;
    Ok(CheckedWheel { filename, sha256 })
}

/// Read only a wheel's METADATA, without checking the rest of the archive:
/// for wheels already in the repository, which [`check`] let in.
pub(crate) fn read_metadata(path: &Path) -> Result<Metadata> {
    let shown = path.display();
    let file = File::open(path).with_context(|| format!("{shown}: cannot read"))?;
    let mut archive =
        zip::ZipArchive::new(file).map_err(|e| anyhow!("{shown}: not a zip archive: {e}"))?;
    let dist_info = dist_info(&archive).with_context(|| format!("{shown}"))?;
    let text = read_member(
        &mut archive,
        &format!("{dist_info}/METADATA"),
        bounded::METADATA,
    )
    .with_context(|| format!("{shown}: cannot read {dist_info}/METADATA"))?;
    parse_metadata(&text).with_context(|| format!("{shown}: {dist_info}/METADATA"))
}

/// The one `.dist-info` folder at the top of the archive.
fn dist_info<R: Read + Seek>(archive: &zip::ZipArchive<R>) -> Result<String> {
    let mut dist_infos: Vec<String> = archive
        .file_names()
        .filter_map(|n| n.split_once('/').map(|(top, _)| top))
        .filter(|top| top.ends_with(".dist-info"))
        .map(str::to_string)
        .collect();
    dist_infos.sort();
    dist_infos.dedup();
    match dist_infos.as_slice() {
        [one] => Ok(one.clone()),
        [] => bail!("no .dist-info folder in the archive"),
        many => bail!("several .dist-info folders: {}", many.join(", ")),
    }
}

/// A member of the archive as text, up to `limit` bytes: its size in the
/// archive's directory may lie, so the limit holds on what is unpacked.
fn read_member<R: Read + Seek>(
    archive: &mut zip::ZipArchive<R>,
    name: &str,
    limit: u64,
) -> Result<String> {
    let member = archive.by_name(name)?;
    bounded::read_member(member, limit, name)
}

/// Every file in the archive must be listed in RECORD with a matching hash
/// and size (RECORD itself and signatures excepted), and every listed file
/// must exist.
fn check_record<R: Read + Seek>(
    archive: &mut zip::ZipArchive<R>,
    record: &str,
    record_name: &str,
) -> Result<()> {
    let mut expected: HashMap<String, (String, String)> = HashMap::new();
    let mut rows = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(record.as_bytes());
    for (i, row) in rows.records().enumerate() {
        let row = row.with_context(|| format!("{record_name} line {}", i + 1))?;
        let path = row.get(0).unwrap_or("").to_string();
        let hash = row.get(1).unwrap_or("").to_string();
        let size = row.get(2).unwrap_or("").to_string();
        if path.is_empty() {
            continue;
        }
        expected.insert(path, (hash, size));
    }
    let names: Vec<String> = archive.file_names().map(str::to_string).collect();
    for name in &names {
        if name.ends_with('/') {
            continue;
        }
        let unlisted_ok = name == record_name
            || name.ends_with(".dist-info/RECORD.jws")
            || name.ends_with(".dist-info/RECORD.p7s");
        let Some((hash, size)) = expected.remove(name) else {
            if unlisted_ok {
                continue;
            }
            bail!("{name} is not listed in {record_name}");
        };
        if hash.is_empty() {
            if unlisted_ok {
                continue;
            }
            bail!("{name} has no hash in {record_name}");
        }
        let (algorithm, want) = hash
            .split_once('=')
            .ok_or_else(|| anyhow!("{record_name}: malformed hash {hash:?} for {name}"))?;
        if algorithm != "sha256" {
            bail!("{record_name}: unsupported hash {algorithm} for {name} (vd checks sha256)");
        }
        let mut member = archive.by_name(name)?;
        let mut hasher = Sha256::new();
        let got_size = io::copy(&mut member, &mut hasher)
            .with_context(|| format!("cannot read {name} from the archive"))?;
        let got = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(hasher.finalize());
        if got != want.trim_end_matches('=') {
            bail!("{name} does not match its hash in {record_name} (the wheel was changed after it was built)");
        }
        if !size.is_empty() && size != got_size.to_string() {
            bail!("{name} is {got_size} bytes, {record_name} says {size}");
        }
    }
    if let Some(missing) = expected.keys().find(|k| !k.ends_with('/')) {
        bail!("{missing} is listed in {record_name} but missing from the archive");
    }
    Ok(())
}

/// Parse the email-header form of METADATA (core metadata): the fields vd
/// needs, with continuation lines folded and the body ignored.
pub(crate) fn parse_metadata(text: &str) -> Result<Metadata> {
    let mut name = None;
    let mut version = None;
    let mut requires_dist = Vec::new();
    let mut requires_python = None;
    for line in text.lines() {
        if line.is_empty() {
            break; // the description body follows the headers
        }
        if line.starts_with([' ', '\t']) {
            continue; // continuation of a long header vd does not read
        }
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match key.to_ascii_lowercase().as_str() {
            "name" => name = Some(value.to_string()),
            "version" => version = Some(value.to_string()),
            "requires-dist" => requires_dist.push(value.to_string()),
            "requires-python" => requires_python = Some(value.to_string()),
            _ => {}
        }
    }
    let name = name.ok_or_else(|| anyhow!("no Name field"))?;
    let version = version.ok_or_else(|| anyhow!("no Version field"))?;
    let version = Version::from_str(&version).map_err(|e| anyhow!("Version {version:?}: {e}"))?;
    Ok(Metadata {
        name,
        version,
        requires_dist,
        requires_python,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_old_wheels_requires_python_as_their_pip_did() {
        let read = |text: &str| requires_python(text).map(|s| s.to_string());
        let py27 = Version::from_str("2.7.18").unwrap();
        let py36 = Version::from_str("3.6.15").unwrap();
        // Django 1.11's: PEP 440 as it is.
        let django = requires_python(">=2.7, !=3.0.*, !=3.1.*, !=3.2.*, !=3.3.*").unwrap();
        assert!(django.contains(&py27) && django.contains(&py36));
        assert!(!django.contains(&Version::from_str("3.2.5").unwrap()));
        // Forms of their day.
        assert_eq!(read(">=3.5.*").unwrap(), ">=3.5");
        assert_eq!(read(">=2.6, <3.0.*").unwrap(), ">=2.6, <3.0");
        assert_eq!(read(">=2.7, !=3.0.*,").unwrap(), ">=2.7, !=3.0.*");
        assert!(!requires_python(">=3.5.*").unwrap().contains(&py27));
        assert!(requires_python(">=2.6, <3.0.*").unwrap().contains(&py27));
        // Anything else stays an error that names the text.
        for bad in ["2.7", ">=three", "~=3"] {
            let e = format!("{:#}", requires_python(bad).unwrap_err());
            assert!(e.starts_with(&format!("Requires-Python {bad:?}: ")), "{e}");
        }
    }

    #[test]
    fn normalizes_like_pep_503() {
        assert_eq!(normalize("Django"), "django");
        assert_eq!(normalize("zope.interface"), "zope-interface");
        assert_eq!(normalize("Foo__Bar-.baz"), "foo-bar-baz");
        assert_eq!(normalize("ruamel.yaml.clib"), "ruamel-yaml-clib");
    }

    #[test]
    fn parses_wheel_filenames() {
        let w = WheelName::parse("Django-4.2.7-py3-none-any.whl").unwrap();
        assert_eq!(w.name, "django");
        assert_eq!(w.version.to_string(), "4.2.7");
        assert_eq!(w.tags().collect::<Vec<_>>(), [("py3", "none", "any")]);

        let w = WheelName::parse(
            "dir/psycopg2_binary-2.9.9-1-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
        )
        .unwrap();
        assert_eq!(w.name, "psycopg2-binary");
        assert_eq!(w.build.as_deref(), Some("1"));
        assert_eq!(w.build_key(), (1, ""));
        let later = WheelName::parse("a-1.0-12b-py3-none-any.whl").unwrap();
        assert!(later.build_key() > w.build_key());
        assert_eq!(w.platform.len(), 2);

        let w = WheelName::parse("six-1.16.0-py2.py3-none-any.whl").unwrap();
        assert_eq!(w.tags().count(), 2);
    }

    #[test]
    fn refuses_malformed_filenames() {
        for bad in [
            "foo.zip",
            "foo-1.0.whl",
            "foo-1.0-py3-none.whl",
            "foo-notaversion!-py3-none-any.whl",
            "foo-1.0-x-py3-none-any.whl",
            "a-b-c-d-e-f-g.whl",
        ] {
            assert!(WheelName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn reads_metadata_headers() {
        let m = parse_metadata(
            "Metadata-Version: 2.1\nName: Foo.Bar\nVersion: 1.0rc1\nRequires-Dist: six (>=1.0)\nRequires-Dist: idna; extra == \"x\"\nRequires-Python: >=3.8\n\nName: not-this\n",
        )
        .unwrap();
        assert_eq!(m.name, "Foo.Bar");
        assert_eq!(m.version.to_string(), "1.0rc1");
        assert_eq!(m.requires_dist.len(), 2);
        assert_eq!(m.requires_python.as_deref(), Some(">=3.8"));
    }
}
