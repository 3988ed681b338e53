//! Every repository operation plat performs: clone, fetch, resolve a rev, move a checkout, inspect.
//!
//! Architecture invariant: only this module talks to repositories. It uses libgit2 (git2) and
//! falls back to the git CLI where libgit2 cannot do the job (a URL scheme it lacks, a repository
//! extension it does not know), or everywhere network is involved when the user asks for the CLI
//! (`PLAT_GIT_FETCH_WITH_CLI=true`, as cargo's `net.git-fetch-with-cli`).
//!
//! Safety invariant: [`update`] never discards local work. It moves a checkout whenever git
//! itself would (untracked and ignored files, and changes the move does not touch, stay as they
//! are); a move that would overwrite a change, carry uncommitted changes off a branch, drop a
//! diverged branch's commits or orphan a detached commit is not made, and says which.

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Once;

use git2::build::{CheckoutBuilder, RepoBuilder};
use git2::{
    AutotagOption, BranchType, CheckoutNotificationType, Cred, CredentialType, FetchOptions, FetchPrune, Oid,
    RemoteCallbacks, Repository, Status, StatusOptions,
};

/// How many times credentials are offered before a repository is given up on.
pub const MAX_AUTH_ATTEMPTS: u32 = 3;

/// Choices about how plat reaches remotes.
#[derive(Debug, Clone, Copy, Default)]
pub struct GitOptions {
    /// Use the git CLI for clone and fetch instead of libgit2.
    pub fetch_with_cli: bool,
}

impl GitOptions {
    /// Reads `PLAT_GIT_FETCH_WITH_CLI` (`true`, `1`, `yes`, in any case).
    pub fn from_env() -> GitOptions {
        let fetch_with_cli = std::env::var("PLAT_GIT_FETCH_WITH_CLI")
            .is_ok_and(|value| matches!(value.to_ascii_lowercase().as_str(), "1" | "true" | "yes"));
        GitOptions { fetch_with_cli }
    }
}

/// Bytes and objects received so far by a clone or fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transfer {
    /// Objects received.
    pub received_objects: usize,
    /// Objects the remote is sending.
    pub total_objects: usize,
    /// Bytes received.
    pub received_bytes: usize,
}

/// What a manifest `rev` turned out to be in a repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RevKind {
    /// A branch on the remote; the checkout tracks it.
    Branch(String),
    /// A tag; checked out detached.
    Tag(String),
    /// A commit id; checked out detached.
    Commit,
}

/// A rev resolved to the commit it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// What kind of rev it was.
    pub kind: RevKind,
    /// The commit.
    pub commit: Oid,
}

/// What [`update`] did to a checkout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Update {
    /// It was already at the target.
    UpToDate,
    /// The branch moved forward from `from` to the target.
    FastForwarded {
        /// The commit it was at.
        from: Oid,
    },
    /// HEAD moved to another branch or to the detached target.
    Switched {
        /// The commit it was at, if any.
        from: Option<Oid>,
    },
    /// HEAD is on the branch, which holds the target and local commits the remote does not
    /// have yet: nothing to move, and nothing skipped.
    Ahead {
        /// Local commits not on the remote.
        commits: usize,
    },
    /// It was left exactly as it was, for this reason: git itself would not move it either
    /// without losing something.
    Untouched(Untouched),
}

/// Why a checkout was left alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Untouched {
    /// Moving would overwrite these files' local changes, or untracked files in the way of
    /// files the target adds (what `git merge --ff-only` refuses too).
    WouldOverwrite {
        /// The files, relative to the checkout.
        files: Vec<String>,
    },
    /// HEAD would leave `branch`, taking these uncommitted changes to tracked files along.
    LeavesBranch {
        /// The branch HEAD is on.
        branch: String,
        /// The changed files, relative to the checkout.
        files: Vec<String>,
    },
    /// The local branch and the remote both have commits the other lacks.
    Diverged {
        /// The branch.
        branch: String,
        /// Local commits.
        ahead: usize,
        /// Remote commits.
        behind: usize,
    },
    /// HEAD is detached at a commit no branch or tag contains; moving would orphan it.
    UnreachableHead {
        /// The detached commit.
        head: Oid,
    },
}

