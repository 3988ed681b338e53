//! `plat up --watch`: once the platform is up, it follows its code. plat watches the directory
//! of every service it started and of every library; when files change (and stay quiet for a
//! moment), each service whose build could read them is brought up again as `plat up SERVICE`
//! would: rebuilt when a source its last build read changed (see `build`'s record), its new
//! migrations applied, its container replaced once the new image exists, its health check
//! waited for. Meanwhile the services' logs stream, across the replacements.
//!
//! A build that fails leaves the running container as it was: the error (cargo's messages) is
//! reported and watching goes on. Dependents are not restarted: they reach a service by its name
//! on the workspace network, which follows the new container.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use notify::{RecursiveMode, Watcher};

use crate::logs::{self, LogRecord};
use crate::manifest::{Build, Service, Workspace};
use crate::stack::{self, Action, UpError, UpEvent, UpOptions};

/// How long files must stay quiet after a change before plat acts: an editor's save, a
/// `git checkout` or a formatter touches several files in a burst.
pub const DEBOUNCE: Duration = Duration::from_millis(300);

/// What watching does, for the CLI to show.
#[derive(Debug)]
pub enum WatchEvent<'a> {
    /// Watching began, on these directories.
    Watching { dirs: &'a [PathBuf] },
    /// Files changed that a service is built from (paths relative to the workspace root).
    Changed { service: &'a str, files: &'a [String] },
    /// A step of bringing the service up again.
    Up(UpEvent<'a>),
    /// The change is serving: `took` from the first changed file to the new container ready.
    Serving { service: &'a str, took: Duration },
    /// Nothing the service is built from changed (a README, an editor's swap file): nothing done.
    Unchanged { service: &'a str },
    /// Bringing the service up again failed; a failed build left its container as it was.
    Failed { service: &'a str, error: &'a UpError },
    /// A line one of the services wrote.
    Log(&'a LogRecord),
    /// Another plat command changes the workspace (`plat down`, `plat up` in another
    /// terminal): the rebuild waits for it.
    WaitingFor(Option<&'a crate::state::Holder>),
}

/// Why watching could not start.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// The operating system's file watcher failed.
    #[error("cannot watch {}: {error}", .path.display())]
    Notify {
        /// The directory.
        path: PathBuf,
        /// What the watcher said.
        error: notify::Error,
    },
}

/// Watches `services` (already up) and brings each up again when its code changes, until the
/// returned future is dropped (Ctrl-C, in the CLI). Returns only when watching cannot start.
pub async fn watch(
    engine: &crate::docker::Engine,
    workspace: &Workspace,
    services: &[&Service],
    options: UpOptions,
    on_event: &(dyn Fn(WatchEvent<'_>) + Sync),
) -> Result<(), WatchError> {
    let (sender, mut changes) = tokio::sync::mpsc::unbounded_channel::<PathBuf>();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event
            && !matches!(event.kind, notify::EventKind::Access(_))
        {
            for path in event.paths {
                let _ = sender.send(path);
            }
        }
    })
    .map_err(|error| WatchError::Notify { path: workspace.root.clone(), error })?;
    let dirs = watched_dirs(workspace, services);
    for dir in &dirs {
        watcher
            .watch(dir, RecursiveMode::Recursive)
            .map_err(|error| WatchError::Notify { path: dir.clone(), error })?;
    }
    on_event(WatchEvent::Watching { dirs: &dirs });
    let ignored = ignored_dirs(workspace);

    let rebuild = async {
        loop {
            let Some(first) = changes.recv().await else { return };
            let started = Instant::now();
            let mut paths = BTreeSet::from([first]);
            // Wait for the burst to end: quiet for DEBOUNCE since the last change.
            while let Ok(Some(path)) = tokio::time::timeout(DEBOUNCE, changes.recv()).await {
                paths.insert(path);
            }
            paths.retain(|path| !ignored.iter().any(|dir| path.starts_with(dir)) && !is_tooling(path));
            let affected = affected(workspace, services, &paths);
            if affected.is_empty() {
                continue;
            }
            // As `plat up`: one command at a time changes the workspace's containers.
            let _lock = loop {
                match crate::state::WorkspaceLock::try_acquire(workspace, "plat up --watch") {
                    Ok(Ok(lock)) => break Some(lock),
                    Ok(Err((_, holder))) => {
                        on_event(WatchEvent::WaitingFor(holder.as_ref()));
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                    // No lock to be had (a read-only .plat, say): go on without it.
                    Err(_) => break None,
                }
            };
            for (service, files) in affected {
                on_event(WatchEvent::Changed { service: &service.name, files: &files });
                let on_up = |event: UpEvent<'_>| on_event(WatchEvent::Up(event));
                match stack::up(engine, workspace, &[service], options.clone(), &on_up).await {
                    Ok(report) if report.services.iter().all(|(_, action)| *action == Action::Unchanged) => {
                        on_event(WatchEvent::Unchanged { service: &service.name });
                    }
                    Ok(_) => on_event(WatchEvent::Serving { service: &service.name, took: started.elapsed() }),
                    Err(error) => on_event(WatchEvent::Failed { service: &service.name, error: &error }),
                }
            }
        }
    };
    let logs = async {
        let mut lines = std::pin::pin!(logs::follow(engine, workspace, services, Default::default()));
        while let Some(record) = lines.next().await {
            on_event(WatchEvent::Log(&record));
        }
    };
    tokio::join!(rebuild, logs);
    drop(watcher);
    Ok(())
}

/// The directories a change in which may change a service: each service's own, and every
/// library's (a service may build against any of them).
fn watched_dirs(workspace: &Workspace, services: &[&Service]) -> Vec<PathBuf> {
    // A ready image has no directory: nothing of it to watch.
    let mut dirs: Vec<PathBuf> = services
        .iter()
        .filter(|service| service.has_code())
        .map(|service| workspace.service_dir(service))
        .chain(workspace.libraries.iter().map(|library| workspace.checkout_dir(&library.checkout())))
        .filter(|dir| dir.is_dir())
        .collect();
    dirs.sort();
    dirs.dedup();
    // A directory inside another watched one is watched already.
    let all = dirs.clone();
    dirs.retain(|dir| !all.iter().any(|other| other != dir && dir.starts_with(other)));
    dirs
}

/// Directories whose changes never matter: plat's own state and the cargo target directory
/// (builds write there), wherever they are.
fn ignored_dirs(workspace: &Workspace) -> Vec<PathBuf> {
    let mut dirs = vec![crate::state::dir(workspace)];
    if let Ok(target) = crate::state::cargo_target_dir(workspace) {
        dirs.push(target);
    }
    dirs
}

/// Version control's and build tools' own files inside a checkout: `.git/`, a `target/` of a
/// cargo run by hand.
fn is_tooling(path: &Path) -> bool {
    path.components().any(|part| matches!(part.as_os_str().to_str(), Some(".git" | "target")))
}

/// Which services the changed paths may concern, in start order, each with its files: a
/// service for the paths inside its directory; every cargo service for a library's.
fn affected<'w>(
    workspace: &'w Workspace,
    services: &[&'w Service],
    paths: &BTreeSet<PathBuf>,
) -> Vec<(&'w Service, Vec<String>)> {
    let libraries: Vec<PathBuf> =
        workspace.libraries.iter().map(|library| workspace.checkout_dir(&library.checkout())).collect();
    let relative = |path: &Path| path.strip_prefix(&workspace.root).unwrap_or(path).to_string_lossy().into_owned();
    let mut affected = Vec::new();
    let watched = workspace.services_in_order().filter(|service| service.has_code());
    for service in watched.filter(|service| services.iter().any(|s| s.name == service.name)) {
        let dir = workspace.service_dir(service);
        let cargo = matches!(service.build, Build::Cargo { .. });
        let concerned: Vec<&PathBuf> = paths
            .iter()
            .filter(|path| {
                path.starts_with(&dir) || (cargo && libraries.iter().any(|library| path.starts_with(library)))
            })
            .collect();
        if concerned.is_empty() {
            continue;
        }
        // Named: the files that exist, unless there are none (then what was deleted). An editor's
        // or sed's temporary file, gone by now, is not news.
        let existing: Vec<String> = concerned.iter().filter(|path| path.exists()).map(|path| relative(path)).collect();
        let files = if existing.is_empty() { concerned.iter().map(|path| relative(path)).collect() } else { existing };
        affected.push((service, files));
    }
    affected
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_concerns_its_service_and_a_library_change_every_cargo_service() {
        let workspace = crate::manifest::load(
            Path::new("/ws/workspace.toml"),
            "[workspace]\nname = \"p\"\n[libraries.pkg]\n[services.users]\n[services.web]\nbuild = \"dockerfile\"\n[services.orders]\ndepends_on = [\"users\"]\n",
        )
        .unwrap();
        let all: Vec<&Service> = workspace.services.iter().collect();
        let names = |paths: &[&str]| -> Vec<(String, Vec<String>)> {
            let paths = paths.iter().map(PathBuf::from).collect();
            affected(&workspace, &all, &paths).into_iter().map(|(s, files)| (s.name.clone(), files)).collect()
        };
        assert_eq!(
            names(&["/ws/services/orders/src/lib.rs"]),
            [("orders".to_owned(), vec!["services/orders/src/lib.rs".to_owned()])]
        );
        let library = names(&["/ws/pkg/src/trace.rs"]);
        let concerned: Vec<&str> = library.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(concerned, ["users", "orders"], "start order, and not the dockerfile service");
        assert!(names(&["/ws/proto/user.proto", "/ws/README.md"]).is_empty());
        assert!(is_tooling(Path::new("/ws/services/users/target/debug/users")));
        assert!(is_tooling(Path::new("/ws/services/users/.git/index")));
        assert!(!is_tooling(Path::new("/ws/services/users/src/targets.rs")));
        assert_eq!(watched_dirs(&workspace, &all), Vec::<PathBuf>::new(), "none of them exists here");
    }
}
