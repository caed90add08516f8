//! Requirements: what a target should have, read from pip-style requirements
//! files, a record's `packages` list, and the `Requires-Dist` lines of wheels.
//!
//! vd reads the repository, never an index, so only what names a project and
//! its versions is accepted: PEP 508 names with extras, PEP 440 specifiers and
//! markers, and of pip's file syntax comments, `\` continuations, `-r`/`-c`
//! includes and `--hash=sha256:…` (so a pip-compile lock file works as is).
//! The index options pip-compile writes into its header (`--index-url`,
//! `--extra-index-url`, `--find-links`, `--trusted-host`) say where packages
//! were found, not which: they are accepted with a warning. URLs, paths, `-e`
//! and every other pip option are refused with the file and line, because
//! silently ignoring them would deploy something other than what the file
//! says. Markers are kept, not evaluated: one file serves many targets.
//!
//! pep508_rs does the PEP 508 parsing. It reports some markers it cannot
//! evaluate as warnings and then treats them as true; those become errors
//! here. It also panics on a few malformed markers, and a panic while its
//! global marker interner is locked poisons that interner for the rest of the
//! process, so the one known form is refused before pep508_rs sees it, and any
//! other panic is caught and turned into an error naming the line.
//!
//! A record may name any file this machine can read as its `requirements`
//! (`/etc/shadow` included, when vd runs as root), and errors end up in
//! records, logs and mail. So an error quotes a line of a file only when
//! every user of this machine may read that file anyway (its mode lets
//! others read it), as a project's requirements file does; of any other
//! file it names the file, the line and the column and says what was
//! expected, and quotes nothing (see [`Quoting`]).

use crate::wheel::normalize;
use anyhow::{anyhow, bail, Result};
use pep508_rs::pep440_rs::{Operator, VersionSpecifiers};
use pep508_rs::{ExtraName, MarkerEnvironment, MarkerTree, MarkerWarningKind, VersionOrUrl};
use std::cell::Cell;
use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Once;

/// One requirement: a project, the versions that will do, and where it was
/// written.
#[derive(Debug, Clone)]
pub struct Requirement {
    /// PEP 503 normalized project name.
    pub name: String,
    pub extras: Vec<ExtraName>,
    /// Empty when any version will do.
    pub specifiers: VersionSpecifiers,
    pub marker: MarkerTree,
    /// Lower-case hex sha256 digests from `--hash`; when not empty, the
    /// chosen wheel must be one of them.
    pub hashes: Vec<String>,
    /// The requirement as written, without options.
    pub text: String,
    pub origin: Origin,
}

/// Where a requirement was written, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A line of a requirements file (the first line of a continued one).
    File { path: PathBuf, line: usize },
    /// An entry of a record's list field (`packages`).
    Field { name: String },
    /// A `Requires-Dist` line of a wheel's METADATA.
    Wheel { file: String },
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File { path, line } => write!(f, "{} line {line}", path.display()),
            Origin::Field { name } => write!(f, "field `{name}`"),
            Origin::Wheel { file } => write!(f, "{file} METADATA"),
        }
    }
}

impl Requirement {
    /// Parse one PEP 508 requirement (no pip options). Names, extras and
    /// version specifiers only: a URL or path is an error, and so is a marker
    /// pep508_rs could not evaluate as written.
    pub fn parse(text: &str, origin: Origin) -> Result<Requirement> {
        Requirement::parse_quoting(text, origin, Quoting::Quote)
    }

