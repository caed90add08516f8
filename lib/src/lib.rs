//! The library behind the vd tools.
//!
//! vd is a set of small Unix filters that exchange JSON lines, one line per
//! target (one virtualenv on one host). Every tool binary is a thin `main.rs`
//! that calls one function in [`tools`]; everything the tools share — the record
//! format, the inventory, wheels, the repository and its release log, the
//! transport and the remote scripts — lives here so that it is written once.
//!
//! # Layers
//!
//! Modules import only from their own layer and the layers below it, never
//! up, and files do not import each other in a loop (the one exception is
//! inside [`transport`], the recursion of a connection through a bastion).
//! A unit test reads the sources and holds the crate to this order, lowest
//! first:
//!
//! 1. Leaves, which import nothing of the crate: [`messages`] (what a tool
//!    says on stderr), [`bounded`], [`shell`], [`escape`], [`ssh_name`],
//!    [`keyed_mutex`].
//! 2. Data, the formats vd reads and writes: [`hop`] (a bastion's
//!    address), [`wheel`], [`requirement`], [`record`] (with the plan's
//!    entries), [`tags`], [`fingerprint`], [`inventory`].
//! 3. Domain, what vd decides offline: [`log`], [`repo`], [`resolve`],
//!    [`plan`], [`saved_freeze`], [`pylock`] (PEP 751 locks, read as
//!    requirements and written), [`export`] (what vd-export writes); and
//!    [`fetch`], which asks pip what a fleet needs from an index, outside
//!    the network.
//! 4. Hosts: [`transport`], [`remote`] (the scripts run there), [`cache`].
//! 5. Presentation: [`summary`], [`console`], [`output`], [`confirm`].
//! 6. [`fleet`], which runs a tool's work over the hosts.
//! 7. [`push`], a deployment's steps on one target.
//! 8. [`cli`], the options the tools share and how a tool exits.
//! 9. [`tools`], one module per tool, and [`rollout`], the waves of
//!    vd-rollout (which switch targets back as vd-rollback does); then
//!    [`man`] and [`completions`], generated from the tools' definitions.

// The documentation is for the people who work on vd: it covers the private
// modules (`make lint` builds it with --document-private-items), and public
// items may link to them.
#![allow(rustdoc::private_intra_doc_links)]

mod bounded;
mod cache;
mod cli;
pub mod completions;
mod confirm;
mod console;
mod escape;
mod export;
mod fetch;
mod fingerprint;
mod fleet;
mod hop;
mod inventory;
mod keyed_mutex;
#[cfg(test)]
mod layers;
pub mod log;
pub mod man;
mod messages;
mod output;
mod plan;
mod push;
mod pylock;
mod record;
mod remote;
mod repo;
mod requirement;
mod resolve;
mod rollout;
mod saved_freeze;
mod shell;
mod ssh_name;
mod summary;
pub mod tags;
#[cfg(test)]
mod testing;
pub mod tools;
mod transport;
pub mod wheel;
