//! workspace.toml as a kustomize tree: `base/` (a Deployment, Service and ConfigMap per service)
//! and `overlays/<env>/` (namespace, the Secret from `secrets.env`, and for `dev` a PostgreSQL).
//!
//! What each part says, and why:
//! - images `<image>:<version>` ([`super::deployed_image`]); a ready image (`nats:2`) as written;
//! - readiness from `health`; liveness only that the port accepts connections, so that a
//!   database outage marks a service unready instead of restarting it;
//! - `env` in a generated ConfigMap (its name carries a hash of its contents: a change rolls the
//!   Deployment), `secrets` and `DATABASE_URL` from the overlay's Secret, never their values;
//! - non-root (the 10001 user plat's cargo images run as), no privilege escalation, no
//!   capabilities, and for the FROM scratch cargo images a read-only root;
//! - resource requests, so that the scheduler can place the pods.

use indexmap::IndexMap;
use serde_json::{Value, json};

use super::{RenderError, RenderedFile, Versions, deployed_image, is_cargo_built, is_port_name, with_header};
use crate::manifest::{Database, HealthCheck, Service, Workspace};

/// The environment that runs its own PostgreSQL in the cluster; every other one takes managed
/// databases through the Secret's `DATABASE_URL`s.
pub const DEV_ENVIRONMENT: &str = "dev";

/// The command whose output these files are, named in their header.
const RENDER_COMMAND: &str = "plat deploy render";

/// The user and group plat's cargo images run as (`USER 10001:10001` in the Dockerfile it writes).
const IMAGE_USER: u64 = 10001;

/// The Secret every overlay generates from its `secrets.env`.
pub fn secret_name(workspace: &Workspace) -> String {
    format!("{}-secrets", workspace.name)
}

/// The namespace of an environment: the workspace's name for `dev`, else `<workspace>-<env>`.
pub fn namespace(workspace: &Workspace, environment: &str) -> String {
    if environment == DEV_ENVIRONMENT { workspace.name.clone() } else { format!("{}-{environment}", workspace.name) }
}

/// The Secret key of a service's `DATABASE_URL`: one per service (`USER_SERVICE_DATABASE_URL`),
/// since each has its own database and, in production, its own credentials.
pub fn database_url_key(service: &Service) -> String {
    format!("{}_DATABASE_URL", service.name.to_uppercase().replace('-', "_"))
}

/// The tree for `environment`: `base/` and `overlays/<environment>/`, paths relative to the
/// tree's root (deploy/k8s).
pub fn render(workspace: &Workspace, versions: &Versions, environment: &str) -> Result<Vec<RenderedFile>, RenderError> {
    super::check_environment(environment)?;
    for service in &workspace.services {
        if let Some(port) = service.ports.keys().find(|port| !is_port_name(port)) {
            return Err(RenderError::PortName { service: service.name.clone(), port: port.clone() });
        }
    }
    let mut files = Vec::new();
    let mut resources = Vec::new();
    let mut config_maps = Vec::new();
    for service in &workspace.services {
        let file = format!("{}.yaml", service.name);
        let config = config_literals(service);
        if !config.is_empty() {
            config_maps.push(json!({ "name": config_map_name(service), "literals": config }));
        }
        files.push(RenderedFile {
            path: format!("base/{file}"),
            contents: with_header(
                RENDER_COMMAND,
                &service_comment(service),
                &service_manifests(workspace, versions, service),
            ),
        });
        resources.push(Value::from(file));
    }
    let mut kustomization = json!({
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "labels": [{ "pairs": { "app.kubernetes.io/part-of": workspace.name } }],
        "resources": resources,
    });
    if !config_maps.is_empty() {
        kustomization["configMapGenerator"] = Value::from(config_maps);
    }
    files.insert(
        0,
        RenderedFile {
            path: "base/kustomization.yaml".into(),
            contents: with_header(
                RENDER_COMMAND,
                &format!(
                    "The `{}` platform on Kubernetes: what `plat up` runs, as Deployments and Services.\n\
                     Apply an overlay, not this base: it names no namespace and no secrets.",
                    workspace.name
                ),
                &super::yaml(&kustomization),
            ),
        },
    );
    files.extend(overlay(workspace, environment));
    Ok(files)
}

/// What a service's file says it is, in a comment at its top.
fn service_comment(service: &Service) -> String {
    let ports: Vec<String> = service.ports.iter().map(|(name, port)| format!("{name} {port}")).collect();
    let mut comment =
        format!("{}: ports {}", service.name, if ports.is_empty() { "none".into() } else { ports.join(", ") });
    if let Some(database) = &service.database {
        comment.push_str(&format!("; its own database `{}` (DATABASE_URL from the Secret)", database.name));
    }
    if !service.secrets.is_empty() {
        comment.push_str(&format!("; secrets {} from the Secret", service.secrets.join(", ")));
    }
    comment.push('.');
    comment
}

