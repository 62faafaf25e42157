//! The configuration file as written by people: serde types, unknown fields rejected.
//!
//! These types only describe shape. Meaning (which fields each key type needs,
//! key material, dates, references between entries) is checked when they are
//! compiled into a [`Registry`](super::Registry), where every error names the
//! file, the entry and the field.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use time::OffsetDateTime;
use zeroize::Zeroizing;

use crate::keys::aws::{
    AwsOptions, DataKeyCacheOptions, DiscoveryOptions, KeyCacheOptions, RetryOptions,
};
use crate::keys::RsaPadding;
pub use crate::telemetry::TelemetrySpec;

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConfigFile {
    /// Listener and process settings (read at start; a reload does not change them).
    pub server: ServerSpec,
    /// Request limits (reloadable).
    pub limits: LimitsSpec,
    /// Settings that only make sense on a developer machine.
    pub development: DevelopmentSpec,
    /// AWS clients (region, endpoint, timeouts, caches).
    pub aws: AwsSpec,
    /// Optional OpenTelemetry trace export (read at start).
    pub telemetry: TelemetrySpec,
    /// `reseal lambda`: how Amazon Connect and Genesys Cloud events map onto
    /// requests (read at start).
    pub lambda: LambdaSpec,
    /// Keys that open inputs, by id.
    pub sources: BTreeMap<String, SourceSpec>,
    /// Destinations, by id.
    pub consumers: BTreeMap<String, ConsumerSpec>,
    /// Named sets of consumers.
    pub routes: BTreeMap<String, Vec<String>>,
    /// Who may call, and for what. Empty: every authenticated caller may target everything.
    pub callers: BTreeMap<String, CallerSpec>,
    /// Start (and validate) with no source or no consumer. Off: such a
    /// registry can open or seal nothing, so it is refused rather than served.
    pub allow_empty: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSpec {
    /// gRPC listen address.
    pub listen: String,
    /// Plaintext gRPC health-check address for probes (works when the main port requires mTLS).
    pub health_listen: String,
    /// HTTP listen address for `/metrics`, `/healthz`, `/readyz`.
    pub admin_listen: String,
    /// The HTTP/JSON door (`POST /v1/reencrypt`, `POST /v1/reencrypt:batch`):
    /// its own listener, with `tls` when set (client certificates optional
    /// there: callers without one present a token). Off unless set.
    pub http_listen: Option<String>,
    /// TLS for the gRPC listener; plaintext gRPC when absent.
    pub tls: Option<TlsSpec>,
    /// Largest gRPC request accepted, in bytes (checked before decoding).
    pub max_request_bytes: usize,
    /// Requests processed at once; beyond it calls are shed with RESOURCE_EXHAUSTED.
    pub max_concurrent_requests: usize,
    /// Accept bearer tokens and Basic credentials over plaintext connections.
    /// For development only: on a network they would travel in clear.
    pub allow_plaintext_credentials: bool,
    /// Worker threads: they run the crypto, the work of every request (read at
    /// start; default: one per core the process may use).
    pub worker_threads: Option<usize>,
    /// Threads of the async runtime, which only moves bytes (read at start;
    /// default: one per four worker threads, at least one). More of them
    /// mostly adds cross-CPU wake-ups.
    pub io_threads: Option<usize>,
    /// How the kernel schedules the async runtime's threads (read at start):
    /// `batch` (default) or `normal`. See [`IoScheduling`].
    pub io_scheduling: IoScheduling,
    /// Upper bound on one request's processing time (client deadlines are honoured too).
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// How often the config file is checked for changes (0 disables polling; SIGHUP still works).
    #[serde(with = "humantime_serde")]
    pub reload_interval: Duration,
    /// How long a shutdown waits for in-flight requests.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// Log format: `json` (default) or `text`.
    pub log_format: String,
    /// Connections on each listener: how many, from where, for how long.
    pub connections: ConnectionsSpec,
    /// HTTP/2 limits of every listener that speaks it.
    pub http2: Http2Spec,
    /// Requests accepted from a connection but not yet admitted (or refused)
    /// by the front desk, over every door; beyond it they are shed at once.
    pub max_pending_requests: usize,
    /// Bytes of request bodies the server receives or holds at once, over
    /// every request (each reserves its declared length before its body is
    /// read, within its caller's share); beyond it calls are shed.
    pub max_request_body_memory: usize,
    /// Authentication failures (credentials, or messages that do not
    /// authenticate) one caller may have before it is refused early.
    pub failure_budget: FailureBudgetSpec,
    /// How often the allocator's free memory is checked and, past 4 MiB,
    /// given back to the system (glibc keeps what a burst freed); 0 turns it off.
    #[serde(with = "humantime_serde")]
    pub memory_release_interval: Duration,
    /// Security events are logged as one line per kind and caller per interval
    /// (the counters stay exact; every event is logged at debug level).
    #[serde(with = "humantime_serde")]
    pub security_log_interval: Duration,
}

/// Connection limits and deadlines, applied by every listener on its own.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConnectionsSpec {
    /// Connections one listener holds at once; a connection over it is closed
    /// as soon as it is accepted.
    pub max_total: usize,
    /// Connections from one client address on one listener.
    pub max_per_address: usize,
    /// From accept to the first request's headers: the TLS handshake, the
    /// HTTP/2 preface and the first request must all arrive within it.
    #[serde(with = "humantime_serde")]
    pub handshake_timeout: Duration,
    /// A connection with no request in progress for this long is closed
    /// (HTTP/2: GOAWAY, then close). Headers that drip in count as idle.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
}

