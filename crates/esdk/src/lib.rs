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

#![forbid(unsafe_code)]

mod codec;
pub mod context;
pub mod crypto;
pub mod decrypt;
pub mod edk;
pub mod encrypt;
pub mod error;
pub mod header;
pub mod keyring;
pub mod limits;
pub mod message;
pub mod p384;
mod plaintext;
pub mod signature;
pub mod suite;

pub use context::EncryptionContext;
pub use decrypt::{decrypt, unwrap_data_key, Decrypted};
pub use edk::{EdkSummary, EncryptedDataKey, KeyNameLayout};
pub use encrypt::{
    encrypt, seal, EncryptOptions, EncryptionMaterials, MaterialsDraft, DEFAULT_FRAME_LENGTH,
};
pub use error::{AuthenticationError, ContextError, Error, FormatError, LimitError, SuiteRefusal};
pub use header::{ContentType, Header, HeaderBody};
pub use keyring::{
    DataKey, Identity, IdentitySet, KeyIndex, Keyring, KeyringContext, Recipient, UnwrapError,
};
pub use limits::{DecryptCommitment, DecryptPolicy, EncryptCommitment, Limits, SignedPolicy};
pub use message::{DecryptionContext, Message};
pub use plaintext::Plaintext;
pub use suite::{AlgorithmSuite, FormatVersion, SuiteSet};
