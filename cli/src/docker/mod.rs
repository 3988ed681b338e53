//! The Docker Engine, through its API (bollard), and the conventions for what plat creates in
//! it: the labels that find things again, the workspace's network, its database container
//! ([`database`]), its services' images ([`image`]) and containers ([`container`]).
//!
//! Architecture invariant: only this module talks to the Engine.

pub mod container;
mod database;
pub mod image;
pub mod relay;

use std::collections::HashMap;
use std::time::Duration;

use bollard::Docker;
use bollard::errors::Error as ApiError;
use bollard::models::{ContainerSummary, NetworkCreateRequest, NetworkInspect, PortSummary, PortSummaryTypeEnum};
use bollard::query_parameters::{InspectNetworkOptions, ListContainersOptionsBuilder, ListNetworksOptionsBuilder};

pub use database::{
    DatabaseContainer, POSTGRES_IMAGE, POSTGRES_PORT, RemovedDatabase, database_container_name, database_volume_name,
};

/// How long to wait for the Engine to answer a short call before calling it unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The labels on everything plat creates for a workspace (containers, images, the volume and
/// the network). They are how plat finds its things again, whoever started them: `plat up`,
/// `plat db start`, a test, or a person with `docker run --label ...`.
pub mod label {
    /// The workspace's `[workspace] name` (or `--project`).
    pub const WORKSPACE: &str = "dev.plat.workspace";
    /// The checkout that made it: a digest of the workspace root's path, so that two checkouts
    /// of one workspace never take each other's containers.
    pub const CHECKOUT: &str = "dev.plat.checkout";
    /// The workspace root of that checkout, for messages.
    pub const ROOT: &str = "dev.plat.root";
    /// What the container is to the platform: [`POSTGRES`] for its database, [`SERVICE_ROLE`]
    /// for a service.
    pub const ROLE: &str = "dev.plat.role";
    /// The service a container runs or an image packages.
    pub const SERVICE: &str = "dev.plat.service";
    /// [`ROLE`] of the platform's PostgreSQL, and its host name on the workspace network.
    pub const POSTGRES: &str = crate::manifest::DATABASE_HOST;
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

/// Who owns what plat creates in the Engine: a workspace name, and the checkout that uses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// The name things are called by: `[workspace] name`, or the `--project` given instead.
    pub workspace: String,
    /// A digest of the workspace root's path ([`label::CHECKOUT`]).
    pub checkout: String,
    /// The workspace root, for messages ([`label::ROOT`]).
    pub root: String,
}

impl Owner {
    /// The owner for workspace `name` at `root`. The checkout is its directory: the same
    /// directory is the same checkout whoever runs plat in it (a person, or plat in a container
    /// with the directory mounted at the same path).
    pub fn new(name: &str, root: &std::path::Path) -> Owner {
        let root =
            std::fs::canonicalize(root).unwrap_or_else(|_| std::path::absolute(root).unwrap_or(root.to_path_buf()));
        let digest = <sha2::Sha256 as sha2::Digest>::digest(root.as_os_str().as_encoded_bytes());
        Owner { workspace: name.to_owned(), checkout: crate::text::hex(&digest[..8]), root: root.display().to_string() }
    }

