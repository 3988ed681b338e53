//! Talking to PostgreSQL: connecting (and creating the service database), the advisory lock
//! that serialises concurrent runs, and the history table.
//!
//! Architecture invariant: only this module and the migrate module's runner send SQL.

use std::time::{Duration, Instant};

use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, Config, NoTls};

use super::tls::{HandshakeError, SslMode, TlsSettings};
use super::url::{self, DatabaseTarget};

/// The history table's name, in the schema that is current when plat connects (normally `public`).
pub const HISTORY_TABLE: &str = "plat_migrations";

/// The advisory lock key every plat run on a database takes: the ASCII of `platmigr`. Advisory
/// locks belong to one database, so each service database has its own lock. In `pg_locks` it
/// shows as classid 1886151028, objid 1835624306, objsubid 1.
pub const LOCK_KEY: i64 = i64::from_be_bytes(*b"platmigr");

/// How long to wait for a connection, from the TCP connect to the end of PostgreSQL's startup
/// handshake, unless the URL's `connect_timeout` says otherwise.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// TCP keepalives: after this long without traffic the kernel starts probing the server...
const KEEPALIVE_IDLE: Duration = Duration::from_secs(15);
/// ...every this often...
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(5);
/// ...and gives the connection up after this many unanswered probes: a network that drops the
/// connection silently ends it within about 30 s, instead of the kernel's two hours.
const KEEPALIVE_RETRIES: u32 = 3;
/// How long data plat sent may stay unacknowledged before the kernel ends the connection (Linux
/// `TCP_USER_TIMEOUT`): covers a network that goes dead while plat is sending.
const TCP_USER_TIMEOUT: Duration = Duration::from_secs(30);

/// What the session running a migration is called in `pg_stat_activity`, so that whoever waits
/// for the lock can tell who holds it: `plat migrate (<host>:<pid>)`.
pub fn application_name() -> String {
    let host = whoami::hostname().unwrap_or_else(|_| "unknown-host".to_owned());
    format!("plat migrate ({host}:{})", std::process::id())
}

/// A database error in words: the server's message alone for server errors, else the chain.
pub fn describe(error: &tokio_postgres::Error) -> String {
    if let Some(db) = error.as_db_error() {
        return db.message().to_owned();
    }
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
        source = cause_of(source);
    }
    text
}

