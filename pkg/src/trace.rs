//! W3C trace context (`traceparent`) carried across HTTP and gRPC calls.
//!
//! - [`TraceParent`] parses and formats the header (version 00 of the W3C Trace Context spec).
//! - [`TraceLayer`] goes on servers, axum routers and tonic servers alike (both are tower
//!   services over `http::Request`): it opens a `request` span per request, makes an incoming
//!   `traceparent` its parent (or starts a new trace), and logs one line when the response ends
//!   (at DEBUG for health checks, readiness probes and metric scrapes, unless they fail).
//! - [`InjectLayer`] goes on clients, a tonic `Channel` or any HTTP client service: it opens a
//!   client span per call, child of the current span, and sends it as `traceparent`.
//! - Request ids ([`X_REQUEST_ID`]) travel the same way: a request that arrives with one is
//!   served [`with_request_id`], so every line logged while serving it carries `request_id` and
//!   every call it makes through [`InjectLayer`] passes the id on. The gateway gives each request
//!   its id; the services it calls, and those they call, log it too.
//!
//! The ids come from the OpenTelemetry layer that [`telemetry`](crate::telemetry) installs,
//! whether or not spans are exported: log lines carry `trace_id` without a collector. Without
//! that layer (no [`telemetry::init`](crate::telemetry::init)), spans have no trace context;
//! incoming headers are then ignored and nothing is injected.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use http::{HeaderMap, HeaderValue, Request, Response};
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{SpanContext, TraceContextExt};
pub use opentelemetry::trace::{SpanId, TraceFlags, TraceId};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tower::{Layer, Service};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::body::{ObservedBody, Observer, Outcome, Protocol, route_of};

/// The `traceparent` header name.
pub const TRACEPARENT: &str = "traceparent";
/// The `tracestate` header name.
pub const TRACESTATE: &str = "tracestate";
/// The request id header, passed on from service to service.
pub const X_REQUEST_ID: &str = "x-request-id";

tokio::task_local! {
    /// The id of the request the current task serves.
    static REQUEST_ID: Arc<str>;
}

/// Whether a request id can be logged and passed on as it is: 1 to 128 visible ASCII characters
/// from a conservative set (no spaces, quotes or control characters).
pub fn is_sane_request_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':' | b'/' | b'+' | b'='))
}

/// The id of the request being served, when there is one.
pub fn current_request_id() -> Option<Arc<str>> {
    REQUEST_ID.try_with(Arc::clone).ok()
}

/// Runs `future` as the serving of request `id`: its log lines carry `request_id` (and the
/// current span records it, when it has the field, as [`TraceLayer`]'s does), and calls made
/// through [`InjectLayer`] send it on as `x-request-id`.
pub async fn with_request_id<F: Future>(id: &str, future: F) -> F::Output {
    tracing::Span::current().record("request_id", id);
    REQUEST_ID.scope(Arc::from(id), future).await
}

/// The request id a request carries, when there is exactly one and it is sane.
fn request_id_of(headers: &HeaderMap) -> Option<String> {
    let mut values = headers.get_all(X_REQUEST_ID).iter();
    match (values.next().and_then(|value| value.to_str().ok()), values.next()) {
        (Some(id), None) if is_sane_request_id(id) => Some(id.to_owned()),
        _ => None,
    }
}

/// A parsed `traceparent` header: `00-<trace-id>-<parent-id>-<flags>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TraceParent {
    /// The trace every span of one request belongs to; never all zeros.
    pub trace_id: TraceId,
    /// The caller's span; never all zeros.
    pub parent_id: SpanId,
    /// Trace flags; bit 0 is "sampled".
    pub flags: TraceFlags,
}

impl TraceParent {
    /// Whether the caller recorded this trace.
    pub fn sampled(&self) -> bool {
        self.flags.is_sampled()
    }

