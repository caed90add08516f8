//! Bastions: hosts reached through another host's SSH session, as
//! OpenSSH's `ProxyJump` does.
//!
//! vd logs in to the bastion like any host (its key checked against
//! known_hosts, keys only), asks it for a `direct-tcpip` channel to the
//! target, and runs the target's own SSH session over that channel. libssh2
//! runs a session over a socket, so each channel is bridged to one end of a
//! socketpair by a relay thread that owns the bastion's session; the target's
//! session gets the other end. The target's host key is checked as if it were
//! reached directly: the bastion carries bytes, it is not trusted.
//!
//! One bastion session serves every target behind it in a run ([`Bastions`]
//! shares them); it ends when the last session through it ends. A chain
//! `a,b` is `b` reached through `a`: the same code, one level down.
//!
//! What is not here: which hosts need a bastion (the inventory's `jump`
//! column and `~/.ssh/config`, read by [`super::route`]).

use super::watch::{self, timespec, EAGAIN};
use super::{Destination, SshConnection};
use crate::hop::Hop;
use anyhow::{anyhow, bail, Context, Result};
use rustix::event::{poll, PollFd, PollFlags};
use ssh2::{Channel, Session};
use std::cell::RefCell;
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::sync::{mpsc, Arc, Mutex, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How many bastions deep a path may go before vd calls it a loop.
const MAX_DEPTH: usize = 8;

/// The bastion sessions of one run, shared by the targets behind them.
#[derive(Default)]
pub struct Bastions {
    slots: Mutex<HashMap<Destination, Arc<Mutex<Slot>>>>,
}

#[derive(Default)]
enum Slot {
    #[default]
    Closed,
    Open(Weak<Bastion>),
    /// It could not be opened: every target behind it gets the reason,
    /// without another try.
    Failed(String),
}

thread_local! {
    /// The bastions this thread is opening, outermost first: a bastion
    /// reached through itself is a loop, not a hang.
    static OPENING: RefCell<Vec<Destination>> = const { RefCell::new(Vec::new()) };
}

impl Bastions {
    /// The open session to `dest` (a bastion), opening it with `open` when
    /// no target uses it yet. Targets asking at once wait for one opening.
    pub fn get(
        &self,
        dest: &Destination,
        open: impl FnOnce() -> Result<SshConnection>,
        timeout: Duration,
    ) -> Result<Arc<Bastion>> {
        let label = dest_label(dest);
        let opening = OPENING.with(|o| o.borrow().clone());
        if opening.contains(dest) {
            bail!(
                "bastion {label} is reached through itself ({}); check ProxyJump in ~/.ssh/config",
                opening
                    .iter()
                    .map(dest_label)
                    .chain([label.clone()])
                    .collect::<Vec<_>>()
                    .join(" -> ")
            );
        }
        if opening.len() >= MAX_DEPTH {
            bail!("more than {MAX_DEPTH} bastions in a row to reach {label}");
        }
        let slot = self
            .slots
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(dest.clone())
            .or_default()
            .clone();
        let mut slot = slot.lock().unwrap_or_else(|e| e.into_inner());
        match &*slot {
            Slot::Open(weak) => {
                if let Some(bastion) = weak.upgrade() {
                    return Ok(bastion);
                }
            }
            Slot::Failed(message) => bail!("bastion {label}: {message}"),
            Slot::Closed => {}
        }
        OPENING.with(|o| o.borrow_mut().push(dest.clone()));
        let opened = open().and_then(|connection| Bastion::start(connection, &label, timeout));
        OPENING.with(|o| o.borrow_mut().pop());
        match opened {
            Ok(bastion) => {
                let bastion = Arc::new(bastion);
                *slot = Slot::Open(Arc::downgrade(&bastion));
                Ok(bastion)
            }
            Err(e) => {
                let message = format!("{e:#}");
                *slot = Slot::Failed(message.clone());
                bail!("bastion {label}: {message}")
            }
        }
    }
}

fn dest_label(dest: &Destination) -> String {
    Hop {
        user: dest.user.clone(),
        host: dest.host.clone(),
        port: dest.port,
    }
    .to_string()
}

/// A logged-in session to a bastion, and the thread relaying its channels.
pub struct Bastion {
    label: String,
    requests: Mutex<Option<mpsc::Sender<Request>>>,
    /// A byte written here wakes the relay for a new request.
    wake: UnixStream,
    relay: Option<JoinHandle<()>>,
    /// Closed (disconnected) once the relay has stopped.
    _connection: SshConnection,
}

/// A target's request for a channel to `host:port`.
struct Request {
    host: String,
    port: u16,
    reply: mpsc::Sender<Result<UnixStream>>,
}

impl Bastion {
    fn start(connection: SshConnection, label: &str, timeout: Duration) -> Result<Bastion> {
        let session = connection.session().clone();
        let socket = connection
            .socket()
            .try_clone()
            .context("cannot watch the bastion's socket")?;
        let (wake, woken) = UnixStream::pair().context("cannot make a socketpair")?;
        wake.set_nonblocking(true)?;
        woken.set_nonblocking(true)?;
        let (requests, incoming) = mpsc::channel();
        let relay = std::thread::Builder::new()
            .name(format!("bastion {label}"))
            .spawn(move || {
                Relay {
                    session,
                    socket,
                    woken,
                    incoming,
                    timeout,
                    tunnels: Vec::new(),
                    ended: false,
                }
                .run()
            })
            .context("cannot start the bastion's relay thread")?;
        Ok(Bastion {
            label: label.to_string(),
            requests: Mutex::new(Some(requests)),
            wake,
            relay: Some(relay),
            _connection: connection,
        })
    }

    /// A socket whose bytes go to `host:port` as seen from the bastion.
    pub fn tunnel(&self, host: &str, port: u16) -> Result<UnixStream> {
        let (reply, answer) = mpsc::channel();
        let sent = self
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|r| {
                r.send(Request {
                    host: host.to_string(),
                    port,
                    reply,
                })
            });
        if !matches!(sent, Some(Ok(()))) {
            bail!("the session to bastion {} has ended", self.label);
        }
        let _ = (&self.wake).write(&[1]);
        answer
            .recv()
            .map_err(|_| anyhow!("the session to bastion {} has ended", self.label))?
            .with_context(|| format!("bastion {}", self.label))
    }
}

