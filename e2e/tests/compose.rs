//! `plat compose export` on the sample platform, run by docker-compose rather than plat: the
//! file passes `docker-compose config`, refuses to start without the gateway's secret, and on
//! the images `plat build` made (the database migrated by `plat migrate` through its published
//! port, as docs/deploy.md says) serves requests through the gateway.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use platform_e2e::plat::{Cleanup, Plat, docker, free_port, sample_manifest, sample_workspace, texts};
use platform_e2e::platform::repo_root;
use platform_e2e::token;
use serde_json::json;

/// The sample manifest's development JWT secret (workspace.toml), given to compose as the
/// environment a person would.
const JWT_SECRET: &str = "plat-sample-platform-dev-only-secret-0123456789";

/// docker-compose on the exported file, as one project, with the environment the file reads.
struct Compose {
    dir: std::path::PathBuf,
    project: String,
    env: Vec<(String, String)>,
}

impl Compose {
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new("docker-compose");
        command.current_dir(&self.dir).args(["-p", &self.project, "-f", "docker-compose.yml"]).args(args);
        command.envs(self.env.iter().map(|(key, value)| (key, value)));
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("docker-compose runs (scripts/setup installs it)")
    }

    fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        let (stdout, stderr) = texts(&output);
        assert!(output.status.success(), "docker-compose {args:?}:\n{stdout}{stderr}");
        stdout
    }
}

/// Takes the project down with its volume when the test ends, passed or not.
impl Drop for Compose {
    fn drop(&mut self) {
        let _ = self.run(&["down", "-v", "--remove-orphans"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_exported_compose_file_serves_through_the_gateway() {
    let root = repo_root();
    let name = format!("e2ecompose{}", std::process::id());
    let _cleanup = Cleanup { workspace: name.clone() };
    let dir = tempfile::tempdir().unwrap();
    sample_workspace(&root, dir.path(), &sample_manifest(&root, &name, None), &["services", "pkg", "proto"]);
    let plat = Plat::build(dir.path(), env!("CARGO_TARGET_TMPDIR"));
    plat.ok(&["build"]);
    plat.ok(&["compose", "export"]);

    let (gateway_port, database_port) = (free_port(), free_port());
    let mut compose = Compose {
        dir: dir.path().to_path_buf(),
        project: name.clone(),
        env: vec![
            ("API_GATEWAY_HTTP_PORT".into(), gateway_port.to_string()),
            ("POSTGRES_PORT".into(), database_port.to_string()),
        ],
    };

    // Without the gateway's secret in the environment the file does not even load.
    let output = compose.run(&["config", "-q"]);
    let (_, stderr) = texts(&output);
    assert!(!output.status.success(), "compose accepted a file with JWT_SECRET unset");
    assert!(stderr.contains("set JWT_SECRET in the environment or .env"), "{stderr}");
    compose.env.push(("JWT_SECRET".into(), JWT_SECRET.into()));
    let config = compose.ok(&["config"]);
    assert!(config.contains(&format!("{name}/api-gateway:dev")), "{config}");

    // The database first, migrated through its published port by plat, as a person would.
    compose.ok(&["up", "-d", "postgres"]);
    let container = compose.ok(&["ps", "-q", "postgres"]).trim().to_owned();
    let started = Instant::now();
    while docker(&["inspect", "--format", "{{.State.Health.Status}}", &container]) != "healthy" {
        assert!(started.elapsed() < Duration::from_secs(120), "the database never became healthy");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let url = |database: &str| format!("postgres://postgres@127.0.0.1:{database_port}/{database}");
    let migrated = plat
        .command(&["migrate"])
        .env("DATABASE_URL_USER_SERVICE", url("user_service"))
        .env("DATABASE_URL_ORDER_SERVICE", url("order_service"))
        .output()
        .unwrap();
    let (stdout, stderr) = texts(&migrated);
    assert!(migrated.status.success(), "plat migrate:\n{stdout}{stderr}");

    // Everything else, then a user and an order through the gateway's published port.
    compose.ok(&["up", "-d"]);
    let gateway = format!("http://127.0.0.1:{gateway_port}");
    let http = reqwest::Client::new();
    let bearer = format!("Bearer {}", token::mint(JWT_SECRET, "compose", 600));
    let started = Instant::now();
    let user: serde_json::Value = loop {
        let response = http
            .post(format!("{gateway}/v1/users"))
            .header("authorization", &bearer)
            .json(&json!({"email": "ada@example.com", "display_name": "Ada"}))
            .send()
            .await;
        // Until the gateway listens and its upstreams answer, it refuses or says 503.
        match response {
            Ok(response) if response.status() == reqwest::StatusCode::CREATED => break response.json().await.unwrap(),
            Ok(response) if response.status().is_client_error() => {
                panic!("the gateway refused the request: {} {}", response.status(), response.text().await.unwrap())
            }
            _ => {}
        }
        if started.elapsed() > Duration::from_secs(120) {
            panic!("the gateway never served:\n{}", compose.ok(&["logs", "--no-color", "--tail", "30"]));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let order = json!({"user_id": user["id"], "items": [{"sku": "PEN", "quantity": 2, "unit_price": {"amount_minor": 150, "currency_code": "EUR"}}]});
    let response =
        http.post(format!("{gateway}/v1/orders")).header("authorization", &bearer).json(&order).send().await.unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::CREATED);
    let order: serde_json::Value = response.json().await.unwrap();
    assert_eq!(order["total"]["amount_minor"], 300);
}