impl Default for ConnectionsSpec {
    fn default() -> Self {
        ConnectionsSpec {
            max_total: 1024,
            max_per_address: 256,
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
        }
    }
}

/// HTTP/2 limits (per connection).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Http2Spec {
    /// Streams open at once (SETTINGS_MAX_CONCURRENT_STREAMS).
    pub max_concurrent_streams: u32,
    /// The largest header list a request may have, in bytes (also the
    /// HTTP/1.1 header limit of the HTTP/JSON door).
    pub max_header_list_bytes: u32,
    /// Bytes of a request body one stream may send before the server reads
    /// them (the stream's flow-control window).
    pub stream_window_bytes: u32,
    /// Bytes all streams of a connection may send before the server reads them.
    pub connection_window_bytes: u32,
    /// Streams the client may reset per second; past it the connection is closed.
    pub max_resets_per_second: u32,
    /// Streams reset by the client before the server took them up, at once;
    /// past it: GOAWAY ENHANCE_YOUR_CALM.
    pub max_pending_accept_reset_streams: usize,
    /// Streams the server had to reset for the client's protocol errors;
    /// past it: GOAWAY ENHANCE_YOUR_CALM.
    pub max_local_error_reset_streams: usize,
    /// Control frames (SETTINGS, PING, PRIORITY, WINDOW_UPDATE, RST_STREAM)
    /// and empty DATA or CONTINUATION frames the client may send per second;
    /// past it the connection is closed.
    pub max_control_frames_per_second: u32,
    /// PING interval on quiet connections, and how long a PING may stay unanswered.
    #[serde(with = "humantime_serde")]
    pub keepalive_interval: Duration,
    #[serde(with = "humantime_serde")]
    pub keepalive_timeout: Duration,
}

impl Default for Http2Spec {
    fn default() -> Self {
        Http2Spec {
            max_concurrent_streams: 128,
            max_header_list_bytes: 16 * 1024,
            stream_window_bytes: 64 * 1024,
            connection_window_bytes: 256 * 1024,
            max_resets_per_second: 200,
            max_pending_accept_reset_streams: 20,
            max_local_error_reset_streams: 64,
            max_control_frames_per_second: 1000,
            keepalive_interval: Duration::from_secs(30),
            keepalive_timeout: Duration::from_secs(10),
        }
    }
}

/// How many authentication failures a caller may have: `burst` at once,
/// refilled evenly over `window` (the default: 10 per 10 s).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FailureBudgetSpec {
    pub burst: u32,
    #[serde(with = "humantime_serde")]
    pub window: Duration,
}

impl Default for FailureBudgetSpec {
    fn default() -> Self {
        FailureBudgetSpec {
            burst: 10,
            window: Duration::from_secs(10),
        }
    }
}

