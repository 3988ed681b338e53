//! One module per subcommand. Each runs the engine and renders what it returns.

mod db;
mod deploy;
mod doctor;
mod graph;
mod logs;
mod migrate;
mod proto;
mod status;
mod sync;
mod test;
mod up;
mod validate;

use std::io::Write;

use clap::CommandFactory;
use plat::docker::DockerError;
use plat::manifest::{self, LoadError, Workspace};

use crate::args::{Cli, Command, GlobalArgs};
use crate::render;
use crate::ui::{self, CliError, ExitStatus, style};

/// Runs the command the user asked for.
pub fn run(cli: Cli) -> Result<ExitStatus, CliError> {
    match cli.command {
        Command::Validate(args) => validate::run(&cli.global, &args),
        Command::Schema => {
            let schema = schemars::schema_for!(manifest::spec::ManifestSpec);
            print_json(&schema)
        }
        Command::Graph(args) => graph::run(&load_workspace(&cli.global)?, &args),
        Command::Sync(args) => sync::run(&load_workspace(&cli.global)?, &args),
        Command::Status(args) => status::run(&load_workspace(&cli.global)?, &args),
        Command::Proto(command) => proto::run(&cli.global, command),
        Command::Migrate(args) => migrate::run(&load_workspace(&cli.global)?, &args),
        Command::Build(args) => up::build(&load_workspace(&cli.global)?, &cli.global, &args),
        Command::Up(args) => up::up(&load_workspace(&cli.global)?, &cli.global, &args),
        Command::Down(args) => up::down(&load_workspace(&cli.global)?, &args),
        Command::Ps(args) => up::ps(&load_workspace(&cli.global)?, &args),
        Command::Logs(args) => logs::run(&load_workspace(&cli.global)?, &args),
        Command::Test(args) => test::run(&load_workspace(&cli.global)?, &args),
        Command::Doctor(args) => doctor::run(&cli.global, &args),
        Command::Deploy(command) => deploy::run(&load_workspace(&cli.global)?, &command),
        Command::Compose(command) => deploy::run_compose(&load_workspace(&cli.global)?, &command),
        Command::Db(command) => db::run(&load_workspace(&cli.global)?, &command),
        Command::Completions { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "plat", &mut script);
            ui::write_stdout(&String::from_utf8_lossy(&script))?;
            Ok(ExitStatus::Success)
        }
    }
}

/// Where the manifest is: `--manifest`, or the nearest `workspace.toml` upward from here.
fn manifest_path(global: &GlobalArgs) -> Result<std::path::PathBuf, CliError> {
    let cwd = std::env::current_dir()
        .map_err(|error| CliError::failure(format!("cannot read the current directory: {error}")))?;
    match &global.manifest {
        // A directory means the manifest in it, as `cargo --manifest-path` would not but users expect.
        Some(path) if cwd.join(path).is_dir() => Ok(cwd.join(path).join(manifest::MANIFEST_FILE)),
        Some(path) => Ok(cwd.join(path)),
        None => manifest::find_manifest(&cwd).ok_or_else(|| {
            CliError::usage(LoadError::NotFound(cwd))
                .hint("run plat inside a workspace, or point at one with `-C DIR` or `--manifest PATH`")
        }),
    }
}

/// Loads and validates the workspace, drawing every manifest problem before failing with exit 2.
pub fn load_workspace(global: &GlobalArgs) -> Result<Workspace, CliError> {
    let path = manifest_path(global)?;
    let workspace = load_named(&path)?;
    match &global.project {
        Some(project) => workspace.renamed(project).map_err(|reason| {
            CliError::usage(format!("invalid project name `{project}`: {reason}"))
                .hint("a project name is a workspace name: lowercase letters, digits and `-`, starting with a letter")
        }),
        None => Ok(workspace),
    }
}

fn load_named(path: &std::path::Path) -> Result<Workspace, CliError> {
    manifest::load_path(path).map_err(|error| match error {
        LoadError::Invalid(error) => {
            let styled = anstream::AutoStream::choice(&std::io::stderr()) != anstream::ColorChoice::Never;
            let _ = write!(anstream::stderr(), "{}", render::manifest_error(&error, styled));
            let count = error.diagnostics.len();
            CliError::usage(format!(
                "{} has {count} error{}",
                render::display_path(&error.path),
                if count == 1 { "" } else { "s" }
            ))
        }
        LoadError::Read(error) => CliError::usage(format!("cannot read the manifest: {error}")),
        LoadError::NotFound(dir) => CliError::usage(LoadError::NotFound(dir)),
    })
}

