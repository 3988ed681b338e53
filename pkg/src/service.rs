//! A service's `main`, written once: its configuration read (every bad variable named at once),
//! telemetry set up, served until SIGTERM, and the exit status every service documents: 0 after
//! a clean shutdown, 1 when serving failed, 2 when the configuration is invalid (nothing was
//! started).
//!
//! ```no_run
//! # use std::time::Duration;
//! # use pkg::config::{ConfigError, Env};
//! # use pkg::telemetry::{TelemetryConfig, TelemetryError};
//! # struct Config { grpc_addr: std::net::SocketAddr }
//! # impl pkg::service::ServiceConfig for Config {
//! #     fn from_env(env: Env) -> Result<Self, ConfigError> { todo!() }
//! #     fn telemetry(&self) -> Result<TelemetryConfig, TelemetryError> { TelemetryConfig::from_env("user-service") }
//! # }
//! #[tokio::main]
//! async fn main() -> std::process::ExitCode {
//!     pkg::service::main("user-service", async |config: Config| {
//!         let grpc = pkg::service::bind("GRPC_ADDR", config.grpc_addr).await?;
//!         // ... serve on it until the shutdown signal
//!         Ok(())
//!     })
//!     .await
//! }
//! ```

use std::net::SocketAddr;
use std::process::ExitCode;

use tokio::net::TcpListener;

use crate::config::{ConfigError, Env};
use crate::telemetry::{TelemetryConfig, TelemetryError};

/// Any error a service's serving ends with.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What the entry point needs of a service's configuration.
pub trait ServiceConfig: Sized {
    /// Reads it from the environment; the error names every variable that is missing or
    /// malformed.
    fn from_env(env: Env) -> Result<Self, ConfigError>;

    /// Its telemetry settings (`RUST_LOG`, `OTEL_EXPORTER_OTLP_ENDPOINT`).
    fn telemetry(&self) -> Result<TelemetryConfig, TelemetryError>;
}

/// The exit status of an invalid configuration: nothing was started.
const EXIT_CONFIG: u8 = 2;

/// Runs a service: reads `C` from the process's environment, sets up telemetry, runs `serve`
/// with it, and turns the outcome into the exit status. A configuration that cannot be read is
/// printed plainly on stderr (telemetry is not set up yet: its settings may be the problem);
/// everything after goes to the JSON logs, and a failure to stderr too, for whoever runs the
/// binary by hand.
pub async fn main<C: ServiceConfig>(service: &str, serve: impl AsyncFnOnce(C) -> Result<(), BoxError>) -> ExitCode {
    let config = match C::from_env(Env::from_process()) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("error: {service}: {error}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let telemetry = match config.telemetry().and_then(|telemetry| telemetry.init()) {
        Ok(guard) => guard,
        Err(error) => {
            eprintln!("error: {service}: {error}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let code = match serve(config).await {
        Ok(()) => {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        Err(error) => {
            tracing::error!(error = &*error as &dyn std::error::Error, "stopped on an error");
            eprintln!("error: {service}: {error}");
            ExitCode::FAILURE
        }
    };
    drop(telemetry); // flushes the last spans
    code
}

/// Listens on `addr`; the error names the variable it came from.
pub async fn bind(variable: &str, addr: SocketAddr) -> Result<TcpListener, BoxError> {
    TcpListener::bind(addr).await.map_err(|error| format!("cannot listen on {variable}={addr}: {error}").into())
}

/// A gRPC server's connections from `listener`, with Nagle's algorithm off: an answer is several
/// small writes (headers, message, trailers), and with it on each write after the first waits for
/// the client's delayed ACK — 40 ms added to a call.
pub fn grpc_incoming(listener: TcpListener) -> tonic::transport::server::TcpIncoming {
    tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true))
}
