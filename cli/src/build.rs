//! `plat build`: one image per service, through the Engine API, skipped when nothing it is
//! built from changed.
//!
//! A `cargo` service is compiled on the host as a static Linux binary, into one target directory
//! for every service of the workspace and outside every checkout
//! ([`crate::state::cargo_target_dir`]), then packaged `FROM scratch` as a non-root user: no
//! Rust toolchain in an image, no registry. A `dockerfile` service's context is sent as it is, minus what
//! `.dockerignore` excludes. Either way the tar context is hashed, and an image whose
//! [`label::INPUTS`] holds that hash is already up to date. A `command` service runs its own
//! command, which decides for itself what to rebuild.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tokio::io::AsyncReadExt;

use crate::docker::image::{self, BuildRequest};
use crate::docker::{DockerError, label};
use crate::manifest::{Build, Service, Workspace};
use crate::text::tail;

/// The tag of the images plat builds: `<workspace>/<service>:dev`.
pub const IMAGE_TAG: &str = "dev";

/// The image reference of a service: its `image` and [`IMAGE_TAG`].
pub fn image_reference(service: &Service) -> String {
    format!("{}:{IMAGE_TAG}", service.image)
}

/// How builds behave.
#[derive(Debug, Clone, Copy, Default)]
pub struct BuildOptions {
    /// Let cargo and build commands print to stderr as they go (else their output is kept and
    /// shown only when they fail).
    pub show_tool_output: bool,
    /// Say why each image is rebuilt or fresh ([`BuildEvent::Explained`]).
    pub explain: bool,
}

