//! `ProxyCommand`: a host reached over the stdin and stdout of a command
//! (`ssh -W %h:%p gw`, `nc`, a site's own connector), as OpenSSH does.
//!
//! The command runs under `sh -c` with one end of a socketpair as both its
//! stdin and stdout; the SSH session runs over the other end, so the host's
//! key is checked and the login made by vd as for any host. The command's
//! stderr is the tool's, so what it says reaches the user.

use crate::shell::quote;
use anyhow::{bail, Context, Result};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::process::{Child, Command, Stdio};

/// A running proxy command; it is stopped when the session over it ends.
pub struct ProxyCommand {
    child: Child,
    /// The command as run, for messages.
    command: String,
}

/// What a `ProxyCommand`'s `%` tokens stand for.
pub struct Tokens<'a> {
    /// `%h`: the host name to connect to (after `HostName`).
    pub hostname: &'a str,
    /// `%p`
    pub port: u16,
    /// `%r`: the login user.
    pub user: &'a str,
    /// `%n`: the host as the inventory names it.
    pub alias: &'a str,
}

impl ProxyCommand {
    /// Start `command` (its tokens expanded) and return the socket to speak
    /// SSH over.
    pub fn spawn(command: &str, tokens: &Tokens) -> Result<(OwnedFd, ProxyCommand)> {
        let expanded = expand(command, tokens)?;
        let (ours, theirs) = UnixStream::pair().context("cannot make a socketpair")?;
        let stdin = OwnedFd::from(theirs.try_clone().context("cannot make a socketpair")?);
        let child = Command::new("/bin/sh")
            .arg("-c")
            .arg(format!("exec {expanded}"))
            .stdin(Stdio::from(stdin))
            .stdout(Stdio::from(OwnedFd::from(theirs)))
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("cannot run ProxyCommand {expanded}"))?;
        Ok((
            OwnedFd::from(ours),
            ProxyCommand {
                child,
                command: expanded,
            },
        ))
    }

    /// Why the session over it failed, when the command has ended: the
    /// user's problem is then the command (not found, refused), not SSH.
    pub fn ended(&mut self) -> Option<String> {
        // It closed its end on the way out; give it a moment to be reaped.
        for _ in 0..20 {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(format!("ProxyCommand {} ended ({status})", self.command));
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        None
    }
}

impl Drop for ProxyCommand {
    fn drop(&mut self) {
        // The session is over; a command that lingers (an `ssh -W` waiting
        // on its own connection) is not waited for.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Replace `%h`, `%p`, `%r`, `%n` and `%%`; any other token is an error
/// rather than a command that quietly goes somewhere else.
///
/// The names were checked where they were read ([`super::name`]), so they
/// hold nothing a shell acts on; each is shell-quoted all the same, in case
/// a check is ever missed. A checked name quotes to itself, so a command
/// that quotes its tokens (`ssh -W '%h:%p' gw`) keeps working.
fn expand(command: &str, tokens: &Tokens) -> Result<String> {
    let mut out = String::new();
    let mut chars = command.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('h') => out.push_str(&quote(tokens.hostname)),
            Some('p') => out.push_str(&tokens.port.to_string()),
            Some('r') => out.push_str(&quote(tokens.user)),
            Some('n') => out.push_str(&quote(tokens.alias)),
            Some('%') => out.push('%'),
            Some(other) => bail!(
                "ProxyCommand {command}: vd does not know the token %{other} (it knows %h, %p, %r, %n and %%)"
            ),
            None => bail!("ProxyCommand {command}: ends with a lone %"),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    const TOKENS: Tokens = Tokens {
        hostname: "web1.internal",
        port: 2222,
        user: "deploy",
        alias: "web1",
    };

    #[test]
    fn tokens_expand_and_unknown_ones_are_refused() {
        assert_eq!(
            expand("ssh -W %h:%p -l %r gw # %n 100%%", &TOKENS).unwrap(),
            "ssh -W web1.internal:2222 -l deploy gw # web1 100%"
        );
        let hostile = Tokens {
            hostname: "h;id",
            port: 22,
            user: "x$(touch /tmp/pwn)",
            alias: "a b",
        };
        assert_eq!(
            expand("nc %h %p # %r %n", &hostile).unwrap(),
            "nc 'h;id' 22 # 'x$(touch /tmp/pwn)' 'a b'"
        );
        let e = expand("nc %h %C", &TOKENS).unwrap_err().to_string();
        assert!(e.contains("%C"), "{e}");
        assert!(expand("nc %", &TOKENS).is_err());
    }

    #[test]
    fn the_socket_is_the_commands_stdin_and_stdout() {
        let (socket, command) = ProxyCommand::spawn("sed -u 's/^/%h:%p /'", &TOKENS).unwrap();
        let mut stream = UnixStream::from(socket);
        stream.write_all(b"hello\n").unwrap();
        stream.shutdown(std::net::Shutdown::Write).unwrap();
        let mut got = String::new();
        stream.read_to_string(&mut got).unwrap();
        assert_eq!(got, "web1.internal:2222 hello\n");
        drop(command);
    }
}
