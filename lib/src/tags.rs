//! Compatibility tags (PEP 425): which wheels a target's interpreter can
//! install, most specific first.
//!
//! pip decides this on the target with `packaging.tags.sys_tags()`. vd plans
//! offline, so it computes the same ordered list here from the `python` facts
//! vd-freeze collected (implementation, version, SOABI, EXT_SUFFIX, debug and
//! free-threading flags, before 3.8 pymalloc and before 3.3 the unicode
//! width, platform, pointer size, libc and its version), following
//! packaging's rules: CPython tags with its ABI (`cp311`, `cp37m`,
//! `cp27mu`), abi3 (from 3.2) and none,
//! abi3 of older versions, generic tags for other interpreters, then the
//! `pyXY` tags; platforms are manylinux (PEP 600 and the legacy aliases) from
//! the glibc version down, musllinux, and `linux_<arch>`; on macOS the ladder
//! of `macosx_X_Y` releases from the OS version (`mac_version` in the facts)
//! down, with the universal2 and intel variants. On other systems the
//! platform is `sysconfig.get_platform()` normalized, as packaging's generic
//! rule does.

/// The interpreter facts tags are computed from (a record's `python`).
pub use crate::record::Facts;
use crate::wheel::WheelName;
use anyhow::{anyhow, bail, Result};
use std::collections::HashMap;
use std::fmt;

/// The facts of one interpreter that decide its tags.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Interpreter {
    /// `sys.implementation.name`: cpython, pypy, …
    pub implementation: String,
    pub major: u32,
    pub minor: u32,
    /// `sysconfig.get_config_var("SOABI")`.
    pub soabi: String,
    /// `sysconfig.get_config_var("EXT_SUFFIX")`.
    pub ext_suffix: String,
    pub py_debug: bool,
    pub gil_disabled: bool,
    /// `WITH_PYMALLOC` (the `m` of `cp37m`), when the facts say.
    pub with_pymalloc: Option<bool>,
    /// Whether a unicode character is 4 bytes wide (the `u` of `cp27mu`):
    /// `Py_UNICODE_SIZE`, else `sys.maxunicode`; CPython before 3.3 only.
    pub ucs4: bool,
    /// `sysconfig.get_platform()`, e.g. `linux-x86_64`.
    pub platform: String,
    /// `platform.system()`: Linux, Darwin, Windows.
    pub system: String,
    pub pointer_bits: u32,
    /// `glibc`, `musl`, or empty when unknown.
    pub libc: String,
    pub libc_version: String,
    /// `platform.machine()`, which names the CPU of a universal2 build.
    pub machine: String,
    /// `platform.mac_ver()[0]`, the macOS release; empty elsewhere.
    pub mac_version: String,
    /// The version (major, minor) of the pip in the venv, which installs
    /// what vd plans: an old pip refuses manylinux tags newer than itself.
    /// `None` when unknown (a venv still to be made): every tag.
    pub pip: Option<(u32, u32)>,
}

impl Interpreter {
    /// Read the facts from a record's `python` object (as vd-freeze's
    /// remote script writes it) and the `platform_system` of its markers.
    pub fn from_facts(python: &Facts, platform_system: &str) -> Result<Interpreter> {
        let text = |v: &Option<String>| v.clone().unwrap_or_default();
        let version = text(&python.version);
        let (major, minor) = major_minor(&version)
            .ok_or_else(|| anyhow!("field `python`: version {version:?} is not like 3.11.4"))?;
        // The tag lists grow with these numbers (one entry per older minor),
        // and the facts come from a remote host: refuse what no real
        // interpreter or C library has rather than list millions of tags.
        check_beyond_real("version", &version, (major, minor))?;
        let libc_version = text(&python.libc_version);
        if let Some(parts) = major_minor(&libc_version) {
            check_beyond_real("libc_version", &libc_version, parts)?;
        }
        // The macOS ladder has one rung per release, and releases are
        // numbered by year now: 99 leaves decades.
        let mac_version = text(&python.mac_version);
        if let Some((major, minor)) = major_minor_or_major(&mac_version) {
            if major > 99 || minor > MAX_MINOR {
                bail!("field `python`: mac_version {mac_version:?} is beyond any real one (major at most 99, minor at most {MAX_MINOR})");
            }
        }
        let implementation = text(&python.implementation);
        if implementation.is_empty() {
            bail!("field `python` has no implementation");
        }
        let platform = text(&python.platform);
        if platform.is_empty() {
            bail!("field `python` has no platform");
        }
        // packaging's rule: Py_UNICODE_SIZE when the build has it, else
        // whether sys.maxunicode reaches past the BMP. Facts from before
        // these were collected count as the usual Linux build, UCS-4.
        let ucs4 = match (python.unicode_size, python.maxunicode) {
            (Some(size), _) => size == 4,
            (None, Some(max)) => max == 0x10FFFF,
            (None, None) => true,
        };
        Ok(Interpreter {
            implementation,
            major,
            minor,
            soabi: text(&python.soabi),
            ext_suffix: text(&python.ext_suffix),
            py_debug: python.py_debug.unwrap_or(false),
            gil_disabled: python.gil_disabled.unwrap_or(false),
            with_pymalloc: python.with_pymalloc,
            ucs4,
            platform,
            system: platform_system.to_string(),
            pointer_bits: python.pointer_bits.unwrap_or(64),
            libc: text(&python.libc),
            libc_version,
            machine: text(&python.machine),
            mac_version,
            pip: None,
        })
    }