impl ServerSpec {
    /// What is wrong with the limits (`server.*`), one line each naming the
    /// field. A zero there would not mean "no limit" but refuse everything
    /// (or, for a window, stall every stream), so it is refused at start.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut positive = |name: &str, value: u64| {
            if value == 0 {
                out.push(format!("server.{name}: must be greater than 0"));
            }
        };
        let c = &self.connections;
        let h = &self.http2;
        positive("max_request_bytes", self.max_request_bytes as u64);
        positive(
            "max_concurrent_requests",
            self.max_concurrent_requests as u64,
        );
        positive("max_pending_requests", self.max_pending_requests as u64);
        positive(
            "max_request_body_memory",
            self.max_request_body_memory as u64,
        );
        positive("connections.max_total", c.max_total as u64);
        positive("connections.max_per_address", c.max_per_address as u64);
        positive(
            "connections.handshake_timeout",
            c.handshake_timeout.as_millis() as u64,
        );
        positive(
            "connections.idle_timeout",
            c.idle_timeout.as_millis() as u64,
        );
        positive(
            "http2.max_concurrent_streams",
            h.max_concurrent_streams.into(),
        );
        positive(
            "http2.max_header_list_bytes",
            h.max_header_list_bytes.into(),
        );
        positive("http2.stream_window_bytes", h.stream_window_bytes.into());
        positive(
            "http2.connection_window_bytes",
            h.connection_window_bytes.into(),
        );
        positive(
            "http2.max_resets_per_second",
            h.max_resets_per_second.into(),
        );
        positive(
            "http2.max_control_frames_per_second",
            h.max_control_frames_per_second.into(),
        );
        positive("failure_budget.burst", self.failure_budget.burst.into());
        positive(
            "failure_budget.window",
            self.failure_budget.window.as_millis() as u64,
        );
        positive(
            "security_log_interval",
            self.security_log_interval.as_millis() as u64,
        );
        // HTTP/2 caps flow-control windows at 2^31 - 1.
        for (name, v) in [
            ("stream_window_bytes", h.stream_window_bytes),
            ("connection_window_bytes", h.connection_window_bytes),
        ] {
            if v > i32::MAX as u32 {
                out.push(format!(
                    "server.http2.{name}: at most {} (HTTP/2's largest window)",
                    i32::MAX
                ));
            }
        }
        if c.max_per_address > c.max_total {
            out.push(
                "server.connections.max_per_address: must not exceed connections.max_total".into(),
            );
        }
        // A body the memory budget cannot hold would always be shed.
        if self.max_request_body_memory < self.max_request_bytes {
            out.push(format!(
                "server.max_request_body_memory: must be at least server.max_request_bytes ({})",
                self.max_request_bytes
            ));
        }
        out
    }

    /// Crypto worker threads: configured, else one per core.
    pub fn workers(&self) -> usize {
        self.worker_threads.filter(|n| *n > 0).unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
        })
    }

    /// Async runtime threads: configured, else one per four workers (at least one).
    pub fn io_workers(&self) -> usize {
        self.io_threads
            .filter(|n| *n > 0)
            .unwrap_or_else(|| self.workers().div_ceil(4))
    }
}

impl Default for ServerSpec {
    fn default() -> Self {
        ServerSpec {
            listen: "127.0.0.1:50051".into(),
            health_listen: "127.0.0.1:50052".into(),
            admin_listen: "127.0.0.1:9090".into(),
            http_listen: None,
            tls: None,
            max_request_bytes: 4 * 1024 * 1024,
            max_concurrent_requests: 256,
            allow_plaintext_credentials: false,
            io_threads: None,
            io_scheduling: IoScheduling::Batch,
            worker_threads: None,
            request_timeout: Duration::from_secs(10),
            reload_interval: Duration::from_secs(2),
            shutdown_grace: Duration::from_secs(20),
            log_format: "json".into(),
            connections: ConnectionsSpec::default(),
            http2: Http2Spec::default(),
            max_pending_requests: 1024,
            max_request_body_memory: 32 * 1024 * 1024,
            failure_budget: FailureBudgetSpec::default(),
            security_log_interval: Duration::from_secs(10),
            memory_release_interval: Duration::from_secs(2),
        }
    }
}

/// The `lambda` section: what `reseal lambda` reads from the events it is
/// invoked with, and who it calls as. Read at start, like `server`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LambdaSpec {
    /// The registry caller the function acts as when `callers` are configured
    /// (IAM decides who may invoke the function; this decides what it may
    /// target). Required then; unused without `callers`.
    pub caller: Option<String>,
    pub connect: ConnectSpec,
    pub genesys: GenesysSpec,
}

/// An Amazon Connect `ContactFlowEvent`: the names of the `Details.Parameters`
/// the flow's "Invoke AWS Lambda function" block sets.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConnectSpec {
    /// The encrypted customer input (base64), e.g. `$.StoredCustomerInput`.
    pub ciphertext_parameter: String,
    /// The Connect key id it was encrypted under (the source key hint).
    pub key_id_parameter: String,
    /// A route name.
    pub route_parameter: String,
    /// Consumer ids, comma-separated.
    pub consumers_parameter: String,
    /// The route when the event names neither a route nor consumers.
    pub default_route: Option<String>,
    /// Largest answer, in bytes of JSON. Amazon Connect takes less than 32 KB
    /// of UTF-8 from a Lambda function; a bigger answer is refused with
    /// MAXIMUM_DATA_SIZE_EXCEEDED rather than sent to be dropped.
    pub max_answer_bytes: usize,
}

