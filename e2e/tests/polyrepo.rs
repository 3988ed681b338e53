//! The polyrepo as its users have it: user-service, order-service, api-gateway and pkg each a
//! repository of its own (bare repositories made from this repository's trees, on file:// URLs),
//! and a platform repository whose workspace.toml names them with `repo =` and keeps proto/.
//! `plat sync` → `plat up` → a request through the gateway → a change committed to one
//! service's repository → `plat sync` → `plat up`: the new code answers, only that service was
//! rebuilt and only its container replaced, and every checkout stays clean. The contracts each
//! consumer's repository carries pass against the running providers, and `--can-deploy` tells
//! the service's new commit from the one that was verified.

use std::path::{Path, PathBuf};
use std::process::Command;

use platform_e2e::plat::{Cleanup, Plat, container_id, free_port, sample_manifest, texts};
use platform_e2e::platform::repo_root;
use platform_e2e::token;
use serde_json::{Value, json};

/// The sample manifest's development JWT secret (workspace.toml).
const JWT_SECRET: &str = "plat-sample-platform-dev-only-secret-0123456789";

const SERVICES: [&str; 3] = ["user-service", "order-service", "api-gateway"];

/// git with no user or system configuration, and an identity for commits.
fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .current_dir(dir)
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "Test")
        .env("GIT_AUTHOR_EMAIL", "test@example.com")
        .env("GIT_COMMITTER_NAME", "Test")
        .env("GIT_COMMITTER_EMAIL", "test@example.com")
        .output()
        .expect("git runs");
    let (stdout, stderr) = texts(&output);
    assert!(output.status.success(), "git {args:?} in {}: {stderr}", dir.display());
    stdout.trim().to_owned()
}

/// A repository of its own for `tree` (a directory of this repository): the files git would
/// commit there (tracked, or new and not ignored), committed to `main` of a bare repository.
/// Returns the bare repository's URL and a working clone to commit changes in.
fn own_repository(root: &Path, tree: &str, remotes: &Path) -> (String, PathBuf) {
    let name = Path::new(tree).file_name().unwrap().to_str().unwrap();
    let work = remotes.join(format!("{name}-work"));
    let bare = remotes.join(format!("{name}.git"));
    let files = git(root, &["ls-files", "--cached", "--others", "--exclude-standard", "--", tree]);
    for file in files.lines() {
        let to = work.join(Path::new(file).strip_prefix(tree).unwrap());
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(root.join(file), &to).unwrap_or_else(|error| panic!("copy {file}: {error}"));
    }
    git(&work, &["init", "--quiet", "--initial-branch=main"]);
    git(&work, &["add", "--all"]);
    git(&work, &["commit", "--quiet", "-m", &format!("{name}, on its own")]);
    git(remotes, &["init", "--quiet", "--bare", "--initial-branch=main", bare.to_str().unwrap()]);
    git(&work, &["remote", "add", "origin", bare.to_str().unwrap()]);
    git(&work, &["push", "--quiet", "origin", "main"]);
    (format!("file://{}", bare.display()), work)
}

/// The platform repository: the sample's workspace.toml with every service and pkg pointing at
/// its own repository, and proto/; nothing of the services' code.
fn platform_repository(root: &Path, dir: &Path, name: &str, port: u16, urls: &[(&str, String)]) {
    let mut manifest = sample_manifest(root, name, Some(port));
    for (repo, url) in urls {
        let table = if *repo == "pkg" { "[libraries.pkg]".to_owned() } else { format!("[services.{repo}]") };
        assert!(manifest.contains(&table), "the sample manifest has {table}");
        manifest = manifest.replace(&table, &format!("{table}\nrepo = \"{url}\""));
    }
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("workspace.toml"), manifest).unwrap();
    let files = git(root, &["ls-files", "--cached", "--others", "--exclude-standard", "--", "proto"]);
    for file in files.lines() {
        let to = dir.join(file);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(root.join(file), to).unwrap();
    }
    std::fs::write(dir.join(".gitignore"), "# The checkouts `plat sync` makes.\n/services/\n/pkg/\n").unwrap();
    git(dir, &["init", "--quiet", "--initial-branch=main"]);
    git(dir, &["add", "--all"]);
    git(dir, &["commit", "--quiet", "-m", "the platform"]);
}

