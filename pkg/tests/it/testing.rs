//! testing: what services' integration tests are built on, tried against the PostgreSQL server
//! of `PLAT_TEST_DATABASE_URL`.

use std::path::PathBuf;
use std::time::Duration;

use pkg::health::Health;
use pkg::metrics::Metrics;
use pkg::testing::{Proxy, TestDb, TestServer, admin_config, eventually, http_get};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A directory of migrations, removed when dropped.
struct Migrations(PathBuf);

impl Migrations {
    fn new(files: &[(&str, &str)]) -> Migrations {
        let dir = std::env::temp_dir().join(format!("pkg-migrations-{}", uuid::Uuid::now_v7().simple()));
        std::fs::create_dir(&dir).unwrap();
        for (name, sql) in files {
            std::fs::write(dir.join(name), sql).unwrap();
        }
        Migrations(dir)
    }
}

impl Drop for Migrations {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn database_exists(name: &str) -> bool {
    let (client, connection) = admin_config().connect(tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    client.query_one("SELECT count(*) FROM pg_database WHERE datname = $1", &[&name]).await.unwrap().get::<_, i64>(0)
        == 1
}

#[tokio::test]
async fn a_test_database_gets_its_migrations_in_version_order_and_is_dropped_after() {
    // Version 10 after version 2, though "10" sorts first as text; down migrations left out.
    let migrations = Migrations::new(&[
        ("10_add_email.sql", "ALTER TABLE users ADD COLUMN email text NOT NULL DEFAULT '';"),
        ("2_create_users.sql", "CREATE TABLE users (id bigint PRIMARY KEY);"),
        ("2_create_users.down.sql", "this is not SQL"),
        ("README.md", "not a migration"),
    ]);
    let db = TestDb::create("pkg", &migrations.0).await;
    assert!(db.name.starts_with("pkg_test_"), "{}", db.name);
    assert!(database_exists(&db.name).await);
    let client = db.client().await;
    client.execute("INSERT INTO users (id, email) VALUES (1, 'a@example.com')", &[]).await.unwrap();
    let other = TestDb::create("pkg", &migrations.0).await;
    assert_ne!(other.name, db.name);

    let name = db.name.clone();
    drop(client);
    drop(db);
    assert!(!database_exists(&name).await, "{name} is dropped with its TestDb");
}

#[tokio::test]
#[should_panic(expected = "1_broken.sql")]
async fn a_failing_migration_names_its_file() {
    let migrations = Migrations::new(&[("1_broken.sql", "CREATE TABLE (;")]);
    TestDb::create("pkg", &migrations.0).await;
}

#[tokio::test]
#[should_panic(expected = "no migrations")]
async fn a_directory_without_migrations_is_a_mistake() {
    let migrations = Migrations::new(&[]);
    TestDb::create("pkg", &migrations.0).await;
}

#[tokio::test]
async fn a_cut_proxy_closes_connections_and_refuses_new_ones_until_restored() {
    let migrations = Migrations::new(&[("1_t.sql", "CREATE TABLE t (a int);")]);
    let db = TestDb::create("pkg", &migrations.0).await;
    let proxy = Proxy::start(&db.config).await;
    let connect = || async {
        let (client, connection) = db.through(&proxy).connect(tokio_postgres::NoTls).await?;
        tokio::spawn(connection);
        Ok::<_, tokio_postgres::Error>(client)
    };
    let client = connect().await.unwrap();
    client.simple_query("SELECT 1").await.unwrap();

    proxy.cut();
    eventually(Duration::from_secs(5), "the open connection to break", || async {
        client.simple_query("SELECT 1").await.is_err()
    })
    .await;
    assert!(connect().await.is_err());

    proxy.restore();
    connect().await.unwrap().simple_query("SELECT count(*) FROM t").await.unwrap();
}

#[tokio::test]
async fn a_test_server_runs_on_loopback_until_shut_down() {
    let server = TestServer::start(|grpc, metrics, shutdown| async move {
        let (health, health_service) = Health::new("test.v1.Test").await;
        health.set_serving().await;
        let grpc = tonic::transport::Server::builder()
            .add_service(health_service)
            .serve_with_incoming_shutdown(tonic::transport::server::TcpIncoming::from(grpc), shutdown.signalled());
        let metrics = pkg::metrics::serve(metrics, Metrics::new("test"), shutdown.signalled());
        let (grpc, metrics) = tokio::join!(grpc, metrics);
        grpc?;
        metrics?;
        Ok::<(), BoxError>(())
    })
    .await;
    assert!(server.addr.ip().is_loopback() && server.metrics_addr.ip().is_loopback());
    assert_eq!(server.url(), format!("http://{}", server.addr));

    let mut client = server.client(HealthClient::new).await;
    let status = client.check(HealthCheckRequest { service: "test.v1.Test".into() }).await.unwrap();
    assert_eq!(status.into_inner().status, 1, "SERVING");
    let response = http_get(server.metrics_addr, "/metrics").await;
    assert!(response.starts_with("HTTP/1.0 200") || response.starts_with("HTTP/1.1 200"), "{response}");

    server.shutdown().await.unwrap();
}

#[tokio::test]
#[should_panic(expected = "timed out after 100ms waiting for the impossible")]
async fn eventually_fails_naming_what_it_waited_for() {
    eventually(Duration::from_millis(100), "the impossible", || async { false }).await;
}
