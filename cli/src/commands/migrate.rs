//! `plat migrate`: runs the engine's migrations service by service and draws what happens;
//! `status`, `new`, `repair` and `down` around it.

use std::io::Write as _;
use std::time::{Duration, SystemTime};

use plat::docker;
use plat::manifest::{Service, Workspace};
use plat::migrate::{
    self, DatabaseTarget, DownMode, Entry, FilesError, MigrateError, MigrateEvent, MigrateOptions, Migrations,
    OpenError, Plan, Problem, Repaired, State, Stop, Stopped, UrlError, UrlOrigin, UrlSources,
};
use serde::Serialize;

use super::{print_json, runtime, unknown_service};
use crate::args::{
    DatabaseUrlArgs, DbResetArgs, MigrateApplyArgs, MigrateArgs, MigrateCommand, MigrateDownArgs, MigrateImportArgs,
    MigrateMarkArgs, MigrateNewArgs, MigrateRepairArgs, MigrateStatusArgs,
};
use crate::render::display_path;
use crate::ui::{self, CliError, ExitStatus, paint, style};

pub fn run(workspace: &Workspace, args: &MigrateArgs) -> Result<ExitStatus, CliError> {
    match &args.command {
        None => apply(workspace, &args.apply),
        Some(MigrateCommand::Apply(args)) => apply(workspace, args),
        Some(MigrateCommand::Status(args)) => status(workspace, args),
        Some(MigrateCommand::New(args)) => new(workspace, args),
        Some(MigrateCommand::Repair(args)) => repair(workspace, args),
        Some(MigrateCommand::Down(args)) => down(workspace, args),
        Some(MigrateCommand::Mark(args)) => mark(workspace, args),
        Some(MigrateCommand::Import(args)) => import(workspace, args),
    }
}

fn apply(workspace: &Workspace, args: &MigrateApplyArgs) -> Result<ExitStatus, CliError> {
    let services = select(workspace, &args.services)?;
    if services.is_empty() {
        ui::status("Fresh", style::GOOD, "no selected service has a database");
        return Ok(ExitStatus::Success);
    }
    let runtime = runtime()?;
    let targets = targets(workspace, &services, &args.url, &runtime)?;
    // Every service's files are read before any database is touched: a broken directory
    // stops the run before it starts.
    let loaded = load_all(workspace, &services)?;
    let options = MigrateOptions {
        allow_out_of_order: args.allow_out_of_order,
        stop: stop_on_signals(&runtime),
        ..args.lock.options(workspace)
    };
    for (index, (target, migrations)) in targets.iter().zip(&loaded).enumerate() {
        if options.stop.is_requested() {
            let rest: Vec<&str> = targets[index..].iter().map(|target| target.service.as_str()).collect();
            return Err(CliError::interrupted(format!("stopped; not migrated: {}", rest.join(", "))));
        }
        let result = runtime.block_on(migrate::migrate(target, migrations, &options, &on_event));
        match result {
            Ok(report) => {
                let total = report.already_applied + report.applied.len();
                // A URL the user gave needs no comment; one plat found says where it found it.
                let found = match &target.origin {
                    UrlOrigin::Container(_) => format!(" ({})", target.origin),
                    UrlOrigin::Flag | UrlOrigin::Env(_) => String::new(),
                };
                if report.applied.is_empty() {
                    ui::status(
                        "Fresh",
                        style::GOOD,
                        format!("{}: {total} applied, none pending{found}", target.service),
                    );
                } else {
                    ui::status(
                        "Finished",
                        style::GOOD,
                        format!(
                            "{}: {} applied now, {total} in all, on {}{found}",
                            target.service,
                            report.applied.len(),
                            target.display()
                        ),
                    );
                }
            }
            Err(error) => {
                let rest: Vec<&str> = targets[index + 1..].iter().map(|target| target.service.as_str()).collect();
                if !rest.is_empty() {
                    let error = migrate_error(target, error);
                    let interrupted = error.status == ExitStatus::Interrupted;
                    ui::print_error(&error);
                    if interrupted {
                        return Err(CliError::interrupted(format!("stopped; not migrated: {}", rest.join(", "))));
                    }
                    return Err(CliError::failure(format!(
                        "not migrated: {} (after {} failed)",
                        rest.join(", "),
                        target.service
                    )));
                }
                return Err(migrate_error(target, error));
            }
        }
    }
    Ok(ExitStatus::Success)
}

