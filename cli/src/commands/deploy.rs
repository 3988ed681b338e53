//! `plat deploy render|apply` and `plat compose export`: the workspace as files for Kubernetes
//! and compose, and the rendered tree applied with kubectl.

use std::path::{Path, PathBuf};

use plat::deploy::{self, apply::ApplyError, compose, k8s};
use plat::manifest::Workspace;

use crate::args::{ComposeCommand, DeployApplyArgs, DeployCommand, DeployRenderArgs};
use crate::render::display_path;
use crate::ui::{self, CliError, ExitStatus, style};

/// Runs a `plat deploy` subcommand.
pub fn run(workspace: &Workspace, command: &DeployCommand) -> Result<ExitStatus, CliError> {
    match command {
        DeployCommand::Render(args) => render(workspace, args),
        DeployCommand::Apply(args) => apply(workspace, args),
    }
}

/// Runs a `plat compose` subcommand.
pub fn run_compose(workspace: &Workspace, command: &ComposeCommand) -> Result<ExitStatus, CliError> {
    let ComposeCommand::Export(args) = command;
    let stdout = args.out.as_deref() == Some(Path::new("-"));
    let out = match &args.out {
        Some(out) if !stdout => absolute(out)?,
        _ => workspace.root.join("docker-compose.yml"),
    };
    let compose_dir = out.parent().map_or_else(|| workspace.root.clone(), Path::to_path_buf);
    let text = compose::render(workspace, &compose_dir);
    if stdout {
        ui::write_stdout(&text)?;
        return Ok(ExitStatus::Success);
    }
    fs_err::write(&out, &text).map_err(|error| CliError::failure(format!("cannot write the compose file: {error}")))?;
    ui::status("Wrote", style::GOOD, display_path(&out));
    Ok(ExitStatus::Success)
}

fn absolute(path: &Path) -> Result<PathBuf, CliError> {
    std::path::absolute(path).map_err(|error| CliError::usage(format!("invalid path `{}`: {error}", path.display())))
}

/// The tree's directory: `--out`/`--dir`, else deploy/k8s under the workspace root.
fn tree_dir(workspace: &Workspace, given: Option<&Path>) -> Result<PathBuf, CliError> {
    match given {
        Some(dir) => absolute(dir),
        None => Ok(workspace.root.join("deploy").join("k8s")),
    }
}

fn render(workspace: &Workspace, args: &DeployRenderArgs) -> Result<ExitStatus, CliError> {
    let versions = deploy::versions(workspace, args.tag.as_deref());
    for (name, version) in &versions {
        let built = workspace.service(name).is_some_and(|service| !deploy::has_tag(&service.image));
        if built && version.tag == deploy::UNVERSIONED {
            ui::warn(format!(
                "{name}: no commit to tag its image with (not a git checkout, or no commit yet; `plat sync` clones \
                 a missing one): it is tagged `{}`",
                version.tag
            ));
        } else if built && version.dirty {
            ui::warn(format!(
                "{name}: its checkout has uncommitted changes: its image is tagged `{}`, which names no commit \
                 another machine can build",
                version.tag
            ));
        }
    }
    let files = k8s::render(workspace, &versions, &args.env).map_err(|error| {
        let hint = match error {
            deploy::RenderError::PortName { .. } => "rename the port in workspace.toml's `ports`",
            deploy::RenderError::EnvironmentName(_) => "e.g. `--env dev`, `--env staging`, `--env prod`",
        };
        CliError::usage(error).hint(hint)
    })?;
    let out = tree_dir(workspace, args.out.as_deref())?;
    let written = deploy::write_tree(&out, &files)
        .map_err(|error| CliError::failure(format!("cannot write the tree under {}: {error}", display_path(&out))))?;
    for path in &written.changed {
        ui::status("Wrote", style::GOOD, display_path(path));
    }
    for path in &written.removed {
        ui::status("Removed", style::WARN, display_path(path));
    }
    let overlay = out.join("overlays").join(&args.env);
    ui::status(
        "Rendered",
        style::GOOD,
        format!(
            "{} ({} file{} unchanged); check it with `kubectl kustomize {}`",
            display_path(&out),
            written.unchanged.len(),
            if written.unchanged.len() == 1 { "" } else { "s" },
            display_path(&overlay)
        ),
    );
    if !overlay.join("secrets.env").exists() {
        ui::hint(format!(
            "before applying, copy {} to secrets.env beside it and fill it in (keep it out of git)",
            display_path(&overlay.join("secrets.env.example"))
        ));
    }
    Ok(ExitStatus::Success)
}

fn apply(workspace: &Workspace, args: &DeployApplyArgs) -> Result<ExitStatus, CliError> {
    deploy::check_environment(&args.env).map_err(CliError::usage)?;
    let out = tree_dir(workspace, args.dir.as_deref())?;
    let overlay = out.join("overlays").join(&args.env);
    let verb = if args.dry_run { "Checking" } else { "Applying" };
    ui::status(verb, style::GOOD, format!("{} on context `{}`", display_path(&overlay), args.context));
    let outcome = deploy::apply::apply(&deploy::apply::Kubectl, &args.context, &overlay, args.dry_run)
        .map_err(|error| apply_error(error, &args.env))?;
    if outcome.diff.is_empty() {
        ui::status("Unchanged", style::GOOD, "the cluster already runs what the overlay says");
    } else {
        ui::status("Changes", style::WARN, "the cluster differs from the overlay (kubectl diff):");
        ui::write_stdout(&outcome.diff)?;
    }
    ui::write_stdout(&outcome.applied)?;
    if outcome.dry_run {
        ui::status("Dry run", style::GOOD, "the server accepts the change; nothing was changed");
    } else {
        ui::status(
            "Applied",
            style::GOOD,
            format!("`kubectl --context {} get pods -n ...` follows the rollout", args.context),
        );
    }
    Ok(ExitStatus::Success)
}

fn apply_error(error: ApplyError, environment: &str) -> CliError {
    let hint = match &error {
        ApplyError::KubectlMissing(_) => "install kubectl (Debian: apt-get install kubernetes-client)".to_owned(),
        ApplyError::UnknownContext { .. } => {
            "`kubectl config get-contexts` lists the contexts; pass one with --context".to_owned()
        }
        ApplyError::NoOverlay(_) => format!("`plat deploy render --env {environment}` writes it"),
        ApplyError::NoSecrets(path) => {
            format!("copy {}.example to it and fill it in (keep it out of git)", display_path(path))
        }
        ApplyError::Failed { .. } => "the cluster refused the change; kubectl's message says why".to_owned(),
    };
    CliError::failure(error).hint(hint)
}
