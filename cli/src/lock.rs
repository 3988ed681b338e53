//! `plat.lock`: the exact commit each service and library repository resolved to, so a
//! checkout can be reproduced.
//!
//! `plat sync` writes it; `plat sync --locked` checks out exactly what it says and refuses when it
//! no longer matches the manifest; `plat status`, `plat build` and `plat up` compare checkouts
//! with it.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::manifest::{Checkout, CheckoutKind, Source};

/// File name of the lock file, beside `workspace.toml`.
pub const LOCK_FILE: &str = "plat.lock";

/// The format version this build reads and writes. Version 1 gained `[[library]]` entries
/// without a bump: a lock file with none reads and writes exactly as before.
const VERSION: u32 = 1;

const HEADER: &str = "# This file is written by `plat sync`; commit it. Edit workspace.toml instead.\n";

/// The contents of `plat.lock`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lockfile {
    /// Format version.
    pub version: u32,
    /// One entry per service with its own repository, sorted by name.
    #[serde(default, rename = "service")]
    pub services: Vec<LockEntry>,
    /// One entry per library with its own repository, sorted by name.
    #[serde(default, rename = "library", skip_serializing_if = "Vec::is_empty")]
    pub libraries: Vec<LockEntry>,
}

/// One repository pinned to a commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockEntry {
    /// Service or library name.
    pub name: String,
    /// The repository URL the commit came from.
    pub repo: String,
    /// The manifest's `rev` when the commit was resolved (absent: the remote's default branch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rev: Option<String>,
    /// The full commit id.
    pub commit: String,
}

/// Why a lock entry cannot be used for a checkout.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LockMismatch {
    /// The service or library has no entry.
    #[error("`{name}` is not in plat.lock")]
    Missing {
        /// Service or library name.
        name: String,
    },
    /// The entry was resolved from another repository or rev than the manifest names now.
    #[error("`{name}` is locked to {locked}, but workspace.toml says {wanted}")]
    Changed {
        /// Service or library name.
        name: String,
        /// `repo@rev` in the lock.
        locked: String,
        /// `repo@rev` in the manifest.
        wanted: String,
    },
}

/// plat.lock could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Reading or writing failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The file is not a lock file this version of plat understands.
    #[error("{path} is not a valid lock file: {message}")]
    Invalid {
        /// The lock file.
        path: String,
        /// What is wrong.
        message: String,
    },
}

/// The lock file of a workspace: beside its manifest.
pub fn path(workspace: &crate::manifest::Workspace) -> std::path::PathBuf {
    workspace.root.join(LOCK_FILE)
}

impl Lockfile {
    /// Reads the lock file; `None` when there is none.
    pub fn read(path: &Path) -> Result<Option<Lockfile>, LockError> {
        let text = match fs_err::read_to_string(path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(error.into()),
        };
        let invalid = |message: String| LockError::Invalid { path: path.display().to_string(), message };
        let lock: Lockfile = toml::from_str(&text).map_err(|error| invalid(error.message().to_owned()))?;
        if lock.version != VERSION {
            return Err(invalid(format!(
                "version {} is not supported by this plat (it reads version {VERSION}); upgrade plat",
                lock.version
            )));
        }
        Ok(Some(lock))
    }

    /// Writes the lock file when its contents changed; returns whether it did.
    pub fn write(&self, path: &Path) -> Result<bool, LockError> {
        let mut lock = self.clone();
        lock.version = VERSION;
        lock.services.sort_by(|a, b| a.name.cmp(&b.name));
        lock.libraries.sort_by(|a, b| a.name.cmp(&b.name));
        let text = format!("{HEADER}{}", toml::to_string(&lock).expect("a lock file always serialises"));
        if fs_err::read_to_string(path).is_ok_and(|old| old == text) {
            return Ok(false);
        }
        // Write beside it and rename, so an interrupted write never leaves half a lock file.
        let temporary = path.with_extension("lock.tmp");
        fs_err::write(&temporary, text)?;
        fs_err::rename(&temporary, path)?;
        Ok(true)
    }

    fn entries(&self, kind: CheckoutKind) -> &Vec<LockEntry> {
        match kind {
            CheckoutKind::Service => &self.services,
            CheckoutKind::Library => &self.libraries,
        }
    }

    fn entries_mut(&mut self, kind: CheckoutKind) -> &mut Vec<LockEntry> {
        match kind {
            CheckoutKind::Service => &mut self.services,
            CheckoutKind::Library => &mut self.libraries,
        }
    }

    /// The entry for a service or library, whatever it says.
    pub fn get(&self, kind: CheckoutKind, name: &str) -> Option<&LockEntry> {
        self.entries(kind).iter().find(|locked| locked.name == name)
    }

    /// The entry for a checkout, if it was resolved from the repository and rev the manifest names now.
    pub fn entry_for(&self, checkout: &Checkout<'_>) -> Result<&LockEntry, LockMismatch> {
        let missing = || LockMismatch::Missing { name: checkout.name.to_owned() };
        let Source::Git { repo, rev } = checkout.source else { return Err(missing()) };
        let locked = self.get(checkout.kind, checkout.name).ok_or_else(missing)?;
        if &locked.repo != repo || &locked.rev != rev {
            let describe = |repo: &str, rev: &Option<String>| match rev {
                Some(rev) => format!("{repo} at `{rev}`"),
                None => format!("{repo} (default branch)"),
            };
            return Err(LockMismatch::Changed {
                name: checkout.name.to_owned(),
                locked: describe(&locked.repo, &locked.rev),
                wanted: describe(repo, rev),
            });
        }
        Ok(locked)
    }

    /// Records `commit` for a checkout, replacing its previous entry.
    pub fn record(&mut self, checkout: &Checkout<'_>, commit: String) {
        let Source::Git { repo, rev } = checkout.source else { return };
        let entries = self.entries_mut(checkout.kind);
        entries.retain(|locked| locked.name != checkout.name);
        entries.push(LockEntry { name: checkout.name.to_owned(), repo: repo.clone(), rev: rev.clone(), commit });
    }

    /// Drops the entries of services and libraries that the manifest no longer has as repositories.
    pub fn retain<'a>(&mut self, checkouts: impl IntoIterator<Item = Checkout<'a>>) {
        let repos: Vec<(CheckoutKind, &str)> = checkouts
            .into_iter()
            .filter(Checkout::is_repository)
            .map(|checkout| (checkout.kind, checkout.name))
            .collect();
        for kind in [CheckoutKind::Service, CheckoutKind::Library] {
            self.entries_mut(kind).retain(|locked| repos.contains(&(kind, locked.name.as_str())));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_skips_unchanged_writes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(LOCK_FILE);
        assert_eq!(Lockfile::read(&path).unwrap(), None);
        let lock = Lockfile {
            version: VERSION,
            services: vec![LockEntry {
                name: "b".into(),
                repo: "file:///b".into(),
                rev: Some("main".into()),
                commit: "0".repeat(40),
            }],
            libraries: vec![LockEntry {
                name: "pkg".into(),
                repo: "file:///pkg".into(),
                rev: None,
                commit: "1".repeat(40),
            }],
        };
        assert!(lock.write(&path).unwrap());
        assert!(!lock.write(&path).unwrap());
        assert_eq!(Lockfile::read(&path).unwrap(), Some(lock));
    }

    #[test]
    fn refuses_other_versions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(LOCK_FILE);
        std::fs::write(&path, "version = 7\n").unwrap();
        let error = Lockfile::read(&path).unwrap_err().to_string();
        assert!(error.contains("version 7 is not supported"), "{error}");
    }
}
