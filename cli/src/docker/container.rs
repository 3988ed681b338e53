//! The services' containers: created on the workspace network under their service name,
//! labelled so plat finds them again (and knows which checkout made them), inspected, stopped,
//! removed, probed with a command, and read for logs.

use std::collections::HashMap;
use std::pin::Pin;
use std::time::Duration;

use bollard::errors::Error as ApiError;
use bollard::models::{
    ContainerCreateBody, ContainerStateStatusEnum, ContainerSummary, EndpointSettings, ExecConfig, HostConfig,
    NetworkingConfig, PortBinding, VolumeCreateRequest,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, ListVolumesOptionsBuilder, LogsOptionsBuilder, RemoveContainerOptionsBuilder,
    RemoveVolumeOptionsBuilder, StopContainerOptionsBuilder,
};
use futures_util::{Stream, StreamExt};

use super::{DockerError, Engine, Filters, Owner, container_name, label, list, network_name, published_port};

/// How long a service has to stop on SIGTERM before the Engine kills it. The sample services
/// drain for SHUTDOWN_GRACE (5 s) and exit.
const STOP_TIMEOUT_SECS: i32 = 10;

/// At most this much of a command's output is kept (its end, where the reason is).
const MAX_EXEC_OUTPUT: usize = 64 * 1024;

/// A log line longer than this is cut there: a process that writes without newlines cannot make
/// plat hold all of it.
const MAX_LOG_LINE: usize = 1024 * 1024;

/// The name plat gives a service's container: `<workspace>-<service>`.
pub fn service_container_name(workspace: &str, service: &str) -> String {
    format!("{workspace}-{service}")
}

/// The Engine's name of a service's named volume: `<workspace>-<service>-<volume>`.
pub fn service_volume_name(workspace: &str, service: &str, volume: &str) -> String {
    format!("{workspace}-{service}-{volume}")
}

/// Everything a service's container is made from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerSpec {
    /// The service; also its host name on the workspace network.
    pub service: String,
    /// Image id or reference.
    pub image: String,
    /// `KEY=value` environment entries.
    pub env: Vec<String>,
    /// Container ports (TCP) it listens on.
    pub ports: Vec<u16>,
    /// `(container port, host port)` pairs published on 127.0.0.1.
    pub publish: Vec<(u16, u16)>,
    /// `(volume, directory)` pairs: the service's named volumes ([`service_volume_name`]) and
    /// where each is mounted.
    pub volumes: Vec<(String, String)>,
    /// The hash of all of the above, stored as [`label::CONFIG`].
    pub config_hash: String,
}

/// A container plat made, as the Engine reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceContainer {
    /// Container id.
    pub id: String,
    /// Container name.
    pub name: String,
    /// The service it runs ([`label::SERVICE`]); for the database or the relay, their role.
    pub service: String,
    /// The workspace name it was made under ([`label::WORKSPACE`]).
    pub workspace: String,
    /// The checkout that made it ([`label::CHECKOUT`]); `None` for one made by a plat that did
    /// not record it.
    pub checkout: Option<String>,
    /// That checkout's directory ([`label::ROOT`]), for messages.
    pub root: Option<String>,
    /// `running`, `exited`, `created`, ...
    pub state: String,
    /// What `docker ps` says: `Up 2 minutes`, `Exited (1) 3 seconds ago`.
    pub status: String,
    /// Its [`label::CONFIG`].
    pub config_hash: Option<String>,
    /// `(container port, host port)` published on loopback.
    pub published: Vec<(u16, u16)>,
}

impl ServiceContainer {
    /// Whether it runs.
    pub fn running(&self) -> bool {
        self.state == "running"
    }

    /// Whether `owner`'s checkout made it (one that recorded no checkout counts as any).
    pub fn made_by(&self, owner: &Owner) -> bool {
        self.checkout.as_ref().is_none_or(|checkout| *checkout == owner.checkout)
    }

