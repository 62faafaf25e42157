//! The AWS Encryption SDK message format, as a pure library: bytes in, bytes out.
//!
//! No I/O, no async, no AWS types. Keys enter through the [`Identity`] and
//! [`Recipient`] traits (or as a ready [`DataKey`]), so the same engine serves
//! raw keys, KMS-backed keys and the conformance runner, and can be fuzzed on
//! its own.
//!
//! * [`Message::parse`] checks structure and limits without touching a key.
//! * [`Message::open`] verifies commitment, header, every frame and the
//!   signature before it releases any plaintext.
//! * [`EncryptionMaterials`] + [`seal`] write messages, with one EDK per
//!   recipient so a reader holding any one of the keys can open it.

mod codec;
pub mod context;
pub mod crypto;
pub mod decrypt;
pub mod encrypt;
pub mod error;
pub mod header;
pub mod keyring;
pub mod limits;
pub mod message;
pub mod p384;
pub mod signature;
pub mod suite;

use std::fmt;

use zeroize::Zeroizing;

pub use context::EncryptionContext;
pub use decrypt::{decrypt, unwrap_data_key, Decrypted};
pub use encrypt::{
    encrypt, seal, EncryptOptions, EncryptionMaterials, MaterialsDraft, DEFAULT_FRAME_LENGTH,
};
pub use error::{AuthenticationError, ContextError, Error, FormatError, LimitError, SuiteRefusal};
pub use header::{ContentType, Header, HeaderBody};
pub use keyring::{
    DataKey, EdkSummary, EncryptedDataKey, Identity, IdentitySet, KeyIndex, KeyNameLayout, Keyring,
    KeyringContext, Recipient, UnwrapError,
};
pub use limits::{DecryptCommitment, DecryptPolicy, EncryptCommitment, Limits, SignedPolicy};
pub use message::{DecryptionContext, Message};
pub use suite::{AlgorithmSuite, FormatVersion, SuiteSet};

/// Decrypted plaintext. Zeroized on drop; `Debug` never shows it.
pub struct Plaintext(Zeroizing<Vec<u8>>);

impl Plaintext {
    pub fn new(bytes: Zeroizing<Vec<u8>>) -> Self {
        Plaintext(bytes)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Plaintext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Plaintext([REDACTED; {}])", self.0.len())
    }
}

impl From<Vec<u8>> for Plaintext {
    fn from(bytes: Vec<u8>) -> Self {
        Plaintext(Zeroizing::new(bytes))
    }
}
