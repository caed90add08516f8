//! A real gunicorn serving a tiny WSGI app from a target's venv, for the
//! tests of what a reload makes the service run.
//!
//! gunicorn's wheel (and its dependencies) is fetched once with the other
//! downloads of [`super::python`]; the app is a wheel of its own, `vdp-hello`
//! at 1.0 or 2.0, built by the tests, that answers every request with its
//! version and the pid of the worker that answered. Both go into the
//! repository and are pushed like any wheel. The server runs as a daemon
//! (a reload over SSH must outlive its session) with 2 workers, a pidfile
//! and a free loopback port; [`Gunicorn`] is the guard that stops every
//! process it left, masters old and new and their workers, even when the
//! test fails.

use super::python;
use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The gunicorn release the tests run (pinned: its signals are the subject).
const GUNICORN: &str = "gunicorn==23.0.0";

/// gunicorn's wheel and its dependencies' (fetched once).
pub fn gunicorn_wheels() -> Vec<PathBuf> {
    python::download(GUNICORN, &[])
}

/// The wheel of the WSGI app `vdp_hello:app` at `version`, built once.
pub fn hello_wheel(version: &str) -> PathBuf {
    let tree = super::cache_dir().join("hello-src").join(version);
    fs::create_dir_all(&tree).unwrap();
    fs::write(
        tree.join("pyproject.toml"),
        format!(
            "[build-system]\nrequires = [\"setuptools\"]\n\
             build-backend = \"setuptools.build_meta\"\n\n\
             [project]\nname = \"vdp-hello\"\nversion = {version:?}\n\n\
             [tool.setuptools]\npy-modules = [\"vdp_hello\"]\n"
        ),
    )
    .unwrap();
    fs::write(
        tree.join("vdp_hello.py"),
        format!(
            "import os\n\nVERSION = {version:?}\n\n\n\
             def app(environ, start_response):\n    \
             body = (\"%s %d\\n\" % (VERSION, os.getpid())).encode()\n    \
             start_response(\"200 OK\", [(\"Content-Type\", \"text/plain\"),\n                              \
             (\"Content-Length\", str(len(body)))])\n    \
             return [body]\n"
        ),
    )
    .unwrap();
    python::build_tree(&tree)
}

/// One gunicorn (and whatever masters its reloads start) serving
/// `vdp_hello:app` from a venv; stopped when dropped.
pub struct Gunicorn {
    pub port: u16,
    /// The master's pidfile; a new master (USR2) writes `PIDFILE.2` until
    /// the old one is gone.
    pub pidfile: PathBuf,
    log: PathBuf,
}

impl Gunicorn {
    /// Where a gunicorn for `venv` keeps its pidfile and log: under `dir`.
    pub fn new(dir: &Path) -> Gunicorn {
        Gunicorn {
            port: super::sshd::free_port(),
            pidfile: dir.join("gunicorn.pid"),
            log: dir.join("gunicorn.log"),
        }
    }

    /// The shell command that starts it from `venv`, as a daemon with 2
    /// workers. The interpreter is named through the venv's path and runs
    /// the venv's `gunicorn` script, so that a re-exec (USR2) starts again
    /// from whatever generation the path names then.
    pub fn start_command(&self, venv: &Path) -> String {
        let venv = venv.display();
        format!(
            "'{venv}/bin/python' '{venv}/bin/gunicorn' --daemon --workers 2 \
             --bind 127.0.0.1:{} --pid '{}' --error-logfile '{}' --graceful-timeout 5 \
             vdp_hello:app",
            self.port,
            self.pidfile.display(),
            self.log.display()
        )
    }

    /// Start it from `venv` and wait until it answers.
    pub fn start(&self, venv: &Path) {
        let status = Command::new("sh")
            .args(["-c", &self.start_command(venv)])
            .status()
            .unwrap();
        assert!(status.success(), "gunicorn did not start: {}", self.log());
        self.get();
    }

