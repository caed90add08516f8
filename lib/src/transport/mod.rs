//! Reaching targets: where a target is ([`Destination`]), the options that
//! say how strictly and how fast to reach it ([`Options`]), and an open
//! [`Connection`] that runs shell commands and uploads files there.
//!
//! A connection is either an SSH session (libssh2, one per host, shared by the
//! host's targets; reached directly, through bastions or over a proxy
//! command, see [`route`]) or this machine (`via = local`); the tools see one
//! type and the same commands run either way. This module knows nothing about venvs or
//! pip: what to run is [`crate::remote`]'s business, and which targets share a
//! connection and run in parallel is [`crate::fleet`]'s.

mod auth;
mod exec_upload;
pub mod jump;
pub mod known_hosts;
mod local;
pub mod name;
mod pattern;
mod proxy;
mod route;
mod ssh;
pub mod ssh_config;
mod watch;

use crate::record::Target;
use anyhow::{bail, Context, Result};
use known_hosts::KnownHosts;
use ssh_config::SshConfig;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use local::LocalConnection;
pub use ssh::SshConnection;

/// How strictly and how fast to reach targets (from the command line's
/// `--timeout`, `--known-hosts` and `--accept-new`).
#[derive(Debug, Clone)]
pub struct Options {
    /// Bound on resolving, connecting, greeting and logging in; the
    /// keepalive interval while a command runs (three silent intervals and
    /// the host is given up).
    pub timeout: Duration,
    /// Check host keys against this file only (and record new ones there)
    /// instead of ~/.ssh/known_hosts and /etc/ssh/ssh_known_hosts.
    pub known_hosts: Option<PathBuf>,
    /// Connect to hosts whose key is not yet known, and record their key.
    pub accept_new: bool,
}

/// How a target is reached: the record's `via`.
pub use crate::record::Via;

/// Where a target is, as its record says: what groups targets into one
/// session. `~/.ssh/config` fills in what the record leaves out when the
/// connection is opened.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Destination {
    /// The host as the inventory names it (an alias in ~/.ssh/config, a
    /// name, an address).
    pub host: String,
    pub port: Option<u16>,
    /// The login user, when the record names one.
    pub user: Option<String>,
    pub via: Via,
    /// The record's `identity` key file.
    pub identity: Option<PathBuf>,
    /// The record's `jump`: bastions to go through, overriding
    /// `~/.ssh/config`'s ProxyJump and ProxyCommand.
    pub jump: Option<Vec<jump::Hop>>,
}

impl Destination {
    /// The destination of a target.
    pub fn of(target: &Target) -> Destination {
        Destination {
            host: target.host.clone(),
            port: target.port,
            user: target.user.clone(),
            via: target.via,
            identity: target.identity.clone(),
            jump: target.jump.clone(),
        }
    }
}

/// What a tool run shares between its connections: the options, the parsed
/// `~/.ssh/config`, and the known host keys (one copy, so a key recorded
/// with `--accept-new` is known to the next session at once).
pub struct Settings {
    pub timeout: Duration,
    pub accept_new: bool,
    known_hosts: Mutex<KnownHosts>,
    known_hosts_files: Vec<PathBuf>,
    ssh_config: SshConfig,
    home: PathBuf,
    local_user: String,
    /// The bastions' sessions, shared by the targets behind them.
    bastions: jump::Bastions,
    /// Where a connection reports something worth a line on stderr.
    notice: Arc<dyn Fn(&str) + Send + Sync>,
}

impl Settings {
    /// Read `~/.ssh/config` and the known_hosts files. `notice` prints a line
    /// for the user (a newly recorded host key).
    pub fn new(
        options: &Options,
        notice: impl Fn(&str) + Send + Sync + 'static,
    ) -> Result<Settings> {
        let home = std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map(PathBuf::from)
            .context("HOME is not set: vd reads ~/.ssh/config and ~/.ssh/known_hosts from it")?;
        let ssh_config = SshConfig::load(&home.join(".ssh/config"), &home)?;
        let (files, record_to) = match &options.known_hosts {
            Some(file) => (vec![file.clone()], file.clone()),
            None => {
                let user_file = home.join(".ssh/known_hosts");
                (
                    vec![user_file.clone(), PathBuf::from("/etc/ssh/ssh_known_hosts")],
                    user_file,
                )
            }
        };
        let known_hosts = KnownHosts::load(&files, Some(record_to))?;
        Ok(Settings {
            timeout: options.timeout,
            accept_new: options.accept_new,
            known_hosts: Mutex::new(known_hosts),
            known_hosts_files: files,
            ssh_config,
            home,
            local_user: local_user()?,
            bastions: jump::Bastions::default(),
            notice: Arc::new(notice),
        })
    }

