//! `plat logs`: the services' container logs, interleaved as they arrive, each line prefixed
//! with its service (coloured on a terminal), like `docker compose logs`.

use anstyle::{AnsiColor, Style};
use futures_util::StreamExt;
use futures_util::stream::select_all;
use plat::docker::container::LogOptions;
use plat::manifest::Workspace;
use plat::stack::{self, LogsError};

use super::{docker_hint, runtime, unknown_service, with_hint};
use crate::args::LogsArgs;
use crate::ui::{self, CliError, ExitStatus, paint};

/// Service prefixes take these colours in turn.
const COLOURS: [AnsiColor; 6] =
    [AnsiColor::Cyan, AnsiColor::Yellow, AnsiColor::Green, AnsiColor::Magenta, AnsiColor::Blue, AnsiColor::Red];

pub fn run(workspace: &Workspace, args: &LogsArgs) -> Result<ExitStatus, CliError> {
    let services = workspace.select(&args.services).map_err(unknown_service)?;
    let options = LogOptions { follow: args.follow, tail: args.tail, timestamps: args.timestamps };
    let runtime = runtime()?;
    runtime.block_on(async {
        let streams = stack::logs(workspace, &services, options).await.map_err(|error| match error {
            LogsError::NoContainer(service) => CliError::failure(format!("{service} has no container"))
                .hint(format!("`plat up {service}` starts it; `plat ps` shows what runs")),
            LogsError::Docker(error) => {
                let hint = docker_hint(&error);
                with_hint(CliError::failure(error), hint)
            }
        })?;
        let width = streams.iter().map(|(service, _)| service.len()).max().unwrap_or_default();
        let prefixes: Vec<String> = streams
            .iter()
            .enumerate()
            .map(|(index, (service, _))| {
                let style = Style::new().fg_color(Some(COLOURS[index % COLOURS.len()].into()));
                paint(style, format!("{service:<width$} |"))
            })
            .collect();
        let mut lines =
            select_all(streams.into_iter().enumerate().map(|(index, (_, lines))| lines.map(move |line| (index, line))));
        while let Some((index, line)) = lines.next().await {
            match line {
                Ok(line) => ui::write_stdout(&format!("{} {}\n", prefixes[index], line.text))?,
                Err(error) => ui::warn(format!("reading the log failed: {error}")),
            }
        }
        Ok(ExitStatus::Success)
    })
}
