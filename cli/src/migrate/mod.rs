//! `plat migrate`: each service's SQL migrations applied to its own PostgreSQL database, once
//! and in order, each in its own transaction with its history row, with concurrent runs
//! serialised by an advisory lock.
//!
//! API boundary: [`url::resolve`], [`load`] and [`migrate`] are what `plat migrate` and
//! `plat up` (before it starts a service) call; [`history`], [`repair`], [`down`] and
//! [`files::create`] serve the other `plat migrate` subcommands. Nothing here prints: progress arrives as [`MigrateEvent`]s and
//! outcomes as return values. See docs/migrations.md for the rules enforced here.

pub mod db;
pub mod files;
pub mod foreign;
pub mod plan;
pub mod sections;
pub mod sql;
pub mod tls;
pub mod url;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use tokio_postgres::Client;
use tokio_postgres::error::SqlState;

pub use db::{Applied, Blocker, CONNECT_TIMEOUT, LockHolder, OpenError};
pub use files::{Checksum, FilesError, Format, Migration, Migrations};
pub use plan::{Entry, Plan, Problem, State};
pub use url::{DatabaseTarget, UrlError, UrlOrigin, UrlSources};

use crate::manifest::{MigrateSettings, Service, Workspace};
use db::{History, LockOutcome};

/// How long a statement has to stop after plat sent the server a cancel request.
const CANCEL_GRACE: Duration = Duration::from_secs(5);

/// Asks a run to stop (Ctrl-C, SIGTERM): between files it stops at once; during a file it sends
/// PostgreSQL a cancel request for the running statement and waits [`CANCEL_GRACE`] for it.
#[derive(Debug, Clone, Default)]
pub struct Stop(Option<tokio::sync::watch::Receiver<bool>>);

/// The caller's side of a [`Stop`].
#[derive(Debug)]
pub struct StopHandle(tokio::sync::watch::Sender<bool>);

impl StopHandle {
    /// Asks the run to stop.
    pub fn stop(&self) {
        let _ = self.0.send(true);
    }
}

impl Stop {
    /// A stop and the handle that triggers it.
    pub fn new() -> (StopHandle, Stop) {
        let (sender, receiver) = tokio::sync::watch::channel(false);
        (StopHandle(sender), Stop(Some(receiver)))
    }

    /// Whether a stop was asked for.
    pub fn is_requested(&self) -> bool {
        self.0.as_ref().is_some_and(|receiver| *receiver.borrow())
    }

    /// Completes when a stop is asked for; never, for a run nobody can stop.
    pub async fn requested(&self) {
        if let Some(receiver) = &self.0 {
            let mut receiver = receiver.clone();
            if receiver.wait_for(|stop| *stop).await.is_ok() {
                return;
            }
        }
        std::future::pending::<()>().await;
    }
}

/// How to run migrations.
#[derive(Debug, Clone)]
pub struct MigrateOptions {
    /// How long to wait for another run's lock on the same database before giving up.
    pub lock_timeout: Duration,
    /// How long one statement may run (PostgreSQL's `statement_timeout`); zero for no limit.
    pub statement_timeout: Duration,
    /// How long one statement may wait for a lock on a table or row (PostgreSQL's
    /// `lock_timeout`); zero for no limit.
    pub statement_lock_timeout: Duration,
    /// Apply pending migrations older than the newest applied one instead of refusing.
    pub allow_out_of_order: bool,
    /// Stops the run on the caller's word.
    pub stop: Stop,
}

impl MigrateOptions {
    /// The workspace's `[workspace.migrate]` limits.
    pub fn new(settings: &MigrateSettings) -> Self {
        MigrateOptions {
            lock_timeout: settings.lock_timeout,
            statement_timeout: settings.statement_timeout,
            statement_lock_timeout: settings.statement_lock_timeout,
            allow_out_of_order: false,
            stop: Stop::default(),
        }
    }

    /// The session settings every statement of a run is under, plat's own included.
    fn session_settings(&self) -> String {
        format!(
            "SET statement_timeout = {}; SET lock_timeout = {}",
            self.statement_timeout.as_millis(),
            self.statement_lock_timeout.as_millis()
        )
    }
}

impl Default for MigrateOptions {
    fn default() -> Self {
        MigrateOptions::new(&MigrateSettings::default())
    }
}

/// Progress, for the caller to render.
#[derive(Debug)]
pub enum MigrateEvent<'a> {
    /// The service database did not exist; it does now.
    DatabaseCreated {
        /// Service.
        service: &'a str,
        /// Database.
        database: &'a str,
    },
    /// Another session holds the migration lock; waiting for it.
    LockWaiting {
        /// Service.
        service: &'a str,
        /// Database.
        database: &'a str,
        /// Who holds it, when the server says.
        holder: Option<&'a LockHolder>,
        /// How long we wait at most.
        timeout: Duration,
    },
    /// The lock is ours, after waiting this long.
    LockAcquired {
        /// Service.
        service: &'a str,
        /// Time spent waiting.
        waited: Duration,
    },
    /// A migration starts.
    Applying {
        /// Service.
        service: &'a str,
        /// The migration.
        migration: &'a Migration,
    },
    /// A migration's statement waits for a lock other sessions hold.
    Blocked {
        /// Service.
        service: &'a str,
        /// The file running.
        file: &'a std::path::Path,
        /// Who holds what it waits for.
        holders: &'a [Blocker],
        /// How long it may wait (the statement lock timeout; zero for no limit).
        limit: Duration,
    },
    /// A migration and its history row are committed.
    Applied {
        /// Service.
        service: &'a str,
        /// The migration.
        migration: &'a Migration,
        /// How long its SQL ran.
        took: Duration,
    },
    /// A migration was undone with its down file, and its history row removed.
    Undone {
        /// Service.
        service: &'a str,
        /// What was undone.
        undo: &'a Undo,
        /// How long the down file ran.
        took: Duration,
    },
}

