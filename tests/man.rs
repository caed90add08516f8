//! The checked-in man pages are the ones the clap definitions render.

use crate::util::assert_generated_current;
use std::path::Path;

#[test]
fn man_pages_are_current() {
    for (name, text) in vd::man::pages().unwrap() {
        assert_generated_current("man", &name, &text, "man");
    }
}

#[test]
fn every_tool_has_a_page_and_the_overview_exists() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("man");
    assert!(dir.join("vd.7").is_file(), "man/vd.7 is missing");
    for (name, _) in vd::man::pages().unwrap() {
        assert!(dir.join(&name).is_file(), "man/{name} is missing");
    }
}
