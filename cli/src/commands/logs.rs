//! `plat logs`: the services' logs merged in the order they were written, pkg's JSON lines shown
//! as a person reads them (time, level, service, message, fields), filtered by level or
//! request; `--json` keeps the lines as written. [`LogPrinter`] also draws `plat up --watch`'s.

use std::collections::HashMap;

use anstyle::{AnsiColor, Style};
use futures_util::StreamExt;
use plat::logs::{self, Level, LogFilter, LogRecord};
use plat::manifest::Workspace;

use super::{docker_hint, engine, runtime, unknown_service, with_hint};
use crate::args::LogsArgs;
use crate::ui::{self, CliError, ExitStatus, paint, style};

/// Service prefixes take these colours in turn.
const COLOURS: [AnsiColor; 6] =
    [AnsiColor::Cyan, AnsiColor::Yellow, AnsiColor::Green, AnsiColor::Magenta, AnsiColor::Blue, AnsiColor::Red];

pub fn run(workspace: &Workspace, args: &LogsArgs) -> Result<ExitStatus, CliError> {
    let services = workspace.select(&args.services).map_err(unknown_service)?;
    let names: Vec<&str> = services.iter().map(|service| service.name.as_str()).collect();
    let printer = LogPrinter::new(&names, args.json, args.timestamps);
    let filter = LogFilter { level: args.level, request: args.trace.clone() };
    let engine_error = |error: plat::docker::DockerError| {
        let hint = docker_hint(&error);
        with_hint(CliError::failure(error), hint)
    };
    let runtime = runtime()?;
    let engine = engine(&runtime)?;
    runtime.block_on(async {
        let backlog = logs::read(&engine, workspace, &services, args.tail, args.since).await.map_err(engine_error)?;
        for service in &backlog.without_container {
            ui::warn(format!("{service} has no container: nothing to show (`plat up {service}` starts it)"));
        }
        let mut last: HashMap<String, String> = HashMap::new();
        for record in &backlog.records {
            last.insert(record.service.clone(), record.time.clone());
            if filter.keeps(record) {
                printer.print(record)?;
            }
        }
        if !args.follow {
            return Ok(ExitStatus::Success);
        }
        // From here on, what each service writes after the last line shown, its next
        // containers' included, until Ctrl-C.
        let mut lines = std::pin::pin!(logs::follow(&engine, workspace, &services, last));
        while let Some(record) = lines.next().await {
            if filter.keeps(&record) {
                printer.print(&record)?;
            }
        }
        Ok(ExitStatus::Success)
    })
}

/// Draws log records: a coloured service prefix, then the line made readable.
pub struct LogPrinter {
    prefixes: HashMap<String, String>,
    raw: bool,
    timestamps: bool,
}

impl LogPrinter {
    /// A printer for these services (their prefixes are padded to the longest name); `raw`
    /// prints each line exactly as written, with no prefix.
    pub fn new(services: &[&str], raw: bool, timestamps: bool) -> LogPrinter {
        let width = services.iter().map(|service| service.len()).max().unwrap_or_default();
        let prefixes = services
            .iter()
            .enumerate()
            .map(|(index, service)| {
                let style = Style::new().fg_color(Some(COLOURS[index % COLOURS.len()].into()));
                (service.to_string(), paint(style, format!("{service:<width$} |")))
            })
            .collect();
        LogPrinter { prefixes, raw, timestamps }
    }

    /// Writes one record on stdout.
    pub fn print(&self, record: &LogRecord) -> Result<(), CliError> {
        ui::write_stdout(&format!("{}\n", self.render(record)))
    }

    /// One record as a line of text, without the line ending.
    pub fn render(&self, record: &LogRecord) -> String {
        if self.raw {
            return record.text.clone();
        }
        let prefix = self.prefixes.get(&record.service).cloned().unwrap_or_else(|| format!("{} |", record.service));
        let stamp = if self.timestamps { format!("{} ", paint(style::DIM, &record.time)) } else { String::new() };
        let Some(line) = record.structured() else {
            return format!("{prefix} {stamp}{}", record.text);
        };
        let time = if self.timestamps {
            String::new()
        } else {
            // `2026-08-04T10:00:00.123456Z` → `10:00:00.123`: the day is rarely news.
            format!("{} ", paint(style::DIM, line.timestamp.get(11..23).unwrap_or(&line.timestamp)))
        };
        let level = paint(level_style(line.level), format!("{:<5}", line.level.as_str()));
        let mut text = format!("{prefix} {stamp}{time}{level} {}", line.message);
        let mut fields: Vec<String> = line.fields.iter().map(|(key, value)| format!("{key}={}", show(value))).collect();
        if let Some(trace) = &line.trace_id {
            fields.push(format!("trace={}", trace.get(..8).unwrap_or(trace)));
        }
        if !fields.is_empty() {
            text.push(' ');
            text.push_str(&paint(style::DIM, fields.join(" ")));
        }
        text
    }
}

fn level_style(level: Level) -> Style {
    let colour = match level {
        Level::Error => AnsiColor::Red,
        Level::Warn => AnsiColor::Yellow,
        Level::Info => AnsiColor::Green,
        Level::Debug => AnsiColor::Blue,
        Level::Trace => AnsiColor::BrightBlack,
    };
    Style::new().fg_color(Some(colour.into())).bold()
}

/// A field's value as `key=value` shows it: strings bare unless they hold a space or are empty.
fn show(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(text) if text.is_empty() || text.contains(char::is_whitespace) => {
            serde_json::to_string(text).unwrap_or_default()
        }
        serde_json::Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use plat::docker::container::LogStream;

    fn record(text: &str) -> LogRecord {
        LogRecord {
            service: "user-service".into(),
            time: "2026-08-04T10:00:00.2Z".into(),
            stream: LogStream::Stdout,
            text: text.into(),
        }
    }

    /// What a terminal without colour shows.
    fn plain(text: String) -> String {
        anstream::adapter::strip_str(&text).to_string()
    }

    #[test]
    fn pkg_lines_read_as_time_level_message_and_fields() {
        let printer = LogPrinter::new(&["user-service", "api-gateway"], false, false);
        let line = r#"{"timestamp":"2026-08-04T10:00:00.123456Z","level":"WARN","service":"user-service","message":"slow query","fields":{"took_ms":812,"table":"users","sql":"SELECT 1"},"span":{"name":"request","route":"/user.v1.UserService/GetUser"},"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736"}"#;
        assert_eq!(
            plain(printer.render(&record(line))),
            "user-service | 10:00:00.123 WARN  slow query took_ms=812 table=users sql=\"SELECT 1\" span=request \
             route=/user.v1.UserService/GetUser trace=4bf92f35"
        );
        assert_eq!(plain(printer.render(&record("thread 'main' panicked"))), "user-service | thread 'main' panicked");
        assert_eq!(LogPrinter::new(&["user-service"], true, false).render(&record(line)), line, "--json: as written");
    }
}
