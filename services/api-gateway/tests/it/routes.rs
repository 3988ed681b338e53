//! The six REST routes end to end, and the behaviour every route shares.

use serde_json::json;

use crate::support::{TestGateway, unique};

async fn create_user(gateway: &TestGateway) -> serde_json::Value {
    let email = format!("ada{}@example.com", unique());
    let reply = gateway.post("/v1/users", "alice", json!({"email": email, "display_name": "Ada"})).await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    reply.body
}

fn order_body(user_id: &str) -> serde_json::Value {
    json!({
        "user_id": user_id,
        "items": [
            {"sku": "TSHIRT-RED-M", "quantity": 2, "unit_price": {"amount_minor": 1999, "currency_code": "EUR"}},
            {"sku": "MUG", "quantity": 1, "unit_price": {"amount_minor": 899, "currency_code": "EUR"}}
        ]
    })
}

#[tokio::test]
async fn users_are_created_read_and_listed() {
    let gateway = TestGateway::start().await;
    let user = create_user(&gateway).await;
    let id = user["id"].as_str().unwrap();
    assert_eq!(user["display_name"], "Ada");
    assert!(user["create_time"].as_str().unwrap().ends_with('Z'));

    let reply = gateway.get(&format!("/v1/users/{id}"), Some("alice")).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body, user);

    create_user(&gateway).await;
    create_user(&gateway).await;
    let first = gateway.get("/v1/users?page_size=2", Some("alice")).await;
    assert_eq!(first.status, 200, "{}", first.text);
    assert_eq!(first.body["users"].as_array().unwrap().len(), 2);
    assert_eq!(first.body["users"][0], user);
    let token = first.body["next_page_token"].as_str().unwrap();
    let second = gateway.get(&format!("/v1/users?page_size=2&page_token={token}"), Some("alice")).await;
    assert_eq!(second.body["users"].as_array().unwrap().len(), 1);
    assert_eq!(second.body["next_page_token"], serde_json::Value::Null);
}

#[tokio::test]
async fn a_created_user_has_a_location() {
    let gateway = TestGateway::start().await;
    let reply = gateway.post("/v1/users", "alice", json!({"email": "loc@example.com"})).await;
    assert_eq!(reply.status, 201);
    let id = reply.body["id"].as_str().unwrap();
    assert_eq!(reply.headers["location"], format!("/v1/users/{id}").as_str());
    assert_eq!(reply.body["display_name"], serde_json::Value::Null);
}

#[tokio::test]
async fn orders_are_placed_read_and_listed_per_user() {
    let gateway = TestGateway::start().await;
    let user = create_user(&gateway).await;
    let user_id = user["id"].as_str().unwrap();

    let placed = gateway.post("/v1/orders", "alice", order_body(user_id)).await;
    assert_eq!(placed.status, 201, "{}", placed.text);
    let order = placed.body;
    assert_eq!(order["status"], "pending");
    assert_eq!(order["total"], json!({"amount_minor": 4897, "currency_code": "EUR"}));
    assert_eq!(order["items"][0]["unit_price"], json!({"amount_minor": 1999, "currency_code": "EUR"}));
    let order_id = order["id"].as_str().unwrap();
    assert_eq!(placed.headers["location"], format!("/v1/orders/{order_id}").as_str());

    let read = gateway.get(&format!("/v1/orders/{order_id}"), Some("alice")).await;
    assert_eq!(read.status, 200, "{}", read.text);
    assert_eq!(read.body, order);

    let listed = gateway.get(&format!("/v1/users/{user_id}/orders"), Some("alice")).await;
    assert_eq!(listed.status, 200, "{}", listed.text);
    assert_eq!(listed.body, json!({"orders": [order], "next_page_token": null}));
}

#[tokio::test]
async fn upstream_answers_map_to_http_statuses_with_json_errors() {
    let gateway = TestGateway::start().await;
    let missing = gateway.get("/v1/users/6f1c2b9e-3d4a-4e8b-9f10-2a7c5d6e8b01", Some("alice")).await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.body["error"]["code"], "NOT_FOUND");
    assert!(missing.body["error"]["message"].as_str().unwrap().contains("no user has id"));

    create_user(&gateway).await;
    let body = json!({"email": "dup@example.com"});
    assert_eq!(gateway.post("/v1/users", "alice", body.clone()).await.status, 201);
    let duplicate = gateway.post("/v1/users", "alice", body).await;
    assert_eq!(duplicate.status, 409);
    assert_eq!(duplicate.body["error"]["code"], "ALREADY_EXISTS");
}

