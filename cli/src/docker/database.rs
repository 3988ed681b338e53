//! The workspace's PostgreSQL container: started, found, waited for, stopped and removed.
//! Services reach it on the workspace network as `postgres:5432`, and so does plat (through
//! [`super::relay::Dialer`]); a port the Engine picks on 127.0.0.1 is published for a person's
//! `psql`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use bollard::errors::Error as ApiError;
use bollard::models::{
    ContainerCreateBody, ContainerStateStatusEnum, ContainerSummary, ContainerSummaryStateEnum, EndpointSettings,
    HealthStatusEnum, HostConfig, NetworkingConfig, PortBinding, VolumeCreateRequest,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, RemoveContainerOptionsBuilder, RemoveVolumeOptionsBuilder,
    StopContainerOptionsBuilder,
};

use super::{DockerError, Engine, Filters, Owner, container_name, label, list, network_name, published_port};

/// The platform's PostgreSQL image, built locally by scripts/images/postgres (no registry).
pub const POSTGRES_IMAGE: &str = "plat/postgres:15";

/// The port PostgreSQL listens on inside its container.
pub const POSTGRES_PORT: u16 = 5432;

/// Where the image keeps its data; the database volume is mounted there.
const POSTGRES_DATA: &str = "/var/lib/postgresql/data";

/// The name plat gives the workspace's database container: `<workspace>-postgres`.
pub fn database_container_name(workspace: &str) -> String {
    format!("{workspace}-postgres")
}

/// The volume that keeps the database's data across containers: `<workspace>-postgres-data`.
pub fn database_volume_name(workspace: &str) -> String {
    format!("{workspace}-postgres-data")
}

/// A running database container of a workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseContainer {
    /// Container id.
    pub id: String,
    /// Container name, without Docker's leading `/`.
    pub name: String,
    /// The host port its 5432 is published on, on 127.0.0.1; `None` when it publishes none
    /// (started by hand without `-p`), so that nothing outside Docker's networks reaches it.
    pub port: Option<u16>,
    /// Its address on the workspace network.
    pub address: Option<IpAddr>,
    /// The checkout that made it, when recorded ([`label::CHECKOUT`]).
    pub checkout: Option<String>,
    /// That checkout's directory ([`label::ROOT`]).
    pub root: Option<String>,
}

/// What [`Engine::remove_database`] removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RemovedDatabase {
    /// The containers removed.
    pub containers: Vec<String>,
    /// Whether the data volume existed and was removed.
    pub volume: bool,
}

impl Engine {
    /// The workspace's running PostgreSQL container: one labelled `dev.plat.workspace=<workspace>`
    /// and `dev.plat.role=postgres`. When several run, the one named `<workspace>-postgres` wins,
    /// then the first by name, so that every caller picks the same one. One that another
    /// checkout made is [`DockerError::OtherCheckout`]: its data is that checkout's.
    pub async fn find_database_container(&self, owner: &Owner) -> Result<Option<DatabaseContainer>, DockerError> {
        let running = list(&self.docker, database_filters(&owner.workspace, false)).await?;
        let found = pick_database(&owner.workspace, running);
        match found {
            Some(container) if container.checkout.as_ref().is_some_and(|checkout| *checkout != owner.checkout) => {
                Err(DockerError::OtherCheckout {
                    workspace: owner.workspace.clone(),
                    root: container.root.clone().unwrap_or_else(|| "unknown".to_owned()),
                    containers: vec![container.name],
                })
            }
            found => Ok(found),
        }
    }

