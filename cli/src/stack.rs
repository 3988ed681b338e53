//! The running platform: `plat up` brings the workspace's containers to what the manifest says
//! (images built, database started and migrated, services started wave by wave, each wave
//! gated on its health checks), `plat down` removes them, `plat ps` reports them.
//!
//! `up` converges: a container whose configuration (image id included) is unchanged keeps
//! running, a changed one is re-created, a missing one created. Every container carries the
//! hash of its configuration as a label, so no state is kept outside the Engine.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::build::{self, BuildError, BuildEvent, BuildOptions, Built};
use crate::docker::container::{self, ContainerSpec, ServiceContainer};
use crate::docker::{self, DatabaseContainer, DockerError};
use crate::health::{self, ProbeTarget};
use crate::manifest::{Condition, HealthCheck, Service, Workspace};
use crate::migrate::{self, DatabaseTarget, MigrateError, MigrateEvent, MigrateOptions, MigrateReport, UrlSources};

/// How long `up` waits for the database container to accept connections.
const DATABASE_TIMEOUT: Duration = Duration::from_secs(120);

/// How often `up` probes a starting service, at most.
const STARTUP_POLL: Duration = Duration::from_millis(250);

/// How often `up` probes a starting service, at least.
const MIN_POLL: Duration = Duration::from_millis(50);

/// How `plat up` behaves.
#[derive(Debug, Clone, Copy, Default)]
pub struct UpOptions {
    /// Use the images on this machine as they are instead of building.
    pub no_build: bool,
    /// How builds behave.
    pub build: BuildOptions,
}