impl Default for ConnectSpec {
    fn default() -> Self {
        ConnectSpec {
            ciphertext_parameter: "my-secret-string".into(),
            key_id_parameter: "key-id".into(),
            route_parameter: "route".into(),
            consumers_parameter: "consumers".into(),
            default_route: None,
            max_answer_bytes: 32_000,
        }
    }
}

/// A Genesys Cloud AWS Lambda data action: the fields of the JSON object its
/// request template sends.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GenesysSpec {
    /// The output of the flow's Encrypt Data action (base64).
    pub ciphertext_field: String,
    /// A route name.
    pub route_field: String,
    /// Consumer ids: an array, or one comma-separated string.
    pub consumers_field: String,
    /// The request id for the audit log (e.g. the conversation id).
    pub request_id_field: String,
    /// The route when the payload names neither a route nor consumers.
    pub default_route: Option<String>,
    /// How a failed call is reported: `function-error` (default: the data
    /// action takes its Failure path, the reason is the error type) or
    /// `answer` (a Success answer with `status: ERROR` and `errorReason`).
    pub failures: GenesysFailures,
}

impl Default for GenesysSpec {
    fn default() -> Self {
        GenesysSpec {
            ciphertext_field: "encryptedData".into(),
            route_field: "route".into(),
            consumers_field: "consumers".into(),
            request_id_field: "conversationId".into(),
            default_route: None,
            failures: GenesysFailures::FunctionError,
        }
    }
}

/// See [`GenesysSpec::failures`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GenesysFailures {
    #[default]
    FunctionError,
    Answer,
}

