//! `vd-push`: put each target's planned wheels into its virtualenv.

use crate::cli::{RepoArgs, TransportArgs};
use crate::confirm::{self, Answer, Terminal};
use crate::log::{EventWriter, ReleaseLog};
use crate::output::{status_cell, Output, Status, Table};
use crate::push::{Mode, Pusher};
use crate::record::{
    self, target_label, Changed, Generation, Installer, Line, Pushed, Reader, Record, Skipped,
};
use crate::repo::Repo;
use crate::summary;
use anyhow::Result;
use std::io;

const TOOL: &str = "vd-push";

/// Install each target's planned wheels into its virtualenv.
///
/// Reads records with a `plan` (from vd-diff) on stdin and makes each venv
/// what its plan says. Records with an `error` pass through untouched;
/// records with an empty plan pass with `changed: false` and cost no remote
/// work, not even a connection (unless an earlier push to the target was
/// killed before logging: see below). A plan is checked before anything is done
/// for its target: one that removes pip, setuptools or wheel (which every
/// later push needs) is refused with an error naming the package.
///
/// Upload: the planned wheels go to a cache on each host, the target's
/// `cache` (an absolute path, or one under ~/ for the login user's home;
/// default ~/.cache/vd/wheels; one holding a newline or other control
/// character, or `;`, is an error naming the field and line), at
/// CACHE/SHA256/FILE. One command lists the
/// cache the first time a host's target needs it; only wheels it lacks are
/// sent, by SFTP (or, on a host without SFTP, as the stdin of `cat`, with a
/// warning), to a temporary name, checked by sha256 on the host and
/// then renamed into place, so a transfer cut off half way leaves nothing a
/// later push would use. A wheel crosses the network once per host however
/// many of its venvs need it. Before sending, each wheel file in the
/// repository must have the sha256 the plan names. A cached wheel is
/// hashed on the host again before pip uses it (once per run, and once more
/// under the venv's lock): one whose bytes changed since it was sent is
/// deleted and sent again, never installed. Cache directories are
/// made with mode 0755 and files 0644; with `venv_user`, that user must be
/// able to reach the cache (every directory above it searchable: a login
/// user's home often is not, so set `cache` to e.g. /var/cache/vd/wheels).
///
/// Drift: a plan stamped by vd-diff with `planned_from` (the fingerprint of
/// the state it was made from) is checked on the host, under the venv's lock
/// and before pip runs. A venv in neither that state nor the state the plan
/// makes is an error naming what changed since the plan was made (`django
/// 5.2.1 → 5.2.3`), and nothing is installed or removed. A `planned_from`
/// that is not such a fingerprint is an error naming the field.
///
/// Install: as `venv_user` where set (sudo -n -u), under an exclusive flock
/// on VENV/.vd-lock (so two pushes never run pip on one venv at once; a push
/// waits up to 15 minutes for another), one `VENV/bin/python -m pip
/// uninstall -y` for the packages to remove, then one `VENV/bin/python -m
/// pip install --no-index --no-deps` with every planned wheel file
/// (upgrades and downgrades alike), with pip's --isolated. Still under the
/// lock, the venv is frozen again: the record's `installed` (and `python`,
/// `markers`) become that freeze, and a venv that is not what the plan
/// makes it is an error naming each difference. A pip failure is an error
/// carrying the end of pip's output.
///
/// Installer: uv where it can run, pip elsewhere. With uv's wheel for the
/// host's platform in the repository (vd-add it like any wheel; `vd-fetch
/// uv` fetches it), a target on CPython 3.8 or newer installs with `uv pip
/// install --no-config --offline --no-index --no-deps --compile-bytecode
/// --link-mode copy --python VENV/bin/python` (removals with `uv pip
/// uninstall`) in pip's place, under the same lock and checks. The uv wheel
/// goes to the host's cache once, sha256-checked like every wheel; its
/// binary is unpacked beside it (CACHE/SHA256/uv) by the target's python
/// and started once per run and host. A uv that does not start there (a
/// noexec cache, an old glibc) sends the host's targets to pip, with one
/// warning per host naming why. Python 2.7, 3.6 and 3.7, other platforms
/// and a repository without uv get pip. The target's `installer` column
/// (auto, uv or pip), or --installer for every target, decides; `uv` where
/// uv cannot run is an error for the target naming why. uv is never
/// installed into a venv unless its requirements name it.
///
/// Generations: a target with `generations` (N) is never changed in place.
/// Its venv path is a symlink to VENV.generations/M; under a flock on
/// VENV.generations/.vd-lock, vd-push builds a new venv beside the active
/// one: a copy of it (reflinks, else hard links, every file an installer
/// may write and every file naming the old path made the copy's own) with
/// only the plan's changes installed, or, for a generation vd-push did not
/// build, a changed interpreter, a plan changing more than half of the
/// packages, or a failed copy, a new venv with its interpreter and every
/// wheel of the new set (the plan's, and those vd-diff names in
/// `unchanged`) installed with one call. It freezes it, checks it holds
/// exactly that set, then points the path at it with one rename(2); not one
/// byte of the active generation changes. `pushed.built` says which way
/// and why. A failed build is removed and the active generation left as it
/// was. Only a generation whose build finished and was checked
/// counts (it is marked so before it is switched to): one left by a killed
/// push is never switched to, and the next push removes it. The oldest
/// generations beyond N are then removed, never the active one or the one
/// before it, nor one a process still runs from (read in /proc as the
/// venv's user): that one is said on stderr with its pids and listed in
/// `kept_running`, and the first push after its processes end removes it.
/// Each generation marks the processes that start in it (a descriptor its
/// vd_generation.pth keeps open on its .vd-running), which is how vd-freeze
/// and this check tell which generation a process runs. A venv link that is
/// not VENV.generations/N is refused.
/// Records get `generation`: {active, previous}.
///
/// Adds to each record `pushed`: {installed: [NAME==VERSION], removed:
/// [NAME], uploaded: [wheel files this target sent], uploaded_bytes,
/// installer: uv or pip}, and `changed`, whether this push changed the
/// venv. The release log in the repository gets an `install` or `remove`
/// event per package per target (its detail naming the installer: `upgrade
/// from 1.0 with uv`), and an `error` event per failed target. A release log that cannot be
/// written fails no target (its venv has changed all the same): the events
/// it lost are named on stderr, and the exit status is 1.
///
/// Before its pip run, each push writes what it is about to do to the
/// repository's .vd-intents directory, and deletes it once its events are
/// logged. One left by a push that was killed (or lost its host) after pip
/// started is taken up by the next push to that target, even one with an
/// empty plan: the venv as frozen under its lock says which planned
/// changes were made, and those are logged then, with a detail saying so;
/// the changes not made are named in an `error` event. A generation's build
/// keeps an intent too, noted on the host with its switch: the next push
/// or vd-rollback logs the build's events if it switched, or an `error`
/// event if it did not.
///
/// Exit status: 0 when every target is done (or skipped), 1 when some record
/// carries an error or an event could not be logged, 2 on a usage or setup
/// error (no repository, --confirm without a terminal), before anything is
/// done.
// Brackets in this text are --help's, not links to items.
#[allow(rustdoc::broken_intra_doc_links)]
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    repo: RepoArgs,

    /// For each target with something to do, show its plan and ask on the
    /// terminal (/dev/tty; stdin is the pipeline): yes, no, all (this and
    /// the rest without asking) or quit (neither this nor the rest). A
    /// declined target passes through with `changed: false` and `skipped:
    /// true`. Questions come one at a time, in input order; targets already
    /// confirmed are pushed meanwhile. Without a terminal, an error before
    /// anything is done. Without --confirm, vd-push pushes (for cron).
    #[arg(long)]
    confirm: bool,

    /// Change nothing on any host, not even the cache: list each host's
    /// cache and add to `pushed` what a push would do: the wheels it would
    /// upload (`uploaded`, `uploaded_bytes`), install and remove, `dry_run:
    /// true`, and `commands`, the pip commands it would run.
    #[arg(long)]
    dry_run: bool,

    /// Make the venv of a target with `venv_exists: false` first, with
    /// `python -m venv` using the target's `python` (default python3), as
    /// `venv_user`; a Python 2.7 has no venv module and uses `python -m
    /// virtualenv` (virtualenv<21), which must be installed for it. Without
    /// --create such a target is an error.
    #[arg(long)]
    create: bool,

    /// For a target with `generations` whose venv is still a plain
    /// virtualenv: move it to VENV.generations/1 and put a symlink in its
    /// place (two renames; the path is absent only between them), then
    /// push as usual. Without --adopt such a target is an error, and its
    /// venv is left alone.
    #[arg(long)]
    adopt: bool,

    /// What installs and removes packages, for every target, over each
    /// target's own `installer`: auto (uv where it can run, else pip), uv
    /// (a target where uv cannot run is an error naming why), or pip.
    #[arg(long, value_parser = installer_values())]
    installer: Option<Installer>,

    #[command(flatten)]
    transport: TransportArgs,
}

