//! Logs and metrics, on the side of the request path.
//!
//! * Logs: `tracing` with JSON (default) or text output. Audit events go to the
//!   `reseal::audit` target, so they can be routed and kept on their own.
//! * Metrics: one Prometheus registry. Label values are only configured names
//!   (route, consumer and source ids), method names and stable reasons; never
//!   request data, so cardinality is bounded and nothing secret can leak.

use std::io::IsTerminal;
use std::sync::atomic::AtomicU64;
use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

use serde::Deserialize;

mod log_buffer;
mod traces;

/// OpenTelemetry trace export over OTLP/gRPC. Off unless an endpoint is set.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetrySpec {
    /// OTLP/gRPC collector, e.g. `http://otel-collector:4317`.
    pub otlp_endpoint: Option<String>,
    /// `service.name` of the exported spans.
    pub service_name: String,
    /// Fraction of requests traced (0.0 to 1.0), parent-based.
    pub sample_ratio: f64,
}

impl Default for TelemetrySpec {
    fn default() -> Self {
        TelemetrySpec {
            otlp_endpoint: None,
            service_name: "reseal".into(),
            sample_ratio: 1.0,
        }
    }
}

/// Log target of the audit trail.
pub const AUDIT_TARGET: &str = "reseal::audit";

/// Installs the global subscriber for a short-lived command: each log line is
/// written at once. `RUST_LOG` overrides `default_filter`. Safe to call more
/// than once (later calls are ignored).
pub fn init_logging(format: &str, default_filter: &str) {
    let _ = install(format, default_filter, &TelemetrySpec::default(), false);
}

/// Flushes buffered log lines and stops trace export at shutdown (log lines
/// are also flushed when it is dropped).
pub struct TraceGuard {
    traces: Option<traces::Traces>,
    logs: log_buffer::Flusher,
}

impl TraceGuard {
    /// Exports what is still buffered. Blocking: call it off the async reactor.
    pub fn shutdown(mut self) {
        if let Some(traces) = self.traces.take() {
            traces.shutdown();
        }
        self.logs.finish();
    }
}

/// Logging for the server, plus OTLP trace export when configured. Log lines
/// leave through a buffer written by a thread of its own (`log_buffer`), so the
/// reactor neither makes a system call per audit line nor blocks on a slow log
/// pipe. With an OTLP endpoint this must run inside a Tokio runtime (the
/// exporter's gRPC client lives there).
pub fn init(format: &str, default_filter: &str, spec: &TelemetrySpec) -> TraceGuard {
    install(format, default_filter, spec, true)
}

