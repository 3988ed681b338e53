//! Running buf: finding it, `buf generate` with plat as its local plugin, and `buf lint` /
//! `buf breaking` with their JSON output read back into [`Finding`]s.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::codegen::GeneratedFile;
use super::{Finding, ProtoError, load};
use crate::manifest::Workspace;

/// How long one buf command may run: `buf generate` runs plat's plugin, `lint` and `breaking`
/// compile the contracts; a buf that hangs (a plugin waiting on its stdin, a lock) must not hang
/// plat with it.
const BUF_TIMEOUT: Duration = Duration::from_secs(300);

/// Runs a buf command to the end and returns what it printed, or fails after [`BUF_TIMEOUT`]
/// with the buf process killed.
fn run(command: &mut Command, what: &str) -> Result<Output, ProtoError> {
    let mut child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
    // Both pipes drained at once, so a chatty buf cannot block on a full one.
    let read = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            bytes
        })
    };
    let stdout = read(child.stdout.take().map(|pipe| Box::new(pipe) as Box<dyn Read + Send>));
    let stderr = read(child.stderr.take().map(|pipe| Box::new(pipe) as Box<dyn Read + Send>));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if started.elapsed() >= BUF_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            return Err(ProtoError::Buf {
                command: what.to_owned(),
                stderr: format!("buf did not finish within {}s and was stopped", BUF_TIMEOUT.as_secs()),
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Ok(Output { status, stdout: stdout.join().unwrap_or_default(), stderr: stderr.join().unwrap_or_default() })
}

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
    let output = run(
        Command::new(buf)
            .arg("generate")
            .arg(&proto_dir)
            .arg("--template")
            .arg(&template)
            .current_dir(&run_dir)
            .env("PATH", std::env::join_paths(path).map_err(std::io::Error::other)?)
            .env("PLAT_MANIFEST", &workspace.manifest_path)
            .stdin(Stdio::null()),
        "generate",
    )?;
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
            files.push(GeneratedFile { path: relative, content: fs_err::read(&path)? });
        }
    }
    Ok(())
}

/// Runs `buf lint` in `proto_dir` (buf reads its buf.yaml) and returns what it reports.
pub fn lint(buf: &Path, proto_dir: &Path) -> Result<Vec<Finding>, ProtoError> {
    load::require_proto_files(proto_dir)?;
    let output = run(
        Command::new(buf).args(["lint", "--error-format", "json"]).current_dir(proto_dir).stdin(Stdio::null()),
        "lint",
    )?;
    findings("lint", &output, proto_dir)
}

/// Runs `buf build` in `proto_dir`: whether its files compile, when there is nothing to compare
/// them with.
pub fn build(buf: &Path, proto_dir: &Path) -> Result<(), ProtoError> {
    load::require_proto_files(proto_dir)?;
    // buf writes the image it built; plat only wants to know whether it could.
    let scratch = tempfile::tempdir()?;
    let output = run(
        Command::new(buf)
            .args(["build", "--error-format", "json", "-o"])
            .arg(scratch.path().join("image.binpb"))
            .current_dir(proto_dir)
            .stdin(Stdio::null()),
        "build",
    )?;
    findings("build", &output, proto_dir).map(drop)
}

/// Runs `buf breaking` on `proto_dir` against `old` (the files as they were), written to a
/// temporary directory: buf needs no clone, no checkout and no network.
pub fn breaking(buf: &Path, proto_dir: &Path, old: &load::Sources) -> Result<Vec<Finding>, ProtoError> {
    load::require_proto_files(proto_dir)?;
    let against = tempfile::tempdir()?;
    for (path, text) in old {
        let file = against.path().join(path);
        if let Some(parent) = file.parent() {
            fs_err::create_dir_all(parent)?;
        }
        fs_err::write(&file, text)?;
    }
    let output = run(
        Command::new(buf)
            .args(["breaking", ".", "--error-format", "json", "--against"])
            .arg(against.path())
            .current_dir(proto_dir)
            .stdin(Stdio::null()),
        "breaking",
    )?;
    findings("breaking", &output, proto_dir)
}

/// What buf's failure means: buf exits 1 for every failure, so its message tells a buf.yaml it
/// rejects (an input error, as plat's own engine reports it) from buf itself failing.
fn failure(command: &str, text: &str, proto_dir: &Path) -> ProtoError {
    let message = text.strip_prefix("Failure: ").unwrap_or(text);
    if message.starts_with("decode buf.yaml") || message.contains("is not a known rule or category ID") {
        return ProtoError::Config { path: super::config::path_in(proto_dir), message: message.to_owned() };
    }
    if message.contains("had no .proto files") {
        return ProtoError::NoProtoFiles(proto_dir.to_path_buf());
    }
    ProtoError::Buf { command: command.to_owned(), stderr: text.to_owned() }
}

/// One line of buf's `--error-format json`.
#[derive(serde::Deserialize)]
struct BufAnnotation {
    #[serde(default)]
    path: String,
    #[serde(default)]
    start_line: u32,
    #[serde(default)]
    start_column: u32,
    #[serde(rename = "type")]
    rule: String,
    message: String,
}

/// buf exits 0 when clean and 100 when it found something; anything else is a failure. A
/// `COMPILE` annotation means the files do not compile, which is an error, not a finding.
fn findings(command: &str, output: &Output, proto_dir: &Path) -> Result<Vec<Finding>, ProtoError> {
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !matches!(output.status.code(), Some(0 | 100)) {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let text = if stderr.trim().is_empty() { stdout.trim() } else { stderr.trim() };
        return Err(failure(command, text, proto_dir));
    }
    let mut findings = Vec::new();
    for line in stdout.lines().filter(|line| !line.trim().is_empty()) {
        let annotation: BufAnnotation = serde_json::from_str(line)
            .map_err(|_| ProtoError::BufOutput { command: command.to_owned(), line: line.to_owned() })?;
        if annotation.rule == "COMPILE" {
            return Err(ProtoError::Compile {
                location: format!("{}:{}:{}", annotation.path, annotation.start_line, annotation.start_column),
                message: annotation.message,
            });
        }
        findings.push(Finding {
            path: annotation.path,
            line: annotation.start_line.max(1),
            column: annotation.start_column.max(1),
            rule: annotation.rule,
            message: annotation.message,
        });
    }
    if findings.is_empty() && output.status.code() == Some(100) {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(ProtoError::Buf { command: command.to_owned(), stderr: stderr.trim().to_owned() });
    }
    findings.sort();
    Ok(findings)
}
