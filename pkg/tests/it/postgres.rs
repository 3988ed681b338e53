//! postgres: configuration, the pool, what errors mean, and the health probe, against the
//! PostgreSQL server of `PLAT_TEST_DATABASE_URL`.

use std::time::Duration;

use pkg::config::{Env, FromEnv};
use pkg::health::Health;
use pkg::metrics::Metrics;
use pkg::postgres::{DatabaseError, DatabaseUrl, HealthProbe, PoolSize, bounded, ping, pool};
use pkg::shutdown::{Shutdown, ShutdownConfig};
use pkg::testing::{Proxy, admin_config, eventually};

fn closed_port_config() -> tokio_postgres::Config {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let mut config = tokio_postgres::Config::new();
    config.host("127.0.0.1").port(port).user("postgres").dbname("nowhere");
    config
}

#[test]
fn database_urls_are_checked_when_read_and_keep_passwords_out_of_debug() {
    let url = DatabaseUrl::from_env("postgres://app:hunter2@db:5432/user_service").unwrap();
    assert_eq!(url.0.get_dbname(), Some("user_service"));
    let debug = format!("{url:?}");
    assert!(debug.contains("user_service") && !debug.contains("hunter2"), "{debug}");
    assert_eq!(DatabaseUrl::from_env("dbname=x").unwrap_err(), "it names no host");
    assert!(DatabaseUrl::from_env("postgres://app@db:notaport/x").is_err());

    let error = Env::from_pairs([("DATABASE_URL", "postgres://app:hunter2@db:notaport/x")])
        .var("DATABASE_URL")
        .secret()
        .required::<DatabaseUrl>()
        .unwrap_err()
        .to_string();
    assert!(error.contains("DATABASE_URL (secret"), "{error}");
    assert!(!error.contains("hunter2"), "{error}");
}

#[test]
fn pool_sizes_are_from_1_to_1000_and_10_by_default() {
    assert_eq!(PoolSize::default(), PoolSize(10));
    assert_eq!(PoolSize::from_env("1"), Ok(PoolSize(1)));
    assert_eq!(PoolSize::from_env("1000"), Ok(PoolSize(1000)));
    for bad in ["0", "1001", "-1", "ten", ""] {
        assert!(PoolSize::from_env(bad).is_err(), "{bad}");
    }
    let mut env = Env::from_pairs([("DATABASE_POOL_SIZE", "0")]);
    let _ = env.var("DATABASE_POOL_SIZE").with_default(PoolSize::default());
    let message = env.finish().unwrap_err().to_string();
    assert!(message.contains("DATABASE_POOL_SIZE") && message.contains("from 1 to 1000"), "{message}");
}

#[tokio::test]
async fn the_pool_names_its_connections_and_answers_queries() {
    let pool = pool(&admin_config(), "pkg-test", 2).unwrap();
    let client = pool.get().await.unwrap();
    let name: String = client.query_one("SELECT current_setting('application_name')", &[]).await.unwrap().get(0);
    assert_eq!(name, "pkg-test");
    ping(&pool).await.unwrap();

    // A name in the URL wins.
    let mut config = admin_config();
    config.application_name("from-the-url");
    let client = pkg::postgres::pool(&config, "pkg-test", 1).unwrap().get().await.unwrap();
    let name: String = client.query_one("SELECT current_setting('application_name')", &[]).await.unwrap().get(0);
    assert_eq!(name, "from-the-url");
}

#[tokio::test]
async fn an_unreachable_database_is_unavailable_within_the_connect_timeout() {
    let pool = pool(&closed_port_config(), "pkg-test", 2).unwrap();
    let started = std::time::Instant::now();
    let error = ping(&pool).await.unwrap_err();
    assert!(error.is_unavailable(), "{error:?}");
    assert_eq!(error.to_string(), "database unavailable");
    assert!(started.elapsed() < pkg::postgres::CONNECT_TIMEOUT + Duration::from_secs(1), "{:?}", started.elapsed());
}

