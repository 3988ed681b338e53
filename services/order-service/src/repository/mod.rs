//! Where orders are stored: the [`OrderRepository`] and [`Outbox`] traits the service layer and
//! the event relay use, their PostgreSQL implementation, and an in-memory fake for unit tests.
//!
//! The schema is in `migrations/` (applied by `plat migrate`, never by the service itself).

pub mod memory;
pub mod postgres;

use std::future::Future;
use std::time::Duration;

use pkg::pagination::Cursor;
use uuid::Uuid;

use crate::service::{Order, OutboxEvent};

/// A boxed error cause.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a repository call failed, in the terms the service layer acts on.
#[derive(Debug, thiserror::Error)]
pub enum RepositoryError {
    /// The database cannot be reached, or refused the connection; a retry may succeed.
    #[error("database unavailable")]
    Unavailable(#[source] BoxError),
    /// The database answered with an error: a bug or a schema that does not match the code.
    #[error("database query failed")]
    Query(#[source] BoxError),
}

/// Storage of orders.
pub trait OrderRepository: Send + Sync + 'static {
    /// Stores a new order with its items and, when given, the event announcing it: all or
    /// nothing.
    fn insert(
        &self,
        order: &Order,
        event: Option<&OutboxEvent>,
    ) -> impl Future<Output = Result<(), RepositoryError>> + Send;

    /// The order with this id, with its items, if any.
    fn get(&self, id: Uuid) -> impl Future<Output = Result<Option<Order>, RepositoryError>> + Send;

    /// Up to `limit` of `user_id`'s orders, newest `(create_time, id)` first, starting before
    /// `before` when given.
    fn list_by_user(
        &self,
        user_id: Uuid,
        before: Option<Cursor>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Order>, RepositoryError>> + Send;
}

/// An outbox event claimed for publishing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimedEvent {
    /// The event's id.
    pub id: Uuid,
    /// The NATS subject.
    pub subject: String,
    /// The encoded event.
    pub payload: Vec<u8>,
    /// Publishing attempts so far, this one included.
    pub attempts: i32,
}

/// The outbox of events waiting to be published; see `migrations/0002_create_outbox_events.sql`.
pub trait Outbox: Send + Sync + 'static {
    /// Leases up to `limit` due events, oldest first, for `lease`: other relays (other
    /// replicas) skip them meanwhile, and if this one dies they are due again when it ends.
    fn claim(
        &self,
        limit: usize,
        lease: Duration,
    ) -> impl Future<Output = Result<Vec<ClaimedEvent>, RepositoryError>> + Send;

    /// Removes published events.
    fn mark_published(&self, ids: &[Uuid]) -> impl Future<Output = Result<(), RepositoryError>> + Send;

    /// Puts events back, due again after `retry_in`, recording why they failed.
    fn mark_failed(
        &self,
        ids: &[Uuid],
        retry_in: Duration,
        error: &str,
    ) -> impl Future<Output = Result<(), RepositoryError>> + Send;

    /// How many events wait to be published.
    fn pending(&self) -> impl Future<Output = Result<u64, RepositoryError>> + Send;
}
