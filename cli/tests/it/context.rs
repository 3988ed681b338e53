//! `TestContext`: a temporary workspace, git remotes beside it, and a way to run `plat` in it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tempfile::TempDir;

/// A temporary directory holding a workspace (`ws/`), bare remotes (`remotes/`) and a HOME.
pub struct TestContext {
    _dir: TempDir,
    /// The workspace root, where plat runs.
    pub workspace: PathBuf,
    remotes: PathBuf,
    home: PathBuf,
}

/// The outcome of a command, with its output as text.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(output: Output) -> Run {
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Panics with the whole output unless the exit code is `code`.
    #[track_caller]
    pub fn expect_code(self, code: i32) -> Run {
        assert_eq!(self.code, code, "expected exit {code}\n--- stdout\n{}\n--- stderr\n{}", self.stdout, self.stderr);
        self
    }

    /// Parses stdout as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|error| panic!("stdout is not JSON ({error}):\n{}", self.stdout))
    }
}

/// A bare repository served on a file:// URL, with a working clone to make commits in.
pub struct Remote {
    pub url: String,
    work: PathBuf,
}

impl TestContext {
    pub fn new() -> TestContext {
        let dir = tempfile::tempdir().expect("temp dir");
        let workspace = dir.path().join("ws");
        let remotes = dir.path().join("remotes");
        let home = dir.path().join("home");
        for path in [&workspace, &remotes, &home] {
            std::fs::create_dir_all(path).unwrap();
        }
        TestContext { _dir: dir, workspace, remotes, home }
    }

    /// Writes `workspace.toml`.
    pub fn manifest(&self, text: &str) -> &Self {
        std::fs::write(self.workspace.join("workspace.toml"), text).unwrap();
        self
    }

    /// `plat` with a clean environment: no colour, an empty HOME, no system git config.
    pub fn plat(&self) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_plat"));
        command.current_dir(&self.workspace);
        self.isolate(&mut command);
        command
    }

    /// Runs `plat` with `args` and returns what happened.
    pub fn run(&self, args: &[&str]) -> Run {
        Run::from(self.plat().args(args).output().expect("plat runs"))
    }

    fn isolate(&self, command: &mut Command) {
        for var in
            ["PLAT_LOG", "PLAT_MANIFEST", "PLAT_GIT_FETCH_WITH_CLI", "CLICOLOR_FORCE", "GIT_DIR", "GIT_WORK_TREE"]
        {
            command.env_remove(var);
        }
        command
            .env("NO_COLOR", "1")
            .env("HOME", &self.home)
            .env("XDG_CONFIG_HOME", self.home.join(".config"))
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_AUTHOR_NAME", "Test")
            .env("GIT_AUTHOR_EMAIL", "test@example.com")
            .env("GIT_COMMITTER_NAME", "Test")
            .env("GIT_COMMITTER_EMAIL", "test@example.com");
    }

    /// Runs the git CLI in `dir`, panicking on failure; returns stdout trimmed.
    #[track_caller]
    pub fn git(&self, dir: &Path, args: &[&str]) -> String {
        let mut command = Command::new("git");
        command.current_dir(dir).args(args);
        self.isolate(&mut command);
        let run = Run::from(command.output().expect("git runs"));
        assert_eq!(run.code, 0, "git {args:?} failed in {}: {}", dir.display(), run.stderr);
        run.stdout.trim().to_owned()
    }

    /// A new remote `name` whose `main` branch has one commit adding `README.md`.
    pub fn remote(&self, name: &str) -> Remote {
        let bare = self.remotes.join(format!("{name}.git"));
        let work = self.remotes.join(format!("{name}-work"));
        self.git(&self.remotes, &["init", "--quiet", "--bare", "--initial-branch=main", bare.to_str().unwrap()]);
        self.git(&self.remotes, &["init", "--quiet", "--initial-branch=main", work.to_str().unwrap()]);
        self.git(&work, &["remote", "add", "origin", bare.to_str().unwrap()]);
        let remote = Remote { url: format!("file://{}", bare.display()), work };
        remote.commit(self, "README.md", &format!("# {name}\n"));
        remote.push(self, "main");
        remote
    }

    /// The checkout of a service in the workspace.
    pub fn checkout(&self, service: &str) -> PathBuf {
        self.workspace.join("services").join(service)
    }

    /// HEAD of a checkout.
    pub fn head(&self, dir: &Path) -> String {
        self.git(dir, &["rev-parse", "HEAD"])
    }

    /// The branch a checkout is on, or `None` when detached.
    pub fn branch(&self, dir: &Path) -> Option<String> {
        let mut command = Command::new("git");
        command.current_dir(dir).args(["symbolic-ref", "--short", "-q", "HEAD"]);
        self.isolate(&mut command);
        let run = Run::from(command.output().unwrap());
        (run.code == 0).then(|| run.stdout.trim().to_owned())
    }
}

