//! What a service's container is made from: its image, its environment (env files, then `env`,
//! then the database URL plat gives it), its ports, and the hash of all of it that `up` compares
//! to decide whether a running container is still right.

use sha2::{Digest, Sha256};

use super::UpError;
use crate::docker::{self, container::ContainerSpec};
use crate::manifest::{Service, Workspace};

/// The format of [`ContainerSpec::config_hash`]; bump it when what a container is made from
/// changes, so that every container is made again once.
const CONFIG_HASH_VERSION: &[u8] = b"plat container v3";

/// The container a service should have: its image, environment, ports and network alias.
pub(super) fn container_spec(
    workspace: &Workspace,
    service: &Service,
    image_id: &str,
) -> Result<ContainerSpec, UpError> {
    Ok(spec_with(service, own_environment(workspace, service)?, image_id))
}

/// [`container_spec`] with the service's own environment already read.
pub(super) fn spec_with(service: &Service, mut env: Vec<(String, String)>, image_id: &str) -> ContainerSpec {
    if let Some(database) = &service.database
        && !env.iter().any(|(key, _)| key == "DATABASE_URL")
    {
        let url =
            format!("postgres://postgres@{}:{}/{}", docker::label::POSTGRES, docker::POSTGRES_PORT, database.name);
        env.push(("DATABASE_URL".to_owned(), url));
    }
    let env: Vec<String> = env.into_iter().map(|(key, value)| format!("{key}={value}")).collect();
    // Sorted: listing the same ports in another order changes nothing.
    let mut ports: Vec<u16> = service.ports.values().copied().collect();
    ports.sort_unstable();
    let mut publish: Vec<(u16, u16)> =
        service.publish.iter().filter_map(|(name, host)| service.ports.get(name).map(|port| (*port, *host))).collect();
    publish.sort_unstable();
    let mut volumes: Vec<(String, String)> =
        service.volumes.iter().map(|(name, target)| (name.clone(), target.clone())).collect();
    volumes.sort_unstable();
    let config_hash = config_hash(image_id, &env, &ports, &publish, &volumes);
    ContainerSpec {
        service: service.name.clone(),
        image: image_id.to_owned(),
        env,
        ports,
        publish,
        volumes,
        config_hash,
    }
}

/// A hash of everything a container is made from, over a serialisation of plat's own (not a
/// Debug format, which may change between Rust versions): each part length-prefixed, so that
/// no two different configurations read the same.
fn config_hash(
    image_id: &str,
    env: &[String],
    ports: &[u16],
    publish: &[(u16, u16)],
    volumes: &[(String, String)],
) -> String {
    let mut hasher = Sha256::new();
    let mut part = |bytes: &[u8]| {
        hasher.update((bytes.len() as u64).to_be_bytes());
        hasher.update(bytes);
    };
    part(CONFIG_HASH_VERSION);
    part(image_id.as_bytes());
    let mut sorted_env: Vec<&String> = env.iter().collect();
    sorted_env.sort();
    part(&(sorted_env.len() as u64).to_be_bytes());
    for entry in sorted_env {
        part(entry.as_bytes());
    }
    part(&(ports.len() as u64).to_be_bytes());
    for port in ports {
        part(&port.to_be_bytes());
    }
    part(&(publish.len() as u64).to_be_bytes());
    for (container, host) in publish {
        part(&container.to_be_bytes());
        part(&host.to_be_bytes());
    }
    part(&(volumes.len() as u64).to_be_bytes());
    for (name, target) in volumes {
        part(name.as_bytes());
        part(target.as_bytes());
    }
    crate::text::hex(&hasher.finalize())
}

/// The environment the manifest gives a service: its `env_file`s, then `env` over them, as in
/// docker compose.
pub(super) fn own_environment(workspace: &Workspace, service: &Service) -> Result<Vec<(String, String)>, UpError> {
    let mut env: Vec<(String, String)> = Vec::new();
    let mut set = |key: String, value: String| match env.iter_mut().find(|(have, _)| *have == key) {
        Some(entry) => entry.1 = value,
        None => env.push((key, value)),
    };
    for file in &service.env_files {
        let path = file.under(&workspace.root);
        let failed = |reason: String| UpError::EnvFile { service: service.name.clone(), path: path.clone(), reason };
        let text = fs_err::read_to_string(&path).map_err(|error| failed(error.to_string()))?;
        for (key, value) in parse_env_file(&text).map_err(failed)? {
            set(key, value);
        }
    }
    for (key, value) in &service.env {
        set(key.clone(), value.clone());
    }
    Ok(env)
}

/// `KEY=value` lines as dotenvy reads them, which are docker compose's rules: comments, `export`,
/// single quotes (literal), double quotes (escapes, several lines), inline `# comments`, and
/// `${VAR}` in unquoted and double-quoted values replaced by an earlier line's value or plat's
/// own environment's.
fn parse_env_file(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut pairs = Vec::new();
    for item in dotenvy::from_read_iter(text.as_bytes()) {
        match item {
            Ok(pair) => pairs.push(pair),
            Err(error) => return Err(error.to_string()),
        }
    }
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_files_read_like_docker_compose() {
        let text = "# comment\n\nA=1\nexport B=two\nC=\"quoted value\"\nD='single'\nE=a=b\nF=value # a comment\n\
                    G=\"line one\nline two\"\nH=\"escaped\\nnewline\"\nI='no $expansion'\n";
        let pairs = parse_env_file(text).unwrap();
        let expected = [
            ("A", "1"),
            ("B", "two"),
            ("C", "quoted value"),
            ("D", "single"),
            ("E", "a=b"),
            ("F", "value"),
            ("G", "line one\nline two"),
            ("H", "escaped\nnewline"),
            ("I", "no $expansion"),
        ];
        assert_eq!(pairs, expected.map(|(k, v)| (k.to_owned(), v.to_owned())));
        let error = parse_env_file("GOOD=1\nnot a pair\n").unwrap_err();
        assert!(error.contains("line 2") || error.contains("not a pair"), "{error}");
    }

    #[test]
    fn the_config_hash_has_a_format_of_its_own() {
        let env = vec!["B=2".to_owned(), "A=1".to_owned()];
        let hash = config_hash("sha256:1", &env, &[50051], &[(8080, 18080)], &[]);
        // The same configuration listed in another order is the same container.
        assert_eq!(
            hash,
            config_hash("sha256:1", &["A=1".to_owned(), "B=2".to_owned()], &[50051], &[(8080, 18080)], &[])
        );
        // Pinned: a change to the serialisation must bump CONFIG_HASH_VERSION on purpose.
        assert_eq!(hash.len(), 64);
        assert_ne!(hash, config_hash("sha256:1", &env, &[50051], &[], &[]));
        assert_ne!(hash, config_hash("sha256:2", &env, &[50051], &[(8080, 18080)], &[]));
        let data = [("data".to_owned(), "/data".to_owned())];
        assert_ne!(hash, config_hash("sha256:1", &env, &[50051], &[(8080, 18080)], &data), "a volume is part of it");
        // Length prefixes: moving a byte from one entry to the next changes the hash.
        assert_ne!(
            config_hash("i", &["AB=1".to_owned(), "C=2".to_owned()], &[], &[], &[]),
            config_hash("i", &["A=B1".to_owned(), "C=2".to_owned()], &[], &[], &[])
        );
    }
}