/// The generated ConfigMap holding a service's plain environment.
fn config_map_name(service: &Service) -> String {
    format!("{}-env", service.name)
}

/// `KEY=value` of every `env` entry that is not a secret, in manifest order.
fn config_literals(service: &Service) -> Vec<String> {
    service
        .env
        .iter()
        .filter(|(key, _)| !service.secrets.contains(key))
        .map(|(key, value)| format!("{key}={value}"))
        .collect()
}

/// A service's Service (when it has ports) and Deployment, as one YAML stream.
fn service_manifests(workspace: &Workspace, versions: &Versions, service: &Service) -> String {
    let selector = json!({ "app.kubernetes.io/name": service.name });
    let mut documents = Vec::new();
    if !service.ports.is_empty() {
        let grpc_health_port = match service.health.as_ref().map(|health| &health.check) {
            Some(HealthCheck::Grpc { port, .. }) => Some(port.as_str()),
            _ => None,
        };
        let ports: Vec<Value> = service
            .ports
            .iter()
            .map(|(name, port)| {
                let mut entry = json!({ "name": name, "port": port, "targetPort": name });
                if name == "grpc" || grpc_health_port == Some(name) {
                    entry["appProtocol"] = "grpc".into();
                }
                entry
            })
            .collect();
        documents.push(json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": { "name": service.name },
            "spec": { "selector": selector, "ports": ports },
        }));
    }
    documents.push(deployment(workspace, versions, service, &selector));
    super::yaml_documents(&documents)
}

fn deployment(workspace: &Workspace, versions: &Versions, service: &Service, selector: &Value) -> Value {
    let cargo_built = is_cargo_built(service);
    let mut container = json!({
        "name": service.name,
        "image": deployed_image(service, versions.get(&service.name)),
    });
    if !service.ports.is_empty() {
        let ports: Vec<Value> =
            service.ports.iter().map(|(name, port)| json!({ "name": name, "containerPort": port })).collect();
        container["ports"] = ports.into();
    }
    if !config_literals(service).is_empty() {
        container["envFrom"] = json!([{ "configMapRef": { "name": config_map_name(service) } }]);
    }
    let secret = secret_name(workspace);
    let mut env = Vec::new();
    if service.database.is_some() && !service.env.contains_key("DATABASE_URL") {
        env.push(secret_env("DATABASE_URL", &secret, &database_url_key(service)));
    }
    for key in &service.secrets {
        env.push(secret_env(key, &secret, key));
    }
    if !env.is_empty() {
        container["env"] = env.into();
    }
    if let Some(health) = &service.health {
        container["readinessProbe"] = readiness(service, health);
        if let Some(port) = health.check.port().or_else(|| service.ports.keys().next().map(String::as_str)) {
            container["livenessProbe"] = json!({ "tcpSocket": { "port": port }, "periodSeconds": 10 });
        }
    }
    let mut container_security = json!({
        "allowPrivilegeEscalation": false,
        "capabilities": { "drop": ["ALL"] },
    });
    if cargo_built {
        // FROM scratch with one binary: nothing in the image is ever written.
        container_security["readOnlyRootFilesystem"] = true.into();
    }
    container["securityContext"] = container_security;
    // A service's volumes as `emptyDir`s: writable by the pod's user whatever the image's owner
    // of the directory, and as long-lived as the pod. Data that must outlive it wants a
    // PersistentVolumeClaim, which an overlay patches in (docs/deploy.md).
    let volumes: Vec<Value> = service.volumes.keys().map(|name| json!({ "name": name, "emptyDir": {} })).collect();
    if !volumes.is_empty() {
        let mounts: Vec<Value> =
            service.volumes.iter().map(|(name, path)| json!({ "name": name, "mountPath": path })).collect();
        container["volumeMounts"] = mounts.into();
    }
    container["resources"] = json!({
        "requests": { "cpu": "50m", "memory": "32Mi" },
        "limits": { "memory": "128Mi" },
    });

    let mut template_metadata = json!({ "labels": selector });
    if let Some(port) = service.ports.get("metrics") {
        template_metadata["annotations"] =
            json!({ "prometheus.io/scrape": "true", "prometheus.io/port": port.to_string() });
    }
    let mut deployment = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": { "name": service.name },
        "spec": {
            // Two of what plat builds, so that a rollout or a node going away leaves one serving;
            // one of a ready image (a broker, say), which two copies would not make a cluster of.
            "replicas": if cargo_built { 2 } else { 1 },
            "selector": { "matchLabels": selector },
            "template": {
                "metadata": template_metadata,
                "spec": {
                    "securityContext": {
                        "runAsNonRoot": true,
                        "runAsUser": IMAGE_USER,
                        "runAsGroup": IMAGE_USER,
                        "seccompProfile": { "type": "RuntimeDefault" },
                    },
                    // The services drain for SHUTDOWN_GRACE (5 s by default) on SIGTERM: well inside.
                    "terminationGracePeriodSeconds": 15,
                    "containers": [container],
                },
            },
        },
    });
    if !volumes.is_empty() {
        deployment["spec"]["template"]["spec"]["volumes"] = volumes.into();
    }
    deployment
}

