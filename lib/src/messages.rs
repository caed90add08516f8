//! What a tool says on stderr besides its records: warnings, errors that no
//! record carries, and a target's error as the tool that found it says it.
//!
//! A leaf: it imports nothing of the crate, so every module may speak
//! through it (the fleet, the transport, the release log, a saved freeze
//! being read) without an arrow running back up to the console or the
//! command line. How a line is shown is decided above and registered once
//! when the tool starts ([`set_display`]): the console writes a line above
//! its progress bar, and at a terminal leaves a target's error to the stage
//! that ends the pipeline, which shows it once. Until then, and in unit
//! tests, a line goes to stderr as it is.

use std::io::Write;
use std::sync::OnceLock;

/// How this tool's stderr wants messages shown; set once, at start.
pub struct Display {
    /// Drop warnings (`--quiet`); errors are always written.
    pub quiet: bool,
    /// A target's error is shown by the pipeline's last stage (in its
    /// table, or its own line on stderr), not by the tool that found it.
    pub target_errors_shown_by_last_stage: bool,
    /// Write one line of text (at a terminal, above the progress bar).
    pub line: fn(&str),
}

static DISPLAY: OnceLock<Display> = OnceLock::new();

/// Register how messages are shown. Only the first call counts: a tool
/// decides this once, before any worker speaks.
pub fn set_display(display: Display) {
    let _ = DISPLAY.set(display);
}

/// A warning, prefixed with the tool's name (not with `--quiet`).
pub fn warn(tool: &str, message: &str) {
    if DISPLAY.get().is_some_and(|d| d.quiet) {
        return;
    }
    line(&format!("{tool}: {message}"));
}

/// An error that no record carries (a release log that cannot be written,
/// the error that stops a tool), prefixed with the tool's name: always
/// written.
pub fn error(tool: &str, message: &str) {
    line(&format!("{tool}: {message}"));
}

/// A target's error, which its record carries too, prefixed with the tool's
/// name: written now unless the pipeline's last stage shows it.
pub fn target_error(tool: &str, message: &str) {
    if DISPLAY
        .get()
        .is_some_and(|d| d.target_errors_shown_by_last_stage)
    {
        return;
    }
    line(&format!("{tool}: {message}"));
}

/// One line on stderr, the registered way.
fn line(text: &str) {
    match DISPLAY.get() {
        Some(display) => (display.line)(text),
        None => {
            let _ = writeln!(std::io::stderr().lock(), "{text}");
        }
    }
}
