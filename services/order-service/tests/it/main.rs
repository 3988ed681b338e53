//! Integration tests: the real gRPC server, in-process, over a real PostgreSQL database
//! (`PLAT_TEST_DATABASE_URL`), with a fake user-service and a fake NATS server on loopback,
//! called with the generated client.

mod support;

use std::time::{Duration, Instant};

use order_service::proto::order::v1::order_service_client::OrderServiceClient;
use order_service::proto::order::v1::{
    CreateOrderRequest, GetOrderRequest, ListOrdersByUserRequest, Money, Order, OrderCreatedEvent, OrderItem,
    OrderStatus,
};
use prost::Message as _;
use support::{FakeNats, FakeUserService, Options, Proxy, TestDb, eventually, http_get, start_server, test_db};
use tonic::Code;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

fn item(sku: &str, quantity: i32, amount_minor: i64, currency: &str) -> OrderItem {
    OrderItem { sku: sku.into(), quantity, unit_price: Some(Money { amount_minor, currency_code: currency.into() }) }
}

async fn create(
    client: &mut OrderServiceClient<Channel>,
    user_id: &str,
    items: Vec<OrderItem>,
) -> Result<Order, tonic::Status> {
    let response = client.create_order(CreateOrderRequest { user_id: user_id.into(), items }).await?;
    Ok(response.into_inner().order.expect("CreateOrder returns the order"))
}

fn basket() -> Vec<OrderItem> {
    vec![item("TSHIRT-RED-M", 2, 1999, "EUR"), item("MUG", 1, 850, "EUR")]
}

async fn health(addr: std::net::SocketAddr) -> Option<ServingStatus> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}")).ok()?.connect().await.ok()?;
    let response =
        HealthClient::new(channel).check(HealthCheckRequest { service: "order.v1.OrderService".into() }).await.ok()?;
    ServingStatus::try_from(response.into_inner().status).ok()
}

async fn count(db: &TestDb, table: &str) -> i64 {
    db.client().await.query_one(&format!("SELECT count(*) FROM {table}"), &[]).await.unwrap().get(0)
}