    /// The same interpreter, with the venv's pip version (from its
    /// `installed`) limiting the manylinux tags to those that pip knows.
    pub fn installing_with_pip(mut self, pip_version: Option<&str>) -> Interpreter {
        self.pip = pip_version.and_then(major_minor_or_major);
        self
    }

    /// What the facts lack that the tags would need, said so a person can
    /// fix it: a macOS record without `mac_version` (older or hand-made)
    /// gets only its build's one platform tag, not the ladder of releases.
    pub fn missing_fact(&self) -> Option<String> {
        (self.system == "Darwin" && major_minor_or_major(&self.mac_version).is_none()).then(|| {
            format!(
                "field `python` has no mac_version: only the platform tag {} is accepted, not the older macOS releases' (run vd-freeze again)",
                normalize_tag(&self.platform)
            )
        })
    }

    /// packaging's `interpreter_name()`: `cp`, `pp`, or the long name.
    fn short_name(&self) -> &str {
        match self.implementation.as_str() {
            "python" => "py",
            "cpython" => "cp",
            "pypy" => "pp",
            "ironpython" => "ip",
            "jython" => "jy",
            other => other,
        }
    }

    fn nodot(&self) -> String {
        format!("{}{}", self.major, self.minor)
    }
}

/// The largest major and minor version the facts may name: far beyond any
/// real Python (3.14) or C library (glibc 2.42, musl 1.2).
const MAX_MAJOR: u32 = 9;
const MAX_MINOR: u32 = 99;

fn check_beyond_real(field: &str, text: &str, (major, minor): (u32, u32)) -> Result<()> {
    if major > MAX_MAJOR || minor > MAX_MINOR {
        bail!(
            "field `python`: {field} {text:?} is beyond any real one \
             (major at most {MAX_MAJOR}, minor at most {MAX_MINOR})"
        );
    }
    Ok(())
}

fn major_minor(version: &str) -> Option<(u32, u32)> {
    let mut parts = version.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor: String = parts
        .next()?
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    Some((major, minor.parse().ok()?))
}

/// One `python-abi-platform` tag.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Tag {
    pub python: String,
    pub abi: String,
    pub platform: String,
}

impl Tag {
    fn new(python: &str, abi: &str, platform: &str) -> Tag {
        Tag {
            python: python.to_string(),
            abi: abi.to_string(),
            platform: platform.to_string(),
        }
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}-{}", self.python, self.abi, self.platform)
    }
}

/// Every tag the interpreter accepts, most specific first, as
/// `packaging.tags.sys_tags()` yields them.
pub fn sys_tags(interp: &Interpreter) -> Vec<Tag> {
    let platforms = platform_tags(interp);
    let mut tags = Vec::new();
    let name = interp.short_name();
    if name == "cp" {
        cpython_tags(interp, &platforms, &mut tags);
    } else {
        generic_tags(interp, &platforms, &mut tags);
    }
    let interpreter = match name {
        "pp" => Some("pp3".to_string()),
        "cp" => Some(format!("cp{}", interp.nodot())),
        _ => None,
    };
    compatible_tags(interp, interpreter.as_deref(), &platforms, &mut tags);
    let mut seen = std::collections::HashSet::new();
    tags.retain(|t| seen.insert(t.clone()));
    tags
}

