//! Key material and the keyrings built on it.
//!
//! * [`raw_rsa`] and [`raw_aes`]: synchronous keyrings implementing the ESDK
//!   engine's `Identity` (unwrap) and `Recipient` (wrap) traits.
//! * [`pem`]: the PEM/DER shapes operators hand us.

pub mod pem;
pub mod raw_aes;
pub mod raw_rsa;

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
