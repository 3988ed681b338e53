//! gRPC health (`grpc.health.v1.Health`, through [`pkg::health`]): SERVING only while the
//! service's own database answers.
//!
//! The user-service and NATS are deliberately left out: while the user-service is down the
//! order-service still serves GetOrder and ListOrdersByUser, and answers CreateOrder with a fast
//! UNAVAILABLE; while NATS is down events wait in the outbox. Reporting NOT_SERVING for either
//! would only take the order-service out of rotation, or get it restarted, for nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use pkg::health::Health;
use prometheus::IntGauge;
use tokio::task::JoinHandle;

use crate::client::user_client::UserDirectory;
use crate::repository::OrderRepository;
use crate::service::OrderService;

/// The gRPC service name whose health is reported, besides the overall `""`.
pub const SERVICE_NAME: &str = "order.v1.OrderService";

/// How long one ping may take before the database counts as unreachable.
const PING_TIMEOUT: Duration = Duration::from_secs(2);

/// Pings the database now and every `interval`, keeping `health` and the `database_up` gauge in
/// step with the answers, and logging why when the database becomes unreachable. Abort the
/// returned task to stop it.
pub fn watch_database<R: OrderRepository, U: UserDirectory>(
    health: &Health,
    service: Arc<OrderService<R, U>>,
    interval: Duration,
    database_up: IntGauge,
) -> JoinHandle<()> {
    // Whether the previous ping succeeded: the reason is logged once per outage, not per ping.
    let was_up = Arc::new(AtomicBool::new(true));
    health.watch(interval, move || {
        let (service, database_up, was_up) = (service.clone(), database_up.clone(), was_up.clone());
        async move {
            let result = match tokio::time::timeout(PING_TIMEOUT, service.repository().ping()).await {
                Ok(result) => result.map_err(|e| error_chain(&e)),
                Err(_) => Err(format!("no answer within {PING_TIMEOUT:?}")),
            };
            let up = result.is_ok();
            if let Err(error) = result {
                if was_up.load(Ordering::Relaxed) {
                    tracing::warn!(%error, "database unreachable");
                }
            }
            was_up.store(up, Ordering::Relaxed);
            database_up.set(i64::from(up));
            up
        }
    })
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