    /// Starts the workspace's database container, or leaves it running when it is: the network
    /// `<workspace>-net` (created if missing), the volume `<workspace>-postgres-data` (kept
    /// across containers, so data survives a stop and a re-create), and the container
    /// `<workspace>-postgres` from [`POSTGRES_IMAGE`], reachable on that network as
    /// `postgres:5432` and from this machine on 127.0.0.1 at a port the Engine picks. Returns as
    /// soon as the container runs; [`Engine::wait_healthy`] waits until PostgreSQL accepts
    /// connections.
    pub async fn start_database_container(&self, owner: &Owner) -> Result<DatabaseContainer, DockerError> {
        let name = database_container_name(&owner.workspace);
        let existing = list(&self.docker, Filters::name(&name, true)).await?;
        let current = existing.into_iter().find(|container| container_name(container) == name);
        // A container of that name is this checkout's database, or nothing is touched.
        if let Some(container) = &current {
            let labels = container.labels.clone().unwrap_or_default();
            let ours = labels.get(label::WORKSPACE) == Some(&owner.workspace)
                && labels.get(label::ROLE).map(String::as_str) == Some(label::POSTGRES);
            if !ours {
                return Err(DockerError::NotOurs { name, workspace: owner.workspace.clone() });
            }
            if labels.get(label::CHECKOUT).is_some_and(|checkout| *checkout != owner.checkout) {
                return Err(DockerError::OtherCheckout {
                    workspace: owner.workspace.clone(),
                    root: labels.get(label::ROOT).cloned().unwrap_or_else(|| "unknown".to_owned()),
                    containers: vec![name],
                });
            }
            // Running already (each `up` after the first): it has its image, network and volume.
            if container.state == Some(ContainerSummaryStateEnum::RUNNING) {
                return pick_database(&owner.workspace, vec![container.clone()])
                    .ok_or(DockerError::Stopped { name, state: "gone".to_owned() });
            }
        }
        // Before anything is created: a missing image leaves no network or volume behind.
        match self.docker.inspect_image(POSTGRES_IMAGE).await {
            Err(ApiError::DockerResponseServerError { status_code: 404, .. }) => {
                return Err(DockerError::ImageMissing(POSTGRES_IMAGE.to_owned()));
            }
            other => {
                other?;
            }
        }
        let network = self.ensure_network(owner).await?;
        self.docker
            .create_volume(VolumeCreateRequest {
                // Creating a volume that exists returns it as it is: no race, no error.
                name: Some(database_volume_name(&owner.workspace)),
                labels: Some(owner.labels()),
                ..VolumeCreateRequest::default()
            })
            .await?;
        let id = match current {
            Some(container) => container.id.unwrap_or_else(|| name.clone()),
            None => self.create_database(owner, &name, &network).await?,
        };
        // Starting a running container answers 304, which bollard takes as success.
        self.docker.start_container(&id, None).await?;
        let started = list(&self.docker, Filters::id(&id)).await?;
        pick_database(&owner.workspace, started).ok_or(DockerError::Stopped { name, state: "gone".to_owned() })
    }

    async fn create_database(&self, owner: &Owner, name: &str, network: &str) -> Result<String, DockerError> {
        let port = format!("{POSTGRES_PORT}/tcp");
        let mut labels = owner.labels();
        labels.insert(label::ROLE.to_owned(), label::POSTGRES.to_owned());
        let body = ContainerCreateBody {
            image: Some(POSTGRES_IMAGE.to_owned()),
            labels: Some(labels),
            exposed_ports: Some(vec![port.clone()]),
            host_config: Some(HostConfig {
                // Loopback only: the image trusts every client that reaches it (docs/images.md).
                // An empty host port makes the Engine pick a free one, so two workspaces (or two
                // tests) never fight over 5432.
                port_bindings: Some(HashMap::from([(
                    port,
                    Some(vec![PortBinding { host_ip: Some("127.0.0.1".to_owned()), host_port: Some(String::new()) }]),
                )])),
                binds: Some(vec![format!("{}:{POSTGRES_DATA}", database_volume_name(&owner.workspace))]),
                network_mode: Some(network.to_owned()),
                ..HostConfig::default()
            }),
            networking_config: Some(NetworkingConfig {
                endpoints_config: Some(HashMap::from([(
                    network.to_owned(),
                    // Services on the workspace network reach it by this name.
                    EndpointSettings { aliases: Some(vec![label::POSTGRES.to_owned()]), ..EndpointSettings::default() },
                )])),
            }),
            ..ContainerCreateBody::default()
        };
        let options = CreateContainerOptionsBuilder::new().name(name).build();
        match self.docker.create_container(Some(options), body).await {
            Ok(created) => Ok(created.id),
            // Another plat created it since we looked: use that one.
            Err(ApiError::DockerResponseServerError { status_code: 409, .. }) => Ok(name.to_owned()),
            Err(ApiError::DockerResponseServerError { status_code: 404, message }) if message.contains("image") => {
                Err(DockerError::ImageMissing(POSTGRES_IMAGE.to_owned()))
            }
            Err(error) => Err(error.into()),
        }
    }

