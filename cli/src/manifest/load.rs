//! Decoding `workspace.toml` into the model, collecting every problem on the way.
//!
//! Two passes. Decoding keeps going after an error: each key of each service is decoded on its
//! own, so one typo does not hide the next. Validation then checks what types cannot: names,
//! paths, references between services, cycles, port clashes.

use std::collections::HashMap;
use std::ops::Range;
use std::path::Path;

use indexmap::IndexMap;
use serde::de::{DeserializeOwned, IntoDeserializer};
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::diagnostic::expected_names;
use super::spec::{
    BuildKind, BuildSpec, DependsOnSpec, HealthSpec, LibrarySpec, ManifestSpec, ServiceSpec, StringOrList,
    WorkspaceSpec,
};
use super::{
    Build, CheckoutKind, Database, Diagnostic, Health, HealthCheck, Library, ManifestError, Proto, RelPath, Service,
    Source, Workspace,
};
use crate::graph::{Edge, ServiceGraph, ServiceId};

/// Decodes and validates the manifest text read from `path`.
pub fn load(path: &Path, text: &str) -> Result<Workspace, ManifestError> {
    let mut diagnostics = Vec::new();
    let workspace = decode(text, &mut diagnostics).and_then(|decoded| {
        let root = path.parent().filter(|parent| !parent.as_os_str().is_empty()).unwrap_or(Path::new("."));
        validate(decoded, root, path, &mut diagnostics)
    });
    match workspace {
        Some(workspace) if diagnostics.is_empty() => Ok(workspace),
        _ => {
            diagnostics.sort_by_key(|diagnostic| diagnostic.span.as_ref().map_or(0, |span| span.start));
            Err(ManifestError { path: path.to_path_buf(), source: text.to_owned(), diagnostics })
        }
    }
}

/// What decoding produced: the typed spec, with each service name's place.
struct Decoded {
    workspace: WorkspaceDecode,
    /// Each service's name, what decoded of it, and the keys dropped because they were wrong.
    services: Vec<(Spanned<String>, ServiceSpec, Vec<String>)>,
    /// Each library's name and what decoded of it.
    libraries: Vec<(Spanned<String>, LibrarySpec)>,
}

enum WorkspaceDecode {
    Missing,
    /// Present but not a table (already reported).
    Invalid,
    Present(WorkspaceSpec),
}

fn decode(text: &str, diagnostics: &mut Vec<Diagnostic>) -> Option<Decoded> {
    let root = match DeTable::parse(text) {
        Ok(root) => root,
        Err(error) => {
            diagnostics.push(Diagnostic::new(error.message().trim_end().to_owned(), error.span()));
            return None;
        }
    };
    let root_span = root.span();
    let mut root = root.into_inner();
    let services_value = root.remove_entry("services");
    let libraries_value = root.remove_entry("libraries");

    let workspace_value = root.remove_entry("workspace");
    // Decoding the rest of the top level only finds unknown keys: `workspace` and `services` are
    // decoded on their own, so a problem in one does not hide the problems of the other.
    decode_table::<ManifestSpec>("the manifest", Spanned::new(root_span, DeValue::Table(root)), diagnostics);
    let workspace = match workspace_value {
        None => WorkspaceDecode::Missing,
        Some((_, value)) => match decode_table::<WorkspaceSpec>("`workspace`", value, diagnostics) {
            Some((spec, _)) => WorkspaceDecode::Present(spec),
            None => WorkspaceDecode::Invalid,
        },
    };

    let services = decode_named::<ServiceSpec>(services_value, CheckoutKind::Service, diagnostics);
    let libraries = decode_named::<LibrarySpec>(libraries_value, CheckoutKind::Library, diagnostics)
        .into_iter()
        .map(|(name, spec, _)| (name, spec))
        .collect();
    Some(Decoded { workspace, services, libraries })
}

/// Decodes `[services]` or `[libraries]`: a table of tables by name, each decoded on its own.
fn decode_named<T: DeserializeOwned + Default>(
    entry: Option<(Spanned<std::borrow::Cow<'_, str>>, Spanned<DeValue<'_>>)>,
    kind: CheckoutKind,
    diagnostics: &mut Vec<Diagnostic>,
) -> Vec<(Spanned<String>, T, Vec<String>)> {
    let mut decoded = Vec::new();
    let Some((key, value)) = entry else { return decoded };
    let span = value.span();
    let plural = kind.plural();
    match value.into_inner() {
        DeValue::Table(table) => {
            for (name, item) in table {
                let name = Spanned::new(name.span(), name.into_inner().into_owned());
                let what = format!("{kind} `{}`", name.get_ref());
                if let Some((spec, dropped)) = decode_table::<T>(&what, item, diagnostics) {
                    decoded.push((name, spec, dropped));
                }
            }
        }
        other => diagnostics.push(
            Diagnostic::new(format!("`{plural}` must be a table, found {}", other.type_str()), Some(span))
                .note(key.span(), "defined here")
                .help(format!("declare each {kind} as `[{plural}.<name>]`")),
        ),
    }
    decoded
}

