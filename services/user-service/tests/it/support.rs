//! What the integration tests share: pkg::testing's fresh migrated database per test, the
//! service running in-process on 127.0.0.1:0, and a TCP proxy that can cut the service off its
//! database, set up for this service; and a log capture to check trace propagation.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pkg::postgres::DatabaseUrl;
use pkg::telemetry::TelemetryConfig;
pub use pkg::testing::{Proxy, TestDb, eventually, http_get};
use user_service::config::Config;
use user_service::server::RunError;

/// The service, running in this process.
pub type TestServer = pkg::testing::TestServer<RunError>;

/// A database of its own for one test, with the service's migrations applied; dropped with it.
pub async fn test_db() -> TestDb {
    TestDb::create("user_service", concat!(env!("CARGO_MANIFEST_DIR"), "/migrations")).await
}

/// Starts the service over `database`, with a fast health probe.
pub async fn start_server(database: tokio_postgres::Config) -> TestServer {
    TestServer::start(|grpc, metrics, shutdown| {
        let config = Config {
            grpc_addr: grpc.local_addr().unwrap(),
            metrics_addr: metrics.local_addr().unwrap(),
            database: DatabaseUrl(database),
            database_pool_size: 4,
            shutdown_grace: Duration::from_secs(5),
            health_probe_interval: Duration::from_millis(100),
            telemetry: TelemetryConfig {
                service_name: "user-service".into(),
                log_filter: "info".into(),
                otlp_endpoint: None,
            },
        };
        user_service::server::run(config, grpc, metrics, shutdown)
    })
    .await
}

/// Log lines written by the service, for assertions; installed as the process's subscriber
/// (nextest runs every test in a process of its own).
#[derive(Clone, Default)]
pub struct LogCapture(Arc<Mutex<Vec<u8>>>);

impl LogCapture {
    pub fn install() -> (LogCapture, pkg::telemetry::TelemetryGuard) {
        let capture = LogCapture::default();
        let config =
            TelemetryConfig { service_name: "user-service".into(), log_filter: "info".into(), otlp_endpoint: None };
        let (dispatch, guard) = config.build(capture.clone()).unwrap();
        tracing::dispatcher::set_global_default(dispatch).unwrap();
        (capture, guard)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogCapture {
    type Writer = LogCapture;
    fn make_writer(&'a self) -> LogCapture {
        self.clone()
    }
}
