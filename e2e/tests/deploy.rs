//! deploy/k8s says what workspace.toml says: the same images, ports, readiness checks,
//! environment and user, and secrets that the dev overlay's example provides. No cluster runs
//! here, so this is what keeps the manifests from drifting away from the platform `plat up`
//! runs and the e2e tests exercise.

use std::collections::BTreeSet;
use std::path::Path;

use platform_e2e::platform::repo_root;
use serde_yaml_ng::Value;

/// Every document of every YAML file in `dir` (not below it), but kustomization.yaml.
fn documents(dir: &Path) -> Vec<Value> {
    let mut documents = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(dir).unwrap().map(|entry| entry.unwrap().path()).collect();
    files.sort();
    for file in files.iter().filter(|f| f.extension().is_some_and(|e| e == "yaml")) {
        if file.file_name().unwrap() == "kustomization.yaml" {
            continue;
        }
        let text = std::fs::read_to_string(file).unwrap();
        for document in serde_yaml_ng::Deserializer::from_str(&text) {
            let value = serde::Deserialize::deserialize(document).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            documents.push(value);
        }
    }
    documents
}

fn find<'a>(documents: &'a [Value], kind: &str, name: &str) -> &'a Value {
    documents
        .iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} named {name} in deploy/k8s/base"))
}

fn yaml_strings(value: &Value) -> Vec<String> {
    value.as_sequence().into_iter().flatten().filter_map(|v| v.as_str().map(str::to_owned)).collect()
}

#[test]
fn the_kustomization_lists_every_manifest() {
    let base = repo_root().join("deploy/k8s/base");
    let kustomization: Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(base.join("kustomization.yaml")).unwrap()).unwrap();
    let listed: BTreeSet<String> = yaml_strings(&kustomization["resources"]).into_iter().collect();
    let present: BTreeSet<String> = std::fs::read_dir(&base)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".yaml") && name != "kustomization.yaml")
        .collect();
    assert_eq!(listed, present);
}

