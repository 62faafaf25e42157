//! The caches that keep reseal inside AWS quotas and up when AWS is not.
//!
//! * [`KeyKeyMaterialCache`]: key material fetched from SSM, with a refresh age,
//!   background refresh, and stale-if-error (the last good key keeps serving
//!   while SSM is unreachable).
//! * [`DataKeyCache`]: source side: data keys unwrapped by KMS, by EDK, so a
//!   data key that arrives again costs no KMS call.
//! * [`TokenBucket`]: rate limit for looking up keys nobody has seen before.
//!
//! Every lookup is counted as hit, miss or stale in `reseal_cache_lookups`.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use moka::sync::Cache;

use super::options::{DataKeyCacheOptions, KeyCacheOptions};
use crate::esdk::{DataKey, EncryptedDataKey, EncryptionContext};
use crate::keys::remote::KeyAccessError;
use crate::telemetry::Metrics;

struct KeyMaterialEntry<T> {
    value: Arc<T>,
    fetched: Instant,
    refreshing: AtomicBool,
}

/// Fetched key material with refresh-after and stale-if-error.
pub struct KeyMaterialCache<T: Send + Sync + 'static> {
    name: &'static str,
    entries: Cache<String, Arc<KeyMaterialEntry<T>>>,
    spec: KeyCacheOptions,
    metrics: Arc<Metrics>,
    /// Serializes first fetches of the same name (single flight).
    fetching: tokio::sync::Mutex<()>,
}

impl<T: Send + Sync + 'static> KeyMaterialCache<T> {
    pub fn new(name: &'static str, spec: &KeyCacheOptions, metrics: Arc<Metrics>) -> Arc<Self> {
        Arc::new(KeyMaterialCache {
            name,
            entries: Cache::builder()
                .max_capacity(spec.max_entries)
                .time_to_live(spec.refresh_after + spec.stale_if_error)
                .build(),
            spec: spec.clone(),
            metrics,
            fetching: tokio::sync::Mutex::new(()),
        })
    }

    /// Whether material for `key` is held (fresh or stale).
    pub fn contains(&self, key: &str) -> bool {
        self.entries.contains_key(key)
    }

    fn insert(&self, key: &str, value: T) -> Arc<T> {
        let value = Arc::new(value);
        self.entries.insert(
            key.to_owned(),
            Arc::new(KeyMaterialEntry {
                value: value.clone(),
                fetched: Instant::now(),
                refreshing: AtomicBool::new(false),
            }),
        );
        value
    }

    /// The material for `key`: fresh from the cache; or stale from the cache
    /// while a background refresh runs; or fetched now.
    pub async fn get<F, Fut>(
        self: &Arc<Self>,
        key: &str,
        fetch: F,
    ) -> Result<Arc<T>, KeyAccessError>
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, KeyAccessError>> + Send + 'static,
    {
        if let Some(entry) = self.entries.get(key) {
            let age = entry.fetched.elapsed();
            if age < self.spec.refresh_after {
                self.metrics.cache_event(self.name, "hit");
                return Ok(entry.value.clone());
            }
            if age < self.spec.refresh_after + self.spec.stale_if_error {
                self.metrics.cache_event(self.name, "stale");
                let value = entry.value.clone();
                if !entry.refreshing.swap(true, Ordering::SeqCst) {
                    let this = self.clone();
                    let key = key.to_owned();
                    tokio::spawn(async move {
                        match fetch().await {
                            Ok(v) => {
                                this.insert(&key, v);
                            }
                            Err(e) => {
                                tracing::warn!(cache = this.name, key = %key, error = %e, "background refresh failed; serving the last good material");
                                entry.refreshing.store(false, Ordering::SeqCst);
                            }
                        }
                    });
                }
                return Ok(value);
            }
        }
        self.metrics.cache_event(self.name, "miss");
        let _guard = self.fetching.lock().await;
        if let Some(entry) = self.entries.get(key) {
            if entry.fetched.elapsed() < self.spec.refresh_after {
                return Ok(entry.value.clone());
            }
        }
        let value = fetch().await?;
        Ok(self.insert(key, value))
    }
}

/// Source side: unwrapped data keys, by EDK and context.
pub struct DataKeyCache {
    entries: Cache<[u8; 32], Arc<DataKey>>,
    metrics: Arc<Metrics>,
}

impl DataKeyCache {
    pub fn new(spec: &DataKeyCacheOptions, metrics: Arc<Metrics>) -> Self {
        DataKeyCache {
            entries: Cache::builder()
                .max_capacity(spec.max_entries)
                .time_to_live(spec.max_age)
                .build(),
            metrics,
        }
    }

    /// The cache key: a digest of the EDK (provider id, info, ciphertext) and
    /// of the context KMS authenticated it with.
    pub fn key(edk: &EncryptedDataKey, ec: &EncryptionContext) -> [u8; 32] {
        let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
        for part in [
            edk.provider_id.as_bytes(),
            &edk.provider_info,
            &edk.ciphertext,
        ] {
            ctx.update(&(part.len() as u64).to_be_bytes());
            ctx.update(part);
        }
        ctx.update(&ec.serialize().unwrap_or_default());
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.finish().as_ref());
        out
    }

    pub fn get(&self, key: &[u8; 32]) -> Option<DataKey> {
        let hit = self.entries.get(key).map(|k| (*k).clone());
        self.metrics.cache_event(
            "source_data_keys",
            if hit.is_some() { "hit" } else { "miss" },
        );
        hit
    }

    pub fn insert(&self, key: [u8; 32], value: &DataKey) {
        self.entries.insert(key, Arc::new(value.clone()));
    }
}

/// A token bucket: `rate` tokens per second, at most `burst` saved up.
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    state: Mutex<(f64, Instant)>,
}

impl TokenBucket {
    pub fn new(rate: f64, burst: u32) -> Self {
        TokenBucket {
            rate: rate.max(0.0),
            burst: f64::from(burst.max(1)),
            state: Mutex::new((f64::from(burst.max(1)), Instant::now())),
        }
    }

    /// Takes a token, or says how long until one is available.
    pub fn try_take(&self) -> Result<(), Duration> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        s.0 = (s.0 + now.duration_since(s.1).as_secs_f64() * self.rate).min(self.burst);
        s.1 = now;
        if s.0 >= 1.0 {
            s.0 -= 1.0;
            Ok(())
        } else if self.rate > 0.0 {
            Err(Duration::from_secs_f64((1.0 - s.0) / self.rate))
        } else {
            Err(Duration::from_secs(60))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_bucket_limits_bursts() {
        let b = TokenBucket::new(1.0, 3);
        assert!(b.try_take().is_ok());
        assert!(b.try_take().is_ok());
        assert!(b.try_take().is_ok());
        let wait = b.try_take().unwrap_err();
        assert!(wait > Duration::from_millis(500) && wait <= Duration::from_secs(1));
    }
}
