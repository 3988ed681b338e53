//! The services' containers brought to what the manifest says, wave by wave, and waited for:
//! the decisions of `plat up` (create, keep, start, re-create; jobs that run once; host ports
//! checked before anything starts; a container that appears meanwhile; every wait bounded),
//! made against [`Containers`], the little of the Engine they need, so that unit tests decide
//! them with a fake and no daemon.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::time::Duration;

use tokio::time::Instant;

use super::{Action, UpError, UpEvent, UpReport};
use crate::docker::DockerError;
use crate::docker::container::{ContainerSpec, RunState, ServiceContainer};
use crate::manifest::{Condition, Health, HealthCheck, Service, Workspace};

/// How often `up` probes a starting service, at most.
const STARTUP_POLL: Duration = Duration::from_millis(250);

/// How often `up` probes a starting service, at least.
const MIN_POLL: Duration = Duration::from_millis(50);

/// How long a one-off job (`completed`) may run before `up` gives up on it.
pub const JOB_TIMEOUT: Duration = Duration::from_secs(600);

/// Who holds a host port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortHolder {
    /// A container, plat's or not.
    Container(Box<ServiceContainer>),
    /// Something else on the Engine's machine (a program, not a container).
    Program,
}

/// What `up` needs of the Engine to start and wait for the services' containers.
#[allow(async_fn_in_trait)] // Used by this crate only, on one thread.
pub trait Containers {
    /// The workspace's service containers (of any checkout), running or not.
    async fn list(&self) -> Result<Vec<ServiceContainer>, DockerError>;
    /// Creates and starts a container; [`DockerError::Exists`] when one of its name appeared.
    async fn create_and_start(&self, spec: &ContainerSpec) -> Result<String, DockerError>;
    /// Starts a stopped container.
    async fn start(&self, id: &str) -> Result<(), DockerError>;
    /// Stops and removes a container.
    async fn remove(&self, id: &str) -> Result<bool, DockerError>;
    /// Whether it runs, how it ended, its address.
    async fn state(&self, id: &str) -> Result<RunState, DockerError>;
    /// One health probe of the service in container `id`.
    async fn probe(&self, service: &Service, id: &str, address: Option<IpAddr>, health: &Health) -> Result<(), String>;
    /// Its last log lines, for an error message.
    async fn last_lines(&self, id: &str) -> Vec<String>;
    /// Who holds host port `port`, if anyone.
    async fn port_holder(&self, port: u16) -> Result<Option<PortHolder>, DockerError>;
    /// The name of the container of `service`.
    fn container_name(&self, service: &str) -> String;
    /// Whether this checkout made `container` (or it recorded no checkout).
    fn ours(&self, container: &ServiceContainer) -> bool;
}

/// Fails before anything starts when a host port some selected service publishes is held by
/// anything but that service's own container of this checkout.
pub async fn check_ports<C: Containers>(containers: &C, specs: &[ContainerSpec]) -> Result<(), UpError> {
    for spec in specs {
        for (_, host) in &spec.publish {
            let holder = containers.port_holder(*host).await.map_err(UpError::Docker)?;
            let held_by = match holder {
                None => continue,
                Some(PortHolder::Container(container))
                    if container.name == containers.container_name(&spec.service) && containers.ours(&container) =>
                {
                    continue;
                }
                Some(PortHolder::Container(container)) => Some(*container),
                Some(PortHolder::Program) => None,
            };
            return Err(UpError::PortTaken {
                service: spec.service.clone(),
                port: *host,
                held_by: held_by.map(Box::new),
            });
        }
    }
    Ok(())
}