    /// The labels of everything it creates.
    pub fn labels(&self) -> HashMap<String, String> {
        HashMap::from([
            (label::WORKSPACE.to_owned(), self.workspace.clone()),
            (label::CHECKOUT.to_owned(), self.checkout.clone()),
            (label::ROOT.to_owned(), self.root.clone()),
        ])
    }
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
    /// Another checkout of a workspace of the same name runs containers plat would replace.
    #[error(
        "workspace `{workspace}` runs from another checkout, {root}: {}", .containers.join(", ")
    )]
    OtherCheckout {
        /// The workspace name both use.
        workspace: String,
        /// The other checkout's directory (and machine, when known).
        root: String,
        /// Its containers.
        containers: Vec<String>,
    },
    /// A container of that name appeared between looking and creating (another plat run).
    #[error("container {name} exists already")]
    Exists {
        /// The container.
        name: String,
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

/// The Docker Engine a command talks to: one connection, whose API version was agreed on once,
/// made when the command starts and borrowed by everything that calls the Engine.
#[derive(Debug, Clone)]
pub struct Engine {
    docker: Docker,
    /// Whether `DOCKER_HOST` names an Engine over the network (`tcp://`, `ssh://`, ...), whose
    /// containers' addresses are that machine's business, not this one's.
    remote: bool,
}

impl Engine {
    /// Connects to the Engine named by `DOCKER_HOST` (default: the local socket), agreeing on an
    /// API version both sides speak: engines older than this client refuse newer API versions.
    pub async fn connect() -> Result<Engine, DockerError> {
        let docker_host = std::env::var("DOCKER_HOST").ok();
        let remote = is_remote(docker_host.as_deref());
        // A local socket: the version from `/_ping`'s header (under a millisecond), rather than
        // bollard's negotiation through `/version` (7 to 15 ms: the Engine asks containerd and
        // runc for theirs), which every command would pay before its first call.
        if let Some(socket) = local_socket(docker_host.as_deref())
            && let Ok(Ok(Some(server))) = tokio::time::timeout(CONNECT_TIMEOUT, ping_api_version(socket)).await
        {
            let version = if server < *bollard::API_DEFAULT_VERSION { server } else { *bollard::API_DEFAULT_VERSION };
            let docker = Docker::connect_with_unix(socket, ENGINE_REQUEST_TIMEOUT, &version)?;
            return Ok(Engine { docker, remote });
        }
        let docker = Docker::connect_with_defaults()?;
        let docker = tokio::time::timeout(CONNECT_TIMEOUT, docker.negotiate_version())
            .await
            .map_err(|_| DockerError::Timeout)??;
        Ok(Engine { docker, remote })
    }

    /// Whether the Engine is reached over the network rather than a local socket.
    pub fn is_remote(&self) -> bool {
        self.remote
    }

    /// The Engine's version and API version.
    pub async fn version(&self) -> Result<EngineVersion, DockerError> {
        let version =
            tokio::time::timeout(CONNECT_TIMEOUT, self.docker.version()).await.map_err(|_| DockerError::Timeout)??;
        Ok(EngineVersion {
            version: version.version.unwrap_or_else(|| "unknown".to_owned()),
            api_version: version.api_version.unwrap_or_else(|| "unknown".to_owned()),
        })
    }
}

/// The Unix socket a `DOCKER_HOST` value names (the default one when unset), if it names one.
fn local_socket(docker_host: Option<&str>) -> Option<&str> {
    match docker_host {
        None | Some("") => Some("/var/run/docker.sock"),
        Some(host) => host.strip_prefix("unix://"),
    }
}

/// Seconds an Engine request may take, as bollard's own default: an image build is one request.
const ENGINE_REQUEST_TIMEOUT: u64 = 120;

/// The API version the Engine on `socket` speaks, from the `Api-Version` header of `/_ping`
/// (an HTTP/1.0 request, so the Engine closes the connection after its answer). `None` when the
/// answer has no such header; then bollard negotiates.
async fn ping_api_version(socket: &str) -> std::io::Result<Option<bollard::ClientVersion>> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::UnixStream::connect(socket).await?;
    stream.write_all(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n").await?;
    let mut answer = Vec::new();
    stream.take(16 * 1024).read_to_end(&mut answer).await?;
    Ok(api_version_header(&String::from_utf8_lossy(&answer)))
}

/// `Api-Version: 1.41` in an HTTP answer's headers, as a version.
fn api_version_header(answer: &str) -> Option<bollard::ClientVersion> {
    let headers = answer.split("\r\n\r\n").next()?;
    let value = headers.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim().eq_ignore_ascii_case("api-version").then(|| value.trim())
    })?;
    let (major, minor) = value.split_once('.')?;
    Some(bollard::ClientVersion { major_version: major.parse().ok()?, minor_version: minor.parse().ok()? })
}

/// Whether a `DOCKER_HOST` value names an Engine over the network: `tcp://`, `ssh://`,
/// `http(s)://`; not a `unix://` or `npipe://` socket, nor the default (unset).
fn is_remote(docker_host: Option<&str>) -> bool {
    docker_host.is_some_and(|host| {
        let scheme = host.split_once("://").map_or("", |(scheme, _)| scheme);
        matches!(scheme, "tcp" | "ssh" | "http" | "https")
    })
}