#[tokio::test]
async fn creates_gets_and_lists_orders_newest_first_across_pages() {
    let db = test_db().await;
    let users = FakeUserService::start().await;
    let server = start_server(db.config.clone(), Options::users(&users)).await;
    let mut client = server.client(OrderServiceClient::new).await;
    let (ada, bob) = (users.add_user(), users.add_user());

    let mut created = Vec::new();
    for i in 0..5 {
        created.push(create(&mut client, &ada, vec![item(&format!("SKU-{i}"), i + 1, 250, "JPY")]).await.unwrap());
        create(&mut client, &bob, basket()).await.unwrap();
    }
    let first = &created[0];
    assert_eq!(first.status(), OrderStatus::Pending);
    assert_eq!(first.total, Some(Money { amount_minor: 250, currency_code: "JPY".into() }));
    for order in &created {
        let got = client.get_order(GetOrderRequest { id: order.id.clone() }).await.unwrap().into_inner().order.unwrap();
        assert_eq!(&got, order, "GetOrder returns what CreateOrder returned");
    }

    let mut listed = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let page = client
            .list_orders_by_user(ListOrdersByUserRequest {
                user_id: ada.clone(),
                page_size: 2,
                page_token: token.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        pages += 1;
        listed.extend(page.orders);
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    created.reverse();
    assert_eq!(pages, 3);
    assert_eq!(listed, created, "ada's orders only, newest first, each once");

    // A token is bound to its user_id, and checked.
    let page = client
        .list_orders_by_user(ListOrdersByUserRequest { user_id: ada.clone(), page_size: 1, page_token: String::new() })
        .await
        .unwrap()
        .into_inner();
    let mut tampered: Vec<char> = page.next_page_token.chars().collect();
    tampered[7] = if tampered[7] == 'A' { 'B' } else { 'A' };
    for (user_id, page_token) in [
        (bob.clone(), page.next_page_token.clone()),
        (ada.clone(), tampered.into_iter().collect()),
        (ada.clone(), "garbage".to_owned()),
    ] {
        let status = client
            .list_orders_by_user(ListOrdersByUserRequest { user_id, page_size: 1, page_token })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    }
    // A user with no orders has an empty page.
    let empty = client
        .list_orders_by_user(ListOrdersByUserRequest {
            user_id: uuid::Uuid::now_v7().to_string(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(empty.orders.is_empty() && empty.next_page_token.is_empty());
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_order_of_a_hundred_items_is_stored_whole_and_in_order() {
    let db = test_db().await;
    let users = FakeUserService::start().await;
    let server = start_server(db.config.clone(), Options::users(&users)).await;
    let mut client = server.client(OrderServiceClient::new).await;
    let user = users.add_user();
    let items: Vec<OrderItem> =
        (0..100).map(|i| item(&format!("SKU-{i:03}"), i + 1, 1_000 + i64::from(i), "USD")).collect();
    let order = create(&mut client, &user, items.clone()).await.unwrap();
    let expected: i64 = (0..100).map(|i: i64| (i + 1) * (1_000 + i)).sum();
    assert_eq!(order.total.as_ref().unwrap().amount_minor, expected);
    let got = client.get_order(GetOrderRequest { id: order.id.clone() }).await.unwrap().into_inner().order.unwrap();
    assert_eq!(got.items, items);
    assert_eq!(count(&db, "order_items").await, 100);
}

#[tokio::test]
async fn invalid_orders_are_refused_and_nothing_is_stored() {
    let db = test_db().await;
    let users = FakeUserService::start().await;
    let server = start_server(db.config.clone(), Options::users(&users)).await;
    let mut client = server.client(OrderServiceClient::new).await;
    let user = users.add_user();
    let cases: Vec<(&str, Vec<OrderItem>, Code, &str)> = vec![
        ("not-a-uuid", basket(), Code::InvalidArgument, "user_id"),
        (&user, vec![], Code::InvalidArgument, "items"),
        (&user, vec![item("A", 1, 100, "EUR"), item("B", 1, 100, "USD")], Code::InvalidArgument, "one currency"),
        (&user, vec![item("A", 2, i64::MAX / 2 + 1, "EUR")], Code::InvalidArgument, "overflows"),
        (&user, vec![item("A", 0, 100, "EUR")], Code::InvalidArgument, "quantity"),
        (&user, vec![item("A", 1, -1, "EUR")], Code::InvalidArgument, "amount_minor"),
    ];
    for (user_id, items, code, mentions) in cases {
        let status = create(&mut client, user_id, items).await.unwrap_err();
        assert_eq!(status.code(), code, "{status:?}");
        assert!(status.message().contains(mentions), "{:?} should mention {mentions}", status.message());
    }
    let stranger = uuid::Uuid::now_v7().to_string();
    let status = create(&mut client, &stranger, basket()).await.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    let status = client.get_order(GetOrderRequest { id: stranger }).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert_eq!(count(&db, "orders").await, 0);
}

#[tokio::test]
async fn user_service_down_is_unavailable_fast_and_then_at_once() {
    let db = test_db().await;
    let users = FakeUserService::start().await;
    let server = start_server(db.config.clone(), Options::users(&users)).await;
    let mut client = server.client(OrderServiceClient::new).await;
    let user = users.add_user();
    let placed = create(&mut client, &user, basket()).await.unwrap();

    users.stop().await;
    let mut last = String::new();
    for _ in 0..3 {
        let started = Instant::now();
        let status = create(&mut client, &user, basket()).await.unwrap_err();
        assert_eq!(status.code(), Code::Unavailable, "{status:?}");
        assert!(started.elapsed() < Duration::from_millis(1000), "{:?}", started.elapsed());
        last = status.message().to_owned();
    }
    // Two attempts per call, five failures open the breaker: now no call is even made.
    let started = Instant::now();
    let status = create(&mut client, &user, basket()).await.unwrap_err();
    let elapsed = started.elapsed();
    assert_eq!(status.code(), Code::Unavailable);
    assert!(status.message().contains("circuit open"), "{} (before: {last})", status.message());
    assert!(elapsed < Duration::from_millis(100), "{elapsed:?}");

    // Reads do not need the user-service, and the service stays healthy.
    client.get_order(GetOrderRequest { id: placed.id }).await.unwrap();
    assert_eq!(health(server.addr).await, Some(ServingStatus::Serving));
    assert_eq!(count(&db, "orders").await, 1);
}

#[tokio::test]
async fn a_hanging_user_service_is_cut_off_by_the_timeout() {
    let db = test_db().await;
    let users = FakeUserService::start().await;
    let options = Options { user_service_timeout: Duration::from_millis(200), ..Options::users(&users) };
    let server = start_server(db.config.clone(), options).await;
    let mut client = server.client(OrderServiceClient::new).await;
    let user = users.add_user();
    users.set_delay(Duration::from_secs(30));
    let started = Instant::now();
    let status = create(&mut client, &user, basket()).await.unwrap_err();
    let elapsed = started.elapsed();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    // Two attempts of 200 ms and a backoff of at most 50 ms.
    assert!(elapsed >= Duration::from_millis(400) && elapsed < Duration::from_millis(900), "{elapsed:?}");
}

#[tokio::test]
async fn the_trace_of_a_request_continues_into_the_user_service_call() {
    let db = test_db().await;
    let users = FakeUserService::start().await;
    // Trace context needs the OpenTelemetry layer: the service's own telemetry, logging nowhere.
    let (dispatch, _guard) = pkg::telemetry::TelemetryConfig {
        service_name: "order-service".into(),
        log_filter: "off".into(),
        otlp_endpoint: None,
    }
    .build(std::io::sink)
    .unwrap();
    tracing::dispatcher::set_global_default(dispatch).unwrap();
    let server = start_server(db.config.clone(), Options::users(&users)).await;
    let mut client = server.client(OrderServiceClient::new).await;
    let user = users.add_user();
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let mut request = tonic::Request::new(CreateOrderRequest { user_id: user, items: basket() });
    request.metadata_mut().insert("traceparent", format!("00-{trace_id}-00f067aa0ba902b7-01").parse().unwrap());
    client.create_order(request).await.unwrap();
    let received = users.traceparents();
    let traceparent = received[0].as_deref().expect("the call to user-service carries a traceparent");
    assert!(traceparent.starts_with(&format!("00-{trace_id}-")), "{traceparent}");
    assert!(!traceparent.contains("00f067aa0ba902b7"), "a span of its own, not the caller's: {traceparent}");
}

#[tokio::test]
async fn each_order_is_announced_on_nats_with_its_protobuf_event() {
    let db = test_db().await;
    let users = FakeUserService::start().await;
    let nats = FakeNats::start_on(0).await;
    let options = Options { nats_url: Some(nats.url()), ..Options::users(&users) };
    let server = start_server(db.config.clone(), options).await;
    let mut client = server.client(OrderServiceClient::new).await;
    let user = users.add_user();
    let order = create(&mut client, &user, basket()).await.unwrap();

    eventually(Duration::from_secs(10), "the event on NATS", || async { !nats.messages().is_empty() }).await;
    let (subject, payload) = nats.messages().remove(0);
    assert_eq!(subject, "orders.created");
    let event = OrderCreatedEvent::decode(payload.as_slice()).unwrap();
    assert_eq!(event.order.as_ref(), Some(&order), "the order exactly as CreateOrder returned it");
    let event_id = uuid::Uuid::parse_str(&event.event_id).unwrap();
    assert_ne!(event.event_id, order.id);
    assert_eq!(event.event_id, event_id.to_string(), "canonical lowercase form");
    let (event_time, create_time) = (event.event_time.unwrap(), order.create_time.unwrap());
    assert!((event_time.seconds, event_time.nanos) >= (create_time.seconds, create_time.nanos));

    eventually(Duration::from_secs(5), "an empty outbox", || async { count(&db, "outbox_events").await == 0 }).await;
    let metrics = http_get(server.metrics_addr, "/metrics").await;
    assert!(metrics.contains("order_events_published_total{service=\"order-service\"} 1"), "{metrics}");
    assert!(metrics.contains("route=\"/order.v1.OrderService/CreateOrder\""), "{metrics}");
}

#[tokio::test]
async fn nats_down_neither_fails_nor_slows_create_order_and_events_follow_when_it_is_back() {
    let db = test_db().await;
    let users = FakeUserService::start().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let options = Options { nats_url: Some(format!("nats://127.0.0.1:{port}")), ..Options::users(&users) };
    let server = start_server(db.config.clone(), options).await;
    let mut client = server.client(OrderServiceClient::new).await;
    let user = users.add_user();
    let mut ids = Vec::new();
    for _ in 0..3 {
        let started = Instant::now();
        ids.push(create(&mut client, &user, basket()).await.unwrap().id);
        assert!(started.elapsed() < Duration::from_millis(500), "{:?}", started.elapsed());
    }
    // The relay has made a pass since (without a connection it claims nothing) and counted the
    // events still waiting: its gauge says so.
    eventually(Duration::from_secs(10), "the relay to count 3 pending events", || async {
        let metrics = http_get(server.metrics_addr, "/metrics").await;
        metrics.lines().any(|line| line.starts_with("order_events_pending") && line.ends_with(" 3"))
    })
    .await;
    assert_eq!(count(&db, "outbox_events").await, 3, "the events wait in the outbox");

    let nats = FakeNats::start_on(port).await;
    eventually(Duration::from_secs(15), "the three events on NATS", || async { nats.messages().len() >= 3 }).await;
    let published: Vec<String> = nats
        .messages()
        .iter()
        .map(|(_, payload)| OrderCreatedEvent::decode(payload.as_slice()).unwrap().order.unwrap().id)
        .collect();
    assert_eq!(published, ids, "in the order they were created");
    eventually(Duration::from_secs(5), "an empty outbox", || async { count(&db, "outbox_events").await == 0 }).await;
}

#[tokio::test]
async fn health_follows_the_database() {
    let db = test_db().await;
    let users = FakeUserService::start().await;
    let proxy = Proxy::start(&db.config).await;
    let server = start_server(db.through(&proxy), Options::users(&users)).await;
    let addr = server.addr;
    eventually(Duration::from_secs(10), "SERVING", || async { health(addr).await == Some(ServingStatus::Serving) })
        .await;

    proxy.cut();
    eventually(Duration::from_secs(10), "NOT_SERVING once the database is gone", || async {
        health(addr).await == Some(ServingStatus::NotServing)
    })
    .await;
    let mut client = server.client(OrderServiceClient::new).await;
    let status = client.get_order(GetOrderRequest { id: uuid::Uuid::now_v7().to_string() }).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");

    proxy.restore();
    eventually(Duration::from_secs(10), "SERVING again", || async {
        health(addr).await == Some(ServingStatus::Serving)
    })
    .await;
    create(&mut client, &users.add_user(), basket()).await.unwrap();
    server.shutdown().await.unwrap();
}
