//! Django's `migrate` on a target: the command, and what it says.
//!
//! vd-migrate runs `django-admin migrate` with the venv's Django and records
//! which migrations it applied (or, with `--plan`, which are pending). Django
//! prints these for people, not programs; the shapes read here are stable
//! across Django 1.11 to 5: `  Applying app.0001_name... OK` while migrating,
//! and one unindented `app.0001_name` line per migration under `Planned
//! operations:` (`migrate --plan`, Django 2.2 and newer). Older Django has no
//! `migrate --plan`; its `showmigrations --plan` lists the whole plan with
//! `[ ]  app.0001_name` for each migration not applied, which says the same.
//! Which targets migrate, as whom and when, is [`crate::tools::migrate`]'s.

use crate::shell;
use crate::transport::Finished;

/// What [`migrate_command`] asks Django for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Migrate {
    /// Apply the pending migrations.
    Apply,
    /// List them (`--plan`), applying nothing.
    Plan,
    /// List them on Django before 2.2, whose `migrate` has no `--plan`:
    /// `showmigrations --plan`, applying nothing.
    ShowPlan,
}

impl Migrate {
    /// How to ask this of a Django of `version` (the record's `installed`
    /// has it): a plan of Django before 2.2 is [`Migrate::ShowPlan`]. A
    /// version that is unknown or not `major.minor…` is taken to have
    /// `migrate --plan`, so its own answer speaks for itself.
    pub fn for_django(self, version: Option<&str>) -> Migrate {
        match self {
            Migrate::Plan if !has_migrate_plan(version) => Migrate::ShowPlan,
            other => other,
        }
    }
}

/// Whether a Django version has `migrate --plan` (2.2 and newer, or unknown).
fn has_migrate_plan(version: Option<&str>) -> bool {
    let Some(version) = version else {
        return true;
    };
    let mut parts = version.split('.').map(|part| {
        part.chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse::<u32>()
    });
    match (parts.next(), parts.next()) {
        (Some(Ok(major)), Some(Ok(minor))) => (major, minor) >= (2, 2),
        _ => true,
    }
}

/// The exit status of [`migrate_command`] when the venv has no
/// `bin/django-admin` (the shell's "command not found").
pub const NO_DJANGO_ADMIN: i32 = 127;

/// How many lines of Django's output an error keeps.
const TAIL_LINES: usize = 15;

/// Whether `name` can be a settings module: dotted Python identifiers
/// (`shop.settings.prod`). Anything else in a record is a mistake, caught
/// before it reaches a remote command.
pub fn is_settings_module(name: &str) -> bool {
    name.split('.').all(|part| {
        part.chars()
            .next()
            .is_some_and(|c| c.is_alphabetic() || c == '_')
            && part.chars().all(|c| c.is_alphanumeric() || c == '_')
    })
}

/// Django's `migrate` for one settings module, with the venv's
/// `django-admin` and `DJANGO_SETTINGS_MODULE` set for it alone (for
/// [`Migrate::ShowPlan`], `showmigrations --plan`).
pub fn migrate_command(venv: &str, settings: &str, what: Migrate) -> String {
    let admin = format!("{}/bin/django-admin", venv.trim_end_matches('/'));
    let module = format!("DJANGO_SETTINGS_MODULE={settings}");
    let mut words = vec!["exec", "env", &module, &admin];
    words.extend(match what {
        Migrate::Apply => &["migrate", "--noinput"][..],
        Migrate::Plan => &["migrate", "--noinput", "--plan"],
        Migrate::ShowPlan => &["showmigrations", "--plan"],
    });
    shell::join(&words)
}

/// What [`migrate_command`] ended with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrateOutcome {
    /// Applied (in order, those before a failure too) or, for
    /// [`Migrate::Plan`], pending.
    pub migrations: Vec<String>,
    /// Why Django failed, with the end of what it said.
    pub failure: Option<String>,
}

