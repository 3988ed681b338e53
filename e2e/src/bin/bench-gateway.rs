//! The gateway load check: `GET /v1/users/{id}` through api-gateway next to the same call made
//! straight to user-service over gRPC, under the same closed-loop load, on release builds.
//!
//! Prints one JSON object; `scripts/bench/gateway-load` turns it into docs/benchmarks.md's table.
//! Usage: bench-gateway [CONCURRENCY] [SECONDS]

use std::time::Duration;

use platform_e2e::proto::user::v1::GetUserRequest;
use platform_e2e::proto::user::v1::user_service_client::UserServiceClient;
use platform_e2e::{Platform, PlatformOptions, load, token};
use serde_json::json;

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let mut args = std::env::args().skip(1);
    let concurrency: usize = args.next().map_or(16, |arg| arg.parse().expect("CONCURRENCY is a number"));
    let seconds: u64 = args.next().map_or(10, |arg| arg.parse().expect("SECONDS is a number"));
    let duration = Duration::from_secs(seconds);

    // The limiter would turn the load into 429s; the check measures the path, not the limit.
    let options = PlatformOptions {
        rate_limit_rps: 1_000_000,
        rate_limit_burst: 1_000_000,
        nats: false,
        release: true,
        gateway_port: None,
    };
    let platform = tokio::task::spawn_blocking(|| Platform::start(options)).await.expect("the platform starts");
    let http = reqwest::Client::new();
    let bearer = format!("Bearer {}", token::mint(&platform.jwt_secret, "bench", 3600));
    let created: serde_json::Value = http
        .post(format!("{}/v1/users", platform.gateway_url))
        .header("authorization", &bearer)
        .json(&json!({"email": "load@example.com", "display_name": "Load"}))
        .send()
        .await
        .expect("create a user")
        .json()
        .await
        .expect("a user");
    let id = created["id"].as_str().expect("a user id").to_owned();

    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", platform.user_grpc))
        .expect("an endpoint")
        // As pkg's client does: without it, small gRPC writes wait on delayed ACKs (~40 ms).
        .tcp_nodelay(true)
        .connect()
        .await
        .expect("user-service answers");
    let grpc = UserServiceClient::new(channel);
    let direct = {
        let (grpc, id) = (grpc.clone(), id.clone());
        move || {
            let (mut grpc, id) = (grpc.clone(), id.clone());
            async move { grpc.get_user(GetUserRequest { id }).await.is_ok() }
        }
    };
    let url = format!("{}/v1/users/{id}", platform.gateway_url);
    let through_gateway = {
        let (http, url, bearer) = (http.clone(), url.clone(), bearer.clone());
        move || {
            let (http, url, bearer) = (http.clone(), url.clone(), bearer.clone());
            async move {
                match http.get(&url).header("authorization", &bearer).send().await {
                    Ok(response) => response.status().is_success() && response.bytes().await.is_ok(),
                    Err(_) => false,
                }
            }
        }
    };

    // A short warm-up of each path (connections, caches), then the measured runs.
    load::run(concurrency, Duration::from_secs(2), direct.clone()).await;
    load::run(concurrency, Duration::from_secs(2), through_gateway.clone()).await;
    let direct = load::run(concurrency, duration, direct).await;
    let gateway = load::run(concurrency, duration, through_gateway).await;
    let report = json!({
        "concurrency": concurrency,
        "seconds": seconds,
        "direct_grpc": direct,
        "gateway_http": gateway,
    });
    println!("{}", serde_json::to_string_pretty(&report).expect("json"));
    drop(platform);
}