impl std::fmt::Display for Untouched {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let plural = |n: usize| if n == 1 { "" } else { "s" };
        match self {
            Untouched::WouldOverwrite { files } => {
                write!(f, "it would overwrite local changes to {}", list_files(files))
            }
            Untouched::LeavesBranch { branch, files } => write!(
                f,
                "it is on branch {branch} with uncommitted changes to {}, which switching would take along",
                list_files(files)
            ),
            Untouched::Diverged { branch, ahead, behind } => write!(
                f,
                "its branch {branch} and the remote have diverged ({ahead} local, {behind} remote commit{})",
                plural(*behind)
            ),
            Untouched::UnreachableHead { head } => {
                write!(f, "HEAD is detached at {}, a commit no branch or tag contains", short(*head))
            }
        }
    }
}

/// `a, b and 3 more files`: at most five names.
fn list_files(files: &[String]) -> String {
    const SHOWN: usize = 5;
    let shown = files.iter().take(SHOWN).map(String::as_str).collect::<Vec<_>>().join(", ");
    match files.len() {
        0 => "no file".to_owned(),
        n if n <= SHOWN => shown,
        n => format!("{shown} and {} more", n - SHOWN),
    }
}

/// The 7-character abbreviation of a commit id.
pub fn short(commit: Oid) -> String {
    commit.to_string()[..7].to_owned()
}

/// The state of a checkout, for `plat status`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepoStatus {
    /// Checked-out branch; `None` when HEAD is detached.
    pub branch: Option<String>,
    /// HEAD commit; `None` in an empty repository.
    pub commit: Option<Oid>,
    /// Changed, staged and untracked files (ignored files do not count).
    pub dirty: usize,
    /// Upstream of the branch, e.g. `origin/main`.
    pub upstream: Option<String>,
    /// Commits on the branch and not on its upstream.
    pub ahead: Option<usize>,
    /// Commits on the upstream and not on the branch.
    pub behind: Option<usize>,
}

/// A repository operation failed.
#[derive(Debug, thiserror::Error)]
pub enum GitError {
    /// libgit2 reported an error.
    #[error("{}", .0.message())]
    Git2(#[from] git2::Error),
    /// Credentials were refused as many times as plat offers them.
    #[error("authentication failed for {url} after {attempts} attempt(s): {reason}")]
    Auth {
        /// The remote.
        url: String,
        /// Attempts made.
        attempts: u32,
        /// libgit2's last word.
        reason: String,
    },
    /// The git CLI failed.
    #[error("`git {command}` failed: {stderr}")]
    Cli {
        /// The arguments.
        command: String,
        /// What git printed on stderr (last lines).
        stderr: String,
    },
    /// The git CLI was needed and is not installed.
    #[error("the git CLI is needed ({why}) but `git` is not on PATH")]
    CliMissing {
        /// What it was needed for.
        why: String,
    },
    /// The rev names nothing in the repository.
    #[error("`{rev}` is not a branch, tag or commit of {repo}")]
    RevNotFound {
        /// The rev.
        rev: String,
        /// The repository URL.
        repo: String,
    },
    /// The default branch of the remote could not be told.
    #[error("cannot tell the default branch of {repo}")]
    NoDefaultBranch {
        /// The repository URL.
        repo: String,
    },
    /// A directory is in the way of a clone.
    #[error("{} exists but is not a git repository", .path.display())]
    NotARepository {
        /// The directory.
        path: PathBuf,
    },
    /// A checkout's origin is another repository than the manifest names.
    #[error("{} is a clone of {actual}, not of {expected}", .path.display())]
    WrongRemote {
        /// The checkout.
        path: PathBuf,
        /// Its `origin` URL.
        actual: String,
        /// The manifest's URL.
        expected: String,
    },
    /// Filesystem trouble around a clone.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Bounds every network wait, so an unreachable remote fails instead of hanging.
///
/// Call it before starting threads that use libgit2 (`sync` does): the options are process-wide
/// and libgit2 does not guard them against concurrent use.
pub fn set_timeouts() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: the first call happens before any other thread uses libgit2 (see above), and
        // `Once` keeps every later call from touching the options again.
        unsafe {
            let _ = git2::opts::set_server_connect_timeout_in_milliseconds(15_000);
            let _ = git2::opts::set_server_timeout_in_milliseconds(60_000);
        }
    });
}

