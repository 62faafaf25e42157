//! Opening: find the recipients a key is for, recover the CEK, decrypt.

use core::fmt;
use std::collections::BTreeMap;

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use aws_lc_rs::agreement::{self, UnparsedPublicKey};
use aws_lc_rs::key_wrap::{AesKek, KeyWrap, AES_256};
use aws_lc_rs::rand;
use aws_lc_rs::rsa::OAEP_SHA256_MGF1SHA256;
use serde_json::{Map, Value};
use zeroize::Zeroizing;

use crate::error::OpenError;
use crate::keys::{Algorithm, DecryptionKey, KeyInfo, PrivateKey};
use crate::parse::{context_of, parse, Jwe, JweRecipient};
use crate::seal::CEK_LEN;
use crate::{kdf, CONTEXT_HEADER};

/// What [`open`] recovered.
///
/// `Debug` shows the plaintext's length, never its bytes.
pub struct Opened {
    /// The plaintext, zeroized on drop.
    pub plaintext: Zeroizing<Vec<u8>>,
    /// The protected header (every member integrity protected).
    pub protected: Map<String, Value>,
    /// The algorithm of the recipient that opened.
    pub alg: Algorithm,
    /// That recipient's `kid`, when it has one.
    pub kid: Option<String>,
    /// That recipient's position in the JWE (0 in the compact serialization).
    pub recipient_index: usize,
}

impl Opened {
    /// The `reseal_context` member of the protected header, when present.
    #[must_use]
    pub fn context(&self) -> Option<BTreeMap<String, String>> {
        context_of(&self.protected)
    }

    /// The protected `cty`, when present.
    #[must_use]
    pub fn content_type(&self) -> Option<&str> {
        self.protected.get("cty").and_then(Value::as_str)
    }
}

impl fmt::Debug for Opened {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Opened")
            .field("plaintext_len", &self.plaintext.len())
            .field("alg", &self.alg.name())
            .field("kid", &self.kid)
            .field("recipient_index", &self.recipient_index)
            .field(CONTEXT_HEADER, &self.context())
            .finish_non_exhaustive()
    }
}

/// Whether `key` is for `recipient`, from public values only: the algorithm,
/// the curve of the ephemeral key, and the key's `kid` and `x5t#S256` when
/// the key has them.
fn matches(key: &DecryptionKey, recipient: &JweRecipient) -> bool {
    if recipient.alg() != key.alg() {
        return false;
    }
    if let (KeyInfo::Ec { curve }, Some(epk)) = (key.info, &recipient.epk) {
        if epk.curve != curve {
            return false;
        }
    }
    if key.kid.is_some() && key.kid.as_deref() != recipient.kid() {
        return false;
    }
    if key.x5t_s256.is_some() && key.x5t_s256.as_deref() != recipient.x5t_s256() {
        return false;
    }
    true
}

fn exact_cek(bytes: &[u8]) -> Option<Zeroizing<[u8; CEK_LEN]>> {
    if bytes.len() != CEK_LEN {
        return None;
    }
    let mut cek = Zeroizing::new([0u8; CEK_LEN]);
    cek.copy_from_slice(bytes);
    Some(cek)
}

fn unwrap_aes(kek: &[u8], wrapped: &[u8]) -> Option<Zeroizing<[u8; CEK_LEN]>> {
    let kek = AesKek::new(&AES_256, kek).ok()?;
    let mut out = Zeroizing::new([0u8; CEK_LEN + 8]);
    let len = kek.unwrap(wrapped, out.as_mut_slice()).ok()?.len();
    exact_cek(&out[..len])
}

