//! Host keys: which key each host is known by, and the verdict on the key a
//! host offers.
//!
//! vd reads the same `known_hosts` files OpenSSH does and with the same
//! meaning — plain and hashed (`|1|salt|hash`) names, `[host]:port` for ports
//! other than 22, wildcard and negated patterns, `@revoked` keys — so a host
//! the user has verified with `ssh` is verified for vd too. It is parsed here
//! rather than by libssh2, whose reader stops at the first line it cannot read
//! (a key type it does not know, a `@cert-authority` line) and silently
//! forgets the rest of the file.
//!
//! The policy is strict because vd runs unattended: a known key must match; a
//! host whose key changed is refused with both fingerprints; an unknown host
//! is refused unless the user asked to accept new keys, and then its key is
//! recorded so the next run checks it.

use super::pattern;
use anyhow::{Context, Result};
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The host keys vd checks against, and the file new keys are recorded in.
#[derive(Debug, Default)]
pub struct KnownHosts {
    entries: Vec<Entry>,
    record_path: Option<PathBuf>,
}

#[derive(Debug)]
struct Entry {
    revoked: bool,
    names: Names,
    key: Vec<u8>,
    /// `file:line`, for messages.
    origin: String,
}

#[derive(Debug)]
enum Names {
    Patterns(Vec<String>),
    Hashed { salt: Vec<u8>, hash: Vec<u8> },
}

/// What the key a host offered means.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The key is on file for this host.
    Known,
    /// Nothing is on file for this host.
    Unknown,
    /// Other keys are on file for this host: `(fingerprint, file:line)`.
    Changed(Vec<(String, String)>),
    /// The key is marked `@revoked` at `file:line`.
    Revoked(String),
}

impl KnownHosts {
    /// Read `files` (missing ones are empty); new keys go to `record_path`.
    pub fn load(files: &[PathBuf], record_path: Option<PathBuf>) -> Result<KnownHosts> {
        let mut known = KnownHosts {
            entries: Vec::new(),
            record_path,
        };
        for file in files {
            let text = match fs::read(file) {
                Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e).with_context(|| format!("cannot read {}", file.display())),
            };
            known.add_text(&text, file);
        }
        Ok(known)
    }

    fn add_text(&mut self, text: &str, file: &Path) {
        for (i, line) in text.lines().enumerate() {
            // Lines vd cannot read are skipped, as OpenSSH skips them.
            if let Some(entry) = parse_line(line, &format!("{}:{}", file.display(), i + 1)) {
                self.entries.push(entry);
            }
        }
    }

    /// The verdict on `key` (an SSH public key blob) offered by `host`:`port`.
    pub fn check(&self, host: &str, port: u16, key: &[u8]) -> Verdict {
        let name = lookup_name(host, port);
        let mut others = Vec::new();
        let mut known = false;
        for entry in self.entries.iter().filter(|e| e.names.matches(&name)) {
            if entry.key == key {
                if entry.revoked {
                    return Verdict::Revoked(entry.origin.clone());
                }
                known = true;
            } else if !entry.revoked {
                others.push((fingerprint(&entry.key), entry.origin.clone()));
            }
        }
        // A revoked key is revoked for every host, whatever names its line has.
        if let Some(entry) = self.entries.iter().find(|e| e.revoked && e.key == key) {
            return Verdict::Revoked(entry.origin.clone());
        }
        if known {
            Verdict::Known
        } else if others.is_empty() {
            Verdict::Unknown
        } else {
            Verdict::Changed(others)
        }
    }

    /// The key types on file for `host`:`port`, so the handshake can ask the
    /// server for a key that can be checked (as OpenSSH orders them).
    pub fn key_types(&self, host: &str, port: u16) -> Vec<String> {
        let name = lookup_name(host, port);
        let mut types = Vec::new();
        for entry in &self.entries {
            if !entry.revoked && entry.names.matches(&name) {
                if let Some(t) = key_type(&entry.key) {
                    if !types.contains(&t) {
                        types.push(t);
                    }
                }
            }
        }
        types
    }

    /// Record `key` for `host`:`port` (after `--accept-new`): appended to the
    /// record file under a lock, one whole line, and remembered at once.
    pub fn record(&mut self, host: &str, port: u16, key: &[u8]) -> Result<()> {
        let path = self
            .record_path
            .clone()
            .context("no known_hosts file to record the key in (HOME is not set)")?;
        let name = lookup_name(host, port);
        let key_type = key_type(key).unwrap_or_else(|| "unknown".to_string());
        let line = format!("{name} {key_type} {}\n", STANDARD.encode(key));
        if let Some(dir) = path.parent() {
            if !dir.as_os_str().is_empty() && !dir.exists() {
                fs::create_dir_all(dir)
                    .with_context(|| format!("cannot create {}", dir.display()))?;
                #[cfg(unix)]
                {
                    use std::os::unix::fs::PermissionsExt;
                    let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o700));
                }
            }
        }
        let shown = path.display();
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .with_context(|| format!("cannot open {shown} to record the host key of {name}"))?;
        file.lock()
            .with_context(|| format!("cannot lock {shown}"))?;
        // A file whose last line lacks its newline must not swallow ours.
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        let needs_newline = len > 0
            && fs::read(&path)
                .map(|b| b.last() != Some(&b'\n'))
                .unwrap_or(false);
        let text = if needs_newline {
            format!("\n{line}")
        } else {
            line.clone()
        };
        file.write_all(text.as_bytes())
            .with_context(|| format!("cannot write the host key of {name} to {shown}"))?;
        let origin = format!("{shown}:new");
        if let Some(entry) = parse_line(line.trim_end(), &origin) {
            self.entries.push(entry);
        }
        Ok(())
    }
}

