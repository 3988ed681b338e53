//! The shape of `workspace.toml` as written: serde types that decode it and generate its JSON Schema.
//!
//! These types keep source spans (`Spanned`) where a later check may need to point at a value.
//! Nothing outside the manifest module sees them: `validate` turns them into the [`Workspace`]
//! model every command uses.
//!
//! [`Workspace`]: super::Workspace

use std::fmt;
use std::num::NonZeroU16;
use std::time::Duration;

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use toml::Spanned;

/// A `workspace.toml` file: the platform, its services and how to run them.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "plat workspace manifest")]
pub struct ManifestSpec {
    /// Settings that apply to the whole workspace.
    #[schemars(required)]
    pub workspace: Option<WorkspaceSpec>,
    /// The services of the platform, by name (a DNS label: lowercase letters, digits and `-`).
    #[serde(default)]
    pub services: IndexMap<String, ServiceSpec>,
    /// Repositories the services build against that are not services themselves (a shared
    /// crate, say), by name. `plat sync` clones them like services.
    #[serde(default)]
    pub libraries: IndexMap<String, LibrarySpec>,
}

/// One `[libraries.<name>]` table: where a library's code comes from and where it lives.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LibrarySpec {
    /// Git URL of the library's own repository; absent when it lives in this repository.
    #[schemars(with = "Option<String>")]
    pub repo: Option<Spanned<String>>,
    /// Branch, tag or commit to check out (default: the remote's default branch).
    #[schemars(with = "Option<String>")]
    pub rev: Option<Spanned<String>>,
    /// Where the library lives, relative to the workspace root (default: its name, so that
    /// services beside each other under `services/` reach it as `../../<name>`).
    #[schemars(with = "Option<String>")]
    pub path: Option<Spanned<String>>,
}

/// The `[workspace]` table.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WorkspaceSpec {
    /// Name of the platform; images are named `<name>/<service>`.
    #[schemars(with = "String", required)]
    pub name: Option<Spanned<String>>,
    /// Directory of the protobuf contracts, relative to the workspace root (default `proto`).
    #[schemars(with = "Option<String>")]
    pub proto: Option<Spanned<String>>,
    /// The cargo profile cargo services are compiled with (default `dev`: the quickest rebuild;
    /// `release` for an optimised image). A service's `build.cargo.profile` and `--release` win.
    #[schemars(with = "Option<String>")]
    pub profile: Option<Spanned<String>>,
    /// How long `plat migrate` and `plat up` wait before giving up (`--lock-timeout`,
    /// `--statement-timeout` and `--statement-lock-timeout` win for one run).
    pub migrate: Option<MigrateSpec>,
    /// The platform's end-to-end tests, which `plat test --e2e` runs against the running
    /// platform (`plat up` first).
    pub e2e: Option<Box<E2eSpec>>,
}

/// `[workspace.e2e]`: the command that runs the platform's end-to-end tests.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct E2eSpec {
    /// The command: a string runs through `sh -c`, a list runs as it is (program, arguments).
    #[schemars(with = "StringOrList")]
    pub command: Spanned<StringOrList>,
    /// Where it runs, relative to the workspace root (default: the workspace root).
    #[schemars(with = "Option<String>")]
    pub dir: Option<Spanned<String>>,
}

/// `[workspace.migrate]`: the limits on every wait of a migration run.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MigrateSpec {
    /// How long a run waits for another run's migration lock on the same database (default `60s`).
    pub lock_timeout: Option<HumanDuration>,
    /// How long one statement of a migration may run, PostgreSQL's `statement_timeout`
    /// (default `1h`; `0s` for no limit).
    pub statement_timeout: Option<HumanDuration>,
    /// How long one statement of a migration may wait for a lock another session holds on a
    /// table or row, PostgreSQL's `lock_timeout` (default `10s`; `0s` for no limit).
    pub statement_lock_timeout: Option<HumanDuration>,
}

