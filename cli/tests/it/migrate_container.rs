//! `plat migrate` against the workspace's database container, the third place a URL comes
//! from: a real container of plat/postgres:15 (built here by scripts/images/postgres when
//! missing) started through the engine, one workspace name per test so that tests running at
//! once never share a container, and everything removed at the end, even when a test fails.

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use plat::docker::{DatabaseContainer, Engine, Owner};

use crate::context::{TestContext, ensure_postgres_image};
use crate::migrate::{MigrateContext, query, scalar};

fn block_on<T>(future: impl Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(future)
}

/// A workspace name no other test uses, and what the engine starts for it, removed on drop.
struct Platform {
    workspace: String,
}

impl Platform {
    fn new(label: &str) -> Platform {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
        let workspace = format!(
            "plat-t-{label}-{}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed),
            nanos % 10_000
        );
        Platform { workspace }
    }

    /// Starts the database container as the checkout at `root` would, and waits until
    /// PostgreSQL accepts connections.
    fn start(&self, root: &std::path::Path) -> DatabaseContainer {
        ensure_postgres_image();
        let owner = Owner::new(&self.workspace, root);
        block_on(async {
            let engine = Engine::connect().await.expect("the Engine answers");
            let container = engine.start_database_container(&owner).await.expect("the container starts");
            engine.wait_healthy(&container, Duration::from_secs(120)).await.expect("PostgreSQL gets ready");
            container
        })
    }

    /// A workspace with two services with databases, named after this platform.
    fn context(&self) -> MigrateContext {
        let context = TestContext::new();
        context.manifest(&format!(
            "[workspace]\nname = \"{}\"\n\
             [services.user-service]\ndatabase = {{ engine = \"postgres\" }}\n\
             [services.order-service]\ndepends_on = [\"user-service\"]\ndatabase = {{ engine = \"postgres\", name = \"orders\" }}\n",
            self.workspace
        ));
        let context = MigrateContext { context };
        context.write(
            "user-service",
            "1_users.sql",
            "CREATE TABLE users (id bigint PRIMARY KEY, name text NOT NULL);\n",
        );
        context.write("user-service", "2_email.sql", "ALTER TABLE users ADD COLUMN email text;\n");
        context.write(
            "order-service",
            "1_orders.sql",
            "CREATE TABLE orders (id bigint PRIMARY KEY, user_id bigint);\n",
        );
        context
    }
}

impl Drop for Platform {
    fn drop(&mut self) {
        let workspace = self.workspace.clone();
        // On a thread of its own: a runtime cannot block inside another one, and a failed
        // test may be unwinding from anywhere.
        let removed = std::thread::spawn(move || {
            block_on(async {
                let engine = Engine::connect().await?;
                let removed = engine.remove_database(&workspace, true).await?;
                // The workspace network too: each one left behind takes an address pool, and the
                // Engine runs out of them after a few dozen.
                engine.remove_network(&workspace).await?;
                Ok::<_, plat::docker::DockerError>(removed)
            })
        })
        .join();
        if !matches!(removed, Ok(Ok(_))) {
            eprintln!("warning: could not remove the database container of {}: {removed:?}", self.workspace);
        }
    }
}

/// The database's URL from this machine, on the port the container publishes.
fn url(container: &DatabaseContainer, database: &str) -> String {
    format!("postgres://postgres@127.0.0.1:{}/{database}", container.port.expect("published"))
}

/// The URL plat says it migrated: the container's, on the workspace network, as the services
/// reach it (plat goes there directly or through the Engine).
fn in_network(database: &str) -> String {
    format!("postgres://postgres@postgres:5432/{database}")
}

#[test]
fn migrate_finds_the_workspace_database_container() {
    let platform = Platform::new("migrate");
    let context = platform.context();
    let container = platform.start(&context.context.workspace);
    assert_eq!(container.name, format!("{}-postgres", platform.workspace));

    // No --database-url, no DATABASE_URL_* (MigrateContext removes the developer's).
    let run = context.run(&["migrate"], &[]).expect_code(0);
    let via = format!("(container {})", container.name);
    assert!(run.stderr.contains("Created database `user_service` for user-service"), "{}", run.stderr);
    assert!(
        run.stderr.contains(&format!(
            "Finished user-service: 2 applied now, 2 in all, on {} {via}",
            in_network("user_service")
        )),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains(&format!("on {} {via}", in_network("orders"))), "{}", run.stderr);

    // Applied in the container's databases, checked over the published port.
    let users = url(&container, "user_service");
    assert_eq!(
        query(&users, "SELECT version FROM plat_migrations ORDER BY version"),
        [[Some("1".into())], [Some("2".into())]]
    );
    assert_eq!(scalar(&users, "SELECT count(*) FROM information_schema.columns WHERE table_name = 'users'"), "3");
    assert_eq!(scalar(&url(&container, "orders"), "SELECT to_regclass('orders') IS NOT NULL"), "t");

    let run = context.run(&["migrate"], &[]).expect_code(0);
    assert!(run.stderr.contains(&format!("Fresh user-service: 2 applied, none pending {via}")), "{}", run.stderr);
    let status = context.run(&["migrate", "status", "--json"], &[]).expect_code(0).json();
    assert_eq!(status[1]["url"], in_network("orders"));

    // A URL given wins over the container: this one leads nowhere.
    let run = context
        .run(&["migrate", "user-service"], &[("DATABASE_URL_USER_SERVICE", "postgres://postgres@127.0.0.1:1/x")]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("cannot connect to postgres://postgres@127.0.0.1:1/x"), "{}", run.stderr);
}

