//! Integration tests: the real router on 127.0.0.1:0 against fake upstream gRPC servers.

mod auth;
mod openapi;
mod rate_limit;
mod readiness;
mod resilience;
mod routes;
mod support;
