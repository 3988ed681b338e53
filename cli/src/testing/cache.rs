//! The record of passing runs, as Garden keeps its test results: a service whose test inputs
//! hash to what they hashed to when its tests last passed is not run again.
//!
//! The inputs: every file of its checkout git would see (tracked, and untracked but not
//! ignored: so not `target/`), which includes its sources, Cargo.lock and migrations; every
//! file of every library checkout of the workspace (what it builds against); the `.proto` files
//! of the packages it serves and uses; the command that runs its tests; its `database` setting;
//! the rustc that compiles them and the flags it is given; and plat's own version. Recorded in
//! `.plat/tests/<service>.json`, outside every checkout; only passes are recorded.

use std::io;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::manifest::{Service, Workspace};

/// The directory of the records, in `.plat/`.
const DIR: &str = "tests";

/// The digest of what `service`'s tests read and run with.
pub fn key(workspace: &Workspace, service: &Service, command: &str, toolchain: &str) -> io::Result<String> {
    let mut hasher = Sha256::new();
    let mut part = |label: &str, value: &[u8]| {
        hasher.update(label.as_bytes());
        hasher.update(b"\0");
        hasher.update((value.len() as u64).to_le_bytes());
        hasher.update(value);
    };
    part("plat", env!("CARGO_PKG_VERSION").as_bytes());
    part("command", command.as_bytes());
    part("toolchain", toolchain.as_bytes());
    for var in ["RUSTFLAGS", "CARGO_ENCODED_RUSTFLAGS", "RUSTDOCFLAGS"] {
        part(var, std::env::var(var).unwrap_or_default().as_bytes());
    }
    let database = service.database.as_ref().map(|database| format!("{} {}", database.name, database.migrations));
    part("database", database.unwrap_or_default().as_bytes());

    let mut digest_dir = |label: &str, dir: &Path| -> io::Result<()> {
        for (path, digest) in files(dir)? {
            part(&format!("{label}/{}", path.display()), &digest);
        }
        Ok(())
    };
    digest_dir("service", &workspace.service_dir(service))?;
    for library in &workspace.libraries {
        digest_dir(&format!("library {}", library.name), &library.path.under(&workspace.root))?;
    }
    let proto_dir = workspace.proto_dir.under(&workspace.root);
    let mut packages: Vec<&String> = service.proto.serves.iter().chain(&service.proto.uses).collect();
    packages.sort();
    packages.dedup();
    for package in packages {
        let dir = package.split('.').fold(proto_dir.clone(), |dir, part| dir.join(part));
        if dir.is_dir() {
            let protos =
                files(&dir)?.into_iter().filter(|(path, _)| path.extension().is_some_and(|ext| ext == "proto"));
            for (path, digest) in protos {
                part(&format!("proto {package}/{}", path.display()), &digest);
            }
        }
    }
    Ok(crate::text::hex(&hasher.finalize()))
}

/// Each file of `dir` as git sees it, with the digest of its content (a tracked file deleted
/// from disk counts as a change); every file but `target/` and `.git/` outside a repository.
fn files(dir: &Path) -> io::Result<Vec<(PathBuf, [u8; 32])>> {
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let listed = match crate::git::worktree_files(dir) {
        Ok(Some(files)) => files,
        Ok(None) => walk(dir)?,
        Err(error) => return Err(io::Error::other(error.to_string())),
    };
    let mut digests = Vec::with_capacity(listed.len());
    for path in listed {
        let full = dir.join(&path);
        let digest = match std::fs::symlink_metadata(&full) {
            Ok(meta) if meta.is_file() => Sha256::digest(fs_err::read(&full)?).into(),
            Ok(meta) if meta.is_symlink() => {
                Sha256::digest(std::fs::read_link(&full)?.as_os_str().as_encoded_bytes()).into()
            }
            // A submodule or a deleted tracked file: its absence (or presence) is what counts.
            Ok(_) => [1; 32],
            Err(_) => [0; 32],
        };
        digests.push((path, digest));
    }
    Ok(digests)
}

/// Every file under `dir`, relative to it, sorted; `target/` and `.git/` left out.
fn walk(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let mut pending = vec![PathBuf::new()];
    while let Some(relative) = pending.pop() {
        for entry in fs_err::read_dir(dir.join(&relative))? {
            let entry = entry?;
            let path = relative.join(entry.file_name());
            let kind = entry.file_type()?;
            if kind.is_dir() {
                if !(relative.as_os_str().is_empty() && entry.file_name() == "target") && entry.file_name() != ".git" {
                    pending.push(path);
                }
            } else {
                found.push(path);
            }
        }
    }
    found.sort();
    Ok(found)
}

fn record_path(workspace: &Workspace, service: &Service) -> PathBuf {
    crate::state::dir(workspace).join(DIR).join(format!("{}.json", service.name))
}

/// Whether `service`'s tests passed with inputs hashing to `key`.
pub fn passed_before(workspace: &Workspace, service: &Service, key: &str) -> bool {
    let Ok(text) = std::fs::read(record_path(workspace, service)) else { return false };
    serde_json::from_slice::<serde_json::Value>(&text).is_ok_and(|record| record["key"] == key)
}

/// Records that `service`'s tests passed with inputs hashing to `key`.
pub fn record_pass(workspace: &Workspace, service: &Service, key: &str) -> io::Result<()> {
    let dir = crate::state::ensure(workspace)?.join(DIR);
    fs_err::create_dir_all(&dir)?;
    let passed_at = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |time| time.as_secs());
    let record = serde_json::json!({ "key": key, "passed_at": passed_at });
    // Written aside and renamed: a run stopped half-way never leaves a record that parses.
    let path = record_path(workspace, service);
    let temporary = path.with_extension("json.tmp");
    fs_err::write(&temporary, record.to_string())?;
    fs_err::rename(&temporary, &path)
}