static TABLE: Table = Table {
    headers: &["TARGET", "PUSHED", "UPLOADED", "STATUS"],
    row: |r: &Record| {
        let pushed = record::get::<Pushed>(r).ok().flatten();
        let mut done: Vec<String> = Vec::new();
        let mut uploaded = String::new();
        let mut dry_run = None;
        if let Some(pushed) = &pushed {
            done.extend(pushed.installed.iter().cloned());
            done.extend(pushed.removed.iter().map(|n| format!("-{n}")));
            uploaded = format!(
                "{} wheels, {}",
                pushed.uploaded.len(),
                summary::bytes(pushed.uploaded_bytes)
            );
            dry_run = pushed.dry_run.then(|| pushed.commands.join(" && "));
        }
        vec![
            target_label(r),
            done.join(" "),
            uploaded,
            status_cell(r, || {
                if let Ok(Some(Skipped(true))) = record::get(r) {
                    "skipped".to_string()
                } else if let Some(commands) = &dry_run {
                    format!("dry run: would run {commands}")
                } else if let Ok(Some(Changed(true))) = record::get(r) {
                    match record::get::<Generation>(r) {
                        Ok(Some(Generation {
                            active: Some(n), ..
                        })) => format!("changed: generation {n}"),
                        _ => "changed".to_string(),
                    }
                } else {
                    "unchanged".to_string()
                }
            }),
        ]
    },
};