/// Pretty JSON and a newline on stdout.
pub(crate) fn print_json(value: &impl serde::Serialize) -> Result<ExitStatus, CliError> {
    let text = serde_json::to_string_pretty(value).expect("plat's JSON output always serialises");
    ui::write_stdout(&format!("{text}\n"))?;
    Ok(ExitStatus::Success)
}

/// The Docker Engine, connected once for the command: the error says how to get one.
fn engine(runtime: &tokio::runtime::Runtime) -> Result<plat::docker::Engine, CliError> {
    runtime.block_on(plat::docker::Engine::connect()).map_err(|error| {
        let hint = docker_hint(&error);
        with_hint(CliError::failure(format!("cannot reach the Docker Engine: {error}")), hint)
    })
}

/// `PLAT_REACH`, read once: how plat reaches the containers' ports.
fn reach() -> Result<Option<plat::docker::relay::Reach>, CliError> {
    plat::docker::relay::Reach::from_env().map_err(CliError::usage)
}

/// Takes the workspace's lock for `command` (`plat up`, ...), saying whom it waits for.
fn lock(workspace: &Workspace, command: &str) -> Result<Option<plat::state::WorkspaceLock>, CliError> {
    let acquired = plat::state::WorkspaceLock::acquire(workspace, command, |holder| {
        let who = match holder {
            Some(holder) => format!("`{}` (pid {})", holder.command, holder.pid),
            None => "another plat".to_owned(),
        };
        ui::status("Waiting", style::WARN, format!("for {who} to finish with workspace `{}`", workspace.name));
    });
    match acquired {
        Ok(lock) => Ok(Some(lock)),
        // A workspace plat cannot write to (a read-only checkout) is not locked, and says so.
        Err(error) => {
            ui::warn(format!("cannot lock the workspace ({error}); going on without: another plat may run at once"));
            Ok(None)
        }
    }
}

/// A single-threaded tokio runtime for a command that waits on the network.
fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| CliError::failure(format!("cannot start the async runtime: {error}")))
}

/// An unknown service name on the command line, with the closest real one.
fn unknown_service(error: manifest::UnknownService) -> CliError {
    let suggestion = error.suggestion.clone();
    let listed = if error.what == "service" { "`plat graph` lists the services" } else { "`plat status` lists them" };
    let error = CliError::usage(error);
    match suggestion {
        Some(name) => error.hint(format!("did you mean `{name}`?")),
        None => error.hint(listed),
    }
}

/// What to do about an Engine error.
fn docker_hint(error: &DockerError) -> Option<String> {
    match error {
        DockerError::ImageMissing(image) if image == plat::docker::POSTGRES_IMAGE => Some(
            "build it with scripts/images/postgres (in plat's repository): debootstrap and docker import, no \
             registry, about a minute"
                .to_owned(),
        ),
        DockerError::ImageMissing(_) => Some("`plat build` builds the services' images".to_owned()),
        DockerError::NotOurs { name, .. } => Some(format!(
            "remove or rename that container (`docker rm -f {name}`), or run this workspace under another name: \
             `plat --project NAME ...` (or PLAT_PROJECT=NAME)"
        )),
        DockerError::OtherCheckout { root, .. } => Some(format!(
            "bring it down there (`plat -C {root} down`), or run this checkout under a name of its own: \
             `plat --project NAME up` (or PLAT_PROJECT=NAME)"
        )),
        DockerError::Exists { name } => Some(format!("another plat is working on {name}: run the command again")),
        DockerError::Stopped { name, .. } | DockerError::Unhealthy { name, .. } => {
            Some(format!("`docker logs {name}` says why"))
        }
        // The Engine answered: it runs; what it said is the error.
        DockerError::Api(bollard::errors::Error::DockerResponseServerError { message, .. }) => {
            (message.contains("address already in use") || message.contains("port is already allocated")).then(|| {
                "another program or container has that host port: stop it, or change `publish` in workspace.toml"
                    .to_owned()
            })
        }
        DockerError::Api(_) | DockerError::Timeout => {
            Some("is the Docker Engine running, and may you use it? `plat doctor` checks it".to_owned())
        }
        DockerError::Build(_) => None,
    }
}

/// The error with the hint, when there is one.
fn with_hint(error: CliError, hint: Option<String>) -> CliError {
    match hint {
        Some(hint) => error.hint(hint),
        None => error,
    }
}