/// Callback for events; `Sync` so that callers may run several services at once.
pub type OnEvent<'a> = &'a (dyn Fn(MigrateEvent<'_>) + Sync);

/// Why a migration run stopped. Every variant leaves the database as the last committed
/// migration left it.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// The service has no usable database URL.
    #[error(transparent)]
    Url(#[from] UrlError),
    /// The migration files are wrong or cannot be read.
    #[error(transparent)]
    Files(#[from] FilesError),
    /// The database could not be reached or created.
    #[error(transparent)]
    Open(#[from] OpenError),
    /// Another run held the lock for the whole timeout.
    #[error(
        "timed out after {}s waiting for the migration lock on database `{database}`, held by {}",
        .waited.as_secs_f64().round(),
        .holder.as_ref().map_or_else(|| "a session that has since gone".to_owned(), ToString::to_string)
    )]
    LockTimeout {
        /// Database.
        database: String,
        /// Time waited.
        waited: Duration,
        /// Who held it at the end.
        holder: Option<LockHolder>,
    },
    /// The history and the files disagree; nothing was run.
    #[error("refusing to migrate database `{database}`: {}", problems_summary(.problems))]
    Unsafe {
        /// Database.
        database: String,
        /// Each disagreement.
        problems: Vec<Problem>,
    },
    /// A migration failed; it left nothing behind (unless it ran outside a transaction).
    #[error("{0}")]
    Failed(Box<Failure>),
    /// `down` asked to undo migrations that have no `.down.sql`; nothing was undone.
    #[error("cannot undo {}: no `.down.sql` file", list_files(.0))]
    NoDown(Vec<PathBuf>),
    /// No schema is current, so there is nowhere for the history table.
    #[error("database `{0}` has no current schema to keep the history table in (check search_path)")]
    NoSchema(String),
    /// Another tool's history says migrations were applied, and plat's has none: applying
    /// would run them again.
    #[error(
        "database `{database}` has {}'s history (`{}`) and none of plat's: applying would run again what {} applied",
        .tool.name(), .tool.table(), .tool.name()
    )]
    ForeignHistory {
        /// Database.
        database: String,
        /// The tool.
        tool: foreign::Tool,
    },
    /// `import` cannot take the history over.
    #[error("cannot import {}'s history (`{}`): {reason}", .tool.name(), .tool.table())]
    NotImportable {
        /// The tool.
        tool: foreign::Tool,
        /// Why.
        reason: String,
    },
    /// `mark` was asked for a version it cannot record.
    #[error("cannot mark version {version} as applied: {reason}")]
    NotMarkable {
        /// The version asked for.
        version: i64,
        /// Why not.
        reason: String,
    },
    /// The run was asked to stop between two statements: what was applied stays, nothing else ran.
    #[error("stopped before {}", .not_applied.first().map_or_else(|| "the end".to_owned(), |file| format!("`{file}`")))]
    Interrupted {
        /// Migrations this run applied (or undid) before it stopped.
        done: Vec<String>,
        /// Files not run, in order.
        not_applied: Vec<String>,
    },
    /// A query of plat's own failed.
    #[error("database `{database}`: {reason}")]
    Database {
        /// Database.
        database: String,
        /// The server's or the driver's words.
        reason: String,
    },
}

fn problems_summary(problems: &[Problem]) -> String {
    match problems {
        [one] => one.to_string(),
        many => format!("{} problems with the applied migrations", many.len()),
    }
}

fn list_files(files: &[PathBuf]) -> String {
    files.iter().map(|file| format!("`{}`", file.display())).collect::<Vec<_>>().join(", ")
}

/// A migration (or down file) that the server refused.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The file that failed.
    pub file: PathBuf,
    /// Its version.
    pub version: i64,
    /// Line and column in the file, when the server gave a position.
    pub position: Option<(usize, usize)>,
    /// The text of that line.
    pub source_line: Option<String>,
    /// SQLSTATE, e.g. `42P01`.
    pub code: Option<String>,
    /// The server's message (or the driver's, when the connection failed).
    pub message: String,
    /// The server's detail.
    pub detail: Option<String>,
    /// The server's hint.
    pub hint: Option<String>,
    /// The server's context (e.g. the PL/pgSQL line).
    pub context: Option<String>,
    /// The file ran outside a transaction, so part of it may have been applied.
    pub no_transaction: bool,
    /// Migrations this run applied (or, undoing, undid) before this one; they stay so.
    pub applied_before: usize,
    /// The file was a `.down.sql` being undone.
    pub undoing: bool,
    /// The server stopped the statement at one of plat's limits, or on a cancel request.
    pub stopped: Option<Stopped>,
    /// For a no-transaction file: the indexes it names, as they are in the database now.
    pub indexes: Vec<db::IndexState>,
    /// The sessions holding the lock its statement last waited for.
    pub blocked_by: Vec<Blocker>,
}

/// Why the server stopped a statement that was not wrong in itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// It ran longer than the statement timeout.
    StatementTimeout(Duration),
    /// It waited longer than the statement lock timeout for a lock another session holds.
    LockTimeout(Duration),
    /// plat asked the server to cancel it (Ctrl-C, SIGTERM).
    Cancelled,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some((line, column)) = self.position {
            write!(f, ":{line}:{column}")?;
        }
        write!(f, ": {}", self.message)?;
        if let Some(code) = &self.code {
            write!(f, " (SQLSTATE {code})")?;
        }
        Ok(())
    }
}

