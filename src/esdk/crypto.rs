//! Key derivation, key commitment and the AES-GCM calls, all through aws-lc-rs.

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_128_GCM, AES_192_GCM, AES_256_GCM};
use aws_lc_rs::hkdf;
use zeroize::{Zeroize, Zeroizing};

use super::error::{AuthenticationError, Error};
use super::keyring::DataKey;
use super::suite::{AlgorithmSuite, Kdf, KdfHash, COMMITMENT_LEN, IV_LEN, TAG_LEN};

/// Body AAD content strings (message-body-aad.md).
pub const AAD_FRAME: &[u8] = b"AWSKMSEncryptionClient Frame";
pub const AAD_FINAL_FRAME: &[u8] = b"AWSKMSEncryptionClient Final Frame";
pub const AAD_SINGLE_BLOCK: &[u8] = b"AWSKMSEncryptionClient Single Block";

/// An AES-GCM key ready for use, derived for one message.
pub struct ContentKey {
    key: LessSafeKey,
}

/// Output length marker for aws-lc-rs HKDF expansion.
struct OkmLen(usize);

impl hkdf::KeyType for OkmLen {
    fn len(&self) -> usize {
        self.0
    }
}

fn hkdf_alg(hash: KdfHash) -> hkdf::Algorithm {
    match hash {
        KdfHash::Sha256 => hkdf::HKDF_SHA256,
        KdfHash::Sha384 => hkdf::HKDF_SHA384,
        KdfHash::Sha512 => hkdf::HKDF_SHA512,
    }
}

fn aead_alg(suite: AlgorithmSuite) -> &'static aws_lc_rs::aead::Algorithm {
    match suite.key_len() {
        16 => &AES_128_GCM,
        24 => &AES_192_GCM,
        _ => &AES_256_GCM,
    }
}

fn expand(prk: &hkdf::Prk, info: &[&[u8]], len: usize) -> Result<Zeroizing<Vec<u8>>, Error> {
    let mut out = Zeroizing::new(vec![0u8; len]);
    prk.expand(info, OkmLen(len))
        .and_then(|okm| okm.fill(&mut out))
        .map_err(|_| Error::Crypto("HKDF expand"))?;
    Ok(out)
}

/// Derives the content key and, for committing suites, the commitment value.
pub fn derive_keys(
    suite: AlgorithmSuite,
    data_key: &DataKey,
    message_id: &[u8],
) -> Result<(ContentKey, Option<[u8; COMMITMENT_LEN]>), Error> {
    if data_key.len() != suite.data_key_len() {
        return Err(Error::Crypto("data key length does not match the suite"));
    }
    let (key_bytes, commitment) = match suite.kdf() {
        Kdf::Identity => (Zeroizing::new(data_key.as_bytes().to_vec()), None),
        Kdf::Hkdf(hash) if suite.is_committing() => {
            // v2: salt = message id (256 bits); info = suite id ‖ "DERIVEKEY" / "COMMITKEY".
            let prk = hkdf::Salt::new(hkdf_alg(hash), message_id).extract(data_key.as_bytes());
            let key = expand(&prk, &[&suite.id_bytes(), b"DERIVEKEY"], suite.key_len())?;
            let commit = expand(&prk, &[b"COMMITKEY"], COMMITMENT_LEN)?;
            let mut c = [0u8; COMMITMENT_LEN];
            c.copy_from_slice(&commit);
            (key, Some(c))
        }
        Kdf::Hkdf(hash) => {
            // v1: salt = zeros of the hash length; info = suite id ‖ message id.
            let zeros = [0u8; 64];
            let prk = hkdf::Salt::new(hkdf_alg(hash), &zeros[..hash.output_len()])
                .extract(data_key.as_bytes());
            let key = expand(&prk, &[&suite.id_bytes(), message_id], suite.key_len())?;
            (key, None)
        }
    };
    let unbound =
        UnboundKey::new(aead_alg(suite), &key_bytes).map_err(|_| Error::Crypto("AES key"))?;
    Ok((
        ContentKey {
            key: LessSafeKey::new(unbound),
        },
        commitment,
    ))
}

/// Constant-time comparison of the stored and derived commitment.
pub fn verify_commitment(stored: &[u8], derived: &[u8; COMMITMENT_LEN]) -> Result<(), Error> {
    aws_lc_rs::constant_time::verify_slices_are_equal(stored, derived)
        .map_err(|_| AuthenticationError::Commitment.into())
}

/// The IV for frame/sequence `seq`: the sequence number, big-endian, left-padded with zeros.
pub fn sequence_iv(seq: u32) -> [u8; IV_LEN] {
    let mut iv = [0u8; IV_LEN];
    iv[IV_LEN - 4..].copy_from_slice(&seq.to_be_bytes());
    iv
}

/// Serialized message body AAD: message id ‖ content string ‖ seq (u32) ‖ length (u64).
pub fn body_aad(message_id: &[u8], content: &[u8], seq: u32, len: u64) -> Vec<u8> {
    let mut aad = Vec::with_capacity(message_id.len() + content.len() + 12);
    aad.extend_from_slice(message_id);
    aad.extend_from_slice(content);
    aad.extend_from_slice(&seq.to_be_bytes());
    aad.extend_from_slice(&len.to_be_bytes());
    aad
}

fn nonce(iv: &[u8]) -> Result<Nonce, Error> {
    Nonce::try_assume_unique_for_key(iv).map_err(|_| Error::Crypto("IV length"))
}

impl ContentKey {
    /// Encrypts `in_out` in place and returns the tag.
    pub fn seal(
        &self,
        iv: &[u8; IV_LEN],
        aad: &[u8],
        in_out: &mut [u8],
    ) -> Result<[u8; TAG_LEN], Error> {
        let tag = self
            .key
            .seal_in_place_separate_tag(nonce(iv)?, Aad::from(aad), in_out)
            .map_err(|_| Error::Crypto("AES-GCM seal"))?;
        let mut out = [0u8; TAG_LEN];
        out.copy_from_slice(tag.as_ref());
        Ok(out)
    }

    /// Decrypts `ciphertext` into `out` after checking `tag`. On failure `out`
    /// is wiped, so no unauthenticated plaintext survives.
    pub fn open_into(
        &self,
        iv: &[u8],
        aad: &[u8],
        ciphertext: &[u8],
        tag: &[u8],
        out: &mut [u8],
        on_fail: AuthenticationError,
    ) -> Result<(), Error> {
        let result =
            self.key
                .open_separate_gather(nonce(iv)?, Aad::from(aad), ciphertext, tag, out);
        if result.is_err() {
            out.zeroize();
            return Err(on_fail.into());
        }
        Ok(())
    }
}
