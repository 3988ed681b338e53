//! A stopped upstream: fast 503s, the circuit opens, and the gateway recovers by itself.

use std::time::{Duration, Instant};

use crate::support::{Options, TestGateway};

#[tokio::test]
async fn a_stopped_user_service_gives_fast_503s_and_the_gateway_recovers_without_restart() {
    let mut gateway =
        TestGateway::with(Options { breaker_failures: "3", breaker_cool_down: "800ms", ..Options::default() }).await;
    let created = gateway.post("/v1/users", "alice", serde_json::json!({"email": "ada@example.com"})).await;
    assert_eq!(created.status, 201, "{}", created.text);
    let path = format!("/v1/users/{}", created.body["id"].as_str().unwrap());
    assert_eq!(gateway.get(&path, Some("alice")).await.status, 200);

    gateway.users.stop().await;
    // Enough requests to open the circuit; every one answered 503 within a second.
    for _ in 0..5 {
        let start = Instant::now();
        let reply = gateway.get(&path, Some("alice")).await;
        let took = start.elapsed();
        assert_eq!(reply.status, 503, "{}", reply.text);
        assert_eq!(reply.body["error"]["code"], "UNAVAILABLE");
        assert!(took < Duration::from_secs(1), "took {took:?}");
    }
    // The order-service is unaffected by the user-service's breaker.
    assert_eq!(gateway.get("/v1/orders/6f1c2b9e-3d4a-4e8b-9f10-2a7c5d6e8b01", Some("alice")).await.status, 404);

    gateway.users.restart().await;
    // The circuit is open: although the user-service is back, the gateway does not call it
    // until the cool-down has passed.
    let calls = gateway.users.seen.calls("/user.v1.UserService/GetUser");
    let reply = gateway.get(&path, Some("alice")).await;
    assert_eq!(reply.status, 503, "{}", reply.text);
    assert_eq!(gateway.users.seen.calls("/user.v1.UserService/GetUser"), calls);

    // Past the cool-down the breaker half-opens, the probe call succeeds, and it closes.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let reply = gateway.get(&path, Some("alice")).await;
        if reply.status == 200 {
            break;
        }
        assert_eq!(reply.status, 503, "{}", reply.text);
        assert!(Instant::now() < deadline, "the gateway did not recover: {}", reply.text);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(gateway.get(&path, Some("alice")).await.status, 200);
}

#[tokio::test]
async fn creates_are_not_retried() {
    let mut gateway = TestGateway::start().await;
    gateway.users.stop().await;
    let reply = gateway.post("/v1/users", "alice", serde_json::json!({"email": "ada@example.com"})).await;
    assert_eq!(reply.status, 503, "{}", reply.text);
    gateway.users.restart().await;
    assert_eq!(gateway.users.seen.calls("/user.v1.UserService/CreateUser"), 0);
}
