//! The outbox relay: publishes the events waiting in the outbox, then removes them.
//!
//! It runs whenever CreateOrder commits an event (woken through a `Notify`) and every poll
//! interval besides (for events left by a failed attempt or another replica). Each pass claims a
//! batch with a lease, publishes it, flushes, and only then deletes the rows: an event is removed
//! only once it reached the NATS server, and one whose relay died mid-way is due again when its
//! lease ends. Failed events are due again after an exponential backoff (capped at a minute).
//! Nothing here can block CreateOrder, which only writes the outbox row.

use std::sync::Arc;
use std::time::Duration;

use prometheus::{IntCounter, IntGauge, Registry};
use tokio::sync::Notify;
use uuid::Uuid;

use super::Publisher;
use crate::repository::{ClaimedEvent, Outbox};

/// How the relay paces itself.
#[derive(Clone, Copy, Debug)]
pub struct RelayConfig {
    /// How often to look for due events when nothing woke the relay.
    pub poll_interval: Duration,
    /// Events claimed per pass.
    pub batch_size: usize,
    /// How long a claim keeps other relays off the claimed events.
    pub lease: Duration,
    /// How long one publish, and the flush after a batch, may take.
    pub publish_timeout: Duration,
    /// The wait before an event's second attempt; it doubles with each attempt after.
    pub retry_backoff: Duration,
    /// The longest wait between attempts.
    pub max_retry_backoff: Duration,
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            poll_interval: Duration::from_secs(1),
            batch_size: 100,
            lease: Duration::from_secs(30),
            publish_timeout: Duration::from_secs(5),
            retry_backoff: Duration::from_secs(1),
            max_retry_backoff: Duration::from_secs(60),
        }
    }
}

impl RelayConfig {
    /// The wait before the next attempt of an event that failed `attempts` times.
    pub fn backoff(&self, attempts: i32) -> Duration {
        let doublings = u32::try_from(attempts.saturating_sub(1)).unwrap_or(0).min(16);
        self.retry_backoff.saturating_mul(1 << doublings).min(self.max_retry_backoff)
    }
}

/// The relay's Prometheus metrics.
#[derive(Clone, Debug)]
pub struct RelayMetrics {
    published: IntCounter,
    failures: IntCounter,
    pending: IntGauge,
}

