//! Key derivation, key commitment and the AES-GCM calls, all through aws-lc-rs.

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_128_GCM, AES_192_GCM, AES_256_GCM};
use aws_lc_rs::hmac;
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

fn hmac_alg(hash: KdfHash) -> hmac::Algorithm {
    match hash {
        KdfHash::Sha256 => hmac::HMAC_SHA256,
        KdfHash::Sha384 => hmac::HMAC_SHA384,
        KdfHash::Sha512 => hmac::HMAC_SHA512,
    }
}

/// Largest HMAC output (SHA-512) and largest HKDF `info` the ESDK uses
/// (suite id ‖ a v1 message id, or suite id ‖ "DERIVEKEY"), plus the counter byte.
const MAX_HASH_LEN: usize = 64;
const MAX_INFO_LEN: usize = 64;

/// HKDF (RFC 5869) for outputs of at most one hash length, which is every key and
/// commitment the ESDK derives: PRK = HMAC(salt, IKM), then OKM = HMAC(PRK, info ‖ 0x01)
/// cut to length, with the PRK's HMAC key set up once for all expansions.
///
/// Why not `aws_lc_rs::hkdf`: its `Salt::extract` keeps the secret and runs the whole
/// HKDF, extract included, inside every `expand`, so a committing suite (key and
/// commitment) paid for two extracts and four HMAC key set-ups per message. Every
/// intermediate here sits in a buffer that is wiped when dropped.
struct Hkdf {
    prk: hmac::Key,
    hash_len: usize,
}

impl Hkdf {
    fn extract(hash: KdfHash, salt: &[u8], ikm: &[u8]) -> Result<Self, Error> {
        let alg = hmac_alg(hash);
        let mut prk = Zeroizing::new([0u8; MAX_HASH_LEN]);
        let prk = hmac::sign_to_buffer(&hmac::Key::new(alg, salt), ikm, &mut prk[..])
            .map_err(|_| Error::Crypto("HKDF extract"))?;
        Ok(Self {
            prk: hmac::Key::new(alg, prk),
            hash_len: hash.output_len(),
        })
    }

    /// Fills `out` (at most one hash length) with the expansion of `info` (its parts concatenated).
    fn expand_into(&self, info: &[&[u8]], out: &mut [u8]) -> Result<(), Error> {
        let info_len: usize = info.iter().map(|part| part.len()).sum();
        if out.len() > self.hash_len || info_len >= MAX_INFO_LEN {
            return Err(Error::Crypto("HKDF expand length"));
        }
        let mut block = [0u8; MAX_INFO_LEN];
        let mut at = 0;
        for part in info {
            block[at..at + part.len()].copy_from_slice(part);
            at += part.len();
        }
        block[at] = 1; // T(1): the first and only block.
        let mut okm = Zeroizing::new([0u8; MAX_HASH_LEN]);
        let okm = hmac::sign_to_buffer(&self.prk, &block[..=at], &mut okm[..])
            .map_err(|_| Error::Crypto("HKDF expand"))?;
        out.copy_from_slice(&okm[..out.len()]);
        Ok(())
    }
}

