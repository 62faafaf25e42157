//! Amazon Connect's "encrypted customer input", as Connect writes it: an ESDK
//! message in suite 0x0378 (AES-256-GCM, HKDF-SHA384, ECDSA P-384, not
//! committed), frame length 4096, the data key wrapped with RSA-OAEP
//! (SHA-512, MGF1-SHA-512) under provider id `AmazonConnect` and the Connect
//! key id as key name. The defaults of `raw-rsa` and `ssm-discovery` sources
//! come from here, and so do the demo's, the tests' and the benchmarks' inputs.

use crate::esdk::{self, AlgorithmSuite, EncryptCommitment, EncryptOptions, EncryptionContext};
use crate::keys::{RawRsaKeyring, RsaPadding};

/// The EDK provider id Connect writes.
pub const PROVIDER_ID: &str = "AmazonConnect";
/// The RSA padding Connect wraps data keys with.
pub const PADDING: RsaPadding = RsaPadding::OaepSha512;
/// The suite Connect encrypts in.
pub const SUITE: AlgorithmSuite = AlgorithmSuite::Aes256GcmIv12Tag16HkdfSha384EcdsaP384;
/// The frame length Connect uses.
pub const FRAME_LENGTH: u32 = 4096;

/// A message shaped exactly as Connect emits it, for `sender` (a keyring
/// holding the public half of the Connect key pair), with an empty context.
pub fn encrypt(sender: &RawRsaKeyring, plaintext: &[u8]) -> Result<Vec<u8>, esdk::Error> {
    esdk::encrypt(
        plaintext,
        &[sender],
        &EncryptionContext::new(),
        &EncryptOptions {
            suite: SUITE,
            frame_length: FRAME_LENGTH,
            commitment: EncryptCommitment::Forbid,
            ..Default::default()
        },
    )
}
