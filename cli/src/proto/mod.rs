//! Protobuf contracts: compiling `proto/`, generating each service's Rust code, lint and
//! breaking-change checks — with `buf` when it is installed, with plat's own engine otherwise.
//!
//! Architecture invariant: only this module runs buf or reads `.proto` files. Both engines go
//! through the same code generator ([`codegen`]): with buf, plat is the local plugin that
//! buf.gen.yaml names, so the two paths cannot produce different files.

pub mod breaking;
pub mod buf;
pub mod codegen;
pub mod config;
pub mod generate;
pub mod lint;
pub mod load;
pub mod plugin;
mod source;

use std::path::PathBuf;

/// Which engine does the work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Engine {
    /// buf when it is on PATH, plat's own engine otherwise.
    #[default]
    Auto,
    /// Always buf; an error when it is missing.
    Buf,
    /// Always plat's own engine.
    Builtin,
}

/// The engine that ran, for reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ran {
    /// buf, found here.
    Buf(PathBuf),
    /// plat's own engine.
    Builtin,
}

impl Engine {
    /// Picks the engine: buf's path, or `None` for the built-in one.
    pub fn resolve(self) -> Result<Option<PathBuf>, ProtoError> {
        match self {
            Engine::Builtin => Ok(None),
            Engine::Auto => Ok(buf::find()),
            Engine::Buf => buf::find().map(Some).ok_or(ProtoError::BufMissing),
        }
    }
}

/// One problem `lint` or `breaking` found, where buf would report it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct Finding {
    /// File relative to the proto directory (for a deleted file or package: the file it was in).
    pub path: String,
    /// 1-based line.
    pub line: u32,
    /// 1-based column, in bytes.
    pub column: u32,
    /// buf's rule ID, e.g. `FIELD_NO_DELETE`.
    pub rule: String,
    /// What is wrong, in buf's words.
    pub message: String,
}

/// What `lint` or `breaking` found, and how.
#[derive(Debug, Clone)]
pub struct CheckReport {
    /// The engine that ran.
    pub ran: Ran,
    /// The findings, sorted by file, line, column and rule.
    pub findings: Vec<Finding>,
    /// Rules buf.yaml selects that plat's built-in engine does not implement (empty with buf).
    pub unchecked: Vec<String>,
}

/// A proto operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ProtoError {
    /// A `.proto` file does not compile.
    #[error("{location}: {message}")]
    Compile {
        /// `file:line:column`, or the file alone.
        location: String,
        /// The compiler's message.
        message: String,
    },
    /// The proto directory is missing.
    #[error("no proto directory at {}", .0.display())]
    NoProtoDir(PathBuf),
    /// The proto directory holds no `.proto` file (buf refuses an empty module too).
    #[error("no .proto files in {}", .0.display())]
    NoProtoFiles(PathBuf),
    /// A file uses protobuf editions, which plat's built-in engine cannot compile.
    #[error(
        "{location}: this file uses protobuf editions (`edition = ...`), which plat's built-in engine does not compile"
    )]
    EditionsNeedBuf {
        /// `file:line:column` of the `edition` statement.
        location: String,
    },
    /// A service names a package no file declares.
    #[error("service `{service}` lists package `{package}`, which no file in {proto_dir} declares")]
    UnknownPackage {
        /// The service.
        service: String,
        /// The package.
        package: String,
        /// The proto directory, relative to the workspace root.
        proto_dir: String,
    },
    /// `--engine buf`, and buf is not on PATH.
    #[error("buf is not on PATH")]
    BufMissing,
    /// buf ran and failed.
    #[error("`buf {command}` failed: {stderr}")]
    Buf {
        /// Its arguments.
        command: String,
        /// What it printed.
        stderr: String,
    },
    /// buf.yaml cannot be read or says something plat (or buf) does not understand.
    #[error("{}: {message}", .path.display())]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// buf printed something plat cannot parse.
    #[error("cannot read the output of `buf {command}`: {line}")]
    BufOutput {
        /// Its arguments.
        command: String,
        /// The line that did not parse.
        line: String,
    },
    /// The proto directory is not inside a git repository.
    #[error("{} is not inside a git repository", .0.display())]
    NotARepository(PathBuf),
    /// `--against` names nothing the repository holds.
    #[error("`{rev}` is not a commit of the repository at {}{}", .repo.display(), if *.shallow { " (a shallow clone)" } else { "" })]
    RevNotFound {
        /// The ref as given.
        rev: String,
        /// The repository's working directory.
        repo: PathBuf,
        /// Whether the clone is shallow, so the commit may exist upstream.
        shallow: bool,
    },
    /// A git ref could not be read.
    #[error(transparent)]
    Git(#[from] git2::Error),
    /// Reading or writing files failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}
