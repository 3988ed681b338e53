//! Cargo services: compiled on the host as a static Linux binary with the profile the manifest
//! asks for, and the record that lets the next build skip cargo altogether.
//!
//! After each build plat records, in `.plat/builds/<service>.json`, what the binary was made
//! from: a digest of every local source file cargo read (from cargo's own dep-info file, so it is
//! exactly the files the compiler opened, pkg's included, wherever they are: a checkout may be a
//! symlink, a path dependency may sit beside the workspace), the manifests and lock file, and the
//! recipe (profile, target, flags, rustc); and the image it became. The next build compares: when
//! nothing differs and that image is still here, cargo does not run. The registry's and git
//! dependencies' sources (under `CARGO_HOME`) are pinned by Cargo.lock, which is compared instead
//! of their thousands of files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;

use tokio::io::AsyncBufReadExt;

use super::context::{Context, TarWriter};
use super::{BuildError, digest};
use crate::manifest::{Service, Workspace};
use crate::text::tail;

/// Appended to the user's flags. A static binary runs FROM scratch; with an explicit --target
/// the flag reaches only the binary, not build scripts and proc macros. (Setting RUSTFLAGS makes
/// cargo ignore `build.rustflags` of .cargo/config.toml, as it always does.)
const STATIC: &str = "-C target-feature=+crt-static";

