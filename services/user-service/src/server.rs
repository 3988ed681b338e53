//! Runs the service until shutdown: the gRPC server (`user.v1.UserService` and
//! `grpc.health.v1.Health`), the metrics server, and the database health probe.
//!
//! `main` calls [`run`] with listeners on the configured addresses and a [`Shutdown`] flipped by
//! SIGTERM; the integration tests call it with listeners on `127.0.0.1:0` and flip it themselves.

use std::sync::Arc;

use pkg::health::Health;
use pkg::metrics::Metrics;
use pkg::postgres::HealthProbe;
use pkg::shutdown::{GraceExpired, Shutdown};
use tokio::net::TcpListener;

use crate::config::{Config, SERVICE_NAME};
use crate::handler::UserHandler;
use crate::proto::user::v1::user_service_server::{self, UserServiceServer};
use crate::repository::postgres::PgUserRepository;
use crate::service::UserService;

/// Why the service stopped other than by a clean shutdown.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The database pool could not be set up.
    #[error("cannot set up the database pool")]
    Pool(#[source] deadpool_postgres::BuildError),
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
    let service = Arc::new(UserService::new(PgUserRepository::new(pool.clone())));

    // SERVING while the database answers, NOT_SERVING from shutdown on; `database_up` follows.
    let (health, health_service) = Health::new(user_service_server::SERVICE_NAME).await;
    let _probe = HealthProbe::start(pool, &health, &registry, &shutdown, config.health_probe_interval);

    // What this service serves, readable by `plat test --contract` and grpcurl.
    let reflection = pkg::reflection::service(crate::proto::FILE_DESCRIPTOR_SET, &[user_service_server::SERVICE_NAME])
        .map_err(RunError::Reflection)?;
    let grpc_server = tonic::transport::Server::builder()
        .layer(pkg::trace::TraceLayer::new())
        .layer(registry.layer())
        .add_service(health_service)
        .add_service(reflection)
        .add_service(UserServiceServer::from_arc(Arc::new(UserHandler::new(service))))
        .serve_with_incoming_shutdown(pkg::service::grpc_incoming(grpc), shutdown.signalled());
    let metrics_server = pkg::metrics::serve(metrics, registry, shutdown.signalled());
    let servers = async {
        tokio::try_join!(async { grpc_server.await.map_err(RunError::Grpc) }, async {
            metrics_server.await.map_err(RunError::Metrics)
        },)
        .map(|_| ())
    };
    shutdown.drain(servers).await?
}