/// Clones `url` into `dest`, which must not exist. A failed clone leaves nothing behind.
pub fn clone(
    url: &str,
    dest: &Path,
    options: GitOptions,
    progress: &mut dyn FnMut(Transfer),
) -> Result<Repository, GitError> {
    // Clone beside the destination and rename on success: an interrupted clone never looks like a checkout.
    let name = dest.file_name().and_then(|name| name.to_str()).unwrap_or("repo");
    let partial = dest.with_file_name(format!(".{name}.plat-partial"));
    if partial.exists() {
        fs_err::remove_dir_all(&partial)?;
    }
    if let Some(parent) = partial.parent() {
        fs_err::create_dir_all(parent)?;
    }
    let cloned = if options.fetch_with_cli || !libgit2_speaks(url) {
        clone_cli(url, &partial)
    } else {
        match clone_libgit2(url, &partial, progress) {
            Err(GitError::Git2(error)) if libgit2_cannot(&error) => {
                tracing::debug!("libgit2 cannot clone {url} ({}); using the git CLI", error.message());
                let _ = fs_err::remove_dir_all(&partial);
                clone_cli(url, &partial)
            }
            other => other.map(drop),
        }
    };
    if let Err(error) = cloned {
        let _ = fs_err::remove_dir_all(&partial);
        return Err(error);
    }
    fs_err::rename(&partial, dest)?;
    Ok(Repository::open(dest)?)
}

fn clone_libgit2(url: &str, into: &Path, progress: &mut dyn FnMut(Transfer)) -> Result<(), GitError> {
    set_timeouts();
    let attempts = Cell::new(0);
    let mut fetch = FetchOptions::new();
    fetch.remote_callbacks(callbacks(&attempts, progress)).download_tags(AutotagOption::All);
    RepoBuilder::new().fetch_options(fetch).clone(url, into).map_err(|error| auth_error(error, url, &attempts))?;
    Ok(())
}

fn clone_cli(url: &str, into: &Path) -> Result<(), GitError> {
    let into = into.to_str().ok_or_else(|| std::io::Error::other("clone path is not UTF-8"))?;
    run_git(None, &["clone", "--quiet", "--", url, into], "cloning")
}

/// Fetches every branch and tag of `origin`, pruning branches deleted there.
pub fn fetch(
    repo: &Repository,
    expected_url: &str,
    options: GitOptions,
    progress: &mut dyn FnMut(Transfer),
) -> Result<(), GitError> {
    let path = workdir(repo);
    let mut remote = repo.find_remote("origin")?;
    let actual = remote.url().unwrap_or_default().to_owned();
    if !same_remote(&actual, expected_url) {
        return Err(GitError::WrongRemote { path, actual, expected: expected_url.to_owned() });
    }
    if options.fetch_with_cli || !libgit2_speaks(&actual) {
        return fetch_cli(&path);
    }
    set_timeouts();
    let attempts = Cell::new(0);
    let mut fetch = FetchOptions::new();
    fetch.remote_callbacks(callbacks(&attempts, progress)).download_tags(AutotagOption::All).prune(FetchPrune::On);
    let no_refspecs: &[&str] = &[];
    match remote.fetch(no_refspecs, Some(&mut fetch), Some("plat sync: fetch")) {
        Ok(()) => Ok(()),
        Err(error) if libgit2_cannot(&error) => {
            tracing::debug!("libgit2 cannot fetch {actual} ({}); using the git CLI", error.message());
            fetch_cli(&path)
        }
        Err(error) => Err(auth_error(error, &actual, &attempts)),
    }
}

fn fetch_cli(path: &Path) -> Result<(), GitError> {
    run_git(Some(path), &["fetch", "--quiet", "--tags", "--prune", "--force", "origin"], "fetching")
}

/// Whether two URLs name the same repository: `x`, `x/` and `x.git` do.
fn same_remote(a: &str, b: &str) -> bool {
    let normal = |url: &str| url.trim_end_matches('/').trim_end_matches(".git").to_owned();
    normal(a) == normal(b)
}