/// Decodes a table into `T` key by key, so that every bad key is reported, then from the good
/// keys alone: validation still sees the rest of the table and finds the problems there too.
///
/// Decoding a single key works because every field of `T` is optional. Returns the value and the
/// names of the keys that were dropped; `None` when the value is not a table at all.
fn decode_table<T: DeserializeOwned + Default>(
    what: &str,
    value: Spanned<DeValue<'_>>,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<(T, Vec<String>)> {
    let span = value.span();
    let DeValue::Table(table) = value.into_inner() else {
        diagnostics.push(Diagnostic::new(format!("{what} must be a table"), Some(span)));
        return None;
    };
    let mut good = DeTable::new();
    let mut dropped = Vec::new();
    for (key, item) in table {
        let mut single = DeTable::new();
        single.insert(key.clone(), item.clone());
        let single = Spanned::new(key.span().start..item.span().end, DeValue::Table(single));
        match T::deserialize(single.into_deserializer()) {
            Ok(_) => {
                good.insert(key, item);
            }
            Err(error) => {
                diagnostics.push(serde_diagnostic(&error, key.span()));
                dropped.push(key.get_ref().to_string());
            }
        }
    }
    match T::deserialize(Spanned::new(span.clone(), DeValue::Table(good)).into_deserializer()) {
        Ok(decoded) => Some((decoded, dropped)),
        Err(error) => {
            diagnostics.push(serde_diagnostic(&error, span));
            None
        }
    }
}

/// A decoding error as a diagnostic, with "did you mean" for misspelt keys and values.
fn serde_diagnostic(error: &toml::de::Error, fallback: Range<usize>) -> Diagnostic {
    let message = error.message().trim_end().to_owned();
    let span = error.span().unwrap_or(fallback);
    let candidates = if message.starts_with("unknown field") || message.starts_with("unknown variant") {
        expected_names(&message)
    } else {
        Vec::new()
    };
    let wrong = message.split('`').nth(1).unwrap_or_default().to_owned();
    let mut diagnostic = Diagnostic::new(message.replace("unknown field", "unknown key"), Some(span));
    if !candidates.is_empty() {
        diagnostic = diagnostic.suggest(&wrong, &candidates);
    }
    diagnostic
}

/// Everything validation needs to remember about one service while it checks the others.
struct Checked {
    service: Service,
    name_span: Range<usize>,
    /// Each published host port with the place of its value.
    published: Vec<(u16, Range<usize>)>,
    depends_on: Vec<(Spanned<String>, super::Condition)>,
}

