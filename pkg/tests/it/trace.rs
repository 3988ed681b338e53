//! trace: a traceparent sent by a client reaches real axum and tonic servers, which join the
//! caller's trace; without one, servers start a trace of their own.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use http::HeaderMap;
use opentelemetry::trace::TraceContextExt;
use pkg::client::{Call, Client, ClientConfig};
use pkg::trace::{TraceLayer, TraceParent};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

const CALLER: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

fn caller_trace_id() -> String {
    CALLER.parse::<TraceParent>().unwrap().trace_id.to_string()
}

/// A span standing for the caller, child of the remote `CALLER` traceparent.
fn caller_span() -> tracing::Span {
    let span = tracing::info_span!("caller");
    let mut headers = HeaderMap::new();
    headers.insert("traceparent", CALLER.parse().unwrap());
    span.set_parent(pkg::trace::extract(&headers).unwrap()).unwrap();
    span
}

/// What a gRPC server saw of each request: the traceparent header and its current trace id.
type Seen = Arc<Mutex<Vec<(Option<String>, Option<String>)>>>;

/// A tonic server (the health service) with the trace layer, recording what it saw.
pub async fn grpc_server() -> (SocketAddr, Seen) {
    let seen: Seen = Arc::default();
    let record = seen.clone();
    let capture = tower::util::MapRequestLayer::new(move |request: http::Request<tonic::body::Body>| {
        let header = request.headers().get("traceparent").map(|v| v.to_str().unwrap().to_owned());
        let trace_id = pkg::trace::current_trace_id().map(|id| id.to_string());
        record.lock().unwrap().push((header, trace_id));
        request
    });
    let (health, service) = pkg::health::Health::new("test.v1.Test").await;
    health.set_serving().await;
    let (listener, addr) = crate::loopback().await;
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .layer(TraceLayer::new())
            .layer(capture)
            .add_service(service)
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
            .await
            .unwrap()
    });
    (addr, seen)
}

pub fn health_client(addr: SocketAddr) -> Client<HealthClient<pkg::client::TracedChannel>> {
    Client::connect_lazy("test-service", &format!("http://{addr}"), ClientConfig::default(), HealthClient::new).unwrap()
}

pub async fn check(
    client: &Client<HealthClient<pkg::client::TracedChannel>>,
    service: &str,
) -> Result<i32, tonic::Status> {
    let request = HealthCheckRequest { service: service.to_owned() };
    let response = client.call(Call::idempotent(), request, |mut c, r| async move { c.check(r).await }).await?;
    Ok(response.into_inner().status)
}

fn http_router() -> axum::Router {
    axum::Router::new()
        .route(
            "/users/{id}",
            axum::routing::get(|| async {
                tracing::info!(user = 7, "loading user");
                pkg::trace::current_trace_id().map(|id| id.to_string()).unwrap_or_default()
            }),
        )
        .layer(TraceLayer::new())
}

#[tokio::test]
async fn an_http_server_joins_the_callers_trace() {
    let telemetry = crate::telemetry("api-gateway");
    let addr = crate::serve_http(http_router()).await;

    let (status, _, body) = crate::http_get(addr, "/users/7").instrument(caller_span()).await;
    assert_eq!(status, 200);
    assert_eq!(body, caller_trace_id(), "the handler runs in the caller's trace");

    // The handler's own log line and the request's line both carry the trace id.
    let handler_line = &telemetry.logs.with_message("loading user")[0];
    assert_eq!(handler_line["trace_id"], caller_trace_id());
    assert_eq!(handler_line["fields"]["user"], 7);
    let done = &telemetry.logs.with_message("request completed")[0];
    assert_eq!(done["trace_id"], caller_trace_id());
    assert_eq!(done["target"], "pkg::trace");
    assert_eq!(done["fields"]["status"], "200");
    assert_eq!(done["span"]["name"], "request");
    assert_eq!(done["span"]["route"], "/users/{id}", "the route template, not the path");
    assert_eq!(done["span"]["method"], "GET");
    assert_eq!(done["span_id"], handler_line["span_id"], "both are lines of the request span");
}

