//! What each `plat test --contract` run verified, per pair of versions (consumer, provider), kept
//! in the workspace's state (`.plat/contracts.json`, local to the machine) so that
//! `plat test --contract --can-deploy SERVICE` answers from it whether a service's version was
//! verified against the versions of its neighbours.
//!
//! A service's version is the commit its checkout is at; with uncommitted changes under its
//! directory, the commit and a digest of those changes (`<commit>+dirty.<digest>`), so a record
//! never vouches for code it did not see.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use crate::manifest::Workspace;
use crate::state;

/// The file, in `.plat/`.
const FILE: &str = "contracts.json";

/// The result of one edge in one run.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Record {
    /// The consumer's service name.
    pub consumer: String,
    /// Its version.
    pub consumer_version: String,
    /// The provider's service name.
    pub provider: String,
    /// Its version.
    pub provider_version: String,
    /// Whether every check of the edge passed.
    pub passed: bool,
    /// The checks that failed, by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed: Vec<String>,
    /// When, in seconds since the Unix epoch.
    pub verified_at: u64,
}

#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Store {
    records: Vec<Record>,
}

/// The version of the checkout in `dir`: its commit, plus a digest of its uncommitted changes.
pub fn version(dir: &Path) -> Result<String, String> {
    let dir = dir.canonicalize().map_err(|error| format!("{}: {error}", dir.display()))?;
    let repo = git2::Repository::discover(&dir)
        .map_err(|_| format!("{} is not in a git repository: only commits are recorded", dir.display()))?;
    let head = repo
        .head()
        .and_then(|head| head.peel_to_commit())
        .map_err(|_| format!("{} has no commit yet: commit it, then verify", dir.display()))?
        .id()
        .to_string();
    let workdir = repo.workdir().and_then(|workdir| workdir.canonicalize().ok()).unwrap_or_default();
    let below = dir.strip_prefix(&workdir).unwrap_or(Path::new("")).to_string_lossy().replace('\\', "/");
    let mut options = git2::StatusOptions::new();
    options.include_untracked(true).recurse_untracked_dirs(true).include_ignored(false);
    if !below.is_empty() {
        options.pathspec(&below);
    }
    let statuses = repo.statuses(Some(&mut options)).map_err(|error| error.message().to_owned())?;
    let mut changed: Vec<String> = statuses.iter().filter_map(|entry| entry.path().ok().map(str::to_owned)).collect();
    if changed.is_empty() {
        return Ok(head);
    }
    changed.sort();
    let mut digest = Sha256::new();
    for path in changed {
        digest.update(path.as_bytes());
        digest.update([0]);
        // A deleted file digests as its path alone.
        digest.update(fs_err::read(workdir.join(&path)).unwrap_or_default());
        digest.update([0]);
    }
    let digest: String = digest.finalize().iter().take(6).map(|byte| format!("{byte:02x}")).collect();
    Ok(format!("{head}+dirty.{digest}"))
}

/// Every record.
pub fn read(workspace: &Workspace) -> Result<Vec<Record>, std::io::Error> {
    let path = state::dir(workspace).join(FILE);
    match fs_err::read_to_string(&path) {
        Ok(text) => serde_json::from_str::<Store>(&text)
            .map(|store| store.records)
            .map_err(|error| std::io::Error::other(format!("{}: {error}; delete it to start over", path.display()))),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(error) => Err(error),
    }
}

/// Adds `new` records, each replacing an older one of the same pair of versions.
pub fn write(workspace: &Workspace, new: Vec<Record>) -> Result<(), std::io::Error> {
    if new.is_empty() {
        return Ok(());
    }
    let mut records = read(workspace)?;
    records.retain(|old| !new.iter().any(|record| same_pair(old, record)));
    records.extend(new);
    let dir = state::ensure(workspace)?;
    let text = serde_json::to_string_pretty(&Store { records }).map_err(std::io::Error::other)?;
    // Written aside and renamed, so a reader never sees half a file.
    let staged = dir.join(format!("{FILE}.{}", std::process::id()));
    fs_err::write(&staged, text + "\n")?;
    fs_err::rename(&staged, dir.join(FILE))
}

fn same_pair(a: &Record, b: &Record) -> bool {
    a.consumer == b.consumer
        && a.consumer_version == b.consumer_version
        && a.provider == b.provider
        && a.provider_version == b.provider_version
}

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|elapsed| elapsed.as_secs()).unwrap_or_default()
}

