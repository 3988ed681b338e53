//! The service's configuration: every environment variable it reads, read once at startup.
//!
//! All variables go through one [`pkg::config::Env`], so a container missing three of them fails
//! once with all three named rather than three deploys in a row.

use std::net::SocketAddr;
use std::time::Duration;

use pkg::config::{ConfigError, Env};
use pkg::postgres::{DatabaseUrl, PoolSize};
use pkg::telemetry::TelemetryConfig;

/// The name the service logs, traces and labels its metrics with.
pub const SERVICE_NAME: &str = "user-service";

/// Everything the service needs to run.
#[derive(Clone, Debug)]
pub struct Config {
    /// `GRPC_ADDR`: where `user.v1.UserService` and `grpc.health.v1.Health` listen.
    pub grpc_addr: SocketAddr,
    /// `METRICS_ADDR`: where Prometheus scrapes `GET /metrics`.
    pub metrics_addr: SocketAddr,
    /// `DATABASE_URL`: the service's own PostgreSQL database.
    pub database: DatabaseUrl,
    /// `DATABASE_POOL_SIZE`: the most connections the service holds open to its database.
    pub database_pool_size: usize,
    /// `SHUTDOWN_GRACE`: how long in-flight requests may run on after SIGTERM.
    pub shutdown_grace: Duration,
    /// How often the health probe checks the database. Not an environment variable: tests set it.
    pub health_probe_interval: Duration,
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
            env.var("GRPC_ADDR").example("0.0.0.0:50051").with_default(SocketAddr::from(([0, 0, 0, 0], 50051)));
        let metrics_addr =
            env.var("METRICS_ADDR").example("0.0.0.0:9090").with_default(SocketAddr::from(([0, 0, 0, 0], 9090)));
        let database = env
            .var("DATABASE_URL")
            .example("postgres://user_service:secret@postgres:5432/user_service")
            .secret()
            .required::<DatabaseUrl>();
        let database_pool_size = env.var("DATABASE_POOL_SIZE").example("10").with_default(PoolSize::default());
        let shutdown_grace = env.var("SHUTDOWN_GRACE").example("5s").with_default(Duration::from_secs(5));
        let log_filter = env.var("RUST_LOG").example("info,user_service=debug").with_default("info".to_owned());
        let otlp_endpoint =
            env.var("OTEL_EXPORTER_OTLP_ENDPOINT").example("http://otel-collector:4317").optional::<String>();
        env.finish()?;
        Ok(Config {
            grpc_addr: grpc_addr?,
            metrics_addr: metrics_addr?,
            database: database?,
            database_pool_size: database_pool_size?.0,
            shutdown_grace: shutdown_grace?,
            health_probe_interval: Duration::from_secs(5),
            telemetry: TelemetryConfig {
                service_name: SERVICE_NAME.to_owned(),
                log_filter: log_filter?,
                otlp_endpoint: otlp_endpoint?,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_apply_when_only_the_database_is_set() {
        let config =
            Config::from_env(Env::from_pairs([("DATABASE_URL", "postgres://app:secret@db:5432/user_service")]))
                .unwrap();
        assert_eq!(config.grpc_addr, "0.0.0.0:50051".parse().unwrap());
        assert_eq!(config.metrics_addr, "0.0.0.0:9090".parse().unwrap());
        assert_eq!(config.database.0.get_dbname(), Some("user_service"));
        assert_eq!(config.database_pool_size, 10);
        assert_eq!(config.shutdown_grace, Duration::from_secs(5));
        assert_eq!(config.telemetry.log_filter, "info");
        assert_eq!(config.telemetry.otlp_endpoint, None);
    }

    #[test]
    fn every_problem_is_reported_at_once_and_secrets_stay_out() {
        let error = Config::from_env(Env::from_pairs([
            ("GRPC_ADDR", "localhost"),
            ("SHUTDOWN_GRACE", "10"),
            ("DATABASE_POOL_SIZE", "0"),
        ]))
        .unwrap_err();
        let names: Vec<_> = error.problems().iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["GRPC_ADDR", "DATABASE_URL", "DATABASE_POOL_SIZE", "SHUTDOWN_GRACE"]);
        let message = error.to_string();
        assert!(message.contains("DATABASE_URL is not set"), "{message}");
        assert!(message.contains("missing unit"), "{message}");

        let error =
            Config::from_env(Env::from_pairs([("DATABASE_URL", "postgres://app:hunter2@db:notaport/x")])).unwrap_err();
        let message = error.to_string();
        assert!(message.contains("DATABASE_URL (secret"), "{message}");
        assert!(!message.contains("hunter2"), "{message}");
    }
}
