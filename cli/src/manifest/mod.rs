//! The workspace model: `workspace.toml` found, decoded, validated once, and handed to every command.
//!
//! [`load`] is the only way in. It returns a [`Workspace`] whose every reference is checked (paths
//! stay inside the root, dependencies name real services, the graph has no cycle), or a
//! [`ManifestError`] carrying every problem found, each with its place in the file.

mod diagnostic;
mod discover;
mod load;
mod paths;
pub mod spec;

use std::path::{Path, PathBuf};
use std::time::Duration;

use indexmap::IndexMap;

pub use diagnostic::{Diagnostic, ManifestError, Note};
pub use discover::{MANIFEST_FILE, find_manifest};
pub use load::load;
pub use paths::RelPath;
pub use spec::DatabaseEngine;

use crate::graph::ServiceGraph;
pub use crate::graph::{Condition, ServiceId};

/// The database container's host name on the platform's network: the name its services reach it
/// by, and so a name no service may take.
pub const DATABASE_HOST: &str = "postgres";

/// A validated workspace: the platform's services and everything needed to run them.
#[derive(Debug, Clone)]
pub struct Workspace {
    /// Directory holding `workspace.toml`; every relative path is resolved against it.
    pub root: PathBuf,
    /// The manifest file itself.
    pub manifest_path: PathBuf,
    /// Name of the platform, the prefix of image names.
    pub name: String,
    /// Directory of the protobuf contracts.
    pub proto_dir: RelPath,
    /// The cargo profile cargo services compile with, unless their own build names one.
    pub profile: String,
    /// How long migration runs wait, unless a flag says otherwise.
    pub migrate: MigrateSettings,
    /// Services in the order the manifest lists them.
    pub services: Vec<Service>,
    /// Libraries in the order the manifest lists them.
    pub libraries: Vec<Library>,
    /// Dependencies between services; acyclic by construction.
    pub graph: ServiceGraph,
    /// `[workspace.e2e]`: the platform's end-to-end tests, when it declares them.
    pub e2e: Option<E2e>,
}

/// A command plat runs for the user: tests, in a checkout or the workspace.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(untagged)]
pub enum UserCommand {
    /// One string, run through `sh -c`.
    Shell(String),
    /// A program and its arguments, run as they are.
    Argv(Vec<String>),
}

impl UserCommand {
    /// How the command reads in messages: the string, or the words joined by spaces.
    pub fn display(&self) -> String {
        match self {
            UserCommand::Shell(text) => text.clone(),
            UserCommand::Argv(words) => words.join(" "),
        }
    }
}

/// `[workspace.e2e]` with its defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct E2e {
    /// What runs the end-to-end tests.
    pub command: UserCommand,
    /// Where it runs, relative to the workspace root.
    pub dir: RelPath,
}

/// `[workspace.migrate]` with its defaults filled in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MigrateSettings {
    /// How long to wait for another run's migration lock.
    pub lock_timeout: Duration,
    /// PostgreSQL's `statement_timeout` for migration sessions; zero for none.
    pub statement_timeout: Duration,
    /// PostgreSQL's `lock_timeout` for migration sessions; zero for none.
    pub statement_lock_timeout: Duration,
}

impl Default for MigrateSettings {
    /// A minute for another run; an hour for a statement (a backfill may be long, a hang is
    /// not); ten seconds for a table lock, the usual advice for DDL beside a live application:
    /// an `ALTER TABLE` queued behind a long transaction blocks every query queued behind it.
    fn default() -> Self {
        MigrateSettings {
            lock_timeout: Duration::from_secs(60),
            statement_timeout: Duration::from_secs(3600),
            statement_lock_timeout: Duration::from_secs(10),
        }
    }
}

impl Workspace {
    /// The service with this name.
    pub fn service(&self, name: &str) -> Option<&Service> {
        self.services.iter().find(|service| service.name == name)
    }

    /// Absolute directory of a service.
    pub fn service_dir(&self, service: &Service) -> PathBuf {
        service.path.under(&self.root)
    }