#[tokio::test]
async fn a_grpc_server_joins_the_callers_trace() {
    let _telemetry = crate::telemetry("order-service");
    let (addr, seen) = grpc_server().await;
    let client = health_client(addr);

    let caller = caller_span();
    let status = check(&client, "test.v1.Test").instrument(caller.clone()).await.unwrap();
    assert_eq!(status, 1, "SERVING");

    let seen = seen.lock().unwrap();
    let (header, server_trace_id) = &seen[0];
    let sent: TraceParent = header.as_deref().expect("the client sent a traceparent").parse().unwrap();
    assert_eq!(sent.trace_id.to_string(), caller_trace_id());
    assert!(sent.sampled());
    // The parent the server sees is the client call's own span, a child of the caller span.
    let caller_span_id = caller.context().span().span_context().span_id();
    assert_ne!(sent.parent_id, caller_span_id);
    assert_eq!(server_trace_id.as_deref(), Some(caller_trace_id().as_str()));
}

#[tokio::test]
async fn one_trace_spans_http_in_and_grpc_out() {
    // The gateway shape: an HTTP request whose handler calls a gRPC upstream.
    let telemetry = crate::telemetry("api-gateway");
    let (grpc_addr, seen) = grpc_server().await;
    let client = health_client(grpc_addr);
    let router = axum::Router::new()
        .route(
            "/health",
            axum::routing::get(move || {
                let client = client.clone();
                async move { check(&client, "test.v1.Test").await.map(|s| s.to_string()).map_err(pkg::Error::from) }
            }),
        )
        .layer(TraceLayer::new());
    let http_addr = crate::serve_http(router).await;

    // A raw traceparent header, as a browser or curl would send it.
    let request = http::Request::get(format!("http://{http_addr}/health"))
        .header("traceparent", CALLER)
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
    let response = client.request(request).await.unwrap();
    assert_eq!(response.status(), 200);

    assert_eq!(seen.lock().unwrap()[0].1.as_deref(), Some(caller_trace_id().as_str()));
    // The gRPC server's line is a health check's, logged at DEBUG (a probe): at INFO only the
    // HTTP request's line shows, in the caller's trace.
    let lines = telemetry.logs.with_message("request completed");
    assert_eq!(lines.len(), 1, "one line, the HTTP server's: {lines:?}");
    assert_eq!(lines[0]["trace_id"], caller_trace_id());
    assert_eq!(lines[0]["span"]["route"], "/health");
}

#[tokio::test]
async fn probes_log_at_debug_and_failures_still_warn() {
    let telemetry = crate::telemetry("api-gateway");
    let router = axum::Router::new()
        .route("/readyz", axum::routing::get(|| async { "ready" }))
        .route("/healthz", axum::routing::get(|| async { (http::StatusCode::SERVICE_UNAVAILABLE, "no") }))
        .route("/users/{id}", axum::routing::get(|| async { "user" }))
        .layer(TraceLayer::new());
    let addr = crate::serve_http(router).await;
    for path in ["/readyz", "/readyz", "/healthz", "/users/1"] {
        crate::http_get(addr, path).await;
    }
    let lines = telemetry.logs.with_message("request completed");
    let routes: Vec<(&str, &str)> =
        lines.iter().map(|l| (l["span"]["route"].as_str().unwrap(), l["level"].as_str().unwrap())).collect();
    assert_eq!(routes, [("/healthz", "WARN"), ("/users/{id}", "INFO")], "{lines:?}");
}

#[tokio::test]
async fn without_a_traceparent_each_request_starts_its_own_trace() {
    let _telemetry = crate::telemetry("api-gateway");
    let addr = crate::serve_http(http_router()).await;
    let (_, _, first) = crate::http_get(addr, "/users/1").await;
    let (_, _, second) = crate::http_get(addr, "/users/2").await;
    for id in [&first, &second] {
        assert_eq!(id.len(), 32, "{id:?}");
        assert_ne!(id, "00000000000000000000000000000000");
    }
    assert_ne!(first, second);
}

