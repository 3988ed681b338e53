//! The migration files compared with the history table: what is applied, pending, changed or
//! missing, and which of those make a run unsafe.

use std::path::PathBuf;

use super::db::Applied;
use super::files::{Migration, Migrations};

/// Where one migration stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Applied, and the file still has the checksum it was applied with.
    Applied,
    /// Not applied yet.
    Pending,
    /// Applied, and the file changed since.
    Changed,
    /// Applied, and the file with its version has another name now, with the same content.
    Renamed,
    /// Applied, and its file is gone.
    Missing,
    /// Recorded as failed (`success = false`, by another tool or a hand edit).
    Failed,
}

/// One version, from the files, the history, or both.
#[derive(Debug, Clone)]
pub struct Entry<'a> {
    /// Version.
    pub version: i64,
    /// Where it stands.
    pub state: State,
    /// The file, unless missing.
    pub migration: Option<&'a Migration>,
    /// The history row, if applied.
    pub applied: Option<&'a Applied>,
    /// Pending, with a version below the newest applied one.
    pub out_of_order: bool,
}

impl Entry<'_> {
    /// The name from the file, else from the history.
    pub fn name(&self) -> &str {
        match (self.migration, self.applied) {
            (Some(migration), _) => &migration.name,
            (None, Some(applied)) => &applied.name,
            (None, None) => "",
        }
    }
}

/// Every version in order.
#[derive(Debug, Clone)]
pub struct Plan<'a> {
    /// By version.
    pub entries: Vec<Entry<'a>>,
}

/// Something that stops a run before it starts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// An applied migration's file changed.
    #[error("`{}` changed after it was applied: checksum recorded {recorded}, file now {current}", .file.display())]
    Changed {
        /// Version.
        version: i64,
        /// The file.
        file: PathBuf,
        /// Checksum in the history table.
        recorded: String,
        /// Checksum of the file now.
        current: String,
        /// The name it was applied with, when the file's name differs too: then the file is
        /// most likely another migration that took the same version (two branches).
        applied_as: Option<String>,
    },
    /// An applied migration's file has another name, and the same content.
    #[error("`{}` (version {version}) was applied as `{applied_as}`", .file.display())]
    Renamed {
        /// Version.
        version: i64,
        /// The file.
        file: PathBuf,
        /// The name recorded.
        applied_as: String,
    },
    /// An applied migration's file is gone.
    #[error("version {version} ({name}) was applied, and its file is gone")]
    Missing {
        /// Version.
        version: i64,
        /// Name recorded.
        name: String,
        /// Newer than every file here: most likely applied from another branch.
        newer_than_files: bool,
    },
    /// A pending migration older than the newest applied one.
    #[error("`{}` (version {version}) is pending, and version {latest} is already applied", .file.display())]
    OutOfOrder {
        /// Version.
        version: i64,
        /// The file.
        file: PathBuf,
        /// The newest applied version.
        latest: i64,
    },
    /// A history row says the migration failed.
    #[error("version {version} ({name}) is recorded as failed; the database may hold part of it")]
    Failed {
        /// Version.
        version: i64,
        /// Name recorded.
        name: String,
    },
}

