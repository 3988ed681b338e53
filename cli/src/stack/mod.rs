//! The running platform: `plat up` brings the workspace's containers to what the manifest says
//! (images built, database started and migrated, services started wave by wave, each wave
//! gated on its health checks), `plat down` removes them, `plat ps` reports them.
//!
//! `up` converges: a container whose configuration (image id included) is unchanged keeps
//! running, a changed one is re-created, a missing one created. Every container carries the
//! hash of its configuration as a label, and the identity of the checkout that made it
//! ([`Owner`]), so no state is kept outside the Engine and two checkouts of one workspace never
//! take each other's containers.
//!
//! The decisions about containers ([`converge`]) are made against a trait that unit tests fake;
//! [`EngineContainers`] is the real one.

mod converge;
mod down;
mod ps;
mod spec;

use std::collections::HashSet;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use converge::{JOB_TIMEOUT, PortHolder};
pub use down::{DownReport, down};
pub use ps::{ServiceState, behind_checkout, ps};

use crate::build::{self, BuildError, BuildEvent, BuildOptions, Built};
use crate::docker::container::{ContainerSpec, RunState, ServiceContainer, service_container_name};
use crate::docker::relay::{Destination, Dialer, Reach};
use crate::docker::{self, DatabaseContainer, DockerError, Engine, Owner};
use crate::health::{self, ProbeTarget};
use crate::manifest::{Health, Service, Workspace};
use crate::migrate::url::Dial;
use crate::migrate::{self, DatabaseTarget, MigrateError, MigrateEvent, MigrateOptions, MigrateReport, UrlSources};

/// How long `up` waits for the database container to accept connections.
const DATABASE_TIMEOUT: Duration = Duration::from_secs(120);

/// How long plat waits for a connection to the database through the Engine.
const DATABASE_DIAL_TIMEOUT: Duration = Duration::from_secs(10);

/// How `plat up` behaves.
#[derive(Debug, Clone, Default)]
pub struct UpOptions {
    /// Use the images on this machine as they are instead of building.
    pub no_build: bool,
    /// How builds behave.
    pub build: BuildOptions,
    /// How to reach the containers' ports (`PLAT_REACH`); `None` decides by itself.
    pub reach: Option<Reach>,
    /// Stops `up` on the caller's word (Ctrl-C): a migration under way has its statement
    /// cancelled on the server and says what it applied; any other step ends at once.
    pub stop: migrate::Stop,
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
    /// The caller asked `up` to stop ([`UpOptions::stop`]).
    #[error("stopped before the platform was up")]
    Stopped,
    /// The Engine failed.
    #[error(transparent)]
    Docker(DockerError),
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
    #[error("{service}: env_file {}: {reason}", .path.display())]
    EnvFile { service: String, path: PathBuf, reason: String },
    /// A host port a service publishes is taken, by a container (named) or another program.
    #[error("{service}: host port {port} is taken{}", match .held_by {
        Some(container) => format!(" by container {}{}", container.name, match (&container.root, container.workspace.as_str()) {
            (Some(root), workspace) => format!(" (workspace `{workspace}`, checkout {root})"),
            (None, "") => String::new(),
            (None, workspace) => format!(" (workspace `{workspace}`)"),
        }),
        None => " by another program".to_owned(),
    })]
    PortTaken { service: String, port: u16, held_by: Option<Box<ServiceContainer>> },
    /// A service's container could not be started.
    #[error("{service}: {error}")]
    Container { service: String, error: DockerError },
    /// A service's container stopped while plat waited for it.
    #[error("{service} stopped ({state}) before it was ready")]
    Exited { service: String, state: String, logs: Vec<String> },
    /// A service did not pass its health check in time.
    #[error("{service} is not healthy after {:.1}s: {reason}", .waited.as_secs_f64())]
    Unhealthy { service: String, reason: String, waited: Duration, logs: Vec<String> },
    /// A wait with no health check to fail ran out of time: a job that never exits.
    #[error("{service} did not {} within {}", .what.trim_start_matches("to "), crate::text::duration(*.waited))]
    Deadline { service: String, what: String, waited: Duration, logs: Vec<String> },
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
    let mut wanted = HashSet::new();
    let mut queue: Vec<_> = names.iter().filter_map(|name| workspace.id_of(name)).collect();
    while let Some(service) = queue.pop() {
        if wanted.insert(service) {
            queue.extend(workspace.graph.dependencies(service).into_iter().map(|(dependency, _)| dependency));
        }
    }
    workspace
        .services_in_order()
        .filter(|service| workspace.id_of(&service.name).is_some_and(|id| wanted.contains(&id)))
        .collect()
}