/// A [`Stop`] that Ctrl-C or SIGTERM triggers: the running statement is cancelled on the server
/// and the run reports what it applied. A second signal quits at once.
fn stop_on_signals(runtime: &tokio::runtime::Runtime) -> Stop {
    let (handle, stop) = Stop::new();
    runtime.spawn(async move {
        let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        let mut signalled = async move || {
            let terminated = async {
                match terminate.as_mut() {
                    Some(signal) => drop(signal.recv().await),
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                () = terminated => {}
            }
        };
        signalled().await;
        ui::status(
            "Stopping",
            style::WARN,
            "cancelling the running statement on the server; Ctrl-C again to quit without waiting",
        );
        handle.stop();
        signalled().await;
        std::process::exit(ExitStatus::Interrupted as i32);
    });
    stop
}

/// Draws engine events as status lines on stderr.
pub(super) fn on_event(event: MigrateEvent<'_>) {
    match event {
        MigrateEvent::DatabaseCreated { service, database } => {
            ui::status("Created", style::GOOD, format!("database `{database}` for {service}"));
        }
        MigrateEvent::LockWaiting { service, database, holder, timeout } => {
            let holder = holder.map_or_else(|| "another session".to_owned(), ToString::to_string);
            ui::status(
                "Waiting",
                style::WARN,
                format!(
                    "{service}: the migration lock on database `{database}` is held by {holder}; waiting up to {}",
                    seconds(timeout)
                ),
            );
        }
        MigrateEvent::LockAcquired { service, waited } if waited >= Duration::from_millis(100) => {
            ui::status("Locked", style::GOOD, format!("{service}: got the migration lock after {}", seconds(waited)));
        }
        MigrateEvent::LockAcquired { .. } | MigrateEvent::Applying { .. } => {}
        MigrateEvent::Blocked { service, file, holders, limit } => {
            let until = if limit.is_zero() {
                "no limit (--statement-lock-timeout)".to_owned()
            } else {
                format!("gives up after {} (--statement-lock-timeout)", seconds(limit))
            };
            ui::status(
                "Waiting",
                style::WARN,
                format!("{service} {}: waits for {}; {until}", file_name(file), lock_and_holders(holders)),
            );
        }
        MigrateEvent::Applied { service, migration, took } => {
            ui::status("Applied", style::GOOD, format!("{service} {}{}", migration.file_name(), took_ms(took)));
        }
        MigrateEvent::Undone { service, undo, took } => {
            ui::status(
                "Undone",
                style::GOOD,
                format!("{service} {} with {}{}", file_name(&undo.file), undone_with(undo, file_name), took_ms(took)),
            );
        }
    }
}

/// The down file, or the down section of the file itself (goose, dbmate).
fn undone_with(undo: &migrate::Undo, show: impl Fn(&std::path::Path) -> String) -> String {
    match undo.section {
        Some(_) => format!("its down section in {}", show(&undo.down)),
        None => show(&undo.down),
    }
}

/// `a lock on `users` held by pid 42 (psql), idle in transaction, last query `...``.
fn lock_and_holders(holders: &[migrate::Blocker]) -> String {
    let on = holders
        .iter()
        .find_map(|holder| holder.relation.as_deref())
        .map_or_else(String::new, |relation| format!(" on `{relation}`"));
    let by: Vec<String> = holders.iter().map(ToString::to_string).collect();
    format!("a lock{on} held by {}", by.join("; "))
}

fn took_ms(took: Duration) -> String {
    paint(style::DIM, format!(" ({}ms)", took.as_millis()))
}

fn seconds(duration: Duration) -> String {
    let secs = duration.as_secs_f64();
    if secs.fract() == 0.0 { format!("{secs:.0}s") } else { format!("{secs:.1}s") }
}

fn file_name(path: &std::path::Path) -> String {
    path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default()
}

/// The named services (every one when none is named) that have a database, in dependency order.
fn select<'w>(workspace: &'w Workspace, names: &[String]) -> Result<Vec<&'w Service>, CliError> {
    let services = workspace.select(names).map_err(unknown_service)?;
    if let Some(service) = services.iter().find(|service| !names.is_empty() && service.database.is_none()) {
        return Err(CliError::usage(UrlError::NoDatabase(service.name.clone()))
            .hint(format!("add `database = {{ engine = \"postgres\" }}` to [services.{}]", service.name)));
    }
    Ok(services.into_iter().filter(|service| service.database.is_some()).collect())
}

/// Each service's database, or a usage error naming every service without one.
fn targets(
    workspace: &Workspace,
    services: &[&Service],
    args: &DatabaseUrlArgs,
    runtime: &tokio::runtime::Runtime,
) -> Result<Vec<DatabaseTarget>, CliError> {
    let env = |name: &str| std::env::var(name).ok();
    let mut sources =
        UrlSources { explicit: args.database_url.as_deref(), env: &env, container: None, container_dial: None };
    // The Engine is asked once, and only when a service has no URL otherwise: a run with URLs
    // works without Docker. Its database is reached as the services reach it, `postgres:5432` on
    // the workspace network, directly or through the Engine (`PLAT_REACH`).
    let mut lookup_error = None;
    let container = if services.iter().all(|service| sources.given(service)) {
        None
    } else {
        let owner = docker::Owner::new(&workspace.name, &workspace.root);
        let found = runtime.block_on(async {
            let engine = docker::Engine::connect().await?;
            let found = engine.find_database_container(&owner).await?;
            Ok::<_, docker::DockerError>(found.map(|container| (engine, container)))
        });
        match found {
            Ok(Some((engine, container))) => {
                let forced = docker::relay::Reach::from_env().map_err(CliError::usage)?;
                let dialer = std::sync::Arc::new(docker::relay::Dialer::new(&engine, &owner, forced));
                sources.container_dial = Some(plat::stack::database_dial(&dialer, &container));
                Some(container)
            }
            Ok(None) => None,
            Err(error) => {
                lookup_error = Some(error);
                None
            }
        }
    };
    sources.container = container.as_ref();
    let mut targets = Vec::new();
    let mut errors = Vec::new();
    for service in services {
        match migrate::url::resolve(service, &sources) {
            Ok(target) => targets.push(target),
            Err(error) => errors.push(error),
        }
    }
    if let Some(last) = errors.pop() {
        for error in errors {
            ui::print_error(&CliError::usage(error));
        }
        let hints = match &last {
            UrlError::NotPublished { container, .. } => vec![format!(
                "run it with `-p 127.0.0.1::{}`, or remove it (`docker rm -f {container}`) and run `plat db start`",
                docker::POSTGRES_PORT
            )],
            UrlError::Missing { .. } => {
                let mut hints = vec![format!(
                    "plat migrate uses the workspace's running database container: one labelled {}={} and {}={} \
                     (`plat db start` starts it from image {}, which scripts/images/postgres builds)",
                    docker::label::WORKSPACE,
                    workspace.name,
                    docker::label::ROLE,
                    docker::label::POSTGRES,
                    docker::POSTGRES_IMAGE
                )];
                if let Some(error) = &lookup_error {
                    hints.push(format!("could not ask the Docker Engine for it: {error}"));
                }
                hints
            }
            _ => Vec::new(),
        };
        return Err(hints.into_iter().fold(CliError::usage(last), CliError::hint));
    }
    if targets.len() > 1 && targets.iter().any(|target| target.named_in_url && target.origin == UrlOrigin::Flag) {
        return Err(CliError::usage(format!(
            "--database-url names database `{}`, and {} services are selected: each service needs its own database",
            targets[0].database,
            targets.len()
        ))
        .hint(
            "leave the database out of the URL, so that each service uses its `database.name`, or select one service",
        ));
    }
    for (index, target) in targets.iter().enumerate() {
        if let Some(other) = targets[..index].iter().find(|other| same_database(other, target)) {
            return Err(CliError::usage(format!(
                "{} and {} both resolve to database `{}` on {}: each service owns its database",
                other.service,
                target.service,
                target.database,
                target.display()
            ))
            .hint("point DATABASE_URL_<SERVICE> of one of them at another database"));
        }
    }
    Ok(targets)
}