impl<'a> Plan<'a> {
    /// Lays the files and the history side by side.
    pub fn new(migrations: &'a Migrations, history: &'a [Applied]) -> Plan<'a> {
        let latest = history.iter().map(|applied| applied.version).max();
        let mut entries: Vec<Entry<'a>> = Vec::new();
        for migration in &migrations.list {
            let applied = history.iter().find(|applied| applied.version == migration.version);
            let state = match applied {
                None => State::Pending,
                Some(applied) if !applied.success => State::Failed,
                Some(applied) if applied.checksum != migration.checksum.to_hex() => State::Changed,
                Some(applied) if applied.name != migration.name => State::Renamed,
                Some(_) => State::Applied,
            };
            let out_of_order = state == State::Pending && latest.is_some_and(|latest| migration.version < latest);
            entries.push(Entry {
                version: migration.version,
                state,
                migration: Some(migration),
                applied,
                out_of_order,
            });
        }
        for applied in history {
            if migrations.get(applied.version).is_none() {
                let state = if applied.success { State::Missing } else { State::Failed };
                entries.push(Entry {
                    version: applied.version,
                    state,
                    migration: None,
                    applied: Some(applied),
                    out_of_order: false,
                });
            }
        }
        entries.sort_by_key(|entry| entry.version);
        Plan { entries }
    }

    /// The newest version that has a file.
    pub fn newest_file(&self) -> Option<i64> {
        self.entries.iter().filter(|entry| entry.migration.is_some()).map(|entry| entry.version).max()
    }

    /// The newest applied version.
    pub fn latest_applied(&self) -> Option<i64> {
        self.entries.iter().filter(|entry| entry.applied.is_some()).map(|entry| entry.version).max()
    }

    /// Migrations to apply, in order.
    pub fn pending(&self) -> impl Iterator<Item = &'a Migration> + '_ {
        self.entries.iter().filter(|entry| entry.state == State::Pending).filter_map(|entry| entry.migration)
    }

    /// How many entries are in `state`.
    pub fn count(&self, state: State) -> usize {
        self.entries.iter().filter(|entry| entry.state == state).count()
    }

    /// Everything that makes applying unsafe; out-of-order pending ones only unless allowed.
    pub fn problems(&self, allow_out_of_order: bool) -> Vec<Problem> {
        let latest = self.latest_applied();
        let mut problems = Vec::new();
        for entry in &self.entries {
            match (entry.state, entry.migration, entry.applied) {
                (State::Changed, Some(migration), Some(applied)) => problems.push(Problem::Changed {
                    version: entry.version,
                    file: migration.path.clone(),
                    recorded: applied.checksum.clone(),
                    current: migration.checksum.to_hex(),
                    applied_as: (applied.name != migration.name).then(|| applied.name.clone()),
                }),
                (State::Renamed, Some(migration), Some(applied)) => problems.push(Problem::Renamed {
                    version: entry.version,
                    file: migration.path.clone(),
                    applied_as: applied.name.clone(),
                }),
                (State::Missing, _, Some(applied)) => problems.push(Problem::Missing {
                    version: entry.version,
                    name: applied.name.clone(),
                    newer_than_files: self.newest_file().is_none_or(|newest| entry.version > newest),
                }),
                (State::Failed, _, Some(applied)) => {
                    problems.push(Problem::Failed { version: entry.version, name: applied.name.clone() })
                }
                (State::Pending, Some(migration), _) if entry.out_of_order && !allow_out_of_order => {
                    problems.push(Problem::OutOfOrder {
                        version: entry.version,
                        file: migration.path.clone(),
                        latest: latest.expect("out of order means something is applied"),
                    })
                }
                _ => {}
            }
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migrate::files::{Checksum, Format};

    fn migration(version: i64, sql: &str) -> Migration {
        Migration {
            version,
            name: format!("m{version}"),
            format: Format::Plain,
            path: PathBuf::from(format!("{version}_m{version}.sql")),
            sql: sql.to_owned(),
            checksum: Checksum::of(sql),
            no_transaction: false,
            dialect: None,
            down: None,
            down_section: None,
        }
    }

    fn applied(version: i64, sql: &str) -> Applied {
        Applied {
            version,
            name: format!("m{version}"),
            checksum: Checksum::of(sql).to_hex(),
            applied_at: String::new(),
            execution_ms: 1,
            success: true,
        }
    }

    #[test]
    fn sorts_every_case() {
        let migrations = Migrations {
            dir: PathBuf::new(),
            list: vec![migration(1, "a"), migration(2, "b changed"), migration(3, "c"), migration(5, "e")],
        };
        let mut history = vec![applied(1, "a"), applied(2, "b"), applied(4, "d"), applied(5, "e")];
        history[3].name = "old_name".to_owned();
        let plan = Plan::new(&migrations, &history);
        let states: Vec<(i64, State, bool)> =
            plan.entries.iter().map(|e| (e.version, e.state, e.out_of_order)).collect();
        assert_eq!(
            states,
            [
                (1, State::Applied, false),
                (2, State::Changed, false),
                (3, State::Pending, true),
                (4, State::Missing, false),
                (5, State::Renamed, false)
            ]
        );
        assert_eq!(plan.problems(false).len(), 4);
        assert_eq!(plan.problems(true).len(), 3);
        assert_eq!(plan.pending().map(|m| m.version).collect::<Vec<_>>(), [3]);
    }
}
