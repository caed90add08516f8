//! `vd-migrate`: apply Django's migrations on the targets that changed.
//!
//! The per-target work is Django's own `migrate`; what vd adds is which
//! targets run it, as whom, and when. Targets that share a settings module
//! usually share a database, so a module is migrated by one target at a time
//! across the whole run ([`KeyedMutex`]) while hosts otherwise work in
//! parallel; with `--once` a module is migrated by the first target that gets
//! to it and the others only wait for it and say where it was done. Nothing
//! here needs a finish per host: a target's record is written once its
//! migrations are done, so vd-reload never reloads a target ahead of them.

use crate::cli::{AfterPushArgs, ChangedArgs, TransportArgs};
use crate::console;
use crate::fleet::Host;
use crate::keyed_mutex::KeyedMutex;
use crate::log::{Event, EventWriter, ReleaseLog};
use crate::messages;
use crate::output::{status_cell, Output, Status, Table};
use crate::record::{
    self, target_label, Generation, Installed, Migrated, MigratedElsewhere, Pending, Reader,
    Record, Target,
};
use crate::remote;
use crate::remote::migrate::{is_settings_module, migrate_command, Migrate, MigrateOutcome};
use crate::repo::Repo;
use crate::transport::Connection;
use anyhow::{bail, Result};
use indexmap::IndexMap;
use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

const TOOL: &str = "vd-migrate";

/// Apply Django's migrations on the targets that changed.
///
/// Reads target records (from vd-push) on stdin. For each record that
/// changed (`changed: true`; every record with --always) and carries no
/// `error`, and for each module in its `settings` (space-separated), runs
/// VENV/bin/django-admin migrate --noinput on the target's host with
/// DJANGO_SETTINGS_MODULE set to the module, as `migrate_user`, else
/// `venv_user`, else the login user (other users through sudo -n -u, which
/// must not want a password). It adds `migrated`: {module: [migrations
/// applied]}, read from Django's output, and logs a `migrate` event per
/// module that applied any. A migration that fails is an `error` on the
/// record with the end of Django's output (what was applied before it stays
/// in `migrated`), so vd-reload leaves the target alone; it is logged as an
/// `error` event. Records that did not change pass through untouched.
///
/// When the target has `generations` and vd-push switched its link (the
/// record's `generation` names the one before), a failed migration leaves
/// the link on the new generation while services not restarted since run
/// the one before: the error says so, and vd-reload --revert switches such
/// a target back.
///
/// Targets that share a settings module are taken to share a database: one
/// module is migrated by one target at a time across the whole run, while
/// other work goes on in parallel. Different modules that share one database
/// are not known to vd; give them one module name, or use --jobs 1.
///
/// Exit status: 0 when every target is fine, 1 when some record carries an
/// error (or, with --check, has pending migrations, or an event could not be
/// logged), 2 on a usage or setup error.
// Brackets in this text are --help's, not links to items.
#[allow(rustdoc::broken_intra_doc_links)]
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    after_push: AfterPushArgs,

    /// Apply nothing; list each target's pending migrations (Django's
    /// migrate --plan) in `pending`: {module: [migrations]}. Every record
    /// without an error is read, changed or not; nothing is logged. Django
    /// before 2.2 (by the record's `installed`) has no migrate --plan: its
    /// showmigrations --plan gives the same list, without the operations.
    #[arg(long, conflicts_with = "once")]
    plan: bool,

    /// As --plan, and exit 1 when any target has pending migrations, naming
    /// each such target and its migrations on stderr.
    #[arg(long, conflicts_with = "once")]
    check: bool,

    /// Migrate each settings module on one target only: the first to get
    /// to it. The other targets with that module wait until it is done and
    /// record where in `migrated_elsewhere`: {module: target}; if it failed,
    /// they carry an error too, since their database is in the same state.
    #[arg(long)]
    once: bool,

    #[command(flatten)]
    transport: TransportArgs,
}

static TABLE: Table = Table {
    headers: &["TARGET", "MIGRATIONS", "STATUS"],
    row: |r: &Record| {
        vec![
            target_label(r),
            migrations_cell(r),
            status_cell(r, || {
                if record::has::<Migrated>(r) || record::has::<Pending>(r) {
                    "ok".to_string()
                } else {
                    "unchanged".to_string()
                }
            }),
        ]
    },
};

/// `module: what` per settings module, from `migrated`, `migrated_elsewhere`
/// or `pending`.
fn migrations_cell(record: &Record) -> String {
    let mut cells = Vec::new();
    if let Ok(Some(Migrated(modules))) = record::get(record) {
        for (module, list) in modules {
            cells.push(format!("{module}: {} applied", list.len()));
        }
    }
    if let Ok(Some(Pending(modules))) = record::get(record) {
        for (module, list) in modules {
            cells.push(format!("{module}: {} pending", list.len()));
        }
    }
    if let Ok(Some(MigratedElsewhere(modules))) = record::get(record) {
        for (module, by) in modules {
            cells.push(format!("{module}: on {by}"));
        }
    }
    cells.join(", ")
}

