//! Reading what Django's `migrate` says.
//!
//! vd-migrate runs `django-admin migrate` on the target and records which
//! migrations it applied (or, with `--plan`, which are pending). Django prints
//! these for people, not programs; the two shapes read here are stable across
//! Django 3 to 5: `  Applying app.0001_name... OK` while migrating, and one
//! unindented `app.0001_name` line per migration under `Planned operations:`.

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
