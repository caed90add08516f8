//! One SSH session to one host, over libssh2 (the `ssh2` crate): connect with
//! a timeout, check the host key, log in, then run commands and upload files
//! over it for as long as the host's targets need it. How the bytes get
//! there (directly, through a bastion, over a proxy command) is
//! [`super::route`]'s choice.

use super::known_hosts::{fingerprint, key_type, lookup_name, Verdict};
use super::route::{self, Endpoint, Through};
use super::watch::{Watch, EAGAIN};
use super::{auth, exec_upload, Destination, Finished, Settings};
use anyhow::{anyhow, bail, Context, Result};
use socket2::{Domain, Protocol, SockAddr, Socket, TcpKeepalive, Type};
use ssh2::{MethodType, OpenFlags, OpenType, Session};
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// libssh2's "timed out" in blocking mode.
const TIMEOUT: i32 = -9;
/// The bytes handed to libssh2's SFTP write at once.
const SFTP_WRITE: usize = 1 << 20;
/// libssh2's "channel request refused": a subsystem the server lacks.
const CHANNEL_FAILURE: i32 = -21;

/// A logged-in session to one host.
pub struct SshConnection {
    session: Session,
    user: String,
    /// The session's socket (a second handle), to see whether the host sent
    /// anything: libssh2 swallows keepalive replies without a word. A
    /// bastion's relay waits on it too. Closed before `through`, so a
    /// bastion sees this session end.
    socket: Socket,
    /// How long the host may stay silent while a command runs: three
    /// keepalive intervals.
    silence: Duration,
    /// Why the session is unusable (the host stopped answering): every later
    /// command fails at once instead of waiting again.
    lost: Option<String>,
    /// The host as messages name it.
    label: String,
    /// Set once the host refused SFTP: files go over the command channel.
    without_sftp: bool,
    notice: Arc<dyn Fn(&str) + Send + Sync>,
    _through: Through,
}

impl SshConnection {
    /// Connect to `dest` and log in, refusing hosts whose key is not known
    /// (unless `--accept-new`) or has changed. Each step that waits on the
    /// network gives up after the timeout.
    pub fn open(dest: &Destination, settings: &Settings) -> Result<SshConnection> {
        let config = settings.ssh_config.host(&dest.host, &settings.home)?;
        let hostname = config.hostname.clone().unwrap_or_else(|| dest.host.clone());
        let port = dest.port.or(config.port).unwrap_or(22);
        let user = dest
            .user
            .clone()
            .or(config.user.clone())
            .unwrap_or_else(|| settings.local_user.clone());
        let label = if port == 22 {
            dest.host.clone()
        } else {
            format!("{}:{port}", dest.host)
        };
        let to = Endpoint {
            hostname: &hostname,
            port,
            user: &user,
        };
        let (stream, mut through) =
            route::connect(dest, &config, &to, settings).context("cannot connect")?;
        let socket = Socket::from(stream.try_clone().context("cannot share the socket")?);
        let mut session = Session::new().context("cannot start libssh2")?;
        session.set_tcp_stream(stream);
        session.set_timeout(millis(settings.timeout));
        prefer_known_key_types(&session, settings, &hostname, port)?;
        session
            .handshake()
            .map_err(|e| {
                if e.code() == ssh2::ErrorCode::Session(TIMEOUT) {
                    anyhow!(
                        "no SSH greeting within {}s (is it an SSH server?)",
                        settings.timeout.as_secs()
                    )
                } else {
                    anyhow!("SSH handshake failed: {}", e.message())
                }
            })
            .map_err(|e| through.explain(e))?;
        // libssh2 made it non-blocking already; say so for the peeks anyway.
        socket
            .set_nonblocking(true)
            .context("cannot make the socket non-blocking")?;
        check_host_key(&session, settings, &hostname, port, &label)?;
        let mut identities: Vec<_> = dest.identity.iter().cloned().collect();
        identities.extend(config.identity_files.iter().cloned());
        identities.extend(auth::default_identity_files(&settings.home));
        auth::login(&session, &user, &identities)?;
        let interval = settings.timeout.as_secs().max(1);
        session.set_keepalive(true, interval as u32);
        Ok(SshConnection {
            session,
            user,
            socket,
            silence: Duration::from_secs(3 * interval),
            lost: None,
            label,
            without_sftp: false,
            notice: settings.notice.clone(),
            _through: through,
        })
    }

