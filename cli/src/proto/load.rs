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
    /// The same files, with their options readable (custom options included).
    pub pool: prost_reflect::DescriptorPool,
    /// The text of the module's own files.
    pub sources: Sources,
}

/// Reads every `.proto` file under `dir`; a directory with none is an error, as it is for buf.
pub fn read_dir(dir: &Path) -> Result<Sources, ProtoError> {
    let sources = read_dir_allow_empty(dir)?;
    if sources.is_empty() {
        return Err(ProtoError::NoProtoFiles(dir.to_path_buf()));
    }
    Ok(sources)
}

/// Reads every `.proto` file under `dir`, which may hold none.
pub fn read_dir_allow_empty(dir: &Path) -> Result<Sources, ProtoError> {
    if !dir.is_dir() {
        return Err(ProtoError::NoProtoDir(dir.to_path_buf()));
    }
    let mut sources = Sources::new();
    read_dir_into(dir, dir, &mut sources)?;
    Ok(sources)
}

/// Fails unless `dir` holds a `.proto` file somewhere below it; reads none of them (buf will).
pub fn require_proto_files(dir: &Path) -> Result<(), ProtoError> {
    fn any_proto(dir: &Path) -> Result<bool, ProtoError> {
        for entry in fs_err::read_dir(dir)? {
            let path = entry?.path();
            let name = path.file_name().and_then(|name| name.to_str()).unwrap_or_default();
            if name.starts_with('.') {
                continue;
            }
            if (path.is_dir() && any_proto(&path)?) || (!path.is_dir() && name.ends_with(".proto")) {
                return Ok(true);
            }
        }
        Ok(false)
    }
    if !dir.is_dir() {
        return Err(ProtoError::NoProtoDir(dir.to_path_buf()));
    }
    if any_proto(dir)? { Ok(()) } else { Err(ProtoError::NoProtoFiles(dir.to_path_buf())) }
}