/// Everything one cargo build of a service is made with, but its sources.
#[derive(Debug, Clone)]
pub(super) struct Recipe {
    root: PathBuf,
    service_dir: PathBuf,
    target_dir: PathBuf,
    package: Option<String>,
    bin: String,
    profile: String,
    host: String,
    /// The rustflags variable cargo reads, and its value with plat's flag appended.
    flags: (&'static str, String),
    /// A digest of all of the above that changes the binary, and of rustc's version.
    key: String,
}

impl Recipe {
    /// The recipe of `service`'s build with `profile`; fails on a host that cannot build a
    /// Linux binary for a container.
    pub(super) async fn new(
        workspace: &Workspace,
        service_dir: &Path,
        package: Option<&str>,
        bin: &str,
        profile: &str,
    ) -> Result<Recipe, BuildError> {
        let rustc = rustc_version(workspace).await?;
        let host = rustc
            .lines()
            .find_map(|line| line.strip_prefix("host: ").map(str::to_owned))
            .ok_or_else(|| BuildError::Cargo { reason: "`rustc -vV` names no host".to_owned() })?;
        if !host.contains("-linux-") {
            return Err(BuildError::HostNotLinux { host });
        }
        let target_dir = crate::state::cargo_target_dir(workspace)
            .map_err(|error| BuildError::Context { path: crate::state::dir(workspace), error })?;
        let flags = match (std::env::var("CARGO_ENCODED_RUSTFLAGS"), std::env::var("RUSTFLAGS")) {
            // cargo reads this one first, its flags separated by 0x1f.
            (Ok(encoded), _) if !encoded.is_empty() => {
                ("CARGO_ENCODED_RUSTFLAGS", format!("{encoded}\x1f{}", STATIC.replace(' ', "\x1f")))
            }
            (_, Ok(flags)) if !flags.trim().is_empty() => ("RUSTFLAGS", format!("{flags} {STATIC}")),
            _ => ("RUSTFLAGS", STATIC.to_owned()),
        };
        let mut hasher = Sha256::new();
        for part in [&rustc, &host, profile, bin, package.unwrap_or(""), flags.0, &flags.1] {
            hasher.update(part.as_bytes());
            hasher.update(b"\0");
        }
        hasher.update(target_dir.as_os_str().as_encoded_bytes());
        Ok(Recipe {
            root: workspace.root.clone(),
            service_dir: service_dir.to_path_buf(),
            target_dir,
            package: package.map(str::to_owned),
            bin: bin.to_owned(),
            profile: profile.to_owned(),
            host,
            flags,
            key: crate::text::hex(&hasher.finalize()),
        })
    }
}

/// What a cargo build produced.
#[derive(Debug)]
pub(super) struct Output {
    /// The binary.
    pub(super) binary: PathBuf,
    /// cargo's dep-info file beside it: every file the binary was compiled from.
    dep_info: PathBuf,
    /// When cargo started: a source changed after this may not be in the binary.
    started: SystemTime,
    /// The target directory's build lock, held until the image is made and the build recorded.
    _lock: Option<std::fs::File>,
}

/// `rustc -vV`, once per process: its version and host are part of every recipe.
///
/// Spawning rustc (through rustup's proxy) is most of a no-op `plat up`, so its answer is kept in
/// `.plat/rustc.json` with what it depends on, as cargo keeps its own `.rustc_info.json`: the
/// rustc that runs (`RUSTC` or the one on `PATH`), rustup's toolchains and settings, the
/// toolchain files above the current directory. Any of them changed, and rustc runs again.
pub(crate) async fn rustc_version(workspace: &Workspace) -> Result<String, BuildError> {
    static VERSION: OnceCell<String> = OnceCell::const_new();
    VERSION
        .get_or_try_init(|| async {
            let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
            let cache = crate::state::dir(workspace).join("rustc.json");
            let identity = rustc_identity(&rustc);
            if let Some(cached) = read_rustc_cache(&cache, &identity) {
                return Ok(cached);
            }
            let output = tokio::process::Command::new(&rustc)
                .arg("-vV")
                .output()
                .await
                .map_err(|error| BuildError::Cargo { reason: format!("cannot run rustc: {error}") })?;
            if !output.status.success() {
                let stderr = String::from_utf8_lossy(&output.stderr);
                return Err(BuildError::Cargo {
                    reason: format!("`rustc -vV` failed: {}{}", output.status, tail(&stderr, 5)),
                });
            }
            let version = String::from_utf8_lossy(&output.stdout).into_owned();
            // A cache that cannot be written costs the next run a spawn, nothing else.
            let record = serde_json::json!({ "identity": identity, "output": version });
            if crate::state::ensure(workspace).is_ok() {
                let _ = std::fs::write(&cache, record.to_string());
            }
            Ok(version)
        })
        .await
        .cloned()
}

/// What `rustc -vV` answers depends on: each file that decides which rustc runs, with its size
/// and modification time.
fn rustc_identity(rustc: &std::ffi::OsStr) -> String {
    fn stamp(path: &Path) -> String {
        match std::fs::metadata(path) {
            Ok(meta) => {
                let modified = meta.modified().ok().and_then(|time| time.duration_since(SystemTime::UNIX_EPOCH).ok());
                format!("{} {} {}", path.display(), meta.len(), modified.map_or(0, |time| time.as_nanos()))
            }
            Err(_) => format!("{} -", path.display()),
        }
    }
    let mut parts = vec![format!("RUSTC={}", rustc.to_string_lossy())];
    match which::which(rustc) {
        Ok(path) => parts.push(stamp(&path)),
        Err(_) => parts.push("not found".to_owned()),
    }
    for var in ["RUSTUP_TOOLCHAIN", "RUSTUP_HOME"] {
        parts.push(format!("{var}={}", std::env::var(var).unwrap_or_default()));
    }
    let rustup_home = std::env::var_os("RUSTUP_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::home_dir().map(|home| home.join(".rustup")));
    if let Some(home) = rustup_home {
        parts.push(stamp(&home.join("settings.toml")));
        let mut toolchains: Vec<PathBuf> = std::fs::read_dir(home.join("toolchains"))
            .map(|entries| entries.filter_map(Result::ok).map(|entry| entry.path().join("bin/rustc")).collect())
            .unwrap_or_default();
        toolchains.sort();
        parts.extend(toolchains.iter().map(|path| stamp(path)));
    }
    if let Ok(dir) = std::env::current_dir() {
        for ancestor in dir.ancestors() {
            for name in ["rust-toolchain", "rust-toolchain.toml"] {
                let file = ancestor.join(name);
                if file.exists() {
                    parts.push(stamp(&file));
                }
            }
        }
    }
    parts.join("\n")
}

fn read_rustc_cache(cache: &Path, identity: &str) -> Option<String> {
    let record: serde_json::Value = serde_json::from_slice(&std::fs::read(cache).ok()?).ok()?;
    (record["identity"].as_str()? == identity).then(|| record["output"].as_str().map(str::to_owned))?
}

/// Compiles the recipe's binary, static, for the host's Linux target, into the workspace's
/// target directory, and returns it with its dep-info file.
pub(super) async fn build(recipe: &Recipe, show_output: bool) -> Result<Output, BuildError> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = tokio::process::Command::new(&cargo);
    command
        .current_dir(&recipe.service_dir)
        .args(["build", "--message-format=json-render-diagnostics", "--target", &recipe.host, "--bin", &recipe.bin])
        .args(profile_args(&recipe.profile))
        .env(recipe.flags.0, &recipe.flags.1)
        .env("CARGO_TARGET_DIR", &recipe.target_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(if show_output { Stdio::inherit() } else { Stdio::piped() })
        .kill_on_drop(true);
    if let Some(package) = &recipe.package {
        command.args(["--package", package]);
    }
    // The binary and its dep-info are at paths named by the binary's name alone
    // (`<target>/<host>/debug/<bin>`): another checkout's build of the same service into the
    // same target directory (two workspaces, one CARGO_TARGET_DIR) would overwrite them between
    // this build and the image made from them. plat's builds into one target directory take
    // turns, from cargo's start until the image exists; cargo would serialise them anyway.
    let lock = lock_target_dir(&recipe.target_dir).await.map_err(|error| BuildError::Cargo {
        reason: format!("cannot lock the target directory {}: {error}", recipe.target_dir.display()),
    })?;
    let started = SystemTime::now();
    let mut child = command.spawn().map_err(|error| BuildError::Cargo {
        reason: format!("cannot run {}: {error}", PathBuf::from(&cargo).display()),
    })?;
    // cargo's JSON messages are read as they come, keeping only the binary's path; its stderr
    // (the compiler's messages, when not shown as they come) only as much as an error needs.
    let stdout = child.stdout.take().expect("piped");
    let stderr = child.stderr.take();
    let bin = &recipe.bin;
    let messages = async {
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let mut binary = None;
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(found) = executable(&line, bin) {
                binary = Some(found);
            }
        }
        binary
    };
    let diagnostics = async {
        let mut kept = Diagnostics::default();
        if let Some(stderr) = stderr {
            let mut lines = tokio::io::BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                kept.push(line);
            }
        }
        kept
    };
    let (binary, diagnostics) = tokio::join!(messages, diagnostics);
    let status = child.wait().await.map_err(|error| BuildError::Cargo { reason: error.to_string() })?;
    if !status.success() {
        return Err(BuildError::Cargo { reason: format!("{status}{}", diagnostics.text()) });
    }
    let binary = binary.ok_or_else(|| BuildError::Cargo {
        reason: format!("it built no binary named `{bin}` (set build = {{ cargo = {{ bin = \"...\" }} }})"),
    })?;
    let elf = read_head(&binary).map_err(|error| BuildError::Context { path: binary.clone(), error })?;
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
    let dep_info = binary.with_extension("d");
    Ok(Output { binary, dep_info, started, _lock: Some(lock) })
}

