//! Which host and user names vd accepts, wherever they come from: an
//! inventory, a record read on stdin, a `jump` or `ProxyJump` bastion,
//! `~/.ssh/config`'s own `HostName` and `User`.
//!
//! These names end up in a shell more often than it seems: a user's
//! `ProxyCommand ssh -W %h:%p gw` gets `%h` and `%r` substituted before
//! `sh -c` runs it. OpenSSH refuses shell metacharacters in user and host
//! names since CVE-2023-51385 for that reason; vd refuses them the same way,
//! by an allow-list (a deny-list misses the character nobody thought of).
//! What is allowed covers real names: DNS names, IPv4 and IPv6 literals
//! (with a `%zone`), `user.name`, `_`, a `-` anywhere but first, and an
//! `@` inside a user (`someone@AD.EXAMPLE`, as sssd names users).
//!
//! What is not here: quoting, which [`crate::shell::quote`] does, and which
//! [`super::proxy`] applies on top of this as a second line of defence.

use anyhow::{bail, Result};

/// Check a host name or address; the error starts with `what` (``field `host` ``).
pub fn check_host(what: &str, host: &str) -> Result<()> {
    if host.contains('@') {
        bail!(
            "{what}: {host:?} must be a host name or address (the user goes in the `user` field)"
        );
    }
    check(what, "host name", host, b".-_:%")
}

/// Check a login user name; the error starts with `what`.
pub fn check_user(what: &str, user: &str) -> Result<()> {
    check(what, "user name", user, b".-_@")
}

fn check(what: &str, kind: &str, name: &str, extra: &[u8]) -> Result<()> {
    if name.is_empty() {
        bail!("{what}: an empty {kind}");
    }
    if name.starts_with('-') {
        // ssh and its ProxyCommands would read it as an option.
        bail!("{what}: {name:?} starts with `-`, which a {kind} may not");
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || (c.is_ascii() && extra.contains(&(*c as u8)))))
    {
        bail!(
            "{what}: {name:?} holds {c:?}, which a {kind} may not hold (letters, digits and {} only, as OpenSSH allows)",
            allowed(extra)
        );
    }
    Ok(())
}

/// `.`, `-`, `_` and `:` for messages.
fn allowed(extra: &[u8]) -> String {
    let shown: Vec<String> = extra.iter().map(|b| format!("`{}`", *b as char)).collect();
    match shown.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        _ => shown.join(""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_names_pass() {
        for host in [
            "web1",
            "web-1.example.com",
            "127.0.0.2",
            "::1",
            "fe80::1%eth0",
            "host_a",
        ] {
            check_host("host", host).unwrap();
        }
        for user in ["deploy", "first.last", "_svc", "svc-web", "a@AD.EXAMPLE"] {
            check_user("user", user).unwrap();
        }
    }

    #[test]
    fn shell_metacharacters_controls_and_options_are_refused() {
        for bad in [
            "x$(touch /tmp/pwn)",
            "a;b",
            "a b",
            "`id`",
            "a|b",
            "a'b",
            "a\"b",
            "a\nb",
            "a\u{1b}b",
            "-oProxyCommand=x",
            "",
            "wéb",
            "a\\b",
            "a&b",
            "a>b",
        ] {
            let e = check_user("field `user`", bad).unwrap_err().to_string();
            assert!(e.contains("field `user`"), "{bad:?}: {e}");
            let e = check_host("field `host`", bad).unwrap_err().to_string();
            assert!(e.contains("field `host`"), "{bad:?}: {e}");
        }
        let e = check_host("host", "a$b").unwrap_err().to_string();
        assert!(
            e.contains("'$'") && e.contains("`.`, `-`, `_`, `:` and `%`"),
            "{e}"
        );
    }
}
