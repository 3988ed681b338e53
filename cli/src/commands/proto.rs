//! `plat proto`: gen, lint, breaking (and the hidden plugin buf calls).

use std::io::{Read, Write};

use plat::proto::breaking::{self, BreakingOptions};
use plat::proto::generate::{self, ChangeKind, GenOptions};
use plat::proto::lint::{self, LintOptions};
use plat::proto::{CheckReport, Engine, ProtoError, Ran, plugin};
use serde::Serialize;

use super::{load_workspace, print_json};
use crate::args::{EngineChoice, GlobalArgs, ProtoBreakingArgs, ProtoCommand, ProtoGenArgs, ProtoLintArgs};
use crate::ui::{self, CliError, ExitStatus, style};

pub fn run(global: &GlobalArgs, command: ProtoCommand) -> Result<ExitStatus, CliError> {
    match command {
        ProtoCommand::Gen(args) => run_gen(global, &args),
        ProtoCommand::Lint(args) => run_lint(global, &args),
        ProtoCommand::Breaking(args) => run_breaking(global, &args),
        ProtoCommand::Plugin => run_plugin(global),
    }
}

pub(super) fn engine(choice: EngineChoice) -> Engine {
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
        .map_err(proto_error)?;
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

/// A proto error with what to do about it. Wrong input (a `.proto` file that does not compile,
/// none at all, buf.yaml, workspace.toml, `--against`) exits 2, so that CI can tell it from
/// findings (exit 1); docs/cli.md lists which is which.
pub(super) fn proto_error(error: ProtoError) -> CliError {
    let input_error = matches!(
        error,
        ProtoError::Compile { .. }
            | ProtoError::Config { .. }
            | ProtoError::NoProtoDir(_)
            | ProtoError::NoProtoFiles(_)
            | ProtoError::UnknownPackage { .. }
            | ProtoError::RevNotFound { .. }
    );
    let hints: Vec<String> = match &error {
        ProtoError::BufMissing => vec!["install buf (`pip install buf-bin`) or use `--engine builtin`".to_owned()],
        ProtoError::EditionsNeedBuf { .. } => {
            vec!["install buf (`pip install buf-bin`): plat runs it for `edition` files".to_owned()]
        }
        ProtoError::UnknownPackage { .. } => {
            vec!["fix `proto.serves` / `proto.uses` in workspace.toml, or add the package to proto/".to_owned()]
        }
        ProtoError::Config { .. } => vec!["docs/proto.md lists the rules and settings plat understands".to_owned()],
        ProtoError::NotARepository(_) => {
            vec!["`plat proto breaking` compares with a commit: run it in a git checkout".to_owned()]
        }
        ProtoError::RevNotFound { rev, shallow, .. } => {
            let mut hints = Vec::new();
            if *shallow {
                hints.push("this clone is shallow: fetch more history with `git fetch --deepen=50` (or `git fetch --unshallow`)".to_owned());
            }
            let branch = rev.strip_prefix("origin/").unwrap_or(rev);
            hints.push(format!("if `{rev}` is a branch or tag of the remote, fetch it: `git fetch origin {branch}`"));
            hints
        }
        _ => Vec::new(),
    };
    let error = if input_error { CliError::usage(error) } else { CliError::failure(error) };
    hints.into_iter().fold(error, CliError::hint)
}

fn run_lint(global: &GlobalArgs, args: &ProtoLintArgs) -> Result<ExitStatus, CliError> {
    let workspace = load_workspace(global)?;
    let proto_dir = workspace.proto_dir.under(&workspace.root);
    let report = lint::check(&proto_dir, LintOptions { engine: engine(args.engine) }).map_err(proto_error)?;
    render_findings(
        &report,
        args.json,
        &workspace.proto_dir.to_string(),
        "lint finding",
        "",
        "fix them, or silence a rule with `lint.except` / `lint.ignore` in buf.yaml",
    )
}

fn run_breaking(global: &GlobalArgs, args: &ProtoBreakingArgs) -> Result<ExitStatus, CliError> {
    let workspace = load_workspace(global)?;
    let proto_dir = workspace.proto_dir.under(&workspace.root);
    let options = BreakingOptions { engine: engine(args.engine), against: args.against.clone() };
    let report = breaking::check(&proto_dir, &options).map_err(proto_error)?;
    let context = format!(" against {}", args.against);
    render_findings(
        &report,
        args.json,
        &workspace.proto_dir.to_string(),
        "breaking change",
        &context,
        "keep the old field, number or name (reserve what you delete), or, if the break is intended, say so in buf.yaml (`breaking.ignore` / `except`)",
    )
}

/// Findings on stdout (`file:line:column RULE_ID message`, or a JSON array); exit 1 if any.
fn render_findings(
    report: &CheckReport,
    json: bool,
    dir: &str,
    noun: &str,
    context: &str,
    hint: &str,
) -> Result<ExitStatus, CliError> {
    if !report.unchecked.is_empty() {
        tracing::info!("rules plat's built-in engine does not check: {}", report.unchecked.join(", "));
    }
    let count = report.findings.len();
    if json {
        print_json(&report.findings)?;
        return Ok(if count == 0 { ExitStatus::Success } else { ExitStatus::Failure });
    }
    let mut stdout = std::io::stdout().lock();
    for finding in &report.findings {
        writeln!(stdout, "{}:{}:{} {} {}", finding.path, finding.line, finding.column, finding.rule, finding.message)
            .map_err(|error| CliError::failure(format!("cannot write to stdout: {error}")))?;
    }
    drop(stdout);
    let skipped = match report.unchecked.len() {
        0 => String::new(),
        n => format!(
            "; {n} selected rule{} need{} buf (-v lists them)",
            if n == 1 { "" } else { "s" },
            if n == 1 { "s" } else { "" }
        ),
    };
    if count > 0 {
        let plural = if count == 1 { "" } else { "s" };
        return Err(CliError::failure(format!(
            "{count} {noun}{plural}{context} (checked with {}{skipped})",
            ran(&report.ran)
        ))
        .hint(hint));
    }
    ui::status("Checked", style::GOOD, format!("{dir}: no {noun}s{context} (with {}{skipped})", ran(&report.ran)));
    Ok(ExitStatus::Success)
}
