//! Running buf: finding it, and `buf generate` with plat as its local plugin.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::ProtoError;
use super::codegen::GeneratedFile;
use crate::manifest::Workspace;

/// buf's path, when it is on PATH.
pub fn find() -> Option<PathBuf> {
    which::which("buf").ok()
}

/// Runs `buf generate` with the workspace's buf.gen.yaml into a staging directory and returns
/// what it wrote. buf.gen.yaml names `plat proto plugin`, which is this very binary; plat puts its
/// own directory first on buf's PATH so that buf finds the same plat that runs it.
pub fn generate(buf: &Path, workspace: &Workspace) -> Result<Vec<GeneratedFile>, ProtoError> {
    let proto_dir = workspace.proto_dir.under(&workspace.root);
    let template = proto_dir.join("buf.gen.yaml");
    if !template.is_file() {
        return Err(ProtoError::Buf {
            command: "generate".to_owned(),
            stderr: format!("{} does not exist", template.display()),
        });
    }
    // buf resolves `out` against its working directory; buf.gen.yaml says `out: ..`, the
    // workspace root seen from proto/. Running in `<staging>/proto` puts the output in `<staging>`.
    let staging = tempfile::tempdir()?;
    let run_dir = staging.path().join("proto");
    fs_err::create_dir_all(&run_dir)?;

    let mut path = vec![std::env::current_exe()?.parent().map(Path::to_path_buf).unwrap_or_default()];
    path.extend(
        std::env::var_os("PATH").map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>()).unwrap_or_default(),
    );
    let output = Command::new(buf)
        .arg("generate")
        .arg(&proto_dir)
        .arg("--template")
        .arg(&template)
        .current_dir(&run_dir)
        .env("PATH", std::env::join_paths(path).map_err(std::io::Error::other)?)
        .env("PLAT_MANIFEST", &workspace.manifest_path)
        .stdin(Stdio::null())
        .output()?;
    if !output.status.success() {
        return Err(ProtoError::Buf {
            command: "generate".to_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        });
    }
    let mut files = Vec::new();
    collect(staging.path(), staging.path(), &run_dir, &mut files)?;
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

fn collect(root: &Path, dir: &Path, skip: &Path, files: &mut Vec<GeneratedFile>) -> Result<(), ProtoError> {
    for entry in fs_err::read_dir(dir)? {
        let path = entry?.path();
        if path == skip {
            continue;
        }
        if path.is_dir() {
            collect(root, &path, skip, files)?;
        } else {
            let relative = path.strip_prefix(root).expect("below root").to_string_lossy().replace('\\', "/");
            files.push(GeneratedFile { path: relative, content: fs_err::read_to_string(&path)? });
        }
    }
    Ok(())
}