/// What a build is doing, for the CLI to show.
#[derive(Debug)]
pub enum BuildEvent<'a> {
    /// cargo is compiling the service's binary.
    Compiling { service: &'a str },
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
    /// The service has no directory: a repository not cloned yet.
    #[error("its directory {0} does not exist")]
    NoDirectory(String),
    /// The build context could not be read.
    #[error("cannot read {}: {error}", .path.display())]
    Context {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        error: io::Error,
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
    workspace: &Workspace,
    service: &Service,
    options: BuildOptions,
    on_event: &(dyn Fn(BuildEvent<'_>) + Sync),
) -> Result<Built, BuildError> {
    let started = Instant::now();
    let reference = image_reference(service);
    let service_dir = workspace.service_dir(service);
    if !service_dir.is_dir() {
        return Err(BuildError::NoDirectory(service.path.to_string()));
    }
    let (context, dockerfile, args, target) = match &service.build {
        Build::Cargo { package, bin } => {
            on_event(BuildEvent::Compiling { service: &service.name });
            let target_dir = crate::state::cargo_target_dir(workspace)
                .map_err(|error| BuildError::Context { path: crate::state::dir(workspace), error })?;
            let binary = cargo_build(&service_dir, &target_dir, package.as_deref(), bin, options).await?;
            let context = cargo_context(&binary, bin, service.ports.values().copied())?;
            (context, "Dockerfile".to_owned(), HashMap::new(), None)
        }
        Build::Dockerfile { file, context, args, target } => {
            let context_dir = context.under(&service_dir);
            let file = file.under(&service_dir);
            let (context, dockerfile) = dockerfile_context(&context_dir, &file)?;
            let args = args.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            (context, dockerfile, args, target.clone())
        }
        Build::Command(command) => {
            on_event(BuildEvent::Running { service: &service.name, command });
            run_command(&service_dir, command, &reference, options).await?;
            let image = image::find(&reference).await?.ok_or_else(|| BuildError::Command {
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
    let existing = image::find(&reference).await?;
    if options.explain {
        let reasons = explain(&reference, existing.as_ref(), &inputs);
        on_event(BuildEvent::Explained { service: &service.name, reasons: &reasons });
    }
    if let Some(image) = existing {
        if image.inputs() == Some(inputs.hash.as_str()) {
            let took = started.elapsed();
            return Ok(Built { service: service.name.clone(), image: reference, id: image.id, fresh: true, took });
        }
    }
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
    let image = image::build(request).await?;
    Ok(Built { service: service.name.clone(), image: reference, id: image.id, fresh: false, took: started.elapsed() })
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

/// Compiles `bin` as a static release binary for the host's Linux target into `target_dir` and
/// returns its path, as cargo reports it.
async fn cargo_build(
    service_dir: &Path,
    target_dir: &Path,
    package: Option<&str>,
    bin: &str,
    options: BuildOptions,
) -> Result<PathBuf, BuildError> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let host = host_triple().await?;
    if !host.contains("-linux-") {
        return Err(BuildError::HostNotLinux { host });
    }
    // Appended to the user's flags. A static binary runs FROM scratch; with an explicit
    // --target the flag reaches only the binary, not build scripts and proc macros. (Setting
    // RUSTFLAGS makes cargo ignore `build.rustflags` of .cargo/config.toml, as it always does.)
    const STATIC: &str = "-C target-feature=+crt-static";
    let flags = match (std::env::var("CARGO_ENCODED_RUSTFLAGS"), std::env::var("RUSTFLAGS")) {
        // cargo reads this one first, its flags separated by 0x1f.
        (Ok(encoded), _) if !encoded.is_empty() => {
            ("CARGO_ENCODED_RUSTFLAGS", format!("{encoded}\x1f{}", STATIC.replace(' ', "\x1f")))
        }
        (_, Ok(flags)) if !flags.trim().is_empty() => ("RUSTFLAGS", format!("{flags} {STATIC}")),
        _ => ("RUSTFLAGS", STATIC.to_owned()),
    };
    let mut command = tokio::process::Command::new(&cargo);
    command
        .current_dir(service_dir)
        .args(["build", "--release", "--message-format=json-render-diagnostics", "--target", &host, "--bin", bin])
        .env(flags.0, flags.1)
        .env("CARGO_TARGET_DIR", target_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(if options.show_tool_output { Stdio::inherit() } else { Stdio::piped() })
        .kill_on_drop(true);
    if let Some(package) = package {
        command.args(["--package", package]);
    }
    let output = command.output().await.map_err(|error| BuildError::Cargo {
        reason: format!("cannot run {}: {error}", PathBuf::from(&cargo).display()),
    })?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(BuildError::Cargo { reason: format!("{}{}", output.status, tail(&stderr, 20)) });
    }
    let binary = executable(&String::from_utf8_lossy(&output.stdout), bin).ok_or_else(|| BuildError::Cargo {
        reason: format!("it built no binary named `{bin}` (set build = {{ cargo = {{ bin = \"...\" }} }})"),
    })?;
    let elf = fs_err::read(&binary).map_err(|error| BuildError::Context { path: binary.clone(), error })?;
    if asks_for_an_interpreter(&elf) {
        return Err(BuildError::Cargo {
            reason: format!(
                "{} is dynamically linked (it asks for a program interpreter), so it cannot run FROM scratch: \
                 a `-C target-feature=-crt-static` or a linker setting in the flags or .cargo/config.toml undoes \
                 plat's",
                binary.display()
            ),
        });
    }
    Ok(binary)
}

/// Whether an ELF file has a `PT_INTERP` program header: a dynamically linked executable that
/// needs ld.so, which an empty image does not have. Anything that is not ELF: no.
fn asks_for_an_interpreter(elf: &[u8]) -> bool {
    const PT_INTERP: u32 = 3;
    if elf.len() < 64 || &elf[..4] != b"\x7fELF" {
        return false;
    }
    let wide = elf[4] == 2; // ELFCLASS64
    let little = elf[5] == 1; // ELFDATA2LSB
    let read = |at: usize, size: usize| -> Option<u64> {
        let bytes = elf.get(at..at + size)?;
        let mut value = 0u64;
        for (i, byte) in bytes.iter().enumerate() {
            let shift = if little { i } else { size - 1 - i };
            value |= u64::from(*byte) << (8 * shift);
        }
        Some(value)
    };
    let (table, entry_size, count) = if wide {
        (read(0x20, 8), read(0x36, 2), read(0x38, 2))
    } else {
        (read(0x1c, 4), read(0x2a, 2), read(0x2c, 2))
    };
    let (Some(table), Some(entry_size), Some(count)) = (table, entry_size, count) else { return false };
    (0..count).any(|index| {
        let at = table.saturating_add(index.saturating_mul(entry_size));
        usize::try_from(at).ok().and_then(|at| read(at, 4)) == Some(u64::from(PT_INTERP))
    })
}

/// The path of binary `bin` among cargo's JSON messages.
fn executable(messages: &str, bin: &str) -> Option<PathBuf> {
    messages
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|message| message["reason"] == "compiler-artifact" && message["target"]["name"] == bin)
        .filter(|message| message["target"]["kind"].as_array().is_some_and(|kinds| kinds.iter().any(|k| k == "bin")))
        .find_map(|message| message["executable"].as_str().map(PathBuf::from))
}

async fn host_triple() -> Result<String, BuildError> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let output = tokio::process::Command::new(&rustc)
        .arg("-vV")
        .output()
        .await
        .map_err(|error| BuildError::Cargo { reason: format!("cannot run rustc: {error}") })?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(BuildError::Cargo { reason: format!("`rustc -vV` failed: {}{}", output.status, tail(&stderr, 5)) });
    }
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .find_map(|line| line.strip_prefix("host: ").map(str::to_owned))
        .ok_or_else(|| BuildError::Cargo { reason: "`rustc -vV` names no host".to_owned() })
}

/// The Dockerfile plat packages a cargo binary with.
fn cargo_dockerfile(bin: &str, ports: impl Iterator<Item = u16>) -> String {
    let expose: Vec<String> = ports.map(|port| port.to_string()).collect();
    let mut dockerfile = format!(
        "# Written by plat build: a static binary, nothing else, run as a non-root user.\n\
         FROM scratch\nCOPY {bin} /{bin}\nUSER 10001:10001\n"
    );
    if !expose.is_empty() {
        dockerfile.push_str(&format!("EXPOSE {}\n", expose.join(" ")));
    }
    dockerfile.push_str(&format!("ENTRYPOINT [\"/{bin}\"]\n"));
    dockerfile
}

fn cargo_context(binary: &Path, bin: &str, ports: impl Iterator<Item = u16>) -> Result<Context, BuildError> {
    let read = |path: &Path| fs_err::read(path).map_err(|error| BuildError::Context { path: path.to_owned(), error });
    let mut tar = TarWriter::new();
    tar.file("Dockerfile", cargo_dockerfile(bin, ports).as_bytes(), 0o644);
    tar.file(bin, &read(binary)?, 0o755);
    Ok(tar.finish())
}

/// The context directory as a tar (minus what `.dockerignore` excludes) and the Dockerfile's
/// path inside it; a Dockerfile outside the context is added under a name of plat's.
fn dockerfile_context(context_dir: &Path, dockerfile: &Path) -> Result<(Context, String), BuildError> {
    let context_error = |path: &Path| {
        let path = path.to_owned();
        move |error| BuildError::Context { path, error }
    };
    let ignore_text = match fs_err::read_to_string(context_dir.join(".dockerignore")) {
        Ok(text) => Some(text),
        Err(error) if error.kind() == io::ErrorKind::NotFound => None,
        Err(error) => return Err(context_error(&context_dir.join(".dockerignore"))(error)),
    };
    let ignore = ignore_text.as_deref().map(DockerIgnore::parse).unwrap_or_default();
    let mut tar = TarWriter::new();
    add_directory(&mut tar, context_dir, Path::new(""), &ignore)?;
    // As the Docker CLI does: the Dockerfile and .dockerignore are always sent (the Engine reads
    // them, then leaves them out of what COPY sees when .dockerignore names them). A Dockerfile
    // outside the context, or one .dockerignore excludes, goes under a name of plat's, which the
    // .dockerignore sent names so that it never ends up in the image.
    let inside = dockerfile.strip_prefix(context_dir).ok().map(|path| path.to_string_lossy().replace('\\', "/"));
    let (name, ignore_text) = match inside {
        Some(name) if context_dir.join(&name).is_file() && !ignore.excludes(&name) => (name, ignore_text),
        _ => {
            let text = fs_err::read(dockerfile).map_err(context_error(dockerfile))?;
            tar.file(PLAT_DOCKERFILE, &text, 0o644);
            let ignore_text = match ignore_text {
                Some(text) => format!("{text}\n{PLAT_DOCKERFILE}\n"),
                // .dockerignore too: it is plat's, not the service's.
                None => format!("{PLAT_DOCKERFILE}\n.dockerignore\n"),
            };
            (PLAT_DOCKERFILE.to_owned(), Some(ignore_text))
        }
    };
    if let Some(text) = ignore_text {
        tar.file(".dockerignore", text.as_bytes(), 0o644);
    }
    Ok((tar.finish(), name))
}

/// The name plat gives a Dockerfile it adds to a context.
const PLAT_DOCKERFILE: &str = ".plat.Dockerfile";

/// Adds the files below `context_dir/relative` that `.dockerignore` leaves in, sorted by name
/// so that the same files give the same tar and the same hash.
fn add_directory(
    tar: &mut TarWriter,
    context_dir: &Path,
    relative: &Path,
    ignore: &DockerIgnore,
) -> Result<(), BuildError> {
    let context_error = |path: PathBuf| move |error| BuildError::Context { path, error };
    let dir = context_dir.join(relative);
    let mut entries: Vec<_> = fs_err::read_dir(&dir)
        .map_err(context_error(dir.clone()))?
        .collect::<Result<_, _>>()
        .map_err(context_error(dir))?;
    entries.sort_by_key(|entry| entry.file_name());
    for entry in entries {
        let path = relative.join(entry.file_name());
        let name = path.to_string_lossy().replace('\\', "/");
        if name == ".dockerignore" {
            continue; // dockerfile_context adds it, whatever it says of itself.
        }
        let file_type = entry.file_type().map_err(context_error(entry.path()))?;
        if ignore.excludes(&name) && !(file_type.is_dir() && ignore.may_include_below(&name)) {
            continue;
        }
        if file_type.is_dir() {
            tar.directory(&name);
            add_directory(tar, context_dir, &path, ignore)?;
        } else if file_type.is_symlink() {
            let target = fs_err::read_link(entry.path()).map_err(context_error(entry.path()))?;
            tar.symlink(&name, &target);
        } else if file_type.is_file() {
            let bytes = fs_err::read(entry.path()).map_err(context_error(entry.path()))?;
            tar.file(&name, &bytes, executable_mode(&entry.path()));
        }
        // Sockets, FIFOs and devices are left out: reading a FIFO would block.
    }
    Ok(())
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

#[cfg(unix)]
fn executable_mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::metadata(path) {
        Ok(metadata) if metadata.permissions().mode() & 0o111 != 0 => 0o755,
        _ => 0o644,
    }
}

#[cfg(not(unix))]
fn executable_mode(_: &Path) -> u32 {
    0o644
}

/// A build context: the tar the Engine gets, and a digest of each entry for `--explain`.
#[derive(Debug)]
struct Context {
    tar: Vec<u8>,
    files: BTreeMap<String, String>,
}

/// A tar archive in memory with fixed owners and times, so equal files give equal bytes.
struct TarWriter {
    builder: tar::Builder<Vec<u8>>,
    files: BTreeMap<String, String>,
}

impl TarWriter {
    fn new() -> TarWriter {
        TarWriter { builder: tar::Builder::new(Vec::new()), files: BTreeMap::new() }
    }

    fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(kind);
        header.set_mode(mode);
        header.set_size(size);
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        header
    }

    fn file(&mut self, name: &str, bytes: &[u8], mode: u32) {
        let mut header = Self::header(tar::EntryType::Regular, mode, bytes.len() as u64);
        // Writing to a Vec cannot fail; a name tar cannot store is a bug worth knowing.
        self.builder.append_data(&mut header, name, bytes).expect("a context entry is written to memory");
        self.files.insert(name.to_owned(), format!("{}:{mode:o}", digest(bytes)));
    }

    fn directory(&mut self, name: &str) {
        let mut header = Self::header(tar::EntryType::Directory, 0o755, 0);
        let path = format!("{name}/");
        self.builder.append_data(&mut header, &path, io::empty()).expect("a context directory is written to memory");
        self.files.insert(path, "dir".to_owned());
    }

    fn symlink(&mut self, name: &str, target: &Path) {
        let mut header = Self::header(tar::EntryType::Symlink, 0o777, 0);
        self.builder.append_link(&mut header, name, target).expect("a context link is written to memory");
        self.files.insert(name.to_owned(), format!("-> {}", target.display()));
    }

    fn finish(self) -> Context {
        Context { tar: self.builder.into_inner().expect("a tar in memory finishes"), files: self.files }
    }
}

/// The patterns of a `.dockerignore`, in order; a later match wins, `!` re-includes.
#[derive(Debug, Default)]
struct DockerIgnore {
    rules: Vec<(bool, Vec<String>)>,
}

impl DockerIgnore {
    fn parse(text: &str) -> DockerIgnore {
        let rules = text
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with('#'))
            .map(|line| {
                let (include, pattern) = match line.strip_prefix('!') {
                    Some(pattern) => (true, pattern.trim()),
                    None => (false, line),
                };
                let segments = pattern
                    .trim_matches('/')
                    .split('/')
                    .filter(|segment| !segment.is_empty() && *segment != ".")
                    .map(str::to_owned)
                    .collect();
                (include, segments)
            })
            .collect();
        DockerIgnore { rules }
    }

    /// Whether the path (relative, `/`-separated) is left out of the context: it, or a
    /// directory above it, matches the last rule that matches.
    fn excludes(&self, path: &str) -> bool {
        let segments: Vec<&str> = path.split('/').collect();
        let mut excluded = false;
        for (include, pattern) in &self.rules {
            let matches = (1..=segments.len()).any(|len| glob_segments(pattern, &segments[..len]));
            if matches {
                excluded = !include;
            }
        }
        excluded
    }

    /// Whether an excluded directory may still hold a re-included file (so it must be walked).
    fn may_include_below(&self, dir: &str) -> bool {
        let dir = format!("{dir}/");
        self.rules.iter().filter(|(include, _)| *include).any(|(_, pattern)| {
            let pattern = format!("{}/", pattern.join("/"));
            pattern.contains(['*', '?']) || pattern.starts_with(&dir)
        })
    }
}

/// Whether path segments match pattern segments; `**` matches any number of segments.
fn glob_segments(pattern: &[String], path: &[&str]) -> bool {
    match pattern.split_first() {
        None => path.is_empty(),
        Some((first, rest)) if first == "**" => (0..=path.len()).any(|skip| glob_segments(rest, &path[skip..])),
        Some((first, rest)) => {
            path.split_first().is_some_and(|(segment, path)| glob(first, segment) && glob_segments(rest, path))
        }
    }
}

/// `*` and `?` within one segment.
fn glob(pattern: &str, text: &str) -> bool {
    let (pattern, text): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut p, mut t, mut star, mut mark) = (0, 0, None, 0);
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == '?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == '*' {
            star = Some(p);
            mark = t;
            p += 1;
        } else if let Some(star) = star {
            p = star + 1;
            mark += 1;
            t = mark;
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|c| *c == '*')
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
    // Both pipes drained together, so a chatty command cannot block on a full one.
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let read_out = async {
        if let Some(stdout) = stdout.as_mut() {
            let _ = stdout.read_to_end(&mut out).await;
        }
    };
    let read_err = async {
        if let Some(stderr) = stderr.as_mut() {
            let _ = stderr.read_to_end(&mut err).await;
        }
    };
    tokio::join!(read_out, read_err);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dockerignore_excludes_paths_and_what_is_below_them() {
        let ignore = DockerIgnore::parse("# build output\ntarget/\n*.env\n**/secret*\n!keep.env\n/dist\n");
        assert!(ignore.excludes("target"));
        assert!(ignore.excludes("target/release/app"));
        assert!(ignore.excludes("prod.env"));
        assert!(!ignore.excludes("keep.env"), "re-included by the later `!` rule");
        assert!(ignore.excludes("config/secret.json"));
        assert!(ignore.excludes("secrets/key"));
        assert!(ignore.excludes("dist/app"));
        assert!(!ignore.excludes("src/main.rs"));
        assert!(!ignore.excludes("sub/prod.env"), "`*.env` is anchored at the context root");
        assert!(!DockerIgnore::default().excludes("anything"));
    }

    #[test]
    fn a_dynamically_linked_binary_is_told_from_a_static_one() {
        // A 64-bit little-endian ELF header with one program header, of type `ty`.
        let elf = |ty: u32| {
            let mut bytes = vec![0u8; 64 + 56];
            bytes[..4].copy_from_slice(b"\x7fELF");
            bytes[4] = 2;
            bytes[5] = 1;
            bytes[0x20..0x28].copy_from_slice(&64u64.to_le_bytes());
            bytes[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
            bytes[0x38..0x3a].copy_from_slice(&1u16.to_le_bytes());
            bytes[64..68].copy_from_slice(&ty.to_le_bytes());
            bytes
        };
        assert!(asks_for_an_interpreter(&elf(3)), "PT_INTERP");
        assert!(!asks_for_an_interpreter(&elf(1)), "PT_LOAD only");
        assert!(!asks_for_an_interpreter(b"#!/bin/sh\n"), "not ELF");
        let mut truncated = elf(3);
        truncated.truncate(66);
        assert!(!asks_for_an_interpreter(&truncated), "a table past the end is not read");
        // The real thing: this test binary is linked dynamically by default.
        let me = fs_err::read(std::env::current_exe().unwrap()).unwrap();
        assert!(asks_for_an_interpreter(&me));
    }

    #[test]
    fn globs_match_within_a_segment() {
        assert!(glob("*.sql", "V1__init.sql"));
        assert!(glob("V?__*", "V1__init.sql"));
        assert!(!glob("*.sql", "init.sql.bak"));
        assert!(glob("*", ""));
        assert!(!glob("a", ""));
    }

    #[test]
    fn cargo_messages_name_the_binary() {
        let messages = r#"{"reason":"compiler-artifact","target":{"name":"pkg","kind":["lib"]},"executable":null}
{"reason":"compiler-artifact","target":{"name":"user-service","kind":["bin"]},"executable":"/t/release/user-service"}
{"reason":"build-finished","success":true}"#;
        assert_eq!(executable(messages, "user-service"), Some(PathBuf::from("/t/release/user-service")));
        assert_eq!(executable(messages, "other"), None);
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
        assert_eq!(first.tar, second.tar);
        let names: Vec<String> = tar::Archive::new(first.tar.as_slice())
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
            tar: Vec::new(),
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

    #[test]
    fn the_dockerfile_is_sent_even_when_ignored() {
        let dir = tempfile::tempdir().unwrap();
        fs_err::write(dir.path().join("Dockerfile"), "FROM scratch\n").unwrap();
        fs_err::write(dir.path().join(".dockerignore"), "*\n").unwrap();
        let (context, name) = dockerfile_context(dir.path(), &dir.path().join("Dockerfile")).unwrap();
        assert_eq!(name, ".plat.Dockerfile");
        let mut archive = tar::Archive::new(context.tar.as_slice());
        let entries: Vec<(String, String)> = archive
            .entries()
            .unwrap()
            .map(|entry| {
                let mut entry = entry.unwrap();
                let mut text = String::new();
                std::io::Read::read_to_string(&mut entry, &mut text).unwrap();
                (entry.path().unwrap().to_string_lossy().into_owned(), text)
            })
            .collect();
        // The .dockerignore sent names plat's Dockerfile, so that `COPY . /app` leaves it out.
        assert_eq!(
            entries,
            [
                (".plat.Dockerfile".to_owned(), "FROM scratch\n".to_owned()),
                (".dockerignore".to_owned(), "*\n\n.plat.Dockerfile\n".to_owned())
            ]
        );
    }

    #[test]
    fn a_cargo_image_is_one_binary_run_as_a_non_root_user() {
        let dockerfile = cargo_dockerfile("user-service", [50051, 9090].into_iter());
        assert_eq!(
            dockerfile,
            "# Written by plat build: a static binary, nothing else, run as a non-root user.\nFROM scratch\n\
             COPY user-service /user-service\nUSER 10001:10001\nEXPOSE 50051 9090\nENTRYPOINT [\"/user-service\"]\n"
        );
    }
}