fn secret_env(name: &str, secret: &str, key: &str) -> Value {
    json!({ "name": name, "valueFrom": { "secretKeyRef": { "name": secret, "key": key } } })
}

/// The readiness probe `health` describes, with its timing.
fn readiness(service: &Service, health: &crate::manifest::Health) -> Value {
    let mut probe = match &health.check {
        HealthCheck::Grpc { service: name, port } => {
            // A gRPC probe takes a port number, not a name.
            let mut grpc = json!({ "port": service.ports.get(port).copied().unwrap_or_default() });
            if !name.is_empty() {
                grpc["service"] = name.as_str().into();
            }
            json!({ "grpc": grpc })
        }
        HealthCheck::Http { path, port } => json!({ "httpGet": { "path": path, "port": port } }),
        HealthCheck::Tcp { port } => json!({ "tcpSocket": { "port": port } }),
        HealthCheck::Cmd(command) => json!({ "exec": { "command": command } }),
    };
    let seconds = |duration: std::time::Duration| duration.as_secs().max(1);
    if !health.start_period.is_zero() {
        probe["initialDelaySeconds"] = health.start_period.as_secs().into();
    }
    probe["periodSeconds"] = seconds(health.interval).into();
    probe["timeoutSeconds"] = seconds(health.timeout).into();
    probe
}

