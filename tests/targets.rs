//! vd-targets: the inventory, typed records, and selection by name.

use crate::util::record::Words;
use crate::util::{
    assert_contains, error_message, path_text, targets_from, tool, AsRecord, Outcome, Record,
};
use std::fs;
use std::path::Path;

const INVENTORY: &str = "\
host,port,user,venv,venv_user,requirements,packages,settings,migrate_user,reload,reload_once,via,identity,python,cache,check
web1,22,deploy,/srv/shop/venv,shop,reqs/shop.txt,django-debug-toolbar gunicorn,shop.settings shop.settings_api,shop,\"sudo systemctl reload shop, then wait\",yes,ssh,keys/id_deploy,python3.11,,curl -fsS http://localhost/health
web2,2222,deploy,/srv/shop/venv,shop,/etc/vd/shop.txt,,shop.settings,,sudo systemctl reload shop,true,,,,,
web2,2222,deploy,/srv/blog/venv,,,,,,,,,,,,
db1,,ops,/srv/tools/venv,,,,,,,,local,,,,
";

fn targets(dir: &Path, csv: &str, names: &[&str]) -> Outcome {
    targets_from(dir, "targets.csv", csv, names)
}

/// Three targets read: the second an error saying `message`, the third,
/// on `host`, read after it.
#[track_caller]
fn assert_only_the_middle_fails(records: &[Record], message: &str, host: &str) {
    assert_eq!(records.len(), 3);
    assert_contains(records[1].error_message(), &[message]);
    assert_eq!(records[2].host.as_deref(), Some(host));
}

fn hosts_and_venvs(out: &Outcome) -> Vec<String> {
    out.records()
        .into_iter()
        .map(|r| format!("{}:{}", r.host.unwrap(), r.venv.unwrap()))
        .collect()
}

#[test]
fn writes_typed_records_for_every_target() {
    let dir = tempfile::tempdir().unwrap();
    let out = targets(dir.path(), INVENTORY, &[]);
    out.expect_code(0);
    // Read into the documented types: port a number, reload_once a
    // boolean, packages and settings lists.
    let records = out.records();
    assert_eq!(records.len(), 4);
    let web1 = &records[0];
    assert_eq!(web1.port, Some(22));
    assert_eq!(web1.reload_once, Some(true));
    let list = |words: &[&str]| Some(Words::List(words.iter().map(|w| w.to_string()).collect()));
    assert_eq!(web1.packages, list(&["django-debug-toolbar", "gunicorn"]));
    assert_eq!(web1.settings, list(&["shop.settings", "shop.settings_api"]));
    assert_eq!(
        web1.reload.as_deref(),
        Some("sudo systemctl reload shop, then wait")
    );
    let abs = std::path::absolute(dir.path()).unwrap();
    assert_eq!(
        web1.requirements,
        Some(path_text(&abs.join("reqs/shop.txt")))
    );
    assert_eq!(web1.identity, Some(path_text(&abs.join("keys/id_deploy"))));
    assert_eq!(records[1].requirements.as_deref(), Some("/etc/vd/shop.txt"));
    assert_eq!(records[1].port, Some(2222));
    // Empty cells leave fields out, so later tools use their defaults.
    assert!(records[2].venv_user.is_none());
    assert!(records[3].port.is_none());
    assert_eq!(records[3].via.as_deref(), Some("local"));
}

