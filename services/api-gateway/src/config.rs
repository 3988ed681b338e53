//! The gateway's configuration, read from the environment once at start-up.
//!
//! Every variable is read through one [`pkg::config::Env`], so a misconfigured deployment
//! fails once with every problem named instead of one problem per restart.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use http::Uri;
use pkg::client::BreakerConfig;
use pkg::config::{ConfigError, Env, FromEnv};

/// Everything the gateway reads from the environment (`RUST_LOG` and
/// `OTEL_EXPORTER_OTLP_ENDPOINT` are read by [`pkg::telemetry`]).
#[derive(Clone, Debug)]
pub struct Config {
    /// `HTTP_ADDR`: where the REST API, probes and `/metrics` listen.
    pub http_addr: SocketAddr,
    /// `USER_SERVICE_ADDR`: the user-service's gRPC endpoint.
    pub user_service_addr: Uri,
    /// `ORDER_SERVICE_ADDR`: the order-service's gRPC endpoint.
    pub order_service_addr: Uri,
    /// `JWT_SECRET`: the HS256 key bearer tokens are signed with.
    pub jwt_secret: JwtSecret,
    /// `RATE_LIMIT_RPS` and `RATE_LIMIT_BURST`.
    pub rate_limit: RateLimit,
    /// `UPSTREAM_TIMEOUT`: how long one attempt of a gRPC call may take (sent as
    /// `grpc-timeout`); also bounds connecting and `/readyz` health checks.
    pub upstream_timeout: Duration,
    /// `BREAKER_FAILURES` and `BREAKER_COOL_DOWN`: each upstream's circuit breaker.
    pub breaker: BreakerConfig,
    /// `READY_CACHE`: how long a `/readyz` answer is reused before the upstreams are asked again.
    pub ready_cache: Duration,
    /// `SHUTDOWN_GRACE`: how long in-flight requests get to finish after SIGTERM.
    pub shutdown_grace: Duration,
}

/// The token bucket every client gets.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateLimit {
    /// Tokens added per second: the sustained request rate.
    pub rps: f64,
    /// Bucket size: how many requests a client may send at once after being idle.
    pub burst: u32,
}

impl pkg::service::ServiceConfig for Config {
    fn from_env(env: Env) -> Result<Self, ConfigError> {
        Config::from_env(env)
    }

    /// `RUST_LOG` and `OTEL_EXPORTER_OTLP_ENDPOINT`, read by pkg's telemetry itself.
    fn telemetry(&self) -> Result<pkg::telemetry::TelemetryConfig, pkg::telemetry::TelemetryError> {
        pkg::telemetry::TelemetryConfig::from_env(crate::SERVICE_NAME)
    }
}

impl Config {
    /// Reads the configuration from `env`; the error names every missing or malformed variable.
    pub fn from_env(mut env: Env) -> Result<Config, ConfigError> {
        let http_addr = env.with_default("HTTP_ADDR", SocketAddr::from(([0, 0, 0, 0], 8080)));
        let user_service_addr =
            env.var("USER_SERVICE_ADDR").example("http://user-service:50051").required::<UpstreamUri>();
        let order_service_addr =
            env.var("ORDER_SERVICE_ADDR").example("http://order-service:50052").required::<UpstreamUri>();
        let jwt_secret =
            env.var("JWT_SECRET").example("$(head -c 32 /dev/urandom | base64)").secret().required::<JwtSecret>();
        let rps = env.with_default("RATE_LIMIT_RPS", Positive(10.0));
        let burst = env.with_default("RATE_LIMIT_BURST", AtLeastOne(20));
        let upstream_timeout = env.with_default("UPSTREAM_TIMEOUT", NonZeroDuration(Duration::from_secs(1)));
        let breaker_failures = env.with_default("BREAKER_FAILURES", AtLeastOne(5));
        let breaker_cool_down = env.with_default("BREAKER_COOL_DOWN", NonZeroDuration(Duration::from_secs(5)));
        let ready_cache = env.with_default("READY_CACHE", Duration::from_secs(1));
        let shutdown_grace = env.with_default("SHUTDOWN_GRACE", Duration::from_secs(5));
        env.finish()?;
        Ok(Config {
            http_addr: http_addr?,
            user_service_addr: user_service_addr?.0,
            order_service_addr: order_service_addr?.0,
            jwt_secret: jwt_secret?,
            rate_limit: RateLimit { rps: rps?.0, burst: burst?.0 },
            upstream_timeout: upstream_timeout?.0,
            breaker: BreakerConfig { failure_threshold: breaker_failures?.0, cool_down: breaker_cool_down?.0 },
            ready_cache: ready_cache?,
            shutdown_grace: shutdown_grace?,
        })
    }
}

/// The key HS256 tokens are signed with. Its value never appears in `Debug` output or logs.
#[derive(Clone)]
pub struct JwtSecret(Vec<u8>);

impl JwtSecret {
    /// RFC 7518 §3.2: an HS256 key must be at least as long as the hash output, 256 bits.
    pub const MIN_LEN: usize = 32;

    /// A secret from raw bytes, refused when shorter than [`JwtSecret::MIN_LEN`].
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<Self, String> {
        let bytes = bytes.into();
        if bytes.len() < Self::MIN_LEN {
            return Err(format!("it is {} bytes long; HS256 needs at least {}", bytes.len(), Self::MIN_LEN));
        }
        Ok(JwtSecret(bytes))
    }

