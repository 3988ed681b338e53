//! `plat deploy apply`: `kubectl apply -k` of a rendered overlay on a named context, after
//! `kubectl diff -k` has said what it changes (the convention Skaffold follows).
//!
//! kubectl runs behind [`CommandRunner`] so that the arguments are unit tested without a
//! cluster; [`Kubectl`] is the real one.

use std::path::{Path, PathBuf};

/// What a finished command gave back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommandOutput {
    /// Exit code; `None` when a signal ended it.
    pub code: Option<i32>,
    /// Its standard output.
    pub stdout: String,
    /// Its standard error.
    pub stderr: String,
}

/// Runs kubectl with arguments, to completion.
pub trait CommandRunner {
    /// `kubectl <args>`; an error only when it could not be started.
    fn kubectl(&self, args: &[String]) -> std::io::Result<CommandOutput>;
}

/// The `kubectl` on PATH.
#[derive(Debug, Clone, Copy, Default)]
pub struct Kubectl;

impl CommandRunner for Kubectl {
    fn kubectl(&self, args: &[String]) -> std::io::Result<CommandOutput> {
        let output = std::process::Command::new("kubectl").args(args).stdin(std::process::Stdio::null()).output()?;
        Ok(CommandOutput {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        })
    }
}

/// Why the overlay was not applied.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// kubectl is not installed.
    #[error("cannot run kubectl: {0}")]
    KubectlMissing(std::io::Error),
    /// The kubeconfig has no such context.
    #[error("kubectl has no context named `{context}`{}", known_contexts(.known))]
    UnknownContext {
        /// The context asked for.
        context: String,
        /// The contexts the kubeconfig has.
        known: Vec<String>,
    },
    /// The overlay was never rendered.
    #[error("no rendered overlay at {}", .0.display())]
    NoOverlay(PathBuf),
    /// The overlay's secrets.env was never written.
    #[error("{} is missing: the overlay's Secret is generated from it", .0.display())]
    NoSecrets(PathBuf),
    /// kubectl failed.
    #[error("`kubectl {command}` failed{}: {}", exit(.code), .stderr.trim())]
    Failed {
        /// The arguments, as typed.
        command: String,
        /// Its exit code.
        code: Option<i32>,
        /// What it said.
        stderr: String,
    },
}

fn known_contexts(known: &[String]) -> String {
    if known.is_empty() { " (it has none)".to_owned() } else { format!(" (it has: {})", known.join(", ")) }
}

fn exit(code: &Option<i32>) -> String {
    code.map_or_else(|| " (killed by a signal)".to_owned(), |code| format!(" (exit {code})"))
}

/// What `apply` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyOutcome {
    /// `kubectl diff`'s output: what the cluster would change; empty when nothing.
    pub diff: String,
    /// `kubectl apply`'s output (one line per object), or with `dry_run`, the server's
    /// dry run of it.
    pub applied: String,
    /// Nothing was changed: the server only checked the change.
    pub dry_run: bool,
}

/// The arguments of each kubectl step, for one context and overlay.
pub fn diff_args(context: &str, overlay: &Path) -> Vec<String> {
    args(context, &["diff", "-k"], overlay)
}

/// `kubectl apply -k`, or its server-side dry run.
pub fn apply_args(context: &str, overlay: &Path, dry_run: bool) -> Vec<String> {
    if dry_run {
        args(context, &["apply", "--dry-run=server", "-k"], overlay)
    } else {
        args(context, &["apply", "-k"], overlay)
    }
}

fn args(context: &str, command: &[&str], overlay: &Path) -> Vec<String> {
    let mut args = vec!["--context".to_owned(), context.to_owned()];
    args.extend(command.iter().map(|arg| (*arg).to_owned()));
    args.push(overlay.to_string_lossy().into_owned());
    args
}

/// Checks the context and the overlay, shows the diff, then applies it (or, with `dry_run`,
/// has the server check it without changing anything).
pub fn apply(
    runner: &dyn CommandRunner,
    context: &str,
    overlay: &Path,
    dry_run: bool,
) -> Result<ApplyOutcome, ApplyError> {
    let contexts = run(runner, &["config".into(), "get-contexts".into(), "-o".into(), "name".into()], &[0])?;
    let known: Vec<String> =
        contexts.stdout.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_owned).collect();
    if !known.iter().any(|known| known == context) {
        return Err(ApplyError::UnknownContext { context: context.to_owned(), known });
    }
    if !overlay.join("kustomization.yaml").is_file() {
        return Err(ApplyError::NoOverlay(overlay.to_path_buf()));
    }
    let secrets = overlay.join("secrets.env");
    if !secrets.is_file() {
        return Err(ApplyError::NoSecrets(secrets));
    }
    // `kubectl diff` exits 1 when there are differences: that is its answer, not a failure.
    let diff = run(runner, &diff_args(context, overlay), &[0, 1])?;
    let applied = run(runner, &apply_args(context, overlay, dry_run), &[0])?;
    Ok(ApplyOutcome { diff: diff.stdout, applied: applied.stdout, dry_run })
}

