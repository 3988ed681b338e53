//! Helpers for the `plat migrate` tests: a real PostgreSQL server named by
//! `PLAT_TEST_DATABASE_URL` (scripts/test starts one), and a database of its own per test so
//! that tests run in parallel.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio_postgres::{NoTls, SimpleQueryMessage};

use crate::context::{Run, TestContext};

/// The server's URL, with its maintenance database. Missing is a failure, never a skip: CI
/// always provides it, and a skipped safety test proves nothing.
pub fn server_url() -> String {
    match std::env::var("PLAT_TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => panic!(
            "PLAT_TEST_DATABASE_URL is not set: run the tests with scripts/test, or start PostgreSQL with \
             scripts/postgres and export the URL it prints as PLAT_TEST_DATABASE_URL"
        ),
    }
}

/// `url` with its database replaced by `database` (query parameters kept).
pub fn with_database(url: &str, database: &str) -> String {
    let (main, query) = match url.split_once('?') {
        Some((main, query)) => (main, format!("?{query}")),
        None => (url, String::new()),
    };
    let authority_start = main.find("://").map_or(0, |at| at + 3);
    let base = match main[authority_start..].find('/') {
        Some(slash) => &main[..authority_start + slash],
        None => main,
    };
    format!("{base}/{database}{query}")
}

/// The server's URL with no database in it (each service then uses its `database.name`).
pub fn server_url_without_database() -> String {
    with_database(&server_url(), "").trim_end_matches('/').replace("/?", "?")
}

/// Runs `sql` with the simple query protocol; returns the rows as text (`None` for NULL).
#[track_caller]
pub fn query(url: &str, sql: &str) -> Vec<Vec<Option<String>>> {
    try_query(url, sql).unwrap_or_else(|error| panic!("{sql}: {error}"))
}

pub fn try_query(url: &str, sql: &str) -> Result<Vec<Vec<Option<String>>>, tokio_postgres::Error> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
        let connection = tokio::spawn(connection);
        let messages = client.simple_query(sql).await;
        drop(client);
        let _ = connection.await;
        Ok(messages?
            .into_iter()
            .filter_map(|message| match message {
                SimpleQueryMessage::Row(row) => {
                    Some((0..row.len()).map(|index| row.get(index).map(str::to_owned)).collect())
                }
                _ => None,
            })
            .collect())
    })
}

/// The single value of a one-row, one-column query.
#[track_caller]
pub fn scalar(url: &str, sql: &str) -> String {
    let rows = query(url, sql);
    assert_eq!(rows.len(), 1, "{sql} gave {rows:?}");
    rows[0][0].clone().unwrap_or_default()
}

/// A database name no other test (nor an earlier run) uses; dropped when the test ends.
pub struct TestDb {
    pub name: String,
}

impl TestDb {
    pub fn new(label: &str) -> TestDb {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
        let label: String = label.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_').take(24).collect();
        let name = format!("plat_t_{label}_{}_{}_{nanos}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let db = TestDb { name };
        db.drop_database();
        db
    }

    /// Its URL (the database may not exist yet: plat creates it).
    pub fn url(&self) -> String {
        with_database(&server_url(), &self.name)
    }

    pub fn exists(&self) -> bool {
        scalar(&server_url(), &format!("SELECT count(*) FROM pg_database WHERE datname = '{}'", self.name)) == "1"
    }

    pub fn query(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        query(&self.url(), sql)
    }

    pub fn scalar(&self, sql: &str) -> String {
        scalar(&self.url(), sql)
    }

    /// `version|name|checksum|success` of every history row, by version.
    pub fn history(&self) -> Vec<String> {
        self.query("SELECT version, name, checksum, success FROM plat_migrations ORDER BY version")
            .into_iter()
            .map(|row| row.into_iter().map(Option::unwrap_or_default).collect::<Vec<_>>().join("|"))
            .collect()
    }

    pub fn versions(&self) -> Vec<i64> {
        self.query("SELECT version FROM plat_migrations ORDER BY version")
            .into_iter()
            .map(|row| row[0].as_deref().unwrap().parse().unwrap())
            .collect()
    }

    pub fn table_exists(&self, table: &str) -> bool {
        self.scalar(&format!("SELECT to_regclass('{table}') IS NOT NULL")) == "t"
    }

    fn drop_database(&self) {
        let _ = try_query(&server_url(), &format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name));
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        self.drop_database();
    }
}