fn same_database(a: &DatabaseTarget, b: &DatabaseTarget) -> bool {
    a.database == b.database
        && a.config.get_hosts() == b.config.get_hosts()
        && a.config.get_ports() == b.config.get_ports()
}

/// For the commands that act on one service (`down`, `mark`, `import`): a runtime, the
/// service's database and its migration files.
fn one_service(
    workspace: &Workspace,
    service: &str,
    url: &DatabaseUrlArgs,
) -> Result<(tokio::runtime::Runtime, DatabaseTarget, Migrations), CliError> {
    let services = select(workspace, std::slice::from_ref(&service.to_owned()))?;
    let runtime = runtime()?;
    let target = targets(workspace, &services, url, &runtime)?.remove(0);
    let migrations = load_all(workspace, &services)?.remove(0);
    Ok((runtime, target, migrations))
}

fn load_all(workspace: &Workspace, services: &[&Service]) -> Result<Vec<Migrations>, CliError> {
    services
        .iter()
        .map(|service| migrate::load(workspace, service).map_err(|error| files_error(&service.name, error)))
        .collect()
}

/// A migration error as the user reads it: what failed, where, and what to do.
pub(super) fn migrate_error(target: &DatabaseTarget, error: MigrateError) -> CliError {
    let service = target.service.as_str();
    match error {
        MigrateError::Url(error) => CliError::usage(error),
        MigrateError::Files(error) => files_error(service, error),
        // TLS's messages say what to do themselves: the server runs, the URL's host is right.
        MigrateError::Open(error @ OpenError::Connect { tls: true, .. }) => CliError::failure(format!("{service}: {error}")),
        MigrateError::Open(error) => {
            let hint = match &error {
                OpenError::Connect { .. } if matches!(target.origin, UrlOrigin::Container(_)) => {
                    format!("is PostgreSQL in {} up yet? `docker ps` shows its health, `docker logs` why", target.origin)
                }
                OpenError::Connect { .. } => {
                    format!("is the server running? check the URL in --database-url or {}", migrate::url::env_var(service))
                }
                OpenError::Create { denied: true, .. } => {
                    "create the database yourself, or let the URL's user create databases (ALTER ROLE ... CREATEDB)".to_owned()
                }
                OpenError::Create { .. } => "create the database yourself, or fix what the server says".to_owned(),
                OpenError::Drop { .. } => {
                    "the URL's user must own the database (or be a superuser) to drop it".to_owned()
                }
            };
            CliError::failure(format!("{service}: {error}")).hint(hint)
        }
        MigrateError::LockTimeout { .. } => CliError::failure(format!("{service}: {error}")).hint(
            "another run is migrating this database (another developer, another CI job): wait for it, or raise --lock-timeout",
        ),
        MigrateError::Unsafe { database, problems } => {
            let mut message = format!("{service}: refusing to migrate database `{database}`; nothing was applied");
            for problem in &problems {
                message.push_str(&format!("\n  {}", problem_line(problem)));
            }
            let mut error = CliError::failure(message);
            for hint in problem_hints(service, &problems) {
                error = error.hint(hint);
            }
            error
        }
        MigrateError::Failed(failure) => {
            let mut message = format!("{service}: {}", failure_headline(&failure));
            if let (Some((line, column)), Some(text)) = (failure.position, &failure.source_line) {
                let gutter = line.to_string().len();
                let caret_pad: String =
                    text.chars().take(column.saturating_sub(1)).map(|c| if c == '\t' { '\t' } else { ' ' }).collect();
                message.push_str(&format!(
                    "\n{:gutter$} |\n{line} | {text}\n{:gutter$} | {caret_pad}^",
                    "", ""
                ));
            }
            if let Some(detail) = &failure.detail {
                message.push_str(&format!("\n  detail: {detail}"));
            }
            if let Some(context) = &failure.context {
                message.push_str(&format!("\n  context: {}", context.replace('\n', "\n           ")));
            }
            let mut error = match failure.stopped {
                Some(Stopped::Cancelled) => CliError::interrupted(message),
                _ => CliError::failure(message),
            };
            if let Some(hint) = &failure.hint {
                error = error.hint(hint);
            }
            match failure.stopped {
                Some(Stopped::LockTimeout(_)) if !failure.blocked_by.is_empty() => {
                    let pids: Vec<String> = failure.blocked_by.iter().map(|holder| holder.pid.to_string()).collect();
                    error = error.hint(format!(
                        "end that session's transaction (COMMIT or ROLLBACK where it runs; `SELECT \
                         pg_terminate_backend({})` if nobody will) and run again, or wait longer with \
                         --statement-lock-timeout (or statement_lock_timeout in [workspace.migrate])",
                        pids.join(", ")
                    ));
                }
                Some(Stopped::LockTimeout(_)) => {
                    error = error.hint(
                        "an open transaction elsewhere (a psql session, a running service) holds the lock; \
                         `SELECT pid, application_name, state, xact_start, query FROM pg_stat_activity WHERE state <> 'idle'` \
                         shows who: end it and run again, or wait longer with --statement-lock-timeout \
                         (or statement_lock_timeout in [workspace.migrate])",
                    );
                }
                Some(Stopped::StatementTimeout(_)) => {
                    error = error.hint(
                        "if it needs longer (a backfill of a big table), raise --statement-timeout \
                         (or statement_timeout in [workspace.migrate]; `0s` for no limit)",
                    );
                }
                Some(Stopped::Cancelled) | None => {}
            }
            let file = file_name(&failure.file);
            if failure.no_transaction {
                // Hints from what the database holds now, not from what such files usually leave.
                let invalid: Vec<&str> =
                    failure.indexes.iter().filter(|index| !index.valid).map(|index| index.name.as_str()).collect();
                let valid: Vec<&str> =
                    failure.indexes.iter().filter(|index| index.valid).map(|index| index.name.as_str()).collect();
                if !invalid.is_empty() {
                    let drops: Vec<String> =
                        invalid.iter().map(|name| format!("DROP INDEX CONCURRENTLY {name};")).collect();
                    error = error.hint(format!(
                        "{file} ran outside a transaction and left {} INVALID (PostgreSQL keeps it, unusable, and \
                         `IF NOT EXISTS` would skip it): `{}` then `plat migrate` runs {file} again",
                        invalid.iter().map(|name| format!("`{name}`")).collect::<Vec<_>>().join(", "),
                        drops.join(" ")
                    ));
                } else if !valid.is_empty() {
                    error = error.hint(format!(
                        "{file} ran outside a transaction; index {} it names exists and is valid: if {file} did all \
                         it should, `plat migrate mark {service} {}` records it as applied without running it",
                        valid.iter().map(|name| format!("`{name}`")).collect::<Vec<_>>().join(", "),
                        failure.version
                    ));
                } else {
                    error = error.hint(format!(
                        "{file} ran outside a transaction: what its statement did before failing may remain"
                    ));
                }
            } else if failure.undoing {
                error = error.hint(format!("nothing of {file} was applied: version {} stays applied", failure.version));
            } else {
                error = error.hint(format!("nothing of {file} was applied; fix it and run plat migrate again"));
                if failure.code.as_deref() == Some("25001") {
                    error = error.hint(
                        "a statement that cannot run in a transaction block goes in a file of its own whose first line \
                         is `-- plat:no-transaction`",
                    );
                }
            }
            if failure.applied_before > 0 {
                let count = failure.applied_before;
                let (s, verb_s) = if count == 1 { ("", "s") } else { ("s", "") };
                error = error.hint(if failure.undoing {
                    format!("the {count} migration{s} undone before it in this run stay{verb_s} undone")
                } else {
                    format!("the {count} migration{s} before it in this run stay{verb_s} applied")
                });
            }
            error
        }
        MigrateError::NoDown(_) => CliError::failure(relative_paths(&format!("{service}: {error}")))
            .hint("only migrations with a down file (`.down.sql`, Flyway's `U` file) or a goose or dbmate down section can be undone"),
        MigrateError::Interrupted { done, not_applied } if done.is_empty() && not_applied.is_empty() => {
            CliError::interrupted(format!("{service}: stopped before any migration ran; nothing was applied"))
        }
        MigrateError::Interrupted { done, not_applied } => {
            let list = |files: &[String]| if files.is_empty() { "none".to_owned() } else { files.join(", ") };
            CliError::interrupted(format!(
                "{service}: stopped between migrations; applied in this run: {}; not applied: {}",
                list(&done),
                list(&not_applied)
            ))
            .hint("what was applied stays applied; `plat migrate` again carries on from there")
        }
        MigrateError::ForeignHistory { tool, .. } => CliError::failure(format!("{service}: {error}")).hint(format!(
            "`plat migrate import {service}` records what {}'s history says is applied in plat's, without running \
             anything; then `plat migrate` applies only the rest",
            tool.name()
        )),
        MigrateError::NotImportable { .. } => CliError::failure(format!("{service}: {error}")),
        MigrateError::NotMarkable { .. } => CliError::failure(format!("{service}: {error}"))
            .hint(format!("`plat migrate status {service}` shows each version and its state")),
        MigrateError::NoSchema(_) | MigrateError::Database { .. } => CliError::failure(relative_paths(&format!("{service}: {error}"))),
    }
}