    /// [`Requirement::parse`], quoting the text in errors only if `quoting` says so.
    fn parse_quoting(text: &str, origin: Origin, quoting: Quoting) -> Result<Requirement> {
        let text = text.trim();
        let fail = |message: String| anyhow!("{origin}: {message}");
        // What an error says of the text: the text itself, or nothing.
        let shown = quoting.show(text);
        if text.is_empty() {
            return Err(fail("empty requirement".to_string()));
        }
        if looks_like_url_or_path(text) {
            return Err(fail(format!(
                "{shown}URLs and paths are not supported; vd installs wheels from its repository by name and version (add the wheel with vd-add)"
            )));
        }
        check_string_tilde_equal(text).map_err(|m| fail(format!("{shown}{m}")))?;
        let mut warnings = Vec::new();
        let parsed = parse_without_panic(text, &mut warnings).map_err(|(m, column)| {
            fail(match quoting {
                Quoting::Quote => format!("`{text}`: {m}"),
                Quoting::Withhold => format!(
                    "not a requirement vd can read (column {column}: {}){WITHHELD}",
                    without_found(&m)
                ),
            })
        })?;
        if let Some(warning) = warnings.first() {
            let warning = match quoting {
                Quoting::Quote => warning.as_str(),
                Quoting::Withhold => "a marker pep508_rs cannot evaluate",
            };
            return Err(fail(format!(
                "{shown}marker cannot be evaluated: {warning}"
            )));
        }
        let specifiers = match parsed.version_or_url {
            None => VersionSpecifiers::empty(),
            Some(VersionOrUrl::VersionSpecifier(s)) => s,
            Some(VersionOrUrl::Url(_)) => {
                return Err(fail(format!(
                    "{shown}URLs are not supported; vd installs wheels from its repository by name and version (add the wheel with vd-add)"
                )))
            }
        };
        Ok(Requirement {
            name: normalize(parsed.name.as_ref()),
            extras: parsed.extras,
            specifiers,
            marker: parsed.marker,
            hashes: Vec::new(),
            text: text.to_string(),
            origin,
        })
    }

    /// Whether the line opts in to pre-releases of its project, as PEP 440
    /// and pip have it: a specifier names a pre-release, other than to
    /// exclude it (`!=5.2rc1` excludes one, it asks for none).
    pub fn names_prerelease(&self) -> bool {
        self.specifiers.iter().any(|s| {
            !matches!(s.operator(), Operator::NotEqual | Operator::NotEqualStar)
                && s.any_prerelease()
        })
    }

    /// Whether this requirement applies to an environment, with the extras
    /// that were requested of the project that declares it.
    pub fn applies(&self, env: &MarkerEnvironment, extras: &[ExtraName]) -> bool {
        self.marker.evaluate(env, extras)
    }
}

/// What a requirements file (with its includes) or a `packages` list asks for.
#[derive(Debug, Clone, Default)]
pub struct Requirements {
    /// What must be installed.
    pub requirements: Vec<Requirement>,
    /// From `-c` files: limits on versions, which install nothing by themselves.
    pub constraints: Vec<Requirement>,
    /// Lines accepted but ignored, each naming its file and line.
    pub warnings: Vec<String>,
}

impl Requirements {
    /// Read a requirements file and the files it includes.
    pub fn read(path: &Path) -> Result<Requirements> {
        let mut reqs = Requirements::default();
        let mut stack = Vec::new();
        read_file(path, false, &mut stack, &mut reqs)?;
        Ok(reqs)
    }

