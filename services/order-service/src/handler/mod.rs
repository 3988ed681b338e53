//! The gRPC face of the service: `order.v1.OrderService` requests mapped to the service layer
//! and back, errors mapped to status codes through [`pkg::Error`]. Health is
//! [`pkg::postgres::HealthProbe`]'s, started by [`crate::server`].

use std::sync::Arc;

use pkg::field;
use tonic::{Request, Response, Status};

use crate::client::user_client::UserDirectory;
use crate::proto::order::v1 as pb;
use crate::repository::OrderRepository;
use crate::service::{CreateOrderError, Money, NewMoney, NewOrder, NewOrderItem, Order, OrderService, OrderStatus};

/// Serves `order.v1.OrderService` over an [`OrderService`].
#[derive(Debug)]
pub struct OrderHandler<R, U> {
    service: Arc<OrderService<R, U>>,
}

impl<R, U> OrderHandler<R, U> {
    /// The handler over `service`.
    pub fn new(service: Arc<OrderService<R, U>>) -> Self {
        OrderHandler { service }
    }
}

#[tonic::async_trait]
impl<R: OrderRepository, U: UserDirectory> pb::order_service_server::OrderService for OrderHandler<R, U> {
    async fn create_order(
        &self,
        request: Request<pb::CreateOrderRequest>,
    ) -> Result<Response<pb::CreateOrderResponse>, Status> {
        let request = request.into_inner();
        let new = NewOrder {
            user_id: field::uuid("user_id", &request.user_id)?,
            items: request.items.into_iter().map(new_item_from_proto).collect(),
        };
        let order = self.service.create_order(new).await.map_err(|error| match error {
            // The one code pkg::ErrorKind has no kind for: order.proto documents it.
            CreateOrderError::UnknownUser(_) => Status::failed_precondition(error.to_string()),
            CreateOrderError::Other(error) => error.into(),
        })?;
        Ok(Response::new(pb::CreateOrderResponse { order: Some(order_to_proto(&order)) }))
    }

    async fn get_order(&self, request: Request<pb::GetOrderRequest>) -> Result<Response<pb::GetOrderResponse>, Status> {
        let id = field::uuid("id", &request.get_ref().id)?;
        let order = self.service.get_order(id).await?;
        Ok(Response::new(pb::GetOrderResponse { order: Some(order_to_proto(&order)) }))
    }

    async fn list_orders_by_user(
        &self,
        request: Request<pb::ListOrdersByUserRequest>,
    ) -> Result<Response<pb::ListOrdersByUserResponse>, Status> {
        let request = request.into_inner();
        let user_id = field::uuid("user_id", &request.user_id)?;
        let page = self.service.list_orders_by_user(user_id, request.page_size, &request.page_token).await?;
        Ok(Response::new(pb::ListOrdersByUserResponse {
            orders: page.items.iter().map(order_to_proto).collect(),
            next_page_token: page.next_page_token,
        }))
    }
}

fn new_item_from_proto(item: pb::OrderItem) -> NewOrderItem {
    NewOrderItem {
        sku: item.sku,
        quantity: item.quantity,
        unit_price: item
            .unit_price
            .map(|price| NewMoney { amount_minor: price.amount_minor, currency_code: price.currency_code }),
    }
}

fn money_to_proto(money: Money) -> pb::Money {
    pb::Money { amount_minor: money.amount_minor, currency_code: money.currency.as_str().to_owned() }
}

