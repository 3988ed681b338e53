//! The service's configuration: every environment variable it reads, read once at startup.
//!
//! All variables go through one [`pkg::config::Env`], so a container missing three of them fails
//! once with all three named rather than three deploys in a row.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use pkg::config::{ConfigError, Env, FromEnv};
use pkg::postgres::{DatabaseUrl, PoolSize};
use pkg::telemetry::TelemetryConfig;

/// The name the service logs, traces and labels its metrics with.
pub const SERVICE_NAME: &str = "order-service";

/// Everything the service needs to run.
#[derive(Clone, Debug)]
pub struct Config {
    /// `GRPC_ADDR`: where `order.v1.OrderService` and `grpc.health.v1.Health` listen.
    pub grpc_addr: SocketAddr,
    /// `METRICS_ADDR`: where Prometheus scrapes `GET /metrics`.
    pub metrics_addr: SocketAddr,
    /// `DATABASE_URL`: the service's own PostgreSQL database.
    pub database: DatabaseUrl,
    /// `DATABASE_POOL_SIZE`: the most connections the service holds open to its database.
    pub database_pool_size: usize,
    /// `USER_SERVICE_ADDR`: the user-service's gRPC address, `http://host:port`.
    pub user_service_addr: UpstreamAddr,
    /// `USER_SERVICE_TIMEOUT`: how long one call to the user-service may take.
    pub user_service_timeout: Duration,
    /// `NATS_URL`: where OrderCreated events are published; `None` publishes nothing.
    pub nats_url: Option<NatsUrl>,
    /// `SHUTDOWN_GRACE`: how long in-flight requests may run on after SIGTERM.
    pub shutdown_grace: Duration,
    /// How often the health probe checks the database. Not an environment variable: tests set it.
    pub health_probe_interval: Duration,
    /// How often the outbox relay looks for events to publish when nothing woke it earlier.
    /// Not an environment variable: tests set it.
    pub outbox_poll_interval: Duration,
    /// `RUST_LOG` and `OTEL_EXPORTER_OTLP_ENDPOINT`, read here so that their problems are
    /// reported together with the others.
    pub telemetry: TelemetryConfig,
}

impl pkg::service::ServiceConfig for Config {
    fn from_env(env: Env) -> Result<Self, ConfigError> {
        Config::from_env(env)
    }

    fn telemetry(&self) -> Result<TelemetryConfig, pkg::telemetry::TelemetryError> {
        Ok(self.telemetry.clone())
    }
}

impl Config {
    /// Reads the configuration; the error names every variable that is missing or malformed.
    pub fn from_env(mut env: Env) -> Result<Config, ConfigError> {
        let grpc_addr =
            env.var("GRPC_ADDR").example("0.0.0.0:50052").with_default(SocketAddr::from(([0, 0, 0, 0], 50052)));
        let metrics_addr =
            env.var("METRICS_ADDR").example("0.0.0.0:9090").with_default(SocketAddr::from(([0, 0, 0, 0], 9090)));
        let database = env
            .var("DATABASE_URL")
            .example("postgres://order_service:secret@postgres:5432/order_service")
            .secret()
            .required::<DatabaseUrl>();
        let database_pool_size = env.var("DATABASE_POOL_SIZE").example("10").with_default(PoolSize::default());
        let user_service_addr =
            env.var("USER_SERVICE_ADDR").example("http://user-service:50051").required::<UpstreamAddr>();
        let user_service_timeout =
            env.var("USER_SERVICE_TIMEOUT").example("500ms").with_default(Duration::from_millis(500));
        let nats_url = env.var("NATS_URL").example("nats://nats:4222").secret().optional::<NatsUrl>();
        let shutdown_grace = env.var("SHUTDOWN_GRACE").example("5s").with_default(Duration::from_secs(5));
        let log_filter = env.var("RUST_LOG").example("info,order_service=debug").with_default("info".to_owned());
        let otlp_endpoint =
            env.var("OTEL_EXPORTER_OTLP_ENDPOINT").example("http://otel-collector:4317").optional::<String>();
        env.finish()?;
        Ok(Config {
            grpc_addr: grpc_addr?,
            metrics_addr: metrics_addr?,
            database: database?,
            database_pool_size: database_pool_size?.0,
            user_service_addr: user_service_addr?,
            user_service_timeout: user_service_timeout?,
            nats_url: nats_url?,
            shutdown_grace: shutdown_grace?,
            health_probe_interval: Duration::from_secs(5),
            outbox_poll_interval: Duration::from_secs(1),
            telemetry: TelemetryConfig {
                service_name: SERVICE_NAME.to_owned(),
                log_filter: log_filter?,
                otlp_endpoint: otlp_endpoint?,
            },
        })
    }
}