/// Linux scheduling policy of the async runtime's threads.
///
/// With `batch` (`SCHED_BATCH`), a runtime thread that wakes up (a response
/// is ready, a request arrived) does not preempt a crypto thread running on
/// that CPU; it runs when one is idle, when the crypto thread waits, or at the
/// next scheduler tick, and then handles everything that is ready at once.
/// On a saturated CPU that saves most context switches and some CPU per
/// request; the price is latency while every CPU is busy, a response waiting
/// for the crypto thread's next job or the next tick (the measurements are in
/// BENCHMARKS.md, "Scheduling of the runtime threads").
/// `normal` leaves the policy the process started with (`SCHED_OTHER`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IoScheduling {
    Batch,
    Normal,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TlsSpec {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// CA bundle for client certificates; setting it turns on mutual TLS.
    #[serde(default)]
    pub client_ca_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsSpec {
    /// Largest input ciphertext in bytes after base64 decoding. The default is
    /// well above Genesys Cloud's 32,000-character input ceiling.
    pub max_ciphertext_bytes: usize,
    pub max_encrypted_data_keys: usize,
    pub max_header_bytes: usize,
    pub max_encryption_context_bytes: usize,
    pub max_frames: usize,
    pub max_consumers_per_call: usize,
    pub max_batch_items: usize,
    /// Unwrap attempts per source key (provider id and key name) per message.
    /// A legitimate message carries one EDK per key; more EDKs naming the
    /// same key are not tried.
    pub max_unwrap_attempts_per_key: usize,
    /// Private-key (RSA) unwrap attempts per message, over every source key.
    pub max_private_key_attempts: usize,
    /// Accept base64 text in the raw `ciphertext` field (by default only a
    /// binary ESDK message is; base64 text belongs in `ciphertext_base64`).
    pub allow_base64_in_ciphertext: bool,
}

impl Default for LimitsSpec {
    fn default() -> Self {
        LimitsSpec {
            max_ciphertext_bytes: 256 * 1024,
            max_encrypted_data_keys: 16,
            max_header_bytes: 64 * 1024,
            max_encryption_context_bytes: 16 * 1024,
            max_frames: 4096,
            max_consumers_per_call: 64,
            max_batch_items: 100,
            max_unwrap_attempts_per_key: 1,
            max_private_key_attempts: 2,
            allow_base64_in_ciphertext: false,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DevelopmentSpec {
    /// Create missing `file:` keys under this folder on start (never in production).
    pub generate_missing_keys_in: Option<PathBuf>,
}

/// The `aws` section: clients, retries and caches. Compiled into the AWS key
/// layer's [`AwsOptions`] (the consumer-side materials cache is the broker's).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AwsSpec {
    /// Region; otherwise the standard chain (AWS_REGION, profile, IMDS).
    pub region: Option<String>,
    /// Endpoint override (also honoured from AWS_ENDPOINT_URL) for a local stand-in.
    pub endpoint_url: Option<String>,
    /// Per-attempt timeout of an AWS call.
    #[serde(with = "humantime_serde")]
    pub attempt_timeout: Duration,
    /// Total time budget of one AWS operation, retries included.
    #[serde(with = "humantime_serde")]
    pub operation_timeout: Duration,
    /// Attempts per operation (1 = no retry).
    pub max_attempts: u32,
    /// First backoff; doubles each retry, with full jitter.
    #[serde(with = "humantime_serde")]
    pub initial_backoff: Duration,
    #[serde(with = "humantime_serde")]
    pub max_backoff: Duration,
    /// AWS calls in flight at once, per service.
    pub max_concurrent_calls: usize,
    pub key_cache: KeyCacheOptions,
    pub data_key_cache: DataKeyCacheOptions,
    pub consumer_data_key_cache: ConsumerCacheSpec,
    pub discovery: DiscoveryOptions,
}

impl Default for AwsSpec {
    fn default() -> Self {
        let retry = RetryOptions::default();
        AwsSpec {
            region: None,
            endpoint_url: None,
            attempt_timeout: retry.attempt_timeout,
            operation_timeout: retry.operation_timeout,
            max_attempts: retry.max_attempts,
            initial_backoff: retry.initial_backoff,
            max_backoff: retry.max_backoff,
            max_concurrent_calls: retry.max_concurrent_calls,
            key_cache: KeyCacheOptions::default(),
            data_key_cache: DataKeyCacheOptions::default(),
            consumer_data_key_cache: ConsumerCacheSpec::default(),
            discovery: DiscoveryOptions::default(),
        }
    }
}

impl AwsSpec {
    /// What the AWS key layer is built from.
    pub fn options(&self) -> AwsOptions {
        AwsOptions {
            region: self.region.clone(),
            endpoint_url: self.endpoint_url.clone(),
            retry: RetryOptions {
                attempt_timeout: self.attempt_timeout,
                operation_timeout: self.operation_timeout,
                max_attempts: self.max_attempts,
                initial_backoff: self.initial_backoff,
                max_backoff: self.max_backoff,
                max_concurrent_calls: self.max_concurrent_calls,
            },
            key_cache: self.key_cache.clone(),
            data_key_cache: self.data_key_cache.clone(),
            discovery: self.discovery.clone(),
        }
    }
}

/// Consumer side: ESDK caching-CMM limits for KMS consumers.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsumerCacheSpec {
    pub enabled: bool,
    #[serde(with = "humantime_serde")]
    pub max_age: Duration,
    pub max_messages: u64,
    pub max_bytes: u64,
    pub max_entries: u64,
}

impl Default for ConsumerCacheSpec {
    fn default() -> Self {
        ConsumerCacheSpec {
            enabled: true,
            max_age: Duration::from_secs(60),
            max_messages: 1000,
            max_bytes: 64 * 1024 * 1024,
            max_entries: 1000,
        }
    }
}

/// Source key types.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum SourceKind {
    /// RSA private key (Amazon Connect): PEM inline, `file:`, `env:` or `ssm:`.
    RawRsa,
    /// AES-GCM wrapping key.
    RawAes,
    /// AWS KMS symmetric key(s), by ARN or alias (strict mode).
    AwsKms,
    /// AWS KMS discovery: any key ARN within the partition and account filter.
    AwsKmsDiscovery,
    /// RSA private keys found in SSM by key id (Amazon Connect key discovery).
    SsmDiscovery,
}

impl SourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::RawRsa => "raw-rsa",
            SourceKind::RawAes => "raw-aes",
            SourceKind::AwsKms => "aws-kms",
            SourceKind::AwsKmsDiscovery => "aws-kms-discovery",
            SourceKind::SsmDiscovery => "ssm-discovery",
        }
    }
}