    /// The user logged in as.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// Run `command` with the login shell, feeding it `stdin`, and collect its
    /// output. Both output streams and stdin are served in one loop, so a
    /// command that writes much to stderr while we feed it cannot deadlock.
    pub fn run(&mut self, command: &str, stdin: &[u8]) -> Result<Finished> {
        self.check_not_lost()?;
        // Non-blocking from the channel's opening to its close: every wait
        // is the watch's, which acknowledges at once and notices a silent
        // host (see watch.rs).
        self.session.set_blocking(false);
        let mut watch = Watch::new(&self.session, &self.socket, self.silence);
        let result = run_command(&self.session, &mut watch, command, stdin);
        match result {
            Err(Lost(e)) => {
                // Left non-blocking: closing the channel and the session
                // must not wait for a host that no longer answers.
                self.lost = Some(e.to_string());
                Err(anyhow!("{e}"))
            }
            Ok(finished) => {
                self.session.set_blocking(true);
                finished
            }
        }
    }

    /// Write the local file to `remote` (mode 0644, replacing what is
    /// there): over SFTP, or where the host has no SFTP subsystem, over the
    /// command channel (with a warning, once per host). Not atomic: upload
    /// to a temporary name and rename.
    pub fn upload(&mut self, local: &Path, remote: &str) -> Result<()> {
        self.check_not_lost()?;
        if !self.without_sftp {
            match self.session.sftp() {
                Ok(sftp) => return upload_sftp(&sftp, local, remote),
                Err(e) if e.code() == ssh2::ErrorCode::Session(CHANNEL_FAILURE) => {
                    (self.notice)(&format!(
                        "{}: the server offers no SFTP ({}); sending files over the command channel instead",
                        self.label,
                        e.message()
                    ));
                    self.without_sftp = true;
                }
                Err(e) => bail!("cannot start SFTP: {}", e.message()),
            }
        }
        exec_upload::upload(self, local, remote)
    }

    /// The session, for a bastion's relay.
    pub(super) fn session(&self) -> &Session {
        &self.session
    }

    /// The session's socket, for a bastion's relay to wait on.
    pub(super) fn socket(&self) -> &Socket {
        &self.socket
    }

    fn check_not_lost(&self) -> Result<()> {
        match &self.lost {
            Some(why) => bail!("{why} (during an earlier command)"),
            None => Ok(()),
        }
    }
}

/// Write the local file to `remote` over an SFTP session.
fn upload_sftp(sftp: &ssh2::Sftp, local: &Path, remote: &str) -> Result<()> {
    let mut source =
        std::fs::File::open(local).with_context(|| format!("cannot open {}", local.display()))?;
    let mut target = sftp
        .open_mode(
            Path::new(remote),
            OpenFlags::WRITE | OpenFlags::CREATE | OpenFlags::TRUNCATE,
            0o644,
            OpenType::File,
        )
        .map_err(|e| anyhow!("cannot create {remote}: {}", e.message()))?;
    // Large writes let libssh2 keep many SFTP packets in flight; with
    // io::copy's 8 KiB each write waits a round trip, which through a
    // bastion or over a long link is most of the time.
    let mut writer = io::BufWriter::with_capacity(SFTP_WRITE, &mut target);
    io::copy(&mut source, &mut writer)
        .and_then(|_| writer.flush())
        .with_context(|| format!("cannot upload {} to {remote}", local.display()))?;
    drop(writer);
    target
        .fsync()
        .or_else(|e| {
            // fsync is an OpenSSH extension; a server without it is fine.
            if e.code() == ssh2::ErrorCode::SFTP(8) {
                Ok(())
            } else {
                Err(e)
            }
        })
        .map_err(|e| anyhow!("cannot finish {remote}: {}", e.message()))?;
    Ok(())
}

impl Drop for SshConnection {
    fn drop(&mut self) {
        let _ = self
            .session
            .disconnect(None, "vd is done with this host", None);
    }
}

fn millis(d: Duration) -> u32 {
    d.as_millis().min(u32::MAX as u128) as u32
}

