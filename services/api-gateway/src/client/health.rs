//! Asking an upstream whether it is serving, with the standard `grpc.health.v1.Health/Check`.

use std::time::Duration;

use pkg::client::TracedChannel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// What an upstream said when asked whether it serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ProbeStatus {
    /// It serves: the only ready answer.
    Serving,
    /// It is up but says it cannot serve (e.g. its database is down).
    NotServing,
    /// It answered UNKNOWN, or a status this gateway does not know.
    Unknown,
    /// It does not know the service asked about (answered NOT_FOUND).
    ServiceUnknown,
    /// It did not answer in time, or could not be reached.
    Unreachable,
    /// It answered with a gRPC error (e.g. UNIMPLEMENTED: no health service).
    Error,
}

/// Asks one upstream about one of its services. Bypasses the circuit breaker on purpose: the
/// probe reports the upstream's own answer, and `/readyz` caches it instead of retrying.
#[derive(Clone, Debug)]
pub struct HealthProbe {
    upstream: &'static str,
    service: &'static str,
    client: HealthClient<TracedChannel>,
}

impl HealthProbe {
    pub(super) fn new(upstream: &'static str, service: &'static str, client: HealthClient<TracedChannel>) -> Self {
        HealthProbe { upstream, service, client }
    }

    /// The upstream's name, like `user-service`.
    pub fn upstream(&self) -> &'static str {
        self.upstream
    }

    /// Asks, waiting at most `timeout`.
    pub async fn check(&self, timeout: Duration) -> ProbeStatus {
        let mut client = self.client.clone();
        let mut request = tonic::Request::new(HealthCheckRequest { service: self.service.to_owned() });
        request.set_timeout(timeout);
        let result = tokio::time::timeout(timeout, client.check(request)).await;
        match result {
            Ok(Ok(response)) => match ServingStatus::try_from(response.into_inner().status) {
                Ok(ServingStatus::Serving) => ProbeStatus::Serving,
                Ok(ServingStatus::NotServing) => ProbeStatus::NotServing,
                Ok(ServingStatus::ServiceUnknown) => ProbeStatus::ServiceUnknown,
                Ok(ServingStatus::Unknown) | Err(_) => ProbeStatus::Unknown,
            },
            Ok(Err(status)) => match status.code() {
                tonic::Code::NotFound => ProbeStatus::ServiceUnknown,
                tonic::Code::Unavailable | tonic::Code::DeadlineExceeded => {
                    tracing::warn!(upstream = self.upstream, error = %status.message(), "health check: upstream unreachable");
                    ProbeStatus::Unreachable
                }
                code => {
                    tracing::warn!(upstream = self.upstream, ?code, error = %status.message(), "health check failed");
                    ProbeStatus::Error
                }
            },
            Err(_elapsed) => {
                tracing::warn!(
                    upstream = self.upstream,
                    timeout_ms = timeout.as_millis() as u64,
                    "health check: no answer in time"
                );
                ProbeStatus::Unreachable
            }
        }
    }
}
