//! [`OrderRepository`] and [`Outbox`] over PostgreSQL: the service's SQL, on a pool from
//! [`pkg::postgres`] (bounded waits, so a database that stops answering is UNAVAILABLE within
//! seconds).

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use deadpool_postgres::{GenericClient, Pool};
use pkg::pagination::Cursor;
use pkg::postgres::{DatabaseError, bounded};
use tokio_postgres::Row;
use uuid::Uuid;

use super::{ClaimedEvent, OrderRepository, Outbox, RepositoryError};
use crate::service::{Currency, Money, Order, OrderItem, OrderStatus, OutboxEvent};

/// Orders in the `orders` and `order_items` tables, events in `outbox_events`.
#[derive(Clone, Debug)]
pub struct PgOrderRepository {
    pool: Pool,
}

impl PgOrderRepository {
    /// The repository over `pool`.
    pub fn new(pool: Pool) -> Self {
        PgOrderRepository { pool }
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, RepositoryError> {
        self.pool.get().await.map_err(|e| DatabaseError::from(e).into())
    }
}

const ORDER_COLUMNS: &str = "id, user_id, status, currency_code, total_minor, create_time";

impl OrderRepository for PgOrderRepository {
    #[tracing::instrument(name = "db insert orders", skip_all, fields(db.system = "postgresql"))]
    async fn insert(&self, order: &Order, event: Option<&OutboxEvent>) -> Result<(), RepositoryError> {
        bounded(async {
            let mut client = self.client().await?;
            let transaction = client.transaction().await.map_err(classify)?;
            let insert_order = transaction
                .prepare_cached(
                    "INSERT INTO orders (id, user_id, status, currency_code, total_minor, create_time) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .await
                .map_err(classify)?;
            transaction
                .execute(
                    &insert_order,
                    &[
                        &order.id,
                        &order.user_id,
                        &order.status.as_str(),
                        &order.total.currency.as_str(),
                        &order.total.amount_minor,
                        &order.create_time,
                    ],
                )
                .await
                .map_err(classify)?;
            // All items in one statement: one round trip for up to 100 rows.
            let insert_items = transaction
                .prepare_cached(
                    "INSERT INTO order_items (order_id, position, sku, quantity, unit_price_minor) \
                     SELECT $1::uuid, * FROM unnest($2::integer[], $3::text[], $4::integer[], $5::bigint[])",
                )
                .await
                .map_err(classify)?;
            let positions: Vec<i32> = (0..).take(order.items.len()).collect();
            let skus: Vec<&str> = order.items.iter().map(|i| i.sku.as_str()).collect();
            let quantities: Vec<i32> = order.items.iter().map(|i| i.quantity).collect();
            let prices: Vec<i64> = order.items.iter().map(|i| i.unit_price.amount_minor).collect();
            transaction
                .execute(&insert_items, &[&order.id, &positions, &skus, &quantities, &prices])
                .await
                .map_err(classify)?;
            if let Some(event) = event {
                let insert_event = transaction
                    .prepare_cached("INSERT INTO outbox_events (id, subject, payload) VALUES ($1, $2, $3)")
                    .await
                    .map_err(classify)?;
                transaction
                    .execute(&insert_event, &[&event.id, &event.subject, &event.payload])
                    .await
                    .map_err(classify)?;
            }
            transaction.commit().await.map_err(classify)
        })
        .await
    }

    #[tracing::instrument(name = "db select orders", skip_all, fields(db.system = "postgresql"))]
    async fn get(&self, id: Uuid) -> Result<Option<Order>, RepositoryError> {
        bounded(async {
            let client = self.client().await?;
            let statement = client
                .prepare_cached(&format!("SELECT {ORDER_COLUMNS} FROM orders WHERE id = $1"))
                .await
                .map_err(classify)?;
            let rows = client.query(&statement, &[&id]).await.map_err(classify)?;
            Ok(with_items(&client, &rows).await?.pop())
        })
        .await
    }

    #[tracing::instrument(name = "db list orders", skip_all, fields(db.system = "postgresql"))]
    async fn list_by_user(
        &self,
        user_id: Uuid,
        before: Option<Cursor>,
        limit: usize,
    ) -> Result<Vec<Order>, RepositoryError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        bounded(async {
            let client = self.client().await?;
            // Two statements rather than one with `$2 IS NULL OR ...`: the row comparison alone
            // lets the planner walk the (user_id, create_time DESC, id DESC) index from the cursor.
            let rows = match before {
                None => {
                    let statement = client
                        .prepare_cached(&format!(
                            "SELECT {ORDER_COLUMNS} FROM orders WHERE user_id = $1 \
                             ORDER BY create_time DESC, id DESC LIMIT $2"
                        ))
                        .await
                        .map_err(classify)?;
                    client.query(&statement, &[&user_id, &limit]).await
                }
                Some(before) => {
                    let statement = client
                        .prepare_cached(&format!(
                            "SELECT {ORDER_COLUMNS} FROM orders \
                             WHERE user_id = $1 AND (create_time, id) < ($2, $3) \
                             ORDER BY create_time DESC, id DESC LIMIT $4"
                        ))
                        .await
                        .map_err(classify)?;
                    client.query(&statement, &[&user_id, &before.create_time, &before.id, &limit]).await
                }
            }
            .map_err(classify)?;
            with_items(&client, &rows).await
        })
        .await
    }
}

impl Outbox for PgOrderRepository {
    async fn claim(&self, limit: usize, lease: Duration) -> Result<Vec<ClaimedEvent>, RepositoryError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        bounded(async {
            let client = self.client().await?;
            // SKIP LOCKED: replicas running their own relay each claim different rows.
            let statement = client
                .prepare_cached(
                    "UPDATE outbox_events \
                     SET available_at = now() + make_interval(secs => $2), attempts = attempts + 1 \
                     WHERE id IN (SELECT id FROM outbox_events WHERE available_at <= now() \
                                  ORDER BY create_time, id LIMIT $1 FOR UPDATE SKIP LOCKED) \
                     RETURNING id, subject, payload, attempts, create_time",
                )
                .await
                .map_err(classify)?;
            let rows = client.query(&statement, &[&limit, &lease.as_secs_f64()]).await.map_err(classify)?;
            let mut claimed = rows
                .iter()
                .map(|row| {
                    Ok((
                        row.try_get::<_, SystemTime>("create_time")?,
                        ClaimedEvent {
                            id: row.try_get("id")?,
                            subject: row.try_get("subject")?,
                            payload: row.try_get("payload")?,
                            attempts: row.try_get("attempts")?,
                        },
                    ))
                })
                .collect::<Result<Vec<_>, tokio_postgres::Error>>()
                .map_err(|e| RepositoryError::Query(e.into()))?;
            // RETURNING does not keep the subquery's order.
            claimed.sort_by_key(|(create_time, event)| (*create_time, event.id));
            Ok(claimed.into_iter().map(|(_, event)| event).collect())
        })
        .await
    }

