//! `plat build`, `plat up`, `plat down`, `plat ps`: the platform's images and containers.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use plat::build::{self, BuildError, BuildEvent, BuildOptions, Built};
use plat::docker::container::ServiceContainer;
use plat::lock::Lockfile;
use plat::manifest::{Service, Workspace};
use plat::stack::{self, Action, UpError, UpEvent, UpOptions};
use plat::status::{self, Drift};

use super::{docker_hint, engine, lock, migrate, print_json, reach, runtime, unknown_service, with_hint};
use crate::args::{BuildArgs, DownArgs, GlobalArgs, JsonArgs, UpArgs};
use crate::ui::{self, CliError, ExitStatus, paint, style};

/// Whether long steps (a cargo build, the database's start) get a spinner: on a terminal, unless
/// cargo's own output is shown (`-v`).
static SPINNERS: AtomicBool = AtomicBool::new(false);

/// The spinner of the step under way, if any.
static SPINNER: Mutex<Option<ProgressBar>> = Mutex::new(None);

fn enable_spinners(global: &GlobalArgs) {
    SPINNERS.store(ui::stderr_is_terminal() && global.verbose == 0, Ordering::Relaxed);
}

/// A step that takes a while: a spinner with the time spent on a terminal, else a status line.
fn long_step(verb: &str, message: String) {
    if !SPINNERS.load(Ordering::Relaxed) {
        ui::status(verb, style::GOOD, message);
        return;
    }
    let style =
        ProgressStyle::with_template("{prefix:>12.green.bold} {msg} {spinner} {elapsed:.dim}").expect("valid template");
    let spinner = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr())
        .with_style(style)
        .with_prefix(verb.to_owned())
        .with_message(message);
    spinner.enable_steady_tick(Duration::from_millis(120));
    if let Some(previous) = SPINNER.lock().unwrap().replace(spinner) {
        previous.finish_and_clear();
    }
}

/// Ends the step under way: its spinner goes, the line that follows says how it ended.
fn end_step() {
    if let Some(spinner) = SPINNER.lock().unwrap().take() {
        spinner.finish_and_clear();
    }
}

pub fn build(workspace: &Workspace, global: &GlobalArgs, args: &BuildArgs) -> Result<ExitStatus, CliError> {
    let services = workspace.select(&args.services).map_err(unknown_service)?;
    check_checkouts(workspace, &services, args.locked)?;
    let options = BuildOptions { show_tool_output: global.verbose > 0, explain: args.explain, release: args.release };
    let _lock = lock(workspace, "plat build")?;
    enable_spinners(global);
    let runtime = runtime()?;
    let engine = engine(&runtime)?;
    for service in services {
        let built = runtime.block_on(build::build_service(&engine, workspace, service, options, &on_build_event));
        end_step();
        show_built(&built.map_err(|error| build_error(&service.name, error))?);
    }
    Ok(ExitStatus::Success)
}

/// Says which checkouts to be built are not what their rev and plat.lock say (a warning each,
/// since building local work is the inner loop), and refuses them with `--locked`. A checkout
/// that does not exist cannot be built either way.
fn check_checkouts(workspace: &Workspace, services: &[&Service], locked: bool) -> Result<(), CliError> {
    let lock = match Lockfile::read(&plat::lock::path(workspace)) {
        Ok(lock) => lock,
        Err(error) if locked => return Err(CliError::failure(error)),
        Err(error) => {
            ui::warn(format!("ignoring plat.lock: {error}"));
            None
        }
    };
    // Every library: a service may build against any of them.
    let checkouts: Vec<_> = workspace
        .libraries
        .iter()
        .map(|library| library.checkout())
        // A ready image has no checkout: nothing to clone or compare.
        .chain(services.iter().filter_map(|service| service.checkout()))
        .collect();
    let repositories = checkouts.iter().filter(|checkout| checkout.is_repository()).count();
    if locked && lock.is_none() && repositories > 0 {
        return Err(CliError::failure("--locked needs plat.lock, and there is none")
            .hint("run `plat sync` to clone the repositories and write plat.lock, then commit it"));
    }
    let drifts = status::drift(workspace, &checkouts, lock.as_ref());
    let missing: Vec<&Drift> = drifts.iter().filter(|drift| drift.missing).collect();
    if !missing.is_empty() {
        let names: Vec<String> =
            missing.iter().map(|drift| format!("{} {} ({})", drift.kind, drift.name, drift.path)).collect();
        return Err(CliError::failure(format!("not cloned yet: {}", names.join(", "))).hint("`plat sync` clones them"));
    }
    if locked {
        let refused: Vec<String> = drifts
            .iter()
            .filter(|drift| drift.refused_when_locked())
            .map(|drift| describe_drift(drift, true))
            .collect();
        if !refused.is_empty() {
            return Err(CliError::failure(format!("--locked: not what plat.lock says:\n  {}", refused.join("\n  ")))
                .hint("`plat sync --locked` checks out plat.lock's commits (commit or stash local changes first)"));
        }
        return Ok(());
    }
    for drift in drifts.iter().filter(|drift| drift.is_off()) {
        ui::warn(format!("{}; building the checkout as it is", describe_drift(drift, false)));
        let behind = drift.off_rev.as_ref().is_some_and(|off| off.behind > 0);
        ui::hint(if behind {
            "`plat sync` moves checkouts to their rev and records them in plat.lock".to_owned()
        } else {
            format!("push the commits of {}, then `plat sync` records them in plat.lock", drift.name)
        });
    }
    Ok(())
}

