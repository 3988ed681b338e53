//! Bearer-token authentication at the edge.

use std::time::{Duration, SystemTime};

use api_gateway::config::JwtSecret;
use api_gateway::middleware::auth::Verifier;

use crate::support::TestGateway;

#[tokio::test]
async fn protected_routes_answer_401_json_without_calling_upstreams() {
    let gateway = TestGateway::start().await;
    let other_key = Verifier::new(JwtSecret::new("some-other-secret-of-32-bytes-or-more").unwrap());
    let expired = Verifier::new(JwtSecret::new(crate::support::SECRET).unwrap()).mint(
        "alice",
        Duration::from_secs(60),
        SystemTime::now() - Duration::from_secs(3600),
    );
    let forged = other_key.mint("alice", Duration::from_secs(60), SystemTime::now());
    let headers: [Option<String>; 5] = [
        None,
        Some("Token abc".into()),
        Some("Bearer abc.def".into()),
        Some(format!("Bearer {forged}")),
        Some(format!("Bearer {expired}")),
    ];
    for path in [
        "/v1/users",
        "/v1/users/6f1c2b9e-3d4a-4e8b-9f10-2a7c5d6e8b01",
        "/v1/orders/6f1c2b9e-3d4a-4e8b-9f10-2a7c5d6e8b01",
    ] {
        for header in &headers {
            let list: Vec<(&str, &str)> = header.iter().map(|h| ("authorization", h.as_str())).collect();
            let reply = gateway.request(http::Method::GET, path, &list, None).await;
            assert_eq!(reply.status, 401, "{path} {header:?}: {}", reply.text);
            assert_eq!(reply.body["error"]["code"], "UNAUTHENTICATED");
            assert!(reply.body["request_id"].is_string());
            assert!(reply.headers.contains_key("www-authenticate"));
        }
    }
    let reply = gateway.request(http::Method::POST, "/v1/orders", &[], Some(serde_json::json!({}))).await;
    assert_eq!(reply.status, 401);
    assert_eq!(gateway.users.seen.api_calls() + gateway.orders.seen.api_calls(), 0);
}

#[tokio::test]
async fn health_metrics_and_openapi_need_no_token() {
    let gateway = TestGateway::start().await;
    for path in ["/healthz", "/readyz", "/metrics", "/openapi.json"] {
        let reply = gateway.get(path, None).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.text);
    }
}
