//! The platform in containers, as `plat up` will run it: the services' images built with no
//! registry (static binaries FROM scratch), the workspace's PostgreSQL container started by
//! plat and migrated by `plat migrate`, the services on the workspace's network, driven through
//! the gateway's published port.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use platform_e2e::platform::repo_root;
use platform_e2e::token;
use serde_json::{Value, json};

fn run(command: &mut Command) -> String {
    let output = command.output().unwrap_or_else(|error| panic!("{command:?}: {error}"));
    assert!(
        output.status.success(),
        "{command:?} failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

fn docker(args: &[&str]) -> String {
    run(Command::new("docker").args(args))
}

/// Removes every container, the volume and the network of the test's workspace, even when the
/// test fails halfway.
struct Cleanup {
    workspace: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let ids = Command::new("docker")
            .args(["ps", "-aq", "--filter", &format!("name={}-", self.workspace)])
            .output()
            .map(|output| {
                String::from_utf8_lossy(&output.stdout).split_whitespace().map(str::to_owned).collect::<Vec<_>>()
            })
            .unwrap_or_default();
        if !ids.is_empty() {
            let _ = Command::new("docker").arg("rm").arg("-f").args(&ids).output();
        }
        let _ = Command::new("docker").args(["volume", "rm", &format!("{}-postgres-data", self.workspace)]).output();
        let _ = Command::new("docker").args(["network", "rm", &format!("{}-net", self.workspace)]).output();
    }
}

fn copy_migrations(root: &Path, workspace: &Path) {
    for service in ["user-service", "order-service"] {
        let from = root.join("services").join(service).join("migrations");
        let to = workspace.join("services").join(service).join("migrations");
        std::fs::create_dir_all(&to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let path = entry.unwrap().path();
            std::fs::copy(&path, to.join(path.file_name().unwrap())).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_platform_runs_in_containers_built_without_a_registry() {
    let root = repo_root();
    run(&mut Command::new(root.join("scripts/images/postgres")));
    run(Command::new(root.join("scripts/images/services")).arg("e2e"));
    let plat = {
        run(Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .current_dir(&root)
            .args(["build", "--quiet", "-p", "plat"]));
        root.join("target/debug/plat")
    };

    // A workspace of its own (name and all), so that nothing collides with other runs.
    let name = format!("e2e{}", std::process::id());
    let _cleanup = Cleanup { workspace: name.clone() };
    let dir = tempfile::tempdir().unwrap();
    let manifest = std::fs::read_to_string(root.join("workspace.toml"))
        .unwrap()
        .replace("name = \"platform\"", &format!("name = \"{name}\""));
    std::fs::write(dir.path().join("workspace.toml"), manifest).unwrap();
    copy_migrations(&root, dir.path());

    // The database container, then plat migrate finding it by its labels (no URL given).
    run(Command::new(&plat).current_dir(dir.path()).args(["db", "start"]).env("NO_COLOR", "1"));
    let migrated = run(Command::new(&plat)
        .current_dir(dir.path())
        .args(["migrate"])
        .env("NO_COLOR", "1")
        .env_remove("DATABASE_URL_USER_SERVICE")
        .env_remove("DATABASE_URL_ORDER_SERVICE"));
    let _ = migrated;

    let network = format!("{name}-net");
    let secret = format!("containers-test-secret-{name}-0123456789abcdef");
    let start = |service: &str, env: &[(&str, String)], publish: Option<&str>| {
        let mut args: Vec<String> = vec![
            "run".into(),
            "-d".into(),
            "--name".into(),
            format!("{name}-{service}"),
            "--network".into(),
            network.clone(),
            "--network-alias".into(),
            service.into(),
        ];
        for (key, value) in env {
            args.push("-e".into());
            args.push(format!("{key}={value}"));
        }
        if let Some(port) = publish {
            args.push("-p".into());
            args.push(format!("127.0.0.1::{port}"));
        }
        args.push(format!("platform/{service}:e2e"));
        docker(&args.iter().map(String::as_str).collect::<Vec<_>>());
    };
    start("user-service", &[("DATABASE_URL", "postgres://postgres@postgres:5432/user_service".into())], None);
    start(
        "order-service",
        &[
            ("DATABASE_URL", "postgres://postgres@postgres:5432/order_service".into()),
            ("USER_SERVICE_ADDR", "http://user-service:50051".into()),
        ],
        None,
    );
    start(
        "api-gateway",
        &[
            ("USER_SERVICE_ADDR", "http://user-service:50051".into()),
            ("ORDER_SERVICE_ADDR", "http://order-service:50052".into()),
            ("JWT_SECRET", secret.clone()),
        ],
        Some("8080"),
    );
    let published = docker(&["port", &format!("{name}-api-gateway"), "8080/tcp"]);
    let port = published.lines().next().and_then(|line| line.rsplit(':').next()).expect("a published port").to_owned();
    let gateway = format!("http://127.0.0.1:{port}");
    let logs = || {
        ["user-service", "order-service", "api-gateway"]
            .iter()
            .map(|service| {
                let output = Command::new("docker")
                    .args(["logs", "--tail", "20", &format!("{name}-{service}")])
                    .output()
                    .unwrap();
                format!(
                    "--- {service}\n{}{}",
                    String::from_utf8_lossy(&output.stdout),
                    String::from_utf8_lossy(&output.stderr)
                )
            })
            .collect::<String>()
    };

    let http = reqwest::Client::new();
    let started = Instant::now();
    loop {
        if let Ok(response) = http.get(format!("{gateway}/readyz")).send().await {
            if response.status().is_success() {
                break;
            }
        }
        assert!(started.elapsed() < Duration::from_secs(60), "the gateway is not ready after 60 s\n{}", logs());
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    let bearer = format!("Bearer {}", token::mint(&secret, "containers", 600));
    let response = http
        .post(format!("{gateway}/v1/users"))
        .header("authorization", &bearer)
        .json(&json!({"email": "grace@example.com", "display_name": "Grace"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::CREATED, "{}", logs());
    let user: Value = response.json().await.unwrap();
    let order = json!({"user_id": user["id"], "items": [{"sku": "BOOK", "quantity": 3, "unit_price": {"amount_minor": 1250, "currency_code": "EUR"}}]});
    let response =
        http.post(format!("{gateway}/v1/orders")).header("authorization", &bearer).json(&order).send().await.unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::CREATED, "{}", logs());
    let order: Value = response.json().await.unwrap();
    assert_eq!(order["total"]["amount_minor"], 3750);

    // Each service is PID 1 in its image and handles SIGTERM: `docker stop` does not wait out its 10 s.
    for service in ["api-gateway", "order-service", "user-service"] {
        let started = Instant::now();
        docker(&["stop", &format!("{name}-{service}")]);
        assert!(started.elapsed() < Duration::from_secs(8), "{service} took {:?} to stop", started.elapsed());
        let user = docker(&["inspect", "--format", "{{.Config.User}}", &format!("{name}-{service}")]);
        assert_eq!(user, "10001:10001", "{service} runs as a non-root user");
    }
}
