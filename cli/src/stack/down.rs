//! `plat down`: everything this checkout made in the Engine removed, dependents before what they
//! depend on; the database's and the services' volumes kept unless asked.

use crate::docker::relay::RELAY_ROLE;
use crate::docker::{self, DockerError, Engine, Owner};
use crate::manifest::Workspace;

/// What `down` removed: only what was there.
#[derive(Debug, Default)]
pub struct DownReport {
    /// Containers removed, dependents before what they depend on.
    pub removed: Vec<String>,
    /// Containers of another checkout under this workspace's name, left alone.
    pub others: Vec<String>,
    /// The database volume, when it existed and was removed.
    pub volume_removed: Option<String>,
    /// The services' named volumes removed (`volumes` in workspace.toml).
    pub service_volumes_removed: Vec<String>,
}

/// Stops and removes the checkout's containers (services first, dependents before their
/// dependencies, then the database and the relay) and its network. Containers it made under
/// another workspace name (before a rename) go too. The database's data stays in its volume,
/// and the services' data in theirs, unless `remove_volume`.
pub async fn down(engine: &Engine, workspace: &Workspace, remove_volume: bool) -> Result<DownReport, DockerError> {
    let owner = Owner::new(&workspace.name, &workspace.root);
    let mut report = DownReport::default();
    // This checkout's, under any name; and under this name, those of older plats that recorded no
    // checkout (another checkout's are reported and left).
    let mut containers = engine.list_checkout(&owner).await?;
    for container in engine.list_services(&workspace.name).await? {
        if !container.made_by(&owner) {
            report.others.push(container.name);
        } else if !containers.iter().any(|have| have.id == container.id) {
            containers.push(container);
        }
    }
    let order: Vec<&str> = workspace.services_in_order().map(|service| service.name.as_str()).collect();
    // Services of this workspace in reverse start order, after anything else (a renamed
    // workspace's, a service gone from the manifest); the database and the relay last.
    let rank = |container: &docker::container::ServiceContainer| {
        let role_last = container.service == docker::label::POSTGRES || container.service == RELAY_ROLE;
        let current = container.workspace == workspace.name;
        let position = order.iter().position(|name| *name == container.service && current);
        (role_last, std::cmp::Reverse(position.map_or(usize::MAX, |position| position)))
    };
    containers.sort_by_key(rank);
    let mut names = vec![workspace.name.clone()];
    for container in &containers {
        if container.service == docker::label::POSTGRES {
            continue; // `remove_database` stops it with the time a checkpoint needs.
        }
        // The relay holds nothing and does not wait for SIGTERM: removed at once.
        let removed = if container.service == RELAY_ROLE {
            engine.remove_relay(&container.workspace).await?
        } else {
            engine.remove_container(&container.id).await?
        };
        if removed {
            report.removed.push(container.name.clone());
        }
        if !names.contains(&container.workspace) {
            names.push(container.workspace.clone());
        }
    }
    for name in &names {
        let removed = engine.remove_database(name, remove_volume && *name == workspace.name).await?;
        report.removed.extend(removed.containers);
        if removed.volume {
            report.volume_removed = Some(docker::database_volume_name(name));
        }
        // The services' volumes go with the database's data, after their containers.
        if remove_volume && *name == workspace.name {
            report.service_volumes_removed = engine.remove_service_volumes(&owner, name).await?;
        }
        engine.remove_network(name).await?;
    }
    Ok(report)
}