/// The network every container of a workspace joins: `<workspace>-net`.
pub fn network_name(workspace: &str) -> String {
    format!("{workspace}-net")
}

impl Engine {
    /// `<workspace>-net`, created when missing; returns its id. Two plat runs that create it at
    /// once leave two networks of one name (the Engine allows that), and a name then no longer
    /// says which: plat keeps one (the one containers use, else the oldest), removes the others,
    /// and refers to the network by id.
    pub(crate) async fn ensure_network(&self, owner: &Owner) -> Result<String, DockerError> {
        let name = network_name(&owner.workspace);
        if self.networks_named(&name).await?.is_empty() {
            let created = self
                .docker
                .create_network(NetworkCreateRequest {
                    name: name.clone(),
                    driver: Some("bridge".to_owned()),
                    labels: Some(owner.labels()),
                    ..NetworkCreateRequest::default()
                })
                .await;
            match created {
                // Another run created it since we looked (engines that refuse a second of one name).
                Ok(_) | Err(ApiError::DockerResponseServerError { status_code: 409, .. }) => {}
                Err(error) => return Err(error.into()),
            }
        }
        let mut networks = self.networks_named(&name).await?;
        // The one in use, then the oldest, then by id: every run keeps the same one.
        networks.sort_by_key(|network| {
            let used = network.containers.as_ref().is_some_and(|containers| !containers.is_empty());
            (!used, network.created.clone().unwrap_or_default(), network.id.clone().unwrap_or_default())
        });
        let keep = networks.first().and_then(|network| network.id.clone()).unwrap_or_else(|| name.clone());
        for extra in networks.iter().skip(1).filter_map(|network| network.id.as_deref()) {
            // One still in use stays: its containers are another run's, which will find its own way.
            let _ = self.docker.remove_network(extra).await;
        }
        Ok(keep)
    }

    /// Every network named exactly `name` (the Engine's filter matches parts of names).
    async fn networks_named(&self, name: &str) -> Result<Vec<NetworkInspect>, DockerError> {
        let filters = HashMap::from([("name", vec![name])]);
        let options = ListNetworksOptionsBuilder::new().filters(&filters).build();
        let networks = self.docker.list_networks(Some(options)).await?;
        let mut named = Vec::new();
        for network in networks.into_iter().filter(|network| network.name.as_deref() == Some(name)) {
            // The list leaves out which containers use it; inspecting says.
            let id = network.id.clone().unwrap_or_default();
            match self.docker.inspect_network(&id, None::<InspectNetworkOptions>).await {
                Ok(inspected) => named.push(inspected),
                Err(ApiError::DockerResponseServerError { status_code: 404, .. }) => {}
                Err(error) => return Err(error.into()),
            }
        }
        Ok(named)
    }

    /// Removes every `<workspace>-net` no container uses any more (one plat does not manage may).
    /// Returns whether one was removed.
    pub async fn remove_network(&self, workspace: &str) -> Result<bool, DockerError> {
        let mut removed = false;
        for network in self.networks_named(&network_name(workspace)).await? {
            let Some(id) = network.id else { continue };
            match self.docker.remove_network(&id).await {
                Ok(()) => removed = true,
                Err(ApiError::DockerResponseServerError { status_code: 403 | 404, .. }) => {}
                Err(error) => return Err(error.into()),
            }
        }
        Ok(removed)
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
    fn the_api_version_comes_from_the_ping_of_a_local_socket() {
        assert_eq!(local_socket(None), Some("/var/run/docker.sock"));
        assert_eq!(local_socket(Some("unix:///run/user/1000/docker.sock")), Some("/run/user/1000/docker.sock"));
        assert_eq!(local_socket(Some("tcp://10.0.0.2:2376")), None, "bollard negotiates with the others");
        let answer = "HTTP/1.0 200 OK\r\nApi-Version: 1.41\r\nDocker-Experimental: false\r\n\r\nOK";
        let version = api_version_header(answer).expect("a version");
        assert_eq!((version.major_version, version.minor_version), (1, 41));
        assert!(api_version_header("HTTP/1.0 200 OK\r\n\r\nApi-Version: 1.41").is_none(), "a body is not a header");
        assert!(api_version_header("HTTP/1.0 200 OK\r\nAPI-VERSION: one\r\n\r\n").is_none());
    }

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
