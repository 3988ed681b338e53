//! error: one type, mapped to gRPC statuses and HTTP JSON responses.

use std::time::Duration;

use axum::response::IntoResponse;
use http::StatusCode;
use http_body_util::BodyExt;
use pkg::error::ErrorBody;
use pkg::{Error, ErrorKind};
use tonic::Code;

/// A way to make the error, its gRPC code, HTTP status and JSON `error.code`.
type Row = (fn() -> Error, Code, u16, &'static str);

const TABLE: &[Row] = &[
    (|| Error::invalid_argument("email is not valid"), Code::InvalidArgument, 400, "INVALID_ARGUMENT"),
    (|| Error::not_found("user 42"), Code::NotFound, 404, "NOT_FOUND"),
    (|| Error::already_exists("user alice"), Code::AlreadyExists, 409, "ALREADY_EXISTS"),
    (|| Error::unauthenticated("no token"), Code::Unauthenticated, 401, "UNAUTHENTICATED"),
    (|| Error::permission_denied("not your order"), Code::PermissionDenied, 403, "PERMISSION_DENIED"),
    (|| Error::resource_exhausted("slow down", None), Code::ResourceExhausted, 429, "RESOURCE_EXHAUSTED"),
    (|| Error::unavailable("user-service is down"), Code::Unavailable, 503, "UNAVAILABLE"),
    (|| Error::deadline_exceeded("took too long"), Code::DeadlineExceeded, 504, "DEADLINE_EXCEEDED"),
    (|| Error::internal("connection reset by the database"), Code::Internal, 500, "INTERNAL"),
];

async fn body_of(error: Error) -> (StatusCode, http::HeaderMap, ErrorBody) {
    let response = error.into_response();
    let (parts, body) = response.into_parts();
    assert_eq!(parts.headers[http::header::CONTENT_TYPE], "application/json");
    let bytes = body.collect().await.unwrap().to_bytes();
    (parts.status, parts.headers, serde_json::from_slice(&bytes).unwrap())
}

#[tokio::test]
async fn every_kind_maps_to_its_grpc_code_and_http_status_with_a_json_body() {
    for (make, code, http_status, name) in TABLE {
        let error = make();
        assert_eq!(error.kind().code(), *name);

        let status = tonic::Status::from(make());
        assert_eq!(status.code(), *code, "{name}");

        let (status, _, body) = body_of(make()).await;
        assert_eq!(status.as_u16(), *http_status, "{name}");
        assert_eq!(body.error.code, *name);
        let expected_message = if *name == "INTERNAL" { "internal error" } else { error.message() };
        assert_eq!(body.error.message, expected_message);
        assert_eq!(body.request_id, None, "no request span, no request id");
    }
}

#[tokio::test]
async fn the_json_body_has_the_documented_shape() {
    let response = Error::not_found("user 42").into_response();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(json, serde_json::json!({"error": {"code": "NOT_FOUND", "message": "user 42"}}));
}

#[tokio::test]
async fn too_many_requests_says_when_to_come_back() {
    let (status, headers, _) = body_of(Error::resource_exhausted("slow down", Some(Duration::from_millis(2500)))).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(headers[http::header::RETRY_AFTER], "3", "rounded up to whole seconds");

    let status = tonic::Status::from(Error::resource_exhausted("slow down", Some(Duration::from_secs(2))));
    let back = Error::from(status);
    assert_eq!(back.kind(), ErrorKind::ResourceExhausted { retry_after: Some(Duration::from_secs(2)) });
}

#[test]
fn statuses_from_upstreams_become_errors() {
    let cases = [
        (Code::NotFound, ErrorKind::NotFound),
        (Code::InvalidArgument, ErrorKind::InvalidArgument),
        (Code::FailedPrecondition, ErrorKind::InvalidArgument),
        (Code::OutOfRange, ErrorKind::InvalidArgument),
        (Code::Aborted, ErrorKind::AlreadyExists),
        (Code::Unavailable, ErrorKind::Unavailable),
        (Code::Cancelled, ErrorKind::Unavailable),
        (Code::DeadlineExceeded, ErrorKind::DeadlineExceeded),
        (Code::Unknown, ErrorKind::Internal),
        (Code::Unimplemented, ErrorKind::Internal),
        (Code::ResourceExhausted, ErrorKind::ResourceExhausted { retry_after: None }),
    ];
    for (code, kind) in cases {
        let error = Error::from(tonic::Status::new(code, "upstream says no"));
        assert_eq!(error.kind(), kind, "{code:?}");
        assert_eq!(error.message(), "upstream says no");
        assert!(std::error::Error::source(&error).is_some(), "the status is kept as the source");
    }
}

#[derive(Debug, thiserror::Error)]
#[error("relation \"users\" does not exist")]
struct DatabaseError;

#[tokio::test]
async fn internal_errors_are_logged_with_their_cause_and_hidden_from_clients() {
    let telemetry = crate::telemetry("user-service");
    let router = axum::Router::new()
        .route(
            "/users/{id}",
            axum::routing::get(|| async {
                Err::<(), _>(Error::internal("loading user 42").with_source(DatabaseError))
            }),
        )
        .layer(pkg::trace::TraceLayer::new());
    let addr = crate::serve_http(router).await;
    let (status, _, body) = crate::http_get(addr, "/users/42").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    let body: ErrorBody = serde_json::from_str(&body).unwrap();
    assert_eq!(body.error.message, "internal error");
    assert!(!body.error.message.contains("relation"));

    let logged = telemetry.logs.with_message("internal error");
    assert_eq!(logged.len(), 1, "{:?}", telemetry.logs.lines());
    let line = &logged[0];
    assert_eq!(line["level"], "ERROR");
    assert_eq!(line["fields"]["error.message"], "loading user 42");
    assert_eq!(line["fields"]["error.cause"], "relation \"users\" does not exist");
    // The client's request id finds the log line.
    assert_eq!(Some(line["trace_id"].as_str().unwrap()), body.request_id.as_deref());
}

#[test]
fn grpc_internal_errors_hide_their_message() {
    let status = tonic::Status::from(Error::internal("password=hunter2 rejected"));
    assert_eq!(status.code(), Code::Internal);
    assert_eq!(status.message(), "internal error");
}
