//! The Docker Engine, through its API (bollard), and the conventions for what plat creates in
//! it: the labels that find things again, the workspace's network, its database container
//! ([`database`]), its services' images ([`image`]) and containers ([`container`]).
//!
//! Architecture invariant: only this module talks to the Engine.

pub mod container;
mod database;
pub mod image;

use std::collections::HashMap;
use std::time::Duration;

use bollard::Docker;
use bollard::errors::Error as ApiError;
use bollard::models::{ContainerSummary, NetworkCreateRequest, PortSummary, PortSummaryTypeEnum};
use bollard::query_parameters::{ListContainersOptionsBuilder, ListNetworksOptionsBuilder};

pub use database::{
    DatabaseContainer, POSTGRES_IMAGE, POSTGRES_PORT, database_container_name, database_volume_name,
    find_database_container, remove_database, start_database_container, stop_database_container, wait_healthy,
};

/// How long to wait for the Engine to answer a short call before calling it unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The labels on everything plat creates for a workspace (containers, images, the volume and
/// the network). They are how plat finds its things again, whoever started them: `plat up`,
/// `plat db start`, a test, or a person with `docker run --label ...`.
pub mod label {
    /// The workspace's `[workspace] name`.
    pub const WORKSPACE: &str = "dev.plat.workspace";
    /// What the container is to the platform: [`POSTGRES`] for its database, [`SERVICE_ROLE`]
    /// for a service.
    pub const ROLE: &str = "dev.plat.role";
    /// The service a container runs or an image packages.
    pub const SERVICE: &str = "dev.plat.service";
    /// [`ROLE`] of the platform's PostgreSQL.
    pub const POSTGRES: &str = "postgres";
    /// [`ROLE`] of a service's container.
    pub const SERVICE_ROLE: &str = "service";
    /// The label scripts/images/postgres puts on the image.
    pub const IMAGE: &str = "dev.plat.image";
    /// On an image: the hash of everything it was built from, so an unchanged build is skipped.
    pub const INPUTS: &str = "dev.plat.inputs";
    /// On an image: each input with a digest of it (JSON), so `plat build --explain` can say
    /// which changed.
    pub const INPUT_FILES: &str = "dev.plat.inputs.files";
    /// On a service's container: the hash of its whole configuration (image id included), so
    /// `plat up` leaves an unchanged container running and re-creates a changed one.
    pub const CONFIG: &str = "dev.plat.config";
}

/// What the Engine says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineVersion {
    /// Engine version, e.g. `20.10.24`.
    pub version: String,
    /// Highest API version it speaks, e.g. `1.41`.
    pub api_version: String,
}

/// The Engine could not be reached, did not answer, refused, or a container misbehaved.
#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    /// Connecting or calling failed.
    #[error("{0}")]
    Api(#[from] ApiError),
    /// No answer in time.
    #[error("the Docker Engine did not answer within {}s", CONNECT_TIMEOUT.as_secs())]
    Timeout,
    /// The image is not on this machine, and plat never pulls it.
    #[error("image {0} is not on this machine")]
    ImageMissing(String),
    /// A container has the name plat would give, and not plat's labels for it.
    #[error("container {name} exists and was not made by plat for workspace `{workspace}`")]
    NotOurs {
        /// The container.
        name: String,
        /// The workspace.
        workspace: String,
    },
    /// A container stopped while plat waited for it to become healthy.
    #[error("container {name} stopped ({state}) before it was healthy")]
    Stopped {
        /// The container.
        name: String,
        /// Its state and exit code, e.g. `exited with 1`.
        state: String,
    },
    /// A container did not become healthy in time.
    #[error("container {name} is not healthy after {}s", .waited.as_secs())]
    Unhealthy {
        /// The container.
        name: String,
        /// How long plat waited.
        waited: Duration,
    },
    /// The Engine could not build an image.
    #[error("the image build failed: {0}")]
    Build(String),
}

/// Connects to the Engine named by `DOCKER_HOST` (default: the local socket), agreeing on an API
/// version both sides speak: engines older than this client refuse newer API versions.
pub async fn connect() -> Result<Docker, DockerError> {
    let docker = Docker::connect_with_defaults()?;
    tokio::time::timeout(CONNECT_TIMEOUT, docker.negotiate_version())
        .await
        .map_err(|_| DockerError::Timeout)?
        .map_err(DockerError::from)
}

/// The Engine's version and API version.
pub async fn engine_version() -> Result<EngineVersion, DockerError> {
    let docker = connect().await?;
    let version = tokio::time::timeout(CONNECT_TIMEOUT, docker.version()).await.map_err(|_| DockerError::Timeout)??;
    Ok(EngineVersion {
        version: version.version.unwrap_or_else(|| "unknown".to_owned()),
        api_version: version.api_version.unwrap_or_else(|| "unknown".to_owned()),
    })
}

/// The network every container of a workspace joins: `<workspace>-net`.
pub fn network_name(workspace: &str) -> String {
    format!("{workspace}-net")
}

