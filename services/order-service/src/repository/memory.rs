//! An in-memory [`OrderRepository`] and [`Outbox`] for unit tests: the same ordering and
//! all-or-nothing rules as the PostgreSQL schema, and a switch to make it unavailable.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use pkg::pagination::Cursor;
use uuid::Uuid;

use super::{ClaimedEvent, OrderRepository, Outbox, RepositoryError};
use crate::service::{Order, OutboxEvent};

/// Orders and outbox events behind one mutex. Clones share them.
#[derive(Clone, Debug, Default)]
pub struct InMemoryOrderRepository {
    state: Arc<Mutex<State>>,
    unavailable: Arc<AtomicBool>,
}

#[derive(Debug, Default)]
struct State {
    orders: Vec<Order>,
    outbox: Vec<Pending>,
}

#[derive(Debug)]
struct Pending {
    event: OutboxEvent,
    available_at: Instant,
    attempts: i32,
    last_error: Option<String>,
}

impl InMemoryOrderRepository {
    /// While `true`, every call fails with [`RepositoryError::Unavailable`].
    pub fn set_unavailable(&self, unavailable: bool) {
        self.unavailable.store(unavailable, Ordering::SeqCst);
    }

    /// Whether no order is stored.
    pub fn is_empty(&self) -> bool {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).orders.is_empty()
    }

    /// The last error recorded for an event still in the outbox.
    pub fn last_error(&self, id: Uuid) -> Option<String> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.outbox.iter().find(|p| p.event.id == id)?.last_error.clone()
    }

    fn state(&self) -> Result<MutexGuard<'_, State>, RepositoryError> {
        if self.unavailable.load(Ordering::SeqCst) {
            return Err(RepositoryError::Unavailable("the in-memory repository is switched off".into()));
        }
        // A test that panicked while holding the lock has failed already; the data is fine.
        Ok(self.state.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl OrderRepository for InMemoryOrderRepository {
    async fn insert(&self, order: &Order, event: Option<&OutboxEvent>) -> Result<(), RepositoryError> {
        let mut state = self.state()?;
        state.orders.push(order.clone());
        if let Some(event) = event {
            state.outbox.push(Pending {
                event: event.clone(),
                available_at: Instant::now(),
                attempts: 0,
                last_error: None,
            });
        }
        Ok(())
    }

    async fn get(&self, id: Uuid) -> Result<Option<Order>, RepositoryError> {
        Ok(self.state()?.orders.iter().find(|o| o.id == id).cloned())
    }

    async fn list_by_user(
        &self,
        user_id: Uuid,
        before: Option<Cursor>,
        limit: usize,
    ) -> Result<Vec<Order>, RepositoryError> {
        let mut orders: Vec<Order> = self
            .state()?
            .orders
            .iter()
            .filter(|o| o.user_id == user_id)
            .filter(|o| before.is_none_or(|b| (o.create_time, o.id) < (b.create_time, b.id)))
            .cloned()
            .collect();
        orders.sort_by_key(|o| std::cmp::Reverse((o.create_time, o.id)));
        orders.truncate(limit);
        Ok(orders)
    }
}

impl Outbox for InMemoryOrderRepository {
    async fn claim(&self, limit: usize, lease: Duration) -> Result<Vec<ClaimedEvent>, RepositoryError> {
        let mut state = self.state()?;
        let now = Instant::now();
        let mut claimed = Vec::new();
        for pending in state.outbox.iter_mut().filter(|p| p.available_at <= now).take(limit) {
            pending.available_at = now + lease;
            pending.attempts += 1;
            claimed.push(ClaimedEvent {
                id: pending.event.id,
                subject: pending.event.subject.clone(),
                payload: pending.event.payload.clone(),
                attempts: pending.attempts,
            });
        }
        Ok(claimed)
    }

    async fn mark_published(&self, ids: &[Uuid]) -> Result<(), RepositoryError> {
        self.state()?.outbox.retain(|p| !ids.contains(&p.event.id));
        Ok(())
    }

    async fn mark_failed(&self, ids: &[Uuid], retry_in: Duration, error: &str) -> Result<(), RepositoryError> {
        let mut state = self.state()?;
        for pending in state.outbox.iter_mut().filter(|p| ids.contains(&p.event.id)) {
            pending.available_at = Instant::now() + retry_in;
            pending.last_error = Some(error.to_owned());
        }
        Ok(())
    }

    async fn pending(&self) -> Result<u64, RepositoryError> {
        Ok(self.state()?.outbox.len() as u64)
    }
}
