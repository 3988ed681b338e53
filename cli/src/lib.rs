//! plat's engine: the workspace model and every operation the `plat` CLI runs on it.
//!
//! The engine never prints. Functions return values and report progress through typed events;
//! the CLI (`src/main.rs` and its modules) decides how anything looks. See docs/architecture.md.

// The engine never prints: enforced, not only said.
#![deny(clippy::print_stdout, clippy::print_stderr)]

pub mod build;
pub mod contract;
pub mod deploy;
pub mod docker;
pub mod doctor;
pub mod git;
pub mod graph;
pub mod health;
pub mod lock;
pub mod logs;
pub mod manifest;
pub mod migrate;
pub mod proto;
pub mod stack;
pub mod state;
pub mod status;
pub mod sync;
pub mod testing;
pub mod text;
pub mod watch;