impl MigrateOutcome {
    /// Read `migrate` (or its plan) for `module` in `venv`.
    pub fn read(finished: &Finished, venv: &str, module: &str, what: Migrate) -> MigrateOutcome {
        let stdout = String::from_utf8_lossy(&finished.stdout);
        let migrations = match what {
            Migrate::Apply => applied_migrations(&stdout),
            Migrate::Plan => planned_migrations(&stdout),
            Migrate::ShowPlan => unapplied_in_showmigrations(&stdout),
        };
        let failure = (!finished.success()).then(|| {
            let venv = venv.trim_end_matches('/');
            if finished.status == NO_DJANGO_ADMIN {
                return format!(
                    "{venv}/bin/django-admin is missing: is Django installed in the venv? ({})",
                    finished.tail(2)
                );
            }
            let verb = match what {
                Migrate::Apply => "migrate",
                Migrate::Plan => "migrate --plan",
                Migrate::ShowPlan => "showmigrations --plan",
            };
            format!(
                "django-admin {verb} for {module} failed (exit status {}): {}",
                finished.status,
                finished.tail(TAIL_LINES)
            )
        });
        MigrateOutcome {
            migrations,
            failure,
        }
    }
}

/// Migrations applied, in order, from `migrate` output. A migration whose
/// line does not end in `OK` failed and is not counted.
fn applied_migrations(output: &str) -> Vec<String> {
    output
        .lines()
        .filter_map(|line| line.trim().strip_prefix("Applying "))
        .filter_map(|rest| {
            rest.strip_suffix("... OK")
                .or_else(|| rest.split_once("... OK").map(|(m, _)| m))
        })
        .map(|m| m.trim().to_string())
        .collect()
}

/// Migrations pending, in order, from `migrate --plan` output.
fn planned_migrations(output: &str) -> Vec<String> {
    let mut lines = output
        .lines()
        .skip_while(|l| l.trim() != "Planned operations:");
    lines.next();
    lines
        .filter(|l| !l.starts_with([' ', '\t']) && !l.trim().is_empty())
        .map(|l| l.trim().to_string())
        .filter(|l| is_migration_name(l))
        .collect()
}

/// Migrations pending, in plan order, from `showmigrations --plan` output
/// (Django before 2.2): the `[ ]  app.0001_name` lines; `[X]` is applied.
fn unapplied_in_showmigrations(output: &str) -> Vec<String> {
    output
        .lines()
        .filter_map(|line| line.trim().strip_prefix("[ ]"))
        .map(|rest| rest.split_whitespace().next().unwrap_or("").to_string())
        .filter(|name| is_migration_name(name))
        .collect()
}

