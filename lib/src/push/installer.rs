//! Which program installs a push's wheels: uv where it can run, the venv's
//! own pip elsewhere.
//!
//! A release to many venvs costs little more than the installer's start-up
//! once per venv, and uv starts in a fraction of pip's time. So a target's
//! `installer` (or vd-push's `--installer`) `auto` takes uv wherever it can
//! run: a CPython 3.8 or newer (the interpreters uv installs into), on a
//! platform the repository has a uv wheel for (by the interpreter's tags,
//! as for any wheel), and a uv that starts on the host. Anything else is
//! pip's: Python 2.7, 3.6 and 3.7, other platforms, and `installer=pip`.
//! `installer=uv` where uv cannot run is an error for that target naming
//! why, never a quiet pip. A uv that cannot start on a host (a cache on a
//! noexec mount, a glibc older than it needs) sends that host's `auto`
//! targets to pip, with one warning per host naming why.
//!
//! The uv wheel travels as any wheel does ([`crate::cache`]); what the host
//! does with it is [`crate::remote::cache`]'s.

use super::Pusher;
use crate::cache::{Wheel, WheelCache};
use crate::messages;
use crate::record::{Installer, Markers, Python, Record, Target};
use crate::remote::cache::ReadyUv;
use crate::repo::{uv_wheel_for, UV};
use crate::tags::{Interpreter, Tags};
use crate::transport::Connection;
use crate::wheel::WheelName;
use anyhow::{anyhow, bail, Result};

/// The installer a target's push is to run, decided offline.
pub enum Choice {
    Pip,
    /// uv, from this wheel of the repository (for the host's platform).
    Uv(Wheel),
}

/// The installer that runs, once the host was asked.
#[derive(Debug, Clone, Default)]
pub struct Ready {
    /// uv's binary on the host; `None`: pip.
    pub uv: Option<ReadyUv>,
}

impl Ready {
    /// Its name, as the record and the release log say it.
    pub fn name(&self) -> &'static str {
        match self.uv {
            Some(_) => UV,
            None => "pip",
        }
    }

    /// What a dry run supposes runs for `choice`: uv from where the host's
    /// cache would unpack it (nothing on the host is asked).
    pub fn supposed(cache: &WheelCache, choice: &Choice) -> Ready {
        let Choice::Uv(wheel) = choice else {
            return Ready::default();
        };
        let held = cache.path_of(wheel);
        let dir = held.rsplit_once('/').map_or("", |(dir, _)| dir);
        Ready {
            uv: Some(ReadyUv {
                path: format!("{dir}/uv"),
                version: String::new(),
            }),
        }
    }

    /// The uv binary's path on the host, for the scripts.
    pub fn binary(&self) -> Option<&str> {
        self.uv.as_ref().map(|uv| uv.path.as_str())
    }
}

impl Pusher {
    /// What `target` asks for: vd-push's `--installer` over its own
    /// `installer`.
    fn asked(&self, target: &Target) -> Installer {
        self.options.installer.unwrap_or(target.installer)
    }

    /// The installer `target`'s push is to run, as it asks and as its
    /// interpreter and the repository allow; an error naming why for a
    /// target that asks for uv where uv cannot run.
    pub(super) fn choose_installer(&self, target: &Target, record: &Record) -> Result<Choice> {
        let asked = self.asked(target);
        if asked == Installer::Pip {
            return Ok(Choice::Pip);
        }
        let wheels = self
            .uv_wheels
            .get_or_init(|| self.repo.uv_wheels().map_err(|e| format!("{e:#}")));
        let wheels = wheels.as_ref().map_err(|e| anyhow!("{e}"))?;
        match uv_wheel(target, record, wheels) {
            Ok(wheel) => Ok(Choice::Uv(self.file(&wheel.file, None)?)),
            Err(why) if asked == Installer::Uv => bail!("installer uv: {why}"),
            Err(_) => Ok(Choice::Pip),
        }
    }

    /// The installer that runs for `choice` on the host of `cache`: uv made
    /// ready there (its wheel must be held), or pip where it cannot run; the
    /// first time a host's uv fails, a warning names why. An error for a
    /// target that asks for uv where it cannot run.
    pub(super) fn ready_installer(
        &self,
        connection: &mut Connection,
        cache: &mut WheelCache,
        target: &Target,
        choice: &Choice,
    ) -> Result<Ready> {
        let Choice::Uv(wheel) = choice else {
            return Ok(Ready::default());
        };
        let python = match &target.python {
            Some(Python::Facts(facts)) => facts.executable.as_deref(),
            _ => None,
        };
        let on_host = cache.uv(connection, wheel, python.unwrap_or("python3"))?;
        match on_host.ready {
            Ok(uv) => Ok(Ready { uv: Some(uv) }),
            Err(why) if self.asked(target) == Installer::Uv => {
                bail!("installer uv: uv cannot run on {}: {why}", target.host)
            }
            Err(why) => {
                if on_host.first {
                    let message = format!(
                        "{}: uv cannot run there, so pip installs: {why}",
                        target.host
                    );
                    messages::warn("vd-push", &message);
                }
                Ok(Ready::default())
            }
        }
    }
}

/// The repository's uv wheel for `target`, or why uv cannot install into
/// it.
fn uv_wheel<'w>(
    target: &Target,
    record: &Record,
    wheels: &'w [WheelName],
) -> Result<&'w WheelName, String> {
    let Some(Python::Facts(facts)) = &target.python else {
        return Err("the record has no interpreter facts (run vd-freeze first)".into());
    };
    let version = facts.version.as_deref().unwrap_or("unknown");
    let implementation = facts.implementation.as_deref().unwrap_or("unknown");
    if implementation != "cpython" {
        return Err(format!(
            "uv installs here only into CPython, and this is {implementation}"
        ));
    }
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    if (parts.next().unwrap_or(0), parts.next().unwrap_or(0)) < (3, 8) {
        return Err(format!(
            "Python {version} is older than uv installs into (3.8)"
        ));
    }
    if wheels.is_empty() {
        return Err("the repository holds no uv wheel (vd-fetch uv, then vd-add it)".into());
    }
    let system = crate::record::get::<Markers>(record)
        .ok()
        .flatten()
        .and_then(|m| m.0.get("platform_system")?.as_str().map(str::to_string))
        .unwrap_or_default();
    let interpreter = Interpreter::from_facts(facts, &system).map_err(|e| format!("{e:#}"))?;
    let tags = Tags::new(&interpreter);
    uv_wheel_for(wheels, &tags).ok_or_else(|| {
        let held: Vec<&str> = wheels.iter().map(|w| w.file.as_str()).collect();
        format!(
            "the repository has no uv wheel for {}: it holds {}",
            tags.describe(),
            held.join(", ")
        )
    })
}
