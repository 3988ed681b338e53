//! PostgreSQL for services that own a database (feature `postgres`): `DATABASE_URL` and
//! `DATABASE_POOL_SIZE`, a connection pool whose every wait is bounded, what a database error
//! means to a caller, and the health probe that follows the database.
//!
//! ```no_run
//! # async fn f(health: pkg::health::Health, metrics: pkg::metrics::Metrics, shutdown: pkg::shutdown::Shutdown) -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use pkg::postgres::{DatabaseError, HealthProbe, bounded};
//! let mut env = pkg::config::Env::from_process();
//! let url = env.var("DATABASE_URL").secret().required::<pkg::postgres::DatabaseUrl>();
//! let size = env.var("DATABASE_POOL_SIZE").with_default(pkg::postgres::PoolSize::default());
//! env.finish()?;
//! let pool = pkg::postgres::pool(&url?.0, "user-service", size?.0)?;
//! // NOT_SERVING (and database_up 0) while the database does not answer, and from shutdown on:
//! let _probe = HealthProbe::start(pool.clone(), &health, &metrics, &shutdown, Duration::from_secs(5));
//! // A repository call: UNAVAILABLE within seconds when the database is out of reach.
//! let count: i64 = bounded(async {
//!     let client = pool.get().await.map_err(DatabaseError::from)?;
//!     let row = client.query_one("SELECT count(*) FROM users", &[]).await.map_err(DatabaseError::from)?;
//!     Ok::<_, DatabaseError>(row.get(0))
//! })
//! .await?;
//! # Ok(()) }
//! ```
//!
//! Nothing connects when the pool is built: a service starts, and reports NOT_SERVING, while
//! its database is still coming up. Connecting, waiting for a pooled connection, creating and
//! recycling one are each bounded by [`CONNECT_TIMEOUT`], and a whole repository call by
//! [`QUERY_TIMEOUT`] through [`bounded`], so a database that stops answering turns into
//! UNAVAILABLE within seconds instead of requests piling up. The pool replaces connections the
//! server closed (a restart, a failover) on their next checkout. There is no TLS: the images
//! are static and `FROM scratch`, and databases are reached over the cluster network.
//!
//! Each service keeps its SQL, its repository trait and its error enum; it converts
//! [`DatabaseError`] into that enum, adding what only it knows (a unique index that means
//! "email taken").

use std::fmt;
use std::future::Future;
use std::str::FromStr;
use std::time::Duration;

use deadpool_postgres::{BuildError, Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime};
use prometheus::IntGauge;
use tokio::task::JoinHandle;
use tokio_postgres::NoTls;
use tokio_postgres::error::SqlState;

use crate::config::FromEnv;
use crate::health::Health;
use crate::metrics::Metrics;
use crate::shutdown::Shutdown;

/// How long to wait for a new connection, and for a free one when all are busy.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long one repository call may take, connection included (see [`bounded`]).
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one health ping may take before the database counts as unreachable.
pub const PING_TIMEOUT: Duration = Duration::from_secs(2);

/// A boxed error cause.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// `DATABASE_URL`: a PostgreSQL connection string, URL (`postgres://user@host/db`) or key-value
/// (`host=db user=app`) form, checked when it is read rather than at the first connection.
/// Read it with [`secret`](crate::config::Var::secret): it may carry a password.
#[derive(Clone)]
pub struct DatabaseUrl(pub tokio_postgres::Config);

impl fmt::Debug for DatabaseUrl {
    // The password stays out of logs and panics.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseUrl")
            .field("hosts", &self.0.get_hosts())
            .field("dbname", &self.0.get_dbname())
            .finish_non_exhaustive()
    }
}

impl FromEnv for DatabaseUrl {
    const EXPECTED: &'static str = "a PostgreSQL URL";
    const EXAMPLE: &'static str = "postgres://user:secret@postgres:5432/dbname";

    fn from_env(raw: &str) -> Result<Self, String> {
        let config = tokio_postgres::Config::from_str(raw).map_err(|e| e.to_string())?;
        if config.get_hosts().is_empty() {
            return Err("it names no host".to_owned());
        }
        Ok(DatabaseUrl(config))
    }
}

/// `DATABASE_POOL_SIZE`: the most connections a service holds open to its database, from 1 to
/// 1000; 10 by default.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolSize(pub usize);

impl Default for PoolSize {
    fn default() -> Self {
        PoolSize(10)
    }
}

impl FromEnv for PoolSize {
    const EXPECTED: &'static str = "a whole number from 1 to 1000";
    const EXAMPLE: &'static str = "10";

