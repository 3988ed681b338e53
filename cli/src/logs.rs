//! The services' logs as records a person can read: merged across services in the order they
//! were written, each line parsed when it is one of the JSON lines `pkg` writes, filtered by
//! level or by request, and followed across container replacements.
//!
//! The Engine stamps every line it stores; those stamps order lines across services (the JSON
//! lines' own timestamps are the service's clock, and a line that is not JSON has none).

use std::collections::HashMap;
use std::time::Duration;

use futures_util::{Stream, StreamExt};

use crate::docker::DockerError;
use crate::docker::Engine;
use crate::docker::container::{self, LogOptions, LogStream};
use crate::manifest::{Service, Workspace};

/// One line a service's container wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    /// The service.
    pub service: String,
    /// When the Engine received it, RFC 3339 in UTC with nanoseconds: orders lines across
    /// services.
    pub time: String,
    /// stdout or stderr.
    pub stream: LogStream,
    /// The line as written, without its line ending.
    pub text: String,
}

impl LogRecord {
    /// The line as one of pkg's JSON log lines, if it is one.
    pub fn structured(&self) -> Option<Structured> {
        Structured::parse(&self.text)
    }
}

/// A JSON log line as `pkg::telemetry` writes it: `timestamp`, `level`, `message`, `fields`, the
/// innermost `span` with its fields, `trace_id`, `span_id`, `request_id`.
#[derive(Debug, Clone, PartialEq)]
pub struct Structured {
    /// The service's own timestamp.
    pub timestamp: String,
    /// `ERROR`, `WARN`, `INFO`, `DEBUG` or `TRACE`.
    pub level: Level,
    /// The message.
    pub message: String,
    /// The event's fields, then the span's (its name as `span`), in the order written.
    pub fields: Vec<(String, serde_json::Value)>,
    /// The W3C trace id every service logs for one request.
    pub trace_id: Option<String>,
    /// The request id the gateway gives a request and pkg passes on to the services it calls.
    pub request_id: Option<String>,
}

/// A log level, most severe first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Something failed.
    Error,
    /// Something is wrong, and was handled.
    Warn,
    /// What happened.
    Info,
    /// Details.
    Debug,
    /// Everything.
    Trace,
}

impl Level {
    /// Parses `error`, `WARN`, ... in any case.
    pub fn parse(text: &str) -> Option<Level> {
        Some(match text.to_ascii_uppercase().as_str() {
            "ERROR" => Level::Error,
            "WARN" | "WARNING" => Level::Warn,
            "INFO" => Level::Info,
            "DEBUG" => Level::Debug,
            "TRACE" => Level::Trace,
            _ => return None,
        })
    }

    /// `ERROR`, `WARN`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Error => "ERROR",
            Level::Warn => "WARN",
            Level::Info => "INFO",
            Level::Debug => "DEBUG",
            Level::Trace => "TRACE",
        }
    }
}

impl Structured {
    /// Parses a line; `None` when it is not a JSON object with at least a level and a message.
    pub fn parse(text: &str) -> Option<Structured> {
        if !text.trim_start().starts_with('{') {
            return None;
        }
        let serde_json::Value::Object(mut object) = serde_json::from_str(text).ok()? else { return None };
        let level = Level::parse(object.get("level")?.as_str()?)?;
        let message = object.remove("message")?.as_str().unwrap_or_default().to_owned();
        let string = |value: Option<serde_json::Value>| value.and_then(|value| value.as_str().map(str::to_owned));
        let timestamp = string(object.remove("timestamp")).unwrap_or_default();
        let trace_id = string(object.remove("trace_id"));
        let mut request_id = string(object.remove("request_id"));
        let mut fields = Vec::new();
        if let Some(serde_json::Value::Object(event)) = object.remove("fields") {
            fields.extend(event);
        }
        if let Some(serde_json::Value::Object(span)) = object.remove("span") {
            for (key, value) in span {
                if key == "request_id" && request_id.is_none() {
                    request_id = value.as_str().map(str::to_owned);
                    continue;
                }
                fields.push((if key == "name" { "span".to_owned() } else { key }, value));
            }
        }
        Some(Structured { timestamp, level, message, fields, trace_id, request_id })
    }
}

/// Which lines to keep.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogFilter {
    /// Only structured lines at this level or more severe (lines that are not JSON pass: a
    /// panic message is never filtered out).
    pub level: Option<Level>,
    /// Only the structured lines of one request: its trace id or request id, or the start of
    /// either (at least 8 characters).
    pub request: Option<String>,
}

impl LogFilter {
    /// Whether `record` passes.
    pub fn keeps(&self, record: &LogRecord) -> bool {
        if self.level.is_none() && self.request.is_none() {
            return true;
        }
        let Some(line) = record.structured() else { return self.request.is_none() };
        if let Some(level) = self.level
            && line.level > level
        {
            return false;
        }
        match &self.request {
            Some(id) => [&line.trace_id, &line.request_id]
                .into_iter()
                .flatten()
                .any(|candidate| candidate == id || (id.len() >= 8 && candidate.starts_with(id.as_str()))),
            None => true,
        }
    }
}

