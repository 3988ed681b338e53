//! `plat up` on the sample platform, for real: images built with no registry (static binaries
//! FROM scratch), the workspace's PostgreSQL container started and migrated, NATS from its
//! ready image, the services started in dependency order on the workspace's network and gated
//! on their health checks, then driven through the gateway's published port while a NATS client
//! receives order-service's OrderCreated; `plat ps`, `plat logs`, a second `up` that changes
//! nothing, a service that never gets healthy, and `plat down`.

use std::path::Path;
use std::time::{Duration, Instant};

use platform_e2e::nats::Subscription;
use platform_e2e::plat::{Cleanup, Plat, docker, free_port, sample_manifest, sample_workspace, texts};
use platform_e2e::platform::repo_root;
use platform_e2e::proto::order::v1::OrderCreatedEvent;
use platform_e2e::token;
use prost::Message;
use serde_json::{Value, json};

/// The sample manifest's development JWT secret (workspace.toml).
const JWT_SECRET: &str = "plat-sample-platform-dev-only-secret-0123456789";

/// How many users the workspace's database holds, asked with psql inside its container.
fn users_in_database(workspace: &str) -> String {
    let container = format!("{workspace}-postgres");
    docker(&["exec", &container, "psql", "-U", "postgres", "-d", "user_service", "-tAc", "SELECT count(*) FROM users"])
}