/// Credentials from ssh-agent and git credential helpers, never a prompt, at most [`MAX_AUTH_ATTEMPTS`] times.
fn callbacks<'a>(attempts: &'a Cell<u32>, progress: &'a mut dyn FnMut(Transfer)) -> RemoteCallbacks<'a> {
    let mut callbacks = RemoteCallbacks::new();
    callbacks.credentials(move |url, username, allowed| {
        // libgit2 asks for the ssh user name separately; that is not an attempt to authenticate.
        if allowed.contains(CredentialType::USERNAME) {
            return Cred::username(username.unwrap_or("git"));
        }
        attempts.set(attempts.get() + 1);
        if attempts.get() > MAX_AUTH_ATTEMPTS {
            return Err(git2::Error::from_str("too many authentication attempts"));
        }
        if allowed.contains(CredentialType::SSH_KEY) {
            return Cred::ssh_key_from_agent(username.unwrap_or("git"));
        }
        if allowed.contains(CredentialType::USER_PASS_PLAINTEXT) {
            let config = git2::Config::open_default()?;
            return Cred::credential_helper(&config, url, username);
        }
        if allowed.contains(CredentialType::DEFAULT) {
            return Cred::default();
        }
        Err(git2::Error::from_str("no credentials available for this remote"))
    });
    callbacks.transfer_progress(move |stats| {
        progress(Transfer {
            received_objects: stats.received_objects(),
            total_objects: stats.total_objects(),
            received_bytes: stats.received_bytes(),
        });
        true
    });
    callbacks
}

/// An error after credentials were asked for is reported as an authentication failure, with libgit2's reason.
fn auth_error(error: git2::Error, url: &str, attempts: &Cell<u32>) -> GitError {
    if attempts.get() == 0 {
        return GitError::Git2(error);
    }
    GitError::Auth {
        url: url.to_owned(),
        attempts: attempts.get().min(MAX_AUTH_ATTEMPTS),
        reason: error.message().to_owned(),
    }
}

/// Whether cloning `url` needs the git CLI (libgit2 has no transport for it).
pub fn needs_cli(url: &str) -> bool {
    !libgit2_speaks(url)
}

/// Whether libgit2 has a transport for `url`. The git CLI also knows remote helpers
/// (`<transport>::<address>`, `git-remote-<scheme>`), which libgit2 would misread as scp-style ssh.
fn libgit2_speaks(url: &str) -> bool {
    let is_scheme = |scheme: &str| {
        scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    };
    if let Some((scheme, _)) = url.split_once("::")
        && is_scheme(scheme)
    {
        return false;
    }
    match url.split_once("://") {
        Some((scheme, _)) if is_scheme(scheme) => {
            matches!(scheme, "file" | "http" | "https" | "ssh" | "git" | "ssh+git" | "git+ssh")
        }
        // Local paths and scp-style `user@host:path`.
        _ => true,
    }
}

/// Errors that mean "libgit2 lacks this", where the git CLI may well succeed.
fn libgit2_cannot(error: &git2::Error) -> bool {
    let message = error.message();
    message.contains("unsupported URL protocol")
        || message.contains("unsupported extension")
        || message.contains("unsupported repository version")
}

/// Runs the git CLI without a terminal: no prompts, ssh in batch mode, stdin closed.
fn run_git(dir: Option<&Path>, args: &[&str], why: &str) -> Result<(), GitError> {
    let git = which::which("git").map_err(|_| GitError::CliMissing { why: why.to_owned() })?;
    let mut command = Command::new(git);
    if let Some(dir) = dir {
        command.current_dir(dir);
    }
    // Abort HTTP transfers slower than 1 KB/s for a minute: the CLI's own bound on a stalled server.
    command
        .args(["-c", "http.lowSpeedLimit=1000", "-c", "http.lowSpeedTime=60"])
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GCM_INTERACTIVE", "never")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if std::env::var_os("GIT_SSH_COMMAND").is_none() && std::env::var_os("GIT_SSH").is_none() {
        command.env("GIT_SSH_COMMAND", "ssh -o BatchMode=yes -o ConnectTimeout=15");
    }
    let output = command.output()?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let tail: Vec<&str> = stderr.lines().filter(|line| !line.trim().is_empty()).collect();
    Err(GitError::Cli {
        command: args.iter().filter(|arg| **arg != "--quiet").copied().collect::<Vec<_>>().join(" "),
        stderr: tail[tail.len().saturating_sub(3)..].join("; "),
    })
}

