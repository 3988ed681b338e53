//! The business rules of orders, independent of gRPC, PostgreSQL and NATS: what a valid order
//! is, that its user must exist, how its total is computed, how listings are paged, and that an
//! order and its OrderCreated event are stored together.

pub mod model;
pub mod validate;

use std::sync::Arc;

use pkg::Error;
pub use pkg::pagination::now_micros;
use pkg::pagination::{self, Listing, Page};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::client::user_client::UserDirectory;
use crate::repository::{OrderRepository, RepositoryError};
pub use model::{Currency, Money, NewMoney, NewOrder, NewOrderItem, Order, OrderItem, OrderStatus, OutboxEvent};

/// ListOrdersByUser's page tokens: bound to the listing, newest first by `(create_time, id)`,
/// and to the `user_id` they were issued for.
const LIST_ORDERS_BY_USER: Listing = Listing::new("order.v1.OrderService/ListOrdersByUser").scoped_by("user_id");

/// Whether created orders are announced with an OrderCreated event.
#[derive(Clone, Debug, Default)]
pub enum Events {
    /// No event is recorded (no `NATS_URL`).
    #[default]
    Off,
    /// Each order's event goes into the outbox in the order's transaction, and `relay` is woken
    /// to publish it at once rather than at its next poll.
    Outbox {
        /// Notified after each commit.
        relay: Arc<Notify>,
    },
}

/// Why an order was not created.
#[derive(Debug, thiserror::Error)]
pub enum CreateOrderError {
    /// No user has the order's user_id: FAILED_PRECONDITION on the wire, a code
    /// [`pkg::ErrorKind`] does not have.
    #[error("user_id: no user has id {0}")]
    UnknownUser(Uuid),
    /// Anything else, with its kind.
    #[error(transparent)]
    Other(#[from] Error),
}

/// The order operations, over any [`OrderRepository`] and [`UserDirectory`].
#[derive(Debug)]
pub struct OrderService<R, U> {
    repository: R,
    users: U,
    events: Events,
}

impl<R: OrderRepository, U: UserDirectory> OrderService<R, U> {
    /// The service over `repository`, checking users with `users`.
    pub fn new(repository: R, users: U, events: Events) -> Self {
        OrderService { repository, users, events }
    }

    /// Places an order: checks its items (INVALID_ARGUMENT), then that its user exists
    /// (FAILED_PRECONDITION when not, UNAVAILABLE when the user-service does not answer), then
    /// stores it, with its OrderCreated event when events are on, in one transaction.
    pub async fn create_order(&self, new: NewOrder) -> Result<Order, CreateOrderError> {
        // The cheap local checks first: a malformed order never costs a call to user-service.
        let (items, total) = validate::items(new.items)?;
        if !self.users.user_exists(new.user_id).await? {
            return Err(CreateOrderError::UnknownUser(new.user_id));
        }
        let order = Order {
            id: Uuid::now_v7(),
            user_id: new.user_id,
            items,
            total,
            status: OrderStatus::Pending,
            create_time: now_micros(),
        };
        let event = match &self.events {
            Events::Off => None,
            Events::Outbox { .. } => Some(crate::events::order_created(&order, now_micros())),
        };
        self.repository.insert(&order, event.as_ref()).await.map_err(Error::from)?;
        if let Events::Outbox { relay } = &self.events {
            relay.notify_one();
        }
        tracing::info!(order.id = %order.id, user.id = %order.user_id, items = order.items.len(), "order created");
        Ok(order)
    }

    /// One order by id: NOT_FOUND when there is none.
    pub async fn get_order(&self, id: Uuid) -> Result<Order, Error> {
        self.repository.get(id).await?.ok_or_else(|| Error::not_found(format!("no order has id {id}")))
    }