/// A gRPC upstream's address: `http://host:port` (services are built without TLS).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpstreamAddr(pub String);

impl FromEnv for UpstreamAddr {
    const EXPECTED: &'static str = "an http://host:port address";
    const EXAMPLE: &'static str = "http://user-service:50051";

    fn from_env(raw: &str) -> Result<Self, String> {
        let uri: http::Uri = raw.parse().map_err(|e: http::uri::InvalidUri| e.to_string())?;
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") => return Err("https needs TLS, which services are built without".to_owned()),
            _ => return Err("expected http://host:port".to_owned()),
        }
        if uri.host().is_none_or(str::is_empty) {
            return Err("it names no host".to_owned());
        }
        Ok(UpstreamAddr(raw.to_owned()))
    }
}

/// NATS server addresses: one or more `nats://host:port`, comma-separated. They may carry
/// credentials (`nats://user:pass@host:4222`), so the variable is read as a secret.
#[derive(Clone, PartialEq, Eq)]
pub struct NatsUrl(pub String);

impl fmt::Debug for NatsUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NatsUrl(..)")
    }
}

impl FromEnv for NatsUrl {
    const EXPECTED: &'static str = "one or more nats://host:port addresses, comma-separated";
    const EXAMPLE: &'static str = "nats://nats:4222";

    fn from_env(raw: &str) -> Result<Self, String> {
        for address in raw.split(',') {
            let address = address.trim();
            let server: async_nats::ServerAddr = address.parse().map_err(|e: std::io::Error| e.to_string())?;
            if server.tls_required() {
                return Err("TLS addresses need TLS, which services are built without".to_owned());
            }
            if server.is_websocket() {
                return Err("websocket addresses are not supported; use nats://".to_owned());
            }
        }
        Ok(NatsUrl(raw.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REQUIRED: [(&str, &str); 2] = [
        ("DATABASE_URL", "postgres://app:secret@db:5432/order_service"),
        ("USER_SERVICE_ADDR", "http://user-service:50051"),
    ];

    #[test]
    fn defaults_apply_when_only_the_required_variables_are_set() {
        let config = Config::from_env(Env::from_pairs(REQUIRED)).unwrap();
        assert_eq!(config.grpc_addr, "0.0.0.0:50052".parse().unwrap());
        assert_eq!(config.metrics_addr, "0.0.0.0:9090".parse().unwrap());
        assert_eq!(config.user_service_addr.0, "http://user-service:50051");
        assert_eq!(config.user_service_timeout, Duration::from_millis(500));
        assert_eq!(config.nats_url, None);
        assert_eq!(config.shutdown_grace, Duration::from_secs(5));
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let error = Config::from_env(Env::from_pairs([
            ("USER_SERVICE_ADDR", "https://user-service:50051"),
            ("USER_SERVICE_TIMEOUT", "500"),
            ("NATS_URL", "tls://nats:4222"),
        ]))
        .unwrap_err();
        let names: Vec<_> = error.problems().iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["DATABASE_URL", "USER_SERVICE_ADDR", "USER_SERVICE_TIMEOUT", "NATS_URL"]);
        let message = error.to_string();
        assert!(message.contains("4 environment variables"), "{message}");
        assert!(message.contains("https needs TLS"), "{message}");
    }

    #[test]
    fn nats_urls_accept_lists_and_keep_credentials_out_of_messages() {
        let mut pairs = REQUIRED.to_vec();
        pairs.push(("NATS_URL", "nats://a:4222, nats://b:4222"));
        let config = Config::from_env(Env::from_pairs(pairs)).unwrap();
        assert!(config.nats_url.is_some());
        assert_eq!(format!("{:?}", config.nats_url), "Some(NatsUrl(..))");

        let mut pairs = REQUIRED.to_vec();
        pairs.push(("NATS_URL", "nats://user:hunter2@nats:notaport"));
        let message = Config::from_env(Env::from_pairs(pairs)).unwrap_err().to_string();
        assert!(message.contains("NATS_URL (secret"), "{message}");
        assert!(!message.contains("hunter2"), "{message}");
    }

    #[test]
    fn upstream_addresses_must_be_plain_http() {
        assert!(UpstreamAddr::from_env("http://user-service:50051").is_ok());
        assert!(UpstreamAddr::from_env("user-service:50051").is_err());
        assert!(UpstreamAddr::from_env("grpc://user-service:50051").is_err());
    }
}
