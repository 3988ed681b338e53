//! Reaching a container's port from wherever plat runs: straight to its address on the
//! workspace network when this machine routes there (a local Linux Engine), else through the
//! Engine itself. For the second, plat keeps a small container of its own on the workspace
//! network, `<workspace>-relay`, made from `plat-relay` (a static binary embedded in plat, see
//! cli/build.rs) `FROM scratch`, and opens each connection as an exec of `plat-relay connect`
//! in it, whose stdin and stdout the Engine's API carries: the bytes cross whatever carries the
//! API (a unix socket, Docker Desktop's VM boundary, TCP to a remote Engine).
//!
//! Everything plat probes (health checks, migrations, contract probes) dials through [`Dialer`],
//! which picks the way once per command: through the Engine when it is remote (`DOCKER_HOST`
//! over the network) or when a first direct connection cannot get through; directly otherwise.
//! `PLAT_REACH=direct` or `PLAT_REACH=engine` decides instead.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::Duration;

use bollard::container::LogOutput;
use bollard::exec::{StartExecOptions, StartExecResults};
use bollard::models::{ContainerCreateBody, EndpointSettings, ExecConfig, HostConfig, NetworkingConfig};
use bollard::query_parameters::{BuildImageOptionsBuilder, CreateContainerOptionsBuilder};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::OnceCell;

use super::{DockerError, Engine, Filters, Owner, container_name, label, list, network_name};

/// The relay program, built for this platform by cli/build.rs; empty when it could not be.
static RELAY: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/plat-relay"));

/// The byte plat-relay writes once it is connected.
const CONNECTED: u8 = 0x06;

/// [`label::ROLE`] of the relay container.
pub const RELAY_ROLE: &str = "relay";

/// How long a first direct connection may take before plat concludes it cannot route to the
/// containers and goes through the Engine.
const DIRECT_PROBE: Duration = Duration::from_millis(700);

/// An open connection to a container's port, direct or through the Engine.
pub trait Connection: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Connection for T {}

/// A boxed [`Connection`].
pub type Conn = Box<dyn Connection>;

/// How plat reaches the containers' ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// To their addresses on the workspace network, from this machine.
    Direct,
    /// Through the Engine, from inside the workspace network (the relay container).
    Engine,
}

impl Reach {
    /// `PLAT_REACH`: `direct`, `engine`, or unset / `auto`.
    pub fn from_env() -> Result<Option<Reach>, String> {
        match std::env::var("PLAT_REACH").ok().as_deref().map(str::to_ascii_lowercase).as_deref() {
            None | Some("" | "auto") => Ok(None),
            Some("direct") => Ok(Some(Reach::Direct)),
            Some("engine") => Ok(Some(Reach::Engine)),
            Some(other) => Err(format!("PLAT_REACH={other} is not one of auto, direct, engine")),
        }
    }
}

/// Where a connection goes: a container's service name on the workspace network (what the
/// relay dials) and, when known, its address there (what a direct connection dials).
#[derive(Debug, Clone, Copy)]
pub struct Destination<'a> {
    /// The host name on the workspace network: the service's name, or `postgres`.
    pub host: &'a str,
    /// The container's address on the workspace network.
    pub address: Option<IpAddr>,
    /// The container's port.
    pub port: u16,
}

/// Opens connections to a workspace's containers, choosing once per command how to reach them.
#[derive(Debug)]
pub struct Dialer {
    /// `None`: direct connections only (tests).
    engine: Option<Engine>,
    owner: Owner,
    /// Decided on the first dial (or set by `PLAT_REACH`).
    reach: Mutex<Option<Reach>>,
    /// The relay container's id, once it runs.
    relay: OnceCell<String>,
}

impl Dialer {
    /// A dialer for `workspace`'s network. A remote Engine is reached through the Engine, a local
    /// one directly unless the first connection shows it cannot be; `forced` (from
    /// [`Reach::from_env`]) decides instead.
    pub fn new(engine: &Engine, owner: &Owner, forced: Option<Reach>) -> Dialer {
        let reach = forced.or_else(|| engine.is_remote().then_some(Reach::Engine));
        Dialer { engine: Some(engine.clone()), owner: owner.clone(), reach: Mutex::new(reach), relay: OnceCell::new() }
    }