    /// One page of a user's orders, newest first, ties broken by id. An unknown user has no
    /// orders: an empty page, not NOT_FOUND (and no call to the user-service).
    pub async fn list_orders_by_user(
        &self,
        user_id: Uuid,
        page_size: i32,
        page_token: &str,
    ) -> Result<Page<Order>, Error> {
        let size = pagination::page_size(page_size)?;
        let before = LIST_ORDERS_BY_USER.decode_scoped(page_token, user_id.as_bytes())?;
        // One more than asked tells whether another page follows, without a count query.
        let orders = self.repository.list_by_user(user_id, before, size + 1).await?;
        Ok(Page::from_lookahead(orders, size, |last| {
            LIST_ORDERS_BY_USER.encode_scoped(&last.cursor(), user_id.as_bytes())
        }))
    }
}

impl From<RepositoryError> for Error {
    fn from(error: RepositoryError) -> Error {
        match error {
            // Clients may retry UNAVAILABLE; the database being down is exactly that case.
            RepositoryError::Unavailable(_) => {
                Error::unavailable("the order database is unavailable, try again").with_source(error)
            }
            RepositoryError::Query(_) => Error::internal("order database query failed").with_source(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::user_client::fake::FakeUserDirectory;
    use crate::repository::Outbox;
    use crate::repository::memory::InMemoryOrderRepository;
    use pkg::ErrorKind;
    use std::time::Duration;

    struct Fixture {
        service: OrderService<InMemoryOrderRepository, FakeUserDirectory>,
        repository: InMemoryOrderRepository,
        users: FakeUserDirectory,
        user: Uuid,
    }

    fn fixture(events: Events) -> Fixture {
        let repository = InMemoryOrderRepository::default();
        let users = FakeUserDirectory::default();
        let user = Uuid::now_v7();
        users.add(user);
        Fixture { service: OrderService::new(repository.clone(), users.clone(), events), repository, users, user }
    }

    fn item(sku: &str, quantity: i32, amount_minor: i64) -> NewOrderItem {
        NewOrderItem {
            sku: sku.into(),
            quantity,
            unit_price: Some(NewMoney { amount_minor, currency_code: "EUR".into() }),
        }
    }

    fn order_for(user_id: Uuid) -> NewOrder {
        NewOrder { user_id, items: vec![item("TSHIRT-RED-M", 2, 1999), item("MUG", 1, 850)] }
    }

    #[tokio::test]
    async fn creates_a_pending_order_with_its_total_and_reads_it_back() {
        let f = fixture(Events::Off);
        let order = f.service.create_order(order_for(f.user)).await.unwrap();
        assert_eq!(order.status, OrderStatus::Pending);
        assert_eq!(order.total.amount_minor, 4848);
        assert_eq!(order.total.currency.as_str(), "EUR");
        assert_eq!(order.items[1].sku, "MUG");
        assert_eq!(order.id.get_version_num(), 7);
        assert_eq!(f.service.get_order(order.id).await.unwrap(), order);
        assert_eq!(f.users.calls(), 1);
        assert_eq!(f.repository.pending().await.unwrap(), 0, "no events when events are off");
    }

    #[tokio::test]
    async fn an_unknown_user_is_a_failed_precondition() {
        let f = fixture(Events::Off);
        let stranger = Uuid::now_v7();
        let error = f.service.create_order(order_for(stranger)).await.unwrap_err();
        assert!(matches!(error, CreateOrderError::UnknownUser(id) if id == stranger), "{error:?}");
        assert!(f.repository.is_empty());
    }

    #[tokio::test]
    async fn user_service_down_is_unavailable_and_stores_nothing() {
        let f = fixture(Events::Off);
        f.users.set_down(true);
        let error = f.service.create_order(order_for(f.user)).await.unwrap_err();
        let CreateOrderError::Other(error) = error else { panic!("{error:?}") };
        assert_eq!(error.kind(), ErrorKind::Unavailable);
        assert!(f.repository.is_empty());
    }

    #[tokio::test]
    async fn invalid_items_are_refused_before_asking_user_service() {
        let f = fixture(Events::Off);
        let mut order = order_for(f.user);
        order.items[1].unit_price.as_mut().unwrap().currency_code = "USD".into();
        let error = f.service.create_order(order).await.unwrap_err();
        let CreateOrderError::Other(error) = error else { panic!("{error:?}") };
        assert_eq!(error.kind(), ErrorKind::InvalidArgument);
        assert_eq!(f.users.calls(), 0);

        let overflow = NewOrder { user_id: f.user, items: vec![item("A", i32::MAX, i64::MAX / 1000)] };
        let CreateOrderError::Other(error) = f.service.create_order(overflow).await.unwrap_err() else { panic!() };
        assert_eq!(error.kind(), ErrorKind::InvalidArgument);
    }

    #[tokio::test]
    async fn with_events_on_the_order_and_its_event_are_stored_together_and_the_relay_is_woken() {
        let relay = Arc::new(Notify::new());
        let f = fixture(Events::Outbox { relay: relay.clone() });
        let woken = tokio::spawn({
            let relay = relay.clone();
            async move { relay.notified().await }
        });
        let order = f.service.create_order(order_for(f.user)).await.unwrap();
        tokio::time::timeout(Duration::from_secs(1), woken).await.unwrap().unwrap();
        let claimed = f.repository.claim(10, Duration::from_secs(30)).await.unwrap();
        assert_eq!(claimed.len(), 1);
        assert_eq!(claimed[0].subject, "orders.created");
        let event = crate::events::decode_order_created(&claimed[0].payload).unwrap();
        assert_eq!(event.event_id, claimed[0].id.to_string());
        assert_eq!(event.order.unwrap().id, order.id.to_string());

        // A failed insert stores neither.
        f.repository.set_unavailable(true);
        assert!(f.service.create_order(order_for(f.user)).await.is_err());
        f.repository.set_unavailable(false);
        assert_eq!(f.repository.pending().await.unwrap(), 1);
    }

    #[tokio::test]
    async fn a_users_orders_are_listed_newest_first_across_pages() {
        let f = fixture(Events::Off);
        let other = Uuid::now_v7();
        f.users.add(other);
        let mut created = Vec::new();
        for _ in 0..5 {
            created.push(f.service.create_order(order_for(f.user)).await.unwrap());
            f.service.create_order(order_for(other)).await.unwrap();
        }
        created.reverse();
        let mut seen = Vec::new();
        let mut token = String::new();
        loop {
            let page = f.service.list_orders_by_user(f.user, 2, &token).await.unwrap();
            assert!(page.items.iter().all(|o| o.user_id == f.user));
            seen.extend(page.items);
            if page.next_page_token.is_empty() {
                break;
            }
            token = page.next_page_token;
        }
        assert_eq!(seen, created);
        // The token of one user's listing is refused for another's.
        let first = f.service.list_orders_by_user(f.user, 2, "").await.unwrap();
        let error = f.service.list_orders_by_user(other, 2, &first.next_page_token).await.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::InvalidArgument);
        // An unknown user has an empty page, not NOT_FOUND.
        let empty = f.service.list_orders_by_user(Uuid::now_v7(), 0, "").await.unwrap();
        assert!(empty.items.is_empty() && empty.next_page_token.is_empty());
    }

    #[tokio::test]
    async fn unknown_orders_are_not_found_and_storage_failures_unavailable() {
        let f = fixture(Events::Off);
        assert_eq!(f.service.get_order(Uuid::now_v7()).await.unwrap_err().kind(), ErrorKind::NotFound);
        f.repository.set_unavailable(true);
        assert_eq!(f.service.get_order(Uuid::now_v7()).await.unwrap_err().kind(), ErrorKind::Unavailable);
    }
}