#[test]
fn selects_by_every_name_form() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&[&str], &[&str])] = &[
        (&["web1"], &["web1:/srv/shop/venv"]),
        (
            &["web*"],
            &[
                "web1:/srv/shop/venv",
                "web2:/srv/shop/venv",
                "web2:/srv/blog/venv",
            ],
        ),
        (&["shop@"], &["web1:/srv/shop/venv", "web2:/srv/shop/venv"]),
        // `deploy` is the login user; it names only targets without a venv_user.
        (&["deploy@"], &["web2:/srv/blog/venv"]),
        (&["shop@web2"], &["web2:/srv/shop/venv"]),
        (&["deploy@web2:/srv/blog/venv"], &["web2:/srv/blog/venv"]),
        (&["web2:/srv/shop/venv"], &["web2:/srv/shop/venv"]),
        (
            &[":/srv/shop/venv"],
            &["web1:/srv/shop/venv", "web2:/srv/shop/venv"],
        ),
        // Several names: the union, in inventory order, each target once.
        (
            &["db1", "web1", "web*:/srv/shop/venv"],
            &[
                "web1:/srv/shop/venv",
                "web2:/srv/shop/venv",
                "db1:/srv/tools/venv",
            ],
        ),
    ];
    for (names, expected) in cases {
        let out = targets(dir.path(), INVENTORY, names);
        out.expect_code(0);
        assert_eq!(hosts_and_venvs(&out), *expected, "names {names:?}");
    }
}

#[test]
fn a_name_that_matches_nothing_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = targets(dir.path(), INVENTORY, &["web1", "wbe2"]);
    out.expect_code(2)
        .expect_stderr("vd-targets: no target matches wbe2");
    assert!(out.stdout.is_empty());
}

#[test]
fn a_name_with_two_at_signs_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    targets(dir.path(), INVENTORY, &["a@b@web1"])
        .expect_code(2)
        .expect_stderr("has more than one `@`");
}

#[test]
fn bad_rows_are_errors_naming_file_and_line_and_the_rest_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let csv = "\
host,port,venv
good1,22,/srv/a
rel,22,srv/relative
badport,ssh,/srv/b
good1,22,/srv/a/
good2,,/srv/c
";
    let out = targets(dir.path(), csv, &[]);
    out.expect_code(1);
    let records = out.json();
    assert_eq!(records.len(), 5);
    let message = |i: usize| error_message(&records[i]);
    assert!(records[0].error().is_none());
    assert!(
        message(1).ends_with("targets.csv line 3: venv \"srv/relative\" must be an absolute path"),
        "{}",
        message(1)
    );
    assert_contains(
        &message(2),
        &["targets.csv line 4: port \"ssh\" is not a number"],
    );
    assert_contains(
        &message(3),
        &["targets.csv line 5: duplicate target good1:/srv/a/: already defined at"],
    );
    assert!(message(3).ends_with("targets.csv line 2"));
    assert!(records[4].error().is_none());
    out.expect_stderr("line 3: venv");
}

#[test]
fn missing_required_columns_and_empty_files_are_setup_errors() {
    let dir = tempfile::tempdir().unwrap();
    for (csv, message) in [
        ("host,port\nweb1,22\n", "no `venv` column"),
        ("venv\n/srv/a\n", "no `host` column"),
        ("", "targets.csv is empty"),
        ("host,venv\n", "the inventory holds no targets"),
    ] {
        targets(dir.path(), csv, &[])
            .expect_code(2)
            .expect_stderr(message);
    }
    tool("vd-targets")
        .arg("--inventory")
        .arg(dir.path().join("nope.csv"))
        .run()
        .expect_code(2)
        .expect_stderr("cannot read inventory");
}

#[test]
fn quoted_cells_keep_their_commas_and_unknown_columns_pass_through() {
    let dir = tempfile::tempdir().unwrap();
    let csv = "host,venv,reload,team\nweb1,/srv/a,\"kill -HUP $(cat /run/a.pid), twice\",\"shop, north\"\n";
    let out = targets(dir.path(), csv, &[]);
    out.expect_code(0)
        .expect_stderr("unknown column `team`, passed through as a field");
    let r = &out.records()[0];
    assert_eq!(
        r.reload.as_deref(),
        Some("kill -HUP $(cat /run/a.pid), twice")
    );
    assert_eq!(r.rest.get("team"), Some(&serde_json::json!("shop, north")));
}

#[test]
fn a_row_with_too_many_cells_is_an_error_for_that_row() {
    let dir = tempfile::tempdir().unwrap();
    let csv = "host,venv\nweb1,/srv/a\nweb2,/srv/b,extra\nweb3,/srv/c\n";
    let out = targets(dir.path(), csv, &[]);
    out.expect_code(1);
    let records = out.records();
    assert_only_the_middle_fails(&records, "targets.csv line 3: malformed row", "web3");
}

