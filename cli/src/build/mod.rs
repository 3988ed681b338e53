//! `plat build`: one image per service, through the Engine API, skipped when nothing it is
//! built from changed.
//!
//! A `cargo` service is compiled on the host ([`cargo`]) as a static Linux binary, into one target
//! directory for every service of the workspace and outside every checkout
//! ([`crate::state::cargo_target_dir`]), then packaged `FROM scratch` as a non-root user: no Rust
//! toolchain in an image, no registry. When the sources its last build read are unchanged and
//! that build's image is still here, cargo does not even run. A `dockerfile` service's context is
//! sent as it is, minus what `.dockerignore` excludes ([`context`]). Either way the tar context is
//! hashed, and an image whose [`label::INPUTS`] holds that hash is already up to date. A `command`
//! service runs its own command, which decides for itself what to rebuild.

mod cargo;

/// `rustc -vV`, cached in `.plat/rustc.json`: `plat test`'s cache keys on the toolchain too.
pub(crate) use cargo::rustc_version;
mod context;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use indexmap::IndexMap;
use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

use crate::docker::image::{self, BuildRequest};
use crate::docker::{DockerError, Engine, label};
use crate::manifest::{Build, RelPath, Service, Workspace};
use crate::text::tail;

use context::{Context, dockerfile_context};

pub use crate::manifest::IMAGE_TAG;

/// The image reference of a service: its `image` and [`IMAGE_TAG`], or its `image` as written
/// when that has a tag (a ready image's always does).
pub fn image_reference(service: &Service) -> String {
    service.image_reference()
}

/// What makes a ready image that is missing, for a message: plat reaches no registry, so it is
/// built (or loaded) on the machine. The sample's images (`plat/<name>:<tag>`) each have a
/// script in plat's repository, which `scripts/setup --images` runs.
pub fn ready_image_fix(image: &str) -> String {
    let repository = image.split('@').next().unwrap_or(image);
    let repository = repository.rsplit_once(':').filter(|(_, tag)| !tag.contains('/')).map_or(repository, |(r, _)| r);
    match repository.strip_prefix("plat/").filter(|name| !name.contains('/')) {
        Some(name) => format!(
            "build it with scripts/images/{name} in plat's repository (`scripts/setup --images` builds every image \
             the sample needs; no registry)"
        ),
        None => format!(
            "make it on this machine (`docker build -t {image} ...` or `docker load`): plat reaches no registry, \
             or give the service a `build` in workspace.toml"
        ),
    }
}

/// How builds behave.
#[derive(Debug, Clone, Copy, Default)]
pub struct BuildOptions {
    /// Let cargo and build commands print to stderr as they go (else their output is kept and
    /// shown only when they fail).
    pub show_tool_output: bool,
    /// Say why each image is rebuilt or fresh ([`BuildEvent::Explained`]).
    pub explain: bool,
    /// Compile every cargo service with the `release` profile, whatever the manifest says.
    pub release: bool,
}

/// What a build is doing, for the CLI to show.
#[derive(Debug)]
pub enum BuildEvent<'a> {
    /// cargo is compiling the service's binary with this profile.
    Compiling { service: &'a str, profile: &'a str },
    /// The service's own build command runs.
    Running { service: &'a str, command: &'a str },
    /// The Engine is building the image.
    Packaging { service: &'a str, image: &'a str },
    /// Why the image is built again, one reason per line; empty when it is fresh. Only with
    /// [`BuildOptions::explain`].
    Explained { service: &'a str, reasons: &'a [String] },
}

/// An image ready for a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Built {
    /// The service.
    pub service: String,
    /// Its image reference, `<image>:dev`.
    pub image: String,
    /// The image id.
    pub id: String,
    /// Whether the image was already up to date (nothing built).
    pub fresh: bool,
    /// How long it took.
    pub took: Duration,
}

