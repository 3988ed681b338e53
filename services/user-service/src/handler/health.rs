//! gRPC health (`grpc.health.v1.Health`, through [`pkg::health`]): SERVING only while the
//! database answers.
//!
//! A background probe pings the database every interval and flips both the overall status
//! (`""`) and `user.v1.UserService`'s, which is what `plat up` and Kubernetes probes ask for.
//! The service starts NOT_SERVING and turns SERVING after the first successful ping, so
//! nothing is routed to it before its database is reachable.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use pkg::health::Health;
use prometheus::IntGauge;
use tokio::task::JoinHandle;

use crate::repository::UserRepository;
use crate::service::UserService;

/// The gRPC service name whose health is reported, besides the overall `""`.
pub const SERVICE_NAME: &str = "user.v1.UserService";

/// How long one ping may take before the database counts as unreachable.
const PING_TIMEOUT: Duration = Duration::from_secs(2);

/// Pings the database now and every `interval`, keeping `health` and the `database_up` gauge in
/// step with the answers, and logging why when the database becomes unreachable. Abort the
/// returned task to stop it.
pub fn watch_database<R: UserRepository>(
    health: &Health,
    service: Arc<UserService<R>>,
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
