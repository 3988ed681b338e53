//! Integration tests of pkg: real tonic and axum servers on 127.0.0.1 ephemeral ports.
//!
//! Tests that look at logs or traces install the telemetry subscriber for their own thread
//! (`set_default`) and run on a current-thread runtime, so every task they spawn (servers,
//! the client channel) logs into that test's capture, whether tests share a process or not.

mod client;
mod config;
mod error;
mod field;
mod health;
mod metrics;
mod pagination;
mod postgres;
mod shutdown;
mod telemetry;
mod testing;
mod trace;

use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use pkg::telemetry::{TelemetryConfig, TelemetryGuard};
use tokio::net::TcpListener;
use tracing_subscriber::fmt::MakeWriter;

/// Log lines written by the telemetry subscriber, kept in memory.
#[derive(Clone, Default)]
pub struct LogCapture {
    buffer: Arc<Mutex<Vec<u8>>>,
}

impl LogCapture {
    /// Every line so far, parsed as JSON (a line that is not JSON fails the test).
    pub fn lines(&self) -> Vec<serde_json::Value> {
        let buffer = self.buffer.lock().unwrap();
        String::from_utf8(buffer.clone())
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("log line is not JSON ({e}): {line}")))
            .collect()
    }

    /// The lines whose message is `message`.
    pub fn with_message(&self, message: &str) -> Vec<serde_json::Value> {
        self.lines().into_iter().filter(|line| line["message"] == message).collect()
    }
}

pub struct CaptureWriter(Arc<Mutex<Vec<u8>>>);

impl Write for CaptureWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for LogCapture {
    type Writer = CaptureWriter;

    fn make_writer(&'a self) -> CaptureWriter {
        CaptureWriter(self.buffer.clone())
    }
}

/// Telemetry as `telemetry::init` sets it up, without OTLP, logging into a capture for the
/// current thread only.
pub struct Telemetry {
    pub logs: LogCapture,
    _default: tracing::dispatcher::DefaultGuard,
    _guard: TelemetryGuard,
}

pub fn telemetry(service: &str) -> Telemetry {
    let config =
        TelemetryConfig { service_name: service.to_owned(), log_filter: "info".to_owned(), otlp_endpoint: None };
    let logs = LogCapture::default();
    let (dispatch, guard) = config.build(logs.clone()).unwrap();
    Telemetry { logs, _default: tracing::dispatcher::set_default(&dispatch), _guard: guard }
}

/// A listener on an ephemeral port of the loopback interface.
pub async fn loopback() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    (listener, addr)
}

/// A loopback address where nothing listens: bound, then released.
pub async fn closed_port() -> SocketAddr {
    let (listener, addr) = loopback().await;
    drop(listener);
    addr
}

/// Serves an axum router on a loopback port until the test ends.
pub async fn serve_http(router: axum::Router) -> SocketAddr {
    let (listener, addr) = loopback().await;
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

/// Makes one HTTP/1 request with hyper, through `InjectLayer` so it carries the current trace.
pub async fn http_get(addr: SocketAddr, path: &str) -> (http::StatusCode, http::HeaderMap, String) {
    use http_body_util::BodyExt;
    use tower::{Service, ServiceExt};
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<bytes::Bytes>>();
    let mut client = tower::ServiceBuilder::new().layer(pkg::trace::InjectLayer::new()).service(client);
    let request = http::Request::get(format!("http://{addr}{path}")).body(http_body_util::Empty::new()).unwrap();
    let response = client.ready().await.unwrap().call(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    (parts.status, parts.headers, String::from_utf8(body.to_vec()).unwrap())
}
