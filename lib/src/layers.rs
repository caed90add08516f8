//! The crate's layers, checked: every `crate::` and `super::` path in the
//! code of lib/src (not in comments, strings or test code) must name a
//! module of its own layer or of one below, and the files must not import
//! each other in a loop. The order is the one the crate's doc gives
//! ([`crate`]); a new module goes into [`LAYERS`] here, or this test fails.
//!
//! A module's root file (`record/mod.rs`, `push.rs`) declares its children
//! and may re-export them, so its arrows into its own folder are not
//! counted as imports. One loop is allowed, inside the transport: a session
//! through a bastion opens its socket through [`crate::transport`]'s route,
//! which opens the bastion's own SSH session ([`BASTION_LOOP`]).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The crate's top-level modules, lowest layer first. A module may import
/// from its own layer and the ones before it.
const LAYERS: &[(&str, &[&str])] = &[
    (
        "leaves",
        &[
            "messages",
            "bounded",
            "shell",
            "escape",
            "ssh_name",
            "keyed_mutex",
        ],
    ),
    (
        "data",
        &[
            "hop",
            "wheel",
            "requirement",
            "record",
            "tags",
            "fingerprint",
            "inventory",
        ],
    ),
    (
        "domain",
        &[
            "log",
            "repo",
            "resolve",
            "plan",
            "saved_freeze",
            "fetch",
            "pylock",
            "export",
        ],
    ),
    ("hosts", &["transport", "remote", "cache"]),
    ("presentation", &["summary", "console", "output", "confirm"]),
    ("scheduling", &["fleet"]),
    ("deployment", &["push"]),
    ("command line", &["cli"]),
    ("tools", &["tools", "rollout"]),
    ("generated", &["man", "completions"]),
];

/// The files that may import each other: the recursion of a connection
/// through a bastion.
const BASTION_LOOP: &[&str] = &[
    "transport/ssh.rs",
    "transport/route.rs",
    "transport/jump.rs",
];

/// A module's path from the crate root (`["transport", "jump"]`).
type ModulePath = Vec<String>;

/// One source file: its module and its code, test code blanked out.
struct Source {
    file: String,
    module: ModulePath,
    code: String,
}

/// An arrow from one file to another, where the code names it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Import {
    from: String,
    line: usize,
    to: String,
    /// The top-level modules of both ends.
    from_top: String,
    to_top: String,
}

/// The module a file under lib/src holds: `record/mod.rs` is `record`,
/// `lib.rs` the crate root.
fn module_of(file: &str) -> ModulePath {
    let mut parts: Vec<String> = file
        .trim_end_matches(".rs")
        .split('/')
        .map(str::to_string)
        .collect();
    if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
        parts.pop();
    }
    parts
}

/// `text` with comments, strings and character literals blanked to spaces
/// (newlines kept, so line numbers hold).
fn code_only(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let rest = |n: usize| chars.get(i + n).copied();
        let end = match (chars[i], rest(1), rest(2)) {
            ('/', Some('/'), _) => chars[i..].iter().position(|&c| c == '\n'),
            ('/', Some('*'), _) => find(&chars[i + 2..], &['*', '/']).map(|e| e + 4),
            ('"', _, _) => string_end(&chars[i + 1..], "\"").map(|e| e + 1),
            ('r', Some('#' | '"'), _)
                if i == 0 || matches!(chars[i - 1], 'b') || !is_ident(chars[i - 1]) =>
            {
                let hashes = chars[i + 1..].iter().take_while(|&&c| c == '#').count();
                if chars.get(i + 1 + hashes) != Some(&'"') {
                    // A raw identifier (`r#type`), not a string.
                    out.push(chars[i]);
                    i += 1;
                    continue;
                }
                let close: String = std::iter::once('"')
                    .chain(std::iter::repeat_n('#', hashes))
                    .collect();
                let open = 1 + hashes + 1;
                let body: String = chars[i + open..].iter().collect();
                body.find(&close)
                    .map(|e| open + body[..e].chars().count() + close.len())
            }
            ('\'', Some('\\'), _) => chars[i + 3..]
                .iter()
                .position(|&c| c == '\'')
                .map(|e| e + 4),
            ('\'', Some(_), Some('\'')) => Some(3),
            _ => None,
        };
        match end {
            Some(len) => {
                let text: String = chars[i..(i + len).min(chars.len())].iter().collect();
                out.push_str(&blanked(&text));
                i += len;
            }
            None => {
                out.push(chars[i]);
                i += 1;
            }
        }
    }
    out
}

