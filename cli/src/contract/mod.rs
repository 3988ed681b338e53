//! `plat test --contract`: the gRPC contracts between services verified with no broker — what
//! the manifest and `proto/` say, checked against each service's committed code and against
//! what the running providers really serve.
//!
//! Six suites of test cases:
//! - `consumers`: every package a service `uses` is served by a service of the workspace;
//! - `generated`: every service's committed generated code is what `proto/` generates now (a
//!   consumer built on an old client, a provider on an old server, both fail here);
//! - `breaking` (with `--against REF`): `proto/` breaks nothing since REF;
//! - `served`: every rpc of every package a provider `serves` is answered by its running
//!   container. The probe sends a request body that cannot decode, so a method that exists
//!   fails decoding before any handler runs (nothing is created, nothing changes) and a method
//!   that does not exist answers UNIMPLEMENTED;
//! - `compatible`: per edge (consumer, package, provider), the consumer's own view of the
//!   package — the descriptors its committed code was generated from — is wire compatible with
//!   what the running provider serves, read through gRPC reflection ([`compat`], [`reflect`]);
//! - `interactions`: the calls a consumer declares it relies on (`contracts/*.toml` in its
//!   repository) replayed against the running providers ([`interactions`]).
//!
//! Each edge whose provider was reached is then recorded with the versions of both sides
//! ([`records`]), for `--can-deploy`. A provider whose container does not run what its checkout
//! holds now (an older image, or changes since its image was built) is not reached: its cases
//! fail saying so, since its checkout's version would be recorded for code that is not running.

pub mod compat;
pub mod interactions;
pub mod records;
pub mod reflect;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut};
use prost::Message;
use prost_types::FileDescriptorSet;
use tonic::Status;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::http::uri::PathAndQuery;

use crate::docker::relay::{Destination, Dialer, Reach};
use crate::docker::{DockerError, Engine as DockerEngine, Owner};
use crate::manifest::{HealthCheck, Service, Workspace};
use crate::proto::breaking::BreakingOptions;
use crate::proto::generate::GenOptions;
use crate::proto::{self, Engine, ProtoError, codegen, load};
use crate::stack::behind_checkout;

/// How long one probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// What to check.
#[derive(Debug, Clone, Default)]
pub struct ContractOptions {
    /// Also check `proto/` for breaking changes since this git ref.
    pub against: Option<String>,
    /// buf or plat's own engine, for generation and breaking checks.
    pub engine: Engine,
    /// How to reach the providers' containers (`PLAT_REACH`); `None` decides by itself.
    pub reach: Option<Reach>,
}

/// How one test case ended.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "status", content = "message", rename_all = "snake_case")]
pub enum Outcome {
    /// It holds.
    Passed,
    /// It does not; why.
    Failed(String),
    /// It could not be checked; why.
    Skipped(String),
}

/// One test case.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Case {
    /// `consumers`, `generated`, `breaking` or `served`.
    pub suite: &'static str,
    /// What it checks, e.g. `user-service user.v1.UserService/GetUser`.
    pub name: String,
    /// How it ended.
    #[serde(flatten)]
    pub outcome: Outcome,
    /// How long it took.
    #[serde(serialize_with = "milliseconds", rename = "duration_ms")]
    pub took: Duration,
}

fn milliseconds<S: serde::Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64((duration.as_secs_f64() * 1000.0 * 10.0).round() / 10.0)
}

