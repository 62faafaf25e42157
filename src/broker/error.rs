//! Domain errors with stable, machine-readable reasons.
//!
//! The reason strings are API: clients switch on them. The gRPC edge maps each
//! reason to a status code in one place (`grpc::status`). Messages never hold
//! plaintext or key material; detail that only operators need (which frame
//! failed, what AWS said) goes to the audit log, not to the caller.

use std::fmt;
use std::time::Duration;

use crate::esdk::{self, ContextError, LimitError};
use crate::keys::remote::KeyAccessError;

/// Stable failure reasons.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    NoDataSupplied,
    /// The request itself is not well formed (not valid JSON or protobuf, an
    /// unknown field, the wrong content type), before any ciphertext is read.
    MalformedRequest,
    MaximumDataSizeExceeded,
    TooManyEncryptedDataKeys,
    MalformedCiphertext,
    AuthenticationFailed,
    SourceKeyNotConfigured,
    SourceKeyNotFound,
    KeyExpired,
    KeyDisabled,
    SuiteNotAllowed,
    EncryptionContextMismatch,
    NoTargets,
    UnknownConsumer,
    UnknownRoute,
    TooManyConsumers,
    BatchTooLarge,
    Unauthenticated,
    PermissionDenied,
    UpstreamUnavailable,
    Overloaded,
    /// The caller failed authentication (of its credentials or of its
    /// messages) too often recently; refused before any work until its budget
    /// refills.
    TooManyFailures,
    NotReady,
    Internal,
}

impl Reason {
    pub const ALL: [Reason; 24] = [
        Reason::NoDataSupplied,
        Reason::MalformedRequest,
        Reason::MaximumDataSizeExceeded,
        Reason::TooManyEncryptedDataKeys,
        Reason::MalformedCiphertext,
        Reason::AuthenticationFailed,
        Reason::SourceKeyNotConfigured,
        Reason::SourceKeyNotFound,
        Reason::KeyExpired,
        Reason::KeyDisabled,
        Reason::SuiteNotAllowed,
        Reason::EncryptionContextMismatch,
        Reason::NoTargets,
        Reason::UnknownConsumer,
        Reason::UnknownRoute,
        Reason::TooManyConsumers,
        Reason::BatchTooLarge,
        Reason::Unauthenticated,
        Reason::PermissionDenied,
        Reason::UpstreamUnavailable,
        Reason::Overloaded,
        Reason::TooManyFailures,
        Reason::NotReady,
        Reason::Internal,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Reason::NoDataSupplied => "NO_DATA_SUPPLIED",
            Reason::MalformedRequest => "MALFORMED_REQUEST",
            Reason::MaximumDataSizeExceeded => "MAXIMUM_DATA_SIZE_EXCEEDED",
            Reason::TooManyEncryptedDataKeys => "TOO_MANY_ENCRYPTED_DATA_KEYS",
            Reason::MalformedCiphertext => "MALFORMED_CIPHERTEXT",
            Reason::AuthenticationFailed => "AUTHENTICATION_FAILED",
            Reason::SourceKeyNotConfigured => "SOURCE_KEY_NOT_CONFIGURED",
            Reason::SourceKeyNotFound => "SOURCE_KEY_NOT_FOUND",
            Reason::KeyExpired => "KEY_EXPIRED",
            Reason::KeyDisabled => "KEY_DISABLED",
            Reason::SuiteNotAllowed => "SUITE_NOT_ALLOWED",
            Reason::EncryptionContextMismatch => "ENCRYPTION_CONTEXT_MISMATCH",
            Reason::NoTargets => "NO_TARGETS",
            Reason::UnknownConsumer => "UNKNOWN_CONSUMER",
            Reason::UnknownRoute => "UNKNOWN_ROUTE",
            Reason::TooManyConsumers => "TOO_MANY_CONSUMERS",
            Reason::BatchTooLarge => "BATCH_TOO_LARGE",
            Reason::Unauthenticated => "UNAUTHENTICATED",
            Reason::PermissionDenied => "PERMISSION_DENIED",
            Reason::UpstreamUnavailable => "UPSTREAM_UNAVAILABLE",
            Reason::Overloaded => "OVERLOADED",
            Reason::TooManyFailures => "TOO_MANY_FAILURES",
            Reason::NotReady => "NOT_READY",
            Reason::Internal => "INTERNAL",
        }
    }

    /// Whether the same request may succeed later without any change.
    pub fn retryable(self) -> bool {
        matches!(
            self,
            Reason::UpstreamUnavailable
                | Reason::Overloaded
                | Reason::TooManyFailures
                | Reason::NotReady
        )
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failure of a call, a batch item, or one consumer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}: {message}")]
pub struct BrokerError {
    pub reason: Reason,
    /// Safe for the caller.
    pub message: String,
    /// Suggested wait before retrying (UPSTREAM_UNAVAILABLE, OVERLOADED).
    pub retry_after: Option<Duration>,
    /// Operator-only detail for the audit log.
    pub detail: Option<String>,
}

