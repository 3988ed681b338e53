//! `plat test --contract --can-deploy SERVICE`: whether SERVICE's version was verified against
//! the versions beside it, from the records of earlier contract runs; one line per edge.

use plat::contract::records::{self, EdgeState, EdgeVerdict};
use plat::manifest::Workspace;

use crate::commands::print_json;
use crate::ui::{self, CliError, ExitStatus, paint, style};

pub fn run(workspace: &Workspace, service: &str, json: bool) -> Result<ExitStatus, CliError> {
    if workspace.service(service).is_none() {
        let names: Vec<&str> = workspace.services.iter().map(|service| service.name.as_str()).collect();
        return Err(CliError::usage(format!(
            "no service `{service}` in the workspace (services: {})",
            names.join(", ")
        )));
    }
    let records = records::read(workspace).map_err(CliError::failure)?;
    let verdicts = records::can_deploy(workspace, service, &records);
    let deployable = verdicts.iter().all(|verdict| verdict.state == EdgeState::Verified);
    if json {
        #[derive(serde::Serialize)]
        struct Answer<'a> {
            service: &'a str,
            can_deploy: bool,
            edges: &'a [EdgeVerdict],
        }
        print_json(&Answer { service, can_deploy: deployable, edges: &verdicts })?;
    } else {
        ui::write_stdout(&show(&verdicts))?;
    }
    if deployable {
        let why = if verdicts.is_empty() { " (it has no contract with any service)" } else { "" };
        ui::status("Verified", style::GOOD, format!("{service} can deploy{why}"));
        Ok(ExitStatus::Success)
    } else {
        let missing = verdicts.iter().filter(|verdict| verdict.state != EdgeState::Verified).count();
        Err(CliError::failure(format!(
            "{service} cannot deploy: {missing} contract{} not verified at these versions; `plat up`, then \
             `plat test --contract` verifies them",
            if missing == 1 { " is" } else { "s are" }
        )))
    }
}

/// One line per edge: the pair, the versions, the state and why.
fn show(verdicts: &[EdgeVerdict]) -> String {
    let mut text = String::new();
    for verdict in verdicts {
        let state = match verdict.state {
            EdgeState::Verified => paint(style::GOOD, "verified"),
            EdgeState::Failed => paint(style::ERROR, "FAILED"),
            EdgeState::Unverified => paint(style::WARN, "unverified"),
        };
        let versions = match &verdict.versions {
            Some((consumer, provider)) => format!(" ({} → {})", short(consumer), short(provider)),
            None => String::new(),
        };
        text.push_str(&format!("{} → {}{versions} ... {state}\n", verdict.consumer, verdict.provider));
        if let Some(detail) = verdict.detail.as_deref().filter(|detail| !detail.is_empty()) {
            text.push_str(&format!("    {detail}\n"));
        }
    }
    text
}

/// A version as people read commits: twelve hex digits, and the mark of uncommitted changes.
fn short(version: &str) -> String {
    match version.split_once('+') {
        Some((commit, dirty)) => format!("{}+{dirty}", &commit[..commit.len().min(12)]),
        None => version[..version.len().min(12)].to_owned(),
    }
}