impl RelayMetrics {
    /// Registers `order_events_published_total`, `order_event_publish_failures_total` and
    /// `order_events_pending`.
    pub fn register(registry: &Registry) -> Self {
        let published = IntCounter::new("order_events_published_total", "OrderCreated events published to NATS")
            .expect("a valid metric");
        let failures = IntCounter::new(
            "order_event_publish_failures_total",
            "OrderCreated event publications that failed and will be retried",
        )
        .expect("a valid metric");
        let pending =
            IntGauge::new("order_events_pending", "OrderCreated events waiting in the outbox").expect("a valid metric");
        for metric in [
            Box::new(published.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(failures.clone()),
            Box::new(pending.clone()),
        ] {
            registry.register(metric).expect("relay metrics are registered once");
        }
        RelayMetrics { published, failures, pending }
    }
}

/// Relays events forever; abort the task to stop it (the leases make that safe).
pub async fn run<O: Outbox, P: Publisher>(
    outbox: Arc<O>,
    publisher: P,
    wake: Arc<Notify>,
    config: RelayConfig,
    metrics: RelayMetrics,
) {
    loop {
        // Batch after batch while there is work.
        while let Ok(relayed @ 1..) = relay_batch(&*outbox, &publisher, &config, &metrics).await {
            tracing::debug!(relayed, "outbox batch relayed");
        }
        match outbox.pending().await {
            Ok(pending) => metrics.pending.set(i64::try_from(pending).unwrap_or(i64::MAX)),
            Err(error) => tracing::debug!(error = &error as &dyn std::error::Error, "cannot count the outbox"),
        }
        tokio::select! {
            () = wake.notified() => {}
            () = tokio::time::sleep(config.poll_interval) => {}
        }
    }
}

/// One pass: claims due events and publishes them. Returns how many were published; an error
/// means the pass stopped (the reason is logged) and the relay should wait for the next.
pub async fn relay_batch<O: Outbox, P: Publisher>(
    outbox: &O,
    publisher: &P,
    config: &RelayConfig,
    metrics: &RelayMetrics,
) -> Result<usize, ()> {
    // Claiming while disconnected would only bump attempts; wait for the connection instead.
    if !publisher.is_connected() {
        return Err(());
    }
    let events = match outbox.claim(config.batch_size, config.lease).await {
        Ok(events) => events,
        Err(error) => {
            tracing::warn!(error = &error as &dyn std::error::Error, "cannot read the outbox");
            return Err(());
        }
    };
    if events.is_empty() {
        return Ok(0);
    }
    let mut sent: Vec<&ClaimedEvent> = Vec::with_capacity(events.len());
    let mut failure = None;
    for event in &events {
        let publish = publisher.publish(event.subject.clone(), event.payload.clone().into());
        match tokio::time::timeout(config.publish_timeout, publish).await {
            Ok(Ok(())) => sent.push(event),
            Ok(Err(error)) => {
                failure = Some(error.to_string());
                break;
            }
            Err(_) => {
                failure = Some(format!("publish took longer than {:?}", config.publish_timeout));
                break;
            }
        }
    }
    // Queued is not sent: only a flush says the messages reached the server.
    if !sent.is_empty() {
        match tokio::time::timeout(config.publish_timeout, publisher.flush()).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                failure = Some(error.to_string());
                sent.clear();
            }
            Err(_) => {
                failure = Some(format!("flush took longer than {:?}", config.publish_timeout));
                sent.clear();
            }
        }
    }
    let published: Vec<Uuid> = sent.iter().map(|e| e.id).collect();
    if !published.is_empty() {
        // If this fails the events are published again when their lease ends: at least once.
        if let Err(error) = outbox.mark_published(&published).await {
            tracing::warn!(
                error = &error as &dyn std::error::Error,
                "events published but still in the outbox; they will be sent again"
            );
        }
        metrics.published.inc_by(published.len() as u64);
    }
    if let Some(error) = failure {
        let failed: Vec<&ClaimedEvent> = events.iter().filter(|e| !published.contains(&e.id)).collect();
        let attempts = failed.iter().map(|e| e.attempts).max().unwrap_or(1);
        let retry_in = config.backoff(attempts);
        let ids: Vec<Uuid> = failed.iter().map(|e| e.id).collect();
        tracing::warn!(%error, events = ids.len(), attempts, retry_in = ?retry_in, "publishing OrderCreated events failed; will retry");
        metrics.failures.inc_by(ids.len() as u64);
        if let Err(error) = outbox.mark_failed(&ids, retry_in, &error).await {
            tracing::warn!(
                error = &error as &dyn std::error::Error,
                "cannot record the failed publication; the lease will expire instead"
            );
        }
        return Err(());
    }
    Ok(published.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::fake::FakePublisher;
    use crate::repository::OrderRepository;
    use crate::repository::memory::InMemoryOrderRepository;
    use crate::service::{Currency, Money, Order, OrderItem, OrderStatus};

    fn config() -> RelayConfig {
        RelayConfig {
            poll_interval: Duration::from_millis(10),
            retry_backoff: Duration::from_millis(20),
            max_retry_backoff: Duration::from_millis(100),
            ..RelayConfig::default()
        }
    }

    async fn store_order_with_event(outbox: &InMemoryOrderRepository) -> Uuid {
        let currency = Currency::parse("EUR").unwrap();
        let order = Order {
            id: Uuid::now_v7(),
            user_id: Uuid::now_v7(),
            items: vec![OrderItem { sku: "A".into(), quantity: 1, unit_price: Money { amount_minor: 100, currency } }],
            total: Money { amount_minor: 100, currency },
            status: OrderStatus::Pending,
            create_time: crate::service::now_micros(),
        };
        let event = crate::events::order_created(&order, crate::service::now_micros());
        outbox.insert(&order, Some(&event)).await.unwrap();
        event.id
    }

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let config = RelayConfig::default();
        let waits: Vec<u64> = (1..=8).map(|a| config.backoff(a).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(config.backoff(i32::MAX), Duration::from_secs(60));
    }

    #[tokio::test]
    async fn publishes_due_events_in_order_then_removes_them() {
        let outbox = InMemoryOrderRepository::default();
        let publisher = FakePublisher::default();
        let metrics = RelayMetrics::register(&Registry::new());
        let first = store_order_with_event(&outbox).await;
        let second = store_order_with_event(&outbox).await;
        assert_eq!(relay_batch(&outbox, &publisher, &config(), &metrics).await, Ok(2));
        let messages = publisher.messages();
        let ids: Vec<String> = messages
            .iter()
            .map(|(subject, payload)| {
                assert_eq!(subject, "orders.created");
                crate::events::decode_order_created(payload).unwrap().event_id
            })
            .collect();
        assert_eq!(ids, [first.to_string(), second.to_string()]);
        assert_eq!(outbox.pending().await.unwrap(), 0);
        assert_eq!(metrics.published.get(), 2);
    }

    #[tokio::test]
    async fn while_nats_is_down_events_stay_and_go_out_once_it_is_back() {
        let outbox = Arc::new(InMemoryOrderRepository::default());
        let publisher = FakePublisher::default();
        let metrics = RelayMetrics::register(&Registry::new());
        let wake = Arc::new(Notify::new());
        publisher.set_down(true);
        let relay = tokio::spawn(run(outbox.clone(), publisher.clone(), wake.clone(), config(), metrics.clone()));
        let id = store_order_with_event(&outbox).await;
        wake.notify_one();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(outbox.pending().await.unwrap(), 1);
        assert!(publisher.messages().is_empty());

        publisher.set_down(false);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while outbox.pending().await.unwrap() > 0 {
            assert!(tokio::time::Instant::now() < deadline, "the event was never published");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let (_, payload) = &publisher.messages()[0];
        assert_eq!(crate::events::decode_order_created(payload).unwrap().event_id, id.to_string());
        relay.abort();
    }

    /// A publisher whose flush fails: queued messages may or may not have left.
    #[derive(Clone, Default)]
    struct FlushFails(FakePublisher);

    impl Publisher for FlushFails {
        fn is_connected(&self) -> bool {
            true
        }
        async fn publish(&self, subject: String, payload: bytes::Bytes) -> Result<(), super::super::PublishError> {
            self.0.publish(subject, payload).await
        }
        async fn flush(&self) -> Result<(), super::super::PublishError> {
            Err(super::super::PublishError("connection reset".into()))
        }
    }

    #[tokio::test]
    async fn an_unconfirmed_batch_is_kept_for_another_attempt_with_its_reason() {
        let outbox = InMemoryOrderRepository::default();
        let metrics = RelayMetrics::register(&Registry::new());
        let id = store_order_with_event(&outbox).await;
        assert_eq!(relay_batch(&outbox, &FlushFails::default(), &config(), &metrics).await, Err(()));
        assert_eq!(outbox.pending().await.unwrap(), 1);
        assert_eq!(outbox.last_error(id).as_deref(), Some("connection reset"));
        assert_eq!(metrics.failures.get(), 1);
        // Not due again before its backoff.
        assert!(outbox.claim(10, Duration::from_secs(1)).await.unwrap().is_empty());
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert_eq!(relay_batch(&outbox, &FakePublisher::default(), &config(), &metrics).await, Ok(1));
    }
}
