//! Calls to the upstream gRPC services, through [`pkg::client`]: a per-call timeout (sent as
//! `grpc-timeout`), retries with jittered backoff for idempotent reads only, and one circuit
//! breaker per upstream, shared by all requests. The trace context of the request being served
//! is sent along as `traceparent`.
//!
//! **Architecture invariant:** handlers reach upstreams only through [`UserClient`] and
//! [`OrderClient`], so no call can skip the timeout and breaker.

mod health;
mod orders;
mod users;

use std::time::Duration;

use http::Uri;
use pkg::ErrorKind;
use pkg::client::{Client, ClientConfig, InvalidAddress, TracedChannel};
use tonic_health::pb::health_client::HealthClient;

pub use health::{HealthProbe, ProbeStatus};
pub use orders::OrderClient;
pub use users::UserClient;

/// The user-service's name in logs, errors, metrics and `/readyz`.
pub const USER_SERVICE: &str = "user-service";
/// The order-service's name in logs, errors, metrics and `/readyz`.
pub const ORDER_SERVICE: &str = "order-service";

/// The generated client for an upstream's API, and a health client on the same connection.
#[derive(Clone, Debug)]
pub struct Stubs<T> {
    api: T,
    health: HealthClient<TracedChannel>,
}

/// Connects lazily to one upstream: nothing is dialled until the first call, so the gateway
/// starts (and answers `/healthz`) while its upstreams are still starting.
fn connect<T>(
    upstream: &str,
    uri: &Uri,
    config: ClientConfig,
    make: impl FnOnce(TracedChannel) -> T,
) -> Result<Client<Stubs<T>>, InvalidAddress> {
    Client::connect_lazy(upstream, &uri.to_string(), config, |channel| Stubs {
        api: make(channel.clone()),
        health: HealthClient::new(channel),
    })
}

/// Turns a failed upstream call into the error the REST client receives.
///
/// Answers about the request (INVALID_ARGUMENT, NOT_FOUND, ALREADY_EXISTS, ...) pass through
/// with the upstream's message, which the contracts write for clients. When the upstream did not
/// answer, the transport's text (addresses, connection errors) is logged, and the client reads
/// only which upstream is unavailable.
fn upstream_error(upstream: &str, status: tonic::Status) -> pkg::Error {
    let error = pkg::Error::from(status);
    match error.kind() {
        ErrorKind::Unavailable => {
            tracing::warn!(upstream, error = %error.message(), "upstream unavailable");
            pkg::Error::unavailable(format!("{upstream} is unavailable, retry later"))
        }
        ErrorKind::DeadlineExceeded => {
            tracing::warn!(upstream, error = %error.message(), "upstream timed out");
            pkg::Error::deadline_exceeded(format!("{upstream} did not answer in time"))
        }
        _ => error,
    }
}

/// A well-formed response lacking the message it exists to carry: the upstream broke its
/// contract.
fn missing(upstream: &str, what: &str) -> pkg::Error {
    pkg::Error::internal(format!("{upstream} answered without {what}"))
}

/// Settings for the upstream clients, from the gateway's configuration.
pub fn client_config(timeout: Duration, breaker: pkg::client::BreakerConfig) -> ClientConfig {
    ClientConfig {
        timeout,
        // A connection that takes longer than the call may take is of no use to the call.
        connect_timeout: timeout,
        breaker,
        ..ClientConfig::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::{Code, Status};

    #[test]
    fn grpc_statuses_map_to_http_statuses() {
        let cases = [
            (Code::InvalidArgument, 400),
            (Code::FailedPrecondition, 400),
            (Code::NotFound, 404),
            (Code::AlreadyExists, 409),
            (Code::ResourceExhausted, 429),
            (Code::Unavailable, 503),
            (Code::DeadlineExceeded, 504),
            (Code::Internal, 500),
            (Code::Unknown, 500),
        ];
        for (code, http) in cases {
            let error = upstream_error(USER_SERVICE, Status::new(code, "detail"));
            assert_eq!(error.kind().http_status().as_u16(), http, "{code:?}");
        }
    }

    #[test]
    fn answers_keep_the_upstream_message_and_failures_hide_transport_details() {
        let not_found = upstream_error(USER_SERVICE, Status::not_found("no user has id 42"));
        assert_eq!(not_found.public_message(), "no user has id 42");
        let down =
            upstream_error(USER_SERVICE, Status::unavailable("tcp connect error: 10.0.0.7:50051: Connection refused"));
        assert_eq!(down.public_message(), "user-service is unavailable, retry later");
        let internal = upstream_error(USER_SERVICE, Status::internal("pq: relation users does not exist"));
        assert_eq!(internal.public_message(), "internal error");
    }
}
