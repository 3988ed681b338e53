//! The test harness: fake upstreams (tonic servers for user.v1, order.v1 and grpc.health.v1
//! with test-controlled behaviour) and the real gateway router, all on 127.0.0.1.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, SystemTime};

use api_gateway::config::{Config, JwtSecret};
use api_gateway::middleware::auth::Verifier;
use api_gateway::proto::order::v1 as order_pb;
use api_gateway::proto::order::v1::order_service_server::{OrderService, OrderServiceServer};
use api_gateway::proto::user::v1 as user_pb;
use api_gateway::proto::user::v1::user_service_server::{UserService, UserServiceServer};
use http_body_util::BodyExt as _;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use pkg::health::Health;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::{Request, Response, Status};
use tonic_health::pb::health_server::HealthServer;
use tonic_health::server::HealthService;

pub const SECRET: &str = "integration-test-secret-of-32-bytes!";

/// Installs pkg's telemetry once per process, so that spans carry trace ids and the gateway
/// propagates `traceparent` as it does in production. Log lines go nowhere.
pub fn init_telemetry() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let config = pkg::telemetry::TelemetryConfig {
            service_name: "api-gateway-test".into(),
            log_filter: "warn".into(),
            otlp_endpoint: None,
        };
        let (dispatch, guard) = config.build(std::io::sink).expect("telemetry builds");
        // Kept for the life of the test process.
        std::mem::forget(guard);
        let _ = tracing::dispatcher::set_global_default(dispatch);
    });
}

/// What the fake upstreams saw: calls per gRPC method, and the last `traceparent` per method.
#[derive(Clone, Debug, Default)]
pub struct Seen {
    calls: Arc<Mutex<HashMap<String, usize>>>,
    traceparents: Arc<Mutex<HashMap<String, String>>>,
}

impl Seen {
    /// How many calls reached `path` (like `/user.v1.UserService/GetUser`).
    pub fn calls(&self, path: &str) -> usize {
        self.calls.lock().unwrap().get(path).copied().unwrap_or(0)
    }

    /// Calls to any method of the API (health checks excluded).
    pub fn api_calls(&self) -> usize {
        self.calls.lock().unwrap().iter().filter(|(path, _)| !path.starts_with("/grpc.health")).map(|(_, n)| n).sum()
    }

    /// The `traceparent` the last call to `path` carried.
    pub fn traceparent(&self, path: &str) -> Option<String> {
        self.traceparents.lock().unwrap().get(path).cloned()
    }

    fn record<B>(&self, request: &http::Request<B>) {
        let path = request.uri().path().to_owned();
        *self.calls.lock().unwrap().entry(path.clone()).or_default() += 1;
        if let Some(value) = request.headers().get("traceparent").and_then(|v| v.to_str().ok()) {
            self.traceparents.lock().unwrap().insert(path, value.to_owned());
        }
    }
}

/// A fake user-service: users kept in memory, in creation order.
#[derive(Clone, Debug, Default)]
pub struct FakeUsers {
    users: Arc<Mutex<Vec<user_pb::User>>>,
}

fn now() -> prost_types::Timestamp {
    prost_types::Timestamp::from(SystemTime::now())
}

#[tonic::async_trait]
impl UserService for FakeUsers {
    async fn create_user(
        &self,
        request: Request<user_pb::CreateUserRequest>,
    ) -> Result<Response<user_pb::CreateUserResponse>, Status> {
        let request = request.into_inner();
        let mut users = self.users.lock().unwrap();
        if users.iter().any(|u| u.email.eq_ignore_ascii_case(&request.email)) {
            return Err(Status::already_exists(format!("a user with email {} exists", request.email)));
        }
        let user = user_pb::User {
            id: uuid::Uuid::new_v4().to_string(),
            email: request.email,
            display_name: request.display_name,
            create_time: Some(now()),
        };
        users.push(user.clone());
        Ok(Response::new(user_pb::CreateUserResponse { user: Some(user) }))
    }

    async fn get_user(
        &self,
        request: Request<user_pb::GetUserRequest>,
    ) -> Result<Response<user_pb::GetUserResponse>, Status> {
        let id = request.into_inner().id;
        let users = self.users.lock().unwrap();
        match users.iter().find(|u| u.id == id) {
            Some(user) => Ok(Response::new(user_pb::GetUserResponse { user: Some(user.clone()) })),
            None => Err(Status::not_found(format!("no user has id {id}"))),
        }
    }

    async fn list_users(
        &self,
        request: Request<user_pb::ListUsersRequest>,
    ) -> Result<Response<user_pb::ListUsersResponse>, Status> {
        let request = request.into_inner();
        let users = self.users.lock().unwrap();
        let (page, next_page_token) = paginate(&users, request.page_size, &request.page_token)?;
        Ok(Response::new(user_pb::ListUsersResponse { users: page, next_page_token }))
    }
}