fn validate(
    decoded: Decoded,
    root: &Path,
    manifest_path: &Path,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<Workspace> {
    let missing = || {
        Diagnostic::new("missing `[workspace]` table with a `name`", None)
            .help("start the file with:\n[workspace]\nname = \"platform\"")
    };
    let workspace = match decoded.workspace {
        WorkspaceDecode::Present(workspace) => Some(workspace),
        WorkspaceDecode::Missing => {
            diagnostics.push(missing());
            None
        }
        WorkspaceDecode::Invalid => None,
    };
    let name = workspace.as_ref().and_then(|workspace| workspace.name.as_ref());
    match name {
        Some(name) => {
            if let Err(reason) = check_dns_label(name.get_ref()) {
                diagnostics.push(
                    Diagnostic::new(
                        format!("invalid workspace name `{}`: {reason}", name.get_ref()),
                        Some(name.span()),
                    )
                    .help("the workspace name prefixes image names, so it follows the same rule as service names"),
                );
            }
        }
        None if workspace.is_some() => diagnostics.push(missing()),
        None => {}
    }
    let name = name.map_or_else(String::new, |name| name.get_ref().clone());
    let profile = workspace
        .as_ref()
        .and_then(|workspace| workspace.profile.as_ref())
        .and_then(|profile| checked_profile(profile, diagnostics))
        .unwrap_or_else(|| super::DEFAULT_PROFILE.to_owned());
    let migrate = {
        let spec = workspace.as_ref().and_then(|workspace| workspace.migrate.as_ref());
        let defaults = super::MigrateSettings::default();
        let pick = |value: Option<&super::spec::HumanDuration>, default| value.map_or(default, |value| value.0);
        super::MigrateSettings {
            lock_timeout: pick(spec.and_then(|spec| spec.lock_timeout.as_ref()), defaults.lock_timeout),
            statement_timeout: pick(spec.and_then(|spec| spec.statement_timeout.as_ref()), defaults.statement_timeout),
            statement_lock_timeout: pick(
                spec.and_then(|spec| spec.statement_lock_timeout.as_ref()),
                defaults.statement_lock_timeout,
            ),
        }
    };
    let proto_dir = match workspace.as_ref().and_then(|workspace| workspace.proto.as_ref()) {
        Some(proto) => checked_path(proto, "proto", Base::Workspace, diagnostics),
        None => RelPath::new("proto").ok(),
    };

    let e2e = workspace.as_ref().and_then(|workspace| workspace.e2e.as_ref()).and_then(|e2e| {
        let command = user_command(&e2e.command, "[workspace.e2e] command", diagnostics)?;
        let dir = match &e2e.dir {
            Some(dir) => checked_path(dir, "[workspace.e2e] dir", Base::Workspace, diagnostics)?,
            None => RelPath::new(".").ok()?,
        };
        Some(super::E2e { command, dir })
    });

    let mut checked = Vec::new();
    for (service_name, spec, dropped) in decoded.services {
        checked.push(check_service(root, &name, service_name, spec, &dropped, diagnostics));
    }
    let libraries: Vec<(Library, Range<usize>)> = decoded
        .libraries
        .into_iter()
        .map(|(library_name, spec)| check_library(root, library_name, spec, diagnostics))
        .collect();

    let places: Vec<Place<'_>> = libraries
        .iter()
        .map(|(library, span)| Place {
            kind: CheckoutKind::Library,
            name: &library.name,
            path: &library.path,
            is_repo: matches!(library.source, Source::Git { .. }),
            span,
        })
        // A ready image has no directory to share or clash with.
        .chain(checked.iter().filter(|checked| checked.service.has_code()).map(|checked| Place {
            kind: CheckoutKind::Service,
            name: &checked.service.name,
            path: &checked.service.path,
            is_repo: matches!(checked.service.source, Source::Git { .. }),
            span: &checked.name_span,
        }))
        .collect();
    check_unique_names(&places, diagnostics);
    check_unique_paths(&places, diagnostics);
    drop(places);
    check_published_ports(&checked, diagnostics);
    check_unique_databases(&checked, diagnostics);
    let graph = check_dependencies(&mut checked, diagnostics);

    let (proto_dir, graph) = (proto_dir?, graph?);
    if !diagnostics.is_empty() {
        return None;
    }
    Some(Workspace {
        root: root.to_path_buf(),
        manifest_path: manifest_path.to_path_buf(),
        name,
        proto_dir,
        profile,
        migrate,
        services: checked.into_iter().map(|checked| checked.service).collect(),
        libraries: libraries.into_iter().map(|(library, _)| library).collect(),
        graph,
        e2e,
    })
}

/// Checks one service on its own, reporting what is wrong and returning what can be made of it,
/// so that the checks across services still run.
fn check_service(
    root: &Path,
    workspace: &str,
    name: Spanned<String>,
    spec: ServiceSpec,
    dropped: &[String],
    diagnostics: &mut Vec<Diagnostic>,
) -> Checked {
    // Checks that refer to `ports` would only repeat a problem already reported if it was dropped.
    let ports_known = !dropped.iter().any(|key| key == "ports");
    let name_span = name.span();
    let name = name.into_inner();
    if let Err(reason) = check_dns_label(&name) {
        diagnostics.push(
            Diagnostic::new(format!("invalid service name `{name}`: {reason}"), Some(name_span.clone()))
                .help("service names are host names on the platform's network: lowercase letters, digits and `-`, starting with a letter, at most 63 characters"),
        );
    } else if name == super::DATABASE_HOST {
        // `<workspace>-postgres` and the host name `postgres` belong to the database container.
        diagnostics.push(
            Diagnostic::new(
                format!("service name `{name}` is reserved for the workspace's database container"),
                Some(name_span.clone()),
            )
            .help("services reach the database as `postgres`; name this service something else, e.g. `postgres-admin`"),
        );
    }

    // A ready image: a tag or digest, and nothing to build it from. Its keys about code have
    // nothing to apply to, so each is refused rather than ignored.
    let image = spec.image.as_ref().and_then(|image| checked_image(&name, image, diagnostics));
    let ready = spec.build.is_none() && image.as_deref().is_some_and(super::has_tag_or_digest);
    if ready {
        let image = image.as_deref().unwrap_or_default();
        let code_keys = [
            ("repo", spec.repo.as_ref().map(Spanned::span), "there is no code to clone"),
            ("rev", spec.rev.as_ref().map(Spanned::span), "there is no code to check out"),
            ("path", spec.path.as_ref().map(Spanned::span), "it needs no directory"),
            (
                "database",
                spec.database.as_ref().map(|_| name_span.clone()),
                "its migrations would live in a directory it does not have; give it a `DATABASE_URL` in `env` instead",
            ),
            (
                "proto",
                spec.proto.as_ref().map(|_| name_span.clone()),
                "plat generates protobuf code into a service's directory, which it does not have",
            ),
        ];
        for (key, span, why) in code_keys {
            if let Some(span) = span {
                diagnostics.push(
                    Diagnostic::new(
                        format!("service `{name}` runs the ready image `{image}`, so `{key}` does not apply: {why}"),
                        Some(span),
                    )
                    .help(format!(
                        "remove `{key}`, or add a `build` if plat should build `{image}` from the service's code"
                    )),
                );
            }
        }
    }
    let source = if ready {
        Source::Local
    } else {
        check_source(root, CheckoutKind::Service, &name, spec.repo, spec.rev, diagnostics)
    };

    let default_path =
        || RelPath::new(&format!("services/{name}")).unwrap_or_else(|_| RelPath::new(".").expect("relative"));
    let path = match &spec.path {
        Some(path) => checked_path(path, "path", Base::Workspace, diagnostics).unwrap_or_else(default_path),
        None => default_path(),
    };

    let build_span = spec.build.as_ref().map_or(name_span.clone(), Spanned::span);
    let build = match spec.build.map(Spanned::into_inner) {
        None if ready => Build::Ready,
        None | Some(BuildSpec::Kind(BuildKind::Cargo)) => {
            Build::Cargo { package: None, bin: name.clone(), profile: None }
        }
        Some(BuildSpec::Kind(BuildKind::Dockerfile)) => Build::Dockerfile {
            file: RelPath::new("Dockerfile").expect("relative"),
            context: RelPath::new(".").expect("relative"),
            args: IndexMap::new(),
            target: None,
        },
        Some(BuildSpec::Table(table)) => {
            if let Some(cargo) = table.cargo {
                let profile = cargo.profile.and_then(|profile| checked_profile(&profile, diagnostics));
                Build::Cargo { package: cargo.package, bin: cargo.bin.unwrap_or_else(|| name.clone()), profile }
            } else if let Some(command) = table.command {
                Build::Command(command)
            } else {
                let file = table.dockerfile.unwrap_or_default();
                let context = table.context.unwrap_or_else(|| ".".to_owned());
                let file = relative(&file, "build.dockerfile", Base::Service, build_span.clone(), diagnostics);
                let context = relative(&context, "build.context", Base::Service, build_span.clone(), diagnostics);
                Build::Dockerfile {
                    file: file.unwrap_or_else(|| RelPath::new("Dockerfile").expect("relative")),
                    context: context.unwrap_or_else(|| RelPath::new(".").expect("relative")),
                    args: table.args,
                    target: table.target,
                }
            }
        }
    };

    let ports: IndexMap<String, u16> = spec.ports.into_iter().map(|(port, number)| (port, number.get())).collect();
    let mut publish = IndexMap::new();
    let mut published = Vec::new();
    for (port, host) in spec.publish {
        published.push((host.get_ref().get(), host.span()));
        if ports_known && !ports.contains_key(port.get_ref()) {
            let known: Vec<&str> = ports.keys().map(String::as_str).collect();
            diagnostics.push(
                Diagnostic::new(
                    format!("service `{name}` publishes port `{}`, which is not in its `ports`", port.get_ref()),
                    Some(port.span()),
                )
                .suggest(port.get_ref(), &known)
                .or_help(format!("declare it first: ports = {{ {} = <container port> }}", port.get_ref())),
            );
        }
        publish.insert(port, host);
    }

    // A list of files shares one span: the list's.
    let env_files = match spec.env_file {
        Some(files) => {
            let span = files.span();
            files
                .into_inner()
                .into_vec()
                .into_iter()
                .filter_map(|file| relative(&file, "env_file", Base::Workspace, span.clone(), diagnostics))
                .collect()
        }
        None => Vec::new(),
    };

    // A secret names a variable of `env`: one it does not name would be silently absent.
    let mut secrets = Vec::new();
    for key in spec.secrets {
        if spec.env.contains_key(key.get_ref()) {
            secrets.push(key.into_inner());
        } else {
            let known: Vec<&str> = spec.env.keys().map(String::as_str).collect();
            diagnostics.push(
                Diagnostic::new(
                    format!("service `{name}` lists secret `{}`, which is not in its `env`", key.get_ref()),
                    Some(key.span()),
                )
                .suggest(key.get_ref(), &known)
                .or_help(format!(
                    "add it to `env` (the value `plat up` uses): env = {{ {} = \"...\" }}",
                    key.get_ref()
                )),
            );
        }
    }

    let mut volumes = IndexMap::new();
    for (volume, target) in spec.volumes {
        if let Err(reason) = check_volume_name(volume.get_ref()) {
            diagnostics.push(
                Diagnostic::new(format!("invalid volume name `{}`: {reason}", volume.get_ref()), Some(volume.span()))
                    .help("volume names are letters, digits, `_`, `.` and `-`, starting with a letter or digit"),
            );
            continue;
        }
        let path = target.get_ref();
        if !path.starts_with('/') || path == "/" || path.contains(':') || path.contains(',') {
            diagnostics.push(
                Diagnostic::new(
                    format!("volume `{}` of `{name}` is mounted at `{path}`, which is not a directory a volume can mount on", volume.get_ref()),
                    Some(target.span()),
                )
                .help("give an absolute path in the container other than `/`, without `:` or `,`: `{ data = \"/data\" }`"),
            );
            continue;
        }
        if let Some((other, _)) = volumes.iter().find(|(_, mounted)| *mounted == path) {
            diagnostics.push(
                Diagnostic::new(
                    format!("volumes `{other}` and `{}` of `{name}` are both mounted at `{path}`", volume.get_ref()),
                    Some(target.span()),
                )
                .help("mount each volume in a directory of its own"),
            );
            continue;
        }
        volumes.insert(volume.into_inner(), target.into_inner());
    }

    let health =
        spec.health.filter(|_| ports_known).and_then(|health| check_health(&name, health, &ports, diagnostics));

    let database = spec.database.and_then(|database| {
        let migrations = match &database.migrations {
            Some(dir) => checked_path(dir, "database.migrations", Base::Service, diagnostics)?,
            None => RelPath::new("migrations").expect("relative"),
        };
        let database_name = match database.name {
            Some(given) => {
                if let Err(reason) = check_database_name(given.get_ref()) {
                    diagnostics.push(
                        Diagnostic::new(
                            format!("invalid database name `{}` for `{name}`: {reason}", given.get_ref()),
                            Some(given.span()),
                        )
                        .help(format!(
                            "name the service's own database, e.g. `name = \"{}\"`, or remove `name` for that default",
                            name.replace('-', "_")
                        )),
                    );
                    return None;
                }
                given.into_inner()
            }
            None => name.replace('-', "_"),
        };
        Some(Database { engine: database.engine, name: database_name, migrations })
    });

    let proto = spec.proto.map(|proto| {
        let mut packages = |list: Vec<Spanned<String>>| -> Vec<String> {
            list.into_iter()
                .filter(|package| {
                    let valid = is_proto_package(package.get_ref());
                    if !valid {
                        diagnostics.push(
                            Diagnostic::new(
                                format!("invalid protobuf package `{}`", package.get_ref()),
                                Some(package.span()),
                            )
                            .help("packages are dot-separated lowercase identifiers, like `user.v1`"),
                        );
                    }
                    valid
                })
                .map(Spanned::into_inner)
                .collect()
        };
        Proto { serves: packages(proto.serves), uses: packages(proto.uses) }
    });

    let test = spec.test.as_ref().and_then(|test| user_command(test, "test", diagnostics));

    let DependsOnSpec(depends_on) = spec.depends_on;
    Checked {
        service: Service {
            image: image.unwrap_or_else(|| format!("{workspace}/{name}")),
            name,
            source,
            path,
            build,
            ports,
            publish: publish.into_iter().map(|(port, host)| (port.into_inner(), host.into_inner().get())).collect(),
            env: spec.env,
            secrets,
            volumes,
            env_files,
            depends_on: IndexMap::new(),
            health,
            database,
            proto: proto.unwrap_or_default(),
            test,
        },
        name_span,
        published,
        depends_on,
    }
}

/// A command as written (a string for `sh -c`, or a list run as it is); an empty one is refused.
fn user_command(
    command: &Spanned<StringOrList>,
    key: &str,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<super::UserCommand> {
    let parsed = match command.get_ref().clone() {
        StringOrList::One(text) if !text.trim().is_empty() => Some(super::UserCommand::Shell(text)),
        StringOrList::Many(words) if words.first().is_some_and(|program| !program.trim().is_empty()) => {
            Some(super::UserCommand::Argv(words))
        }
        _ => None,
    };
    if parsed.is_none() {
        diagnostics.push(
            Diagnostic::new(format!("`{key}` is empty"), Some(command.span()))
                .help("give the command, e.g. `\"cargo test --all-targets\"` or `[\"make\", \"test\"]`"),
        );
    }
    parsed
}

/// Checks one `[libraries.<name>]` table; returns the library and the place of its name.
fn check_library(
    root: &Path,
    name: Spanned<String>,
    spec: LibrarySpec,
    diagnostics: &mut Vec<Diagnostic>,
) -> (Library, Range<usize>) {
    let name_span = name.span();
    let name = name.into_inner();
    if let Err(reason) = check_library_name(&name) {
        diagnostics.push(
            Diagnostic::new(format!("invalid library name `{name}`: {reason}"), Some(name_span.clone()))
                .help("library names are lowercase letters, digits, `-` and `_`, starting with a letter"),
        );
    }
    let source = check_source(root, CheckoutKind::Library, &name, spec.repo, spec.rev, diagnostics);
    let default_path = || RelPath::new(&name).unwrap_or_else(|_| RelPath::new(".").expect("relative"));
    let path = match &spec.path {
        Some(path) => checked_path(path, "path", Base::Workspace, diagnostics).unwrap_or_else(default_path),
        None => default_path(),
    };
    (Library { name, source, path }, name_span)
}

/// Where a service's or library's code comes from: `repo` and `rev`, checked.
fn check_source(
    root: &Path,
    kind: CheckoutKind,
    name: &str,
    repo: Option<Spanned<String>>,
    rev: Option<Spanned<String>>,
    diagnostics: &mut Vec<Diagnostic>,
) -> Source {
    match (repo, rev) {
        (None, None) => Source::Local,
        (None, Some(rev)) => {
            diagnostics.push(
                Diagnostic::new(format!("{kind} `{name}` has a `rev` but no `repo`"), Some(rev.span())).help(format!(
                    "`rev` picks what to check out of `repo`; a {kind} without `repo` lives in this repository"
                )),
            );
            Source::Local
        }
        (Some(repo), rev) => {
            if repo.get_ref().trim().is_empty() {
                diagnostics.push(Diagnostic::new(format!("{kind} `{name}` has an empty `repo`"), Some(repo.span())));
            }
            if let Some(rev) = &rev
                && rev.get_ref().trim().is_empty()
            {
                diagnostics.push(
                    Diagnostic::new(format!("{kind} `{name}` has an empty `rev`"), Some(rev.span())).help(
                        "name a branch, a tag or a commit, or remove `rev` to follow the remote's default branch",
                    ),
                );
            }
            Source::Git { repo: absolute_repo(root, repo.into_inner()), rev: rev.map(Spanned::into_inner) }
        }
    }
}

/// A service's or library's directory, for the checks across both.
struct Place<'a> {
    kind: CheckoutKind,
    name: &'a str,
    path: &'a RelPath,
    is_repo: bool,
    span: &'a Range<usize>,
}

/// A name is a service's or a library's, not both: `plat sync NAME` and plat.lock tell them
/// apart by name alone.
fn check_unique_names(places: &[Place<'_>], diagnostics: &mut Vec<Diagnostic>) {
    for (index, place) in places.iter().enumerate() {
        if let Some(first) = places[..index].iter().find(|other| other.name == place.name) {
            diagnostics.push(
                Diagnostic::new(
                    format!("`{}` names both a {} and a {}", place.name, first.kind, place.kind),
                    Some(place.span.clone()),
                )
                .note(first.span.clone(), "first named here")
                .help("services and libraries share one namespace; rename one of them"),
            );
        }
    }
}

fn check_health(
    name: &str,
    health: Spanned<HealthSpec>,
    ports: &IndexMap<String, u16>,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<Health> {
    let span = health.span();
    let spec = health.into_inner();
    let kinds = [spec.grpc.is_some(), spec.http.is_some(), spec.tcp.is_some(), spec.cmd.is_some()];
    if kinds.iter().filter(|kind| **kind).count() != 1 {
        diagnostics.push(
            Diagnostic::new(
                format!("health check of `{name}` needs exactly one of `grpc`, `http`, `tcp`, `cmd`"),
                Some(span),
            )
            .help(r#"for example: health = { grpc = "user.v1.UserService" } or health = { http = "/readyz" }"#),
        );
        return None;
    }
    let known: Vec<&str> = ports.keys().map(String::as_str).collect();
    let mut port_for = |kind: &str, named: Option<&str>| -> Option<String> {
        let chosen = named
            .map(str::to_owned)
            .or_else(|| ports.contains_key(kind).then(|| kind.to_owned()))
            .or_else(|| (ports.len() == 1).then(|| known[0].to_owned()));
        match chosen {
            Some(port) if ports.contains_key(&port) => Some(port),
            Some(port) => {
                diagnostics.push(
                    Diagnostic::new(
                        format!("health check of `{name}` uses port `{port}`, which is not in its `ports`"),
                        Some(span.clone()),
                    )
                    .suggest(&port, &known),
                );
                None
            }
            None => {
                diagnostics.push(
                    Diagnostic::new(format!("health check of `{name}` needs a port"), Some(span.clone()))
                        .help(format!("add `port = \"<name>\"` naming one of its ports, or a port named `{kind}`")),
                );
                None
            }
        }
    };
    let check = if let Some(service) = spec.grpc {
        HealthCheck::Grpc { port: port_for("grpc", spec.port.as_deref())?, service }
    } else if let Some(path) = spec.http {
        if !path.starts_with('/') {
            diagnostics.push(Diagnostic::new(
                format!("health check path `{path}` of `{name}` must start with `/`"),
                Some(span),
            ));
            return None;
        }
        HealthCheck::Http { port: port_for("http", spec.port.as_deref())?, path }
    } else if let Some(port) = spec.tcp {
        HealthCheck::Tcp { port: port_for("tcp", Some(&port))? }
    } else {
        let cmd = match spec.cmd.expect("one kind is set") {
            StringOrList::One(line) => vec!["/bin/sh".to_owned(), "-c".to_owned(), line],
            StringOrList::Many(argv) => argv,
        };
        if cmd.is_empty() {
            diagnostics.push(Diagnostic::new(format!("health command of `{name}` is empty"), Some(span)));
            return None;
        }
        HealthCheck::Cmd(cmd)
    };
    Some(Health {
        check,
        interval: spec.interval.map_or(std::time::Duration::from_secs(2), |d| d.0),
        timeout: spec.timeout.map_or(std::time::Duration::from_secs(1), |d| d.0),
        retries: spec.retries.unwrap_or(30),
        start_period: spec.start_period.map_or(std::time::Duration::ZERO, |d| d.0),
    })
}

/// Two checkouts in one directory, or a repository inside another checkout (or one inside it),
/// would overwrite each other's clones and builds.
fn check_unique_paths(places: &[Place<'_>], diagnostics: &mut Vec<Diagnostic>) {
    let mut seen: HashMap<&RelPath, &Place<'_>> = HashMap::new();
    for place in places {
        let path = place.path.as_str();
        if let Some(outer) = places.iter().find(|other| {
            let other_path = other.path.as_str();
            other.name != place.name
                && (other_path.is_empty() || path.starts_with(&format!("{other_path}/")))
                && (place.is_repo || other.is_repo)
        }) {
            diagnostics.push(
                Diagnostic::new(
                    format!(
                        "{} `{}` lives in `{}`, inside the directory of {} `{}`",
                        place.kind, place.name, place.path, outer.kind, outer.name
                    ),
                    Some(place.span.clone()),
                )
                .note(outer.span.clone(), "whose directory is here")
                .help(format!(
                    "a {} with its own repository needs a directory of its own; give one of them another `path`",
                    if place.is_repo { place.kind } else { outer.kind }
                )),
            );
        }
        if let Some(first) = seen.insert(place.path, place) {
            let message = if first.kind == place.kind {
                format!(
                    "{} `{}` and `{}` share the directory `{}`",
                    place.kind.plural(),
                    first.name,
                    place.name,
                    place.path
                )
            } else {
                format!(
                    "{} `{}` and {} `{}` share the directory `{}`",
                    first.kind, first.name, place.kind, place.name, place.path
                )
            };
            diagnostics.push(
                Diagnostic::new(message, Some(place.span.clone()))
                    .note(first.span.clone(), "first used here")
                    .help("give one of them its own `path`"),
            );
        }
    }
}

fn check_published_ports(services: &[Checked], diagnostics: &mut Vec<Diagnostic>) {
    let mut seen: HashMap<u16, (&Checked, &Range<usize>)> = HashMap::new();
    for checked in services {
        for (host, span) in &checked.published {
            let Some((first, first_span)) = seen.get(host) else {
                seen.insert(*host, (checked, span));
                continue;
            };
            let message = if first.service.name == checked.service.name {
                format!("service `{}` publishes host port {host} twice", checked.service.name)
            } else {
                format!(
                    "services `{}` and `{}` both publish host port {host}",
                    first.service.name, checked.service.name
                )
            };
            diagnostics.push(
                Diagnostic::new(message, Some(span.clone()))
                    .note((*first_span).clone(), "first published here")
                    .help("a host port can be bound by one container only; pick another port for one of them"),
            );
        }
    }
}

/// Each service's database is its own: two services in one database would share one history
/// table of migrations, each seeing the other's as unknown.
fn check_unique_databases(services: &[Checked], diagnostics: &mut Vec<Diagnostic>) {
    let mut seen: HashMap<&str, &Checked> = HashMap::new();
    for checked in services {
        let Some(database) = &checked.service.database else { continue };
        if let Some(first) = seen.insert(database.name.as_str(), checked) {
            diagnostics.push(
                Diagnostic::new(
                    format!(
                        "services `{}` and `{}` both use database `{}`",
                        first.service.name, checked.service.name, database.name
                    ),
                    Some(checked.name_span.clone()),
                )
                .note(first.name_span.clone(), "first used here")
                .help("each service owns its database; give one of them `database = { name = \"...\" }`"),
            );
        }
    }
}

/// Resolves `depends_on` names and builds the graph; reports unknown names and cycles.
fn check_dependencies(services: &mut [Checked], diagnostics: &mut Vec<Diagnostic>) -> Option<ServiceGraph> {
    let names: Vec<&str> = services.iter().map(|checked| checked.service.name.as_str()).collect();
    let mut edges = Vec::new();
    let mut resolved = Vec::new();
    for (dependent, checked) in services.iter().enumerate() {
        let mut depends_on = IndexMap::new();
        for (dependency, condition) in &checked.depends_on {
            if depends_on.contains_key(dependency.get_ref()) {
                diagnostics.push(
                    Diagnostic::new(
                        format!(
                            "service `{}` lists `{}` twice in `depends_on`",
                            checked.service.name,
                            dependency.get_ref()
                        ),
                        Some(dependency.span()),
                    )
                    .help("keep one entry, with the condition to wait for"),
                );
                continue;
            }
            match names.iter().position(|name| name == dependency.get_ref()) {
                Some(index) => {
                    edges.push(Edge {
                        dependent: ServiceId::new(dependent),
                        dependency: ServiceId::new(index),
                        condition: *condition,
                    });
                    depends_on.insert(dependency.get_ref().clone(), *condition);
                }
                None => diagnostics.push(
                    Diagnostic::new(
                        format!(
                            "service `{}` depends on `{}`, which is not a service of this workspace",
                            checked.service.name,
                            dependency.get_ref()
                        ),
                        Some(dependency.span()),
                    )
                    .suggest(dependency.get_ref(), &names),
                ),
            }
        }
        resolved.push(depends_on);
    }
    let graph = match ServiceGraph::new(&names, &edges) {
        Ok(graph) => Some(graph),
        Err(cycles) => {
            for cycle in cycles {
                let cycle: Vec<usize> = cycle.into_iter().map(ServiceId::index).collect();
                let mut path: Vec<&str> = cycle.iter().map(|&index| names[index]).collect();
                path.push(names[cycle[0]]);
                let mut diagnostic = Diagnostic::new(
                    format!("dependency cycle: {}", path.join(" -> ")),
                    Some(services[cycle[0]].name_span.clone()),
                )
                .help("a service cannot wait, even indirectly, for itself; remove one of these `depends_on` entries");
                for &index in &cycle[1..] {
                    diagnostic = diagnostic.note(services[index].name_span.clone(), "part of the cycle");
                }
                diagnostics.push(diagnostic);
            }
            None
        }
    };
    for (checked, depends_on) in services.iter_mut().zip(resolved) {
        checked.service.depends_on = depends_on;
    }
    graph
}

/// A relative path from the manifest, or a diagnostic at its place.
/// A `repo` that is a relative path on this machine is relative to the workspace root, not to
/// wherever plat happens to run; URLs (`scheme://`, `transport::`, scp-style `host:path`) stay as written.
fn absolute_repo(root: &Path, repo: String) -> String {
    let is_url =
        repo.contains("://") || repo.contains("::") || repo.split('/').next().is_some_and(|first| first.contains(':'));
    if is_url || Path::new(&repo).is_absolute() {
        return repo;
    }
    let joined = root.join(&repo);
    std::path::absolute(&joined).unwrap_or(joined).to_string_lossy().into_owned()
}

/// What a relative path is relative to, for messages.
#[derive(Clone, Copy)]
enum Base {
    /// The directory of workspace.toml.
    Workspace,
    /// The service's own directory.
    Service,
}

/// A relative path from the manifest, or a diagnostic at its place.
fn checked_path(path: &Spanned<String>, key: &str, base: Base, diagnostics: &mut Vec<Diagnostic>) -> Option<RelPath> {
    relative(path.get_ref(), key, base, path.span(), diagnostics)
}

fn relative(
    text: &str,
    key: &str,
    base: Base,
    span: Range<usize>,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<RelPath> {
    match RelPath::new(text) {
        Ok(path) => Some(path),
        Err(reason) => {
            let (inside, help) = match base {
                Base::Workspace => {
                    ("the workspace", "paths are relative to the directory of workspace.toml and cannot leave it")
                }
                Base::Service => {
                    ("the service directory", "this path is relative to the service's directory and cannot leave it")
                }
            };
            diagnostics.push(
                Diagnostic::new(format!("{key} `{text}` {reason}: it must stay inside {inside}"), Some(span))
                    .help(help),
            );
            None
        }
    }
}

/// RFC 1123 label, lowercase and starting with a letter: what Docker and Kubernetes accept as a host name.
pub(super) fn check_dns_label(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("it is empty");
    }
    if name.len() > 63 {
        return Err("it is longer than 63 characters");
    }
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Err("it must start with a lowercase letter");
    }
    if name.ends_with('-') {
        return Err("it must not end with `-`");
    }
    if !name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-') {
        return Err("only lowercase letters, digits and `-` are allowed");
    }
    Ok(())
}

/// A database name PostgreSQL accepts and plat may own: plat creates it, migrates it and
/// `plat db reset` drops it, so the server's own databases are refused. An empty name would
/// otherwise fall back to the server's default database (`postgres`) and migrate that.
fn check_database_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("it is empty".to_owned());
    }
    // NAMEDATALEN - 1: the server silently truncates longer names, so two long names could
    // end up as one database.
    if name.len() > 63 {
        return Err(format!("it is {} bytes long, and PostgreSQL keeps at most 63", name.len()));
    }
    if name.contains('\0') {
        return Err("it contains a NUL character".to_owned());
    }
    if name.trim() != name {
        return Err("it starts or ends with whitespace".to_owned());
    }
    if matches!(name, "postgres" | "template0" | "template1") {
        return Err("it is one of the server's own databases, which plat would migrate and `plat db reset` would drop"
            .to_owned());
    }
    Ok(())
}

/// A cargo profile name, as cargo accepts them: `dev`, `release`, or a custom profile of the
/// service's Cargo.toml (letters, digits, `-` and `_`).
fn checked_profile(profile: &Spanned<String>, diagnostics: &mut Vec<Diagnostic>) -> Option<String> {
    let name = profile.get_ref();
    let valid = !name.is_empty()
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && !matches!(name.as_str(), "test" | "bench" | "doc" | "check");
    if !valid {
        diagnostics.push(
            Diagnostic::new(format!("`{name}` is not a cargo profile plat can build with"), Some(profile.span()))
                .help("use `dev` (the default), `release`, or a custom profile of the service's Cargo.toml"),
        );
        return None;
    }
    Some(name.clone())
}

/// An image reference Docker accepts, or a diagnostic at its place: a lowercase name of
/// `/`-separated components (a registry host may carry a `:port`), then an optional `:tag` and
/// an optional `@digest`.
fn checked_image(service: &str, image: &Spanned<String>, diagnostics: &mut Vec<Diagnostic>) -> Option<String> {
    let reference = image.get_ref();
    let (without_digest, digest) = match reference.split_once('@') {
        Some((name, digest)) => (name, Some(digest)),
        None => (reference.as_str(), None),
    };
    let last_slash = without_digest.rfind('/').map_or(0, |slash| slash + 1);
    let (name, tag) = match without_digest[last_slash..].split_once(':') {
        Some((_, tag)) => (&without_digest[..without_digest.len() - tag.len() - 1], Some(tag)),
        None => (without_digest, None),
    };
    let name_ok = !name.is_empty()
        && name.split('/').enumerate().all(|(index, part)| {
            let host_port = index == 0 && name.contains('/') && part.contains(':');
            !part.is_empty()
                && part.chars().all(|c| {
                    c.is_ascii_lowercase()
                        || c.is_ascii_digit()
                        || matches!(c, '.' | '_' | '-')
                        || (host_port && c == ':')
                })
        });
    let tag_ok = tag.is_none_or(|tag| {
        !tag.is_empty()
            && tag.len() <= 128
            && !tag.starts_with(['.', '-'])
            && tag.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
    });
    let digest_ok = digest.is_none_or(|digest| {
        digest.split_once(':').is_some_and(|(algorithm, hex)| {
            !algorithm.is_empty() && hex.len() >= 32 && hex.chars().all(|c| c.is_ascii_hexdigit())
        })
    });
    if name_ok && tag_ok && digest_ok {
        return Some(reference.clone());
    }
    diagnostics.push(
        Diagnostic::new(format!("invalid image `{reference}` for `{service}`"), Some(image.span())).help(
            "an image is a lowercase name with an optional tag or digest: `platform/users`, `plat/nats:2`, `name@sha256:<hex>`",
        ),
    );
    None
}

/// A Docker volume name's rule: a letter or digit, then letters, digits, `_`, `.` and `-`.
fn check_volume_name(name: &str) -> Result<(), &'static str> {
    if !name.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        return Err("it must start with a letter or a digit");
    }
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')) {
        return Err("only letters, digits, `_`, `.` and `-` are allowed");
    }
    Ok(())
}

