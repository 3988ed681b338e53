//! `plat doctor`: the tools and services plat's commands rely on, found or missing, and how to get them.

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use crate::docker;
use crate::manifest::{Build, Workspace};

/// The verdict on one tool.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// What was checked: `docker`, `plat/postgres:15`, each ready image of the workspace,
    /// `git`, `cargo`, `buf`, `protoc`, `psql`.
    pub name: String,
    /// Whether it is there and works.
    pub ok: bool,
    /// Whether a command of this workspace cannot work without it.
    pub required: bool,
    /// Its version, when found.
    pub version: Option<String>,
    /// Where it was found.
    pub path: Option<PathBuf>,
    /// What plat uses it for.
    pub used_for: String,
    /// What went wrong, when it is not ok.
    pub problem: Option<String>,
    /// How to get it.
    pub hint: Option<String>,
}

/// Every check, in a fixed order.
#[derive(Debug, Clone, Serialize)]
pub struct DoctorReport {
    /// The checks.
    pub checks: Vec<Check>,
}

impl DoctorReport {
    /// Whether something required is missing.
    pub fn has_missing_required(&self) -> bool {
        self.checks.iter().any(|check| check.required && !check.ok)
    }
}

/// A command-line tool plat can use.
struct Tool {
    name: &'static str,
    version_args: &'static [&'static str],
    used_for: &'static str,
    hint: &'static str,
}

const TOOLS: &[Tool] = &[
    Tool {
        name: "git",
        version_args: &["--version"],
        used_for: "fallback for `plat sync` where libgit2 cannot (and PLAT_GIT_FETCH_WITH_CLI=true)",
        hint: "install git: `sudo apt-get install git`",
    },
    Tool {
        name: "cargo",
        version_args: &["--version"],
        used_for: "building services with `build = \"cargo\"`",
        hint: "install Rust with rustup: https://rustup.rs",
    },
    Tool {
        name: "buf",
        version_args: &["--version"],
        used_for: "`plat proto` when installed (plat has a built-in engine otherwise)",
        hint: "install buf: `pip install buf-bin`",
    },
    Tool {
        name: "protoc",
        version_args: &["--version"],
        used_for: "debugging protos by hand (plat compiles them itself)",
        hint: "install protoc: `sudo apt-get install protobuf-compiler`",
    },
    Tool {
        name: "psql",
        version_args: &["--version"],
        used_for: "inspecting databases by hand (plat speaks to PostgreSQL itself)",
        hint: "install psql: `sudo apt-get install postgresql-client`",
    },
];