/// What [`read`] found.
#[derive(Debug, Default)]
pub struct LogBacklog {
    /// Every line read, in the order the Engine received them across services.
    pub records: Vec<LogRecord>,
    /// The selected services that have no container (never started, or removed).
    pub without_container: Vec<String>,
}

/// The logs of `services` so far: the last `tail` lines of each (all when `None`), written at
/// or after `since` (Unix seconds), merged in time order.
pub async fn read(
    engine: &Engine,
    workspace: &Workspace,
    services: &[&Service],
    tail: Option<u64>,
    since: Option<i64>,
) -> Result<LogBacklog, DockerError> {
    let owner = crate::docker::Owner::new(&workspace.name, &workspace.root);
    let containers: Vec<_> =
        engine.list_services(&workspace.name).await?.into_iter().filter(|found| found.made_by(&owner)).collect();
    let mut backlog = LogBacklog::default();
    for service in services {
        let Some(found) = containers.iter().find(|container| container.service == service.name) else {
            backlog.without_container.push(service.name.clone());
            continue;
        };
        let options = LogOptions { follow: false, tail, timestamps: true, since };
        let mut lines = engine.logs(&found.id, options).await?;
        while let Some(line) = lines.next().await {
            backlog.records.push(record(&service.name, line?));
        }
    }
    // Stable: lines of one service stamped alike keep their order.
    backlog.records.sort_by(|a, b| a.time.cmp(&b.time));
    Ok(backlog)
}

/// Follows the logs of `services` from now on (lines stamped after `after`, by service, when
/// given), as they are written, across container replacements: when a service's container goes
/// (`plat up` replaced it, or it stopped and was started again), its new container's lines
/// follow. Never ends by itself.
pub fn follow<'w>(
    engine: &'w Engine,
    workspace: &'w Workspace,
    services: &[&'w Service],
    after: HashMap<String, String>,
) -> impl Stream<Item = LogRecord> + 'w {
    let owner = crate::docker::Owner::new(&workspace.name, &workspace.root);
    let streams = services
        .iter()
        .map(move |service| follow_one(engine, workspace, owner.clone(), service, after.get(&service.name).cloned()));
    futures_util::stream::select_all(streams.map(Box::pin))
}

/// How often a service without a running container is looked for again.
const LOOK_AGAIN: Duration = Duration::from_millis(500);

fn follow_one<'w>(
    engine: &'w Engine,
    workspace: &'w Workspace,
    owner: crate::docker::Owner,
    service: &'w Service,
    after: Option<String>,
) -> impl Stream<Item = LogRecord> + 'w {
    struct State {
        /// The container followed last, and the stamp of the last line seen from it.
        followed: Option<(String, Option<String>)>,
        after: Option<String>,
        lines: Option<container::LogLines>,
    }
    let state = State { followed: None, after, lines: None };
    futures_util::stream::unfold(state, move |mut state| {
        let owner = owner.clone();
        async move {
            loop {
                if let Some(lines) = state.lines.as_mut() {
                    match lines.next().await {
                        Some(Ok(line)) => {
                            let record = record(&service.name, line);
                            if let Some((_, last)) = state.followed.as_mut() {
                                *last = Some(record.time.clone());
                            }
                            // A replayed line (the same second's `since`) is skipped.
                            if state.after.as_ref().is_some_and(|after| record.time <= *after) {
                                continue;
                            }
                            return Some((record, state));
                        }
                        // The container stopped, went away, or the Engine dropped the stream.
                        Some(Err(_)) | None => state.lines = None,
                    }
                }
                // Find the service's running container: the same one again (restarted), or a new one.
                let running = engine.list_services(&workspace.name).await.ok().and_then(|containers| {
                    containers.into_iter().find(|c| c.service == service.name && c.running() && c.made_by(&owner))
                });
                let Some(running) = running else {
                    tokio::time::sleep(LOOK_AGAIN).await;
                    continue;
                };
                // A container followed before continues after its last line; a new one from its start
                // (or from `after`, the first time).
                let since = match &state.followed {
                    Some((id, last)) if *id == running.id => {
                        state.after = last.clone();
                        last.as_deref().and_then(unix_seconds)
                    }
                    Some(_) => {
                        state.after = None;
                        None
                    }
                    None => state.after.as_deref().and_then(unix_seconds),
                };
                let options = LogOptions { follow: true, tail: None, timestamps: true, since };
                match engine.logs(&running.id, options).await {
                    Ok(lines) => {
                        let last =
                            state.followed.as_ref().filter(|(id, _)| *id == running.id).and_then(|(_, l)| l.clone());
                        state.followed = Some((running.id, last));
                        state.lines = Some(lines);
                    }
                    Err(_) => tokio::time::sleep(LOOK_AGAIN).await,
                }
            }
        }
    })
}