    fn from_summary(summary: ContainerSummary) -> ServiceContainer {
        let labels = summary.labels.clone().unwrap_or_default();
        let ports = summary.ports.as_deref().unwrap_or_default();
        let mut published: Vec<(u16, u16)> = ports
            .iter()
            .filter_map(|port| published_port(ports, port.private_port).map(|host| (port.private_port, host)))
            .collect();
        published.sort_unstable();
        published.dedup();
        let role = labels.get(label::ROLE).cloned().unwrap_or_default();
        ServiceContainer {
            name: container_name(&summary),
            id: summary.id.unwrap_or_default(),
            service: labels.get(label::SERVICE).cloned().unwrap_or(role),
            workspace: labels.get(label::WORKSPACE).cloned().unwrap_or_default(),
            checkout: labels.get(label::CHECKOUT).cloned(),
            root: labels.get(label::ROOT).cloned(),
            state: summary.state.map(|state| state.to_string()).unwrap_or_default(),
            status: summary.status.unwrap_or_default(),
            config_hash: labels.get(label::CONFIG).cloned(),
            published,
        }
    }
}

/// A container's state, as far as waiting for it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunState {
    /// Whether it runs.
    pub running: bool,
    /// `exited with 1`, `running`, ...
    pub description: String,
    /// Its exit code, once it exited.
    pub exit_code: Option<i64>,
    /// Its address on the workspace network, while it runs.
    pub address: Option<std::net::IpAddr>,
}

/// Which stream a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogStream {
    /// The container's stdout.
    Stdout,
    /// The container's stderr.
    Stderr,
}

/// One line a container printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// Which stream.
    pub stream: LogStream,
    /// The text, without its line ending.
    pub text: String,
}

/// How much of the logs to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogOptions {
    /// Keep reading as the container prints, until it stops.
    pub follow: bool,
    /// Only the last lines; all of them when `None`.
    pub tail: Option<u64>,
    /// The Engine's RFC 3339 timestamp before each line.
    pub timestamps: bool,
    /// Only lines written at or after this time (Unix seconds).
    pub since: Option<i64>,
}

/// A container's log, line by line.
pub type LogLines = Pin<Box<dyn Stream<Item = Result<LogLine, DockerError>> + Send>>;

impl Engine {
    /// Every service container made under the workspace's name, by any checkout, running or
    /// not, sorted by name.
    pub async fn list_services(&self, workspace: &str) -> Result<Vec<ServiceContainer>, DockerError> {
        self.list_labelled(HashMap::from([
            (label::WORKSPACE.to_owned(), workspace.to_owned()),
            (label::ROLE.to_owned(), label::SERVICE_ROLE.to_owned()),
        ]))
        .await
    }

    /// Everything the checkout made, under any workspace name (a renamed workspace's containers
    /// included): services, database, relay.
    pub async fn list_checkout(&self, owner: &Owner) -> Result<Vec<ServiceContainer>, DockerError> {
        self.list_labelled(HashMap::from([(label::CHECKOUT.to_owned(), owner.checkout.clone())])).await
    }

    /// The containers carrying all of `labels`, running or not, sorted by name.
    async fn list_labelled(&self, labels: HashMap<String, String>) -> Result<Vec<ServiceContainer>, DockerError> {
        let mut containers: Vec<ServiceContainer> = list(&self.docker, Filters::labels(&labels, true))
            .await?
            .into_iter()
            .map(ServiceContainer::from_summary)
            .collect();
        containers.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(containers)
    }

    /// Every container, of any owner, publishing `host_port` on the host.
    pub async fn publishing(&self, host_port: u16) -> Result<Vec<ServiceContainer>, DockerError> {
        let filters =
            Filters { filters: HashMap::from([("publish".to_owned(), vec![host_port.to_string()])]), all: false };
        Ok(list(&self.docker, filters).await?.into_iter().map(ServiceContainer::from_summary).collect())
    }