tool!(VdPush);

/// `--installer`'s values (which completions offer, and clap's error for
/// another names), as the inventory's `installer` reads them.
fn installer_values() -> impl clap::builder::TypedValueParser<Value = Installer> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(["auto", "uv", "pip"])
        .map(|value| value.parse().expect("one of the values the parser allows"))
}

fn run(args: Args, out: &mut Output) -> Result<Status> {
    let repo = Repo::open(&args.repo.repo)?;
    let stdin = Reader::new(io::BufReader::new(io::stdin()), TOOL);
    let input: Box<dyn Iterator<Item = Line> + Send> = if args.confirm {
        let mut terminal = Terminal::open()?;
        let ask = move |record: &Record| terminal.ask(record).unwrap_or(Answer::Quit);
        Box::new(confirm::confirmed(stdin, ask))
    } else {
        Box::new(stdin)
    };
    let log = EventWriter::new(ReleaseLog::new(repo.dir()), TOOL);
    let options = Mode {
        dry_run: args.dry_run,
        create: args.create,
        confirmed: args.confirm,
        adopt: args.adopt,
        installer: args.installer,
    };
    let pusher = Pusher::new(repo, options, log);
    args.transport
        .fleet(TOOL)?
        .run(input, out, |host, target, record| {
            pusher.push_target(host, target, record)
        })?;
    Ok(if pusher.logged() {
        Status::Ok
    } else {
        Status::TargetFailed
    })
}
