//! `plat test`: the services' own tests (one line per service, failing tests and their output,
//! a summary), `--contract` (one line per case and a summary) or `--e2e` (the platform's
//! end-to-end command); the results as JSON; a JUnit XML report for CI.

use plat::contract::{self, Case, ContractError, ContractOptions, Outcome};
use plat::manifest::{Service, Workspace};
use plat::migrate::{self, Stop, UrlSources};
use plat::testing::e2e::{E2eError, E2eResult};
use plat::testing::{self, ServiceResult, TestEvent, TestOptions, Verdict};

use super::{docker_hint, engine, print_json, proto, reach, runtime, unknown_service, with_hint};
use crate::args::TestArgs;
use crate::ui::{self, CliError, ExitStatus, paint, style};

mod can_deploy;

pub fn run(workspace: &Workspace, args: &TestArgs) -> Result<ExitStatus, CliError> {
    if let Some(service) = &args.can_deploy {
        return can_deploy::run(workspace, service, args.json);
    }
    if args.contract {
        contract(workspace, args)
    } else if args.e2e {
        e2e(workspace, args)
    } else {
        services(workspace, args)
    }
}

/// `plat test --contract`.
fn contract(workspace: &Workspace, args: &TestArgs) -> Result<ExitStatus, CliError> {
    let options =
        ContractOptions { against: args.against.clone(), engine: proto::engine(args.engine), reach: reach()? };
    let runtime = runtime()?;
    let docker = engine(&runtime)?;
    let cases = runtime.block_on(contract::run(&docker, workspace, &options)).map_err(|error| match error {
        ContractError::Proto(error) => proto::proto_error(error),
        ContractError::Docker(error) => {
            let hint = docker_hint(&error);
            with_hint(CliError::failure(error), hint)
        }
        ContractError::Records(error) => CliError::failure(ContractError::Records(error)),
    })?;
    if let Some(path) = &args.junit {
        fs_err::write(path, contract::junit(&cases))
            .map_err(|error| CliError::failure(format!("cannot write the JUnit report: {error}")))?;
    }
    if args.json {
        print_json(&cases)?;
    } else {
        show(&cases)?;
    }
    let failed = cases.iter().filter(|case| matches!(case.outcome, Outcome::Failed(_))).count();
    if failed > 0 {
        return Err(CliError::failure(format!("{failed} contract test{} failed", if failed == 1 { "" } else { "s" })));
    }
    Ok(ExitStatus::Success)
}

/// One line per case on stdout, `cargo test`'s way, failures' reasons below them, a summary.
fn show(cases: &[Case]) -> Result<(), CliError> {
    let mut text = String::new();
    for case in cases {
        let (verdict, reason) = match &case.outcome {
            Outcome::Passed => (paint(style::GOOD, "ok"), None),
            Outcome::Failed(reason) => (paint(style::ERROR, "FAILED"), Some(reason)),
            Outcome::Skipped(reason) => (paint(style::WARN, "skipped"), Some(reason)),
        };
        text.push_str(&format!("contract {} {} ... {verdict}\n", case.suite, case.name));
        for line in reason.into_iter().flat_map(|reason| reason.lines()) {
            text.push_str(&format!("    {line}\n"));
        }
    }
    let count = |wanted: fn(&Outcome) -> bool| cases.iter().filter(|case| wanted(&case.outcome)).count();
    let failed = count(|outcome| matches!(outcome, Outcome::Failed(_)));
    let result = if failed == 0 { paint(style::GOOD, "ok") } else { paint(style::ERROR, "FAILED") };
    text.push_str(&format!(
        "\ncontract test result: {result}. {} passed; {failed} failed; {} skipped\n",
        count(|outcome| *outcome == Outcome::Passed),
        count(|outcome| matches!(outcome, Outcome::Skipped(_)))
    ));
    ui::write_stdout(&text)
}

