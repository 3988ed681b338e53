//! Structured JSON logs on stdout, and spans exported over OTLP when a collector is configured.
//!
//! [`init`] reads two variables:
//!
//! - `RUST_LOG`: which log lines to print (`info` when unset), e.g. `info,user_service=debug`.
//! - `OTEL_EXPORTER_OTLP_ENDPOINT`: where to send spans over OTLP/gRPC, e.g.
//!   `http://otel-collector:4317`. Unset, nothing is exported.
//!
//! Each log line is one JSON object:
//!
//! ```json
//! {"timestamp":"2026-08-04T10:00:00.123456Z","level":"INFO","target":"pkg::trace","service":"user-service",
//!  "message":"request completed","fields":{"status":"OK","duration_ms":1.2},
//!  "span":{"name":"request","route":"/user.v1.UserService/GetUser"},
//!  "trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","span_id":"00f067aa0ba902b7",
//!  "request_id":"9b2e6a4e-5c1d-4f7e-8a43-2f0d7c1b9e55"}
//! ```
//!
//! `request_id` is there while a request that carried one is served (see [`crate::trace`]).
//!
//! Trace and span ids are always OpenTelemetry's, exported or not: one OpenTelemetry tracer
//! provider is installed in both cases (without an exporter when there is no endpoint), so the
//! ids in log lines are the ids a collector would show. `RUST_LOG` filters log lines only;
//! spans at INFO and above are always created, so a quiet service still propagates traces.

use std::fmt::{self, Write as _};
use std::io;
use std::time::Duration;

use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::{Dispatch, Event, Subscriber};
use tracing_subscriber::filter::{EnvFilter, LevelFilter, Targets};
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields, MakeWriter};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{Layer, Registry};

use crate::config::Env;

/// How long dropping the [`TelemetryGuard`] waits for the last spans to be exported.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(3);

/// Why telemetry could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// `RUST_LOG` or `OTEL_EXPORTER_OTLP_ENDPOINT` is malformed.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// `RUST_LOG` is not a valid filter.
    #[error("RUST_LOG={value:?} is not a valid log filter: {reason} (example: RUST_LOG=info,user_service=debug)")]
    LogFilter {
        /// The filter as given.
        value: String,
        /// What the parser said.
        reason: String,
    },
    /// The OTLP endpoint uses https; this crate is built without TLS (static images).
    #[error(
        "OTEL_EXPORTER_OTLP_ENDPOINT={0:?} uses https, but services are built without TLS; use an http:// collector address (example: OTEL_EXPORTER_OTLP_ENDPOINT=http://otel-collector:4317)"
    )]
    TlsEndpoint(String),
    /// The OTLP exporter needs a Tokio runtime to run in.
    #[error("exporting spans over OTLP needs a Tokio runtime: call telemetry::init inside #[tokio::main]")]
    NoRuntime,
    /// The OTLP exporter could not be built.
    #[error("cannot set up the OTLP exporter for {endpoint}: {reason}")]
    Exporter {
        /// The collector address.
        endpoint: String,
        /// What went wrong.
        reason: String,
    },
    /// A global subscriber is installed already.
    #[error("telemetry is already initialised in this process")]
    AlreadyInitialised,
}

/// Flushes spans not yet exported when dropped; keep it alive for the life of `main`.
///
/// Drop it from a multi-threaded Tokio runtime (`#[tokio::main]`'s default): the flush waits
/// for the exporter, which runs on the runtime's other threads.
#[must_use = "dropping the guard stops span export; bind it: let _telemetry = ..."]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl fmt::Debug for TelemetryGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TelemetryGuard").finish_non_exhaustive()
    }
}

impl TelemetryGuard {
    /// Exports spans not yet exported, without shutting down.
    pub fn flush(&self) {
        if let Some(provider) = &self.provider {
            if let Err(error) = provider.force_flush() {
                tracing::warn!(target: "pkg::telemetry", %error, "flushing spans failed");
            }
        }
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            if let Err(error) = provider.shutdown_with_timeout(FLUSH_TIMEOUT) {
                tracing::warn!(target: "pkg::telemetry", %error, "exporting the last spans failed");
            }
        }
    }
}