    /// Creates and starts a service's container on the workspace network (created if missing).
    /// A container of that name must not exist: the caller removes an outdated one first. When
    /// one appears meanwhile (another plat of this checkout made it), its id is returned as
    /// [`DockerError::Exists`].
    pub async fn create_and_start(&self, owner: &Owner, spec: &ContainerSpec) -> Result<String, DockerError> {
        let network = self.ensure_network(owner).await?;
        let name = service_container_name(&owner.workspace, &spec.service);
        let mut labels = owner.labels();
        labels.insert(label::ROLE.to_owned(), label::SERVICE_ROLE.to_owned());
        labels.insert(label::SERVICE.to_owned(), spec.service.clone());
        labels.insert(label::CONFIG.to_owned(), spec.config_hash.clone());
        let port_bindings: HashMap<String, Option<Vec<PortBinding>>> = spec
            .publish
            .iter()
            .map(|(container, host)| {
                // Loopback only: a developer's stack is not for the network they sit on.
                let binding = PortBinding { host_ip: Some("127.0.0.1".to_owned()), host_port: Some(host.to_string()) };
                (format!("{container}/tcp"), Some(vec![binding]))
            })
            .collect();
        // Each volume labelled as the checkout's and the service's: `plat down --volumes` finds
        // them by those labels. Creating a volume that exists returns it as it is.
        let mut binds = Vec::new();
        for (volume, target) in &spec.volumes {
            let volume_name = service_volume_name(&owner.workspace, &spec.service, volume);
            let mut volume_labels = owner.labels();
            volume_labels.insert(label::SERVICE.to_owned(), spec.service.clone());
            self.docker
                .create_volume(VolumeCreateRequest {
                    name: Some(volume_name.clone()),
                    labels: Some(volume_labels),
                    ..VolumeCreateRequest::default()
                })
                .await?;
            binds.push(format!("{volume_name}:{target}"));
        }
        let body = ContainerCreateBody {
            image: Some(spec.image.clone()),
            env: Some(spec.env.clone()),
            labels: Some(labels),
            exposed_ports: Some(spec.ports.iter().map(|port| format!("{port}/tcp")).collect()),
            host_config: Some(HostConfig {
                port_bindings: Some(port_bindings),
                binds: (!binds.is_empty()).then_some(binds),
                network_mode: Some(network.clone()),
                ..HostConfig::default()
            }),
            networking_config: Some(NetworkingConfig {
                endpoints_config: Some(HashMap::from([(
                    network,
                    // Other services reach it by its service name, as in docker compose.
                    EndpointSettings { aliases: Some(vec![spec.service.clone()]), ..EndpointSettings::default() },
                )])),
            }),
            ..ContainerCreateBody::default()
        };
        let options = CreateContainerOptionsBuilder::new().name(&name).build();
        let id = match self.docker.create_container(Some(options), body).await {
            Ok(created) => created.id,
            Err(ApiError::DockerResponseServerError { status_code: 409, .. }) => {
                return Err(DockerError::Exists { name });
            }
            Err(ApiError::DockerResponseServerError { status_code: 404, message }) if message.contains("image") => {
                return Err(DockerError::ImageMissing(spec.image.clone()));
            }
            Err(error) => return Err(error.into()),
        };
        if let Err(error) = self.docker.start_container(&id, None).await {
            // Created, not started (a host port taken, say): gone again, so the next run starts clean.
            let options = RemoveContainerOptionsBuilder::new().force(true).build();
            let _ = self.docker.remove_container(&id, Some(options)).await;
            return Err(error.into());
        }
        Ok(id)
    }

    /// Removes the named volumes of the services of the checkout's workspace `workspace` (the
    /// workspace's own name, or one it had before a rename). Returns the names removed; a volume
    /// a container still uses is an error, as with `docker volume rm`.
    pub async fn remove_service_volumes(&self, owner: &Owner, workspace: &str) -> Result<Vec<String>, DockerError> {
        let filters = HashMap::from([(
            "label".to_owned(),
            vec![
                format!("{}={workspace}", label::WORKSPACE),
                format!("{}={}", label::CHECKOUT, owner.checkout),
                label::SERVICE.to_owned(),
            ],
        )]);
        let options = ListVolumesOptionsBuilder::new().filters(&filters).build();
        let listed = self.docker.list_volumes(Some(options)).await?;
        let mut names: Vec<String> = listed.volumes.unwrap_or_default().into_iter().map(|volume| volume.name).collect();
        names.sort();
        let mut removed = Vec::new();
        for name in names {
            match self.docker.remove_volume(&name, Some(RemoveVolumeOptionsBuilder::new().build())).await {
                Ok(()) => removed.push(name),
                Err(ApiError::DockerResponseServerError { status_code: 404, .. }) => {}
                Err(error) => return Err(error.into()),
            }
        }
        Ok(removed)
    }

    /// The container of exactly this name, running or not.
    pub async fn container_named(&self, name: &str) -> Result<Option<ServiceContainer>, DockerError> {
        let found = list(&self.docker, Filters::name(name, true)).await?;
        Ok(found.into_iter().find(|container| container_name(container) == name).map(ServiceContainer::from_summary))
    }

    /// Starts a stopped container as it is.
    pub async fn start_container(&self, id: &str) -> Result<(), DockerError> {
        Ok(self.docker.start_container(id, None).await?)
    }