    async fn mark_published(&self, ids: &[Uuid]) -> Result<(), RepositoryError> {
        bounded(async {
            let client = self.client().await?;
            let statement =
                client.prepare_cached("DELETE FROM outbox_events WHERE id = ANY($1)").await.map_err(classify)?;
            client.execute(&statement, &[&ids]).await.map_err(classify)?;
            Ok(())
        })
        .await
    }

    async fn mark_failed(&self, ids: &[Uuid], retry_in: Duration, error: &str) -> Result<(), RepositoryError> {
        bounded(async {
            let client = self.client().await?;
            let statement = client
                .prepare_cached(
                    "UPDATE outbox_events \
                     SET available_at = now() + make_interval(secs => $2), last_error = $3 \
                     WHERE id = ANY($1)",
                )
                .await
                .map_err(classify)?;
            client.execute(&statement, &[&ids, &retry_in.as_secs_f64(), &error]).await.map_err(classify)?;
            Ok(())
        })
        .await
    }

    async fn pending(&self) -> Result<u64, RepositoryError> {
        bounded(async {
            let client = self.client().await?;
            let row = client.query_one("SELECT count(*) FROM outbox_events", &[]).await.map_err(classify)?;
            let count: i64 = row.try_get(0).map_err(|e| RepositoryError::Query(e.into()))?;
            Ok(u64::try_from(count).unwrap_or(0))
        })
        .await
    }
}