/// `plat test [SERVICE...]`: each service's own tests.
fn services(workspace: &Workspace, args: &TestArgs) -> Result<ExitStatus, CliError> {
    let mut selected = workspace.select(&args.services).map_err(unknown_service)?;
    if args.services.is_empty() {
        // A ready image has no tests of its own: not listed unless named (then it is `skipped`, saying why).
        selected.retain(|service| service.has_code());
    }
    let runtime = runtime()?;
    let (handle, stop) = Stop::new();
    let options =
        TestOptions { force: args.force, jobs: args.jobs, servers: servers(workspace, &selected, &runtime), stop };
    let on_event = |event: TestEvent<'_>| match event {
        TestEvent::DatabaseReady { service, database } => {
            ui::status("Database", style::GOOD, format!("{service}: {database}, migrated"));
        }
        TestEvent::Started { service, command } => ui::status("Testing", style::GOOD, format!("{service}: {command}")),
        TestEvent::Finished(_) => {}
    };
    let results = runtime.block_on(async {
        // Ctrl-C: the suites are killed and their databases dropped before plat exits.
        let interrupt = tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                handle.stop();
            }
        });
        let results = testing::run(workspace, &selected, &options, &on_event).await;
        interrupt.abort();
        results
    });
    if let Some(path) = &args.junit {
        write_junit(path, &testing::junit::services(&results))?;
    }
    if args.json {
        print_json(&results)?;
    } else {
        show_services(&results)?;
    }
    if results.iter().any(|result| result.reason.as_deref() == Some("stopped")) {
        return Err(CliError::interrupted("stopped: the running tests were killed and their databases dropped"));
    }
    let failed: Vec<String> = results
        .iter()
        .filter(|result| result.verdict == Verdict::Failed)
        .map(|result| {
            let tests: Vec<&str> = result.failed_tests().map(|test| test.name.as_str()).collect();
            if tests.is_empty() { result.service.clone() } else { format!("{} ({})", result.service, tests.join(", ")) }
        })
        .collect();
    if !failed.is_empty() {
        return Err(CliError::failure(format!(
            "tests failed in {} service{}: {}",
            failed.len(),
            if failed.len() == 1 { "" } else { "s" },
            failed.join("; ")
        )));
    }
    Ok(ExitStatus::Success)
}

/// The server each selected service with a database gets its test database on: the one
/// `plat migrate` would use (DATABASE_URL_<SERVICE>, else the workspace's database container,
/// reached on its port published on 127.0.0.1: the tests run on this machine, not on the
/// platform's network).
fn servers(
    workspace: &Workspace,
    selected: &[&Service],
    runtime: &tokio::runtime::Runtime,
) -> Vec<(String, Result<migrate::DatabaseTarget, migrate::UrlError>)> {
    let with_database: Vec<&Service> = selected.iter().copied().filter(|service| service.database.is_some()).collect();
    let env = |name: &str| std::env::var(name).ok();
    let mut sources = UrlSources { explicit: None, env: &env, container: None, container_dial: None };
    // The Engine is asked only when a service has no URL of its own: tests with URLs need no Docker.
    let container = if with_database.iter().all(|service| sources.given(service)) {
        None
    } else {
        let owner = plat::docker::Owner::new(&workspace.name, &workspace.root);
        runtime
            .block_on(async { plat::docker::Engine::connect().await?.find_database_container(&owner).await })
            .ok()
            .flatten()
    };
    sources.container = container.as_ref();
    with_database.iter().map(|service| (service.name.clone(), migrate::url::resolve(service, &sources))).collect()
}