fn cpython_tags(interp: &Interpreter, platforms: &[String], tags: &mut Vec<Tag>) {
    let interpreter = format!("cp{}", interp.nodot());
    let abis = cpython_abis(interp);
    for abi in &abis {
        for p in platforms {
            tags.push(Tag::new(&interpreter, abi, p));
        }
    }
    // A free-threaded build cannot load abi3 extensions.
    let threaded = abis
        .first()
        .and_then(|a| a.strip_prefix("cp"))
        .map(|rest| rest.trim_start_matches(|c: char| c.is_ascii_digit()))
        .is_some_and(|flags| flags.contains('t'));
    let use_abi3 = (interp.major, interp.minor) >= (3, 2) && !threaded;
    if use_abi3 {
        for p in platforms {
            tags.push(Tag::new(&interpreter, "abi3", p));
        }
    }
    for p in platforms {
        tags.push(Tag::new(&interpreter, "none", p));
    }
    if use_abi3 {
        for minor in (2..interp.minor).rev() {
            let older = format!("cp{}{minor}", interp.major);
            for p in platforms {
                tags.push(Tag::new(&older, "abi3", p));
            }
        }
    }
}

/// packaging's `_cpython_abis`: `cp311`, `cp313t`, `cp37m`, `cp27mu`, and for a debug
/// build also the plain ABI, which it can load too.
fn cpython_abis(interp: &Interpreter) -> Vec<String> {
    let version = interp.nodot();
    let debug = if interp.py_debug { "d" } else { "" };
    let threading = if (interp.major, interp.minor) >= (3, 13) && interp.gil_disabled {
        "t"
    } else {
        ""
    };
    let mut abis = Vec::new();
    let mut pymalloc = "";
    let mut ucs4 = "";
    if (interp.major, interp.minor) < (3, 8) {
        // WITH_PYMALLOC, or in facts that lack it, SOABI (cpython-37m-…);
        // packaging counts an unknown as pymalloc.
        let soabi_flags = || {
            interp
                .soabi
                .strip_prefix("cpython-")
                .and_then(|s| s.split('-').next())
                .map(|s| s.trim_start_matches(|c: char| c.is_ascii_digit()))
        };
        let with_pymalloc = interp
            .with_pymalloc
            .unwrap_or_else(|| soabi_flags().is_none_or(|f| f.contains('m')));
        if with_pymalloc {
            pymalloc = "m";
        }
        if (interp.major, interp.minor) < (3, 3) && interp.ucs4 {
            ucs4 = "u";
        }
    } else if !debug.is_empty() {
        abis.push(format!("cp{version}{threading}"));
    }
    abis.insert(0, format!("cp{version}{threading}{debug}{pymalloc}{ucs4}"));
    abis.retain(|a| a != "abi3" && a != "none");
    abis
}

fn generic_tags(interp: &Interpreter, platforms: &[String], tags: &mut Vec<Tag>) {
    let interpreter = format!("{}{}", interp.short_name(), interp.nodot());
    let mut abis = generic_abi(interp);
    if !abis.iter().any(|a| a == "none") {
        abis.push("none".to_string());
    }
    for abi in &abis {
        for p in platforms {
            tags.push(Tag::new(&interpreter, abi, p));
        }
    }
}

/// packaging's `_generic_abi`: the ABI from EXT_SUFFIX
/// (`.pypy39-pp73-x86_64-linux-gnu.so` → `pypy39_pp73`).
fn generic_abi(interp: &Interpreter) -> Vec<String> {
    let parts: Vec<&str> = interp.ext_suffix.split('.').collect();
    if !interp.ext_suffix.starts_with(['.', '-']) {
        return Vec::new();
    }
    if parts.len() < 3 {
        return cpython_abis(interp);
    }
    let soabi = parts[1];
    let pieces: Vec<&str> = soabi.split('-').collect();
    let abi = if soabi.starts_with("cpython") {
        format!("cp{}", pieces.get(1).copied().unwrap_or(""))
    } else if soabi.starts_with("cp") {
        pieces[0].to_string()
    } else if soabi.starts_with("pypy") {
        pieces[..pieces.len().min(2)].join("-")
    } else if soabi.starts_with("graalpy") {
        pieces[..pieces.len().min(3)].join("-")
    } else if !soabi.is_empty() {
        soabi.to_string()
    } else {
        return Vec::new();
    };
    vec![normalize_tag(&abi)]
}