/// Checks the Engine and every tool; `workspace` decides which of them are required.
pub async fn run(workspace: Option<&Workspace>, fetch_with_cli: bool) -> DoctorReport {
    let has_services = workspace.is_some_and(|workspace| !workspace.services.is_empty());
    // Remote-helper URLs (`ext::`, `s3://`, ...) are cloned by the git CLI, whatever the setting.
    let has_cli_remotes = workspace.is_some_and(|workspace| {
        workspace.services.iter().any(|service| match &service.source {
            crate::manifest::Source::Git { repo, .. } => crate::git::needs_cli(repo),
            crate::manifest::Source::Local => false,
        })
    });
    let has_cargo_builds = workspace
        .is_some_and(|workspace| workspace.services.iter().any(|service| matches!(service.build, Build::Cargo { .. })));

    let engine = docker::Engine::connect().await;
    let version = match &engine {
        Ok(engine) => engine.version().await,
        Err(_) => Err(docker::DockerError::Timeout),
    };
    let mut checks = vec![match engine
        .as_ref()
        .map_err(|error| error.to_string())
        .and(version.map_err(|error| error.to_string()))
    {
        Ok(engine) => Check {
            name: "docker".to_owned(),
            ok: true,
            required: has_services,
            version: Some(format!("{} (API {})", engine.version, engine.api_version)),
            path: None,
            used_for: "building images and running the stack (`plat build`, `plat up`)".to_owned(),
            problem: None,
            hint: None,
        },
        Err(error) => Check {
            name: "docker".to_owned(),
            ok: false,
            required: has_services,
            version: None,
            path: None,
            used_for: "building images and running the stack (`plat build`, `plat up`)".to_owned(),
            problem: Some(format!("the Docker Engine is not reachable: {error}")),
            hint: Some(
                "start the Docker daemon (`sudo systemctl start docker`) or set DOCKER_HOST to reach one".to_owned(),
            ),
        },
    }];

    // `plat up` and `plat db start` run the workspace's database from this image, which no
    // registry provides: it is built on the machine.
    let has_databases =
        workspace.is_some_and(|workspace| workspace.services.iter().any(|service| service.database.is_some()));
    let postgres = Check {
        name: docker::POSTGRES_IMAGE.to_owned(),
        ok: false,
        required: has_databases,
        version: None,
        path: None,
        used_for: "the workspace's database (`plat up`, `plat db start`)".to_owned(),
        hint: Some(
            "build it with scripts/images/postgres in plat's repository (debootstrap and docker import, no registry)"
                .to_owned(),
        ),
        problem: None,
    };
    checks.push(check_image(engine.as_ref().ok(), postgres).await);
    // Each ready image (a service with `image = "name:tag"` and no `build`): plat runs it as it
    // is, so it must be on the machine already.
    for service in workspace.into_iter().flat_map(|workspace| &workspace.services).filter(|s| !s.has_code()) {
        let reference = service.image_reference();
        let ready = Check {
            hint: Some(crate::build::ready_image_fix(&reference)),
            name: reference,
            ok: false,
            required: true,
            version: None,
            path: None,
            used_for: format!("service `{}`, a ready image plat runs as it is (`plat up`)", service.name),
            problem: None,
        };
        checks.push(check_image(engine.as_ref().ok(), ready).await);
    }

    for tool in TOOLS {
        let required = match tool.name {
            "git" => fetch_with_cli || has_cli_remotes,
            "cargo" => has_cargo_builds,
            _ => false,
        };
        checks.push(check_tool(tool, required).await);
    }
    DoctorReport { checks }
}

/// `check` (an image, by its name) completed from the Engine: present with its id, or missing
/// (its hint kept) or not asked.
async fn check_image(engine: Option<&docker::Engine>, mut check: Check) -> Check {
    let found = match engine {
        Some(engine) => engine.find_image(&check.name).await.map_err(|error| error.to_string()),
        None => Err("the Docker Engine is not reachable".to_owned()),
    };
    match found {
        Ok(Some(image)) => {
            check.ok = true;
            check.version = Some(image.id.chars().take(19).collect());
            check.hint = None;
        }
        Ok(None) => check.problem = Some("the image is not on this machine".to_owned()),
        Err(error) => check.problem = Some(format!("cannot ask the Docker Engine: {error}")),
    }
    check
}

async fn check_tool(tool: &Tool, required: bool) -> Check {
    let mut check = Check {
        name: tool.name.to_owned(),
        ok: false,
        required,
        version: None,
        path: None,
        used_for: tool.used_for.to_owned(),
        problem: None,
        hint: Some(tool.hint.to_owned()),
    };
    let Ok(path) = which::which(tool.name) else {
        check.problem = Some(format!("`{}` is not on PATH", tool.name));
        return check;
    };
    let output = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::process::Command::new(&path).args(tool.version_args).kill_on_drop(true).output(),
    )
    .await;
    match output {
        Ok(Ok(output)) if output.status.success() => {
            let text = String::from_utf8_lossy(if output.stdout.is_empty() { &output.stderr } else { &output.stdout });
            check.ok = true;
            check.hint = None;
            check.version = text.lines().next().map(|line| line.trim().to_owned());
        }
        Ok(Ok(output)) => {
            check.problem =
                Some(format!("`{} {}` failed with {}", tool.name, tool.version_args.join(" "), output.status))
        }
        Ok(Err(error)) => check.problem = Some(format!("`{}` could not be run: {error}", path.display())),
        Err(_) => {
            check.problem = Some(format!("`{} {}` did not answer in 10s", tool.name, tool.version_args.join(" ")))
        }
    }
    check.path = Some(path);
    check
}