/// `service user-service is at 1a2b3c4: 1 commit ahead of main (origin/main); plat.lock says 5d6e7f8`.
fn describe_drift(drift: &Drift, with_changes: bool) -> String {
    let short = |commit: &str| commit.get(..7).unwrap_or(commit).to_owned();
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    let mut parts = Vec::new();
    if let Some(error) = &drift.error {
        parts.push(format!("cannot be read: {error}"));
    }
    if let Some(off) = &drift.off_rev {
        parts.push(match (off.ahead, off.behind) {
            (0, 0) => format!("not at {} ({})", off.rev, short(&off.commit)),
            (ahead, 0) => format!("{} ahead of {}", plural(ahead, "commit"), off.rev),
            (0, behind) => format!("{} behind {} ({})", plural(behind, "commit"), off.rev, short(&off.commit)),
            (ahead, behind) => format!("diverged from {} ({ahead} local, {behind} remote)", off.rev),
        });
    }
    if let Some(locked) = &drift.off_lock {
        parts.push(format!("plat.lock says {}", short(locked)));
    }
    if drift.not_in_lock {
        parts.push("plat.lock has no entry for it".to_owned());
    }
    if with_changes && drift.dirty > 0 {
        parts.push(plural(drift.dirty, "uncommitted file"));
    }
    let head = drift.head.as_deref().map_or_else(|| "no commit".to_owned(), short);
    format!("{} {} ({}) is at {head}: {}", drift.kind, drift.name, drift.path, parts.join("; "))
}

fn on_build_event(event: BuildEvent<'_>) {
    end_step();
    match event {
        BuildEvent::Compiling { service, profile } => {
            long_step("Compiling", format!("{service} (cargo, {profile}, static)"))
        }
        BuildEvent::Running { service, command } => long_step("Running", format!("{service}: `{command}`")),
        BuildEvent::Packaging { service, image } => long_step("Packaging", format!("{service} as {image}")),
        BuildEvent::Explained { service, reasons } => {
            if reasons.is_empty() {
                ui::status("Unchanged", style::DIM, format!("{service}: nothing it is built from changed"));
            }
            for reason in reasons {
                ui::status("Rebuilding", style::WARN, format!("{service}: {reason}"));
            }
        }
    }
}

fn show_built(built: &Built) {
    let id = built.id.trim_start_matches("sha256:").get(..12).unwrap_or_default().to_owned();
    if built.fresh {
        ui::status("Fresh", style::GOOD, format!("{} {} ({id})", built.service, built.image));
    } else {
        ui::status(
            "Built",
            style::GOOD,
            format!("{} {} ({id}) in {}", built.service, built.image, ui::seconds(built.took)),
        );
    }
}

