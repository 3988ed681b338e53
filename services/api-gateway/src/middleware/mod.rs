//! The gateway's own middleware; tracing and metrics come from [`pkg`].
//!
//! Order on the API routes, outermost first: trace span ([`pkg::trace::TraceLayer`]) →
//! [`request_id`] → metrics ([`pkg::metrics::MetricsLayer`]) → [`auth`] (protected routes) →
//! [`rate_limit`] → handler. Authentication runs before rate limiting so the bucket is the
//! token subject's.

pub mod auth;
pub mod rate_limit;
pub mod request_id;
