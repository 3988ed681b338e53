//! A service's test database: `<database>_test_<random>` on the server its real database is on,
//! created and migrated with plat's own migration engine before its tests run, dropped after.
//!
//! The tests are handed it as `DATABASE_URL` (what the service itself reads) and as
//! `PLAT_TEST_DATABASE_URL` (what pkg's test support creates one database per test on: the
//! same server, reached through the fresh database, so those go where this one is).

use crate::manifest::{Service, Workspace};
use crate::migrate::{self, DatabaseTarget, MigrateOptions, Stop};

/// PostgreSQL's limit on a name, in bytes.
const NAME_LIMIT: usize = 63;

/// A test database that exists, migrated.
#[derive(Debug)]
pub struct TestDatabase {
    /// Where it is.
    pub target: DatabaseTarget,
    url: String,
}

impl TestDatabase {
    /// The variables that hand it to the tests.
    pub fn env(&self) -> [(String, String); 2] {
        [("DATABASE_URL".to_owned(), self.url.clone()), ("PLAT_TEST_DATABASE_URL".to_owned(), self.url.clone())]
    }
}

/// Creates `service`'s test database on `server`'s server and applies its migrations.
pub async fn create(
    workspace: &Workspace,
    service: &Service,
    server: &DatabaseTarget,
    stop: &Stop,
) -> Result<TestDatabase, String> {
    let mut target = server.clone();
    // Named after the service's database, whatever database the server's URL connects to.
    let prefix = service.database.as_ref().map_or(&server.database, |database| &database.name);
    target.database = test_name(prefix);
    target.config.dbname(&target.database);
    target.named_in_url = false;
    let url = url(&target.config)?;
    let migrations = migrate::load(workspace, service).map_err(|error| error.to_string())?;
    let options = MigrateOptions { stop: stop.clone(), ..MigrateOptions::new(&workspace.migrate) };
    let created = TestDatabase { target, url };
    match migrate::migrate(&created.target, &migrations, &options, &|_| {}).await {
        Ok(_) => Ok(created),
        Err(error) => {
            // A migration that failed half-way leaves a database to drop.
            let _ = drop(&created).await;
            Err(format!("cannot prepare the test database {}: {error}", created.target.database))
        }
    }
}

/// Drops the test database, ending any session a test left open.
pub async fn drop(database: &TestDatabase) -> Result<(), String> {
    migrate::drop_database(&database.target).await.map(|_| ()).map_err(|error| error.to_string())
}

/// `<database>_test_<8 hex digits>`, within PostgreSQL's limit: unique enough for the runs of
/// one machine, and recognisable as a test's (pkg's per-test databases are named the same way).
fn test_name(database: &str) -> String {
    use sha2::Digest;
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let count = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let seed = format!("{database} {} {} {count}", std::process::id(), now.as_nanos());
    let random = &crate::text::hex(&sha2::Sha256::digest(seed.as_bytes()))[..8];
    let suffix = format!("_test_{random}");
    let mut prefix = database.to_owned();
    while prefix.len() + suffix.len() > NAME_LIMIT {
        prefix.pop();
    }
    format!("{prefix}{suffix}")
}

/// The connection settings as a URL the tests' libraries read: `postgres://user:pass@host:port/db`.
fn url(config: &tokio_postgres::Config) -> Result<String, String> {
    use tokio_postgres::config::Host;
    let encode = |text: &str| -> String {
        text.bytes()
            .map(|byte| match byte {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (byte as char).to_string(),
                other => format!("%{other:02X}"),
            })
            .collect()
    };
    let mut url = String::from("postgres://");
    if let Some(user) = config.get_user() {
        url.push_str(&encode(user));
        if let Some(password) = config.get_password() {
            url.push(':');
            url.push_str(&encode(&String::from_utf8_lossy(password)));
        }
        url.push('@');
    }
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let mut query = Vec::new();
    match config.get_hosts().first() {
        Some(Host::Tcp(host)) if host.contains(':') => url.push_str(&format!("[{host}]:{port}")),
        Some(Host::Tcp(host)) => url.push_str(&format!("{host}:{port}")),
        #[cfg(unix)]
        Some(Host::Unix(path)) => {
            query.push(format!("host={}", encode(&path.to_string_lossy())));
            query.push(format!("port={port}"));
        }
        None => return Err("the database URL names no host".to_owned()),
    }
    url.push('/');
    url.push_str(&encode(config.get_dbname().unwrap_or_default()));
    if config.get_ssl_mode() == tokio_postgres::config::SslMode::Disable {
        query.push("sslmode=disable".to_owned());
    }
    if !query.is_empty() {
        url.push('?');
        url.push_str(&query.join("&"));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_names_are_unique_and_within_the_limit() {
        let name = test_name("user_service");
        assert!(name.starts_with("user_service_test_") && name.len() == "user_service_test_".len() + 8, "{name}");
        assert_ne!(test_name("a"), test_name("a"));
        assert_eq!(test_name(&"x".repeat(63)).len(), NAME_LIMIT);
    }

    #[test]
    fn urls_carry_what_the_config_says() {
        let config: tokio_postgres::Config = "postgres://app:p%40ss@127.0.0.1:55432/other".parse().unwrap();
        let mut config = config.clone();
        config.dbname("user_service_test_0a1b2c3d");
        assert_eq!(url(&config).unwrap(), "postgres://app:p%40ss@127.0.0.1:55432/user_service_test_0a1b2c3d");
        let reparsed: tokio_postgres::Config = url(&config).unwrap().parse().unwrap();
        assert_eq!(reparsed.get_password(), Some(&b"p@ss"[..]));
    }
}