/// The orders of `rows`, in their order, each with its items (one query for all of them).
async fn with_items<C: GenericClient>(client: &C, rows: &[Row]) -> Result<Vec<Order>, RepositoryError> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<Uuid> = rows
        .iter()
        .map(|row| row.try_get("id"))
        .collect::<Result<_, _>>()
        .map_err(|e| RepositoryError::Query(e.into()))?;
    let statement = client
        .prepare_cached(
            "SELECT order_id, sku, quantity, unit_price_minor FROM order_items \
             WHERE order_id = ANY($1) ORDER BY order_id, position",
        )
        .await
        .map_err(classify)?;
    let item_rows = client.query(&statement, &[&ids]).await.map_err(classify)?;
    let mut items: HashMap<Uuid, Vec<(String, i32, i64)>> = HashMap::new();
    for row in &item_rows {
        let read = || -> Result<(Uuid, (String, i32, i64)), tokio_postgres::Error> {
            Ok((
                row.try_get("order_id")?,
                (row.try_get("sku")?, row.try_get("quantity")?, row.try_get("unit_price_minor")?),
            ))
        };
        let (order_id, item) = read().map_err(|e| RepositoryError::Query(e.into()))?;
        items.entry(order_id).or_default().push(item);
    }
    rows.iter().zip(&ids).map(|(row, id)| order_from_row(row, items.remove(id).unwrap_or_default())).collect()
}

fn order_from_row(row: &Row, items: Vec<(String, i32, i64)>) -> Result<Order, RepositoryError> {
    let corrupt = |what: String| RepositoryError::Query(what.into());
    let read = || -> Result<_, tokio_postgres::Error> {
        Ok((
            row.try_get::<_, Uuid>("id")?,
            row.try_get::<_, Uuid>("user_id")?,
            row.try_get::<_, String>("status")?,
            row.try_get::<_, String>("currency_code")?,
            row.try_get::<_, i64>("total_minor")?,
            row.try_get::<_, SystemTime>("create_time")?,
        ))
    };
    let (id, user_id, status, currency_code, total_minor, create_time) =
        read().map_err(|e| RepositoryError::Query(e.into()))?;
    let status =
        OrderStatus::parse(&status).ok_or_else(|| corrupt(format!("order {id} has unknown status {status:?}")))?;
    let currency = Currency::parse(&currency_code)
        .ok_or_else(|| corrupt(format!("order {id} has invalid currency {currency_code:?}")))?;
    if items.is_empty() {
        return Err(corrupt(format!("order {id} has no items")));
    }
    Ok(Order {
        id,
        user_id,
        items: items
            .into_iter()
            .map(|(sku, quantity, amount_minor)| OrderItem {
                sku,
                quantity,
                unit_price: Money { amount_minor, currency },
            })
            .collect(),
        total: Money { amount_minor: total_minor, currency },
        status,
        create_time,
    })
}

impl From<DatabaseError> for RepositoryError {
    fn from(error: DatabaseError) -> Self {
        match error {
            DatabaseError::Unavailable(cause) => RepositoryError::Unavailable(cause),
            DatabaseError::Query(cause) => RepositoryError::Query(cause),
        }
    }
}

/// What a tokio-postgres error means to the service: pkg's reading of it.
fn classify(error: tokio_postgres::Error) -> RepositoryError {
    DatabaseError::from(error).into()
}
