//! What services' integration tests share (feature `testing`, for `[dev-dependencies]` only):
//! a fresh migrated database per test, the service's servers on `127.0.0.1:0`, a TCP proxy that
//! can cut a service off its database, and small waiting and HTTP helpers.
//!
//! ```no_run
//! # async fn run(config: tokio_postgres::Config, grpc: tokio::net::TcpListener, metrics: tokio::net::TcpListener, shutdown: pkg::shutdown::Shutdown) -> Result<(), std::io::Error> { Ok(()) }
//! # async fn f() {
//! use pkg::testing::{Proxy, TestDb, TestServer};
//! let db = TestDb::create("user_service", concat!(env!("CARGO_MANIFEST_DIR"), "/migrations")).await;
//! let proxy = Proxy::start(&db.config).await;
//! let database = db.through(&proxy);
//! let server = TestServer::start(|grpc, metrics, shutdown| run(database, grpc, metrics, shutdown)).await;
//! // let mut client = server.client(UserServiceClient::new).await;
//! proxy.cut(); // the database is gone, as far as the service can tell
//! server.shutdown().await.unwrap();
//! # }
//! ```
//!
//! The databases live on the PostgreSQL server `PLAT_TEST_DATABASE_URL` names (in the platform
//! repository `scripts/postgres` starts one and prints its URL). Without it a test fails, with a
//! message saying so, rather than skipping: "all green" must never mean "nothing ran".

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_postgres::NoTls;
use tokio_postgres::config::Host;

use crate::shutdown::{Shutdown, ShutdownConfig};

/// The variable naming the PostgreSQL server test databases are created on.
pub const DATABASE_URL_VAR: &str = "PLAT_TEST_DATABASE_URL";

/// The server every test database is created on, from `PLAT_TEST_DATABASE_URL`.
///
/// # Panics
///
/// When the variable is unset, empty, or not a PostgreSQL URL: the test fails, saying what to
/// do, rather than skipping.
pub fn admin_config() -> tokio_postgres::Config {
    admin_config_from(std::env::var(DATABASE_URL_VAR).ok()).unwrap_or_else(|message| panic!("{message}"))
}

fn admin_config_from(url: Option<String>) -> Result<tokio_postgres::Config, String> {
    let url = url.filter(|url| !url.is_empty()).ok_or_else(|| {
        format!(
            "{DATABASE_URL_VAR} is not set: the integration tests need a PostgreSQL server to create their \
             databases on (in the platform repository, run `scripts/postgres` and export the URL it prints, \
             e.g. {DATABASE_URL_VAR}=postgres://postgres@127.0.0.1:55432/postgres)"
        )
    })?;
    tokio_postgres::Config::from_str(&url)
        .map_err(|e| format!("{DATABASE_URL_VAR} is not a PostgreSQL URL ({e}); expected postgres://user@host:port/db"))
}

async fn connect(config: &tokio_postgres::Config) -> tokio_postgres::Client {
    let (client, connection) = config.connect(NoTls).await.unwrap_or_else(|e| {
        panic!(
            "connecting to PostgreSQL at {:?} (database {:?}): {e}",
            config.get_hosts(),
            config.get_dbname().unwrap_or_default()
        )
    });
    tokio::spawn(connection);
    client
}

/// A database of its own for one test, with a service's migrations applied; dropped (forcibly:
/// connections the service still holds are closed) when this value is.
#[derive(Debug)]
pub struct TestDb {
    /// The database's name, `<prefix>_test_<uuid>`.
    pub name: String,
    /// How to reach it directly.
    pub config: tokio_postgres::Config,
}

