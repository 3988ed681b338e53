//! `plat validate`: load the manifest and report every problem, or a short summary.

use plat::manifest::{self, LoadError};
use serde::Serialize;

use super::{load_workspace, manifest_path, print_json};
use crate::args::{GlobalArgs, JsonArgs};
use crate::render::display_path;
use crate::ui::{self, CliError, ExitStatus, style};

/// The `--json` answer.
#[derive(Serialize)]
struct Report {
    manifest: String,
    valid: bool,
    services: usize,
    errors: Vec<ErrorEntry>,
}

#[derive(Serialize)]
struct ErrorEntry {
    message: String,
    line: Option<usize>,
    column: Option<usize>,
    help: Option<String>,
}

pub fn run(global: &GlobalArgs, args: &JsonArgs) -> Result<ExitStatus, CliError> {
    if !args.json {
        let workspace = load_workspace(global)?;
        let repos = workspace.services.iter().filter(|s| s.source != manifest::Source::Local).count();
        ui::status(
            "Valid",
            style::GOOD,
            format!(
                "{}: workspace `{}`, {} service{} ({repos} with their own repository)",
                display_path(&workspace.manifest_path),
                workspace.name,
                workspace.services.len(),
                if workspace.services.len() == 1 { "" } else { "s" },
            ),
        );
        return Ok(ExitStatus::Success);
    }

    let path = manifest_path(global)?;
    let report = match manifest::load_path(&path) {
        Ok(workspace) => Report {
            manifest: display_path(&path),
            valid: true,
            services: workspace.services.len(),
            errors: Vec::new(),
        },
        Err(LoadError::Invalid(error)) => Report {
            manifest: display_path(&path),
            valid: false,
            services: 0,
            errors: error
                .diagnostics
                .iter()
                .map(|diagnostic| {
                    let position = diagnostic.span.as_ref().map(|span| error.line_col(span.start));
                    ErrorEntry {
                        message: diagnostic.message.clone(),
                        line: position.map(|(line, _)| line),
                        column: position.map(|(_, column)| column),
                        help: diagnostic.help.clone(),
                    }
                })
                .collect(),
        },
        Err(other) => return Err(CliError::usage(other)),
    };
    print_json(&report)?;
    Ok(if report.valid { ExitStatus::Success } else { ExitStatus::Usage })
}