#[test]
fn every_service_runs_as_workspace_toml_says() {
    let root = repo_root();
    let manifest: toml::Table = std::fs::read_to_string(root.join("workspace.toml")).unwrap().parse().unwrap();
    let workspace = manifest["workspace"]["name"].as_str().unwrap();
    let env_example = std::fs::read_to_string(root.join(".env.example")).unwrap();
    let documents = documents(&root.join("deploy/k8s/base"));
    let mut secret_keys = BTreeSet::new();

    // Ready images (`image = "name:tag"` and no `build`: NATS) are infrastructure plat runs as
    // they are; deploy/k8s covers the services plat builds. Those are skipped, and so is an
    // environment variable that only points at one of them (order-service's NATS_URL): the
    // generated deploy tree that replaces deploy/k8s renders them itself.
    let ready: Vec<&str> = manifest["services"]
        .as_table()
        .unwrap()
        .iter()
        .filter(|(_, service)| {
            service.get("build").is_none()
                && service.get("image").and_then(|image| image.as_str()).is_some_and(|image| image.contains(':'))
        })
        .map(|(name, _)| name.as_str())
        .collect();
    let points_at_ready = |value: &toml::Value| {
        value.as_str().is_some_and(|value| ready.iter().any(|name| value.contains(&format!("://{name}:"))))
    };

    for (name, service) in manifest["services"].as_table().unwrap() {
        if ready.contains(&name.as_str()) {
            continue;
        }
        let deployment = find(&documents, "Deployment", name);
        let pod = &deployment["spec"]["template"]["spec"];
        let container = &pod["containers"][0];
        assert_eq!(container["image"].as_str(), Some(format!("{workspace}/{name}:dev").as_str()), "{name}: image");
        // The images run as 10001:10001 (FROM scratch, USER in the Dockerfile plat writes).
        assert_eq!(pod["securityContext"]["runAsUser"].as_i64(), Some(10001), "{name}: user");
        assert_eq!(pod["securityContext"]["runAsNonRoot"].as_bool(), Some(true), "{name}: non-root");

        // Every port of the manifest, by name, on the container and on the Service.
        let ports = service.get("ports").and_then(|p| p.as_table()).cloned().unwrap_or_default();
        let k8s_service = find(&documents, "Service", name);
        for (port_name, number) in &ports {
            let number = number.as_integer().unwrap();
            let on_container =
                container["ports"].as_sequence().unwrap().iter().any(|p| {
                    p["name"].as_str() == Some(port_name.as_str()) && p["containerPort"].as_i64() == Some(number)
                });
            assert!(on_container, "{name}: container port {port_name} = {number}");
            let on_service = k8s_service["spec"]["ports"]
                .as_sequence()
                .unwrap()
                .iter()
                .any(|p| p["name"].as_str() == Some(port_name.as_str()) && p["port"].as_i64() == Some(number));
            assert!(on_service, "{name}: Service port {port_name} = {number}");
        }

        // The readiness probe is the manifest's health check.
        let health = service["health"].as_table().unwrap();
        let readiness = &container["readinessProbe"];
        if let Some(grpc) = health.get("grpc") {
            assert_eq!(readiness["grpc"]["service"].as_str(), grpc.as_str(), "{name}: gRPC health service");
            assert_eq!(readiness["grpc"]["port"].as_i64(), ports["grpc"].as_integer(), "{name}: gRPC health port");
        } else if let Some(path) = health.get("http") {
            assert_eq!(readiness["httpGet"]["path"].as_str(), path.as_str(), "{name}: HTTP health path");
            assert_eq!(readiness["httpGet"]["port"].as_str(), Some("http"), "{name}: HTTP health port");
        } else {
            panic!("{name}: a health check deploy.rs does not know");
        }

        // The environment: what workspace.toml sets (same values, or a secret), DATABASE_URL
        // for a service with a database, and nothing .env.example does not document.
        let env = container["env"].as_sequence().cloned().unwrap_or_default();
        let variable = |key: &str| env.iter().find(|e| e["name"].as_str() == Some(key));
        for (key, value) in service.get("env").and_then(|e| e.as_table()).cloned().unwrap_or_default() {
            if points_at_ready(&value) {
                continue;
            }
            let set = variable(&key).unwrap_or_else(|| panic!("{name}: {key} is not set"));
            if set.get("value").is_some() {
                assert_eq!(set["value"].as_str(), value.as_str(), "{name}: {key}");
            }
        }
        if service.get("database").is_some() {
            assert!(variable("DATABASE_URL").is_some(), "{name}: DATABASE_URL");
        }
        for entry in &env {
            let key = entry["name"].as_str().unwrap();
            assert!(
                env_example.lines().any(|line| line.trim_start_matches("# ").starts_with(key)),
                "{name}: {key} is not in .env.example"
            );
            if let Some(secret) = entry["valueFrom"]["secretKeyRef"].as_mapping() {
                assert_eq!(secret[&Value::from("name")], "platform-secrets", "{name}: {key}'s secret");
                secret_keys.insert(secret[&Value::from("key")].as_str().unwrap().to_owned());
            }
        }
    }

    // The host name and image the services' database URLs name.
    let postgres = find(&documents, "StatefulSet", "postgres");
    assert_eq!(postgres["spec"]["template"]["spec"]["containers"][0]["image"], "plat/postgres:15");
    assert_eq!(find(&documents, "Service", "postgres")["spec"]["ports"][0]["port"].as_i64(), Some(5432));

    // The dev overlay's example provides exactly the secret keys the Deployments read.
    let example = std::fs::read_to_string(root.join("deploy/k8s/overlays/dev/secrets.env.example")).unwrap();
    let provided: BTreeSet<String> = example
        .lines()
        .filter(|line| !line.starts_with('#') && line.contains('='))
        .map(|line| line.split('=').next().unwrap().to_owned())
        .collect();
    assert_eq!(provided, secret_keys);
}
