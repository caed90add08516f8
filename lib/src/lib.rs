//! The library behind the vd tools.
//!
//! vd is a set of small Unix filters that exchange JSON lines, one line per
//! target (one virtualenv on one host). Every tool binary is a thin `main.rs`
//! that calls one function in [`tools`]; everything the tools share — the record
//! format, the inventory, wheels, the repository and its release log, the
//! transport and the remote scripts — lives here so that it is written once.

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
mod fingerprint;
mod fleet;
mod inventory;
mod keyed_lock;
mod lock;
pub mod log;
pub mod man;
mod output;
mod plan;
mod push;
mod record;
mod remote;
mod repo;
mod requirement;
mod resolve;
mod shell;
mod summary;
pub mod tags;
pub mod tools;
mod transport;
pub mod wheel;
