//! What the integration tests share: a fresh migrated database per test, the service running
//! in-process on 127.0.0.1:0, a TCP proxy that can cut the service off its database, a fake
//! user-service, and a fake NATS server.

use std::net::SocketAddr;
use std::path::Path;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use std::collections::HashSet;

use order_service::config::{Config, NatsUrl, UpstreamAddr};
use order_service::proto::order::v1::order_service_client::OrderServiceClient;
use order_service::proto::user::v1::user_service_server::{UserService, UserServiceServer};
use order_service::proto::user::v1::{
    CreateUserRequest, CreateUserResponse, GetUserRequest, GetUserResponse, ListUsersRequest, ListUsersResponse, User,
};
use order_service::server::RunError;
use pkg::postgres::DatabaseUrl;
use pkg::shutdown::{Shutdown, ShutdownConfig};
use pkg::telemetry::TelemetryConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_postgres::NoTls;
use tokio_postgres::config::Host;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};

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
        let name = format!("order_service_test_{}", uuid::Uuid::now_v7().simple());
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

/// How a test wants the service configured.
pub struct Options {
    pub user_service_addr: String,
    pub user_service_timeout: Duration,
    pub nats_url: Option<String>,
}

impl Options {
    pub fn users(user_service: &FakeUserService) -> Options {
        Options {
            user_service_addr: format!("http://{}", user_service.addr),
            user_service_timeout: Duration::from_millis(500),
            nats_url: None,
        }
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
    pub async fn start(database: tokio_postgres::Config, options: Options) -> TestServer {
        let grpc = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let metrics = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (addr, metrics_addr) = (grpc.local_addr().unwrap(), metrics.local_addr().unwrap());
        let config = Config {
            grpc_addr: addr,
            metrics_addr,
            database: DatabaseUrl(database),
            database_pool_size: 4,
            user_service_addr: UpstreamAddr(options.user_service_addr),
            user_service_timeout: options.user_service_timeout,
            nats_url: options.nats_url.map(NatsUrl),
            shutdown_grace: Duration::from_secs(5),
            health_probe_interval: Duration::from_millis(100),
            outbox_poll_interval: Duration::from_millis(100),
            telemetry: TelemetryConfig {
                service_name: "order-service".into(),
                log_filter: "info".into(),
                otlp_endpoint: None,
            },
        };
        let shutdown = Shutdown::new(ShutdownConfig { grace: Duration::from_secs(5), force_exit: false });
        let task = tokio::spawn(order_service::server::run(config, grpc, metrics, shutdown.clone()));
        TestServer { addr, metrics_addr, shutdown, task }
    }

    pub async fn client(&self) -> OrderServiceClient<tonic::transport::Channel> {
        OrderServiceClient::connect(format!("http://{}", self.addr)).await.expect("connecting to the test server")
    }

    /// Triggers shutdown and waits for `run` to return.
    pub async fn shutdown(self) -> Result<(), RunError> {
        self.shutdown.trigger();
        self.task.await.expect("the server task does not panic")
    }
}

/// A user-service stand-in on 127.0.0.1:0: knows a set of users, can be slowed down or stopped,
/// and records the `traceparent` of each call it gets.
pub struct FakeUserService {
    pub addr: SocketAddr,
    state: Arc<FakeUsers>,
    stop: Shutdown,
    task: Mutex<Option<JoinHandle<()>>>,
}

#[derive(Default)]
struct FakeUsers {
    users: Mutex<HashSet<String>>,
    delay: Mutex<Duration>,
    traceparents: Mutex<Vec<Option<String>>>,
}

struct FakeUsersHandler(Arc<FakeUsers>);

#[tonic::async_trait]
impl UserService for FakeUsersHandler {
    async fn create_user(&self, _: Request<CreateUserRequest>) -> Result<Response<CreateUserResponse>, Status> {
        Err(Status::unimplemented("not in the fake"))
    }

    async fn get_user(&self, request: Request<GetUserRequest>) -> Result<Response<GetUserResponse>, Status> {
        let traceparent = request.metadata().get("traceparent").and_then(|v| v.to_str().ok()).map(str::to_owned);
        self.0.traceparents.lock().unwrap().push(traceparent);
        let delay = *self.0.delay.lock().unwrap();
        tokio::time::sleep(delay).await;
        let id = request.into_inner().id;
        if self.0.users.lock().unwrap().contains(&id) {
            Ok(Response::new(GetUserResponse {
                user: Some(User { id, email: "fake@example.com".into(), ..Default::default() }),
            }))
        } else {
            Err(Status::not_found(format!("no user has id {id}")))
        }
    }

