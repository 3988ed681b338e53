//! The order-service client.

use http::Uri;
use pkg::client::{Call, Client, ClientConfig, InvalidAddress, TracedChannel};

use super::{HealthProbe, ORDER_SERVICE, Stubs, connect, missing, upstream_error};
use crate::proto::order::v1 as pb;
use crate::proto::order::v1::order_service_client::OrderServiceClient;

/// `order.v1.OrderService` through the resilient client. Cheap to clone; clones share the
/// connection and the circuit breaker.
#[derive(Clone, Debug)]
pub struct OrderClient {
    client: Client<Stubs<OrderServiceClient<TracedChannel>>>,
}

impl OrderClient {
    /// A client for the order-service at `uri`, connecting on first use.
    pub fn connect(uri: &Uri, config: ClientConfig) -> Result<Self, InvalidAddress> {
        let client = connect(ORDER_SERVICE, uri, config, OrderServiceClient::new)?;
        Ok(OrderClient { client })
    }

    /// The probe `/readyz` uses, on the same connection.
    pub fn health_probe(&self) -> HealthProbe {
        HealthProbe::new(ORDER_SERVICE, "order.v1.OrderService", self.client.inner().health.clone())
    }

    /// Places an order. Made exactly once: a retried create could place the order twice.
    pub async fn create(&self, request: pb::CreateOrderRequest) -> pkg::error::Result<pb::Order> {
        self.client
            .call(
                Call::not_idempotent(),
                request,
                |mut stubs, request| async move { stubs.api.create_order(request).await },
            )
            .await
            .map_err(|status| upstream_error(ORDER_SERVICE, status))?
            .into_inner()
            .order
            .ok_or_else(|| missing(ORDER_SERVICE, "the created order"))
    }

    /// Reads one order; retried when the upstream does not answer.
    pub async fn get(&self, request: pb::GetOrderRequest) -> pkg::error::Result<pb::Order> {
        self.client
            .call(Call::idempotent(), request, |mut stubs, request| async move { stubs.api.get_order(request).await })
            .await
            .map_err(|status| upstream_error(ORDER_SERVICE, status))?
            .into_inner()
            .order
            .ok_or_else(|| missing(ORDER_SERVICE, "the order"))
    }

    /// Reads one page of a user's orders; retried when the upstream does not answer.
    pub async fn list_by_user(
        &self,
        request: pb::ListOrdersByUserRequest,
    ) -> pkg::error::Result<pb::ListOrdersByUserResponse> {
        self.client
            .call(Call::idempotent(), request, |mut stubs, request| async move {
                stubs.api.list_orders_by_user(request).await
            })
            .await
            .map(tonic::Response::into_inner)
            .map_err(|status| upstream_error(ORDER_SERVICE, status))
    }
}