impl BrokerError {
    pub fn new(reason: Reason, message: impl Into<String>) -> Self {
        BrokerError {
            reason,
            message: message.into(),
            retry_after: None,
            detail: None,
        }
    }

    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    pub fn with_retry_after(mut self, after: Duration) -> Self {
        self.retry_after = Some(after);
        self
    }

    pub fn internal(what: impl fmt::Display) -> Self {
        BrokerError::new(Reason::Internal, "internal error").with_detail(what.to_string())
    }
}

/// The one message callers see for every authentication failure: which check
/// failed (EDK unwrap, commitment, header, frame, signature) is not revealed,
/// so the broker is no oracle; the audit log has the detail.
pub const AUTHENTICATION_MESSAGE: &str =
    "the message could not be authenticated: it was altered, or not encrypted for the matching source key";

impl From<esdk::Error> for BrokerError {
    fn from(e: esdk::Error) -> Self {
        use esdk::Error as E;
        let detail = e.to_string();
        match e {
            E::Format(f) => BrokerError::new(
                Reason::MalformedCiphertext,
                format!("malformed ESDK message: {f}"),
            ),
            E::Limit(LimitError::TooManyDataKeys { count, max }) => BrokerError::new(
                Reason::TooManyEncryptedDataKeys,
                format!(
                    "the message carries {count} encrypted data keys; at most {max} are accepted"
                ),
            ),
            E::Limit(l) => BrokerError::new(Reason::MaximumDataSizeExceeded, l.to_string()),
            E::SuiteNotAllowed { .. } => BrokerError::new(Reason::SuiteNotAllowed, detail),
            E::NoMatchingKey { edks } => BrokerError::new(
                Reason::SourceKeyNotConfigured,
                format!(
                    "no configured source key matches the message's encrypted data keys: {}",
                    esdk::EdkSummary::list(&edks)
                ),
            ),
            E::UnwrapFailed { .. } | E::Authentication(_) => {
                BrokerError::new(Reason::AuthenticationFailed, AUTHENTICATION_MESSAGE)
                    .with_detail(detail)
            }
            E::Context(
                ContextError::MissingVerificationKey
                | ContextError::UnexpectedVerificationKey
                | ContextError::InvalidVerificationKey,
            ) => BrokerError::new(Reason::AuthenticationFailed, AUTHENTICATION_MESSAGE)
                .with_detail(detail),
            E::Context(c) => BrokerError::new(Reason::EncryptionContextMismatch, c.to_string()),
            E::WrapFailed { .. } | E::InvalidRequest(_) | E::Crypto(_) => {
                BrokerError::internal(detail)
            }
        }
    }
}

impl From<super::PoolGone> for BrokerError {
    fn from(e: super::PoolGone) -> Self {
        BrokerError::internal(e)
    }
}

