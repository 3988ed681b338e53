//! Relative paths that cannot leave the directory they are relative to.

use std::fmt;
use std::path::{Component, Path, PathBuf};

/// A normalised relative path (`/`-separated, no `.` or `..`), guaranteed to stay inside its base.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RelPath(String);

impl RelPath {
    /// Normalises `text`; fails when it is absolute or climbs above its base with `..`.
    pub fn new(text: &str) -> Result<RelPath, PathEscape> {
        let path = Path::new(text);
        let mut parts: Vec<&str> = Vec::new();
        for component in path.components() {
            match component {
                Component::Prefix(_) | Component::RootDir => return Err(PathEscape::Absolute),
                Component::CurDir => {}
                Component::ParentDir => {
                    if parts.pop().is_none() {
                        return Err(PathEscape::Parent);
                    }
                }
                Component::Normal(part) => match part.to_str() {
                    Some(part) => parts.push(part),
                    None => return Err(PathEscape::NotUtf8),
                },
            }
        }
        if text.starts_with('~') {
            return Err(PathEscape::Home);
        }
        Ok(RelPath(parts.join("/")))
    }

    /// The path as text; empty for the base itself.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// This path under `base`.
    pub fn under(&self, base: &Path) -> PathBuf {
        if self.0.is_empty() { base.to_path_buf() } else { base.join(&self.0) }
    }

    /// `other` appended to this path.
    pub fn join(&self, other: &RelPath) -> RelPath {
        match (self.0.is_empty(), other.0.is_empty()) {
            (_, true) => self.clone(),
            (true, false) => other.clone(),
            (false, false) => RelPath(format!("{}/{}", self.0, other.0)),
        }
    }
}

impl fmt::Display for RelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() { "." } else { &self.0 })
    }
}

/// Why a path is not acceptable as a relative path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathEscape {
    /// `/x` or `C:\x`.
    Absolute,
    /// `../x`, or `a/../../x`.
    Parent,
    /// `~/x`: the shell's home shorthand, not a path.
    Home,
    /// Not valid UTF-8 (only reachable on platforms with non-UTF-8 paths).
    NotUtf8,
}

impl fmt::Display for PathEscape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PathEscape::Absolute => "is absolute",
            PathEscape::Parent => "climbs out with `..`",
            PathEscape::Home => "starts with `~`",
            PathEscape::NotUtf8 => "is not valid UTF-8",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_inside_paths() {
        assert_eq!(RelPath::new("services/./a//b/").unwrap().as_str(), "services/a/b");
        assert_eq!(RelPath::new("a/../b").unwrap().as_str(), "b");
        assert_eq!(RelPath::new(".").unwrap().to_string(), ".");
    }

    #[test]
    fn refuses_paths_that_leave() {
        assert_eq!(RelPath::new("/etc/passwd"), Err(PathEscape::Absolute));
        assert_eq!(RelPath::new("../elsewhere"), Err(PathEscape::Parent));
        assert_eq!(RelPath::new("a/../../b"), Err(PathEscape::Parent));
        assert_eq!(RelPath::new("~/x"), Err(PathEscape::Home));
    }
}
