//! Filling the repository from outside the network: which wheels each kind
//! of interpreter in a fleet needs, downloaded by pip.
//!
//! A fleet is a few kinds of interpreter, each with its own tags, markers
//! and version (Requires-Python). [`Group`] is one such kind, read from a
//! frozen record's `python` and `markers`; targets that agree on all three
//! are fetched for once. The downloading is pip's own `pip download
//! --only-binary=:all:` with the group's tags given as `--python-version`,
//! `--implementation`, `--abi` and `--platform`: pip is the reference for
//! which wheel of a project an interpreter gets, it already speaks every
//! index, proxy, certificate and `pip.conf` setting a site has, and vd's
//! own resolver only reads a repository, never an index. pip evaluates
//! markers for the interpreter that runs it, so `fetch/pip.py` puts the
//! group's marker environment in its place before pip starts.
//!
//! Each group downloads into a fresh folder under DEST, with DEST and the
//! repository given to pip as `--find-links`: a file either holds is copied
//! from there rather than fetched again, and the folder ends up holding
//! exactly the group's closure. Its files are then sorted into [`Source`]s
//! by filename and sha256, and the new ones moved into DEST. This module
//! takes plain settings; the command line lives in `tools/fetch.rs`.

use crate::record::{self, Facts, Field, Markers, Python, Record};
use crate::requirement::{Origin, Requirement};
use crate::tags::{self, Interpreter};
use crate::wheel::{self, WheelName};
use anyhow::{anyhow, bail, Context, Result};
use pep508_rs::pep440_rs::Version;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::str::FromStr;

/// The script that runs pip's download with a group's markers.
const PIP_SCRIPT: &str = include_str!("fetch/pip.py");

/// How many platforms an error lists before it says "and N more".
const PLATFORMS_SHOWN: usize = 12;

/// What vd-fetch needs to know, from its command line.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The Python whose pip downloads.
    pub python: String,
    pub dest: PathBuf,
    pub repo: Option<PathBuf>,
    /// Requirement specifiers, and `-r FILE` pairs, as pip takes them.
    pub requirements: Vec<String>,
    /// `--index-url`, `--extra-index-url`, `--find-links`, passed on.
    pub index: Vec<String>,
}

/// Markers left out of a group's [`Group::key`]: the kernel's release and
/// build, which differ from host to host and which requirements hardly
/// ever name. A group is fetched with its first target's.
const KERNEL_MARKERS: [&str; 2] = ["platform_release", "platform_version"];

/// One kind of interpreter in the fleet: what pip needs to choose its
/// wheels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// `platform.python_version()`, for Requires-Python.
    pub version: String,
    /// `cp`, `pp`: the first tag's interpreter without its version.
    pub implementation: String,
    /// The ABIs of its tags, most specific first.
    pub abis: Vec<String>,
    /// The platforms of its tags, most specific first, without `any`.
    pub platforms: Vec<String>,
    /// The first tag (`cp312-cp312-manylinux_2_35_x86_64`), for messages.
    pub first_tag: String,
    /// The PEP 508 environment, as JSON text.
    pub markers: String,
    /// The environment without [`KERNEL_MARKERS`].
    markers_shared: String,
}