/// What telemetry to set up; [`TelemetryConfig::from_env`] is what [`init`] uses.
#[derive(Clone, Debug)]
pub struct TelemetryConfig {
    /// Shown in every log line and as the OpenTelemetry `service.name`.
    pub service_name: String,
    /// An `EnvFilter` directive string, like `info,user_service=debug`.
    pub log_filter: String,
    /// An OTLP/gRPC collector address, like `http://otel-collector:4317`.
    pub otlp_endpoint: Option<String>,
}

impl TelemetryConfig {
    /// Reads `RUST_LOG` (default `info`) and `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub fn from_env(service_name: &str) -> Result<Self, TelemetryError> {
        let mut env = Env::from_process();
        let log_filter = env.var("RUST_LOG").example("info,user_service=debug").with_default("info".to_owned());
        let otlp_endpoint =
            env.var("OTEL_EXPORTER_OTLP_ENDPOINT").example("http://otel-collector:4317").optional::<String>();
        env.finish()?;
        Ok(TelemetryConfig {
            service_name: service_name.to_owned(),
            log_filter: log_filter?,
            otlp_endpoint: otlp_endpoint?,
        })
    }

    /// Builds the subscriber without installing it, writing log lines to `writer`: for tests,
    /// with `tracing::dispatcher::with_default` or `set_default`.
    pub fn build<W>(&self, writer: W) -> Result<(Dispatch, TelemetryGuard), TelemetryError>
    where
        W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
    {
        let log_filter = EnvFilter::builder()
            .with_default_directive(LevelFilter::INFO.into())
            .parse(&self.log_filter)
            .map_err(|e| TelemetryError::LogFilter { value: self.log_filter.clone(), reason: e.to_string() })?;

        let mut provider = SdkTracerProvider::builder()
            .with_resource(Resource::builder().with_service_name(self.service_name.clone()).build());
        if let Some(endpoint) = &self.otlp_endpoint {
            provider = provider.with_batch_exporter(otlp_exporter(endpoint)?);
        }
        let provider = provider.build();
        let tracer = provider.tracer("pkg");

        // Spans exist for tracing's sake whatever RUST_LOG says; the transport crates' own
        // spans are left out, or exporting spans would create spans to export.
        let span_filter = Targets::new()
            .with_default(LevelFilter::INFO)
            .with_target("h2", LevelFilter::OFF)
            .with_target("hyper", LevelFilter::OFF)
            .with_target("hyper_util", LevelFilter::OFF)
            .with_target("tonic", LevelFilter::OFF)
            .with_target("tower", LevelFilter::OFF)
            .with_target("opentelemetry", LevelFilter::OFF)
            .with_target("opentelemetry_sdk", LevelFilter::OFF)
            .with_target("opentelemetry_otlp", LevelFilter::OFF);
        let otel_layer = tracing_opentelemetry::layer()
            .with_tracer(tracer)
            .with_threads(false)
            .with_location(false)
            .with_filter(span_filter);
        let log_layer = tracing_subscriber::fmt::layer()
            .event_format(JsonFormat { service: self.service_name.clone() })
            .fmt_fields(JsonFields::new())
            .with_writer(writer)
            .with_filter(log_filter);
        let subscriber = Registry::default().with(otel_layer).with(log_layer);
        Ok((Dispatch::new(subscriber), TelemetryGuard { provider: Some(provider) }))
    }

    /// Installs the subscriber for the whole process, logging to stdout.
    pub fn init(&self) -> Result<TelemetryGuard, TelemetryError> {
        let (dispatch, guard) = self.build(io::stdout)?;
        tracing::dispatcher::set_global_default(dispatch).map_err(|_| TelemetryError::AlreadyInitialised)?;
        Ok(guard)
    }
}

/// Sets up JSON logs on stdout and, when `OTEL_EXPORTER_OTLP_ENDPOINT` is set, span export.
/// Call it first thing in `main`, inside the Tokio runtime, and keep the guard.
pub fn init(service_name: &str) -> Result<TelemetryGuard, TelemetryError> {
    TelemetryConfig::from_env(service_name)?.init()
}

fn otlp_endpoint_error(endpoint: &str, reason: impl fmt::Display) -> TelemetryError {
    TelemetryError::Exporter { endpoint: endpoint.to_owned(), reason: reason.to_string() }
}

