//! Starting the platform: binaries built, databases created and migrated by `plat migrate`,
//! NATS, then user-service, order-service and api-gateway as processes, ready when the gateway's
//! `/readyz` says so. Everything stops when the `Platform` is dropped.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How to run the platform.
#[derive(Debug, Clone)]
pub struct PlatformOptions {
    /// Gateway rate limit: tokens per second per client.
    pub rate_limit_rps: u32,
    /// Gateway rate limit: burst per client.
    pub rate_limit_burst: u32,
    /// Start NATS and have order-service publish to it.
    pub nats: bool,
    /// Build and run release binaries (for the load check).
    pub release: bool,
    /// The gateway's port; `None` picks a free one.
    pub gateway_port: Option<u16>,
}

impl Default for PlatformOptions {
    fn default() -> Self {
        PlatformOptions { rate_limit_rps: 5, rate_limit_burst: 10, nats: true, release: false, gateway_port: None }
    }
}

/// One running service and what it takes to start it again.
struct Service {
    name: &'static str,
    env: BTreeMap<String, String>,
    child: Option<Child>,
}

/// The running platform.
pub struct Platform {
    dir: tempfile::TempDir,
    bin_dir: PathBuf,
    /// `http://127.0.0.1:<port>` of the gateway.
    pub gateway_url: String,
    /// user-service's gRPC address.
    pub user_grpc: SocketAddr,
    /// order-service's gRPC address.
    pub order_grpc: SocketAddr,
    /// NATS, when started.
    pub nats: Option<SocketAddr>,
    /// The secret the gateway checks tokens with.
    pub jwt_secret: String,
    services: Vec<Service>,
    nats_server: Option<Child>,
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("e2e/ is in the repository").to_path_buf()
}

/// A free port on 127.0.0.1.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|listener| listener.local_addr()).expect("a free port").port()
}

