//! [`Publisher`] over core NATS (async-nats).
//!
//! The client connects in the background and reconnects forever, so the order-service starts and
//! serves while NATS is down; the relay keeps events in the outbox until the connection is back.

use std::time::Duration;

use async_nats::connection::State;
use bytes::Bytes;

use super::{PublishError, Publisher};

/// A NATS connection used to publish events.
#[derive(Clone, Debug)]
pub struct NatsPublisher {
    client: async_nats::Client,
}

impl NatsPublisher {
    /// Starts connecting to `url` (one or more `nats://host:port`, comma-separated) and returns
    /// at once; connection changes are logged.
    pub async fn connect(url: &str) -> Result<Self, async_nats::ConnectError> {
        let client = async_nats::ConnectOptions::new()
            .name(crate::config::SERVICE_NAME)
            .retry_on_initial_connect()
            .connection_timeout(Duration::from_secs(2))
            .event_callback(|event| async move {
                match event {
                    async_nats::Event::Connected => tracing::info!("NATS connected"),
                    async_nats::Event::Disconnected => {
                        tracing::warn!("NATS disconnected: events wait in the outbox until it is back")
                    }
                    // Closed is the client's own doing: shutdown.
                    async_nats::Event::Closed => tracing::info!("NATS connection closed"),
                    other => tracing::warn!(event = %other, "NATS"),
                }
            })
            .connect(url)
            .await?;
        Ok(NatsPublisher { client })
    }
}

impl Publisher for NatsPublisher {
    fn is_connected(&self) -> bool {
        self.client.connection_state() == State::Connected
    }

    async fn publish(&self, subject: String, payload: Bytes) -> Result<(), PublishError> {
        self.client.publish(subject, payload).await.map_err(|e| PublishError(format!("NATS publish: {e}")))
    }

    async fn flush(&self) -> Result<(), PublishError> {
        self.client.flush().await.map_err(|e| PublishError(format!("NATS flush: {e}")))
    }
}