fn compatible_tags(
    interp: &Interpreter,
    interpreter: Option<&str>,
    platforms: &[String],
    tags: &mut Vec<Tag>,
) {
    let versions = py_interpreter_range(interp);
    for version in &versions {
        for p in platforms {
            tags.push(Tag::new(version, "none", p));
        }
    }
    if let Some(interpreter) = interpreter {
        tags.push(Tag::new(interpreter, "none", "any"));
    }
    for version in &versions {
        tags.push(Tag::new(version, "none", "any"));
    }
}

/// `py311`, `py3`, `py310`, … `py30`.
fn py_interpreter_range(interp: &Interpreter) -> Vec<String> {
    let mut versions = vec![
        format!("py{}{}", interp.major, interp.minor),
        format!("py{}", interp.major),
    ];
    for minor in (0..interp.minor).rev() {
        versions.push(format!("py{}{minor}", interp.major));
    }
    versions
}

fn normalize_tag(text: &str) -> String {
    text.replace(['.', '-', ' '], "_")
}

/// The platform tags, most specific first.
fn platform_tags(interp: &Interpreter) -> Vec<String> {
    let generic = normalize_tag(&interp.platform);
    if interp.system == "Darwin" {
        if let Some(version) = major_minor_or_major(&interp.mac_version) {
            let arch = match interp.machine.as_str() {
                "x86_64" if interp.pointer_bits == 32 => "i386",
                "" => generic.rsplit('_').next().unwrap_or(""),
                machine => machine,
            };
            return mac_platforms(version, arch);
        }
    }
    if interp.system != "Linux" {
        return vec![generic];
    }
    let Some(mut arch) = generic.strip_prefix("linux_").map(str::to_string) else {
        return vec![generic];
    };
    if interp.pointer_bits == 32 {
        // A 32-bit interpreter on a 64-bit kernel.
        match arch.as_str() {
            "x86_64" => arch = "i686".to_string(),
            "aarch64" => arch = "armv8l".to_string(),
            _ => {}
        }
    }
    let archs: Vec<String> = if arch == "armv8l" {
        vec!["armv8l".to_string(), "armv7l".to_string()]
    } else {
        vec![arch]
    };
    let mut platforms = Vec::new();
    manylinux_tags(interp, &archs, &mut platforms);
    musllinux_tags(interp, &archs, &mut platforms);
    for arch in &archs {
        platforms.push(format!("linux_{arch}"));
    }
    platforms
}

/// `14.2.1` → (14, 2); `11` → (11, 0).
fn major_minor_or_major(version: &str) -> Option<(u32, u32)> {
    major_minor(version).or_else(|| Some((version.parse().ok()?, 0)))
}

/// packaging's `mac_platforms`: the macOS platform tags a `version` (the
/// OS release) on `arch` accepts, newest first. Before macOS 11 each release
/// bumped the minor version, since then the major; an x86_64 Mac also runs
/// wheels built for every 10.x from 10.4, an arm64 Mac their universal2
/// builds.
pub fn mac_platforms(version: (u32, u32), arch: &str) -> Vec<String> {
    let mut platforms = Vec::new();
    let mut push = |major: u32, minor: u32| {
        for format in mac_binary_formats((major, minor), arch) {
            platforms.push(format!("macosx_{major}_{minor}_{format}"));
        }
    };
    if ((10, 0)..(11, 0)).contains(&version) {
        for minor in (0..=version.1).rev() {
            push(10, minor);
        }
    }
    if version >= (11, 0) {
        for major in (11..=version.0).rev() {
            push(major, 0);
        }
        if arch == "x86_64" {
            for minor in (4..=16).rev() {
                push(10, minor);
            }
        } else {
            for minor in (4..=16).rev() {
                platforms.push(format!("macosx_10_{minor}_universal2"));
            }
        }
    }
    platforms
}

/// packaging's `_mac_binary_formats`: the binary formats a macOS `version`
/// on `arch` runs, the CPU's own first.
fn mac_binary_formats(version: (u32, u32), arch: &str) -> Vec<&str> {
    let mut formats = vec![arch];
    match arch {
        "x86_64" if version < (10, 4) => return Vec::new(),
        "x86_64" => formats.extend(["intel", "fat64", "fat32"]),
        "i386" if version < (10, 4) => return Vec::new(),
        "i386" => formats.extend(["intel", "fat32", "fat"]),
        "ppc64" if !((10, 4)..=(10, 5)).contains(&version) => return Vec::new(),
        "ppc64" => formats.push("fat64"),
        "ppc" if version > (10, 6) => return Vec::new(),
        "ppc" => formats.extend(["fat32", "fat"]),
        _ => {}
    }
    if matches!(arch, "arm64" | "x86_64") {
        formats.push("universal2");
    }
    if matches!(arch, "x86_64" | "i386" | "intel" | "ppc" | "ppc64") {
        formats.push("universal");
    }
    formats
}