    /// `kill -HUP` of the master: gunicorn's documented graceful reload.
    pub fn hup_command(&self) -> String {
        format!("kill -HUP \"$(cat '{}')\"", self.pidfile.display())
    }

    /// vd(7)'s recipe for gunicorn: USR2 makes the master exec itself again
    /// (a new master, from the generation the venv's path names now, with
    /// new workers, on the same sockets); once the new master has written
    /// its pidfile, TERM stops the old master gracefully, and its workers
    /// finish their requests.
    pub fn upgrade_command(&self) -> String {
        let pid = self.pidfile.display();
        format!(
            "set -e; old=$(cat '{pid}'); kill -USR2 \"$old\"; i=0; \
             until [ -s '{pid}.2' ]; do i=$((i + 1)); [ $i -le 300 ]; sleep 0.1; done; \
             kill -TERM \"$old\""
        )
    }

    /// The master's pid, by its pidfile. After USR2 the new master takes
    /// the pidfile over only within a second of the old one's end: waited
    /// for.
    pub fn master(&self) -> u32 {
        let started = Instant::now();
        loop {
            match fs::read_to_string(&self.pidfile) {
                Ok(text) if !text.trim().is_empty() => return text.trim().parse().unwrap(),
                _ if started.elapsed() > Duration::from_secs(10) => {
                    panic!("no pidfile: {}", self.log())
                }
                _ => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// The pids of the master's workers: its children, by /proc.
    pub fn workers(&self) -> Vec<u32> {
        let master = self.master();
        processes()
            .into_iter()
            .filter(|&pid| crate::reload::parent_of(pid).is_some_and(|(p, _)| p == master))
            .collect()
    }

    /// A GET of `/` on loopback: the answering worker's `VERSION pid`,
    /// tried for up to 30 seconds while the server comes up.
    pub fn get(&self) -> String {
        let started = Instant::now();
        loop {
            match self.try_get() {
                Ok(body) => return body,
                Err(e) if started.elapsed() > Duration::from_secs(30) => {
                    panic!("gunicorn never answered: {e}; {}", self.log())
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    fn try_get(&self) -> std::io::Result<String> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        stream.write_all(b"GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        match response.split_once("\r\n\r\n") {
            Some((head, body)) if head.split(' ').nth(1) == Some("200") => {
                Ok(body.trim().to_string())
            }
            _ => Err(std::io::Error::other(format!("answered {response:?}"))),
        }
    }

    /// The version that answers now (of a few requests, that all agree).
    pub fn version(&self) -> String {
        let answers: Vec<String> = (0..4)
            .map(|_| self.get().split(' ').next().unwrap().to_string())
            .collect();
        assert!(answers.iter().all(|a| *a == answers[0]), "{answers:?}");
        answers[0].clone()
    }

    /// Every process that runs this server (its pidfile is in its command
    /// line: the masters and their workers alike).
    pub fn processes(&self) -> Vec<u32> {
        let mark = self.pidfile.display().to_string();
        processes()
            .into_iter()
            .filter(|pid| {
                fs::read(format!("/proc/{pid}/cmdline"))
                    .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&mark))
            })
            .collect()
    }

    /// Wait up to `within` for every process of this server in `pids` to
    /// end; the ones left.
    pub fn wait_gone(&self, pids: &[u32], within: Duration) -> Vec<u32> {
        let started = Instant::now();
        loop {
            let left: Vec<u32> = pids
                .iter()
                .copied()
                .filter(|pid| self.processes().contains(pid))
                .collect();
            if left.is_empty() || started.elapsed() > within {
                return left;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// What gunicorn logged.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Gunicorn {
    fn drop(&mut self) {
        // TERM first, for a graceful end; KILL whatever is left after that.
        for signal in ["-TERM", "-KILL"] {
            let pids = self.processes();
            if pids.is_empty() {
                return;
            }
            crate::reload::signal(signal, &pids);
            self.wait_gone(&pids, Duration::from_secs(10));
        }
    }
}

/// Every process id in /proc.
fn processes() -> Vec<u32> {
    fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}