/// `text` as spaces, byte for byte, its newlines kept.
fn blanked(text: &str) -> String {
    text.bytes()
        .map(|b| if b == b'\n' { '\n' } else { ' ' })
        .collect()
}

/// Where `pattern` starts in `chars`.
fn find(chars: &[char], pattern: &[char]) -> Option<usize> {
    chars.windows(pattern.len()).position(|w| w == pattern)
}

/// The length of a string's body and its closing quote (escapes skipped).
fn string_end(chars: &[char], quote: &str) -> Option<usize> {
    let quote = quote.chars().next()?;
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '\\' => i += 2,
            c if c == quote => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// `code` with every `#[cfg(test)]` item blanked out, and the names of the
/// child modules declared so (`#[cfg(test)] mod tests;`), whose files are
/// test code too.
fn without_tests(code: &str) -> (String, Vec<String>) {
    const ATTR: &str = "#[cfg(test)]";
    let mut out = code.to_string();
    let mut test_children = Vec::new();
    let mut from = 0;
    while let Some(at) = out[from..].find(ATTR).map(|a| a + from) {
        let body = at + ATTR.len();
        let stop = out[body..].find([';', '{']).map_or(out.len(), |s| s + body);
        let end = if out[stop..].starts_with(';') {
            let item = out[body..stop].trim();
            if let Some(name) = item.strip_prefix("mod ") {
                test_children.push(name.trim().to_string());
            }
            stop + 1
        } else {
            matching_brace(&out, stop)
        };
        let blanked = blanked(&out[at..end]);
        out.replace_range(at..end, &blanked);
        from = end;
    }
    (out, test_children)
}

/// Just past the brace that closes the one at `open`.
fn matching_brace(code: &str, open: usize) -> usize {
    let mut depth = 0;
    for (i, c) in code[open..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return open + i + 1;
                }
            }
            _ => {}
        }
    }
    code.len()
}

/// Every path `code` names through `crate::` or `super::`, made absolute
/// from the crate root for a file of `module`, with its line.
fn paths_in(code: &str, module: &[String]) -> Vec<(usize, ModulePath)> {
    let bytes = code.as_bytes();
    let mut found = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let starts_word = i == 0 || !is_ident(char::from(bytes[i - 1]));
        let base = if !starts_word {
            None
        } else if bytes[i..].starts_with(b"crate::") {
            i += "crate::".len();
            Some(Vec::new())
        } else if bytes[i..].starts_with(b"super::") {
            let mut base = module.to_vec();
            while bytes[i..].starts_with(b"super::") {
                base.pop();
                i += "super::".len();
            }
            Some(base)
        } else {
            None
        };
        let Some(base) = base else {
            i += 1;
            continue;
        };
        let line = bytes[..i].iter().filter(|&&b| b == b'\n').count() + 1;
        let mut paths = Vec::new();
        use_tree(bytes, &mut i, base, &mut paths);
        found.extend(paths.into_iter().map(|p| (line, p)));
    }
    found
}

/// Read one use tree (`a::b`, `a::{b, c::d}`) at `i` onto `prefix`.
fn use_tree(bytes: &[u8], i: &mut usize, mut prefix: ModulePath, out: &mut Vec<ModulePath>) {
    loop {
        skip_space(bytes, i);
        if bytes.get(*i) == Some(&b'{') {
            *i += 1;
            loop {
                skip_space(bytes, i);
                match bytes.get(*i) {
                    None => return,
                    Some(b'}') => {
                        *i += 1;
                        return;
                    }
                    Some(b',') => *i += 1,
                    Some(_) => {
                        let before = *i;
                        use_tree(bytes, i, prefix.clone(), out);
                        if *i == before {
                            *i += 1;
                        }
                    }
                }
            }
        }
        let start = *i;
        while bytes.get(*i).is_some_and(|&b| is_ident(char::from(b))) {
            *i += 1;
        }
        let segment = String::from_utf8_lossy(&bytes[start..*i]).to_string();
        if !segment.is_empty() && segment != "self" {
            prefix.push(segment);
        }
        if bytes[*i..].starts_with(b"::") {
            *i += 2;
        } else {
            out.push(prefix);
            return;
        }
    }
}

