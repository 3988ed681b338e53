//! Runs the service until shutdown: the gRPC server (`order.v1.OrderService` and
//! `grpc.health.v1.Health`), the metrics server, the database health probe, and, when `NATS_URL`
//! is set, the outbox relay publishing OrderCreated events.
//!
//! `main` calls [`run`] with listeners on the configured addresses and a [`Shutdown`] flipped by
//! SIGTERM; the integration tests call it with listeners on `127.0.0.1:0` and flip it themselves.

use std::sync::Arc;

use pkg::health::Health;
use pkg::metrics::Metrics;
use pkg::postgres::HealthProbe;
use pkg::shutdown::{GraceExpired, Shutdown};
use tokio::net::TcpListener;
use tokio::sync::Notify;

use crate::client::user_client::GrpcUserDirectory;
use crate::config::{Config, SERVICE_NAME};
use crate::events::nats::NatsPublisher;
use crate::events::relay::{self, RelayConfig, RelayMetrics};
use crate::handler::OrderHandler;
use crate::proto::order::v1::order_service_server::{self, OrderServiceServer};
use crate::repository::postgres::PgOrderRepository;
use crate::service::{Events, OrderService};

/// Why the service stopped other than by a clean shutdown.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The database pool could not be set up.
    #[error("cannot set up the database pool")]
    Pool(#[source] deadpool_postgres::BuildError),
    /// `USER_SERVICE_ADDR` cannot be used.
    #[error(transparent)]
    UserService(#[from] pkg::client::InvalidAddress),
    /// `NATS_URL` cannot be used.
    #[error("cannot set up the NATS client")]
    Nats(#[source] async_nats::ConnectError),
    /// The recorded descriptors (`src/proto/descriptor.bin`) do not make a reflection service:
    /// `plat proto gen` writes them again.
    #[error("cannot serve gRPC reflection")]
    Reflection(#[source] pkg::reflection::ReflectionError),
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
    let pool =
        pkg::postgres::pool(&config.database.0, SERVICE_NAME, config.database_pool_size).map_err(RunError::Pool)?;
    let repository = PgOrderRepository::new(pool.clone());
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

    // SERVING while the service's own database answers, NOT_SERVING from shutdown on;
    // `database_up` follows. The user-service and NATS are left out on purpose: while the
    // user-service is down the order-service still serves GetOrder and ListOrdersByUser, and
    // answers CreateOrder with a fast UNAVAILABLE; while NATS is down events wait in the outbox.
    // NOT_SERVING for either would only take it out of rotation, or get it restarted, for nothing.
    let (health, health_service) = Health::new(order_service_server::SERVICE_NAME).await;
    let _probe = HealthProbe::start(pool, &health, &registry, &shutdown, config.health_probe_interval);

    // What this service serves, readable by `plat test --contract` and grpcurl.
    let reflection = pkg::reflection::service(crate::proto::FILE_DESCRIPTOR_SET, &[order_service_server::SERVICE_NAME])
        .map_err(RunError::Reflection)?;
    let grpc_server = tonic::transport::Server::builder()
        .layer(pkg::trace::TraceLayer::new())
        .layer(registry.layer())
        .add_service(health_service)
        .add_service(reflection)
        .add_service(OrderServiceServer::from_arc(Arc::new(OrderHandler::new(service))))
        .serve_with_incoming_shutdown(pkg::service::grpc_incoming(grpc), shutdown.signalled());
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
    result?
}
