//! Errors of the message engine.
//!
//! One enum with typed sub-enums (the rustls shape), mapped once to the wire by
//! the gRPC edge. No variant carries plaintext or key bytes: what they carry is
//! header metadata (suite ids, provider ids, key names, offsets) that an
//! operator needs and an attacker already has.

use super::edk::EdkSummary;
use super::suite::AlgorithmSuite;

/// The bytes are not a well-formed ESDK message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    #[error("message truncated while reading {field} at offset {offset}")]
    Truncated { field: &'static str, offset: usize },
    #[error("unsupported message format version 0x{0:02X}")]
    UnsupportedVersion(u8),
    #[error("unsupported message type 0x{0:02X}")]
    UnsupportedType(u8),
    #[error("unknown algorithm suite 0x{0:04X}")]
    UnknownSuite(u16),
    #[error("algorithm suite 0x{suite:04X} cannot appear in a version {version} header")]
    SuiteVersionMismatch { suite: u16, version: u8 },
    #[error("invalid {field}: {reason}")]
    Invalid {
        field: &'static str,
        reason: &'static str,
    },
    #[error("{field} is {len} bytes, more than the format can encode")]
    TooLong { field: &'static str, len: usize },
    #[error("{0} trailing bytes after the end of the message")]
    TrailingBytes(usize),
}

/// A configured safety limit was exceeded. Checked as early as the bytes allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    #[error("message has {count} encrypted data keys; the limit is {max}")]
    TooManyDataKeys { count: usize, max: usize },
    #[error("message header is larger than the limit of {max} bytes")]
    HeaderTooLarge { max: usize },
    #[error("encryption context is {len} bytes; the limit is {max}")]
    EncryptionContextTooLarge { len: usize, max: usize },
    #[error("message body is larger than the limit of {max} bytes")]
    BodyTooLarge { max: usize },
    #[error("message body has more than {max} frames")]
    TooManyFrames { max: usize },
    #[error("frame length {len} exceeds the limit of {max}")]
    FrameLengthTooLarge { len: u32, max: u32 },
}

/// Why a suite was refused by policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SuiteRefusal {
    #[error("the commitment policy requires a key-committing suite")]
    CommitmentRequired,
    #[error("the commitment policy forbids key-committing suites")]
    CommitmentForbidden,
    #[error("it is not in the allowed suite list")]
    NotAllowed,
    #[error("signed messages are refused by configuration")]
    SignedForbidden,
}

/// Something the message claims could not be verified: tampering, a wrong key,
/// or a truncated/reordered body that still parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthenticationError {
    #[error("header authentication tag did not verify")]
    HeaderTag,
    #[error("key commitment did not match the data key")]
    Commitment,
    #[error("frame {sequence} did not authenticate")]
    Frame { sequence: u32 },
    #[error("non-framed body did not authenticate")]
    Body,
    #[error("message signature did not verify")]
    Signature,
}

/// Encryption-context rules: reserved keys, caller expectations.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContextError {
    #[error("signed suite but the encryption context has no `aws-crypto-public-key`")]
    MissingVerificationKey,
    #[error("unsigned suite but the encryption context carries `aws-crypto-public-key`")]
    UnexpectedVerificationKey,
    #[error("the verification key in the encryption context is not a valid public key")]
    InvalidVerificationKey,
    #[error("encryption context value for `{key}` does not match the expected value")]
    Mismatch { key: String },
    #[error("encryption context is missing the required key `{key}`")]
    MissingKey { key: String },
    #[error("`{key}` is reserved for the ESDK and cannot be set by callers")]
    ReservedKey { key: String },
}

/// Every way an encrypt or decrypt can fail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("malformed message: {0}")]
    Format(#[from] FormatError),
    #[error("limit exceeded: {0}")]
    Limit(#[from] LimitError),
    #[error("algorithm suite {suite} refused: {reason}")]
    SuiteNotAllowed {
        suite: AlgorithmSuite,
        reason: SuiteRefusal,
    },
    #[error("no configured key matches the message's encrypted data keys ({})", EdkSummary::list(.edks))]
    NoMatchingKey { edks: Vec<EdkSummary> },
    #[error("a matching key could not unwrap the data key ({key}): {reason}")]
    UnwrapFailed { key: EdkSummary, reason: String },
    #[error("encryption context: {0}")]
    Context(#[from] ContextError),
    #[error("authentication failed: {0}")]
    Authentication(#[from] AuthenticationError),
    #[error("could not wrap the data key for {key}: {reason}")]
    WrapFailed { key: String, reason: String },
    #[error("invalid encrypt request: {0}")]
    InvalidRequest(&'static str),
    #[error("cryptographic operation failed: {0}")]
    Crypto(&'static str),
}

impl Error {
    /// True when the failure says the message was altered or is not meant for the key used.
    pub fn is_authentication(&self) -> bool {
        matches!(self, Error::Authentication(_))
    }
}