impl Remote {
    /// Commits `content` to `file` on the current branch of the working clone; returns the commit.
    pub fn commit(&self, context: &TestContext, file: &str, content: &str) -> String {
        let path = self.work.join(file);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, content).unwrap();
        context.git(&self.work, &["add", "--all"]);
        context.git(&self.work, &["commit", "--quiet", "-m", &format!("change {file}")]);
        context.head(&self.work)
    }

    /// Pushes `branch` (creating it upstream when new).
    pub fn push(&self, context: &TestContext, branch: &str) {
        context.git(&self.work, &["push", "--quiet", "origin", &format!("HEAD:refs/heads/{branch}")]);
    }

    /// Switches the working clone to a new branch.
    pub fn branch(&self, context: &TestContext, branch: &str) {
        context.git(&self.work, &["switch", "--quiet", "-c", branch]);
    }

    /// Tags HEAD of the working clone and pushes the tag.
    pub fn tag(&self, context: &TestContext, tag: &str) {
        context.git(&self.work, &["tag", "-a", "-m", tag, tag]);
        context.git(&self.work, &["push", "--quiet", "origin", tag]);
    }
}

impl TestContext {
    /// Runs `plat` with extra environment variables.
    pub fn run_with_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut command = self.plat();
        command.args(args);
        for (key, value) in env {
            command.env(key, value);
        }
        Run::from(command.output().expect("plat runs"))
    }

    /// The working clone of a remote (where its commits are made).
    pub fn checkout_dir_of(&self, remote: &Remote) -> PathBuf {
        remote.work.clone()
    }
}

impl Remote {
    /// A remote that is only a URL (nothing to commit to).
    pub fn at(url: &str) -> Remote {
        Remote { url: url.to_owned(), work: PathBuf::new() }
    }
}

/// An HTTP server on 127.0.0.1 that answers every request with 401 and counts them.
pub struct UnauthorizedServer {
    port: u16,
    requests: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl UnauthorizedServer {
    pub fn start() -> UnauthorizedServer {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let mut buffer = [0; 4096];
                let _ = stream.read(&mut buffer);
                let _ = stream.write_all(
                    b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"git\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
            }
        });
        UnauthorizedServer { port, requests }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn requests(&self) -> usize {
        self.requests.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Builds plat/nats:2 (scripts/images/nats) when it is not on this machine.
pub fn ensure_nats_image() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/images/nats");
    let output = Command::new(&script).output().expect("scripts/images/nats runs");
    assert!(
        output.status.success(),
        "scripts/images/nats failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Builds plat/postgres:15 unless it exists (the script does nothing then). Tests that need it
/// at once wait for one build: the script holds a lock while it builds.
pub fn ensure_postgres_image() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/images/postgres");
    let output = Command::new(&script).output().expect("scripts/images/postgres runs");
    assert!(
        output.status.success(),
        "scripts/images/postgres failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