    async fn list_users(&self, _: Request<ListUsersRequest>) -> Result<Response<ListUsersResponse>, Status> {
        Err(Status::unimplemented("not in the fake"))
    }
}

impl FakeUserService {
    pub async fn start() -> FakeUserService {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(FakeUsers::default());
        let stop = Shutdown::new(ShutdownConfig { grace: Duration::from_secs(1), force_exit: false });
        let task = tokio::spawn({
            let (state, stop) = (state.clone(), stop.clone());
            async move {
                let _ = tonic::transport::Server::builder()
                    .add_service(UserServiceServer::new(FakeUsersHandler(state)))
                    .serve_with_incoming_shutdown(TcpIncoming::from(listener), stop.signalled())
                    .await;
            }
        });
        FakeUserService { addr, state, stop, task: Mutex::new(Some(task)) }
    }

    /// A new known user's id.
    pub fn add_user(&self) -> String {
        let id = uuid::Uuid::now_v7().to_string();
        self.state.users.lock().unwrap().insert(id.clone());
        id
    }

    pub fn set_delay(&self, delay: Duration) {
        *self.state.delay.lock().unwrap() = delay;
    }

    pub fn traceparents(&self) -> Vec<Option<String>> {
        self.state.traceparents.lock().unwrap().clone()
    }

    /// Stops serving, as a stopped container would: open connections are closed (GOAWAY; an
    /// aborted accept loop would leave them serving) and the port refuses new ones.
    pub async fn stop(&self) {
        self.stop.trigger();
        let task = self.task.lock().unwrap().take();
        if let Some(task) = task {
            tokio::time::timeout(Duration::from_secs(5), task).await.expect("the fake user-service stops").unwrap();
        }
    }
}

impl Drop for FakeUserService {
    fn drop(&mut self) {
        if let Some(task) = self.task.lock().unwrap().take() {
            task.abort();
        }
    }
}

/// Enough of a NATS server for a publisher (core protocol, text): INFO, CONNECT, PING/PONG,
/// PUB and HPUB; records what is published.
pub struct FakeNats {
    pub port: u16,
    messages: Published,
    task: JoinHandle<()>,
}

/// Messages a fake NATS server received: (subject, payload).
type Published = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

impl FakeNats {
    /// Listens on `port` (0: any free port).
    pub async fn start_on(port: u16) -> FakeNats {
        let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let messages = Arc::new(Mutex::new(Vec::new()));
        let task = tokio::spawn({
            let messages = messages.clone();
            async move {
                let mut connections = tokio::task::JoinSet::new();
                while let Ok((stream, _)) = listener.accept().await {
                    connections.spawn(fake_nats_connection(stream, port, messages.clone()));
                }
            }
        });
        FakeNats { port, messages, task }
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn messages(&self) -> Vec<(String, Vec<u8>)> {
        self.messages.lock().unwrap().clone()
    }
}

impl Drop for FakeNats {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn fake_nats_connection(stream: TcpStream, port: u16, messages: Published) {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    let info = format!(
        "INFO {{\"server_id\":\"FAKE\",\"server_name\":\"fake\",\"version\":\"2.10.0\",\"go\":\"go1.22\",\"host\":\"127.0.0.1\",\"port\":{port},\"headers\":true,\"max_payload\":1048576,\"proto\":1}}\r\n"
    );
    if write.write_all(info.as_bytes()).await.is_err() {
        return;
    }
    let mut line = String::new();
    loop {
        line.clear();
        match read.read_line(&mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        let Some(verb) = words.first() else { continue };
        let payload_len = match verb.to_ascii_uppercase().as_str() {
            "PING" => {
                if write.write_all(b"PONG\r\n").await.is_err() {
                    return;
                }
                continue;
            }
            // PUB <subject> [reply-to] <#bytes>; HPUB <subject> [reply-to] <#header bytes> <#total bytes>
            "PUB" | "HPUB" => words.last().and_then(|n| n.parse::<usize>().ok()).unwrap_or(0),
            _ => continue,
        };
        let mut body = vec![0; payload_len + 2];
        if read.read_exact(&mut body).await.is_err() {
            return;
        }
        body.truncate(payload_len);
        if verb.eq_ignore_ascii_case("HPUB") {
            let headers: usize = words[words.len() - 2].parse().unwrap_or(0);
            body.drain(..headers);
        }
        messages.lock().unwrap().push((words[1].to_owned(), body));
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
