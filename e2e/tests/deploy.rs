//! deploy/k8s is `plat deploy render --tag dev` of workspace.toml, byte for byte, and what it
//! builds to validates offline: `kubectl kustomize` on the base and on every overlay (dev, and a
//! production one with managed databases), and `kubernetes-validate --strict` (PyPI's, with its
//! bundled schemas) on what kustomize makes. No cluster runs here; this keeps the tree true to
//! the platform `plat up` runs, and one a cluster would accept.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use platform_e2e::plat::{Plat, texts};
use platform_e2e::platform::repo_root;
use serde_yaml_ng::Value;

/// Every file under `dir`, by path relative to it, but the secrets.env a person writes.
fn files(dir: &Path) -> BTreeMap<String, String> {
    fn walk(base: &Path, dir: &Path, into: &mut BTreeMap<String, String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(base, &path, into);
            } else if path.file_name().unwrap() != "secrets.env" {
                let relative = path.strip_prefix(base).unwrap().to_string_lossy().into_owned();
                into.insert(relative, std::fs::read_to_string(&path).unwrap());
            }
        }
    }
    let mut found = BTreeMap::new();
    walk(dir, dir, &mut found);
    found
}

/// plat, on the repository's own workspace.toml.
fn plat() -> Plat {
    Plat::build(&repo_root(), env!("CARGO_TARGET_TMPDIR"))
}

/// Renders the tree for `environment` into `out`.
fn render(plat: &Plat, out: &Path, environment: &str) {
    plat.ok(&["deploy", "render", "--tag", "dev", "--env", environment, "--out", out.to_str().unwrap()]);
}

/// `kubectl kustomize dir`, which must succeed; its output.
fn kustomize(dir: &Path) -> String {
    let output = Command::new("kubectl").arg("kustomize").arg(dir).output().expect("kubectl runs (scripts/setup)");
    let (stdout, stderr) = texts(&output);
    assert!(output.status.success(), "kubectl kustomize {}: {stderr}", dir.display());
    stdout
}

/// kubernetes-validate: the repository's .tools/venv (scripts/setup), else PATH.
fn kubernetes_validate() -> PathBuf {
    let bundled = repo_root().join(".tools/venv/bin/kubernetes-validate");
    if bundled.exists() { bundled } else { PathBuf::from("kubernetes-validate") }
}

/// Checks `manifests` (a YAML stream) against the Kubernetes schemas, strictly: an unknown
/// field fails as a wrong type does.
fn validate(manifests: &str, dir: &Path) {
    let file = dir.join("built.yaml");
    std::fs::write(&file, manifests).unwrap();
    let output = Command::new(kubernetes_validate()).args(["--strict", "--quiet"]).arg(&file).output().unwrap();
    let (stdout, stderr) = texts(&output);
    assert!(output.status.success(), "kubernetes-validate:\n{stdout}{stderr}");
}

/// The overlay with a secrets.env, as a person fills it in from the example.
fn with_secrets(overlay: &Path) {
    std::fs::copy(overlay.join("secrets.env.example"), overlay.join("secrets.env")).unwrap();
}

fn documents(text: &str) -> Vec<Value> {
    serde_yaml_ng::Deserializer::from_str(text).map(|d| serde::Deserialize::deserialize(d).unwrap()).collect()
}

#[test]
fn the_committed_tree_is_what_plat_renders() {
    let plat = plat();
    let out = tempfile::tempdir().unwrap();
    render(&plat, out.path(), "dev");
    let committed = files(&repo_root().join("deploy/k8s"));
    let rendered = files(out.path());
    assert_eq!(
        committed.keys().collect::<Vec<_>>(),
        rendered.keys().collect::<Vec<_>>(),
        "deploy/k8s has other files than `plat deploy render --tag dev` writes: run it"
    );
    for (path, text) in &rendered {
        assert_eq!(
            &committed[path], text,
            "deploy/k8s/{path} differs from the render: run `plat deploy render --tag dev`"
        );
    }
}

#[test]
fn the_tree_builds_and_validates_offline() {
    let plat = plat();
    let out = tempfile::tempdir().unwrap();
    render(&plat, out.path(), "dev");
    render(&plat, out.path(), "prod");
    kustomize(&out.path().join("base"));
    for environment in ["dev", "prod"] {
        let overlay = out.path().join("overlays").join(environment);
        with_secrets(&overlay);
        validate(&kustomize(&overlay), out.path());
    }

    // The validator is no rubber stamp: a field of the wrong type fails it.
    let dev = kustomize(&out.path().join("overlays/dev"));
    let broken = dev.replacen("replicas: 2", "replicas: two", 1);
    std::fs::write(out.path().join("broken.yaml"), &broken).unwrap();
    let output =
        Command::new(kubernetes_validate()).arg("--quiet").arg(out.path().join("broken.yaml")).output().unwrap();
    assert!(!output.status.success(), "kubernetes-validate accepted replicas: two");
}