fn aead_alg(suite: AlgorithmSuite) -> &'static aws_lc_rs::aead::Algorithm {
    match suite.key_len() {
        16 => &AES_128_GCM,
        24 => &AES_192_GCM,
        _ => &AES_256_GCM,
    }
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
    let mut derived = Zeroizing::new([0u8; 32]);
    let (key_bytes, commitment): (&[u8], _) = match suite.kdf() {
        Kdf::Identity => (data_key.as_bytes(), None),
        Kdf::Hkdf(hash) if suite.is_committing() => {
            // v2: salt = message id (256 bits); info = suite id ‖ "DERIVEKEY" / "COMMITKEY".
            let hkdf = Hkdf::extract(hash, message_id, data_key.as_bytes())?;
            let key = &mut derived[..suite.key_len()];
            hkdf.expand_into(&[&suite.id_bytes(), b"DERIVEKEY"], key)?;
            let mut commitment = [0u8; COMMITMENT_LEN];
            hkdf.expand_into(&[b"COMMITKEY"], &mut commitment)?;
            (key, Some(commitment))
        }
        Kdf::Hkdf(hash) => {
            // v1: salt = zeros of the hash length; info = suite id ‖ message id.
            let zeros = [0u8; MAX_HASH_LEN];
            let hkdf = Hkdf::extract(hash, &zeros[..hash.output_len()], data_key.as_bytes())?;
            let key = &mut derived[..suite.key_len()];
            hkdf.expand_into(&[&suite.id_bytes(), message_id], key)?;
            (key, None)
        }
    };
    let unbound =
        UnboundKey::new(aead_alg(suite), key_bytes).map_err(|_| Error::Crypto("AES key"))?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::hkdf;

    struct Len(usize);
    impl hkdf::KeyType for Len {
        fn len(&self) -> usize {
            self.0
        }
    }

    /// The one-block HKDF gives what aws-lc-rs's HKDF gives, for every hash, output
    /// length up to one hash length, and `info` split or whole.
    #[test]
    fn hkdf_matches_aws_lc_rs() {
        let cases = [
            (KdfHash::Sha256, hkdf::HKDF_SHA256),
            (KdfHash::Sha384, hkdf::HKDF_SHA384),
            (KdfHash::Sha512, hkdf::HKDF_SHA512),
        ];
        for (hash, alg) in cases {
            for salt_len in [0usize, 16, 32, hash.output_len()] {
                let salt: Vec<u8> = (0..salt_len as u8).map(|b| b.wrapping_mul(7)).collect();
                let ikm: Vec<u8> = (0..32u8).map(|b| b ^ 0xa5).collect();
                let ours = Hkdf::extract(hash, &salt, &ikm).unwrap();
                let theirs = hkdf::Salt::new(alg, &salt).extract(&ikm);
                for info in [
                    &[][..],
                    &[&b"\x04\x78"[..], b"DERIVEKEY"],
                    &[&[0x01, 0x78][..], &[9u8; 16]],
                ] {
                    for len in [1usize, 16, 24, 32, hash.output_len()] {
                        let mut a = vec![0u8; len];
                        let mut b = vec![0u8; len];
                        ours.expand_into(info, &mut a).unwrap();
                        theirs.expand(info, Len(len)).unwrap().fill(&mut b).unwrap();
                        assert_eq!(a, b, "{hash:?} salt {salt_len} info {info:?} len {len}");
                    }
                }
            }
        }
    }

    /// RFC 5869, test case 1 (SHA-256), cut to one block.
    #[test]
    fn hkdf_rfc5869_case_1() {
        let ikm = [0x0bu8; 22];
        let salt: Vec<u8> = (0x00..=0x0c).collect();
        let info: Vec<u8> = (0xf0..=0xf9).collect();
        let mut okm = [0u8; 32];
        Hkdf::extract(KdfHash::Sha256, &salt, &ikm)
            .unwrap()
            .expand_into(&[&info], &mut okm)
            .unwrap();
        assert_eq!(
            okm[..],
            [
                0x3c, 0xb2, 0x5f, 0x25, 0xfa, 0xac, 0xd5, 0x7a, 0x90, 0x43, 0x4f, 0x64, 0xd0, 0x36,
                0x2f, 0x2a, 0x2d, 0x2d, 0x0a, 0x90, 0xcf, 0x1a, 0x5a, 0x4c, 0x5d, 0xb0, 0x2d, 0x56,
                0xec, 0xc4, 0xc5, 0xbf
            ]
        );
    }

    /// Lengths past one block, or an `info` too long for the block buffer, are errors, not panics.
    #[test]
    fn hkdf_rejects_what_it_cannot_do() {
        let hkdf = Hkdf::extract(KdfHash::Sha256, b"salt", b"ikm").unwrap();
        assert!(hkdf.expand_into(&[], &mut [0u8; 33]).is_err());
        assert!(hkdf.expand_into(&[&[0u8; 64]], &mut [0u8; 16]).is_err());
        assert!(hkdf.expand_into(&[&[0u8; 63]], &mut [0u8; 16]).is_ok());
    }
}
