//! What the integration tests share: a fresh migrated database per test, the service running
//! in-process on 127.0.0.1:0, a TCP proxy that can cut the service off its database, and a
//! log capture to check trace propagation.

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pkg::postgres::DatabaseUrl;
use pkg::shutdown::{Shutdown, ShutdownConfig};
use pkg::telemetry::TelemetryConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_postgres::NoTls;
use tokio_postgres::config::Host;
use user_service::config::Config;
use user_service::proto::user::v1::user_service_client::UserServiceClient;
use user_service::server::RunError;

/// The server every test database is created on. CI always sets it; a run without it fails
/// rather than skipping, so that "all green" never means "nothing ran".
pub fn admin_config() -> tokio_postgres::Config {
    let url = std::env::var("PLAT_TEST_DATABASE_URL").expect(
        "PLAT_TEST_DATABASE_URL is not set: the integration tests need a PostgreSQL server \
         (run `scripts/postgres` and export the URL it prints, \
         e.g. PLAT_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:55432/postgres)",
    );
    tokio_postgres::Config::from_str(&url).expect("PLAT_TEST_DATABASE_URL is a PostgreSQL URL")
}

async fn connect(config: &tokio_postgres::Config) -> tokio_postgres::Client {
    let (client, connection) = config.connect(NoTls).await.expect("connecting to PostgreSQL");
    tokio::spawn(connection);
    client
}

/// A database of its own for one test, with the service's migrations applied; dropped with it.
pub struct TestDb {
    pub name: String,
    pub config: tokio_postgres::Config,
}

impl TestDb {
    pub async fn create() -> TestDb {
        let admin = admin_config();
        let name = format!("user_service_test_{}", uuid::Uuid::now_v7().simple());
        connect(&admin)
            .await
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .await
            .expect("creating the test database");
        let mut config = admin.clone();
        config.dbname(&name);
        apply_migrations(&connect(&config).await).await;
        TestDb { name, config }
    }

    /// The same database reached through `proxy` instead of directly.
    pub fn through(&self, proxy: &Proxy) -> tokio_postgres::Config {
        let mut config = tokio_postgres::Config::new();
        config.host("127.0.0.1").port(proxy.addr.port()).dbname(&self.name);
        if let Some(user) = self.config.get_user() {
            config.user(user);
        }
        if let Some(password) = self.config.get_password() {
            config.password(password);
        }
        config
    }

    pub async fn client(&self) -> tokio_postgres::Client {
        connect(&self.config).await
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs inside the test's runtime, which cannot block on itself: a thread of its own.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime
                .block_on(async {
                    let client = connect(&admin_config()).await;
                    client.batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")).await
                })
                .map_err(std::io::Error::other)
        })
        .join();
    }
}

/// Applies `migrations/*.sql` in version order, each in a transaction: what `plat migrate` does,
/// less its history table and checks (plat's own tests cover those).
pub async fn apply_migrations(client: &tokio_postgres::Client) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    let mut files: Vec<(i64, std::path::PathBuf)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter_map(|path| {
            let name = path.file_name()?.to_str()?.to_owned();
            if !name.ends_with(".sql") || name.ends_with(".down.sql") {
                return None;
            }
            let version = name.trim_start_matches('V').split('_').next()?.parse().ok()?;
            Some((version, path))
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no migrations in {}", dir.display());
    for (_, path) in files {
        let sql = std::fs::read_to_string(&path).unwrap();
        client
            .batch_execute(&format!("BEGIN;\n{sql}\nCOMMIT;"))
            .await
            .unwrap_or_else(|e| panic!("applying {}: {e}", path.display()));
    }
}

/// The service, running in this process.
pub struct TestServer {
    pub addr: SocketAddr,
    pub metrics_addr: SocketAddr,
    pub shutdown: Shutdown,
    task: JoinHandle<Result<(), RunError>>,
}

impl TestServer {
    pub async fn start(database: tokio_postgres::Config) -> TestServer {
        let grpc = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let metrics = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (addr, metrics_addr) = (grpc.local_addr().unwrap(), metrics.local_addr().unwrap());
        let config = Config {
            grpc_addr: addr,
            metrics_addr,
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
        let shutdown = Shutdown::new(ShutdownConfig { grace: Duration::from_secs(5), force_exit: false });
        let task = tokio::spawn(user_service::server::run(config, grpc, metrics, shutdown.clone()));
        TestServer { addr, metrics_addr, shutdown, task }
    }

    pub async fn client(&self) -> UserServiceClient<tonic::transport::Channel> {
        UserServiceClient::connect(format!("http://{}", self.addr)).await.expect("connecting to the test server")
    }

    /// Sends the shutdown signal and waits for `run` to return.
    pub async fn shutdown(self) -> Result<(), RunError> {
        self.shutdown.trigger();
        self.task.await.expect("the server task does not panic")
    }
}

/// A TCP proxy to PostgreSQL that can be switched off: cut, it closes every open connection and
/// refuses new ones, as a database that went away would look to the service.
pub struct Proxy {
    pub addr: SocketAddr,
    enabled: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
}

impl Proxy {
    pub async fn start(upstream: &tokio_postgres::Config) -> Proxy {
        let host = match &upstream.get_hosts()[0] {
            Host::Tcp(host) => host.clone(),
            other => panic!("PLAT_TEST_DATABASE_URL must name a TCP host, not {other:?}"),
        };
        let port = upstream.get_ports().first().copied().unwrap_or(5432);
        let upstream = format!("{host}:{port}");
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let enabled = Arc::new(AtomicBool::new(true));
        let connections = Arc::new(Mutex::new(Vec::new()));
        let accept = tokio::spawn({
            let (enabled, connections) = (enabled.clone(), connections.clone());
            async move {
                loop {
                    let Ok((mut inbound, _)) = listener.accept().await else { continue };
                    if !enabled.load(Ordering::SeqCst) {
                        drop(inbound);
                        continue;
                    }
                    let upstream = upstream.clone();
                    let task = tokio::spawn(async move {
                        if let Ok(mut outbound) = TcpStream::connect(&upstream).await {
                            let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                        }
                    });
                    connections.lock().unwrap().push(task);
                }
            }
        });
        Proxy { addr, enabled, connections, accept }
    }

    pub fn cut(&self) {
        self.enabled.store(false, Ordering::SeqCst);
        for task in self.connections.lock().unwrap().drain(..) {
            task.abort();
        }
    }

    pub fn restore(&self) {
        self.enabled.store(true, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
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

/// Waits until `check` holds, polling; fails the test after `within`.
pub async fn eventually<F, Fut>(within: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out after {within:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// `GET path` over plain HTTP/1.0; the whole response, headers included.
pub async fn http_get(addr: SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(format!("GET {path} HTTP/1.0\r\nHost: test\r\n\r\n").as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response
}