/// What a run did.
#[derive(Debug, Clone, Default)]
pub struct MigrateReport {
    /// Whether plat created the database.
    pub database_created: bool,
    /// Migrations applied by this run, in order: version, file name, how long it took.
    pub applied: Vec<(i64, String, Duration)>,
    /// Migrations that were applied already.
    pub already_applied: usize,
    /// Time spent waiting for the lock.
    pub lock_waited: Duration,
    /// Pending files this run has not applied (yet), in order.
    pub not_applied: Vec<String>,
}

/// A migration to undo, newest first.
#[derive(Debug, Clone)]
pub struct Undo {
    /// Version.
    pub version: i64,
    /// Name.
    pub name: String,
    /// The up file.
    pub file: PathBuf,
    /// The file that undoes it: a `.down.sql` or Flyway `U` file, or the up file itself when
    /// its down section (goose, dbmate) does.
    pub down: PathBuf,
    /// That down section.
    pub section: Option<sections::Section>,
}

/// What a repair changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Repaired {
    /// The checksum of an applied migration now matches its file.
    Checksum {
        /// Version.
        version: i64,
        /// The file.
        file: PathBuf,
        /// Checksum before.
        old: String,
        /// Checksum now.
        new: String,
    },
    /// An applied migration's history row now has its file's new name.
    Renamed {
        /// Version.
        version: i64,
        /// The file.
        file: PathBuf,
        /// The name recorded before.
        old: String,
    },
    /// A row recorded as failed was removed, so the migration runs again.
    ForgotFailed {
        /// Version.
        version: i64,
        /// Name.
        name: String,
    },
}

/// Reads a service's migration files.
///
/// # Panics
///
/// When the service has no `database`: callers select services with one ([`url::resolve`]
/// refuses the others with [`UrlError::NoDatabase`]).
pub fn load(workspace: &Workspace, service: &Service) -> Result<Migrations, FilesError> {
    let service_dir = workspace.service_dir(service);
    let database = service.database.as_ref().expect("only services with a database have migrations");
    files::read(&service_dir, &database.migrations.under(&service_dir))
}

/// Applies the pending migrations of one service database, creating the database if needed.
///
/// Refuses before running anything when the history disagrees with the files (see
/// [`Plan::problems`]) or a pending file cannot run as asked. Stops at the first failing
/// migration; the ones before it stay applied.
pub async fn migrate(
    target: &DatabaseTarget,
    migrations: &Migrations,
    options: &MigrateOptions,
    on_event: OnEvent<'_>,
) -> Result<MigrateReport, MigrateError> {
    let (client, created) = db::open(target, true).await?;
    let mut client = client.expect("open creates the database");
    if created {
        on_event(MigrateEvent::DatabaseCreated { service: &target.service, database: &target.database });
    }
    let mut report = MigrateReport { database_created: created, ..MigrateReport::default() };
    // Inside a file, the file's runner answers a stop itself (cancel, then wait): dropping the
    // work there would leave the statement running on the server. Anywhere else (waiting for
    // the lock, reading the history) nothing is half done, and the work is dropped at once.
    let in_file = std::sync::atomic::AtomicBool::new(false);
    let outcome = {
        let work = async {
            limit(&client, target, options).await?;
            report.lock_waited = lock(&client, target, options, on_event).await?;
            let result = apply_pending(&mut client, target, migrations, options, on_event, &mut report, &in_file).await;
            unlock(&client).await;
            result
        };
        tokio::pin!(work);
        tokio::select! {
            result = &mut work => Some(result),
            () = options.stop.requested() => {
                if in_file.load(std::sync::atomic::Ordering::SeqCst) { Some(work.await) } else { None }
            }
        }
    };
    match outcome {
        Some(result) => result.map(|()| report),
        None => Err(MigrateError::Interrupted {
            done: report.applied.iter().map(|(_, name, _)| name.clone()).collect(),
            not_applied: report.not_applied.clone(),
        }),
    }
}

async fn apply_pending(
    client: &mut Client,
    target: &DatabaseTarget,
    migrations: &Migrations,
    options: &MigrateOptions,
    on_event: OnEvent<'_>,
    report: &mut MigrateReport,
    in_file: &std::sync::atomic::AtomicBool,
) -> Result<(), MigrateError> {
    let history = locate_history(client, target).await?;
    history.ensure(client).await.map_err(|error| database_error(target, &error))?;
    let rows = history.read(client).await.map_err(|error| database_error(target, &error))?;
    let plan = Plan::new(migrations, &rows);
    let problems = plan.problems(options.allow_out_of_order);
    if !problems.is_empty() {
        return Err(MigrateError::Unsafe { database: target.database.clone(), problems });
    }
    let pending: Vec<&Migration> = plan.pending().collect();
    if rows.is_empty() && !pending.is_empty() {
        let found = foreign::find(client).await.map_err(|error| database_error(target, &error))?;
        if let Some(tool) = found.first() {
            return Err(MigrateError::ForeignHistory { database: target.database.clone(), tool: *tool });
        }
    }
    check_all(pending.iter().map(|migration| (&*migration.path, migration.sql.as_str(), migration.no_transaction)))?;
    report.already_applied = plan.count(State::Applied);
    report.not_applied = pending.iter().map(|migration| migration.file_name()).collect();
    for migration in pending {
        if options.stop.is_requested() {
            return Err(MigrateError::Interrupted {
                done: report.applied.iter().map(|(_, name, _)| name.clone()).collect(),
                not_applied: report.not_applied.clone(),
            });
        }
        on_event(MigrateEvent::Applying { service: &target.service, migration });
        let record =
            Record::Insert { version: migration.version, name: &migration.name, checksum: migration.checksum.to_hex() };
        in_file.store(true, std::sync::atomic::Ordering::SeqCst);
        let watch = Watch { target, file: &migration.path, options, on_event };
        let ran = run_file(client, &history, &watch, &migration.sql, migration.no_transaction, record).await;
        in_file.store(false, std::sync::atomic::Ordering::SeqCst);
        let took = ran.map_err(|error| {
            let ran = Ran {
                file: &migration.path,
                version: migration.version,
                sql: &migration.sql,
                no_transaction: migration.no_transaction,
                undoing: false,
            };
            failure(error, &ran, options, report.applied.len())
        })?;
        on_event(MigrateEvent::Applied { service: &target.service, migration, took });
        report.applied.push((migration.version, migration.file_name(), took));
        report.not_applied.remove(0);
    }
    Ok(())
}

