//! Request ids: every request gets one, every response and error body carries it.
//!
//! An incoming `X-Request-Id` is kept when it is sane (1 to 128 visible ASCII characters from
//! a conservative set, so it can go into logs and headers unescaped); otherwise a new UUID is
//! generated. The id is:
//!
//! - echoed in the response's `X-Request-Id`;
//! - logged: the request is served [`pkg::trace::with_request_id`], so every line logged while
//!   serving it carries the id, here and in the services it calls (pkg sends it on as
//!   `x-request-id`);
//! - written into JSON error bodies as `request_id`, replacing what [`pkg::Error`] puts there
//!   (the trace id): a client quotes the id it sent or received, and the logs join the two.

use axum::body::Body;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use http::{HeaderName, HeaderValue, header};
use http_body_util::BodyExt as _;
use tracing::Instrument as _;

/// The header carrying the request id, both ways.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Error bodies are small; one larger than this is passed on untouched rather than buffered.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// The id of the request being served, in the request's extensions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestId(pub String);

/// Whether a client-sent id can be used as is.
pub fn is_sane(id: &str) -> bool {
    pkg::trace::is_sane_request_id(id)
}

/// The request's id: the client's when sane, else a new UUID.
pub fn choose(headers: &http::HeaderMap) -> RequestId {
    let mut sent = headers.get_all(&X_REQUEST_ID).iter();
    match (sent.next().and_then(|v| v.to_str().ok()), sent.next()) {
        (Some(id), None) if is_sane(id) => RequestId(id.to_owned()),
        _ => RequestId(uuid::Uuid::new_v4().to_string()),
    }
}

/// Middleware; goes outermost so that every response, errors from other layers included,
/// carries the id.
pub async fn request_id(mut request: Request, next: Next) -> Response {
    let id = choose(request.headers());
    let id_text = id.0.clone();
    request.extensions_mut().insert(id.clone());
    let span = tracing::info_span!("request_id", request_id = %id.0);
    // Served as this request: every line logged carries the id, and pkg passes it on to the
    // services the handlers call, whose lines carry it too.
    let serve = async move {
        tracing::info!(method = %request.method(), path = %request.uri().path(), "request received");
        let response = next.run(request).await;
        finish(response, &id).await
    };
    pkg::trace::with_request_id(&id_text, serve.instrument(span)).await
}

async fn finish(response: Response, id: &RequestId) -> Response {
    let mut response = if is_json_error(&response) { with_request_id_in_body(response, id).await } else { response };
    // The id is sane or a UUID: always a valid header value.
    if let Ok(value) = HeaderValue::from_str(&id.0) {
        response.headers_mut().insert(X_REQUEST_ID.clone(), value);
    }
    response
}

fn is_json_error(response: &Response) -> bool {
    let json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let small = response
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
        .is_none_or(|len| len <= MAX_ERROR_BODY);
    (response.status().is_client_error() || response.status().is_server_error()) && json && small
}

/// Sets `request_id` in an error body shaped like [`pkg::error::ErrorBody`].
async fn with_request_id_in_body(response: Response, id: &RequestId) -> Response {
    let (mut parts, body) = response.into_parts();
    let bytes = match http_body_util::Limited::new(body, MAX_ERROR_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) => {
            // The body failed or was larger than it said; the status still tells the client.
            tracing::warn!(%error, "cannot read an error body to add the request id");
            parts.headers.remove(header::CONTENT_LENGTH);
            return Response::from_parts(parts, Body::empty());
        }
    };
    let bytes = match serde_json::from_slice::<serde_json::Value>(&bytes) {
        Ok(serde_json::Value::Object(mut object)) if object.contains_key("error") => {
            object.insert("request_id".into(), serde_json::Value::String(id.0.clone()));
            serde_json::to_vec(&object).map_or(bytes, Into::into)
        }
        _ => bytes,
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    use axum::Router;
    use axum::response::IntoResponse;
    use axum::routing::get;
    use tower::ServiceExt as _;

    fn app() -> Router {
        Router::new()
            .route("/ok", get(|axum::Extension(RequestId(id)): axum::Extension<RequestId>| async move { id }))
            .route("/fail", get(|| async { pkg::Error::not_found("no such thing").into_response() }))
            .layer(axum::middleware::from_fn(request_id))
    }

    async fn get_with(path: &str, id: Option<&str>) -> (http::HeaderMap, bytes::Bytes) {
        let mut request = http::Request::get(path);
        if let Some(id) = id {
            request = request.header(&X_REQUEST_ID, id);
        }
        let response = app().oneshot(request.body(Body::empty()).unwrap()).await.unwrap();
        let (parts, body) = response.into_parts();
        (parts.headers, body.collect().await.unwrap().to_bytes())
    }

    #[test]
    fn sane_ids_are_short_visible_and_plain() {
        for ok in ["abc", "6f1c2b9e-3d4a-4e8b-9f10-2a7c5d6e8b01", "trace:1/2+3=4_5.6", &"a".repeat(128)] {
            assert!(is_sane(ok), "{ok}");
        }
        for bad in ["", "a b", "a\"b", "<script>", "é", &"a".repeat(129), "a\tb", "{\"x\":1}"] {
            assert!(!is_sane(bad), "{bad}");
        }
    }

    #[tokio::test]
    async fn a_sane_id_is_kept_and_echoed() {
        let (headers, body) = get_with("/ok", Some("client-id-42")).await;
        assert_eq!(headers[&X_REQUEST_ID], "client-id-42");
        assert_eq!(body, "client-id-42");
    }

    #[tokio::test]
    async fn a_missing_or_insane_id_is_replaced_by_a_uuid() {
        for sent in [None, Some("has spaces in it"), Some("")] {
            let (headers, body) = get_with("/ok", sent).await;
            let id = headers[&X_REQUEST_ID].to_str().unwrap();
            assert!(uuid::Uuid::parse_str(id).is_ok(), "{sent:?} -> {id}");
            assert_eq!(body, id);
        }
    }

    #[tokio::test]
    async fn error_bodies_carry_the_request_id() {
        let (headers, body) = get_with("/fail", Some("req-7")).await;
        assert_eq!(headers[&X_REQUEST_ID], "req-7");
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["request_id"], "req-7");
        assert_eq!(body["error"]["code"], "NOT_FOUND");
        assert_eq!(body["error"]["message"], "no such thing");
    }
}