/// Opens an existing checkout; a directory that is not one is an error, not a place to clone into.
pub fn open(path: &Path) -> Result<Repository, GitError> {
    match Repository::open(path) {
        Ok(repo) => Ok(repo),
        Err(error) if error.code() == git2::ErrorCode::NotFound => {
            Err(GitError::NotARepository { path: path.to_path_buf() })
        }
        Err(error) => Err(error.into()),
    }
}

fn workdir(repo: &Repository) -> PathBuf {
    repo.workdir().unwrap_or_else(|| repo.path()).to_path_buf()
}

/// Resolves a manifest rev against the fetched remote: a branch of origin, a tag, or a commit.
/// `None` is the remote's default branch.
pub fn resolve(repo: &Repository, rev: Option<&str>, url: &str) -> Result<Target, GitError> {
    let rev = match rev {
        Some(rev) => rev.to_owned(),
        None => default_branch(repo).ok_or_else(|| GitError::NoDefaultBranch { repo: url.to_owned() })?,
    };
    if let Ok(reference) = repo.find_reference(&format!("refs/remotes/origin/{rev}")) {
        let commit = reference.peel_to_commit()?.id();
        return Ok(Target { kind: RevKind::Branch(rev), commit });
    }
    if let Ok(reference) = repo.find_reference(&format!("refs/tags/{rev}")) {
        let commit = reference.peel_to_commit()?.id();
        return Ok(Target { kind: RevKind::Tag(rev), commit });
    }
    let looks_like_commit = (4..=40).contains(&rev.len()) && rev.chars().all(|c| c.is_ascii_hexdigit());
    if looks_like_commit && let Ok(commit) = repo.revparse_single(&rev).and_then(|object| object.peel_to_commit()) {
        return Ok(Target { kind: RevKind::Commit, commit: commit.id() });
    }
    Err(GitError::RevNotFound { rev, repo: url.to_owned() })
}

/// The branch `origin/HEAD` points at, or `main` / `master` when the remote did not say.
fn default_branch(repo: &Repository) -> Option<String> {
    if let Ok(head) = repo.find_reference("refs/remotes/origin/HEAD")
        && let Ok(Some(target)) = head.symbolic_target()
    {
        return target.strip_prefix("refs/remotes/origin/").map(str::to_owned);
    }
    ["main", "master"]
        .into_iter()
        .find(|branch| repo.find_reference(&format!("refs/remotes/origin/{branch}")).is_ok())
        .map(str::to_owned)
}