/// The page after `token` (an index, in these fakes) of at most `size` items.
fn paginate<T: Clone>(items: &[T], size: i32, token: &str) -> Result<(Vec<T>, String), Status> {
    let size = if size == 0 { 50 } else { size.min(1000) } as usize;
    let start = if token.is_empty() {
        0
    } else {
        token.parse::<usize>().map_err(|_| Status::invalid_argument("page_token was not issued by this service"))?
    };
    let end = (start + size).min(items.len());
    let next = if end < items.len() { end.to_string() } else { String::new() };
    Ok((items.get(start..end).unwrap_or_default().to_vec(), next))
}

/// A fake order-service: orders kept in memory.
#[derive(Clone, Debug, Default)]
pub struct FakeOrders {
    orders: Arc<Mutex<Vec<order_pb::Order>>>,
}

#[tonic::async_trait]
impl OrderService for FakeOrders {
    async fn create_order(
        &self,
        request: Request<order_pb::CreateOrderRequest>,
    ) -> Result<Response<order_pb::CreateOrderResponse>, Status> {
        let request = request.into_inner();
        let currency = request.items[0].unit_price.clone().unwrap_or_default().currency_code;
        let total = request
            .items
            .iter()
            .map(|i| i64::from(i.quantity) * i.unit_price.as_ref().map_or(0, |p| p.amount_minor))
            .sum();
        let order = order_pb::Order {
            id: uuid::Uuid::new_v4().to_string(),
            user_id: request.user_id,
            items: request.items,
            total: Some(order_pb::Money { amount_minor: total, currency_code: currency }),
            status: order_pb::OrderStatus::Pending as i32,
            create_time: Some(now()),
        };
        self.orders.lock().unwrap().push(order.clone());
        Ok(Response::new(order_pb::CreateOrderResponse { order: Some(order) }))
    }

    async fn get_order(
        &self,
        request: Request<order_pb::GetOrderRequest>,
    ) -> Result<Response<order_pb::GetOrderResponse>, Status> {
        let id = request.into_inner().id;
        let orders = self.orders.lock().unwrap();
        match orders.iter().find(|o| o.id == id) {
            Some(order) => Ok(Response::new(order_pb::GetOrderResponse { order: Some(order.clone()) })),
            None => Err(Status::not_found(format!("no order has id {id}"))),
        }
    }

    async fn list_orders_by_user(
        &self,
        request: Request<order_pb::ListOrdersByUserRequest>,
    ) -> Result<Response<order_pb::ListOrdersByUserResponse>, Status> {
        let request = request.into_inner();
        let orders = self.orders.lock().unwrap();
        let mine: Vec<_> = orders.iter().rev().filter(|o| o.user_id == request.user_id).cloned().collect();
        let (page, next_page_token) = paginate(&mine, request.page_size, &request.page_token)?;
        Ok(Response::new(order_pb::ListOrdersByUserResponse { orders: page, next_page_token }))
    }
}

/// Which API a fake upstream serves.
#[derive(Clone, Debug)]
pub enum Api {
    Users(FakeUsers),
    Orders(FakeOrders),
}

impl Api {
    fn health_name(&self) -> &'static str {
        match self {
            Api::Users(_) => "user.v1.UserService",
            Api::Orders(_) => "order.v1.OrderService",
        }
    }
}

/// A fake upstream gRPC server on a fixed loopback port, that a test can stop and start again.
/// Its state (users, orders, what it saw, health) survives restarts.
pub struct Upstream {
    pub addr: SocketAddr,
    pub seen: Seen,
    pub health: Health,
    health_service: HealthServer<HealthService>,
    api: Api,
    running: Option<(oneshot::Sender<()>, JoinHandle<()>)>,
}

impl Upstream {
    /// Starts a fake serving `api`, reporting SERVING.
    pub async fn start(api: Api) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (health, health_service) = Health::new(api.health_name()).await;
        let mut upstream = Upstream {
            addr: listener.local_addr().unwrap(),
            seen: Seen::default(),
            health,
            health_service,
            api,
            running: None,
        };
        upstream.health.set_serving().await;
        upstream.serve(listener);
        upstream
    }

    /// Starts the fake again on the same port.
    pub async fn restart(&mut self) {
        assert!(self.running.is_none(), "stop the fake before restarting it");
        let listener = TcpListener::bind(self.addr).await.expect("the port is free again");
        self.serve(listener);
    }

    /// Shuts the server down: connections close, new ones are refused.
    pub async fn stop(&mut self) {
        if let Some((stop, task)) = self.running.take() {
            let _ = stop.send(());
            let abort = task.abort_handle();
            if tokio::time::timeout(Duration::from_secs(2), task).await.is_err() {
                abort.abort();
            }
        }
    }

    pub fn uri(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn serve(&mut self, listener: TcpListener) {
        let seen = self.seen.clone();
        let counting = tower::util::MapRequestLayer::new(move |request: http::Request<tonic::body::Body>| {
            seen.record(&request);
            request
        });
        let router = tonic::transport::Server::builder().layer(counting).add_service(self.health_service.clone());
        let router = match &self.api {
            Api::Users(users) => router.add_service(UserServiceServer::new(users.clone())),
            Api::Orders(orders) => router.add_service(OrderServiceServer::new(orders.clone())),
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let incoming = tonic::transport::server::TcpIncoming::from(listener);
        let task = tokio::spawn(async move {
            let _ = router
                .serve_with_incoming_shutdown(incoming, async {
                    let _ = stopped.await;
                })
                .await;
        });
        self.running = Some((stop, task));
    }
}

/// How a test gateway is configured beyond the fakes' addresses.
#[derive(Clone, Debug)]
pub struct Options {
    pub rate_limit_rps: &'static str,
    pub rate_limit_burst: &'static str,
    pub upstream_timeout: &'static str,
    pub ready_cache: &'static str,
    pub breaker_failures: &'static str,
    pub breaker_cool_down: &'static str,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            rate_limit_rps: "1000",
            rate_limit_burst: "1000",
            upstream_timeout: "500ms",
            ready_cache: "1s",
            breaker_failures: "3",
            breaker_cool_down: "200ms",
        }
    }
}