/// `app_label.migration_name`: one dot, word characters on both sides.
fn is_migration_name(text: &str) -> bool {
    let Some((app, name)) = text.split_once('.') else {
        return false;
    };
    let word = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_alphanumeric() || c == '_');
    word(app) && word(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a run of django-admin that ended with `status`, `stdout` and
    /// `stderr` is read as, for settings `s` of venv `/v`.
    fn read(status: i32, stdout: &str, stderr: &str, mode: Migrate) -> MigrateOutcome {
        MigrateOutcome::read(&Finished::of(status, stdout, stderr), "/v", "s", mode)
    }

    #[test]
    fn reads_applied_migrations() {
        let out = "Operations to perform:\n  Apply all migrations: catalog, contenttypes\nRunning migrations:\n  Applying catalog.0001_initial... OK\n  Applying contenttypes.0001_initial... OK (0.012s)\n  Applying contenttypes.0002_remove_content_type_name...";
        assert_eq!(
            applied_migrations(out),
            ["catalog.0001_initial", "contenttypes.0001_initial"]
        );
        assert!(
            applied_migrations("Operations to perform:\n  No migrations to apply.\n").is_empty()
        );
    }

    #[test]
    fn a_failed_migrate_keeps_what_it_applied() {
        let out = "Operations to perform:\n  Apply all migrations: catalog\nRunning migrations:\n  Applying catalog.0001_initial... OK\n  Applying catalog.0002_price...";
        let err = "Traceback (most recent call last):\n  File \"manage.py\", line 22\ndjango.db.utils.OperationalError: no such table: catalog_product\n";
        let outcome = MigrateOutcome::read(
            &Finished::of(1, out, err),
            "/srv/shop/",
            "shop.settings",
            Migrate::Apply,
        );
        assert_eq!(outcome.migrations, ["catalog.0001_initial"]);
        let failure = outcome.failure.unwrap();
        assert!(
            failure.starts_with(
                "django-admin migrate for shop.settings failed (exit status 1): Traceback"
            ),
            "{failure}"
        );
        assert!(
            failure.ends_with("no such table: catalog_product"),
            "{failure}"
        );

        let missing = MigrateOutcome::read(
            &Finished::of(
                127,
                "",
                "env: '/srv/shop/bin/django-admin': No such file or directory\n",
            ),
            "/srv/shop/",
            "shop.settings",
            Migrate::Plan,
        );
        assert!(missing
            .failure
            .unwrap()
            .starts_with("/srv/shop/bin/django-admin is missing"));
        let fine = read(0, "", "", Migrate::Apply);
        assert_eq!(fine.failure, None);
    }

    #[test]
    fn settings_modules_are_dotted_names() {
        assert!(is_settings_module("demo_shop.settings"));
        assert!(is_settings_module("settings"));
        for bad in [
            "",
            "shop.",
            ".shop",
            "shop settings",
            "shop/settings",
            "1shop",
            "a;b",
        ] {
            assert!(!is_settings_module(bad), "{bad:?}");
        }
    }

    #[test]
    fn reads_planned_migrations() {
        let out = "Planned operations:\ncatalog.0001_initial\n    Create model Product\ncontenttypes.0002_remove_content_type_name\n    Raw Python operation\n";
        let outcome = read(0, out, "", Migrate::Plan);
        assert_eq!(
            outcome.migrations,
            [
                "catalog.0001_initial",
                "contenttypes.0002_remove_content_type_name"
            ]
        );
        assert!(
            planned_migrations("Planned operations:\n  No planned migration operations.\n")
                .is_empty()
        );
    }

    #[test]
    fn migrate_plan_came_in_django_2_2() {
        for old in ["1.11.29", "2.1.15", "1.8"] {
            assert!(!has_migrate_plan(Some(old)), "{old}");
            assert_eq!(Migrate::Plan.for_django(Some(old)), Migrate::ShowPlan);
            assert_eq!(Migrate::Apply.for_django(Some(old)), Migrate::Apply);
        }
        for new in ["2.2", "2.2.28", "3.2.25", "10.0", "5.1rc1"] {
            assert!(has_migrate_plan(Some(new)), "{new}");
            assert_eq!(Migrate::Plan.for_django(Some(new)), Migrate::Plan);
        }
        assert!(has_migrate_plan(None));
        assert!(has_migrate_plan(Some("dev")));
    }

    #[test]
    fn reads_unapplied_migrations_from_showmigrations() {
        // Django 1.11's `showmigrations --plan`.
        let out = "[X]  contenttypes.0001_initial\n[X]  contenttypes.0002_remove_content_type_name\n[ ]  catalog.0001_initial\n[ ]  catalog.0002_price\n";
        let outcome = read(0, out, "", Migrate::ShowPlan);
        assert_eq!(
            outcome.migrations,
            ["catalog.0001_initial", "catalog.0002_price"]
        );
        assert!(unapplied_in_showmigrations("[X]  catalog.0001_initial\n").is_empty());
        let failed = read(1, "", "boom\n", Migrate::ShowPlan);
        assert!(failed
            .failure
            .unwrap()
            .starts_with("django-admin showmigrations --plan for s failed"));
        assert_eq!(
            migrate_command("/srv/shop", "s", Migrate::ShowPlan),
            "exec env DJANGO_SETTINGS_MODULE=s /srv/shop/bin/django-admin showmigrations --plan"
        );
    }

    #[test]
    fn migrate_command_quotes_what_the_record_says() {
        assert_eq!(
            migrate_command("/srv/shop/", "shop.settings", Migrate::Apply),
            "exec env DJANGO_SETTINGS_MODULE=shop.settings /srv/shop/bin/django-admin migrate --noinput"
        );
        assert_eq!(
            migrate_command("/srv/my shop", "s", Migrate::Plan),
            "exec env DJANGO_SETTINGS_MODULE=s '/srv/my shop/bin/django-admin' migrate --noinput --plan"
        );
    }
}