/// Why the contract tests could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum ContractError {
    /// `proto/` does not compile, or generating or comparing failed.
    #[error(transparent)]
    Proto(#[from] ProtoError),
    /// The Engine failed.
    #[error(transparent)]
    Docker(#[from] DockerError),
    /// The records of earlier runs (`.plat/contracts.json`) cannot be read or written.
    #[error("contract records: {0}")]
    Records(#[from] std::io::Error),
}

/// Every edge of the workspace: (consumer, provider) for each package the consumer uses and the
/// provider serves, a service using its own package aside.
pub fn edges(workspace: &Workspace) -> BTreeSet<(String, String)> {
    let mut edges = BTreeSet::new();
    for consumer in &workspace.services {
        for package in &consumer.proto.uses {
            for provider in workspace.services.iter().filter(|provider| provider.proto.serves.contains(package)) {
                if provider.name != consumer.name {
                    edges.insert((consumer.name.clone(), provider.name.clone()));
                }
            }
        }
    }
    edges
}

/// Runs every suite; the cases come back in suite order, then by service and method.
pub async fn run(
    docker: &DockerEngine,
    workspace: &Workspace,
    options: &ContractOptions,
) -> Result<Vec<Case>, ContractError> {
    let proto_dir = workspace.proto_dir.under(&workspace.root);
    let compiled = load::compile(load::read_dir_allow_empty(&proto_dir)?)?;
    let mut cases = consumers(workspace);
    cases.extend(generated(workspace, options.engine)?);
    if let Some(against) = &options.against {
        cases.push(breaking(&proto_dir, against, options.engine)?);
    }
    let providers = Providers::find(docker, workspace, options.reach).await?;
    cases.extend(served(&providers, workspace, &compiled.descriptors).await);
    let mut edge_cases = compatible(&providers, workspace).await;
    edge_cases.extend(interactions(&providers, workspace).await);
    record(workspace, &edge_cases)?;
    cases.extend(edge_cases.into_iter().map(|edge_case| edge_case.case));
    Ok(cases)
}

/// A case about edges: which (consumer, provider) pairs it speaks for, and whether it reached the
/// providers (a case that could not is no verdict on the pair).
struct EdgeCase {
    case: Case,
    edges: Vec<(String, String)>,
    reached: bool,
}

/// Records, per edge whose every case reached its provider, whether they all passed, with both
/// sides' versions. An edge whose version cannot be told (not a git checkout) is not recorded.
fn record(workspace: &Workspace, edge_cases: &[EdgeCase]) -> Result<(), ContractError> {
    let mut by_edge: BTreeMap<&(String, String), Vec<&EdgeCase>> = BTreeMap::new();
    for edge_case in edge_cases {
        for edge in &edge_case.edges {
            by_edge.entry(edge).or_default().push(edge_case);
        }
    }
    let version =
        |name: &str| workspace.service(name).and_then(|service| records::version(&workspace.service_dir(service)).ok());
    let mut new = Vec::new();
    for ((consumer, provider), members) in by_edge {
        if members.iter().any(|member| !member.reached) {
            continue;
        }
        let (Some(consumer_version), Some(provider_version)) = (version(consumer), version(provider)) else { continue };
        let failed: Vec<String> = members
            .iter()
            .filter(|member| matches!(member.case.outcome, Outcome::Failed(_)))
            .map(|member| format!("{} {}", member.case.suite, member.case.name))
            .collect();
        new.push(records::Record {
            consumer: consumer.clone(),
            consumer_version,
            provider: provider.clone(),
            provider_version,
            passed: failed.is_empty(),
            failed,
            verified_at: records::now(),
        });
    }
    records::write(workspace, new)?;
    Ok(())
}

fn consumers(workspace: &Workspace) -> Vec<Case> {
    let mut cases = Vec::new();
    for consumer in workspace.services_in_order() {
        for package in &consumer.proto.uses {
            let providers: Vec<&str> = workspace
                .services
                .iter()
                .filter(|provider| provider.proto.serves.contains(package))
                .map(|provider| provider.name.as_str())
                .collect();
            let (name, outcome) = match providers.as_slice() {
                [] => (
                    format!("{} uses {package}", consumer.name),
                    Outcome::Failed(format!("no service of the workspace serves {package}")),
                ),
                _ => (format!("{} uses {package} from {}", consumer.name, providers.join(", ")), Outcome::Passed),
            };
            cases.push(Case { suite: "consumers", name, outcome, took: Duration::ZERO });
        }
    }
    cases
}

fn generated(workspace: &Workspace, engine: Engine) -> Result<Vec<Case>, ContractError> {
    let started = Instant::now();
    let report = proto::generate::generate(workspace, GenOptions { engine, check: true })?;
    let took = started.elapsed();
    let mut cases = Vec::new();
    for service in workspace.services_in_order() {
        if service.proto.serves.is_empty() && service.proto.uses.is_empty() {
            continue;
        }
        let outcome = if let Some((_, why)) = report.skipped.iter().find(|(name, _)| *name == service.name) {
            Outcome::Skipped(why.clone())
        } else {
            let dir = format!("{}/", codegen::out_dir(service));
            let stale: Vec<&str> =
                report.changes.iter().filter(|change| change.path.starts_with(&dir)).map(|c| c.path.as_str()).collect();
            if stale.is_empty() {
                Outcome::Passed
            } else {
                Outcome::Failed(format!("stale generated code: {}", stale.join(", ")))
            }
        };
        // One generation serves every case: its time goes to the first.
        let took = if cases.is_empty() { took } else { Duration::ZERO };
        cases.push(Case { suite: "generated", name: format!("{} code matches proto/", service.name), outcome, took });
    }
    Ok(cases)
}

fn breaking(proto_dir: &std::path::Path, against: &str, engine: Engine) -> Result<Case, ContractError> {
    let started = Instant::now();
    let report = proto::breaking::check(proto_dir, &BreakingOptions { against: against.to_owned(), engine })?;
    let outcome = if report.findings.is_empty() {
        Outcome::Passed
    } else {
        let lines: Vec<String> = report
            .findings
            .iter()
            .map(|finding| {
                format!("{}:{}:{} {} {}", finding.path, finding.line, finding.column, finding.rule, finding.message)
            })
            .collect();
        Outcome::Failed(lines.join("\n"))
    };
    Ok(Case { suite: "breaking", name: format!("proto/ since {against}"), outcome, took: started.elapsed() })
}

/// One rpc a provider declares.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Method {
    /// `/package.Service/Method`.
    path: String,
    /// Whether the client streams requests (the handler runs before the request is read, so
    /// the probe would not be free of effects: not probed).
    client_streaming: bool,
}

/// The rpcs of every service in `package`.
fn methods(descriptors: &FileDescriptorSet, package: &str) -> Vec<Method> {
    let mut methods = Vec::new();
    for file in descriptors.file.iter().filter(|file| file.package() == package) {
        for service in &file.service {
            for method in &service.method {
                methods.push(Method {
                    path: format!("/{package}.{}/{}", service.name(), method.name()),
                    client_streaming: method.client_streaming(),
                });
            }
        }
    }
    methods
}

/// The port a provider serves gRPC on: its gRPC health check's, else the one named `grpc`,
/// else its only port.
fn grpc_port(service: &Service) -> Option<u16> {
    if let Some(HealthCheck::Grpc { port, .. }) = service.health.as_ref().map(|health| &health.check) {
        return service.ports.get(port).copied();
    }
    service.ports.get("grpc").copied().or_else(|| match service.ports.len() {
        1 => service.ports.values().next().copied(),
        _ => None,
    })
}

/// The running providers of the workspace and how to reach them.
struct Providers {
    dialer: Arc<Dialer>,
    /// Every service serving a package: its container's address and gRPC port, or why it
    /// cannot be reached.
    endpoints: BTreeMap<String, Result<(Option<IpAddr>, u16), String>>,
}

impl Providers {
    async fn find(
        engine: &DockerEngine,
        workspace: &Workspace,
        reach: Option<Reach>,
    ) -> Result<Providers, ContractError> {
        let owner = Owner::new(&workspace.name, &workspace.root);
        let dialer = Arc::new(Dialer::new(engine, &owner, reach));
        let containers = engine.list_services(&workspace.name).await?;
        let mut endpoints = BTreeMap::new();
        for provider in workspace.services.iter().filter(|service| !service.proto.serves.is_empty()) {
            let running = containers
                .iter()
                .find(|found| found.service == provider.name && found.running() && found.made_by(&owner));
            let endpoint = match (running, grpc_port(provider)) {
                // What was checked is recorded as the checkout's version: an older container
                // would make that a lie, so its cases fail, saying why.
                (Some(found), Some(_))
                    if let Some(behind) = behind_checkout(engine, workspace, provider, found).await? =>
                {
                    Err(format!("{behind}: `plat up` builds and runs it"))
                }
                (Some(found), Some(port)) => Ok((engine.run_state(&found.id, &workspace.name).await?.address, port)),
                (None, _) => Err(format!("{} is not running: `plat up` starts it", provider.name)),
                (_, None) => {
                    Err(format!("{} has no gRPC port: name one `grpc`, or give it a gRPC health check", provider.name))
                }
            };
            endpoints.insert(provider.name.clone(), endpoint);
        }
        Ok(Providers { dialer, endpoints })
    }

    fn destination<'a>(&self, provider: &'a str) -> Result<Destination<'a>, String> {
        match self.endpoints.get(provider) {
            Some(Ok((address, port))) => Ok(Destination { host: provider, address: *address, port: *port }),
            Some(Err(why)) => Err(why.clone()),
            None => Err(format!("{provider} serves no package")),
        }
    }

    async fn channel(&self, provider: &str) -> Result<tonic::transport::Channel, String> {
        let destination = self.destination(provider)?;
        crate::health::grpc_channel(&self.dialer, destination, PROBE_TIMEOUT).await
    }
}

