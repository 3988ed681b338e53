//! The `Order` resource: JSON shapes, validation, and mapping to `order.v1`.

use serde::{Deserialize, Serialize};

use super::{PageQuery, Problems, next_page_token, parse_uuid, rfc3339};
use crate::proto::order::v1 as pb;

/// Lines per order, as `CreateOrderRequest.items` documents.
const MAX_ITEMS: usize = 100;
/// SKU length in characters, as `OrderItem.sku` documents.
const MAX_SKU_CHARS: usize = 64;

/// An amount of money: an integer count of the currency's minor unit (cents for EUR).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Money {
    /// 1999 means 19.99 in EUR; 1999 in JPY means ¥1999.
    pub amount_minor: i64,
    /// ISO 4217 alphabetic code, like `EUR`.
    pub currency_code: String,
}

impl From<pb::Money> for Money {
    fn from(money: pb::Money) -> Self {
        Money { amount_minor: money.amount_minor, currency_code: money.currency_code }
    }
}

/// One line of an order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderItem {
    /// The product.
    pub sku: String,
    /// Units ordered, at least 1.
    pub quantity: i32,
    /// Price of one unit when the order was placed.
    pub unit_price: Option<Money>,
}

impl From<pb::OrderItem> for OrderItem {
    fn from(item: pb::OrderItem) -> Self {
        OrderItem { sku: item.sku, quantity: item.quantity, unit_price: item.unit_price.map(Money::from) }
    }
}

/// Where an order is in its lifecycle, as a lowercase word.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OrderStatus {
    /// Placed, awaiting confirmation.
    Pending,
    /// Accepted; final.
    Confirmed,
    /// Abandoned or rejected; final.
    Cancelled,
    /// A status this gateway does not know yet (the order-service is newer).
    Unspecified,
}

impl From<i32> for OrderStatus {
    fn from(status: i32) -> Self {
        match pb::OrderStatus::try_from(status) {
            Ok(pb::OrderStatus::Pending) => OrderStatus::Pending,
            Ok(pb::OrderStatus::Confirmed) => OrderStatus::Confirmed,
            Ok(pb::OrderStatus::Cancelled) => OrderStatus::Cancelled,
            Ok(pb::OrderStatus::Unspecified) | Err(_) => OrderStatus::Unspecified,
        }
    }
}

/// An order as REST clients see it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    /// Server-assigned UUID.
    pub id: String,
    /// The user who placed it.
    pub user_id: String,
    /// The lines, in the order the client sent them.
    pub items: Vec<OrderItem>,
    /// Sum of quantity times unit price, in the items' currency.
    pub total: Option<Money>,
    /// Lifecycle status.
    pub status: OrderStatus,
    /// When the order was placed, RFC 3339 UTC.
    pub create_time: Option<String>,
}

impl From<pb::Order> for Order {
    fn from(order: pb::Order) -> Self {
        Order {
            id: order.id,
            user_id: order.user_id,
            items: order.items.into_iter().map(OrderItem::from).collect(),
            total: order.total.map(Money::from),
            status: OrderStatus::from(order.status),
            create_time: rfc3339(order.create_time),
        }
    }
}

/// The body of `POST /v1/orders`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateOrder {
    /// The user placing the order (UUID).
    pub user_id: Option<String>,
    /// 1 to 100 lines, all priced in one currency.
    pub items: Option<Vec<CreateOrderItem>>,
}

/// One line of [`CreateOrder`].
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateOrderItem {
    /// 1 to 64 characters.
    pub sku: Option<String>,
    /// At least 1.
    pub quantity: Option<i32>,
    /// Required.
    pub unit_price: Option<Money>,
}

impl CreateOrder {
    /// The gRPC request, or 400 listing every problem.
    pub fn into_request(self) -> Result<pb::CreateOrderRequest, pkg::Error> {
        let mut problems = Problems::default();
        let user_id = match self.user_id.as_deref() {
            None | Some("") => {
                problems.add("user_id is required");
                String::new()
            }
            Some(raw) => parse_uuid(raw, "user_id", &mut problems),
        };
        let items = self.items.unwrap_or_default();
        problems.check(!items.is_empty(), || "items must have at least one item".into());
        problems.check(items.len() <= MAX_ITEMS, || {
            format!("items must have at most {MAX_ITEMS} items (got {})", items.len())
        });
        // The first valid currency and the item that set it.
        let mut currency: Option<(usize, String)> = None;
        let items =
            items.into_iter().enumerate().map(|(i, item)| item.into_proto(i, &mut currency, &mut problems)).collect();
        problems.finish()?;
        Ok(pb::CreateOrderRequest { user_id, items })
    }
}

impl CreateOrderItem {
    fn into_proto(
        self,
        index: usize,
        currency: &mut Option<(usize, String)>,
        problems: &mut Problems,
    ) -> pb::OrderItem {
        let field = |name: &str| format!("items[{index}].{name}");
        let sku = self.sku.unwrap_or_default();
        let sku_chars = sku.chars().count();
        problems.check((1..=MAX_SKU_CHARS).contains(&sku_chars), || {
            format!("{} must be 1 to {MAX_SKU_CHARS} characters", field("sku"))
        });
        let quantity = self.quantity.unwrap_or(0);
        problems.check(quantity >= 1, || format!("{} must be at least 1", field("quantity")));
        let unit_price = match self.unit_price {
            None => {
                problems.add(format!("{} is required", field("unit_price")));
                None
            }
            Some(price) => {
                problems.check(price.amount_minor >= 0, || {
                    format!("{} must not be negative", field("unit_price.amount_minor"))
                });
                let code = &price.currency_code;
                if !(code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase())) {
                    problems.add(format!(
                        "{} must be an ISO 4217 code of three uppercase letters like EUR (got {code:?})",
                        field("unit_price.currency_code")
                    ));
                } else {
                    match currency {
                        None => *currency = Some((index, code.clone())),
                        Some((first_index, first)) if first != code => problems.add(format!(
                            "{} is {code} but items[{first_index}] is priced in {first}: all items must use one currency",
                            field("unit_price.currency_code")
                        )),
                        Some(_) => {}
                    }
                }
                Some(pb::Money { amount_minor: price.amount_minor, currency_code: price.currency_code })
            }
        };
        pb::OrderItem { sku, quantity, unit_price }
    }
}

