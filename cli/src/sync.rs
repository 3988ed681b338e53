//! `plat sync`: every service and library repository cloned or fetched in parallel, then moved
//! to its rev (or, with `--locked`, to the commit `plat.lock` records) without losing local work.
//!
//! One repository failing does not stop the others; the report says what happened to each, and
//! a repository left where it was (to keep local work) counts against the run like a failure.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use git2::Oid;

use crate::git::{self, GitError, GitOptions, RevKind, Target, Transfer, Update};
use crate::lock::{LockError, LockMismatch, Lockfile};
use crate::manifest::{Checkout, Source, Workspace};

/// How to sync.
#[derive(Debug, Clone, Copy)]
pub struct SyncOptions {
    /// Repositories worked on at once.
    pub jobs: usize,
    /// Check out exactly the commits of `plat.lock`, and fail where that cannot be done.
    pub locked: bool,
    /// How to reach remotes.
    pub git: GitOptions,
}

/// Whether a repository was cloned or fetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// It was not there yet.
    Clone,
    /// It was there and got the remote's new commits.
    Fetch,
}

/// Progress of a sync, for the CLI to render.
#[derive(Debug)]
pub enum SyncEvent<'a> {
    /// Work on a repository began.
    Started {
        /// Service or library name.
        name: &'a str,
        /// Clone or fetch.
        action: Action,
    },
    /// Objects arrived.
    Transfer {
        /// Service or library name.
        name: &'a str,
        /// Totals so far.
        transfer: Transfer,
    },
    /// Work on a repository ended.
    Finished {
        /// Service or library name.
        name: &'a str,
        /// What happened.
        result: &'a Result<Synced, SyncError>,
    },
}

/// A repository brought up to date (or deliberately left alone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Synced {
    /// Clone or fetch.
    pub action: Action,
    /// What the rev resolved to.
    pub target: Target,
    /// What happened to the checkout.
    pub update: Update,
}

