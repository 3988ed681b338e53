//! `plat ps`: each service's container as the Engine has it, probed, compared with what `up`
//! would make; the database's; and what this checkout made under another workspace name.

use std::sync::Arc;

use super::spec;
use crate::build;
use crate::docker::container::ServiceContainer;
use crate::docker::relay::{Dialer, Reach};
use crate::docker::{self, DockerError, Engine, Owner};
use crate::health::{self, ProbeTarget};
use crate::manifest::{Service, Workspace};

/// One row of `plat ps`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ServiceState {
    /// The service, or `postgres` for the workspace's database.
    pub service: String,
    /// Its container, when there is one.
    pub container: Option<String>,
    /// `running`, `exited`, ... or `missing` when there is no container.
    pub state: String,
    /// What the Engine says: `Up 2 minutes`.
    pub status: Option<String>,
    /// `healthy`, or why not; `None` when it has no health check or does not run.
    pub health: Option<String>,
    /// Whether its container runs what its checkout holds now: the manifest's settings, the
    /// image tagged for it, and no change in the checkout since that image was built
    /// ([`behind_checkout`]); `None` for the database and for a service with no container.
    pub up_to_date: Option<bool>,
    /// Why it is not up to date, when it is not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub behind: Option<String>,
    /// Ports published on 127.0.0.1, as `host:container`.
    pub published: Vec<String>,
    /// Why the row is here though it is not one of the workspace's: `workspace renamed from
    /// `old``, `another checkout: <dir>`.
    pub note: Option<String>,
}

/// The state of every service of the workspace, in start order (their health probed at once),
/// then its database (present or not), then containers this checkout made under another
/// workspace name and those another checkout runs under this one.
pub async fn ps(
    engine: &Engine,
    workspace: &Workspace,
    reach: Option<Reach>,
) -> Result<Vec<ServiceState>, DockerError> {
    let owner = Owner::new(&workspace.name, &workspace.root);
    let dialer = Arc::new(Dialer::new(engine, &owner, reach));
    let containers = engine.list_services(&workspace.name).await?;
    let ours: Vec<&ServiceContainer> = containers.iter().filter(|container| container.made_by(&owner)).collect();
    let rows = workspace.services_in_order().map(|service| {
        let found = ours.iter().find(|container| container.service == service.name).copied();
        service_row(engine, &dialer, workspace, service, found)
    });
    let mut rows: Vec<ServiceState> = futures_util::future::try_join_all(rows).await?;

    let database = engine.find_database_container(&owner).await;
    rows.push(match database {
        Ok(Some(database)) => ServiceState {
            service: docker::label::POSTGRES.to_owned(),
            container: Some(database.name),
            state: "running".to_owned(),
            status: None,
            health: None,
            up_to_date: None,
            behind: None,
            published: database.port.map(|port| format!("{port}:{}", docker::POSTGRES_PORT)).into_iter().collect(),
            note: None,
        },
        Ok(None) => missing(docker::label::POSTGRES, None),
        Err(DockerError::OtherCheckout { root, containers, .. }) => ServiceState {
            container: containers.into_iter().next(),
            state: "running".to_owned(),
            note: Some(format!("another checkout's: {root}")),
            ..missing(docker::label::POSTGRES, None)
        },
        Err(error) => return Err(error),
    });

    for container in containers.iter().filter(|container| !container.made_by(&owner)) {
        rows.push(other_row(
            container,
            format!("another checkout's: {}", container.root.as_deref().unwrap_or("unknown")),
        ));
    }
    for container in engine.list_checkout(&owner).await? {
        if container.workspace != workspace.name {
            rows.push(other_row(
                &container,
                format!("workspace renamed from `{}`: `plat down` removes it", container.workspace),
            ));
        }
    }
    Ok(rows)
}

async fn service_row(
    engine: &Engine,
    dialer: &Arc<Dialer>,
    workspace: &Workspace,
    service: &Service,
    found: Option<&ServiceContainer>,
) -> Result<ServiceState, DockerError> {
    let Some(found) = found else { return Ok(missing(&service.name, None)) };
    let health = match (&service.health, found.running()) {
        (Some(health), true) => {
            let address = engine.run_state(&found.id, &workspace.name).await.ok().and_then(|state| state.address);
            let target = ProbeTarget { container: &found.id, host: &service.name, address, ports: &service.ports };
            Some(match health::probe(dialer, &health.check, target, health.timeout).await {
                Ok(()) => "healthy".to_owned(),
                Err(reason) => reason,
            })
        }
        _ => None,
    };
    let behind = behind_checkout(engine, workspace, service, found).await?;
    Ok(ServiceState {
        service: service.name.clone(),
        container: Some(found.name.clone()),
        state: found.state.clone(),
        status: Some(found.status.clone()),
        health,
        up_to_date: Some(behind.is_none()),
        behind,
        published: found.published.iter().map(|(container, host)| format!("{host}:{container}")).collect(),
        note: None,
    })
}

/// Why `found` does not run what `service`'s checkout holds now: an older image or settings than
/// `plat up` would start, or changes in the checkout since its image was built
/// ([`build::checkout_changes`]). `None` when it does, as far as plat can tell without building.
/// `plat ps` shows it; `plat test --e2e` and `--contract` refuse to check such a container.
pub async fn behind_checkout(
    engine: &Engine,
    workspace: &Workspace,
    service: &Service,
    found: &ServiceContainer,
) -> Result<Option<String>, DockerError> {
    let tagged = engine.find_image(&build::image_reference(service)).await?;
    let runs_tagged = tagged.as_ref().is_some_and(|image| {
        spec::container_spec(workspace, service, &image.id)
            .is_ok_and(|spec| found.config_hash.as_deref() == Some(spec.config_hash.as_str()))
    });
    if !runs_tagged {
        return Ok(Some(format!("{} runs an old image or settings", service.name)));
    }
    match build::checkout_changes(workspace, service, tagged.as_ref()) {
        Ok(changes) if changes.is_empty() => Ok(None),
        Ok(changes) => Ok(Some(format!("{} runs code older than its checkout ({})", service.name, changes.join("; ")))),
        // Only a build could tell (the context cannot be read): the build `plat up` runs says
        // why, not this check.
        Err(error) => {
            tracing::debug!("cannot tell whether {} runs its checkout: {error}", service.name);
            Ok(None)
        }
    }
}

fn missing(service: &str, note: Option<String>) -> ServiceState {
    ServiceState {
        service: service.to_owned(),
        container: None,
        state: "missing".to_owned(),
        status: None,
        health: None,
        up_to_date: None,
        behind: None,
        published: Vec::new(),
        note,
    }
}

fn other_row(container: &ServiceContainer, note: String) -> ServiceState {
    ServiceState {
        service: container.service.clone(),
        container: Some(container.name.clone()),
        state: container.state.clone(),
        status: Some(container.status.clone()),
        health: None,
        up_to_date: None,
        behind: None,
        published: container.published.iter().map(|(inner, host)| format!("{host}:{inner}")).collect(),
        note: Some(note),
    }
}