tool!(VdMigrate);

fn run(args: Args, out: &mut Output) -> Result<Status> {
    let mode = if args.plan || args.check {
        Migrate::Plan
    } else {
        Migrate::Apply
    };
    let log = match mode {
        // A deployment that cannot log is stopped before it changes anything.
        Migrate::Apply => Some(EventWriter::new(
            ReleaseLog::new(Repo::open(&args.after_push.repo.repo)?.dir()),
            TOOL,
        )),
        Migrate::Plan | Migrate::ShowPlan => None,
    };
    let migrator = Migrator {
        mode,
        changed: ChangedArgs {
            always: args.after_push.changed.always || mode == Migrate::Plan,
        },
        once: args.once,
        check: args.check,
        log,
        turns: KeyedMutex::new(),
        done: Mutex::new(HashMap::new()),
        pending: AtomicBool::new(false),
    };
    let stdin = Reader::new(io::BufReader::new(io::stdin()), TOOL);
    args.transport
        .fleet(TOOL)?
        .run(stdin, out, |host, target, record| {
            migrator.target(host, target, record)
        })?;
    let logged = migrator.log.as_ref().is_none_or(|log| !log.failed());
    let pending = migrator.pending.load(Ordering::Relaxed);
    if args.check && pending {
        messages::error(TOOL, "some targets have pending migrations (see above)");
    }
    Ok(if logged && !(args.check && pending) {
        Status::Ok
    } else {
        Status::TargetFailed
    })
}

/// How a settings module's migration went, for `--once`.
#[derive(Clone)]
enum Done {
    /// Migrated by this target.
    By(String),
    /// Failed on this target, with this message.
    FailedOn(String, String),
}

/// What every target's work shares.
struct Migrator {
    mode: Migrate,
    changed: ChangedArgs,
    once: bool,
    check: bool,
    log: Option<EventWriter>,
    /// One target at a time per settings module.
    turns: KeyedMutex,
    /// With `--once`: the modules done so far. Read and written only while
    /// holding the module's turn.
    done: Mutex<HashMap<String, Done>>,
    /// Whether some target has pending migrations (`--plan`, `--check`).
    pending: AtomicBool,
}

impl Migrator {
    /// Migrate (or plan) one target.
    fn target(&self, host: &mut Host<()>, parsed: &Target, record: &mut Record) -> Result<()> {
        if !self.changed.selects(record)? {
            return Ok(());
        }
        let venv = parsed.venv.clone();
        let modules = parsed.settings.clone();
        if let Some(bad) = modules.iter().find(|m| !is_settings_module(m)) {
            bail!("settings {bad:?} is not a Python module name (like shop.settings)");
        }
        let connection = host.connection()?;
        let user = parsed.migrate_as(connection.user()).map(str::to_string);
        // How to ask this target's Django for a plan: by the version
        // vd-freeze or vd-push saw, when the record has it.
        let installed = record::get::<Installed>(record).ok().flatten();
        let django = installed
            .as_ref()
            .and_then(|i| i.get("django"))
            .map(String::as_str);
        let plan = Migrate::Plan.for_django(django);
        let target = VenvSession {
            connection,
            venv: &venv,
            user: user.as_deref(),
        };
        match self.mode {
            Migrate::Plan | Migrate::ShowPlan => self.plan(target, plan, &modules, record),
            Migrate::Apply => self.apply(target, &modules, record).map_err(|e| {
                match armed_generation(parsed, record) {
                    Some(note) => anyhow::anyhow!("{e:#}; {note}"),
                    None => e,
                }
            }),
        }
    }

    /// `pending`: what `migrate --plan` (`how`: or, on Django before 2.2,
    /// `showmigrations --plan`) lists for each module.
    fn plan(
        &self,
        mut target: VenvSession,
        how: Migrate,
        modules: &[String],
        record: &mut Record,
    ) -> Result<()> {
        let mut pending = IndexMap::new();
        let mut said = Vec::new();
        for module in modules {
            let outcome = target.migrate(module, how)?;
            if let Some(failure) = outcome.failure {
                record::put(record, &Pending(pending));
                bail!(failure);
            }
            let planned = outcome.migrations;
            if !planned.is_empty() {
                said.push(format!("{module}: {}", planned.join(" ")));
            }
            pending.insert(module.clone(), planned);
        }
        record::put(record, &Pending(pending));
        if !said.is_empty() {
            self.pending.store(true, Ordering::Relaxed);
            if self.check {
                // What --check is run for: said even with --quiet.
                messages::error(
                    TOOL,
                    &format!(
                        "{}: pending migrations: {}",
                        target_label(record),
                        said.join("; ")
                    ),
                );
            }
        }
        Ok(())
    }