    /// The key bytes.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for JwtSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JwtSecret(<redacted>)")
    }
}

impl FromEnv for JwtSecret {
    const EXPECTED: &'static str = "a secret of at least 32 bytes";
    const EXAMPLE: &'static str = "a-long-random-string-of-32-bytes-or-more";
    fn from_env(raw: &str) -> Result<Self, String> {
        JwtSecret::new(raw.as_bytes())
    }
}

/// An upstream gRPC address: `http://host:port` (no TLS: the images are built without it).
struct UpstreamUri(Uri);

impl FromEnv for UpstreamUri {
    const EXPECTED: &'static str = "an http:// address with a host and port";
    const EXAMPLE: &'static str = "http://user-service:50051";
    fn from_env(raw: &str) -> Result<Self, String> {
        let uri: Uri = raw.parse().map_err(|e: http::uri::InvalidUri| e.to_string())?;
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") => return Err("https is not supported: the gateway is built without TLS".into()),
            _ => return Err("the scheme must be http://".into()),
        }
        let Some(authority) = uri.authority() else {
            return Err("the host is missing".into());
        };
        if authority.port_u16().is_none() {
            return Err("the port is missing".into());
        }
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            return Err("a gRPC address has no path or query".into());
        }
        Ok(UpstreamUri(uri))
    }
}

/// A number greater than zero.
struct Positive(f64);

impl FromEnv for Positive {
    const EXPECTED: &'static str = "a number greater than 0";
    const EXAMPLE: &'static str = "10";
    fn from_env(raw: &str) -> Result<Self, String> {
        match raw.parse::<f64>() {
            Ok(value) if value.is_finite() && value > 0.0 => Ok(Positive(value)),
            Ok(_) => Err(String::new()),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// A whole number of at least one.
struct AtLeastOne(u32);

impl FromEnv for AtLeastOne {
    const EXPECTED: &'static str = "a whole number of at least 1";
    const EXAMPLE: &'static str = "20";
    fn from_env(raw: &str) -> Result<Self, String> {
        match raw.parse::<u32>() {
            Ok(0) => Err(String::new()),
            Ok(value) => Ok(AtLeastOne(value)),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// A duration longer than zero: a zero timeout would fail every call.
struct NonZeroDuration(Duration);

impl FromEnv for NonZeroDuration {
    const EXPECTED: &'static str = "a duration longer than zero";
    const EXAMPLE: &'static str = "1s";
    fn from_env(raw: &str) -> Result<Self, String> {
        match pkg::config::parse_duration(raw)? {
            Duration::ZERO => Err(String::new()),
            duration => Ok(NonZeroDuration(duration)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_env(Env::from_pairs(pairs.iter().copied()))
    }

    #[test]
    fn defaults_fill_everything_but_the_required_variables() {
        let config = config(&[
            ("USER_SERVICE_ADDR", "http://user-service:50051"),
            ("ORDER_SERVICE_ADDR", "http://order-service:50052"),
            ("JWT_SECRET", SECRET),
        ])
        .unwrap();
        assert_eq!(config.http_addr, "0.0.0.0:8080".parse().unwrap());
        assert_eq!(config.rate_limit, RateLimit { rps: 10.0, burst: 20 });
        assert_eq!(config.upstream_timeout, Duration::from_secs(1));
        assert_eq!(config.breaker, BreakerConfig { failure_threshold: 5, cool_down: Duration::from_secs(5) });
        assert_eq!(config.ready_cache, Duration::from_secs(1));
        assert_eq!(config.shutdown_grace, Duration::from_secs(5));
        assert_eq!(config.jwt_secret.expose(), SECRET.as_bytes());
    }

    #[test]
    fn every_problem_is_reported_at_once_and_the_secret_is_never_shown() {
        let error = config(&[
            ("ORDER_SERVICE_ADDR", "https://order-service:50052"),
            ("JWT_SECRET", "short-secret-value"),
            ("RATE_LIMIT_RPS", "0"),
            ("RATE_LIMIT_BURST", "0"),
            ("UPSTREAM_TIMEOUT", "0s"),
        ])
        .unwrap_err();
        let names: Vec<_> = error.problems().iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "USER_SERVICE_ADDR",
                "ORDER_SERVICE_ADDR",
                "JWT_SECRET",
                "RATE_LIMIT_RPS",
                "RATE_LIMIT_BURST",
                "UPSTREAM_TIMEOUT"
            ]
        );
        let message = error.to_string();
        assert!(message.contains("https is not supported"), "{message}");
        assert!(!message.contains("short-secret-value"), "{message}");
    }

    #[test]
    fn upstream_addresses_need_http_a_host_and_a_port() {
        for bad in ["user-service:50051", "http://user-service", "http://user-service:50051/x"] {
            assert!(UpstreamUri::from_env(bad).is_err(), "{bad}");
        }
        assert!(UpstreamUri::from_env("http://127.0.0.1:50051").is_ok());
    }

    #[test]
    fn the_secret_is_redacted_in_debug_output() {
        let secret = JwtSecret::new(SECRET).unwrap();
        assert!(!format!("{secret:?}").contains(SECRET));
    }
}
