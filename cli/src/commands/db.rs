//! `plat db start` and `plat db stop`: the workspace's database container by hand, until
//! `plat up` starts it with the rest of the platform; `plat db reset`: a service database
//! dropped and migrated again. Hidden from `plat --help`.

use std::time::Instant;

use plat::docker::{self, DockerError, Owner};
use plat::manifest::Workspace;

use super::{docker_hint, engine, runtime, with_hint};
use crate::args::DbCommand;
use crate::ui::{self, CliError, ExitStatus, style};

pub fn run(workspace: &Workspace, command: &DbCommand) -> Result<ExitStatus, CliError> {
    // Reset works on any service database, with or without the container (a URL may name it).
    if let DbCommand::Reset(args) = command {
        return super::migrate::reset(workspace, args);
    }
    let runtime = runtime()?;
    let engine = engine(&runtime)?;
    let owner = Owner::new(&workspace.name, &workspace.root);
    match command {
        DbCommand::Start { timeout } => {
            let started = Instant::now();
            let container = runtime
                .block_on(engine.start_database_container(&owner))
                .map_err(|error| docker_error(&workspace.name, error))?;
            ui::status(
                "Started",
                style::GOOD,
                format!("container {}; waiting until PostgreSQL is ready", container.name),
            );
            runtime
                .block_on(engine.wait_healthy(&container, *timeout))
                .map_err(|error| docker_error(&workspace.name, error))?;
            let Some(port) = container.port else {
                return Err(CliError::failure(format!(
                    "container {} publishes no port {} on 127.0.0.1",
                    container.name,
                    docker::POSTGRES_PORT
                )));
            };
            ui::status(
                "Ready",
                style::GOOD,
                format!("{} on 127.0.0.1:{port} after {}", container.name, ui::seconds(started.elapsed())),
            );
            ui::write_stdout(&format!("postgres://postgres@127.0.0.1:{port}/postgres\n"))?;
        }
        DbCommand::Stop => {
            let stopped = runtime
                .block_on(engine.stop_database_container(&owner))
                .map_err(|error| docker_error(&workspace.name, error))?;
            if stopped.is_empty() {
                ui::status(
                    "Fresh",
                    style::GOOD,
                    format!("no database container of workspace `{}` runs", workspace.name),
                );
            }
            for name in stopped {
                ui::status("Stopped", style::GOOD, format!("container {name}; its data stays in its volume"));
            }
        }
        DbCommand::Reset(_) => unreachable!("handled above"),
    }
    Ok(ExitStatus::Success)
}

/// A Docker error as the user reads it, with what to do.
fn docker_error(workspace: &str, error: DockerError) -> CliError {
    let hint = docker_hint(&error);
    let unhealthy = matches!(error, DockerError::Unhealthy { .. });
    let failure = with_hint(CliError::failure(format!("the database of workspace `{workspace}`: {error}")), hint);
    if unhealthy { failure.hint("--timeout waits longer") } else { failure }
}