fn install(format: &str, default_filter: &str, spec: &TelemetrySpec, buffered: bool) -> TraceGuard {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let provider = traces::start(spec);
    let otel = traces::layer(provider.as_ref());
    let (writer, logs) = log_buffer::stderr(buffered);
    let registry = tracing_subscriber::registry().with(filter).with(otel);
    let result = if format == "text" {
        registry
            .with(
                tracing_subscriber::fmt::layer()
                    // Colours for a person at a terminal, not escape codes in a log file.
                    .with_ansi(std::io::stderr().is_terminal())
                    .with_writer(writer),
            )
            .try_init()
    } else {
        registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(false)
                    .with_writer(writer),
            )
            .try_init()
    };
    let _ = result;
    TraceGuard {
        traces: provider,
        logs,
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The door the call came through: `grpc`, `http`, `lambda`.
    pub door: String,
    pub method: String,
    pub route: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabels {
    pub source: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConsumerLabels {
    pub consumer: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AwsCallLabels {
    pub service: String,
    pub operation: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AwsLatencyLabels {
    pub service: String,
    pub operation: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CacheLabels {
    pub cache: String,
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ExpiryLabels {
    pub consumer: String,
    pub key: String,
    /// `certificate` or `key_window`.
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SecurityLabels {
    pub kind: String,
}

/// A listener (`grpc`, `health`, `admin`, `http`) and a stable reason.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConnectionLabels {
    pub listener: String,
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ListenerLabels {
    pub listener: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 100 µs .. ~3.3 s
    Histogram::new(exponential_buckets(0.0001, 2.0, 16))
}

/// Every metric reseal exports.
pub struct Metrics {
    registry: Mutex<prometheus_client::registry::Registry>,
    pub requests: Family<RequestLabels, Counter>,
    pub request_seconds: HistogramFamily<RequestLabels>,
    pub source_uses: Family<SourceLabels, Counter>,
    pub envelopes: Family<ConsumerLabels, Counter>,
    pub aws_calls: Family<AwsCallLabels, Counter>,
    pub aws_call_seconds: HistogramFamily<AwsLatencyLabels>,
    pub cache: Family<CacheLabels, Counter>,
    pub registry_reloads: Family<OutcomeLabels, Counter>,
    pub registry_last_success: Gauge<f64, AtomicU64>,
    pub key_expiry_days: Family<ExpiryLabels, Gauge<f64, AtomicU64>>,
    pub in_flight: Gauge,
    pub shed: Counter,
    pub security_events: Family<SecurityLabels, Counter>,
    /// Connections closed at accept for a limit (`max_total`, `max_per_address`).
    pub connections_refused: Family<ConnectionLabels, Counter>,
    /// Connections the server closed, by reason (`handshake_timeout`,
    /// `idle_timeout`, `reset_flood`, `control_flood`, `tls_failed`).
    pub connections_closed: Family<ConnectionLabels, Counter>,
    pub connections_open: Family<ListenerLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut r = prometheus_client::registry::Registry::with_prefix("reseal");
        let m = Metrics {
            registry: Mutex::new(prometheus_client::registry::Registry::default()),
            requests: Family::default(),
            request_seconds: Family::new_with_constructor(latency_histogram),
            source_uses: Family::default(),
            envelopes: Family::default(),
            aws_calls: Family::default(),
            aws_call_seconds: Family::new_with_constructor(latency_histogram),
            cache: Family::default(),
            registry_reloads: Family::default(),
            registry_last_success: Gauge::default(),
            key_expiry_days: Family::default(),
            in_flight: Gauge::default(),
            shed: Counter::default(),
            security_events: Family::default(),
            connections_refused: Family::default(),
            connections_closed: Family::default(),
            connections_open: Family::default(),
        };
        r.register(
            "requests",
            "Requests by door, method, route and outcome",
            m.requests.clone(),
        );
        r.register(
            "request_duration_seconds",
            "Request latency by door, method, route and outcome",
            m.request_seconds.clone(),
        );
        r.register(
            "source_key_uses",
            "Inputs opened (or refused) per source key",
            m.source_uses.clone(),
        );
        r.register(
            "consumer_envelopes",
            "Envelopes produced (or failed) per consumer",
            m.envelopes.clone(),
        );
        r.register(
            "aws_calls",
            "AWS API calls by service, operation and outcome",
            m.aws_calls.clone(),
        );
        r.register(
            "aws_call_duration_seconds",
            "AWS API call latency (all attempts) by service and operation",
            m.aws_call_seconds.clone(),
        );
        r.register(
            "cache_lookups",
            "Cache lookups by cache and result (hit, miss, stale)",
            m.cache.clone(),
        );
        r.register(
            "registry_reloads",
            "Registry reloads by outcome (ok, failed)",
            m.registry_reloads.clone(),
        );
        r.register(
            "registry_last_success_timestamp_seconds",
            "Unix time of the last successful registry load",
            m.registry_last_success.clone(),
        );
        r.register(
            "key_expiry_days",
            "Days until a consumer certificate or key window ends (negative: ended)",
            m.key_expiry_days.clone(),
        );
        r.register(
            "requests_in_flight",
            "Requests being processed",
            m.in_flight.clone(),
        );
        r.register(
            "requests_shed",
            "Requests refused because the concurrency limit was reached",
            m.shed.clone(),
        );
        r.register(
            "security_events",
            "Security-relevant events (tampered input, unknown key floods, denied callers)",
            m.security_events.clone(),
        );
        r.register(
            "connections_refused",
            "Connections closed as soon as accepted, by listener and limit (max_total, max_per_address)",
            m.connections_refused.clone(),
        );
        r.register(
            "connections_closed",
            "Connections closed by the server, by listener and reason (handshake_timeout, idle_timeout, reset_flood, control_flood, tls_failed)",
            m.connections_closed.clone(),
        );
        r.register(
            "connections_open",
            "Connections open, by listener",
            m.connections_open.clone(),
        );
        *m.registry.lock().unwrap_or_else(|e| e.into_inner()) = r;
        m
    }

    /// Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let registry = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
        out
    }

    pub fn cache_event(&self, cache: &str, result: &str) {
        self.cache
            .get_or_create(&CacheLabels {
                cache: cache.to_owned(),
                result: result.to_owned(),
            })
            .inc();
    }

    pub fn security_event(&self, kind: &str) {
        self.security_events
            .get_or_create(&SecurityLabels {
                kind: kind.to_owned(),
            })
            .inc();
    }

    /// Replaces the expiry gauges with the registry's current list.
    pub fn set_expiries(&self, expiries: &[KeyExpiry], now: time::OffsetDateTime) {
        self.key_expiry_days.clear();
        for e in expiries {
            let days = (e.not_after - now).as_seconds_f64() / 86_400.0;
            self.key_expiry_days
                .get_or_create(&ExpiryLabels {
                    consumer: e.consumer.clone(),
                    key: e.key.clone(),
                    kind: e.kind.into(),
                })
                .set(days);
        }
    }
}

/// When a consumer key stops being usable (the registry lists them).
#[derive(Debug, Clone)]
pub struct KeyExpiry {
    pub consumer: String,
    pub key: String,
    /// `certificate` or `key_window`.
    pub kind: &'static str,
    pub not_after: time::OffsetDateTime,
}