/// The wire form of an order (also the `order` of its OrderCreated event).
pub fn order_to_proto(order: &Order) -> pb::Order {
    let status = match order.status {
        OrderStatus::Pending => pb::OrderStatus::Pending,
        OrderStatus::Confirmed => pb::OrderStatus::Confirmed,
        OrderStatus::Cancelled => pb::OrderStatus::Cancelled,
    };
    pb::Order {
        id: order.id.to_string(),
        user_id: order.user_id.to_string(),
        items: order
            .items
            .iter()
            .map(|item| pb::OrderItem {
                sku: item.sku.clone(),
                quantity: item.quantity,
                unit_price: Some(money_to_proto(item.unit_price)),
            })
            .collect(),
        total: Some(money_to_proto(order.total)),
        status: status.into(),
        create_time: Some(order.create_time.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::user_client::fake::FakeUserDirectory;
    use crate::proto::order::v1::order_service_server::OrderService as _;
    use crate::repository::memory::InMemoryOrderRepository;
    use crate::service::Events;
    use tonic::Code;
    use uuid::Uuid;

    type Handler = OrderHandler<InMemoryOrderRepository, FakeUserDirectory>;

    fn handler() -> (Handler, FakeUserDirectory, Uuid) {
        let users = FakeUserDirectory::default();
        let user = Uuid::now_v7();
        users.add(user);
        let service = OrderService::new(InMemoryOrderRepository::default(), users.clone(), Events::Off);
        (OrderHandler::new(Arc::new(service)), users, user)
    }

    fn item(sku: &str, quantity: i32, amount_minor: i64, currency: &str) -> pb::OrderItem {
        pb::OrderItem {
            sku: sku.into(),
            quantity,
            unit_price: Some(pb::Money { amount_minor, currency_code: currency.into() }),
        }
    }

    async fn create(handler: &Handler, user_id: &str, items: Vec<pb::OrderItem>) -> Result<pb::Order, Status> {
        let request = pb::CreateOrderRequest { user_id: user_id.into(), items };
        Ok(handler.create_order(Request::new(request)).await?.into_inner().order.unwrap())
    }

    #[tokio::test]
    async fn an_order_comes_back_as_sent_with_server_fields() {
        let (handler, _, user) = handler();
        let items = vec![item("TSHIRT-RED-M", 2, 1999, "EUR"), item("MUG", 1, 850, "EUR")];
        let order = create(&handler, &user.to_string(), items.clone()).await.unwrap();
        assert_eq!(order.items, items);
        assert_eq!(order.user_id, user.to_string());
        assert_eq!(order.total, Some(pb::Money { amount_minor: 4848, currency_code: "EUR".into() }));
        assert_eq!(order.status(), pb::OrderStatus::Pending);
        assert!(order.create_time.is_some());
        let got = handler
            .get_order(Request::new(pb::GetOrderRequest { id: order.id.clone() }))
            .await
            .unwrap()
            .into_inner()
            .order
            .unwrap();
        assert_eq!(got, order);
    }

    #[tokio::test]
    async fn errors_become_the_documented_status_codes() {
        let (handler, users, user) = handler();
        let user = user.to_string();
        let ok = || vec![item("A", 1, 100, "EUR")];
        let cases: Vec<(Result<pb::Order, Status>, Code)> = vec![
            (create(&handler, "nope", ok()).await, Code::InvalidArgument),
            (create(&handler, "", ok()).await, Code::InvalidArgument),
            (create(&handler, &user, vec![]).await, Code::InvalidArgument),
            (
                create(&handler, &user, vec![item("A", 1, 1, "EUR"), item("B", 1, 1, "JPY")]).await,
                Code::InvalidArgument,
            ),
            (create(&handler, &user, vec![item("A", 3, i64::MAX / 2, "EUR")]).await, Code::InvalidArgument),
            (
                create(&handler, &user, vec![pb::OrderItem { sku: "A".into(), quantity: 1, unit_price: None }]).await,
                Code::InvalidArgument,
            ),
            (create(&handler, &Uuid::now_v7().to_string(), ok()).await, Code::FailedPrecondition),
        ];
        for (result, code) in cases {
            assert_eq!(result.unwrap_err().code(), code);
        }
        users.set_down(true);
        let status = create(&handler, &user, ok()).await.unwrap_err();
        assert_eq!(status.code(), Code::Unavailable);
        assert!(status.message().contains("user-service"), "{}", status.message());

        let status =
            handler.get_order(Request::new(pb::GetOrderRequest { id: Uuid::now_v7().to_string() })).await.unwrap_err();
        assert_eq!(status.code(), Code::NotFound);
        let status = handler
            .list_orders_by_user(Request::new(pb::ListOrdersByUserRequest {
                user_id: user.clone(),
                page_size: -1,
                page_token: String::new(),
            }))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        let status = handler
            .list_orders_by_user(Request::new(pb::ListOrdersByUserRequest {
                user_id: user,
                page_size: 1,
                page_token: "forged".into(),
            }))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
    }
}