impl Group {
    /// The group of a frozen record; an error names the missing field.
    pub fn of(record: &Record) -> Result<Group> {
        let facts: Facts = match record::get::<Python>(record)? {
            Some(Python::Facts(facts)) => *facts,
            _ => bail!(
                "field `{}` is missing: vd-fetch reads a saved vd-freeze of the fleet",
                Python::NAME
            ),
        };
        let Some(Markers(markers)) = record::get::<Markers>(record)? else {
            bail!(
                "field `{}` is missing: vd-fetch reads a saved vd-freeze of the fleet",
                Markers::NAME
            );
        };
        let system = markers
            .get("platform_system")
            .and_then(|v| v.as_str())
            .unwrap_or_default();
        let interpreter = Interpreter::from_facts(&facts, system)?;
        let tags = tags::sys_tags(&interpreter);
        let first = tags
            .first()
            .ok_or_else(|| anyhow!("the interpreter has no compatibility tags"))?;
        let mut abis: Vec<String> = Vec::new();
        let mut platforms: Vec<String> = Vec::new();
        for tag in &tags {
            if !abis.contains(&tag.abi) {
                abis.push(tag.abi.clone());
            }
            if tag.platform != "any" && !platforms.contains(&tag.platform) {
                platforms.push(tag.platform.clone());
            }
        }
        let mut shared = markers.clone();
        for name in KERNEL_MARKERS {
            shared.remove(name);
        }
        Ok(Group {
            version: facts.version.unwrap_or_default(),
            implementation: first
                .python
                .trim_end_matches(|c: char| c.is_ascii_digit())
                .to_string(),
            abis,
            platforms,
            first_tag: first.to_string(),
            markers: serde_json::Value::Object(markers).to_string(),
            markers_shared: serde_json::Value::Object(shared).to_string(),
        })
    }

    /// What targets of one group share: the version, the tags and the
    /// markers but the kernel's.
    pub fn key(&self) -> String {
        format!(
            "{} {} {} {} {}",
            self.version,
            self.implementation,
            self.abis.join(","),
            self.platforms.join(","),
            self.markers_shared
        )
    }

    /// The interpreter and platform, for messages: `cp312 on manylinux_2_35_x86_64`.
    pub fn describe(&self) -> String {
        let mut parts = self.first_tag.splitn(3, '-');
        let python = parts.next().unwrap_or_default();
        let platform = parts.nth(1).unwrap_or_default();
        format!("{python} on {platform} (Python {})", self.version)
    }

    /// pip's options that select this interpreter's wheels.
    fn pip_options(&self) -> Vec<String> {
        let mut options = vec![
            "--python-version".to_string(),
            self.version.clone(),
            "--implementation".to_string(),
            self.implementation.clone(),
        ];
        for abi in &self.abis {
            options.extend(["--abi".to_string(), abi.clone()]);
        }
        for platform in &self.platforms {
            options.extend(["--platform".to_string(), platform.clone()]);
        }
        options
    }
}

/// Where a wheel of a group's closure came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// Downloaded from the index by this run, for this group first.
    Downloaded,
    /// Already in DEST: fetched for another group of this run, or before.
    Dest,
    /// Held by the repository (same filename and sha256): not fetched.
    Repository,
}

/// One wheel of a target's closure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchedWheel {
    pub wheel: String,
    pub sha256: String,
    pub size: u64,
    pub source: Source,
}

/// `fetched`: the wheels resolving the requirements needs for the target's
/// interpreter, sorted by filename.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fetched(pub Vec<FetchedWheel>);

impl Field for Fetched {
    const NAME: &'static str = "fetched";
}