fn skip_space(bytes: &[u8], i: &mut usize) {
    while bytes.get(*i).is_some_and(u8::is_ascii_whitespace) {
        *i += 1;
    }
}

/// The sources of a crate, from `(file, text)` pairs: test files left out.
fn sources(files: &[(String, String)]) -> Vec<Source> {
    let mut test_modules: Vec<ModulePath> = Vec::new();
    let mut sources = Vec::new();
    for (file, text) in files {
        let module = module_of(file);
        let (code, test_children) = without_tests(&code_only(text));
        test_modules.extend(test_children.into_iter().map(|child| {
            let mut path = module.clone();
            path.push(child);
            path
        }));
        sources.push(Source {
            file: file.clone(),
            module,
            code,
        });
    }
    sources.retain(|s| !test_modules.iter().any(|t| s.module.starts_with(t)));
    sources
}

/// Every import between two files, its end the deepest module with a file.
fn imports(sources: &[Source]) -> Vec<Import> {
    let files: BTreeMap<&ModulePath, &str> = sources
        .iter()
        .map(|s| (&s.module, s.file.as_str()))
        .collect();
    let mut imports = BTreeSet::new();
    for source in sources {
        for (line, path) in paths_in(&source.code, &source.module) {
            let Some(to) = (1..=path.len())
                .rev()
                .find_map(|n| files.get_key_value(&path[..n].to_vec()))
            else {
                continue;
            };
            // A module's root file declares its own children.
            if to.0.starts_with(&source.module) {
                continue;
            }
            imports.insert(Import {
                from: source.file.clone(),
                line,
                to: to.1.to_string(),
                from_top: source.module[0].clone(),
                to_top: to.0[0].clone(),
            });
        }
    }
    imports.into_iter().collect()
}

/// The layer a top-level module is in.
fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|(_, m)| m.contains(&module))
}

/// What is wrong with the layers of `sources`: imports going up, modules
/// in no layer, and loops of files (but [`BASTION_LOOP`]).
fn violations(sources: &[Source]) -> Vec<String> {
    let imports = imports(sources);
    let mut found = Vec::new();
    let tops: BTreeSet<&str> = sources
        .iter()
        .filter_map(|s| s.module.first().map(String::as_str))
        .collect();
    for top in &tops {
        if layer_of(top).is_none() {
            found.push(format!("module `{top}` is in no layer (add it to LAYERS)"));
        }
    }
    for import in &imports {
        let (Some(from), Some(to)) = (layer_of(&import.from_top), layer_of(&import.to_top)) else {
            continue;
        };
        if to > from {
            found.push(format!(
                "{}:{}: `{}` ({}) imports `{}` ({}), a higher layer",
                import.from,
                import.line,
                import.from_top,
                LAYERS[from].0,
                import.to_top,
                LAYERS[to].0
            ));
        }
    }
    for component in loops(&imports) {
        if component.iter().all(|f| BASTION_LOOP.contains(&f.as_str())) {
            continue;
        }
        let lines: Vec<String> = imports
            .iter()
            .filter(|i| component.contains(&i.from) && component.contains(&i.to))
            .map(|i| format!("{}:{} -> {}", i.from, i.line, i.to))
            .collect();
        found.push(format!("a loop of files: {}", lines.join(", ")));
    }
    found
}

