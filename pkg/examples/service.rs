//! A small service wired with every pkg module, the way services/ use it: HTTP on 8080
//! (`/hello/{name}`, `/metrics`, `/healthz`, `/readyz`) and gRPC health on 50051.
//!
//! ```sh
//! cargo run -p pkg --example service
//! curl localhost:8080/hello/ada; curl localhost:8080/hello/nobody; curl localhost:8080/metrics
//! ```
//!
//! SIGTERM or Ctrl-C: requests in flight finish (within SHUTDOWN_GRACE), then it exits.

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::Path;
use pkg::shutdown::{Shutdown, ShutdownConfig};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let _telemetry = pkg::telemetry::init("example-service")?;

    let mut env = pkg::config::Env::from_process();
    let http_addr = env.with_default("HTTP_ADDR", SocketAddr::from(([127, 0, 0, 1], 8080)));
    let grpc_addr = env.with_default("GRPC_ADDR", SocketAddr::from(([127, 0, 0, 1], 50051)));
    let grace = env.with_default("SHUTDOWN_GRACE", Duration::from_secs(5));
    env.finish()?;
    let (http_addr, grpc_addr, grace) = (http_addr?, grpc_addr?, grace?);

    let metrics = pkg::metrics::Metrics::new("example-service");
    let (health, health_service) = pkg::health::Health::new("example.v1.Example").await;
    let shutdown = Shutdown::on_signals(ShutdownConfig { grace, ..ShutdownConfig::default() })?;

    let app = axum::Router::new()
        .route("/hello/{name}", axum::routing::get(hello))
        .fallback(|| async { pkg::Error::not_found("no such route") })
        .layer(metrics.layer())
        .layer(pkg::trace::TraceLayer::new())
        .merge(metrics.router())
        .merge(health.router());
    let http =
        axum::serve(tokio::net::TcpListener::bind(http_addr).await?, app).with_graceful_shutdown(shutdown.signalled());
    let grpc = tonic::transport::Server::builder()
        .layer(pkg::trace::TraceLayer::new())
        .layer(metrics.layer())
        .add_service(health_service)
        .serve_with_shutdown(grpc_addr, shutdown.signalled());

    // Ready once listening; not ready again as soon as shutdown begins, so traffic moves away.
    health.set_serving().await;
    tokio::spawn({
        let (health, signalled) = (health.clone(), shutdown.signalled());
        async move {
            signalled.await;
            health.set_not_serving().await;
        }
    });
    tracing::info!(%http_addr, %grpc_addr, "listening");

    let (http, grpc) = shutdown.drain(async { tokio::join!(http.into_future(), grpc) }).await?;
    http?;
    grpc?;
    Ok(())
}

async fn hello(Path(name): Path<String>) -> Result<String, pkg::Error> {
    if name == "nobody" {
        return Err(pkg::Error::not_found(format!("no one is called {name}")));
    }
    tracing::info!(name, "greeting");
    Ok(format!("hello {name}\n"))
}