/// Moves the checkout to `target` whenever git itself would, and never loses anything: local
/// changes and untracked files stay unless the move would overwrite them, in which case the
/// checkout is left exactly as it was and the reason says which files.
///
/// HEAD on the branch: fast-forward (as `git merge --ff-only`). HEAD elsewhere: switch (as `git
/// switch`), except that uncommitted changes to tracked files are not carried off a branch, and
/// a detached commit nothing else holds is not left behind.
pub fn update(repo: &Repository, target: &Target) -> Result<Update, GitError> {
    let head = repo.head().ok();
    let head_commit = head.as_ref().and_then(|head| head.peel_to_commit().ok()).map(|commit| commit.id());
    let head_branch =
        head.as_ref().filter(|head| head.is_branch()).and_then(|head| head.shorthand().ok().map(str::to_owned));
    // What leaving HEAD's branch or detached commit would cost, checked before switching.
    let may_leave = |repo: &Repository| -> Result<Option<Untouched>, GitError> {
        if let Some(branch) = &head_branch {
            let files = changed_tracked_files(repo)?;
            if !files.is_empty() {
                return Ok(Some(Untouched::LeavesBranch { branch: branch.clone(), files }));
            }
        } else if let Some(head) = head_commit
            && !reachable_from_refs(repo, head)?
        {
            return Ok(Some(Untouched::UnreachableHead { head }));
        }
        Ok(None)
    };

    match &target.kind {
        RevKind::Branch(branch) => {
            if head_branch.as_deref() == Some(branch.as_str()) {
                let local_commit = head_commit.expect("a checked-out branch has a commit");
                return fast_forward(repo, branch, local_commit, target.commit);
            }
            if let Some(reason) = may_leave(repo)? {
                return Ok(Update::Untouched(reason));
            }
            // The local branch, when there is one, must hold nothing the remote lacks... or be
            // ahead of it only, in which case it is checked out as it is (`git switch` would).
            let (tip, ahead) = match repo.find_branch(branch, BranchType::Local) {
                Ok(local) => {
                    let local_commit = local.get().peel_to_commit()?.id();
                    match repo.graph_ahead_behind(local_commit, target.commit)? {
                        (0, _) => (target.commit, 0),
                        (ahead, 0) => (local_commit, ahead),
                        (ahead, behind) => {
                            let branch = branch.clone();
                            return Ok(Update::Untouched(Untouched::Diverged { branch, ahead, behind }));
                        }
                    }
                }
                Err(_) => (target.commit, 0),
            };
            if let Err(files) = checkout(repo, tip)? {
                return Ok(Update::Untouched(Untouched::WouldOverwrite { files }));
            }
            match repo.find_branch(branch, BranchType::Local) {
                // Behind or at the target: moving it forward is a fast-forward.
                Ok(local) if ahead == 0 => {
                    local.into_reference().set_target(tip, "plat sync: fast-forward")?;
                }
                Ok(_) => {}
                Err(_) => {
                    let mut local = repo.branch(branch, &repo.find_commit(tip)?, false)?;
                    local.set_upstream(Some(&format!("origin/{branch}")))?;
                }
            }
            repo.set_head(&format!("refs/heads/{branch}"))?;
            if ahead > 0 {
                return Ok(Update::Ahead { commits: ahead });
            }
            Ok(Update::Switched { from: head_commit })
        }
        RevKind::Tag(_) | RevKind::Commit => {
            if head_commit == Some(target.commit) {
                if head_branch.is_none() {
                    return Ok(Update::UpToDate);
                }
                // Same commit, but on a branch: detaching touches no file and loses nothing.
                repo.set_head_detached(target.commit)?;
                return Ok(Update::Switched { from: head_commit });
            }
            if let Some(reason) = may_leave(repo)? {
                return Ok(Update::Untouched(reason));
            }
            if let Err(files) = checkout(repo, target.commit)? {
                return Ok(Update::Untouched(Untouched::WouldOverwrite { files }));
            }
            repo.set_head_detached(target.commit)?;
            Ok(Update::Switched { from: head_commit })
        }
    }
}

/// Moves the checked-out `branch` from `local` to `remote` if that is a fast-forward.
fn fast_forward(repo: &Repository, branch: &str, local: Oid, remote: Oid) -> Result<Update, GitError> {
    if local == remote {
        return Ok(Update::UpToDate);
    }
    match repo.graph_ahead_behind(local, remote)? {
        (0, _) => {
            if let Err(files) = checkout(repo, remote)? {
                return Ok(Update::Untouched(Untouched::WouldOverwrite { files }));
            }
            repo.find_reference(&format!("refs/heads/{branch}"))?.set_target(remote, "plat sync: fast-forward")?;
            Ok(Update::FastForwarded { from: local })
        }
        (ahead, 0) => Ok(Update::Ahead { commits: ahead }),
        (ahead, behind) => Ok(Update::Untouched(Untouched::Diverged { branch: branch.to_owned(), ahead, behind })),
    }
}

/// Updates the worktree and index from HEAD's tree to `commit`'s, as git does: local changes and
/// untracked files the move does not touch stay; when it would overwrite any, nothing is written
/// and the conflicting files are returned.
fn checkout(repo: &Repository, commit: Oid) -> Result<Result<(), Vec<String>>, GitError> {
    let object = repo.find_object(commit, None)?;
    let conflicts = std::cell::RefCell::new(Vec::new());
    let mut builder = CheckoutBuilder::new();
    builder.safe().notify_on(CheckoutNotificationType::CONFLICT).notify(|_, path, _, _, _| {
        if let Some(path) = path {
            conflicts.borrow_mut().push(path.to_string_lossy().into_owned());
        }
        true
    });
    // libgit2 finds every conflict before it writes a file, so a refused checkout changed nothing.
    let result = repo.checkout_tree(&object, Some(&mut builder));
    drop(builder);
    match result {
        Ok(()) => Ok(Ok(())),
        Err(error) if error.code() == git2::ErrorCode::Conflict => {
            let mut files = conflicts.into_inner();
            files.sort();
            files.dedup();
            Ok(Err(files))
        }
        Err(error) => Err(error.into()),
    }
}