/// A source key entry. One flat shape for all types, so that a misplaced field
/// gets a precise "not used by type X" error instead of a vague parse failure.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSpec {
    #[serde(rename = "type")]
    pub kind: SourceKind,
    pub description: Option<String>,
    /// EDK provider id. raw-rsa defaults to `AmazonConnect`.
    pub provider_id: Option<String>,
    /// EDK key name (Amazon Connect: the key id).
    pub key_name: Option<String>,
    /// raw-rsa padding; defaults to `oaep-sha512` (Amazon Connect's).
    pub padding: Option<RsaPadding>,
    /// raw-rsa private key reference.
    pub private_key: Option<KeyRef>,
    /// raw-aes key reference (base64 of 16, 24 or 32 bytes).
    pub key: Option<KeyRef>,
    /// aws-kms: key ARNs or aliases.
    pub key_ids: Option<Vec<String>>,
    /// aws-kms-discovery filter.
    pub discovery_filter: Option<DiscoveryFilterSpec>,
    /// aws-kms / aws-kms-discovery: region for multi-Region keys and discovery.
    pub region: Option<String>,
    /// ssm-discovery: key names this rule answers for (`uuid` or a regex).
    pub key_name_pattern: Option<String>,
    /// ssm-discovery: parameter path template, e.g. `/amazon-connect/encryption/{key_id}/private-key`.
    pub parameter_template: Option<String>,
    #[serde(default, with = "rfc3339")]
    pub not_before: Option<OffsetDateTime>,
    /// End of a retired key's grace period (e.g. Genesys Cloud's 31 days).
    #[serde(default, with = "rfc3339")]
    pub decrypt_until: Option<OffsetDateTime>,
    #[serde(default)]
    pub encryption_context: ContextRulesSpec,
    /// Warn this long before `decrypt_until`. Default 30 days.
    #[serde(default, with = "humantime_serde::option")]
    pub expiry_warning: Option<Duration>,
    /// Suites accepted from this source (hex ids). Default: every suite with a KDF.
    pub allowed_suites: Option<Vec<String>>,
    /// Accept only key-committing suites from this source.
    #[serde(default)]
    pub require_commitment: bool,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DiscoveryFilterSpec {
    pub partition: String,
    pub account_ids: Vec<String>,
}

/// Constraints on an input's encryption context.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ContextRulesSpec {
    /// Keys that must be present with exactly this value.
    pub require: BTreeMap<String, String>,
    /// Keys that must be present with one of these values
    /// (e.g. `genesys-cloud-organization-id: [org-a, org-b]`).
    pub allow: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsumerSpec {
    pub description: Option<String>,
    /// The consumer's keys; every active one gets an EDK in the envelope
    /// (a recipient in a JWE envelope).
    pub keys: BTreeMap<String, ConsumerKeySpec>,
    /// What the consumer's envelopes are: `esdk` (default) or `jwe`.
    #[serde(default)]
    pub format: EnvelopeFormatSpec,
    /// Envelope suite (hex). Default `0x0478`: committed, unsigned. ESDK only.
    pub suite: Option<String>,
    /// Envelope frame length. Default 4096. ESDK only.
    pub frame_length: Option<u32>,
    /// JWE only: force a serialization. Default: compact with one active
    /// key, general JSON with several (a consumer mid-rotation).
    pub serialization: Option<JweSerializationSpec>,
    /// JWE only: the `cty` header parameter (the payload's media type).
    pub content_type: Option<String>,
    #[serde(default)]
    pub encryption_context: OutputContextSpec,
    /// Warn this long before a key or certificate stops being usable. Default 30 days.
    #[serde(default, with = "humantime_serde::option")]
    pub expiry_warning: Option<Duration>,
}

/// A consumer's envelope format.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum EnvelopeFormatSpec {
    /// AWS Encryption SDK messages (the consumer opens them with an ESDK).
    #[default]
    Esdk,
    /// JSON Web Encryption (RFC 7516), for consumers with a JOSE library.
    Jwe,
}

impl EnvelopeFormatSpec {
    pub fn as_str(self) -> &'static str {
        match self {
            EnvelopeFormatSpec::Esdk => "esdk",
            EnvelopeFormatSpec::Jwe => "jwe",
        }
    }
}

/// A JWE serialization a consumer can force.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum JweSerializationSpec {
    /// The compact serialization: exactly one recipient.
    Compact,
    /// The general JSON serialization: one recipient per active key.
    Json,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum ConsumerKeyKind {
    /// RSA public key PEM.
    RsaPublic,
    /// X.509 certificate PEM; its validity period bounds the key's use.
    /// RSA for ESDK consumers; RSA or EC (P-256, P-384) for JWE consumers.
    X509,
    /// EC public key PEM (P-256 or P-384): JWE consumers only (ECDH-ES+A256KW).
    EcPublic,
    /// AES-GCM key shared with the consumer (JWE: A256KW, 32 bytes).
    RawAes,
    /// The consumer's AWS KMS symmetric key.
    AwsKms,
}

impl ConsumerKeyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ConsumerKeyKind::RsaPublic => "rsa-public",
            ConsumerKeyKind::X509 => "x509",
            ConsumerKeyKind::EcPublic => "ec-public",
            ConsumerKeyKind::RawAes => "raw-aes",
            ConsumerKeyKind::AwsKms => "aws-kms",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsumerKeySpec {
    #[serde(rename = "type")]
    pub kind: ConsumerKeyKind,
    pub public_key: Option<KeyRef>,
    pub certificate: Option<KeyRef>,
    pub key: Option<KeyRef>,
    /// aws-kms: key ARN (or alias ARN).
    pub key_id: Option<String>,
    /// RSA padding; default `oaep-sha256`. ESDK only (JWE: RSA-OAEP-256).
    pub padding: Option<RsaPadding>,
    /// EDK provider id the consumer's keyring expects; default `reseal`. ESDK only.
    pub provider_id: Option<String>,
    /// EDK key name the consumer's keyring expects; default: this key's id.
    /// ESDK only (a JWE recipient's `kid` is the key's id).
    pub key_name: Option<String>,
    #[serde(default, with = "rfc3339")]
    pub not_before: Option<OffsetDateTime>,
    #[serde(default, with = "rfc3339")]
    pub not_after: Option<OffsetDateTime>,
}

