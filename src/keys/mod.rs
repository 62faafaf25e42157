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
    /// A passphrase-protected private key.
    #[error(
        "this key is encrypted (passphrase-protected); reseal needs an unencrypted PKCS#8 key \
         (PEM label `PRIVATE KEY`), kept in a secret store (SSM SecureString, a Kubernetes \
         Secret): convert it with `openssl pkcs8 -topk8 -nocrypt -in KEY.pem -out KEY.pk8.pem`"
    )]
    Encrypted,
    #[error("{0}")]
    Invalid(String),
}

/// Tells two keys apart without revealing them: SHA-256 of an RSA public
/// key's SubjectPublicKeyInfo, or of a secret key's bytes under a domain
/// label. Only compared (a source and a consumer sharing material), never shown.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    pub fn of_secret(bytes: &[u8]) -> Self {
        let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
        ctx.update(b"reseal key fingerprint: secret\0");
        ctx.update(bytes);
        Self::from_digest(ctx.finish())
    }

    pub fn of_public_key(key: &aws_lc_rs::rsa::PublicEncryptingKey) -> Option<Self> {
        use aws_lc_rs::encoding::{AsDer, PublicKeyX509Der};
        let der: PublicKeyX509Der<'_> = key.as_der().ok()?;
        let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
        ctx.update(b"reseal key fingerprint: rsa spki\0");
        ctx.update(der.as_ref());
        Some(Self::from_digest(ctx.finish()))
    }

    fn from_digest(d: aws_lc_rs::digest::Digest) -> Self {
        let mut out = [0u8; 32];
        out.copy_from_slice(d.as_ref());
        Fingerprint(out)
    }
}

impl std::fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Fingerprint(..)")
    }
}