/// A library's name: it names a directory and a plat.lock entry, not a host, so `_` is allowed.
fn check_library_name(name: &str) -> Result<(), &'static str> {
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Err("it must start with a lowercase letter");
    }
    if name.len() > 63 {
        return Err("it is longer than 63 characters");
    }
    if !name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_') {
        return Err("only lowercase letters, digits, `-` and `_` are allowed");
    }
    Ok(())
}

/// `user.v1`: lowercase identifiers separated by dots.
fn is_proto_package(package: &str) -> bool {
    !package.is_empty()
        && package.split('.').all(|part| {
            part.starts_with(|c: char| c.is_ascii_lowercase())
                && part.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_labels() {
        assert!(check_dns_label("user-service").is_ok());
        assert!(check_dns_label("a1").is_ok());
        for bad in ["", "User", "1a", "a_b", "a-", &"a".repeat(64)] {
            assert!(check_dns_label(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn database_names() {
        assert!(check_database_name("user_service").is_ok());
        assert!(check_database_name("Mixed-Case é").is_ok());
        assert!(check_database_name(&"a".repeat(63)).is_ok());
        for bad in ["", " a", "postgres", "template1", &"a".repeat(64), &"é".repeat(32)] {
            assert!(check_database_name(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn image_references() {
        let check = |reference: &str| {
            let mut diagnostics = Vec::new();
            checked_image("s", &Spanned::new(0..1, reference.to_owned()), &mut diagnostics).is_some()
        };
        for good in [
            "platform/users",
            "plat/nats:2",
            "nats:2.10-alpine",
            "localhost:5000/team/tool",
            "registry.local:5000/team/tool:v1.2",
            "tool@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ] {
            assert!(check(good), "{good:?} refused");
        }
        for bad in ["", "Plat/nats:2", "p/b:", "p//b", "p/b:-x", "a b", "tool@sha256:xyz", "tool@", ":2"] {
            assert!(!check(bad), "{bad:?} accepted");
        }
    }

    #[test]
    fn a_tag_or_digest_makes_a_reference_whole() {
        use super::super::has_tag_or_digest;
        assert!(has_tag_or_digest("plat/nats:2"));
        assert!(has_tag_or_digest("nats@sha256:00"));
        assert!(!has_tag_or_digest("platform/users"));
        assert!(!has_tag_or_digest("localhost:5000/users"), "a registry's port is not a tag");
        let workspace = load(
            Path::new("/ws/workspace.toml"),
            "[workspace]\nname = \"p\"\n[services.nats]\nimage = \"plat/nats:2\"\n\
             [services.tool]\nimage = \"scale/tiny:1\"\nbuild = { command = \"true\" }\n[services.app]\n",
        )
        .unwrap();
        let reference = |name: &str| workspace.service(name).unwrap().image_reference();
        assert_eq!(reference("nats"), "plat/nats:2");
        assert_eq!(reference("tool"), "scale/tiny:1", "a built image keeps its own tag");
        assert_eq!(reference("app"), "p/app:dev");
        assert_eq!(workspace.service("nats").unwrap().build, Build::Ready);
        let checkouts: Vec<&str> = workspace.checkouts().map(|checkout| checkout.name).collect();
        assert_eq!(checkouts, ["tool", "app"], "a ready image has no checkout");
    }

    #[test]
    fn proto_packages() {
        assert!(is_proto_package("user.v1"));
        assert!(is_proto_package("acme.billing_core.v2"));
        assert!(!is_proto_package("User.v1"));
        assert!(!is_proto_package("user..v1"));
    }
}
