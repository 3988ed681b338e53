//! Runs the service until shutdown: the gRPC server (`user.v1.UserService` and
//! `grpc.health.v1.Health`), the metrics server, and the database health probe.
//!
//! `main` calls [`run`] with listeners on the configured addresses and a [`Shutdown`] flipped by
//! SIGTERM; the integration tests call it with listeners on `127.0.0.1:0` and flip it themselves.

use std::sync::Arc;

use pkg::health::Health;
use pkg::metrics::Metrics;
use pkg::shutdown::{GraceExpired, Shutdown};
use prometheus::IntGauge;
use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;

use crate::config::{Config, SERVICE_NAME};
use crate::handler::{UserHandler, health};
use crate::proto::user::v1::user_service_server::UserServiceServer;
use crate::repository::RepositoryError;
use crate::repository::postgres::{PgUserRepository, pool};
use crate::service::UserService;

/// Why the service stopped other than by a clean shutdown.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The database pool could not be set up.
    #[error("cannot set up the database pool")]
    Pool(#[source] RepositoryError),
    /// The gRPC server failed.
    #[error("gRPC server failed")]
    Grpc(#[source] tonic::transport::Error),
    /// The metrics server failed.
    #[error("metrics server failed")]
    Metrics(#[source] std::io::Error),
    /// In-flight requests were cut off at the end of the grace period.
    #[error(transparent)]
    GraceExpired(#[from] GraceExpired),
}

/// Serves on `grpc` and `metrics` until `shutdown` is triggered, then drains: health turns
/// NOT_SERVING, the listeners close, and in-flight requests get the shutdown's grace period.
pub async fn run(config: Config, grpc: TcpListener, metrics: TcpListener, shutdown: Shutdown) -> Result<(), RunError> {
    let registry = Metrics::new(SERVICE_NAME);
    let database_up = IntGauge::new("database_up", "1 while the service's database answers its health probe")
        .expect("database_up is a valid metric");
    registry.registry().register(Box::new(database_up.clone())).expect("database_up is registered once");

    let pool = pool(&config.database.0, config.database_pool_size).map_err(RunError::Pool)?;
    let service = Arc::new(UserService::new(PgUserRepository::new(pool)));

    let (health, health_service) = Health::new(health::SERVICE_NAME).await;
    let probe = health::watch_database(&health, service.clone(), config.health_probe_interval, database_up);
    // On shutdown the probe stops first, so it cannot turn a draining server back to SERVING.
    let drain_health = tokio::spawn({
        let (health, shutdown) = (health.clone(), shutdown.clone());
        async move {
            shutdown.signalled().await;
            probe.abort();
            let _ = probe.await;
            health.set_not_serving().await;
        }
    });

    let grpc_server = tonic::transport::Server::builder()
        .layer(pkg::trace::TraceLayer::new())
        .layer(registry.layer())
        .add_service(health_service)
        .add_service(UserServiceServer::from_arc(Arc::new(UserHandler::new(service))))
        .serve_with_incoming_shutdown(TcpIncoming::from(grpc), shutdown.signalled());
    let metrics_server = pkg::metrics::serve(metrics, registry, shutdown.signalled());
    let servers = async {
        tokio::try_join!(async { grpc_server.await.map_err(RunError::Grpc) }, async {
            metrics_server.await.map_err(RunError::Metrics)
        },)
        .map(|_| ())
    };
    let result = shutdown.drain(servers).await;
    drain_health.abort();
    result?
}
