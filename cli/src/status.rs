//! `plat status`: for each service, where its checkout is and how it compares with its upstream and plat.lock.

use serde::Serialize;

use crate::git;
use crate::lock::Lockfile;
use crate::manifest::{Service, Source, Workspace};

/// The state of one service's code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceStatus {
    /// Service name.
    pub name: String,
    /// Directory, relative to the workspace root.
    pub path: String,
    /// `repo` for a service with its own repository, `local` for one inside the workspace repository.
    pub source: &'static str,
    /// Whether the checkout exists (`plat sync` clones missing ones).
    pub present: bool,
    /// Checked-out branch; `null` when detached or absent.
    pub branch: Option<String>,
    /// Full commit id of HEAD.
    pub commit: Option<String>,
    /// Uncommitted files (for a local service: under its directory).
    pub dirty: usize,
    /// The branch's upstream.
    pub upstream: Option<String>,
    /// Commits not on the upstream.
    pub ahead: Option<usize>,
    /// Upstream commits not on the branch.
    pub behind: Option<usize>,
    /// Whether HEAD is the commit plat.lock records; `null` without a lock file or for a local service.
    pub locked: Option<bool>,
    /// What went wrong reading the checkout, if anything.
    pub error: Option<String>,
}

/// Status of `services`, in the order given.
pub fn status(workspace: &Workspace, services: &[&Service], lock: Option<&Lockfile>) -> Vec<ServiceStatus> {
    services.iter().map(|service| service_status(workspace, service, lock)).collect()
}

fn service_status(workspace: &Workspace, service: &Service, lock: Option<&Lockfile>) -> ServiceStatus {
    let dir = workspace.service_dir(service);
    let local = service.source == Source::Local;
    let mut status = ServiceStatus {
        name: service.name.clone(),
        path: service.path.to_string(),
        source: if local { "local" } else { "repo" },
        present: dir.exists(),
        branch: None,
        commit: None,
        dirty: 0,
        upstream: None,
        ahead: None,
        behind: None,
        locked: None,
        error: None,
    };
    if !status.present {
        if !local {
            status.locked = lock.map(|_| false);
        }
        return status;
    }
    // A local service is part of the workspace repository: report that repository, counting
    // only the changes under the service's directory.
    let within = local.then_some(dir.as_path());
    match git::status(&dir, within) {
        Ok(repo) => {
            status.branch = repo.branch;
            status.commit = repo.commit.map(|commit| commit.to_string());
            status.dirty = repo.dirty;
            status.upstream = repo.upstream;
            status.ahead = repo.ahead;
            status.behind = repo.behind;
        }
        Err(error) => status.error = Some(error.to_string()),
    }
    if !local {
        status.locked = lock.map(|lock| match (lock.entry_for(service), &status.commit) {
            (Ok(entry), Some(commit)) => &entry.commit == commit,
            _ => false,
        });
    }
    status
}