/// `<target>/plat-build.lock`, locked exclusively, once no other plat build holds it.
async fn lock_target_dir(target_dir: &Path) -> std::io::Result<std::fs::File> {
    fs_err::create_dir_all(target_dir)?;
    let file = fs_err::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(target_dir.join("plat-build.lock"))?
        .into_parts()
        .0;
    tokio::task::spawn_blocking(move || file.lock().map(|()| file)).await.map_err(std::io::Error::other)?
}

/// cargo's options for a profile: none for `dev`, `--release`, or `--profile NAME`.
fn profile_args(profile: &str) -> Vec<&str> {
    match profile {
        "dev" => Vec::new(),
        "release" => vec!["--release"],
        other => vec!["--profile", other],
    }
}

/// The first bytes of a file: an ELF's headers are all [`asks_for_an_interpreter`] reads (the
/// program headers of a binary start within its first few kilobytes).
fn read_head(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut head = Vec::new();
    fs_err::File::open(path)?.take(64 * 1024).read_to_end(&mut head)?;
    Ok(head)
}

/// What a person needs of a failed cargo build's stderr: the compiler's messages from the first
/// error on (at most [`Diagnostics::FROM_ERROR`] lines), else its last lines; the progress lines
/// before them, and anything beyond, are not kept.
#[derive(Debug, Default)]
struct Diagnostics {
    /// The lines from the first error on.
    errors: Vec<String>,
    /// How many lines after those were dropped.
    dropped: usize,
    /// The last lines, while no error was seen.
    tail: std::collections::VecDeque<String>,
}

