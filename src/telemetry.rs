//! Logs and metrics, on the side of the request path.
//!
//! * Logs: `tracing` with JSON (default) or text output. Audit events go to the
//!   `reseal::audit` target, so they can be routed and kept on their own.
//! * Metrics: one Prometheus registry. Label values are only configured names
//!   (route, consumer and source ids), method names and stable reasons; never
//!   request data, so cardinality is bounded and nothing secret can leak.

use std::io::IsTerminal;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, RwLock};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::{Family, MetricConstructor};
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

use serde::Deserialize;

mod log_buffer;
mod process;
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
    let filter = quiet_sdk(
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter)),
    );
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

/// The AWS SDK's own warnings (credential chain attempts, IMDS) are long
/// dumps of nested errors; reseal reports what they mean in one line (e.g.
/// "no AWS credentials found"). They stay available at debug level: unless
/// `RUST_LOG` names an `aws` target or enables debug, only their errors show.
fn quiet_sdk(filter: EnvFilter) -> EnvFilter {
    let named = std::env::var("RUST_LOG").is_ok_and(|v| v.contains("aws"));
    let debugging = filter
        .max_level_hint()
        .is_some_and(|l| l >= tracing_subscriber::filter::LevelFilter::DEBUG);
    if named || debugging {
        return filter;
    }
    [
        "aws_config=error",
        "aws_runtime=error",
        "aws_smithy_runtime=error",
        "aws_smithy_runtime_api=error",
        "aws_smithy_http_client=error",
        "aws_sdk_kms=error",
        "aws_sdk_ssm=error",
    ]
    .iter()
    .filter_map(|d| d.parse().ok())
    .fold(filter, |f, d| f.add_directive(d))
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The door the call came through: `grpc`, `http`, `lambda`.
    pub door: String,
    pub method: String,
    pub route: String,
    /// `OK` or the call's reason (`UPSTREAM_UNAVAILABLE`, ...): see [`OK`].
    pub outcome: String,
}