fn failure_headline(failure: &migrate::Failure) -> String {
    let mut text = display_path(&failure.file);
    if let Some((line, column)) = failure.position {
        text.push_str(&format!(":{line}:{column}"));
    }
    let message = match failure.stopped {
        Some(Stopped::StatementTimeout(limit)) => {
            format!("stopped by the server after running {} (the statement timeout)", seconds(limit))
        }
        Some(Stopped::LockTimeout(limit)) if !failure.blocked_by.is_empty() => format!(
            "stopped by the server after waiting {} for {} (the statement lock timeout)",
            seconds(limit),
            lock_and_holders(&failure.blocked_by)
        ),
        Some(Stopped::LockTimeout(limit)) => format!(
            "stopped by the server after waiting {} for a lock another session holds on a table or row it needs \
             (the statement lock timeout)",
            seconds(limit)
        ),
        Some(Stopped::Cancelled) => "cancelled: plat asked the server to stop it".to_owned(),
        None => failure.message.clone(),
    };
    text.push_str(&format!(": {message}"));
    if let Some(code) = &failure.code {
        text.push_str(&format!(" (SQLSTATE {code})"));
    }
    text
}

fn problem_line(problem: &Problem) -> String {
    match problem {
        Problem::Changed { file, recorded, current, applied_as: None, .. } => format!(
            "`{}` changed after it was applied\n      checksum applied: {recorded}\n      checksum of file: {current}",
            display_path(file)
        ),
        Problem::Changed { file, version, recorded, current, applied_as: Some(applied_as) } => format!(
            "`{}` is not the migration applied as version {version}: that was `{applied_as}`, with other content\n      \
             checksum applied: {recorded}\n      checksum of file: {current}",
            display_path(file)
        ),
        Problem::Renamed { file, version, applied_as } => format!(
            "`{}` was renamed after it was applied: version {version} was applied as `{applied_as}`, with the same content",
            display_path(file)
        ),
        Problem::Missing { version, name, newer_than_files: true } => format!(
            "version {version} ({name}) is applied, and no file here has it: newer than every migration of this \
             checkout, it was most likely applied from another branch"
        ),
        Problem::Missing { version, name, newer_than_files: false } => {
            format!("version {version} ({name}) is applied, and its file is gone")
        }
        Problem::OutOfOrder { file, version, latest } => {
            format!("`{}` (version {version}) is pending, older than the applied version {latest}", display_path(file))
        }
        Problem::Failed { version, name } => {
            format!("version {version} ({name}) is recorded as failed: the database may hold part of it")
        }
    }
}