fn cause_of<'a>(error: Option<&'a (dyn std::error::Error + 'static)>) -> Option<&'a (dyn std::error::Error + 'static)> {
    error.and_then(std::error::Error::source)
}

/// Why a connection failed: the server's answer, or no way to it at all.
#[derive(Debug)]
enum ConnectError {
    /// The server answered (or its connection failed), as tokio-postgres tells.
    Postgres(tokio_postgres::Error),
    /// The connection through the Engine could not be opened.
    Dial(std::io::Error),
    /// The server took the TCP connection (or did not) and never finished the startup handshake.
    TimedOut(Duration),
    /// TLS could not be set up: the roots the mode needs are missing or unreadable.
    Tls(String),
    /// The server answered the TLS request with "no", and the mode requires TLS.
    ServerWithoutTls(SslMode),
}

impl ConnectError {
    /// The SQLSTATE of a server's refusal.
    fn code(&self) -> Option<&SqlState> {
        match self {
            ConnectError::Postgres(error) => error.code(),
            ConnectError::Dial(_)
            | ConnectError::TimedOut(_)
            | ConnectError::Tls(_)
            | ConnectError::ServerWithoutTls(_) => None,
        }
    }

    /// The TLS handshake (or what the server said of TLS), whose description says what to do.
    fn is_tls(&self) -> bool {
        match self {
            ConnectError::Postgres(error) => handshake_error(error).is_some() || refused_plain(error),
            ConnectError::Tls(_) | ConnectError::ServerWithoutTls(_) => true,
            ConnectError::Dial(_) | ConnectError::TimedOut(_) => false,
        }
    }

    fn describe(&self) -> String {
        match self {
            ConnectError::Postgres(error) if let Some(handshake) = handshake_error(error) => handshake.to_string(),
            ConnectError::Postgres(error) => {
                let text = describe(error);
                if refused_plain(error) {
                    format!("{text} (the server may accept only TLS connections: try sslmode=require)")
                } else {
                    text
                }
            }
            ConnectError::Dial(error) => error.to_string(),
            ConnectError::Tls(reason) => reason.clone(),
            ConnectError::ServerWithoutTls(mode) => format!(
                "the server does not accept TLS connections, and sslmode={} requires TLS: turn `ssl = on` in the \
                 server's postgresql.conf (with its certificate and key), or, on a network you trust, use \
                 sslmode=prefer (TLS when the server offers it) or sslmode=disable",
                mode.as_str()
            ),
            ConnectError::TimedOut(limit) => format!(
                "no answer within {}s: the server did not accept the connection, or accepted it and never finished \
                 PostgreSQL's startup handshake (connect_timeout)",
                limit.as_secs_f64()
            ),
        }
    }
}

/// plat's own explanation of a failed TLS handshake, which tokio-postgres wraps.
fn handshake_error(error: &tokio_postgres::Error) -> Option<&HandshakeError> {
    std::error::Error::source(error).and_then(|source| source.downcast_ref::<HandshakeError>())
}

/// The server refused a plain connection: pg_hba.conf's `hostssl` lines only. It says "no
/// encryption", not why.
fn refused_plain(error: &tokio_postgres::Error) -> bool {
    error.code() == Some(&SqlState::INVALID_AUTHORIZATION_SPECIFICATION)
        && error.as_db_error().is_some_and(|db| db.message().ends_with("no encryption"))
}

/// Connects with `config`, plat's application name, TCP keepalives and a deadline on the whole
/// handshake, over TLS as `tls` says; through `dial`'s connection when there is one (the
/// workspace's database, reached through the Engine, without TLS).
///
/// tokio-postgres's own `connect_timeout` covers only the TCP connect: a server (or a proxy)
/// that accepts the connection and never answers would hang the startup forever.
async fn connect(config: &Config, tls: &TlsSettings, dial: Option<&url::Dial>) -> Result<Client, ConnectError> {
    let mut config = config.clone();
    config.application_name(application_name());
    let limit = config.get_connect_timeout().copied().filter(|limit| !limit.is_zero()).unwrap_or(CONNECT_TIMEOUT);
    config.connect_timeout(limit);
    // The URL may turn keepalives off (`keepalives=0`) or set its own user timeout.
    if config.get_keepalives() {
        config
            .keepalives_idle(KEEPALIVE_IDLE)
            .keepalives_interval(KEEPALIVE_INTERVAL)
            .keepalives_retries(KEEPALIVE_RETRIES);
    }
    if config.get_tcp_user_timeout().is_none() {
        config.tcp_user_timeout(TCP_USER_TIMEOUT);
    }
    let handshake = async {
        match dial {
            None => connect_direct(&config, tls).await,
            Some(dial) => {
                let stream = (dial.0)().await.map_err(ConnectError::Dial)?;
                let (client, connection) = config.connect_raw(stream, NoTls).await.map_err(ConnectError::Postgres)?;
                tokio::spawn(async move {
                    if let Err(error) = connection.await {
                        tracing::debug!("database connection ended: {error}");
                    }
                });
                Ok(client)
            }
        }
    };
    tokio::time::timeout(limit, handshake).await.unwrap_or(Err(ConnectError::TimedOut(limit)))
}

/// Connects to the URL's host, as libpq would with `tls.mode`: `allow` retries with TLS when
/// the server refuses a plain connection, `prefer` retries without TLS when the handshake fails.
async fn connect_direct(config: &Config, tls: &TlsSettings) -> Result<Client, ConnectError> {
    let connector = tls.connector().map_err(ConnectError::Tls)?;
    let retry = |mode: tokio_postgres::config::SslMode| {
        let mut config = config.clone();
        config.ssl_mode(mode);
        config
    };
    let first = config.connect(connector.clone()).await;
    let result = match (tls.mode, first) {
        (SslMode::Allow, Err(error)) if error.code() == Some(&SqlState::INVALID_AUTHORIZATION_SPECIFICATION) => {
            retry(tokio_postgres::config::SslMode::Require).connect(connector).await
        }
        (SslMode::Prefer, Err(error)) if error.to_string().starts_with("error performing TLS handshake") => {
            tracing::debug!("TLS failed ({}), connecting without it as sslmode=prefer allows", describe(&error));
            retry(tokio_postgres::config::SslMode::Disable).connect(connector).await
        }
        (_, result) => result,
    };
    match result {
        Ok((client, connection)) => {
            tokio::spawn(async move {
                if let Err(error) = connection.await {
                    tracing::debug!("database connection ended: {error}");
                }
            });
            Ok(client)
        }
        // tokio-postgres's words are "server does not support TLS", and nothing on what to do.
        Err(error) if describe(&error).ends_with("server does not support TLS") => {
            Err(ConnectError::ServerWithoutTls(tls.mode))
        }
        Err(error) => Err(ConnectError::Postgres(error)),
    }
}

/// Sends the server a cancel request for what `token`'s session is running, over a new
/// connection: to the URL's host, or through the Engine like the session itself.
pub async fn cancel(token: &tokio_postgres::CancelToken, target: &DatabaseTarget) -> Result<(), String> {
    let sent = async {
        match &target.dial {
            None => {
                let connector = target.tls.connector()?;
                token.cancel_query(connector).await.map_err(|error| describe(&error))
            }
            Some(dial) => {
                let stream = (dial.0)().await.map_err(|error| error.to_string())?;
                token.cancel_query_raw(stream, NoTls).await.map_err(|error| describe(&error))
            }
        }
    };
    tokio::time::timeout(CONNECT_TIMEOUT, sent).await.unwrap_or_else(|_| Err("no answer".to_owned()))
}

/// A session that holds a lock another one waits for, as `pg_stat_activity` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocker {
    /// Its backend process id.
    pub pid: i32,
    /// Its `application_name`.
    pub application_name: String,
    /// `active`, `idle in transaction`...
    pub state: String,
    /// Its current or last query, cut to 200 characters.
    pub query: String,
    /// The table (or index) the waiting session waits for, when it waits for one.
    pub relation: Option<String>,
}