/// One line per service on stdout, failing tests and the end of the output below a failing one,
/// a summary.
fn show_services(results: &[ServiceResult]) -> Result<(), CliError> {
    let mut text = String::new();
    for result in results {
        let took = result.took.map(|took| format!(" in {}", ui::seconds(took))).unwrap_or_default();
        let counted =
            |wanted: fn(&testing::Outcome) -> bool| result.tests.iter().filter(|test| wanted(&test.outcome)).count();
        let passed = counted(|outcome| *outcome == testing::Outcome::Passed);
        let failed = counted(|outcome| matches!(outcome, testing::Outcome::Failed(_)));
        let verdict = match result.verdict {
            Verdict::Passed if result.tests.is_empty() => format!("{}{took}", paint(style::GOOD, "ok")),
            Verdict::Passed => format!("{} ({passed} passed{took})", paint(style::GOOD, "ok")),
            Verdict::Cached => format!("{} (passed before with the same inputs)", paint(style::GOOD, "cached")),
            Verdict::Skipped => {
                format!("{} ({})", paint(style::WARN, "skipped"), result.reason.as_deref().unwrap_or_default())
            }
            Verdict::Failed if result.tests.is_empty() => format!("{}{took}", paint(style::ERROR, "FAILED")),
            Verdict::Failed => format!("{} ({passed} passed, {failed} failed{took})", paint(style::ERROR, "FAILED")),
        };
        text.push_str(&format!("test {} ... {verdict}\n", result.service));
        if result.verdict != Verdict::Failed {
            continue;
        }
        for test in result.failed_tests() {
            text.push_str(&format!("    {} {}\n", paint(style::ERROR, "FAILED"), test.name));
            if let testing::Outcome::Failed(message) = &test.outcome {
                for line in message.lines() {
                    text.push_str(&format!("        {line}\n"));
                }
            }
        }
        if result.tests.is_empty() || result.failed_tests().next().is_none() {
            if let Some(reason) = &result.reason {
                text.push_str(&format!("    {reason}\n"));
            }
            for line in result.output.iter().flat_map(|output| output.lines()) {
                text.push_str(&format!("    | {line}\n"));
            }
        }
    }
    let count = |verdict: Verdict| results.iter().filter(|result| result.verdict == verdict).count();
    let failed = count(Verdict::Failed);
    let result = if failed == 0 { paint(style::GOOD, "ok") } else { paint(style::ERROR, "FAILED") };
    text.push_str(&format!(
        "\ntest result: {result}. {} passed; {failed} failed; {} cached; {} skipped\n",
        count(Verdict::Passed),
        count(Verdict::Cached),
        count(Verdict::Skipped)
    ));
    ui::write_stdout(&text)
}

/// `plat test --e2e`: the end-to-end command against the running platform.
fn e2e(workspace: &Workspace, args: &TestArgs) -> Result<ExitStatus, CliError> {
    let runtime = runtime()?;
    let docker = engine(&runtime)?;
    let reach = reach()?;
    // The command's output is plat's stderr: stdout stays for the results (and --json).
    let stderr = || {
        use std::os::fd::AsFd;
        std::io::stderr()
            .as_fd()
            .try_clone_to_owned()
            .map(std::process::Stdio::from)
            .map_err(|error| CliError::failure(format!("cannot hand stderr to the e2e command: {error}")))
    };
    let result: E2eResult = runtime
        .block_on(testing::e2e::run(&docker, workspace, reach, stderr()?, stderr()?))
        .map_err(|error| match error {
            E2eError::NotDeclared => CliError::usage(error).hint(
                "name the command in workspace.toml: [workspace.e2e] command = \"cargo test -p e2e\" (docs/manifest.md)",
            ),
            E2eError::NotUp(_) => CliError::failure(error).hint("`plat up` starts the platform; `plat ps` shows it"),
            E2eError::Docker(error) => {
                let hint = docker_hint(&error);
                with_hint(CliError::failure(error), hint)
            }
            E2eError::Spawn { .. } => CliError::failure(error),
        })?;
    if let Some(path) = &args.junit {
        write_junit(path, &testing::junit::e2e(&result))?;
    }
    if args.json {
        print_json(&result)?;
    } else {
        let verdict = if result.passed { paint(style::GOOD, "ok") } else { paint(style::ERROR, "FAILED") };
        let took = result.took.map(|took| format!(" in {}", ui::seconds(took))).unwrap_or_default();
        ui::write_stdout(&format!("e2e {} ... {verdict}{took}\n", result.command))?;
    }
    if !result.passed {
        return Err(CliError::failure(format!(
            "the end-to-end tests failed: `{}` exited with {}",
            result.command, result.status
        )));
    }
    Ok(ExitStatus::Success)
}

fn write_junit(path: &std::path::Path, xml: &str) -> Result<(), CliError> {
    fs_err::write(path, xml).map_err(|error| CliError::failure(format!("cannot write the JUnit report: {error}")))
}
