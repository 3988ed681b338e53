//! Integration tests: the real gRPC server, in-process, over a real PostgreSQL database
//! (`PLAT_TEST_DATABASE_URL`), called with the generated client.

mod support;

use std::time::{Duration, Instant};

use support::{LogCapture, Proxy, eventually, http_get, start_server, test_db};
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use user_service::proto::user::v1::user_service_client::UserServiceClient;
use user_service::proto::user::v1::{CreateUserRequest, GetUserRequest, ListUsersRequest, User};

async fn create(client: &mut UserServiceClient<tonic::transport::Channel>, email: &str) -> Result<User, tonic::Status> {
    let response =
        client.create_user(CreateUserRequest { email: email.into(), display_name: format!("name of {email}") }).await?;
    Ok(response.into_inner().user.expect("CreateUser returns the user"))
}

async fn health(addr: std::net::SocketAddr, service: &str) -> Option<ServingStatus> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}")).ok()?.connect().await.ok()?;
    let mut client = HealthClient::new(channel);
    let response = client.check(HealthCheckRequest { service: service.into() }).await.ok()?;
    ServingStatus::try_from(response.into_inner().status).ok()
}

#[tokio::test]
async fn creates_gets_and_lists_users_across_pages() {
    let db = test_db().await;
    let server = start_server(db.config.clone()).await;
    let mut client = server.client(UserServiceClient::new).await;

    let mut created = Vec::new();
    for i in 0..7 {
        created.push(create(&mut client, &format!("user{i}@example.com")).await.unwrap());
    }
    for user in &created {
        let got = client.get_user(GetUserRequest { id: user.id.clone() }).await.unwrap().into_inner().user.unwrap();
        assert_eq!(&got, user, "GetUser returns what CreateUser returned, create_time included");
    }

    let mut listed = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let page =
            client.list_users(ListUsersRequest { page_size: 3, page_token: token.clone() }).await.unwrap().into_inner();
        pages += 1;
        assert!(page.users.len() <= 3);
        listed.extend(page.users);
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
        // A user added mid-listing lands after the cursor: no page repeats or skips a user.
        if pages == 1 {
            created.push(create(&mut client, "late@example.com").await.unwrap());
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(listed, created, "every user once, oldest first");

    let default_page = client.list_users(ListUsersRequest::default()).await.unwrap().into_inner();
    assert_eq!(default_page.users.len(), 8);
    assert!(default_page.next_page_token.is_empty());

    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_tampered_page_token_is_an_invalid_argument() {
    let db = test_db().await;
    let server = start_server(db.config.clone()).await;
    let mut client = server.client(UserServiceClient::new).await;
    for i in 0..3 {
        create(&mut client, &format!("u{i}@example.com")).await.unwrap();
    }
    let token = client
        .list_users(ListUsersRequest { page_size: 1, page_token: String::new() })
        .await
        .unwrap()
        .into_inner()
        .next_page_token;
    assert!(!token.is_empty());
    let mut tampered: Vec<char> = token.chars().collect();
    tampered[5] = if tampered[5] == 'A' { 'B' } else { 'A' };
    for bad in [tampered.into_iter().collect::<String>(), "garbage".into(), format!("{token}x")] {
        let status = client.list_users(ListUsersRequest { page_size: 1, page_token: bad.clone() }).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{bad}: {status:?}");
        assert!(status.message().contains("page_token"), "{}", status.message());
    }
    let status = client.list_users(ListUsersRequest { page_size: -1, page_token: String::new() }).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn duplicate_emails_are_already_exists_ignoring_case() {
    let db = test_db().await;
    let server = start_server(db.config.clone()).await;
    let mut client = server.client(UserServiceClient::new).await;
    create(&mut client, "Ada@Example.com").await.unwrap();
    let status = create(&mut client, "ada@example.COM").await.unwrap_err();
    assert_eq!(status.code(), Code::AlreadyExists, "{status:?}");

    // Concurrent creations of one address: the unique index lets exactly one through.
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let mut client = client.clone();
        tasks.push(tokio::spawn(async move { create(&mut client, "race@example.com").await }));
    }
    let mut codes = Vec::new();
    for task in tasks {
        codes.push(task.await.unwrap().map(|_| Code::Ok).unwrap_or_else(|s| s.code()));
    }
    assert_eq!(codes.iter().filter(|c| **c == Code::Ok).count(), 1, "{codes:?}");
    assert_eq!(codes.iter().filter(|c| **c == Code::AlreadyExists).count(), 7, "{codes:?}");

    let count: i64 = db.client().await.query_one("SELECT count(*) FROM users", &[]).await.unwrap().get(0);
    assert_eq!(count, 2);
}

#[tokio::test]
async fn unknown_and_malformed_ids_are_not_found_and_invalid() {
    let db = test_db().await;
    let server = start_server(db.config.clone()).await;
    let mut client = server.client(UserServiceClient::new).await;
    let status = client.get_user(GetUserRequest { id: uuid::Uuid::now_v7().to_string() }).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    let status = client.get_user(GetUserRequest { id: "not-a-uuid".into() }).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let status = create(&mut client, "not an email").await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn health_follows_the_database() {
    let db = test_db().await;
    let proxy = Proxy::start(&db.config).await;
    let server = start_server(db.through(&proxy)).await;
    let addr = server.addr;

    eventually(Duration::from_secs(10), "SERVING", || async {
        health(addr, "user.v1.UserService").await == Some(ServingStatus::Serving)
    })
    .await;
    assert_eq!(health(addr, "").await, Some(ServingStatus::Serving));
    let metrics = http_get(server.metrics_addr, "/metrics").await;
    assert!(metrics.contains("database_up{service=\"user-service\"} 1"), "{metrics}");

    proxy.cut();
    eventually(Duration::from_secs(10), "NOT_SERVING once the database is gone", || async {
        health(addr, "user.v1.UserService").await == Some(ServingStatus::NotServing)
    })
    .await;
    assert_eq!(health(addr, "").await, Some(ServingStatus::NotServing));
    // Requests fail fast and retryably, not with INTERNAL or a hang.
    let mut client = server.client(UserServiceClient::new).await;
    let started = Instant::now();
    let status = create(&mut client, "down@example.com").await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());

    proxy.restore();
    eventually(Duration::from_secs(10), "SERVING again once the database is back", || async {
        health(addr, "user.v1.UserService").await == Some(ServingStatus::Serving)
    })
    .await;
    create(&mut client, "back@example.com").await.unwrap();
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn health_is_not_serving_while_the_database_was_never_reachable() {
    // A port nothing listens on: the service starts anyway and says it is not ready.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let mut config = tokio_postgres::Config::new();
    config.host("127.0.0.1").port(port).user("postgres").dbname("nowhere");
    let server = start_server(config).await;
    let addr = server.addr;
    // The database probe has run and failed (its gauge says so): health stays NOT_SERVING.
    eventually(Duration::from_secs(5), "a failed database probe", || async {
        http_get(server.metrics_addr, "/metrics")
            .await
            .lines()
            .any(|line| line.starts_with("database_up") && line.ends_with(" 0"))
    })
    .await;
    assert_eq!(health(addr, "user.v1.UserService").await, Some(ServingStatus::NotServing));
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn metrics_count_requests_by_method_and_code() {
    let db = test_db().await;
    let server = start_server(db.config.clone()).await;
    let mut client = server.client(UserServiceClient::new).await;
    create(&mut client, "m@example.com").await.unwrap();
    let _ = client.get_user(GetUserRequest { id: "x".into() }).await;
    let metrics = http_get(server.metrics_addr, "/metrics").await;
    assert!(metrics.starts_with("HTTP/1.0 200") || metrics.starts_with("HTTP/1.1 200"), "{metrics}");
    for expected in [
        "route=\"/user.v1.UserService/CreateUser\"",
        "status=\"OK\"",
        "route=\"/user.v1.UserService/GetUser\"",
        "status=\"INVALID_ARGUMENT\"",
        "request_duration_seconds_bucket",
    ] {
        assert!(metrics.contains(expected), "{expected} missing from\n{metrics}");
    }
}

#[tokio::test]
async fn an_incoming_traceparent_becomes_the_trace_of_the_request_logs() {
    let (logs, _guard) = LogCapture::install();
    let db = test_db().await;
    let server = start_server(db.config.clone()).await;
    let mut client = server.client(UserServiceClient::new).await;
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let mut request =
        tonic::Request::new(CreateUserRequest { email: "traced@example.com".into(), display_name: String::new() });
    request.metadata_mut().insert("traceparent", format!("00-{trace_id}-00f067aa0ba902b7-01").parse().unwrap());
    client.create_user(request).await.unwrap();
    eventually(Duration::from_secs(5), "the request's log line", || async {
        logs.text().lines().any(|l| l.contains("request completed") && l.contains("CreateUser"))
    })
    .await;
    let text = logs.text();
    let created = text
        .lines()
        .find(|l| l.contains("\"user created\""))
        .unwrap_or_else(|| panic!("no 'user created' line in\n{text}"));
    assert!(created.contains(&format!("\"trace_id\":\"{trace_id}\"")), "{created}");
    let line: serde_json::Value = serde_json::from_str(created).unwrap();
    assert_eq!(line["service"], "user-service");
    assert_eq!(line["span"]["route"], "/user.v1.UserService/CreateUser");
}

#[tokio::test]
async fn shutdown_drains_an_in_flight_request_then_stops() {
    let db = test_db().await;
    let server = start_server(db.config.clone()).await;
    let mut client = server.client(UserServiceClient::new).await;
    create(&mut client, "s@example.com").await.unwrap();

    // A lock held by another session keeps a ListUsers waiting: a request in flight.
    let mut locker = db.client().await;
    let transaction = locker.transaction().await.unwrap();
    transaction.batch_execute("LOCK TABLE users IN ACCESS EXCLUSIVE MODE").await.unwrap();
    let in_flight = tokio::spawn({
        let mut client = client.clone();
        async move { client.list_users(ListUsersRequest::default()).await }
    });
    // In flight: its query waits on the lock, as PostgreSQL itself says.
    let watcher = db.client().await;
    eventually(Duration::from_secs(5), "the query to wait on the lock", || async {
        let waiting = watcher
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%users%'",
                &[],
            )
            .await
            .unwrap();
        waiting.get::<_, i64>(0) > 0
    })
    .await;
    assert!(!in_flight.is_finished());

    let started = Instant::now();
    let mut stopping = tokio::spawn(server.shutdown());
    // A negative, so a window rather than a wait for an event: while the request waits on the
    // lock, shutdown does not finish.
    let early = tokio::time::timeout(Duration::from_millis(300), &mut stopping).await;
    assert!(early.is_err(), "shutdown waits for the request in flight");
    transaction.rollback().await.unwrap();

    let page = in_flight.await.unwrap().expect("the in-flight request completes").into_inner();
    assert_eq!(page.users.len(), 1);
    stopping.await.unwrap().expect("a drained shutdown is clean");
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    let error = client.list_users(ListUsersRequest::default()).await.unwrap_err();
    assert_eq!(error.code(), Code::Unavailable, "no new requests after shutdown");
}
