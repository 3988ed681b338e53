//! config: every missing or malformed variable is reported, at once, with an example.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::os::unix::ffi::OsStringExt;
use std::time::Duration;

use pkg::config::{ConfigError, Env, ProblemKind};

struct ServiceConfig {
    listen: SocketAddr,
    database_url: String,
    user_service: http::Uri,
    timeout: Duration,
    max_connections: u32,
    metrics_port: Option<u16>,
}

fn load(env: &mut Env) -> Result<ServiceConfig, ConfigError> {
    let listen = env.with_default("LISTEN_ADDR", "0.0.0.0:50051".parse::<SocketAddr>().unwrap());
    let database_url =
        env.var("DATABASE_URL").example("postgres://user:secret@db:5432/orders").secret().required::<String>();
    let user_service = env.var("USER_SERVICE_ADDR").example("http://user-service:50051").required::<http::Uri>();
    let timeout = env.with_default("USER_SERVICE_TIMEOUT", Duration::from_millis(500));
    let max_connections = env.required::<u32>("DATABASE_MAX_CONNECTIONS");
    let metrics_port = env.optional::<u16>("METRICS_PORT");
    Ok(ServiceConfig {
        listen: listen?,
        database_url: database_url?,
        user_service: user_service?,
        timeout: timeout?,
        max_connections: max_connections?,
        metrics_port: metrics_port?,
    })
}

#[test]
fn a_complete_environment_gives_typed_values() {
    let mut env = Env::from_pairs([
        ("DATABASE_URL", "postgres://db/orders"),
        ("USER_SERVICE_ADDR", "http://user-service:50051"),
        ("USER_SERVICE_TIMEOUT", "2s"),
        ("DATABASE_MAX_CONNECTIONS", "10"),
        ("METRICS_PORT", ""), // empty counts as unset
    ]);
    let config = load(&mut env).unwrap();
    env.finish().unwrap();
    assert_eq!(config.listen, "0.0.0.0:50051".parse().unwrap());
    assert_eq!(config.database_url, "postgres://db/orders");
    assert_eq!(config.user_service.host(), Some("user-service"));
    assert_eq!(config.timeout, Duration::from_secs(2));
    assert_eq!(config.max_connections, 10);
    assert_eq!(config.metrics_port, None);
}

#[test]
fn every_problem_is_collected_into_one_error() {
    let mut env = Env::from_pairs([
        ("USER_SERVICE_TIMEOUT", "5 sec"),
        ("DATABASE_MAX_CONNECTIONS", "-3"),
        ("METRICS_PORT", "70000"),
        ("LISTEN_ADDR", "localhost"),
    ]);
    assert!(load(&mut env).is_err());
    let error = env.finish().unwrap_err();
    let names: Vec<&str> = error.problems().iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "LISTEN_ADDR",
            "DATABASE_URL",
            "USER_SERVICE_ADDR",
            "USER_SERVICE_TIMEOUT",
            "DATABASE_MAX_CONNECTIONS",
            "METRICS_PORT"
        ]
    );
    assert_eq!(error.problems()[1].kind, ProblemKind::Missing);

    let message = error.to_string();
    let expected_lines = [
        "invalid configuration: 6 environment variables are missing or malformed",
        "  LISTEN_ADDR=\"localhost\" is not a socket address (IP:port): invalid socket address syntax (example: LISTEN_ADDR=0.0.0.0:50051)",
        "  DATABASE_URL is not set (example: DATABASE_URL=postgres://user:secret@db:5432/orders)",
        "  USER_SERVICE_ADDR is not set (example: USER_SERVICE_ADDR=http://user-service:50051)",
        "  USER_SERVICE_TIMEOUT=\"5 sec\" is not a duration: unknown unit \" sec\": use us, ms, s, m or h (example: USER_SERVICE_TIMEOUT=500ms)",
        "  DATABASE_MAX_CONNECTIONS=\"-3\" is not a non-negative whole number: invalid digit found in string (example: DATABASE_MAX_CONNECTIONS=100)",
        "  METRICS_PORT=\"70000\" is not a whole number from 0 to 65535: number too large to fit in target type (example: METRICS_PORT=8080)",
    ];
    assert_eq!(message.lines().collect::<Vec<_>>(), expected_lines, "{message}");
}

#[test]
fn secret_values_stay_out_of_messages() {
    let mut env = Env::from_pairs([("API_TOKEN_TTL", "hunter2")]);
    let _ = env.var("API_TOKEN_TTL").secret().required::<Duration>();
    let message = env.finish().unwrap_err().to_string();
    assert!(!message.contains("hunter2"), "{message}");
    assert_eq!(
        message,
        "invalid configuration: API_TOKEN_TTL (secret, value not shown) is not a duration (example: API_TOKEN_TTL=500ms)"
    );
}

#[test]
fn non_utf8_values_are_named() {
    let mut env = Env::from_pairs([("NAME", OsString::from_vec(vec![0xff, 0xfe]))]);
    let error = env.required::<String>("NAME").unwrap_err();
    assert_eq!(error.problems()[0].kind, ProblemKind::NotUnicode);
    assert_eq!(
        env.finish().unwrap_err().to_string(),
        "invalid configuration: NAME is not valid UTF-8 (example: NAME=some-value)"
    );
}

#[test]
fn each_read_also_fails_on_its_own() {
    let mut env = Env::from_pairs([("PORT", "eighty")]);
    let error = env.required::<u16>("PORT").unwrap_err();
    assert_eq!(error.problems().len(), 1);
    assert!(error.to_string().starts_with("invalid configuration: PORT=\"eighty\" is not a whole number"));
}