/// One edge of a service, as `--can-deploy` judges it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct EdgeVerdict {
    /// The consumer.
    pub consumer: String,
    /// The provider.
    pub provider: String,
    /// The versions it was judged at, when both are known.
    pub versions: Option<(String, String)>,
    /// `verified`, `failed` (a run checked these versions and failed), or `unverified`.
    pub state: EdgeState,
    /// Why, for a failed or unverified edge.
    pub detail: Option<String>,
}

/// Where an edge stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EdgeState {
    /// A run passed at these versions.
    Verified,
    /// The last run at these versions failed.
    Failed,
    /// No run checked these versions (or a version is unknown).
    Unverified,
}

/// The edges of `service` (the providers it uses, the consumers that use it) at the versions of
/// the checkouts now, judged by the records.
pub fn can_deploy(workspace: &Workspace, service: &str, records: &[Record]) -> Vec<EdgeVerdict> {
    let mut edges: BTreeSet<(String, String)> = BTreeSet::new();
    for (consumer, provider) in super::edges(workspace) {
        if consumer == service || provider == service {
            edges.insert((consumer, provider));
        }
    }
    let version_of = |name: &str| match workspace.service(name) {
        Some(found) => version(&workspace.service_dir(found)),
        None => Err(format!("{name} is not a service of the workspace")),
    };
    edges
        .into_iter()
        .map(|(consumer, provider)| {
            let versions = version_of(&consumer).and_then(|c| version_of(&provider).map(|p| (c, p)));
            let (state, detail, versions) = match versions {
                Err(why) => (EdgeState::Unverified, Some(why), None),
                Ok((consumer_version, provider_version)) => {
                    let found = records.iter().find(|record| {
                        record.consumer == consumer
                            && record.provider == provider
                            && record.consumer_version == consumer_version
                            && record.provider_version == provider_version
                    });
                    let (state, detail) = match found {
                        Some(record) if record.passed => (EdgeState::Verified, None),
                        Some(record) => (EdgeState::Failed, Some(record.failed.join("; "))),
                        None => (EdgeState::Unverified, None),
                    };
                    (state, detail, Some((consumer_version, provider_version)))
                }
            };
            EdgeVerdict { consumer, provider, versions, state, detail }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(consumer_version: &str, passed: bool) -> Record {
        Record {
            consumer: "orders".into(),
            consumer_version: consumer_version.into(),
            provider: "users".into(),
            provider_version: "p1".into(),
            passed,
            failed: Vec::new(),
            verified_at: 1,
        }
    }

    #[test]
    fn a_new_record_replaces_the_one_of_the_same_versions_only() {
        let dir = tempfile::tempdir().unwrap();
        let manifest = "[workspace]\nname = \"p\"\n";
        let workspace = crate::manifest::load(&dir.path().join("workspace.toml"), manifest).unwrap();
        write(&workspace, vec![record("c1", false), record("c2", true)]).unwrap();
        write(&workspace, vec![record("c1", true)]).unwrap();
        let mut records = read(&workspace).unwrap();
        records.sort_by(|a, b| a.consumer_version.cmp(&b.consumer_version));
        assert_eq!(records, [record("c1", true), record("c2", true)]);
    }

    #[test]
    fn a_version_is_the_commit_and_the_uncommitted_changes_under_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let repo = git2::Repository::init(dir.path()).unwrap();
        std::fs::create_dir_all(dir.path().join("svc")).unwrap();
        std::fs::write(dir.path().join("svc/a.txt"), "one").unwrap();
        std::fs::write(dir.path().join("other.txt"), "x").unwrap();
        let mut index = repo.index().unwrap();
        index.add_all(["*"], git2::IndexAddOption::DEFAULT, None).unwrap();
        index.write().unwrap();
        let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
        let signature = git2::Signature::now("t", "t@example.com").unwrap();
        let commit = repo.commit(Some("HEAD"), &signature, &signature, "c", &tree, &[]).unwrap().to_string();

        let svc = dir.path().join("svc");
        assert_eq!(version(&svc).unwrap(), commit);
        // A change elsewhere in the repository is not this service's.
        std::fs::write(dir.path().join("other.txt"), "y").unwrap();
        assert_eq!(version(&svc).unwrap(), commit);
        std::fs::write(svc.join("a.txt"), "two").unwrap();
        let dirty = version(&svc).unwrap();
        assert!(dirty.starts_with(&format!("{commit}+dirty.")), "{dirty}");
        assert_eq!(version(&svc).unwrap(), dirty, "the same changes, the same version");
        std::fs::write(svc.join("a.txt"), "three").unwrap();
        assert_ne!(version(&svc).unwrap(), dirty);
        assert!(version(tempfile::tempdir().unwrap().path()).unwrap_err().contains("not in a git repository"));
    }
}