impl Diagnostics {
    const FROM_ERROR: usize = 80;
    const TAIL: usize = 20;

    fn push(&mut self, line: String) {
        if self.errors.is_empty() && !line.starts_with("error") {
            if self.tail.len() == Self::TAIL {
                self.tail.pop_front();
            }
            self.tail.push_back(line);
        } else if self.errors.len() < Self::FROM_ERROR {
            self.errors.push(line);
        } else {
            self.dropped += 1;
        }
    }

    /// The kept lines, each after a newline.
    fn text(&self) -> String {
        if self.errors.is_empty() {
            let lines: Vec<&str> = self.tail.iter().map(String::as_str).collect();
            return tail(&lines.join("\n"), Self::TAIL);
        }
        let mut text: String = self.errors.iter().map(|line| format!("\n{line}")).collect();
        if self.dropped > 0 {
            text.push_str(&format!("\n... {} more lines (`plat build -v` shows them all)", self.dropped));
        }
        text
    }
}

/// Whether the sources of the last build are those of this one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Sources {
    /// Every file the last build read is as it was, and so is the recipe.
    Unchanged,
    /// What differs, for `--explain`.
    Changed(Vec<String>),
}

/// What the last build of a service was made from, and the image it became.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Record {
    /// [`Recipe::key`].
    recipe: String,
    /// Each source file (relative to the workspace root when inside it) with a digest of it.
    files: BTreeMap<String, String>,
    /// The image id.
    pub(super) image: String,
}

impl Record {
    fn path(workspace: &Workspace, service: &Service) -> PathBuf {
        crate::state::dir(workspace).join("builds").join(format!("{}.json", service.name))
    }

