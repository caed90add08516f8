//! A real OpenSSH server on loopback, for the remote tools' tests.
//!
//! `Sshd::start(n)` runs `/usr/sbin/sshd -D` as the current user with a
//! throwaway host key, listening on one free port of `n` loopback addresses
//! (127.0.0.2, 127.0.0.3, …): `n` hosts as far as vd can tell. It makes a
//! user key it authorizes, and a HOME for the tools holding that key as
//! `~/.ssh/id_ed25519` and a known_hosts file naming every host, so the tools
//! never read or write the real `~/.ssh`. The server stops on drop.
//!
//! [`Sshd::start_with`] takes [`Options`]: no SFTP subsystem, extra
//! sshd_config lines (`PermitOpen`), other addresses, and a network
//! namespace ([`super::netns`]) to run in, for hosts reachable only through
//! a bastion.

use super::netns::Netns;
use super::{tool, Run};
use serde_json::{json, Map, Value};
use std::collections::BTreeSet;
use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const INSTALL: &str = "the remote tools' tests need OpenSSH's sshd and ssh-keygen: \
                       apt-get install openssh-server";

pub struct Sshd {
    dir: tempfile::TempDir,
    child: Child,
    pub port: u16,
    hosts: Vec<String>,
}

/// The user the tests run as, who logs in to the test server.
pub fn current_user() -> String {
    let out = Command::new("id")
        .arg("-un")
        .output()
        .expect("cannot run id");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

pub fn is_root() -> bool {
    let out = Command::new("id")
        .arg("-u")
        .output()
        .expect("cannot run id");
    String::from_utf8_lossy(&out.stdout).trim() == "0"
}

/// The second user of the sudo tests (`venv_user`, `migrate_user`), made
/// with useradd when missing; the tests that use it need root.
pub fn second_user() -> &'static str {
    assert!(
        is_root(),
        "this test makes a user with useradd and needs root (CI runs the suite as root)"
    );
    let user = "vdtestvenv";
    let exists = Command::new("id").arg(user).output().unwrap();
    if !exists.status.success() {
        let made = Command::new("useradd")
            .args(["--system", "--no-create-home", "--shell", "/bin/sh", user])
            .status()
            .expect("cannot run useradd");
        // Another test may have made it meanwhile.
        let exists = Command::new("id").arg(user).output().unwrap();
        assert!(
            made.success() || exists.status.success(),
            "useradd {user} failed"
        );
    }
    user
}

/// Make an ed25519 key pair at `path` (and `path.pub`).
pub fn keygen(path: &Path, passphrase: &str) {
    let status = Command::new("ssh-keygen")
        .args([
            "-q", "-t", "ed25519", "-N", passphrase, "-C", "vd-test", "-f",
        ])
        .arg(path)
        .stdin(Stdio::null())
        .status()
        .unwrap_or_else(|e| panic!("cannot run ssh-keygen ({e}); {INSTALL}"));
    assert!(status.success(), "ssh-keygen failed");
}

/// A port nothing listens on right now, and one this test process has not
/// handed out before: tests run in parallel, and a port the kernel gives
/// back for 127.0.0.1 may already be another test's sshd on 127.0.0.2.
pub fn free_port() -> u16 {
    static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if handed_out.insert(port) {
            return port;
        }
    }
}

/// How [`Sshd::start_with`] differs from a plain server.
#[derive(Default)]
pub struct Options<'a> {
    /// Listen on these addresses instead of 127.0.0.2, 127.0.0.3, ….
    pub addresses: Vec<String>,
    /// No `Subsystem sftp` line: a hardened server without SFTP.
    pub no_sftp: bool,
    /// More sshd_config lines.
    pub config: String,
    /// Run inside this network namespace.
    pub netns: Option<&'a Netns>,
}

impl Sshd {
    pub fn start(hosts: usize) -> Sshd {
        Sshd::start_with(hosts, Options::default())
    }

