//! `plat` run as a user runs it, on a workspace of a test's own: the binary built once, the
//! Docker state a test makes removed when it ends, and one cargo target directory for the
//! services every end-to-end test builds, so that none of them compiles the dependencies cold.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::platform::repo_root;

/// plat, run in a workspace directory.
pub struct Plat {
    binary: PathBuf,
    /// The workspace root, where plat runs.
    pub dir: PathBuf,
    target_dir: PathBuf,
}

impl Plat {
    /// Builds plat (debug, once per test binary at most: cargo has nothing to do the second
    /// time), makes sure the images the sample runs as they are (PostgreSQL, NATS) exist, and
    /// runs plat in `dir`. `tmpdir` is the
    /// test's `CARGO_TARGET_TMPDIR`: the services compile beside it, in `<target>/plat-services`,
    /// shared by every end-to-end test.
    pub fn build(dir: &Path, tmpdir: &str) -> Plat {
        let root = repo_root();
        for image in ["postgres", "nats"] {
            let script = root.join("scripts/images").join(image);
            let built = Command::new(&script).status().unwrap_or_else(|error| panic!("{}: {error}", script.display()));
            assert!(built.success(), "scripts/images/{image} builds its image");
        }
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let built = Command::new(cargo).current_dir(&root).args(["build", "--quiet", "-p", "plat"]).status().unwrap();
        assert!(built.success(), "plat builds");
        let target = Path::new(tmpdir).parent().expect("CARGO_TARGET_TMPDIR is inside the target directory");
        Plat { binary: target.join("debug/plat"), dir: dir.to_path_buf(), target_dir: target.join("plat-services") }
    }

    /// The command, not run yet: no colour, the shared target directory.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.binary);
        command.current_dir(&self.dir).args(args).env("NO_COLOR", "1").env("CARGO_TARGET_DIR", &self.target_dir);
        command
    }

    /// Runs plat and returns what happened.
    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap_or_else(|error| panic!("plat {args:?}: {error}"))
    }

    /// Runs plat and expects success; returns (stdout, stderr).
    pub fn ok(&self, args: &[&str]) -> (String, String) {
        let output = self.run(args);
        let (stdout, stderr) = texts(&output);
        assert!(output.status.success(), "plat {args:?} failed ({}):\n{stdout}{stderr}", output.status);
        (stdout, stderr)
    }
}

/// stdout and stderr as text.
pub fn texts(output: &Output) -> (String, String) {
    (String::from_utf8_lossy(&output.stdout).into_owned(), String::from_utf8_lossy(&output.stderr).into_owned())
}

/// The docker CLI's stdout, trimmed (the tests look at the Engine with the tool a person uses).
pub fn docker(args: &[&str]) -> String {
    let output = Command::new("docker").args(args).output().expect("docker runs");
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// The id of a container by name.
pub fn container_id(name: &str) -> String {
    docker(&["inspect", "--format", "{{.Id}}", name])
}

/// A free port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The sample's workspace.toml made a test's own: named `name` (so its images, containers and
/// network collide with no other run) and, when given, the gateway published on `gateway_port`.
pub fn sample_manifest(root: &Path, name: &str, gateway_port: Option<u16>) -> String {
    let sample = std::fs::read_to_string(root.join("workspace.toml")).unwrap();
    assert!(sample.contains("name = \"platform\""), "the sample manifest names its workspace");
    let manifest = sample.replace("name = \"platform\"", &format!("name = \"{name}\""));
    match gateway_port {
        Some(port) => {
            let publish = "publish = { http = 8080 }";
            assert!(manifest.contains(publish), "the sample manifest publishes the gateway");
            manifest.replace(publish, &format!("publish = {{ http = {port} }}"))
        }
        None => manifest,
    }
}

/// A workspace in `dir` over the repository's code: `manifest` as its workspace.toml, and the
/// trees named in `linked` (services, pkg, proto) symlinked from the repository.
pub fn sample_workspace(root: &Path, dir: &Path, manifest: &str, linked: &[&str]) {
    std::fs::write(dir.join("workspace.toml"), manifest).unwrap();
    for tree in linked {
        std::os::unix::fs::symlink(root.join(tree), dir.join(tree)).unwrap();
    }
}

/// Removes whatever a test's workspace left in Docker when the test ends, even halfway:
/// containers, the database's and the services' volumes, the network, the services' images.
pub struct Cleanup {
    /// The workspace's name.
    pub workspace: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let label = format!("label=dev.plat.workspace={}", self.workspace);
        let ids = docker(&["ps", "-aq", "--filter", &label]);
        let ids: Vec<&str> = ids.split_whitespace().collect();
        if !ids.is_empty() {
            let _ = Command::new("docker").arg("rm").arg("-f").args(&ids).output();
        }
        let _ = Command::new("docker").args(["volume", "rm", &format!("{}-postgres-data", self.workspace)]).output();
        // The services' named volumes (NATS's data), labelled with the workspace.
        let volumes = docker(&["volume", "ls", "-q", "--filter", &label]);
        let volumes: Vec<&str> = volumes.split_whitespace().collect();
        if !volumes.is_empty() {
            let _ = Command::new("docker").args(["volume", "rm"]).args(&volumes).output();
        }
        let _ = Command::new("docker").args(["network", "rm", &format!("{}-net", self.workspace)]).output();
        // --no-prune: the untagged parent layers are the build cache every workspace shares (only
        // the last step, the workspace's label, differs), and a test building beside this one may
        // be using one of them this very moment; removing it fails that build ("failed to get digest").
        for service in ["user-service", "order-service", "api-gateway"] {
            let _ = Command::new("docker")
                .args(["rmi", "--no-prune", &format!("{}/{service}:dev", self.workspace)])
                .output();
        }
    }
}
