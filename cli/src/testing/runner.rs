//! What runs a service's tests (cargo nextest, cargo test, or the manifest's `test` command),
//! and the per-test results read from its output.

use std::path::Path;
use std::process::Stdio;

use tokio::io::AsyncBufReadExt;

use super::{Outcome, TestCase};
use crate::manifest::{Service, UserCommand};
use crate::migrate::Stop;

/// How many lines of a failing suite's output are kept to show: the end, where runners and
/// compilers say what failed.
const OUTPUT_LINES: usize = 40;

/// How many lines of one failing test's own output are kept.
const TEST_OUTPUT_LINES: usize = 20;

/// The command that runs a service's tests.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Program and arguments.
    pub argv: Vec<String>,
    /// Variables the runner needs (nextest's JSON output).
    pub env: Vec<(String, String)>,
    /// How it reads to a person.
    pub display: String,
    /// How its output is read.
    pub kind: Kind,
}

/// Which runner, for reading its output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `cargo nextest run` with libtest-compatible JSON lines on stdout.
    Nextest,
    /// `cargo test`, or a command of the user's: libtest's `test NAME ... ok` lines are read
    /// when it prints them.
    Libtest,
}

/// Why a service has no plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoPlan {
    /// Its directory does not exist.
    NoCheckout,
    /// No `test` command and no Cargo.toml.
    NothingToRun,
}

/// Whether `cargo nextest` is installed (as cargo finds subcommands: `cargo-nextest` on PATH).
pub fn nextest_installed() -> bool {
    which::which("cargo-nextest").is_ok()
}

/// The command for `service` in `dir`: its `test`, else cargo's tests of the whole cargo
/// workspace there (nextest when installed).
pub fn plan(service: &Service, dir: &Path, nextest: bool) -> Result<Plan, NoPlan> {
    if !dir.is_dir() {
        return Err(NoPlan::NoCheckout);
    }
    if let Some(command) = &service.test {
        let argv = match command {
            UserCommand::Shell(text) => vec!["sh".to_owned(), "-c".to_owned(), text.clone()],
            UserCommand::Argv(words) => words.clone(),
        };
        return Ok(Plan { argv, env: Vec::new(), display: command.display(), kind: Kind::Libtest });
    }
    if !dir.join("Cargo.toml").is_file() {
        return Err(NoPlan::NothingToRun);
    }
    let words: &[&str] = if nextest {
        &["cargo", "nextest", "run", "--workspace", "--no-fail-fast", "--no-tests=pass"]
    } else {
        &["cargo", "test", "--workspace", "--no-fail-fast"]
    };
    let display = words.join(" ");
    let mut argv: Vec<String> = words.iter().map(|word| (*word).to_owned()).collect();
    let (env, kind) = if nextest {
        // Per-test results as JSON lines; not in the display: a person reruns without them.
        argv.extend(["--message-format".to_owned(), "libtest-json".to_owned()]);
        (vec![("NEXTEST_EXPERIMENTAL_LIBTEST_JSON".to_owned(), "1".to_owned())], Kind::Nextest)
    } else {
        (Vec::new(), Kind::Libtest)
    };
    Ok(Plan { argv, env, display, kind })
}

/// What a run of a plan gave.
#[derive(Debug)]
pub struct Ran {
    /// Whether it exited 0.
    pub success: bool,
    /// Its exit status, for messages.
    pub status: String,
    /// The tests its output named.
    pub tests: Vec<TestCase>,
    /// The last lines of its output (stderr, then what stdout said that was not a result).
    pub output_tail: String,
}

/// How long a stopped suite has to end after SIGTERM (nextest stops its tests, each in a process
/// group of its own, on it) before its group is killed.
const STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(15);