impl std::fmt::Display for Blocker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pid {}", self.pid)?;
        if !self.application_name.is_empty() {
            write!(f, " ({})", self.application_name)?;
        }
        if !self.state.is_empty() {
            write!(f, ", {}", self.state)?;
        }
        let query = self.query.split_whitespace().collect::<Vec<_>>().join(" ");
        if !query.is_empty() {
            write!(f, ", last query `{query}`")?;
        }
        Ok(())
    }
}

/// The sessions that `pid` waits for.
pub async fn blockers(client: &Client, pid: i32) -> Result<Vec<Blocker>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT a.pid, coalesce(a.application_name, ''), coalesce(a.state, ''), left(coalesce(a.query, ''), 200),
                    (SELECT l.relation::regclass::text FROM pg_locks l
                     WHERE l.pid = $1 AND NOT l.granted AND l.relation IS NOT NULL LIMIT 1)
             FROM pg_stat_activity a WHERE a.pid = ANY(pg_blocking_pids($1)) ORDER BY a.pid",
            &[&pid],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| Blocker {
            pid: row.get(0),
            application_name: row.get(1),
            state: row.get(2),
            query: row.get(3),
            relation: row.get(4),
        })
        .collect())
}

/// A second connection to the service database, for looking at the first one's session.
pub async fn connect_aside(target: &DatabaseTarget) -> Result<Client, String> {
    connect(&target.config, &target.tls, target.dial.as_ref()).await.map_err(|error| error.describe())
}

/// Why the service database could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The server could not be reached or refused us.
    #[error("cannot connect to {url}: {reason}")]
    Connect {
        /// The URL, password masked.
        url: String,
        /// Why.
        reason: String,
        /// Whether TLS failed (the reason then says what to do).
        tls: bool,
    },
    /// The database did not exist and could not be created.
    #[error("cannot create database `{database}` on {url}: {reason}")]
    Create {
        /// The database.
        database: String,
        /// The maintenance database's URL, password masked.
        url: String,
        /// Why.
        reason: String,
        /// The server refused for lack of privilege.
        denied: bool,
    },
    /// The database could not be dropped (`plat db reset`).
    #[error("cannot drop database `{database}` on {url}: {reason}")]
    Drop {
        /// The database.
        database: String,
        /// The maintenance database's URL, password masked.
        url: String,
        /// Why.
        reason: String,
    },
}

/// Connects to the service database; with `create`, creates it first when it does not exist.
/// Returns the client (`None` when the database does not exist and `create` is off) and whether
/// this call created the database.
pub async fn open(target: &DatabaseTarget, create: bool) -> Result<(Option<Client>, bool), OpenError> {
    let connect_error = |error: ConnectError| OpenError::Connect {
        url: target.display(),
        reason: error.describe(),
        tls: error.is_tls(),
    };
    match connect(&target.config, &target.tls, target.dial.as_ref()).await {
        Ok(client) => return Ok((Some(client), false)),
        Err(error) if error.code() == Some(&SqlState::INVALID_CATALOG_NAME) && !create => return Ok((None, false)),
        Err(error) if error.code() == Some(&SqlState::INVALID_CATALOG_NAME) => {}
        Err(error) => return Err(connect_error(error)),
    }
    let created = create_database(target).await?;
    let client = connect(&target.config, &target.tls, target.dial.as_ref()).await.map_err(connect_error)?;
    Ok((Some(client), created))
}