    /// Stops (SIGTERM, then SIGKILL after the stop timeout) and removes a container. Returns
    /// whether there was one to remove.
    pub async fn remove_container(&self, id: &str) -> Result<bool, DockerError> {
        let stop = StopContainerOptionsBuilder::new().t(STOP_TIMEOUT_SECS).build();
        match self.docker.stop_container(id, Some(stop)).await {
            // 304: not running.
            Ok(()) | Err(ApiError::DockerResponseServerError { status_code: 304, .. }) => {}
            Err(ApiError::DockerResponseServerError { status_code: 404, .. }) => return Ok(false),
            Err(error) => return Err(error.into()),
        }
        let options = RemoveContainerOptionsBuilder::new().force(true).build();
        match self.docker.remove_container(id, Some(options)).await {
            Ok(()) => Ok(true),
            Err(ApiError::DockerResponseServerError { status_code: 404, .. }) => Ok(false),
            Err(error) => Err(error.into()),
        }
    }

    /// Where a container stands: running or not, and its address on the workspace network.
    pub async fn run_state(&self, id: &str, workspace: &str) -> Result<RunState, DockerError> {
        let inspect = self.docker.inspect_container(id, None).await?;
        let state = inspect.state.unwrap_or_default();
        let running = state.running == Some(true);
        let status = state.status.map_or_else(|| "unknown".to_owned(), |status| status.to_string());
        let exit_code = match state.status {
            Some(ContainerStateStatusEnum::EXITED | ContainerStateStatusEnum::DEAD) => state.exit_code,
            _ => None,
        };
        let description = match exit_code {
            Some(code) => format!("{status} with {code}"),
            None => status,
        };
        let address = inspect
            .network_settings
            .and_then(|settings| settings.networks)
            .and_then(|mut networks| networks.remove(&network_name(workspace)))
            .and_then(|endpoint| endpoint.ip_address)
            .and_then(|ip| ip.parse().ok());
        Ok(RunState { running, description, exit_code, address })
    }