    /// The workspace under another name (`--project`): its containers, network, volume and
    /// default image names follow it. Fails when the name is not a DNS label.
    pub fn renamed(mut self, name: &str) -> Result<Workspace, &'static str> {
        load::check_dns_label(name)?;
        for service in &mut self.services {
            if service.image == format!("{}/{}", self.name, service.name) {
                service.image = format!("{name}/{}", service.name);
            }
        }
        self.name = name.to_owned();
        Ok(self)
    }

    /// Every checkout the workspace names: libraries first (services build against them), then
    /// services, each in manifest order.
    pub fn checkouts(&self) -> impl Iterator<Item = Checkout<'_>> {
        self.libraries.iter().map(Library::checkout).chain(self.services.iter().filter_map(Service::checkout))
    }

    /// The checkout of a service or library by name.
    pub fn checkout(&self, name: &str) -> Option<Checkout<'_>> {
        self.checkouts().find(|checkout| checkout.name == name)
    }

    /// Absolute directory of a checkout.
    pub fn checkout_dir(&self, checkout: &Checkout<'_>) -> PathBuf {
        checkout.path.under(&self.root)
    }

    /// Looks up the named services and libraries, in [`Workspace::checkouts`] order; every
    /// checkout when `names` is empty.
    pub fn select_checkouts(&self, names: &[String]) -> Result<Vec<Checkout<'_>>, UnknownService> {
        for name in names {
            if let Some(service) = self.service(name).filter(|service| !service.has_code()) {
                // A service, with nothing to clone or inspect: say so rather than "no such name".
                return Err(UnknownService {
                    name: name.clone(),
                    what: "service or library",
                    suggestion: None,
                    ready_image: Some(service.image_reference()),
                });
            }
            if self.checkout(name).is_none() {
                let known: Vec<&str> = self.checkouts().map(|checkout| checkout.name).collect();
                return Err(UnknownService {
                    name: name.clone(),
                    what: "service or library",
                    suggestion: diagnostic::closest(name, &known).map(str::to_owned),
                    ready_image: None,
                });
            }
        }
        Ok(self
            .checkouts()
            .filter(|checkout| names.is_empty() || names.iter().any(|name| name == checkout.name))
            .collect())
    }

    /// The service a graph id names.
    pub fn service_by_id(&self, id: ServiceId) -> &Service {
        &self.services[id.index()]
    }

    /// The graph id of the service with this name.
    pub fn id_of(&self, name: &str) -> Option<ServiceId> {
        self.services.iter().position(|service| service.name == name).map(ServiceId::new)
    }

    /// Services in dependency order: every service comes after the ones it depends on.
    pub fn services_in_order(&self) -> impl Iterator<Item = &Service> {
        self.graph.waves().iter().flatten().map(|&id| self.service_by_id(id))
    }

    /// Looks up the named services, in dependency order; every service when `names` is empty.
    ///
    /// Fails with the first unknown name, suggesting the closest known one.
    pub fn select(&self, names: &[String]) -> Result<Vec<&Service>, UnknownService> {
        for name in names {
            if self.service(name).is_none() {
                let known: Vec<&str> = self.services.iter().map(|s| s.name.as_str()).collect();
                return Err(UnknownService {
                    name: name.clone(),
                    what: "service",
                    suggestion: diagnostic::closest(name, &known).map(str::to_owned),
                    ready_image: None,
                });
            }
        }
        Ok(self.services_in_order().filter(|service| names.is_empty() || names.contains(&service.name)).collect())
    }
}

/// A service (or library) named on the command line that the manifest does not define.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", match .ready_image {
    Some(image) => format!("service `{name}` runs the ready image {image}: it has no code to clone or inspect"),
    None => format!("no {what} named `{name}` in the workspace"),
})]
pub struct UnknownService {
    /// The name asked for.
    pub name: String,
    /// What was looked for: `service`, or `service or library`.
    pub what: &'static str,
    /// The closest service name, if one is close.
    pub suggestion: Option<String>,
    /// The image, when the name is a ready image's service asked for as a checkout.
    pub ready_image: Option<String>,
}