    /// The record of the service's last build, if there is a readable one.
    pub(super) fn read(workspace: &Workspace, service: &Service) -> Option<Record> {
        let text = std::fs::read_to_string(Self::path(workspace, service)).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Compares the record with the sources as they are now, under `recipe`.
    pub(super) fn compare(&self, recipe: &Recipe) -> Sources {
        if self.recipe != recipe.key {
            return Sources::Changed(vec![
                "the profile, target, flags or rustc changed since the last build".to_owned(),
            ]);
        }
        self.compare_sources(&recipe.root)
    }

    /// Compares only the source files the last build read with those under the workspace `root`
    /// now: whether the binary holds the code, whatever the recipe.
    pub(super) fn compare_sources(&self, root: &Path) -> Sources {
        let mut changed = Vec::new();
        let mut removed = Vec::new();
        for (name, was) in &self.files {
            match file_digest(&root.join(name)) {
                Some(now) if &now == was => {}
                Some(_) => changed.push(name.as_str()),
                None => removed.push(name.as_str()),
            }
        }
        if changed.is_empty() && removed.is_empty() {
            return Sources::Unchanged;
        }
        let list = |names: &[&str]| {
            let shown = names.iter().take(10).copied().collect::<Vec<_>>().join(", ");
            match names.len().saturating_sub(10) {
                0 => shown,
                more => format!("{shown} and {more} more"),
            }
        };
        let mut reasons = Vec::new();
        if !changed.is_empty() {
            reasons.push(format!("changed: {}", list(&changed)));
        }
        if !removed.is_empty() {
            reasons.push(format!("removed: {}", list(&removed)));
        }
        Sources::Changed(reasons)
    }

    /// Records what `output` was built from, as the image `image`. Not recorded (so the next
    /// build runs cargo) when a source changed while cargo ran: the binary may predate it.
    pub(super) fn write(
        workspace: &Workspace,
        service: &Service,
        recipe: &Recipe,
        output: &Output,
        image: &str,
    ) -> std::io::Result<()> {
        let path = Self::path(workspace, service);
        let _ = std::fs::remove_file(&path);
        let Some(files) = sources(recipe, output)? else { return Ok(()) };
        let record = Record { recipe: recipe.key.clone(), files, image: image.to_owned() };
        crate::state::ensure(workspace)?;
        fs_err::create_dir_all(path.parent().expect("a record has a directory"))?;
        let temporary = path.with_extension("json.tmp");
        fs_err::write(&temporary, serde_json::to_vec_pretty(&record).expect("a record serialises"))?;
        fs_err::rename(&temporary, &path)
    }
}

/// The files a build read that plat compares next time, with their digests: those of the
/// dep-info outside the target directory and `CARGO_HOME` (whose crates Cargo.lock pins), the
/// Cargo.toml of every package they belong to, the service's Cargo.lock, and cargo's
/// configuration files above the service. `None` when one of them changed after cargo started.
fn sources(recipe: &Recipe, output: &Output) -> std::io::Result<Option<BTreeMap<String, String>>> {
    let text = fs_err::read_to_string(&output.dep_info)?;
    // dep-info names files by their real paths: compare with the real paths of these.
    let real = |path: &Path| std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let pinned: Vec<PathBuf> =
        [Some(real(&recipe.target_dir)), cargo_home().map(|home| real(&home))].into_iter().flatten().collect();
    let mut paths: Vec<PathBuf> = dep_info_files(&text)
        .into_iter()
        .map(PathBuf::from)
        .filter(|path| !pinned.iter().any(|dir| path.starts_with(dir)))
        .collect();
    let mut extra = vec![recipe.service_dir.join("Cargo.toml"), recipe.service_dir.join("Cargo.lock")];
    for path in &paths {
        // The nearest Cargo.toml above each source: its package's manifest.
        if let Some(manifest) =
            path.ancestors().skip(1).map(|dir| dir.join("Cargo.toml")).find(|manifest| manifest.is_file())
        {
            extra.push(manifest);
        }
    }
    // cargo reads the configuration of every directory above the one it runs in.
    for dir in real(&recipe.service_dir).ancestors() {
        extra.extend([dir.join(".cargo/config.toml"), dir.join(".cargo/config")]);
    }
    paths.extend(extra.into_iter().filter(|path| path.is_file()));
    // One file reached two ways (through a symlinked checkout, and by its real path) is one.
    let mut paths: Vec<PathBuf> = paths.iter().map(|path| real(path)).collect();
    paths.sort();
    paths.dedup();
    let root = real(&recipe.root);
    let mut files = BTreeMap::new();
    for path in paths {
        let metadata = fs_err::metadata(&path)?;
        if metadata.modified().is_ok_and(|modified| modified >= output.started) {
            return Ok(None);
        }
        let Some(digest) = file_digest(&path) else { continue };
        // Relative to the workspace when inside it (the record survives moving the workspace);
        // a file outside it by its real path.
        let name = path.strip_prefix(&root).unwrap_or(&path).to_string_lossy().replace('\\', "/");
        files.insert(name, digest);
    }
    Ok(Some(files))
}

/// Where cargo keeps the registry's and git dependencies' sources.
fn cargo_home() -> Option<PathBuf> {
    std::env::var_os("CARGO_HOME")
        .filter(|home| !home.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::home_dir().map(|home| home.join(".cargo")))
}

/// A digest of a file's content; `None` when it cannot be read.
fn file_digest(path: &Path) -> Option<String> {
    std::fs::read(path).ok().map(|bytes| digest(&bytes))
}

/// The prerequisites of a Makefile-style dep-info file (`target: a.rs b.rs`), with `\ ` for a
/// space in a name, as cargo writes them.
fn dep_info_files(text: &str) -> Vec<String> {
    let mut files = Vec::new();
    for line in text.lines() {
        let Some((_, prerequisites)) = split_target(line) else { continue };
        let mut current = String::new();
        let mut chars = prerequisites.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\\' if chars.peek().is_some_and(|next| *next == ' ' || *next == '\\') => {
                    current.push(chars.next().expect("peeked"));
                }
                ' ' | '\t' => {
                    if !current.is_empty() {
                        files.push(std::mem::take(&mut current));
                    }
                }
                c => current.push(c),
            }
        }
        if !current.is_empty() {
            files.push(current);
        }
    }
    files.sort();
    files.dedup();
    files
}

