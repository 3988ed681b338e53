//! `plat test`: every service's own tests run in its own checkout, each integration suite given a
//! fresh migrated database of its own, results cached by what the tests read; and `plat test
//! --e2e`, the platform's end-to-end tests against the running platform.
//!
//! API boundary: [`run`] runs the services' suites and returns one [`ServiceResult`] each;
//! [`e2e::run`] runs the end-to-end command; [`junit`] writes both as one report. Nothing here
//! prints: progress arrives as [`TestEvent`]s. See docs/cli.md (`plat test`) for what a user sees.

pub mod cache;
pub mod database;
pub mod e2e;
pub mod junit;
pub mod runner;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde::Serialize;

use crate::manifest::{Service, Workspace};
use crate::migrate::{DatabaseTarget, Stop, UrlError};

/// How many services' suites run at once by default: cargo compiles and runs tests in parallel
/// itself, so more would mostly contend for the same cores and the target directory's lock.
pub const DEFAULT_JOBS: usize = 2;

/// How to run the services' tests.
#[derive(Debug)]
pub struct TestOptions {
    /// Run even the services whose inputs match a passing run.
    pub force: bool,
    /// Services run at once (at least 1).
    pub jobs: usize,
    /// The server each service with a `database` gets its test database on, or why there is
    /// none; services not listed get none.
    pub servers: Vec<(String, Result<DatabaseTarget, UrlError>)>,
    /// Stops the run on the caller's word (Ctrl-C): the suites are killed, their databases dropped.
    pub stop: Stop,
}

/// Progress, for the caller to render.
#[derive(Debug)]
pub enum TestEvent<'a> {
    /// A service's suite starts.
    Started {
        /// The service.
        service: &'a str,
        /// What runs, as a person would type it.
        command: &'a str,
    },
    /// A service's test database exists, migrated.
    DatabaseReady {
        /// The service.
        service: &'a str,
        /// The database's name.
        database: &'a str,
    },
    /// A service is done (passed, failed, cached or skipped).
    Finished(&'a ServiceResult),
}

/// How one service's tests went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// They ran and passed.
    Passed,
    /// They ran and failed, or could not run.
    Failed,
    /// Nothing they read changed since a passing run: not run again.
    Cached,
    /// Nothing to run (no checkout with tests), or stopped before it ran.
    Skipped,
}

/// One test's outcome, as the runner reported it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "status", content = "message")]
pub enum Outcome {
    /// It passed.
    Passed,
    /// It failed; the message is what it printed (bounded).
    Failed(String),
    /// It was ignored.
    Ignored,
}

/// One test of a service's suite.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TestCase {
    /// Its name as the runner gives it: `binary test::path` for nextest, the test path for
    /// `cargo test`.
    pub name: String,
    /// How it went.
    #[serde(flatten)]
    pub outcome: Outcome,
    /// How long it ran, when the runner says.
    #[serde(serialize_with = "seconds")]
    pub took: Option<Duration>,
}

/// How one service's tests went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceResult {
    /// The service.
    pub service: String,
    /// Passed, failed, cached or skipped.
    pub verdict: Verdict,
    /// What ran (or would have run).
    pub command: String,
    /// Why it failed or was skipped, in one line; `None` when it passed or is cached.
    pub reason: Option<String>,
    /// The tests the runner reported (empty when cached or skipped, or when the command's
    /// output names none).
    pub tests: Vec<TestCase>,
    /// The test database it was given (dropped since), when it has a `database`.
    pub database: Option<String>,
    /// The end of its output when it failed, so a person sees why.
    pub output: Option<String>,
    /// How long it took.
    #[serde(serialize_with = "seconds")]
    pub took: Option<Duration>,
}

impl ServiceResult {
    /// The failed tests.
    pub fn failed_tests(&self) -> impl Iterator<Item = &TestCase> {
        self.tests.iter().filter(|test| matches!(test.outcome, Outcome::Failed(_)))
    }

    fn new(service: &Service, command: String, verdict: Verdict) -> ServiceResult {
        ServiceResult {
            service: service.name.clone(),
            verdict,
            command,
            reason: None,
            tests: Vec::new(),
            database: None,
            output: None,
            took: None,
        }
    }
}

fn seconds<S: serde::Serializer>(took: &Option<Duration>, serializer: S) -> Result<S::Ok, S::Error> {
    match took {
        Some(took) => serializer.serialize_f64((took.as_secs_f64() * 1000.0).round() / 1000.0),
        None => serializer.serialize_none(),
    }
}