/// Brings `services` (dependencies included: see [`with_dependencies`]) up: images, database,
/// migrations, containers wave by wave, each wave ready before the next starts.
pub async fn up(
    engine: &Engine,
    workspace: &Workspace,
    services: &[&Service],
    options: UpOptions,
    on_event: &(dyn Fn(UpEvent<'_>) + Sync),
) -> Result<UpReport, UpError> {
    let stop = &options.stop;
    let owner = Owner::new(&workspace.name, &workspace.root);
    let containers = EngineContainers::new(engine, &owner, options.reach);
    // 0. Another checkout's containers under this name are not this one's to replace.
    let existing =
        until_stopped(stop, async { engine.list_services(&workspace.name).await.map_err(UpError::Docker) }).await?;
    refuse_other_checkouts(&owner, &existing).map_err(UpError::Docker)?;

    // 1. Images, in dependency order (cargo builds run one at a time anyway). A stop ends a
    // cargo build at once (its process is killed).
    let images = until_stopped(stop, async {
        // Ready images first: they are only looked up, and one that is missing stops `up`
        // before anything is built or started.
        let mut ready = Vec::new();
        for service in services.iter().filter(|service| !service.has_code()) {
            let never_builds = |_: BuildEvent<'_>| {};
            let found = build::build_service(engine, workspace, service, options.build, &never_builds)
                .await
                .map_err(|error| UpError::Build { service: service.name.clone(), error })?;
            ready.push(found);
        }
        let mut images = Vec::new();
        for service in services {
            let built = if let Some(index) = ready.iter().position(|found| found.service == service.name) {
                ready.swap_remove(index)
            } else if options.no_build {
                let image = build::image_reference(service);
                let found = engine.find_image(&image).await.map_err(UpError::Docker)?;
                let id =
                    found.ok_or_else(|| UpError::NoImage { service: service.name.clone(), image: image.clone() })?.id;
                Built { service: service.name.clone(), image, id, fresh: true, took: Duration::ZERO }
            } else {
                let on_build = |event: BuildEvent<'_>| on_event(UpEvent::Build(event));
                build::build_service(engine, workspace, service, options.build, &on_build)
                    .await
                    .map_err(|error| UpError::Build { service: service.name.clone(), error })?
            };
            on_event(UpEvent::Built(&built));
            images.push(built);
        }
        Ok(images)
    })
    .await?;

    // Every container's configuration, before anything starts: an unreadable env_file stops
    // `up` here rather than halfway. A service whose own environment names a DATABASE_URL uses
    // a database plat does not run.
    let mut specs = Vec::new();
    let mut own_database = HashSet::new();
    for built in &images {
        let service = workspace.service(&built.service).expect("images are built for the workspace's services");
        let env = spec::own_environment(workspace, service)?;
        if env.iter().any(|(key, _)| key == "DATABASE_URL") {
            own_database.insert(service.name.as_str());
        }
        specs.push(spec::spec_with(service, env, &built.id));
    }
    // 2. Host ports, before anything starts: a port taken is found now, not after half the
    // platform runs.
    until_stopped(stop, converge::check_ports(&containers, &specs)).await?;

    // 3. The database and every migration, before any service that uses them starts. A stop
    // during a migration is the migration's to answer: it cancels the statement on the server
    // and says what was applied.
    if services.iter().any(|service| service.database.is_some()) {
        let database = until_stopped(stop, start_database(engine, &owner, on_event)).await?;
        let dial = database_dial(&containers.dialer, &database);
        let mut migrations = Vec::new();
        for service in services.iter().filter(|service| service.database.is_some()) {
            if own_database.contains(service.name.as_str()) {
                on_event(UpEvent::MigrationSkipped { service: &service.name });
                continue;
            }
            migrations.push(migrate_service(workspace, service, &database, dial.clone(), stop, on_event));
        }
        // Each service's database is its own: their migrations run side by side. Each one runs
        // to its end (a failure in one does not cut another short mid-file); the first failure,
        // in start order, is the one reported.
        futures_util::future::join_all(migrations).await.into_iter().collect::<Result<Vec<()>, UpError>>()?;
        if stop.is_requested() {
            return Err(UpError::Stopped);
        }
    }

    // 4. The containers, wave by wave.
    until_stopped(stop, converge::start_services(&containers, workspace, services, &specs, on_event)).await
}

/// `step`, unless a stop is asked for first: then [`UpError::Stopped`], `step` dropped.
async fn until_stopped<T>(stop: &migrate::Stop, step: impl Future<Output = Result<T, UpError>>) -> Result<T, UpError> {
    tokio::select! {
        result = step => result,
        () = stop.requested() => Err(UpError::Stopped),
    }
}

/// Another checkout's containers under the workspace's name: an error naming them and it.
fn refuse_other_checkouts(owner: &Owner, containers: &[ServiceContainer]) -> Result<(), DockerError> {
    let theirs: Vec<&ServiceContainer> = containers.iter().filter(|container| !container.made_by(owner)).collect();
    let Some(first) = theirs.first() else { return Ok(()) };
    Err(DockerError::OtherCheckout {
        workspace: owner.workspace.clone(),
        root: first.root.clone().unwrap_or_else(|| "unknown".to_owned()),
        containers: theirs.iter().map(|container| container.name.clone()).collect(),
    })
}

async fn start_database(
    engine: &Engine,
    owner: &Owner,
    on_event: &(dyn Fn(UpEvent<'_>) + Sync),
) -> Result<DatabaseContainer, UpError> {
    let database = engine.start_database_container(owner).await.map_err(UpError::Database)?;
    on_event(UpEvent::DatabaseStarting { container: &database.name });
    engine.wait_healthy(&database, DATABASE_TIMEOUT).await.map_err(UpError::Database)?;
    on_event(UpEvent::DatabaseReady { container: &database.name, port: database.port });
    Ok(database)
}

/// Connections to the workspace's database as the services make them: `postgres:5432` on the
/// workspace network, directly or through the Engine.
pub fn database_dial(dialer: &Arc<Dialer>, database: &DatabaseContainer) -> Dial {
    let dialer = Arc::clone(dialer);
    let address = database.address;
    Dial(Arc::new(move || {
        let dialer = Arc::clone(&dialer);
        Box::pin(async move {
            let destination = Destination { host: docker::label::POSTGRES, address, port: docker::POSTGRES_PORT };
            dialer.dial(destination, DATABASE_DIAL_TIMEOUT).await
        })
    }))
}

/// Applies a service's migrations to its database in the workspace's container: the one its
/// container will use, whatever DATABASE_URL_<SERVICE> says in plat's environment.
async fn migrate_service(
    workspace: &Workspace,
    service: &Service,
    database: &DatabaseContainer,
    dial: Dial,
    stop: &migrate::Stop,
    on_event: &(dyn Fn(UpEvent<'_>) + Sync),
) -> Result<(), UpError> {
    let failed = |target: Option<&DatabaseTarget>, error: MigrateError| UpError::Migrate {
        service: service.name.clone(),
        target: target.cloned().map(Box::new),
        error: Box::new(error),
    };
    let no_env = |_: &str| None;
    let sources = UrlSources { explicit: None, env: &no_env, container: Some(database), container_dial: Some(dial) };
    let target = migrate::url::resolve(service, &sources).map_err(|error| failed(None, error.into()))?;
    let migrations = migrate::load(workspace, service).map_err(|error| failed(Some(&target), error.into()))?;
    let on_migrate = |event: MigrateEvent<'_>| on_event(UpEvent::Migrate(event));
    let options = MigrateOptions { stop: stop.clone(), ..MigrateOptions::new(&workspace.migrate) };
    let report = migrate::migrate(&target, &migrations, &options, &on_migrate)
        .await
        .map_err(|error| failed(Some(&target), error))?;
    on_event(UpEvent::Migrated { service: &service.name, report: &report });
    Ok(())
}

/// The containers of a workspace in the Engine, for [`converge`]: what `up` reads and changes,
/// probed through a [`Dialer`] so that health checks work wherever plat runs.
pub struct EngineContainers<'a> {
    engine: &'a Engine,
    owner: &'a Owner,
    dialer: Arc<Dialer>,
}

impl<'a> EngineContainers<'a> {
    /// The workspace `owner` names, in `engine`, reached as `reach` says (or as it finds).
    pub fn new(engine: &'a Engine, owner: &'a Owner, reach: Option<Reach>) -> EngineContainers<'a> {
        EngineContainers { engine, owner, dialer: Arc::new(Dialer::new(engine, owner, reach)) }
    }

    /// How it reaches the containers.
    pub fn dialer(&self) -> &Arc<Dialer> {
        &self.dialer
    }
}

impl converge::Containers for EngineContainers<'_> {
    async fn list(&self) -> Result<Vec<ServiceContainer>, DockerError> {
        self.engine.list_services(&self.owner.workspace).await
    }

    async fn create_and_start(&self, spec: &ContainerSpec) -> Result<String, DockerError> {
        self.engine.create_and_start(self.owner, spec).await
    }

    async fn start(&self, id: &str) -> Result<(), DockerError> {
        self.engine.start_container(id).await
    }

    async fn remove(&self, id: &str) -> Result<bool, DockerError> {
        self.engine.remove_container(id).await
    }

    async fn state(&self, id: &str) -> Result<RunState, DockerError> {
        self.engine.run_state(id, &self.owner.workspace).await
    }

    async fn probe(&self, service: &Service, id: &str, address: Option<IpAddr>, health: &Health) -> Result<(), String> {
        let target = ProbeTarget { container: id, host: &service.name, address, ports: &service.ports };
        health::probe(&self.dialer, &health.check, target, health.timeout).await
    }

    async fn last_lines(&self, id: &str) -> Vec<String> {
        self.engine.last_lines(id, 20).await
    }

    async fn port_holder(&self, port: u16) -> Result<Option<PortHolder>, DockerError> {
        if let Some(container) = self.engine.publishing(port).await?.into_iter().next() {
            return Ok(Some(PortHolder::Container(Box::new(container))));
        }
        // A program, not a container: found where plat can tell, with a local Engine, whose
        // published ports share plat's loopback. (Inside a container whose Engine is the host's,
        // the bind succeeds and the Engine's own error says it instead, as with a remote Engine.)
        if !self.engine.is_remote()
            && let Err(error) = std::net::TcpListener::bind(("127.0.0.1", port))
            && error.kind() == std::io::ErrorKind::AddrInUse
        {
            return Ok(Some(PortHolder::Program));
        }
        Ok(None)
    }

    fn container_name(&self, service: &str) -> String {
        service_container_name(&self.owner.workspace, service)
    }

    fn ours(&self, container: &ServiceContainer) -> bool {
        container.made_by(self.owner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    }

    #[test]
    fn a_container_gets_its_database_and_a_hash_of_everything() {
        let workspace = load(MANIFEST);
        let users = workspace.service("users").unwrap();
        let spec = spec::container_spec(&workspace, users, "sha256:1").unwrap();
        assert_eq!(spec.env, ["LOG=debug", "DATABASE_URL=postgres://postgres@postgres:5432/users"]);
        assert_eq!((spec.ports.as_slice(), spec.publish.as_slice()), (&[50051][..], &[][..]));

        let api = workspace.service("api").unwrap();
        let spec = spec::container_spec(&workspace, api, "sha256:1").unwrap();
        assert_eq!(spec.env, ["DATABASE_URL=postgres://elsewhere/x"], "a URL of its own is kept");
        assert_eq!(spec.publish, [(8080, 18080)]);

        let again = spec::container_spec(&workspace, api, "sha256:1").unwrap();
        let new_image = spec::container_spec(&workspace, api, "sha256:2").unwrap();
        assert_eq!(spec.config_hash, again.config_hash);
        assert_ne!(spec.config_hash, new_image.config_hash, "a new image means a new container");
        let changed = load(&MANIFEST.replace("18080", "18081"));
        let moved = spec::container_spec(&changed, changed.service("api").unwrap(), "sha256:1").unwrap();
        assert_ne!(spec.config_hash, moved.config_hash, "so does a new published port");
    }

    #[test]
    fn another_checkouts_containers_are_refused_by_name() {
        let owner = Owner { workspace: "p".into(), checkout: "mine".into(), root: "/a".into() };
        let container = |name: &str, checkout: Option<&str>| ServiceContainer {
            id: name.into(),
            name: name.into(),
            service: "users".into(),
            workspace: "p".into(),
            checkout: checkout.map(str::to_owned),
            root: checkout.map(|_| "/b".to_owned()),
            state: "running".into(),
            status: String::new(),
            config_hash: None,
            published: Vec::new(),
        };
        assert!(refuse_other_checkouts(&owner, &[container("p-users", Some("mine"))]).is_ok());
        assert!(refuse_other_checkouts(&owner, &[container("p-users", None)]).is_ok(), "made by an older plat");
        let error =
            refuse_other_checkouts(&owner, &[container("p-users", Some("theirs")), container("p-api", Some("theirs"))])
                .unwrap_err();
        assert_eq!(error.to_string(), "workspace `p` runs from another checkout, /b: p-users, p-api");
    }
}