fn problem_hints(service: &str, problems: &[Problem]) -> Vec<String> {
    let has = |test: fn(&Problem) -> bool| problems.iter().any(test);
    let mut hints = Vec::new();
    if has(|p| matches!(p, Problem::Changed { applied_as: Some(_), .. })) {
        hints.push(format!(
            "two migrations share a version (two branches, most likely): give the new one a version above the newest \
             applied (`plat migrate new {service} <name>` picks one) and restore the applied one's file"
        ));
    }
    if has(|p| matches!(p, Problem::Renamed { .. })) {
        hints.push(format!(
            "rename the file back, or record its new name with `plat migrate repair {service}` (the content is unchanged)"
        ));
    }
    if has(|p| matches!(p, Problem::Changed { applied_as: None, .. })) {
        hints.push(format!(
            "restore the applied file (git restore) and put the change in a new migration (`plat migrate new {service} <name>`); \
             if the edit changes nothing the migration did (a comment, whitespace), record it with `plat migrate repair {service}`"
        ));
    }
    if has(|p| matches!(p, Problem::Missing { .. })) {
        let oldest_missing = problems
            .iter()
            .filter_map(|problem| match problem {
                Problem::Missing { version, .. } => Some(*version),
                _ => None,
            })
            .min()
            .unwrap_or_default();
        hints.push(format!(
            "on the branch that has the file: `plat migrate down {service} --to {} --yes` undoes it, then switch back; \
             or restore the file here from version control (plat never forgets an applied migration by itself)",
            oldest_missing - 1
        ));
        hints.push(format!(
            "a development database can instead start over from this branch's files: `plat db reset {service}` drops \
             it and migrates it again (its data is lost)"
        ));
    }
    if has(|p| matches!(p, Problem::OutOfOrder { .. })) {
        hints.push(
            "if it is safe to apply after the newer ones (a branch merged late), pass --allow-out-of-order; \
             otherwise give it a version above the newest applied"
                .to_owned(),
        );
    }
    if has(|p| matches!(p, Problem::Failed { .. })) {
        hints.push(format!(
            "check what the failed attempt left in the database, then `plat migrate repair {service}` forgets the failed record"
        ));
    }
    hints
}

fn files_error(service: &str, error: FilesError) -> CliError {
    if let FilesError::BadNewName(_) = &error {
        return CliError::usage(error);
    }
    let (message, hints) = match &error {
        // fs-err's message already names the path; others name it relative to the workspace.
        FilesError::Io(io) => (format!("{service}: {io}"), Vec::new()),
        FilesError::Several(all) => {
            let mut message = format!("{service}: {} problems with the migration files; nothing was run", all.len());
            let mut hints: Vec<String> = Vec::new();
            for one in all {
                message.push_str(&format!("\n  {}", relative_paths(&one.to_string())));
                if let Some(hint) = files_hint(service, one).filter(|hint| !hints.contains(hint)) {
                    hints.push(hint);
                }
            }
            (message, hints)
        }
        _ => (
            format!("{service}: {}", relative_paths(&error.to_string())),
            files_hint(service, &error).into_iter().collect(),
        ),
    };
    hints.into_iter().fold(CliError::failure(message), CliError::hint)
}