/// The history rows of one service database; `None` when the database does not exist yet.
/// Reads without the lock: a run in progress shows as it was at its last commit.
pub async fn history(target: &DatabaseTarget) -> Result<Option<Vec<Applied>>, MigrateError> {
    let (client, _) = db::open(target, false).await?;
    let Some(client) = client else { return Ok(None) };
    let history = locate_history(&client, target).await?;
    let rows = history.read(&client).await.map_err(|error| database_error(target, &error))?;
    Ok(Some(rows))
}

/// Records the file's checksum for every applied migration whose file changed, and its name
/// for every one renamed, and forgets rows recorded as failed. Runs only when asked: a changed file usually means a mistake.
pub async fn repair(
    target: &DatabaseTarget,
    migrations: &Migrations,
    options: &MigrateOptions,
    on_event: OnEvent<'_>,
) -> Result<Vec<Repaired>, MigrateError> {
    let (client, _) = db::open(target, false).await?;
    let Some(client) = client else { return Ok(Vec::new()) };
    limit(&client, target, options).await?;
    lock(&client, target, options, on_event).await?;
    let result = async {
        let history = locate_history(&client, target).await?;
        let rows = history.read(&client).await.map_err(|error| database_error(target, &error))?;
        let plan = Plan::new(migrations, &rows);
        let mut repaired = Vec::new();
        for entry in &plan.entries {
            match (entry.state, entry.migration, entry.applied) {
                (State::Changed, Some(migration), Some(applied)) => {
                    let new = migration.checksum.to_hex();
                    history
                        .set_checksum(&client, entry.version, &new)
                        .await
                        .map_err(|error| database_error(target, &error))?;
                    repaired.push(Repaired::Checksum {
                        version: entry.version,
                        file: migration.path.clone(),
                        old: applied.checksum.clone(),
                        new,
                    });
                }
                (State::Renamed, Some(migration), Some(applied)) => {
                    history
                        .set_name(&client, entry.version, &migration.name)
                        .await
                        .map_err(|error| database_error(target, &error))?;
                    repaired.push(Repaired::Renamed {
                        version: entry.version,
                        file: migration.path.clone(),
                        old: applied.name.clone(),
                    });
                }
                (State::Failed, _, Some(applied)) => {
                    history.delete(&client, entry.version).await.map_err(|error| database_error(target, &error))?;
                    repaired.push(Repaired::ForgotFailed { version: entry.version, name: applied.name.clone() });
                }
                _ => {}
            }
        }
        Ok(repaired)
    }
    .await;
    unlock(&client).await;
    result
}

/// Records one pending migration as applied without running it, with its file's checksum: for
/// a file whose work is already in the database (a concurrent index built by a run that was
/// killed before it could record it, a change made by hand). Returns the migration recorded.
pub async fn mark(
    target: &DatabaseTarget,
    migrations: &Migrations,
    version: i64,
    options: &MigrateOptions,
    on_event: OnEvent<'_>,
) -> Result<Migration, MigrateError> {
    let not_markable = |reason: String| MigrateError::NotMarkable { version, reason };
    let (client, _) = db::open(target, false).await?;
    let Some(client) = client else {
        return Err(not_markable(format!("database `{}` does not exist yet", target.database)));
    };
    limit(&client, target, options).await?;
    lock(&client, target, options, on_event).await?;
    let result = async {
        let history = locate_history(&client, target).await?;
        history.ensure(&client).await.map_err(|error| database_error(target, &error))?;
        let rows = history.read(&client).await.map_err(|error| database_error(target, &error))?;
        let plan = Plan::new(migrations, &rows);
        let entry = plan.entries.iter().find(|entry| entry.version == version);
        match entry.map(|entry| (entry.state, entry.migration)) {
            Some((State::Pending, Some(migration))) => {
                history
                    .insert(&client, version, &migration.name, &migration.checksum.to_hex(), Duration::ZERO)
                    .await
                    .map_err(|error| database_error(target, &error))?;
                Ok(migration.clone())
            }
            None => Err(not_markable(format!("no migration file has version {version}"))),
            Some((State::Applied | State::Changed | State::Renamed, _)) => {
                Err(not_markable("it is applied already".to_owned()))
            }
            Some((State::Missing, _)) => Err(not_markable("it is applied already, and its file is gone".to_owned())),
            Some((State::Failed, _)) => Err(not_markable(
                "it is recorded as failed: `plat migrate repair` forgets that record first".to_owned(),
            )),
            Some((State::Pending, None)) => unreachable!("a pending entry comes from a file"),
        }
    }
    .await;
    unlock(&client).await;
    result
}

/// Drops a service database, ending the sessions still in it, so that [`migrate`] creates it
/// again from the files (`plat db reset`). Returns whether it existed. Refuses the server's own
/// databases, whatever the URL names.
pub async fn drop_database(target: &DatabaseTarget) -> Result<bool, MigrateError> {
    if matches!(target.database.as_str(), "postgres" | "template0" | "template1") {
        return Err(MigrateError::Database {
            database: target.database.clone(),
            reason: "is one of the server's own databases; plat never drops it".to_owned(),
        });
    }
    Ok(db::drop_database(target).await?)
}