async fn served(providers: &Providers, workspace: &Workspace, descriptors: &FileDescriptorSet) -> Vec<Case> {
    let mut cases = Vec::new();
    for provider in workspace.services_in_order().filter(|service| !service.proto.serves.is_empty()) {
        let endpoint = providers.destination(&provider.name);
        for package in &provider.proto.serves {
            for method in methods(descriptors, package) {
                let started = Instant::now();
                let outcome = match &endpoint {
                    Err(why) => Outcome::Failed(why.clone()),
                    Ok(_) if method.client_streaming => {
                        Outcome::Skipped("client-streaming: a probe would run the handler".to_owned())
                    }
                    Ok(destination) => probe(&providers.dialer, *destination, &method.path).await,
                };
                let name = format!("{} serves {}", provider.name, method.path.trim_start_matches('/'));
                cases.push(Case { suite: "served", name, outcome, took: started.elapsed() });
            }
        }
    }
    cases
}

/// A consumer's recorded view of the contracts (`src/proto/descriptor.bin` in its checkout).
fn recorded(workspace: &Workspace, consumer: &Service) -> Result<FileDescriptorSet, String> {
    let path = workspace.service_dir(consumer).join(codegen::OUT_DIR).join(codegen::DESCRIPTOR_FILE);
    let relative = format!("{}/{}", codegen::out_dir(consumer), codegen::DESCRIPTOR_FILE);
    let bytes = match fs_err::read(&path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!(
                "{relative} is missing: `plat proto gen` records the contract the consumer's code is made from; \
                 commit it with the code"
            ));
        }
        Err(error) => return Err(error.to_string()),
    };
    FileDescriptorSet::decode(bytes.as_slice())
        .map_err(|error| format!("{relative} does not decode ({error}): `plat proto gen` writes it again"))
}