/// A line read with the Engine's timestamps, as a record.
fn record(service: &str, line: container::LogLine) -> LogRecord {
    // `2026-12-02T07:05:00.123456789Z text`: the stamp, a space, the line.
    let (time, text) = match line.text.split_once(' ') {
        Some((time, text)) if time.len() >= 20 && time.as_bytes().get(4) == Some(&b'-') => {
            (time.to_owned(), text.to_owned())
        }
        _ => (String::new(), line.text),
    };
    LogRecord { service: service.to_owned(), time, stream: line.stream, text }
}

/// Unix seconds of an RFC 3339 UTC stamp (`2026-12-02T07:05:00.5Z`), for the Engine's `since`.
pub fn unix_seconds(stamp: &str) -> Option<i64> {
    let date = stamp.get(..10)?;
    let time = stamp.get(11..19)?;
    let mut date = date.split('-').map(|part| part.parse::<i64>());
    let (year, month, day) = (date.next()?.ok()?, date.next()?.ok()?, date.next()?.ok()?);
    let mut time = time.split(':').map(|part| part.parse::<i64>());
    let (hour, minute, second) = (time.next()?.ok()?, time.next()?.ok()?, time.next()?.ok()?);
    // Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
    let (y, m) = if month <= 2 { (year - 1, month + 9) } else { (year, month - 3) };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let day_of_year = (153 * m + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    let days = era * 146_097 + day_of_era - 719_468;
    Some(days * 86_400 + hour * 3600 + minute * 60 + second)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str = r#"{"timestamp":"2026-08-04T10:00:00.123456Z","level":"INFO","target":"pkg::trace","service":"user-service","message":"request completed","fields":{"status":"OK","duration_ms":1.2},"span":{"name":"request","route":"/user.v1.UserService/GetUser"},"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","span_id":"00f067aa0ba902b7","request_id":"req-7"}"#;

    fn record(text: &str) -> LogRecord {
        LogRecord {
            service: "user-service".into(),
            time: "2026-08-04T10:00:00.2Z".into(),
            stream: LogStream::Stdout,
            text: text.into(),
        }
    }

    #[test]
    fn pkg_lines_are_parsed_with_their_fields_in_order() {
        let line = Structured::parse(LINE).unwrap();
        assert_eq!(line.level, Level::Info);
        assert_eq!(line.message, "request completed");
        let keys: Vec<&str> = line.fields.iter().map(|(key, _)| key.as_str()).collect();
        assert_eq!(keys, ["status", "duration_ms", "span", "route"]);
        assert_eq!(line.trace_id.as_deref(), Some("4bf92f3577b34da6a3ce929d0e0e4736"));
        assert_eq!(line.request_id.as_deref(), Some("req-7"));
        assert_eq!(Structured::parse("thread 'main' panicked at src/main.rs:3"), None);
        assert_eq!(Structured::parse(r#"{"not":"a log line"}"#), None);
        assert_eq!(Structured::parse("{broken"), None);
    }

    #[test]
    fn filters_keep_a_request_or_a_level_and_never_drop_plain_lines_for_a_level() {
        let by_request = LogFilter { level: None, request: Some("req-7".into()) };
        assert!(by_request.keeps(&record(LINE)));
        assert!(LogFilter { level: None, request: Some("4bf92f35".into()) }.keeps(&record(LINE)), "a trace prefix");
        assert!(!LogFilter { level: None, request: Some("4bf9".into()) }.keeps(&record(LINE)), "too short a prefix");
        assert!(!by_request.keeps(&record("plain text")), "a request has only structured lines");
        let warnings = LogFilter { level: Some(Level::Warn), request: None };
        assert!(!warnings.keeps(&record(LINE)));
        assert!(warnings.keeps(&record(&LINE.replace("\"INFO\"", "\"ERROR\""))));
        assert!(warnings.keeps(&record("panicked")), "not JSON: kept");
        assert!(LogFilter::default().keeps(&record("anything")));
    }

    #[test]
    fn rfc3339_stamps_become_unix_seconds() {
        assert_eq!(unix_seconds("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(unix_seconds("2026-12-02T07:05:00.123456789Z"), Some(1_796_195_100));
        assert_eq!(unix_seconds("2000-02-29T12:00:00Z"), Some(951_825_600));
        assert_eq!(unix_seconds("garbage"), None);
    }

    #[test]
    fn engine_stamps_are_split_from_the_text() {
        let line = container::LogLine { stream: LogStream::Stderr, text: "2026-12-02T07:05:00.1Z hello world".into() };
        let record = super::record("svc", line);
        assert_eq!((record.time.as_str(), record.text.as_str()), ("2026-12-02T07:05:00.1Z", "hello world"));
    }
}
