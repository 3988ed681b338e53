//! `plat sync`: runs the engine's sync and draws it: a progress bar per repository on a terminal,
//! one line per event otherwise.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use plat::git::{self, GitError, GitOptions, RevKind, Untouched, Update};
use plat::manifest::Workspace;
use plat::sync::{self, Action, SyncError, SyncEvent, SyncOptions, SyncSetupError, Synced};

use super::unknown_service;
use crate::args::SyncArgs;
use crate::render::display_path;
use crate::ui::{self, CliError, ExitStatus, paint, style};

pub fn run(workspace: &Workspace, args: &SyncArgs) -> Result<ExitStatus, CliError> {
    let checkouts = workspace.select_checkouts(&args.services).map_err(unknown_service)?;
    let repos = checkouts.iter().filter(|checkout| checkout.is_repository()).count();
    if repos == 0 {
        ui::status("Fresh", style::GOOD, "nothing to sync: everything selected lives in this repository");
        return Ok(ExitStatus::Success);
    }
    let options = SyncOptions { jobs: usize::from(args.jobs), locked: args.locked, git: GitOptions::from_env() };

    let display = Display::new(workspace);
    let report =
        sync::sync(workspace, &checkouts, options, &|event| display.event(event)).map_err(|error| match error {
            SyncSetupError::NoLockFile => {
                CliError::failure(error).hint("run `plat sync` without `--locked` to create it, then commit plat.lock")
            }
            SyncSetupError::Lock(error) => CliError::failure(error),
        })?;

    let (failures, skipped) = (report.failures(), report.skipped());
    let summary = format!(
        "{} repositor{}{}{}{}",
        report.results.len(),
        if report.results.len() == 1 { "y" } else { "ies" },
        if skipped > 0 { format!(", {skipped} left as they were") } else { String::new() },
        if failures > 0 { format!(", {failures} failed") } else { String::new() },
        if report.lock_written { "; plat.lock updated" } else { "" },
    );
    if failures + skipped > 0 {
        ui::status("Finished", style::ERROR, summary);
        Ok(ExitStatus::Failure)
    } else {
        ui::status("Finished", style::GOOD, summary);
        Ok(ExitStatus::Success)
    }
}

/// Draws sync events, from any worker thread.
struct Display<'w> {
    workspace: &'w Workspace,
    bars: Option<(MultiProgress, Mutex<HashMap<String, ProgressBar>>)>,
    started: Mutex<HashMap<String, Instant>>,
}

impl Display<'_> {
    fn new(workspace: &Workspace) -> Display<'_> {
        let bars = ui::stderr_is_terminal()
            .then(|| (MultiProgress::with_draw_target(ProgressDrawTarget::stderr()), Mutex::new(HashMap::new())));
        Display { workspace, bars, started: Mutex::new(HashMap::new()) }
    }

    fn event(&self, event: SyncEvent<'_>) {
        match event {
            SyncEvent::Started { name: service, action } => {
                self.started.lock().unwrap().insert(service.to_owned(), Instant::now());
                let verb = match action {
                    Action::Clone => "Cloning",
                    Action::Fetch => "Fetching",
                };
                match &self.bars {
                    Some((multi, bars)) => {
                        let style =
                            ProgressStyle::with_template("{prefix:>12.cyan.bold} {msg} {wide_bar:.dim} {pos}/{len}")
                                .expect("valid template")
                                .progress_chars("=> ");
                        // Styled and named before it is added, so it never draws half-made.
                        let bar = ProgressBar::new_spinner()
                            .with_style(style)
                            .with_prefix(verb)
                            .with_message(service.to_owned());
                        let bar = multi.add(bar);
                        bar.enable_steady_tick(Duration::from_millis(120));
                        bars.lock().unwrap().insert(service.to_owned(), bar);
                    }
                    None => ui::status(verb, style::HINT, service),
                }
            }
            SyncEvent::Transfer { name: service, transfer } => {
                if let Some((_, bars)) = &self.bars
                    && let Some(bar) = bars.lock().unwrap().get(service)
                {
                    bar.set_length(transfer.total_objects as u64);
                    bar.set_position(transfer.received_objects as u64);
                }
            }
            SyncEvent::Finished { name: service, result } => {
                let elapsed = self.started.lock().unwrap().get(service).map(Instant::elapsed);
                let dir = self.workspace.checkout(service).map(|checkout| self.workspace.checkout_dir(&checkout));
                let dir = dir.map_or_else(|| service.to_owned(), |dir| display_path(&dir));
                let lines = finished_lines(service, &dir, result, elapsed);
                match &self.bars {
                    Some((multi, bars)) => {
                        if let Some(bar) = bars.lock().unwrap().remove(service) {
                            bar.finish_and_clear();
                            multi.remove(&bar);
                        }
                        multi.suspend(|| print_lines(&lines));
                    }
                    None => print_lines(&lines),
                }
            }
        }
    }
}