/// The legacy names PEPs 513, 571 and 599 gave some glibc versions, and
/// the first pip that installs wheels tagged so.
fn legacy_manylinux(minor: u32) -> Option<(&'static str, (u32, u32))> {
    match minor {
        17 => Some(("manylinux2014", (19, 3))),
        12 => Some(("manylinux2010", (19, 0))),
        5 => Some(("manylinux1", (8, 1))),
        _ => None,
    }
}

/// The first pip that installs PEP 600 `manylinux_x_y` wheels.
const PIP_KNOWS_PEP_600: (u32, u32) = (20, 3);

/// Whether a venv's pip (`None`: unknown) installs wheels of a tag that
/// pip first accepted in version `since`.
fn pip_knows(pip: Option<(u32, u32)>, since: (u32, u32)) -> bool {
    pip.is_none_or(|v| v >= since)
}

fn manylinux_tags(interp: &Interpreter, archs: &[String], platforms: &mut Vec<String>) {
    if interp.libc != "glibc" {
        return;
    }
    let Some((major, minor)) = major_minor(&interp.libc_version) else {
        return;
    };
    // packaging's `_have_compatible_abi`: which architectures manylinux
    // covers (it also reads the ELF header for armhf and i686; vd trusts the
    // interpreter's own platform there).
    let allowed = [
        "x86_64",
        "aarch64",
        "ppc64",
        "ppc64le",
        "s390x",
        "loongarch64",
        "riscv64",
        "armv7l",
        "i686",
    ];
    if !archs.iter().any(|a| allowed.contains(&a.as_str())) {
        return;
    }
    // Oldest glibc covered: 2.17 in general, 2.5 on x86.
    let oldest_minor = if archs.iter().any(|a| a == "x86_64" || a == "i686") {
        5
    } else {
        17
    };
    // vd knows glibc 2 only; packaging assumes compatibility across major
    // versions, with 50 minors each, which only matters for a glibc 3.
    let mut maxima = vec![(major, minor)];
    for older in (2..major).rev() {
        maxima.push((older, 50));
    }
    for arch in archs {
        for &(glibc_major, glibc_max) in &maxima {
            let lowest = if glibc_major == 2 { oldest_minor } else { 0 };
            for glibc_minor in (lowest..=glibc_max).rev() {
                if pip_knows(interp.pip, PIP_KNOWS_PEP_600) {
                    platforms.push(format!("manylinux_{glibc_major}_{glibc_minor}_{arch}"));
                }
                if glibc_major == 2 {
                    if let Some((legacy, since)) = legacy_manylinux(glibc_minor) {
                        if pip_knows(interp.pip, since) {
                            platforms.push(format!("{legacy}_{arch}"));
                        }
                    }
                }
            }
        }
    }
}

fn musllinux_tags(interp: &Interpreter, archs: &[String], platforms: &mut Vec<String>) {
    if interp.libc != "musl" {
        return;
    }
    let Some((major, minor)) = major_minor(&interp.libc_version) else {
        return;
    };
    for arch in archs {
        for m in (0..=minor).rev() {
            platforms.push(format!("musllinux_{major}_{m}_{arch}"));
        }
    }
}

/// An interpreter's tags with their priority, for ranking wheels.
pub(crate) struct Tags {
    list: Vec<Tag>,
    /// python → abi → platform → position in `list`; nested so a wheel's
    /// tags are looked up without building strings.
    index: HashMap<String, HashMap<String, HashMap<String, usize>>>,
    /// Unique to this list, for memos of what it accepts.
    id: u64,
}

impl Tags {
    pub(crate) fn new(interp: &Interpreter) -> Tags {
        let list = sys_tags(interp);
        let mut index: HashMap<String, HashMap<String, HashMap<String, usize>>> = HashMap::new();
        for (i, tag) in list.iter().enumerate() {
            index
                .entry(tag.python.clone())
                .or_default()
                .entry(tag.abi.clone())
                .or_default()
                .entry(tag.platform.clone())
                .or_insert(i);
        }
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let id = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Tags { list, index, id }
    }

