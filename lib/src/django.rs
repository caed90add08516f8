//! Reading what Django's `migrate` says.
//!
//! vd-migrate runs `django-admin migrate` on the target and records which
//! migrations it applied (or, with `--plan`, which are pending). Django prints
//! these for people, not programs; the shapes read here are stable across
//! Django 1.11 to 5: `  Applying app.0001_name... OK` while migrating, and
//! one unindented `app.0001_name` line per migration under `Planned
//! operations:` (`migrate --plan`, Django 2.2 and newer). Older Django has no
//! `migrate --plan`; its `showmigrations --plan` lists the whole plan with
//! `[ ]  app.0001_name` for each migration not applied, which says the same.

/// Migrations applied, in order, from `migrate` output. A migration whose
/// line does not end in `OK` failed and is not counted.
pub fn applied_migrations(output: &str) -> Vec<String> {
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
pub fn planned_migrations(output: &str) -> Vec<String> {
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

/// Whether a Django version has `migrate --plan` (2.2 and newer). A version
/// that is unknown or not `major.minor…` is taken to have it, so its
/// `migrate --plan` speaks for itself.
pub fn has_migrate_plan(version: Option<&str>) -> bool {
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

/// Migrations pending, in plan order, from `showmigrations --plan` output
/// (Django before 2.2): the `[ ]  app.0001_name` lines; `[X]` is applied.
pub fn unapplied_in_showmigrations(output: &str) -> Vec<String> {
    output
        .lines()
        .filter_map(|line| line.trim().strip_prefix("[ ]"))
        .map(|rest| rest.split_whitespace().next().unwrap_or("").to_string())
        .filter(|name| is_migration_name(name))
        .collect()
}

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
    fn migrate_plan_came_in_django_2_2() {
        for old in ["1.11.29", "2.1.15", "1.8"] {
            assert!(!has_migrate_plan(Some(old)), "{old}");
        }
        for new in ["2.2", "2.2.28", "3.2.25", "10.0", "5.1rc1"] {
            assert!(has_migrate_plan(Some(new)), "{new}");
        }
        assert!(has_migrate_plan(None));
        assert!(has_migrate_plan(Some("dev")));
    }

    #[test]
    fn reads_unapplied_migrations_from_showmigrations() {
        // Django 1.11's `showmigrations --plan`.
        let out = "[X]  contenttypes.0001_initial\n[X]  contenttypes.0002_remove_content_type_name\n[ ]  catalog.0001_initial\n[ ]  catalog.0002_price\n";
        assert_eq!(
            unapplied_in_showmigrations(out),
            ["catalog.0001_initial", "catalog.0002_price"]
        );
        assert!(unapplied_in_showmigrations("[X]  catalog.0001_initial\n").is_empty());
    }

    #[test]
    fn reads_planned_migrations() {
        let out = "Planned operations:\ncatalog.0001_initial\n    Create model Product\ncontenttypes.0002_remove_content_type_name\n    Raw Python operation\n";
        assert_eq!(
            planned_migrations(out),
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
}