/// What `import` recorded.
#[derive(Debug, Clone)]
pub struct Imported {
    /// Whose history.
    pub tool: foreign::Tool,
    /// The migrations recorded as applied, in order.
    pub migrations: Vec<Migration>,
}

/// Takes another tool's history over: every migration `from`'s table (or, when `None`, the one
/// tool's table the database has) says is applied is recorded in plat's history with its file's
/// checksum, without running anything. Only into an empty plat history, and only when every such
/// version has its file.
pub async fn import(
    target: &DatabaseTarget,
    migrations: &Migrations,
    from: Option<foreign::Tool>,
    options: &MigrateOptions,
    on_event: OnEvent<'_>,
) -> Result<Imported, MigrateError> {
    let (client, _) = db::open(target, false).await?;
    let Some(client) = client else {
        return Err(MigrateError::Database {
            database: target.database.clone(),
            reason: "does not exist, so there is no history to import".to_owned(),
        });
    };
    limit(&client, target, options).await?;
    lock(&client, target, options, on_event).await?;
    let result = async {
        let failed = |error: tokio_postgres::Error| database_error(target, &error);
        let found = foreign::find(&client).await.map_err(failed)?;
        let tool = match (from, found.as_slice()) {
            (Some(tool), _) if found.contains(&tool) => tool,
            (Some(tool), _) => {
                return Err(MigrateError::NotImportable { tool, reason: "the table is missing or empty".to_owned() });
            }
            (None, [tool]) => *tool,
            (None, []) => {
                return Err(MigrateError::Database {
                    database: target.database.clone(),
                    reason: "has no history of golang-migrate, goose, Flyway or sqlx to import".to_owned(),
                });
            }
            (None, [first, ..]) => {
                return Err(MigrateError::NotImportable {
                    tool: *first,
                    reason: format!(
                        "the database has the history of {}: name the one to import with --from",
                        found.iter().map(|tool| tool.name()).collect::<Vec<_>>().join(" and ")
                    ),
                });
            }
        };
        let history = locate_history(&client, target).await?;
        history.ensure(&client).await.map_err(failed)?;
        if !history.read(&client).await.map_err(failed)?.is_empty() {
            return Err(MigrateError::NotImportable {
                tool,
                reason: "plat's history here has rows already; import takes over a history only once".to_owned(),
            });
        }
        let files: Vec<i64> = migrations.list.iter().map(|migration| migration.version).collect();
        let versions = foreign::applied(&client, tool, &files)
            .await
            .map_err(failed)?
            .map_err(|reason| MigrateError::NotImportable { tool, reason })?;
        let without_file: Vec<String> =
            versions.iter().filter(|version| migrations.get(**version).is_none()).map(ToString::to_string).collect();
        if !without_file.is_empty() {
            return Err(MigrateError::NotImportable {
                tool,
                reason: format!("no migration file has version {}", without_file.join(", ")),
            });
        }
        let recorded: Vec<Migration> =
            versions.iter().filter_map(|version| migrations.get(*version)).cloned().collect();
        // All rows or none.
        client.batch_execute("BEGIN").await.map_err(failed)?;
        for migration in &recorded {
            let inserted = history
                .insert(&client, migration.version, &migration.name, &migration.checksum.to_hex(), Duration::ZERO)
                .await;
            if let Err(error) = inserted {
                let _ = client.batch_execute("ROLLBACK").await;
                return Err(failed(error));
            }
        }
        client.batch_execute("COMMIT").await.map_err(failed)?;
        Ok(Imported { tool, migrations: recorded })
    }
    .await;
    unlock(&client).await;
    result
}

/// Whether `down` only lists or also undoes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DownMode {
    /// Say what would be undone; touch nothing.
    List,
    /// Undo.
    Apply,
}

/// Undoes, newest first, every applied migration newer than `to`, each with its `.down.sql` in
/// its own transaction together with removing its history row. Returns what was (or, with
/// [`DownMode::List`], would be) undone. Refuses before undoing anything when one of them has
/// no down file, or its up file changed or is gone.
pub async fn down(
    target: &DatabaseTarget,
    migrations: &Migrations,
    to: i64,
    mode: DownMode,
    options: &MigrateOptions,
    on_event: OnEvent<'_>,
) -> Result<Vec<Undo>, MigrateError> {
    let (client, _) = db::open(target, false).await?;
    let Some(mut client) = client else { return Ok(Vec::new()) };
    limit(&client, target, options).await?;
    if mode == DownMode::Apply {
        lock(&client, target, options, on_event).await?;
    }
    let result = undo(&mut client, target, migrations, to, mode, options, on_event).await;
    if mode == DownMode::Apply {
        unlock(&client).await;
    }
    result
}

