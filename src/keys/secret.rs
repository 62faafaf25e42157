//! Caller credentials' secrets (bearer tokens, Basic passwords) as reseal
//! keeps them: the SHA-256 of the secret, never the secret itself, compared in
//! constant time. A secret is given by reference (`env:`, `file:`, `ssm:`);
//! an SSM-held one is fetched behind the key-material cache.

use std::fmt;
use std::sync::Arc;

use super::remote::{BoxFuture, KeyAccessError};

/// The SHA-256 of a secret.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretDigest([u8; 32]);

impl SecretDigest {
    pub fn of(secret: &[u8]) -> Self {
        let mut out = [0u8; 32];
        out.copy_from_slice(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, secret).as_ref());
        SecretDigest(out)
    }

    /// Constant-time equality (the digests are the same length, so only the
    /// comparison itself could leak, and it does not).
    pub fn matches(&self, other: &SecretDigest) -> bool {
        aws_lc_rs::constant_time::verify_slices_are_equal(&self.0, &other.0).is_ok()
    }
}

impl fmt::Debug for SecretDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretDigest([REDACTED])")
    }
}

/// A secret fetched from a service (an SSM SecureString).
pub trait FetchedSecret: Send + Sync {
    /// Where it comes from, for messages (`ssm:/name`), never the value.
    fn label(&self) -> String;

    fn fetch(&self) -> BoxFuture<'_, Result<Arc<SecretDigest>, KeyAccessError>>;
}

/// A configured secret: known at load, or fetched when first needed.
#[derive(Clone)]
pub enum Secret {
    Known(SecretDigest),
    Fetched(Arc<dyn FetchedSecret>),
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Secret::Known(_) => f.write_str("Secret::Known([REDACTED])"),
            Secret::Fetched(s) => write!(f, "Secret::Fetched({})", s.label()),
        }
    }
}

impl Secret {
    /// Whether `presented` is this secret. A secret that cannot be fetched
    /// matches nothing (and is reported as such).
    pub async fn matches(&self, presented: &SecretDigest) -> Result<bool, KeyAccessError> {
        match self {
            Secret::Known(d) => Ok(d.matches(presented)),
            Secret::Fetched(s) => Ok(s.fetch().await?.matches(presented)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_match_only_the_same_secret_and_never_print_it() {
        let a = SecretDigest::of(b"token-one");
        assert!(a.matches(&SecretDigest::of(b"token-one")));
        assert!(!a.matches(&SecretDigest::of(b"token-one ")));
        assert!(!a.matches(&SecretDigest::of(b"")));
        assert!(!format!("{a:?}").contains("token"));
    }
}
