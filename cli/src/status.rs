//! `plat status`: for each service and library, where its checkout is and how it compares with
//! its upstream and plat.lock.

use serde::Serialize;

use crate::git;
use crate::lock::Lockfile;
use crate::manifest::{Checkout, CheckoutKind, Source, Workspace};

/// The state of one service's or library's code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckoutStatus {
    /// Service or library name.
    pub name: String,
    /// `service` or `library`.
    pub kind: CheckoutKind,
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

/// Status of `checkouts`, in the order given.
pub fn status(workspace: &Workspace, checkouts: &[Checkout<'_>], lock: Option<&Lockfile>) -> Vec<CheckoutStatus> {
    checkouts.iter().map(|checkout| checkout_status(workspace, checkout, lock)).collect()
}

fn checkout_status(workspace: &Workspace, checkout: &Checkout<'_>, lock: Option<&Lockfile>) -> CheckoutStatus {
    let dir = workspace.checkout_dir(checkout);
    let local = !checkout.is_repository();
    let mut status = CheckoutStatus {
        name: checkout.name.to_owned(),
        kind: checkout.kind,
        path: checkout.path.to_string(),
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
    // A local checkout is part of the workspace repository: report that repository, counting
    // only the changes under its directory.
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
        status.locked = lock.map(|lock| match (lock.entry_for(checkout), &status.commit) {
            (Ok(entry), Some(commit)) => &entry.commit == commit,
            _ => false,
        });
    }
    status
}

/// How a checkout differs from its rev and its plat.lock commit: what `plat build` and `plat up`
/// say before they build it, and what `--locked` refuses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Drift {
    /// Service or library name.
    pub name: String,
    /// `service` or `library`.
    pub kind: CheckoutKind,
    /// Directory, relative to the workspace root.
    pub path: String,
    /// The checkout does not exist: `plat sync` clones it.
    pub missing: bool,
    /// HEAD commit.
    pub head: Option<String>,
    /// The rev HEAD is not at, as the last fetch saw it; `None` when HEAD is at it.
    pub off_rev: Option<OffRev>,
    /// plat.lock's commit when HEAD is elsewhere; `None` when HEAD is at it or there is no lock
    /// entry.
    pub off_lock: Option<String>,
    /// A lock file exists, and has no entry for this repository and its current `repo`/`rev`.
    pub not_in_lock: bool,
    /// Uncommitted files (ignored ones do not count).
    pub dirty: usize,
    /// What went wrong reading the checkout, if anything.
    pub error: Option<String>,
}

/// The rev a checkout is not at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OffRev {
    /// `main`, `tag v1.2.0`, `commit 1a2b3c4`.
    pub rev: String,
    /// The commit it names.
    pub commit: String,
    /// Commits in HEAD and not in the rev.
    pub ahead: usize,
    /// Commits in the rev and not in HEAD.
    pub behind: usize,
}

impl Drift {
    /// Whether what would be built is not what the manifest and plat.lock say: a warning, or an
    /// error with `--locked`. Uncommitted changes alone are the inner loop, not drift.
    pub fn is_off(&self) -> bool {
        self.missing || self.off_rev.is_some() || self.off_lock.is_some() || self.error.is_some()
    }

    /// Whether `--locked` refuses to build it: not exactly plat.lock's commit, clean.
    pub fn refused_when_locked(&self) -> bool {
        self.missing || self.off_lock.is_some() || self.not_in_lock || self.dirty > 0 || self.error.is_some()
    }
}

/// The drift of each repository among `checkouts` (checkouts inside the workspace repository
/// are what the workspace's own commit says: they have none). Reads the checkouts and the
/// remote-tracking refs of their last fetch; never touches the network.
pub fn drift(workspace: &Workspace, checkouts: &[Checkout<'_>], lock: Option<&Lockfile>) -> Vec<Drift> {
    checkouts
        .iter()
        .filter(|checkout| checkout.is_repository())
        .map(|checkout| drift_of(workspace, checkout, lock))
        .collect()
}

fn drift_of(workspace: &Workspace, checkout: &Checkout<'_>, lock: Option<&Lockfile>) -> Drift {
    let mut drift = Drift {
        name: checkout.name.to_owned(),
        kind: checkout.kind,
        path: checkout.path.to_string(),
        missing: false,
        head: None,
        off_rev: None,
        off_lock: None,
        not_in_lock: false,
        dirty: 0,
        error: None,
    };
    let entry = lock.map(|lock| lock.entry_for(checkout).ok());
    drift.not_in_lock = matches!(entry, Some(None));
    let dir = workspace.checkout_dir(checkout);
    if !dir.exists() {
        drift.missing = true;
        return drift;
    }
    let Source::Git { repo, rev } = checkout.source else { unreachable!("only repositories drift") };
    match git::drift(&dir, repo, rev.as_deref()) {
        Ok(state) => {
            drift.head = state.head.map(|head| head.to_string());
            drift.dirty = state.dirty;
            drift.off_rev = state.off_rev.map(|(rev, commit, ahead, behind)| OffRev {
                rev,
                commit: commit.to_string(),
                ahead,
                behind,
            });
        }
        Err(error) => drift.error = Some(error.to_string()),
    }
    if let Some(Some(entry)) = entry
        && drift.head.as_deref() != Some(entry.commit.as_str())
    {
        drift.off_lock = Some(entry.commit.clone());
    }
    drift
}