    /// Waits until the container's health check passes (the image's `pg_isready`), or, for an
    /// image without a health check, until it runs. Fails when it stops or `timeout` passes.
    pub async fn wait_healthy(&self, container: &DatabaseContainer, timeout: Duration) -> Result<(), DockerError> {
        let started = Instant::now();
        loop {
            let inspect = self.docker.inspect_container(&container.id, None).await?;
            let state = inspect.state.unwrap_or_default();
            if state.running != Some(true) {
                let status = state.status.map_or_else(|| "not running".to_owned(), |status| status.to_string());
                let state = match (state.status, state.exit_code) {
                    (Some(ContainerStateStatusEnum::EXITED), Some(code)) => format!("{status} with {code}"),
                    _ => status,
                };
                return Err(DockerError::Stopped { name: container.name.clone(), state });
            }
            match state.health.and_then(|health| health.status) {
                Some(HealthStatusEnum::HEALTHY) | None | Some(HealthStatusEnum::NONE) => return Ok(()),
                // The image's own check gave up: waiting longer will not help.
                Some(HealthStatusEnum::UNHEALTHY) => {
                    return Err(DockerError::Unhealthy { name: container.name.clone(), waited: started.elapsed() });
                }
                _ => {}
            }
            if started.elapsed() >= timeout {
                return Err(DockerError::Unhealthy { name: container.name.clone(), waited: timeout });
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Stops the workspace's database containers (the data stays in the volume). Returns the
    /// names of those that were running.
    pub async fn stop_database_container(&self, owner: &Owner) -> Result<Vec<String>, DockerError> {
        let mut stopped = Vec::new();
        for container in list(&self.docker, database_filters(&owner.workspace, false)).await? {
            let name = container_name(&container);
            let id = container.id.unwrap_or_else(|| name.clone());
            // The image stops on SIGINT in about a second; 30 s before the Engine kills it leaves
            // room for a checkpoint of a busy database.
            self.docker.stop_container(&id, Some(StopContainerOptionsBuilder::new().t(30).build())).await?;
            stopped.push(name);
        }
        Ok(stopped)
    }

    /// Removes the workspace's database containers (running or not), and with `volume` the data
    /// volume too. Reports what was there to remove; what is already gone is not an error.
    pub async fn remove_database(&self, workspace: &str, volume: bool) -> Result<RemovedDatabase, DockerError> {
        let mut removed = RemovedDatabase::default();
        for container in list(&self.docker, database_filters(workspace, true)).await? {
            let name = container_name(&container);
            let id = container.id.unwrap_or_else(|| name.clone());
            // As `stop_database_container`: time for a checkpoint before the Engine kills it.
            match self.docker.stop_container(&id, Some(StopContainerOptionsBuilder::new().t(30).build())).await {
                Ok(()) | Err(ApiError::DockerResponseServerError { status_code: 304 | 404, .. }) => {}
                Err(error) => return Err(error.into()),
            }
            let options = RemoveContainerOptionsBuilder::new().force(true).build();
            match self.docker.remove_container(&id, Some(options)).await {
                Ok(()) => removed.containers.push(name),
                Err(ApiError::DockerResponseServerError { status_code: 404, .. }) => {}
                Err(error) => return Err(error.into()),
            }
        }
        if volume {
            let name = database_volume_name(workspace);
            let exists = match self.docker.inspect_volume(&name).await {
                Ok(_) => true,
                Err(ApiError::DockerResponseServerError { status_code: 404, .. }) => false,
                Err(error) => return Err(error.into()),
            };
            if exists {
                match self.docker.remove_volume(&name, Some(RemoveVolumeOptionsBuilder::new().build())).await {
                    Ok(()) => removed.volume = true,
                    Err(ApiError::DockerResponseServerError { status_code: 404, .. }) => {}
                    Err(error) => return Err(error.into()),
                }
            }
        }
        Ok(removed)
    }
}

/// Containers labelled as the workspace's database; running ones only unless `all`.
fn database_filters(workspace: &str, all: bool) -> Filters {
    let labels = HashMap::from([
        (label::WORKSPACE.to_owned(), workspace.to_owned()),
        (label::ROLE.to_owned(), label::POSTGRES.to_owned()),
    ]);
    Filters::labels(&labels, all)
}

/// The database container among `containers` (already filtered by label): the one with plat's
/// name, else the first by name.
fn pick_database(workspace: &str, mut containers: Vec<ContainerSummary>) -> Option<DatabaseContainer> {
    let preferred = database_container_name(workspace);
    containers.sort_by_key(|container| {
        let name = container_name(container);
        (name != preferred, name)
    });
    let container = containers.into_iter().next()?;
    let name = container_name(&container);
    let labels = container.labels.clone().unwrap_or_default();
    let address = container
        .network_settings
        .as_ref()
        .and_then(|settings| settings.networks.as_ref())
        .and_then(|networks| networks.get(&network_name(workspace)))
        .and_then(|endpoint| endpoint.ip_address.as_deref())
        .and_then(|ip| ip.parse().ok());
    Some(DatabaseContainer {
        port: published_port(container.ports.as_deref().unwrap_or_default(), POSTGRES_PORT),
        id: container.id.unwrap_or_else(|| name.clone()),
        name,
        address,
        checkout: labels.get(label::CHECKOUT).cloned(),
        root: labels.get(label::ROOT).cloned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `GET /containers/json` as Engine 20.10 (API 1.41) answers it, trimmed.
    const LIST_1_41: &str = r#"[
      {"Id": "b2c1", "Names": ["/other-db"], "Image": "plat/postgres:15", "State": "running",
       "Status": "Up 2 minutes (healthy)",
       "Ports": [{"IP": "0.0.0.0", "PrivatePort": 5432, "PublicPort": 49153, "Type": "tcp"},
                 {"IP": "::", "PrivatePort": 5432, "PublicPort": 49153, "Type": "tcp"}],
       "Labels": {"dev.plat.role": "postgres", "dev.plat.workspace": "platform"},
       "HostConfig": {"NetworkMode": "platform-net"}, "NetworkSettings": {"Networks": {}}, "Mounts": []},
      {"Id": "a1b2", "Names": ["/platform-postgres"], "Image": "plat/postgres:15", "State": "running",
       "Status": "Up 5 seconds (health: starting)",
       "Ports": [{"PrivatePort": 8080, "Type": "tcp"},
                 {"IP": "127.0.0.1", "PrivatePort": 5432, "PublicPort": 32768, "Type": "tcp"}],
       "Labels": {"dev.plat.role": "postgres", "dev.plat.workspace": "platform"},
       "HostConfig": {"NetworkMode": "platform-net"}, "NetworkSettings": {"Networks": {}}, "Mounts": []}
    ]"#;

    fn parse(json: &str) -> Vec<ContainerSummary> {
        serde_json::from_str(json).expect("a 1.41 container list parses")
    }

    #[test]
    fn picks_plats_own_container_and_its_loopback_port() {
        let picked = pick_database("platform", parse(LIST_1_41)).unwrap();
        assert_eq!(
            (picked.id.as_str(), picked.name.as_str(), picked.port, picked.address),
            ("a1b2", "platform-postgres", Some(32768), None)
        );
        // Without plat's own, the first by name; a port published on every address works too.
        let others: Vec<ContainerSummary> = parse(LIST_1_41).into_iter().take(1).collect();
        let picked = pick_database("platform", others).unwrap();
        assert_eq!((picked.name.as_str(), picked.port), ("other-db", Some(49153)));
        assert_eq!(pick_database("platform", Vec::new()), None);
    }

    #[test]
    fn labels_and_names_follow_the_convention() {
        assert_eq!(
            database_filters("platform", false),
            Filters {
                filters: HashMap::from([(
                    "label".to_owned(),
                    vec!["dev.plat.role=postgres".to_owned(), "dev.plat.workspace=platform".to_owned()]
                )]),
                all: false,
            }
        );
        assert_eq!(
            (network_name("platform"), database_container_name("platform"), database_volume_name("platform")),
            ("platform-net".to_owned(), "platform-postgres".to_owned(), "platform-postgres-data".to_owned())
        );
    }
}