/// What goes into each envelope's encryption context.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutputContextSpec {
    /// Fixed pairs.
    #[serde(rename = "static")]
    pub fixed: BTreeMap<String, String>,
    /// Pairs filled per request.
    pub add: Vec<ContextField>,
    /// Keys copied from the input's encryption context (`*` for all).
    pub propagate: Vec<String>,
}

/// Per-request values an envelope's encryption context can carry.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum ContextField {
    ConsumerId,
    SourceKeyId,
    RequestId,
    SourceMessageId,
}

impl ContextField {
    /// The encryption-context key the field is written under.
    pub fn key(self) -> &'static str {
        match self {
            ContextField::ConsumerId => "reseal-consumer-id",
            ContextField::SourceKeyId => "reseal-source-key-id",
            ContextField::RequestId => "reseal-request-id",
            ContextField::SourceMessageId => "reseal-source-message-id",
        }
    }
}

/// An authorized caller, known by its client certificate (mTLS), a bearer
/// token, or HTTP Basic credentials: at least one of them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallerSpec {
    /// Identities (SPIFFE/URI SAN, DNS SAN, or subject CN) this entry covers.
    #[serde(default)]
    pub identities: Vec<String>,
    /// Bearer tokens (`Authorization: Bearer ...`), each by reference
    /// (`env:`, `file:`, `ssm:`); several at once while one is rotated.
    #[serde(default)]
    pub tokens: Vec<SecretRef>,
    /// HTTP Basic credentials; several at once while one is rotated.
    #[serde(default)]
    pub basic: Vec<BasicSpec>,
    /// Routes the caller may use (`*` for any).
    #[serde(default)]
    pub routes: Vec<String>,
    /// Consumers the caller may target directly (`*` for any).
    #[serde(default)]
    pub consumers: Vec<String>,
}

/// A username and a password by reference.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicSpec {
    pub username: String,
    pub password: SecretRef,
}

/// Where a caller secret comes from. Never inline: a secret in the
/// configuration file would be stored (and shown) in clear.
#[derive(Clone, PartialEq, Eq)]
pub enum SecretRef {
    /// `env:VAR`.
    Env(String),
    /// `file:PATH`, relative to the config file's folder (one line; a trailing newline is ignored).
    File(PathBuf),
    /// `ssm:/parameter/name` (SecureString, decrypted on read).
    Ssm(String),
}

impl SecretRef {
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim();
        if let Some(v) = t.strip_prefix("env:") {
            return Ok(SecretRef::Env(v.to_owned()));
        }
        if let Some(p) = t.strip_prefix("file:") {
            return Ok(SecretRef::File(PathBuf::from(p)));
        }
        if let Some(p) = t.strip_prefix("ssm:") {
            if !p.starts_with('/') && !p.starts_with("arn:") {
                return Err("ssm: parameter names must start with `/` (or be an ARN)".into());
            }
            return Ok(SecretRef::Ssm(p.to_owned()));
        }
        Err(
            "give the secret by reference: `env:VAR`, `file:PATH` or `ssm:/NAME` (never inline)"
                .into(),
        )
    }
}

impl fmt::Debug for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretRef::Env(v) => write!(f, "env:{v}"),
            SecretRef::File(p) => write!(f, "file:{}", p.display()),
            SecretRef::Ssm(p) => write!(f, "ssm:{p}"),
        }
    }
}

impl<'de> Deserialize<'de> for SecretRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // The text may be a secret pasted by mistake: it is not repeated in the error.
        let text = Zeroizing::new(String::deserialize(d)?);
        SecretRef::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// Optional RFC 3339 date-times, with a message that shows the accepted form.
mod rfc3339 {
    use std::fmt;

    use serde::de::{self, Deserializer, Visitor};
    use time::format_description::well_known::Rfc3339;
    use time::OffsetDateTime;

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<OffsetDateTime>, D::Error> {
        Ok(Option::<Date>::deserialize(d)?.map(|Date(t)| t))
    }

    struct Date(OffsetDateTime);