fn run(runner: &dyn CommandRunner, args: &[String], ok: &[i32]) -> Result<CommandOutput, ApplyError> {
    let output = runner.kubectl(args).map_err(ApplyError::KubectlMissing)?;
    if output.code.is_some_and(|code| ok.contains(&code)) {
        Ok(output)
    } else {
        Err(ApplyError::Failed { command: args.join(" "), code: output.code, stderr: output.stderr })
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;

    /// Answers each kubectl call with the next canned output, and records the arguments.
    struct FakeKubectl {
        answers: RefCell<Vec<CommandOutput>>,
        calls: RefCell<Vec<Vec<String>>>,
    }

    impl FakeKubectl {
        fn new(answers: Vec<CommandOutput>) -> Self {
            FakeKubectl { answers: RefCell::new(answers), calls: RefCell::new(Vec::new()) }
        }
    }

    impl CommandRunner for FakeKubectl {
        fn kubectl(&self, args: &[String]) -> std::io::Result<CommandOutput> {
            self.calls.borrow_mut().push(args.to_vec());
            Ok(self.answers.borrow_mut().remove(0))
        }
    }

    fn answer(code: i32, stdout: &str) -> CommandOutput {
        CommandOutput { code: Some(code), stdout: stdout.into(), stderr: String::new() }
    }

    fn overlay() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        fs_err::write(dir.path().join("kustomization.yaml"), "kind: Kustomization\n").unwrap();
        fs_err::write(dir.path().join("secrets.env"), "JWT_SECRET=x\n").unwrap();
        dir
    }

    fn joined(calls: &[Vec<String>]) -> Vec<String> {
        calls.iter().map(|call| call.join(" ")).collect()
    }

    #[test]
    fn apply_checks_the_context_diffs_then_applies() {
        let dir = overlay();
        let kubectl = FakeKubectl::new(vec![
            answer(0, "kind-dev\nprod\n"),
            answer(1, "+  replicas: 2\n"),
            answer(0, "deployment.apps/user-service configured\n"),
        ]);
        let outcome = apply(&kubectl, "kind-dev", dir.path(), false).unwrap();
        assert_eq!(outcome.diff, "+  replicas: 2\n");
        assert_eq!(outcome.applied, "deployment.apps/user-service configured\n");
        let overlay = dir.path().display();
        assert_eq!(
            joined(&kubectl.calls.borrow()),
            [
                "config get-contexts -o name".to_owned(),
                format!("--context kind-dev diff -k {overlay}"),
                format!("--context kind-dev apply -k {overlay}"),
            ]
        );
    }

    #[test]
    fn a_dry_run_asks_the_server_and_changes_nothing() {
        let dir = overlay();
        let kubectl =
            FakeKubectl::new(vec![answer(0, "kind-dev\n"), answer(0, ""), answer(0, "configured (server dry run)\n")]);
        let outcome = apply(&kubectl, "kind-dev", dir.path(), true).unwrap();
        assert!(outcome.dry_run && outcome.diff.is_empty());
        let calls = joined(&kubectl.calls.borrow());
        assert_eq!(calls[2], format!("--context kind-dev apply --dry-run=server -k {}", dir.path().display()));
        assert!(!calls.iter().any(|call| call.ends_with(&format!("apply -k {}", dir.path().display()))));
    }

    #[test]
    fn an_unknown_context_stops_before_anything_runs_on_a_cluster() {
        let dir = overlay();
        let kubectl = FakeKubectl::new(vec![answer(0, "kind-dev\n")]);
        let error = apply(&kubectl, "prod", dir.path(), false).unwrap_err();
        assert_eq!(error.to_string(), "kubectl has no context named `prod` (it has: kind-dev)");
        assert_eq!(kubectl.calls.borrow().len(), 1);
    }

    #[test]
    fn a_missing_secrets_file_and_a_failing_kubectl_say_so() {
        let dir = overlay();
        fs_err::remove_file(dir.path().join("secrets.env")).unwrap();
        let kubectl = FakeKubectl::new(vec![answer(0, "kind-dev\n")]);
        assert!(matches!(apply(&kubectl, "kind-dev", dir.path(), false), Err(ApplyError::NoSecrets(_))));

        let dir = overlay();
        let failing = CommandOutput { code: Some(1), stdout: String::new(), stderr: "forbidden\n".into() };
        let kubectl = FakeKubectl::new(vec![answer(0, "kind-dev\n"), answer(0, ""), failing]);
        let error = apply(&kubectl, "kind-dev", dir.path(), false).unwrap_err();
        assert!(error.to_string().ends_with("failed (exit 1): forbidden"), "{error}");
    }
}