    /// A dialer with no Engine behind it: straight to the addresses given, for tests.
    pub fn direct_only() -> Dialer {
        let owner = Owner { workspace: "test".to_owned(), checkout: String::new(), root: String::new() };
        Dialer { engine: None, owner, reach: Mutex::new(Some(Reach::Direct)), relay: OnceCell::new() }
    }

    /// The Engine it dials through, when it has one.
    pub fn engine(&self) -> Result<&Engine, DockerError> {
        self.engine.as_ref().ok_or_else(|| DockerError::Build("no Docker Engine in this context".to_owned()))
    }

    /// How containers are reached, once decided.
    pub fn reach(&self) -> Option<Reach> {
        *self.reach.lock().expect("no panic holds the lock")
    }

    /// Connects to `destination` within `timeout`.
    pub async fn dial(&self, destination: Destination<'_>, timeout: Duration) -> io::Result<Conn> {
        self.settle(destination).await;
        match (self.reach(), destination.address) {
            (Some(Reach::Direct), Some(address)) => direct(SocketAddr::new(address, destination.port), timeout).await,
            (Some(Reach::Direct), None) => Err(io::Error::new(
                io::ErrorKind::NotConnected,
                format!("{} has no address on network {}", destination.host, network_name(&self.owner.workspace)),
            )),
            (Some(Reach::Engine) | None, _) => self.through_engine(destination, timeout).await,
        }
    }

    /// Decides, once per command, how to reach the containers, and readies that way (the relay
    /// container, when it is the Engine), so that the time it takes is not charged to a probe's
    /// own timeout: a health check allows a service 1 s to answer, and a first direct attempt
    /// that gets no answer alone takes `DIRECT_PROBE`. Probes that start together each try, at
    /// the same time. The first direct connection decides: refused means the address is
    /// reachable (nothing listens yet), so direct it is; no answer at all means packets go
    /// nowhere, so through the Engine. A destination with no address decides nothing.
    pub async fn settle(&self, destination: Destination<'_>) {
        if self.reach().is_none()
            && let Some(address) = destination.address
        {
            let socket = SocketAddr::new(address, destination.port);
            match tokio::time::timeout(DIRECT_PROBE, tokio::net::TcpStream::connect(socket)).await {
                Ok(Ok(_)) => self.decide(Reach::Direct),
                Ok(Err(error)) if error.kind() == io::ErrorKind::ConnectionRefused => self.decide(Reach::Direct),
                Ok(Err(_)) | Err(_) => {
                    tracing::debug!("{socket} is not reachable from here: going through the Engine");
                    self.decide(Reach::Engine);
                }
            }
        }
        if self.reach() == Some(Reach::Engine)
            && let Ok(engine) = self.engine()
        {
            // A failure here is the first dial's to report.
            let _ = self.relay.get_or_try_init(|| engine.ensure_relay(&self.owner)).await;
        }
    }

    fn decide(&self, reach: Reach) {
        self.reach.lock().expect("no panic holds the lock").get_or_insert(reach);
    }

    async fn through_engine(&self, destination: Destination<'_>, timeout: Duration) -> io::Result<Conn> {
        let engine = self.engine().map_err(|error| io::Error::other(error.to_string()))?;
        let relay = self
            .relay
            .get_or_try_init(|| engine.ensure_relay(&self.owner))
            .await
            .map_err(|error| io::Error::other(format!("the relay container: {error}")))?;
        let connect = engine.relay_connect(relay, destination.host, destination.port, timeout);
        match tokio::time::timeout(timeout + Duration::from_millis(500), connect).await {
            Ok(result) => result.map(|stream| Box::new(stream) as Conn),
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("{}:{}: no answer", destination.host, destination.port),
            )),
        }
    }
}

async fn direct(socket: SocketAddr, timeout: Duration) -> io::Result<Conn> {
    let stream = tokio::time::timeout(timeout, tokio::net::TcpStream::connect(socket))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, format!("{socket}: no answer")))?
        .map_err(|error| io::Error::new(error.kind(), format!("{socket}: {error}")))?;
    let _ = stream.set_nodelay(true);
    Ok(Box::new(stream))
}

