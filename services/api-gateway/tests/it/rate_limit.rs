//! Per-client rate limiting at the edge.

use crate::support::{Options, TestGateway};

#[tokio::test]
async fn a_client_over_its_burst_gets_429_with_retry_after_and_others_do_not() {
    let gateway =
        TestGateway::with(Options { rate_limit_rps: "0.5", rate_limit_burst: "3", ..Options::default() }).await;
    for _ in 0..3 {
        assert_eq!(gateway.get("/v1/users", Some("alice")).await.status, 200);
    }
    let limited = gateway.get("/v1/users", Some("alice")).await;
    assert_eq!(limited.status, 429, "{}", limited.text);
    assert_eq!(limited.headers["retry-after"], "2");
    assert_eq!(limited.body["error"]["code"], "RESOURCE_EXHAUSTED");
    assert!(limited.body["request_id"].is_string());

    // Another subject has its own bucket; anonymous public routes are keyed by address.
    assert_eq!(gateway.get("/v1/users", Some("bob")).await.status, 200);
    assert_eq!(gateway.get("/openapi.json", None).await.status, 200);
    // Probes are never limited.
    for _ in 0..10 {
        assert_eq!(gateway.get("/healthz", None).await.status, 200);
    }
    // The refused request did not reach the upstream.
    assert_eq!(gateway.users.seen.calls("/user.v1.UserService/ListUsers"), 4);
}

#[tokio::test]
async fn anonymous_clients_are_limited_by_address() {
    let gateway =
        TestGateway::with(Options { rate_limit_rps: "0.5", rate_limit_burst: "2", ..Options::default() }).await;
    assert_eq!(gateway.get("/openapi.json", None).await.status, 200);
    assert_eq!(gateway.get("/openapi.json", None).await.status, 200);
    let limited = gateway.get("/openapi.json", None).await;
    assert_eq!(limited.status, 429);
    assert!(limited.headers.contains_key("retry-after"));
}