/// `CREATE DATABASE` from the server's maintenance database. Two plat processes may race here:
/// the loser's "already exists" means the database is there, which is all either wanted.
async fn create_database(target: &DatabaseTarget) -> Result<bool, OpenError> {
    let mut last = None;
    for maintenance in ["postgres", "template1"] {
        let config = target.with_database(maintenance);
        let failed = |reason: String, code: Option<&SqlState>| OpenError::Create {
            database: target.database.clone(),
            url: url::display(&config),
            reason,
            denied: code == Some(&SqlState::INSUFFICIENT_PRIVILEGE),
        };
        let client = match connect(&config, &target.tls, target.dial.as_ref()).await {
            Ok(client) => client,
            Err(error) if error.code() == Some(&SqlState::INVALID_CATALOG_NAME) => {
                last = Some(failed(error.describe(), error.code()));
                continue;
            }
            Err(error) => return Err(failed(error.describe(), error.code())),
        };
        let statement = format!("CREATE DATABASE {}", quote_ident(&target.database));
        return match client.batch_execute(&statement).await {
            Ok(()) => Ok(true),
            // 42P04 when the other creator committed first; 23505 when both were inserting the
            // catalog row at once.
            Err(error)
                if error.code() == Some(&SqlState::DUPLICATE_DATABASE)
                    || error.code() == Some(&SqlState::UNIQUE_VIOLATION) =>
            {
                Ok(false)
            }
            Err(error) => Err(failed(describe(&error), error.code())),
        };
    }
    Err(last.expect("tried at least one maintenance database"))
}

/// Drops the service database (its sessions ended first), from the server's maintenance
/// database. Returns whether it existed.
pub async fn drop_database(target: &DatabaseTarget) -> Result<bool, OpenError> {
    let mut last = None;
    for maintenance in ["postgres", "template1"] {
        let config = target.with_database(maintenance);
        let failed = |reason: String, _: Option<&SqlState>| OpenError::Drop {
            database: target.database.clone(),
            url: url::display(&config),
            reason,
        };
        let client = match connect(&config, &target.tls, target.dial.as_ref()).await {
            Ok(client) => client,
            Err(error) if error.code() == Some(&SqlState::INVALID_CATALOG_NAME) => {
                last = Some(failed(error.describe(), error.code()));
                continue;
            }
            Err(error) => return Err(failed(error.describe(), error.code())),
        };
        let name = quote_ident(&target.database);
        let existed: bool = client
            .query_one("SELECT count(*) > 0 FROM pg_database WHERE datname = $1", &[&target.database])
            .await
            .map_err(|error| failed(describe(&error), error.code()))?
            .get(0);
        // `WITH (FORCE)` (PostgreSQL 13) ends the sessions still in it: a service left running.
        let dropped = match client.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await {
            Err(error) if error.code() == Some(&SqlState::SYNTAX_ERROR) => {
                client.batch_execute(&format!("DROP DATABASE IF EXISTS {name}")).await
            }
            other => other,
        };
        return dropped.map(|()| existed).map_err(|error| failed(describe(&error), error.code()));
    }
    Err(last.expect("tried at least one maintenance database"))
}

/// `"name"`, with embedded quotes doubled.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// An index and whether PostgreSQL can use it (`pg_index.indisvalid`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexState {
    /// Its name, schema-qualified when its schema is not on the search path.
    pub name: String,
    /// `false` for an index a failed or interrupted `CREATE INDEX CONCURRENTLY` left behind.
    pub valid: bool,
}

impl IndexState {
    /// Whether `sql` names this index: its unqualified name as a whole word, in any case.
    pub fn named_in(&self, sql: &str) -> bool {
        let bare = self.name.rsplit('.').next().unwrap_or(&self.name).trim_matches('"').to_ascii_lowercase();
        let sql = sql.to_ascii_lowercase();
        let word = |byte: u8| byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'$';
        sql.match_indices(&bare).any(|(at, _)| {
            let before = at.checked_sub(1).map(|i| sql.as_bytes()[i]);
            let after = sql.as_bytes().get(at + bare.len()).copied();
            !before.is_some_and(word) && !after.is_some_and(word)
        })
    }
}