/// One service of the platform.
#[derive(Debug, Clone)]
pub struct Service {
    /// Name of the service: a DNS label, also its host name on the platform's network.
    pub name: String,
    /// Where its code comes from.
    pub source: Source,
    /// Directory of the service, relative to the workspace root.
    pub path: RelPath,
    /// How its image is built.
    pub build: Build,
    /// Image name as the manifest gives it: without a tag (plat adds `:dev`), with one, or a
    /// ready image's full reference ([`Service::image_reference`]).
    pub image: String,
    /// Container ports by name.
    pub ports: IndexMap<String, u16>,
    /// Host ports by port name.
    pub publish: IndexMap<String, u16>,
    /// Environment of the container.
    pub env: IndexMap<String, String>,
    /// Keys of `env` a deployment takes from a secret store instead of their value in `env`.
    pub secrets: Vec<String>,
    /// Named volumes by name, each with where it is mounted in the container.
    pub volumes: IndexMap<String, String>,
    /// Files of `KEY=value` lines, relative to the workspace root.
    pub env_files: Vec<RelPath>,
    /// Services this one waits for, with the condition it waits for.
    pub depends_on: IndexMap<String, Condition>,
    /// Readiness check.
    pub health: Option<Health>,
    /// The service's own database.
    pub database: Option<Database>,
    /// Protobuf packages served and used.
    pub proto: Proto,
    /// `test`: what `plat test` runs in the checkout instead of cargo's tests.
    pub test: Option<UserCommand>,
}

/// The tag of the images plat builds when `image` names none: `<workspace>/<service>:dev`.
pub const IMAGE_TAG: &str = "dev";

impl Service {
    /// The service's code, as a checkout; `None` for a ready image, which has no code.
    pub fn checkout(&self) -> Option<Checkout<'_>> {
        self.has_code().then(|| Checkout {
            kind: CheckoutKind::Service,
            name: &self.name,
            source: &self.source,
            path: &self.path,
        })
    }

    /// Whether plat builds the service from a directory of code; false for a ready image.
    pub fn has_code(&self) -> bool {
        !matches!(self.build, Build::Ready)
    }

    /// The image reference the service's container runs: `image` as written when it has a tag or
    /// digest, else `image:dev`.
    pub fn image_reference(&self) -> String {
        if has_tag_or_digest(&self.image) { self.image.clone() } else { format!("{}:{IMAGE_TAG}", self.image) }
    }
}

/// Whether an image reference names a tag or a digest: `name:tag`, `name@sha256:...`. A `:` in
/// an earlier component is a registry's port (`localhost:5000/name`), not a tag.
pub fn has_tag_or_digest(reference: &str) -> bool {
    let last = reference.rsplit('/').next().unwrap_or(reference);
    reference.contains('@') || last.contains(':')
}

/// A repository the services build against that is not a service: no image, no container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Library {
    /// Name of the library.
    pub name: String,
    /// Where its code comes from.
    pub source: Source,
    /// Directory of the library, relative to the workspace root.
    pub path: RelPath,
}

impl Library {
    /// The library's code, as a checkout.
    pub fn checkout(&self) -> Checkout<'_> {
        Checkout { kind: CheckoutKind::Library, name: &self.name, source: &self.source, path: &self.path }
    }
}

/// Whether a checkout holds a service or a library.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckoutKind {
    /// A service: built into an image and run.
    Service,
    /// A library the services build against.
    Library,
}

impl CheckoutKind {
    /// `services` or `libraries`: also the manifest's table of them.
    pub fn plural(self) -> &'static str {
        match self {
            CheckoutKind::Service => "services",
            CheckoutKind::Library => "libraries",
        }
    }
}

impl std::fmt::Display for CheckoutKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CheckoutKind::Service => "service",
            CheckoutKind::Library => "library",
        })
    }
}

