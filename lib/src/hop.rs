//! The address of a bastion, as the inventory's `jump` column and
//! `~/.ssh/config`'s `ProxyJump` write it: `[user@]host[:port]`, a chain of
//! them separated by commas.
//!
//! A data format, read where a record is parsed and where `~/.ssh/config`
//! is; going through the bastions is the transport's business
//! ([`crate::transport`]), not this module's.

use crate::ssh_name::{check_host, check_user};
use anyhow::{anyhow, bail, Context, Result};

/// One bastion of a `ProxyJump` list: `[user@]host[:port]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Hop {
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
}

impl std::fmt::Display for Hop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(user) = &self.user {
            write!(f, "{user}@")?;
        }
        if self.host.contains(':') {
            write!(f, "[{}]", self.host)?;
        } else {
            write!(f, "{}", self.host)?;
        }
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        Ok(())
    }
}

/// Parse a `ProxyJump` value or an inventory `jump` cell: bastions separated
/// by commas, each `[user@]host[:port]` or `ssh://[user@]host[:port]`, an
/// IPv6 address in brackets.
pub fn parse_chain(text: &str) -> Result<Vec<Hop>> {
    let hops = text
        .split(',')
        .map(|hop| parse_hop(hop.trim()).with_context(|| format!("bastion {:?}", hop.trim())))
        .collect::<Result<Vec<_>>>()?;
    if hops.is_empty() {
        bail!("no bastion named");
    }
    Ok(hops)
}

fn parse_hop(text: &str) -> Result<Hop> {
    let text = text.strip_prefix("ssh://").unwrap_or(text);
    let (user, rest) = match text.rsplit_once('@') {
        Some(("", rest)) => bail!("empty user before `@` in {rest:?}"),
        Some((user, rest)) => (Some(user.to_string()), rest),
        None => (None, text),
    };
    let (host, port) = if let Some(inner) = rest.strip_prefix('[') {
        let (host, after) = inner
            .split_once(']')
            .ok_or_else(|| anyhow!("unclosed `[`"))?;
        match after {
            "" => (host, None),
            _ => (
                host,
                Some(
                    after
                        .strip_prefix(':')
                        .ok_or_else(|| anyhow!("unexpected {after:?} after `]`"))?,
                ),
            ),
        }
    } else {
        match rest.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (rest, None),
        }
    };
    if host.is_empty() || host.contains(['/', ' ', '@']) {
        bail!("{host:?} is not a host name or address");
    }
    // A bastion's names reach a ProxyCommand as `%h` and `%r` too.
    check_host("its host", host)?;
    if let Some(user) = &user {
        check_user("its user", user)?;
    }
    let port = port
        .map(|p| {
            p.parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| anyhow!("port {p:?} is not a port number (1-65535)"))
        })
        .transpose()?;
    Ok(Hop {
        user,
        host: host.to_string(),
        port,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hops_and_chains() {
        let hops =
            parse_chain("deploy@gw.example:2222, ssh://jump,[::1]:22,root@[fe80::1]").unwrap();
        let shown: Vec<String> = hops.iter().map(Hop::to_string).collect();
        assert_eq!(
            shown,
            [
                "deploy@gw.example:2222",
                "jump",
                "[::1]:22",
                "root@[fe80::1]"
            ]
        );
        assert_eq!(hops[0].port, Some(2222));
        assert_eq!(hops[3].user.as_deref(), Some("root"));
        for bad in [
            "", "a,,b", "@host", "host:0", "host:ssh", "[::1", "user@", "a b",
        ] {
            let e = parse_chain(bad).map(|h| format!("{h:?}"));
            assert!(e.is_err(), "{bad:?} parsed as {e:?}");
        }
        let e = format!("{:#}", parse_chain("gw,host:99999").unwrap_err());
        assert!(e.contains("host:99999") && e.contains("99999"), "{e}");
        for (bad, part) in [
            ("x$(id)@gw", "its user"),
            ("deploy@gw;id", "its host"),
            ("ssh://-oProxyCommand=id@gw", "its user"),
        ] {
            let e = format!("{:#}", parse_chain(bad).unwrap_err());
            assert!(e.contains(part), "{bad:?}: {e}");
        }
    }
}