    /// The traceparent that names `context` as the parent, if it is valid.
    pub fn from_span_context(context: &SpanContext) -> Option<TraceParent> {
        context.is_valid().then(|| TraceParent {
            trace_id: context.trace_id(),
            parent_id: context.span_id(),
            flags: context.trace_flags(),
        })
    }
}

impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "00-{}-{}-{:02x}", self.trace_id, self.parent_id, self.flags.to_u8())
    }
}

/// A `traceparent` value that W3C Trace Context rejects; a rejected header starts a new trace.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not a valid traceparent: {0:?}")]
pub struct ParseTraceParentError(pub String);

impl FromStr for TraceParent {
    type Err = ParseTraceParentError;

    /// Parses as OpenTelemetry's W3C propagator does, which is what every server here does with
    /// the header.
    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let mut headers = HeaderMap::new();
        // As an HTTP parser hands it over: without the whitespace around it.
        let header = HeaderValue::from_str(value.trim_matches([' ', '\t']))
            .map_err(|_| ParseTraceParentError(value.to_owned()))?;
        headers.insert(TRACEPARENT, header);
        let context = extract(&headers).ok_or_else(|| ParseTraceParentError(value.to_owned()))?;
        let span = context.span();
        TraceParent::from_span_context(span.span_context()).ok_or_else(|| ParseTraceParentError(value.to_owned()))
    }
}

/// `http::HeaderMap` as OpenTelemetry's propagators read and write carriers.
struct Headers<'a>(&'a HeaderMap);
struct HeadersMut<'a>(&'a mut HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

impl Injector for HeadersMut<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (http::HeaderName::from_bytes(key.as_bytes()), HeaderValue::from_str(&value)) {
            self.0.insert(name, value);
        }
    }
}

/// The remote parent named by the `traceparent` (and `tracestate`) headers, if valid, as
/// OpenTelemetry's W3C propagator reads them. Two `traceparent` headers are as good as none: the
/// spec says to ignore an ambiguous parent.
pub fn extract(headers: &HeaderMap) -> Option<opentelemetry::Context> {
    if headers.get_all(TRACEPARENT).iter().count() != 1 {
        return None;
    }
    let context = TraceContextPropagator::new().extract(&Headers(headers));
    let valid = context.span().span_context().is_valid();
    valid.then_some(context)
}

/// Writes the `traceparent` (and `tracestate`) naming `context`'s span as the parent, as
/// OpenTelemetry's W3C propagator writes them; nothing when the context has no valid span.
pub fn inject(context: &opentelemetry::Context, headers: &mut HeaderMap) {
    if context.span().span_context().is_valid() {
        TraceContextPropagator::new().inject_context(context, &mut HeadersMut(headers));
    }
}

/// Writes the current span's `traceparent` into `headers`: for clients that are not tower
/// services (prefer [`InjectLayer`] for those that are).
pub fn inject_current(headers: &mut HeaderMap) {
    inject(&tracing::Span::current().context(), headers);
}

/// The trace id of the current span, if it has a trace context.
pub fn current_trace_id() -> Option<TraceId> {
    let context = tracing::Span::current().context();
    let span = context.span();
    let span_context = span.span_context();
    span_context.is_valid().then(|| span_context.trace_id())
}