async fn undo(
    client: &mut Client,
    target: &DatabaseTarget,
    migrations: &Migrations,
    to: i64,
    mode: DownMode,
    options: &MigrateOptions,
    on_event: OnEvent<'_>,
) -> Result<Vec<Undo>, MigrateError> {
    let history = locate_history(client, target).await?;
    let rows = history.read(client).await.map_err(|error| database_error(target, &error))?;
    let plan = Plan::new(migrations, &rows);
    let doomed: Vec<&Entry<'_>> =
        plan.entries.iter().rev().filter(|entry| entry.applied.is_some() && entry.version > to).collect();
    let problems: Vec<Problem> = plan
        .problems(true)
        .into_iter()
        .filter(|problem| doomed.iter().any(|entry| problem_version(problem) == entry.version))
        .collect();
    if !problems.is_empty() {
        return Err(MigrateError::Unsafe { database: target.database.clone(), problems });
    }
    let mut undos = Vec::new();
    let mut no_down = Vec::new();
    for entry in doomed {
        let migration = entry.migration.expect("missing files were refused above");
        match &migration.down {
            Some(down) => undos.push(Undo {
                version: migration.version,
                name: migration.name.clone(),
                file: migration.path.clone(),
                down: down.clone(),
                section: migration.down_section.clone(),
            }),
            None => no_down.push(migration.path.clone()),
        }
    }
    if !no_down.is_empty() {
        return Err(MigrateError::NoDown(no_down));
    }
    let mut texts = Vec::new();
    for undo in &undos {
        texts.push(match &undo.section {
            Some(section) => (section.sql.clone(), section.no_transaction),
            None => {
                let sql = files::read_down(&undo.down)?;
                let no_transaction = sql::wants_no_transaction(&sql);
                (sql, no_transaction)
            }
        });
    }
    check_all(
        undos.iter().zip(&texts).map(|(undo, (sql, no_transaction))| (&*undo.down, sql.as_str(), *no_transaction)),
    )?;
    if mode == DownMode::List {
        return Ok(undos);
    }
    for (index, (undo, (sql, no_transaction))) in undos.iter().zip(&texts).enumerate() {
        if options.stop.is_requested() {
            return Err(MigrateError::Interrupted {
                done: undos[..index].iter().map(|undo| undo.name.clone()).collect(),
                not_applied: undos[index..].iter().map(|undo| undo.name.clone()).collect(),
            });
        }
        let watch = Watch { target, file: &undo.down, options, on_event };
        let took = run_file(client, &history, &watch, sql, *no_transaction, Record::Delete { version: undo.version })
            .await
            .map_err(|error| {
                let ran = Ran {
                    file: &undo.down,
                    version: undo.version,
                    sql,
                    no_transaction: *no_transaction,
                    undoing: true,
                };
                failure(error, &ran, options, index)
            })?;
        on_event(MigrateEvent::Undone { service: &target.service, undo, took });
    }
    Ok(undos)
}

fn problem_version(problem: &Problem) -> i64 {
    match problem {
        Problem::Changed { version, .. }
        | Problem::Renamed { version, .. }
        | Problem::Missing { version, .. }
        | Problem::OutOfOrder { version, .. }
        | Problem::Failed { version, .. } => *version,
    }
}

async fn locate_history(client: &Client, target: &DatabaseTarget) -> Result<History, MigrateError> {
    History::locate(client)
        .await
        .map_err(|error| database_error(target, &error))?
        .ok_or_else(|| MigrateError::NoSchema(target.database.clone()))
}

fn database_error(target: &DatabaseTarget, error: &tokio_postgres::Error) -> MigrateError {
    MigrateError::Database { database: target.database.clone(), reason: db::describe(error) }
}

async fn lock(
    client: &Client,
    target: &DatabaseTarget,
    options: &MigrateOptions,
    on_event: OnEvent<'_>,
) -> Result<Duration, MigrateError> {
    let timeout = options.lock_timeout;
    let on_wait = |holder: Option<LockHolder>| {
        on_event(MigrateEvent::LockWaiting {
            service: &target.service,
            database: &target.database,
            holder: holder.as_ref(),
            timeout,
        })
    };
    // Nothing runs while waiting: a stop ends the wait at once.
    let outcome = tokio::select! {
        outcome = db::acquire_lock(client, timeout, &on_wait) => outcome,
        () = options.stop.requested() => {
            return Err(MigrateError::Interrupted { done: Vec::new(), not_applied: Vec::new() });
        }
    };
    match outcome.map_err(|error| database_error(target, &error))? {
        LockOutcome::Acquired(waited) => {
            on_event(MigrateEvent::LockAcquired { service: &target.service, waited });
            Ok(waited)
        }
        LockOutcome::TimedOut(holder) => {
            Err(MigrateError::LockTimeout { database: target.database.clone(), waited: timeout, holder })
        }
    }
}

/// Puts the session under the run's statement limits.
async fn limit(client: &Client, target: &DatabaseTarget, options: &MigrateOptions) -> Result<(), MigrateError> {
    client.batch_execute(&options.session_settings()).await.map_err(|error| database_error(target, &error))
}

async fn unlock(client: &Client) {
    // Closing the connection releases the lock too; a failure here changes nothing.
    if let Err(error) = db::release_lock(client).await {
        tracing::debug!("releasing the migration lock: {error}");
    }
}

/// [`check_runnable`] for every file, reporting all that fail.
fn check_all<'a>(files: impl Iterator<Item = (&'a std::path::Path, &'a str, bool)>) -> Result<(), FilesError> {
    let mut problems: Vec<FilesError> =
        files.filter_map(|(path, sql, no_transaction)| check_runnable(path, sql, no_transaction).err()).collect();
    match problems.len() {
        0 => Ok(()),
        1 => Err(problems.remove(0)),
        _ => Err(FilesError::Several(problems)),
    }
}

/// Refuses, before anything runs, a file that would break the one-transaction-per-migration
/// rule or the one-statement rule of no-transaction files.
fn check_runnable(path: &std::path::Path, sql: &str, no_transaction: bool) -> Result<(), FilesError> {
    let statements = sql::statements(sql);
    if no_transaction {
        if statements.len() > 1 {
            return Err(FilesError::Unrunnable {
                path: path.to_path_buf(),
                line: Some(statements[1].line),
                reason: format!(
                    "a no-transaction file must hold exactly one statement, this one has {}: PostgreSQL runs \
                     statements sent together in one implicit transaction",
                    statements.len()
                ),
            });
        }
        return Ok(());
    }
    if let Some(statement) = statements.iter().find(|statement| sql::is_transaction_control(statement)) {
        return Err(FilesError::Unrunnable {
            path: path.to_path_buf(),
            line: Some(statement.line),
            reason: format!(
                "`{}` would end the transaction plat runs this migration in, committing it without its history row",
                statement.words.join(" ")
            ),
        });
    }
    Ok(())
}

