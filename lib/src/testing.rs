//! What the unit tests of several modules share.

use crate::repo::Index;
use crate::wheel::{Metadata, WheelName};

/// A repository of these wheels (file name, sha256), in memory, each
/// depending on nothing.
pub fn wheel_index(files: &[(&str, &str)]) -> Index {
    Index::in_memory(
        files
            .iter()
            .map(|(file, sha)| {
                let name = WheelName::parse(file).unwrap();
                let metadata = Metadata {
                    name: name.distribution.clone(),
                    version: name.version.clone(),
                    requires_dist: Vec::new(),
                    requires_python: None,
                };
                (name, metadata, sha.to_string())
            })
            .collect(),
    )
}

/// Assert that `text` holds each of `needles`, naming the one missing.
pub fn assert_contains(text: &str, needles: &[&str]) {
    for needle in needles {
        assert!(text.contains(needle), "{needle:?} not in: {text}");
    }
}