fn build_error(service: &str, error: BuildError) -> CliError {
    let hint = match &error {
        BuildError::Cargo { .. } => {
            Some(format!("`cargo build` in the service's directory shows it; `plat build -v {service}` too"))
        }
        BuildError::HostNotLinux { .. } => {
            Some("set `build = \"dockerfile\"` for the service in workspace.toml".to_owned())
        }
        BuildError::Command { .. } => Some("the command must build the image named by $PLAT_IMAGE".to_owned()),
        BuildError::Docker(error) => docker_hint(error),
        BuildError::NoDirectory(_) => Some("`plat sync` clones the services that have a `repo`".to_owned()),
        BuildError::ReadyImageMissing { image } => Some(build::ready_image_fix(image)),
        BuildError::Context { .. } => None,
    };
    with_hint(CliError::failure(format!("{service}: {error}")), hint)
}

pub fn up(workspace: &Workspace, global: &GlobalArgs, args: &UpArgs) -> Result<ExitStatus, CliError> {
    workspace.select(&args.services).map_err(unknown_service)?;
    let services = stack::with_dependencies(workspace, &args.services);
    if !args.no_build {
        check_checkouts(workspace, &services, args.locked)?;
    }
    let (stop_handle, stop) = plat::migrate::Stop::new();
    let options = UpOptions {
        no_build: args.no_build,
        build: BuildOptions { show_tool_output: global.verbose > 0, explain: false, release: args.release },
        reach: reach()?,
        stop,
    };
    let lock = lock(workspace, if args.watch { "plat up --watch" } else { "plat up" })?;
    let started = std::time::Instant::now();
    enable_spinners(global);
    let runtime = runtime()?;
    let engine = engine(&runtime)?;
    // Ctrl-C asks `up` to stop: a migration under way has its statement cancelled on the server
    // (up to migrate's grace) and says what it applied; any other step ends at once. A second
    // Ctrl-C does not wait.
    let report = runtime.block_on(async {
        let up = stack::up(&engine, workspace, &services, options.clone(), &on_up_event);
        tokio::pin!(up);
        tokio::select! {
            report = &mut up => return Some(report),
            _ = tokio::signal::ctrl_c() => {}
        }
        stop_handle.stop();
        tokio::select! {
            report = &mut up => Some(report),
            _ = tokio::signal::ctrl_c() => None,
        }
    });
    end_step();
    let stopped = |report: Option<Result<_, UpError>>| {
        if let Some(Err(error)) = report
            && !matches!(error, UpError::Stopped)
        {
            ui::print_error(&up_error(error));
        }
        interrupted(&runtime, &engine, workspace, options.reach, "plat up stopped before the platform was up")
    };
    if options.stop.is_requested() {
        return Err(stopped(report));
    }
    let Some(report) = report else { return Err(stopped(None)) };
    let report = report.map_err(up_error)?;
    let published: Vec<String> = services
        .iter()
        .flat_map(|service| {
            service.publish.iter().map(move |(port, host)| format!("{} {port} on 127.0.0.1:{host}", service.name))
        })
        .collect();
    let changed = report.services.iter().filter(|(_, action)| *action != Action::Unchanged).count();
    ui::status(
        "Up",
        style::GOOD,
        format!(
            "{} service{} ready ({changed} changed) in {}{}",
            report.services.len(),
            if report.services.len() == 1 { "" } else { "s" },
            ui::seconds(started.elapsed()),
            if published.is_empty() { String::new() } else { format!("; {}", published.join(", ")) }
        ),
    );
    if args.watch {
        // Released between rebuilds: `plat down` or another `plat up` may go while plat watches.
        drop(lock);
        return watch(&runtime, &engine, workspace, &services, options);
    }
    Ok(ExitStatus::Success)
}

/// Ctrl-C: what keeps running, said, and exit 130. A cargo build under way was stopped with plat;
/// a container half made is finished by the next `plat up`, which converges.
fn interrupted(
    runtime: &tokio::runtime::Runtime,
    engine: &plat::docker::Engine,
    workspace: &Workspace,
    reach: Option<plat::docker::relay::Reach>,
    what: &str,
) -> CliError {
    let running = runtime
        .block_on(stack::ps(engine, workspace, reach))
        .map(|rows| rows.into_iter().filter(|row| row.state == "running").map(|row| row.service).collect::<Vec<_>>());
    let left = match running {
        Ok(running) if running.is_empty() => "nothing of the platform runs".to_owned(),
        Ok(running) => format!("still running: {}", running.join(", ")),
        Err(_) => "`plat ps` shows what runs".to_owned(),
    };
    CliError::interrupted(format!("{what}; {left}"))
        .hint("`plat up` again carries on from here; `plat down` removes it all")
}