/// Why running a file failed: its SQL, or plat's own bookkeeping around it; for a
/// no-transaction file, with the indexes it names as they are now.
enum RunError {
    Sql(StatementError, Vec<db::IndexState>),
    /// The file's transaction failed at `COMMIT`.
    Commit(tokio_postgres::Error),
    Bookkeeping(tokio_postgres::Error),
    /// A no-transaction file succeeded and left these indexes INVALID: `CREATE INDEX
    /// CONCURRENTLY IF NOT EXISTS` over the INVALID index of an earlier failed run succeeds
    /// without building anything.
    LeftInvalid(Vec<db::IndexState>),
}

/// Why a file's SQL did not complete, with who it waited for.
struct StatementError {
    /// The server's error; `None` when the statement did not stop within [`CANCEL_GRACE`] of the
    /// cancel request.
    error: Option<tokio_postgres::Error>,
    /// The sessions it was last seen waiting for.
    blocked_by: Vec<Blocker>,
}

/// What a file's runner needs to watch its statement: where, and whom to tell.
struct Watch<'a> {
    target: &'a DatabaseTarget,
    file: &'a std::path::Path,
    options: &'a MigrateOptions,
    on_event: OnEvent<'a>,
}

/// Runs `statement` until it ends, or until a stop is asked for: then sends the server a cancel
/// request for it and waits [`CANCEL_GRACE`] for it to end. A statement that finished before the
/// cancel arrived counts as finished. Meanwhile, a statement that waits for another session's
/// lock is reported (who holds it, and what it runs), and the holders go with its error.
async fn cancellable(
    statement: impl Future<Output = Result<(), tokio_postgres::Error>>,
    token: tokio_postgres::CancelToken,
    pid: i32,
    watch: &Watch<'_>,
) -> Result<(), StatementError> {
    let seen = std::sync::Mutex::new(Vec::new());
    let blocked_by = || seen.lock().map(|seen| seen.clone()).unwrap_or_default();
    tokio::pin!(statement);
    tokio::select! {
        result = &mut statement => return result.map_err(|error| StatementError { error: Some(error), blocked_by: blocked_by() }),
        () = watch_blockers(pid, watch, &seen) => unreachable!("watching never ends"),
        () = watch.options.stop.requested() => {}
    }
    if let Err(error) = db::cancel(&token, watch.target).await {
        tracing::debug!("sending the cancel request: {error}");
    }
    match tokio::time::timeout(CANCEL_GRACE, &mut statement).await {
        Ok(result) => result.map_err(|error| StatementError { error: Some(error), blocked_by: blocked_by() }),
        // Dropping the connection is all that is left: a statement still running is rolled back
        // by the server once it notices the client gone.
        Err(_) => Err(StatementError { error: None, blocked_by: blocked_by() }),
    }
}

