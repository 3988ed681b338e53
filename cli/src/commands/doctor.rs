//! `plat doctor`: what plat can use on this machine, what is missing, and how to get it.

use std::fmt::Write as _;

use plat::doctor;

use super::{load_workspace, print_json};
use crate::args::{GlobalArgs, JsonArgs};
use crate::ui::{self, CliError, ExitStatus, paint, style};

pub fn run(global: &GlobalArgs, args: &JsonArgs) -> Result<ExitStatus, CliError> {
    // Outside a workspace the doctor still runs; it just cannot tell what is required. A
    // workspace.toml that is there but wrong is reported like everywhere else (exit 2).
    let workspace = match super::manifest_path(global) {
        Ok(_) => Some(load_workspace(global)?),
        Err(_) => None,
    };
    let fetch_with_cli = plat::git::GitOptions::from_env().fetch_with_cli;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| CliError::failure(format!("cannot start the async runtime: {error}")))?;
    let report = runtime.block_on(doctor::run(workspace.as_ref(), fetch_with_cli));

    let status = if report.has_missing_required() { ExitStatus::Failure } else { ExitStatus::Success };
    if args.json {
        print_json(&report)?;
        return Ok(status);
    }
    let mut out = String::new();
    let width = report.checks.iter().map(|check| check.name.len()).max().unwrap_or(0);
    for check in &report.checks {
        let verdict = match (check.ok, check.required) {
            (true, _) => paint(style::GOOD, "ok     "),
            (false, true) => paint(style::ERROR, "MISSING"),
            (false, false) => paint(style::WARN, "missing"),
        };
        let detail = match (&check.version, &check.problem) {
            (Some(version), _) => version.clone(),
            (None, Some(problem)) => problem.clone(),
            (None, None) => String::new(),
        };
        let _ = writeln!(out, "{verdict}  {:<width$}  {detail}", check.name);
        if !check.ok {
            let _ =
                writeln!(out, "         {:<width$}  {}", "", paint(style::DIM, format!("used for {}", check.used_for)));
            if let Some(hint) = &check.hint {
                let _ = writeln!(out, "         {:<width$}  {}{hint}", "", paint(style::HINT, "hint: "));
            }
        }
    }
    if workspace.is_none() {
        let _ = writeln!(out, "\n{}", paint(style::DIM, "(not in a workspace: nothing is marked required)"));
    }
    ui::write_stdout(&out)?;
    if report.has_missing_required() {
        return Err(CliError::failure("something this workspace needs is missing (marked MISSING above)"));
    }
    Ok(status)
}
