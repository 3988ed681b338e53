//! The workspace's PostgreSQL container: started, found, waited for, stopped and removed.
//! Services reach it on the workspace network as `postgres:5432`; plat (migrations) on a
//! loopback port the Engine picks.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::errors::Error as ApiError;
use bollard::models::{
    ContainerCreateBody, ContainerStateStatusEnum, ContainerSummary, EndpointSettings, HealthStatusEnum, HostConfig,
    NetworkingConfig, PortBinding, VolumeCreateRequest,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, RemoveContainerOptionsBuilder, RemoveVolumeOptionsBuilder,
    StopContainerOptionsBuilder,
};

use super::{
    DockerError, Filters, connect, container_name, ensure_network, ignore_missing, label, list, network_name,
    published_port, remove_network, workspace_labels,
};

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
}

/// The workspace's running PostgreSQL container: one labelled `dev.plat.workspace=<workspace>`
/// and `dev.plat.role=postgres`. When several run, the one named `<workspace>-postgres` wins,
/// then the first by name, so that every caller picks the same one.
pub async fn find_database_container(workspace: &str) -> Result<Option<DatabaseContainer>, DockerError> {
    let docker = connect().await?;
    let running = list(&docker, database_filters(workspace, false)).await?;
    Ok(pick_database(workspace, running))
}

/// Starts the workspace's database container, or leaves it running when it is: the network
/// `<workspace>-net` (created if missing), the volume `<workspace>-postgres-data` (kept across
/// containers, so data survives a stop and a re-create), and the container
/// `<workspace>-postgres` from [`POSTGRES_IMAGE`], reachable on that network as `postgres:5432`
/// and from this machine on 127.0.0.1 at a port the Engine picks. Returns as soon as the
/// container runs; [`wait_healthy`] waits until PostgreSQL accepts connections.
pub async fn start_database_container(workspace: &str) -> Result<DatabaseContainer, DockerError> {
    let docker = connect().await?;
    let name = database_container_name(workspace);
    let labels = database_labels(workspace);
    // Before anything is created: a missing image leaves no network or volume behind.
    match docker.inspect_image(POSTGRES_IMAGE).await {
        Err(ApiError::DockerResponseServerError { status_code: 404, .. }) => {
            return Err(DockerError::ImageMissing(POSTGRES_IMAGE.to_owned()));
        }
        other => {
            other?;
        }
    }
    ensure_network(&docker, workspace).await?;
    docker
        .create_volume(VolumeCreateRequest {
            // Creating a volume that exists returns it as it is: no race, no error.
            name: Some(database_volume_name(workspace)),
            labels: Some(workspace_labels(workspace)),
            ..VolumeCreateRequest::default()
        })
        .await?;

    let existing = list(&docker, Filters::name(&name, true)).await?;
    let id = match existing.into_iter().find(|container| container_name(container) == name) {
        Some(container) => {
            let ours = container.labels.as_ref().is_some_and(|have| labels.iter().all(|(k, v)| have.get(k) == Some(v)));
            if !ours {
                return Err(DockerError::NotOurs { name, workspace: workspace.to_owned() });
            }
            container.id.unwrap_or_else(|| name.clone())
        }
        None => create_database(&docker, workspace, &name, labels).await?,
    };
    // Starting a running container answers 304, which bollard takes as success.
    docker.start_container(&id, None).await?;
    let started = list(&docker, Filters::id(&id)).await?;
    pick_database(workspace, started).ok_or(DockerError::Stopped { name, state: "gone".to_owned() })
}

async fn create_database(
    docker: &Docker,
    workspace: &str,
    name: &str,
    labels: HashMap<String, String>,
) -> Result<String, DockerError> {
    let network = network_name(workspace);
    let port = format!("{POSTGRES_PORT}/tcp");
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
            binds: Some(vec![format!("{}:{POSTGRES_DATA}", database_volume_name(workspace))]),
            network_mode: Some(network.clone()),
            ..HostConfig::default()
        }),
        networking_config: Some(NetworkingConfig {
            endpoints_config: Some(HashMap::from([(
                network,
                // Services on the workspace network reach it by this name.
                EndpointSettings { aliases: Some(vec![label::POSTGRES.to_owned()]), ..EndpointSettings::default() },
            )])),
        }),
        ..ContainerCreateBody::default()
    };
    let options = CreateContainerOptionsBuilder::new().name(name).build();
    match docker.create_container(Some(options), body).await {
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
pub async fn wait_healthy(container: &DatabaseContainer, timeout: Duration) -> Result<(), DockerError> {
    let docker = connect().await?;
    let started = Instant::now();
    loop {
        let inspect = docker.inspect_container(&container.id, None).await?;
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

/// Stops the workspace's database containers (the data stays in the volume). Returns the names
/// of those that were running.
pub async fn stop_database_container(workspace: &str) -> Result<Vec<String>, DockerError> {
    let docker = connect().await?;
    let mut stopped = Vec::new();
    for container in list(&docker, database_filters(workspace, false)).await? {
        let name = container_name(&container);
        let id = container.id.unwrap_or_else(|| name.clone());
        // The image stops on SIGINT in about a second; 30 s before the Engine kills it leaves
        // room for a checkpoint of a busy database.
        docker.stop_container(&id, Some(StopContainerOptionsBuilder::new().t(30).build())).await?;
        stopped.push(name);
    }
    Ok(stopped)
}

/// Removes the workspace's database containers (running or not), and with `volume` the data
/// volume too; then the network, when no other container uses it. Returns the names of the
/// containers removed. What is already gone is not an error.
pub async fn remove_database(workspace: &str, volume: bool) -> Result<Vec<String>, DockerError> {
    let docker = connect().await?;
    let mut removed = Vec::new();
    for container in list(&docker, database_filters(workspace, true)).await? {
        let name = container_name(&container);
        let id = container.id.unwrap_or_else(|| name.clone());
        // As `stop_database_container`: time for a checkpoint before the Engine kills it.
        match docker.stop_container(&id, Some(StopContainerOptionsBuilder::new().t(30).build())).await {
            Ok(()) | Err(ApiError::DockerResponseServerError { status_code: 304 | 404, .. }) => {}
            Err(error) => return Err(error.into()),
        }
        let options = RemoveContainerOptionsBuilder::new().force(true).build();
        ignore_missing(docker.remove_container(&id, Some(options)).await)?;
        removed.push(name);
    }
    if volume {
        let volume = database_volume_name(workspace);
        ignore_missing(docker.remove_volume(&volume, Some(RemoveVolumeOptionsBuilder::new().build())).await)?;
    }
    // A service container still attached keeps it; `plat down` removes them together.
    remove_network(&docker, workspace).await?;
    Ok(removed)
}

fn database_labels(workspace: &str) -> HashMap<String, String> {
    let mut labels = workspace_labels(workspace);
    labels.insert(label::ROLE.to_owned(), label::POSTGRES.to_owned());
    labels
}

/// Containers labelled as the workspace's database; running ones only unless `all`.
fn database_filters(workspace: &str, all: bool) -> Filters {
    Filters::labels(&database_labels(workspace), all)
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
    Some(DatabaseContainer {
        port: published_port(container.ports.as_deref().unwrap_or_default(), POSTGRES_PORT),
        id: container.id.unwrap_or_else(|| name.clone()),
        name,
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
            picked,
            DatabaseContainer { id: "a1b2".into(), name: "platform-postgres".into(), port: Some(32768) }
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
