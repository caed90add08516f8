//! How a session's bytes reach its host: a TCP connection of vd's own, a
//! channel through a bastion ([`super::jump`]), or a proxy command
//! ([`super::proxy`]). The SSH session over it is the same in every case
//! (host key checked, keys only), so the choice is made here, once, from the
//! record's `jump` and `~/.ssh/config`'s `ProxyJump` / `ProxyCommand`.

use super::jump::Bastion;
use super::proxy::{ProxyCommand, Tokens};
use super::ssh::connect_tcp;
use super::ssh_config::{HostConfig, Proxy};
use super::{Destination, Settings, SshConnection, Via};
use anyhow::{Context, Result};
use std::os::fd::OwnedFd;
use std::sync::Arc;

/// What a session's socket depends on; it lives as long as the session.
/// Held: dropping it ends the bastion session (when no other target uses
/// it) or stops the proxy command.
pub enum Through {
    Direct,
    /// The bastion's session, shared with the other targets behind it.
    Bastion(#[allow(dead_code)] Arc<Bastion>),
    Command(ProxyCommand),
}

/// Where to connect, as resolved from the record and `~/.ssh/config`.
pub struct Endpoint<'a> {
    pub hostname: &'a str,
    pub port: u16,
    pub user: &'a str,
}

/// A socket to `to`, reached the way `dest` (its `jump`, which wins) and
/// `config` say.
pub fn connect(
    dest: &Destination,
    config: &HostConfig,
    to: &Endpoint,
    settings: &Settings,
) -> Result<(OwnedFd, Through)> {
    // Where the way was configured, for messages.
    let (proxy, origin) = match &dest.jump {
        Some(hops) => (Some(Proxy::Jump(hops.clone())), None),
        None => (config.proxy.clone(), config.proxy_origin.as_deref()),
    };
    match proxy {
        None | Some(Proxy::Direct) => Ok((
            OwnedFd::from(connect_tcp(to.hostname, to.port, settings.timeout)?),
            Through::Direct,
        )),
        Some(Proxy::Jump(hops)) => {
            let Some((last, before)) = hops.split_last() else {
                anyhow::bail!("an empty list of bastions")
            };
            // The last bastion is reached through the ones before it, or,
            // alone, the way the config says to reach it.
            let bastion = Destination {
                host: last.host.clone(),
                port: last.port,
                user: last.user.clone(),
                via: Via::Ssh,
                identity: None,
                jump: (!before.is_empty()).then(|| before.to_vec()),
            };
            let chain: Vec<String> = hops.iter().map(ToString::to_string).collect();
            let context = || match origin {
                Some(origin) => format!("through ProxyJump {} ({origin})", chain.join(",")),
                None => format!("through jump {}", chain.join(",")),
            };
            let bastion = settings
                .bastions
                .get(
                    &bastion,
                    || SshConnection::open(&bastion, settings),
                    settings.timeout,
                )
                .with_context(context)?;
            let socket = bastion.tunnel(to.hostname, to.port).with_context(context)?;
            Ok((OwnedFd::from(socket), Through::Bastion(bastion)))
        }
        Some(Proxy::Command(command)) => {
            let (socket, child) = ProxyCommand::spawn(
                &command,
                &Tokens {
                    hostname: to.hostname,
                    port: to.port,
                    user: to.user,
                    alias: &dest.host,
                },
            )
            .with_context(|| format!("ProxyCommand ({})", origin.unwrap_or_default()))?;
            Ok((socket, Through::Command(child)))
        }
    }
}

impl Through {
    /// `error` (the session over this way failed), with the reason when the
    /// way itself is gone.
    pub fn explain(&mut self, error: anyhow::Error) -> anyhow::Error {
        match self {
            Through::Command(command) => match command.ended() {
                Some(why) => error.context(why),
                None => error,
            },
            _ => error,
        }
    }
}