impl TestDb {
    /// Creates a database named `<prefix>_test_<a fresh UUID>` (`prefix` in lowercase letters,
    /// digits and `_`: the service's database name, like `user_service`) on the server of
    /// [`admin_config`], and applies the migrations in `migrations` (see [`apply_migrations`]).
    pub async fn create(prefix: &str, migrations: impl AsRef<Path>) -> TestDb {
        assert!(
            !prefix.is_empty() && prefix.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
            "test database prefix {prefix:?}: use lowercase letters, digits and _"
        );
        let admin = admin_config();
        let name = format!("{prefix}_test_{}", uuid::Uuid::now_v7().simple());
        connect(&admin)
            .await
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .await
            .unwrap_or_else(|e| panic!("creating the test database {name}: {e}"));
        let mut config = admin.clone();
        config.dbname(&name);
        // Dropped on a panic below too, so a bad migration leaves no database behind.
        let db = TestDb { name, config };
        apply_migrations(&db.client().await, migrations.as_ref()).await;
        db
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

    /// A new connection to the database, for a test's own queries.
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

/// Applies the `<version>_<name>.sql` files of `dir` in version order (`*.down.sql` left out),
/// each in a transaction: what `plat migrate` does, less its history table and checks (plat's
/// own tests cover those).
///
/// # Panics
///
/// When `dir` cannot be read, holds no migration, or a migration fails; the message names the
/// file.
pub async fn apply_migrations(client: &tokio_postgres::Client, dir: &Path) {
    let mut files: Vec<(i64, PathBuf)> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading the migrations in {}: {e}", dir.display()))
        .map(|entry| entry.unwrap_or_else(|e| panic!("reading the migrations in {}: {e}", dir.display())).path())
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
    assert!(!files.is_empty(), "no migrations (<version>_<name>.sql) in {}", dir.display());
    for (_, path) in files {
        let sql = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        client
            .batch_execute(&format!("BEGIN;\n{sql}\nCOMMIT;"))
            .await
            .unwrap_or_else(|e| panic!("applying {}: {e}", path.display()));
    }
}

/// A service running in the test's process, listening on `127.0.0.1:0`.
#[derive(Debug)]
pub struct TestServer<E> {
    /// Where the gRPC server listens.
    pub addr: SocketAddr,
    /// Where `GET /metrics` is served.
    pub metrics_addr: SocketAddr,
    /// The service's shutdown switch, as SIGTERM would flip it (without exiting the process).
    pub shutdown: Shutdown,
    task: JoinHandle<Result<(), E>>,
}

impl<E: Send + 'static> TestServer<E> {
    /// Binds a gRPC and a metrics listener on `127.0.0.1:0` and spawns `run` with them and a
    /// shutdown switch (5 s grace): a service's `server::run`, with a configuration that can
    /// read the listeners' addresses.
    pub async fn start<F, Fut>(run: F) -> Self
    where
        F: FnOnce(TcpListener, TcpListener, Shutdown) -> Fut,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
    {
        let (grpc, addr) = loopback().await;
        let (metrics, metrics_addr) = loopback().await;
        let shutdown = Shutdown::new(ShutdownConfig { grace: Duration::from_secs(5), force_exit: false });
        let task = tokio::spawn(run(grpc, metrics, shutdown.clone()));
        TestServer { addr, metrics_addr, shutdown, task }
    }

    /// The gRPC server's URL, `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A generated client connected to the gRPC server: `server.client(UserServiceClient::new)`.
    pub async fn client<C>(&self, new: impl FnOnce(tonic::transport::Channel) -> C) -> C {
        let channel = tonic::transport::Endpoint::from_shared(self.url())
            .expect("a loopback URL is a valid endpoint")
            .connect()
            .await
            .unwrap_or_else(|e| panic!("connecting to the test server at {}: {e}", self.url()));
        new(channel)
    }

    /// Triggers shutdown and waits for `run` to return.
    pub async fn shutdown(self) -> Result<(), E> {
        self.shutdown.trigger();
        self.task.await.expect("the server task does not panic")
    }
}

async fn loopback() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("binding a listener on 127.0.0.1:0");
    let addr = listener.local_addr().expect("a bound listener has an address");
    (listener, addr)
}

/// A TCP proxy to PostgreSQL that can be switched off: cut, it closes every open connection and
/// refuses new ones, as a database that went away would look to the service.
#[derive(Debug)]
pub struct Proxy {
    /// Where the proxy listens, on 127.0.0.1.
    pub addr: SocketAddr,
    enabled: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
}

impl Proxy {
    /// A proxy to the first host of `upstream` (a TCP host).
    pub async fn start(upstream: &tokio_postgres::Config) -> Proxy {
        let host = match upstream.get_hosts().first() {
            Some(Host::Tcp(host)) => host.clone(),
            other => panic!("{DATABASE_URL_VAR} must name a TCP host, not {other:?}"),
        };
        let port = upstream.get_ports().first().copied().unwrap_or(5432);
        let upstream = format!("{host}:{port}");
        let (listener, addr) = loopback().await;
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
                    connections.lock().unwrap_or_else(|e| e.into_inner()).push(task);
                }
            }
        });
        Proxy { addr, enabled, connections, accept }
    }

    /// Closes every connection through the proxy and refuses new ones.
    pub fn cut(&self) {
        self.enabled.store(false, Ordering::SeqCst);
        for task in self.connections.lock().unwrap_or_else(|e| e.into_inner()).drain(..) {
            task.abort();
        }
    }

    /// Accepts connections again.
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

/// Waits until `check` holds, polling every 25 ms.
///
/// # Panics
///
/// After `within`, naming `what` was awaited.
pub async fn eventually<F, Fut>(within: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
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
    let mut stream = TcpStream::connect(addr).await.unwrap_or_else(|e| panic!("connecting to {addr}: {e}"));
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: test\r\n\r\n").as_bytes())
        .await
        .unwrap_or_else(|e| panic!("sending GET {path} to {addr}: {e}"));
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap_or_else(|e| panic!("reading GET {path} from {addr}: {e}"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unset_or_empty_database_url_fails_saying_what_to_do() {
        for unset in [None, Some(String::new())] {
            let message = admin_config_from(unset).unwrap_err();
            assert!(message.starts_with("PLAT_TEST_DATABASE_URL is not set"), "{message}");
            assert!(message.contains("scripts/postgres"), "{message}");
        }
        let message = admin_config_from(Some("postgres://host:notaport/db".into())).unwrap_err();
        assert!(message.contains("is not a PostgreSQL URL"), "{message}");
        let config = admin_config_from(Some("postgres://postgres@127.0.0.1:55432/postgres".into())).unwrap();
        assert_eq!(config.get_ports(), [55432]);
    }
}