    /// A record's list of requirements (`packages`): PEP 508 strings, no options.
    pub fn from_list(items: &[String], field: &str) -> Result<Requirements> {
        let requirements = items
            .iter()
            .map(|item| {
                Requirement::parse(
                    item,
                    Origin::Field {
                        name: field.to_string(),
                    },
                )
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Requirements {
            requirements,
            ..Requirements::default()
        })
    }

    /// Add another set's requirements and constraints after this one's.
    pub fn extend(&mut self, other: &Requirements) {
        self.requirements.extend(other.requirements.iter().cloned());
        self.constraints.extend(other.constraints.iter().cloned());
        self.warnings.extend(other.warnings.iter().cloned());
    }
}

/// One file, appended to `reqs`. `stack` holds the files being read, to
/// refuse an include cycle.
fn read_file(
    path: &Path,
    constraint: bool,
    stack: &mut Vec<PathBuf>,
    reqs: &mut Requirements,
) -> Result<()> {
    let text = crate::bounded::read_text(path, crate::bounded::REQUIREMENTS, "requirements file")?;
    let quoting = Quoting::of(path);
    let canonical = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    if stack.contains(&canonical) {
        bail!("{} includes itself (through -r or -c)", path.display());
    }
    stack.push(canonical);
    let dir = path.parent().unwrap_or(Path::new(""));
    for (number, line) in logical_lines(&text) {
        let origin = Origin::File {
            path: path.to_path_buf(),
            line: number,
        };
        match parse_line(&line, &origin, quoting)? {
            Line::Requirement(r) => {
                if constraint {
                    reqs.constraints.push(r);
                } else {
                    reqs.requirements.push(r);
                }
            }
            Line::Ignored(option) => reqs.warnings.push(format!(
                "{origin}: {option} ignored: vd installs from its repository, never an index"
            )),
            Line::Include {
                file,
                constraint: c,
            } => {
                let included = dir.join(&file);
                let option = if c { "-c" } else { "-r" };
                read_file(&included, constraint || c, stack, reqs).map_err(|e| match quoting {
                    Quoting::Quote => e.context(format!("{origin}: {option} {file}")),
                    // The included file's name is the line's text, and its
                    // error would name it.
                    Quoting::Withhold => anyhow!(
                        "{origin}: {option} (a file) cannot be read as a requirements file{WITHHELD}"
                    ),
                })?;
            }
        }
    }
    stack.pop();
    Ok(())
}

/// The file's lines with comments removed and `\` continuations joined,
/// each with the number of its first physical line; blank lines left out.
/// As in pip, a comment is `#` at the start of a line or after whitespace,
/// and a comment line ends a continuation.
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut lines = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for (i, raw) in text.lines().enumerate() {
        let number = i + 1;
        let is_comment = raw.trim_start().starts_with('#');
        let stripped = strip_comment(raw);
        match stripped.strip_suffix('\\') {
            Some(head) if !is_comment => {
                let entry = pending.get_or_insert_with(|| (number, String::new()));
                entry.1.push_str(head);
                entry.1.push(' ');
            }
            _ => {
                let (first, mut joined) = pending.take().unwrap_or((number, String::new()));
                joined.push_str(stripped);
                lines.push((first, joined));
            }
        }
    }
    if let Some(last) = pending {
        lines.push(last);
    }
    lines.retain(|(_, l)| !l.trim().is_empty());
    lines
}

fn strip_comment(line: &str) -> &str {
    let bytes = line.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'#' && (i == 0 || bytes[i - 1].is_ascii_whitespace()) {
            return line[..i].trim_end();
        }
    }
    line.trim_end()
}

enum Line {
    Requirement(Requirement),
    /// An index option of pip-compile's header, named.
    Ignored(String),
    Include {
        file: String,
        constraint: bool,
    },
}

/// One logical line: a requirement with its `--hash` options, or an include.
/// As pip does, the words before the first one that starts with `-` are the
/// requirement, the rest are options.
fn parse_line(line: &str, origin: &Origin, quoting: Quoting) -> Result<Line> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let split = words
        .iter()
        .position(|w| w.starts_with('-'))
        .unwrap_or(words.len());
    let (requirement, options) = words.split_at(split);
    let mut hashes = Vec::new();
    let mut include = None;
    let mut ignored = None;
    let mut i = 0;
    while i < options.len() {
        let word = options[i];
        let (option, inline) = match word.split_once('=') {
            Some((o, v)) if o.starts_with("--") => (o, Some(v.to_string())),
            _ => (word, None),
        };
        // `-rFILE`, `-cFILE`: the short forms take their value attached, too.
        let (option, inline) = match (option, inline) {
            (o, None) if o.len() > 2 && (o.starts_with("-r") || o.starts_with("-c")) => {
                (&o[..2], Some(o[2..].to_string()))
            }
            other => other,
        };
        let mut value = || -> Result<String> {
            if let Some(v) = &inline {
                return Ok(v.clone());
            }
            i += 1;
            options
                .get(i)
                .map(|v| v.to_string())
                .ok_or_else(|| anyhow!("{origin}: {option} needs a value"))
        };
        match option {
            "--hash" => hashes.push(parse_hash(&value()?, origin, quoting)?),
            "-r" | "--requirement" => include = Some((value()?, false)),
            "-c" | "--constraint" => include = Some((value()?, true)),
            // pip-compile writes where it found packages into its header;
            // vd has one source, its repository.
            "-i" | "--index-url" | "--extra-index-url" | "-f" | "--find-links"
            | "--trusted-host" => {
                let v = value()?;
                ignored = Some(match quoting {
                    Quoting::Quote => format!("{option} {v}"),
                    Quoting::Withhold => option.to_string(),
                });
            }
            "-e" | "--editable" => bail!(
                "{origin}: editable installs ({option}) are not supported; vd installs wheels from its repository (build a wheel and add it with vd-add)"
            ),
            other => bail!(
                "{origin}: pip option {} is not supported; vd reads requirements from its repository, not an index (only -r, -c and --hash are, and index options are ignored)",
                match quoting {
                    Quoting::Quote => other,
                    Quoting::Withhold => "(a word starting with -)",
                }
            ),
        }
        i += 1;
    }
    if let Some(option) = ignored {
        if !requirement.is_empty() || !hashes.is_empty() || include.is_some() {
            bail!("{origin}: {option} must be alone on its line");
        }
        return Ok(Line::Ignored(option));
    }
    if let Some((file, constraint)) = include {
        if !requirement.is_empty() || !hashes.is_empty() || options.len() > 2 {
            bail!("{origin}: an include (-r, -c) must be alone on its line");
        }
        return Ok(Line::Include { file, constraint });
    }
    if requirement.is_empty() {
        bail!("{origin}: --hash without a requirement");
    }
    let mut r = Requirement::parse_quoting(&requirement.join(" "), origin.clone(), quoting)?;
    r.hashes = hashes;
    Ok(Line::Requirement(r))
}