fn otlp_exporter(endpoint: &str) -> Result<opentelemetry_otlp::SpanExporter, TelemetryError> {
    if endpoint.starts_with("https://") {
        return Err(TelemetryError::TlsEndpoint(endpoint.to_owned()));
    }
    if !endpoint.starts_with("http://") {
        return Err(otlp_endpoint_error(endpoint, "expected an http:// address, like http://otel-collector:4317"));
    }
    // The tonic exporter spawns its connection onto the current runtime.
    tokio::runtime::Handle::try_current().map_err(|_| TelemetryError::NoRuntime)?;
    opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .with_timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| otlp_endpoint_error(endpoint, e))
}

/// One JSON object per event; see the module documentation for its shape.
struct JsonFormat {
    service: String,
}

impl<S, N> FormatEvent<S, N> for JsonFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'w> FormatFields<'w> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let metadata = event.metadata();
        let mut timestamp = String::with_capacity(32);
        SystemTime.format_time(&mut Writer::new(&mut timestamp))?;
        let mut fields = FieldVisitor::default();
        event.record(&mut fields);

        let mut line = String::with_capacity(256);
        line.push_str("{\"timestamp\":");
        push_json(&mut line, &timestamp);
        line.push_str(",\"level\":");
        push_json(&mut line, metadata.level().as_str());
        line.push_str(",\"target\":");
        push_json(&mut line, metadata.target());
        line.push_str(",\"service\":");
        push_json(&mut line, &self.service);
        line.push_str(",\"message\":");
        push_json(&mut line, fields.message.as_deref().unwrap_or(""));
        if !fields.fields.is_empty() {
            line.push_str(",\"fields\":");
            line.push_str(&serde_json::Value::Object(fields.fields).to_string());
        }
        if let Some(span) = ctx.parent_span() {
            line.push_str(",\"span\":{\"name\":");
            push_json(&mut line, span.name());
            let extensions = span.extensions();
            // JsonFields stored the span's fields as one JSON object; splice its members in.
            if let Some(span_fields) = extensions.get::<FormattedFields<N>>() {
                let inner = span_fields.fields.trim().trim_start_matches('{').trim_end_matches('}');
                if !inner.trim().is_empty() {
                    line.push(',');
                    line.push_str(inner);
                }
            }
            line.push('}');
        }
        // tracing-opentelemetry makes an entered span's context the current OpenTelemetry
        // context; going through it avoids calling back into the subscriber mid-event.
        let context = opentelemetry::Context::current();
        let span_context = context.span().span_context().clone();
        if span_context.is_valid() {
            let _ = write!(
                line,
                ",\"trace_id\":\"{}\",\"span_id\":\"{}\"",
                span_context.trace_id(),
                span_context.span_id()
            );
        }
        // The request this task serves, whichever span the line is in: `plat logs --trace`
        // finds a request's lines in every service by it.
        if let Some(request_id) = crate::trace::current_request_id() {
            line.push_str(",\"request_id\":");
            push_json(&mut line, &request_id);
        }
        line.push('}');
        writeln!(writer, "{line}")
    }
}

fn push_json(line: &mut String, value: &str) {
    // Serialising a str cannot fail.
    line.push_str(&serde_json::to_string(value).unwrap_or_default());
}

/// Collects an event's fields as JSON values, the message apart.
#[derive(Default)]
struct FieldVisitor {
    message: Option<String>,
    fields: serde_json::Map<String, serde_json::Value>,
}

impl FieldVisitor {
    fn insert(&mut self, field: &tracing::field::Field, value: serde_json::Value) {
        self.fields.insert(field.name().to_owned(), value);
    }
}

impl tracing::field::Visit for FieldVisitor {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "message" {
            self.message = Some(value.to_owned());
        } else {
            self.insert(field, value.into());
        }
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            self.message = Some(format!("{value:?}"));
        } else {
            self.insert(field, format!("{value:?}").into());
        }
    }

    fn record_error(&mut self, field: &tracing::field::Field, value: &(dyn std::error::Error + 'static)) {
        let mut text = value.to_string();
        let mut source = value.source();
        while let Some(cause) = source {
            let _ = write!(text, ": {cause}");
            source = cause.source();
        }
        self.insert(field, text.into());
    }

    fn record_i64(&mut self, field: &tracing::field::Field, value: i64) {
        self.insert(field, value.into());
    }

    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        self.insert(field, value.into());
    }

    fn record_f64(&mut self, field: &tracing::field::Field, value: f64) {
        self.insert(field, value.into());
    }

    fn record_bool(&mut self, field: &tracing::field::Field, value: bool) {
        self.insert(field, value.into());
    }
}