/// Why one repository could not be synced.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// A git operation failed.
    #[error(transparent)]
    Git(#[from] GitError),
    /// `--locked`, and the lock file has no usable entry for the repository.
    #[error(transparent)]
    Lock(#[from] LockMismatch),
    /// `--locked`, and the recorded commit is not in the repository.
    #[error("locked commit {commit} is not in {repo}; was it force-pushed away?")]
    LockedCommitMissing {
        /// The commit.
        commit: String,
        /// The repository URL.
        repo: String,
    },
    /// `--locked`, and the checkout could not be moved to the recorded commit.
    #[error("cannot check out locked commit {commit}: {reason}")]
    LockedUntouched {
        /// The commit.
        commit: String,
        /// Why the checkout was left alone.
        reason: git::Untouched,
    },
}

/// Why the whole sync could not run.
#[derive(Debug, thiserror::Error)]
pub enum SyncSetupError {
    /// `--locked` without a lock file.
    #[error("plat.lock does not exist; `--locked` needs one")]
    NoLockFile,
    /// The lock file could not be read or written.
    #[error(transparent)]
    Lock(#[from] LockError),
}

/// What a sync did.
#[derive(Debug)]
pub struct SyncReport {
    /// Each synced service or library by name, with its result, in the order they were asked for.
    pub results: Vec<(String, Result<Synced, SyncError>)>,
    /// Whether plat.lock was (re)written.
    pub lock_written: bool,
}

impl SyncReport {
    /// Number of repositories that failed.
    pub fn failures(&self) -> usize {
        self.results.iter().filter(|(_, result)| result.is_err()).count()
    }

    /// Number of repositories left where they were, to keep local work.
    pub fn skipped(&self) -> usize {
        self.results
            .iter()
            .filter(|(_, result)| matches!(result, Ok(Synced { update: Update::Untouched(_), .. })))
            .count()
    }
}

/// Syncs the repositories among `checkouts` (those with a `repo`; the others live in the workspace).
pub fn sync(
    workspace: &Workspace,
    checkouts: &[Checkout<'_>],
    options: SyncOptions,
    on_event: &(dyn Fn(SyncEvent<'_>) + Sync),
) -> Result<SyncReport, SyncSetupError> {
    let lock = Lockfile::read(&crate::lock::path(workspace))?;
    if options.locked && lock.is_none() {
        return Err(SyncSetupError::NoLockFile);
    }
    let repos: Vec<&Checkout<'_>> = checkouts.iter().filter(|checkout| checkout.is_repository()).collect();

    let results: Mutex<Vec<Option<Result<Synced, SyncError>>>> = Mutex::new(repos.iter().map(|_| None).collect());
    let next = AtomicUsize::new(0);
    git::set_timeouts();
    let locked = if options.locked { lock.as_ref() } else { None };
    std::thread::scope(|scope| {
        for _ in 0..options.jobs.clamp(1, repos.len().max(1)) {
            scope.spawn(|| {
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    let Some(checkout) = repos.get(index) else { break };
                    let result = sync_one(workspace, checkout, locked, options.git, on_event);
                    on_event(SyncEvent::Finished { name: checkout.name, result: &result });
                    results.lock().expect("no worker panics holding the lock")[index] = Some(result);
                }
            });
        }
    });
    let results: Vec<(String, Result<Synced, SyncError>)> = repos
        .iter()
        .zip(results.into_inner().expect("workers are done"))
        .map(|(checkout, result)| (checkout.name.to_owned(), result.expect("every repository was synced")))
        .collect();

    let mut lock_written = false;
    if !options.locked && results.iter().any(|(_, result)| result.is_ok()) {
        let mut lock = lock.unwrap_or_default();
        for (name, result) in &results {
            if let Ok(synced) = result {
                let checkout = workspace.checkout(name).expect("synced repositories come from the workspace");
                lock.record(&checkout, synced.target.commit.to_string());
            }
        }
        lock.retain(workspace.checkouts());
        lock_written = lock.write(&crate::lock::path(workspace))?;
    }
    Ok(SyncReport { results, lock_written })
}

fn sync_one(
    workspace: &Workspace,
    checkout: &Checkout<'_>,
    lock: Option<&Lockfile>,
    options: GitOptions,
    on_event: &(dyn Fn(SyncEvent<'_>) + Sync),
) -> Result<Synced, SyncError> {
    let Source::Git { repo: url, rev } = checkout.source else {
        unreachable!("only checkouts with a repository are synced")
    };
    // With --locked, a missing or stale entry fails before any network work.
    let locked_commit = lock.map(|lock| lock.entry_for(checkout).map(|entry| entry.commit.clone())).transpose()?;

    let dir = workspace.checkout_dir(checkout);
    let name = checkout.name;
    let mut progress = |transfer| on_event(SyncEvent::Transfer { name, transfer });
    let is_empty_dir = dir.is_dir() && dir.read_dir().is_ok_and(|mut entries| entries.next().is_none());
    let (repo, action) = if dir.exists() && !is_empty_dir {
        on_event(SyncEvent::Started { name, action: Action::Fetch });
        let repo = git::open(&dir)?;
        git::fetch(&repo, url, options, &mut progress)?;
        (repo, Action::Fetch)
    } else {
        on_event(SyncEvent::Started { name, action: Action::Clone });
        if is_empty_dir {
            fs_err::remove_dir(&dir).map_err(GitError::Io)?;
        }
        (git::clone(url, &dir, options, &mut progress)?, Action::Clone)
    };

    let target = match &locked_commit {
        Some(commit) => {
            let missing = || SyncError::LockedCommitMissing { commit: commit.clone(), repo: url.clone() };
            let oid = Oid::from_str(commit).map_err(|_| missing())?;
            repo.find_commit(oid).map_err(|_| missing())?;
            Target { kind: RevKind::Commit, commit: oid }
        }
        None => git::resolve(&repo, rev.as_deref(), url)?,
    };
    let update = git::update(&repo, &target)?;
    if let (Some(commit), Update::Untouched(reason)) = (&locked_commit, &update) {
        return Err(SyncError::LockedUntouched { commit: commit.clone(), reason: reason.clone() });
    }
    Ok(Synced { action, target, update })
}