/// The traceparent a call made now would carry: the current span as parent.
pub fn current_traceparent() -> Option<TraceParent> {
    let context = tracing::Span::current().context();
    let span = context.span();
    TraceParent::from_span_context(span.span_context())
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Server layer: a `request` span per request, child of the caller's `traceparent`.
///
/// Add it with `Router::layer` (not around the whole router) so that the span and log line
/// name the matched route template, and with `Server::builder().layer` for tonic. Routes merged
/// after the layer (`/metrics`, probes) are left out, which keeps scrapes out of the logs.
#[derive(Clone, Copy, Debug, Default)]
pub struct TraceLayer {
    _private: (),
}

impl TraceLayer {
    /// The layer.
    pub fn new() -> Self {
        TraceLayer { _private: () }
    }
}

impl<S> Layer<S> for TraceLayer {
    type Service = TraceService<S>;

    fn layer(&self, inner: S) -> TraceService<S> {
        TraceService { inner }
    }
}

/// The service [`TraceLayer`] makes.
#[derive(Clone, Debug)]
pub struct TraceService<S> {
    inner: S,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for TraceService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Future: Send + 'static,
    S::Error: fmt::Display + 'static,
    ResBody: http_body::Body + Send + 'static,
{
    type Response = Response<ObservedBody<ResBody>>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let protocol = Protocol::of(&request);
        let route = route_of(&request, protocol);
        let method = request.method().clone();
        let name = match protocol {
            Protocol::Grpc => route.trim_start_matches('/').to_owned(),
            Protocol::Http => format!("{method} {route}"),
        };
        let span = tracing::info_span!(
            target: "pkg::trace",
            "request",
            otel.name = %name,
            otel.kind = "server",
            otel.status_code = tracing::field::Empty,
            protocol = protocol.as_str(),
            method = %method,
            route = %route,
            status = tracing::field::Empty,
            request_id = tracing::field::Empty,
        );
        let request_id = request_id_of(request.headers());
        if let Some(parent) = extract(request.headers()) {
            // Fails only when no OpenTelemetry layer is installed: then there is no trace to join.
            let _ = span.set_parent(parent);
        }
        let probe = is_probe(&route);
        let start = Instant::now();
        let future = {
            let _entered = span.enter();
            self.inner.call(request)
        };
        let response_span = span.clone();
        Box::pin(
            async move {
                let response = match request_id {
                    Some(id) => with_request_id(&id, future).await,
                    None => future.await,
                };
                match response {
                    Ok(response) => {
                        let on_end_span = response_span.clone();
                        let observer = Observer::new(
                            protocol,
                            &response,
                            Box::new(move |outcome| finished(&on_end_span, outcome, start, probe)),
                        );
                        Ok(response.map(|body| ObservedBody::new(body, observer, response_span)))
                    }
                    Err(error) => {
                        tracing::error!(target: "pkg::trace", %error, "request failed");
                        Err(error)
                    }
                }
            }
            .instrument(span),
        )
    }
}

/// Health checks, readiness probes and metric scrapes: asked every second or so by `plat up`,
/// orchestrators and Prometheus, they would bury the requests that matter at INFO.
fn is_probe(route: &str) -> bool {
    matches!(
        route,
        "/grpc.health.v1.Health/Check" | "/grpc.health.v1.Health/Watch" | "/healthz" | "/readyz" | "/metrics"
    )
}

/// Records the status on the request span and logs the request's one line: a failure at WARN,
/// a success at INFO, or at DEBUG for a probe.
fn finished(span: &tracing::Span, outcome: Outcome, start: Instant, probe: bool) {
    let status = outcome.label();
    span.record("status", &*status);
    let duration_ms = start.elapsed().as_secs_f64() * 1000.0;
    if outcome.is_server_error() {
        span.record("otel.status_code", "ERROR");
        tracing::warn!(target: "pkg::trace", status = %status, duration_ms, "request completed");
    } else if probe {
        tracing::debug!(target: "pkg::trace", status = %status, duration_ms, "request completed");
    } else {
        tracing::info!(target: "pkg::trace", status = %status, duration_ms, "request completed");
    }
}

/// Client layer: a client span per call, sent to the server as `traceparent`.
///
/// ```no_run
/// # async fn f() -> Result<(), tonic::transport::Error> {
/// let channel = tonic::transport::Endpoint::from_static("http://user-service:50051").connect_lazy();
/// let channel = tower::ServiceBuilder::new().layer(pkg::trace::InjectLayer::new()).service(channel);
/// // UserServiceClient::new(channel) now propagates the trace of whatever span calls it.
/// # Ok(()) }
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct InjectLayer {
    _private: (),
}

impl InjectLayer {
    /// The layer.
    pub fn new() -> Self {
        InjectLayer { _private: () }
    }
}

impl<S> Layer<S> for InjectLayer {
    type Service = Inject<S>;

    fn layer(&self, inner: S) -> Inject<S> {
        Inject { inner }
    }
}

/// The service [`InjectLayer`] makes.
#[derive(Clone, Debug)]
pub struct Inject<S> {
    inner: S,
}

impl<S, B> Service<Request<B>> for Inject<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = tracing::instrument::Instrumented<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        // Span names must stay few: the gRPC method, or just the HTTP method (paths carry ids).
        let name = match Protocol::of(&request) {
            Protocol::Grpc => request.uri().path().trim_start_matches('/').to_owned(),
            Protocol::Http => request.method().to_string(),
        };
        let span = tracing::info_span!(
            target: "pkg::trace",
            "client request",
            otel.name = %name,
            otel.kind = "client",
            peer = %request.uri().authority().map(|a| a.as_str()).unwrap_or(""),
        );
        inject(&span.context(), request.headers_mut());
        if let Some(value) = current_request_id().and_then(|id| HeaderValue::from_str(&id).ok()) {
            request.headers_mut().insert(X_REQUEST_ID, value);
        }
        let future = {
            let _entered = span.enter();
            self.inner.call(request)
        };
        future.instrument(span)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn parses_and_formats_the_spec_example() {
        let parent: TraceParent = VALID.parse().unwrap();
        assert_eq!(parent.trace_id, TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap());
        assert_eq!(parent.parent_id, SpanId::from_hex("00f067aa0ba902b7").unwrap());
        assert!(parent.sampled());
        assert_eq!(parent.to_string(), VALID);
        let unsampled: TraceParent = VALID.replace("-01", "-00").parse().unwrap();
        assert!(!unsampled.sampled());
    }

    #[test]
    fn rejects_what_the_spec_rejects() {
        for value in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba9z2b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0x",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        ] {
            assert!(value.parse::<TraceParent>().is_err(), "{value:?} was accepted");
        }
    }

    #[test]
    fn later_versions_may_append_fields() {
        let parent: TraceParent =
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-comes-next".parse().unwrap();
        // We speak version 00, so that is what we send on.
        assert_eq!(parent.to_string(), VALID);
    }

    #[test]
    fn surrounding_whitespace_is_ignored() {
        assert!(format!("  {VALID}\t").parse::<TraceParent>().is_ok());
    }

    #[test]
    fn extract_ignores_duplicates_and_garbage() {
        let mut headers = HeaderMap::new();
        assert!(extract(&headers).is_none());
        headers.insert(TRACEPARENT, HeaderValue::from_static("garbage"));
        assert!(extract(&headers).is_none());
        headers.insert(TRACEPARENT, HeaderValue::from_static(VALID));
        headers.insert(TRACESTATE, HeaderValue::from_static("vendor=value"));
        let context = extract(&headers).unwrap();
        let span = context.span();
        let remote = span.span_context();
        assert!(remote.is_remote());
        assert_eq!(remote.trace_id(), VALID.parse::<TraceParent>().unwrap().trace_id);
        assert_eq!(remote.trace_state().get("vendor"), Some("value"));
        headers.append(TRACEPARENT, HeaderValue::from_static(VALID));
        assert!(extract(&headers).is_none());
    }

    #[test]
    fn inject_writes_what_extract_reads() {
        let mut headers = HeaderMap::new();
        headers.insert(TRACEPARENT, HeaderValue::from_static(VALID));
        let context = extract(&headers).unwrap();
        let mut out = HeaderMap::new();
        inject(&context, &mut out);
        assert_eq!(out.get(TRACEPARENT).unwrap(), VALID);
        let mut none = HeaderMap::new();
        inject(&opentelemetry::Context::new(), &mut none);
        assert!(none.is_empty());
    }
}
