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

/// Who holds the workspace's lock, as it wrote it down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// Its process id.
    pub pid: u32,
    /// What it runs: `plat up`, `plat down`, ...
    pub command: String,
}

/// The lock that serialises the commands that change a workspace's images and containers
/// (`plat build`, `plat up`, `plat down`) on this machine: two at once would both create the
/// network, the database, a service's container. Held until dropped; the operating system
/// releases it when the process ends, however it ends, so a killed run never leaves it behind.
#[derive(Debug)]
pub struct WorkspaceLock {
    _file: std::fs::File,
}

impl WorkspaceLock {
    /// Takes `.plat/lock` for `command`; when another process holds it, calls `on_wait` with who
    /// (when it said), then waits for it.
    pub fn acquire(
        workspace: &Workspace,
        command: &str,
        on_wait: impl FnOnce(Option<Holder>),
    ) -> io::Result<WorkspaceLock> {
        let file = match Self::try_acquire(workspace, command)? {
            Ok(lock) => return Ok(lock),
            Err((file, holder)) => {
                on_wait(holder);
                file
            }
        };
        file.lock()?;
        Self::held(file, command)
    }

    /// Takes the lock if it is free; else gives back the open file and who holds it, so that an
    /// async caller can wait without blocking its thread (asking again).
    pub fn try_acquire(
        workspace: &Workspace,
        command: &str,
    ) -> io::Result<Result<WorkspaceLock, (std::fs::File, Option<Holder>)>> {
        use std::io::Read;
        let path = ensure(workspace)?.join("lock");
        let mut file = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path)?;
        match file.try_lock() {
            Ok(()) => Self::held(file, command).map(Ok),
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                Ok(Err((file, parse_holder(&text))))
            }
            Err(std::fs::TryLockError::Error(error)) => Err(error),
        }
    }

    /// Writes who holds it, for the next one to say whom it waits for.
    fn held(mut file: std::fs::File, command: &str) -> io::Result<WorkspaceLock> {
        use std::io::{Seek, Write};
        file.set_len(0)?;
        file.rewind()?;
        write!(file, "{} {command}", std::process::id())?;
        file.flush()?;
        Ok(WorkspaceLock { _file: file })
    }
}

fn parse_holder(text: &str) -> Option<Holder> {
    let (pid, command) = text.trim().split_once(' ')?;
    Some(Holder { pid: pid.parse().ok()?, command: command.to_owned() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lock_says_who_holds_it_and_is_free_again_when_dropped() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("workspace.toml"), "[workspace]\nname = \"p\"\n").unwrap();
        let workspace = crate::manifest::load_path(&dir.path().join("workspace.toml")).unwrap();
        let first = WorkspaceLock::acquire(&workspace, "plat up", |_| panic!("nobody holds it")).unwrap();
        // Another process would wait; a second open file description in this one does too.
        let (sender, receiver) = std::sync::mpsc::channel();
        let waiter = std::thread::spawn({
            let workspace = workspace.clone();
            move || {
                WorkspaceLock::acquire(&workspace, "plat down", |holder| sender.send(holder).unwrap()).unwrap();
            }
        });
        let holder = receiver.recv().unwrap();
        assert_eq!(holder, Some(Holder { pid: std::process::id(), command: "plat up".to_owned() }));
        drop(first);
        waiter.join().unwrap();
        assert!(dir.path().join(".plat/.gitignore").exists(), "and .plat ignores itself");
    }
}
