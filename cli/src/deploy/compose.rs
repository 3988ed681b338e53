//! workspace.toml as a docker-compose.yml, for those who run compose rather than plat: the
//! services on the images `plat build` made, their environment, ports, health checks where the
//! image can run one, the database with its volume, and the order `depends_on` says.
//!
//! Compose has no plat in it, so nothing applies migrations: the database's port is published
//! on 127.0.0.1 (`POSTGRES_PORT`, 5432 by default) for `plat migrate` (docs/deploy.md).

use std::path::Path;

use serde_json::{Map, Value, json};

use super::{is_cargo_built, with_header};
use crate::manifest::{Condition, HealthCheck, Service, Workspace};

/// The compose service and volume of the database.
const DATABASE_VOLUME: &str = "postgres-data";

/// The environment variable that moves a published port: `API_GATEWAY_HTTP_PORT` for the port
/// `http` of `api-gateway`, and `POSTGRES_PORT` for the database.
pub fn port_variable(service: &str, port: &str) -> String {
    format!("{service}_{port}_PORT").to_uppercase().replace('-', "_")
}

/// The environment variable the database's published port is read from.
pub const POSTGRES_PORT_VARIABLE: &str = "POSTGRES_PORT";

/// The compose file for the workspace. `compose_dir` is where it will be written: `env_file`
/// paths are made relative to it when they lie below it, absolute otherwise.
pub fn render(workspace: &Workspace, compose_dir: &Path) -> String {
    let needs_database = workspace
        .services
        .iter()
        .any(|service| service.database.is_some() && !service.env.contains_key("DATABASE_URL"));
    let mut services = Map::new();
    if needs_database {
        services.insert(crate::manifest::DATABASE_HOST.to_owned(), database());
    }
    for service in &workspace.services {
        services.insert(service.name.clone(), compose_service(workspace, service, compose_dir, needs_database));
    }
    let mut file = json!({ "services": services });
    let mut volumes = Map::new();
    if needs_database {
        volumes.insert(DATABASE_VOLUME.to_owned(), json!({}));
    }
    for service in &workspace.services {
        for name in service.volumes.keys() {
            volumes.insert(service_volume(service, name), json!({}));
        }
    }
    if !volumes.is_empty() {
        file["volumes"] = volumes.into();
    }
    with_header(
        "plat compose export",
        &format!(
            "The `{}` platform for docker-compose, on the images `plat build` made. Secrets come from\n\
             the environment (or a .env file beside this one); published ports move with\n\
             <SERVICE>_<PORT>_PORT. Migrations: run `plat migrate` against the database on\n\
             127.0.0.1:${{{POSTGRES_PORT_VARIABLE}:-5432}} (docs/deploy.md).",
            workspace.name
        ),
        &super::yaml(&file),
    )
}

/// The compose volume of a service's named volume: `<service>-<name>` (compose prefixes the project).
fn service_volume(service: &Service, name: &str) -> String {
    format!("{}-{name}", service.name)
}

/// The development PostgreSQL: plat's image, a named volume, and `pg_isready` (it has a shell).
fn database() -> Value {
    let port = crate::docker::POSTGRES_PORT;
    json!({
        "image": crate::docker::POSTGRES_IMAGE,
        "ports": [format!("127.0.0.1:${{{POSTGRES_PORT_VARIABLE}:-{port}}}:{port}")],
        "volumes": [format!("{DATABASE_VOLUME}:/var/lib/postgresql/data")],
        "healthcheck": {
            "test": ["CMD", "pg_isready", "-h", "127.0.0.1", "-U", "postgres"],
            "interval": "2s",
            "timeout": "1s",
            "retries": 30,
        },
        "restart": "unless-stopped",
    })
}

/// Whether compose can check the service's health: only a `cmd` check runs in the container
/// without tools the image may not have (plat's cargo images are FROM scratch: no shell, no
/// curl, no grpc_health_probe).
fn compose_healthcheck(service: &Service) -> Option<Value> {
    let health = service.health.as_ref()?;
    let HealthCheck::Cmd(command) = &health.check else { return None };
    let mut test = vec![Value::from("CMD")];
    test.extend(command.iter().map(|part| Value::from(part.as_str())));
    let seconds = |duration: std::time::Duration| format!("{}ms", duration.as_millis());
    let mut check = json!({
        "test": test,
        "interval": seconds(health.interval),
        "timeout": seconds(health.timeout),
        "retries": health.retries,
    });
    if !health.start_period.is_zero() {
        check["start_period"] = seconds(health.start_period).into();
    }
    Some(check)
}