/// `sha256:<64 hex digits>` → the digits, lower case.
fn parse_hash(value: &str, origin: &Origin, quoting: Quoting) -> Result<String> {
    let value = match quoting {
        Quoting::Quote => value.to_string(),
        Quoting::Withhold => "…".to_string(),
    };
    let value = value.as_str();
    let Some((algorithm, digest)) = value.split_once(':') else {
        bail!("{origin}: --hash={value}: expected sha256:<hex digest>");
    };
    if algorithm != "sha256" {
        bail!("{origin}: --hash={value}: only sha256 hashes are supported");
    }
    if digest.len() != 64 || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!("{origin}: --hash={value}: a sha256 digest is 64 hex digits");
    }
    Ok(digest.to_ascii_lowercase())
}

/// Whether errors may quote the lines of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Quoting {
    /// Everyone may read the file: quote its lines (a requirements file).
    Quote,
    /// The file is kept from other users: name the line, quote nothing.
    Withhold,
}

/// What an error adds when it withholds a line.
const WITHHELD: &str =
    "; the line is not shown, since the file is not readable by every user of this machine";

impl Quoting {
    /// [`Quoting::Quote`] when any user of this machine may read the file.
    fn of(path: &Path) -> Quoting {
        use std::os::unix::fs::PermissionsExt;
        let Ok(canonical) = path.canonicalize() else {
            return Quoting::Withhold;
        };
        // The file's own mode, not its directories': a project checked out
        // in a private home is still the project's, and its requirements
        // file is as readable as its other sources.
        if std::fs::metadata(canonical).is_ok_and(|m| m.permissions().mode() & 0o004 != 0) {
            Quoting::Quote
        } else {
            Quoting::Withhold
        }
    }

    /// `` `text`: `` to start an error with, or nothing.
    fn show(self, text: &str) -> String {
        match self {
            Quoting::Quote => format!("`{text}`: "),
            Quoting::Withhold => String::new(),
        }
    }
}

/// pep508_rs's message without what it found (which is the line's text).
fn without_found(message: &str) -> &str {
    let end = [", found", " found `", "after parsing"]
        .iter()
        .filter_map(|m| message.find(m))
        .min()
        .unwrap_or(message.len());
    match message[..end].trim_end_matches([',', ':', ' ']) {
        "" => "not PEP 508",
        kept => kept,
    }
}

fn looks_like_url_or_path(text: &str) -> bool {
    let first = text.split([';', ' ']).next().unwrap_or("");
    text.contains("://")
        || text.contains(" @ ")
        || first.starts_with(['.', '/', '~'])
        || first.ends_with(".whl")
        || first.ends_with(".zip")
        || first.ends_with(".tar.gz")
        || ["git+", "hg+", "svn+", "bzr+", "file:"]
            .iter()
            .any(|p| first.starts_with(p))
}

/// The marker keys whose values are strings, not versions.
const STRING_MARKERS: &[&str] = &[
    "os_name",
    "sys_platform",
    "platform_release",
    "platform_system",
    "platform_version",
    "platform_machine",
    "platform_python_implementation",
    "implementation_name",
    "python_implementation",
    "os.name",
    "sys.platform",
    "platform.version",
    "platform.machine",
    "platform.python_implementation",
];