    pub fn start_with(hosts: usize, options: Options) -> Sshd {
        assert!(
            Path::new("/usr/sbin/sshd").exists(),
            "/usr/sbin/sshd is missing; {INSTALL}"
        );
        if is_root() {
            // sshd's privilege separation directory, absent in fresh containers.
            let _ = fs::create_dir_all("/run/sshd");
        }
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        keygen(&d.join("host_key"), "");
        keygen(&d.join("user_key"), "");
        fs::copy(d.join("user_key.pub"), d.join("authorized_keys")).unwrap();
        let hosts: Vec<String> = if options.addresses.is_empty() {
            (0..hosts).map(|i| format!("127.0.0.{}", i + 2)).collect()
        } else {
            options.addresses.clone()
        };
        // Another process (a second test run, a benchmark) may take the
        // port between free_port() and sshd's bind: then try another.
        let mut attempts = 0;
        let (child, port) = loop {
            let port = free_port();
            match listen(d, &hosts, port, &options) {
                Ok(child) => break (child, port),
                Err(log) if attempts < 5 && log.contains("Address already in use") => attempts += 1,
                Err(log) => panic!("sshd exited:\n{log}"),
            }
        };
        let sshd = Sshd {
            dir,
            child,
            port,
            hosts,
        };
        let home = sshd.home();
        fs::create_dir_all(home.join(".ssh")).unwrap();
        fs::copy(sshd.user_key(), home.join(".ssh/id_ed25519")).unwrap();
        fs::write(home.join(".ssh/known_hosts"), sshd.known_hosts()).unwrap();
        sshd
    }

    /// The i-th host's address.
    pub fn host(&self, i: usize) -> &str {
        &self.hosts[i]
    }

    /// The HOME the tools run with: the user key as ~/.ssh/id_ed25519, and
    /// ~/.ssh/known_hosts with every host's key.
    pub fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    /// Let the holder of `public_key` log in too.
    pub fn authorize(&self, public_key: &Path) {
        let key = fs::read_to_string(public_key).unwrap();
        let mut keys = fs::read_to_string(self.dir.path().join("authorized_keys")).unwrap();
        keys.push_str(&key);
        fs::write(self.dir.path().join("authorized_keys"), keys).unwrap();
    }

    /// A private key the server accepts.
    pub fn user_key(&self) -> PathBuf {
        self.dir.path().join("user_key")
    }

    /// The server's host public key, as `type base64`.
    pub fn host_key(&self) -> String {
        let text = fs::read_to_string(self.dir.path().join("host_key.pub")).unwrap();
        let mut words = text.split_whitespace();
        format!("{} {}", words.next().unwrap(), words.next().unwrap())
    }

    /// The host key's SHA256 fingerprint, as ssh-keygen shows it.
    pub fn host_fingerprint(&self) -> String {
        fingerprint(&self.dir.path().join("host_key.pub"))
    }

    /// known_hosts lines for every host (`[addr]:port type key`).
    pub fn known_hosts(&self) -> String {
        self.hosts
            .iter()
            .map(|h| format!("[{h}]:{} {}\n", self.port, self.host_key()))
            .collect()
    }

    /// A target record for `venv` on host `i`.
    pub fn target(&self, i: usize, venv: &Path) -> Map<String, Value> {
        json!({
            "host": self.host(i),
            "port": self.port,
            "user": current_user(),
            "venv": venv.display().to_string(),
        })
        .as_object()
        .unwrap()
        .clone()
    }

    /// `sh -c script` (a pipeline of the tools, see
    /// [`super::pipeline`]) with this server's HOME and no ssh-agent.
    pub fn shell(&self, script: &str) -> Run {
        super::command("sh")
            .args(["-c", script])
            .env("HOME", self.home())
            .env_remove("SSH_AUTH_SOCK")
    }

    /// A HOME made under `dir` whose known_hosts knows this server and
    /// whose only key for it is `~/keys/deploy`: not a default name, so
    /// found only where a config or a record names it.
    pub fn home_with_deploy_key(&self, dir: &Path) -> PathBuf {
        let home = dir.join("home");
        fs::create_dir_all(home.join(".ssh")).unwrap();
        fs::create_dir_all(home.join("keys")).unwrap();
        fs::copy(self.user_key(), home.join("keys/deploy")).unwrap();
        fs::write(home.join(".ssh/known_hosts"), self.known_hosts()).unwrap();
        home
    }