impl Engine {
    /// The relay image `plat/relay:<digest>`, built from the embedded binary when missing.
    async fn relay_image(&self) -> Result<String, DockerError> {
        if RELAY.is_empty() {
            return Err(DockerError::Build(
                "this plat was built without plat-relay (its build target is not Linux), so it cannot reach \
                 containers through the Engine; set PLAT_REACH=direct where their addresses are routable"
                    .to_owned(),
            ));
        }
        let tag = format!("plat/relay:{}", &crate::text::hex(&Sha256::digest(RELAY))[..12]);
        if let Some(image) = self.find_image(&tag).await? {
            return Ok(image.id);
        }
        let mut tar = tar::Builder::new(Vec::new());
        let dockerfile = "FROM scratch\nCOPY plat-relay /plat-relay\nENTRYPOINT [\"/plat-relay\"]\nCMD [\"serve\"]\n";
        for (name, bytes, mode) in [("Dockerfile", dockerfile.as_bytes(), 0o644), ("plat-relay", RELAY, 0o755)] {
            let mut header = tar::Header::new_gnu();
            header.set_size(bytes.len() as u64);
            header.set_mode(mode);
            header.set_mtime(0);
            header.set_cksum();
            tar.append_data(&mut header, name, bytes).map_err(|error| DockerError::Build(error.to_string()))?;
        }
        let context = tar.into_inner().map_err(|error| DockerError::Build(error.to_string()))?;
        let labels = HashMap::from([(label::IMAGE.to_owned(), RELAY_ROLE.to_owned())]);
        let options = BuildImageOptionsBuilder::new().t(&tag).labels(&labels).rm(true).forcerm(true).build();
        let mut stream = self.docker.build_image(options, None, Some(bollard::body_full(context.into())));
        while let Some(item) = stream.next().await {
            let info = item?;
            if let Some(detail) = info.error_detail {
                return Err(DockerError::Build(detail.message.unwrap_or_default()));
            }
        }
        Ok(self.find_image(&tag).await?.ok_or_else(|| DockerError::Build(format!("no image {tag} was built")))?.id)
    }