    fn known_hosts_files(&self) -> String {
        self.known_hosts_files
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
impl Settings {
    /// Settings that read no file, for tests whose work never connects.
    pub(crate) fn offline() -> Settings {
        Settings {
            timeout: Duration::from_secs(1),
            accept_new: false,
            known_hosts: Mutex::new(KnownHosts::default()),
            known_hosts_files: Vec::new(),
            ssh_config: SshConfig::default(),
            home: PathBuf::from("/nonexistent"),
            local_user: "nobody".to_string(),
            bastions: jump::Bastions::default(),
            notice: Arc::new(|_| {}),
        }
    }
}

/// The user this process runs as: the default login user, and the user of
/// `via = local` targets. Asked of the system's user database (getpwuid, so
/// NSS: LDAP and SSSD deploy accounts too), then of USER and LOGNAME.
pub fn local_user() -> Result<String> {
    let uid = nix::unistd::geteuid();
    if let Ok(Some(user)) = nix::unistd::User::from_uid(uid) {
        return Ok(user.name);
    }
    for var in ["USER", "LOGNAME"] {
        if let Some(user) = std::env::var(var).ok().filter(|u| !u.is_empty()) {
            return Ok(user);
        }
    }
    bail!("cannot tell which user vd runs as (uid {uid} has no entry in the user database, USER is not set)")
}

/// How a command ended.
#[derive(Debug, Clone)]
pub struct Finished {
    /// The exit status (-1 when the server did not say).
    pub status: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Finished {
    /// A command's end as a test writes it: status and text.
    #[cfg(test)]
    pub(crate) fn of(status: i32, stdout: &str, stderr: &str) -> Finished {
        Finished {
            status,
            stdout: stdout.as_bytes().to_vec(),
            stderr: stderr.as_bytes().to_vec(),
        }
    }

    pub fn success(&self) -> bool {
        self.status == 0
    }

    /// stderr as text, trimmed, for messages.
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).trim().to_string()
    }

    /// The last `lines` lines of what the command said, for an error
    /// message: stderr, or stdout when stderr is empty (a traceback ends
    /// with the line that matters; many tools print failures on stdout).
    pub fn tail(&self, lines: usize) -> String {
        let stderr = self.stderr_text();
        let text = if stderr.is_empty() {
            String::from_utf8_lossy(&self.stdout).trim().to_string()
        } else {
            stderr
        };
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

/// An open way to run commands on a target's host.
pub enum Connection {
    Ssh(SshConnection),
    Local(LocalConnection),
}

impl Connection {
    /// Connect to `dest`: an SSH session (host key checked, logged in), or
    /// this machine for `via = local`.
    pub fn open(dest: &Destination, settings: &Settings) -> Result<Connection> {
        match dest.via {
            Via::Ssh => Ok(Connection::Ssh(SshConnection::open(dest, settings)?)),
            Via::Local => Ok(Connection::Local(LocalConnection::new(
                &settings.local_user,
            ))),
        }
    }

    /// The user commands run as (the login user).
    pub fn user(&self) -> &str {
        match self {
            Connection::Ssh(c) => c.user(),
            Connection::Local(c) => c.user(),
        }
    }

    /// Run a shell command line (build it with [`crate::shell::quote`]),
    /// feeding it `stdin`; a command that fails is not an error here, its
    /// status is in the result.
    pub fn run(&mut self, command: &str, stdin: &[u8]) -> Result<Finished> {
        match self {
            Connection::Ssh(c) => c.run(command, stdin),
            Connection::Local(c) => c.run(command, stdin),
        }
    }

    /// Copy a local file to `remote` on the host (SFTP, or `cat` over the
    /// command channel where the host has no SFTP, or a copy for local
    /// targets), replacing it. Not atomic: upload under a temporary name and
    /// rename with a command.
    pub fn upload(&mut self, local: &Path, remote: &str) -> Result<()> {
        match self {
            Connection::Ssh(c) => c.upload(local, remote),
            Connection::Local(c) => c.upload(local, remote),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_prefers_stderr_and_keeps_the_last_lines() {
        let finished = Finished {
            status: 1,
            stdout: b"Applying a.0001... OK\n".to_vec(),
            stderr: b"Traceback:\n  one\n  two\nRuntimeError: broken\n".to_vec(),
        };
        assert_eq!(finished.tail(2), "  two\nRuntimeError: broken");
        let quiet = Finished {
            stderr: Vec::new(),
            ..finished
        };
        assert_eq!(quiet.tail(5), "Applying a.0001... OK");
    }
}