fn run(command: &mut Command, what: &str) {
    let output = command.output().unwrap_or_else(|error| panic!("{what}: cannot run: {error}"));
    assert!(
        output.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

impl Platform {
    /// Builds what is needed and starts everything; panics with the logs when it does not come up.
    pub fn start(options: PlatformOptions) -> Platform {
        let root = repo_root();
        let profile: &[&str] = if options.release { &["--release"] } else { &[] };
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        run(
            Command::new(&cargo).current_dir(&root).args(["build", "--quiet", "-p", "plat"]).args(profile),
            "building plat",
        );
        for service in ["user-service", "order-service", "api-gateway"] {
            run(
                Command::new(&cargo)
                    .current_dir(root.join("services").join(service))
                    .args(["build", "--quiet", "--bin", service])
                    .args(profile),
                &format!("building {service}"),
            );
        }
        let bin_dir = root.join("target").join(if options.release { "release" } else { "debug" });

        // One database per service, unique to this run, created and migrated by plat.
        let server = std::env::var("PLAT_TEST_DATABASE_URL")
            .expect("PLAT_TEST_DATABASE_URL is not set: run the tests through scripts/test, which starts PostgreSQL");
        let server = server.rsplit_once('/').map_or(server.as_str(), |(server, _)| server).to_owned();
        let run_id = format!("e2e_{}_{}", std::process::id(), free_port());
        let database = |service: &str| format!("{server}/{run_id}_{}", service.replace('-', "_"));
        run(
            Command::new(bin_dir.join("plat"))
                .current_dir(&root)
                .args(["migrate", "user-service", "order-service"])
                .env("DATABASE_URL_USER_SERVICE", database("user-service"))
                .env("DATABASE_URL_ORDER_SERVICE", database("order-service"))
                .env("NO_COLOR", "1"),
            "plat migrate",
        );

        let dir = tempfile::tempdir().expect("temp dir");
        let nats_addr = options.nats.then(|| SocketAddr::from(([127, 0, 0, 1], free_port())));
        let nats_server = nats_addr.map(|addr| {
            let child = Command::new("nats-server")
                .args(["-a", "127.0.0.1", "-p", &addr.port().to_string()])
                .stdout(Stdio::null())
                .stderr(log_file(dir.path(), "nats"))
                .spawn()
                .expect("nats-server is not installed: run the tests through scripts/test, which installs it");
            wait_for_port(addr, Duration::from_secs(10)).expect("nats-server listens");
            child
        });

        let user_grpc = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let order_grpc = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let gateway = SocketAddr::from(([127, 0, 0, 1], options.gateway_port.unwrap_or_else(free_port)));
        let jwt_secret = format!("e2e-secret-for-the-platform-test-{run_id}");
        let common = |pairs: &[(&str, String)]| -> BTreeMap<String, String> {
            let mut env: BTreeMap<String, String> =
                pairs.iter().map(|(key, value)| ((*key).to_owned(), value.clone())).collect();
            env.insert("RUST_LOG".to_owned(), "info".to_owned());
            env.insert("SHUTDOWN_GRACE".to_owned(), "2s".to_owned());
            env
        };
        let mut order_env = vec![
            ("GRPC_ADDR", order_grpc.to_string()),
            ("METRICS_ADDR", format!("127.0.0.1:{}", free_port())),
            ("DATABASE_URL", database("order-service")),
            ("USER_SERVICE_ADDR", format!("http://{user_grpc}")),
        ];
        if let Some(nats) = nats_addr {
            order_env.push(("NATS_URL", format!("nats://{nats}")));
        }
        let services = vec![
            Service {
                name: "user-service",
                env: common(&[
                    ("GRPC_ADDR", user_grpc.to_string()),
                    ("METRICS_ADDR", format!("127.0.0.1:{}", free_port())),
                    ("DATABASE_URL", database("user-service")),
                ]),
                child: None,
            },
            Service { name: "order-service", env: common(&order_env), child: None },
            Service {
                name: "api-gateway",
                env: common(&[
                    ("HTTP_ADDR", gateway.to_string()),
                    ("USER_SERVICE_ADDR", format!("http://{user_grpc}")),
                    ("ORDER_SERVICE_ADDR", format!("http://{order_grpc}")),
                    ("JWT_SECRET", jwt_secret.clone()),
                    ("RATE_LIMIT_RPS", options.rate_limit_rps.to_string()),
                    ("RATE_LIMIT_BURST", options.rate_limit_burst.to_string()),
                    // Short enough for the tests to see recovery quickly.
                    ("BREAKER_COOL_DOWN", "1s".to_owned()),
                    ("READY_CACHE", "200ms".to_owned()),
                ]),
                child: None,
            },
        ];
        let mut platform = Platform {
            dir,
            bin_dir,
            gateway_url: format!("http://{gateway}"),
            user_grpc,
            order_grpc,
            nats: nats_addr,
            jwt_secret,
            services,
            nats_server,
        };
        for name in ["user-service", "order-service", "api-gateway"] {
            platform.start_service(name);
        }
        platform.wait_ready(Duration::from_secs(60));
        platform
    }

    /// Starts (again) a service with the environment it was first given.
    pub fn start_service(&mut self, name: &str) {
        let log = log_file(self.dir.path(), name);
        let bin = self.bin_dir.join(name);
        let service = self.services.iter_mut().find(|service| service.name == name).expect("a platform service");
        assert!(service.child.is_none(), "{name} is already running");
        let child = Command::new(&bin)
            .env_clear()
            .envs(&service.env)
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {}: {error}", bin.display()));
        service.child = Some(child);
    }

    /// Stops a service with SIGTERM, as an orchestrator would, and waits for it to exit.
    pub fn stop_service(&mut self, name: &str) {
        let service = self.services.iter_mut().find(|service| service.name == name).expect("a platform service");
        if let Some(child) = service.child.take() {
            terminate(child);
        }
    }

    /// Waits until the gateway reports ready; panics with every log when it does not.
    pub fn wait_ready(&self, timeout: Duration) {
        let addr: SocketAddr = self.gateway_url.trim_start_matches("http://").parse().expect("an address");
        let started = Instant::now();
        while started.elapsed() < timeout {
            if http_status(addr, "/readyz") == Some(200) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("the platform did not become ready in {timeout:?}\n{}", self.logs());
    }

    /// Every service's log so far, for failure messages.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for name in ["user-service", "order-service", "api-gateway", "nats"] {
            let text = std::fs::read_to_string(self.dir.path().join(format!("{name}.log"))).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(40).collect();
            out.push_str(&format!("--- {name} (last {} lines)\n", tail.len()));
            for line in tail.into_iter().rev() {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }
}

impl Drop for Platform {
    fn drop(&mut self) {
        for service in self.services.iter_mut().rev() {
            if let Some(child) = service.child.take() {
                terminate(child);
            }
        }
        if let Some(nats) = self.nats_server.take() {
            terminate(nats);
        }
    }
}

fn log_file(dir: &Path, name: &str) -> std::fs::File {
    std::fs::OpenOptions::new().create(true).append(true).open(dir.join(format!("{name}.log"))).expect("log file")
}

/// SIGTERM, then SIGKILL if it has not exited within 10 seconds.
fn terminate(mut child: Child) {
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn wait_for_port(addr: SocketAddr, timeout: Duration) -> Result<(), String> {
    let started = Instant::now();
    while started.elapsed() < timeout {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!("nothing listens on {addr}"))
}

/// The status code of `GET path`, over a plain blocking connection (no client library needed).
fn http_status(addr: SocketAddr, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").ok()?;
    let mut head = [0; 12];
    stream.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}