/// Maps a remote key failure, naming the key (never its material).
pub fn key_access_error(key: &str, e: KeyAccessError) -> BrokerError {
    let detail = e.to_string();
    match e {
        KeyAccessError::NotFound(_) => BrokerError::new(
            Reason::SourceKeyNotFound,
            format!("key material for `{key}` was not found"),
        )
        .with_detail(detail),
        KeyAccessError::Disabled(_) => BrokerError::new(
            Reason::KeyDisabled,
            format!("key `{key}` is disabled or pending deletion"),
        )
        .with_detail(detail),
        KeyAccessError::AccessDenied(_) => BrokerError::new(
            Reason::PermissionDenied,
            format!("reseal is not allowed to use key `{key}`"),
        )
        .with_detail(detail),
        KeyAccessError::Unavailable { retry_after, .. } => {
            let err = BrokerError::new(
                Reason::UpstreamUnavailable,
                format!("AWS could not be reached for key `{key}`; retry later"),
            )
            .with_detail(detail);
            err.with_retry_after(retry_after.unwrap_or(Duration::from_secs(1)))
        }
        KeyAccessError::RateLimited { retry_after } => BrokerError::new(
            Reason::UpstreamUnavailable,
            "too many lookups of unknown keys; retry later",
        )
        .with_retry_after(retry_after)
        .with_detail(detail),
        KeyAccessError::Invalid(_) => BrokerError::new(
            Reason::SourceKeyNotFound,
            format!("key material for `{key}` is not usable"),
        )
        .with_detail(detail),
        KeyAccessError::Unwrap(_) => {
            BrokerError::new(Reason::AuthenticationFailed, AUTHENTICATION_MESSAGE)
                .with_detail(detail)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Reason;

    /// AWS call metrics spell their outcome with `KeyAccessError::reason`;
    /// it must be the reason the broker reports for the same error.
    #[test]
    fn key_access_reasons_match_the_metric_labels() {
        use crate::keys::remote::KeyAccessError as E;
        let d = std::time::Duration::from_secs(1);
        for e in [
            E::NotFound("k".into()),
            E::Disabled("k".into()),
            E::AccessDenied("k".into()),
            E::Unavailable {
                message: "m".into(),
                retry_after: None,
            },
            E::Invalid("k".into()),
            E::Unwrap("k".into()),
            E::RateLimited { retry_after: d },
        ] {
            let label = e.reason();
            assert_eq!(super::key_access_error("k", e).reason.as_str(), label);
        }
    }

    /// Adding a reason without listing it in `Reason::ALL` fails to compile
    /// here (the match is exhaustive) or fails this test (the count).
    #[test]
    fn reason_all_lists_every_reason_once() {
        let listed = |r: Reason| -> usize {
            match r {
                Reason::NoDataSupplied
                | Reason::MalformedRequest
                | Reason::MaximumDataSizeExceeded
                | Reason::TooManyEncryptedDataKeys
                | Reason::MalformedCiphertext
                | Reason::AuthenticationFailed
                | Reason::SourceKeyNotConfigured
                | Reason::SourceKeyNotFound
                | Reason::KeyExpired
                | Reason::KeyDisabled
                | Reason::SuiteNotAllowed
                | Reason::EncryptionContextMismatch
                | Reason::NoTargets
                | Reason::UnknownConsumer
                | Reason::UnknownRoute
                | Reason::TooManyConsumers
                | Reason::BatchTooLarge
                | Reason::Unauthenticated
                | Reason::PermissionDenied
                | Reason::UpstreamUnavailable
                | Reason::Overloaded
                | Reason::TooManyFailures
                | Reason::NotReady
                | Reason::Internal => 1,
            }
        };
        const VARIANTS: usize = 24;
        assert_eq!(
            Reason::ALL.iter().map(|r| listed(*r)).sum::<usize>(),
            VARIANTS
        );
        let unique: std::collections::BTreeSet<_> = Reason::ALL.iter().collect();
        assert_eq!(unique.len(), VARIANTS, "a reason is listed twice");
        let names: std::collections::BTreeSet<_> = Reason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(names.len(), VARIANTS, "two reasons share a name");
    }
}
