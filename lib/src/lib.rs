//! The library behind the vd tools.
//!
//! vd is a set of small Unix filters that exchange JSON lines, one line per
//! target (one virtualenv on one host). Every tool binary is a thin `main.rs`
//! that calls one function in [`tools`]; everything the tools share — the record
//! format, the inventory, wheels, the repository and its release log, the
//! transport and the remote scripts — lives here so that it is written once.

pub mod cache;
pub mod cli;
pub mod confirm;
pub mod django;
pub mod fleet;
pub mod inventory;
pub mod keyed_lock;
pub mod lock;
pub mod log;
pub mod man;
pub mod output;
pub mod plan;
pub mod push;
pub mod record;
pub mod remote;
pub mod repo;
pub mod requirement;
pub mod resolve;
pub mod shell;
pub mod tags;
pub mod tools;
pub mod transport;
pub mod wheel;