#[test]
fn the_dev_overlay_runs_what_workspace_toml_says() {
    let root = repo_root();
    let tree = tempfile::tempdir().unwrap();
    render(&plat(), tree.path(), "dev");
    let overlay = tree.path().join("overlays/dev");
    with_secrets(&overlay);
    let built = documents(&kustomize(&overlay));
    let find = |kind: &str, name: &str| -> &Value {
        built
            .iter()
            .find(|d| {
                d["kind"] == kind
                    && d["metadata"]["name"].as_str().is_some_and(|n| n == name || n.starts_with(&format!("{name}-")))
            })
            .unwrap_or_else(|| panic!("no {kind} named {name}"))
    };
    let manifest: toml::Table = std::fs::read_to_string(root.join("workspace.toml")).unwrap().parse().unwrap();
    let workspace = manifest["workspace"]["name"].as_str().unwrap();
    let env_example = std::fs::read_to_string(root.join(".env.example")).unwrap();

    for (name, service) in manifest["services"].as_table().unwrap() {
        let deployment = find("Deployment", name);
        assert_eq!(deployment["metadata"]["namespace"], workspace, "{name}: namespace");
        let pod = &deployment["spec"]["template"]["spec"];
        let container = &pod["containers"][0];
        // A ready image (`image` and no `build`: NATS) runs as written; plat's builds are tagged.
        let image = match (service.get("image").and_then(|i| i.as_str()), service.get("build")) {
            (Some(ready), None) if ready.contains(':') || ready.contains('@') => ready.to_owned(),
            _ => format!("{workspace}/{name}:dev"),
        };
        assert_eq!(container["image"].as_str(), Some(image.as_str()), "{name}: image");
        assert_eq!(pod["securityContext"]["runAsUser"].as_i64(), Some(10001), "{name}: the images' user");
        assert_eq!(pod["securityContext"]["runAsNonRoot"].as_bool(), Some(true), "{name}: non-root");

        let ports = service.get("ports").and_then(|p| p.as_table()).cloned().unwrap_or_default();
        let k8s_service = find("Service", name);
        for (port_name, number) in &ports {
            let number = number.as_integer().unwrap();
            let named = |list: &Value, key: &str| {
                list.as_sequence()
                    .unwrap()
                    .iter()
                    .any(|p| p["name"].as_str() == Some(port_name) && p[key].as_i64() == Some(number))
            };
            assert!(named(&container["ports"], "containerPort"), "{name}: container port {port_name} = {number}");
            assert!(named(&k8s_service["spec"]["ports"], "port"), "{name}: Service port {port_name} = {number}");
        }

        let health = service["health"].as_table().unwrap();
        let readiness = &container["readinessProbe"];
        if let Some(grpc) = health.get("grpc") {
            assert_eq!(readiness["grpc"]["service"].as_str(), grpc.as_str(), "{name}: gRPC health service");
            assert_eq!(readiness["grpc"]["port"].as_i64(), ports["grpc"].as_integer(), "{name}: gRPC health port");
        } else if let Some(path) = health.get("http") {
            assert_eq!(readiness["httpGet"]["path"].as_str(), path.as_str(), "{name}: HTTP health path");
        } else {
            panic!("{name}: a health check this test does not know");
        }

        // The environment: `env` through the ConfigMap (same values), `secrets` and
        // DATABASE_URL from the Secret, and nothing .env.example does not document.
        let secrets: Vec<&str> = service
            .get("secrets")
            .and_then(|s| s.as_array())
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str())
            .collect();
        let config = container["envFrom"][0]["configMapRef"]["name"].as_str().map(|map| find("ConfigMap", map));
        let from_secret = |key: &str| {
            container["env"].as_sequence().into_iter().flatten().find(|e| e["name"].as_str() == Some(key)).map(|e| {
                assert!(
                    e["valueFrom"]["secretKeyRef"]["name"]
                        .as_str()
                        .unwrap()
                        .starts_with(&format!("{workspace}-secrets-"))
                );
                e["valueFrom"]["secretKeyRef"]["key"].as_str().unwrap().to_owned()
            })
        };
        for (key, value) in service.get("env").and_then(|e| e.as_table()).cloned().unwrap_or_default() {
            assert!(
                env_example.lines().any(|line| line.trim_start_matches("# ").starts_with(&key)),
                "{name}: {key} is not in .env.example"
            );
            if secrets.contains(&key.as_str()) {
                assert_eq!(from_secret(&key).as_deref(), Some(key.as_str()), "{name}: {key} comes from the Secret");
                assert!(
                    config.is_none_or(|c| c["data"].get(&key).is_none()),
                    "{name}: {key}'s value is not in a ConfigMap"
                );
            } else {
                assert_eq!(config.unwrap()["data"][&key].as_str(), value.as_str(), "{name}: {key}");
            }
        }
        if service.get("database").is_some() {
            let key = from_secret("DATABASE_URL").unwrap_or_else(|| panic!("{name}: DATABASE_URL"));
            let secret = find("Secret", &format!("{workspace}-secrets"));
            assert!(secret["data"].get(&key).is_some(), "{name}: the dev Secret has {key}");
        }
    }

    // The host name and image the services' database URLs name.
    let postgres = find("StatefulSet", "postgres");
    assert_eq!(postgres["spec"]["template"]["spec"]["containers"][0]["image"], "plat/postgres:15");
    assert_eq!(find("Service", "postgres")["spec"]["ports"][0]["port"].as_i64(), Some(5432));
}
