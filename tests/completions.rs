//! The checked-in shell completions are the ones the clap definitions
//! generate, and they complete what the tools take.

use crate::util::assert_generated_current;
use std::path::Path;

#[test]
fn completions_are_current() {
    let scripts = vd::completions::scripts();
    // One binary per folder under tools/: each has its three scripts.
    let tools = std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("tools"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("vd-")
        })
        .count();
    assert!(tools > 0, "no tools under tools/");
    assert_eq!(
        scripts.len(),
        tools * 3,
        "every tool, for bash, zsh and fish"
    );
    for (path, text) in scripts {
        assert_generated_current("completions", &path, &text, "completions");
    }
}

#[test]
fn completions_offer_every_tools_options() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("completions");
    let bash = std::fs::read_to_string(dir.join("bash/vd-push")).unwrap();
    for option in ["--confirm", "--quiet", "--json", "--known-hosts", "--jobs"] {
        assert!(bash.contains(option), "bash completion lacks {option}");
    }
    let fish = std::fs::read_to_string(dir.join("fish/vd-targets.fish")).unwrap();
    assert!(
        fish.contains("-l inventory") && fish.contains("-l quiet"),
        "{fish}"
    );
    let zsh = std::fs::read_to_string(dir.join("zsh/_vd-reload")).unwrap();
    assert!(zsh.starts_with("#compdef vd-reload"), "{zsh}");
}
