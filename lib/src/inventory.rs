//! The inventory: which virtualenvs exist on which hosts, and how to reach,
//! migrate and reload them.
//!
//! It is a CSV file with a header row (the original fabfile's settings, as
//! data) or a `.jsonl` file of target records. Either way each target becomes
//! a record with typed fields: `port` a number, `reload_once` a boolean,
//! `packages` and `settings` lists. A bad row becomes an error record naming
//! the file and line, and the other rows go on. Selection by name
//! ([`Selector`]) is here too, since it is the inventory's vocabulary.

use crate::record::{self, Record, Target};
use anyhow::{anyhow, bail, Context, Result};
use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

/// The columns vd knows, in the documented order.
pub use crate::record::COLUMNS;

/// One inventory entry: its record (or an error record) and where it came from.
#[derive(Debug)]
pub struct Entry {
    /// `file line N`, for messages.
    pub origin: String,
    pub record: Record,
}

/// A loaded inventory, plus warnings for the user (unknown columns).
#[derive(Debug)]
pub struct Inventory {
    pub entries: Vec<Entry>,
    pub warnings: Vec<String>,
}

/// Load an inventory file: `.jsonl` holds records, anything else is CSV.
pub fn load(path: &Path) -> Result<Inventory> {
    let text = fs::read_to_string(path)
        .with_context(|| format!("cannot read inventory {}", path.display()))?;
    let base = std::path::absolute(path.parent().unwrap_or(Path::new(".")))
        .unwrap_or_else(|_| PathBuf::from("."));
    let mut inventory = if path.extension().is_some_and(|e| e == "jsonl") {
        load_jsonl(&text, path)?
    } else {
        load_csv(&text, path)?
    };
    let mut seen: HashMap<(String, u16, String), String> = HashMap::new();
    for entry in &mut inventory.entries {
        if record::error_of(&entry.record).is_some() {
            continue;
        }
        let checked = check_target(&mut entry.record, &base).and_then(|key| {
            if let Some(first) = seen.get(&key) {
                bail!(
                    "duplicate target {}: already defined at {first}",
                    record::target_label(&entry.record)
                );
            }
            seen.insert(key, entry.origin.clone());
            Ok(())
        });
        if let Err(e) = checked {
            record::set_error(
                &mut entry.record,
                "vd-targets",
                &format!("{}: {e:#}", entry.origin),
            );
        }
    }
    Ok(inventory)
}

fn load_csv(text: &str, path: &Path) -> Result<Inventory> {
    let shown = path.display().to_string();
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .trim(csv::Trim::All)
        .comment(Some(b'#'))
        .from_reader(text.as_bytes());
    let headers: Vec<String> = reader
        .headers()
        .with_context(|| format!("{shown} line 1: cannot read the header row"))?
        .iter()
        .map(|h| h.to_ascii_lowercase())
        .collect();
    if headers.iter().all(|h| h.is_empty()) {
        bail!(
            "{shown} is empty: the first line must be a header row naming the columns ({})",
            COLUMNS.join(",")
        );
    }
    for required in ["host", "venv"] {
        if !headers.iter().any(|h| h == required) {
            bail!(
                "{shown} line 1: no `{required}` column in the header ({}); the columns are {}",
                headers.join(","),
                COLUMNS.join(",")
            );
        }
    }
    for (i, h) in headers.iter().enumerate() {
        if !h.is_empty() && headers[..i].contains(h) {
            bail!("{shown} line 1: column `{h}` appears twice in the header");
        }
    }
    let mut warnings = Vec::new();
    for h in &headers {
        if !COLUMNS.contains(&h.as_str()) {
            warnings.push(format!(
                "{shown} line 1: unknown column `{h}`, passed through as a field"
            ));
        }
    }
    let mut entries = Vec::new();
    for row in reader.records() {
        let (line, record) = match row {
            Ok(row) => {
                let line = row.position().map(|p| p.line()).unwrap_or(0);
                let mut record = Record::new();
                for (name, cell) in headers.iter().zip(row.iter()) {
                    if cell.is_empty() {
                        continue;
                    }
                    record.insert(name.clone(), record::typed_cell(name, cell));
                }
                (line, record)
            }
            Err(e) => {
                let line = e.position().map(|p| p.line()).unwrap_or(0);
                let message = format!("{shown} line {line}: malformed row: {e}");
                (line, record::error_record("vd-targets", &message))
            }
        };
        entries.push(Entry {
            origin: format!("{shown} line {line}"),
            record,
        });
    }
    Ok(Inventory { entries, warnings })
}

fn load_jsonl(text: &str, path: &Path) -> Result<Inventory> {
    let shown = path.display().to_string();
    let mut entries = Vec::new();
    for line in record::Reader::new(text.as_bytes(), "vd-targets") {
        let origin = format!("{shown} line {}", line.number);
        let mut record = line.record;
        if let Some((_, message)) = record::error_of(&record) {
            // The reader names the line of stdin; here it is a file.
            let message = message.replacen("stdin", &shown, 1);
            record::set_error(&mut record, "vd-targets", &message);
        }
        entries.push(Entry { origin, record });
    }
    if entries.is_empty() {
        bail!("{shown} is empty: it holds no target records");
    }
    Ok(Inventory {
        entries,
        warnings: Vec::new(),
    })
}

