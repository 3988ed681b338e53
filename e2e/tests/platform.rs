//! The whole platform for real: three services as processes, PostgreSQL databases created and
//! migrated by `plat migrate`, NATS, driven through the gateway over HTTP.

use std::time::{Duration, Instant};

use platform_e2e::nats::Subscription;
use platform_e2e::proto::order::v1::OrderCreatedEvent;
use platform_e2e::{Platform, PlatformOptions, token};
use prost::Message;
use reqwest::StatusCode;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_flow_through_the_gateway_and_survive_user_service_restarts() {
    let mut platform = tokio::task::spawn_blocking(|| Platform::start(PlatformOptions::default())).await.unwrap();
    let http = reqwest::Client::new();
    let (gateway, secret) = (platform.gateway_url.clone(), platform.jwt_secret.clone());
    let url = |path: &str| format!("{gateway}{path}");
    let bearer = |subject: &str| format!("Bearer {}", token::mint(&secret, subject, 600));
    let mut events = Subscription::subscribe(platform.nats.expect("NATS runs"), "orders.created").await.unwrap();

    // A user, then an order for them.
    let alice = bearer("alice");
    let response = http
        .post(url("/v1/users"))
        .header("authorization", &alice)
        .json(&json!({"email": "ada@example.com", "display_name": "Ada"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED, "{}\n{}", response.text().await.unwrap(), platform.logs());
    let user: Value = response.json().await.unwrap();
    let user_id = user["id"].as_str().expect("a user id").to_owned();

    let order = json!({
        "user_id": user_id,
        "items": [
            {"sku": "TSHIRT-RED-M", "quantity": 2, "unit_price": {"amount_minor": 1999, "currency_code": "EUR"}},
            {"sku": "MUG", "quantity": 1, "unit_price": {"amount_minor": 850, "currency_code": "EUR"}}
        ]
    });
    let response = http.post(url("/v1/orders")).header("authorization", &alice).json(&order).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::CREATED, "{}\n{}", response.text().await.unwrap(), platform.logs());
    let created: Value = response.json().await.unwrap();
    let order_id = created["id"].as_str().expect("an order id").to_owned();
    assert_eq!(created["total"], json!({"amount_minor": 2 * 1999 + 850, "currency_code": "EUR"}));

    // The user's orders list it.
    let response =
        http.get(url(&format!("/v1/users/{user_id}/orders"))).header("authorization", &alice).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let orders: Value = response.json().await.unwrap();
    let ids: Vec<&str> = orders["orders"].as_array().unwrap().iter().filter_map(|order| order["id"].as_str()).collect();
    assert_eq!(ids, [order_id.as_str()]);

    // order-service announced it on NATS.
    let payload = events.next(Duration::from_secs(10)).await.expect("an OrderCreated event within 10 s");
    let event = OrderCreatedEvent::decode(payload.as_slice()).expect("the payload is an OrderCreatedEvent");
    let announced = event.order.expect("the event carries the order");
    assert_eq!(announced.id, order_id);
    assert_eq!(announced.user_id, user_id);

    // No token: 401 with a JSON error.
    let response = http.get(url(&format!("/v1/users/{user_id}"))).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["code"], "UNAUTHENTICATED");

    // Past the burst (10, refilled at 5/s), one client gets 429 with Retry-After; another does not.
    let bob = bearer("bob");
    let mut limited = None;
    for _ in 0..30 {
        let response =
            http.get(url(&format!("/v1/users/{user_id}"))).header("authorization", &bob).send().await.unwrap();
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            limited = Some(response);
            break;
        }
    }
    let limited = limited.expect("30 requests at once exceed a burst of 10");
    let retry_after: u64 = limited.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(retry_after >= 1);
    let response =
        http.get(url(&format!("/v1/users/{user_id}"))).header("authorization", bearer("carol")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK, "limits are per client");

    // user-service goes away: the gateway answers 503 within a second instead of hanging.
    tokio::task::block_in_place(|| platform.stop_service("user-service"));
    for attempt in 0..3 {
        let started = Instant::now();
        let response = http
            .get(url(&format!("/v1/users/{user_id}")))
            .header("authorization", bearer(&format!("dave{attempt}")))
            .send()
            .await
            .unwrap();
        let took = started.elapsed();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE, "attempt {attempt}");
        assert!(took < Duration::from_secs(1), "attempt {attempt} took {took:?}");
    }

    // It comes back: the gateway recovers by itself.
    tokio::task::block_in_place(|| platform.start_service("user-service"));
    let started = Instant::now();
    loop {
        let response = http
            .get(url(&format!("/v1/users/{user_id}")))
            .header("authorization", bearer("erin"))
            .send()
            .await
            .unwrap();
        if response.status() == StatusCode::OK {
            let again: Value = response.json().await.unwrap();
            assert_eq!(again["email"], "ada@example.com");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "no recovery in 20 s\n{}", platform.logs());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
