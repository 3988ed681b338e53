//! metrics: requests through the layer show up on /metrics, by route template and status.

use pkg::metrics::Metrics;
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};

/// The value of the sample whose name is `name` and whose labels include every `labels` pair.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().filter(|line| !line.starts_with('#')).find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        let (series_name, rest) = series.split_once('{').unwrap_or((series, "}"));
        if series_name != name {
            return None;
        }
        let all = labels.iter().all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")));
        all.then(|| value.parse().unwrap())
    })
}

#[tokio::test]
async fn http_requests_are_counted_by_route_template_and_status() {
    let metrics = Metrics::new("api-gateway");
    let router = axum::Router::new()
        .route("/users/{id}", axum::routing::get(|| async { "user" }))
        .route("/orders", axum::routing::post(|| async { "created" }))
        // axum layers only what is added before them: an explicit fallback gets counted too.
        .fallback(|| async { http::StatusCode::NOT_FOUND })
        .layer(metrics.layer())
        .merge(metrics.router());
    let addr = crate::serve_http(router).await;

    for path in ["/users/1", "/users/2", "/users/3", "/nothing/here"] {
        crate::http_get(addr, path).await;
    }
    let (status, headers, text) = crate::http_get(addr, "/metrics").await;
    assert_eq!(status, 200);
    assert!(headers[http::header::CONTENT_TYPE].to_str().unwrap().starts_with("text/plain; version=0.0.4"));

    let users = [
        ("service", "api-gateway"),
        ("protocol", "http"),
        ("method", "GET"),
        ("route", "/users/{id}"),
        ("status", "200"),
    ];
    assert_eq!(sample(&text, "requests_total", &users), Some(3.0), "{text}");
    assert_eq!(sample(&text, "request_duration_seconds_count", &users), Some(3.0), "{text}");
    assert!(sample(&text, "request_duration_seconds_sum", &users).is_some());
    let mut bucket = users.to_vec();
    bucket.push(("le", "+Inf"));
    assert_eq!(sample(&text, "request_duration_seconds_bucket", &bucket), Some(3.0));
    assert!(text.contains("# TYPE request_duration_seconds histogram"));

    let unmatched = [("route", "unmatched"), ("status", "404")];
    assert_eq!(sample(&text, "requests_total", &unmatched), Some(1.0), "{text}");
    assert!(!text.contains("/users/1"), "raw paths never become labels");
    assert!(!text.contains("/nothing/here"));
}

#[tokio::test]
async fn grpc_calls_are_counted_by_method_and_grpc_status() {
    let metrics = Metrics::new("user-service");
    let (health, service) = pkg::health::Health::new("user.v1.UserService").await;
    health.set_serving().await;
    let (listener, addr) = crate::loopback().await;
    let layer = metrics.layer();
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .layer(layer)
            .add_service(service)
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
            .await
            .unwrap()
    });
    let client = crate::trace::health_client(addr);
    crate::trace::check(&client, "user.v1.UserService").await.unwrap();
    crate::trace::check(&client, "user.v1.UserService").await.unwrap();
    let missing = crate::trace::check(&client, "no.such.Service").await.unwrap_err();
    assert_eq!(missing.code(), tonic::Code::NotFound);

    // A method the server does not have: the path is the client's to choose, so it is folded.
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}")).unwrap().connect_lazy();
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let codec = tonic_prost::ProstCodec::<HealthCheckRequest, HealthCheckResponse>::default();
    let path = http::uri::PathAndQuery::from_static("/evil.v1.Random/abc123");
    let unknown = grpc.unary(tonic::Request::new(HealthCheckRequest::default()), path, codec).await.unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::Unimplemented);

    // Served on its own port, as a gRPC-only service would.
    let (metrics_listener, metrics_addr) = crate::loopback().await;
    tokio::spawn(pkg::metrics::serve(metrics_listener, metrics.clone(), std::future::pending()));
    let (_, _, text) = crate::http_get(metrics_addr, "/metrics").await;

    let check = [("service", "user-service"), ("protocol", "grpc"), ("route", "/grpc.health.v1.Health/Check")];
    let ok = [check.as_slice(), &[("status", "OK")]].concat();
    let not_found = [check.as_slice(), &[("status", "NOT_FOUND")]].concat();
    assert_eq!(sample(&text, "requests_total", &ok), Some(2.0), "{text}");
    assert_eq!(sample(&text, "requests_total", &not_found), Some(1.0), "{text}");
    assert_eq!(sample(&text, "request_duration_seconds_count", &ok), Some(2.0));
    assert_eq!(
        sample(&text, "requests_total", &[("route", "unmatched"), ("status", "UNIMPLEMENTED")]),
        Some(1.0),
        "{text}"
    );
    assert!(!text.contains("evil"));
}

#[test]
fn services_register_their_own_metrics_with_the_service_label() {
    let metrics = Metrics::new("order-service");
    let orders = prometheus::IntCounter::new("orders_created_total", "Orders created").unwrap();
    metrics.registry().register(Box::new(orders.clone())).unwrap();
    orders.inc();
    assert_eq!(sample(&metrics.render(), "orders_created_total", &[("service", "order-service")]), Some(1.0));
}