    impl<'de> serde::Deserialize<'de> for Date {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_str(DateVisitor)
        }
    }

    use serde::Deserialize as _;

    struct DateVisitor;

    impl Visitor<'_> for DateVisitor {
        type Value = Date;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an RFC 3339 date and time such as `2027-01-31T00:00:00Z`")
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<Date, E> {
            if let Ok(t) = OffsetDateTime::parse(v.trim(), &Rfc3339) {
                return Ok(Date(t));
            }
            let shown = if v.len() <= 64 && !v.contains('\n') {
                format!("`{v}`")
            } else {
                "the value".into()
            };
            let bytes = v.as_bytes();
            let date_only = v.len() == 10 && bytes[4] == b'-' && bytes[7] == b'-';
            let hint = if date_only {
                format!("; add the time and the zone: `{v}T00:00:00Z`")
            } else if v.len() > 10 && bytes[10] == b' ' {
                "; put a `T` between the date and the time".to_owned()
            } else if v.len() >= 19
                && !v.ends_with(['Z', 'z'])
                && !bytes[19..].iter().any(|b| *b == b'+' || *b == b'-')
            {
                "; add the zone: `Z` for UTC, or an offset such as `+01:00`".to_owned()
            } else {
                String::new()
            };
            Err(E::custom(format!(
                "{shown} is not an RFC 3339 date and time such as `2027-01-31T00:00:00Z`{hint}"
            )))
        }
    }
}

/// Where key material comes from. Inline material never appears in logs or errors.
#[derive(Clone)]
pub enum KeyRef {
    /// PEM text in the config itself.
    Inline(Zeroizing<String>),
    /// `file:PATH`, relative to the config file's folder.
    File(PathBuf),
    /// `env:VAR`.
    Env(String),
    /// `ssm:/parameter/name` (SecureString, decrypted on read).
    Ssm(String),
}

impl KeyRef {
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim();
        if let Some(p) = t.strip_prefix("file:") {
            return Ok(KeyRef::File(PathBuf::from(p)));
        }
        if let Some(v) = t.strip_prefix("env:") {
            return Ok(KeyRef::Env(v.to_owned()));
        }
        if let Some(p) = t.strip_prefix("ssm:") {
            if !p.starts_with('/') && !p.starts_with("arn:") {
                return Err("ssm: parameter names must start with `/` (or be an ARN)".into());
            }
            return Ok(KeyRef::Ssm(p.to_owned()));
        }
        if let Some(v) = t.strip_prefix("base64:") {
            return Ok(KeyRef::Inline(Zeroizing::new(v.to_owned())));
        }
        if t.starts_with("-----BEGIN") {
            return Ok(KeyRef::Inline(Zeroizing::new(t.to_owned())));
        }
        // (The value is never quoted back: it may be key material without its prefix.)
        let hint = if t.starts_with('/') || t.starts_with("./") || t.starts_with("../") {
            "; a path needs the `file:` prefix (`file:/etc/reseal/keys/...`)"
        } else if t.contains("-----BEGIN") {
            "; inline PEM must start with its `-----BEGIN` line"
        } else {
            "; base64 key material needs the `base64:` prefix"
        };
        Err(format!(
            "expected `file:PATH`, `env:VAR`, `ssm:/NAME`, `base64:...` or inline PEM{hint}"
        ))
    }
}

impl fmt::Debug for KeyRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for KeyRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyRef::Inline(_) => f.write_str("inline material"),
            KeyRef::File(p) => write!(f, "file:{}", p.display()),
            KeyRef::Env(v) => write!(f, "env:{v}"),
            KeyRef::Ssm(p) => write!(f, "ssm:{p}"),
        }
    }
}

impl<'de> Deserialize<'de> for KeyRef {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = Zeroizing::new(String::deserialize(d)?);
        KeyRef::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod server_limit_tests {
    use super::ServerSpec;

    #[test]
    fn zero_and_absurd_server_limits_are_refused() {
        assert!(ServerSpec::default().problems().is_empty());
        let mut s = ServerSpec::default();
        s.connections.max_total = 0;
        s.http2.max_concurrent_streams = 0;
        s.http2.stream_window_bytes = u32::MAX;
        s.max_request_body_memory = 1024;
        s.failure_budget.window = std::time::Duration::ZERO;
        let p = s.problems().join("\n");
        for field in [
            "server.connections.max_total: must be greater than 0",
            "server.connections.max_per_address: must not exceed",
            "server.http2.max_concurrent_streams: must be greater than 0",
            "server.http2.stream_window_bytes: at most",
            "server.max_request_body_memory: must be at least",
            "server.failure_budget.window: must be greater than 0",
        ] {
            assert!(p.contains(field), "{field} missing from:\n{p}");
        }
    }
}