    /// `migrated`: what `migrate` applied for each module, one module at a
    /// time across the run; with `--once`, `migrated_elsewhere` too.
    fn apply(
        &self,
        mut target: VenvSession,
        modules: &[String],
        record: &mut Record,
    ) -> Result<()> {
        let label = target_label(record);
        let mut migrated = IndexMap::new();
        let mut elsewhere = IndexMap::new();
        let mut failure = None;
        for module in modules {
            let _turn = self.turns.hold(module);
            if self.once {
                let done = self.done.lock().unwrap_or_else(|e| e.into_inner());
                match done.get(module).cloned() {
                    Some(Done::By(by)) => {
                        elsewhere.insert(module.clone(), by);
                        continue;
                    }
                    Some(Done::FailedOn(by, message)) => {
                        failure = Some(format!(
                            "{module} was not migrated here: its migration failed on {by} \
                             (--once): {message}"
                        ));
                        break;
                    }
                    None => {}
                }
            }
            let _doing = console::doing("migrate", record);
            let outcome = match target.migrate(module, Migrate::Apply) {
                Ok(outcome) => outcome,
                Err(e) => {
                    // Django did not run: the database is as it was, and
                    // with --once the next target may try.
                    let message = format!("{e:#}");
                    self.log_failure(&label, module, &message);
                    failure = Some(message);
                    break;
                }
            };
            let applied = outcome.migrations;
            self.log_applied(&label, module, &applied);
            migrated.insert(module.clone(), applied.clone());
            if let Some(message) = outcome.failure {
                self.log_failure(&label, module, &message);
                self.finish_once(module, Done::FailedOn(label.clone(), message.clone()));
                failure = Some(message);
                break;
            }
            self.finish_once(module, Done::By(label.clone()));
        }
        // What was applied is kept, failure or not.
        record::put(record, &Migrated(migrated));
        if !elsewhere.is_empty() {
            record::put(record, &MigratedElsewhere(elsewhere));
        }
        match failure {
            Some(message) => bail!(message),
            None => Ok(()),
        }
    }

    /// With `--once`, remember how `module` went (under its turn).
    fn finish_once(&self, module: &str, how: Done) {
        if self.once {
            let mut done = self.done.lock().unwrap_or_else(|e| e.into_inner());
            done.insert(module.to_string(), how);
        }
    }

    fn log_applied(&self, label: &str, module: &str, applied: &[String]) {
        if let (Some(log), false) = (&self.log, applied.is_empty()) {
            log.write(&[Event {
                name: module.to_string(),
                target: label.to_string(),
                detail: applied.join(" "),
                ..Event::now("migrate")
            }]);
        }
    }

    fn log_failure(&self, label: &str, module: &str, message: &str) {
        if let Some(log) = &self.log {
            log.write(&[Event {
                name: module.to_string(),
                target: label.to_string(),
                detail: format!("{TOOL}: {message}"),
                ..Event::now("error")
            }]);
        }
    }
}

/// For a target whose migration failed: when vd-push switched its link to
/// a new generation (its record's `generation` names the one before), what
/// that means, in words. The link names code whose migrations failed while
/// the service, not reloaded, runs the generation before; its next start
/// for any reason would bring up the new one.
fn armed_generation(target: &Target, record: &Record) -> Option<String> {
    target.generations?;
    let Generation {
        active: Some(active),
        previous: Some(previous),
    } = record::get::<Generation>(record).ok()??
    else {
        return None;
    };
    Some(format!(
        "the venv's link names generation {active}, whose migrations failed, while services \
         not restarted since vd-push still run generation {previous}; their next start (a \
         restart, a crash, a reboot) runs generation {active}: switch back with vd-reload \
         --revert or vd-rollback"
    ))
}

/// One target's venv on its host's connection, and who migrates it.
struct VenvSession<'a> {
    connection: &'a mut Connection,
    venv: &'a str,
    user: Option<&'a str>,
}

impl VenvSession<'_> {
    /// Run Django's migrate (or its plan) for `module`, and read what it
    /// said. An error is a command that could not be run at all, or sudo
    /// refusing.
    fn migrate(&mut self, module: &str, what: Migrate) -> Result<MigrateOutcome> {
        let command = remote::as_user(self.user, &migrate_command(self.venv, module, what));
        let finished = self.connection.run(&command, b"")?;
        if let Some(message) = remote::sudo_refusal(&finished, self.user) {
            bail!(message);
        }
        Ok(MigrateOutcome::read(&finished, self.venv, module, what))
    }
}