impl Drop for Bastion {
    fn drop(&mut self) {
        // No more requests: the relay ends once its tunnels have closed
        // (they have: every session through it is gone), then the
        // connection disconnects.
        self.requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let _ = (&self.wake).write(&[1]);
        if let Some(relay) = self.relay.take() {
            let _ = relay.join();
        }
    }
}

/// The relay thread's state: the bastion's session in non-blocking mode,
/// and one tunnel per target session through it.
struct Relay {
    session: Session,
    socket: socket2::Socket,
    woken: UnixStream,
    incoming: mpsc::Receiver<Request>,
    timeout: Duration,
    tunnels: Vec<Tunnel>,
    /// The bastion closed its connection: no more tunnels, and its socket
    /// is no longer waited on (it would always be ready).
    ended: bool,
}

impl Relay {
    fn run(mut self) {
        self.session.set_blocking(false);
        let mut accepting = true;
        // Once no target can ask for more, the tunnels left get one timeout
        // to close: a bastion that stopped answering does not keep the tool.
        let mut closing: Option<Instant> = None;
        let mut last_keepalive = Instant::now();
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            let mut drained = [0u8; 64];
            while matches!((&self.woken).read(&mut drained), Ok(n) if n > 0) {}
            loop {
                match self.incoming.try_recv() {
                    Ok(request) => {
                        let opened = self.open(&request.host, request.port);
                        let _ = request.reply.send(opened);
                    }
                    Err(mpsc::TryRecvError::Empty) => break,
                    Err(mpsc::TryRecvError::Disconnected) => {
                        accepting = false;
                        break;
                    }
                }
            }
            let mut progress = false;
            for tunnel in &mut self.tunnels {
                progress |= tunnel.step(&mut buf);
            }
            if self.ended && !progress {
                for tunnel in &mut self.tunnels {
                    tunnel.end();
                }
            }
            self.tunnels.retain_mut(|t| {
                if t.done() {
                    let _ = t.channel.close();
                }
                !t.done()
            });
            if !accepting {
                let since = *closing.get_or_insert_with(Instant::now);
                if self.tunnels.is_empty() || since.elapsed() >= self.timeout {
                    break;
                }
            }
            if !self.ended && last_keepalive.elapsed() >= self.timeout {
                let _ = self.session.keepalive_send();
                last_keepalive = Instant::now();
            }
            if !progress {
                self.wait();
            }
        }
        self.session.set_blocking(true);
    }

    /// Open a `direct-tcpip` channel, giving up after the timeout.
    fn open(&mut self, host: &str, port: u16) -> Result<UnixStream> {
        if self.ended {
            bail!("the bastion closed the connection");
        }
        let deadline = Instant::now() + self.timeout;
        let channel = loop {
            match self.session.channel_direct_tcpip(host, port, None) {
                Ok(channel) => break channel,
                Err(e) if e.code() == ssh2::ErrorCode::Session(EAGAIN) => {
                    if Instant::now() >= deadline {
                        bail!(
                            "no channel to {host}:{port} within {}s",
                            self.timeout.as_secs()
                        );
                    }
                    self.wait_session();
                }
                Err(e) => bail!("cannot open a channel to {host}:{port}: {}", e.message()),
            }
        };
        let (ours, theirs) = UnixStream::pair().context("cannot make a socketpair")?;
        ours.set_nonblocking(true)?;
        self.tunnels.push(Tunnel {
            channel,
            socket: ours,
            to_channel: Vec::new(),
            to_socket: Vec::new(),
            socket_eof: false,
            eof_sent: false,
            channel_eof: false,
            socket_shut: false,
        });
        Ok(theirs)
    }

    fn wait_session(&self) {
        watch::acknowledge_now(&self.socket);
        let mut fds = [PollFd::new(&self.socket, watch::blocked_on(&self.session))];
        let _ = poll(&mut fds, Some(&timespec(Duration::from_millis(20))));
    }

    /// Sleep until the bastion, a target's socket or a request has
    /// something (at most 50ms: libssh2 may hold data it has already read).
    fn wait(&mut self) {
        let session = if self.ended {
            PollFlags::empty()
        } else {
            // What the targets' sessions sent through it, acknowledged at
            // once (see watch.rs).
            watch::acknowledge_now(&self.socket);
            watch::blocked_on(&self.session) | PollFlags::RDHUP
        };
        let mut fds = vec![
            PollFd::new(&self.socket, session),
            PollFd::new(&self.woken, PollFlags::IN),
        ];
        for t in &self.tunnels {
            let mut flags = PollFlags::empty();
            if t.to_channel.is_empty() && !t.socket_eof {
                flags |= PollFlags::IN;
            }
            if !t.to_socket.is_empty() {
                flags |= PollFlags::OUT;
            }
            fds.push(PollFd::new(&t.socket, flags));
        }
        let _ = poll(&mut fds, Some(&timespec(Duration::from_millis(50))));
        let gone = PollFlags::RDHUP | PollFlags::HUP | PollFlags::ERR;
        if !self.ended && fds[0].revents().intersects(gone) {
            // Nothing more will come: what libssh2 holds is read, then
            // every tunnel ends.
            self.ended = true;
        }
    }
}

