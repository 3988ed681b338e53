//! `plat status`: a table of every service's and library's checkout, or JSON.

use plat::lock::Lockfile;
use plat::manifest::Workspace;
use plat::status::{self, CheckoutStatus};

use super::{print_json, unknown_service};
use crate::args::StatusArgs;
use crate::ui::{self, CliError, ExitStatus};

pub fn run(workspace: &Workspace, args: &StatusArgs) -> Result<ExitStatus, CliError> {
    let checkouts = workspace.select_checkouts(&args.services).map_err(unknown_service)?;
    let lock = match Lockfile::read(&plat::lock::path(workspace)) {
        Ok(lock) => lock,
        Err(error) => {
            ui::warn(format!("ignoring plat.lock: {error}"));
            None
        }
    };
    let statuses = status::status(workspace, &checkouts, lock.as_ref());
    if args.json {
        return print_json(&statuses);
    }
    ui::write_stdout(&table(&statuses))?;
    if statuses.iter().any(|status| !status.present && status.source == "repo") {
        ui::hint("run `plat sync` to clone the missing repositories");
    }
    Ok(ExitStatus::Success)
}

/// Columns: name, kind, branch, commit, changes, upstream distance, lock.
fn table(statuses: &[CheckoutStatus]) -> String {
    let rows: Vec<Vec<String>> = statuses.iter().map(|status| row(status).to_vec()).collect();
    ui::table(&["NAME", "KIND", "BRANCH", "COMMIT", "CHANGES", "UPSTREAM", "LOCK"], &rows, "")
}

fn row(status: &CheckoutStatus) -> [String; 7] {
    let dash = || "-".to_owned();
    let kind = status.kind.to_string();
    if !status.present {
        let what = if status.source == "repo" { "not cloned" } else { "missing" };
        let lock = match status.locked {
            Some(_) => "missing".to_owned(),
            None => dash(),
        };
        return [status.name.clone(), kind, what.to_owned(), dash(), dash(), dash(), lock];
    }
    if let Some(error) = &status.error {
        return [status.name.clone(), kind, format!("error: {error}"), dash(), dash(), dash(), dash()];
    }
    let branch = status.branch.clone().unwrap_or_else(|| "(detached)".to_owned());
    let commit = status.commit.as_deref().map_or_else(dash, |commit| commit[..7.min(commit.len())].to_owned());
    let changes = if status.dirty == 0 { "clean".to_owned() } else { format!("{} dirty", status.dirty) };
    let upstream = match (&status.upstream, status.ahead, status.behind) {
        (Some(upstream), Some(0), Some(0)) => format!("= {upstream}"),
        (Some(upstream), Some(ahead), Some(behind)) => format!("+{ahead} -{behind} {upstream}"),
        _ => dash(),
    };
    let lock = match status.locked {
        Some(true) => "locked".to_owned(),
        Some(false) => "differs".to_owned(),
        None => dash(),
    };
    [status.name.clone(), kind, branch, commit, changes, upstream, lock]
}