/// The outcome label of a success. Every `outcome` label of every metric is
/// `OK` or a reason as the API spells it (`KEY_EXPIRED`, `UPSTREAM_UNAVAILABLE`,
/// ...), upper case: one spelling to alert and filter on.
pub const OK: &str = "OK";

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
pub struct BatchItemLabels {
    pub route: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AwsCallLabels {
    pub service: String,
    pub operation: String,
    /// `OK`, or the reason the failure maps to.
    pub outcome: String,
    /// Why an attempt failed, from a fixed set: `NONE`, `THROTTLED`,
    /// `TIMEOUT`, `CONNECTION`, `SERVER_ERROR`, `BAD_RESPONSE`, `DEADLINE`,
    /// `NO_CREDENTIALS`, `REFUSED` (AWS answered no), `UNKNOWN`.
    pub cause: String,
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
    /// `source` or `consumer`.
    pub kind: String,
    /// The source or consumer id.
    pub id: String,
    /// The source's key name (else its id), or the consumer's key id.
    pub key: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BuildLabels {
    pub version: String,
    pub commit: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SecurityLabels {
    pub kind: String,
}

/// The commit reseal was built from (`build.rs`: git, else `RESEAL_COMMIT`, else `unknown`).
pub const BUILD_COMMIT: &str = env!("RESEAL_BUILD_COMMIT");

/// Request latency buckets: 100 µs doubling up to the request timeout, which
/// is the last finite bucket (a request cannot take longer).
pub fn latency_buckets(request_timeout: std::time::Duration) -> Vec<f64> {
    let top = request_timeout.as_secs_f64().max(0.001);
    let mut buckets: Vec<f64> = exponential_buckets(0.0001, 2.0, 40)
        .take_while(|b| *b < top)
        .collect();
    buckets.push(top);
    buckets
}

/// Creates request histograms with the buckets of the configured timeout.
#[derive(Clone)]
pub struct LatencyBuckets(Arc<RwLock<Vec<f64>>>);

impl MetricConstructor<Histogram> for LatencyBuckets {
    fn new_metric(&self) -> Histogram {
        let buckets = self.0.read().unwrap_or_else(|e| e.into_inner()).clone();
        Histogram::new(buckets)
    }
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

fn aws_latency_histogram() -> Histogram {
    // 100 µs .. ~6.6 s (the default operation timeout is 6 s)
    Histogram::new(exponential_buckets(0.0001, 2.0, 17))
}

/// Every metric reseal exports.
pub struct Metrics {
    registry: Mutex<prometheus_client::registry::Registry>,
    latency_buckets: LatencyBuckets,
    pub requests: Family<RequestLabels, Counter>,
    pub request_seconds: Family<RequestLabels, Histogram, LatencyBuckets>,
    pub batch_items: Family<BatchItemLabels, Counter>,
    pub source_uses: Family<SourceLabels, Counter>,
    pub envelopes: Family<ConsumerLabels, Counter>,
    pub aws_calls: Family<AwsCallLabels, Counter>,
    pub aws_call_seconds: HistogramFamily<AwsLatencyLabels>,
    pub cache: Family<CacheLabels, Counter>,
    pub registry_reloads: Family<OutcomeLabels, Counter>,
    pub registry_last_success: Gauge<f64, AtomicU64>,
    /// 1 when the last reload attempt applied a registry, 0 when it was refused.
    pub registry_last_reload_success: Gauge,
    pub key_not_after: Family<ExpiryLabels, Gauge>,
    pub build_info: Family<BuildLabels, Gauge>,
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
        let mut root = prometheus_client::registry::Registry::default();
        root.register_collector(Box::new(process::ProcessCollector));
        let latency_buckets = LatencyBuckets(Arc::new(RwLock::new(latency_buckets(
            std::time::Duration::from_secs(10),
        ))));
        let m = Metrics {
            registry: Mutex::new(prometheus_client::registry::Registry::default()),
            requests: Family::default(),
            request_seconds: Family::new_with_constructor(latency_buckets.clone()),
            latency_buckets,
            batch_items: Family::default(),
            source_uses: Family::default(),
            envelopes: Family::default(),
            aws_calls: Family::default(),
            aws_call_seconds: Family::new_with_constructor(aws_latency_histogram),
            cache: Family::default(),
            registry_reloads: Family::default(),
            registry_last_success: Gauge::default(),
            registry_last_reload_success: Gauge::default(),
            key_not_after: Family::default(),
            build_info: Family::default(),
            in_flight: Gauge::default(),
            shed: Counter::default(),
            security_events: Family::default(),
            connections_refused: Family::default(),
            connections_closed: Family::default(),
            connections_open: Family::default(),
        };
        m.build_info
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION").into(),
                commit: BUILD_COMMIT.into(),
            })
            .set(1);
        let r = root.sub_registry_with_prefix("reseal");
        r.register(
            "requests",
            "Requests by door, method, route and outcome (OK or the reason)",
            m.requests.clone(),
        );
        r.register(
            "request_duration_seconds",
            "Request latency by door, method, route and outcome (buckets up to server.request_timeout)",
            m.request_seconds.clone(),
        );
        r.register(
            "batch_items",
            "Items of ReencryptBatch calls by route and outcome (OK or the reason)",
            m.batch_items.clone(),
        );
        r.register(
            "source_key_uses",
            "Inputs opened (or refused) per source key, by outcome (OK or the reason)",
            m.source_uses.clone(),
        );
        r.register(
            "consumer_envelopes",
            "Envelopes produced (or failed) per consumer, by outcome (OK or the reason)",
            m.envelopes.clone(),
        );
        r.register(
            "aws_calls",
            "AWS API call attempts by service, operation, outcome (OK or the reason) and cause",
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
            "Registry load attempts by outcome (OK, FAILED)",
            m.registry_reloads.clone(),
        );
        r.register(
            "registry_last_success_timestamp_seconds",
            "Unix time of the last successful registry load",
            m.registry_last_success.clone(),
        );
        r.register(
            "registry_last_reload_success",
            "1 when the last registry load attempt succeeded, 0 when it was refused (the previous registry keeps serving)",
            m.registry_last_reload_success.clone(),
        );
        r.register(
            "key_not_after_timestamp_seconds",
            "Unix time at which a key stops being usable: a consumer key's window or certificate, a source's decrypt_until",
            m.key_not_after.clone(),
        );
        r.register(
            "build_info",
            "The running build: version and commit (value 1)",
            m.build_info.clone(),
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
        *m.registry.lock().unwrap_or_else(|e| e.into_inner()) = root;
        m
    }

    /// Sets the request-latency buckets to reach `timeout` (before serving:
    /// series created earlier keep their buckets).
    pub fn set_request_timeout(&self, timeout: std::time::Duration) {
        *self
            .latency_buckets
            .0
            .write()
            .unwrap_or_else(|e| e.into_inner()) = latency_buckets(timeout);
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
    pub fn set_expiries(&self, expiries: &[KeyExpiry]) {
        self.key_not_after.clear();
        for e in expiries {
            self.key_not_after
                .get_or_create(&ExpiryLabels {
                    kind: e.kind.into(),
                    id: e.id.clone(),
                    key: e.key.clone(),
                })
                .set(e.not_after.unix_timestamp());
        }
    }

    /// Records a registry load attempt.
    pub fn registry_reload(&self, applied: bool) {
        self.registry_reloads
            .get_or_create(&OutcomeLabels {
                outcome: if applied { OK } else { "FAILED" }.into(),
            })
            .inc();
        self.registry_last_reload_success.set(i64::from(applied));
        if applied {
            self.registry_last_success
                .set(time::OffsetDateTime::now_utc().unix_timestamp() as f64);
        }
    }
}

/// When a key stops being usable (the registry lists them).
#[derive(Debug, Clone)]
pub struct KeyExpiry {
    /// `source` or `consumer`.
    pub kind: &'static str,
    /// The source or consumer id.
    pub id: String,
    /// The source's key name (else its id), or the consumer's key id.
    pub key: String,
    pub not_after: time::OffsetDateTime,
}
