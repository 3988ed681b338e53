//! `/v1/users` handlers.

use axum::Json;
use axum::extract::State;
use axum::response::IntoResponse;
use http::{StatusCode, header};

use super::{AppState, JsonBody, PathParam, QueryParams};
use crate::service::PageQuery;
use crate::service::users::{self, CreateUser, User, UserPage};

/// `POST /v1/users`: 201 with the created user and its `Location`.
pub async fn create(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<CreateUser>,
) -> Result<impl IntoResponse, pkg::Error> {
    let request = body.into_request()?;
    let user = User::from(state.users.create(request).await?);
    let location = format!("/v1/users/{}", user.id);
    Ok((StatusCode::CREATED, [(header::LOCATION, location)], Json(user)))
}

/// `GET /v1/users/{id}`.
pub async fn get(State(state): State<AppState>, PathParam(id): PathParam<String>) -> Result<Json<User>, pkg::Error> {
    let request = users::get_request(&id)?;
    Ok(Json(User::from(state.users.get(request).await?)))
}

/// `GET /v1/users?page_size=&page_token=`.
pub async fn list(
    State(state): State<AppState>,
    QueryParams(query): QueryParams<PageQuery>,
) -> Result<Json<UserPage>, pkg::Error> {
    let request = users::list_request(&query)?;
    Ok(Json(UserPage::from(state.users.list(request).await?)))
}