    /// The workspace's relay container, running: `<workspace>-relay` on `<workspace>-net`.
    pub async fn ensure_relay(&self, owner: &Owner) -> Result<String, DockerError> {
        let name = relay_container_name(&owner.workspace);
        let image = self.relay_image().await?;
        let mut labels = owner.labels();
        labels.insert(label::ROLE.to_owned(), RELAY_ROLE.to_owned());
        let existing = list(&self.docker, Filters::name(&name, true)).await?;
        if let Some(container) = existing.into_iter().find(|container| container_name(container) == name) {
            let id = container.id.unwrap_or_else(|| name.clone());
            let current = container.image_id.as_deref() == Some(image.as_str());
            if current {
                // Starting a running container answers 304, which bollard takes as success.
                self.docker.start_container(&id, None).await?;
                return Ok(id);
            }
            self.remove_relay(&owner.workspace).await?;
        }
        let network = self.ensure_network(owner).await?;
        let body = ContainerCreateBody {
            image: Some(image),
            labels: Some(labels),
            host_config: Some(HostConfig { network_mode: Some(network.clone()), ..HostConfig::default() }),
            networking_config: Some(NetworkingConfig {
                endpoints_config: Some(HashMap::from([(network, EndpointSettings::default())])),
            }),
            ..ContainerCreateBody::default()
        };
        let options = CreateContainerOptionsBuilder::new().name(&name).build();
        let id = match self.docker.create_container(Some(options), body).await {
            Ok(created) => created.id,
            // Another plat of this workspace made it a moment ago: use it.
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 409, .. }) => name.clone(),
            Err(error) => return Err(error.into()),
        };
        self.docker.start_container(&id, None).await?;
        Ok(id)
    }

    /// Removes the workspace's relay container, if any; it holds nothing.
    pub async fn remove_relay(&self, workspace: &str) -> Result<bool, DockerError> {
        let name = relay_container_name(workspace);
        let options = bollard::query_parameters::RemoveContainerOptionsBuilder::new().force(true).build();
        match self.docker.remove_container(&name, Some(options)).await {
            Ok(()) => Ok(true),
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => Ok(false),
            Err(error) => Err(error.into()),
        }
    }

    /// Connects to `host:port` from inside the relay container: an exec of `plat-relay connect`
    /// whose stdin and stdout become the connection once the relay says it is connected.
    async fn relay_connect(&self, relay: &str, host: &str, port: u16, timeout: Duration) -> io::Result<EngineStream> {
        let api = |error: bollard::errors::Error| io::Error::other(format!("the Engine: {error}"));
        let config = ExecConfig {
            cmd: Some(vec![
                "/plat-relay".to_owned(),
                "connect".to_owned(),
                host.to_owned(),
                port.to_string(),
                timeout.as_millis().to_string(),
            ]),
            attach_stdin: Some(true),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            tty: Some(false),
            ..ExecConfig::default()
        };
        let exec = self.docker.create_exec(relay, config).await.map_err(api)?;
        let options = StartExecOptions { detach: false, tty: false, output_capacity: Some(64 * 1024) };
        let StartExecResults::Attached { mut output, input } =
            self.docker.start_exec(&exec.id, Some(options)).await.map_err(api)?
        else {
            return Err(io::Error::other("the Engine did not attach to the relay"));
        };
        // Wait for the relay's word: connected (then the rest is the connection's), or why not.
        let mut complaint = Vec::new();
        loop {
            match output.next().await {
                Some(Ok(LogOutput::StdOut { message } | LogOutput::Console { message })) if !message.is_empty() => {
                    if message[0] != CONNECTED {
                        return Err(io::Error::other("the relay answered something else than it should"));
                    }
                    let rest = message.slice(1..);
                    return Ok(EngineStream { output, input, pending: rest, finished: false });
                }
                Some(Ok(LogOutput::StdErr { message })) => complaint.extend_from_slice(&message),
                Some(Ok(_)) => {}
                Some(Err(error)) => return Err(api(error)),
                None => {
                    let text = String::from_utf8_lossy(&complaint).trim().to_owned();
                    let kind =
                        if text.contains("refused") { io::ErrorKind::ConnectionRefused } else { io::ErrorKind::Other };
                    let reason = if text.is_empty() { "the relay ended without connecting".to_owned() } else { text };
                    return Err(io::Error::new(kind, format!("{host}:{port} (through the Engine): {reason}")));
                }
            }
        }
    }
}

/// The name of the workspace's relay container: `<workspace>-relay`.
pub fn relay_container_name(workspace: &str) -> String {
    format!("{workspace}-relay")
}

/// A connection carried by an exec's attached stdin and stdout.
pub struct EngineStream {
    output: Pin<Box<dyn Stream<Item = Result<LogOutput, bollard::errors::Error>> + Send>>,
    input: Pin<Box<dyn AsyncWrite + Send>>,
    /// Bytes of stdout received and not read yet.
    pending: Bytes,
    finished: bool,
}

impl AsyncRead for EngineStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        loop {
            if !self.pending.is_empty() {
                let take = self.pending.len().min(buf.remaining());
                buf.put_slice(&self.pending.split_to(take));
                return Poll::Ready(Ok(()));
            }
            if self.finished {
                return Poll::Ready(Ok(()));
            }
            match self.output.as_mut().poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => self.finished = true,
                Poll::Ready(Some(Err(error))) => return Poll::Ready(Err(io::Error::other(error.to_string()))),
                Poll::Ready(Some(Ok(LogOutput::StdOut { message } | LogOutput::Console { message }))) => {
                    self.pending = message;
                }
                // The relay's stderr: nothing of the connection's.
                Poll::Ready(Some(Ok(_))) => {}
            }
        }
    }
}

impl AsyncWrite for EngineStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.input.as_mut().poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.input.as_mut().poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.input.as_mut().poll_shutdown(cx)
    }
}