/// `--watch`: rebuilds and replaces services as their code changes, with their logs, until
/// Ctrl-C; then says what keeps running.
fn watch(
    runtime: &tokio::runtime::Runtime,
    engine: &plat::docker::Engine,
    workspace: &Workspace,
    services: &[&Service],
    options: UpOptions,
) -> Result<ExitStatus, CliError> {
    // Lines, not spinners: log lines interleave with the steps.
    SPINNERS.store(false, Ordering::Relaxed);
    let names: Vec<&str> = services.iter().map(|service| service.name.as_str()).collect();
    let printer = super::logs::LogPrinter::new(&names, false, false);
    let display = WatchDisplay { printer, replaced: Mutex::new(Vec::new()), waiting: AtomicBool::new(false) };
    let on_event = |event: plat::watch::WatchEvent<'_>| display.event(event);
    let reach = options.reach;
    let outcome = runtime.block_on(async {
        tokio::select! {
            watched = plat::watch::watch(engine, workspace, services, options, &on_event) => Some(watched),
            _ = tokio::signal::ctrl_c() => None,
        }
    });
    if let Some(Err(error)) = outcome {
        return Err(CliError::failure(error).hint("the platform keeps running: `plat down` stops it"));
    }
    let running = runtime
        .block_on(stack::ps(engine, workspace, reach))
        .map(|rows| rows.into_iter().filter(|row| row.state == "running").map(|row| row.service).collect::<Vec<_>>());
    match running {
        Ok(running) if running.is_empty() => {
            ui::status("Stopped", style::GOOD, "watching; nothing of the platform runs")
        }
        Ok(running) => ui::status(
            "Stopped",
            style::GOOD,
            format!("watching; still running: {} (`plat down` stops them)", running.join(", ")),
        ),
        Err(_) => ui::status("Stopped", style::GOOD, "watching; the platform's containers keep running (`plat ps`)"),
    }
    Ok(ExitStatus::Success)
}

/// Draws `--watch`: changes, rebuilds and their outcome between the services' log lines.
struct WatchDisplay {
    printer: super::logs::LogPrinter,
    /// Services whose container was replaced in the round under way: only their readiness is news.
    replaced: Mutex<Vec<String>>,
    /// Whether the wait for another plat was said already.
    waiting: AtomicBool,
}

impl WatchDisplay {
    fn event(&self, event: plat::watch::WatchEvent<'_>) {
        use plat::watch::WatchEvent;
        if !matches!(event, WatchEvent::WaitingFor(_) | WatchEvent::Log(_)) {
            self.waiting.store(false, Ordering::Relaxed);
        }
        match event {
            WatchEvent::WaitingFor(holder) => {
                if !self.waiting.swap(true, Ordering::Relaxed) {
                    let who = holder.map_or_else(
                        || "another plat".to_owned(),
                        |holder| format!("`{}` (pid {})", holder.command, holder.pid),
                    );
                    ui::status("Waiting", style::WARN, format!("for {who} before rebuilding"));
                }
            }
            WatchEvent::Watching { dirs } => {
                let dirs: Vec<String> = dirs.iter().map(|dir| crate::render::display_path(dir)).collect();
                ui::status("Watching", style::GOOD, format!("{} (Ctrl-C to stop)", dirs.join(", ")));
            }
            WatchEvent::Changed { service, files } => {
                self.replaced.lock().unwrap().clear();
                let shown: Vec<&str> = files.iter().take(3).map(String::as_str).collect();
                let more = files.len().saturating_sub(shown.len());
                let more = if more > 0 { format!(" and {more} more") } else { String::new() };
                ui::status("Changed", style::WARN, format!("{service}: {}{more}", shown.join(", ")));
            }
            WatchEvent::Up(event) => match event {
                // A fresh image and an unchanged container are what a no-op looks like: quiet.
                UpEvent::Built(built) if built.fresh => {}
                UpEvent::Container { action: Action::Unchanged, .. } => {}
                UpEvent::Container { service, action } => {
                    self.replaced.lock().unwrap().push(service.to_owned());
                    on_up_event(UpEvent::Container { service, action });
                }
                UpEvent::Ready { service, .. } | UpEvent::Waiting { service, .. }
                    if !self.replaced.lock().unwrap().iter().any(|name| name == service) => {}
                UpEvent::DatabaseStarting { .. } | UpEvent::DatabaseReady { .. } => {}
                UpEvent::Migrated { report, .. } if report.applied.is_empty() => {}
                event => on_up_event(event),
            },
            WatchEvent::Serving { service, took } => {
                ui::status(
                    "Serving",
                    style::GOOD,
                    format!("{service}'s new code, {} after the change", ui::seconds(took)),
                );
            }
            WatchEvent::Unchanged { service } => {
                ui::status("Unchanged", style::DIM, format!("{service}: nothing it is built from changed"));
            }
            WatchEvent::Failed { service, error } => {
                let kept = matches!(error, UpError::Build { .. });
                let mut message = CliError::failure(format_up_error(error));
                if kept {
                    message = message
                        .hint(format!("{service}'s running container was left as it was; fix the code and save again"));
                }
                ui::print_error(&message);
            }
            WatchEvent::Log(record) => {
                let _ = self.printer.print(record);
            }
        }
    }
}