/// Runs `plan` in `dir` with cargo's target directory and `env`; fails only when it cannot
/// start. `None` when `stop` asked it to stop: it was terminated (killed after [`STOP_GRACE`]).
pub async fn execute(
    plan: &Plan,
    dir: &Path,
    target_dir: &Path,
    env: &[(String, String)],
    stop: &Stop,
) -> Result<Option<Ran>, String> {
    let (program, args) = plan.argv.split_first().ok_or("the test command is empty")?;
    let mut command = tokio::process::Command::new(program);
    command
        .args(args)
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", target_dir)
        .envs(plan.env.iter().map(|(key, value)| (key, value)))
        .envs(env.iter().map(|(key, value)| (key, value)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // A group of its own: stopping the run stops cargo and the test binaries it started.
        .process_group(0)
        .kill_on_drop(true);
    let mut child = command.spawn().map_err(|error| format!("cannot run `{}`: {error}", plan.display))?;
    let mut group = GroupGuard(child.id());
    let stdout = child.stdout.take().expect("piped");
    let stderr = child.stderr.take().expect("piped");
    let read_stdout = async {
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let mut kept = Vec::new();
        while let Ok(Some(line)) = lines.next_line().await {
            kept.push(line);
        }
        kept
    };
    let read_stderr = async {
        let mut lines = tokio::io::BufReader::new(stderr).lines();
        let mut kept = Vec::new();
        while let Ok(Some(line)) = lines.next_line().await {
            kept.push(line);
        }
        kept
    };
    let output = async { tokio::join!(read_stdout, read_stderr) };
    tokio::pin!(output);
    let (stdout, stderr) = tokio::select! {
        output = &mut output => output,
        () = stop.requested() => {
            if let Some(pid) = group.0 {
                signal_group(pid, "-TERM");
                if tokio::time::timeout(STOP_GRACE, &mut output).await.is_err() {
                    signal_group(pid, "-KILL");
                }
            }
            let _ = child.wait().await;
            group.0 = None;
            return Ok(None);
        }
    };
    let status = child.wait().await.map_err(|error| format!("waiting for `{}`: {error}", plan.display))?;
    group.0 = None;
    let tests = match plan.kind {
        Kind::Nextest => nextest_results(&stdout),
        Kind::Libtest => libtest_results(&stdout.iter().chain(&stderr).cloned().collect::<Vec<_>>()),
    };
    let mut shown: Vec<&str> = stderr.iter().map(String::as_str).collect();
    if plan.kind == Kind::Libtest {
        shown.extend(stdout.iter().map(String::as_str));
    }
    Ok(Some(Ran {
        success: status.success(),
        status: status.to_string(),
        tests,
        output_tail: crate::text::tail(&shown.join("\n"), OUTPUT_LINES).trim_start().to_owned(),
    }))
}

/// Sends `signal` (`-TERM`, `-KILL`) to the process group led by `pid`.
fn signal_group(pid: u32, signal: &str) {
    // The group's id is its leader's pid: `kill -SIG -- -<pgid>` reaches every member.
    let _ = std::process::Command::new("kill")
        .args([signal, "--", &format!("-{pid}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// Kills a suite's process group when the run is dropped before it ended: cargo, and the test
/// binaries under it that `kill_on_drop` alone (cargo only) would leave running.
struct GroupGuard(Option<u32>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(group) = self.0 {
            signal_group(group, "-KILL");
        }
    }
}

/// nextest's libtest-json lines: `{"type":"test","event":"failed","name":"crate::bin$path",...}`.
pub fn nextest_results(lines: &[String]) -> Vec<TestCase> {
    let mut tests = Vec::new();
    for line in lines {
        let Ok(event) = serde_json::from_str::<serde_json::Value>(line) else { continue };
        if event["type"] != "test" {
            continue;
        }
        let outcome = match event["event"].as_str() {
            Some("ok") => Outcome::Passed,
            Some("failed") => {
                let output = event["stdout"].as_str().unwrap_or_default();
                Outcome::Failed(failure_message(output))
            }
            Some("ignored") => Outcome::Ignored,
            _ => continue,
        };
        let name = event["name"].as_str().unwrap_or_default();
        // `crate::binary$test::path` as nextest itself shows it: `crate::binary test::path`.
        let name = match name.split_once('$') {
            Some((binary, test)) => format!("{binary} {test}"),
            None => name.to_owned(),
        };
        let took = event["exec_time"].as_f64().map(std::time::Duration::from_secs_f64);
        tests.push(TestCase { name, outcome, took });
    }
    tests
}

/// libtest's lines: `test NAME ... ok|FAILED|ignored`, and each failure's output between
/// `---- NAME stdout ----` and the next such header or `failures:`.
pub fn libtest_results(lines: &[String]) -> Vec<TestCase> {
    let mut tests = Vec::new();
    for line in lines {
        let Some(rest) = line.strip_prefix("test ") else { continue };
        let Some((name, verdict)) = rest.rsplit_once(" ... ") else { continue };
        let outcome = match verdict.trim() {
            "ok" => Outcome::Passed,
            "FAILED" => Outcome::Failed(String::new()),
            verdict if verdict.starts_with("ignored") => Outcome::Ignored,
            _ => continue,
        };
        tests.push(TestCase { name: name.trim().to_owned(), outcome, took: None });
    }
    let mut current: Option<(String, Vec<&str>)> = None;
    let mut outputs: Vec<(String, String)> = Vec::new();
    for line in lines {
        let header = line.strip_prefix("---- ").and_then(|rest| rest.strip_suffix(" stdout ----"));
        if header.is_some() || line.trim() == "failures:" {
            if let Some((name, body)) = current.take() {
                outputs.push((name, body.join("\n")));
            }
            current = header.map(|name| (name.to_owned(), Vec::new()));
        } else if let Some((_, body)) = &mut current {
            body.push(line);
        }
    }
    if let Some((name, body)) = current {
        outputs.push((name, body.join("\n")));
    }
    for test in &mut tests {
        if let Outcome::Failed(message) = &mut test.outcome
            && let Some((_, output)) = outputs.iter().find(|(name, _)| *name == test.name)
        {
            *message = failure_message(output);
        }
    }
    tests
}

/// A failing test's output, short: from its panic message on, without the backtrace's frames.
fn failure_message(output: &str) -> String {
    let start = output.find("panicked at").map_or(0, |at| output[..at].rfind('\n').map_or(0, |newline| newline + 1));
    let relevant: Vec<&str> = output[start..]
        .lines()
        .take_while(|line| !line.starts_with("stack backtrace:"))
        .filter(|line| !line.starts_with("note: run with `RUST_BACKTRACE"))
        .collect();
    let text = relevant.join("\n");
    let lines: Vec<&str> = text.trim().lines().collect();
    lines[..lines.len().min(TEST_OUTPUT_LINES)].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<String> {
        text.lines().map(str::to_owned).collect()
    }

    #[test]
    fn nextest_json_names_each_test_and_why_it_failed() {
        let tests = nextest_results(&lines(concat!(
            r#"{"type":"suite","event":"started","test_count":2}"#,
            "\n",
            r#"{"type":"test","event":"ok","name":"nt::nt$tests::works","exec_time":0.02}"#,
            "\n",
            r#"{"type":"test","event":"failed","name":"nt::it$fails","exec_time":0.1,"stdout":"\nthread 'fails' (1) panicked at src/lib.rs:1:1:\none is not two\nstack backtrace:\n   0: x\n"}"#,
            "\nnot json\n",
        )));
        assert_eq!(tests.len(), 2);
        assert_eq!(tests[0].name, "nt::nt tests::works");
        assert_eq!(tests[0].outcome, Outcome::Passed);
        assert_eq!(tests[1].name, "nt::it fails");
        assert_eq!(
            tests[1].outcome,
            Outcome::Failed("thread 'fails' (1) panicked at src/lib.rs:1:1:\none is not two".to_owned())
        );
    }

    #[test]
    fn libtest_lines_name_each_test_and_attach_its_output() {
        let tests = libtest_results(&lines(
            "running 3 tests\ntest a::ok ... ok\ntest a::bad ... FAILED\ntest a::slow ... ignored, needs a \
             database\n\nfailures:\n\n---- a::bad stdout ----\n\nthread 'a::bad' panicked at src/lib.rs:3:5:\nno \
             table\n\n\nfailures:\n    a::bad\n\ntest result: FAILED. 1 passed; 1 failed; 1 ignored",
        ));
        let names: Vec<&str> = tests.iter().map(|test| test.name.as_str()).collect();
        assert_eq!(names, ["a::ok", "a::bad", "a::slow"]);
        assert_eq!(tests[1].outcome, Outcome::Failed("thread 'a::bad' panicked at src/lib.rs:3:5:\nno table".into()));
        assert_eq!(tests[2].outcome, Outcome::Ignored);
    }
}