/// The `compatible` suite: one case per (consumer, package, provider).
async fn compatible(providers: &Providers, workspace: &Workspace) -> Vec<EdgeCase> {
    let mut cases = Vec::new();
    for consumer in workspace.services_in_order() {
        let view = if consumer.proto.uses.is_empty() { continue } else { recorded(workspace, consumer) };
        for package in &consumer.proto.uses {
            let serving = workspace
                .services
                .iter()
                .filter(|provider| provider.name != consumer.name && provider.proto.serves.contains(package));
            for provider in serving {
                let started = Instant::now();
                let (outcome, reached) = match &view {
                    Err(why) => (Outcome::Failed(why.clone()), true),
                    Ok(view) => compatible_edge(providers, view, package, &provider.name).await,
                };
                let name = format!("{} uses {package} as recorded, {} serves it", consumer.name, provider.name);
                cases.push(EdgeCase {
                    case: Case { suite: "compatible", name, outcome, took: started.elapsed() },
                    edges: vec![(consumer.name.clone(), provider.name.clone())],
                    reached,
                });
            }
        }
    }
    cases
}

/// One edge: what the provider serves of `package` (asked by the services and files of the
/// consumer's view of it) against that view. Also says whether the provider was reached.
async fn compatible_edge(
    providers: &Providers,
    view: &FileDescriptorSet,
    package: &str,
    provider: &str,
) -> (Outcome, bool) {
    let in_package = || view.file.iter().filter(|file| file.package() == package);
    if in_package().next().is_none() {
        return (
            Outcome::Failed(format!(
                "the consumer's recorded contract has no {package}: `plat proto gen` records it (is it in `uses`?)"
            )),
            true,
        );
    }
    let symbols: Vec<String> = in_package()
        .flat_map(|file| file.service.iter().map(|service| format!("{package}.{}", service.name())))
        .collect();
    let files: Vec<String> = in_package().map(|file| file.name().to_owned()).collect();
    let channel = match providers.channel(provider).await {
        Ok(channel) => channel,
        Err(why) => return (Outcome::Failed(why), false),
    };
    let served = match tokio::time::timeout(PROBE_TIMEOUT * 2, reflect::served_files(channel, &symbols, &files)).await {
        Err(_) => {
            return (
                Outcome::Failed(format!("{provider}: no answer within {}s", (PROBE_TIMEOUT * 2).as_secs())),
                false,
            );
        }
        Ok(Err(reflect::ReflectionFailure(why))) => return (Outcome::Failed(format!("{provider}: {why}")), true),
        Ok(Ok(served)) => served,
    };
    match compat::check(view, &served, package) {
        Err(error) => (Outcome::Failed(error.to_string()), true),
        Ok(findings) if findings.is_empty() => (Outcome::Passed, true),
        Ok(findings) => {
            let lines: Vec<String> = findings.iter().map(compat::describe).collect();
            (Outcome::Failed(format!("incompatible with what {provider} serves:\n{}", lines.join("\n"))), true)
        }
    }
}

