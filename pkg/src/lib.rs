//! Shared plumbing for the platform's services: every service links this crate so that logs,
//! traces, metrics, errors, upstream calls, health and shutdown behave the same everywhere.
//!
//! | module | for |
//! |---|---|
//! | [`config`] | typed environment variables, every problem reported at once |
//! | [`telemetry`] | JSON logs on stdout, spans exported over OTLP when configured |
//! | [`trace`] | W3C `traceparent`: parsing, server extraction layer, client injection layer |
//! | [`metrics`] | Prometheus request counter and latency histogram, `/metrics` |
//! | [`error`] | one [`Error`] that becomes a gRPC status or an HTTP JSON response |
//! | [`client`] | gRPC upstream calls with timeouts, retries and a circuit breaker |
//! | [`shutdown`] | SIGTERM/SIGINT, draining in-flight requests within a bound |
//! | [`health`] | gRPC health protocol and HTTP `/healthz` `/readyz` from one switch |
//! | [`reflection`] | gRPC server reflection from the descriptors `plat proto gen` records |
//! | [`body`] | how an exchange ended (HTTP status, gRPC code), as the server layers see it |
//! | [`pagination`] | keyset pagination: page sizes, checked page tokens bound to a listing (and a scope), pages |
//! | [`field`] | request fields in INVALID_ARGUMENT messages: quoting client values, UUID fields |
//! | `postgres` | feature `postgres`: `DATABASE_URL`, a pool with bounded waits, database errors, the health probe |
//! | `testing` | feature `testing`, for integration tests: a migrated database per test, servers on `127.0.0.1:0`, a proxy that cuts the database |
//!
//! The README beside this crate shows how a service wires them together.

pub mod body;
pub mod client;
pub mod config;
pub mod error;
pub mod field;
pub mod health;
pub mod metrics;
pub mod pagination;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod reflection;
pub mod service;
pub mod shutdown;
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;
pub mod trace;

pub use error::{Error, ErrorKind};