/// `~=` compares versions; next to a string-valued marker it is meaningless,
/// and pep508_rs 0.9 panics on `"x" ~= sys_platform`. Refused here, before it
/// can poison the parser for the rest of the run.
fn check_string_tilde_equal(text: &str) -> std::result::Result<(), String> {
    let Some((_, marker)) = split_marker(text) else {
        return Ok(());
    };
    let tokens = marker_tokens(marker);
    for (i, token) in tokens.iter().enumerate() {
        if *token != "~=" {
            continue;
        }
        let neighbours = [i.checked_sub(1), Some(i + 1)];
        for j in neighbours.into_iter().flatten() {
            if let Some(key) = tokens.get(j).filter(|t| STRING_MARKERS.contains(t)) {
                return Err(format!(
                    "`~=` compares versions, but {key} is a string marker"
                ));
            }
        }
    }
    Ok(())
}

/// Split at the `;` that starts the marker (outside quotes).
fn split_marker(text: &str) -> Option<(&str, &str)> {
    let mut quote = None;
    for (i, ch) in text.char_indices() {
        match (quote, ch) {
            (None, '"' | '\'') => quote = Some(ch),
            (Some(q), c) if c == q => quote = None,
            (None, ';') => return Some((&text[..i], &text[i + 1..])),
            _ => {}
        }
    }
    None
}

/// Quoted strings, operators and words of a marker expression.
fn marker_tokens(marker: &str) -> Vec<&str> {
    let mut tokens = Vec::new();
    let bytes = marker.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b.is_ascii_whitespace() || b == b'(' || b == b')' {
            i += 1;
        } else if b == b'"' || b == b'\'' {
            let end = marker[i + 1..]
                .find(b as char)
                .map_or(bytes.len(), |e| i + 2 + e);
            tokens.push(&marker[i..end.min(bytes.len())]);
            i = end;
        } else if b"=!<>~".contains(&b) {
            let start = i;
            while i < bytes.len() && b"=!<>~".contains(&bytes[i]) {
                i += 1;
            }
            tokens.push(&marker[start..i]);
        } else {
            let start = i;
            while i < bytes.len()
                && !bytes[i].is_ascii_whitespace()
                && !b"=!<>~()\"'".contains(&bytes[i])
            {
                i += 1;
            }
            tokens.push(&marker[start..i]);
        }
    }
    tokens
}

thread_local! {
    /// Set while pep508_rs runs, so the panic hook stays quiet about a panic
    /// that is caught and reported as an error.
    static PARSING: Cell<bool> = const { Cell::new(false) };
}