/// Why a service's image could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// cargo is not installed, failed, or built no such binary.
    #[error("cargo build failed: {reason}")]
    Cargo {
        /// What went wrong, with the end of cargo's output.
        reason: String,
    },
    /// The host cannot build a binary for a Linux container.
    #[error("cargo builds need a Linux host to package a Linux binary; this host is {host}")]
    HostNotLinux {
        /// rustc's host triple.
        host: String,
    },
    /// A ready image (no `build`) is not on this machine; plat never builds or pulls it.
    #[error(
        "image {image} is not on this machine, and plat does not build it (the service has no `build`) nor pull it from a registry"
    )]
    ReadyImageMissing {
        /// The image reference.
        image: String,
    },
    /// The service has no directory: a repository not cloned yet.
    #[error("its directory {0} does not exist")]
    NoDirectory(String),
    /// The build context could not be read.
    #[error("cannot read {}: {error}", .path.display())]
    Context {
        /// The file or directory.
        path: std::path::PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// The build command failed or did not produce the image.
    #[error("`{command}` {reason}")]
    Command {
        /// The command.
        command: String,
        /// What happened.
        reason: String,
    },
    /// The Engine failed.
    #[error(transparent)]
    Docker(#[from] DockerError),
}

/// Builds one service's image, or finds it up to date.
pub async fn build_service(
    engine: &Engine,
    workspace: &Workspace,
    service: &Service,
    options: BuildOptions,
    on_event: &(dyn Fn(BuildEvent<'_>) + Sync),
) -> Result<Built, BuildError> {
    let started = Instant::now();
    let reference = image_reference(service);
    let service_dir = workspace.service_dir(service);
    if service.has_code() && !service_dir.is_dir() {
        return Err(BuildError::NoDirectory(service.path.to_string()));
    }
    let mut compiled = None;
    let (context, dockerfile, args, target) = match &service.build {
        Build::Cargo { package, bin, profile } => {
            let profile = if options.release { "release" } else { profile.as_deref().unwrap_or(&workspace.profile) };
            let recipe = cargo::Recipe::new(workspace, &service_dir, package.as_deref(), bin, profile).await?;
            let record = cargo::Record::read(workspace, service);
            let sources = record.as_ref().map(|record| record.compare(&recipe));
            // The sources the last build read are as they were: its image is this build's, if
            // it is still here. cargo would find nothing to do, slower.
            if let (Some(record), Some(cargo::Sources::Unchanged)) = (&record, &sources)
                && let Some(image) = engine.find_image(&reference).await?.filter(|image| image.id == record.image)
            {
                if options.explain {
                    on_event(BuildEvent::Explained { service: &service.name, reasons: &[] });
                }
                let took = started.elapsed();
                return Ok(Built { service: service.name.clone(), image: reference, id: image.id, fresh: true, took });
            }
            if options.explain {
                let reasons = match &sources {
                    Some(cargo::Sources::Changed(reasons)) => reasons.clone(),
                    Some(cargo::Sources::Unchanged) => vec![format!("no image {reference} of its last build here")],
                    None => vec![format!("no record of an earlier build of {} here", service.name)],
                };
                on_event(BuildEvent::Explained { service: &service.name, reasons: &reasons });
            }
            on_event(BuildEvent::Compiling { service: &service.name, profile });
            let output = cargo::build(&recipe, options.show_tool_output).await?;
            let context = cargo::image_context(&output.binary, bin, service.ports.values().copied())?;
            compiled = Some((recipe, output));
            (context, "Dockerfile".to_owned(), HashMap::new(), None)
        }
        Build::Dockerfile { file, context, args, target } => {
            let (context, dockerfile, args) = dockerfile_parts(&service_dir, file, context, args)?;
            (context, dockerfile, args, target.clone())
        }
        Build::Ready => {
            // Used as it is: present, or the service cannot run.
            let image = engine.find_image(&reference).await?;
            let image = image.ok_or_else(|| BuildError::ReadyImageMissing { image: reference.clone() })?;
            let took = started.elapsed();
            return Ok(Built { service: service.name.clone(), image: reference, id: image.id, fresh: true, took });
        }
        Build::Command(command) => {
            on_event(BuildEvent::Running { service: &service.name, command });
            run_command(&service_dir, command, &reference, options).await?;
            let image = engine.find_image(&reference).await?.ok_or_else(|| BuildError::Command {
                command: command.clone(),
                reason: format!("succeeded, and built no image {reference} (it gets PLAT_IMAGE={reference})"),
            })?;
            return Ok(Built {
                service: service.name.clone(),
                image: reference,
                id: image.id,
                fresh: false,
                took: started.elapsed(),
            });
        }
    };

    let inputs = Inputs::of(&context, &dockerfile, &args, target.as_deref());
    let existing = engine.find_image(&reference).await?;
    if options.explain && compiled.is_none() {
        let reasons = explain(&reference, existing.as_ref(), &inputs);
        on_event(BuildEvent::Explained { service: &service.name, reasons: &reasons });
    }
    let (image, fresh) = match existing.filter(|image| image.inputs() == Some(inputs.hash.as_str())) {
        Some(image) => (image, true),
        None => {
            on_event(BuildEvent::Packaging { service: &service.name, image: &reference });
            let mut labels = HashMap::from([
                (label::WORKSPACE.to_owned(), workspace.name.clone()),
                (label::SERVICE.to_owned(), service.name.clone()),
                (label::INPUTS.to_owned(), inputs.hash),
            ]);
            let listed = serde_json::to_string(&inputs.files).expect("a map of strings serialises");
            if listed.len() <= MAX_LISTED_INPUTS_BYTES {
                labels.insert(label::INPUT_FILES.to_owned(), listed);
            }
            let request = BuildRequest {
                tag: &reference,
                context: context.tar,
                dockerfile: &dockerfile,
                args,
                target: target.as_deref(),
                labels,
            };
            (engine.build_image(request).await?, false)
        }
    };
    if let Some((recipe, output)) = &compiled {
        // Recorded for the next build's shortcut; a failure to record only costs it a cargo run.
        if let Err(error) = cargo::Record::write(workspace, service, recipe, output, &image.id) {
            tracing::debug!("cannot record the build of {}: {error}", service.name);
        }
    }
    let took = started.elapsed();
    Ok(Built { service: service.name.clone(), image: reference, id: image.id, fresh, took })
}

/// What a `dockerfile` build sends: its context (minus `.dockerignore`), the Dockerfile's name
/// in it, the build arguments and the target.
fn dockerfile_parts(
    service_dir: &Path,
    file: &RelPath,
    context: &RelPath,
    args: &IndexMap<String, String>,
) -> Result<(Context, String, HashMap<String, String>), BuildError> {
    let (context, dockerfile) = dockerfile_context(&context.under(service_dir), &file.under(service_dir))?;
    let args = args.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    Ok((context, dockerfile, args))
}

/// What changed in the service's checkout since `tagged`, the image tagged for it on this
/// machine, was built, told without building: the sources its last cargo build read (the code,
/// whatever the profile, flags or target directory), or its Dockerfile's context. Empty when
/// nothing did, and when only running the build could tell (a `command` build; a cargo service
/// with no record of a build here); a ready image has no checkout. For `plat ps` and
/// `plat test`, whose checks are worth only as much as the code they reach.
pub fn checkout_changes(
    workspace: &Workspace,
    service: &Service,
    tagged: Option<&image::Image>,
) -> Result<Vec<String>, BuildError> {
    let reference = image_reference(service);
    let service_dir = workspace.service_dir(service);
    match &service.build {
        Build::Cargo { .. } => {
            let Some(record) = cargo::Record::read(workspace, service) else { return Ok(Vec::new()) };
            match record.compare_sources(&workspace.root) {
                cargo::Sources::Changed(reasons) => Ok(reasons),
                cargo::Sources::Unchanged if tagged.is_some_and(|image| image.id == record.image) => Ok(Vec::new()),
                cargo::Sources::Unchanged => Ok(vec![format!("{reference} is not the image of its last build")]),
            }
        }
        Build::Dockerfile { file, context, args, target } => {
            if !service_dir.is_dir() {
                return Ok(Vec::new());
            }
            let (context, dockerfile, args) = dockerfile_parts(&service_dir, file, context, args)?;
            let inputs = Inputs::of(&context, &dockerfile, &args, target.as_deref());
            Ok(explain(&reference, tagged, &inputs))
        }
        Build::Command(_) | Build::Ready => Ok(Vec::new()),
    }
}

/// An inputs list longer than this (as JSON) is not recorded, only its hash: labels travel in
/// the build request's query string, which the Engine bounds (1 MiB of headers in all).
const MAX_LISTED_INPUTS_BYTES: usize = 64 * 1024;

/// What an image is made from: every file of its context with a digest of its content and
/// mode, the Dockerfile's name, the build arguments (their values digested too: they may be
/// secrets) and the target; and the hash of it all.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Inputs {
    files: BTreeMap<String, String>,
    hash: String,
}

impl Inputs {
    fn of(context: &Context, dockerfile: &str, args: &HashMap<String, String>, target: Option<&str>) -> Inputs {
        let mut files = context.files.clone();
        files.insert("(dockerfile)".to_owned(), dockerfile.to_owned());
        for (key, value) in args {
            files.insert(format!("(arg {key})"), digest(value.as_bytes()));
        }
        if let Some(target) = target {
            files.insert("(target)".to_owned(), target.to_owned());
        }
        let mut hasher = Sha256::new();
        for (name, value) in &files {
            hasher.update(name.as_bytes());
            hasher.update(b"\0");
            hasher.update(value.as_bytes());
            hasher.update(b"\0");
        }
        Inputs { files, hash: format!("sha256:{}", crate::text::hex(&hasher.finalize())) }
    }
}

/// A short digest: enough to tell two versions of a file apart.
fn digest(bytes: &[u8]) -> String {
    crate::text::hex(&Sha256::digest(bytes)[..8])
}

/// Why the image must be built again, from the inputs its labels record; empty when fresh.
fn explain(reference: &str, existing: Option<&image::Image>, inputs: &Inputs) -> Vec<String> {
    let Some(existing) = existing else {
        return vec![format!("no image {reference} on this machine yet")];
    };
    let Some(hash) = existing.inputs() else {
        return vec![format!("{reference} was not built by plat build (it has no {} label)", label::INPUTS)];
    };
    if hash == inputs.hash {
        return Vec::new();
    }
    let Some(before) = existing
        .labels
        .get(label::INPUT_FILES)
        .and_then(|text| serde_json::from_str::<BTreeMap<String, String>>(text).ok())
    else {
        return vec!["what it is built from changed (the image lists no files to say which)".to_owned()];
    };
    let list = |names: Vec<&String>| {
        let shown: Vec<&str> = names.iter().take(10).map(|name| name.as_str()).collect();
        let more = names.len().saturating_sub(shown.len());
        if more == 0 { shown.join(", ") } else { format!("{} and {more} more", shown.join(", ")) }
    };
    let changed: Vec<&String> = inputs
        .files
        .iter()
        .filter(|(name, now)| before.get(*name).is_some_and(|was| was != *now))
        .map(|(n, _)| n)
        .collect();
    let added: Vec<&String> = inputs.files.keys().filter(|name| !before.contains_key(*name)).collect();
    let removed: Vec<&String> = before.keys().filter(|name| !inputs.files.contains_key(*name)).collect();
    let mut reasons = Vec::new();
    for (what, names) in [("changed", changed), ("added", added), ("removed", removed)] {
        if !names.is_empty() {
            reasons.push(format!("{what}: {}", list(names)));
        }
    }
    if reasons.is_empty() {
        reasons.push("what it is built from changed".to_owned());
    }
    reasons
}

/// Runs a service's own build command with `sh -c` in its directory.
async fn run_command(
    service_dir: &Path,
    command: &str,
    reference: &str,
    options: BuildOptions,
) -> Result<(), BuildError> {
    let mut child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .current_dir(service_dir)
        .env("PLAT_IMAGE", reference)
        .stdin(Stdio::null())
        // With -v its output is shown as it comes, on stderr like all of plat's progress.
        .stdout(if options.show_tool_output { stderr_stdio() } else { Stdio::piped() })
        .stderr(if options.show_tool_output { Stdio::inherit() } else { Stdio::piped() })
        .kill_on_drop(true)
        .spawn()
        .map_err(|error| BuildError::Command {
            command: command.to_owned(),
            reason: format!("cannot start: {error}"),
        })?;
    // Both pipes drained together, so a chatty command cannot block on a full one; of each, only
    // the end is kept, which is where a build says what failed.
    let (out, err) = tokio::join!(last_bytes(child.stdout.take()), last_bytes(child.stderr.take()));
    let status = child
        .wait()
        .await
        .map_err(|error| BuildError::Command { command: command.to_owned(), reason: error.to_string() })?;
    if status.success() {
        return Ok(());
    }
    let output = format!("{}{}", String::from_utf8_lossy(&out), String::from_utf8_lossy(&err));
    Err(BuildError::Command { command: command.to_owned(), reason: format!("failed: {status}{}", tail(&output, 20)) })
}

/// How much of a build command's output is kept, per stream: its end.
const KEPT_OUTPUT: usize = 64 * 1024;

/// Everything a pipe gives until it closes, keeping the last [`KEPT_OUTPUT`] bytes.
async fn last_bytes(pipe: Option<impl tokio::io::AsyncRead + Unpin>) -> Vec<u8> {
    let mut kept = Vec::new();
    let Some(mut pipe) = pipe else { return kept };
    let mut buffer = [0u8; 8192];
    while let Ok(read @ 1..) = pipe.read(&mut buffer).await {
        kept.extend_from_slice(&buffer[..read]);
        if kept.len() > 2 * KEPT_OUTPUT {
            kept.drain(..kept.len() - KEPT_OUTPUT);
        }
    }
    if kept.len() > KEPT_OUTPUT {
        kept.drain(..kept.len() - KEPT_OUTPUT);
    }
    kept
}

/// plat's stderr, for a child's stdout.
#[cfg(unix)]
fn stderr_stdio() -> Stdio {
    use std::os::fd::AsFd;
    std::io::stderr().as_fd().try_clone_to_owned().map_or_else(|_| Stdio::inherit(), Stdio::from)
}

#[cfg(not(unix))]
fn stderr_stdio() -> Stdio {
    Stdio::inherit()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_ready_image_is_made_by_its_script_or_by_hand() {
        assert!(ready_image_fix("plat/nats:2").starts_with("build it with scripts/images/nats "));
        assert!(ready_image_fix("plat/postgres@sha256:00").starts_with("build it with scripts/images/postgres "));
        assert!(ready_image_fix("acme/tool:1").contains("`docker build -t acme/tool:1 ...`"));
        assert!(ready_image_fix("localhost:5000/plat/x:1").contains("docker build"), "not the sample's");
    }

    #[test]
    fn equal_inputs_give_equal_contexts_and_hashes() {
        let dir = tempfile::tempdir().unwrap();
        fs_err::create_dir_all(dir.path().join("src")).unwrap();
        fs_err::create_dir_all(dir.path().join("target/debug")).unwrap();
        fs_err::write(dir.path().join("Dockerfile"), "FROM scratch\nCOPY src /src\n").unwrap();
        fs_err::write(dir.path().join("src/a.txt"), "a").unwrap();
        fs_err::write(dir.path().join("target/debug/big"), "ignored").unwrap();
        fs_err::write(dir.path().join(".dockerignore"), "target\n").unwrap();
        let context = |dir: &Path| dockerfile_context(dir, &dir.join("Dockerfile")).unwrap();
        let (first, name) = context(dir.path());
        let (second, _) = context(dir.path());
        assert_eq!(name, "Dockerfile");
        let bytes = |context: &Context| {
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut &context.tar, &mut bytes).unwrap();
            std::io::Seek::rewind(&mut &context.tar).unwrap();
            bytes
        };
        assert_eq!(bytes(&first), bytes(&second));
        let names: Vec<String> = tar::Archive::new(bytes(&first).as_slice())
            .entries()
            .unwrap()
            .map(|entry| entry.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["Dockerfile", "src/", "src/a.txt", ".dockerignore"]);
        assert_eq!(first.files.keys().collect::<Vec<_>>(), [".dockerignore", "Dockerfile", "src/", "src/a.txt"]);

        let inputs = |context: &Context| Inputs::of(context, "Dockerfile", &HashMap::new(), None);
        assert_eq!(inputs(&first), inputs(&second));
        fs_err::write(dir.path().join("src/a.txt"), "changed").unwrap();
        let (changed, _) = context(dir.path());
        assert_ne!(inputs(&first).hash, inputs(&changed).hash, "a changed file changes the hash");
        fs_err::write(dir.path().join("target/debug/big"), "changed too").unwrap();
        let (ignored, _) = context(dir.path());
        assert_eq!(inputs(&changed), inputs(&ignored), "an ignored file does not");
        let with_arg = Inputs::of(&ignored, "Dockerfile", &HashMap::from([("A".into(), "1".into())]), None);
        assert_ne!(inputs(&ignored).hash, with_arg.hash, "nor does a build argument");
    }

    #[test]
    fn explain_names_what_changed_since_the_image_was_built() {
        let context = |files: &[(&str, &str)]| Context {
            tar: tempfile::tempfile().unwrap(),
            files: files.iter().map(|(name, digest)| (name.to_string(), digest.to_string())).collect(),
        };
        let before = Inputs::of(&context(&[("a", "1"), ("b", "2"), ("c", "3")]), "Dockerfile", &HashMap::new(), None);
        let now = Inputs::of(&context(&[("a", "1"), ("b", "9"), ("d", "4")]), "Dockerfile", &HashMap::new(), None);
        let image = |labels: &[(&str, String)]| image::Image {
            id: "sha256:1".into(),
            labels: labels.iter().map(|(k, v)| (k.to_string(), v.clone())).collect(),
        };
        let built = image(&[
            (label::INPUTS, before.hash.clone()),
            (label::INPUT_FILES, serde_json::to_string(&before.files).unwrap()),
        ]);
        assert_eq!(explain("p/s:dev", Some(&built), &now), ["changed: b", "added: d", "removed: c"]);
        assert_eq!(explain("p/s:dev", Some(&built), &before), Vec::<String>::new(), "fresh");
        assert_eq!(explain("p/s:dev", None, &now), ["no image p/s:dev on this machine yet"]);
        assert_eq!(
            explain("p/s:dev", Some(&image(&[])), &now),
            ["p/s:dev was not built by plat build (it has no dev.plat.inputs label)"]
        );
        assert_eq!(
            explain("p/s:dev", Some(&image(&[(label::INPUTS, before.hash.clone())])), &now),
            ["what it is built from changed (the image lists no files to say which)"]
        );
    }
}
