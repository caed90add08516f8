//! Integration tests: the real binaries, run the way a user runs them.

mod util;

mod freeze;
mod man;
