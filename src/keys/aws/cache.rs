//! The caches that keep reseal inside AWS quotas and up when AWS is not.
//!
//! * [`MaterialCache`]: key material fetched from SSM, with a refresh age,
//!   background refresh, and stale-if-error (the last good key keeps serving
//!   while SSM is unreachable).
//! * [`DataKeyCache`]: source side: data keys unwrapped by KMS, by EDK, so a
//!   data key that arrives again costs no KMS call.
//! * [`MaterialsCache`]: consumer side: ESDK caching-CMM semantics for KMS
//!   consumers: one set of encryption materials reused for at most a max age,
//!   a max number of messages and a max number of bytes.
//! * [`TokenBucket`]: rate limit for looking up keys nobody has seen before.
//!
//! Every lookup is counted as hit, miss or stale in `reseal_cache_lookups`.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use moka::sync::Cache;

use crate::esdk::{DataKey, EncryptedDataKey, EncryptionContext, EncryptionMaterials};
use crate::keys::remote::KeyAccessError;
use crate::registry::model::{ConsumerCacheSpec, DataKeyCacheSpec, KeyCacheSpec};
use crate::telemetry::Metrics;

struct MaterialEntry<T> {
    value: Arc<T>,
    fetched: Instant,
    refreshing: AtomicBool,
}

/// Fetched key material with refresh-after and stale-if-error.
pub struct MaterialCache<T: Send + Sync + 'static> {
    name: &'static str,
    entries: Cache<String, Arc<MaterialEntry<T>>>,
    spec: KeyCacheSpec,
    metrics: Arc<Metrics>,
    /// Serializes first fetches of the same name (single flight).
    fetching: tokio::sync::Mutex<()>,
}

impl<T: Send + Sync + 'static> MaterialCache<T> {
    pub fn new(name: &'static str, spec: &KeyCacheSpec, metrics: Arc<Metrics>) -> Arc<Self> {
        Arc::new(MaterialCache {
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
            Arc::new(MaterialEntry {
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
    pub fn new(spec: &DataKeyCacheSpec, metrics: Arc<Metrics>) -> Self {
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

struct MaterialsEntry {
    materials: Arc<EncryptionMaterials>,
    created: Instant,
    messages: u64,
    bytes: u64,
}

/// Consumer side: reusable encryption materials within the caching-CMM limits.
pub struct MaterialsCache {
    entries: Cache<String, Arc<Mutex<MaterialsEntry>>>,
    spec: ConsumerCacheSpec,
    metrics: Arc<Metrics>,
}

impl MaterialsCache {
    pub fn new(spec: &ConsumerCacheSpec, metrics: Arc<Metrics>) -> Self {
        MaterialsCache {
            entries: Cache::builder()
                .max_capacity(spec.max_entries)
                .time_to_live(spec.max_age)
                .build(),
            spec: spec.clone(),
            metrics,
        }
    }

    pub fn enabled(&self) -> bool {
        self.spec.enabled
    }

    /// Materials for one more message of `len` bytes, if a cached entry still
    /// has room under every limit; the use is counted.
    pub fn take(&self, key: &str, len: usize) -> Option<Arc<EncryptionMaterials>> {
        let entry = self.entries.get(key);
        let taken = entry.and_then(|e| {
            let mut e = e.lock().unwrap_or_else(|p| p.into_inner());
            let fits = e.created.elapsed() < self.spec.max_age
                && e.messages < self.spec.max_messages
                && e.bytes + len as u64 <= self.spec.max_bytes;
            fits.then(|| {
                e.messages += 1;
                e.bytes += len as u64;
                e.materials.clone()
            })
        });
        self.metrics.cache_event(
            "consumer_materials",
            if taken.is_some() { "hit" } else { "miss" },
        );
        taken
    }

    /// Stores fresh materials that were just used for one message of `len` bytes.
    pub fn put(&self, key: &str, materials: Arc<EncryptionMaterials>, len: usize) {
        if len as u64 > self.spec.max_bytes || self.spec.max_messages == 0 {
            return;
        }
        self.entries.insert(
            key.to_owned(),
            Arc::new(Mutex::new(MaterialsEntry {
                materials,
                created: Instant::now(),
                messages: 1,
                bytes: len as u64,
            })),
        );
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

    #[test]
    fn materials_cache_respects_message_and_byte_limits() {
        let spec = ConsumerCacheSpec {
            enabled: true,
            max_age: Duration::from_secs(60),
            max_messages: 3,
            max_bytes: 100,
            max_entries: 10,
        };
        let cache = MaterialsCache::new(&spec, Arc::new(Metrics::new()));
        let m = Arc::new(
            EncryptionMaterials::generate(
                crate::esdk::AlgorithmSuite::Aes256GcmHkdfSha512CommitKey,
                EncryptionContext::new(),
            )
            .unwrap(),
        );
        assert!(cache.take("k", 10).is_none());
        cache.put("k", m, 10);
        assert!(cache.take("k", 10).is_some()); // 2 messages, 20 bytes
        assert!(cache.take("k", 90).is_none()); // would exceed 100 bytes
        assert!(cache.take("k", 10).is_some()); // 3 messages, 30 bytes
        assert!(cache.take("k", 1).is_none()); // would be a 4th message
    }
}