/// The text of `name`, or where it stops being UTF-8, in the words and at the place buf uses.
pub fn decode(name: &str, bytes: Vec<u8>) -> Result<String, ProtoError> {
    String::from_utf8(bytes).map_err(|error| {
        let valid = error.utf8_error().valid_up_to();
        let text = String::from_utf8_lossy(&error.as_bytes()[..valid]);
        let (line, column) = crate::text::line_col(&text, valid);
        ProtoError::Compile {
            location: format!("{name}:{line}:{column}"),
            message: "input appears to be encoded with UTF-8, but found invalid byte".to_owned(),
        }
    })
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
            let text = decode(&relative, fs_err::read(&path)?)?;
            sources.insert(relative, text);
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
    Ok(Compiled { descriptors: compiler.file_descriptor_set(), pool: compiler.descriptor_pool(), sources })
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

/// protox's error with `file:line:column`, pointing where buf points when protox points nowhere:
/// the `{` never closed, the import that closes a cycle. An `edition` file gets its own error:
/// protox reads proto2 and proto3 only.
fn compile_error(error: &protox::Error, sources: &Sources) -> ProtoError {
    let file = error.file().unwrap_or("<unknown>").to_owned();
    let message = error.to_string();
    let at = |source: &str, offset: usize| {
        let (line, column) = crate::text::line_col(source, offset);
        format!("{file}:{line}:{column}")
    };
    let Some(source) = sources.get(&file) else {
        return ProtoError::Compile { location: file, message };
    };
    if let Some(offset) = edition_statement(source) {
        return ProtoError::EditionsNeedBuf { location: at(source, offset) };
    }
    let offset = error.labels().and_then(|mut labels| labels.next()).map(|label| label.offset());
    if let Some(cycle) = message.strip_prefix("import cycle detected: ") {
        // `a -> b -> a`: the last import, in the file before the last, closes the cycle.
        let chain: Vec<&str> = cycle.split(" -> ").collect();
        if let [.., importer, imported] = chain[..]
            && let Some(offset) = sources.get(importer).and_then(|text| import_statement(text, imported))
        {
            let (line, column) = crate::text::line_col(&sources[importer], offset);
            return ProtoError::Compile { location: format!("{importer}:{line}:{column}"), message };
        }
    }
    if message.ends_with("reached end of file")
        && let Some(offset) = unclosed_brace(source)
    {
        return ProtoError::Compile { location: at(source, offset), message: format!("unmatched `{{`: {message}") };
    }
    match offset {
        Some(offset) => ProtoError::Compile { location: at(source, offset), message },
        None => ProtoError::Compile { location: format!("{file}:1:1"), message },
    }
}

/// The characters of a `.proto` text that are code, with their byte offsets: comments and
/// string literals left out.
fn code_chars(text: &str) -> Vec<(usize, char)> {
    let mut out = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some((offset, c)) = chars.next() {
        match c {
            '/' if chars.peek().is_some_and(|(_, next)| *next == '/') => {
                while chars.next_if(|(_, next)| *next != '\n').is_some() {}
            }
            '/' if chars.peek().is_some_and(|(_, next)| *next == '*') => {
                chars.next();
                let mut star = false;
                for (_, next) in chars.by_ref() {
                    if star && next == '/' {
                        break;
                    }
                    star = next == '*';
                }
            }
            '"' | '\'' => {
                while let Some((_, next)) = chars.next() {
                    if next == '\\' {
                        chars.next();
                    } else if next == c || next == '\n' {
                        break;
                    }
                }
            }
            _ => out.push((offset, c)),
        }
    }
    out
}

/// Where a file's first statement is `edition = "..."`.
fn edition_statement(text: &str) -> Option<usize> {
    let code = code_chars(text);
    let (offset, _) = code.iter().find(|(_, c)| !c.is_whitespace())?;
    let rest = &text[*offset..];
    let after = rest.strip_prefix("edition")?;
    (!after.starts_with(|c: char| c.is_alphanumeric() || c == '_')).then_some(*offset)
}

/// The `{` a file leaves open at its end: the first, when several are (buf reports each; plat
/// shows buf's first).
fn unclosed_brace(text: &str) -> Option<usize> {
    let mut open = Vec::new();
    for (offset, c) in code_chars(text) {
        match c {
            '{' => open.push(offset),
            '}' => {
                open.pop();
            }
            _ => {}
        }
    }
    open.first().copied()
}

/// Where `import "name";` starts in a file's text.
fn import_statement(text: &str, name: &str) -> Option<usize> {
    let quoted = format!("\"{name}\"");
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_start();
        if trimmed.starts_with("import") && line.contains(&quoted) {
            return Some(offset + line.len() - trimmed.len());
        }
        offset += line.len();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_point_at_a_line() {
        let sources = |files: &[(&str, &str)]| -> Sources {
            files.iter().map(|(name, text)| ((*name).to_owned(), (*text).to_owned())).collect()
        };
        let location = |sources: Sources| match compile(sources) {
            Err(ProtoError::Compile { location, .. } | ProtoError::EditionsNeedBuf { location }) => location,
            other => panic!("{other:?}"),
        };
        let unclosed = "syntax = \"proto3\";\n// {\nmessage A { string s = 1; }\nmessage B {\n  string id = 1;\n";
        assert_eq!(location(sources(&[("a.proto", unclosed)])), "a.proto:4:11");
        let cycle = sources(&[
            ("a.proto", "syntax = \"proto3\";\nimport \"b.proto\";\n"),
            ("b.proto", "syntax = \"proto3\";\n\nimport \"a.proto\";\n"),
        ]);
        assert_eq!(location(cycle), "b.proto:3:1");
        let edition = "// new\nedition = \"2023\";\n";
        assert!(matches!(compile(sources(&[("e.proto", edition)])), Err(ProtoError::EditionsNeedBuf { .. })));
        assert_eq!(location(sources(&[("e.proto", edition)])), "e.proto:2:1");
        match decode("x.proto", b"syntax;\n// caf\xe9\n".to_vec()) {
            Err(ProtoError::Compile { location, .. }) => assert_eq!(location, "x.proto:2:7"),
            other => panic!("{other:?}"),
        }
    }
}