/// `overlays/<environment>/`: namespace, the Secret, and for dev the database.
fn overlay(workspace: &Workspace, environment: &str) -> Vec<RenderedFile> {
    let dir = format!("overlays/{environment}");
    let dev = environment == DEV_ENVIRONMENT;
    let databases: Vec<(&Service, &Database)> = workspace
        .services
        .iter()
        .filter(|service| !service.env.contains_key("DATABASE_URL"))
        .filter_map(|service| service.database.as_ref().map(|database| (service, database)))
        .collect();
    let with_postgres = dev && !databases.is_empty();
    let namespace = namespace(workspace, environment);

    let mut resources = vec![Value::from("namespace.yaml"), Value::from("../../base")];
    if with_postgres {
        resources.push("postgres.yaml".into());
    }
    let kustomization = json!({
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "namespace": namespace,
        "resources": resources,
        "secretGenerator": [{ "name": secret_name(workspace), "envs": ["secrets.env"] }],
    });
    let what = if dev {
        "A development cluster (kind, k3d, minikube)"
    } else {
        "A cluster whose databases are managed outside it"
    };
    let mut files = vec![
        RenderedFile {
            path: format!("{dir}/kustomization.yaml"),
            contents: with_header(
                RENDER_COMMAND,
                &format!(
                    "{what}: everything in the namespace `{namespace}`, the secrets from secrets.env\n\
                     (copy secrets.env.example; never commit it). `plat deploy apply --env {environment}` applies it."
                ),
                &super::yaml(&kustomization),
            ),
        },
        RenderedFile {
            path: format!("{dir}/namespace.yaml"),
            contents: with_header(
                RENDER_COMMAND,
                "The namespace everything of this environment lives in.",
                &super::yaml(&json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": namespace } })),
            ),
        },
    ];
    if with_postgres {
        files.push(RenderedFile {
            path: format!("{dir}/postgres.yaml"),
            contents: with_header(
                RENDER_COMMAND,
                "The platform's PostgreSQL, from the image `plat up` runs. It trusts every client that\n\
                 reaches it: for a development cluster only. Other environments point the DATABASE_URL\n\
                 secrets at a managed database instead.",
                &postgres(),
            ),
        });
    }

    // secrets.env.example: every key the Deployments read from the Secret, in manifest order.
    let mut keys: IndexMap<String, (String, Vec<&str>)> = IndexMap::new();
    for (service, database) in &databases {
        let value = if dev {
            super::dev_database_url(database)
        } else {
            format!("postgres://USER:PASSWORD@DATABASE-HOST:5432/{}", database.name)
        };
        keys.entry(database_url_key(service)).or_insert((value, Vec::new())).1.push(&service.name);
    }
    for service in &workspace.services {
        for key in &service.secrets {
            keys.entry(key.clone()).or_insert(("change-me".into(), Vec::new())).1.push(&service.name);
        }
    }
    let mut example = format!(
        "# The secrets the Deployments read from `{}`. Copy to secrets.env (keep it out of git)\n\
         # and fill in. The databases are the ones `plat migrate` creates and migrates.\n",
        secret_name(workspace)
    );
    for (key, (value, services)) in &keys {
        example.push_str(&format!("# {}\n{key}={value}\n", services.join(", ")));
    }
    files.push(RenderedFile { path: format!("{dir}/secrets.env.example"), contents: example });
    files
}

/// The development PostgreSQL: a Service and a one-replica StatefulSet with a volume.
fn postgres() -> String {
    let selector = json!({ "app.kubernetes.io/name": crate::manifest::DATABASE_HOST });
    let port = crate::docker::POSTGRES_PORT;
    super::yaml_documents(&[
        json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": { "name": crate::manifest::DATABASE_HOST },
            "spec": {
                "selector": selector,
                "ports": [{ "name": "postgres", "port": port, "targetPort": "postgres" }],
            },
        }),
        json!({
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": { "name": crate::manifest::DATABASE_HOST },
            "spec": {
                "serviceName": crate::manifest::DATABASE_HOST,
                "replicas": 1,
                "selector": { "matchLabels": selector },
                "template": {
                    "metadata": { "labels": selector },
                    "spec": {
                        // Kubernetes sends SIGTERM, PostgreSQL's smart shutdown that waits for clients.
                        "terminationGracePeriodSeconds": 60,
                        "containers": [{
                            "name": "postgres",
                            "image": crate::docker::POSTGRES_IMAGE,
                            "ports": [{ "name": "postgres", "containerPort": port }],
                            "readinessProbe": {
                                "exec": { "command": ["pg_isready", "-h", "127.0.0.1", "-U", "postgres"] },
                                "periodSeconds": 2,
                            },
                            "volumeMounts": [{ "name": "data", "mountPath": "/var/lib/postgresql/data" }],
                            "resources": {
                                "requests": { "cpu": "100m", "memory": "128Mi" },
                                "limits": { "memory": "512Mi" },
                            },
                        }],
                    },
                },
                "volumeClaimTemplates": [{
                    "metadata": { "name": "data" },
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "resources": { "requests": { "storage": "1Gi" } },
                    },
                }],
            },
        }),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::versions;

    const MANIFEST: &str = r#"
[workspace]
name = "shop"

[services.users]
ports = { grpc = 50051, metrics = 9090 }
health = { grpc = "users.v1.Users" }
database = {}

[services.gateway]
ports = { http = 8080 }
env = { USERS_ADDR = "http://users:50051", JWT_SECRET = "dev-only" }
secrets = ["JWT_SECRET"]
health = { http = "/readyz", interval = "5s" }

[services.broker]
image = "nats:2"
volumes = { data = "/data" }
ports = { client = 4222 }
health = { tcp = "client" }
"#;

    fn workspace() -> Workspace {
        let dir = std::env::temp_dir();
        crate::manifest::load(&dir.join("workspace.toml"), MANIFEST).unwrap()
    }

    fn rendered(environment: &str) -> IndexMap<String, String> {
        let workspace = workspace();
        let versions = versions(&workspace, Some("abc1234"));
        render(&workspace, &versions, environment).unwrap().into_iter().map(|f| (f.path, f.contents)).collect()
    }

    fn documents(text: &str) -> Vec<serde_yaml_ng::Value> {
        serde_yaml_ng::Deserializer::from_str(text)
            .map(|document| serde::Deserialize::deserialize(document).unwrap())
            .collect()
    }

    #[test]
    fn the_tree_has_a_base_and_the_environments_overlay() {
        let files = rendered("dev");
        let paths: Vec<&str> = files.keys().map(String::as_str).collect();
        assert_eq!(
            paths,
            [
                "base/kustomization.yaml",
                "base/users.yaml",
                "base/gateway.yaml",
                "base/broker.yaml",
                "overlays/dev/kustomization.yaml",
                "overlays/dev/namespace.yaml",
                "overlays/dev/postgres.yaml",
                "overlays/dev/secrets.env.example",
            ]
        );
        let prod = rendered("prod");
        assert!(!prod.contains_key("overlays/prod/postgres.yaml"), "production takes a managed database");
        assert!(prod["overlays/prod/namespace.yaml"].contains("name: shop-prod"));
        assert!(prod["overlays/prod/secrets.env.example"].contains("USERS_DATABASE_URL=postgres://USER:PASSWORD@"));
    }

    #[test]
    fn a_service_runs_its_versioned_image_with_probes_from_health() {
        let files = rendered("dev");
        let users = documents(&files["base/users.yaml"]);
        assert_eq!(users[0]["kind"], "Service");
        assert_eq!(users[0]["spec"]["ports"][0]["appProtocol"], "grpc");
        let pod = &users[1]["spec"]["template"]["spec"];
        let container = &pod["containers"][0];
        assert_eq!(container["image"], "shop/users:abc1234");
        assert_eq!(container["readinessProbe"]["grpc"]["port"].as_u64(), Some(50051));
        assert_eq!(container["readinessProbe"]["grpc"]["service"], "users.v1.Users");
        assert_eq!(container["livenessProbe"]["tcpSocket"]["port"], "grpc");
        assert_eq!(container["env"][0]["name"], "DATABASE_URL");
        assert_eq!(container["env"][0]["valueFrom"]["secretKeyRef"]["key"], "USERS_DATABASE_URL");
        assert_eq!(pod["securityContext"]["runAsNonRoot"].as_bool(), Some(true));
        assert_eq!(container["securityContext"]["readOnlyRootFilesystem"].as_bool(), Some(true));
        assert_eq!(users[1]["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"], "9090");
    }

    #[test]
    fn secrets_are_references_and_the_rest_of_env_a_config_map() {
        let files = rendered("dev");
        let gateway = documents(&files["base/gateway.yaml"]);
        let container = &gateway[1]["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(container["envFrom"][0]["configMapRef"]["name"], "gateway-env");
        assert_eq!(container["env"][0]["valueFrom"]["secretKeyRef"]["name"], "shop-secrets");
        assert_eq!(container["readinessProbe"]["periodSeconds"].as_u64(), Some(5));
        assert!(!files.values().any(|text| text.contains("dev-only")), "a secret's value is never written");
        let kustomization = &files["base/kustomization.yaml"];
        assert!(kustomization.contains("USERS_ADDR=http://users:50051"));
        let example = &files["overlays/dev/secrets.env.example"];
        assert!(example.contains("USERS_DATABASE_URL=postgres://postgres@postgres:5432/users\n"));
        assert!(example.contains("JWT_SECRET=change-me\n"));
    }

    #[test]
    fn a_ready_image_runs_as_it_is_named_once() {
        let files = rendered("dev");
        let broker = documents(&files["base/broker.yaml"]);
        assert_eq!(broker[1]["spec"]["replicas"].as_u64(), Some(1));
        let container = &broker[1]["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(container["image"], "nats:2");
        assert!(container["securityContext"].get("readOnlyRootFilesystem").is_none());
        assert_eq!(container["volumeMounts"][0]["mountPath"], "/data");
        assert_eq!(broker[1]["spec"]["template"]["spec"]["volumes"][0]["name"], "data");
        assert!(broker[1]["spec"]["template"]["spec"]["volumes"][0]["emptyDir"].is_mapping());
    }

    #[test]
    fn rendering_twice_gives_the_same_bytes() {
        assert_eq!(rendered("dev"), rendered("dev"));
    }

    #[test]
    fn a_port_name_kubernetes_refuses_is_an_error() {
        let mut workspace = workspace();
        workspace.services[0].ports.insert("Metrics_Port".into(), 9100);
        let versions: Versions = IndexMap::new();
        let error = render(&workspace, &versions, "dev").unwrap_err();
        assert!(error.to_string().contains("`Metrics_Port`"), "{error}");
        assert!(matches!(render(&workspace, &versions, "Prod"), Err(RenderError::EnvironmentName(_))));
    }

    #[test]
    fn a_secret_not_in_env_is_a_manifest_error() {
        let text = MANIFEST.replace(r#"secrets = ["JWT_SECRET"]"#, r#"secrets = ["JWT_SECRT"]"#);
        let error = crate::manifest::load(&std::env::temp_dir().join("workspace.toml"), &text).unwrap_err();
        let message = format!("{:?}", error.diagnostics);
        assert!(message.contains("lists secret `JWT_SECRT`, which is not in its `env`"), "{message}");
        assert!(message.contains("JWT_SECRET"), "the closest key is suggested: {message}");
    }
}