/// Run pep508_rs with its marker warnings collected and any panic caught.
fn parse_without_panic(
    text: &str,
    warnings: &mut Vec<String>,
) -> std::result::Result<pep508_rs::Requirement, (String, usize)> {
    static QUIET_HOOK: Once = Once::new();
    QUIET_HOOK.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if !PARSING.with(Cell::get) {
                previous(info);
            }
        }));
    });
    PARSING.with(|p| p.set(true));
    let result = panic::catch_unwind(AssertUnwindSafe(|| {
        let mut reporter = |kind: MarkerWarningKind, message: String| {
            if kind != MarkerWarningKind::DeprecatedMarkerName {
                warnings.push(message.split_whitespace().collect::<Vec<_>>().join(" "));
            }
        };
        pep508_rs::Requirement::parse_reporter(text, "", &mut reporter)
    }));
    PARSING.with(|p| p.set(false));
    match result {
        Ok(Ok(r)) => Ok(r),
        Ok(Err(e)) => Err((e.message.to_string(), e.start + 1)),
        Err(_) => Err((
            "the PEP 508 parser failed on this requirement".to_string(),
            1,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn field() -> Origin {
        Origin::Field {
            name: "packages".into(),
        }
    }

    #[test]
    fn parses_names_extras_specifiers_and_markers() {
        let r = Requirement::parse(
            "Foo.Bar[Extra1, extra2] >=1.0, !=1.5.*, <2 ; python_version >= '3.8'",
            field(),
        )
        .unwrap();
        assert_eq!(r.name, "foo-bar");
        assert_eq!(r.extras.len(), 2);
        assert_eq!(r.specifiers.iter().count(), 3);
        assert!(!r.marker.is_true());
        for ok in ["a===1.0", "a~=1.4.2", "a==1.*", "a>1,<=3", "a"] {
            Requirement::parse(ok, field()).unwrap();
        }
    }

    #[test]
    fn refuses_urls_paths_and_unevaluable_markers() {
        for bad in [
            "foo @ https://example.com/foo-1.0-py3-none-any.whl",
            "https://example.com/foo.whl",
            "./dist/foo-1.0-py3-none-any.whl",
            "git+https://example.com/foo.git",
            "foo; python_version ~= '3'",
            "foo; '3' ~= sys_platform",
            "foo; sys_platform ~= 'linux'",
            "foo ~=1",
            "foo >=",
        ] {
            let e = Requirement::parse(bad, field()).unwrap_err().to_string();
            assert!(e.starts_with("field `packages`: "), "{bad}: {e}");
        }
        // The parser still works after the form that panics pep508_rs.
        Requirement::parse(
            "foo; sys_platform == 'linux' and python_version > '3'",
            field(),
        )
        .unwrap();
    }

    #[test]
    fn joins_continuations_and_strips_comments() {
        let lines = logical_lines(
            "# top\n\na==1 \\\n  --hash=sha256:x \\\n  --hash=sha256:y  # via b\nb#not-a-comment\n  # c \\\nd\n",
        );
        assert_eq!(
            lines,
            [
                (3, "a==1    --hash=sha256:x    --hash=sha256:y".to_string()),
                (6, "b#not-a-comment".to_string()),
                (8, "d".to_string()),
            ]
        );
    }

    #[test]
    fn reads_includes_relative_to_the_including_file() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("sub")).unwrap();
        let h = "a".repeat(64);
        fs::write(
            dir.path().join("req.txt"),
            format!("-r sub/base.txt\n--constraint sub/pins.txt\nsix==1.16.0 --hash=sha256:{h}\n"),
        )
        .unwrap();
        fs::write(dir.path().join("sub/base.txt"), "idna\n-c pins.txt\n").unwrap();
        fs::write(dir.path().join("sub/pins.txt"), "idna<4\n").unwrap();
        let reqs = Requirements::read(&dir.path().join("req.txt")).unwrap();
        let names: Vec<_> = reqs.requirements.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["idna", "six"]);
        assert_eq!(reqs.constraints.len(), 2);
        assert_eq!(reqs.requirements[1].hashes, [h]);
        assert_eq!(
            reqs.requirements[1].origin.to_string(),
            format!("{} line 3", dir.path().join("req.txt").display())
        );
    }

    #[test]
    fn index_options_of_a_pip_compile_header_are_ignored_with_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.txt");
        fs::write(
            &path,
            "--index-url https://pypi.org/simple\n--extra-index-url=https://x/simple\n-f ./dist\n--trusted-host x\n\nsix==1.16.0\n",
        )
        .unwrap();
        let reqs = Requirements::read(&path).unwrap();
        assert_eq!(reqs.requirements.len(), 1);
        assert_eq!(reqs.warnings.len(), 4);
        assert_eq!(
            reqs.warnings[0],
            format!(
                "{} line 1: --index-url https://pypi.org/simple ignored: vd installs from its repository, never an index",
                path.display()
            )
        );
        assert!(reqs.warnings[2].contains("line 3: -f ./dist ignored"));
    }

    #[test]
    fn errors_name_the_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.txt");
        for (text, needle) in [
            ("a\n-e .\n", "line 2: editable"),
            ("a\n\n--no-binary :all:\n", "line 3: pip option --no-binary"),
            (
                "a --index-url https://x\n",
                "line 1: --index-url https://x must be alone",
            ),
            (
                "a==1 --hash=md5:abc\n",
                "line 1: --hash=md5:abc: only sha256",
            ),
            (
                "a==1 --hash=sha256:abc\n",
                "line 1: --hash=sha256:abc: a sha256",
            ),
            (
                "x @ https://h/x.whl\n",
                "line 1: `x @ https://h/x.whl`: URLs",
            ),
            ("-r missing.txt\n", "line 1: -r missing.txt: cannot read"),
            ("-r r.txt\n", "includes itself"),
            ("a \\\n  b\n", "line 1: `a b`"),
        ] {
            fs::write(&path, text).unwrap();
            let e = format!("{:#}", Requirements::read(&path).unwrap_err());
            assert!(e.contains(needle), "{text:?}: {e}");
        }
    }
}