    fn from_env(raw: &str) -> Result<Self, String> {
        match raw.parse::<usize>() {
            Ok(size @ 1..=1000) => Ok(PoolSize(size)),
            Ok(_) => Err(String::new()),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// The connection pool of `database`, at most `max_size` connections, each named
/// `application_name` (the service's name: `pg_stat_activity` then shows which service holds a
/// connection) unless the URL names one. Nothing connects yet. A connect timeout in the URL
/// is kept; otherwise it is [`CONNECT_TIMEOUT`].
pub fn pool(database: &tokio_postgres::Config, application_name: &str, max_size: usize) -> Result<Pool, BuildError> {
    let mut config = database.clone();
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    if config.get_application_name().is_none() {
        config.application_name(application_name);
    }
    let manager = Manager::from_config(config, NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
    Pool::builder(manager)
        .max_size(max_size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(CONNECT_TIMEOUT))
        .create_timeout(Some(CONNECT_TIMEOUT))
        .recycle_timeout(Some(CONNECT_TIMEOUT))
        .build()
}

/// Why a database call failed, in the two cases a caller acts on differently. The `From`
/// conversions decide which is which; a service maps them into its own error enum.
#[derive(Debug, thiserror::Error)]
pub enum DatabaseError {
    /// The database cannot be reached, refused the connection, or did not answer in time; a
    /// retry may succeed (UNAVAILABLE).
    #[error("database unavailable")]
    Unavailable(#[source] BoxError),
    /// The database answered with an error: a bug, or a schema that does not match the code
    /// (INTERNAL).
    #[error("database query failed")]
    Query(#[source] BoxError),
}

impl DatabaseError {
    /// Whether a retry may succeed.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, DatabaseError::Unavailable(_))
    }
}

impl From<tokio_postgres::Error> for DatabaseError {
    fn from(error: tokio_postgres::Error) -> Self {
        let Some(code) = error.code() else {
            // No SQLSTATE: the connection broke or was closed, or a value did not convert. Only
            // the former is worth a retry.
            let is_io = std::error::Error::source(&error).is_some_and(|s| s.is::<std::io::Error>());
            return if error.is_closed() || is_io {
                DatabaseError::Unavailable(error.into())
            } else {
                DatabaseError::Query(error.into())
            };
        };
        let unavailable = code.code().starts_with("08") // connection exception
            || [
                SqlState::ADMIN_SHUTDOWN,
                SqlState::CRASH_SHUTDOWN,
                SqlState::CANNOT_CONNECT_NOW,
                SqlState::TOO_MANY_CONNECTIONS,
            ]
            .contains(code);
        if unavailable { DatabaseError::Unavailable(error.into()) } else { DatabaseError::Query(error.into()) }
    }
}

impl From<PoolError> for DatabaseError {
    /// No connection from the pool is always [`Unavailable`](DatabaseError::Unavailable).
    fn from(error: PoolError) -> Self {
        match error {
            // Connecting failed (refused, timed out, authentication): the database is out of reach.
            PoolError::Backend(e) => DatabaseError::Unavailable(e.into()),
            PoolError::Timeout(kind) => {
                DatabaseError::Unavailable(format!("timed out waiting for a database connection ({kind:?})").into())
            }
            other => DatabaseError::Unavailable(other.into()),
        }
    }
}

/// Runs one repository call, connection included, for at most [`QUERY_TIMEOUT`]; after that it
/// is abandoned and the result is [`DatabaseError::Unavailable`], converted into `E`.
pub async fn bounded<T, E: From<DatabaseError>>(call: impl Future<Output = Result<T, E>>) -> Result<T, E> {
    tokio::time::timeout(QUERY_TIMEOUT, call).await.unwrap_or_else(|_| {
        Err(DatabaseError::Unavailable(format!("no answer from the database within {QUERY_TIMEOUT:?}").into()).into())
    })
}

/// Succeeds when the database answers `SELECT 1` through `pool`, within [`QUERY_TIMEOUT`].
pub async fn ping(pool: &Pool) -> Result<(), DatabaseError> {
    bounded(async {
        let client = pool.get().await?;
        client.simple_query("SELECT 1").await?;
        Ok(())
    })
    .await
}

/// The database's health probe: [`ping`]s the database now and every `interval` (each ping
/// bounded by [`PING_TIMEOUT`]), reporting SERVING through the [`Health`] switch while it
/// answers and NOT_SERVING while it does not, and setting the gauge `database_up` (1 or 0, in
/// the service's [`Metrics`]) to match. Why the database became unreachable is logged once per
/// outage, not per ping. When `shutdown` begins the probe stops first and reports NOT_SERVING,
/// so that it cannot turn a draining server back to SERVING. The probe runs until then, or
/// until this handle is dropped.
#[derive(Debug)]
#[must_use = "the probe stops when dropped"]
pub struct HealthProbe {
    task: JoinHandle<()>,
}

impl HealthProbe {
    /// Starts the probe. Needs a Tokio runtime.
    ///
    /// # Panics
    ///
    /// If `metrics` has a `database_up` metric already: one probe per registry.
    pub fn start(pool: Pool, health: &Health, metrics: &Metrics, shutdown: &Shutdown, interval: Duration) -> Self {
        let database_up = IntGauge::new("database_up", "1 while the service's database answers its health probe")
            .expect("database_up is a valid metric");
        metrics.registry().register(Box::new(database_up.clone())).expect("database_up is registered once");
        let (health, stopped) = (health.clone(), shutdown.signalled());
        let task = tokio::spawn(async move {
            let watching = watch(pool, &health, database_up, interval);
            tokio::select! {
                () = watching => {}
                () = stopped => {}
            }
            health.set_not_serving().await;
        });
        HealthProbe { task }
    }
}

impl Drop for HealthProbe {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn watch(pool: Pool, health: &Health, database_up: IntGauge, interval: Duration) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Whether the previous ping succeeded: the reason is logged once per outage, not per ping.
    let mut was_up = true;
    loop {
        ticks.tick().await;
        let result = match tokio::time::timeout(PING_TIMEOUT, ping(&pool)).await {
            Ok(result) => result.map_err(|e| error_chain(&e)),
            Err(_) => Err(format!("no answer within {PING_TIMEOUT:?}")),
        };
        let up = result.is_ok();
        if let Err(error) = result {
            if was_up {
                tracing::warn!(target: "pkg::postgres", %error, "database unreachable");
            }
        }
        was_up = up;
        database_up.set(i64::from(up));
        health.set(up).await;
    }
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
