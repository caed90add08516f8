//! Logging in: every identity ssh-agent holds, then identity files.
//!
//! vd runs from cron and in the middle of pipelines, so it never asks for a
//! passphrase: an encrypted key is only usable through ssh-agent, and when
//! nothing works the error lists every key tried and why each failed, so the
//! user can tell a missing `ssh-add` from a key the server does not accept.

use crate::bounded;
use anyhow::{bail, Result};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ssh2::Session;
use std::path::{Path, PathBuf};

/// Authenticate `session` as `user`: agent identities first, then the files
/// in `identity_files` (in order, each once).
pub fn login(session: &Session, user: &str, identity_files: &[PathBuf]) -> Result<()> {
    let methods = match session.auth_methods(user) {
        Ok(methods) => methods.to_string(),
        // Some servers accept the "none" method; then we are in already.
        Err(_) if session.authenticated() => return Ok(()),
        Err(e) => bail!("cannot ask which login methods the server offers: {e}"),
    };
    if session.authenticated() {
        return Ok(());
    }
    if !methods.split(',').any(|m| m == "publickey") {
        bail!("the server does not accept keys for {user} (it offers: {methods}); vd logs in with keys only");
    }
    let mut tried: Vec<String> = Vec::new();
    if std::env::var_os("SSH_AUTH_SOCK").is_some_and(|s| !s.is_empty()) {
        match agent_login(session, user) {
            Ok(true) => return Ok(()),
            Ok(false) => tried.push("the keys in ssh-agent (refused)".to_string()),
            Err(e) => tried.push(format!("ssh-agent ({e})")),
        }
    }
    let mut seen: Vec<&Path> = Vec::new();
    for path in identity_files {
        if seen.contains(&path.as_path()) {
            continue;
        }
        seen.push(path);
        let shown = path.display();
        // libssh2 reads the file again itself; this read also makes sure it
        // is a key-sized regular file, not a device or a FIFO.
        let text = match bounded::read(path, bounded::KEY, "key") {
            Ok(text) => text,
            Err(e) => {
                tried.push(format!("{e:#}"));
                continue;
            }
        };
        if is_encrypted(&text) {
            tried.push(format!(
                "{shown} (encrypted, and vd never asks for a passphrase: add it to ssh-agent with `ssh-add {shown}`)"
            ));
            continue;
        }
        let public = path.with_extension(match path.extension() {
            Some(ext) => format!("{}.pub", ext.to_string_lossy()),
            None => "pub".to_string(),
        });
        let public = bounded::read(&public, bounded::KEY, "key")
            .is_ok()
            .then_some(public);
        match session.userauth_pubkey_file(user, public.as_deref(), path, None) {
            Ok(()) if session.authenticated() => return Ok(()),
            Ok(()) => tried.push(format!("{shown} (refused)")),
            Err(e) if e.code() == ssh2::ErrorCode::Session(-18) => {
                tried.push(format!("{shown} (refused)"))
            }
            Err(e) => tried.push(format!("{shown} ({})", e.message())),
        }
    }
    if tried.is_empty() {
        bail!("no key to log in as {user}: ssh-agent is not running (SSH_AUTH_SOCK is not set) and there is no identity file (inventory `identity`, IdentityFile in ~/.ssh/config, or ~/.ssh/id_ed25519, id_ecdsa, id_rsa)");
    }
    bail!("login as {user} refused; tried {}", tried.join(", "))
}

fn agent_login(session: &Session, user: &str) -> Result<bool> {
    let mut agent = session.agent()?;
    agent.connect()?;
    agent.list_identities()?;
    for identity in agent.identities()? {
        if agent.userauth(user, &identity).is_ok() && session.authenticated() {
            let _ = agent.disconnect();
            return Ok(true);
        }
    }
    let _ = agent.disconnect();
    Ok(false)
}

/// The identity files OpenSSH tries when none is configured, in its order.
pub fn default_identity_files(home: &Path) -> Vec<PathBuf> {
    ["id_rsa", "id_ecdsa", "id_ed25519"]
        .iter()
        .map(|name| home.join(".ssh").join(name))
        .filter(|p| p.exists())
        .collect()
}

/// Whether a private key file needs a passphrase: an OpenSSH-format key with
/// a cipher other than `none`, or a PEM key marked encrypted.
pub fn is_encrypted(text: &[u8]) -> bool {
    let text = String::from_utf8_lossy(text);
    if text.contains("ENCRYPTED") {
        return true;
    }
    const BEGIN: &str = "-----BEGIN OPENSSH PRIVATE KEY-----";
    let Some(start) = text.find(BEGIN) else {
        return false;
    };
    let body: String = text[start + BEGIN.len()..]
        .lines()
        .take_while(|l| !l.starts_with("-----END"))
        .collect::<String>()
        .split_whitespace()
        .collect();
    let Ok(bytes) = STANDARD.decode(body) else {
        return false;
    };
    const MAGIC: &[u8] = b"openssh-key-v1\0";
    let Some(rest) = bytes.strip_prefix(MAGIC) else {
        return false;
    };
    let Some(len) = rest.get(..4) else {
        return false;
    };
    let len = u32::from_be_bytes(len.try_into().unwrap_or([0; 4])) as usize;
    rest.get(4..4 + len).is_some_and(|cipher| cipher != b"none")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn keygen(dir: &Path, name: &str, passphrase: &str) -> Option<Vec<u8>> {
        let path = dir.join(name);
        let ok = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", passphrase, "-f"])
            .arg(&path)
            .status()
            .ok()?
            .success();
        ok.then(|| std::fs::read(&path).unwrap())
    }

    #[test]
    fn tells_encrypted_keys_from_plain_ones() {
        let dir = tempfile::tempdir().unwrap();
        let plain = keygen(dir.path(), "plain", "")
            .expect("ssh-keygen is needed (apt-get install openssh-client)");
        let secret = keygen(dir.path(), "secret", "hunter2").unwrap();
        assert!(!is_encrypted(&plain));
        assert!(is_encrypted(&secret));
        assert!(is_encrypted(
            b"-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n"
        ));
    }
}
