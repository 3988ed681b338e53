//! Runs the service until shutdown: the gRPC server (`order.v1.OrderService` and
//! `grpc.health.v1.Health`), the metrics server, the database health probe, and, when `NATS_URL`
//! is set, the outbox relay publishing OrderCreated events.
//!
//! `main` calls [`run`] with listeners on the configured addresses and a [`Shutdown`] flipped by
//! SIGTERM; the integration tests call it with listeners on `127.0.0.1:0` and flip it themselves.

use std::sync::Arc;

use pkg::health::Health;
use pkg::metrics::Metrics;
use pkg::shutdown::{GraceExpired, Shutdown};
use prometheus::IntGauge;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tonic::transport::server::TcpIncoming;

use crate::client::user_client::GrpcUserDirectory;
use crate::config::{Config, SERVICE_NAME};
use crate::events::nats::NatsPublisher;
use crate::events::relay::{self, RelayConfig, RelayMetrics};
use crate::handler::{OrderHandler, health};
use crate::proto::order::v1::order_service_server::OrderServiceServer;
use crate::repository::RepositoryError;
use crate::repository::postgres::{PgOrderRepository, pool};
use crate::service::{Events, OrderService};

/// Why the service stopped other than by a clean shutdown.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The database pool could not be set up.
    #[error("cannot set up the database pool")]
    Pool(#[source] RepositoryError),
    /// `USER_SERVICE_ADDR` cannot be used.
    #[error(transparent)]
    UserService(#[from] pkg::client::InvalidAddress),
    /// `NATS_URL` cannot be used.
    #[error("cannot set up the NATS client")]
    Nats(#[source] async_nats::ConnectError),
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

    let repository =
        PgOrderRepository::new(pool(&config.database.0, config.database_pool_size).map_err(RunError::Pool)?);
    let users = GrpcUserDirectory::connect_lazy(&config.user_service_addr.0, config.user_service_timeout)?;

    // Events: the outbox and its relay when NATS_URL is set, nothing otherwise.
    let mut background = Vec::new();
    let events = match &config.nats_url {
        Some(url) => {
            let publisher = NatsPublisher::connect(&url.0).await.map_err(RunError::Nats)?;
            let wake = Arc::new(Notify::new());
            let relay_config = RelayConfig { poll_interval: config.outbox_poll_interval, ..RelayConfig::default() };
            background.push(tokio::spawn(relay::run(
                Arc::new(repository.clone()),
                publisher,
                wake.clone(),
                relay_config,
                RelayMetrics::register(registry.registry()),
            )));
            Events::Outbox { relay: wake }
        }
        None => {
            tracing::info!("NATS_URL is not set: OrderCreated events are not published");
            Events::Off
        }
    };
    let service = Arc::new(OrderService::new(repository, users, events));

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
        .add_service(OrderServiceServer::from_arc(Arc::new(OrderHandler::new(service))))
        .serve_with_incoming_shutdown(TcpIncoming::from(grpc), shutdown.signalled());
    let metrics_server = pkg::metrics::serve(metrics, registry, shutdown.signalled());
    let servers = async {
        tokio::try_join!(async { grpc_server.await.map_err(RunError::Grpc) }, async {
            metrics_server.await.map_err(RunError::Metrics)
        },)
        .map(|_| ())
    };
    let result = shutdown.drain(servers).await;
    // The relay holds leases, not state: stopping it mid-batch only delays those events until
    // their leases end.
    for task in background {
        task.abort();
    }
    drain_health.abort();
    result?
}