/// Whether some branch, remote branch or tag contains `commit`.
fn reachable_from_refs(repo: &Repository, commit: Oid) -> Result<bool, GitError> {
    for reference in repo.references()? {
        let reference = reference?;
        if reference.kind() == Some(git2::ReferenceType::Symbolic) {
            continue;
        }
        let Ok(tip) = reference.peel_to_commit() else { continue };
        if tip.id() == commit || repo.graph_descendant_of(tip.id(), commit)? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Files that differ from HEAD: modified, staged, deleted, untracked; ignored ones excepted.
/// `pathspec` limits the count to one directory of the repository.
fn dirty_files(repo: &Repository, pathspec: Option<&str>) -> Result<usize, GitError> {
    let mut options = StatusOptions::new();
    options.include_untracked(true).recurse_untracked_dirs(true).include_ignored(false);
    if let Some(pathspec) = pathspec {
        options.pathspec(pathspec);
    }
    let statuses = repo.statuses(Some(&mut options))?;
    Ok(statuses.iter().filter(|entry| !entry.status().is_empty() && entry.status() != Status::IGNORED).count())
}

/// Tracked files with changes, staged or not: what a branch switch would carry along.
fn changed_tracked_files(repo: &Repository) -> Result<Vec<String>, GitError> {
    let mut options = StatusOptions::new();
    options.include_untracked(false).include_ignored(false);
    let statuses = repo.statuses(Some(&mut options))?;
    Ok(statuses
        .iter()
        .filter(|entry| !entry.status().is_empty() && !entry.status().intersects(Status::IGNORED | Status::WT_NEW))
        .filter_map(|entry| entry.path().ok().map(str::to_owned))
        .collect())
}

/// Branch, commit, dirty files and distance to the upstream of the checkout at `path`.
///
/// With `within`, `path` may be anywhere inside a repository (found by searching upward), and
/// only changes under `within` count: a service that lives inside the workspace repository.
pub fn status(path: &Path, within: Option<&Path>) -> Result<RepoStatus, GitError> {
    let repo = if within.is_some() { Repository::discover(path)? } else { open(path)? };
    let pathspec = match within {
        Some(dir) => {
            let workdir = repo.workdir().map(fs_err::canonicalize).transpose()?.unwrap_or_default();
            let dir = fs_err::canonicalize(dir)?;
            Some(dir.strip_prefix(&workdir).unwrap_or(&dir).to_string_lossy().into_owned())
        }
        None => None,
    };
    let mut status = RepoStatus { dirty: dirty_files(&repo, pathspec.as_deref())?, ..RepoStatus::default() };
    let Ok(head) = repo.head() else { return Ok(status) };
    status.commit = head.peel_to_commit().ok().map(|commit| commit.id());
    if !head.is_branch() {
        return Ok(status);
    }
    let Ok(name) = head.shorthand() else { return Ok(status) };
    status.branch = Some(name.to_owned());
    let branch = repo.find_branch(name, BranchType::Local)?;
    if let Ok(upstream) = branch.upstream() {
        status.upstream = upstream.name()?.map(str::to_owned);
        if let (Some(local), Some(remote)) = (status.commit, upstream.get().target()) {
            let (ahead, behind) = repo.graph_ahead_behind(local, remote)?;
            status.ahead = Some(ahead);
            status.behind = Some(behind);
        }
    }
    Ok(status)
}

/// Where a cloned checkout is against its manifest rev, as its last fetch saw the remote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutDrift {
    /// HEAD commit; `None` in an empty repository.
    pub head: Option<Oid>,
    /// Uncommitted files, ignored ones excepted.
    pub dirty: usize,
    /// When HEAD is not at the rev: the rev as said to a person, its commit, and the commits
    /// HEAD has that it lacks and the other way round.
    pub off_rev: Option<(String, Oid, usize, usize)>,
}

/// Compares the checkout at `path` with what `rev` of `url` names in its remote-tracking refs
/// (no fetch: `plat sync` fetches).
pub fn drift(path: &Path, url: &str, rev: Option<&str>) -> Result<CheckoutDrift, GitError> {
    let repo = open(path)?;
    let head = repo.head().ok().and_then(|head| head.peel_to_commit().ok()).map(|commit| commit.id());
    let dirty = dirty_files(&repo, None)?;
    let target = resolve(&repo, rev, url)?;
    let off_rev = match head {
        Some(head) if head == target.commit => None,
        head => {
            let (ahead, behind) = match head {
                Some(head) => repo.graph_ahead_behind(head, target.commit)?,
                None => (0, 0),
            };
            let rev = match &target.kind {
                RevKind::Branch(branch) => format!("{branch} (origin/{branch})"),
                RevKind::Tag(tag) => format!("tag {tag}"),
                RevKind::Commit => format!("commit {}", short(target.commit)),
            };
            Some((rev, target.commit, ahead, behind))
        }
    };
    Ok(CheckoutDrift { head, dirty, off_rev })
}

/// The commit HEAD of the checkout at `path` is at.
pub fn head_commit(path: &Path) -> Option<Oid> {
    Repository::open(path).ok()?.head().ok()?.peel_to_commit().ok().map(|commit| commit.id())
}

/// The files of the directory `dir` as git sees them: tracked (as they are on disk) and
/// untracked but not ignored, relative to `dir`, sorted. `None` when `dir` is in no repository.
///
/// What a build or test of the directory can read, minus what git ignores (`target/`, editor
/// files): the input set of `plat test`'s cache. `dir` may be a repository of its own or a
/// directory inside one (a service living in the workspace repository).
pub fn worktree_files(dir: &Path) -> Result<Option<Vec<PathBuf>>, GitError> {
    let repo = match Repository::discover(dir) {
        Ok(repo) => repo,
        Err(error) if error.code() == git2::ErrorCode::NotFound => return Ok(None),
        Err(error) => return Err(error.into()),
    };
    let Some(workdir) = repo.workdir() else { return Ok(None) };
    let workdir = fs_err::canonicalize(workdir)?;
    let dir = fs_err::canonicalize(dir)?;
    let prefix = dir.strip_prefix(&workdir).unwrap_or(Path::new("")).to_path_buf();
    let mut files = std::collections::BTreeSet::new();
    let index = repo.index()?;
    for entry in index.iter() {
        let path = PathBuf::from(String::from_utf8_lossy(&entry.path).into_owned());
        if let Ok(inside) = path.strip_prefix(&prefix) {
            files.insert(inside.to_path_buf());
        }
    }
    let mut options = StatusOptions::new();
    options.include_untracked(true).recurse_untracked_dirs(true).include_ignored(false);
    if !prefix.as_os_str().is_empty() {
        options.pathspec(prefix.to_string_lossy().into_owned());
    }
    for entry in repo.statuses(Some(&mut options))?.iter() {
        if !entry.status().contains(Status::WT_NEW) {
            continue;
        }
        if let Ok(path) = entry.path()
            && let Ok(inside) = Path::new(path).strip_prefix(&prefix)
        {
            files.insert(inside.to_path_buf());
        }
    }
    Ok(Some(files.into_iter().collect()))
}

/// Whether `path` is the root of a git checkout.
pub fn is_repository(path: &Path) -> bool {
    Repository::open(path).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_for_remote_helpers_go_to_the_git_cli() {
        for url in
            ["file:///srv/a.git", "https://example.com/a.git", "ssh://git@host/a.git", "git@host:a.git", "/srv/a.git"]
        {
            assert!(libgit2_speaks(url), "{url}");
        }
        for url in ["ext::ssh host %S a", "persistent-https://example.com/a.git", "s3://bucket/a.git"] {
            assert!(!libgit2_speaks(url), "{url}");
        }
    }

    #[test]
    fn libgit2_gaps_are_recognised() {
        let unsupported = git2::Error::from_str("unsupported URL protocol");
        assert!(libgit2_cannot(&unsupported));
        let refused = git2::Error::from_str("failed to connect to 127.0.0.1: Connection refused");
        assert!(!libgit2_cannot(&refused));
    }
}
