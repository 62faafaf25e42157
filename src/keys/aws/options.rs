//! What the AWS-backed keys need to know: client, retry, cache and discovery
//! settings, with their defaults. The registry maps the `aws` section of the
//! configuration onto [`AwsOptions`]; the cache and discovery parts are read
//! from YAML as they are (the registry embeds them).

use std::time::Duration;

use serde::Deserialize;

/// Everything [`AwsKeys`](super::AwsKeys) is built from.
#[derive(Debug, Clone, Default)]
pub struct AwsOptions {
    /// Region; otherwise the standard chain (AWS_REGION, profile, IMDS).
    pub region: Option<String>,
    /// Endpoint override (also honoured from AWS_ENDPOINT_URL) for a local stand-in.
    pub endpoint_url: Option<String>,
    pub retry: RetryOptions,
    pub key_cache: KeyCacheOptions,
    pub data_key_cache: DataKeyCacheOptions,
    pub discovery: DiscoveryOptions,
}

/// Deadlines, attempts and concurrency of every AWS call (the SDK's own retries are off).
#[derive(Debug, Clone)]
pub struct RetryOptions {
    /// Per-attempt timeout of an AWS call.
    pub attempt_timeout: Duration,
    /// Total time budget of one AWS operation, retries included.
    pub operation_timeout: Duration,
    /// Attempts per operation (1 = no retry).
    pub max_attempts: u32,
    /// First backoff; doubles each retry, with full jitter.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// AWS calls in flight at once, per service.
    pub max_concurrent_calls: usize,
}

impl Default for RetryOptions {
    fn default() -> Self {
        RetryOptions {
            attempt_timeout: Duration::from_secs(2),
            operation_timeout: Duration::from_secs(6),
            max_attempts: 4,
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(1),
            max_concurrent_calls: 32,
        }
    }
}

/// Key material fetched from AWS (SSM private and public keys).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeyCacheOptions {
    /// Refresh after this age (in the background; the cached key keeps serving).
    #[serde(with = "humantime_serde")]
    pub refresh_after: Duration,
    /// Keep serving the last good key this long when AWS cannot be reached.
    #[serde(with = "humantime_serde")]
    pub stale_if_error: Duration,
    pub max_entries: u64,
}

impl Default for KeyCacheOptions {
    fn default() -> Self {
        KeyCacheOptions {
            refresh_after: Duration::from_secs(300),
            stale_if_error: Duration::from_secs(24 * 3600),
            max_entries: 1000,
        }
    }
}

/// Source side: unwrapped data keys by EDK bytes, so a repeated EDK costs no KMS call.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataKeyCacheOptions {
    pub max_entries: u64,
    #[serde(with = "humantime_serde")]
    pub max_age: Duration,
}

impl Default for DataKeyCacheOptions {
    fn default() -> Self {
        DataKeyCacheOptions {
            max_entries: 10_000,
            max_age: Duration::from_secs(300),
        }
    }
}

/// Guards for key discovery (unknown key ids would otherwise each cost an SSM call).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DiscoveryOptions {
    /// How long a key id that SSM does not have is remembered as absent.
    #[serde(with = "humantime_serde")]
    pub negative_ttl: Duration,
    /// SSM lookups of new key ids allowed per second (token bucket), across all sources.
    pub lookups_per_second: f64,
    pub burst: u32,
}

impl Default for DiscoveryOptions {
    fn default() -> Self {
        DiscoveryOptions {
            negative_ttl: Duration::from_secs(60),
            lookups_per_second: 2.0,
            burst: 5,
        }
    }
}
