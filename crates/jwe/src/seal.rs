//! Sealing: one fresh CEK and IV per message, the CEK encrypted for every
//! recipient, the plaintext encrypted once with A256GCM.

use std::borrow::Borrow;
use std::collections::BTreeMap;

use aws_lc_rs::aead::{Aad, RandomizedNonceKey, AES_256_GCM};
use aws_lc_rs::agreement::{self, EphemeralPrivateKey};
use aws_lc_rs::key_wrap::{AesKek, KeyWrap, AES_256};
use aws_lc_rs::rand::{self, SystemRandom};
use aws_lc_rs::rsa::{OaepPublicEncryptingKey, OAEP_SHA256_MGF1SHA256};
use zeroize::Zeroizing;

use crate::error::SealError;
use crate::json::{b64_len, push_b64, push_member, push_object, push_str};
use crate::keys::{Algorithm, Curve, PublicKey, Recipient};
use crate::{kdf, CONTEXT_HEADER, ENC};

/// Length of the CEK (A256GCM) and of a key wrapped with AES-KW.
pub(crate) const CEK_LEN: usize = 32;
pub(crate) const WRAPPED_CEK_LEN: usize = CEK_LEN + 8;

/// Which JWE serialization [`seal`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Serialization {
    /// The compact serialization (RFC 7516 §7.1): one recipient, every
    /// header parameter protected.
    Compact,
    /// The general JSON serialization (RFC 7516 §7.2.1): any number of
    /// recipients, each with its own unprotected `header`.
    Json,
}

/// What [`seal`] writes besides the recipients' keys.
#[derive(Debug, Clone, Copy, Default)]
pub struct SealOptions<'a> {
    /// `None`: compact for one recipient, JSON for several.
    pub serialization: Option<Serialization>,
    /// The `cty` header parameter, when set.
    pub content_type: Option<&'a str>,
    /// The encryption context, written to the protected header as the
    /// `reseal_context` member (a JSON object of strings, keys in byte
    /// order). `None` leaves the member out; an empty map writes `{}`.
    pub context: Option<&'a BTreeMap<String, String>>,
}

/// A recipient's share: its CEK encryption and, for ECDH-ES, the ephemeral
/// public key (curve and uncompressed point).
struct Share {
    encrypted_key: Vec<u8>,
    epk: Option<(Curve, Vec<u8>)>,
}

fn crypto(step: &'static str) -> impl Fn(aws_lc_rs::error::Unspecified) -> SealError {
    move |_| SealError::Crypto { step }
}

fn wrap(kek: &[u8], cek: &[u8; CEK_LEN]) -> Result<Vec<u8>, SealError> {
    let kek = AesKek::new(&AES_256, kek).map_err(crypto("AES key wrap"))?;
    let mut out = vec![0u8; WRAPPED_CEK_LEN];
    let len = kek
        .wrap(cek, &mut out)
        .map_err(crypto("AES key wrap"))?
        .len();
    out.truncate(len);
    Ok(out)
}

fn share(recipient: &Recipient, cek: &[u8; CEK_LEN]) -> Result<Share, SealError> {
    match &recipient.key {
        PublicKey::Rsa(key) => {
            let key = OaepPublicEncryptingKey::new(key.clone()).map_err(crypto("RSA-OAEP"))?;
            let mut out = vec![0u8; key.ciphertext_size()];
            let len = key
                .encrypt(&OAEP_SHA256_MGF1SHA256, cek, &mut out, None)
                .map_err(crypto("RSA-OAEP"))?
                .len();
            out.truncate(len);
            Ok(Share {
                encrypted_key: out,
                epk: None,
            })
        }
        PublicKey::Ec(curve, peer) => {
            let ephemeral = EphemeralPrivateKey::generate(curve.agreement(), &SystemRandom::new())
                .map_err(crypto("ephemeral key generation"))?;
            let public = ephemeral
                .compute_public_key()
                .map_err(crypto("ephemeral key generation"))?;
            let point = public.as_ref();
            if point.len() != 1 + 2 * curve.coordinate_len() || point.first() != Some(&0x04) {
                return Err(SealError::Crypto {
                    step: "ephemeral key encoding",
                });
            }
            let point = point.to_vec();
            let kek = agreement::agree_ephemeral(
                ephemeral,
                peer.clone(),
                SealError::Crypto {
                    step: "key agreement",
                },
                |z| {
                    kdf::concat_kdf(z, Algorithm::EcdhEsA256Kw.name().as_bytes(), &[], &[], 32)
                        .ok_or(SealError::Crypto { step: "Concat KDF" })
                },
            )?;
            Ok(Share {
                encrypted_key: wrap(&kek, cek)?,
                epk: Some((*curve, point)),
            })
        }
        PublicKey::Aes(kek) => Ok(Share {
            encrypted_key: wrap(kek.as_slice(), cek)?,
            epk: None,
        }),
    }
}