/// A TCP connection that gives up after `timeout` (the name's resolution,
/// then every address tried, all within it), with TCP keepalive and a user
/// timeout so a host whose kernel dies mid-command is noticed.
pub(super) fn connect_tcp(host: &str, port: u16, timeout: Duration) -> Result<TcpStream> {
    let deadline = Instant::now() + timeout;
    let addrs = resolve(host, port, timeout)?;
    let mut last = None;
    for addr in &addrs {
        let Some(left) = deadline
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
        else {
            break;
        };
        let socket = Socket::new(
            Domain::for_address(*addr),
            Type::STREAM,
            Some(Protocol::TCP),
        )?;
        let keepalive = TcpKeepalive::new()
            .with_time(timeout)
            .with_interval(timeout)
            .with_retries(3);
        socket.set_tcp_keepalive(&keepalive)?;
        #[cfg(any(target_os = "linux", target_os = "android"))]
        socket.set_tcp_user_timeout(Some(timeout * 3))?;
        match socket.connect_timeout(&SockAddr::from(*addr), left) {
            Ok(()) => {
                socket.set_nodelay(true)?;
                return Ok(socket.into());
            }
            Err(e)
                if e.kind() == io::ErrorKind::TimedOut || e.kind() == io::ErrorKind::WouldBlock =>
            {
                last = Some(anyhow!(
                    "no answer from {addr} within {}s",
                    timeout.as_secs()
                ))
            }
            Err(e) => last = Some(anyhow!("{addr}: {e}")),
        }
    }
    Err(last.unwrap_or_else(|| anyhow!("no answer from {host} within {}s", timeout.as_secs())))
}

/// The addresses of `host`, or an error when the resolver does not answer
/// within `timeout`. getaddrinfo cannot be interrupted, so it runs on a
/// thread of its own that is left behind when it takes too long.
fn resolve(host: &str, port: u16, timeout: Duration) -> Result<Vec<std::net::SocketAddr>> {
    let (tx, rx) = std::sync::mpsc::channel();
    let name = host.to_string();
    std::thread::Builder::new()
        .name("resolve".into())
        .spawn(move || {
            let _ = tx.send((name.as_str(), port).to_socket_addrs().map(Vec::from_iter));
        })
        .context("cannot start the resolver thread")?;
    match rx.recv_timeout(timeout) {
        Ok(Ok(addrs)) if addrs.is_empty() => bail!("{host} has no address"),
        Ok(Ok(addrs)) => Ok(addrs),
        Ok(Err(e)) => Err(e).with_context(|| format!("cannot resolve {host}")),
        Err(_) => bail!(
            "cannot resolve {host}: no answer from the resolver within {}s",
            timeout.as_secs()
        ),
    }
}

/// Ask the server first for the key types on file for it, as OpenSSH does,
/// so a host known by its RSA key is not refused for offering ed25519.
fn prefer_known_key_types(
    session: &Session,
    settings: &Settings,
    host: &str,
    port: u16,
) -> Result<()> {
    let known = settings
        .known_hosts
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let types = known.key_types(host, port);
    drop(known);
    if types.is_empty() {
        return Ok(());
    }
    let supported = session
        .supported_algs(MethodType::HostKey)
        .map_err(|e| anyhow!("libssh2 lists no host key methods: {e}"))?;
    let mut order: Vec<&str> = Vec::new();
    for t in &types {
        let methods: Vec<&str> = if t == "ssh-rsa" {
            vec!["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"]
        } else {
            vec![t.as_str()]
        };
        for m in methods {
            if let Some(s) = supported.iter().find(|s| **s == m) {
                if !order.contains(s) {
                    order.push(s);
                }
            }
        }
    }
    for s in &supported {
        if !order.contains(s) {
            order.push(s);
        }
    }
    session
        .method_pref(MethodType::HostKey, &order.join(","))
        .map_err(|e| anyhow!("cannot set host key preferences: {e}"))
}