/// What `up` does, step by step, for the CLI to show.
#[derive(Debug)]
pub enum UpEvent<'a> {
    /// A build step.
    Build(BuildEvent<'a>),
    /// An image is ready.
    Built(&'a Built),
    /// The database container runs; waiting until it accepts connections.
    DatabaseStarting { container: &'a str },
    /// The database container accepts connections.
    DatabaseReady { container: &'a str, port: Option<u16> },
    /// A migration step.
    Migrate(MigrateEvent<'a>),
    /// A service's migrations are applied.
    Migrated { service: &'a str, report: &'a MigrateReport },
    /// A service's own `DATABASE_URL` names another database: its migrations are left to
    /// `plat migrate` with that URL.
    MigrationSkipped { service: &'a str },
    /// What happened to a service's container.
    Container { service: &'a str, action: Action },
    /// Waiting for a service to be ready.
    Waiting { service: &'a str, what: &'a str },
    /// The service is ready.
    Ready { service: &'a str, took: Duration },
}

/// What `up` did with a service's container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// It did not exist; it was created and started.
    Created,
    /// Its configuration or image changed; it was replaced.
    Recreated,
    /// It was stopped, with the right configuration; it was started.
    Started,
    /// It runs with the right configuration; left alone.
    Unchanged,
}

/// Why `up` stopped. Whatever was started before stays up, as with `docker compose up`.
#[derive(Debug, thiserror::Error)]
pub enum UpError {
    /// The Engine failed.
    #[error(transparent)]
    Docker(#[from] DockerError),
    /// A service's image could not be built.
    #[error("{service}: {error}")]
    Build { service: String, error: BuildError },
    /// `--no-build` and no image.
    #[error("{service}: image {image} is not on this machine")]
    NoImage { service: String, image: String },
    /// The database container failed.
    #[error("the database: {0}")]
    Database(DockerError),
    /// A service's migrations failed.
    #[error("{service}: {error}")]
    Migrate { service: String, target: Option<Box<DatabaseTarget>>, error: Box<MigrateError> },
    /// A service's env_file could not be read.
    #[error("{service}: cannot read env_file {}: {error}", .path.display())]
    EnvFile { service: String, path: PathBuf, error: std::io::Error },
    /// A service's container could not be started.
    #[error("{service}: {error}")]
    Container { service: String, error: DockerError },
    /// A service's container stopped while plat waited for it.
    #[error("{service} stopped ({state}) before it was ready")]
    Exited { service: String, state: String, logs: Vec<String> },
    /// A service did not pass its health check in time.
    #[error("{service} is not healthy after {:.1}s: {reason}", .waited.as_secs_f64())]
    Unhealthy { service: String, reason: String, waited: Duration, logs: Vec<String> },
}

/// What `up` did.
#[derive(Debug, Default)]
pub struct UpReport {
    /// Each service started, in start order, with what happened to its container.
    pub services: Vec<(String, Action)>,
}

/// The named services and everything they depend on, in dependency order (every service when
/// `names` is empty). The names must be the workspace's ([`Workspace::select`] checks them).
pub fn with_dependencies<'w>(workspace: &'w Workspace, names: &[String]) -> Vec<&'w Service> {
    if names.is_empty() {
        return workspace.services_in_order().collect();
    }
    let index = |name: &str| workspace.services.iter().position(|service| service.name == name);
    let mut wanted: HashSet<usize> = HashSet::new();
    let mut queue: Vec<usize> = names.iter().filter_map(|name| index(name)).collect();
    while let Some(service) = queue.pop() {
        if wanted.insert(service) {
            queue.extend(workspace.graph.dependencies(service).into_iter().map(|(dependency, _)| dependency));
        }
    }
    workspace.services_in_order().filter(|service| index(&service.name).is_some_and(|i| wanted.contains(&i))).collect()
}

/// Brings `services` (dependencies included: see [`with_dependencies`]) up: images, database,
/// migrations, containers wave by wave, each wave ready before the next starts.
pub async fn up(
    workspace: &Workspace,
    services: &[&Service],
    options: UpOptions,
    on_event: &(dyn Fn(UpEvent<'_>) + Sync),
) -> Result<UpReport, UpError> {
    // 1. Images, in dependency order (cargo builds run one at a time anyway).
    let mut images = Vec::new();
    for service in services {
        let built = if options.no_build {
            let image = build::image_reference(service);
            let found = docker::image::find(&image).await?;
            let id = found.ok_or_else(|| UpError::NoImage { service: service.name.clone(), image: image.clone() })?.id;
            Built { service: service.name.clone(), image, id, fresh: true, took: Duration::ZERO }
        } else {
            let on_build = |event: BuildEvent<'_>| on_event(UpEvent::Build(event));
            build::build_service(workspace, service, options.build, &on_build)
                .await
                .map_err(|error| UpError::Build { service: service.name.clone(), error })?
        };
        on_event(UpEvent::Built(&built));
        images.push(built);
    }

    // Every container's configuration, before anything starts: an unreadable env_file stops
    // `up` here rather than halfway.
    // A service whose own environment names a DATABASE_URL uses a database plat does not run.
    let mut specs = Vec::new();
    let mut own_database = HashSet::new();
    for built in &images {
        let service = workspace.service(&built.service).expect("images are built for the workspace's services");
        let env = own_environment(workspace, service)?;
        if env.iter().any(|(key, _)| key == "DATABASE_URL") {
            own_database.insert(service.name.as_str());
        }
        specs.push(spec_with(workspace, service, env, &built.id));
    }

    // 2. The database and every migration, before any service that uses them starts.
    if services.iter().any(|service| service.database.is_some()) {
        let database = start_database(workspace, on_event).await?;
        for service in services.iter().filter(|service| service.database.is_some()) {
            if own_database.contains(service.name.as_str()) {
                on_event(UpEvent::MigrationSkipped { service: &service.name });
                continue;
            }
            migrate_service(workspace, service, &database, on_event).await?;
        }
    }

    // 3. The containers, wave by wave. Before the next wave starts, each service of this one
    // reaches what its dependents ask for; the health of the others is waited for at the end,
    // so that `up` returns with every service ready.
    let existing = container::list_services(&workspace.name).await?;
    let mut report = UpReport::default();
    let gates = gates(services);
    let jobs = jobs(workspace);
    let mut later = Vec::new();
    for wave in workspace.graph.waves() {
        let mut now = Vec::new();
        for service in wave.iter().map(|&index| &workspace.services[index]) {
            let Some(spec) = specs.iter().find(|spec| spec.service == service.name) else { continue };
            let current = existing.iter().find(|container| container.service == service.name);
            let job = jobs.contains(service.name.as_str());
            let (id, action) = converge(spec, current, job, &workspace.name)
                .await
                .map_err(|error| UpError::Container { service: service.name.clone(), error })?;
            on_event(UpEvent::Container { service: &service.name, action });
            report.services.push((service.name.clone(), action));
            let wait = match (job, gates.get(service.name.as_str()), &service.health) {
                (true, _, _) => Wait::Completed,
                (false, Some(Condition::Healthy) | None, Some(_)) => Wait::Healthy,
                (false, Some(_), Some(_)) => {
                    later.push((service, id.clone()));
                    Wait::Running
                }
                (false, _, None) => Wait::Running,
            };
            now.push((service, id, wait));
        }
        // The first failure ends the wait: a crashed service is not reported after its
        // wave-mates' checks time out.
        let waits = now.iter().map(|(service, id, wait)| wait_ready(workspace, service, id, *wait, on_event));
        futures_util::future::try_join_all(waits).await?;
    }
    let waits = later.iter().map(|(service, id)| wait_ready(workspace, service, id, Wait::Healthy, on_event));
    futures_util::future::try_join_all(waits).await?;
    Ok(report)
}

async fn start_database(
    workspace: &Workspace,
    on_event: &(dyn Fn(UpEvent<'_>) + Sync),
) -> Result<DatabaseContainer, UpError> {
    let database = docker::start_database_container(&workspace.name).await.map_err(UpError::Database)?;
    on_event(UpEvent::DatabaseStarting { container: &database.name });
    docker::wait_healthy(&database, DATABASE_TIMEOUT).await.map_err(UpError::Database)?;
    on_event(UpEvent::DatabaseReady { container: &database.name, port: database.port });
    Ok(database)
}

/// Applies a service's migrations to its database in the workspace's container: the one its
/// container will use, whatever DATABASE_URL_<SERVICE> says in plat's environment.
async fn migrate_service(
    workspace: &Workspace,
    service: &Service,
    database: &DatabaseContainer,
    on_event: &(dyn Fn(UpEvent<'_>) + Sync),
) -> Result<(), UpError> {
    let failed = |target: Option<&DatabaseTarget>, error: MigrateError| UpError::Migrate {
        service: service.name.clone(),
        target: target.cloned().map(Box::new),
        error: Box::new(error),
    };
    let no_env = |_: &str| None;
    let sources = UrlSources { explicit: None, env: &no_env, container: Some(database) };
    let target = migrate::url::resolve(service, &sources).map_err(|error| failed(None, error.into()))?;
    let migrations = migrate::load(workspace, service).map_err(|error| failed(Some(&target), error.into()))?;
    let on_migrate = |event: MigrateEvent<'_>| on_event(UpEvent::Migrate(event));
    let report = migrate::migrate(&target, &migrations, &MigrateOptions::default(), &on_migrate)
        .await
        .map_err(|error| failed(Some(&target), error))?;
    on_event(UpEvent::Migrated { service: &service.name, report: &report });
    Ok(())
}

/// The one-off jobs: services that some service of the workspace waits for with `completed`,
/// whether or not it is started this time. A job is waited for until it exits, and one that
/// completed is not run again.
fn jobs(workspace: &Workspace) -> HashSet<&str> {
    workspace
        .services
        .iter()
        .flat_map(|service| service.depends_on.iter())
        .filter(|(_, condition)| **condition == Condition::Completed)
        .filter_map(|(name, _)| workspace.service(name).map(|service| service.name.as_str()))
        .collect()
}

/// For each selected service some selected service depends on, the strongest condition they
/// name (`completed`, else `healthy`, else `started`). A service no one waits for is not in it:
/// `up` waits for its health check, if it has one, before the next wave.
fn gates<'s>(services: &[&'s Service]) -> HashMap<&'s str, Condition> {
    let rank = |condition: Condition| match condition {
        Condition::Started => 0,
        Condition::Healthy => 1,
        Condition::Completed => 2,
    };
    let mut gates: HashMap<&str, Condition> = HashMap::new();
    for service in services {
        for (name, condition) in &service.depends_on {
            let Some(dependency) = services.iter().find(|selected| selected.name == *name) else { continue };
            let gate = gates.entry(dependency.name.as_str()).or_insert(*condition);
            if rank(*condition) > rank(*gate) {
                *gate = *condition;
            }
        }
    }
    gates
}

/// The container a service should have: its image, environment, ports and network alias.
fn container_spec(workspace: &Workspace, service: &Service, image_id: &str) -> Result<ContainerSpec, UpError> {
    Ok(spec_with(workspace, service, own_environment(workspace, service)?, image_id))
}

/// [`container_spec`] with the service's own environment already read.
fn spec_with(
    workspace: &Workspace,
    service: &Service,
    mut env: Vec<(String, String)>,
    image_id: &str,
) -> ContainerSpec {
    if let Some(database) = &service.database {
        if !env.iter().any(|(key, _)| key == "DATABASE_URL") {
            let url =
                format!("postgres://postgres@{}:{}/{}", docker::label::POSTGRES, docker::POSTGRES_PORT, database.name);
            env.push(("DATABASE_URL".to_owned(), url));
        }
    }
    let env: Vec<String> = env.into_iter().map(|(key, value)| format!("{key}={value}")).collect();
    // Sorted: listing the same ports in another order changes nothing.
    let mut ports: Vec<u16> = service.ports.values().copied().collect();
    ports.sort_unstable();
    let mut publish: Vec<(u16, u16)> =
        service.publish.iter().filter_map(|(name, host)| service.ports.get(name).map(|port| (*port, *host))).collect();
    publish.sort_unstable();

    let mut hasher = Sha256::new();
    // The format of this hash; bump it when what a container is made from changes.
    hasher.update(b"plat container v1\0");
    hasher.update(image_id.as_bytes());
    let mut sorted_env = env.clone();
    sorted_env.sort();
    for part in sorted_env.iter().map(String::as_str).chain(["\0ports"]) {
        hasher.update(part.as_bytes());
        hasher.update(b"\0");
    }
    hasher.update(format!("{ports:?}{publish:?}"));
    ContainerSpec {
        workspace: workspace.name.clone(),
        service: service.name.clone(),
        image: image_id.to_owned(),
        env,
        ports,
        publish,
        config_hash: crate::text::hex(&hasher.finalize()),
    }
}

/// The environment the manifest gives a service: its `env_file`s, then `env` over them, as in
/// docker compose.
fn own_environment(workspace: &Workspace, service: &Service) -> Result<Vec<(String, String)>, UpError> {
    let mut env: Vec<(String, String)> = Vec::new();
    let mut set = |key: String, value: String| match env.iter_mut().find(|(have, _)| *have == key) {
        Some(entry) => entry.1 = value,
        None => env.push((key, value)),
    };
    for file in &service.env_files {
        let path = file.under(&workspace.root);
        let text = fs_err::read_to_string(&path).map_err(|error| UpError::EnvFile {
            service: service.name.clone(),
            path: path.clone(),
            error,
        })?;
        for (key, value) in parse_env_file(&text) {
            set(key, value);
        }
    }
    for (key, value) in &service.env {
        set(key.clone(), value.clone());
    }
    Ok(env)
}

/// `KEY=value` lines; blank lines and `#` comments skipped, `export ` and matching quotes
/// around the value removed, as docker compose reads them.
fn parse_env_file(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(|line| {
            let line = line.strip_prefix("export ").unwrap_or(line);
            let (key, value) = line.split_once('=')?;
            let value = value.trim();
            let unquoted = ['"', '\'']
                .iter()
                .find_map(|quote| value.strip_prefix(*quote).and_then(|rest| rest.strip_suffix(*quote)))
                .unwrap_or(value);
            Some((key.trim().to_owned(), unquoted.to_owned()))
        })
        .collect()
}

/// Makes the service's container match `spec`; returns its id and what was done. A one-off
/// `job` that already completed with this configuration is not run again.
async fn converge(
    spec: &ContainerSpec,
    current: Option<&ServiceContainer>,
    job: bool,
    workspace: &str,
) -> Result<(String, Action), DockerError> {
    match current {
        Some(container) if container.config_hash.as_deref() == Some(spec.config_hash.as_str()) => {
            if container.running() {
                return Ok((container.id.clone(), Action::Unchanged));
            }
            if job && container::run_state(&container.id, workspace).await?.exit_code == Some(0) {
                return Ok((container.id.clone(), Action::Unchanged));
            }
            container::start(&container.id).await?;
            Ok((container.id.clone(), Action::Started))
        }
        Some(container) => {
            container::remove(&container.id).await?;
            Ok((container::create_and_start(spec).await?, Action::Recreated))
        }
        None => Ok((container::create_and_start(spec).await?, Action::Created)),
    }
}

/// What `up` waits for, for one service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wait {
    /// Its container runs.
    Running,
    /// Its health check passes (the service has one).
    Healthy,
    /// Its container exited with 0: a one-off job.
    Completed,
}

/// Waits until the service's container is as `wait` says; fails when it stops (or, for a job,
/// exits with another code) or its health check keeps failing.
async fn wait_ready(
    workspace: &Workspace,
    service: &Service,
    id: &str,
    wait: Wait,
    on_event: &(dyn Fn(UpEvent<'_>) + Sync),
) -> Result<(), UpError> {
    let started = Instant::now();
    let exited = |state: String| async {
        let logs = container::last_lines(id, 20).await;
        Err(UpError::Exited { service: service.name.clone(), state, logs })
    };
    if wait == Wait::Completed {
        on_event(UpEvent::Waiting { service: &service.name, what: "to complete" });
        loop {
            let state = container::run_state(id, &workspace.name).await?;
            match state.exit_code {
                Some(0) => break,
                Some(_) => return exited(state.description).await,
                None => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
        on_event(UpEvent::Ready { service: &service.name, took: started.elapsed() });
        return Ok(());
    }
    let health = match (&service.health, wait) {
        (Some(health), Wait::Healthy) => health,
        (health, _) => {
            let state = container::run_state(id, &workspace.name).await?;
            if !state.running {
                return exited(state.description).await;
            }
            // With a health check still to pass (at the end of `up`), running is not ready yet.
            if health.is_none() {
                on_event(UpEvent::Ready { service: &service.name, took: started.elapsed() });
            }
            return Ok(());
        }
    };
    let what = match &health.check {
        HealthCheck::Grpc { .. } => "for its gRPC health check",
        HealthCheck::Http { .. } => "for its HTTP health check",
        HealthCheck::Tcp { .. } => "for its port to open",
        HealthCheck::Cmd(_) => "for its health command",
    };
    on_event(UpEvent::Waiting { service: &service.name, what });
    // Probed more often than `interval` while starting, so that `up` moves on as soon as a
    // service is ready; it fails when the checks have failed for as long as `retries` checks
    // `interval` apart would have, after `start_period`.
    // At least MIN_POLL apart, whatever the manifest says (`0s` is a valid interval).
    let poll = health.interval.min(STARTUP_POLL).max(MIN_POLL);
    let give_up =
        health.start_period.saturating_add(health.interval.max(MIN_POLL).saturating_mul(health.retries.max(1)));
    loop {
        let attempt = Instant::now();
        let state = container::run_state(id, &workspace.name).await?;
        if !state.running {
            return exited(state.description).await;
        }
        let result = match state.address {
            Some(address) => {
                let target = ProbeTarget { container: id, address, ports: &service.ports };
                health::probe(&health.check, target, health.timeout).await
            }
            None => Err(format!("it has no address on network {}", docker::network_name(&workspace.name))),
        };
        match result {
            Ok(()) => {
                on_event(UpEvent::Ready { service: &service.name, took: started.elapsed() });
                return Ok(());
            }
            Err(reason) if started.elapsed() >= give_up => {
                let logs = container::last_lines(id, 20).await;
                let waited = started.elapsed();
                return Err(UpError::Unhealthy { service: service.name.clone(), reason, waited, logs });
            }
            Err(_) => tokio::time::sleep(poll.saturating_sub(attempt.elapsed())).await,
        }
    }
}

/// What `down` removed.
#[derive(Debug, Default)]
pub struct DownReport {
    /// Containers removed, dependents before what they depend on.
    pub removed: Vec<String>,
    /// Whether the database volume was removed.
    pub volume_removed: bool,
}

/// Stops and removes the workspace's containers (services first, dependents before their
/// dependencies, then the database) and its network. The database's data stays in its volume
/// unless `remove_volume`.
pub async fn down(workspace: &Workspace, remove_volume: bool) -> Result<DownReport, DockerError> {
    let mut containers = container::list_services(&workspace.name).await?;
    // Dependents first: reverse start order. Containers of services no longer in the manifest
    // (renamed, removed) go first of all.
    let order: Vec<&str> = workspace.services_in_order().map(|service| service.name.as_str()).collect();
    let position = |container: &ServiceContainer| order.iter().position(|name| *name == container.service);
    containers.sort_by_key(|container| std::cmp::Reverse(position(container).unwrap_or(usize::MAX)));
    let mut report = DownReport::default();
    for container in &containers {
        container::remove(&container.id).await?;
        report.removed.push(container.name.clone());
    }
    report.removed.extend(docker::remove_database(&workspace.name, remove_volume).await?);
    report.volume_removed = remove_volume;
    container::remove_workspace_network(&workspace.name).await?;
    Ok(report)
}

/// One row of `plat ps`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ServiceState {
    /// The service, or `postgres` for the workspace's database.
    pub service: String,
    /// Its container, when there is one.
    pub container: Option<String>,
    /// `running`, `exited`, ... or `missing` when there is no container.
    pub state: String,
    /// What the Engine says: `Up 2 minutes`.
    pub status: Option<String>,
    /// `healthy`, or why not; `None` when it has no health check or does not run.
    pub health: Option<String>,
    /// Whether its container matches the manifest and the current image; `None` for the
    /// database and for a service with no container.
    pub up_to_date: Option<bool>,
    /// Ports published on 127.0.0.1, as `host:container`.
    pub published: Vec<String>,
}

/// The state of every service of the workspace, in start order, then its database.
pub async fn ps(workspace: &Workspace) -> Result<Vec<ServiceState>, DockerError> {
    let containers = container::list_services(&workspace.name).await?;
    let mut rows = Vec::new();
    for service in workspace.services_in_order() {
        let Some(found) = containers.iter().find(|container| container.service == service.name) else {
            rows.push(ServiceState {
                service: service.name.clone(),
                container: None,
                state: "missing".to_owned(),
                status: None,
                health: None,
                up_to_date: None,
                published: Vec::new(),
            });
            continue;
        };
        let health = match (&service.health, found.running()) {
            (Some(health), true) => {
                Some(probe_once(workspace, service, &found.id, &health.check, health.timeout).await)
            }
            _ => None,
        };
        let up_to_date = match docker::image::find(&build::image_reference(service)).await? {
            Some(image) => match container_spec(workspace, service, &image.id) {
                Ok(spec) => Some(found.config_hash.as_deref() == Some(spec.config_hash.as_str())),
                Err(_) => Some(false),
            },
            None => Some(false),
        };
        rows.push(ServiceState {
            service: service.name.clone(),
            container: Some(found.name.clone()),
            state: found.state.clone(),
            status: Some(found.status.clone()),
            health,
            up_to_date,
            published: found.published.iter().map(|(container, host)| format!("{host}:{container}")).collect(),
        });
    }
    if let Some(database) = docker::find_database_container(&workspace.name).await? {
        rows.push(ServiceState {
            service: docker::label::POSTGRES.to_owned(),
            container: Some(database.name),
            state: "running".to_owned(),
            status: None,
            health: None,
            up_to_date: None,
            published: database.port.map(|port| format!("{port}:{}", docker::POSTGRES_PORT)).into_iter().collect(),
        });
    }
    Ok(rows)
}

async fn probe_once(
    workspace: &Workspace,
    service: &Service,
    id: &str,
    check: &HealthCheck,
    timeout: Duration,
) -> String {
    let state = match container::run_state(id, &workspace.name).await {
        Ok(state) => state,
        Err(error) => return error.to_string(),
    };
    let Some(address) = state.address else {
        return format!("no address on network {}", docker::network_name(&workspace.name));
    };
    match health::probe(check, ProbeTarget { container: id, address, ports: &service.ports }, timeout).await {
        Ok(()) => "healthy".to_owned(),
        Err(reason) => reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_files_read_like_docker_compose() {
        let text = "# comment\n\nA=1\nexport B = two \nC=\"quoted value\"\nD='single'\nE=a=b\nnot a pair\n";
        let pairs: Vec<(String, String)> = parse_env_file(text);
        let expected = [("A", "1"), ("B", "two"), ("C", "quoted value"), ("D", "single"), ("E", "a=b")];
        assert_eq!(pairs, expected.map(|(k, v)| (k.to_owned(), v.to_owned())));
    }

    fn load(text: &str) -> Workspace {
        crate::manifest::load(std::path::Path::new("/ws/workspace.toml"), text).expect("a valid manifest")
    }

    const MANIFEST: &str = r#"
[workspace]
name = "p"

[services.db-job]

[services.api]
ports = { http = 8080 }
publish = { http = 18080 }
depends_on = { users = "healthy", db-job = "completed" }
env = { DATABASE_URL = "postgres://elsewhere/x" }

[services.users]
ports = { grpc = 50051 }
database = {}
env = { LOG = "debug" }
"#;

    #[test]
    fn dependencies_come_along_in_start_order() {
        let workspace = load(MANIFEST);
        let names = |services: Vec<&Service>| services.iter().map(|s| s.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(with_dependencies(&workspace, &["api".to_owned()])), ["db-job", "users", "api"]);
        assert_eq!(names(with_dependencies(&workspace, &["users".to_owned()])), ["users"]);
        assert_eq!(names(with_dependencies(&workspace, &[])), ["db-job", "users", "api"]);
        let all: Vec<&Service> = workspace.services.iter().collect();
        assert_eq!(gates(&all), HashMap::from([("db-job", Condition::Completed), ("users", Condition::Healthy)]));
        assert_eq!(jobs(&workspace), HashSet::from(["db-job"]), "a job whoever starts it");
        let users = workspace.services.iter().filter(|service| service.name == "users").collect::<Vec<_>>();
        assert_eq!(gates(&users), HashMap::new(), "only selected dependents count");
    }

    #[test]
    fn a_container_gets_its_database_and_a_hash_of_everything() {
        let workspace = load(MANIFEST);
        let users = workspace.service("users").unwrap();
        let spec = container_spec(&workspace, users, "sha256:1").unwrap();
        assert_eq!(spec.env, ["LOG=debug", "DATABASE_URL=postgres://postgres@postgres:5432/users"]);
        assert_eq!((spec.ports.as_slice(), spec.publish.as_slice()), (&[50051][..], &[][..]));

        let api = workspace.service("api").unwrap();
        let spec = container_spec(&workspace, api, "sha256:1").unwrap();
        assert_eq!(spec.env, ["DATABASE_URL=postgres://elsewhere/x"], "a URL of its own is kept");
        assert_eq!(spec.publish, [(8080, 18080)]);

        let again = container_spec(&workspace, api, "sha256:1").unwrap();
        let new_image = container_spec(&workspace, api, "sha256:2").unwrap();
        assert_eq!(spec.config_hash, again.config_hash);
        assert_ne!(spec.config_hash, new_image.config_hash, "a new image means a new container");
        let changed = load(&MANIFEST.replace("18080", "18081"));
        let moved = container_spec(&changed, changed.service("api").unwrap(), "sha256:1").unwrap();
        assert_ne!(spec.config_hash, moved.config_hash, "so does a new published port");
    }
}
