//! user-service's entry point: configuration, telemetry, listeners, and the signals that end it.
//! Everything else is in the library (`user_service::server::run`).
//!
//! Exit status: 0 after a clean shutdown, 1 when serving failed, 2 when the configuration is
//! invalid (nothing was started).

use std::process::ExitCode;

use pkg::config::Env;
use pkg::shutdown::{Shutdown, ShutdownConfig};
use tokio::net::TcpListener;
use user_service::config::{Config, SERVICE_NAME};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> ExitCode {
    let config = match Config::from_env(Env::from_process()) {
        Ok(config) => config,
        Err(error) => {
            // Telemetry is not set up yet (its settings may be the problem): plain stderr.
            eprintln!("error: {SERVICE_NAME}: {error}");
            return ExitCode::from(2);
        }
    };
    let telemetry = match config.telemetry.init() {
        Ok(guard) => guard,
        Err(error) => {
            eprintln!("error: {SERVICE_NAME}: {error}");
            return ExitCode::from(2);
        }
    };
    let code = match serve(config).await {
        Ok(()) => {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        Err(error) => {
            tracing::error!(error = &*error as &dyn std::error::Error, "stopped on an error");
            ExitCode::FAILURE
        }
    };
    drop(telemetry); // flushes the last spans
    code
}

async fn serve(config: Config) -> Result<(), BoxError> {
    // SIGTERM is what `docker stop` and Kubernetes send; as PID 1 in a scratch image nothing
    // else would handle it.
    let shutdown = Shutdown::on_signals(ShutdownConfig { grace: config.shutdown_grace, force_exit: true })?;
    let grpc = bind("GRPC_ADDR", config.grpc_addr).await?;
    let metrics = bind("METRICS_ADDR", config.metrics_addr).await?;
    tracing::info!(grpc = %config.grpc_addr, metrics = %config.metrics_addr, "listening");
    user_service::server::run(config, grpc, metrics, shutdown).await?;
    Ok(())
}

async fn bind(variable: &str, addr: std::net::SocketAddr) -> Result<TcpListener, BoxError> {
    TcpListener::bind(addr).await.map_err(|e| format!("cannot listen on {variable}={addr}: {e}").into())
}
