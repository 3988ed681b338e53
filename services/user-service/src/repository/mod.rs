//! Where users are stored: the [`UserRepository`] trait the service layer uses, its PostgreSQL
//! implementation, and an in-memory fake for unit tests.
//!
//! The schema is in `migrations/` (applied by `plat migrate`, never by the service itself).

pub mod memory;
pub mod postgres;

use std::future::Future;

use pkg::pagination::Cursor;
use uuid::Uuid;

use crate::service::User;

/// A boxed error cause.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a repository call failed, in the terms the service layer acts on.
#[derive(Debug, thiserror::Error)]
pub enum RepositoryError {
    /// Another user has the same email, ignoring case (the unique index refused the row).
    #[error("a user with this email exists already")]
    EmailTaken,
    /// The database cannot be reached, or refused the connection; a retry may succeed.
    #[error("database unavailable")]
    Unavailable(#[source] BoxError),
    /// The database answered with an error: a bug or a schema that does not match the code.
    #[error("database query failed")]
    Query(#[source] BoxError),
}

/// Storage of users.
pub trait UserRepository: Send + Sync + 'static {
    /// Stores a new user; [`RepositoryError::EmailTaken`] when its email is taken.
    fn insert(&self, user: &User) -> impl Future<Output = Result<(), RepositoryError>> + Send;

    /// The user with this id, if any.
    fn get(&self, id: Uuid) -> impl Future<Output = Result<Option<User>, RepositoryError>> + Send;

    /// Up to `limit` users ordered by `(create_time, id)`, starting after `after` when given.
    fn list(
        &self,
        after: Option<Cursor>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<User>, RepositoryError>> + Send;
}