fn compose_service(workspace: &Workspace, service: &Service, compose_dir: &Path, with_database: bool) -> Value {
    let mut entry = json!({ "image": super::deployed_image(service, None) });

    let mut depends_on = Map::new();
    if with_database && service.database.is_some() && !service.env.contains_key("DATABASE_URL") {
        depends_on.insert(crate::manifest::DATABASE_HOST.to_owned(), json!({ "condition": "service_healthy" }));
    }
    for (name, condition) in &service.depends_on {
        let checked = workspace.service(name).and_then(compose_healthcheck).is_some();
        let condition = match condition {
            Condition::Healthy if checked => "service_healthy",
            // Compose cannot check that one: the dependent starts once it runs, and waits
            // itself (the sample's services retry, and report NOT_SERVING meanwhile).
            Condition::Healthy | Condition::Started => "service_started",
            Condition::Completed => "service_completed_successfully",
        };
        depends_on.insert(name.clone(), json!({ "condition": condition }));
    }
    if !depends_on.is_empty() {
        entry["depends_on"] = depends_on.into();
    }

    let mut environment = Map::new();
    if let Some(database) = &service.database
        && with_database
        && !service.env.contains_key("DATABASE_URL")
    {
        environment.insert("DATABASE_URL".into(), super::dev_database_url(database).into());
    }
    for (key, value) in &service.env {
        let value = if service.secrets.contains(key) {
            format!("${{{key}:?set {key} in the environment or .env: a secret of {}}}", service.name)
        } else {
            // `$` starts an interpolation in compose; the value is meant as written.
            value.replace('$', "$$")
        };
        environment.insert(key.clone(), value.into());
    }
    if !environment.is_empty() {
        entry["environment"] = environment.into();
    }
    if !service.env_files.is_empty() {
        let files: Vec<Value> = service
            .env_files
            .iter()
            .map(|file| {
                let path = file.under(&workspace.root);
                let shown = path.strip_prefix(compose_dir).map_or(path.clone(), Path::to_path_buf);
                Value::from(shown.to_string_lossy().into_owned())
            })
            .collect();
        entry["env_file"] = files.into();
    }

    if !service.volumes.is_empty() {
        let mounts: Vec<Value> = service
            .volumes
            .iter()
            .map(|(name, path)| Value::from(format!("{}:{path}", service_volume(service, name))))
            .collect();
        entry["volumes"] = mounts.into();
    }
    if !service.ports.is_empty() {
        let exposed: Vec<Value> = service.ports.values().map(|port| Value::from(port.to_string())).collect();
        entry["expose"] = exposed.into();
    }
    if !service.publish.is_empty() {
        let published: Vec<Value> = service
            .publish
            .iter()
            .filter_map(|(name, host)| {
                let port = service.ports.get(name)?;
                Some(Value::from(format!("${{{}:-{host}}}:{port}", port_variable(&service.name, name))))
            })
            .collect();
        entry["ports"] = published.into();
    }
    if let Some(check) = compose_healthcheck(service) {
        entry["healthcheck"] = check;
    }
    if is_cargo_built(service) {
        // FROM scratch with one binary: nothing in the image is ever written.
        entry["read_only"] = true.into();
    }
    entry["restart"] = "unless-stopped".into();
    entry["stop_grace_period"] = "15s".into();
    entry
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: &str = r#"
[workspace]
name = "shop"

[services.users]
ports = { grpc = 50051 }
health = { grpc = "users.v1.Users" }
database = {}

[services.broker]
image = "nats:2"
volumes = { data = "/data" }
ports = { client = 4222 }
health = { cmd = ["nats-check", "--fast"] }

[services.gateway]
ports = { http = 8080 }
publish = { http = 8080 }
depends_on = { users = "healthy", broker = "healthy" }
env = { USERS_ADDR = "http://users:50051", PRICE = "$5", JWT_SECRET = "dev-only" }
secrets = ["JWT_SECRET"]
health = { http = "/readyz" }
"#;

    fn compose() -> serde_yaml_ng::Value {
        let dir = std::env::temp_dir();
        let workspace = crate::manifest::load(&dir.join("workspace.toml"), MANIFEST).unwrap();
        let text = render(&workspace, &dir);
        assert!(!text.contains("dev-only"), "a secret's value is never written");
        serde_yaml_ng::from_str(&text).unwrap()
    }

    #[test]
    fn the_database_comes_first_with_its_volume_and_health_check() {
        let file = compose();
        let postgres = &file["services"]["postgres"];
        assert_eq!(postgres["image"], "plat/postgres:15");
        assert_eq!(postgres["ports"][0], "127.0.0.1:${POSTGRES_PORT:-5432}:5432");
        assert_eq!(file["services"]["users"]["depends_on"]["postgres"]["condition"], "service_healthy");
        assert_eq!(file["services"]["users"]["environment"]["DATABASE_URL"], "postgres://postgres@postgres:5432/users");
        assert!(file["volumes"].get("postgres-data").is_some());
    }

    #[test]
    fn a_dependency_compose_can_check_is_waited_for_until_healthy() {
        let file = compose();
        let gateway = &file["services"]["gateway"];
        assert_eq!(gateway["depends_on"]["broker"]["condition"], "service_healthy");
        assert_eq!(gateway["depends_on"]["users"]["condition"], "service_started", "a FROM scratch image has no probe");
        assert_eq!(file["services"]["broker"]["healthcheck"]["test"][1], "nats-check");
        assert!(file["services"]["users"].get("healthcheck").is_none());
    }

    #[test]
    fn environment_ports_and_secrets() {
        let file = compose();
        let gateway = &file["services"]["gateway"];
        assert_eq!(gateway["image"], "shop/gateway:dev");
        assert_eq!(gateway["environment"]["PRICE"], "$$5");
        assert_eq!(
            gateway["environment"]["JWT_SECRET"],
            "${JWT_SECRET:?set JWT_SECRET in the environment or .env: a secret of gateway}"
        );
        assert_eq!(gateway["ports"][0], "${GATEWAY_HTTP_PORT:-8080}:8080");
        assert_eq!(gateway["read_only"].as_bool(), Some(true));
        assert_eq!(file["services"]["broker"]["image"], "nats:2");
        assert_eq!(file["services"]["broker"]["volumes"][0], "broker-data:/data");
        assert!(file["volumes"].get("broker-data").is_some());
    }
}