#[test]
fn reads_jsonl_inventories_and_the_environment_variable() {
    let dir = tempfile::tempdir().unwrap();
    let text = "{\"host\":\"web1\",\"venv\":\"/srv/a\",\"mine\":{\"keep\":true}}\nnot json\n{\"host\":\"web2\",\"venv\":\"/srv/b\"}\n";
    let path = dir.path().join("fleet.jsonl");
    fs::write(&path, text).unwrap();
    let out = tool("vd-targets").env("VD_INVENTORY", &path).run();
    out.expect_code(1);
    let records = out.records();
    assert_eq!(
        records[0].rest.get("mine"),
        Some(&serde_json::json!({"keep": true}))
    );
    assert_only_the_middle_fails(&records, "fleet.jsonl line 2: not JSON", "web2");
}

#[test]
fn reads_targets_csv_in_the_current_directory_by_default() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("targets.csv"), "host,venv\nweb1,/srv/a\n").unwrap();
    let out = tool("vd-targets").current_dir(dir.path()).run();
    out.expect_code(0);
    assert_eq!(hosts_and_venvs(&out), ["web1:/srv/a"]);
}

/// Every field of the wrong type in a `.jsonl` inventory is an error naming
/// the file, the line and the field; the other targets go on.
#[test]
fn fields_of_the_wrong_type_in_jsonl_inventories_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let bad = [
        (
            "venv_user",
            "1001",
            "field `venv_user` must be a string, not 1001 (a number)",
        ),
        (
            "migrate_user",
            "[\"a\"]",
            "field `migrate_user` must be a string",
        ),
        (
            "user",
            "{}",
            "field `user` must be a string, not {} (an object)",
        ),
        ("cache", "1", "field `cache` must be a string"),
        (
            "python",
            "3.11",
            "field `python` must be an interpreter's name or its facts",
        ),
        ("identity", "true", "field `identity` must be a string"),
        ("via", "1", "field `via` must be a string"),
        ("reload", "[]", "field `reload` must be a string"),
        ("check", "0", "field `check` must be a string"),
        (
            "packages",
            "5",
            "field `packages` must be a list of strings",
        ),
    ];
    let mut text = String::from("{\"host\":\"web1\",\"venv\":\"/srv/a\"}\n");
    for (field, value, _) in &bad {
        text.push_str(&format!(
            "{{\"host\":\"web1\",\"venv\":\"/srv/{field}\",\"{field}\":{value}}}\n"
        ));
    }
    text.push_str("{\"host\":\"web2\",\"venv\":\"/srv/b\",\"venv_user\":1,\"port\":\"x\"}\n");
    text.push_str("{\"host\":\"web3\",\"venv\":\"/srv/c\"}\n");
    let out = targets_from(dir.path(), "fleet.jsonl", &text, &[]);
    out.expect_code(1);
    let records = out.json();
    assert_eq!(records.len(), bad.len() + 3);
    assert!(records[0].error().is_none());
    for (i, (field, _, expected)) in bad.iter().enumerate() {
        let message = error_message(&records[i + 1]);
        assert!(
            message.contains(&format!("fleet.jsonl line {}: ", i + 2)),
            "{field}: {message}"
        );
        assert!(message.contains(expected), "{field}: {message}");
    }
    // Two bad fields on one line: both named.
    let both = error_message(&records[bad.len() + 1]);
    assert!(both.contains("field `venv_user`"), "{both}");
    assert!(both.contains("port \"x\" is not a number"), "{both}");
    assert!(records[bad.len() + 2].error().is_none());
}

/// A column named twice would leave one of its cells unread: an error
/// naming the file and the column, before any target is written.
#[test]
fn a_column_named_twice_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = targets(
        dir.path(),
        "host,venv,venv_user,VENV_USER\nweb1,/srv/a,shop,root\n",
        &[],
    );
    out.expect_code(2);
    assert!(out.json().is_empty());
    out.expect_stderr("targets.csv line 1: column `venv_user` appears twice in the header");
}