/// Check, before any group, that `python` runs and has the pip the script
/// drives: a missing one is a setup error, not one per target.
pub fn check_pip(python: &str) -> Result<()> {
    let output = Command::new(python)
        .args([
            "-c",
            "import pip._internal.cli.main, pip._vendor.packaging.markers",
        ])
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {python} (see --pip)"))?;
    if !output.status.success() {
        bail!(
            "{python} has no pip that vd-fetch can run (pip 20 or newer; see --pip): {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

/// Create DEST, and remove the download folders a run that was killed
/// left in it (those of a process that is gone; where /proc cannot say,
/// none).
pub fn prepare_dest(dest: &Path) -> Result<()> {
    fs::create_dir_all(dest).with_context(|| format!("cannot create {}", dest.display()))?;
    if !Path::new("/proc/self").exists() {
        return Ok(());
    }
    let entries = fs::read_dir(dest).with_context(|| format!("cannot list {}", dest.display()))?;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(FOLDER_PREFIX))
            .and_then(|rest| rest.split('.').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new("/proc").join(pid.to_string()).exists() {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
    Ok(())
}

/// Download what the group needs into `settings.dest`.
pub fn fetch_group(settings: &Settings, group: &Group) -> Result<Fetched> {
    let folder = Folder::new(&settings.dest)?;
    let report = folder.path.join(".offered.jsonl");
    let mut command = Command::new(&settings.python);
    command
        .arg("-c")
        .arg(PIP_SCRIPT)
        .arg(&group.markers)
        .arg(&report)
        .args(["--only-binary=:all:", "--no-input", "--progress-bar", "off"])
        .args(group.pip_options())
        .arg("--dest")
        .arg(&folder.path)
        .arg("--find-links")
        .arg(&settings.dest);
    if let Some(repo) = &settings.repo {
        command.arg("--find-links").arg(repo);
    }
    let output = command
        .args(&settings.index)
        .args(&settings.requirements)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {} (see --pip)", settings.python))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let offered = fs::read_to_string(&report).unwrap_or_default();
        bail!(pip_failure(group, &stderr, &offered));
    }
    fs::remove_file(&report).ok();
    let mut fetched = Vec::new();
    for entry in fs::read_dir(&folder.path)? {
        let path = entry?.path();
        let Some(file) = path
            .file_name()
            .and_then(|f| f.to_str())
            .map(str::to_string)
        else {
            continue;
        };
        if !file.ends_with(".whl") {
            continue;
        }
        fetched.push(place(settings, &path, file)?);
    }
    fetched.sort_by(|a, b| a.wheel.cmp(&b.wheel));
    Ok(Fetched(fetched))
}

/// Sort one wheel of a group's folder: moved into DEST when new, else
/// dropped as one DEST or the repository already holds.
fn place(settings: &Settings, path: &Path, file: String) -> Result<FetchedWheel> {
    let (sha256, size) =
        wheel::sha256_file(path).with_context(|| format!("cannot read {}", path.display()))?;
    let same_in = |dir: &Path| -> Result<bool> {
        let there = dir.join(&file);
        if !there.is_file() {
            return Ok(false);
        }
        let (theirs, _) = wheel::sha256_file(&there)
            .with_context(|| format!("cannot read {}", there.display()))?;
        if theirs != sha256 {
            bail!(
                "{} holds {file} with other bytes than pip chose (sha256 {theirs}, not {sha256}): \
                 one filename must mean one wheel; remove one of them",
                dir.display()
            );
        }
        Ok(true)
    };
    let source = if settings.repo.as_deref().map(same_in).transpose()? == Some(true) {
        Source::Repository
    } else if same_in(&settings.dest)? {
        Source::Dest
    } else {
        let to = settings.dest.join(&file);
        fs::rename(path, &to)
            .with_context(|| format!("cannot move {file} into {}", settings.dest.display()))?;
        Source::Downloaded
    };
    Ok(FetchedWheel {
        wheel: file,
        sha256,
        size,
        source,
    })
}

/// How a group's download folder under DEST is named: then the process
/// id, a dot and a number.
const FOLDER_PREFIX: &str = ".vd-fetch.";

/// A group's download folder under DEST, removed with what it still holds.
struct Folder {
    path: PathBuf,
}

impl Folder {
    fn new(dest: &Path) -> Result<Folder> {
        for n in 0u32.. {
            let path = dest.join(format!("{FOLDER_PREFIX}{}.{n}", std::process::id()));
            match fs::create_dir(&path) {
                Ok(()) => return Ok(Folder { path }),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    return Err(e)
                        .with_context(|| format!("cannot create a folder in {}", dest.display()))
                }
            }
        }
        unreachable!("some folder name is free")
    }
}

impl Drop for Folder {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// One file the index offered, as `fetch/pip.py` reports it.
#[derive(Debug, Deserialize)]
struct Offered {
    project: String,
    file: String,
    requires_python: Option<String>,
}

/// What a failed pip run means for the group, in the words of vd: the
/// requirement without a wheel for it and what the index has instead, or
/// pip's own errors.
fn pip_failure(group: &Group, stderr: &str, offered: &str) -> String {
    let missing = stderr
        .lines()
        .find_map(|l| l.split("No matching distribution found for ").nth(1))
        .map(str::trim);
    let Some(missing) = missing else {
        let errors: Vec<&str> = stderr
            .lines()
            .filter(|l| l.starts_with("ERROR:") || l.contains("Error"))
            .map(|l| l.trim_start_matches("ERROR: "))
            .collect();
        let text = match errors.is_empty() {
            true => stderr.trim(),
            false => &errors.join("; "),
        };
        return format!("pip download for {} failed: {text}", group.describe());
    };
    let offered: Vec<Offered> = offered
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let text = no_wheel(group, missing, &offered);
    // An index pip could not reach offers nothing: say so, or the message
    // would blame the project.
    let unreachable = stderr
        .lines()
        .find(|l| l.contains("Could not fetch URL") || l.contains("Retrying ("))
        .map(|l| l.trim().trim_start_matches("WARNING: "));
    match unreachable {
        Some(line) => format!("{text} (pip could not read the index: {line})"),
        None => text,
    }
}

/// The message for a requirement with no wheel for the group: the
/// platforms the index has wheels for, or that it has only sdists.
fn no_wheel(group: &Group, missing: &str, offered: &[Offered]) -> String {
    let origin = Origin::Field {
        name: "pip".to_string(),
    };
    let requirement = Requirement::parse(missing, origin).ok();
    let name = match &requirement {
        Some(r) => r.name.clone(),
        None => wheel::normalize(missing),
    };
    let satisfies = |version: &Version| {
        requirement
            .as_ref()
            .is_none_or(|r| r.specifiers.contains(version))
    };
    // pip offers every file of a --find-links folder to every project it
    // looks up: only the file's own name says whose it is.
    let files: Vec<&Offered> = offered
        .iter()
        .filter(|o| wheel::normalize(&o.project) == name)
        .collect();
    let mut platforms: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut needs_python: BTreeSet<String> = BTreeSet::new();
    let mut sdists: Vec<&str> = Vec::new();
    for o in &files {
        match WheelName::parse(&o.file) {
            Ok(w) if wheel::normalize(&w.name) != name => {}
            Ok(w) if satisfies(&w.version) => {
                for (python, _, platform) in w.tags() {
                    platforms
                        .entry(platform.to_string())
                        .or_default()
                        .insert(python.to_string());
                }
                if let Some(rp) = &o.requires_python {
                    if !python_fits(rp, &group.version) {
                        needs_python.insert(rp.clone());
                    }
                }
            }
            Ok(_) => {}
            Err(_) if is_sdist_of(&o.file, &name) => sdists.push(&o.file),
            Err(_) => {}
        }
    }
    let head = format!("no wheel of {missing} for {}", group.describe());
    if platforms.is_empty() && !sdists.is_empty() {
        let last = sdists.last().copied().unwrap_or_default();
        return format!(
            "{head}: {name} has only source distributions on the index ({last}); \
             vd deploys wheels: build one on a machine like the targets with \
             `pip wheel --no-deps '{missing}' -w DIR` and vd-add it"
        );
    }
    if platforms.is_empty() {
        return format!(
            "{head}: the index offers no file of {name} that satisfies it \
             (a project of your own: give its wheels with --repo or --find-links)"
        );
    }
    let mut shown: Vec<String> = platforms
        .iter()
        .take(PLATFORMS_SHOWN)
        .map(|(platform, pythons)| {
            let pythons: Vec<&str> = pythons.iter().map(String::as_str).collect();
            format!("{platform} ({})", pythons.join(" "))
        })
        .collect();
    if platforms.len() > PLATFORMS_SHOWN {
        shown.push(format!("and {} more", platforms.len() - PLATFORMS_SHOWN));
    }
    let mut text = format!(
        "{head}; the index has wheels of it for {}",
        shown.join(", ")
    );
    if !needs_python.is_empty() {
        let specifiers: Vec<&str> = needs_python.iter().map(String::as_str).collect();
        text.push_str(&format!(
            "; some need Requires-Python {}",
            specifiers.join(" or ")
        ));
    }
    text
}

/// Whether Python `version` satisfies the Requires-Python `text` (one that
/// does not parse counts as satisfied: pip decides, this only explains).
fn python_fits(text: &str, version: &str) -> bool {
    match (wheel::requires_python(text), Version::from_str(version)) {
        (Ok(specifiers), Ok(version)) => specifiers.contains(&version),
        _ => true,
    }
}

/// Whether `file` is a source distribution of the project `name`
/// (normalized): `name-version.tar.gz` and the older archive kinds.
fn is_sdist_of(file: &str, name: &str) -> bool {
    let Some(stem) = [".tar.gz", ".zip", ".tar.bz2", ".tgz"]
        .iter()
        .find_map(|ext| file.strip_suffix(ext))
    else {
        return false;
    };
    stem.rsplit_once('-')
        .is_some_and(|(project, _)| wheel::normalize(project) == name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::assert_contains;
    use serde_json::json;

    fn group(version: &str) -> Group {
        let nodot: String = version.split('.').take(2).collect();
        let record = json!({
            "python": {"implementation": "cpython", "version": version, "platform": "linux-x86_64",
                       "soabi": format!("cpython-{nodot}-x86_64-linux-gnu"), "ext_suffix": "",
                       "pointer_bits": 64, "libc": "glibc", "libc_version": "2.36"},
            "markers": {"platform_system": "Linux", "python_version": version},
        });
        Group::of(record.as_object().unwrap()).unwrap()
    }

    fn offered(project: &str, files: &[(&str, Option<&str>)]) -> Vec<Offered> {
        files
            .iter()
            .map(|(file, requires_python)| Offered {
                project: project.to_string(),
                file: file.to_string(),
                requires_python: requires_python.map(str::to_string),
            })
            .collect()
    }

    #[test]
    fn a_group_gives_pip_its_version_abis_and_platforms() {
        let g = group("3.12.1");
        let options = g.pip_options();
        assert_eq!(
            options[..4],
            ["--python-version", "3.12.1", "--implementation", "cp"]
        );
        assert_eq!(g.abis, ["cp312", "abi3", "none"]);
        assert_eq!(g.platforms[0], "manylinux_2_36_x86_64");
        assert!(g.platforms.contains(&"manylinux2014_x86_64".to_string()));
        assert!(g.platforms.contains(&"linux_x86_64".to_string()));
        assert!(!g.platforms.contains(&"any".to_string()));
        assert_eq!(
            g.describe(),
            "cp312 on manylinux_2_36_x86_64 (Python 3.12.1)"
        );
    }

    #[test]
    fn hosts_that_differ_only_in_their_kernel_are_one_group() {
        let record = |release: &str, machine: &str| {
            json!({
                "python": {"implementation": "cpython", "version": "3.12.1", "platform": "linux-x86_64",
                           "soabi": "cpython-312-x86_64-linux-gnu", "ext_suffix": "",
                           "pointer_bits": 64, "libc": "glibc", "libc_version": "2.36"},
                "markers": {"platform_system": "Linux", "platform_release": release,
                            "platform_version": release, "platform_machine": machine},
            })
        };
        let key = |value: serde_json::Value| Group::of(value.as_object().unwrap()).unwrap().key();
        assert_eq!(
            key(record("6.1.0", "x86_64")),
            key(record("6.8.0", "x86_64"))
        );
        assert_ne!(
            key(record("6.1.0", "x86_64")),
            key(record("6.1.0", "other"))
        );
    }

    #[test]
    fn dest_loses_the_folders_of_runs_that_are_gone_only() {
        let dest = std::env::temp_dir().join(format!("vd-fetch-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dest);
        // No process has pid 4294967295; this one is running.
        let gone = dest.join(format!("{FOLDER_PREFIX}4294967295.0"));
        let live = dest.join(format!("{FOLDER_PREFIX}{}.0", std::process::id()));
        let kept = dest.join("a-1.0-py3-none-any.whl");
        fs::create_dir_all(&gone).unwrap();
        fs::create_dir_all(&live).unwrap();
        fs::write(&kept, b"").unwrap();
        prepare_dest(&dest).unwrap();
        let exists = (gone.exists(), live.exists(), kept.exists());
        fs::remove_dir_all(&dest).unwrap();
        assert_eq!(exists, (false, true, true));
    }

    #[test]
    fn an_unfrozen_record_is_an_error_naming_the_field() {
        let record = json!({"host": "a", "venv": "/v"});
        let e = Group::of(record.as_object().unwrap()).unwrap_err();
        assert!(format!("{e:#}").contains("`python`"), "{e:#}");
    }

    #[test]
    fn no_wheel_lists_the_platforms_of_versions_that_satisfy_only() {
        let files = offered(
            "Pillow",
            &[
                (
                    "Pillow-9.5.0-cp311-cp311-manylinux_2_28_x86_64.whl",
                    Some(">=3.7"),
                ),
                ("Pillow-9.5.0-cp311-cp311-win_amd64.whl", Some(">=3.7")),
                ("Pillow-9.4.0-cp36-cp36m-win32.whl", None),
                // A --find-links folder's file, offered to every project.
                ("six-1.16.0-py2.py3-none-any.whl", None),
                ("Pillow-9.5.0.tar.gz", None),
            ],
        );
        let text = no_wheel(&group("3.12.1"), "pillow==9.5.0", &files);
        assert!(
            text.starts_with("no wheel of pillow==9.5.0 for cp312"),
            "{text}"
        );
        assert!(
            text.contains("manylinux_2_28_x86_64 (cp311), win_amd64 (cp311)"),
            "{text}"
        );
        assert!(!text.contains("win32") && !text.contains("py2"), "{text}");
    }

    #[test]
    fn no_wheel_says_when_requires_python_excludes_the_target() {
        let files = offered("Django", &[("Django-6.0-py3-none-any.whl", Some(">=3.12"))]);
        let text = no_wheel(&group("3.11.7"), "django>=6", &files);
        assert!(text.contains("any (py3)"), "{text}");
        assert!(text.contains("Requires-Python >=3.12"), "{text}");
    }

    #[test]
    fn an_sdist_only_project_gets_the_pip_wheel_hint() {
        let files = offered(
            "docopt",
            &[("docopt-0.6.2.tar.gz", None), ("other-1.0.tar.gz", None)],
        );
        let text = no_wheel(&group("3.12.1"), "docopt", &files);
        assert!(text.contains("only source distributions"), "{text}");
        assert!(text.contains("(docopt-0.6.2.tar.gz)"), "{text}");
        assert!(
            text.contains("pip wheel --no-deps 'docopt' -w DIR"),
            "{text}"
        );
        assert!(is_sdist_of("Foo.Bar-1.0.zip", "foo-bar"));
        assert!(!is_sdist_of("foo-1.0-py3-none-any.whl", "foo"));
    }

    #[test]
    fn an_index_pip_could_not_read_is_named() {
        let stderr = "WARNING: Retrying (Retry(total=4, connect=None)) after connection broken by 'NewConnectionError'\n\
                      ERROR: Could not find a version that satisfies the requirement six (from versions: none)\n\
                      ERROR: No matching distribution found for six\n";
        let text = pip_failure(&group("3.12.1"), stderr, "");
        assert!(text.starts_with("no wheel of six for cp312"), "{text}");
        assert_contains(
            &text,
            &[
                "pip could not read the index: Retrying",
                "--repo or --find-links",
            ],
        );
    }

    #[test]
    fn other_pip_errors_are_passed_on_with_the_group() {
        let text = pip_failure(
            &group("3.12.1"),
            "Collecting a\nERROR: Cannot install a and b because these package versions have conflicting dependencies.\n",
            "",
        );
        assert!(text.starts_with("pip download for cp312 on"), "{text}");
        assert!(text.contains("conflicting dependencies"), "{text}");
    }
}