/// Starts the services of `specs` wave by wave; before the next wave starts, each service of
/// this one reaches what its dependents ask for, and the health of the others is waited for at
/// the end, so that `up` returns with every service ready.
pub async fn start_services<C: Containers>(
    containers: &C,
    workspace: &Workspace,
    services: &[&Service],
    specs: &[ContainerSpec],
    on_event: &(dyn Fn(UpEvent<'_>) + Sync),
) -> Result<UpReport, UpError> {
    let existing = containers.list().await.map_err(UpError::Docker)?;
    let mut report = UpReport::default();
    let gates = gates(services);
    let jobs = jobs(workspace);
    let mut later = Vec::new();
    // The readiness of containers left as they were: nothing was started after them, so they are
    // probed together, across waves, rather than one wave after another. A service that does
    // need its container made or started waits for all of them first, so what it depends on is
    // known ready before it starts.
    let mut unchanged = Vec::new();
    for wave in workspace.graph.waves() {
        let mut now = Vec::new();
        for service in wave.iter().map(|&id| workspace.service_by_id(id)) {
            let Some(spec) = specs.iter().find(|spec| spec.service == service.name) else { continue };
            let name = containers.container_name(&service.name);
            let current = existing.iter().find(|container| container.name == name);
            let job = jobs.contains(service.name.as_str());
            let kept = !job && current.is_some_and(|container| is_current(container, spec));
            if !kept {
                futures_util::future::try_join_all(std::mem::take(&mut unchanged)).await?;
            }
            let (id, action) = converge(containers, spec, current, job)
                .await
                .map_err(|error| UpError::Container { service: service.name.clone(), error })?;
            on_event(UpEvent::Container { service: &service.name, action });
            report.services.push((service.name.clone(), action));
            let wait = match (job, gates.get(service.name.as_str()), &service.health) {
                (true, _, _) => Wait::Completed,
                (false, Some(Condition::Healthy) | None, Some(_)) => Wait::Healthy,
                (false, Some(_), Some(_)) if kept => Wait::Healthy,
                (false, Some(_), Some(_)) => {
                    later.push((service, id.clone()));
                    Wait::Running
                }
                (false, _, None) => Wait::Running,
            };
            if kept {
                unchanged.push(async move { wait_ready(containers, service, &id, wait, on_event).await });
            } else {
                now.push((service, id, wait));
            }
        }
        // The first failure ends the wait: a crashed service is not reported after its
        // wave-mates' checks time out.
        let waits = now.iter().map(|(service, id, wait)| wait_ready(containers, service, id, *wait, on_event));
        futures_util::future::try_join_all(waits).await?;
    }
    let waits = later.iter().map(|(service, id)| wait_ready(containers, service, id, Wait::Healthy, on_event));
    futures_util::future::try_join(
        futures_util::future::try_join_all(waits),
        futures_util::future::try_join_all(unchanged),
    )
    .await?;
    Ok(report)
}

/// Whether `container` is the one `spec` describes and runs: `converge` leaves it as it is.
fn is_current(container: &ServiceContainer, spec: &ContainerSpec) -> bool {
    container.config_hash.as_deref() == Some(spec.config_hash.as_str()) && container.running()
}

/// The one-off jobs: services that some service of the workspace waits for with `completed`,
/// whether or not it is started this time. A job is waited for until it exits, and one that
/// completed is not run again.
pub fn jobs(workspace: &Workspace) -> HashSet<&str> {
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
pub fn gates<'s>(services: &[&'s Service]) -> HashMap<&'s str, Condition> {
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

/// Makes the service's container match `spec`; returns its id and what was done. A one-off
/// `job` that already completed with this configuration is not run again. A container of the
/// name that appears between the list and the create (a run plat did not serialise with, or one
/// interrupted halfway) is taken as the current one, if this checkout made it.
async fn converge<C: Containers>(
    containers: &C,
    spec: &ContainerSpec,
    current: Option<&ServiceContainer>,
    job: bool,
) -> Result<(String, Action), DockerError> {
    let mut current = current.cloned();
    for _ in 0..2 {
        let created = match &current {
            Some(container) if container.config_hash.as_deref() == Some(spec.config_hash.as_str()) => {
                if is_current(container, spec) {
                    return Ok((container.id.clone(), Action::Unchanged));
                }
                if job && containers.state(&container.id).await?.exit_code == Some(0) {
                    return Ok((container.id.clone(), Action::Unchanged));
                }
                containers.start(&container.id).await?;
                return Ok((container.id.clone(), Action::Started));
            }
            Some(container) => {
                containers.remove(&container.id).await?;
                containers.create_and_start(spec).await.map(|id| (id, Action::Recreated))
            }
            None => containers.create_and_start(spec).await.map(|id| (id, Action::Created)),
        };
        match created {
            Err(DockerError::Exists { name }) => {
                let appeared = containers.list().await?.into_iter().find(|container| container.name == name);
                match appeared {
                    Some(container) if containers.ours(&container) => current = Some(container),
                    Some(container) => {
                        return Err(DockerError::OtherCheckout {
                            workspace: container.workspace.clone(),
                            root: container.root.clone().unwrap_or_else(|| "unknown".to_owned()),
                            containers: vec![name],
                        });
                    }
                    None => return Err(DockerError::Exists { name }),
                }
            }
            other => return other,
        }
    }
    Err(DockerError::Exists { name: containers.container_name(&spec.service) })
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
/// exits with another code), its health check keeps failing, or its deadline passes.
async fn wait_ready<C: Containers>(
    containers: &C,
    service: &Service,
    id: &str,
    wait: Wait,
    on_event: &(dyn Fn(UpEvent<'_>) + Sync),
) -> Result<(), UpError> {
    let started = Instant::now();
    let exited = |state: String| async {
        let logs = containers.last_lines(id).await;
        Err(UpError::Exited { service: service.name.clone(), state, logs })
    };
    if wait == Wait::Completed {
        on_event(UpEvent::Waiting { service: &service.name, what: "to complete" });
        loop {
            let state = containers.state(id).await?;
            match state.exit_code {
                Some(0) => break,
                Some(_) => return exited(state.description).await,
                None if started.elapsed() >= JOB_TIMEOUT => {
                    let logs = containers.last_lines(id).await;
                    return Err(UpError::Deadline {
                        service: service.name.clone(),
                        what: "to complete".to_owned(),
                        waited: started.elapsed(),
                        logs,
                    });
                }
                None => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
        on_event(UpEvent::Ready { service: &service.name, took: started.elapsed() });
        return Ok(());
    }
    let health = match (&service.health, wait) {
        (Some(health), Wait::Healthy) => health,
        (health, _) => {
            let state = containers.state(id).await?;
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
        let state = containers.state(id).await?;
        if !state.running {
            return exited(state.description).await;
        }
        match containers.probe(service, id, state.address, health).await {
            Ok(()) => {
                on_event(UpEvent::Ready { service: &service.name, took: started.elapsed() });
                return Ok(());
            }
            Err(reason) if started.elapsed() >= give_up => {
                let logs = containers.last_lines(id).await;
                let waited = started.elapsed();
                return Err(UpError::Unhealthy { service: service.name.clone(), reason, waited, logs });
            }
            Err(_) => tokio::time::sleep(poll.saturating_sub(attempt.elapsed())).await,
        }
    }
}

impl From<DockerError> for UpError {
    fn from(error: DockerError) -> Self {
        UpError::Docker(error)
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::VecDeque;

    use super::*;

    /// One container of the fake Engine.
    #[derive(Debug, Clone)]
    struct Fake {
        container: ServiceContainer,
        /// What `state` says of it next (the last one sticks).
        states: VecDeque<RunState>,
    }

    /// An Engine in memory: containers, scripted health answers, scripted failures, and a log of
    /// what was asked of it.
    #[derive(Default)]
    struct FakeEngine {
        containers: RefCell<Vec<Fake>>,
        /// Per service, the answers its probes get, in order (the last one sticks); none: healthy.
        probes: RefCell<HashMap<String, VecDeque<Result<(), String>>>>,
        /// Per container name, how a new container of it behaves (`state`s).
        starts: RefCell<HashMap<String, VecDeque<RunState>>>,
        /// Per service, a container another run makes just before this one creates its own.
        races: RefCell<HashMap<String, ServiceContainer>>,
        /// Host ports and who holds them.
        ports: RefCell<HashMap<u16, PortHolder>>,
        calls: RefCell<Vec<String>>,
        next_id: RefCell<u32>,
    }

    const CHECKOUT: &str = "mine";

    fn running() -> RunState {
        RunState { running: true, description: "running".into(), exit_code: None, address: None }
    }

    fn exited(code: i64) -> RunState {
        RunState { running: false, description: format!("exited with {code}"), exit_code: Some(code), address: None }
    }

    fn container(service: &str, hash: &str, state: &str, checkout: &str) -> ServiceContainer {
        ServiceContainer {
            id: format!("id-{service}-{hash}"),
            name: format!("p-{service}"),
            service: service.into(),
            workspace: "p".into(),
            checkout: Some(checkout.into()),
            root: Some(format!("/{checkout}")),
            state: state.into(),
            status: String::new(),
            config_hash: Some(hash.into()),
            published: Vec::new(),
        }
    }

    impl FakeEngine {
        fn with(self, existing: ServiceContainer, states: &[RunState]) -> Self {
            self.containers.borrow_mut().push(Fake { container: existing, states: states.iter().cloned().collect() });
            self
        }

        fn calls(&self) -> Vec<String> {
            self.calls.borrow().clone()
        }
    }

    impl Containers for FakeEngine {
        async fn list(&self) -> Result<Vec<ServiceContainer>, DockerError> {
            let containers = self.containers.borrow();
            let listed = containers.iter().map(|fake| {
                let running = fake.states.front().is_none_or(|state| state.running);
                let state = if running { "running" } else { "exited" };
                ServiceContainer { state: state.into(), ..fake.container.clone() }
            });
            Ok(listed.collect())
        }

        async fn create_and_start(&self, spec: &ContainerSpec) -> Result<String, DockerError> {
            let name = self.container_name(&spec.service);
            if let Some(other) = self.races.borrow_mut().remove(&spec.service) {
                self.containers.borrow_mut().push(Fake { container: other, states: [running()].into() });
                return Err(DockerError::Exists { name });
            }
            self.calls.borrow_mut().push(format!("create {}", spec.service));
            let id = {
                let mut next = self.next_id.borrow_mut();
                *next += 1;
                format!("new-{}", *next)
            };
            // The manifest's job completes, unless a test says otherwise.
            let default = if spec.service == "migrate" { [running(), exited(0)].into() } else { [running()].into() };
            let states = self.starts.borrow_mut().remove(&name).unwrap_or(default);
            let mut created = container(&spec.service, &spec.config_hash, "running", CHECKOUT);
            created.id = id.clone();
            self.containers.borrow_mut().push(Fake { container: created, states });
            Ok(id)
        }

        async fn start(&self, id: &str) -> Result<(), DockerError> {
            self.calls.borrow_mut().push(format!("start {id}"));
            for fake in self.containers.borrow_mut().iter_mut().filter(|fake| fake.container.id == id) {
                fake.states = [running()].into();
            }
            Ok(())
        }

        async fn remove(&self, id: &str) -> Result<bool, DockerError> {
            self.calls.borrow_mut().push(format!("remove {id}"));
            self.containers.borrow_mut().retain(|fake| fake.container.id != id);
            Ok(true)
        }

        async fn state(&self, id: &str) -> Result<RunState, DockerError> {
            let mut containers = self.containers.borrow_mut();
            let fake = containers.iter_mut().find(|fake| fake.container.id == id).expect("a known container");
            let state = if fake.states.len() > 1 { fake.states.pop_front() } else { fake.states.front().cloned() };
            Ok(state.unwrap_or_else(running))
        }

        async fn probe(&self, service: &Service, _: &str, _: Option<IpAddr>, _: &Health) -> Result<(), String> {
            let answer = match self.probes.borrow_mut().get_mut(&service.name) {
                Some(answers) if answers.len() > 1 => answers.pop_front().expect("not empty"),
                Some(answers) => answers.front().cloned().unwrap_or(Ok(())),
                None => Ok(()),
            };
            let said = if answer.is_ok() { "ok" } else { "failing" };
            self.calls.borrow_mut().push(format!("probe {} {said}", service.name));
            answer
        }

        async fn last_lines(&self, _: &str) -> Vec<String> {
            vec!["the last line".into()]
        }

        async fn port_holder(&self, port: u16) -> Result<Option<PortHolder>, DockerError> {
            Ok(self.ports.borrow().get(&port).cloned())
        }

        fn container_name(&self, service: &str) -> String {
            format!("p-{service}")
        }

        fn ours(&self, container: &ServiceContainer) -> bool {
            container.checkout.as_deref().is_none_or(|checkout| checkout == CHECKOUT)
        }
    }

    fn load(text: &str) -> Workspace {
        crate::manifest::load(std::path::Path::new("/ws/workspace.toml"), text).expect("a valid manifest")
    }

    const MANIFEST: &str = r#"
[workspace]
name = "p"

[services.migrate]

[services.users]
ports = { grpc = 50051 }
health = { grpc = "", interval = "100ms", retries = 3 }

[services.api]
ports = { http = 8080 }
publish = { http = 18080 }
depends_on = { users = "healthy", migrate = "completed" }
health = { http = "/readyz", interval = "100ms", retries = 3 }
"#;

    fn specs(workspace: &Workspace, image: &str) -> Vec<ContainerSpec> {
        workspace.services.iter().map(|service| super::super::spec::spec_with(service, Vec::new(), image)).collect()
    }

    async fn up(engine: &FakeEngine, workspace: &Workspace, image: &str) -> Result<Vec<(String, Action)>, UpError> {
        let services: Vec<&Service> = workspace.services_in_order().collect();
        let specs = specs(workspace, image);
        check_ports(engine, &specs).await?;
        start_services(engine, workspace, &services, &specs, &|_| {}).await.map(|report| report.services)
    }

    fn actions(list: &[(String, Action)]) -> Vec<(&str, Action)> {
        list.iter().map(|(service, action)| (service.as_str(), *action)).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn everything_is_created_then_left_alone_then_recreated_when_its_image_changes() {
        let workspace = load(MANIFEST);
        let engine = FakeEngine::default();
        let first = up(&engine, &workspace, "sha256:1").await.unwrap();
        assert_eq!(
            actions(&first),
            [("migrate", Action::Created), ("users", Action::Created), ("api", Action::Created)]
        );
        let second = up(&engine, &workspace, "sha256:1").await.unwrap();
        assert_eq!(
            actions(&second),
            [("migrate", Action::Unchanged), ("users", Action::Unchanged), ("api", Action::Unchanged)],
            "a completed job is not run again, and running containers are kept"
        );
        let calls = engine.calls().len();
        let third = up(&engine, &workspace, "sha256:2").await.unwrap();
        assert_eq!(
            actions(&third),
            [("migrate", Action::Recreated), ("users", Action::Recreated), ("api", Action::Recreated)]
        );
        assert_eq!(engine.calls()[calls..].iter().filter(|call| call.starts_with("remove")).count(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn unchanged_services_are_probed_together_and_a_changed_one_waits_for_them() {
        let workspace = load(MANIFEST);
        let engine = FakeEngine::default();
        up(&engine, &workspace, "sha256:1").await.unwrap();
        let slow_users = || {
            let failing = Err("not serving yet".to_owned());
            engine.probes.borrow_mut().insert("users".into(), [failing.clone(), failing, Ok(())].into());
        };
        let probes_since = |from: usize| -> Vec<String> {
            engine.calls()[from..].iter().filter(|call| !call.starts_with("remove")).cloned().collect()
        };

        slow_users();
        let from = engine.calls().len();
        up(&engine, &workspace, "sha256:1").await.unwrap();
        assert_eq!(
            probes_since(from),
            ["probe users failing", "probe api ok", "probe users failing", "probe users ok"],
            "api, unchanged, is probed while users is still starting"
        );

        slow_users();
        let from = engine.calls().len();
        let services: Vec<&Service> = workspace.services_in_order().collect();
        let mut specs = specs(&workspace, "sha256:1");
        specs.iter_mut().find(|spec| spec.service == "api").unwrap().config_hash = "changed".into();
        start_services(&engine, &workspace, &services, &specs, &|_| {}).await.unwrap();
        assert_eq!(
            probes_since(from),
            ["probe users failing", "probe users failing", "probe users ok", "create api", "probe api ok"],
            "a service that starts waits until what it depends on is ready"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_stopped_container_with_the_right_configuration_is_started_again() {
        let workspace = load(MANIFEST);
        let spec = specs(&workspace, "sha256:1").into_iter().find(|spec| spec.service == "users").unwrap();
        let engine =
            FakeEngine::default().with(container("users", &spec.config_hash, "exited", CHECKOUT), &[exited(0)]);
        let report = up(&engine, &workspace, "sha256:1").await.unwrap();
        assert!(actions(&report).contains(&("users", Action::Started)), "{report:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_job_that_fails_or_never_ends_stops_up_naming_it() {
        let workspace = load(MANIFEST);
        let engine = FakeEngine::default();
        engine.starts.borrow_mut().insert("p-migrate".into(), [running(), exited(3)].into());
        let error = up(&engine, &workspace, "sha256:1").await.unwrap_err();
        assert!(
            matches!(&error, UpError::Exited { service, state, .. } if service == "migrate" && state == "exited with 3"),
            "{error}"
        );
        assert!(!engine.calls().contains(&"create api".to_owned()), "nothing that waits for it starts");

        let engine = FakeEngine::default();
        engine.starts.borrow_mut().insert("p-migrate".into(), [running()].into());
        let error = up(&engine, &workspace, "sha256:1").await.unwrap_err();
        assert!(
            matches!(&error, UpError::Deadline { service, waited, .. } if service == "migrate" && *waited >= JOB_TIMEOUT),
            "{error}"
        );
        assert!(error.to_string().contains("did not complete within 10m"), "{error}");
    }

    #[tokio::test(start_paused = true)]
    async fn an_unhealthy_service_stops_up_with_its_reason_and_last_lines() {
        let workspace = load(MANIFEST);
        let engine = FakeEngine::default();
        engine.probes.borrow_mut().insert("users".into(), [Err("NOT_SERVING".to_owned())].into());
        let error = up(&engine, &workspace, "sha256:1").await.unwrap_err();
        match &error {
            UpError::Unhealthy { service, reason, logs, waited } => {
                assert_eq!((service.as_str(), reason.as_str()), ("users", "NOT_SERVING"));
                assert_eq!(logs, &["the last line"]);
                assert!(*waited >= Duration::from_millis(300), "retries × interval: {waited:?}");
            }
            other => panic!("{other}"),
        }
        assert!(!engine.calls().contains(&"create api".to_owned()));
        // A service that gets healthy after some failures is ready.
        let engine = FakeEngine::default();
        engine.probes.borrow_mut().insert("users".into(), [Err("starting".to_owned()), Ok(())].into());
        assert!(up(&engine, &workspace, "sha256:1").await.is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn a_taken_host_port_fails_before_anything_starts() {
        let workspace = load(MANIFEST);
        let engine = FakeEngine::default();
        engine
            .ports
            .borrow_mut()
            .insert(18080, PortHolder::Container(Box::new(container("web", "x", "running", "theirs"))));
        let error = up(&engine, &workspace, "sha256:1").await.unwrap_err();
        assert!(
            matches!(&error, UpError::PortTaken { service, port: 18080, held_by: Some(_) } if service == "api"),
            "{error}"
        );
        assert!(engine.calls().is_empty(), "nothing was created: {:?}", engine.calls());

        engine.ports.borrow_mut().insert(18080, PortHolder::Program);
        let error = up(&engine, &workspace, "sha256:1").await.unwrap_err();
        assert!(matches!(&error, UpError::PortTaken { held_by: None, .. }), "{error}");

        // The service's own container holding its port is no conflict.
        engine
            .ports
            .borrow_mut()
            .insert(18080, PortHolder::Container(Box::new(container("api", "x", "running", CHECKOUT))));
        assert!(up(&engine, &workspace, "sha256:1").await.is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn a_container_that_appears_meanwhile_is_taken_when_ours_and_refused_when_not() {
        let workspace = load(MANIFEST);
        let spec = specs(&workspace, "sha256:1").into_iter().find(|spec| spec.service == "users").unwrap();
        let engine = FakeEngine::default();
        engine.races.borrow_mut().insert("users".into(), container("users", &spec.config_hash, "running", CHECKOUT));
        let report = up(&engine, &workspace, "sha256:1").await.unwrap();
        assert!(actions(&report).contains(&("users", Action::Unchanged)), "the other run's container is the right one");
        assert!(!engine.calls().contains(&"create users".to_owned()));

        let engine = FakeEngine::default();
        engine.races.borrow_mut().insert("users".into(), container("users", &spec.config_hash, "running", "theirs"));
        let error = up(&engine, &workspace, "sha256:1").await.unwrap_err();
        assert!(
            matches!(&error, UpError::Container { service, error: DockerError::OtherCheckout { .. } } if service == "users"),
            "{error}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_service_that_stops_while_starting_is_reported_with_its_state() {
        let workspace = load(MANIFEST);
        let engine = FakeEngine::default();
        engine.starts.borrow_mut().insert("p-users".into(), [exited(101)].into());
        let error = up(&engine, &workspace, "sha256:1").await.unwrap_err();
        assert!(
            matches!(&error, UpError::Exited { service, state, .. } if service == "users" && state == "exited with 101"),
            "{error}"
        );
    }

    #[test]
    fn dependencies_gate_their_dependents_with_the_strongest_condition() {
        let workspace = load(MANIFEST);
        let all: Vec<&Service> = workspace.services.iter().collect();
        assert_eq!(gates(&all), HashMap::from([("migrate", Condition::Completed), ("users", Condition::Healthy)]));
        assert_eq!(jobs(&workspace), HashSet::from(["migrate"]), "a job whoever starts it");
        let users: Vec<&Service> = workspace.services.iter().filter(|service| service.name == "users").collect();
        assert_eq!(gates(&users), HashMap::new(), "only selected dependents count");
    }
}