fn check_host_key(
    session: &Session,
    settings: &Settings,
    host: &str,
    port: u16,
    label: &str,
) -> Result<()> {
    let (key, _) = session
        .host_key()
        .ok_or_else(|| anyhow!("the server showed no host key"))?;
    let offered = format!(
        "{} {}",
        key_type(key).unwrap_or_else(|| "key".to_string()),
        fingerprint(key)
    );
    let name = lookup_name(host, port);
    let mut known = settings
        .known_hosts
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    match known.check(host, port, key) {
        Verdict::Known => Ok(()),
        Verdict::Unknown if settings.accept_new => {
            known
                .record(host, port, key)
                .context("cannot record its host key")?;
            (settings.notice)(&format!("{label}: recorded new host key {offered} as {name}"));
            Ok(())
        }
        Verdict::Unknown => bail!(
            "host key {offered} is not in known_hosts under {name} ({}); \
             refusing to connect. Check the fingerprint, then run once with --accept-new to record it",
            settings.known_hosts_files()
        ),
        Verdict::Changed(others) => bail!(
            "HOST KEY CHANGED for {name}: it offers {offered}, but known_hosts has {}; \
             refusing to connect (nothing was run). If the change is expected, remove the old key \
             (ssh-keygen -R '{name}') and check the new one",
            others
                .iter()
                .map(|(fp, origin)| format!("{fp} ({origin})"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Verdict::Revoked(origin) => bail!(
            "host key {offered} is marked @revoked ({origin}); refusing to connect"
        ),
    }
}

/// The host fell silent for too long; the session is of no more use.
struct Lost(io::Error);

/// Open a channel, start `command` with the login shell, feed it `stdin`,
/// collect its output and its exit status, all over a non-blocking session.
fn run_command(
    session: &Session,
    watch: &mut Watch,
    command: &str,
    stdin: &[u8],
) -> Result<Result<Finished>, Lost> {
    let mut channel = match watch
        .until_done(|| session.channel_session())
        .map_err(Lost)?
    {
        Ok(channel) => channel,
        Err(e) => return Ok(Err(anyhow!("cannot open a channel: {}", e.message()))),
    };
    if let Err(e) = watch.until_done(|| channel.exec(command)).map_err(Lost)? {
        return Ok(Err(anyhow!("cannot start a command: {}", e.message())));
    }
    let (stdout, stderr) = match pump(watch, &mut channel, stdin) {
        Ok(output) => output,
        Err(e) if e.kind() == io::ErrorKind::TimedOut => return Err(Lost(e)),
        Err(e) => {
            return Ok(Err(
                anyhow!(e).context("lost the connection while the command ran")
            ))
        }
    };
    if let Err(e) = watch.until_done(|| channel.wait_close()).map_err(Lost)? {
        return Ok(Err(anyhow!("the command did not finish: {}", e.message())));
    }
    let status = match channel.exit_signal() {
        Ok(signal) if signal.exit_signal.is_some() => {
            let name = signal.exit_signal.unwrap_or_default();
            return Ok(Err(anyhow!("the command was killed by signal {name}")));
        }
        _ => channel.exit_status().unwrap_or(-1),
    };
    Ok(Ok(Finished {
        status,
        stdout,
        stderr,
    }))
}

/// Serve the command's stdin, stdout and stderr in one loop (so a command
/// that writes much to stderr while we feed it cannot deadlock) until its
/// output ends.
///
/// A command may run long and say nothing (pip building, a migration), so
/// its end has no deadline; the host's liveness has one (the watch's).
fn pump(
    watch: &mut Watch,
    channel: &mut ssh2::Channel,
    stdin: &[u8],
) -> io::Result<(Vec<u8>, Vec<u8>)> {
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    let mut written = 0;
    let mut eof_sent = false;
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        watch.look();
        let mut progress = false;
        if written < stdin.len() {
            match channel.write(&stdin[written..]) {
                Ok(n) => {
                    written += n;
                    progress |= n > 0;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // The command may exit without reading all its input.
                Err(_) => written = stdin.len(),
            }
        }
        if written == stdin.len() && !eof_sent {
            match channel.send_eof() {
                Ok(()) => eof_sent = true,
                Err(e) if e.code() == ssh2::ErrorCode::Session(EAGAIN) => {}
                Err(_) => eof_sent = true,
            }
        }
        for (stream, out) in [(0, &mut stdout), (1, &mut stderr)] {
            let mut reader = channel.stream(stream);
            loop {
                match reader.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        out.extend_from_slice(&buf[..n]);
                        progress = true;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => return Err(e),
                }
            }
        }
        if channel.eof() {
            return Ok((stdout, stderr));
        }
        if progress {
            watch.heard();
        } else if channel.read_window().available == 0 {
            // Reading one stream may have queued the other's data: wait
            // only when libssh2 holds nothing for either.
            watch.wait()?;
        }
    }
}