/// Creates `<workspace>-net` unless a network of that name exists. (The Engine accepts two
/// networks of one name; plat checks first, which is enough for one developer's `plat up`.)
async fn ensure_network(docker: &Docker, workspace: &str) -> Result<(), DockerError> {
    let name = network_name(workspace);
    // The name filter matches substrings: compare whole names.
    let filters = HashMap::from([("name", vec![name.as_str()])]);
    let networks = docker.list_networks(Some(ListNetworksOptionsBuilder::new().filters(&filters).build())).await?;
    if networks.iter().any(|network| network.name.as_deref() == Some(name.as_str())) {
        return Ok(());
    }
    docker
        .create_network(NetworkCreateRequest {
            name,
            driver: Some("bridge".to_owned()),
            labels: Some(workspace_labels(workspace)),
            ..NetworkCreateRequest::default()
        })
        .await?;
    Ok(())
}

/// Removes `<workspace>-net`, unless a container still uses it (one plat does not manage).
async fn remove_network(docker: &Docker, workspace: &str) -> Result<(), DockerError> {
    match docker.remove_network(&network_name(workspace)).await {
        Err(ApiError::DockerResponseServerError { status_code: 403, .. }) => Ok(()),
        other => ignore_missing(other),
    }
}

fn ignore_missing(result: Result<(), ApiError>) -> Result<(), DockerError> {
    match result {
        Ok(()) | Err(ApiError::DockerResponseServerError { status_code: 404, .. }) => Ok(()),
        Err(error) => Err(error.into()),
    }
}

async fn list(docker: &Docker, filters: Filters) -> Result<Vec<ContainerSummary>, DockerError> {
    let options = ListContainersOptionsBuilder::new().all(filters.all).filters(&filters.filters).build();
    let call = docker.list_containers(Some(options));
    Ok(tokio::time::timeout(CONNECT_TIMEOUT, call).await.map_err(|_| DockerError::Timeout)??)
}

/// The `filters` of a container list, and whether stopped containers count.
#[derive(Debug, PartialEq, Eq)]
struct Filters {
    filters: HashMap<String, Vec<String>>,
    all: bool,
}

impl Filters {
    /// Containers carrying every one of `labels`; running ones only unless `all`.
    fn labels(labels: &HashMap<String, String>, all: bool) -> Filters {
        // Several `label` values must all match.
        let mut labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        labels.sort();
        Filters { filters: HashMap::from([("label".to_owned(), labels)]), all }
    }

    /// The container of exactly this name.
    fn name(name: &str, all: bool) -> Filters {
        // A regular expression over `/name`: the plain filter matches substrings.
        Filters { filters: HashMap::from([("name".to_owned(), vec![format!("^/{name}$")])]), all }
    }

    /// The container with this id, running or not.
    fn id(id: &str) -> Filters {
        Filters { filters: HashMap::from([("id".to_owned(), vec![id.to_owned()])]), all: true }
    }
}

fn workspace_labels(workspace: &str) -> HashMap<String, String> {
    HashMap::from([(label::WORKSPACE.to_owned(), workspace.to_owned())])
}

fn container_name(container: &ContainerSummary) -> String {
    let names = container.names.as_deref().unwrap_or_default();
    names
        .first()
        .map_or_else(|| container.id.clone().unwrap_or_default(), |name| name.trim_start_matches('/').to_owned())
}

/// The host port a container's TCP `private` port is published on, reachable at 127.0.0.1:
/// bound to 127.0.0.1 or to every IPv4 address. The Engine lists one entry per binding (and
/// for 0.0.0.0 another for `::`).
fn published_port(ports: &[PortSummary], private: u16) -> Option<u16> {
    ports
        .iter()
        .filter(|port| port.private_port == private && port.typ == Some(PortSummaryTypeEnum::TCP))
        .filter(|port| matches!(port.ip.as_deref(), Some("127.0.0.1" | "0.0.0.0") | None))
        .find_map(|port| port.public_port)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_that_do_not_reach_loopback_are_ignored() {
        let port = |ip: Option<&str>, private: u16, public: Option<u16>, typ| PortSummary {
            ip: ip.map(str::to_owned),
            private_port: private,
            public_port: public,
            typ: Some(typ),
        };
        use PortSummaryTypeEnum::{TCP, UDP};
        assert_eq!(published_port(&[port(Some("::1"), 5432, Some(1), TCP)], 5432), None);
        assert_eq!(published_port(&[port(Some("10.1.2.3"), 5432, Some(1), TCP)], 5432), None);
        assert_eq!(published_port(&[port(None, 5432, None, TCP)], 5432), None, "exposed, not published");
        assert_eq!(published_port(&[port(Some("127.0.0.1"), 5432, Some(7), UDP)], 5432), None);
        assert_eq!(published_port(&[port(Some("127.0.0.1"), 5433, Some(7), TCP)], 5432), None);
        assert_eq!(
            published_port(&[port(Some("::"), 5432, Some(8), TCP), port(Some("0.0.0.0"), 5432, Some(9), TCP)], 5432),
            Some(9)
        );
    }

    #[test]
    fn filters_match_whole_names_and_every_label() {
        assert_eq!(Filters::name("platform-postgres", true).filters["name"], ["^/platform-postgres$"]);
        let labels = HashMap::from([("b".to_owned(), "2".to_owned()), ("a".to_owned(), "1".to_owned())]);
        assert_eq!(Filters::labels(&labels, false).filters["label"], ["a=1", "b=2"]);
        assert_eq!(network_name("platform"), "platform-net");
    }
}