/// An `up` error as one message (with a build's compiler output), for `--watch`, which goes on.
fn format_up_error(error: &UpError) -> String {
    match error {
        UpError::Exited { logs, .. } | UpError::Unhealthy { logs, .. } => format!("{error}{}", indented_logs(logs)),
        other => other.to_string(),
    }
}

fn on_up_event(event: UpEvent<'_>) {
    if !matches!(event, UpEvent::Build(_)) {
        end_step();
    }
    match event {
        UpEvent::Build(event) => on_build_event(event),
        UpEvent::Built(built) => show_built(built),
        UpEvent::DatabaseStarting { container } => long_step("Starting", format!("database {container}")),
        UpEvent::DatabaseReady { container, port } => {
            let port = port.map(|port| format!(" on 127.0.0.1:{port}")).unwrap_or_default();
            ui::status("Ready", style::GOOD, format!("database {container}{port}"));
        }
        UpEvent::Migrate(event) => migrate::on_event(event),
        UpEvent::Migrated { service, report } => {
            let total = report.already_applied + report.applied.len();
            ui::status(
                "Migrated",
                style::GOOD,
                format!("{service}: {} applied now, {total} in all", report.applied.len()),
            );
        }
        UpEvent::MigrationSkipped { service } => ui::warn(format!(
            "{service} sets its own DATABASE_URL, so its migrations are not applied here: run `plat migrate \
             {service}` with that database's URL"
        )),
        UpEvent::Container { service, action } => {
            let verb = match action {
                Action::Created => "Created",
                Action::Recreated => "Recreated",
                Action::Started => "Started",
                Action::Unchanged => "Running",
            };
            let note = if action == Action::Unchanged { " (unchanged)" } else { "" };
            ui::status(verb, style::GOOD, format!("{service}{}", paint(style::DIM, note)));
        }
        // A line, not a spinner: the services of a wave are waited for at once.
        UpEvent::Waiting { service, what } => ui::status("Waiting", style::DIM, format!("{service} {what}")),
        UpEvent::Ready { service, took } => {
            ui::status(
                "Ready",
                style::GOOD,
                format!("{service}{}", paint(style::DIM, format!(" after {}", ui::seconds(took)))),
            );
        }
    }
}