/// One `[services.<name>]` table.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceSpec {
    /// Git URL of the service's own repository; absent when the service lives in this repository.
    #[schemars(with = "Option<String>")]
    pub repo: Option<Spanned<String>>,
    /// Branch, tag or commit to check out (default: the remote's default branch).
    #[schemars(with = "Option<String>")]
    pub rev: Option<Spanned<String>>,
    /// Where the service lives, relative to the workspace root (default `services/<name>`).
    #[schemars(with = "Option<String>")]
    pub path: Option<Spanned<String>>,
    /// How the service's image is built (default `"cargo"`, unless `image` names a ready image).
    #[schemars(with = "Option<BuildSpec>")]
    pub build: Option<Spanned<BuildSpec>>,
    /// Image name, instead of `<workspace>/<service>`; plat tags what it builds `:dev` unless
    /// the name has a tag of its own. With a tag or digest (`"plat/nats:2"`) and no `build`, a
    /// ready image: run as it is, never built, with no directory or repository.
    #[schemars(with = "Option<String>")]
    pub image: Option<Spanned<String>>,
    /// Ports the container listens on, by name: `{ grpc = 50051 }`.
    #[serde(default)]
    pub ports: IndexMap<String, NonZeroU16>,
    /// Ports published on the host, by port name: `{ http = 8080 }` makes the `http` port
    /// reachable on host port 8080.
    #[serde(default)]
    #[schemars(with = "IndexMap<String, NonZeroU16>")]
    pub publish: IndexMap<Spanned<String>, Spanned<NonZeroU16>>,
    /// Environment variables of the container.
    #[serde(default)]
    pub env: IndexMap<String, String>,
    /// Keys of `env` whose values are secrets: `plat deploy render` and `plat compose export`
    /// take them from a secret store (a Kubernetes Secret, the shell's environment) instead of
    /// writing the value here into their files. `plat up` uses the value as it is.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub secrets: Vec<Spanned<String>>,
    /// Files of `KEY=value` lines added to the environment, relative to the workspace root.
    #[schemars(with = "Option<StringOrList>")]
    pub env_file: Option<Spanned<StringOrList>>,
    /// Named volumes mounted in the container, by name: `{ data = "/data" }`. Kept across
    /// `plat down` and re-creations; `plat down --volumes` removes them.
    #[serde(default)]
    #[schemars(with = "IndexMap<String, String>")]
    pub volumes: IndexMap<Spanned<String>, Spanned<String>>,
    /// Services this one needs, each with the condition it waits for: `{ user-service = "healthy" }`.
    /// A list of names means `started` for each.
    #[serde(default)]
    pub depends_on: DependsOnSpec,
    /// How to tell that the service is ready.
    #[schemars(with = "Option<HealthSpec>")]
    pub health: Option<Spanned<HealthSpec>>,
    /// The service's own database.
    pub database: Option<DatabaseSpec>,
    /// The protobuf packages the service serves and uses.
    pub proto: Option<ProtoSpec>,
    /// The command `plat test` runs in the service's checkout instead of `cargo nextest run`
    /// (or `cargo test`): a string runs through `sh -c`, a list runs as it is.
    #[schemars(with = "Option<StringOrList>")]
    pub test: Option<Spanned<StringOrList>>,
}

/// A string, or a list of strings.
#[derive(Debug, Clone, JsonSchema)]
#[serde(untagged)]
pub enum StringOrList {
    /// One string.
    One(String),
    /// Several strings.
    Many(Vec<String>),
}

impl StringOrList {
    /// The strings as a list.
    pub fn into_vec(self) -> Vec<String> {
        match self {
            StringOrList::One(one) => vec![one],
            StringOrList::Many(many) => many,
        }
    }
}

// By hand rather than `#[serde(untagged)]`, whose error ("data did not match any variant")
// would not say what is expected.
impl<'de> Deserialize<'de> for StringOrList {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct StringOrListVisitor;

        impl<'de> Visitor<'de> for StringOrListVisitor {
            type Value = StringOrList;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string or a list of strings")
            }

            fn visit_str<E: de::Error>(self, value: &str) -> Result<StringOrList, E> {
                Ok(StringOrList::One(value.to_owned()))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<StringOrList, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<String>()? {
                    items.push(item);
                }
                Ok(StringOrList::Many(items))
            }
        }

        deserializer.deserialize_any(StringOrListVisitor)
    }
}