#[tokio::test]
async fn errors_the_database_answers_are_query_errors_and_lost_connections_unavailable() {
    let pool = pool(&admin_config(), "pkg-test", 2).unwrap();
    let client = pool.get().await.unwrap();
    let error = DatabaseError::from(client.simple_query("SELEC 1").await.unwrap_err());
    assert!(matches!(error, DatabaseError::Query(_)), "{error:?}");
    let error = DatabaseError::from(client.query_one("SELECT 1 / 0", &[]).await.unwrap_err());
    assert!(matches!(error, DatabaseError::Query(_)), "{error:?}");

    // The server ending the session (57P01, as on a restart) is worth a retry.
    let error = client.simple_query("SELECT pg_terminate_backend(pg_backend_pid())").await.unwrap_err();
    assert!(DatabaseError::from(error).is_unavailable());
    // And so is the closed connection left behind.
    let error = DatabaseError::from(client.simple_query("SELECT 1").await.unwrap_err());
    assert!(error.is_unavailable(), "{error:?}");
}

#[tokio::test(start_paused = true)]
async fn a_call_that_does_not_answer_is_unavailable_after_the_query_timeout() {
    let started = tokio::time::Instant::now();
    let result: Result<(), DatabaseError> = bounded(std::future::pending()).await;
    let error = result.unwrap_err();
    assert!(error.is_unavailable());
    assert_eq!(started.elapsed(), pkg::postgres::QUERY_TIMEOUT);
    let cause = std::error::Error::source(&error).unwrap().to_string();
    assert_eq!(cause, "no answer from the database within 5s");
}

fn database_up(metrics: &Metrics) -> Option<String> {
    let text = metrics.render();
    text.lines().find(|line| line.starts_with("database_up{")).map(|line| line.rsplit(' ').next().unwrap().to_owned())
}

#[tokio::test]
async fn the_probe_follows_the_database_and_reports_not_serving_from_shutdown_on() {
    let admin = admin_config();
    let proxy = Proxy::start(&admin).await;
    let mut config = tokio_postgres::Config::new();
    config.host("127.0.0.1").port(proxy.addr.port()).dbname(admin.get_dbname().unwrap_or("postgres"));
    if let Some(user) = admin.get_user() {
        config.user(user);
    }
    if let Some(password) = admin.get_password() {
        config.password(password);
    }
    let pool = pool(&config, "pkg-test", 2).unwrap();
    let (health, _service) = Health::new("test.v1.Test").await;
    let metrics = Metrics::new("test");
    let shutdown = Shutdown::new(ShutdownConfig { grace: Duration::from_secs(1), force_exit: false });
    let _probe = HealthProbe::start(pool, &health, &metrics, &shutdown, Duration::from_millis(50));

    eventually(Duration::from_secs(5), "SERVING", || async { health.is_serving() }).await;
    assert_eq!(database_up(&metrics).as_deref(), Some("1"));
    assert!(metrics.render().contains("database_up{service=\"test\"} 1"), "{}", metrics.render());

    proxy.cut();
    eventually(Duration::from_secs(10), "NOT_SERVING once the database is gone", || async { !health.is_serving() })
        .await;
    assert_eq!(database_up(&metrics).as_deref(), Some("0"));

    proxy.restore();
    eventually(Duration::from_secs(10), "SERVING again", || async { health.is_serving() }).await;
    assert_eq!(database_up(&metrics).as_deref(), Some("1"));

    // From shutdown on the probe is stopped and the service NOT_SERVING, database or not.
    shutdown.trigger();
    eventually(Duration::from_secs(5), "NOT_SERVING on shutdown", || async { !health.is_serving() }).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!health.is_serving());
}

#[tokio::test]
async fn the_probe_reports_not_serving_while_the_database_was_never_reachable() {
    let pool = pool(&closed_port_config(), "pkg-test", 2).unwrap();
    let (health, _service) = Health::new("test.v1.Test").await;
    let metrics = Metrics::new("test");
    let shutdown = Shutdown::new(ShutdownConfig::default());
    let probe = HealthProbe::start(pool, &health, &metrics, &shutdown, Duration::from_millis(50));
    eventually(Duration::from_secs(5), "the first ping", || async { database_up(&metrics).as_deref() == Some("0") })
        .await;
    assert!(!health.is_serving());
    drop(probe);
}
