//! `GET /openapi.json`: the OpenAPI 3 description of the REST API, kept in the repository as
//! `openapi.json` and compiled in, so the served document is the reviewed one.

use axum::response::IntoResponse;
use http::header;

/// The document, as committed.
pub const DOCUMENT: &str = include_str!("../../openapi.json");

/// `GET /openapi.json`.
pub async fn document() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], DOCUMENT)
}
