//! Health: one switch a service flips, read by the gRPC health protocol and by HTTP probes.
//!
//! ```no_run
//! # async fn f() {
//! use pkg::health::Health;
//! let (health, health_service) = Health::new("user.v1.UserService").await;
//! // Server::builder().add_service(health_service) ... ; for HTTP services: .merge(health.router())
//! health.set_serving().await;
//! # }
//! ```
//!
//! A service starts NOT_SERVING and says when it is ready (a service with a database lets
//! `postgres::HealthProbe` flip it as the database answers or not),
//! so `plat up` and load balancers never route to a service that has not reached its database.
//! The switch sets both the named service and the server as a whole (`""`), which is what
//! `grpc_health_probe` asks for without `-service`.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::http::StatusCode;
use tonic_health::ServingStatus;
use tonic_health::pb::health_server::HealthServer;
use tonic_health::server::{HealthReporter, HealthService};

/// A service's health switch. Cheap to clone.
#[derive(Clone)]
pub struct Health {
    reporter: HealthReporter,
    service: Arc<str>,
    serving: Arc<AtomicBool>,
}

impl fmt::Debug for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Health").field("service", &self.service).field("serving", &self.is_serving()).finish()
    }
}

impl Health {
    /// The switch for the gRPC service named `service` (like `user.v1.UserService`), starting
    /// NOT_SERVING, and the `grpc.health.v1.Health` service to add to the tonic server.
    pub async fn new(service: &str) -> (Health, HealthServer<HealthService>) {
        let reporter = HealthReporter::new();
        let server = HealthServer::new(HealthService::from_health_reporter(reporter.clone()));
        let health = Health { reporter, service: service.into(), serving: Arc::new(AtomicBool::new(false)) };
        health.publish(false).await;
        (health, server)
    }

    /// The service name this switch reports for.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// Whether the service currently reports SERVING.
    pub fn is_serving(&self) -> bool {
        self.serving.load(Ordering::Acquire)
    }

    /// Reports SERVING.
    pub async fn set_serving(&self) {
        self.set(true).await;
    }

    /// Reports NOT_SERVING: health checks fail, traffic goes elsewhere.
    pub async fn set_not_serving(&self) {
        self.set(false).await;
    }

    /// Reports SERVING when `serving`, NOT_SERVING otherwise; logs changes.
    pub async fn set(&self, serving: bool) {
        let was = self.serving.swap(serving, Ordering::AcqRel);
        if was != serving {
            if serving {
                tracing::info!(target: "pkg::health", service = %self.service, "serving");
            } else {
                tracing::warn!(target: "pkg::health", service = %self.service, "not serving");
            }
        }
        self.publish(serving).await;
    }

    async fn publish(&self, serving: bool) {
        let status = if serving { ServingStatus::Serving } else { ServingStatus::NotServing };
        self.reporter.set_service_status(&*self.service, status).await;
        self.reporter.set_service_status("", status).await;
    }

    /// `GET /healthz` (alive: always 200) and `GET /readyz` (200 while serving, else 503), for
    /// HTTP services and HTTP probes.
    pub fn router<S: Clone + Send + Sync + 'static>(&self) -> axum::Router<S> {
        let health = self.clone();
        axum::Router::new().route("/healthz", axum::routing::get(|| async { (StatusCode::OK, "ok") })).route(
            "/readyz",
            axum::routing::get(move || {
                let serving = health.is_serving();
                async move {
                    if serving { (StatusCode::OK, "ready") } else { (StatusCode::SERVICE_UNAVAILABLE, "not ready") }
                }
            }),
        )
    }
}