async fn create_user(gateway: &str, bearer: &str, email: &str) -> Value {
    let response = reqwest::Client::new()
        .post(format!("{gateway}/v1/users"))
        .header("authorization", bearer)
        .json(&json!({"email": email, "display_name": "Ada"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::CREATED);
    response.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_and_pkg_from_their_own_repositories_sync_build_run_and_update() {
    let root = repo_root();
    let name = format!("poly{}", std::process::id());
    let _cleanup = Cleanup { workspace: name.clone() };
    let temp = tempfile::tempdir().unwrap();
    let remotes = temp.path().join("remotes");
    std::fs::create_dir_all(&remotes).unwrap();

    let mut urls = Vec::new();
    let mut works = Vec::new();
    for (repo, tree) in [("pkg", "pkg".to_owned())].into_iter().chain(SERVICES.map(|s| (s, format!("services/{s}")))) {
        let (url, work) = own_repository(&root, &tree, &remotes);
        urls.push((repo, url));
        works.push((repo, work));
    }
    let platform = temp.path().join("platform");
    let port = free_port();
    platform_repository(&root, &platform, &name, port, &urls);
    let plat = Plat::build(&platform, env!("CARGO_TARGET_TMPDIR"));

    // sync: every repository cloned where the manifest says, and locked.
    let (_, stderr) = plat.ok(&["sync"]);
    assert!(stderr.contains("Cloned pkg main at"), "{stderr}");
    for service in SERVICES {
        assert!(stderr.contains(&format!("Cloned {service} main at")), "{stderr}");
        assert!(platform.join("services").join(service).join("Cargo.toml").is_file());
    }
    let lock = std::fs::read_to_string(platform.join("plat.lock")).unwrap();
    assert!(lock.contains("[[library]]\nname = \"pkg\""), "{lock}");

    // up: each service builds from its clone against the cloned pkg, into one target directory
    // outside every checkout.
    let (_, stderr) = plat.ok(&["up"]);
    assert!(stderr.contains(&format!("api-gateway http on 127.0.0.1:{port}")), "{stderr}");
    assert!(!stderr.contains("warning:"), "every checkout is at its rev and lock: {stderr}");
    let gateway = format!("http://127.0.0.1:{port}");
    let bearer = format!("Bearer {}", token::mint(JWT_SECRET, "polyrepo", 600));
    let user = create_user(&gateway, &bearer, "ada@example.com").await;
    assert_eq!(user["email"], "ada@example.com");

    let clean = |when: &str| {
        let (stdout, _) = plat.ok(&["status", "--json"]);
        let rows: Vec<Value> = serde_json::from_str(&stdout).unwrap();
        assert_eq!(rows.len(), 4, "{stdout}");
        for row in &rows {
            assert_eq!(row["dirty"], 0, "{when}: a checkout is not clean: {row}");
            assert_eq!(row["locked"], true, "{when}: a checkout is not at plat.lock's commit: {row}");
        }
    };
    clean("after the first up");

    // The contracts as each consumer's own repository carries them (its recorded view,
    // src/proto/descriptor.bin, and its contracts/*.toml), against the running providers.
    let (stdout, _) = plat.ok(&["test", "--contract"]);
    for line in [
        "contract compatible order-service uses user.v1 as recorded, user-service serves it ... ok",
        "contract compatible api-gateway uses order.v1 as recorded, order-service serves it ... ok",
        "contract interactions order-service contracts/user-service.toml: GetUser answers a user that exists ... ok",
        "contract interactions api-gateway contracts/orders.toml: orders are placed, read and listed by user ... ok",
    ] {
        assert!(stdout.contains(line), "no `{line}` in:\n{stdout}");
    }
    let (_, stderr) = plat.ok(&["test", "--contract", "--can-deploy", "user-service"]);
    assert!(stderr.contains("user-service can deploy"), "{stderr}");

    // A visible change, committed and pushed to user-service's own repository.
    let (_, user_work) = works.iter().find(|(repo, _)| *repo == "user-service").unwrap();
    let service_rs = user_work.join("src/service/mod.rs");
    let code = std::fs::read_to_string(&service_rs).unwrap();
    assert!(code.contains("\"user created\""), "the log line the change edits");
    std::fs::write(&service_rs, code.replace("\"user created\"", "\"user created, by the polyrepo's new code\""))
        .unwrap();
    git(user_work, &["commit", "--quiet", "--all", "-m", "say who created the user"]);
    git(user_work, &["push", "--quiet", "origin", "main"]);

    let ids_before: Vec<String> = SERVICES.iter().map(|s| container_id(&format!("{name}-{s}"))).collect();
    let (_, stderr) = plat.ok(&["sync"]);
    assert!(stderr.contains("Updated user-service main"), "{stderr}");
    assert!(stderr.contains("Fresh order-service") && stderr.contains("Fresh pkg"), "{stderr}");

    // Synced, not started: `plat ps` says user-service runs older code than its checkout, and the
    // contracts are not checked against it.
    let (_, stderr) = plat.ok(&["ps"]);
    assert!(
        stderr.contains(
            "warning: user-service runs code older than its checkout (changed: \
             services/user-service/src/service/mod.rs): `plat up` runs what the checkout holds"
        ),
        "{stderr}"
    );
    let output = plat.run(&["test", "--contract"]);
    let (stdout, stderr) = texts(&output);
    assert_eq!(output.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stdout.contains(
            "user-service runs code older than its checkout (changed: services/user-service/src/service/mod.rs): \
             `plat up` builds and runs it"
        ),
        "{stdout}"
    );

    let (_, stderr) = plat.ok(&["up"]);
    assert!(stderr.contains("Built user-service"), "{stderr}");
    assert!(stderr.contains("Fresh order-service") && stderr.contains("Fresh api-gateway"), "{stderr}");
    assert!(stderr.contains("Recreated user-service"), "{stderr}");
    let ids_after: Vec<String> = SERVICES.iter().map(|s| container_id(&format!("{name}-{s}"))).collect();
    assert_ne!(ids_after[0], ids_before[0], "user-service's container was replaced");
    assert_eq!(ids_after[1..], ids_before[1..], "the others kept theirs");

    // The new code answers the next request through the gateway.
    create_user(&gateway, &bearer, "grace@example.com").await;
    let (stdout, _) = plat.ok(&["logs", "user-service"]);
    assert!(stdout.contains("user created, by the polyrepo's new code"), "{stdout}");
    clean("after the update");

    // What was verified is user-service's old commit: its new one is not, until the contracts
    // run against it.
    let output = plat.run(&["test", "--contract", "--can-deploy", "user-service"]);
    let (stdout, stderr) = texts(&output);
    assert_eq!(output.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stderr.contains("user-service cannot deploy: 2 contracts are not verified"), "{stderr}");
    plat.ok(&["test", "--contract"]);
    let (_, stderr) = plat.ok(&["test", "--contract", "--can-deploy", "user-service"]);
    assert!(stderr.contains("user-service can deploy"), "{stderr}");

    // A checkout moved off its lock by a local commit is said, and refused with --locked.
    let checkout = platform.join("services/user-service");
    std::fs::write(checkout.join("NOTES.md"), "local notes\n").unwrap();
    git(&checkout, &["add", "NOTES.md"]);
    git(&checkout, &["commit", "--quiet", "-m", "local notes"]);
    let (_, stderr) = plat.ok(&["build", "user-service"]);
    assert!(stderr.contains("warning: service user-service (services/user-service) is at"), "{stderr}");
    assert!(stderr.contains("1 commit ahead of main (origin/main); plat.lock says"), "{stderr}");
    let output = plat.run(&["up", "--locked"]);
    let (stdout, stderr) = texts(&output);
    assert_eq!(output.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stderr.contains("--locked: not what plat.lock says"), "{stderr}");

    // The inner loop, in the clone: `plat up --watch`, an edit, the new code answering; then a
    // broken edit, the compiler's error shown and the old container serving on.
    let mut watching = Watching::start(&plat);
    watching.wait_for("Watching ", "watching to start");
    let service_rs = checkout.join("src/service/mod.rs");
    let code = std::fs::read_to_string(&service_rs).unwrap();
    let validated = "let display_name = validate::display_name(&new.display_name)?;";
    assert!(code.contains(validated), "the line the edit changes");
    std::fs::write(&service_rs, code.replace(validated, &validated.replace("?;", "?.to_uppercase();"))).unwrap();
    let serving = watching.wait_for("Serving user-service's new code", "the edit to serve");
    eprintln!("polyrepo watch: {serving}");
    let user = create_user(&gateway, &bearer, "edsger@example.com").await;
    assert_eq!(user["display_name"], "ADA", "the edited code answers: {user}");
    let serving_id = container_id(&format!("{name}-user-service"));

    std::fs::write(
        &service_rs,
        code.replace(validated, "let display_name = validate::display_name(&new.display_name)?.no_such_method();"),
    )
    .unwrap();
    watching.wait_for("no method named `no_such_method`", "the compiler's error");
    watching.wait_for("running container was left as it was", "the hint that the old container serves");
    assert_eq!(container_id(&format!("{name}-user-service")), serving_id, "the old container was kept");
    let user = create_user(&gateway, &bearer, "barbara@example.com").await;
    assert_eq!(user["display_name"], "ADA", "and it still serves the last good code");

    let (stdout, stderr) = watching.stop();
    assert!(
        stderr.contains("Stopped watching; still running: nats, user-service, order-service, api-gateway"),
        "{stderr}"
    );
    assert!(
        stdout.lines().any(|line| line.starts_with("user-service ") && line.contains("INFO  user created")),
        "the logs streamed, readable: {stdout}"
    );

    plat.ok(&["down", "--volumes"]);
}

/// `plat up --watch` running, its output collected as it comes.
struct Watching {
    child: std::process::Child,
    stderr: std::sync::mpsc::Receiver<String>,
    seen: Vec<String>,
    stdout: std::thread::JoinHandle<String>,
}

impl Watching {
    fn start(plat: &Plat) -> Watching {
        use std::io::{BufRead, Read};
        let mut child = plat
            .command(&["up", "--watch"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let (sender, stderr) = std::sync::mpsc::channel();
        let pipe = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(pipe).lines().map_while(Result::ok) {
                let _ = sender.send(line);
            }
        });
        let mut pipe = child.stdout.take().unwrap();
        let stdout = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        });
        Watching { child, stderr, seen: Vec::new(), stdout }
    }

    /// Waits (at most 5 minutes: a cold build may be under way) for a stderr line containing
    /// `needle`, and returns it.
    fn wait_for(&mut self, needle: &str, what: &str) -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
        loop {
            if let Some(line) = self.seen.iter().find(|line| line.contains(needle)) {
                let line = line.clone();
                self.seen.clear();
                return line;
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(_) => panic!("no {what} (`{needle}`) in plat up --watch's output:\n{}", self.seen.join("\n")),
            }
        }
    }

    /// Ctrl-C, as a person stops it; returns all of stdout and the rest of stderr.
    fn stop(mut self) -> (String, String) {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill").args(["-INT", &pid]).status().unwrap().success());
        let status = self.child.wait().unwrap();
        assert!(status.success(), "plat up --watch ends with 0 on Ctrl-C: {status}");
        let rest: Vec<String> = self.stderr.iter().collect();
        (self.stdout.join().unwrap(), rest.join("\n"))
    }
}