#[tokio::test]
async fn invalid_requests_are_answered_400_without_an_upstream_call() {
    let gateway = TestGateway::start().await;
    let cases = [
        gateway.get("/v1/users/not-a-uuid", Some("alice")).await,
        gateway.get("/v1/orders/42", Some("alice")).await,
        gateway.get("/v1/users?page_size=-1", Some("alice")).await,
        gateway.get("/v1/users?colour=blue", Some("alice")).await,
        gateway.post("/v1/users", "alice", json!({"email": ""})).await,
        gateway.post("/v1/users", "alice", json!({"email": "a@b.c", "admin": true})).await,
        gateway.post("/v1/orders", "alice", json!({"user_id": "x", "items": []})).await,
        gateway
            .request(
                http::Method::POST,
                "/v1/users",
                &[
                    ("authorization", &format!("Bearer {}", TestGateway::token("alice"))),
                    ("content-type", "application/json"),
                ],
                None,
            )
            .await,
    ];
    for reply in cases {
        assert_eq!(reply.status, 400, "{}", reply.text);
        assert_eq!(reply.body["error"]["code"], "INVALID_ARGUMENT", "{}", reply.text);
    }
    assert_eq!(gateway.users.seen.api_calls() + gateway.orders.seen.api_calls(), 0);
}

#[tokio::test]
async fn request_ids_are_echoed_and_put_in_error_bodies() {
    let gateway = TestGateway::start().await;
    let token = format!("Bearer {}", TestGateway::token("alice"));
    let reply = gateway
        .request(
            http::Method::GET,
            "/v1/users/6f1c2b9e-3d4a-4e8b-9f10-2a7c5d6e8b01",
            &[("authorization", &token), ("x-request-id", "req-abc-123")],
            None,
        )
        .await;
    assert_eq!(reply.headers["x-request-id"], "req-abc-123");
    assert_eq!(reply.body["request_id"], "req-abc-123");

    let generated = gateway.get("/v1/users", Some("alice")).await;
    let id = generated.headers["x-request-id"].to_str().unwrap();
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
}

#[tokio::test]
async fn the_trace_context_is_propagated_to_the_upstream() {
    let gateway = TestGateway::start().await;
    let token = format!("Bearer {}", TestGateway::token("alice"));
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let traceparent = format!("00-{trace_id}-00f067aa0ba902b7-01");
    gateway
        .request(http::Method::GET, "/v1/users", &[("authorization", &token), ("traceparent", &traceparent)], None)
        .await;
    let sent = gateway.users.seen.traceparent("/user.v1.UserService/ListUsers").expect("a traceparent was sent");
    assert!(sent.starts_with(&format!("00-{trace_id}-")), "{sent}");
    // The gateway's own span is the parent, not the caller's.
    assert!(!sent.contains("00f067aa0ba902b7"), "{sent}");
}

#[tokio::test]
async fn unknown_routes_and_methods_are_json_errors() {
    let gateway = TestGateway::start().await;
    let reply = gateway.get("/v2/nothing", None).await;
    assert_eq!(reply.status, 404);
    assert_eq!(reply.body["error"]["code"], "NOT_FOUND");
    assert!(reply.headers.contains_key("x-request-id"));

    let reply = gateway.request(http::Method::DELETE, "/v1/users", &[], None).await;
    assert_eq!(reply.status, 405, "{}", reply.text);
    assert_eq!(reply.body["error"]["code"], "METHOD_NOT_ALLOWED");
    let allow = reply.headers["allow"].to_str().unwrap();
    assert!(allow.contains("GET") && allow.contains("POST"), "{allow}");
}

#[tokio::test]
async fn metrics_count_requests_by_route_template_and_status() {
    let gateway = TestGateway::start().await;
    let user = create_user(&gateway).await;
    let id = user["id"].as_str().unwrap();
    assert_eq!(gateway.get(&format!("/v1/users/{id}"), Some("alice")).await.status, 200);
    assert_eq!(gateway.get("/v1/users/6f1c2b9e-3d4a-4e8b-9f10-2a7c5d6e8b01", Some("alice")).await.status, 404);

    let metrics = gateway.get("/metrics", None).await;
    assert_eq!(metrics.status, 200);
    let has = |route: &str, status: &str| {
        metrics.text.lines().any(|line| {
            line.starts_with("requests_total{")
                && line.contains(&format!("route=\"{route}\""))
                && line.contains(&format!("status=\"{status}\""))
        })
    };
    assert!(has("/v1/users/{id}", "200"), "{}", metrics.text);
    assert!(has("/v1/users/{id}", "404"), "{}", metrics.text);
    assert!(has("/v1/users", "201"), "{}", metrics.text);
    assert!(!metrics.text.contains(id), "raw ids must not become labels");
}