/// Appends `,"epk":{"kty":"EC","crv":…,"x":…,"y":…}` (RFC 7518 §6.2.1: the
/// only members a JWE `epk` needs, in this order).
fn push_epk(out: &mut Vec<u8>, curve: Curve, point: &[u8]) -> Result<(), SealError> {
    let xy = point.get(1..).unwrap_or_default();
    let (x, y) = xy.split_at(xy.len() / 2);
    out.extend_from_slice(b",\"epk\":{\"kty\":\"EC\",");
    push_member(out, true, "crv", curve.name());
    out.extend_from_slice(b",\"x\":\"");
    push_b64(out, x)?;
    out.extend_from_slice(b"\",\"y\":\"");
    push_b64(out, y)?;
    out.extend_from_slice(b"\"}");
    Ok(())
}

/// Appends the members every message's protected header ends with, and the
/// closing brace: `cty` (when set), `reseal_context` (when given).
fn push_shared_tail(out: &mut Vec<u8>, options: &SealOptions<'_>) {
    if let Some(cty) = options.content_type {
        push_member(out, false, "cty", cty);
    }
    if let Some(context) = options.context {
        out.push(b',');
        push_str(out, CONTEXT_HEADER);
        out.push(b':');
        push_object(out, context);
    }
    out.push(b'}');
}

