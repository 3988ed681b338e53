//! A Docker workspace name of a test's own, and everything the Engine holds under it removed
//! when the test ends, even halfway.

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A workspace name no other test (or test process) uses: its containers, volumes, images and
/// network are removed on drop.
pub struct Names {
    pub workspace: String,
}

impl Names {
    /// `prefix` says which test file made the name, for whoever finds one left behind.
    pub fn new(prefix: &str) -> Names {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        Names { workspace: format!("{prefix}{}x{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed)) }
    }

    /// The image plat builds for `service`: `<workspace>/<service>:dev`.
    pub fn image(&self, service: &str) -> String {
        format!("{}/{service}:dev", self.workspace)
    }
}

impl Drop for Names {
    fn drop(&mut self) {
        let label = format!("label=dev.plat.workspace={}", self.workspace);
        let containers = docker(&["ps", "-aq", "--filter", &label]);
        remove(&["rm", "-f"], &containers);
        let volumes = docker(&["volume", "ls", "-q", "--filter", &label]);
        remove(&["volume", "rm"], &volumes);
        // By name, not by id: a `command` build may tag an image other tests use (plat/postgres:15)
        // as this workspace's, and only the name is this test's. --no-prune keeps the untagged
        // parent layers: they are the build cache every workspace shares, and a build beside
        // this test may be using one right now (removing it fails that build: "failed to get digest").
        let format = "{{.Repository}}:{{.Tag}}";
        let labelled = docker(&["images", "--format", format, "--filter", &label]);
        let named = docker(&["images", "--format", format, "--filter", &format!("reference={}/*", self.workspace)]);
        remove(&["rmi", "--no-prune"], &format!("{labelled}\n{named}"));
        let _ = Command::new("docker").args(["network", "rm", &format!("{}-net", self.workspace)]).output();
    }
}

/// `docker args removed...`, when there is anything to remove.
fn remove(args: &[&str], removed: &str) {
    let mut removed: Vec<&str> = removed.split_whitespace().collect();
    removed.sort_unstable();
    removed.dedup();
    if !removed.is_empty() {
        let _ = Command::new("docker").args(args).args(&removed).output();
    }
}

/// What `docker args` prints, trimmed; empty when it fails.
pub fn docker(args: &[&str]) -> String {
    let output = Command::new("docker").args(args).output().expect("docker runs");
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}
