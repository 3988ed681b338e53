//! Shared plumbing for the platform's services: every service links this crate so that logs,
//! traces, metrics, errors, upstream calls, health and shutdown behave the same everywhere.
//!
//! | module | for |
//! |---|---|
//! | [`config`] | typed environment variables, every problem reported at once |

pub mod config;

