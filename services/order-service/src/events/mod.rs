//! OrderCreated events: their wire form, the [`Publisher`] they leave through (NATS), and the
//! outbox [`relay`] that publishes them after the order's transaction committed.
//!
//! Subject `orders.created`; payload the binary protobuf encoding of `order.v1.OrderCreatedEvent`
//! (proto/order/v1/events.proto). Delivery is at least once: an event whose publication is not
//! confirmed is published again, with the same `event_id`, which consumers deduplicate on.
//!
//! Why an outbox rather than publishing from CreateOrder: the order and its event are written in
//! one transaction, so neither exists without the other whatever crashes when; CreateOrder never
//! waits on NATS, so NATS being down neither fails nor slows it; and events wait in the database,
//! not in memory, until NATS is back.

pub mod nats;
pub mod relay;

use std::future::Future;
use std::time::SystemTime;

use bytes::Bytes;
use prost::Message as _;
use uuid::Uuid;

use crate::proto::order::v1 as pb;
use crate::service::{Order, OutboxEvent};

/// The NATS subject OrderCreated events are published on.
pub const ORDER_CREATED_SUBJECT: &str = "orders.created";

/// The OrderCreated event announcing `order`, emitted at `event_time`, as an outbox row.
pub fn order_created(order: &Order, event_time: SystemTime) -> OutboxEvent {
    let id = Uuid::now_v7();
    let event = pb::OrderCreatedEvent {
        event_id: id.to_string(),
        event_time: Some(event_time.into()),
        order: Some(crate::handler::order_to_proto(order)),
    };
    OutboxEvent { id, subject: ORDER_CREATED_SUBJECT.to_owned(), payload: event.encode_to_vec() }
}

/// Decodes an OrderCreated payload, as a consumer would.
pub fn decode_order_created(payload: &[u8]) -> Result<pb::OrderCreatedEvent, prost::DecodeError> {
    pb::OrderCreatedEvent::decode(payload)
}

/// A publish or flush that did not go through.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct PublishError(pub String);

/// Where events are published.
pub trait Publisher: Send + Sync + 'static {
    /// Whether the publisher has a live connection; while it has none, the relay leaves events
    /// in the outbox rather than queueing them in memory.
    fn is_connected(&self) -> bool;

    /// Queues one message.
    fn publish(&self, subject: String, payload: Bytes) -> impl Future<Output = Result<(), PublishError>> + Send;

    /// Resolves once every queued message was written to the server.
    fn flush(&self) -> impl Future<Output = Result<(), PublishError>> + Send;
}

/// A [`Publisher`] for tests: records messages, and can be switched off.
pub mod fake {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};

    use bytes::Bytes;

    use super::{PublishError, Publisher};

    /// Messages in a vector. Clones share them.
    #[derive(Clone, Debug, Default)]
    pub struct FakePublisher {
        messages: Arc<Mutex<Vec<(String, Bytes)>>>,
        down: Arc<AtomicBool>,
    }

    impl FakePublisher {
        /// While `true` the publisher is disconnected and every call fails.
        pub fn set_down(&self, down: bool) {
            self.down.store(down, Ordering::SeqCst);
        }

        /// What was published so far, in order.
        pub fn messages(&self) -> Vec<(String, Bytes)> {
            self.messages.lock().unwrap_or_else(|e| e.into_inner()).clone()
        }
    }

    impl Publisher for FakePublisher {
        fn is_connected(&self) -> bool {
            !self.down.load(Ordering::SeqCst)
        }

        async fn publish(&self, subject: String, payload: Bytes) -> Result<(), PublishError> {
            if !self.is_connected() {
                return Err(PublishError("disconnected".into()));
            }
            self.messages.lock().unwrap_or_else(|e| e.into_inner()).push((subject, payload));
            Ok(())
        }

        async fn flush(&self) -> Result<(), PublishError> {
            if self.is_connected() { Ok(()) } else { Err(PublishError("disconnected".into())) }
        }
    }
}