/// Every index of the database outside the system schemas.
pub async fn indexes(client: &Client) -> Result<Vec<IndexState>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT i.indexrelid::regclass::text, i.indisvalid
             FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'",
            &[],
        )
        .await?;
    Ok(rows.iter().map(|row| IndexState { name: row.get(0), valid: row.get(1) }).collect())
}

/// A session holding the migration lock, as `pg_locks` and `pg_stat_activity` show it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LockHolder {
    /// Backend process id.
    pub pid: i32,
    /// The holder's `application_name` (`plat migrate (host:pid)` for plat).
    pub application_name: String,
    /// Its client address, when it connected over TCP.
    pub client_addr: Option<String>,
}

impl std::fmt::Display for LockHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pid {}", self.pid)?;
        if !self.application_name.is_empty() {
            write!(f, " ({})", self.application_name)?;
        }
        if let Some(addr) = &self.client_addr {
            write!(f, " from {addr}")?;
        }
        Ok(())
    }
}

/// The session that holds the migration lock on the client's database, if any other does.
pub async fn lock_holder(client: &Client) -> Result<Option<LockHolder>, tokio_postgres::Error> {
    let [c0, c1, c2, c3, o0, o1, o2, o3] = LOCK_KEY.to_be_bytes();
    let classid = u32::from_be_bytes([c0, c1, c2, c3]);
    let objid = u32::from_be_bytes([o0, o1, o2, o3]);
    let row = client
        .query_opt(
            &format!(
                "SELECT l.pid, coalesce(a.application_name, ''), host(a.client_addr)
                 FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid
                 WHERE l.locktype = 'advisory' AND l.granted AND l.pid <> pg_backend_pid()
                   AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
                   AND l.classid = {classid} AND l.objid = {objid} AND l.objsubid = 1
                 LIMIT 1"
            ),
            &[],
        )
        .await?;
    Ok(row.map(|row| LockHolder { pid: row.get(0), application_name: row.get(1), client_addr: row.get(2) }))
}

/// What waiting for the lock came to.
pub enum LockOutcome {
    /// Held now, after waiting this long.
    Acquired(Duration),
    /// Still held by someone else when the time ran out.
    TimedOut(Option<LockHolder>),
}

/// Takes the session-level migration lock with `pg_try_advisory_lock`, polling with growing
/// sleeps up to `timeout`: a blocking `pg_advisory_lock` could not be given up on, and would
/// leave a waiter hanging with no word of who it waits for. `on_wait` hears once who holds it.
pub async fn acquire_lock(
    client: &Client,
    timeout: Duration,
    on_wait: &(dyn Fn(Option<LockHolder>) + Sync),
) -> Result<LockOutcome, tokio_postgres::Error> {
    let started = Instant::now();
    let mut pause = Duration::from_millis(50);
    let mut told = false;
    loop {
        let row = client.query_one("SELECT pg_try_advisory_lock($1)", &[&LOCK_KEY]).await?;
        if row.get::<_, bool>(0) {
            return Ok(LockOutcome::Acquired(started.elapsed()));
        }
        let elapsed = started.elapsed();
        if elapsed >= timeout {
            return Ok(LockOutcome::TimedOut(lock_holder(client).await?));
        }
        if !told {
            told = true;
            on_wait(lock_holder(client).await?);
        }
        tokio::time::sleep(pause.min(timeout - elapsed)).await;
        pause = (pause * 2).min(Duration::from_millis(500));
    }
}

/// Gives the migration lock back (it also goes when the connection closes).
pub async fn release_lock(client: &Client) -> Result<(), tokio_postgres::Error> {
    client.query_one("SELECT pg_advisory_unlock($1)", &[&LOCK_KEY]).await.map(drop)
}

/// The history table, named with its schema so that a migration changing `search_path` cannot
/// make plat look elsewhere.
#[derive(Debug, Clone)]
pub struct History {
    table: String,
}

/// One row of the history table.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Applied {
    /// Version.
    pub version: i64,
    /// Name when it was applied.
    pub name: String,
    /// SHA-256 (hex) of the SQL that was applied.
    pub checksum: String,
    /// When, as RFC 3339 in UTC.
    pub applied_at: String,
    /// How long it ran, in milliseconds.
    pub execution_ms: i64,
    /// Whether it succeeded; plat only writes rows of migrations that did.
    pub success: bool,
}

