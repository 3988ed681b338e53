//! `/v1/orders` and `/v1/users/{id}/orders` handlers.

use axum::Json;
use axum::extract::State;
use axum::response::IntoResponse;
use http::{StatusCode, header};

use super::{AppState, JsonBody, PathParam, QueryParams};
use crate::service::PageQuery;
use crate::service::orders::{self, CreateOrder, Order, OrderPage};

/// `POST /v1/orders`: 201 with the placed order and its `Location`.
pub async fn create(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<CreateOrder>,
) -> Result<impl IntoResponse, pkg::Error> {
    let request = body.into_request()?;
    let order = Order::from(state.orders.create(request).await?);
    let location = format!("/v1/orders/{}", order.id);
    Ok((StatusCode::CREATED, [(header::LOCATION, location)], Json(order)))
}

/// `GET /v1/orders/{id}`.
pub async fn get(State(state): State<AppState>, PathParam(id): PathParam<String>) -> Result<Json<Order>, pkg::Error> {
    let request = orders::get_request(&id)?;
    Ok(Json(Order::from(state.orders.get(request).await?)))
}

/// `GET /v1/users/{id}/orders?page_size=&page_token=`.
pub async fn list_by_user(
    State(state): State<AppState>,
    PathParam(user_id): PathParam<String>,
    QueryParams(query): QueryParams<PageQuery>,
) -> Result<Json<OrderPage>, pkg::Error> {
    let request = orders::list_by_user_request(&user_id, &query)?;
    Ok(Json(OrderPage::from(state.orders.list_by_user(request).await?)))
}
