//! Integration tests: the real binaries, run the way a user runs them.

mod util;

mod add;
mod cheap_generations;
mod completions;
mod diff;
mod export;
mod fetch;
mod freeze;
mod generations;
mod hostile;
mod interpreters;
mod man;
mod migrate;
mod pip_choices;
mod pipeline;
mod push;
mod pylock;
mod reach;
mod reload;
mod reload_generations;
mod remote_guard;
mod resolve;
mod rollout;
mod running;
mod stream;
mod targets;
mod terminal;
mod uv;
