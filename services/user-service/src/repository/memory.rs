//! An in-memory [`UserRepository`] for unit tests: the same ordering and uniqueness rules as
//! the PostgreSQL schema, and a switch to make it unavailable.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use pkg::pagination::Cursor;
use uuid::Uuid;

use super::{RepositoryError, UserRepository};
use crate::service::User;

/// Users in a vector behind a mutex. Clones share the same users.
#[derive(Clone, Debug, Default)]
pub struct InMemoryUserRepository {
    users: Arc<Mutex<Vec<User>>>,
    unavailable: Arc<AtomicBool>,
}

impl InMemoryUserRepository {
    /// While `true`, every call fails with [`RepositoryError::Unavailable`].
    pub fn set_unavailable(&self, unavailable: bool) {
        self.unavailable.store(unavailable, Ordering::SeqCst);
    }

    fn users(&self) -> Result<MutexGuard<'_, Vec<User>>, RepositoryError> {
        if self.unavailable.load(Ordering::SeqCst) {
            return Err(RepositoryError::Unavailable("the in-memory repository is switched off".into()));
        }
        // A test that panicked while holding the lock has failed already; the data is fine.
        Ok(self.users.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl UserRepository for InMemoryUserRepository {
    async fn insert(&self, user: &User) -> Result<(), RepositoryError> {
        let mut users = self.users()?;
        // ASCII lowercase, like the unique index on lower(email) for the ASCII addresses
        // the service accepts.
        if users.iter().any(|u| u.email.eq_ignore_ascii_case(&user.email)) {
            return Err(RepositoryError::EmailTaken);
        }
        users.push(user.clone());
        Ok(())
    }

    async fn get(&self, id: Uuid) -> Result<Option<User>, RepositoryError> {
        Ok(self.users()?.iter().find(|u| u.id == id).cloned())
    }

    async fn list(&self, after: Option<Cursor>, limit: usize) -> Result<Vec<User>, RepositoryError> {
        let mut users: Vec<User> = self
            .users()?
            .iter()
            .filter(|u| after.is_none_or(|after| (u.create_time, u.id) > (after.create_time, after.id)))
            .cloned()
            .collect();
        users.sort_by_key(|u| (u.create_time, u.id));
        users.truncate(limit);
        Ok(users)
    }
}
