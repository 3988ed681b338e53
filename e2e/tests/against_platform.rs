//! The platform's end-to-end tests against a platform that is already running: what `plat test
//! --e2e` runs (workspace.toml's `[workspace.e2e]`), handed the gateway's address and its
//! `JWT_SECRET` by plat (docs/cli.md, `plat test --e2e`).
//!
//! Ignored in a plain `cargo test`/`scripts/test`: without a running platform there is nothing
//! to test, and skipping must show as skipped, never as passed. `plat test --e2e` runs it with
//! `--ignored`; run by hand without plat's variables it fails, saying which is missing.

use reqwest::StatusCode;
use serde_json::{Value, json};

use platform_e2e::token;

/// A variable plat hands the e2e command.
fn handed(name: &str) -> String {
    std::env::var(name).ok().filter(|value| !value.is_empty()).unwrap_or_else(|| {
        panic!("{name} is not set: run this through `plat test --e2e` against a running platform (`plat up` first)")
    })
}

#[tokio::test]
#[ignore = "runs against a running platform: `plat up && plat test --e2e`"]
async fn a_user_and_their_order_through_the_gateway() {
    let gateway = handed("PLAT_API_GATEWAY_HTTP_URL");
    let bearer = format!("Bearer {}", token::mint(&handed("PLAT_API_GATEWAY_ENV_JWT_SECRET"), "e2e", 600));
    let http = reqwest::Client::new();
    // Unique per run: the platform keeps its data between runs.
    let email =
        format!("e2e-{}-{}@example.com", std::process::id(), std::time::UNIX_EPOCH.elapsed().unwrap().as_nanos());

    let response = http
        .post(format!("{gateway}/v1/users"))
        .header("authorization", &bearer)
        .json(&json!({"email": email, "display_name": "End To End"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED, "create user: {}", response.text().await.unwrap());
    let user: Value = response.json().await.unwrap();
    let user_id = user["id"].as_str().expect("a user id");

    let order = json!({
        "user_id": user_id,
        "items": [{"sku": "E2E-BOOK", "quantity": 2, "unit_price": {"amount_minor": 1250, "currency_code": "EUR"}}]
    });
    let response =
        http.post(format!("{gateway}/v1/orders")).header("authorization", &bearer).json(&order).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::CREATED, "create order: {}", response.text().await.unwrap());
    let created: Value = response.json().await.unwrap();
    let order_id = created["id"].as_str().expect("an order id");

    let response =
        http.get(format!("{gateway}/v1/orders/{order_id}")).header("authorization", &bearer).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK, "get order: {}", response.text().await.unwrap());
    let fetched: Value = response.json().await.unwrap();
    assert_eq!(fetched["id"], order_id);
    assert_eq!(fetched["user_id"], user_id);
    assert_eq!(fetched["total"], json!({"amount_minor": 2500, "currency_code": "EUR"}));
}