    /// Runs `command` inside the container and returns its exit code and combined output (its
    /// last 64 KiB), or `None` as the code when it outlives `timeout`.
    pub async fn exec(
        &self,
        id: &str,
        command: &[String],
        timeout: Duration,
    ) -> Result<(Option<i64>, String), DockerError> {
        let config = ExecConfig {
            cmd: Some(command.to_vec()),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            ..ExecConfig::default()
        };
        let exec = self.docker.create_exec(id, config).await?;
        let run = async {
            let mut output = Vec::new();
            if let bollard::exec::StartExecResults::Attached { output: mut stream, .. } =
                self.docker.start_exec(&exec.id, None).await?
            {
                while let Some(chunk) = stream.next().await {
                    output.extend_from_slice(&chunk?.into_bytes());
                    if output.len() > MAX_EXEC_OUTPUT {
                        output.drain(..output.len() - MAX_EXEC_OUTPUT);
                    }
                }
            }
            Ok::<_, DockerError>(String::from_utf8_lossy(&output).into_owned())
        };
        // The output ends a moment before the Engine records the exit code: ask until it has.
        let finished = async {
            let output = run.await?;
            loop {
                let inspect = self.docker.inspect_exec(&exec.id).await?;
                if inspect.running != Some(true) {
                    return Ok::<_, DockerError>((inspect.exit_code, output));
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        // A command still running at the timeout keeps running in the container: the Engine has no
        // way to stop an exec. A health command should bound itself.
        match tokio::time::timeout(timeout, finished).await {
            Ok(result) => result,
            Err(_) => Ok((None, String::new())),
        }
    }

    /// The container's log as a stream of whole lines.
    pub async fn logs(&self, id: &str, options: LogOptions) -> Result<LogLines, DockerError> {
        let tail = options.tail.map_or_else(|| "all".to_owned(), |tail| tail.to_string());
        let mut query = LogsOptionsBuilder::new()
            .stdout(true)
            .stderr(true)
            .follow(options.follow)
            .timestamps(options.timestamps)
            .tail(&tail);
        if let Some(since) = options.since {
            // The Engine takes seconds as a 32-bit number: enough until 2038, and clamped after.
            query = query.since(i32::try_from(since).unwrap_or(i32::MAX));
        }
        let query = query.build();
        // The Engine's frames are writes, not lines: join them per stream and cut at newlines.
        let frames = split_lines(self.docker.logs(id, Some(query)));
        Ok(Box::pin(frames))
    }

    /// The last `count` lines a container printed, for an error message; empty when they cannot
    /// be read.
    pub async fn last_lines(&self, id: &str, count: u64) -> Vec<String> {
        let options = LogOptions { follow: false, tail: Some(count), timestamps: false, since: None };
        let Ok(mut lines) = self.logs(id, options).await else {
            return Vec::new();
        };
        let mut text = Vec::new();
        while let Some(Ok(line)) = lines.next().await {
            text.push(line.text);
        }
        text
    }
}

fn split_lines(
    frames: impl Stream<Item = Result<bollard::container::LogOutput, ApiError>> + Send + 'static,
) -> impl Stream<Item = Result<LogLine, DockerError>> + Send {
    use bollard::container::LogOutput;
    // What each stream printed after its last newline; flushed when the log ends, so a last
    // line without a newline (a crash message, say) is not lost.
    struct Partial {
        stdout: Vec<u8>,
        stderr: Vec<u8>,
    }
    let frames = frames.map(Some).chain(futures_util::stream::once(async { None }));
    frames
        .scan(Partial { stdout: Vec::new(), stderr: Vec::new() }, |partial, frame| {
            let lines = match frame {
                Some(Ok(LogOutput::StdErr { message })) => cut(&mut partial.stderr, &message, LogStream::Stderr),
                Some(Ok(LogOutput::StdOut { message } | LogOutput::Console { message })) => {
                    cut(&mut partial.stdout, &message, LogStream::Stdout)
                }
                Some(Ok(LogOutput::StdIn { .. })) => Vec::new(),
                Some(Err(error)) => vec![Err(error.into())],
                None => [(LogStream::Stdout, &mut partial.stdout), (LogStream::Stderr, &mut partial.stderr)]
                    .into_iter()
                    .filter(|(_, rest)| !rest.is_empty())
                    .map(|(stream, rest)| {
                        Ok(LogLine { stream, text: String::from_utf8_lossy(&std::mem::take(rest)).into_owned() })
                    })
                    .collect(),
            };
            std::future::ready(Some(lines))
        })
        .flat_map(futures_util::stream::iter)
}

/// Appends `bytes` to what `stream` printed so far and takes the whole lines out. Bytes, not
/// text, until a line is whole: a character may be split between two frames. A line that grows
/// past [`MAX_LOG_LINE`] without a newline is given out in pieces of that size.
fn cut(buffer: &mut Vec<u8>, bytes: &[u8], stream: LogStream) -> Vec<Result<LogLine, DockerError>> {
    buffer.extend_from_slice(bytes);
    let mut lines = Vec::new();
    loop {
        let end = match buffer.iter().position(|byte| *byte == b'\n') {
            Some(end) => end + 1,
            None if buffer.len() >= MAX_LOG_LINE => MAX_LOG_LINE,
            None => break,
        };
        let line: Vec<u8> = buffer.drain(..end).collect();
        let text = String::from_utf8_lossy(&line);
        lines.push(Ok(LogLine { stream, text: text.trim_end_matches(['\n', '\r']).to_owned() }));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[tokio::test]
    async fn log_frames_become_whole_lines_per_stream() {
        use bollard::container::LogOutput;
        let frames = futures_util::stream::iter(vec![
            Ok(LogOutput::StdOut { message: Bytes::from_static(b"one \xc3") }),
            Ok(LogOutput::StdOut { message: Bytes::from_static(b"\xa9\ntw") }),
            Ok(LogOutput::StdErr { message: Bytes::from_static(b"err\r\n") }),
            Ok(LogOutput::StdOut { message: Bytes::from_static(b"o\n") }),
            Ok(LogOutput::StdErr { message: Bytes::from_static(b"panicked") }),
        ]);
        let lines: Vec<LogLine> = split_lines(frames).map(|line| line.unwrap()).collect().await;
        let line = |stream, text: &str| LogLine { stream, text: text.to_owned() };
        assert_eq!(
            lines,
            [
                line(LogStream::Stdout, "one é"),
                line(LogStream::Stderr, "err"),
                line(LogStream::Stdout, "two"),
                line(LogStream::Stderr, "panicked"),
            ]
        );
    }

    #[test]
    fn a_line_without_end_is_cut_at_the_cap() {
        let mut buffer = Vec::new();
        let long = vec![b'x'; MAX_LOG_LINE + 10];
        let lines = cut(&mut buffer, &long, LogStream::Stdout);
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].as_ref().unwrap().text.len(), MAX_LOG_LINE);
        assert_eq!(buffer.len(), 10, "the rest waits for its newline");
    }
}