/// What to do about one problem with the files.
fn files_hint(service: &str, error: &FilesError) -> Option<String> {
    match error {
        FilesError::NoServiceDir(_) => Some("run `plat sync` to clone it".to_owned()),
        FilesError::DuplicateVersion { .. } => Some(format!(
            "give one of them a version of its own (`plat migrate new {service} <name>` picks the next one)"
        )),
        FilesError::BadName { .. } => Some("rename it, or move it out of the migrations directory".to_owned()),
        FilesError::DownWithoutUp(_) => Some(
            "name it like its up file: `<version>_<name>.down.sql` beside `<version>_<name>.up.sql`, `U<version>__...` \
             beside `V<version>__...`"
                .to_owned(),
        ),
        FilesError::Annotations { .. } => Some(
            "plat follows goose's Up, Down, StatementBegin/End and NO TRANSACTION, and dbmate's up, down and \
             transaction:false; write anything else as plain SQL (see docs/migrations.md, Other tools' files)"
                .to_owned(),
        ),
        FilesError::Unrunnable { reason, .. } if reason.contains("no-transaction") => {
            Some("split it: one file per statement, each starting with `-- plat:no-transaction`".to_owned())
        }
        FilesError::Unrunnable { .. } => {
            Some("remove BEGIN/COMMIT from the file: plat runs each migration in a transaction of its own".to_owned())
        }
        FilesError::BadNewName(_) | FilesError::Io(_) | FilesError::NotUtf8(_) | FilesError::Several(_) => None,
    }
}

/// Engine messages name absolute paths; the user reads them relative to where they are.
fn relative_paths(text: &str) -> String {
    match std::env::current_dir() {
        Ok(cwd) => text.replace(&format!("{}/", cwd.display()), ""),
        Err(_) => text.to_owned(),
    }
}

/// `plat migrate status --json`: one object per service.
#[derive(Serialize)]
struct StatusJson {
    service: String,
    database: String,
    /// Password masked.
    url: String,
    /// `false` before the first `plat migrate` created it.
    database_exists: bool,
    applied: usize,
    pending: usize,
    changed: usize,
    /// Applied, and the file has another name now (same content).
    renamed: usize,
    missing: usize,
    failed: usize,
    migrations: Vec<MigrationJson>,
    /// Why the service could not be read; the counts are then zero.
    error: Option<String>,
}

#[derive(Serialize)]
struct MigrationJson {
    version: i64,
    name: String,
    state: State,
    /// Relative to the workspace root; `null` when missing.
    file: Option<String>,
    /// Of the file now.
    checksum: Option<String>,
    /// Recorded when applied.
    applied_checksum: Option<String>,
    applied_at: Option<String>,
    execution_ms: Option<i64>,
    /// Pending, and older than the newest applied migration.
    out_of_order: bool,
}

impl StatusJson {
    fn latest_applied(&self) -> Option<i64> {
        self.migrations
            .iter()
            .filter(|migration| migration.applied_at.is_some())
            .map(|migration| migration.version)
            .max()
    }
}

fn status(workspace: &Workspace, args: &MigrateStatusArgs) -> Result<ExitStatus, CliError> {
    let services = select(workspace, &args.services)?;
    let runtime = runtime()?;
    let targets = targets(workspace, &services, &args.url, &runtime)?;
    let mut reports = Vec::new();
    let mut failed = false;
    let mut hints: Vec<String> = Vec::new();
    for (service, target) in services.iter().zip(&targets) {
        let mut report = StatusJson {
            service: service.name.clone(),
            database: target.database.clone(),
            url: target.display(),
            database_exists: false,
            applied: 0,
            pending: 0,
            changed: 0,
            renamed: 0,
            missing: 0,
            failed: 0,
            migrations: Vec::new(),
            error: None,
        };
        let loaded = migrate::load(workspace, service).map_err(|error| files_error(&service.name, error));
        let history = runtime.block_on(migrate::history(target)).map_err(|error| migrate_error(target, error));
        match (loaded, history) {
            (Ok(migrations), Ok(history)) => {
                report.database_exists = history.is_some();
                let rows = history.unwrap_or_default();
                let plan = Plan::new(&migrations, &rows);
                report.applied = plan.count(State::Applied);
                report.pending = plan.count(State::Pending);
                report.changed = plan.count(State::Changed);
                report.renamed = plan.count(State::Renamed);
                report.missing = plan.count(State::Missing);
                report.failed = plan.count(State::Failed);
                report.migrations = plan.entries.iter().map(|entry| migration_json(workspace, entry)).collect();
                for hint in problem_hints(&service.name, &plan.problems(true)) {
                    if !hints.contains(&hint) {
                        hints.push(hint);
                    }
                }
            }
            (Err(error), _) | (_, Err(error)) => {
                failed = true;
                report.error = Some(error.message);
            }
        }
        reports.push(report);
    }
    if args.json {
        print_json(&reports)?;
    } else {
        let mut stdout = anstream::stdout().lock();
        let text = status_text(&reports);
        write!(stdout, "{text}").map_err(|error| CliError::failure(format!("cannot write to stdout: {error}")))?;
    }
    // Exit 1 when a database is not as its files say, so that CI can gate on `status` alone;
    // pending migrations are the normal state between a pull and `plat migrate`.
    let diverged = reports.iter().any(|report| report.changed + report.renamed + report.missing + report.failed > 0);
    if !args.json {
        for hint in hints {
            ui::hint(hint);
        }
    }
    Ok(if failed || diverged { ExitStatus::Failure } else { ExitStatus::Success })
}