    /// A run of `name` with this server's HOME and no ssh-agent.
    pub fn tool(&self, name: &str) -> Run {
        self.tool_with_home(name, &self.home())
    }

    pub fn tool_with_home(&self, name: &str, home: &Path) -> Run {
        tool(name).env("HOME", home).env_remove("SSH_AUTH_SOCK")
    }

    /// The server's process id (its sessions are its children).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What sshd logged so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }

    /// How many logins the server accepted so far.
    pub fn logins(&self) -> usize {
        self.log().matches("Accepted publickey").count()
    }
}

/// Start sshd in `dir` on `port` of every host and wait until it says it
/// listens on each. Its own log is asked, never a connection: a connect
/// could reach another test's server on the same address and port. Err
/// holds the log of a server that exited.
fn listen(dir: &Path, hosts: &[String], port: u16, options: &Options) -> Result<Child, String> {
    let mut config = String::new();
    for host in hosts {
        config.push_str(&format!("ListenAddress {host}:{port}\n"));
    }
    config.push_str(&format!(
        "HostKey {hk}\nAuthorizedKeysFile {ak}\nPidFile none\nStrictModes no\nUsePAM no\n\
         PermitRootLogin prohibit-password\nPasswordAuthentication no\n\
         KbdInteractiveAuthentication no\nPubkeyAuthentication yes\nMaxStartups 100\n\
         MaxSessions 100\nLogLevel INFO\n",
        hk = dir.join("host_key").display(),
        ak = dir.join("authorized_keys").display(),
    ));
    // The sessions log in as the user running the tests, whose bash
    // sources ~/.bashrc for every SSH command (Debian builds bash so);
    // a developer's .bashrc (pyenv's `init` rehashes its shims on every
    // start, and says so on stderr when two race) must not reach what
    // the tools print. bash reads it only when it thinks it is the top
    // shell: SHLVL=1 from sshd makes the login shell level 2. The test
    // hosts are thus accounts whose shell does no work, as the
    // benchmarks' are.
    config.push_str("SetEnv SHLVL=1\n");
    if !options.no_sftp {
        config.push_str("Subsystem sftp internal-sftp\n");
    }
    config.push_str(&options.config);
    fs::write(dir.join("sshd_config"), config).unwrap();
    let log_path = dir.join("sshd.log");
    let log = fs::File::create(&log_path).unwrap();
    let sshd = Path::new("/usr/sbin/sshd");
    let mut command = match options.netns {
        Some(netns) => netns.command(sshd),
        None => Command::new(sshd),
    };
    let mut child = command
        .args(["-D", "-e", "-f"])
        .arg(dir.join("sshd_config"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start sshd ({e}); {INSTALL}"));
    let deadline = Instant::now() + Duration::from_secs(15);
    let listening = |host: &str| {
        fs::read_to_string(&log_path)
            .unwrap_or_default()
            .contains(&format!("Server listening on {host} port {port}"))
    };
    for host in hosts {
        while !listening(host) {
            if child.try_wait().unwrap().is_some() {
                return Err(fs::read_to_string(&log_path).unwrap_or_default());
            }
            assert!(
                Instant::now() < deadline,
                "sshd did not listen on {host}:{port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    Ok(child)
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `SHA256:…` of a public key file, by ssh-keygen.
pub fn fingerprint(public_key: &Path) -> String {
    let out = Command::new("ssh-keygen")
        .arg("-lf")
        .arg(public_key)
        .output()
        .unwrap_or_else(|e| panic!("cannot run ssh-keygen ({e}); {INSTALL}"));
    let text = String::from_utf8(out.stdout).unwrap();
    text.split_whitespace()
        .find(|w| w.starts_with("SHA256:"))
        .unwrap_or_else(|| panic!("no fingerprint in {text:?}"))
        .to_string()
}