/// A workspace of the test's own (its name, so nothing collides with another run, a free
/// gateway port, and NATS's client port published on a free port for the test's subscriber)
/// over the repository's services, through a symlink.
fn workspace(root: &Path, dir: &Path, name: &str, gateway_port: u16, nats_port: u16) {
    let nats_ports = "ports = { client = 4222, monitoring = 8222 }";
    let manifest = sample_manifest(root, name, Some(gateway_port));
    assert!(manifest.contains(nats_ports), "the sample manifest runs NATS with its client port");
    let manifest = manifest.replace(nats_ports, &format!("{nats_ports}\npublish = {{ client = {nats_port} }}"));
    sample_workspace(root, dir, &manifest, &["services", "pkg"]);
    // A copy of the contracts, which the contract test changes.
    let proto = dir.join("proto");
    for entry in ["buf.yaml", "buf.gen.yaml", "user/v1/user.proto", "order/v1/order.proto", "order/v1/events.proto"] {
        let to = proto.join(entry);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(root.join("proto").join(entry), to).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plat_up_runs_the_platform_in_containers_built_without_a_registry() {
    let root = repo_root();
    let name = format!("e2e{}", std::process::id());
    let _cleanup = Cleanup { workspace: name.clone() };
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let nats_port = free_port();
    workspace(&root, dir.path(), &name, port, nats_port);
    let plat = Plat::build(dir.path(), env!("CARGO_TARGET_TMPDIR"));

    // Up: images, database, migrations, services in dependency order, each healthy first.
    let (_, stderr) = plat.ok(&["up"]);
    let position = |needle: &str| stderr.find(needle).unwrap_or_else(|| panic!("no `{needle}` in:\n{stderr}"));
    assert!(position("Migrated user-service") < position("Created user-service"), "{stderr}");
    // NATS is a ready image: looked up (never built), started, healthy before order-service.
    assert!(position("Fresh nats plat/nats:2") < position("Created nats"), "{stderr}");
    assert!(position("Ready nats") < position("Created order-service"), "{stderr}");
    assert!(position("Ready user-service") < position("Created order-service"), "{stderr}");
    assert!(position("Ready order-service") < position("Created api-gateway"), "{stderr}");
    assert!(stderr.contains(&format!("api-gateway http on 127.0.0.1:{port}")), "{stderr}");

    // The platform works through the published gateway.
    let gateway = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    // A NATS client on the published port, subscribed before the order exists.
    let nats = std::net::SocketAddr::from(([127, 0, 0, 1], nats_port));
    let mut events = Subscription::subscribe(nats, "orders.created").await.expect("NATS answers on its published port");
    let bearer = format!("Bearer {}", token::mint(JWT_SECRET, "containers", 600));
    let response = http
        .post(format!("{gateway}/v1/users"))
        .header("authorization", &bearer)
        .json(&json!({"email": "grace@example.com", "display_name": "Grace"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::CREATED);
    let user: Value = response.json().await.unwrap();
    let order = json!({"user_id": user["id"], "items": [{"sku": "BOOK", "quantity": 3, "unit_price": {"amount_minor": 1250, "currency_code": "EUR"}}]});
    let response =
        http.post(format!("{gateway}/v1/orders")).header("authorization", &bearer).json(&order).send().await.unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::CREATED);
    let order: Value = response.json().await.unwrap();
    assert_eq!(order["total"]["amount_minor"], 3750);

    // order-service got its NATS_URL from workspace.toml and announced the order.
    let payload = events.next(Duration::from_secs(20)).await.expect("an OrderCreated event within 20 s");
    let event = OrderCreatedEvent::decode(payload.as_slice()).expect("the payload is an OrderCreatedEvent");
    let announced = event.order.expect("the event carries the order");
    assert_eq!(Some(announced.id.as_str()), order["id"].as_str());
    assert_eq!(Some(announced.user_id.as_str()), user["id"].as_str());

    // ps: every service running, healthy and up to date; the database beside them.
    let (stdout, _) = plat.ok(&["ps", "--json"]);
    let rows: Vec<Value> = serde_json::from_str(&stdout).unwrap();
    let services: Vec<&str> = rows.iter().map(|row| row["service"].as_str().unwrap()).collect();
    assert_eq!(services, ["nats", "user-service", "order-service", "api-gateway", "postgres"]);
    for row in &rows[..4] {
        assert_eq!((row["state"].as_str(), row["health"].as_str()), (Some("running"), Some("healthy")), "{row}");
        assert_eq!(row["up_to_date"], true, "{row}");
    }
    assert_eq!(rows[3]["published"], json!([format!("{port}:8080")]));

    // logs: the services' own JSON lines, prefixed with the service; NATS's plain lines as they are.
    let (stdout, _) = plat.ok(&["logs", "-n", "5", "user-service", "api-gateway"]);
    assert!(stdout.lines().any(|line| line.starts_with("user-service |")), "{stdout}");
    assert!(stdout.lines().any(|line| line.starts_with("api-gateway  |")), "{stdout}");
    let (stdout, _) = plat.ok(&["logs", "nats"]);
    assert!(stdout.lines().any(|line| line.starts_with("nats |") && line.contains("Server is ready")), "{stdout}");

    // Contract tests: the running providers serve every rpc of their contracts, every service's
    // committed code matches them, every consumer's recorded view is compatible with what its
    // provider serves, and the consumers' interactions replay. A JUnit report for CI.
    // (e2e/tests/contracts.rs shows each of those failing for its reason.)
    let junit = dir.path().join("contract.xml");
    let (stdout, _) = plat.ok(&["test", "--contract", "--junit", junit.to_str().unwrap()]);
    assert!(stdout.contains("contract served user-service serves user.v1.UserService/GetUser ... ok"), "{stdout}");
    assert!(stdout.contains("contract test result: ok. 19 passed; 0 failed; 0 skipped"), "{stdout}");
    let report = std::fs::read_to_string(&junit).unwrap();
    assert!(report.contains("tests=\"19\" failures=\"0\""), "{report}");
    // An rpc added to a contract and implemented nowhere fails both ways, and changes nothing.
    let user_proto = dir.path().join("proto/user/v1/user.proto");
    let contract = std::fs::read_to_string(&user_proto).unwrap();
    let extended = contract.replacen(
        "  rpc GetUser",
        "  // Deletes a user.\n  rpc DeleteUser(GetUserRequest) returns (GetUserResponse);\n  rpc GetUser",
        1,
    );
    std::fs::write(&user_proto, extended).unwrap();
    let output = plat.run(&["test", "--contract"]);
    let (stdout, stderr) = texts(&output);
    assert_eq!(output.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stdout.contains(
            "contract served user-service serves user.v1.UserService/DeleteUser ... FAILED\n    UNIMPLEMENTED"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "stale generated code: services/order-service/src/proto/descriptor.bin, services/order-service/src/proto/user.v1.rs"
        ),
        "{stdout}"
    );
    assert!(stderr.contains("error: 4 contract tests failed"), "{stderr}");
    std::fs::write(&user_proto, contract).unwrap();
    let users = users_in_database(&name);
    // The probes created nothing; the interactions create 3 users a run (contracts/*.toml).
    assert_eq!(users, "7", "the probes created nothing");

    // Up again: nothing changed, so nothing is rebuilt or restarted.
    let id_before = docker(&["inspect", "--format", "{{.Id}}", &format!("{name}-user-service")]);
    let (_, stderr) = plat.ok(&["up"]);
    for service in ["nats", "user-service", "order-service", "api-gateway"] {
        assert!(stderr.contains(&format!("Fresh {service}")), "{stderr}");
        assert!(stderr.contains(&format!("Running {service} (unchanged)")), "{stderr}");
    }
    assert_eq!(docker(&["inspect", "--format", "{{.Id}}", &format!("{name}-user-service")]), id_before);

    // Each service runs as a non-root user, and handles SIGTERM: down does not wait out 10 s each.
    for service in ["user-service", "order-service", "api-gateway"] {
        let user = docker(&["inspect", "--format", "{{.Config.User}}", &format!("{name}-{service}")]);
        assert_eq!(user, "10001:10001", "{service} runs as a non-root user");
    }
    let user = docker(&["inspect", "--format", "{{.Config.User}}", &format!("{name}-nats")]);
    assert_eq!(user, "65534:65534", "NATS runs as nobody");
    let started = Instant::now();
    let (_, stderr) = plat.ok(&["down"]);
    assert!(started.elapsed() < Duration::from_secs(20), "down took {:?}", started.elapsed());
    let order_of = |needle: &str| stderr.find(needle).unwrap_or_else(|| panic!("no `{needle}` in:\n{stderr}"));
    assert!(order_of(&format!("{name}-api-gateway")) < order_of(&format!("{name}-user-service")), "{stderr}");
    let left = docker(&["ps", "-aq", "--filter", &format!("label=dev.plat.workspace={name}")]);
    assert_eq!(left, "", "down removes every container");
    assert_eq!(
        docker(&["volume", "ls", "-q", "--filter", &format!("name={name}-postgres-data")]),
        format!("{name}-postgres-data")
    );
    let nats_data = format!("{name}-nats-data");
    assert_eq!(docker(&["volume", "ls", "-q", "--filter", &format!("name={nats_data}")]), nats_data, "kept by down");

    // A service that never gets healthy stops `up` with its reason and its last log lines, and
    // nothing that depends on it starts. The data survived down: the user is still there.
    let manifest = std::fs::read_to_string(dir.path().join("workspace.toml")).unwrap().replace(
        "health = { grpc = \"user.v1.UserService\" }",
        "health = { grpc = \"nope.v1.Nope\", interval = \"200ms\", retries = 3 }",
    );
    std::fs::write(dir.path().join("workspace.toml"), manifest).unwrap();
    let output = plat.run(&["up", "--no-build"]);
    let (stdout, stderr) = texts(&output);
    assert_eq!(output.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stderr.contains("error: user-service is not healthy after"), "{stderr}");
    assert!(stderr.contains("nope.v1.Nope"), "{stderr}");
    assert!(stderr.contains("hint: `plat logs user-service`"), "{stderr}");
    assert!(!stderr.contains("Created order-service"), "{stderr}");
    let users = users_in_database(&name);
    // The gateway's user and the 6 the contract interactions created.
    assert_eq!(users, "7", "the database's data survived down");

    plat.ok(&["down", "--volumes"]);
    assert_eq!(docker(&["volume", "ls", "-q", "--filter", &format!("name={name}-postgres-data")]), "");
    assert_eq!(docker(&["volume", "ls", "-q", "--filter", &format!("name={nats_data}")]), "");
}
