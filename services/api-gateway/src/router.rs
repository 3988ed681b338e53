//! The HTTP router: every route, the middleware on each, and how it is served.
//!
//! | route | auth | rate limit key | traced and counted |
//! |---|---|---|---|
//! | `/v1/...` (six routes) | bearer token | token subject | yes |
//! | `/openapi.json` | none | client IP | yes |
//! | `/healthz`, `/readyz`, `/metrics` | none | none | no |
//!
//! Probes and scrapes stay out of request logs, metrics and rate limiting: they arrive every
//! few seconds from the orchestrator and Prometheus, and a 429 on a liveness probe would get a
//! healthy gateway restarted. `/readyz` protects the upstreams with its own cache.

use std::future::Future;
use std::net::SocketAddr;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware::{from_fn, from_fn_with_state};
use axum::routing::{MethodRouter, get, post};
use http::Method;

use crate::handler::{self, AppState};
use crate::middleware::auth::{self, Verifier};
use crate::middleware::rate_limit::{self, RateLimiter};
use crate::middleware::request_id;

/// Request bodies larger than this are refused: an order of 100 items is a few kilobytes.
const MAX_BODY: usize = 64 * 1024;

/// What the router is built from.
#[derive(Clone, Debug)]
pub struct Deps {
    /// Clients and readiness, for the handlers.
    pub state: AppState,
    /// Checks bearer tokens.
    pub verifier: Verifier,
    /// Token buckets per client.
    pub limiter: RateLimiter,
    /// The service's metrics registry.
    pub metrics: pkg::metrics::Metrics,
}

/// A built router and the routes it serves.
#[derive(Debug)]
pub struct Gateway {
    /// The router, ready for [`serve`].
    pub router: Router,
    /// Every `(method, path template)` the router serves, as documented in `openapi.json`.
    pub routes: Vec<(Method, &'static str)>,
}

/// A router under construction that remembers what it serves, so that tests can hold the
/// list against the OpenAPI document.
struct Routes {
    router: Router<AppState>,
    served: Vec<(Method, &'static str)>,
}

impl Routes {
    fn new() -> Self {
        Routes { router: Router::new(), served: Vec::new() }
    }

    fn add(mut self, method: Method, path: &'static str, route: MethodRouter<AppState>) -> Self {
        self.served.push((method, path));
        self.router = self.router.route(path, route);
        self
    }
}

/// Builds the gateway's router.
pub fn build(deps: Deps) -> Gateway {
    let Deps { state, verifier, limiter, metrics } = deps;

    let protected = Routes::new()
        .add(Method::POST, "/v1/users", post(handler::users::create))
        .add(Method::GET, "/v1/users", get(handler::users::list))
        .add(Method::GET, "/v1/users/{id}", get(handler::users::get))
        .add(Method::GET, "/v1/users/{id}/orders", get(handler::orders::list_by_user))
        .add(Method::POST, "/v1/orders", post(handler::orders::create))
        .add(Method::GET, "/v1/orders/{id}", get(handler::orders::get));
    let public = Routes::new().add(Method::GET, "/openapi.json", get(handler::openapi::document));
    let ops = Routes::new().add(Method::GET, "/healthz", get(handler::health::healthz)).add(
        Method::GET,
        "/readyz",
        get(handler::health::readyz),
    );

    let mut routes = protected.served;
    routes.extend(public.served);
    routes.extend(ops.served);
    routes.push((Method::GET, "/metrics"));

    // route_layer: only matched routes are limited, so an unknown path is a plain 404.
    // The last route_layer added runs first: authentication, then the subject's bucket.
    let api = protected
        .router
        .route_layer(from_fn_with_state(limiter.clone(), rate_limit::limit))
        .route_layer(from_fn_with_state(verifier, auth::require_bearer))
        .merge(public.router.route_layer(from_fn_with_state(limiter, rate_limit::limit)))
        .fallback(handler::not_found)
        .method_not_allowed_fallback(handler::method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(metrics.layer())
        .layer(from_fn(request_id::request_id))
        .layer(pkg::trace::TraceLayer::new());

    let router = api.merge(ops.router).merge(metrics.router()).with_state(state);
    Gateway { router, routes }
}

/// Serves `router` on `listener` until `shutdown` resolves, then lets in-flight requests
/// finish. Client addresses reach the rate limiter through `ConnectInfo`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(shutdown)
        .await
}
