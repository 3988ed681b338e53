//! `plat test --contract`: the contract suites run, then one line per case and a summary, or
//! the results as JSON; a JUnit XML report for CI.

use plat::contract::{self, Case, ContractError, ContractOptions, Outcome};
use plat::manifest::Workspace;

use super::{docker_hint, engine, print_json, proto, reach, runtime, with_hint};
use crate::args::TestArgs;
use crate::ui::{self, CliError, ExitStatus, paint, style};

mod can_deploy;

pub fn run(workspace: &Workspace, args: &TestArgs) -> Result<ExitStatus, CliError> {
    if let Some(service) = &args.can_deploy {
        return can_deploy::run(workspace, service, args.json);
    }
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