/// The `interactions` suite: one case per interaction file of each consumer.
async fn interactions(providers: &Providers, workspace: &Workspace) -> Vec<EdgeCase> {
    let run = format!(
        "{:x}",
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos()
    );
    let mut cases = Vec::new();
    for consumer in workspace.services_in_order() {
        let dir = workspace.service_dir(consumer);
        let files = interactions::read(&dir);
        if files.is_empty() {
            continue;
        }
        let pool = recorded(workspace, consumer).and_then(|view| {
            prost_reflect::DescriptorPool::from_file_descriptor_set(view).map_err(|error| error.to_string())
        });
        // The provider of each package the consumer uses, and a channel to it when running.
        let mut channels: BTreeMap<String, Result<(String, tonic::transport::Channel), String>> = BTreeMap::new();
        for package in &consumer.proto.uses {
            let Some(provider) = workspace
                .services
                .iter()
                .find(|provider| provider.name != consumer.name && provider.proto.serves.contains(package))
            else {
                continue;
            };
            let channel = providers.channel(&provider.name).await.map(|channel| (provider.name.clone(), channel));
            channels.insert(package.clone(), channel);
        }
        for (path, interaction) in files {
            let started = Instant::now();
            let file = path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
            let mut name = format!("{} {}/{file}", consumer.name, interactions::DIR);
            let mut edges = Vec::new();
            let mut reached = true;
            let outcome = match (&interaction, &pool) {
                (Err(why), _) => {
                    let shown = path.strip_prefix(&workspace.root).unwrap_or(&path);
                    Outcome::Failed(format!("{}: {why}", shown.display()))
                }
                (_, Err(why)) => Outcome::Failed(why.clone()),
                (Ok(interaction), Ok(pool)) => {
                    if !interaction.description.is_empty() {
                        name = format!("{name}: {}", interaction.description);
                    }
                    let packages: BTreeSet<&str> =
                        interaction.steps.iter().filter_map(|step| step.parts()).map(|(package, ..)| package).collect();
                    let mut unknown = Vec::new();
                    for package in packages {
                        match channels.get(package) {
                            Some(Ok((provider, _))) => edges.push((consumer.name.clone(), provider.clone())),
                            Some(Err(_)) => reached = false,
                            None => unknown.push(package),
                        }
                    }
                    if !unknown.is_empty() {
                        Outcome::Failed(format!(
                            "{} uses no service's {}: add it to `uses` in the manifest",
                            consumer.name,
                            unknown.join(", ")
                        ))
                    } else {
                        let channel = |package: &str| match channels.get(package) {
                            Some(Ok((_, channel))) => Ok(channel.clone()),
                            Some(Err(why)) => Err(why.clone()),
                            None => Err(format!("no provider of {package}")),
                        };
                        match tokio::time::timeout(
                            PROBE_TIMEOUT * 4,
                            interactions::replay(interaction, pool, channel, &run),
                        )
                        .await
                        {
                            Err(_) => Outcome::Failed(format!("no end within {}s", (PROBE_TIMEOUT * 4).as_secs())),
                            Ok(Err(why)) => Outcome::Failed(why),
                            Ok(Ok(())) => Outcome::Passed,
                        }
                    }
                }
            };
            cases.push(EdgeCase {
                case: Case { suite: "interactions", name, outcome, took: started.elapsed() },
                edges,
                reached,
            });
        }
    }
    cases
}

