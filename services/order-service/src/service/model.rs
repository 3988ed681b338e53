//! The order domain: what an order is once validated, independent of its wire and table forms.

use std::fmt;
use std::time::SystemTime;

use uuid::Uuid;

use pkg::pagination::Cursor;

/// An ISO 4217 alphabetic currency code: three uppercase ASCII letters.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Currency([u8; 3]);

impl Currency {
    /// The code if `code` is three uppercase ASCII letters.
    pub fn parse(code: &str) -> Option<Currency> {
        let bytes: [u8; 3] = code.as_bytes().try_into().ok()?;
        bytes.iter().all(u8::is_ascii_uppercase).then_some(Currency(bytes))
    }

    /// The code, like `"EUR"`.
    pub fn as_str(&self) -> &str {
        // Three ASCII letters, checked by `parse`.
        std::str::from_utf8(&self.0).unwrap_or("XXX")
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.as_str())
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An amount in one currency, as an integer count of the currency's minor unit; never negative.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Money {
    /// Cents for EUR, whole yen for JPY.
    pub amount_minor: i64,
    /// The currency.
    pub currency: Currency,
}

/// One line of an order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderItem {
    /// The product, 1 to 64 characters.
    pub sku: String,
    /// At least 1.
    pub quantity: i32,
    /// Price of one unit, in the order's currency.
    pub unit_price: Money,
}

/// Where an order is in its lifecycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OrderStatus {
    /// Placed, awaiting confirmation: every new order.
    Pending,
    /// Accepted. Final.
    Confirmed,
    /// Abandoned or rejected. Final.
    Cancelled,
}

impl OrderStatus {
    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Pending => "PENDING",
            OrderStatus::Confirmed => "CONFIRMED",
            OrderStatus::Cancelled => "CANCELLED",
        }
    }

    /// The status a stored name stands for.
    pub fn parse(name: &str) -> Option<OrderStatus> {
        match name {
            "PENDING" => Some(OrderStatus::Pending),
            "CONFIRMED" => Some(OrderStatus::Confirmed),
            "CANCELLED" => Some(OrderStatus::Cancelled),
            _ => None,
        }
    }
}

/// A placed order, as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Order {
    /// Assigned by the service: a UUIDv7.
    pub id: Uuid,
    /// The user who placed it (a user-service id; checked to exist when the order was placed).
    pub user_id: Uuid,
    /// In the order the client sent them; at least one, all in `total.currency`.
    pub items: Vec<OrderItem>,
    /// Sum of quantity times unit price over the items.
    pub total: Money,
    /// Pending when created.
    pub status: OrderStatus,
    /// Assigned by the service, at the microsecond precision PostgreSQL stores.
    pub create_time: SystemTime,
}

impl Order {
    /// The order's position in its user's listing.
    pub fn cursor(&self) -> Cursor {
        Cursor { create_time: self.create_time, id: self.id }
    }
}

/// A client's new order, not yet validated: as it arrived, field by field.
#[derive(Clone, Debug, Default)]
pub struct NewOrder {
    /// The user placing the order.
    pub user_id: Uuid,
    /// The lines as sent.
    pub items: Vec<NewOrderItem>,
}

/// A client's order line, not yet validated.
#[derive(Clone, Debug, Default)]
pub struct NewOrderItem {
    /// As sent.
    pub sku: String,
    /// As sent.
    pub quantity: i32,
    /// `None` when the client left it out.
    pub unit_price: Option<NewMoney>,
}

/// A client's price, not yet validated.
#[derive(Clone, Debug, Default)]
pub struct NewMoney {
    /// As sent.
    pub amount_minor: i64,
    /// As sent.
    pub currency_code: String,
}

/// An event to be published after the order that caused it is committed: a row of the outbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutboxEvent {
    /// The event's id (its `event_id`): the same on every redelivery.
    pub id: Uuid,
    /// The NATS subject.
    pub subject: String,
    /// The encoded event.
    pub payload: Vec<u8>,
}