/// `build`: `"cargo"`, `"dockerfile"`, or a table with exactly one of `cargo`, `dockerfile`, `command`.
#[derive(Debug, JsonSchema)]
#[schemars(untagged)]
pub enum BuildSpec {
    /// `"cargo"` (compile on the host, package the binary) or `"dockerfile"` (the service's `Dockerfile`).
    Kind(BuildKind),
    /// The build described in full.
    Table(Box<BuildTable>),
}

/// The short forms of `build`.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BuildKind {
    /// Compile the service with cargo on the host, then package the binary into an image.
    Cargo,
    /// Build the service's `Dockerfile` with the service directory as context.
    Dockerfile,
}

/// The table form of `build`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BuildTable {
    /// Compile with cargo on the host: `{ cargo = { bin = "user-service" } }`.
    pub cargo: Option<CargoBuildSpec>,
    /// Dockerfile to build, relative to the service directory.
    pub dockerfile: Option<String>,
    /// Build context for `dockerfile`, relative to the service directory (default `.`).
    pub context: Option<String>,
    /// Build arguments for `dockerfile`.
    #[serde(default)]
    pub args: IndexMap<String, String>,
    /// Stage of a multi-stage `dockerfile` to build.
    pub target: Option<String>,
    /// A shell command, run in the service directory, that builds the image named by `image`.
    pub command: Option<String>,
}

/// Options of a cargo build.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CargoBuildSpec {
    /// Package to build (default: the service directory's package).
    pub package: Option<String>,
    /// Binary to package (default: the service name).
    pub bin: Option<String>,
    /// The cargo profile to compile with (default: the workspace's `profile`).
    #[schemars(with = "Option<String>")]
    pub profile: Option<Spanned<String>>,
}

impl<'de> Deserialize<'de> for BuildSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct BuildVisitor;

        impl<'de> Visitor<'de> for BuildVisitor {
            type Value = BuildSpec;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(r#""cargo", "dockerfile" or a table such as { dockerfile = "Dockerfile" }"#)
            }

            fn visit_str<E: de::Error>(self, value: &str) -> Result<BuildSpec, E> {
                BuildKind::deserialize(de::value::StrDeserializer::new(value)).map(BuildSpec::Kind)
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<BuildSpec, A::Error> {
                let table = BuildTable::deserialize(de::value::MapAccessDeserializer::new(map))?;
                let chosen = [table.cargo.is_some(), table.dockerfile.is_some(), table.command.is_some()];
                if chosen.iter().filter(|chosen| **chosen).count() != 1 {
                    return Err(de::Error::custom("`build` needs exactly one of `cargo`, `dockerfile` or `command`"));
                }
                let dockerfile_only = [
                    ("context", table.context.is_some()),
                    ("args", !table.args.is_empty()),
                    ("target", table.target.is_some()),
                ];
                if table.dockerfile.is_none()
                    && let Some((key, _)) = dockerfile_only.iter().find(|(_, set)| *set)
                {
                    return Err(de::Error::custom(format!("`{key}` only applies to a `dockerfile` build")));
                }
                Ok(BuildSpec::Table(Box::new(table)))
            }
        }

        deserializer.deserialize_any(BuildVisitor)
    }
}

pub use crate::graph::Condition;

/// `depends_on`: `{ name = "condition" }`, or `["name", ...]` for `started`.
#[derive(Debug, Default, JsonSchema)]
#[schemars(with = "DependsOnSchema")]
pub struct DependsOnSpec(pub Vec<(Spanned<String>, Condition)>);

/// The forms `depends_on` takes, for the JSON Schema only.
#[derive(JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)]
enum DependsOnSchema {
    /// Names of services, each waited for until `started`.
    Names(Vec<String>),
    /// Names of services with the condition to wait for.
    Conditions(IndexMap<String, Condition>),
}

impl<'de> Deserialize<'de> for DependsOnSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DependsOnVisitor;

        impl<'de> Visitor<'de> for DependsOnVisitor {
            type Value = DependsOnSpec;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(r#"a table such as { user-service = "healthy" } or a list of service names"#)
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<DependsOnSpec, A::Error> {
                let mut deps = Vec::new();
                while let Some(name) = seq.next_element::<Spanned<String>>()? {
                    deps.push((name, Condition::Started));
                }
                Ok(DependsOnSpec(deps))
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<DependsOnSpec, A::Error> {
                let mut deps = Vec::new();
                while let Some((name, condition)) = map.next_entry::<Spanned<String>, Condition>()? {
                    deps.push((name, condition));
                }
                Ok(DependsOnSpec(deps))
            }
        }

        deserializer.deserialize_any(DependsOnVisitor)
    }
}

