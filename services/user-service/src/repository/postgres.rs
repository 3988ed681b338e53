//! [`UserRepository`] over PostgreSQL: the service's SQL, on a pool from [`pkg::postgres`]
//! (bounded waits, so a database that stops answering is UNAVAILABLE within seconds).

use std::time::SystemTime;

use deadpool_postgres::Pool;
use pkg::pagination::Cursor;
use pkg::postgres::{DatabaseError, bounded};
use tokio_postgres::Row;
use tokio_postgres::error::SqlState;
use uuid::Uuid;

use super::{RepositoryError, UserRepository};
use crate::service::User;

/// The unique index behind "emails are unique ignoring case" (migrations/0001_create_users.sql).
const EMAIL_INDEX: &str = "users_email_lower_key";

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
        self.pool.get().await.map_err(|e| DatabaseError::from(e).into())
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

impl From<DatabaseError> for RepositoryError {
    fn from(error: DatabaseError) -> Self {
        match error {
            DatabaseError::Unavailable(cause) => RepositoryError::Unavailable(cause),
            DatabaseError::Query(cause) => RepositoryError::Query(cause),
        }
    }
}

/// What a tokio-postgres error means to the service: pkg's reading of it, except for the
/// violation of the email index, which is [`RepositoryError::EmailTaken`].
pub(crate) fn classify(error: tokio_postgres::Error) -> RepositoryError {
    let constraint = error.as_db_error().and_then(|e| e.constraint());
    if error.code() == Some(&SqlState::UNIQUE_VIOLATION) && constraint == Some(EMAIL_INDEX) {
        return RepositoryError::EmailTaken;
    }
    DatabaseError::from(error).into()
}
