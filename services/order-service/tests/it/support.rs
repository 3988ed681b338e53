//! What the integration tests share: pkg::testing's fresh migrated database per test, the
//! service running in-process on 127.0.0.1:0, and a TCP proxy that can cut the service off its
//! database, set up for this service; a fake user-service, and a fake NATS server.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use order_service::config::{Config, NatsUrl, UpstreamAddr};
use order_service::proto::user::v1::user_service_server::{UserService, UserServiceServer};
use order_service::proto::user::v1::{
    CreateUserRequest, CreateUserResponse, GetUserRequest, GetUserResponse, ListUsersRequest, ListUsersResponse, User,
};
use order_service::server::RunError;
use pkg::postgres::DatabaseUrl;
use pkg::shutdown::{Shutdown, ShutdownConfig};
use pkg::telemetry::TelemetryConfig;
pub use pkg::testing::{Proxy, TestDb, eventually, http_get};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};

/// The service, running in this process.
pub type TestServer = pkg::testing::TestServer<RunError>;

/// A database of its own for one test, with the service's migrations applied; dropped with it.
pub async fn test_db() -> TestDb {
    TestDb::create("order_service", concat!(env!("CARGO_MANIFEST_DIR"), "/migrations")).await
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

/// Starts the service over `database` as `options` say, with a fast health probe and outbox
/// relay.
pub async fn start_server(database: tokio_postgres::Config, options: Options) -> TestServer {
    TestServer::start(|grpc, metrics, shutdown| {
        let config = Config {
            grpc_addr: grpc.local_addr().unwrap(),
            metrics_addr: metrics.local_addr().unwrap(),
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
        order_service::server::run(config, grpc, metrics, shutdown)
    })
    .await
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
