//! The ESDK caching CMM for consumers with AWS KMS keys: one set of
//! encryption materials (data key and its KMS-wrapped EDKs) reused for at most
//! a max age, a max number of messages and a max number of bytes, so a busy
//! consumer costs one GenerateDataKey per window instead of one per envelope.
//! Every lookup is counted as hit or miss in `reseal_cache_lookups`.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use moka::sync::Cache;

use crate::esdk::EncryptionMaterials;
use crate::registry::model::ConsumerCacheSpec;
use crate::telemetry::Metrics;

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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::esdk::EncryptionContext;

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