/// A finished repository as a status line, then any warning and hints.
enum Line {
    Status(&'static str, anstyle::Style, String),
    Error(String),
    Hint(String),
}

fn print_lines(lines: &[Line]) {
    for line in lines {
        match line {
            Line::Status(verb, style, message) => ui::status(verb, *style, message),
            Line::Error(message) => ui::print_error(&CliError::failure(message)),
            Line::Hint(message) => ui::hint(message),
        }
    }
}

/// `dir` is the checkout's directory as the user would type it, for the commands in hints.
fn finished_lines(
    service: &str,
    dir: &str,
    result: &Result<Synced, SyncError>,
    elapsed: Option<Duration>,
) -> Vec<Line> {
    let took =
        elapsed.map(|elapsed| paint(style::DIM, format!(" ({:.1}s)", elapsed.as_secs_f64()))).unwrap_or_default();
    let synced = match result {
        Ok(synced) => synced,
        Err(error) => {
            let mut lines = vec![Line::Error(format!("{service}: {error}"))];
            lines.extend(error_hint(error).map(|hint| Line::Hint(hint.to_owned())));
            return lines;
        }
    };
    let commit = git::short(synced.target.commit);
    let at = match &synced.target.kind {
        RevKind::Branch(branch) => format!("{branch} at {commit}"),
        RevKind::Tag(tag) => format!("tag {tag} ({commit}), detached as pinned"),
        RevKind::Commit => format!("commit {commit}, detached as pinned"),
    };
    match &synced.update {
        Update::UpToDate if synced.action == Action::Clone => {
            vec![Line::Status("Cloned", style::GOOD, format!("{service} {at}{took}"))]
        }
        Update::UpToDate => vec![Line::Status("Fresh", style::GOOD, format!("{service} {at}{took}"))],
        Update::FastForwarded { from } => vec![Line::Status(
            "Updated",
            style::GOOD,
            format!("{service} {at} (fast-forward from {}){took}", git::short(*from)),
        )],
        Update::Switched { .. } => {
            let verb = if synced.action == Action::Clone { "Cloned" } else { "Switched" };
            vec![Line::Status(verb, style::GOOD, format!("{service} to {at}{took}"))]
        }
        Update::Ahead { commits } => vec![Line::Status(
            "Ahead",
            style::GOOD,
            format!(
                "{service} {at}, and {commits} local commit{} not pushed yet{took}",
                if *commits == 1 { "" } else { "s" }
            ),
        )],
        Update::Untouched(reason) => vec![
            Line::Error(format!("{service}: not moved to {at}: {reason}")),
            Line::Hint(untouched_hint(dir, reason)),
        ],
    }
}

/// The commands that let the next `plat sync` move a checkout it had to leave alone.
fn untouched_hint(dir: &str, reason: &Untouched) -> String {
    match reason {
        Untouched::WouldOverwrite { .. } | Untouched::LeavesBranch { .. } => format!(
            "commit them, or put them aside with `git -C {dir} stash --include-untracked`, then run `plat sync` again"
        ),
        Untouched::Diverged { branch, .. } => format!(
            "rebase your commits onto the remote's (`git -C {dir} pull --rebase origin {branch}`) or merge them, then \
             run `plat sync` again; plat only fast-forwards"
        ),
        Untouched::UnreachableHead { head } => format!(
            "keep the commit on a branch (`git -C {dir} switch -c <name> {}`), then run `plat sync` again",
            git::short(*head)
        ),
    }
}

fn error_hint(error: &SyncError) -> Option<&'static str> {
    match error {
        SyncError::Git(GitError::Auth { .. }) => {
            Some("check that ssh-agent holds your key (`ssh-add -l`) or that a git credential helper knows this host")
        }
        SyncError::Git(GitError::RevNotFound { .. }) => {
            Some("check `rev` in workspace.toml against the repository's branches and tags")
        }
        SyncError::Git(GitError::WrongRemote { .. }) => {
            Some("point the checkout at the manifest's repository (`git remote set-url origin <repo>`) or fix `repo`")
        }
        SyncError::Git(GitError::NotARepository { .. }) => Some("move the directory away so plat can clone into it"),
        SyncError::Lock(_) => Some("run `plat sync` without `--locked` to update plat.lock, then commit it"),
        SyncError::LockedCommitMissing { .. } => {
            Some("run `plat sync` without `--locked` to lock a commit that exists")
        }
        SyncError::LockedUntouched { .. } => Some("a clean checkout is needed to check out the locked commit"),
        _ => None,
    }
}