/// `GET /v1/orders/{id}`.
pub fn get_request(id: &str) -> Result<pb::GetOrderRequest, pkg::Error> {
    let mut problems = Problems::default();
    let id = parse_uuid(id, "id", &mut problems);
    problems.finish()?;
    Ok(pb::GetOrderRequest { id })
}

/// `GET /v1/users/{id}/orders`.
pub fn list_by_user_request(user_id: &str, query: &PageQuery) -> Result<pb::ListOrdersByUserRequest, pkg::Error> {
    let mut problems = Problems::default();
    let user_id = parse_uuid(user_id, "id", &mut problems);
    let (page_size, page_token) = query.validate(&mut problems);
    problems.finish()?;
    Ok(pb::ListOrdersByUserRequest { user_id, page_size, page_token })
}

/// One page of a user's orders.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderPage {
    /// Newest first.
    pub orders: Vec<Order>,
    /// Pass as `page_token` for the next page; null on the last page.
    pub next_page_token: Option<String>,
}

impl From<pb::ListOrdersByUserResponse> for OrderPage {
    fn from(page: pb::ListOrdersByUserResponse) -> Self {
        OrderPage {
            orders: page.orders.into_iter().map(Order::from).collect(),
            next_page_token: next_page_token(page.next_page_token),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const USER: &str = "6f1c2b9e-3d4a-4e8b-9f10-2a7c5d6e8b01";

    fn eur(amount_minor: i64) -> pb::Money {
        pb::Money { amount_minor, currency_code: "EUR".into() }
    }

    #[test]
    fn an_order_maps_to_json_with_money_objects_and_a_lowercase_status() {
        let order = pb::Order {
            id: "0b6d8f5e-1c2a-4b3c-8d9e-0f1a2b3c4d5e".into(),
            user_id: USER.into(),
            items: vec![pb::OrderItem { sku: "TSHIRT-RED-M".into(), quantity: 2, unit_price: Some(eur(1999)) }],
            total: Some(eur(3998)),
            status: pb::OrderStatus::Pending as i32,
            create_time: Some(prost_types::Timestamp { seconds: 1_785_837_600, nanos: 0 }),
        };
        assert_eq!(
            serde_json::to_value(Order::from(order)).unwrap(),
            serde_json::json!({
                "id": "0b6d8f5e-1c2a-4b3c-8d9e-0f1a2b3c4d5e",
                "user_id": USER,
                "items": [{"sku": "TSHIRT-RED-M", "quantity": 2,
                           "unit_price": {"amount_minor": 1999, "currency_code": "EUR"}}],
                "total": {"amount_minor": 3998, "currency_code": "EUR"},
                "status": "pending",
                "create_time": "2026-08-04T10:00:00Z",
            })
        );
    }

    #[test]
    fn statuses_map_to_lowercase_words_and_unknown_ones_to_unspecified() {
        let words: Vec<_> =
            [0, 1, 2, 3, 42].into_iter().map(|s| serde_json::to_value(OrderStatus::from(s)).unwrap()).collect();
        assert_eq!(words, ["unspecified", "pending", "confirmed", "cancelled", "unspecified"]);
    }

    #[test]
    fn a_valid_create_body_becomes_the_request() {
        let body: CreateOrder = serde_json::from_value(serde_json::json!({
            "user_id": USER,
            "items": [{"sku": "MUG", "quantity": 1, "unit_price": {"amount_minor": 899, "currency_code": "EUR"}}]
        }))
        .unwrap();
        let request = body.into_request().unwrap();
        assert_eq!(request.user_id, USER);
        assert_eq!(request.items[0].unit_price, Some(eur(899)));
    }

    #[test]
    fn every_problem_of_a_create_body_is_reported() {
        let body: CreateOrder = serde_json::from_value(serde_json::json!({
            "user_id": "nope",
            "items": [
                {"sku": "", "quantity": 0, "unit_price": {"amount_minor": -1, "currency_code": "eur"}},
                {"sku": "A", "quantity": 1},
                {"sku": "B", "quantity": 1, "unit_price": {"amount_minor": 1, "currency_code": "EUR"}},
                {"sku": "C", "quantity": 1, "unit_price": {"amount_minor": 1, "currency_code": "USD"}},
            ]
        }))
        .unwrap();
        let message = body.into_request().unwrap_err().message().to_owned();
        for expected in [
            "user_id must be a UUID",
            "items[0].sku must be 1 to 64 characters",
            "items[0].quantity must be at least 1",
            "items[0].unit_price.amount_minor must not be negative",
            "items[0].unit_price.currency_code must be an ISO 4217 code",
            "items[1].unit_price is required",
            "items[3].unit_price.currency_code is USD but items[2] is priced in EUR",
        ] {
            assert!(message.contains(expected), "missing {expected:?} in {message}");
        }
    }

    #[test]
    fn an_order_needs_a_user_and_items() {
        let message = CreateOrder::default().into_request().unwrap_err().message().to_owned();
        assert_eq!(message, "2 problems: user_id is required; items must have at least one item");
    }
}
