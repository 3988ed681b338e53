//! `plat proto`: gen (and the hidden plugin buf calls).

use std::io::{Read, Write};

use plat::proto::generate::{self, ChangeKind, GenOptions};
use plat::proto::{Engine, Ran, plugin};
use serde::Serialize;

use super::{load_workspace, print_json};
use crate::args::{EngineChoice, GlobalArgs, ProtoCommand, ProtoGenArgs};
use crate::ui::{self, CliError, ExitStatus, style};

pub fn run(global: &GlobalArgs, command: ProtoCommand) -> Result<ExitStatus, CliError> {
    match command {
        ProtoCommand::Gen(args) => run_gen(global, &args),
        ProtoCommand::Plugin => run_plugin(global),
    }
}

fn engine(choice: EngineChoice) -> Engine {
    match choice {
        EngineChoice::Auto => Engine::Auto,
        EngineChoice::Buf => Engine::Buf,
        EngineChoice::Builtin => Engine::Builtin,
    }
}

fn ran(ran: &Ran) -> String {
    match ran {
        Ran::Buf(path) => format!("buf ({})", path.display()),
        Ran::Builtin => "plat's built-in engine".to_owned(),
    }
}

/// The `--json` answer of `plat proto gen`.
#[derive(Serialize)]
struct GenJson<'a> {
    engine: &'static str,
    check: bool,
    files: usize,
    changes: &'a [generate::Change],
}

fn run_gen(global: &GlobalArgs, args: &ProtoGenArgs) -> Result<ExitStatus, CliError> {
    let workspace = load_workspace(global)?;
    let report = generate::generate(&workspace, GenOptions { engine: engine(args.engine), check: args.check })
        .map_err(|error| {
            let hint = match &error {
                plat::proto::ProtoError::BufMissing => {
                    Some("install buf (`pip install buf-bin`) or use `--engine builtin`")
                }
                plat::proto::ProtoError::UnknownPackage { .. } => {
                    Some("fix `proto.serves` / `proto.uses` in workspace.toml, or add the package to proto/")
                }
                _ => None,
            };
            let error = CliError::failure(error);
            match hint {
                Some(hint) => error.hint(hint),
                None => error,
            }
        })?;
    for (service, why) in &report.skipped {
        ui::warn(format!("{service}: skipped, {why}"));
    }
    let stale = args.check && !report.changes.is_empty();
    if args.json {
        print_json(&GenJson {
            engine: if matches!(report.ran, Ran::Buf(_)) { "buf" } else { "builtin" },
            check: args.check,
            files: report.files,
            changes: &report.changes,
        })?;
        return Ok(if stale { ExitStatus::Failure } else { ExitStatus::Success });
    }
    for change in &report.changes {
        let (verb, style) = match (args.check, change.kind) {
            (true, ChangeKind::Created) => ("Missing", style::ERROR),
            (true, ChangeKind::Updated) => ("Stale", style::ERROR),
            (true, ChangeKind::Deleted) => ("Extra", style::ERROR),
            (false, ChangeKind::Created) => ("Created", style::GOOD),
            (false, ChangeKind::Updated) => ("Updated", style::GOOD),
            (false, ChangeKind::Deleted) => ("Deleted", style::GOOD),
        };
        ui::status(verb, style, &change.path);
    }
    if stale {
        return Err(CliError::failure(format!(
            "{} generated file{} out of date (checked with {})",
            report.changes.len(),
            if report.changes.len() == 1 { " is" } else { "s are" },
            ran(&report.ran)
        ))
        .hint("run `plat proto gen` and commit the result"));
    }
    let summary = format!(
        "{} file{} with {}{}",
        report.files,
        if report.files == 1 { "" } else { "s" },
        ran(&report.ran),
        if report.changes.is_empty() {
            ", all up to date".to_owned()
        } else {
            format!(", {} changed", report.changes.len())
        },
    );
    ui::status(if args.check { "Checked" } else { "Generated" }, style::GOOD, summary);
    Ok(ExitStatus::Success)
}

/// Answers buf: the request on stdin, the response on stdout. Manifest problems go in the
/// response, where buf shows them.
fn run_plugin(global: &GlobalArgs) -> Result<ExitStatus, CliError> {
    let mut request = Vec::new();
    std::io::stdin()
        .read_to_end(&mut request)
        .map_err(|error| CliError::failure(format!("cannot read the plugin request: {error}")))?;
    let workspace = super::manifest_path(global)
        .map_err(|error| error.message)
        .and_then(|path| plat::manifest::load_path(&path).map_err(|error| error.to_string()));
    let response = plugin::respond(workspace.as_ref().map_err(Clone::clone), &request);
    std::io::stdout()
        .write_all(&response)
        .map_err(|error| CliError::failure(format!("cannot write the plugin response: {error}")))?;
    Ok(ExitStatus::Success)
}
