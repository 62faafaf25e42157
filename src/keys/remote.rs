//! Keys used through a remote service (AWS KMS, SSM-held RSA keys).
//!
//! The pure engine's `Identity`/`Recipient` are synchronous; these are their
//! async counterparts, with errors classified so the broker can tell "the key
//! is gone" from "the key is disabled" from "AWS is unreachable, retry".
//!
//! One rule for where crypto runs: a remote key does only what needs the
//! service (a KMS call, a fetch of material). Material it fetches comes back as
//! a local [`Identity`] / [`Recipient`], which the broker then uses on its CPU
//! pool like any configured key. And one encoding of "not mine" for both
//! keyring families: `Ok(None)`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::esdk::{
    AlgorithmSuite, DataKey, EncryptedDataKey, EncryptionContext, Identity, KeyringContext,
    Recipient,
};
use crate::jwe;

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
    /// A local guard refused to ask AWS (the discovery rate limit).
    #[error("too many lookups of unknown keys; try again later")]
    RateLimited { retry_after: Duration },
}

impl KeyAccessError {
    /// The reason the broker reports for this error (`KEY_DISABLED`,
    /// `UPSTREAM_UNAVAILABLE`, ...): the outcome label of AWS call metrics,
    /// so they are spelt as the API's reasons. The broker's mapping is held
    /// to this by a test.
    pub fn reason(&self) -> &'static str {
        match self {
            KeyAccessError::NotFound(_) | KeyAccessError::Invalid(_) => "SOURCE_KEY_NOT_FOUND",
            KeyAccessError::Disabled(_) => "KEY_DISABLED",
            KeyAccessError::AccessDenied(_) => "PERMISSION_DENIED",
            KeyAccessError::Unavailable { .. } | KeyAccessError::RateLimited { .. } => {
                "UPSTREAM_UNAVAILABLE"
            }
            KeyAccessError::Unwrap(_) => "AUTHENTICATION_FAILED",
        }
    }
}

/// What a remote source makes of an EDK addressed to it.
pub enum Unwrapped {
    /// The service unwrapped it (KMS Decrypt).
    DataKey(DataKey),
    /// The key the EDK needs, fetched (an SSM-held RSA private key): the
    /// broker unwraps with it on the CPU pool.
    Identity(Arc<dyn Identity>),
}

/// A source key whose unwrapping goes through AWS.
pub trait RemoteSource: Send + Sync {
    /// The exact EDK key names this source answers for (KMS key ARNs), or
    /// `None` for a rule that answers for a pattern (discovery).
    fn key_names(&self) -> Option<Vec<String>>;

    /// For pattern rules: whether an EDK's provider info is in scope.
    fn answers_for(&self, provider_info: &[u8]) -> bool;

    /// Resolves one EDK the lookup matched to this source: its data key, or
    /// the identity that unwraps it. `Ok(None)`: not this source's after all
    /// (an alias that resolved to another key, a key name of another shape).
    fn resolve<'a>(
        &'a self,
        edk: &'a EncryptedDataKey,
        ctx: KeyringContext<'a>,
    ) -> BoxFuture<'a, Result<Option<Unwrapped>, KeyAccessError>>;

    /// Fetches or checks whatever the source needs, for `reseal validate` and
    /// the start-up self-test. Returns a one-line description of what was checked.
    fn self_test(&self) -> BoxFuture<'_, Result<String, KeyAccessError>>;
}

/// A consumer key whose material is fetched (an RSA public key in SSM): the
/// broker wraps with the fetched key on the CPU pool.
pub trait FetchedRecipient: Send + Sync {
    fn label(&self) -> String;

    /// The key, from the cache or the service.
    fn fetch(&self) -> BoxFuture<'_, Result<Arc<dyn Recipient>, KeyAccessError>>;

    fn self_test(&self) -> BoxFuture<'_, Result<String, KeyAccessError>>;
}

/// A JWE consumer key whose material is fetched (a public key in SSM): the
/// broker seals for the fetched recipient on the CPU pool, as it does for a
/// [`FetchedRecipient`] of an ESDK consumer.
pub trait FetchedJweRecipient: Send + Sync {
    fn label(&self) -> String;

    /// The recipient, from the cache or the service.
    fn fetch(&self) -> BoxFuture<'_, Result<Arc<jwe::Recipient>, KeyAccessError>>;

    fn self_test(&self) -> BoxFuture<'_, Result<String, KeyAccessError>>;
}

/// A consumer key whose wrapping is done by AWS KMS.
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
