//! `plat proto gen`: generate every service's code into memory, then write what changed — or,
//! with `--check`, only report it. Files plat generated earlier and no longer would are deleted.
//! Whichever engine makes the code, the recorded descriptors (`src/proto/descriptor.bin`) come
//! from plat's own compilation, so both engines write the same bytes.

use std::collections::BTreeSet;
use std::path::Path;

use super::codegen::{self, GeneratedFile, MARKER};
use super::{Engine, ProtoError, Ran, buf, load};
use crate::manifest::{Source, Workspace};

/// How to generate.
#[derive(Debug, Clone, Copy, Default)]
pub struct GenOptions {
    /// buf or plat's own engine.
    pub engine: Engine,
    /// Change nothing; report what would change.
    pub check: bool,
}

/// What happened, or would happen, to one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// A new file.
    Created,
    /// A file whose content changed.
    Updated,
    /// A generated file no longer generated.
    Deleted,
}

/// One changed file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Change {
    /// Path relative to the workspace root.
    pub path: String,
    /// What changed.
    pub kind: ChangeKind,
}

/// What `gen` did.
#[derive(Debug, Clone)]
pub struct GenReport {
    /// The engine that ran.
    pub ran: Ran,
    /// Files generated in all.
    pub files: usize,
    /// Files that differ from the tree (written, unless checking).
    pub changes: Vec<Change>,
    /// Services skipped, with why (a repository not cloned yet).
    pub skipped: Vec<(String, String)>,
}

/// Generates every service's code; writes the changes unless `options.check`.
pub fn generate(workspace: &Workspace, options: GenOptions) -> Result<GenReport, ProtoError> {
    let compiled = load::compile(load::read_dir_allow_empty(&workspace.proto_dir.under(&workspace.root))?)?;
    let (mut files, ran) = match options.engine.resolve()? {
        Some(buf) => (buf::generate(&buf, workspace)?, Ran::Buf(buf)),
        None => (codegen::generate(workspace, &compiled.descriptors)?, Ran::Builtin),
    };
    files.extend(codegen::descriptor_files(workspace, &compiled.descriptors));

    // A service repository that is not cloned yet gets nothing: writing into its directory would
    // make it look like a checkout that is not one.
    let mut skipped = Vec::new();
    let mut owned_dirs = Vec::new();
    for service in &workspace.services {
        let present = workspace.service_dir(service).is_dir();
        if matches!(service.source, Source::Git { .. }) && !present {
            if !service.proto.serves.is_empty() || !service.proto.uses.is_empty() {
                skipped.push((service.name.clone(), "not cloned; run `plat sync` first".to_owned()));
            }
            continue;
        }
        owned_dirs.push(codegen::out_dir(service).to_string());
    }
    let in_dir = |file: &GeneratedFile, dir: &str| file.path.starts_with(&format!("{dir}/"));
    // Anything outside every service's directory means buf.gen.yaml sends output elsewhere than
    // plat expects; deleting "stale" files on that basis would be wrong.
    if let Some(stray) = files
        .iter()
        .find(|file| !workspace.services.iter().any(|service| in_dir(file, codegen::out_dir(service).as_str())))
    {
        return Err(ProtoError::Buf {
            command: "generate".to_owned(),
            stderr: format!(
                "it wrote {}, outside every service; `out` in buf.gen.yaml must be the workspace root as seen from {} (`..`)",
                stray.path, workspace.proto_dir
            ),
        });
    }
    let files: Vec<GeneratedFile> =
        files.into_iter().filter(|file| owned_dirs.iter().any(|dir| in_dir(file, dir))).collect();

    let changes = diff(&workspace.root, &files, &owned_dirs)?;
    if !options.check {
        apply(&workspace.root, &files, &changes)?;
    }
    Ok(GenReport { ran, files: files.len(), changes, skipped })
}

/// Compares the generated files with the tree.
fn diff(root: &Path, files: &[GeneratedFile], owned_dirs: &[String]) -> Result<Vec<Change>, ProtoError> {
    let mut changes = Vec::new();
    for file in files {
        let kind = match fs_err::read(root.join(&file.path)) {
            Ok(existing) if existing == file.content => continue,
            Ok(_) => ChangeKind::Updated,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => ChangeKind::Created,
            Err(error) => return Err(error.into()),
        };
        changes.push(Change { path: file.path.clone(), kind });
    }
    let generated: BTreeSet<&str> = files.iter().map(|file| file.path.as_str()).collect();
    for dir in owned_dirs {
        let Ok(entries) = fs_err::read_dir(root.join(dir)) else { continue };
        for entry in entries {
            let path = entry?.path();
            let Some(name) = path.file_name().and_then(|name| name.to_str()) else { continue };
            let relative = format!("{dir}/{name}");
            // Only files plat wrote are plat's to delete.
            let ours = name == codegen::DESCRIPTOR_FILE
                || name.ends_with(".rs") && fs_err::read_to_string(&path).is_ok_and(|text| text.starts_with(MARKER));
            if ours && !generated.contains(relative.as_str()) {
                changes.push(Change { path: relative, kind: ChangeKind::Deleted });
            }
        }
    }
    changes.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(changes)
}

fn apply(root: &Path, files: &[GeneratedFile], changes: &[Change]) -> Result<(), ProtoError> {
    for change in changes {
        let path = root.join(&change.path);
        match change.kind {
            ChangeKind::Deleted => fs_err::remove_file(&path)?,
            ChangeKind::Created | ChangeKind::Updated => {
                let file = files.iter().find(|file| file.path == change.path).expect("changed files were generated");
                if let Some(parent) = path.parent() {
                    fs_err::create_dir_all(parent)?;
                }
                fs_err::write(&path, &file.content)?;
            }
        }
    }
    Ok(())
}