#[test]
fn without_a_container_the_error_says_all_three_ways() {
    // Nothing is started for this workspace name.
    let platform = Platform::new("none");
    let context = platform.context();
    let run = context.run(&["migrate", "user-service"], &[]).expect_code(2);
    let stderr = run.stderr.replace(&platform.workspace, "[workspace]");
    insta::assert_snapshot!(stderr, @r"
    error: no database URL for user-service: pass --database-url, set DATABASE_URL_USER_SERVICE, or start the platform's database with `plat db start`
    hint: plat migrate uses the workspace's running database container: one labelled dev.plat.workspace=[workspace] and dev.plat.role=postgres (`plat db start` starts it from image plat/postgres:15, which scripts/images/postgres builds)
    ");

    // Without an Engine to ask, the same, and why the container could not be looked for.
    let run = context.run(&["migrate"], &[("DOCKER_HOST", "unix:///nonexistent/docker.sock")]).expect_code(2);
    assert!(run.stderr.contains("error: no database URL for order-service"), "{}", run.stderr);
    assert!(
        run.stderr.contains("hint: could not ask the Docker Engine for it: Socket not found: /nonexistent/docker.sock"),
        "{}",
        run.stderr
    );
    // A URL for every service: Docker is not asked at all.
    let run = context.run(
        &["migrate", "--database-url", "postgres://postgres@127.0.0.1:1"],
        &[("DOCKER_HOST", "unix:///nonexistent/docker.sock")],
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(!run.stderr.contains("Docker"), "{}", run.stderr);
}

#[test]
fn docker_stop_is_a_fast_shutdown_even_with_a_client_connected() {
    let platform = Platform::new("stop");
    let container = platform.start(&std::env::temp_dir());
    // A connected client: SIGTERM (PostgreSQL's smart shutdown) would wait for it to leave,
    // until Docker kills the server after 10 s. The image's SIGINT does not wait.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (client, connection) =
        runtime.block_on(tokio_postgres::connect(&url(&container, "postgres"), tokio_postgres::NoTls)).unwrap();
    let _connection = runtime.spawn(connection);
    runtime.block_on(client.simple_query("SELECT 1")).unwrap();

    let started = Instant::now();
    let stop = Command::new("docker").args(["stop", &container.name]).output().expect("docker runs");
    let took = started.elapsed();
    assert!(stop.status.success(), "{}", String::from_utf8_lossy(&stop.stderr));
    assert!(took < Duration::from_secs(5), "docker stop took {took:?}");

    let state = Command::new("docker")
        .args(["inspect", "--format", "{{.State.ExitCode}} {{.State.OOMKilled}}", &container.name])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&state.stdout).trim(), "0 false", "PostgreSQL exited by itself, cleanly");
    let logs = Command::new("docker").args(["logs", &container.name]).output().unwrap();
    let logs = String::from_utf8_lossy(&logs.stderr);
    assert!(logs.contains("received fast shutdown request"), "{logs}");
    assert!(logs.contains("database system is shut down"), "{logs}");
}

#[test]
fn db_start_converges_and_the_data_outlives_the_container() {
    let platform = Platform::new("db");
    ensure_postgres_image();
    let context = platform.context();
    let first = context.run(&["db", "start"], &[]).expect_code(0);
    let url = first.stdout.trim().to_owned();
    assert!(url.starts_with("postgres://postgres@127.0.0.1:"), "{url}");
    assert!(first.stderr.contains(&format!("Ready {}-postgres on 127.0.0.1:", platform.workspace)), "{}", first.stderr);
    // Again: the same container, still running, the same port.
    let again = context.run(&["db", "start"], &[]).expect_code(0);
    assert_eq!(again.stdout.trim(), url);

    context.run(&["migrate", "user-service"], &[]).expect_code(0);
    let run = context.run(&["db", "stop"], &[]).expect_code(0);
    assert!(run.stderr.contains(&format!("Stopped container {}-postgres", platform.workspace)), "{}", run.stderr);
    // Stopped: plat migrate no longer finds it.
    context.run(&["migrate", "user-service"], &[]).expect_code(2);

    let server = context.run(&["db", "start"], &[]).expect_code(0).stdout;
    let url = format!("{}/user_service", server.trim().rsplit_once('/').unwrap().0);
    assert_eq!(scalar(&url, "SELECT count(*) FROM plat_migrations"), "2", "the volume kept the data");
    let run = context.run(&["migrate", "user-service"], &[]).expect_code(0);
    assert!(run.stderr.contains("Fresh user-service: 2 applied, none pending"), "{}", run.stderr);
}
