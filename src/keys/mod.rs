//! Key material and the keyrings built on it.
//!
//! * [`raw_rsa`] and [`raw_aes`]: synchronous keyrings implementing the ESDK
//!   engine's `Identity` (unwrap) and `Recipient` (wrap) traits.
//! * [`remote`]: the async counterparts for keys used through AWS, and [`aws`]
//!   their implementations (SSM private keys, KMS) with caches.
//! * [`pem`] and [`cert`]: the PEM/DER/X.509 shapes operators hand us.
//! * [`jwe_keys`]: the same material as JWE recipients (the `reseal-jwe` crate's).
//! * [`connect`]: Amazon Connect's shape of input (its defaults and an encoder).
//! * [`secret`]: caller credentials' secrets, kept as digests.

pub mod aws;
pub mod cert;
pub mod connect;
pub mod jwe_keys;
pub mod pem;
pub mod raw_aes;
pub mod raw_rsa;
pub mod remote;
pub mod secret;

pub use raw_aes::RawAesKeyring;
pub use raw_rsa::{RawRsaKeyring, RsaPadding};

/// A key could not be loaded. Messages describe the problem, never the bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("PEM: {0}")]
    Pem(&'static str),
    #[error("{0}")]
    Invalid(String),
}