impl Names {
    fn matches(&self, name: &str) -> bool {
        match self {
            Names::Patterns(patterns) => pattern::list(patterns.iter().map(String::as_str), name),
            Names::Hashed { salt, hash } => {
                let Ok(mut mac) = Hmac::<sha1::Sha1>::new_from_slice(salt) else {
                    return false;
                };
                mac.update(name.as_bytes());
                mac.verify_slice(hash).is_ok()
            }
        }
    }
}

/// The name a host is filed under: `host`, or `[host]:port` off port 22.
pub fn lookup_name(host: &str, port: u16) -> String {
    let host = host.to_lowercase();
    if port == 22 {
        host
    } else {
        format!("[{host}]:{port}")
    }
}

/// `SHA256:…`, the fingerprint OpenSSH shows for a key.
pub fn fingerprint(key: &[u8]) -> String {
    format!("SHA256:{}", STANDARD_NO_PAD.encode(Sha256::digest(key)))
}

/// The key type a public key blob names in its first field (`ssh-ed25519`).
pub fn key_type(key: &[u8]) -> Option<String> {
    let len = u32::from_be_bytes(key.get(..4)?.try_into().ok()?) as usize;
    let name = key.get(4..4 + len)?;
    String::from_utf8(name.to_vec()).ok()
}

fn parse_line(line: &str, origin: &str) -> Option<Entry> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let mut fields = line.split_whitespace();
    let mut first = fields.next()?;
    let mut revoked = false;
    if first.starts_with('@') {
        match first {
            "@revoked" => revoked = true,
            // Certificate authorities sign host certificates, which vd does
            // not use; such a line vouches for no plain key.
            _ => return None,
        }
        first = fields.next()?;
    }
    let names = if let Some(hashed) = first.strip_prefix("|1|") {
        let (salt, hash) = hashed.split_once('|')?;
        Names::Hashed {
            salt: STANDARD.decode(salt).ok()?,
            hash: STANDARD.decode(hash).ok()?,
        }
    } else {
        Names::Patterns(first.split(',').map(str::to_lowercase).collect())
    };
    let _declared_type = fields.next()?;
    let key = STANDARD.decode(fields.next()?).ok()?;
    key_type(&key)?;
    Some(Entry {
        revoked,
        names,
        key,
        origin: origin.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(kind: &str, body: &[u8]) -> Vec<u8> {
        let mut b = (kind.len() as u32).to_be_bytes().to_vec();
        b.extend_from_slice(kind.as_bytes());
        b.extend_from_slice(body);
        b
    }

    fn known(text: &str) -> KnownHosts {
        let mut k = KnownHosts::default();
        k.add_text(text, Path::new("kh"));
        k
    }

    fn hashed(name: &str, salt: &[u8]) -> String {
        let mut mac = Hmac::<sha1::Sha1>::new_from_slice(salt).unwrap();
        mac.update(name.as_bytes());
        format!(
            "|1|{}|{}",
            STANDARD.encode(salt),
            STANDARD.encode(mac.finalize().into_bytes())
        )
    }

    #[test]
    fn plain_hashed_and_port_entries() {
        let a = blob("ssh-ed25519", b"aaaa");
        let b = blob("ssh-ed25519", b"bbbb");
        let text = format!(
            "# comment\nweb1,web2 ssh-ed25519 {}\n{} ssh-ed25519 {}\n[db]:2222 ssh-ed25519 {}\nbroken line\n",
            STANDARD.encode(&a),
            hashed("[10.0.0.5]:2200", b"salty salt"),
            STANDARD.encode(&b),
            STANDARD.encode(&a),
        );
        let k = known(&text);
        assert_eq!(k.check("web2", 22, &a), Verdict::Known);
        assert_eq!(k.check("WEB1", 22, &a), Verdict::Known);
        assert_eq!(k.check("10.0.0.5", 2200, &b), Verdict::Known);
        assert_eq!(k.check("10.0.0.5", 22, &b), Verdict::Unknown);
        assert_eq!(k.check("db", 2222, &a), Verdict::Known);
        assert_eq!(k.check("db", 22, &a), Verdict::Unknown);
        match k.check("web1", 22, &b) {
            Verdict::Changed(others) => {
                assert_eq!(others, vec![(fingerprint(&a), "kh:2".to_string())]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn revoked_keys_are_refused_everywhere() {
        let a = blob("ssh-ed25519", b"aaaa");
        let text = format!(
            "web1 ssh-ed25519 {0}\n@revoked * ssh-ed25519 {0}\n",
            STANDARD.encode(&a)
        );
        assert_eq!(
            known(&text).check("web1", 22, &a),
            Verdict::Revoked("kh:2".to_string())
        );
    }

    #[test]
    fn records_new_keys_and_remembers_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".ssh/known_hosts");
        let mut k = KnownHosts::load(std::slice::from_ref(&path), Some(path.clone())).unwrap();
        let a = blob("ssh-ed25519", b"aaaa");
        assert_eq!(k.check("h", 2222, &a), Verdict::Unknown);
        k.record("h", 2222, &a).unwrap();
        assert_eq!(k.check("h", 2222, &a), Verdict::Known);
        let again = KnownHosts::load(std::slice::from_ref(&path), None).unwrap();
        assert_eq!(again.check("h", 2222, &a), Verdict::Known);
        assert_eq!(again.key_types("h", 2222), vec!["ssh-ed25519".to_string()]);
    }

    #[test]
    fn fingerprints_look_like_openssh() {
        let fp = fingerprint(b"x");
        assert!(fp.starts_with("SHA256:") && !fp.ends_with('='), "{fp}");
    }
}