fn migration_json(workspace: &Workspace, entry: &Entry<'_>) -> MigrationJson {
    MigrationJson {
        version: entry.version,
        name: entry.name().to_owned(),
        state: entry.state,
        file: entry.migration.map(|migration| {
            migration.path.strip_prefix(&workspace.root).unwrap_or(&migration.path).display().to_string()
        }),
        checksum: entry.migration.map(|migration| migration.checksum.to_hex()),
        applied_checksum: entry.applied.map(|applied| applied.checksum.clone()),
        applied_at: entry.applied.map(|applied| applied.applied_at.clone()),
        execution_ms: entry.applied.map(|applied| applied.execution_ms),
        out_of_order: entry.out_of_order,
    }
}

fn status_text(reports: &[StatusJson]) -> String {
    let mut out = String::new();
    for (index, report) in reports.iter().enumerate() {
        if index > 0 {
            out.push('\n');
        }
        out.push_str(&format!("{} {}\n", paint(style::BOLD, &report.service), paint(style::DIM, &report.url)));
        if let Some(error) = &report.error {
            out.push_str(&format!("  {} {error}\n", paint(style::ERROR, "error:")));
            continue;
        }
        if !report.database_exists {
            out.push_str(&format!("  database `{}` does not exist yet: `plat migrate` creates it\n", report.database));
        }
        if report.migrations.is_empty() {
            out.push_str("  no migrations\n");
            continue;
        }
        let rows: Vec<[String; 4]> = report
            .migrations
            .iter()
            .map(|migration| {
                let when = match (&migration.applied_at, migration.execution_ms) {
                    (Some(at), Some(ms)) => format!("{at} ({ms}ms)"),
                    _ if migration.out_of_order => format!(
                        "out of order: version {} is applied",
                        report.latest_applied().map_or_else(|| "?".to_owned(), |version| version.to_string())
                    ),
                    _ => String::new(),
                };
                let state = match migration.state {
                    State::Applied => "applied",
                    State::Pending => "pending",
                    State::Changed => "CHANGED",
                    State::Renamed => "RENAMED",
                    State::Missing => "MISSING",
                    State::Failed => "FAILED",
                };
                [state.to_owned(), migration.version.to_string(), migration.name.clone(), when]
            })
            .collect();
        let rows: Vec<Vec<String>> = rows.into_iter().map(Vec::from).collect();
        out.push_str(&ui::table(&["STATE", "VERSION", "NAME", "APPLIED"], &rows, "  "));
        let mut summary = vec![format!("{} applied", report.applied), format!("{} pending", report.pending)];
        for (count, what) in [
            (report.changed, "changed"),
            (report.renamed, "renamed"),
            (report.missing, "missing"),
            (report.failed, "failed"),
        ] {
            if count > 0 {
                summary.push(format!("{count} {what}"));
            }
        }
        out.push_str(&format!("  {}\n", summary.join(", ")));
    }
    out
}

fn new(workspace: &Workspace, args: &MigrateNewArgs) -> Result<ExitStatus, CliError> {
    let service =
        select(workspace, std::slice::from_ref(&args.service))?.into_iter().next().expect("one service named");
    let database = service.database.as_ref().expect("selected services have a database");
    let service_dir = workspace.service_dir(service);
    let created =
        migrate::files::create(&service_dir, &database.migrations.under(&service_dir), &args.name, SystemTime::now())
            .map_err(|error| files_error(&service.name, error))?;
    let mut stdout = std::io::stdout().lock();
    for path in &created {
        let shown = display_path(path);
        ui::status("Created", style::GOOD, format!("{} migration {shown}", service.name));
        writeln!(stdout, "{shown}").map_err(|error| CliError::failure(format!("cannot write to stdout: {error}")))?;
    }
    Ok(ExitStatus::Success)
}

fn repair(workspace: &Workspace, args: &MigrateRepairArgs) -> Result<ExitStatus, CliError> {
    let services = select(workspace, &args.services)?;
    let runtime = runtime()?;
    let targets = targets(workspace, &services, &args.url, &runtime)?;
    let loaded = load_all(workspace, &services)?;
    let options = args.lock.options(workspace);
    for (target, migrations) in targets.iter().zip(&loaded) {
        let repaired = runtime
            .block_on(migrate::repair(target, migrations, &options, &on_event))
            .map_err(|error| migrate_error(target, error))?;
        if repaired.is_empty() {
            ui::status("Fresh", style::GOOD, format!("{}: nothing to repair", target.service));
        }
        for repair in repaired {
            match repair {
                Repaired::Checksum { file, old, new, .. } => ui::status(
                    "Repaired",
                    style::GOOD,
                    format!("{} {}: checksum {old} is now {new}", target.service, display_path(&file)),
                ),
                Repaired::Renamed { file, old, .. } => ui::status(
                    "Repaired",
                    style::GOOD,
                    format!(
                        "{} {}: applied as `{old}`, now recorded with its new name",
                        target.service,
                        display_path(&file)
                    ),
                ),
                Repaired::ForgotFailed { version, name } => ui::status(
                    "Repaired",
                    style::GOOD,
                    format!(
                        "{}: forgot the failed attempt at version {version} ({name}); it runs again",
                        target.service
                    ),
                ),
            }
        }
    }
    Ok(ExitStatus::Success)
}

