//! Text from records and hosts, made safe to show on a terminal or to log.
//!
//! What vd shows comes in good part from elsewhere: pip's error output on a
//! host, names in a wheel's metadata, paths and fields of records someone
//! else wrote. A terminal acts on control characters in it: ESC starts
//! sequences that retitle the window, clear the screen, hide text or move the
//! cursor over earlier lines; a carriage return overwrites a line; C1
//! controls (U+0080 to U+009F) are escapes of their own on many terminals;
//! bidirectional overrides reorder what is read. So every such character is
//! written as an escape (`\x1b`, `\r`, `\0`, `\u{9b}`, `\u{202e}`) wherever text
//! is shown (table cells, error lines, the progress line, prompts) or
//! logged (release_log cells, read later with `cat`).
//!
//! JSON output is not here: serde already escapes control characters in
//! strings, and a JSON line must keep its text exactly.

use std::borrow::Cow;
use std::fmt::Write;

/// Text for a line of its own (an error line on stderr, a log cell): every
/// control character escaped but the line break and the tab, which a
/// terminal only moves the cursor for (a long error may span lines).
pub fn line(text: &str) -> Cow<'_, str> {
    escaped(text, |c| c == '\n' || c == '\t')
}

/// Text for a place that is one line (a table cell, the progress line, a
/// prompt's target name): every control character escaped, line breaks and
/// tabs too.
pub fn cell(text: &str) -> Cow<'_, str> {
    escaped(text, |_| false)
}

/// Whether a terminal would act on `c` rather than show it.
fn acts(c: char) -> bool {
    c.is_control()
        // Bidirectional embeddings, overrides and isolates.
        || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

fn escaped(text: &str, keep: impl Fn(char) -> bool) -> Cow<'_, str> {
    if !text.chars().any(|c| acts(c) && !keep(c)) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if !acts(c) || keep(c) {
            out.push(c);
            continue;
        }
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\0' => out.push_str("\\0"),
            c if (c as u32) < 0x80 => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_borrowed_as_it_is() {
        for text in ["", "pip: cannot install Django==5.0", "é ü → …", "a\\x1b"] {
            assert!(matches!(cell(text), Cow::Borrowed(t) if t == text));
        }
        assert!(matches!(line("two\nlines\twith tab"), Cow::Borrowed(_)));
    }

    #[test]
    fn every_control_a_terminal_acts_on_is_escaped() {
        let hostile =
            "\u{1b}]0;owned\u{7}\u{1b}[2J\u{1b}[8mhidden\r\u{0}\u{7f}\u{9b}31m\u{202e}txt";
        let want = "\\x1b]0;owned\\x07\\x1b[2J\\x1b[8mhidden\\r\\0\\x7f\\u{9b}31m\\u{202e}txt";
        assert_eq!(line(hostile), want);
        assert_eq!(cell(hostile), want);
        assert_eq!(cell("a\nb\tc"), "a\\nb\\tc");
        assert_eq!(line("a\nb\tc\r"), "a\nb\tc\\r");
        for text in [line(hostile), cell(hostile)] {
            assert!(!text.chars().any(acts), "{text}");
        }
    }
}
