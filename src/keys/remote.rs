//! Keys used through a remote service (AWS KMS, SSM-held private keys).
//!
//! The pure engine's `Identity`/`Recipient` are synchronous; these are their
//! async counterparts, with errors classified so the broker can tell "the key
//! is gone" from "the key is disabled" from "AWS is unreachable, retry".

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use crate::esdk::{AlgorithmSuite, DataKey, EncryptedDataKey, EncryptionContext, KeyringContext};

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why a remote key could not be used. Messages name keys, never material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyAccessError {
    /// The key or its material does not exist (SSM parameter, KMS key).
    #[error("key material not found: {0}")]
    NotFound(String),
    /// The key exists but is disabled or pending deletion.
    #[error("key is disabled or pending deletion: {0}")]
    Disabled(String),
    /// We are not allowed to use the key.
    #[error("access denied: {0}")]
    AccessDenied(String),
    /// The service could not be reached, throttled us past the retry budget, or timed out.
    #[error("AWS unavailable: {message}")]
    Unavailable {
        message: String,
        retry_after: Option<Duration>,
    },
    /// The material is there but unusable (not an RSA key, asymmetric KMS key, ...).
    #[error("invalid key: {0}")]
    Invalid(String),
    /// The key was used and refused the EDK (tampered EDK, or not this key's).
    #[error("data key could not be unwrapped: {0}")]
    Unwrap(String),
    /// The EDK is not addressed to this key after all (e.g. an alias that
    /// resolved to another key); try the next candidate.
    #[error("the encrypted data key is not for this key")]
    NotThisKey,
    /// A local guard refused to ask AWS (the discovery rate limit).
    #[error("too many lookups of unknown keys; try again later")]
    RateLimited { retry_after: Duration },
}

/// A source key whose unwrapping goes through AWS.
pub trait RemoteSource: Send + Sync {
    /// The exact EDK key names this source answers for (KMS key ARNs), or
    /// `None` for a rule that answers for a pattern (discovery).
    fn key_names(&self) -> Option<Vec<String>>;

    /// For pattern rules: whether an EDK's provider info is in scope.
    fn answers_for(&self, provider_info: &[u8]) -> bool;

    /// Unwraps one EDK addressed to this source.
    fn unwrap<'a>(
        &'a self,
        edk: &'a EncryptedDataKey,
        ctx: KeyringContext<'a>,
    ) -> BoxFuture<'a, Result<DataKey, KeyAccessError>>;

    /// Fetches or checks whatever the source needs, for `reseal validate` and
    /// the start-up self-test. Returns a one-line description of what was checked.
    fn self_test(&self) -> BoxFuture<'_, Result<String, KeyAccessError>>;
}

/// A consumer key whose wrapping goes through AWS KMS.
pub trait RemoteRecipient: Send + Sync {
    fn label(&self) -> String;

    /// A new data key and its EDK (KMS GenerateDataKey).
    fn generate<'a>(
        &'a self,
        suite: AlgorithmSuite,
        ec: &'a EncryptionContext,
    ) -> BoxFuture<'a, Result<(DataKey, EncryptedDataKey), KeyAccessError>>;

    /// Wraps an existing data key (KMS Encrypt).
    fn wrap<'a>(
        &'a self,
        data_key: &'a DataKey,
        ec: &'a EncryptionContext,
    ) -> BoxFuture<'a, Result<EncryptedDataKey, KeyAccessError>>;

    fn self_test(&self) -> BoxFuture<'_, Result<String, KeyAccessError>>;
}
