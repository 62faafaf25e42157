//! Safety limits and the policies that decide which messages are acceptable.

use super::error::{Error, SuiteRefusal};
use super::suite::{AlgorithmSuite, SuiteSet};

/// Bounds on what a message may make us parse and compute. Every limit is
/// checked as soon as the bytes that reveal it have been read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Most encrypted data keys a header may carry (an EDK flood is cheap to send).
    pub max_encrypted_data_keys: usize,
    /// Most bytes a header may occupy, EDKs and encryption context included.
    pub max_header_bytes: usize,
    /// Most bytes of serialized encryption context.
    pub max_encryption_context_bytes: usize,
    /// Most bytes after the header (body and footer).
    pub max_body_bytes: usize,
    /// Most frames in a framed body.
    pub max_frames: usize,
    /// Largest frame length a header may declare.
    pub max_frame_length: u32,
}

impl Default for Limits {
    /// Defaults sized for interactive payloads (card numbers, PII, recordings metadata)
    /// while still accepting every message the reference ESDKs write by default.
    fn default() -> Self {
        Limits {
            max_encrypted_data_keys: 16,
            max_header_bytes: 128 * 1024,
            max_encryption_context_bytes: 64 * 1024,
            max_body_bytes: 64 * 1024 * 1024,
            max_frames: 1 << 20,
            max_frame_length: u32::MAX,
        }
    }
}

impl Limits {
    /// The widest limits the format itself allows; for conformance runs.
    pub fn unbounded() -> Self {
        Limits {
            max_encrypted_data_keys: u16::MAX as usize,
            max_header_bytes: usize::MAX,
            max_encryption_context_bytes: u16::MAX as usize,
            max_body_bytes: usize::MAX,
            max_frames: u32::MAX as usize,
            max_frame_length: u32::MAX,
        }
    }
}

/// Key-commitment rule for encryption.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum EncryptCommitment {
    /// Only key-committing suites (0x0478, 0x0578). The default.
    #[default]
    Require,
    /// Only non-committing suites (for readers on ESDK 1.x).
    Forbid,
}

/// Key-commitment rule for decryption.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DecryptCommitment {
    /// Accept committing and non-committing suites. Needed for Amazon Connect (0x0378).
    #[default]
    Allow,
    /// Accept only key-committing suites.
    Require,
}

/// Whether signed messages may be decrypted. `Forbid` is the ESDK's
/// "fail right after the header if the suite is signed" option.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SignedPolicy {
    #[default]
    Allow,
    Forbid,
}

/// Everything decrypt checks before it touches a key.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct DecryptPolicy {
    pub commitment: DecryptCommitment,
    /// `None` allows every suite the commitment rule allows.
    pub allowed_suites: Option<SuiteSet>,
    pub signed: SignedPolicy,
    pub limits: Limits,
}

impl DecryptPolicy {
    /// Refuses a suite before any key is used (and before any KMS call is made).
    pub fn check_suite(&self, suite: AlgorithmSuite) -> Result<(), Error> {
        let refuse = |reason| Err(Error::SuiteNotAllowed { suite, reason });
        if self.commitment == DecryptCommitment::Require && !suite.is_committing() {
            return refuse(SuiteRefusal::CommitmentRequired);
        }
        if self.signed == SignedPolicy::Forbid && suite.is_signed() {
            return refuse(SuiteRefusal::SignedForbidden);
        }
        if let Some(allowed) = &self.allowed_suites {
            if !allowed.contains(suite) {
                return refuse(SuiteRefusal::NotAllowed);
            }
        }
        Ok(())
    }
}

impl EncryptCommitment {
    pub fn check_suite(&self, suite: AlgorithmSuite) -> Result<(), Error> {
        match (self, suite.is_committing()) {
            (EncryptCommitment::Require, false) => Err(Error::SuiteNotAllowed {
                suite,
                reason: SuiteRefusal::CommitmentRequired,
            }),
            (EncryptCommitment::Forbid, true) => Err(Error::SuiteNotAllowed {
                suite,
                reason: SuiteRefusal::CommitmentForbidden,
            }),
            _ => Ok(()),
        }
    }

    /// The commitment rule that admits `suite` (used by the vector runner, which
    /// encrypts whatever suite a manifest names).
    pub fn for_suite(suite: AlgorithmSuite) -> Self {
        if suite.is_committing() {
            EncryptCommitment::Require
        } else {
            EncryptCommitment::Forbid
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commitment_policies() {
        let connect = AlgorithmSuite::Aes256GcmIv12Tag16HkdfSha384EcdsaP384;
        let committed = AlgorithmSuite::Aes256GcmHkdfSha512CommitKey;
        let mut p = DecryptPolicy::default();
        assert!(p.check_suite(connect).is_ok());
        p.commitment = DecryptCommitment::Require;
        assert!(p.check_suite(connect).is_err());
        assert!(p.check_suite(committed).is_ok());
        assert!(EncryptCommitment::Require.check_suite(connect).is_err());
        assert!(EncryptCommitment::Forbid.check_suite(committed).is_err());
        let p = DecryptPolicy {
            signed: SignedPolicy::Forbid,
            ..Default::default()
        };
        assert!(p.check_suite(connect).is_err());
        let p = DecryptPolicy {
            allowed_suites: Some([committed].into_iter().collect()),
            ..Default::default()
        };
        assert!(p.check_suite(connect).is_err());
        assert!(p.check_suite(committed).is_ok());
    }
}