/// The sets of files that import each other, directly or not.
fn loops(imports: &[Import]) -> Vec<BTreeSet<String>> {
    let mut next: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for import in imports {
        next.entry(&import.from).or_default().insert(&import.to);
    }
    let reach = |from: &str| {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from];
        while let Some(file) = todo.pop() {
            for &to in next.get(file).into_iter().flatten() {
                if seen.insert(to) {
                    todo.push(to);
                }
            }
        }
        seen
    };
    let reached: BTreeMap<&str, BTreeSet<&str>> =
        next.keys().map(|&file| (file, reach(file))).collect();
    let mut components = BTreeSet::new();
    for (&file, from_file) in &reached {
        if !from_file.contains(file) {
            continue;
        }
        let component: BTreeSet<String> = from_file
            .iter()
            .filter(|other| reached.get(*other).is_some_and(|r| r.contains(file)))
            .map(|f| f.to_string())
            .collect();
        components.insert(component);
    }
    components.into_iter().collect()
}

/// Every `.rs` file under `dir`, as `(path from dir, text)`.
fn read_tree(dir: &Path) -> Vec<(String, String)> {
    let mut files = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(folder) = todo.pop() {
        for entry in std::fs::read_dir(&folder).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                todo.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let name = path
                    .strip_prefix(dir)
                    .unwrap()
                    .to_string_lossy()
                    .to_string();
                files.push((name, std::fs::read_to_string(&path).unwrap()));
            }
        }
    }
    files.sort();
    files
}

#[test]
fn imports_run_down_the_layers_and_files_do_not_loop() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let sources = sources(&read_tree(&src));
    let tops: BTreeSet<&str> = sources
        .iter()
        .filter_map(|s| s.module.first().map(String::as_str))
        .collect();
    for (layer, modules) in LAYERS {
        for module in *modules {
            assert!(
                tops.contains(module),
                "LAYERS names `{module}` ({layer}), which is not a module"
            );
        }
    }
    let found = violations(&sources);
    assert!(found.is_empty(), "{}", found.join("\n"));
}

/// A crate of `(file, text)` pairs, as [`sources`] reads it.
fn crate_of(files: &[(&str, &str)]) -> Vec<Source> {
    let files: Vec<(String, String)> = files
        .iter()
        .map(|(f, t)| (f.to_string(), t.to_string()))
        .collect();
    sources(&files)
}

#[test]
fn an_import_up_the_layers_is_named_by_file_and_line() {
    let sources = crate_of(&[
        ("lib.rs", "mod record;\nmod fleet;\n"),
        ("record/mod.rs", "mod stage;\npub use stage::*;\n"),
        (
            "record/stage.rs",
            "use super::Field;\n// crate::fleet in a comment\nfn f() -> &str { \"crate::fleet\" }\nuse crate::{\n    fleet::Host,\n};\n",
        ),
        ("fleet.rs", "use crate::record::{self, Record};\n"),
    ]);
    assert_eq!(
        violations(&sources),
        ["record/stage.rs:4: `record` (data) imports `fleet` (scheduling), a higher layer"]
    );
}

#[test]
fn test_code_may_import_anything_but_a_loop_of_files_is_found() {
    let sources = crate_of(&[
        ("lib.rs", ""),
        (
            "wheel.rs",
            "#[cfg(test)]\nmod tests {\n    use crate::tools;\n}\n#[cfg(test)]\nmod more;\nuse crate::requirement::Requirement;\n",
        ),
        ("wheel/more.rs", "use crate::tools;\n"),
        ("requirement.rs", "fn f(c: char) -> bool { c == '{' }\nuse crate::wheel::{self, normalize};\n"),
        ("tools/mod.rs", "mod diff;\n"),
        ("tools/diff.rs", "use crate::wheel;"),
    ]);
    assert_eq!(
        violations(&sources),
        ["a loop of files: requirement.rs:2 -> wheel.rs, wheel.rs:7 -> requirement.rs"]
    );
}

#[test]
fn a_module_in_no_layer_is_named() {
    let sources = crate_of(&[("lib.rs", ""), ("gadget.rs", "use crate::shell;\n")]);
    assert_eq!(
        violations(&sources),
        ["module `gadget` is in no layer (add it to LAYERS)"]
    );
}