/// Looks, from a second connection, at whom session `pid` waits for: first after half a second
/// (most statements are done by then, and open no second connection), then every second. Tells
/// each new set of holders, and keeps the last one in `seen`. Never returns.
async fn watch_blockers(pid: i32, watch: &Watch<'_>, seen: &std::sync::Mutex<Vec<Blocker>>) {
    tokio::time::sleep(Duration::from_millis(500)).await;
    let Ok(client) = db::connect_aside(watch.target).await else {
        return std::future::pending().await;
    };
    let mut told: Vec<Blocker> = Vec::new();
    loop {
        if let Ok(now) = db::blockers(&client, pid).await {
            let holders: Vec<i32> = now.iter().map(|blocker| blocker.pid).collect();
            if !now.is_empty() && holders != told.iter().map(|blocker| blocker.pid).collect::<Vec<_>>() {
                (watch.on_event)(MigrateEvent::Blocked {
                    service: &watch.target.service,
                    file: watch.file,
                    holders: &now,
                    limit: watch.options.statement_lock_timeout,
                });
                told.clone_from(&now);
            }
            if !now.is_empty()
                && let Ok(mut seen) = seen.lock()
            {
                *seen = now;
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// The history change that goes with a file.
enum Record<'a> {
    /// A migration was applied.
    Insert { version: i64, name: &'a str, checksum: String },
    /// A migration was undone.
    Delete { version: i64 },
}

impl Record<'_> {
    async fn write(
        &self,
        history: &History,
        client: &impl tokio_postgres::GenericClient,
        took: Duration,
    ) -> Result<(), tokio_postgres::Error> {
        match self {
            Record::Insert { version, name, checksum } => history.insert(client, *version, name, checksum, took).await,
            Record::Delete { version } => history.delete(client, *version).await,
        }
    }
}

/// Runs `sql` with the simple query protocol (so that a file may hold many statements), then
/// `record`: both in one transaction, or, for a no-transaction file, `record` only after the
/// SQL succeeded. Returns how long the SQL took.
async fn run_file(
    client: &mut Client,
    history: &History,
    watch: &Watch<'_>,
    sql: &str,
    no_transaction: bool,
    record: Record<'_>,
) -> Result<Duration, RunError> {
    let options = watch.options;
    // Each file starts from the session defaults, whatever an earlier file SET: a run that
    // applies five migrations behaves like five runs that apply one each. (Session defaults
    // include the application_name plat connected with.) Then plat's limits, again.
    client.batch_execute(&format!("RESET ALL; {}", options.session_settings())).await.map_err(RunError::Bookkeeping)?;
    let pid: i32 = client.query_one("SELECT pg_backend_pid()", &[]).await.map_err(RunError::Bookkeeping)?.get(0);
    let started = Instant::now();
    if no_transaction {
        // What a no-transaction file leaves behind is the database's word, not the file's: the
        // indexes it names are looked at before it is recorded, and when it fails.
        let invalid_before: Vec<String> = db::indexes(client)
            .await
            .map_err(RunError::Bookkeeping)?
            .into_iter()
            .filter(|index| !index.valid)
            .map(|index| index.name)
            .collect();
        let token = client.cancel_token();
        if let Err(error) = cancellable(client.batch_execute(sql), token, pid, watch).await {
            let named = db::indexes(client).await.unwrap_or_default();
            return Err(RunError::Sql(error, named.into_iter().filter(|index| index.named_in(sql)).collect()));
        }
        let took = started.elapsed();
        let left_invalid: Vec<db::IndexState> = db::indexes(client)
            .await
            .map_err(RunError::Bookkeeping)?
            .into_iter()
            .filter(|index| !index.valid && (index.named_in(sql) || !invalid_before.contains(&index.name)))
            .collect();
        if !left_invalid.is_empty() {
            return Err(RunError::LeftInvalid(left_invalid));
        }
        record.write(history, &*client, took).await.map_err(RunError::Bookkeeping)?;
        return Ok(took);
    }
    let token = client.cancel_token();
    let transaction = client.transaction().await.map_err(RunError::Bookkeeping)?;
    cancellable(transaction.batch_execute(sql), token, pid, watch)
        .await
        .map_err(|error| RunError::Sql(error, Vec::new()))?;
    let took = started.elapsed();
    record.write(history, &transaction, took).await.map_err(RunError::Bookkeeping)?;
    // A deferred constraint fails here, at COMMIT: the file's doing, not plat's.
    transaction.commit().await.map_err(RunError::Commit)?;
    Ok(took)
}

/// The file a failure happened in, and how it ran.
struct Ran<'a> {
    file: &'a std::path::Path,
    version: i64,
    sql: &'a str,
    no_transaction: bool,
    /// A down file (or section) being undone.
    undoing: bool,
}

fn failure(error: RunError, ran: &Ran<'_>, options: &MigrateOptions, applied_before: usize) -> MigrateError {
    let Ran { file, version, sql, no_transaction, undoing } = *ran;
    let bare = |message: String, stopped: Option<Stopped>, indexes, blocked_by| Failure {
        file: file.to_path_buf(),
        version,
        position: None,
        source_line: None,
        code: None,
        message,
        detail: None,
        hint: None,
        context: None,
        no_transaction,
        applied_before,
        undoing,
        stopped,
        indexes,
        blocked_by,
    };
    let (error, ours, indexes, blocked_by) = match error {
        RunError::Sql(StatementError { error: Some(error), blocked_by }, indexes) => {
            (error, false, indexes, blocked_by)
        }
        RunError::Sql(StatementError { error: None, blocked_by }, indexes) => {
            let message = format!(
                "the server did not stop the statement within {}s of the cancel request; plat closed the \
                 connection, and the server ends the statement (rolling back a transactional file) once it notices",
                CANCEL_GRACE.as_secs()
            );
            return MigrateError::Failed(Box::new(bare(message, Some(Stopped::Cancelled), indexes, blocked_by)));
        }
        RunError::Commit(error) => (error, false, Vec::new(), Vec::new()),
        RunError::Bookkeeping(error) => (error, true, Vec::new(), Vec::new()),
        RunError::LeftInvalid(indexes) => {
            let names: Vec<String> = indexes.iter().map(|index| format!("`{}`", index.name)).collect();
            let message = format!(
                "it ran, and left {} {} INVALID, so it is not recorded as applied",
                if names.len() == 1 { "index" } else { "indexes" },
                names.join(", ")
            );
            return MigrateError::Failed(Box::new(bare(message, None, indexes, Vec::new())));
        }
    };
    let mut failure = bare(db::describe(&error), None, indexes, blocked_by);
    failure.code = error.code().map(|code| code.code().to_owned());
    if ours && no_transaction {
        failure.message = format!(
            "the file ran outside a transaction and succeeded, but updating the history table failed: {}",
            failure.message
        );
    } else if ours {
        failure.message =
            format!("updating the history table failed, so nothing of the file was kept: {}", failure.message);
    }
    if let Some(db) = error.as_db_error() {
        // The server's words for its own limits; a `NOWAIT` in the file is 55P03 too, with
        // other words, and stays the file's own error.
        failure.stopped = match (db.code(), db.message()) {
            (&SqlState::QUERY_CANCELED, message) if message.contains("statement timeout") => {
                Some(Stopped::StatementTimeout(options.statement_timeout))
            }
            (&SqlState::LOCK_NOT_AVAILABLE, message) if message.contains("lock timeout") => {
                Some(Stopped::LockTimeout(options.statement_lock_timeout))
            }
            (&SqlState::QUERY_CANCELED, message) if message.contains("user request") => Some(Stopped::Cancelled),
            _ => None,
        };
        failure.detail = db.detail().map(str::to_owned);
        failure.hint = db.hint().map(str::to_owned);
        failure.context = db.where_().map(str::to_owned);
        if let (false, Some(tokio_postgres::error::ErrorPosition::Original(position))) = (ours, db.position()) {
            failure.position = sql::line_col(sql, *position as usize);
            failure.source_line = failure.position.and_then(|(line, _)| sql.lines().nth(line - 1).map(str::to_owned));
        }
    }
    MigrateError::Failed(Box::new(failure))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `plat up` may migrate several services at once on a multi-threaded runtime: the futures
    /// must be `Send`. This only has to compile.
    #[allow(dead_code, clippy::let_underscore_future)]
    fn futures_are_send(
        target: &DatabaseTarget,
        migrations: &Migrations,
        options: &MigrateOptions,
        on_event: OnEvent<'_>,
    ) {
        fn send<T: Send>(_: T) {}
        send(migrate(target, migrations, options, on_event));
        send(history(target));
        send(repair(target, migrations, options, on_event));
        send(down(target, migrations, 0, DownMode::List, options, on_event));
    }
}
