//! Compiling the `.proto` files of a directory — on disk or in a git tree — into descriptors.
//!
//! Files are read into memory first, then compiled by protox (pure Rust, no protoc), with the
//! well-known types (`google/protobuf/*.proto`) built in.

use std::collections::BTreeMap;
use std::path::Path;

use miette::Diagnostic;
use prost_types::FileDescriptorSet;
use protox::file::{ChainFileResolver, File, FileResolver, GoogleFileResolver};

use super::ProtoError;

/// The `.proto` files of a module, by their path relative to the module root (`user/v1/user.proto`).
pub type Sources = BTreeMap<String, String>;

/// A compiled module.
#[derive(Debug, Clone)]
pub struct Compiled {
    /// The module's own files and their imports, imports first, with source info.
    pub descriptors: FileDescriptorSet,
    /// The text of the module's own files.
    pub sources: Sources,
}

/// Reads every `.proto` file under `dir`.
pub fn read_dir(dir: &Path) -> Result<Sources, ProtoError> {
    if !dir.is_dir() {
        return Err(ProtoError::NoProtoDir(dir.to_path_buf()));
    }
    let mut sources = Sources::new();
    read_dir_into(dir, dir, &mut sources)?;
    Ok(sources)
}

fn read_dir_into(root: &Path, dir: &Path, sources: &mut Sources) -> Result<(), ProtoError> {
    for entry in fs_err::read_dir(dir)? {
        let path = entry?.path();
        let name = path.file_name().and_then(|name| name.to_str()).unwrap_or_default();
        if name.starts_with('.') {
            continue;
        }
        if path.is_dir() {
            read_dir_into(root, &path, sources)?;
        } else if name.ends_with(".proto") {
            let relative = path.strip_prefix(root).expect("below root");
            let relative = relative.to_string_lossy().replace('\\', "/");
            sources.insert(relative, fs_err::read_to_string(&path)?);
        }
    }
    Ok(())
}

/// Reads every `.proto` file under `subdir` in the tree of `rev`, straight from the object
/// database: no checkout, no network.
pub fn read_git(repo: &git2::Repository, rev: &str, subdir: &str) -> Result<Sources, ProtoError> {
    let commit = repo.revparse_single(rev)?.peel_to_commit()?;
    let tree = commit.tree()?;
    let tree = if subdir.is_empty() {
        tree
    } else {
        match tree.get_path(Path::new(subdir)) {
            Ok(entry) => entry.to_object(repo)?.peel_to_tree()?,
            // The directory did not exist then: every file is new.
            Err(error) if error.code() == git2::ErrorCode::NotFound => return Ok(Sources::new()),
            Err(error) => return Err(error.into()),
        }
    };
    let mut sources = Sources::new();
    let mut failure = None;
    tree.walk(git2::TreeWalkMode::PreOrder, |dir, entry| {
        let name = entry.name().unwrap_or_default();
        if entry.kind() == Some(git2::ObjectType::Blob) && name.ends_with(".proto") {
            let text = entry
                .to_object(repo)
                .ok()
                .and_then(|object| object.peel_to_blob().ok())
                .map(|blob| String::from_utf8_lossy(blob.content()).into_owned());
            match text {
                Some(text) => {
                    sources.insert(format!("{dir}{name}"), text);
                }
                None => {
                    failure = Some(git2::Error::from_str(&format!("cannot read {dir}{name} at {rev}")));
                    return git2::TreeWalkResult::Abort;
                }
            }
        }
        git2::TreeWalkResult::Ok
    })?;
    match failure {
        Some(error) => Err(error.into()),
        None => Ok(sources),
    }
}

/// Compiles `sources` (with source info, for comments and positions).
pub fn compile(sources: Sources) -> Result<Compiled, ProtoError> {
    let mut resolver = ChainFileResolver::new();
    resolver.add(MemoryResolver(sources.clone()));
    resolver.add(GoogleFileResolver::new());
    let mut compiler = protox::Compiler::with_file_resolver(resolver);
    compiler.include_source_info(true).include_imports(true);
    for name in sources.keys() {
        compiler.open_file(name).map_err(|error| compile_error(&error, &sources))?;
    }
    Ok(Compiled { descriptors: compiler.file_descriptor_set(), sources })
}

/// Files held in memory, by name.
struct MemoryResolver(Sources);

impl FileResolver for MemoryResolver {
    fn open_file(&self, name: &str) -> Result<File, protox::Error> {
        match self.0.get(name) {
            Some(source) => File::from_source(name, source),
            None => Err(protox::Error::file_not_found(name)),
        }
    }
}

/// protox's error with `file:line:column` when it points somewhere.
fn compile_error(error: &protox::Error, sources: &Sources) -> ProtoError {
    let file = error.file().unwrap_or("<unknown>").to_owned();
    let offset = error.labels().and_then(|mut labels| labels.next()).map(|label| label.offset());
    let location = match (offset, sources.get(&file)) {
        (Some(offset), Some(source)) => {
            let (line, column) = crate::text::line_col(source, offset);
            format!("{file}:{line}:{column}")
        }
        _ => file,
    };
    ProtoError::Compile { location, message: error.to_string() }
}
