//! The rules a new order must follow, as documented in `order.v1` (proto/order/v1/order.proto),
//! and its total, computed in integer minor units with checked arithmetic.

use pkg::Error;
use pkg::field::quote;

use super::model::{Currency, Money, NewMoney, NewOrderItem, OrderItem};

/// The most items one order may have.
pub const MAX_ITEMS: usize = 100;
/// The longest SKU, in characters.
pub const MAX_SKU_LEN: usize = 64;

/// Checks the items and computes their total: every problem is INVALID_ARGUMENT naming the
/// field (`items[2].unit_price.currency_code`), the first one found.
pub fn items(raw: Vec<NewOrderItem>) -> Result<(Vec<OrderItem>, Money), Error> {
    if raw.is_empty() {
        return Err(Error::invalid_argument("items: at least one item is required"));
    }
    if raw.len() > MAX_ITEMS {
        return Err(Error::invalid_argument(format!("items: at most {MAX_ITEMS} items per order, got {}", raw.len())));
    }
    let mut currency: Option<Currency> = None;
    let mut total: i64 = 0;
    let mut items = Vec::with_capacity(raw.len());
    for (i, item) in raw.into_iter().enumerate() {
        let invalid = |field: &str, why: String| Error::invalid_argument(format!("items[{i}].{field}: {why}"));
        let sku_len = item.sku.chars().count();
        if item.sku.trim().is_empty() || sku_len > MAX_SKU_LEN {
            return Err(invalid("sku", format!("must have 1 to {MAX_SKU_LEN} characters, not only spaces")));
        }
        if item.sku.chars().any(char::is_control) {
            return Err(invalid("sku", format!("{} contains control characters", quote(&item.sku))));
        }
        if item.quantity < 1 {
            return Err(invalid("quantity", format!("must be at least 1, got {}", item.quantity)));
        }
        let Some(NewMoney { amount_minor, currency_code }) = item.unit_price else {
            return Err(invalid("unit_price", "required".to_owned()));
        };
        if amount_minor < 0 {
            return Err(invalid("unit_price.amount_minor", format!("must not be negative, got {amount_minor}")));
        }
        let Some(item_currency) = Currency::parse(&currency_code) else {
            return Err(invalid(
                "unit_price.currency_code",
                format!("{} is not an ISO 4217 code (three uppercase letters, like \"EUR\")", quote(&currency_code)),
            ));
        };
        match currency {
            None => currency = Some(item_currency),
            Some(first) if first != item_currency => {
                return Err(invalid(
                    "unit_price.currency_code",
                    format!("{item_currency} differs from items[0]'s {first}: an order is priced in one currency"),
                ));
            }
            Some(_) => {}
        }
        // Integer minor units, checked: a sum that does not fit in 64 bits is the client's
        // error to hear about, never a wrapped or saturated total.
        total = i64::from(item.quantity)
            .checked_mul(amount_minor)
            .and_then(|line| total.checked_add(line))
            .ok_or_else(|| {
                Error::invalid_argument(format!(
                    "items: the order total overflows at items[{i}] (the most an order may total is {} minor units)",
                    i64::MAX
                ))
            })?;
        items.push(OrderItem {
            sku: item.sku,
            quantity: item.quantity,
            unit_price: Money { amount_minor, currency: item_currency },
        });
    }
    let currency = currency.expect("at least one item was checked");
    Ok((items, Money { amount_minor: total, currency }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use pkg::ErrorKind;

    fn item(sku: &str, quantity: i32, amount_minor: i64, currency: &str) -> NewOrderItem {
        NewOrderItem {
            sku: sku.into(),
            quantity,
            unit_price: Some(NewMoney { amount_minor, currency_code: currency.into() }),
        }
    }

    fn message(result: Result<(Vec<OrderItem>, Money), Error>) -> String {
        let error = result.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::InvalidArgument, "{error:?}");
        error.message().to_owned()
    }

    #[test]
    fn totals_are_exact_sums_of_minor_units() {
        let (items, total) = items_of(vec![
            item("TSHIRT-RED-M", 2, 1999, "EUR"),
            item("MUG", 1, 850, "EUR"),
            item("STICKER", 10, 0, "EUR"),
        ]);
        assert_eq!(items.len(), 3);
        assert_eq!(items[0].sku, "TSHIRT-RED-M");
        assert_eq!(total.amount_minor, 2 * 1999 + 850);
        assert_eq!(total.currency.as_str(), "EUR");
        // 0.1 + 0.2 problems cannot happen: ten items at 0.10 are exactly 1.00.
        let (_, total) = items_of(vec![item("A", 10, 10, "USD")]);
        assert_eq!(total.amount_minor, 100);
    }

    fn items_of(raw: Vec<NewOrderItem>) -> (Vec<OrderItem>, Money) {
        items(raw).unwrap()
    }

    #[test]
    fn an_overflowing_total_is_an_invalid_argument_not_a_wrapped_number() {
        let m = message(items(vec![item("A", 2, i64::MAX / 2 + 1, "EUR")]));
        assert!(m.contains("overflows at items[0]"), "{m}");
        let m = message(items(vec![item("A", 1, i64::MAX, "EUR"), item("B", 1, 1, "EUR")]));
        assert!(m.contains("overflows at items[1]"), "{m}");
        let (_, total) = items_of(vec![item("A", 1, i64::MAX - 1, "EUR"), item("B", 1, 1, "EUR")]);
        assert_eq!(total.amount_minor, i64::MAX);
    }

    #[test]
    fn all_items_share_one_currency() {
        let m = message(items(vec![item("A", 1, 100, "EUR"), item("B", 1, 100, "USD")]));
        assert_eq!(
            m,
            "items[1].unit_price.currency_code: USD differs from items[0]'s EUR: an order is priced in one currency"
        );
    }

    #[test]
    fn each_field_rule_names_its_field() {
        let cases = [
            (vec![], "items: at least one item is required"),
            (vec![item("", 1, 1, "EUR")], "items[0].sku"),
            (vec![item("   ", 1, 1, "EUR")], "items[0].sku"),
            (vec![item(&"S".repeat(65), 1, 1, "EUR")], "items[0].sku"),
            (vec![item("A\tB", 1, 1, "EUR")], "items[0].sku"),
            (vec![item("A", 0, 1, "EUR")], "items[0].quantity: must be at least 1, got 0"),
            (vec![item("A", -3, 1, "EUR")], "items[0].quantity"),
            (vec![item("A", 1, -1, "EUR")], "items[0].unit_price.amount_minor: must not be negative"),
            (vec![item("A", 1, 1, "eur")], "items[0].unit_price.currency_code: \"eur\" is not an ISO 4217"),
            (vec![item("A", 1, 1, "EURO")], "items[0].unit_price.currency_code"),
            (vec![item("A", 1, 1, "")], "items[0].unit_price.currency_code"),
            (vec![NewOrderItem { sku: "A".into(), quantity: 1, unit_price: None }], "items[0].unit_price: required"),
        ];
        for (raw, expected) in cases {
            let m = message(items(raw));
            assert!(m.starts_with(expected), "{m:?} does not start with {expected:?}");
        }
        assert!(items(vec![item(&"S".repeat(64), 1, 1, "EUR")]).is_ok());
        let hundred: Vec<_> = (0..100).map(|i| item(&format!("S{i}"), 1, 1, "EUR")).collect();
        assert!(items(hundred).is_ok());
        let too_many: Vec<_> = (0..101).map(|i| item(&format!("S{i}"), 1, 1, "EUR")).collect();
        assert_eq!(message(items(too_many)), "items: at most 100 items per order, got 101");
    }
}
