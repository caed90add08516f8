//! What the unit tests of several modules share.

/// Assert that `text` holds each of `needles`, naming the one missing.
pub fn assert_contains(text: &str, needles: &[&str]) {
    for needle in needles {
        assert!(text.contains(needle), "{needle:?} not in: {text}");
    }
}
