//! Prometheus metrics: a request counter and latency histogram per route, served on `/metrics`.
//!
//! [`MetricsLayer`] records, for every request through it:
//!
//! - `requests_total{service, protocol, method, route, status}`
//! - `request_duration_seconds{service, protocol, method, route, status}` (histogram)
//!
//! `route` is the matched axum route template (`/users/{id}`) or the gRPC method path
//! (`/user.v1.UserService/GetUser`): never a raw path, whose ids would create a time series per
//! user. Requests that match no route count under `route="unmatched"`, and so do gRPC calls
//! answered UNIMPLEMENTED (an unknown method path is whatever the client sent). axum applies a
//! layer only to the routes and fallback added before it, and its default 404 is not one of
//! them: give the router an explicit `.fallback(..)` before `.layer(..)` to count those. `status` is the
//! HTTP status (`"404"`) or the gRPC code name (`"NOT_FOUND"`, from `grpc-status`, which for a
//! successful call only arrives in the trailers). The duration runs until the response body
//! ends, so streaming calls are timed whole. `service` is a constant label on the registry, so
//! metrics a service registers itself carry it too.
//!
//! This uses the `prometheus` crate rather than `metrics` + `metrics-exporter-prometheus`: an
//! explicit [`Registry`] per service (no global recorder to install, and tests can each have
//! their own), typed handles, and with default features off it compiles to little (no protobuf,
//! no HTTP client).

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::response::IntoResponse;
use http::{Request, Response, header};
use prometheus::{Encoder, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder};
use tonic::Code;
use tower::{Layer, Service};

use crate::body::{ObservedBody, Observer, Outcome, Protocol, UNMATCHED, route_of};

const LABELS: [&str; 4] = ["protocol", "method", "route", "status"];

/// A service's metrics registry, with the request metrics registered. Cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    requests: IntCounterVec,
    duration: HistogramVec,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// A registry whose metrics all carry `service="<service>"`.
    pub fn new(service: &str) -> Self {
        let labels = HashMap::from([("service".to_owned(), service.to_owned())]);
        // Registration only fails on invalid or duplicate names; these are fixed and valid, and
        // the registry is new, so a failure here is a bug in this file.
        let registry = Registry::new_custom(None, Some(labels)).expect("the service label is a valid label");
        let requests = IntCounterVec::new(Opts::new("requests_total", "Requests served, by route and status"), &LABELS)
            .expect("requests_total is a valid metric");
        let duration = HistogramVec::new(
            HistogramOpts::new("request_duration_seconds", "Time to serve a request, until the response ends"),
            &LABELS,
        )
        .expect("request_duration_seconds is a valid metric");
        registry.register(Box::new(requests.clone())).expect("requests_total is registered once");
        registry.register(Box::new(duration.clone())).expect("request_duration_seconds is registered once");
        Metrics { inner: Arc::new(Inner { registry, requests, duration }) }
    }

    /// The registry, to register a service's own metrics.
    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    /// The tower layer recording the request metrics; add it like [`TraceLayer`](crate::trace::TraceLayer).
    pub fn layer(&self) -> MetricsLayer {
        MetricsLayer { metrics: self.clone() }
    }

    /// Every metric in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        // Encoding into a Vec fails only for metrics that break the format's rules, which the
        // registry refuses at registration.
        if let Err(error) = TextEncoder::new().encode(&self.inner.registry.gather(), &mut buffer) {
            tracing::error!(target: "pkg::metrics", %error, "cannot encode metrics");
        }
        String::from_utf8(buffer).unwrap_or_default()
    }

    /// A router answering `GET /metrics`: merge it into a service's router, or serve it alone
    /// on a metrics port.
    pub fn router<S: Clone + Send + Sync + 'static>(&self) -> axum::Router<S> {
        let metrics = self.clone();
        axum::Router::new().route(
            "/metrics",
            axum::routing::get(move || {
                let metrics = metrics.clone();
                async move { ([(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)], metrics.render()).into_response() }
            }),
        )
    }

    fn record(&self, protocol: Protocol, method: &str, route: &str, outcome: Outcome, start: Instant) {
        // An unknown gRPC method path is client-chosen text: fold it, like unmatched HTTP paths.
        let route = if outcome == Outcome::Grpc(Code::Unimplemented) { UNMATCHED } else { route };
        let status = outcome.label();
        let labels = [protocol.as_str(), method, route, &status];
        self.inner.requests.with_label_values(&labels).inc();
        self.inner.duration.with_label_values(&labels).observe(start.elapsed().as_secs_f64());
    }
}

/// Records request metrics; made by [`Metrics::layer`].
#[derive(Clone, Debug)]
pub struct MetricsLayer {
    metrics: Metrics,
}

impl<S> Layer<S> for MetricsLayer {
    type Service = MetricsService<S>;

    fn layer(&self, inner: S) -> MetricsService<S> {
        MetricsService { inner, metrics: self.metrics.clone() }
    }
}

/// The service [`MetricsLayer`] makes.
#[derive(Clone, Debug)]
pub struct MetricsService<S> {
    inner: S,
    metrics: Metrics,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for MetricsService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Future: Send + 'static,
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
        let method = request.method().as_str().to_owned();
        let metrics = self.metrics.clone();
        let start = Instant::now();
        let future = self.inner.call(request);
        Box::pin(async move {
            let result = future.await;
            match result {
                Ok(response) => {
                    let observer = Observer::new(
                        protocol,
                        &response,
                        Box::new(move |outcome| metrics.record(protocol, &method, &route, outcome, start)),
                    );
                    Ok(response.map(|body| ObservedBody::new(body, observer, tracing::Span::none())))
                }
                Err(error) => {
                    let outcome = match protocol {
                        Protocol::Http => Outcome::Http(http::StatusCode::INTERNAL_SERVER_ERROR),
                        Protocol::Grpc => Outcome::Grpc(Code::Unknown),
                    };
                    metrics.record(protocol, &method, &route, outcome, start);
                    Err(error)
                }
            }
        })
    }
}

/// Serves `GET /metrics` on its own listener until `shutdown` resolves: for gRPC-only services
/// that have no HTTP router to merge [`Metrics::router`] into.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Metrics,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, metrics.router::<()>()).with_graceful_shutdown(shutdown).await
}