/// Calls `path` with a body that cannot decode as any message: a length-delimited field 1 whose
/// length varint never ends.
async fn probe(dialer: &Arc<Dialer>, destination: Destination<'_>, path: &str) -> Outcome {
    let address = format!("{}:{}", destination.host, destination.port);
    let call = async {
        let channel = crate::health::grpc_channel(dialer, destination, PROBE_TIMEOUT).await?;
        let mut grpc = tonic::client::Grpc::new(channel);
        grpc.ready().await.map_err(|error| format!("{address}: {error}"))?;
        let path = PathAndQuery::try_from(path).map_err(|error| error.to_string())?;
        Ok::<_, String>(grpc.unary(tonic::Request::new(vec![0x0a, 0xff]), path, RawCodec).await)
    };
    match tokio::time::timeout(PROBE_TIMEOUT, call).await {
        Err(_) => Outcome::Failed(format!("no answer within {}s", PROBE_TIMEOUT.as_secs())),
        Ok(Err(reason)) => Outcome::Failed(reason),
        // The server routed the call to the method, whose request then failed to decode: served.
        Ok(Ok(Err(status))) if matches!(status.code(), tonic::Code::Internal | tonic::Code::InvalidArgument) => {
            Outcome::Passed
        }
        Ok(Ok(Err(status))) if status.code() == tonic::Code::Unimplemented => {
            let said = if status.message().is_empty() { String::new() } else { format!(": {}", status.message()) };
            Outcome::Failed(format!("UNIMPLEMENTED: the provider does not serve it{said}"))
        }
        // Anything else proves nothing: an interceptor (UNAUTHENTICATED, PERMISSION_DENIED)
        // answers before routing, a transport error before the server.
        Ok(Ok(Err(status))) => Outcome::Failed(format!(
            "{:?}: {} (a served method answers an undecodable request with INTERNAL or INVALID_ARGUMENT)",
            status.code(),
            status.message()
        )),
        Ok(Ok(Ok(_))) => Outcome::Failed("it accepted a request that cannot decode".to_owned()),
    }
}

/// Sends bytes as they are and reads the answer as bytes.
#[derive(Debug, Clone, Copy)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;

    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        let bytes = src.copy_to_bytes(src.remaining());
        Ok(Some(bytes.to_vec()))
    }
}

/// The cases as a JUnit XML report, one `<testsuite>` per suite, as CI systems read it.
pub fn junit(cases: &[Case]) -> String {
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let failures = cases.iter().filter(|case| matches!(case.outcome, Outcome::Failed(_))).count();
    let total: f64 = cases.iter().map(|case| case.took.as_secs_f64()).sum();
    xml.push_str(&format!(
        "<testsuites name=\"plat test --contract\" tests=\"{}\" failures=\"{failures}\" time=\"{total:.3}\">\n",
        cases.len()
    ));
    let mut suites: Vec<&str> = cases.iter().map(|case| case.suite).collect();
    suites.dedup();
    for suite in suites {
        let members: Vec<&Case> = cases.iter().filter(|case| case.suite == suite).collect();
        let failed = members.iter().filter(|case| matches!(case.outcome, Outcome::Failed(_))).count();
        let skipped = members.iter().filter(|case| matches!(case.outcome, Outcome::Skipped(_))).count();
        xml.push_str(&format!(
            "  <testsuite name=\"contract.{suite}\" tests=\"{}\" failures=\"{failed}\" skipped=\"{skipped}\">\n",
            members.len()
        ));
        for case in members {
            let open = format!(
                "    <testcase classname=\"contract.{suite}\" name=\"{}\" time=\"{:.3}\"",
                escape(&case.name),
                case.took.as_secs_f64()
            );
            match &case.outcome {
                Outcome::Passed => xml.push_str(&format!("{open}/>\n")),
                Outcome::Failed(message) => xml.push_str(&format!(
                    "{open}>\n      <failure message=\"{}\">{}</failure>\n    </testcase>\n",
                    escape(message.lines().next().unwrap_or_default()),
                    escape(message)
                )),
                Outcome::Skipped(message) => xml
                    .push_str(&format!("{open}>\n      <skipped message=\"{}\"/>\n    </testcase>\n", escape(message))),
            }
        }
        xml.push_str("  </testsuite>\n");
    }
    xml.push_str("</testsuites>\n");
    xml
}

