//! [`UserRepository`] over PostgreSQL: tokio-postgres connections from a small deadpool pool.
//!
//! Pool and query waits are bounded, so a database that stops answering turns into
//! UNAVAILABLE within seconds instead of requests piling up; the pool replaces connections the
//! server closed (a restart, a failover) on their next checkout.

use std::future::Future;
use std::time::{Duration, SystemTime};

use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime};
use pkg::pagination::Cursor;
use tokio_postgres::error::SqlState;
use tokio_postgres::{NoTls, Row};
use uuid::Uuid;

use super::{RepositoryError, UserRepository};
use crate::service::User;

/// How long to wait for a new connection, and for a free one when all are busy.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long one repository call may take, connection included.
const QUERY_TIMEOUT: Duration = Duration::from_secs(5);
/// The unique index behind "emails are unique ignoring case" (migrations/0001_create_users.sql).
const EMAIL_INDEX: &str = "users_email_lower_key";

/// Builds the connection pool. Nothing connects yet: the service starts, and reports
/// NOT_SERVING, while its database is still coming up.
pub fn pool(config: &tokio_postgres::Config, max_size: usize) -> Result<Pool, RepositoryError> {
    let mut config = config.clone();
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    if config.get_application_name().is_none() {
        // Shown in pg_stat_activity: which service holds a connection.
        config.application_name(crate::config::SERVICE_NAME);
    }
    let manager = Manager::from_config(config, NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
    Pool::builder(manager)
        .max_size(max_size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(CONNECT_TIMEOUT))
        .create_timeout(Some(CONNECT_TIMEOUT))
        .recycle_timeout(Some(CONNECT_TIMEOUT))
        .build()
        .map_err(|e| RepositoryError::Query(e.into()))
}

/// Users in the `users` table.
#[derive(Clone, Debug)]
pub struct PgUserRepository {
    pool: Pool,
}

impl PgUserRepository {
    /// The repository over `pool`.
    pub fn new(pool: Pool) -> Self {
        PgUserRepository { pool }
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, RepositoryError> {
        self.pool.get().await.map_err(pool_error)
    }
}

const COLUMNS: &str = "id, email, display_name, create_time";

impl UserRepository for PgUserRepository {
    #[tracing::instrument(name = "db insert users", skip_all, fields(db.system = "postgresql"))]
    async fn insert(&self, user: &User) -> Result<(), RepositoryError> {
        bounded(async {
            let client = self.client().await?;
            let statement = client
                .prepare_cached("INSERT INTO users (id, email, display_name, create_time) VALUES ($1, $2, $3, $4)")
                .await
                .map_err(classify)?;
            client
                .execute(&statement, &[&user.id, &user.email, &user.display_name, &user.create_time])
                .await
                .map_err(classify)?;
            Ok(())
        })
        .await
    }

    #[tracing::instrument(name = "db select users", skip_all, fields(db.system = "postgresql"))]
    async fn get(&self, id: Uuid) -> Result<Option<User>, RepositoryError> {
        bounded(async {
            let client = self.client().await?;
            let statement =
                client.prepare_cached(&format!("SELECT {COLUMNS} FROM users WHERE id = $1")).await.map_err(classify)?;
            let row = client.query_opt(&statement, &[&id]).await.map_err(classify)?;
            row.map(|row| user_from_row(&row)).transpose()
        })
        .await
    }

    #[tracing::instrument(name = "db list users", skip_all, fields(db.system = "postgresql"))]
    async fn list(&self, after: Option<Cursor>, limit: usize) -> Result<Vec<User>, RepositoryError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        bounded(async {
            let client = self.client().await?;
            // Two statements rather than one with `$1 IS NULL OR ...`: the row comparison
            // alone lets the planner walk the (create_time, id) index from the cursor on.
            let rows = match after {
                None => {
                    let statement = client
                        .prepare_cached(&format!("SELECT {COLUMNS} FROM users ORDER BY create_time, id LIMIT $1"))
                        .await
                        .map_err(classify)?;
                    client.query(&statement, &[&limit]).await
                }
                Some(after) => {
                    let statement = client
                        .prepare_cached(&format!(
                            "SELECT {COLUMNS} FROM users WHERE (create_time, id) > ($1, $2) \
                             ORDER BY create_time, id LIMIT $3"
                        ))
                        .await
                        .map_err(classify)?;
                    client.query(&statement, &[&after.create_time, &after.id, &limit]).await
                }
            }
            .map_err(classify)?;
            rows.iter().map(user_from_row).collect()
        })
        .await
    }

    async fn ping(&self) -> Result<(), RepositoryError> {
        bounded(async {
            let client = self.client().await?;
            client.simple_query("SELECT 1").await.map_err(classify)?;
            Ok(())
        })
        .await
    }
}

fn user_from_row(row: &Row) -> Result<User, RepositoryError> {
    let read = || -> Result<User, tokio_postgres::Error> {
        Ok(User {
            id: row.try_get("id")?,
            email: row.try_get("email")?,
            display_name: row.try_get("display_name")?,
            create_time: row.try_get::<_, SystemTime>("create_time")?,
        })
    };
    read().map_err(|e| RepositoryError::Query(e.into()))
}

async fn bounded<T>(call: impl Future<Output = Result<T, RepositoryError>>) -> Result<T, RepositoryError> {
    tokio::time::timeout(QUERY_TIMEOUT, call).await.unwrap_or_else(|_| {
        Err(RepositoryError::Unavailable(format!("no answer from the database within {QUERY_TIMEOUT:?}").into()))
    })
}

fn pool_error(error: PoolError) -> RepositoryError {
    match error {
        // Connecting failed (refused, timed out, authentication): the database is out of reach.
        PoolError::Backend(e) => RepositoryError::Unavailable(e.into()),
        PoolError::Timeout(kind) => {
            RepositoryError::Unavailable(format!("timed out waiting for a database connection ({kind:?})").into())
        }
        other => RepositoryError::Unavailable(other.into()),
    }
}

/// What a tokio-postgres error means to the service.
pub(crate) fn classify(error: tokio_postgres::Error) -> RepositoryError {
    let Some(code) = error.code() else {
        // No SQLSTATE: the connection broke or was closed, or a value did not convert. Only
        // the former is worth a retry.
        let is_io = std::error::Error::source(&error).is_some_and(|s| s.is::<std::io::Error>());
        return if error.is_closed() || is_io {
            RepositoryError::Unavailable(error.into())
        } else {
            RepositoryError::Query(error.into())
        };
    };
    let constraint = error.as_db_error().and_then(|e| e.constraint());
    if *code == SqlState::UNIQUE_VIOLATION && constraint == Some(EMAIL_INDEX) {
        return RepositoryError::EmailTaken;
    }
    let unavailable = code.code().starts_with("08") // connection exception
        || [
            SqlState::ADMIN_SHUTDOWN,
            SqlState::CRASH_SHUTDOWN,
            SqlState::CANNOT_CONNECT_NOW,
            SqlState::TOO_MANY_CONNECTIONS,
        ]
        .contains(code);
    if unavailable { RepositoryError::Unavailable(error.into()) } else { RepositoryError::Query(error.into()) }
}