/// Runs the tests of `services`, at most `options.jobs` at once; one result each, in the order
/// given. A service whose inputs match its last passing run is `Cached` unless `force`.
pub async fn run(
    workspace: &Workspace,
    services: &[&Service],
    options: &TestOptions,
    on_event: &(dyn Fn(TestEvent<'_>) + Sync),
) -> Vec<ServiceResult> {
    // The toolchain is part of every key: asked once (and cached by the build's own record).
    let toolchain = crate::build::rustc_version(workspace).await.unwrap_or_else(|error| format!("no rustc: {error}"));
    let nextest = runner::nextest_installed();
    let jobs = options.jobs.max(1);
    let mut results: Vec<(usize, ServiceResult)> = futures_util::stream::iter(services.iter().enumerate())
        .map(|(index, service)| {
            let toolchain = &toolchain;
            async move {
                let result = one(workspace, service, options, toolchain, nextest, on_event).await;
                on_event(TestEvent::Finished(&result));
                (index, result)
            }
        })
        .buffer_unordered(jobs)
        .collect()
        .await;
    results.sort_by_key(|(index, _)| *index);
    results.into_iter().map(|(_, result)| result).collect()
}

async fn one(
    workspace: &Workspace,
    service: &Service,
    options: &TestOptions,
    toolchain: &str,
    nextest: bool,
    on_event: &(dyn Fn(TestEvent<'_>) + Sync),
) -> ServiceResult {
    if !service.has_code() {
        let mut result = ServiceResult::new(service, String::new(), Verdict::Skipped);
        result.reason = Some(format!("runs the ready image {}: no code of its own to test", service.image_reference()));
        return result;
    }
    let dir = workspace.service_dir(service);
    let plan = match runner::plan(service, &dir, nextest) {
        Ok(plan) => plan,
        Err(runner::NoPlan::NoCheckout) => {
            let mut result = ServiceResult::new(service, String::new(), Verdict::Failed);
            result.reason = Some(format!("no checkout at {}: `plat sync` clones it", service.path));
            return result;
        }
        Err(runner::NoPlan::NothingToRun) => {
            let mut result = ServiceResult::new(service, String::new(), Verdict::Skipped);
            result.reason = Some("no Cargo.toml and no `test` command in workspace.toml: nothing to run".to_owned());
            return result;
        }
    };
    let key = cache::key(workspace, service, &plan.display, toolchain);
    if !options.force
        && let Ok(key) = &key
        && cache::passed_before(workspace, service, key)
    {
        return ServiceResult::new(service, plan.display.clone(), Verdict::Cached);
    }
    if options.stop.is_requested() {
        let mut result = ServiceResult::new(service, plan.display.clone(), Verdict::Skipped);
        result.reason = Some("stopped before it ran".to_owned());
        return result;
    }
    let started = Instant::now();
    let mut result = ServiceResult::new(service, plan.display.clone(), Verdict::Failed);

    // A fresh database of its own, migrated, when the service has one.
    let mut env: Vec<(String, String)> = Vec::new();
    let mut fresh = None;
    if service.database.is_some() {
        let server = options.servers.iter().find(|(name, _)| *name == service.name).map(|(_, server)| server);
        let server = match server {
            Some(Ok(server)) => server,
            Some(Err(error)) => {
                result.reason = Some(error.to_string());
                return result;
            }
            None => {
                result.reason = Some(format!("no database server was given for {}", service.name));
                return result;
            }
        };
        match database::create(workspace, service, server, &options.stop).await {
            Ok(created) => {
                on_event(TestEvent::DatabaseReady { service: &service.name, database: &created.target.database });
                result.database = Some(created.target.database.clone());
                env.extend(created.env());
                fresh = Some(created);
            }
            Err(reason) => {
                result.reason = Some(reason);
                return result;
            }
        }
    }

    on_event(TestEvent::Started { service: &service.name, command: &plan.display });
    let target_dir = crate::state::cargo_target_dir(workspace).unwrap_or_else(|_| PathBuf::from("target"));
    let ran = runner::execute(&plan, &dir, &target_dir, &env, &options.stop).await.transpose();
    // Dropped whatever happened: a failed or stopped suite leaves no database behind.
    if let Some(fresh) = fresh
        && let Err(reason) = database::drop(&fresh).await
    {
        result.output = Some(format!("could not drop the test database: {reason}"));
    }
    result.took = Some(started.elapsed());
    let Some(ran) = ran else {
        result.verdict = Verdict::Skipped;
        result.reason = Some("stopped".to_owned());
        return result;
    };
    match ran {
        Ok(ran) => {
            result.tests = ran.tests;
            let failed = result.failed_tests().count();
            if ran.success && failed == 0 {
                result.verdict = Verdict::Passed;
                if let Ok(key) = &key {
                    // A cache that cannot be written costs the next run a run, nothing else.
                    let _ = cache::record_pass(workspace, service, key);
                }
            } else {
                result.reason = Some(match failed {
                    0 => format!("`{}` failed: {}", plan.display, ran.status),
                    1 => "1 test failed".to_owned(),
                    n => format!("{n} tests failed"),
                });
                result.output = Some(ran.output_tail);
            }
        }
        Err(reason) => result.reason = Some(reason),
    }
    result
}
