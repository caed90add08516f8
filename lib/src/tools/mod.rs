//! One module per tool: its command-line definition and its `main`.
//!
//! The clap definitions live here rather than in `tools/*/main.rs` so that
//! the man pages are generated from the same definitions as `--help`.

pub mod add;
pub mod diff;
pub mod freeze;
pub mod push;
pub mod targets;

/// Every tool's command definition, for generating man pages.
pub fn commands() -> Vec<clap::Command> {
    vec![
        add::command(),
        targets::command(),
        freeze::command(),
        diff::command(),
        push::command(),
    ]
}
