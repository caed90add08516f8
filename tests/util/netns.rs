//! A network namespace joined to this one by a veth pair: what is inside
//! listens on addresses of its own (its own loopback too), so a server there
//! on 127.0.0.x is out of the tests' reach, and one on [`Netns::inside`] is
//! reachable from here. A bastion in the namespace then reaches what the
//! client cannot. Needs root (CI runs the suite as root).

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub struct Netns {
    /// A process that holds the namespace open.
    holder: Child,
    link: String,
    /// This side's address on the veth pair.
    pub outside: String,
    /// The namespace's address on the veth pair.
    pub inside: String,
}

fn run(command: &mut Command) {
    let what = format!("{command:?} (apt-get install iproute2 util-linux)");
    super::stdout_of(command, &what);
}

impl Netns {
    pub fn new() -> Netns {
        assert!(
            super::sshd::is_root(),
            "this test makes a network namespace and needs root (CI runs the suite as root)"
        );
        static COUNT: AtomicU32 = AtomicU32::new(0);
        // A /30 and link names of their own, so parallel test runs never meet.
        let seed = std::process::id()
            .wrapping_mul(2654435761)
            .wrapping_add(COUNT.fetch_add(1, Ordering::SeqCst) * 7919)
            .wrapping_add(
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap()
                    .subsec_nanos(),
            );
        let id = seed % (1 << 20);
        let (a, b, c) = (100 + (id >> 14) % 64, (id >> 6) & 0xff, (id & 0x3f) * 4);
        let outside = format!("10.{a}.{b}.{}", c + 1);
        let inside = format!("10.{a}.{b}.{}", c + 2);
        let link = format!("vd{id:05x}");
        let holder = Command::new("unshare")
            .args(["--net", "sleep", "3600"])
            .stdin(Stdio::null())
            .spawn()
            .expect("cannot run unshare; apt-get install util-linux");
        let pid = holder.id().to_string();
        let own = std::fs::read_link("/proc/self/ns/net").unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::fs::read_link(format!("/proc/{pid}/ns/net"))
            .ok()
            .as_ref()
            == Some(&own)
        {
            assert!(Instant::now() < deadline, "unshare made no namespace");
            std::thread::sleep(Duration::from_millis(5));
        }
        let netns = Netns {
            holder,
            link: link.clone(),
            outside: outside.clone(),
            inside: inside.clone(),
        };
        let peer = format!("{link}i");
        run(Command::new("ip").args([
            "link", "add", &link, "type", "veth", "peer", "name", &peer, "netns", &pid,
        ]));
        run(Command::new("ip").args(["addr", "add", &format!("{outside}/30"), "dev", &link]));
        run(Command::new("ip").args(["link", "set", &link, "up"]));
        run(netns
            .command("ip")
            .args(["addr", "add", &format!("{inside}/30"), "dev", &peer]));
        run(netns.command("ip").args(["link", "set", &peer, "up"]));
        run(netns.command("ip").args(["link", "set", "lo", "up"]));
        netns
    }

    /// `program` to run inside the namespace.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new("nsenter");
        command
            .args(["-t", &self.holder.id().to_string(), "-n", "--"])
            .arg(program);
        command
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.link])
            .stderr(Stdio::null())
            .status();
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}