/// A directory of code the workspace names, a service's or a library's: what `plat sync`
/// clones, `plat status` inspects and plat.lock pins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkout<'w> {
    /// Service or library.
    pub kind: CheckoutKind,
    /// Its name, unique among services and libraries.
    pub name: &'w str,
    /// Where its code comes from.
    pub source: &'w Source,
    /// Its directory, relative to the workspace root.
    pub path: &'w RelPath,
}

impl Checkout<'_> {
    /// Whether it is a repository of its own, cloned by `plat sync`.
    pub fn is_repository(&self) -> bool {
        matches!(self.source, Source::Git { .. })
    }
}

/// Where a service's code comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The service lives inside the workspace repository.
    Local,
    /// The service is its own git repository, cloned by `plat sync`.
    Git {
        /// Clone URL.
        repo: String,
        /// Branch, tag or commit; `None` follows the remote's default branch.
        rev: Option<String>,
    },
}

/// How an image is built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Build {
    /// cargo on the host, then the binary packaged into an image.
    Cargo {
        /// Package to build, when not the directory's own.
        package: Option<String>,
        /// Binary to package.
        bin: String,
        /// The cargo profile, when the service names its own (else the workspace's).
        profile: Option<String>,
    },
    /// A Dockerfile built by the Engine.
    Dockerfile {
        /// The Dockerfile, relative to the service directory.
        file: RelPath,
        /// The build context, relative to the service directory.
        context: RelPath,
        /// Build arguments.
        args: IndexMap<String, String>,
        /// Stage to build.
        target: Option<String>,
    },
    /// A shell command run in the service directory.
    Command(String),
    /// None: a ready image (`image = "name:tag"` and no `build`), run as it is.
    Ready,
}

/// A readiness check and its timing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    /// What is checked.
    pub check: HealthCheck,
    /// Time between checks.
    pub interval: Duration,
    /// Time one check may take.
    pub timeout: Duration,
    /// Consecutive failures after the start period that make the service unhealthy.
    pub retries: u32,
    /// Grace period after start.
    pub start_period: Duration,
}

/// The kinds of readiness check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthCheck {
    /// `grpc.health.v1.Health/Check` for this service name on this named port.
    Grpc { service: String, port: String },
    /// HTTP GET of this path on this named port; 2xx is healthy.
    Http { path: String, port: String },
    /// A TCP connection to this named port.
    Tcp { port: String },
    /// A command run in the container.
    Cmd(Vec<String>),
}

impl HealthCheck {
    /// The named port the check connects to; none for a command.
    pub fn port(&self) -> Option<&str> {
        match self {
            HealthCheck::Grpc { port, .. } | HealthCheck::Http { port, .. } | HealthCheck::Tcp { port } => Some(port),
            HealthCheck::Cmd(_) => None,
        }
    }
}

/// A service's database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Database {
    /// Engine.
    pub engine: DatabaseEngine,
    /// Database name.
    pub name: String,
    /// Migrations directory, relative to the service directory.
    pub migrations: RelPath,
}

/// Protobuf packages of a service.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Proto {
    /// Packages it implements.
    pub serves: Vec<String>,
    /// Packages it calls.
    pub uses: Vec<String>,
}

/// The profile a workspace compiles cargo services with when it names none: the quickest
/// rebuild, since what a person waits for is the edit-to-serving loop.
pub const DEFAULT_PROFILE: &str = "dev";

/// Reads the manifest at `path` into a workspace rooted at its directory.
pub fn load_path(path: &Path) -> Result<Workspace, LoadError> {
    let text = fs_err::read_to_string(path).map_err(LoadError::Read)?;
    load(path, &text).map_err(LoadError::Invalid)
}

/// Why a workspace could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// No `workspace.toml` in the directory or above it.
    #[error("could not find `{MANIFEST_FILE}` in `{}` or any parent directory", .0.display())]
    NotFound(PathBuf),
    /// The file could not be read.
    #[error(transparent)]
    Read(std::io::Error),
    /// The file was read, and is wrong.
    #[error(transparent)]
    Invalid(ManifestError),
}
