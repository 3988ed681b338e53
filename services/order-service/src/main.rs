//! order-service's entry point: configuration, telemetry, listeners, and the signals that end it.
//! Everything else is in the library (`order_service::server::run`).
//!
//! Exit status: 0 after a clean shutdown, 1 when serving failed, 2 when the configuration is
//! invalid (nothing was started).

use std::process::ExitCode;

use order_service::config::{Config, SERVICE_NAME};
use pkg::shutdown::{Shutdown, ShutdownConfig};

#[tokio::main]
async fn main() -> ExitCode {
    pkg::service::main(SERVICE_NAME, async |config: Config| {
        // SIGTERM is what `docker stop` and Kubernetes send; as PID 1 in a scratch image nothing
        // else would handle it.
        let shutdown = Shutdown::on_signals(ShutdownConfig { grace: config.shutdown_grace, force_exit: true })?;
        let grpc = pkg::service::bind("GRPC_ADDR", config.grpc_addr).await?;
        let metrics = pkg::service::bind("METRICS_ADDR", config.metrics_addr).await?;
        tracing::info!(grpc = %config.grpc_addr, metrics = %config.metrics_addr, "listening");
        order_service::server::run(config, grpc, metrics, shutdown).await?;
        Ok(())
    })
    .await
}
