//! HTTP handlers: each one extracts the request, lets [`crate::service`] validate and map it,
//! calls an upstream through [`crate::client`], and answers JSON. Errors are [`pkg::Error`]s,
//! which render as `{"error": {"code", "message"}, "request_id"}` with the matching status.

pub mod health;
pub mod openapi;
pub mod orders;
pub mod users;

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::response::{IntoResponse, Response};
use http::request::Parts;
use http::{Method, StatusCode, Uri};

use crate::client::{OrderClient, UserClient};
use crate::service::readiness::Readiness;

/// What handlers share.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The user-service.
    pub users: UserClient,
    /// The order-service.
    pub orders: OrderClient,
    /// `/readyz`'s cached upstream checks.
    pub readiness: Readiness,
}

/// `axum::Json`, whose rejections (bad JSON, wrong content type, unknown fields) become
/// 400 JSON errors like every other error, instead of axum's plain-text ones.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    axum::Json<T>: FromRequest<S, Rejection = JsonRejection>,
    S: Send + Sync,
{
    type Rejection = pkg::Error;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(request, state).await {
            Ok(axum::Json(value)) => Ok(JsonBody(value)),
            Err(rejection) => Err(json_rejection(&rejection)),
        }
    }
}

fn json_rejection(rejection: &JsonRejection) -> pkg::Error {
    let message = match rejection {
        JsonRejection::MissingJsonContentType(_) => {
            "the body must be JSON, sent with Content-Type: application/json".to_owned()
        }
        JsonRejection::JsonSyntaxError(_) => format!("the body is not valid JSON: {}", inner_text(rejection)),
        JsonRejection::JsonDataError(_) => format!("the body does not match the schema: {}", inner_text(rejection)),
        _ => rejection.body_text(),
    };
    pkg::Error::invalid_argument(message)
}

/// The deserializer's own words from a rejection, without axum's generic preamble.
fn inner_text(rejection: &JsonRejection) -> String {
    let text = rejection.body_text();
    match text.split_once(": ") {
        Some((_, detail)) => detail.to_owned(),
        None => text,
    }
}

/// `axum::extract::Query` with JSON errors; see [`JsonBody`].
#[derive(Debug)]
pub struct QueryParams<T>(pub T);

impl<S, T> FromRequestParts<S> for QueryParams<T>
where
    axum::extract::Query<T>: FromRequestParts<S, Rejection = QueryRejection>,
    S: Send + Sync,
{
    type Rejection = pkg::Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(QueryParams(value)),
            Err(rejection) => Err(pkg::Error::invalid_argument(format!(
                "invalid query string: {}",
                rejection.body_text().trim_start_matches("Failed to deserialize query string: ")
            ))),
        }
    }
}

/// `axum::extract::Path` with JSON errors; see [`JsonBody`].
#[derive(Debug)]
pub struct PathParam<T>(pub T);

impl<S, T> FromRequestParts<S> for PathParam<T>
where
    axum::extract::Path<T>: FromRequestParts<S, Rejection = PathRejection>,
    S: Send + Sync,
{
    type Rejection = pkg::Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(PathParam(value)),
            Err(rejection) => Err(pkg::Error::invalid_argument(rejection.body_text())),
        }
    }
}

/// The answer for paths no route serves.
pub async fn not_found(method: Method, uri: Uri) -> pkg::Error {
    pkg::Error::not_found(format!("no route for {method} {}", uri.path()))
}

/// The answer for a known path asked with a method it does not serve; axum adds `Allow`.
pub async fn method_not_allowed(method: Method, uri: Uri) -> Response {
    let body = pkg::error::ErrorBody {
        error: pkg::error::ErrorDetail {
            code: "METHOD_NOT_ALLOWED".to_owned(),
            message: format!("{} does not serve {method}", uri.path()),
        },
        request_id: None,
    };
    (StatusCode::METHOD_NOT_ALLOWED, axum::Json(body)).into_response()
}
