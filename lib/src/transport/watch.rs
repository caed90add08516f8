//! Waiting on a host while a command runs over a non-blocking libssh2
//! session: sleep until the socket is ready for what libssh2 is blocked on,
//! acknowledge at once what the host sent, send keepalives when due, and give
//! the host up when nothing at all has come from it for too long.
//!
//! Why not libssh2's own blocking waits: they leave acknowledging to the
//! kernel, which delays an ACK by up to 40 ms hoping to piggyback it on data.
//! sshd sends a command's small replies (the exec request's answer after a
//! window adjustment, the exit status and close after the last output) as
//! separate writes without TCP_NODELAY, so Nagle holds the second until the
//! first is acknowledged: two 40 ms stalls per command, most of a short
//! command's time on a fast network.

use rustix::event::{poll, PollFd, PollFlags, Timespec};
use socket2::Socket;
use ssh2::{BlockDirections, Session};
use std::io;
use std::mem::MaybeUninit;
use std::time::{Duration, Instant};

/// libssh2's "would block" in non-blocking mode.
pub(super) const EAGAIN: i32 = -37;

/// The longest single wait: a bound on any wake-up the socket alone would
/// not give (none is known; this only caps the cost of one).
const LONGEST_WAIT: Duration = Duration::from_millis(50);

/// One host's liveness while its session is non-blocking.
pub(super) struct Watch<'a> {
    session: &'a Session,
    socket: &'a Socket,
    /// How long the host may send nothing at all, keepalive replies
    /// included, before it is given up.
    silence: Duration,
    heard: Instant,
}

impl<'a> Watch<'a> {
    pub(super) fn new(session: &'a Session, socket: &'a Socket, silence: Duration) -> Self {
        Watch {
            session,
            socket,
            silence,
            heard: Instant::now(),
        }
    }

    /// Note whether the host sent anything. Look before libssh2 reads: what
    /// it reads for itself (keepalive replies, window adjustments) is gone
    /// from the socket after.
    pub(super) fn look(&mut self) {
        if has_arrived(self.socket) {
            self.heard();
        }
    }

    /// The host was heard from (its command's output came).
    pub(super) fn heard(&mut self) {
        self.heard = Instant::now();
    }

    /// Wait until the socket can take what libssh2 is blocked on (or a
    /// short while), first acknowledging what arrived and sending a
    /// keepalive when one is due. A `TimedOut` error when the host has been
    /// silent for longer than allowed. TCP alone would not notice: a host
    /// whose sshd hangs still has its kernel acknowledge every packet.
    pub(super) fn wait(&mut self) -> io::Result<()> {
        if self.heard.elapsed() > self.silence {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "the host stopped answering: nothing for {}s, not even a reply to keepalives",
                    self.silence.as_secs()
                ),
            ));
        }
        // libssh2 sends one only when an interval has passed.
        let _ = self.session.keepalive_send();
        acknowledge_now(self.socket);
        let mut fds = [PollFd::new(self.socket, blocked_on(self.session))];
        // EINTR or any other failure: the caller looks again.
        let _ = poll(&mut fds, Some(&timespec(LONGEST_WAIT)));
        Ok(())
    }

    /// Call a libssh2 operation until it stops saying "would block",
    /// waiting on the socket in between; the outer error when the host fell
    /// silent.
    pub(super) fn until_done<T>(
        &mut self,
        mut operation: impl FnMut() -> Result<T, ssh2::Error>,
    ) -> io::Result<Result<T, ssh2::Error>> {
        loop {
            self.look();
            match operation() {
                Err(e) if e.code() == ssh2::ErrorCode::Session(EAGAIN) => self.wait()?,
                done => return Ok(done),
            }
        }
    }
}

/// What to wait for on a non-blocking session's socket: to read, and to
/// write too when libssh2 has bytes it could not send.
pub(super) fn blocked_on(session: &Session) -> PollFlags {
    match session.block_directions() {
        BlockDirections::Outbound | BlockDirections::Both => PollFlags::IN | PollFlags::OUT,
        _ => PollFlags::IN,
    }
}

/// A wait for poll(2).
pub(super) fn timespec(d: Duration) -> Timespec {
    Timespec {
        tv_sec: d.as_secs() as _,
        tv_nsec: d.subsec_nanos() as _,
    }
}

/// Whether bytes from the host wait in the socket (or it was closed), without
/// taking them. libssh2 keeps the socket non-blocking, so this never waits.
fn has_arrived(socket: &Socket) -> bool {
    let mut byte = [MaybeUninit::<u8>::uninit(); 1];
    socket.peek(&mut byte).is_ok()
}

/// Send the ACK the kernel holds back now (TCP_QUICKACK, Linux). Through a
/// bastion or a proxy command the socket is one end of a socketpair, where
/// there is nothing to acknowledge and the call fails harmlessly.
pub(super) fn acknowledge_now(socket: &Socket) {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let _ = socket.set_quickack(true);
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let _ = socket;
}