impl History {
    /// The history table of the current schema; `None` when no schema is current.
    pub async fn locate(client: &Client) -> Result<Option<History>, tokio_postgres::Error> {
        let schema: Option<String> = client.query_one("SELECT current_schema()", &[]).await?.get(0);
        Ok(schema.map(|schema| History { table: format!("{}.{}", quote_ident(&schema), quote_ident(HISTORY_TABLE)) }))
    }

    /// The qualified table name, for messages.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Whether the table exists yet.
    pub async fn exists(&self, client: &Client) -> Result<bool, tokio_postgres::Error> {
        let row = client.query_one("SELECT to_regclass($1) IS NOT NULL", &[&self.table]).await?;
        Ok(row.get(0))
    }

    /// Creates the table unless it exists. Called with the lock held: `CREATE TABLE IF NOT
    /// EXISTS` alone is not safe against a concurrent creator.
    pub async fn ensure(&self, client: &Client) -> Result<(), tokio_postgres::Error> {
        if self.exists(client).await? {
            return Ok(());
        }
        client
            .batch_execute(&format!(
                "CREATE TABLE {table} (
                    version      bigint      PRIMARY KEY,
                    name         text        NOT NULL,
                    checksum     text        NOT NULL,
                    applied_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
                    execution_ms bigint      NOT NULL,
                    success      boolean     NOT NULL
                );
                COMMENT ON TABLE {table} IS 'Migrations applied by plat migrate; checksum is the SHA-256 of the file with CRLF made LF. Edit with plat migrate repair, not by hand.'",
                table = self.table
            ))
            .await
    }

    /// Every row, by version; none when the table does not exist.
    pub async fn read(&self, client: &Client) -> Result<Vec<Applied>, tokio_postgres::Error> {
        if !self.exists(client).await? {
            return Ok(Vec::new());
        }
        let rows = client
            .query(
                &format!(
                    "SELECT version, name, checksum,
                            to_char(applied_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),
                            execution_ms, success
                     FROM {} ORDER BY version",
                    self.table
                ),
                &[],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|row| Applied {
                version: row.get(0),
                name: row.get(1),
                checksum: row.get(2),
                applied_at: row.get(3),
                execution_ms: row.get(4),
                success: row.get(5),
            })
            .collect())
    }

    /// Records a migration as applied (in the caller's transaction, when it has one).
    pub async fn insert(
        &self,
        client: &impl tokio_postgres::GenericClient,
        version: i64,
        name: &str,
        checksum: &str,
        took: Duration,
    ) -> Result<(), tokio_postgres::Error> {
        let ms = i64::try_from(took.as_millis()).unwrap_or(i64::MAX);
        client
            .execute(
                &format!(
                    "INSERT INTO {} (version, name, checksum, applied_at, execution_ms, success)
                     VALUES ($1, $2, $3, clock_timestamp(), $4, true)",
                    self.table
                ),
                &[&version, &name, &checksum, &ms],
            )
            .await
            .map(drop)
    }

    /// Forgets a migration (after its down file ran).
    pub async fn delete(
        &self,
        client: &impl tokio_postgres::GenericClient,
        version: i64,
    ) -> Result<(), tokio_postgres::Error> {
        client.execute(&format!("DELETE FROM {} WHERE version = $1", self.table), &[&version]).await.map(drop)
    }

    /// Records a new name for an applied migration whose file was renamed.
    pub async fn set_name(&self, client: &Client, version: i64, name: &str) -> Result<(), tokio_postgres::Error> {
        client
            .execute(&format!("UPDATE {} SET name = $2 WHERE version = $1", self.table), &[&version, &name])
            .await
            .map(drop)
    }

    /// Records a new checksum for an applied migration.
    pub async fn set_checksum(
        &self,
        client: &Client,
        version: i64,
        checksum: &str,
    ) -> Result<(), tokio_postgres::Error> {
        client
            .execute(&format!("UPDATE {} SET checksum = $2 WHERE version = $1", self.table), &[&version, &checksum])
            .await
            .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lock_key_reads_as_its_name() {
        assert_eq!(&LOCK_KEY.to_be_bytes(), b"platmigr");
        assert_eq!(LOCK_KEY >> 32, 1886151028);
        assert_eq!(LOCK_KEY & 0xffff_ffff, 1835624306);
    }

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_ident("user_service"), "\"user_service\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }
}
