//! Finding `workspace.toml` the way cargo finds `Cargo.toml`: here, then each parent in turn.

use std::path::{Path, PathBuf};

/// File name of the manifest.
pub const MANIFEST_FILE: &str = "workspace.toml";

/// The nearest `workspace.toml` in `start` or one of its ancestors.
pub fn find_manifest(start: &Path) -> Option<PathBuf> {
    start.ancestors().map(|dir| dir.join(MANIFEST_FILE)).find(|candidate| candidate.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_nearest_manifest_upwards() {
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("services/a/src");
        std::fs::create_dir_all(&nested).unwrap();
        assert_eq!(find_manifest(&nested), None);

        std::fs::write(dir.path().join(MANIFEST_FILE), "").unwrap();
        assert_eq!(find_manifest(&nested), Some(dir.path().join(MANIFEST_FILE)));

        std::fs::write(dir.path().join("services").join(MANIFEST_FILE), "").unwrap();
        assert_eq!(find_manifest(&nested), Some(dir.path().join("services").join(MANIFEST_FILE)));
    }
}