/// The real gateway, served on 127.0.0.1:0 against two fake upstreams.
pub struct TestGateway {
    pub addr: SocketAddr,
    pub users: Upstream,
    pub orders: Upstream,
    pub routes: Vec<(http::Method, &'static str)>,
    client: Client<HttpConnector, http_body_util::Full<bytes::Bytes>>,
    _stop: oneshot::Sender<()>,
}

/// A response, its body parsed as JSON (or as a JSON string when it is not JSON).
#[derive(Debug)]
pub struct Reply {
    pub status: http::StatusCode,
    pub headers: http::HeaderMap,
    pub body: serde_json::Value,
    pub text: String,
}

impl TestGateway {
    pub async fn start() -> TestGateway {
        TestGateway::with(Options::default()).await
    }

    pub async fn with(options: Options) -> TestGateway {
        init_telemetry();
        let users = Upstream::start(Api::Users(FakeUsers::default())).await;
        let orders = Upstream::start(Api::Orders(FakeOrders::default())).await;
        let (user_uri, order_uri) = (users.uri(), orders.uri());
        let env = pkg::config::Env::from_pairs([
            ("USER_SERVICE_ADDR", user_uri.as_str()),
            ("ORDER_SERVICE_ADDR", order_uri.as_str()),
            ("JWT_SECRET", SECRET),
            ("RATE_LIMIT_RPS", options.rate_limit_rps),
            ("RATE_LIMIT_BURST", options.rate_limit_burst),
            ("UPSTREAM_TIMEOUT", options.upstream_timeout),
            ("READY_CACHE", options.ready_cache),
            ("BREAKER_FAILURES", options.breaker_failures),
            ("BREAKER_COOL_DOWN", options.breaker_cool_down),
        ]);
        let config = Config::from_env(env).expect("test configuration is valid");
        let gateway =
            api_gateway::gateway(&config, pkg::metrics::Metrics::new("api-gateway")).expect("fake addresses are valid");
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(api_gateway::router::serve(listener, gateway.router, async {
            let _ = stopped.await;
        }));
        TestGateway {
            addr,
            users,
            orders,
            routes: gateway.routes,
            client: Client::builder(TokioExecutor::new()).build_http(),
            _stop: stop,
        }
    }

    /// A token for `subject`, valid for an hour.
    pub fn token(subject: &str) -> String {
        Verifier::new(JwtSecret::new(SECRET).unwrap()).mint(subject, Duration::from_secs(3600), SystemTime::now())
    }

    pub async fn request(
        &self,
        method: http::Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<serde_json::Value>,
    ) -> Reply {
        let mut request = http::Request::builder().method(method).uri(format!("http://{}{path}", self.addr));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let body = match body {
            Some(json) => {
                request = request.header("content-type", "application/json");
                bytes::Bytes::from(json.to_string())
            }
            None => bytes::Bytes::new(),
        };
        let response = self
            .client
            .request(request.body(http_body_util::Full::new(body)).unwrap())
            .await
            .expect("the gateway answers");
        let (parts, body) = response.into_parts();
        let bytes = body.collect().await.unwrap().to_bytes();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        Reply {
            status: parts.status,
            headers: parts.headers,
            body: serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::String(text.clone())),
            text,
        }
    }

    /// GET as `subject` (with a valid token), or anonymously.
    pub async fn get(&self, path: &str, subject: Option<&str>) -> Reply {
        let token = subject.map(|s| format!("Bearer {}", TestGateway::token(s)));
        let headers: Vec<(&str, &str)> = token.iter().map(|t| ("authorization", t.as_str())).collect();
        self.request(http::Method::GET, path, &headers, None).await
    }

    /// POST JSON as `subject`.
    pub async fn post(&self, path: &str, subject: &str, body: serde_json::Value) -> Reply {
        let token = format!("Bearer {}", TestGateway::token(subject));
        self.request(http::Method::POST, path, &[("authorization", &token)], Some(body)).await
    }
}

/// Counts up, for tests that need distinct values.
pub fn unique() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}