/// `target: prerequisites` split at the first `:` that is not escaped and not a Windows drive's.
fn split_target(line: &str) -> Option<(&str, &str)> {
    let bytes = line.as_bytes();
    (0..bytes.len())
        .find(|&i| {
            bytes[i] == b':' && (i == 0 || bytes[i - 1] != b'\\') && bytes.get(i + 1).is_none_or(|next| *next == b' ')
        })
        .map(|i| (&line[..i], line[i + 1..].trim_start()))
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

/// The path of binary `bin` among cargo's JSON messages (one per line).
fn executable(messages: &str, bin: &str) -> Option<PathBuf> {
    messages
        .lines()
        .filter(|line| line.contains("compiler-artifact"))
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|message| message["reason"] == "compiler-artifact" && message["target"]["name"] == bin)
        .filter(|message| message["target"]["kind"].as_array().is_some_and(|kinds| kinds.iter().any(|k| k == "bin")))
        .find_map(|message| message["executable"].as_str().map(PathBuf::from))
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

/// The image's context: the binary and the Dockerfile that packages it.
pub(super) fn image_context(binary: &Path, bin: &str, ports: impl Iterator<Item = u16>) -> Result<Context, BuildError> {
    let failed = |error| BuildError::Context { path: binary.to_owned(), error };
    let mut tar = TarWriter::new().map_err(failed)?;
    tar.file("Dockerfile", cargo_dockerfile(bin, ports).as_bytes(), 0o644).map_err(failed)?;
    tar.file_from(bin, binary, 0o755).map_err(failed)?;
    tar.finish().map_err(failed)
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn cargo_messages_name_the_binary() {
        let messages = r#"{"reason":"compiler-artifact","target":{"name":"pkg","kind":["lib"]},"executable":null}
{"reason":"compiler-artifact","target":{"name":"user-service","kind":["bin"]},"executable":"/t/release/user-service"}
{"reason":"build-finished","success":true}"#;
        assert_eq!(executable(messages, "user-service"), Some(PathBuf::from("/t/release/user-service")));
        assert_eq!(executable(messages, "other"), None);
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

    #[test]
    fn dep_info_lists_every_prerequisite_once() {
        let text = "/t/debug/svc: /ws/svc/src/main.rs /ws/pkg/src/lib.rs /ws/my\\ dir/a.rs\n\n/ws/svc/src/main.rs:\n";
        assert_eq!(dep_info_files(text), ["/ws/my dir/a.rs", "/ws/pkg/src/lib.rs", "/ws/svc/src/main.rs"]);
        assert_eq!(dep_info_files(""), Vec::<String>::new());
    }

    #[test]
    fn failed_builds_show_the_compiler_errors_not_the_progress() {
        let stderr = "   Compiling pkg v0.1.0\n   Compiling svc v0.1.0\nerror[E0308]: mismatched types\n --> src/lib.rs:3:5\n  |\nerror: could not compile `svc`\n";
        let mut kept = Diagnostics::default();
        for line in stderr.lines() {
            kept.push(line.to_owned());
        }
        let shown = kept.text();
        assert!(shown.starts_with("\nerror[E0308]: mismatched types\n --> src/lib.rs:3:5"), "{shown}");
        assert!(!shown.contains("Compiling"), "{shown}");
        let mut flood = Diagnostics::default();
        for line in 0..10_000 {
            flood.push(format!("error: line {line}"));
        }
        assert_eq!(flood.errors.len(), Diagnostics::FROM_ERROR, "a flood of errors is kept bounded");
        assert!(flood.text().ends_with("9920 more lines (`plat build -v` shows them all)"), "{}", flood.text());
        assert_eq!(profile_args("dev"), Vec::<&str>::new());
        assert_eq!(profile_args("release"), ["--release"]);
        assert_eq!(profile_args("ci"), ["--profile", "ci"]);
    }

    #[tokio::test]
    async fn builds_into_one_target_directory_take_turns() {
        let dir = tempfile::tempdir().unwrap();
        let held = lock_target_dir(&dir.path().join("target")).await.unwrap();
        let other = std::fs::OpenOptions::new().write(true).open(dir.path().join("target/plat-build.lock")).unwrap();
        assert!(matches!(other.try_lock(), Err(std::fs::TryLockError::WouldBlock)), "another build waits");
        drop(held);
        other.try_lock().expect("its turn comes once the first build's image is made");
    }

    #[test]
    fn the_record_names_local_sources_wherever_they_are_and_leaves_pinned_ones_out() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().canonicalize().unwrap();
        // A repository holding the service and pkg, and a workspace whose checkout links to it.
        let repo = real.join("repo");
        for (path, text) in [
            ("svc/Cargo.toml", "[package]"),
            ("svc/Cargo.lock", "# lock"),
            ("svc/src/main.rs", "fn main() {}"),
            ("pkg/Cargo.toml", "[package]"),
            ("pkg/src/lib.rs", "pub fn f() {}"),
        ] {
            fs_err::create_dir_all(repo.join(path).parent().unwrap()).unwrap();
            fs_err::write(repo.join(path), text).unwrap();
        }
        let workspace = real.join("ws");
        fs_err::create_dir_all(workspace.join("services")).unwrap();
        std::os::unix::fs::symlink(repo.join("svc"), workspace.join("services/svc")).unwrap();
        let target = real.join("target");
        fs_err::create_dir_all(target.join("debug/build/out")).unwrap();
        fs_err::write(target.join("debug/build/out/generated.rs"), "// generated").unwrap();
        let registry = cargo_home().unwrap().join("registry/src/index/some-crate-1.0.0/src/lib.rs");
        let dep_info = real.join("svc.d");
        let listed = [
            repo.join("svc/src/main.rs"),
            repo.join("pkg/src/lib.rs"),
            target.join("debug/build/out/generated.rs"),
            registry,
        ];
        let listed: Vec<String> = listed.iter().map(|path| path.display().to_string()).collect();
        fs_err::write(&dep_info, format!("{}: {}\n", target.join("debug/svc").display(), listed.join(" "))).unwrap();

        let recipe = Recipe {
            root: workspace.clone(),
            service_dir: workspace.join("services/svc"),
            target_dir: target.clone(),
            package: None,
            bin: "svc".into(),
            profile: "dev".into(),
            host: "x86_64-unknown-linux-gnu".into(),
            flags: ("RUSTFLAGS", STATIC.into()),
            key: "k".into(),
        };
        let started = SystemTime::now() + std::time::Duration::from_secs(60);
        let output = Output { binary: target.join("debug/svc"), dep_info, started, _lock: None };
        let files = sources(&recipe, &output).unwrap().expect("nothing changed after the build started");
        let names: Vec<&str> = files.keys().map(String::as_str).collect();
        let expected: Vec<String> =
            ["pkg/Cargo.toml", "pkg/src/lib.rs", "svc/Cargo.lock", "svc/Cargo.toml", "svc/src/main.rs"]
                .iter()
                .map(|path| repo.join(path).display().to_string())
                .collect();
        assert_eq!(
            names, expected,
            "the linked checkout's and pkg's sources, once each; not the target's or the registry's"
        );
    }
}
