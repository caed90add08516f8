//! The entries of the lists vd-diff puts in a record: `plan` (one
//! [`Change`] per package), `ahead` and `unchanged`. They live with the
//! record, below the planner that makes them, because every tool after
//! vd-diff reads them back ([`super::Changes`], [`super::Ahead`],
//! [`super::Unchanged`]).

use serde::{Deserialize, Serialize};

/// What to do with one package.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Not installed: install the wheel.
    Install,
    /// Installed at an older version: install the newer wheel.
    Upgrade,
    /// Installed at a newer version the specifier excludes: install the older wheel.
    Downgrade,
    /// Installed but not required (`--exact`): uninstall it.
    Remove,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Install => "install",
            Action::Upgrade => "upgrade",
            Action::Downgrade => "downgrade",
            Action::Remove => "remove",
        }
    }
}

/// One change to a venv: an element of a record's `plan`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub name: String,
    pub action: Action,
    /// The installed version, if any.
    pub from: Option<String>,
    /// The version to install; none for `remove`.
    pub to: Option<String>,
    /// The repository's wheel file to install.
    pub wheel: Option<String>,
    /// sha256 of the whole wheel file.
    pub sha256: Option<String>,
}

/// An installed package newer than anything in the repository that still
/// satisfies the requirements: kept, and reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AheadPackage {
    pub name: String,
    pub installed: String,
    /// The best version the repository has for this target, if any.
    pub repository: Option<String>,
}

/// A package of the closure the plan leaves as it is, with the wheel that
/// holds it: what vd-push needs to build a whole new generation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnchangedPackage {
    pub name: String,
    pub version: String,
    pub wheel: String,
    pub sha256: String,
}