/// A workspace whose services have databases, and the migration files in them.
pub struct MigrateContext {
    pub context: TestContext,
}

impl MigrateContext {
    /// A workspace with `services` (`name`, its `depends_on`), each with a database.
    pub fn new(services: &[(&str, &[&str])]) -> MigrateContext {
        let context = TestContext::new();
        let mut manifest = String::from("[workspace]\nname = \"p\"\n");
        for (name, deps) in services {
            let deps: Vec<String> = deps.iter().map(|dep| format!("\"{dep}\"")).collect();
            manifest.push_str(&format!(
                "[services.{name}]\ndepends_on = [{}]\ndatabase = {{ engine = \"postgres\" }}\n",
                deps.join(", ")
            ));
            std::fs::create_dir_all(context.workspace.join("services").join(name)).unwrap();
        }
        context.manifest(&manifest);
        MigrateContext { context }
    }

    /// The migrations directory of a service.
    pub fn dir(&self, service: &str) -> PathBuf {
        self.context.workspace.join("services").join(service).join("migrations")
    }

    /// Writes a migration file.
    pub fn write(&self, service: &str, file: &str, sql: &str) -> &Self {
        let dir = self.dir(service);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(file), sql).unwrap();
        self
    }

    pub fn remove(&self, service: &str, file: &str) {
        std::fs::remove_file(self.dir(service).join(file)).unwrap();
    }

    /// `plat` in the workspace, without any `DATABASE_URL_*` of the developer's environment.
    pub fn plat(&self) -> std::process::Command {
        let mut command = self.context.plat();
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("DATABASE_URL_") {
                command.env_remove(key);
            }
        }
        command
    }

    /// Runs `plat ARGS` with extra environment variables.
    pub fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut command = self.plat();
        command.args(args).envs(env.iter().copied());
        let output = command.output().expect("plat runs");
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Runs `plat migrate ARGS --database-url <db>`.
    pub fn migrate(&self, args: &[&str], db: &TestDb) -> Run {
        let url = db.url();
        let mut all: Vec<&str> = vec!["migrate"];
        all.extend(args);
        all.extend(["--database-url", &url]);
        self.run(&all, &[])
    }

    /// Runs `plat ARGS` with `DATABASE_URL_<SERVICE>` set for each `(service, db)`.
    pub fn run_with_dbs(&self, args: &[&str], dbs: &[(&str, &TestDb)]) -> Run {
        let vars: Vec<(String, String)> = dbs
            .iter()
            .map(|(service, db)| (format!("DATABASE_URL_{}", service.to_uppercase().replace('-', "_")), db.url()))
            .collect();
        let env: Vec<(&str, &str)> = vars.iter().map(|(key, value)| (key.as_str(), value.as_str())).collect();
        self.run(args, &env)
    }
}

/// A session of the test's own that ran `sql` and stays open (its transaction, its locks) until
/// dropped: another developer's psql, a service's long transaction.
pub struct OpenSession {
    release: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl OpenSession {
    pub fn new(url: &str, sql: &str) -> OpenSession {
        let (url, sql) = (url.to_owned(), sql.to_owned());
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (release, released) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async {
                let (client, connection) = tokio_postgres::connect(&url, NoTls).await.unwrap();
                let connection = tokio::spawn(connection);
                client.batch_execute(&sql).await.unwrap();
                ready_tx.send(()).unwrap();
                // Blocking this thread is fine: the session has nothing to do but stay open.
                let _ = released.recv();
                drop(client);
                let _ = connection.await;
            });
        });
        ready_rx.recv().expect("the session ran its SQL");
        OpenSession { release: Some(release), thread: Some(thread) }
    }
}

impl Drop for OpenSession {
    fn drop(&mut self) {
        drop(self.release.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