#[tokio::test]
async fn a_malformed_traceparent_starts_a_new_trace() {
    let _telemetry = crate::telemetry("api-gateway");
    let addr = crate::serve_http(http_router()).await;
    let request = http::Request::get(format!("http://{addr}/users/1"))
        .header("traceparent", "00-00000000000000000000000000000000-b7ad6b7169203331-01")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
    let response = client.request(request).await.unwrap();
    use http_body_util::BodyExt;
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let id = String::from_utf8(body.to_vec()).unwrap();
    assert_eq!(id.len(), 32);
    assert_ne!(id, "00000000000000000000000000000000");
}

#[tokio::test]
async fn the_layers_work_without_telemetry() {
    // No subscriber: requests are served, there is simply no trace context.
    let addr = crate::serve_http(http_router()).await;
    let (status, _, body) = crate::http_get(addr, "/users/1").await;
    assert_eq!(status, 200);
    assert_eq!(body, "");
    let (grpc_addr, seen) = grpc_server().await;
    assert_eq!(check(&health_client(grpc_addr), "test.v1.Test").await.unwrap(), 1);
    assert_eq!(seen.lock().unwrap()[0], (None, None));
}

#[tokio::test]
async fn a_request_id_is_logged_and_passed_on_to_the_services_called() {
    let telemetry = crate::telemetry("api-gateway");
    // An upstream that records the x-request-id each call brings, as a service's server sees it.
    let sent: Arc<Mutex<Vec<Option<String>>>> = Arc::default();
    let record = sent.clone();
    let capture = tower::util::MapRequestLayer::new(move |request: http::Request<tonic::body::Body>| {
        let id = request.headers().get(pkg::trace::X_REQUEST_ID).map(|v| v.to_str().unwrap().to_owned());
        record.lock().unwrap().push(id);
        request
    });
    let (health, service) = pkg::health::Health::new("test.v1.Test").await;
    health.set_serving().await;
    let (listener, grpc_addr) = crate::loopback().await;
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .layer(TraceLayer::new())
            .layer(capture)
            .add_service(service)
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
            .await
            .unwrap()
    });
    let client = health_client(grpc_addr);
    let router = axum::Router::new()
        .route(
            "/health",
            axum::routing::get(move || {
                let client = client.clone();
                async move {
                    tracing::info!("asking upstream");
                    check(&client, "test.v1.Test").await.map(|s| s.to_string()).map_err(pkg::Error::from)
                }
            }),
        )
        .layer(TraceLayer::new());
    let http_addr = crate::serve_http(router).await;

    let request = http::Request::get(format!("http://{http_addr}/health"))
        .header("x-request-id", "req-42")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let http = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
    assert_eq!(http.request(request).await.unwrap().status(), 200);

    assert_eq!(*sent.lock().unwrap(), [Some("req-42".to_owned())], "the call passed the id on");
    let handler = &telemetry.logs.with_message("asking upstream")[0];
    assert_eq!(handler["request_id"], "req-42", "{handler}");
    let done = &telemetry.logs.with_message("request completed")[0];
    assert_eq!(done["span"]["request_id"], "req-42", "{done}");

    // Without the header, nothing is made up: the gateway chooses ids, not pkg.
    let (status, _, _) = crate::http_get(http_addr, "/health").await;
    assert_eq!(status, 200);
    assert_eq!(sent.lock().unwrap()[1], None);
    // An id that could not be logged safely is not passed on.
    let request = http::Request::get(format!("http://{http_addr}/health"))
        .header("x-request-id", "has spaces\"and quotes")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    assert_eq!(http.request(request).await.unwrap().status(), 200);
    assert_eq!(sent.lock().unwrap()[2], None);
}