fn up_error(error: UpError) -> CliError {
    match error {
        UpError::Stopped => CliError::interrupted(error),
        UpError::Build { service, error } => build_error(&service, error),
        UpError::Migrate { target: Some(target), error, .. } => migrate::migrate_error(&target, *error),
        UpError::Exited { ref logs, ref service, .. }
        | UpError::Unhealthy { ref logs, ref service, .. }
        | UpError::Deadline { ref logs, ref service, .. } => {
            let message = format!("{error}{}", indented_logs(logs));
            CliError::failure(message).hint(format!("`plat logs {service}` shows all of its log"))
        }
        UpError::NoImage { ref service, .. } => {
            let hint = format!("build it with `plat build {service}`, or drop --no-build");
            CliError::failure(error).hint(hint)
        }
        UpError::Docker(ref docker) | UpError::Database(ref docker) | UpError::Container { error: ref docker, .. } => {
            let hint = docker_hint(docker);
            with_hint(CliError::failure(error), hint)
        }
        UpError::PortTaken { ref held_by, port, .. } => {
            let hint = match held_by.as_deref() {
                Some(ServiceContainer { root: Some(root), .. }) => {
                    format!("stop it with `plat down` in {root}, or publish another port in workspace.toml")
                }
                Some(container) => {
                    format!("stop it with `docker stop {}`, or publish another port in workspace.toml", container.name)
                }
                None => format!(
                    "free port {port} (`lsof -i :{port}` shows who holds it), or publish another port in workspace.toml"
                ),
            };
            CliError::failure(error).hint(hint)
        }
        UpError::Migrate { .. } | UpError::EnvFile { .. } => CliError::failure(error),
    }
}

fn indented_logs(logs: &[String]) -> String {
    if logs.is_empty() {
        return "; it printed nothing".to_owned();
    }
    let lines: String = logs.iter().map(|line| format!("\n  | {line}")).collect();
    format!("; its last lines:{lines}")
}

pub fn down(workspace: &Workspace, args: &DownArgs) -> Result<ExitStatus, CliError> {
    let _lock = lock(workspace, "plat down")?;
    let runtime = runtime()?;
    let engine = engine(&runtime)?;
    let report = runtime.block_on(stack::down(&engine, workspace, args.volumes)).map_err(|error| {
        let hint = docker_hint(&error);
        with_hint(CliError::failure(format!("workspace `{}`: {error}", workspace.name)), hint)
    })?;
    for name in &report.removed {
        ui::status("Removed", style::GOOD, format!("container {name}"));
    }
    if let Some(volume) = &report.volume_removed {
        ui::status("Removed", style::GOOD, format!("volume {volume}"));
    } else if args.volumes {
        ui::status(
            "Fresh",
            style::GOOD,
            format!("no volume {} to remove", plat::docker::database_volume_name(&workspace.name)),
        );
    }
    for volume in &report.service_volumes_removed {
        ui::status("Removed", style::GOOD, format!("volume {volume}"));
    }
    if report.removed.is_empty() {
        ui::status(
            "Fresh",
            style::GOOD,
            format!("no container of workspace `{}` from this checkout exists", workspace.name),
        );
    }
    if !report.others.is_empty() {
        ui::warn(format!(
            "left alone: {} (another checkout's, under the same workspace name)",
            report.others.join(", ")
        ));
    }
    Ok(ExitStatus::Success)
}

pub fn ps(workspace: &Workspace, args: &JsonArgs) -> Result<ExitStatus, CliError> {
    let runtime = runtime()?;
    let engine = engine(&runtime)?;
    let rows = runtime.block_on(stack::ps(&engine, workspace, reach()?)).map_err(|error| {
        let hint = docker_hint(&error);
        with_hint(CliError::failure(format!("workspace `{}`: {error}", workspace.name)), hint)
    })?;
    if args.json {
        return print_json(&rows);
    }
    let notes = rows.iter().any(|row| row.note.is_some());
    let mut header = vec!["SERVICE", "STATE", "HEALTH", "UP TO DATE", "PORTS"];
    if notes {
        header.push("NOTE");
    }
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            let state = match &row.status {
                Some(status) if !status.is_empty() => format!("{} ({status})", row.state),
                _ => row.state.clone(),
            };
            let mut cells = vec![
                row.service.clone(),
                state,
                row.health.clone().unwrap_or_else(|| "-".to_owned()),
                row.up_to_date.map_or("-", |fresh| if fresh { "yes" } else { "no" }).to_owned(),
                if row.published.is_empty() { "-".to_owned() } else { row.published.join(", ") },
            ];
            if notes {
                cells.push(row.note.clone().unwrap_or_default());
            }
            cells
        })
        .collect();
    let table = ui::table(&header, &cells, "");
    ui::write_stdout(&table)?;
    for behind in rows.iter().filter_map(|row| row.behind.as_ref()) {
        ui::warn(format!("{behind}: `plat up` runs what the checkout holds"));
    }
    Ok(ExitStatus::Success)
}