/// Text as XML attribute or element content; control characters XML 1.0 cannot hold are dropped.
fn escape(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_control() || matches!(c, '\n' | '\t'))
        .collect::<String>()
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Workspace {
        crate::manifest::load(std::path::Path::new("/ws/workspace.toml"), text).expect("a valid manifest")
    }

    #[test]
    fn every_used_package_needs_a_provider() {
        let workspace = load(
            "[workspace]\nname = \"p\"\n\n[services.users]\nproto = { serves = [\"user.v1\"] }\n\n\
             [services.orders]\nproto = { uses = [\"user.v1\", \"billing.v1\"] }\n",
        );
        let cases = consumers(&workspace);
        let outcomes: Vec<(&str, &Outcome)> = cases.iter().map(|case| (case.name.as_str(), &case.outcome)).collect();
        assert_eq!(
            outcomes,
            [
                ("orders uses user.v1 from users", &Outcome::Passed),
                ("orders uses billing.v1", &Outcome::Failed("no service of the workspace serves billing.v1".into())),
            ]
        );
    }

    #[test]
    fn methods_come_from_the_descriptors_with_their_streaming() {
        let sources = load::Sources::from([(
            "a/v1/a.proto".to_owned(),
            "syntax = \"proto3\";\npackage a.v1;\nmessage M {}\nservice AService {\n  rpc Get(M) returns (M);\n  \
             rpc Upload(stream M) returns (M);\n}\n"
                .to_owned(),
        )]);
        let compiled = load::compile(sources).unwrap();
        assert_eq!(
            methods(&compiled.descriptors, "a.v1"),
            [
                Method { path: "/a.v1.AService/Get".into(), client_streaming: false },
                Method { path: "/a.v1.AService/Upload".into(), client_streaming: true },
            ]
        );
        assert_eq!(methods(&compiled.descriptors, "b.v1"), []);
    }

    #[test]
    fn the_grpc_port_follows_the_health_check_then_the_name() {
        let workspace = load(
            "[workspace]\nname = \"p\"\n\n[services.a]\nports = { admin = 1, rpc = 2 }\nhealth = { grpc = \"\", port = \"rpc\" }\n\n\
             [services.b]\nports = { grpc = 3, metrics = 4 }\n\n[services.c]\nports = { web = 5 }\n\n\
             [services.d]\nports = { x = 6, y = 7 }\n",
        );
        let port = |name: &str| grpc_port(workspace.service(name).unwrap());
        assert_eq!((port("a"), port("b"), port("c"), port("d")), (Some(2), Some(3), Some(5), None));
    }

    #[test]
    fn junit_reports_escape_and_count() {
        let case =
            |suite, name: &str, outcome| Case { suite, name: name.into(), outcome, took: Duration::from_millis(12) };
        let xml = junit(&[
            case("consumers", "a uses x.v1 from b", Outcome::Passed),
            case("served", "b serves x.v1.S/<M>", Outcome::Failed("UNIMPLEMENTED & \"gone\"".into())),
            case("served", "b serves x.v1.S/Up", Outcome::Skipped("client-streaming".into())),
        ]);
        assert!(xml.contains("<testsuites name=\"plat test --contract\" tests=\"3\" failures=\"1\" time=\"0.036\">"));
        assert!(xml.contains("<testsuite name=\"contract.served\" tests=\"2\" failures=\"1\" skipped=\"1\">"));
        assert!(xml.contains("name=\"b serves x.v1.S/&lt;M&gt;\""));
        assert!(xml.contains("<failure message=\"UNIMPLEMENTED &amp; &quot;gone&quot;\">"));
        assert!(
            xml.contains("<testcase classname=\"contract.consumers\" name=\"a uses x.v1 from b\" time=\"0.012\"/>")
        );
    }
}
