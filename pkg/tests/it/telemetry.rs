//! telemetry: the JSON log line, RUST_LOG, and spans exported over OTLP to a collector.

use std::sync::{Arc, Mutex};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use pkg::telemetry::{TelemetryConfig, TelemetryError};
use pkg::trace::TraceParent;
use tracing_opentelemetry::OpenTelemetrySpanExt;

const CALLER: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

fn joined_span(name: &'static str) -> tracing::Span {
    let span = match name {
        "work" => tracing::info_span!("work", job = "nightly", attempt = 2),
        _ => tracing::info_span!("other"),
    };
    let mut headers = http::HeaderMap::new();
    headers.insert("traceparent", CALLER.parse().unwrap());
    span.set_parent(pkg::trace::extract(&headers).unwrap()).unwrap();
    span
}

#[test]
fn each_log_line_is_one_json_object_with_the_trace_context() {
    let telemetry = crate::telemetry("user-service");
    tracing::info!("outside any span");
    joined_span("work").in_scope(|| tracing::warn!(rows = 3, ok = true, ratio = 0.5, who = "bob", "inside a span"));

    let lines = telemetry.logs.lines();
    assert_eq!(lines.len(), 2, "{lines:?}");
    let outside = &lines[0];
    assert_eq!(outside["level"], "INFO");
    assert_eq!(outside["service"], "user-service");
    assert_eq!(outside["target"], "it::telemetry");
    assert_eq!(outside["message"], "outside any span");
    assert!(outside.get("trace_id").is_none() && outside.get("span").is_none() && outside.get("fields").is_none());
    let timestamp = outside["timestamp"].as_str().unwrap();
    assert!(timestamp.len() >= 20 && timestamp.ends_with('Z') && timestamp.as_bytes()[10] == b'T', "{timestamp}");

    let inside = &lines[1];
    assert_eq!(inside["level"], "WARN");
    assert_eq!(inside["fields"], serde_json::json!({"rows": 3, "ok": true, "ratio": 0.5, "who": "bob"}));
    assert_eq!(inside["span"], serde_json::json!({"name": "work", "job": "nightly", "attempt": 2}));
    assert_eq!(inside["trace_id"], CALLER.parse::<TraceParent>().unwrap().trace_id.to_string());
    let span_id = inside["span_id"].as_str().unwrap();
    assert_eq!(span_id.len(), 16);
    assert_ne!(span_id, "b7ad6b7169203331", "the span's own id, not its parent's");
}

#[test]
fn rust_log_filters_lines_but_not_trace_context() {
    let logs = crate::LogCapture::default();
    let config = TelemetryConfig { service_name: "s".into(), log_filter: "warn".into(), otlp_endpoint: None };
    let (dispatch, _guard) = config.build(logs.clone()).unwrap();
    tracing::dispatcher::with_default(&dispatch, || {
        joined_span("work").in_scope(|| {
            tracing::info!("hidden");
            tracing::warn!("shown");
            // Quiet logs must not break propagation.
            assert_eq!(pkg::trace::current_trace_id().unwrap().to_string(), "0af7651916cd43dd8448eb211c80319c");
        });
    });
    let messages: Vec<_> = logs.lines().iter().map(|l| l["message"].as_str().unwrap().to_owned()).collect();
    assert_eq!(messages, ["shown"]);
}

#[test]
fn configuration_mistakes_are_explained() {
    let config = TelemetryConfig { service_name: "s".into(), log_filter: "info,[[[".into(), otlp_endpoint: None };
    let error = config.build(crate::LogCapture::default()).unwrap_err();
    assert!(matches!(error, TelemetryError::LogFilter { .. }));
    assert!(error.to_string().starts_with("RUST_LOG=\"info,[[[\" is not a valid log filter"), "{error}");

    let config = TelemetryConfig {
        service_name: "s".into(),
        log_filter: "info".into(),
        otlp_endpoint: Some("https://collector:4317".into()),
    };
    let error = config.build(crate::LogCapture::default()).unwrap_err();
    assert!(error.to_string().contains("uses https, but services are built without TLS"), "{error}");

    let config = TelemetryConfig { otlp_endpoint: Some("http://127.0.0.1:4317".into()), ..config };
    let error = config.build(crate::LogCapture::default()).unwrap_err();
    assert!(matches!(error, TelemetryError::NoRuntime), "{error}");
}

/// An OTLP collector that keeps what it is sent.
#[derive(Clone, Default)]
struct Collector {
    received: Arc<Mutex<Vec<ExportTraceServiceRequest>>>,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.received.lock().unwrap().push(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse { partial_success: None }))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_are_exported_over_otlp_when_an_endpoint_is_set() {
    let collector = Collector::default();
    let (listener, addr) = crate::loopback().await;
    let server = TraceServiceServer::new(collector.clone());
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(server)
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener))
            .await
            .unwrap()
    });

    let config = TelemetryConfig {
        service_name: "user-service".into(),
        log_filter: "info".into(),
        otlp_endpoint: Some(format!("http://{addr}")),
    };
    let logs = crate::LogCapture::default();
    let (dispatch, guard) = config.build(logs.clone()).unwrap();
    tracing::dispatcher::with_default(&dispatch, || {
        joined_span("work").in_scope(|| tracing::info!("exported"));
    });
    // Dropping the guard flushes; it blocks while the exporter runs on the runtime.
    tokio::task::spawn_blocking(move || drop(guard)).await.unwrap();

    let received = collector.received.lock().unwrap();
    let resource_spans: Vec<_> = received.iter().flat_map(|r| &r.resource_spans).collect();
    let spans: Vec<_> = resource_spans.iter().flat_map(|r| &r.scope_spans).flat_map(|s| &s.spans).collect();
    let work = spans.iter().find(|s| s.name == "work").expect("the span reached the collector");
    assert_eq!(hex(&work.trace_id), "0af7651916cd43dd8448eb211c80319c");
    assert_eq!(hex(&work.parent_span_id), "b7ad6b7169203331");
    let logged_span_id = logs.with_message("exported")[0]["span_id"].as_str().unwrap().to_owned();
    assert_eq!(hex(&work.span_id), logged_span_id, "log lines and exported spans agree on ids");
    let service_name = resource_spans[0]
        .resource
        .as_ref()
        .unwrap()
        .attributes
        .iter()
        .find(|kv| kv.key == "service.name")
        .and_then(|kv| kv.value.as_ref())
        .map(|v| format!("{:?}", v.value));
    assert!(service_name.unwrap().contains("user-service"));
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