    /// This list's identity: two lists made apart have different ones.
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// How well a wheel fits: the position of its most specific tag in the
    /// list (lower is better), or `None` when the interpreter cannot install it.
    pub(crate) fn priority(&self, wheel: &WheelName) -> Option<usize> {
        wheel
            .tags()
            .filter_map(|(p, a, pl)| self.index.get(p)?.get(a)?.get(pl).copied())
            .min()
    }

    /// A short description for messages: `cp311 on manylinux_2_36_x86_64`.
    pub(crate) fn describe(&self) -> String {
        match self.list.first() {
            // A free-threaded build is `cp313t`: its first tag's ABI says so.
            Some(t)
                if t.abi
                    .strip_prefix(t.python.as_str())
                    .is_some_and(|a| a.starts_with('t')) =>
            {
                format!("{}t ({})", t.python, t.platform)
            }
            Some(t) => format!("{} ({})", t.python, t.platform),
            None => "no tags".to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn facts(value: Value) -> Facts {
        serde_json::from_value(value).unwrap()
    }

    fn cpython(version: &str, libc: &str, libc_version: &str) -> Interpreter {
        Interpreter::from_facts(
            &facts(json!({"implementation": "cpython", "version": version,
                    "platform": "linux-x86_64", "soabi": "", "ext_suffix": "", "pointer_bits": 64,
                    "libc": libc, "libc_version": libc_version})),
            "Linux",
        )
        .unwrap()
    }

    fn strings(tags: &[Tag]) -> Vec<String> {
        tags.iter().map(Tag::to_string).collect()
    }

    #[test]
    fn a_macos_target_takes_wheels_for_older_releases_and_universal2() {
        let facts = json!({"implementation": "cpython", "version": "3.12.1",
            "platform": "macosx-11.0-arm64", "machine": "arm64", "mac_version": "14.2.1",
            "soabi": "cpython-312-darwin", "ext_suffix": ".cpython-312-darwin.so",
            "pointer_bits": 64});
        let interp =
            Interpreter::from_facts(&serde_json::from_value(facts).unwrap(), "Darwin").unwrap();
        let tags = Tags::new(&interp);
        for file in [
            "numpy-2.1.0-cp312-cp312-macosx_14_0_arm64.whl",
            "lxml-5.3.0-cp312-cp312-macosx_10_9_universal2.whl",
            "pillow-11.0.0-cp312-cp312-macosx_11_0_arm64.whl",
        ] {
            let wheel = WheelName::parse(file).unwrap();
            assert!(tags.priority(&wheel).is_some(), "{file}");
        }
        for file in [
            "lxml-5.3.0-cp312-cp312-macosx_10_9_x86_64.whl",
            "numpy-2.1.0-cp312-cp312-macosx_15_0_arm64.whl",
        ] {
            let wheel = WheelName::parse(file).unwrap();
            assert!(tags.priority(&wheel).is_none(), "{file}");
        }
        let mut beyond: Facts = serde_json::from_value(json!({"implementation": "cpython",
            "version": "3.12.1", "platform": "macosx-11.0-arm64", "mac_version": "100000.0"}))
        .unwrap();
        let e = Interpreter::from_facts(&beyond, "Darwin").unwrap_err();
        assert!(
            e.to_string().contains("mac_version \"100000.0\" is beyond"),
            "{e}"
        );
        beyond.mac_version = Some("26.1".into());
        Interpreter::from_facts(&beyond, "Darwin").unwrap();
    }

    #[test]
    fn cpython_on_glibc_in_packaging_order() {
        let tags = strings(&sys_tags(&cpython("3.11.4", "glibc", "2.17")));
        // 13 manylinux_2_N (2.17 … 2.5), 3 legacy aliases, linux_x86_64.
        let platforms = 17;
        assert_eq!(tags[0], "cp311-cp311-manylinux_2_17_x86_64");
        assert_eq!(tags[1], "cp311-cp311-manylinux2014_x86_64");
        assert_eq!(tags[platforms - 1], "cp311-cp311-linux_x86_64");
        assert_eq!(tags[platforms], "cp311-abi3-manylinux_2_17_x86_64");
        assert_eq!(tags[2 * platforms], "cp311-none-manylinux_2_17_x86_64");
        assert_eq!(tags[3 * platforms], "cp310-abi3-manylinux_2_17_x86_64");
        assert!(tags.contains(&"cp32-abi3-linux_x86_64".to_string()));
        assert!(!tags.contains(&"cp31-abi3-linux_x86_64".to_string()));
        let any = tags.iter().position(|t| t == "cp311-none-any").unwrap();
        assert_eq!(tags[any + 1], "py311-none-any");
        assert_eq!(tags[any + 2], "py3-none-any");
        assert_eq!(tags.last().unwrap(), "py30-none-any");
        assert_eq!(tags.len(), 3 * 17 + 9 * 17 + 13 * 17 + 1 + 13);
    }

    #[test]
    fn musl_and_32_bit_and_free_threaded() {
        let tags = strings(&sys_tags(&cpython("3.12.1", "musl", "1.2")));
        assert_eq!(tags[0], "cp312-cp312-musllinux_1_2_x86_64");
        assert_eq!(tags[2], "cp312-cp312-musllinux_1_0_x86_64");
        assert_eq!(tags[3], "cp312-cp312-linux_x86_64");
        assert!(!tags.iter().any(|t| t.contains("manylinux")));

        let mut i686 = cpython("3.12.1", "glibc", "2.28");
        i686.pointer_bits = 32;
        assert_eq!(sys_tags(&i686)[0].platform, "manylinux_2_28_i686");

        let mut threaded = cpython("3.13.0", "glibc", "2.28");
        threaded.gil_disabled = true;
        let tags = strings(&sys_tags(&threaded));
        assert_eq!(tags[0], "cp313-cp313t-manylinux_2_28_x86_64");
        assert!(!tags.iter().any(|t| t.contains("abi3")));
        // Messages name the build as its tag does.
        assert_eq!(
            Tags::new(&threaded).describe(),
            "cp313t (manylinux_2_28_x86_64)"
        );
        assert_eq!(
            Tags::new(&cpython("3.13.0", "glibc", "2.28")).describe(),
            "cp313 (manylinux_2_28_x86_64)"
        );
    }

    #[test]
    fn an_old_pip_in_the_venv_gets_only_the_manylinux_tags_it_knows() {
        let platforms = |pip: Option<&str>| -> Vec<String> {
            let interp = cpython("3.6.15", "glibc", "2.28").installing_with_pip(pip);
            let mut p = platform_tags(&interp);
            p.retain(|p| p.starts_with("many"));
            p
        };
        let legacy = [
            "manylinux2014_x86_64",
            "manylinux2010_x86_64",
            "manylinux1_x86_64",
        ];
        assert_eq!(platforms(Some("9.0.1")), ["manylinux1_x86_64"]);
        assert_eq!(platforms(Some("18.1")), ["manylinux1_x86_64"]);
        assert_eq!(platforms(Some("19.0.3")), legacy[1..]);
        assert_eq!(platforms(Some("20.2.4")), legacy);
        let all = platforms(Some("20.3"));
        assert_eq!(all[0], "manylinux_2_28_x86_64");
        assert_eq!(all, platforms(None));
        assert!(legacy.iter().all(|l| all.contains(&l.to_string())));
    }

    #[test]
    fn a_macos_record_without_mac_version_is_warned_of_by_field() {
        let python = facts(json!({"implementation": "cpython", "version": "3.12.1",
            "platform": "macosx-11.0-arm64", "machine": "arm64"}));
        let interp = Interpreter::from_facts(&python, "Darwin").unwrap();
        let warning = interp.missing_fact().expect("a warning");
        assert!(warning.contains("no mac_version"), "{warning}");
        assert!(warning.contains("macosx_11_0_arm64"), "{warning}");
        let mut with_version = python.clone();
        with_version.mac_version = Some("14.2.1".into());
        let interp = Interpreter::from_facts(&with_version, "Darwin").unwrap();
        assert_eq!(interp.missing_fact(), None);
        let linux = facts(json!({"implementation": "cpython", "version": "3.12.1",
            "platform": "linux-x86_64", "libc": "glibc", "libc_version": "2.28"}));
        let interp = Interpreter::from_facts(&linux, "Linux").unwrap();
        assert_eq!(interp.missing_fact(), None);
    }

    #[test]
    fn old_cpython_abi_flags_and_py2_tags() {
        let facts = |version: &str, extra: Value| {
            let mut python = json!({"implementation": "cpython", "version": version,
                "platform": "linux-x86_64", "libc": "glibc", "libc_version": "2.17"});
            python
                .as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            Interpreter::from_facts(&serde_json::from_value(python).unwrap(), "Linux").unwrap()
        };
        // 2.7: pymalloc and UCS-4 from the build, else from sys.maxunicode.
        let wide = facts("2.7.18", json!({"with_pymalloc": true, "unicode_size": 4}));
        let narrow = facts(
            "2.7.18",
            json!({"with_pymalloc": true, "maxunicode": 65535}),
        );
        let by_max = facts("2.7.18", json!({"maxunicode": 1114111}));
        assert_eq!(sys_tags(&wide)[0].abi, "cp27mu");
        assert_eq!(sys_tags(&narrow)[0].abi, "cp27m");
        assert_eq!(sys_tags(&by_max)[0].abi, "cp27mu");
        let tags = strings(&sys_tags(&wide));
        assert!(
            !tags.iter().any(|t| t.contains("abi3")),
            "no abi3 before 3.2"
        );
        assert!(tags.contains(&"py2-none-any".to_string()));
        assert!(!tags.iter().any(|t| t.starts_with("py3")));
        // 3.6 and 3.7: pymalloc's `m`, never `u`.
        let py36 = facts(
            "3.6.15",
            json!({"with_pymalloc": true, "unicode_size": null,
            "soabi": "cpython-36m-x86_64-linux-gnu"}),
        );
        assert_eq!(sys_tags(&py36)[0].abi, "cp36m");
        let py37 = facts(
            "3.7.16",
            json!({"with_pymalloc": false, "maxunicode": 1114111}),
        );
        assert_eq!(sys_tags(&py37)[0].abi, "cp37");
        // A py2-only wheel is for 2.7 targets, never for 3.x.
        let py2_only = WheelName::parse("futures-3.3.0-py2-none-any.whl").unwrap();
        assert!(Tags::new(&wide).priority(&py2_only).is_some());
        assert!(Tags::new(&py36).priority(&py2_only).is_none());
    }

    #[test]
    fn pypy_uses_generic_tags() {
        let interp = Interpreter::from_facts(
            &facts(json!({"implementation": "pypy", "version": "3.9.18",
                    "platform": "linux-x86_64", "ext_suffix": ".pypy39-pp73-x86_64-linux-gnu.so",
                    "libc": "glibc", "libc_version": "2.31"})),
            "Linux",
        )
        .unwrap();
        let tags = strings(&sys_tags(&interp));
        assert_eq!(tags[0], "pp39-pypy39_pp73-manylinux_2_31_x86_64");
        assert!(tags.contains(&"pp39-none-linux_x86_64".to_string()));
        assert!(tags.contains(&"pp3-none-any".to_string()));
    }

    #[test]
    fn refuses_versions_beyond_any_real_one() {
        let odd = |version: &str, libc_version: &str| {
            facts(json!({"implementation": "cpython", "version": version,
                   "platform": "linux-x86_64", "libc": "glibc", "libc_version": libc_version}))
        };
        for (version, libc, bad) in [
            ("3.100000", "2.31", "3.100000"),
            ("3.11.4", "2.10000000", "2.10000000"),
            ("10.1", "2.31", "10.1"),
        ] {
            let e = Interpreter::from_facts(&odd(version, libc), "Linux").unwrap_err();
            assert!(e.to_string().contains(bad), "{e}");
        }
        let edge = Interpreter::from_facts(&odd("3.99", "9.99"), "Linux").unwrap();
        assert!(sys_tags(&edge).len() < 200_000);
    }

    #[test]
    fn ranks_wheels_by_their_best_tag() {
        let tags = Tags::new(&cpython("3.11.4", "glibc", "2.31"));
        let rank = |f: &str| tags.priority(&WheelName::parse(f).unwrap());
        let binary = rank("m-1-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl");
        let pure = rank("m-1-py2.py3-none-any.whl");
        assert!(binary.unwrap() < pure.unwrap());
        assert_eq!(rank("m-1-cp312-cp312-manylinux_2_17_x86_64.whl"), None);
        assert_eq!(rank("m-1-cp311-cp311-manylinux_2_34_x86_64.whl"), None);
        assert_eq!(rank("m-1-cp311-cp311-win_amd64.whl"), None);
    }
}