/// The CEK as the recipient's key management recovers it, or `None`.
fn recover_cek(key: &DecryptionKey, recipient: &JweRecipient) -> Option<Zeroizing<[u8; CEK_LEN]>> {
    match &key.key {
        PrivateKey::Rsa(rsa) => {
            let mut out = Zeroizing::new(vec![0u8; rsa.min_output_size()]);
            let len = rsa
                .decrypt(
                    &OAEP_SHA256_MGF1SHA256,
                    &recipient.encrypted_key,
                    &mut out,
                    None,
                )
                .ok()?
                .len();
            exact_cek(&out[..len])
        }
        PrivateKey::Ec(curve, private) => {
            let epk = recipient.epk.as_ref()?;
            let peer = UnparsedPublicKey::new(curve.agreement(), epk.point.as_slice());
            let kek = agreement::agree(private, peer, (), |z| {
                kdf::concat_kdf(
                    z,
                    Algorithm::EcdhEsA256Kw.name().as_bytes(),
                    &recipient.apu,
                    &recipient.apv,
                    32,
                )
                .ok_or(())
            })
            .ok()?;
            unwrap_aes(&kek, &recipient.encrypted_key)
        }
        PrivateKey::Aes(kek) => unwrap_aes(kek.as_slice(), &recipient.encrypted_key),
    }
}

/// Opens a parsed JWE with `key`.
///
/// Every recipient the key [matches](DecryptionKey) is tried in order. If
/// key management fails for one (a wrong key, a changed encrypted key or
/// `epk`), decryption goes on with a random CEK, as RFC 7516 §11.5
/// recommends, so a failure takes the same path whatever step caused it and
/// ends in the same [`OpenError::Decryption`].
///
/// # Errors
/// [`OpenError::NoMatchingRecipient`] when no recipient is for this key;
/// [`OpenError::Decryption`] when none of those opens.
pub fn open(jwe: &Jwe, key: &DecryptionKey) -> Result<Opened, OpenError> {
    let mut aad = jwe.protected_b64.clone().into_bytes();
    if let Some(extra) = &jwe.aad_b64 {
        aad.push(b'.');
        aad.extend_from_slice(extra.as_bytes());
    }
    let mut any = false;
    for (index, recipient) in jwe.recipients().iter().enumerate() {
        if !matches(key, recipient) {
            continue;
        }
        any = true;
        let cek = match recover_cek(key, recipient) {
            Some(cek) => cek,
            None => {
                let mut random = Zeroizing::new([0u8; CEK_LEN]);
                rand::fill(random.as_mut_slice()).map_err(|_| OpenError::Decryption)?;
                random
            }
        };
        if let Some(plaintext) = decrypt(&cek, jwe, &aad) {
            return Ok(Opened {
                plaintext,
                protected: jwe.protected_header().clone(),
                alg: recipient.alg(),
                kid: recipient.kid().map(str::to_owned),
                recipient_index: index,
            });
        }
    }
    if any {
        Err(OpenError::Decryption)
    } else {
        Err(OpenError::NoMatchingRecipient)
    }
}

fn decrypt(cek: &[u8; CEK_LEN], jwe: &Jwe, aad: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, cek).ok()?);
    let mut buffer = Zeroizing::new(Vec::with_capacity(jwe.ciphertext.len() + jwe.tag.len()));
    buffer.extend_from_slice(&jwe.ciphertext);
    buffer.extend_from_slice(&jwe.tag);
    let nonce = Nonce::assume_unique_for_key(jwe.iv);
    let len = key
        .open_in_place(nonce, Aad::from(aad), buffer.as_mut_slice())
        .ok()?
        .len();
    buffer.truncate(len);
    Some(buffer)
}

/// [`parse`]s (default limits) then [`open`]s.
///
/// # Errors
/// [`OpenError::Format`] for input [`parse`] refuses, otherwise as [`open`].
pub fn open_bytes(bytes: &[u8], key: &DecryptionKey) -> Result<Opened, OpenError> {
    open(&parse(bytes)?, key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seal::tests::{KEK, KEY_DATA, WRAPPED};

    #[test]
    fn rfc3394_4_6_unwrap() {
        assert_eq!(unwrap_aes(&KEK, &WRAPPED).unwrap().as_slice(), KEY_DATA);
        let mut bad = WRAPPED;
        bad[0] ^= 1;
        assert!(unwrap_aes(&KEK, &bad).is_none());
        assert!(unwrap_aes(&KEK, &WRAPPED[..32]).is_none());
    }
}
