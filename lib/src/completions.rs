//! Shell completions for the tools, generated from their clap definitions
//! (as the man pages are) for bash, zsh and fish. `make completions` writes
//! them into `completions/`; a test fails when a checked-in one is stale;
//! `make install` puts each where its shell looks.

use crate::tools;
use clap_complete::{generate, Shell};

/// The shells completions are made for, and the folder of each under
/// `completions/`.
const SHELLS: [(Shell, &str); 3] = [
    (Shell::Bash, "bash"),
    (Shell::Zsh, "zsh"),
    (Shell::Fish, "fish"),
];

/// `(path under completions/, script)` for every tool and shell: bash's
/// `bash/vd-push`, zsh's `zsh/_vd-push`, fish's `fish/vd-push.fish`, the
/// names each shell's completion folder expects.
pub fn scripts() -> Vec<(String, Vec<u8>)> {
    let mut scripts = Vec::new();
    for mut cmd in tools::commands() {
        let name = cmd.get_name().to_string();
        for (shell, dir) in SHELLS {
            let file = match shell {
                Shell::Zsh => format!("_{name}"),
                Shell::Fish => format!("{name}.fish"),
                _ => name.clone(),
            };
            let mut text = Vec::new();
            generate(shell, &mut cmd, &name, &mut text);
            scripts.push((format!("{dir}/{file}"), text));
        }
    }
    scripts
}