fn down(workspace: &Workspace, args: &MigrateDownArgs) -> Result<ExitStatus, CliError> {
    let (runtime, target, migrations) = one_service(workspace, &args.service, &args.url)?;
    let options = MigrateOptions { stop: stop_on_signals(&runtime), ..args.lock.options(workspace) };
    let mode = if args.yes { DownMode::Apply } else { DownMode::List };
    let undos = runtime
        .block_on(migrate::down(&target, &migrations, args.to, mode, &options, &on_event))
        .map_err(|error| migrate_error(&target, error))?;
    if undos.is_empty() {
        ui::status(
            "Fresh",
            style::GOOD,
            format!("{}: nothing to undo: no applied migration is newer than {}", target.service, args.to),
        );
        return Ok(ExitStatus::Success);
    }
    if mode == DownMode::Apply {
        ui::status(
            "Finished",
            style::GOOD,
            format!(
                "{}: undid {} migration{}; {} is the newest left",
                target.service,
                undos.len(),
                plural(undos.len()),
                args.to
            ),
        );
        return Ok(ExitStatus::Success);
    }
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "would undo, newest first, in database `{}`:", target.database);
    for undo in &undos {
        let _ = writeln!(stdout, "  {}  {}  with {}", undo.version, undo.name, undone_with(undo, display_path));
    }
    drop(stdout);
    Err(CliError::failure(format!("{}: nothing undone without --yes", target.service)).hint(format!(
        "run `plat migrate down {} --to {} --yes` to undo {} migration{}",
        target.service,
        args.to,
        undos.len(),
        plural(undos.len())
    )))
}

fn mark(workspace: &Workspace, args: &MigrateMarkArgs) -> Result<ExitStatus, CliError> {
    let (runtime, target, migrations) = one_service(workspace, &args.service, &args.url)?;
    let marked = runtime
        .block_on(migrate::mark(&target, &migrations, args.migration, &args.lock.options(workspace), &on_event))
        .map_err(|error| migrate_error(&target, error))?;
    ui::status(
        "Marked",
        style::GOOD,
        format!("{} {} as applied, without running it", target.service, display_path(&marked.path)),
    );
    Ok(ExitStatus::Success)
}

/// `plat db reset`: each selected service's database dropped and migrated again from this
/// checkout's files, after asking.
pub(super) fn reset(workspace: &Workspace, args: &DbResetArgs) -> Result<ExitStatus, CliError> {
    let services = select(workspace, &args.services)?;
    if services.is_empty() {
        ui::status("Fresh", style::GOOD, "no selected service has a database");
        return Ok(ExitStatus::Success);
    }
    let runtime = runtime()?;
    let targets = targets(workspace, &services, &args.url, &runtime)?;
    // The files must be usable before anything is dropped: a reset that cannot migrate again
    // would leave an empty database.
    let loaded = load_all(workspace, &services)?;
    let named: Vec<String> = targets
        .iter()
        .map(|target| format!("`{}` ({}) on {}", target.database, target.service, target.display()))
        .collect();
    if !args.yes {
        use std::io::IsTerminal as _;
        if !std::io::stdin().is_terminal() {
            return Err(CliError::failure(format!(
                "not resetting {}: it drops every table and row, and there is nobody here to ask",
                named.join(", ")
            ))
            .hint("pass --yes to reset without asking"));
        }
        eprint!(
            "Drop database{} {} and migrate again from this checkout's files? Everything in {} is lost. [y/N] ",
            plural(named.len()),
            named.join(", "),
            if named.len() == 1 { "it" } else { "them" }
        );
        let mut answer = String::new();
        std::io::stdin()
            .read_line(&mut answer)
            .map_err(|error| CliError::failure(format!("cannot read the answer: {error}")))?;
        if !matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
            return Err(CliError::failure("nothing reset"));
        }
    }
    let options = MigrateOptions { stop: stop_on_signals(&runtime), ..args.lock.options(workspace) };
    for (target, migrations) in targets.iter().zip(&loaded) {
        let existed = runtime.block_on(migrate::drop_database(target)).map_err(|error| migrate_error(target, error))?;
        if existed {
            ui::status("Dropped", style::WARN, format!("database `{}` of {}", target.database, target.service));
        }
        let report = runtime
            .block_on(migrate::migrate(target, migrations, &options, &on_event))
            .map_err(|error| migrate_error(target, error))?;
        ui::status(
            "Reset",
            style::GOOD,
            format!(
                "{}: database `{}` migrated again from this checkout's files, {} applied",
                target.service,
                target.database,
                report.applied.len()
            ),
        );
    }
    Ok(ExitStatus::Success)
}

fn import(workspace: &Workspace, args: &MigrateImportArgs) -> Result<ExitStatus, CliError> {
    let (runtime, target, migrations) = one_service(workspace, &args.service, &args.url)?;
    let imported = runtime
        .block_on(migrate::import(&target, &migrations, args.from, &args.lock.options(workspace), &on_event))
        .map_err(|error| migrate_error(&target, error))?;
    ui::status(
        "Imported",
        style::GOOD,
        format!(
            "{}: {} migration{} applied by {} ({}), recorded without running them{}",
            target.service,
            imported.migrations.len(),
            plural(imported.migrations.len()),
            imported.tool.name(),
            imported.tool.table(),
            imported.migrations.last().map_or_else(String::new, |last| format!("; the newest is {}", last.file_name()))
        ),
    );
    Ok(ExitStatus::Success)
}

fn plural(count: usize) -> &'static str {
    if count == 1 { "" } else { "s" }
}
