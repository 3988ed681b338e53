//! `plat test --e2e`: the workspace's end-to-end command (`[workspace.e2e]`) run against the
//! running platform, once plat has checked that every service is up, healthy and runs what its
//! checkout holds now (not an image older than an edit or a `plat sync`).
//!
//! The command is handed where the platform is and what it was started with:
//! `PLAT_<SERVICE>_<PORT>_URL` (`http://127.0.0.1:<host port>`) for every published port, and
//! `PLAT_<SERVICE>_ENV_<KEY>` for every `env` value workspace.toml gives a service (so tests
//! can mint a token with the gateway's `JWT_SECRET`), service and key in upper case with `-` as
//! `_`. Its output goes to plat's stderr as it comes.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::docker::relay::Reach;
use crate::docker::{DockerError, Engine};
use crate::manifest::{UserCommand, Workspace};

/// How the end-to-end run went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct E2eResult {
    /// The command, as a person would type it.
    pub command: String,
    /// Whether it exited 0.
    pub passed: bool,
    /// Its exit status.
    pub status: String,
    /// The variables plat handed it (names only: values may be secrets).
    pub variables: Vec<String>,
    /// How long it ran.
    #[serde(serialize_with = "super::seconds")]
    pub took: Option<Duration>,
}

/// Why the end-to-end tests did not run.
#[derive(Debug, thiserror::Error)]
pub enum E2eError {
    /// workspace.toml declares none.
    #[error("workspace.toml declares no end-to-end tests")]
    NotDeclared,
    /// A service is not running, not current or not healthy.
    #[error("the platform is not up: {}", .0.join("; "))]
    NotUp(Vec<String>),
    /// The Engine failed.
    #[error(transparent)]
    Docker(#[from] DockerError),
    /// The command could not start.
    #[error("cannot run `{command}`: {reason}")]
    Spawn {
        /// The command.
        command: String,
        /// Why.
        reason: String,
    },
}

/// Checks that the platform runs as workspace.toml says, then runs the e2e command with its
/// addresses; the command's stdout and stderr go to `output` (plat's stderr).
pub async fn run(
    engine: &Engine,
    workspace: &Workspace,
    reach: Option<Reach>,
    output: Stdio,
    output_err: Stdio,
) -> Result<E2eResult, E2eError> {
    let e2e = workspace.e2e.as_ref().ok_or(E2eError::NotDeclared)?;
    let rows = crate::stack::ps(engine, workspace, reach).await?;
    let mut problems = Vec::new();
    let mut env: Vec<(String, String)> = Vec::new();
    for service in &workspace.services {
        let Some(row) = rows.iter().find(|row| row.service == service.name && row.note.is_none()) else {
            problems.push(format!("{} has no container", service.name));
            continue;
        };
        if row.state == "missing" {
            problems.push(format!("{} has no container", service.name));
            continue;
        }
        if row.state != "running" {
            problems.push(format!("{} is {}", service.name, row.state));
            continue;
        }
        if let Some(behind) = &row.behind {
            problems.push(behind.clone());
        }
        if let Some(health) = &row.health
            && health != "healthy"
        {
            problems.push(format!("{} is not healthy ({health})", service.name));
        }
        let upper = variable_part(&service.name);
        for published in &row.published {
            let Some((host, container)) = published.split_once(':') else { continue };
            let name = service
                .ports
                .iter()
                .find(|(_, port)| port.to_string() == container)
                .map_or_else(|| container.to_owned(), |(name, _)| name.clone());
            env.push((format!("PLAT_{upper}_{}_URL", variable_part(&name)), format!("http://127.0.0.1:{host}")));
        }
        for (key, value) in &service.env {
            env.push((format!("PLAT_{upper}_ENV_{}", variable_part(key)), value.clone()));
        }
    }
    if !problems.is_empty() {
        return Err(E2eError::NotUp(problems));
    }
    let command_text = e2e.command.display();
    let mut command = match &e2e.command {
        UserCommand::Shell(text) => {
            let mut command = tokio::process::Command::new("sh");
            command.args(["-c", text]);
            command
        }
        UserCommand::Argv(words) => {
            let mut command = tokio::process::Command::new(&words[0]);
            command.args(&words[1..]);
            command
        }
    };
    command
        .current_dir(e2e.dir.under(&workspace.root))
        .envs(env.iter().map(|(key, value)| (key, value)))
        .env("PLAT_WORKSPACE", &workspace.name)
        .env("PLAT_WORKSPACE_ROOT", Path::new(&workspace.root))
        .stdin(Stdio::null())
        .stdout(output)
        .stderr(output_err)
        .kill_on_drop(true);
    let started = Instant::now();
    let status = command
        .status()
        .await
        .map_err(|error| E2eError::Spawn { command: command_text.clone(), reason: error.to_string() })?;
    let mut variables: Vec<String> = env.into_iter().map(|(key, _)| key).collect();
    variables.extend(["PLAT_WORKSPACE".to_owned(), "PLAT_WORKSPACE_ROOT".to_owned()]);
    Ok(E2eResult {
        command: command_text,
        passed: status.success(),
        status: status.to_string(),
        variables,
        took: Some(started.elapsed()),
    })
}

/// A name as part of a variable: `api-gateway` → `API_GATEWAY`.
fn variable_part(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }).collect()
}