/// `health`: exactly one of `grpc`, `http`, `tcp`, `cmd`, and optional timing.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HealthSpec {
    /// gRPC health check (`grpc.health.v1`) of this service name; `""` asks for the whole server.
    pub grpc: Option<String>,
    /// HTTP GET of this path; any 2xx answer is healthy.
    pub http: Option<String>,
    /// A TCP connection to this named port succeeds.
    pub tcp: Option<String>,
    /// A command run inside the container exits 0.
    pub cmd: Option<StringOrList>,
    /// Named port the `grpc` or `http` check connects to (default: the port named `grpc` or
    /// `http`, or the only port).
    pub port: Option<String>,
    /// Time between checks (default `2s`).
    pub interval: Option<HumanDuration>,
    /// Time one check may take (default `1s`).
    pub timeout: Option<HumanDuration>,
    /// Consecutive failures, after `start_period`, that make the service unhealthy (default 30).
    pub retries: Option<u32>,
    /// Grace period after start during which failures do not count (default `0s`).
    pub start_period: Option<HumanDuration>,
}

/// `database`: the service's own PostgreSQL database.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSpec {
    /// Database engine; only `postgres` for now.
    #[serde(default)]
    pub engine: DatabaseEngine,
    /// Database name (default: the service name with `-` replaced by `_`); at most 63 bytes,
    /// and not one of the server's own databases (`postgres`, `template0`, `template1`).
    #[schemars(with = "Option<String>")]
    pub name: Option<Spanned<String>>,
    /// Directory of SQL migrations, relative to the service directory (default `migrations`).
    #[schemars(with = "Option<String>")]
    pub migrations: Option<Spanned<String>>,
}

/// The database engines plat can run and migrate.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DatabaseEngine {
    /// PostgreSQL.
    #[default]
    Postgres,
}

/// `proto`: which protobuf packages the service implements and which it calls.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProtoSpec {
    /// Packages whose services this service implements, e.g. `["user.v1"]`.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub serves: Vec<Spanned<String>>,
    /// Packages whose services this service calls.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub uses: Vec<Spanned<String>>,
}

/// A duration written as `500ms`, `2s`, `1m` or `1m30s`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, JsonSchema)]
#[schemars(with = "String")]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    /// Parses `500ms`, `2s`, `1m30s`, `1h`: integers each followed by a unit.
    pub fn parse(text: &str) -> Result<Duration, String> {
        let invalid = || format!("invalid duration `{text}`: expected e.g. `500ms`, `2s`, `1m30s`");
        let mut total = Duration::ZERO;
        let mut rest = text.trim();
        if rest.is_empty() {
            return Err(invalid());
        }
        while !rest.is_empty() {
            let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(invalid)?;
            let number: u64 = rest[..digits].parse().map_err(|_| invalid())?;
            rest = &rest[digits..];
            let unit_len = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
            let unit = match &rest[..unit_len] {
                "ms" => Duration::from_millis(1),
                "s" => Duration::from_secs(1),
                "m" => Duration::from_secs(60),
                "h" => Duration::from_secs(3600),
                _ => return Err(invalid()),
            };
            total = unit
                .checked_mul(u32::try_from(number).map_err(|_| invalid())?)
                .and_then(|part| total.checked_add(part))
                .ok_or_else(invalid)?;
            rest = &rest[unit_len..];
        }
        Ok(total)
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        HumanDuration::parse(&text).map(HumanDuration).map_err(de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_in_every_unit() {
        assert_eq!(HumanDuration::parse("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(HumanDuration::parse("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(HumanDuration::parse("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(HumanDuration::parse("1h"), Ok(Duration::from_secs(3600)));
    }

    #[test]
    fn durations_reject_what_they_cannot_read() {
        for bad in ["", "2", "s", "2 s", "2sec", "-1s", "99999999999999999999s"] {
            assert!(HumanDuration::parse(bad).is_err(), "{bad:?} parsed");
        }
    }
}