/// Check one target's fields, resolve its local paths, and return the key
/// that makes it unique: host, port and venv.
fn check_target(record: &mut Record, base: &Path) -> Result<(String, u16, String)> {
    record::resolve_local_paths(record, base);
    // Target::parse checks the names too (see ssh_name).
    let target = Target::parse(record)?;
    let host = target.host;
    let venv = target.venv.trim_end_matches('/').to_string();
    Ok((host, target.port.unwrap_or(22), venv))
}

/// A name on the command line that selects targets:
/// `host`, `user@host`, `user@host:/path`, `host:/path`, `:/path` or `user@`.
/// The host part may be a shell-style glob (`web*`).
#[derive(Debug, Clone)]
pub struct Selector {
    pub text: String,
    user: Option<String>,
    host: Option<glob::Pattern>,
    path: Option<String>,
}

impl Selector {
    pub fn parse(text: &str) -> Result<Selector> {
        if text.matches('@').count() > 1 {
            bail!("target name {text:?} has more than one `@`: write user@host:/path");
        }
        let (user, rest) = match text.split_once('@') {
            Some((u, rest)) => {
                if u.is_empty() {
                    bail!("target name {text:?} has an empty user before `@`");
                }
                (Some(u.to_string()), rest)
            }
            None => (None, text),
        };
        let (host, path) = match rest.split_once(':') {
            Some((h, p)) => {
                if !p.starts_with('/') {
                    bail!("target name {text:?}: the path after `:` must be absolute");
                }
                (h, Some(p.trim_end_matches('/').to_string()))
            }
            None => (rest, None),
        };
        if user.is_none() && host.is_empty() && path.is_none() {
            bail!("empty target name");
        }
        let host = if host.is_empty() {
            None
        } else {
            Some(
                glob::Pattern::new(host)
                    .map_err(|e| anyhow!("target name {text:?}: bad host pattern: {e}"))?,
            )
        };
        Ok(Selector {
            text: text.to_string(),
            user,
            host,
            path,
        })
    }

    /// Whether this name selects the target. The user part matches the
    /// `venv_user`, or the login `user` where no `venv_user` is set.
    pub fn matches(&self, record: &Record) -> bool {
        let names = record::Names::of(record);
        if let Some(pattern) = &self.host {
            match names.host {
                Some(h) if pattern.matches(h) => {}
                _ => return false,
            }
        }
        if let Some(path) = &self.path {
            match names.venv {
                Some(v) if v.trim_end_matches('/') == path => {}
                _ => return false,
            }
        }
        if let Some(user) = &self.user {
            let effective = names.venv_user.or(names.user);
            if effective != Some(user.as_str()) {
                return false;
            }
        }
        true
    }
}

/// The entries the names select, in inventory order (all of them when no
/// name is given). A name that selects nothing is an error: a typo in a cron
/// job must not quietly deploy nothing.
pub fn select<'a>(entries: &'a [Entry], selectors: &[Selector]) -> Result<Vec<&'a Entry>> {
    if entries.is_empty() {
        bail!("the inventory holds no targets");
    }
    if selectors.is_empty() {
        return Ok(entries.iter().collect());
    }
    let mut used = vec![false; selectors.len()];
    let mut chosen = Vec::new();
    for entry in entries {
        let mut hit = false;
        for (i, s) in selectors.iter().enumerate() {
            if s.matches(&entry.record) {
                used[i] = true;
                hit = true;
            }
        }
        if hit {
            chosen.push(entry);
        }
    }
    let unmatched: Vec<&str> = selectors
        .iter()
        .zip(&used)
        .filter(|(_, u)| !**u)
        .map(|(s, _)| s.text.as_str())
        .collect();
    if !unmatched.is_empty() {
        bail!("no target matches {}", unmatched.join(", "));
    }
    Ok(chosen)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::of_json;
    use serde_json::json;

    #[test]
    fn selectors_match_each_form() {
        let r = of_json(json!({"host":"web1","user":"deploy","venv":"/srv/a","venv_user":"shop"}));
        let plain = of_json(json!({"host":"db","user":"deploy","venv":"/srv/b"}));
        let m = |s: &str, r: &Record| Selector::parse(s).unwrap().matches(r);
        assert!(m("web1", &r));
        assert!(m("web*", &r));
        assert!(!m("web2", &r));
        assert!(m("shop@web1", &r));
        assert!(!m("deploy@web1", &r));
        assert!(m("deploy@", &plain));
        assert!(m("shop@web1:/srv/a", &r));
        assert!(m("web1:/srv/a/", &r));
        assert!(m(":/srv/a", &r));
        assert!(!m(":/srv", &r));
        assert!(m("shop@", &r));
    }

    #[test]
    fn selectors_refuse_bad_names() {
        assert!(Selector::parse("a@b@c").is_err());
        assert!(Selector::parse("host:relative").is_err());
        assert!(Selector::parse("@host").is_err());
        assert!(Selector::parse("").is_err());
    }
}
