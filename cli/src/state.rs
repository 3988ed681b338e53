//! plat's own directory in a workspace, `.plat/` beside workspace.toml: the cargo target
//! directory every service compiles into, and other state plat keeps between runs.
//!
//! It is never part of any checkout (services live in their own directories) and ignores itself:
//! a `.gitignore` of `*` inside it keeps it out of the platform repository's `git status`, as a
//! Python virtual environment does.

use std::io;
use std::path::PathBuf;

use crate::manifest::Workspace;

/// The directory's name, beside workspace.toml.
pub const STATE_DIR: &str = ".plat";

/// `.plat/` of the workspace.
pub fn dir(workspace: &Workspace) -> PathBuf {
    workspace.root.join(STATE_DIR)
}

/// Creates `.plat/` (and its `.gitignore` and `CACHEDIR.TAG`) when missing; returns it.
pub fn ensure(workspace: &Workspace) -> io::Result<PathBuf> {
    let dir = dir(workspace);
    let gitignore = dir.join(".gitignore");
    if !gitignore.exists() {
        fs_err::create_dir_all(&dir)?;
        fs_err::write(&gitignore, "# Written by plat: everything here is plat's own state.\n*\n")?;
        // Backup tools skip a directory with this tag (https://bford.info/cachedir/).
        fs_err::write(
            dir.join("CACHEDIR.TAG"),
            "Signature: 8a477f597d28d172789f06886806bc55\n# This directory holds plat's build cache.\n",
        )?;
    }
    Ok(dir)
}

/// The cargo target directory every cargo service of the workspace compiles into: one for all of
/// them, so shared dependencies compile once, and outside every checkout, so checkouts stay
/// clean. `CARGO_TARGET_DIR` when set (as cargo itself honours it), else `.plat/target`.
pub fn cargo_target_dir(workspace: &Workspace) -> io::Result<PathBuf> {
    match std::env::var_os("CARGO_TARGET_DIR").filter(|dir| !dir.is_empty()) {
        // Relative to where plat runs, as it would be to cargo run from here.
        Some(dir) => std::path::absolute(PathBuf::from(dir)),
        None => Ok(ensure(workspace)?.join("target")),
    }
}