/// Seals `plaintext` for every recipient: a JWE in the compact
/// serialization (ASCII) or the general JSON serialization (ASCII JSON).
///
/// Content encryption is A256GCM with a fresh random CEK and 96-bit IV; the
/// AAD is the ASCII base64url of the protected header (RFC 7516 §5.1). The
/// header layout is described in the [crate documentation](crate).
/// `recipients` may be owned or borrowed (`&[Recipient]`, `&[&Recipient]`).
///
/// # Errors
/// [`SealError::NoRecipients`], [`SealError::CompactNeedsOneRecipient`],
/// [`SealError::DuplicateKid`], [`SealError::EmptyContentType`]; `Crypto`
/// only if aws-lc fails.
pub fn seal<R: Borrow<Recipient>>(
    plaintext: &[u8],
    recipients: &[R],
    options: &SealOptions<'_>,
) -> Result<Vec<u8>, SealError> {
    let serialization = match (options.serialization, recipients.len()) {
        (_, 0) => return Err(SealError::NoRecipients),
        (Some(Serialization::Compact), count @ 2..) => {
            return Err(SealError::CompactNeedsOneRecipient { count })
        }
        (Some(s), _) => s,
        (None, 1) => Serialization::Compact,
        (None, _) => Serialization::Json,
    };
    // Few recipients (a consumer's keys mid-rotation): pairwise is cheapest.
    for (i, r) in recipients.iter().enumerate() {
        let kid = &r.borrow().kid;
        if recipients[..i].iter().any(|o| o.borrow().kid == *kid) {
            return Err(SealError::DuplicateKid { kid: kid.clone() });
        }
    }
    if options.content_type == Some("") {
        return Err(SealError::EmptyContentType);
    }

    let mut cek = Zeroizing::new([0u8; CEK_LEN]);
    rand::fill(cek.as_mut_slice()).map_err(crypto("random CEK"))?;
    let shares = recipients
        .iter()
        .map(|r| share(r.borrow(), &cek))
        .collect::<Result<Vec<_>, _>>()?;
    let key = RandomizedNonceKey::new(&AES_256_GCM, cek.as_slice()).map_err(crypto("A256GCM"))?;
    let mut body = Zeroizing::new(plaintext.to_vec());

    // The protected header's JSON after what is written once per recipient
    // (compact) or all of it (JSON), and room for the whole output. The
    // sizes are estimates (an `epk` is under 300 bytes; IV, tag, separators
    // and member names under 48 compact, 96 JSON): short only costs a
    // reallocation.
    let mut header = Vec::with_capacity(256);
    let keys_len: usize = shares
        .iter()
        .map(|s| b64_len(s.encrypted_key.len()) + if s.epk.is_some() { 300 } else { 0 })
        .sum();
    let body_len = b64_len(plaintext.len());
    let mut out = Vec::new();
    match serialization {
        Serialization::Compact => {
            let (r, s) = recipients
                .first()
                .map(Borrow::borrow)
                .zip(shares.first())
                .ok_or(SealError::NoRecipients)?;
            header.extend_from_slice(&r.heads.compact_rest);
            if let Some((curve, point)) = &s.epk {
                push_epk(&mut header, *curve, point)?;
            }
            push_shared_tail(&mut header, options);
            out.reserve_exact(
                r.heads.compact_b64.len() + b64_len(header.len()) + keys_len + body_len + 48,
            );
            out.extend_from_slice(&r.heads.compact_b64);
            push_b64(&mut out, &header)?;
            let (nonce, tag) = key
                .seal_in_place_separate_tag(Aad::from(&out[..]), &mut body)
                .map_err(crypto("A256GCM"))?;
            out.push(b'.');
            push_b64(&mut out, &s.encrypted_key)?;
            out.push(b'.');
            push_b64(&mut out, nonce.as_ref())?;
            out.push(b'.');
            push_b64(&mut out, &body)?;
            out.push(b'.');
            push_b64(&mut out, tag.as_ref())?;
        }
        Serialization::Json => {
            // One `alg` for every recipient (the usual rotation, one key
            // type) goes to the protected header, so it is authenticated and
            // libraries that read `alg` from the shared header alone
            // (authlib) open it; mixed algorithms stay per recipient.
            let first_alg = recipients.first().map(|r| r.borrow().alg());
            let shared_alg =
                first_alg.filter(|alg| recipients.iter().all(|r| r.borrow().alg() == *alg));
            header.push(b'{');
            if let Some(alg) = shared_alg {
                push_member(&mut header, true, "alg", alg.name());
            }
            push_member(&mut header, shared_alg.is_none(), "enc", ENC);
            push_shared_tail(&mut header, options);
            let head_len: usize = recipients
                .iter()
                .map(|r| r.borrow().heads.json.len() + 24)
                .sum();
            out.reserve_exact(b64_len(header.len()) + head_len + keys_len + body_len + 96);
            out.extend_from_slice(b"{\"protected\":\"");
            let aad_from = out.len();
            push_b64(&mut out, &header)?;
            let (nonce, tag) = key
                .seal_in_place_separate_tag(Aad::from(&out[aad_from..]), &mut body)
                .map_err(crypto("A256GCM"))?;
            out.extend_from_slice(b"\",\"recipients\":[");
            for (i, (r, s)) in recipients.iter().zip(&shares).enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                let r = r.borrow();
                out.extend_from_slice(b"{\"header\":{");
                if shared_alg.is_none() {
                    push_member(&mut out, true, "alg", r.alg().name());
                    out.push(b',');
                }
                out.extend_from_slice(r.heads.json.get(1..).unwrap_or_default());
                if let Some((curve, point)) = &s.epk {
                    push_epk(&mut out, *curve, point)?;
                }
                out.extend_from_slice(b"},\"encrypted_key\":\"");
                push_b64(&mut out, &s.encrypted_key)?;
                out.extend_from_slice(b"\"}");
            }
            out.extend_from_slice(b"],\"iv\":\"");
            push_b64(&mut out, nonce.as_ref())?;
            out.extend_from_slice(b"\",\"ciphertext\":\"");
            push_b64(&mut out, &body)?;
            out.extend_from_slice(b"\",\"tag\":\"");
            push_b64(&mut out, tag.as_ref())?;
            out.extend_from_slice(b"\"}");
        }
    }
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// RFC 3394 §4.6: 256 bits of key data wrapped with a 256-bit KEK.
    pub(crate) const KEK: [u8; 32] = [
        0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x0E,
        0x0F, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x1A, 0x1B, 0x1C, 0x1D,
        0x1E, 0x1F,
    ];
    pub(crate) const KEY_DATA: [u8; 32] = [
        0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xAA, 0xBB, 0xCC, 0xDD, 0xEE,
        0xFF, 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0A, 0x0B, 0x0C, 0x0D,
        0x0E, 0x0F,
    ];
    pub(crate) const WRAPPED: [u8; 40] = [
        0x28, 0xC9, 0xF4, 0x04, 0xC4, 0xB8, 0x10, 0xF4, 0xCB, 0xCC, 0xB3, 0x5C, 0xFB, 0x87, 0xF8,
        0x26, 0x3F, 0x57, 0x86, 0xE2, 0xD8, 0x0E, 0xD3, 0x26, 0xCB, 0xC7, 0xF0, 0xE7, 0x1A, 0x99,
        0xF4, 0x3B, 0xFB, 0x98, 0x8B, 0x9B, 0x7A, 0x02, 0xDD, 0x21,
    ];

    #[test]
    fn rfc3394_4_6_wrap() {
        assert_eq!(wrap(&KEK, &KEY_DATA).unwrap(), WRAPPED);
    }
}