/// One channel through the bastion and the socket of the session using it.
struct Tunnel {
    channel: Channel,
    socket: UnixStream,
    /// Read from the socket, not yet taken by the channel.
    to_channel: Vec<u8>,
    /// Read from the channel, not yet taken by the socket.
    to_socket: Vec<u8>,
    socket_eof: bool,
    eof_sent: bool,
    channel_eof: bool,
    socket_shut: bool,
}

impl Tunnel {
    /// Move what can be moved each way without blocking; whether anything
    /// moved. An error on either side ends the tunnel both ways: the
    /// session over it then sees its connection close.
    fn step(&mut self, buf: &mut [u8]) -> bool {
        match self.try_step(buf) {
            Ok(progress) => progress,
            Err(_) => {
                self.end();
                true
            }
        }
    }

    /// Close both ways now.
    fn end(&mut self) {
        self.socket_eof = true;
        self.eof_sent = true;
        self.channel_eof = true;
        self.to_socket.clear();
        self.to_channel.clear();
        let _ = self.socket.shutdown(Shutdown::Both);
        self.socket_shut = true;
    }

    fn try_step(&mut self, buf: &mut [u8]) -> io::Result<bool> {
        let mut progress = false;
        if self.to_channel.is_empty() && !self.socket_eof {
            match self.socket.read(buf) {
                Ok(0) => {
                    self.socket_eof = true;
                    progress = true;
                }
                Ok(n) => {
                    self.to_channel.extend_from_slice(&buf[..n]);
                    progress = true;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        if !self.to_channel.is_empty() {
            progress |= write_pending(&mut self.channel, &mut self.to_channel)?;
        }
        if self.socket_eof && self.to_channel.is_empty() && !self.eof_sent {
            match self.channel.send_eof() {
                Ok(()) => {
                    self.eof_sent = true;
                    progress = true;
                }
                Err(e) if e.code() == ssh2::ErrorCode::Session(EAGAIN) => {}
                Err(e) => return Err(e.into()),
            }
        }
        if self.to_socket.is_empty() && !self.channel_eof {
            match self.channel.read(buf) {
                Ok(0) if self.channel.eof() => {
                    self.channel_eof = true;
                    progress = true;
                }
                Ok(0) => {}
                Ok(n) => {
                    self.to_socket.extend_from_slice(&buf[..n]);
                    progress = true;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if self.channel.eof() {
                        self.channel_eof = true;
                        progress = true;
                    }
                }
                Err(e) => return Err(e),
            }
        }
        if !self.to_socket.is_empty() {
            progress |= write_pending(&mut self.socket, &mut self.to_socket)?;
        }
        if self.channel_eof && self.to_socket.is_empty() && !self.socket_shut {
            let _ = self.socket.shutdown(Shutdown::Write);
            self.socket_shut = true;
            progress = true;
        }
        Ok(progress)
    }

    fn done(&self) -> bool {
        self.eof_sent && self.socket_shut
    }
}

/// Write what `pending` holds to `to`, as much as it takes without blocking,
/// and drop that from `pending`; whether any byte went.
fn write_pending(to: &mut impl Write, pending: &mut Vec<u8>) -> io::Result<bool> {
    match to.write(pending) {
        Ok(n) => {
            pending.drain(..n);
            Ok(n > 0)
        }
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
        Err(e) => Err(e),
    }
}
