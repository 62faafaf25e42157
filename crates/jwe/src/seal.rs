//! Sealing: one fresh CEK and IV per message, the CEK encrypted for every
//! recipient, the plaintext encrypted once with A256GCM.

use std::collections::{BTreeMap, BTreeSet};

use aws_lc_rs::aead::{Aad, RandomizedNonceKey, AES_256_GCM};
use aws_lc_rs::agreement::{self, EphemeralPrivateKey};
use aws_lc_rs::key_wrap::{AesKek, KeyWrap, AES_256};
use aws_lc_rs::rand::{self, SystemRandom};
use aws_lc_rs::rsa::{OaepPublicEncryptingKey, OAEP_SHA256_MGF1SHA256};
use serde::Serialize;
use zeroize::Zeroizing;

use crate::error::SealError;
use crate::keys::{Algorithm, Curve, PublicKey, Recipient};
use crate::{b64, kdf, ENC};

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

/// An ephemeral public key as a JWK (RFC 7518 §6.2.1): the only members are
/// those a JWE `epk` needs, in this order.
#[derive(Serialize)]
struct Epk {
    kty: &'static str,
    crv: &'static str,
    x: String,
    y: String,
}

/// Every header parameter this crate writes, in the order it writes them;
/// absent ones are skipped. The same struct serves the compact protected
/// header, the JSON shared protected header and each JSON per-recipient
/// header, so member order never depends on serde_json's map type.
#[derive(Serialize, Default)]
struct Header<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    alg: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    enc: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    kid: Option<&'a str>,
    #[serde(rename = "x5t#S256", skip_serializing_if = "Option::is_none")]
    x5t_s256: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    epk: Option<Epk>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cty: Option<&'a str>,
    #[serde(rename = "reseal_context", skip_serializing_if = "Option::is_none")]
    context: Option<&'a BTreeMap<String, String>>,
}

#[derive(Serialize)]
struct JsonRecipient<'a> {
    header: Header<'a>,
    encrypted_key: String,
}

#[derive(Serialize)]
struct GeneralJson<'a> {
    protected: String,
    recipients: Vec<JsonRecipient<'a>>,
    iv: String,
    ciphertext: String,
    tag: String,
}

/// A recipient's share: its CEK encryption and, for ECDH-ES, the epk.
struct Share {
    encrypted_key: Vec<u8>,
    epk: Option<Epk>,
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
            let epk = epk(*curve, public.as_ref())?;
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
                epk: Some(epk),
            })
        }
        PublicKey::Aes(kek) => Ok(Share {
            encrypted_key: wrap(kek.as_slice(), cek)?,
            epk: None,
        }),
    }
}

fn epk(curve: Curve, point: &[u8]) -> Result<Epk, SealError> {
    let n = curve.coordinate_len();
    match point {
        [0x04, xy @ ..] if xy.len() == 2 * n => Ok(Epk {
            kty: "EC",
            crv: curve.name(),
            x: b64::encode(&xy[..n]),
            y: b64::encode(&xy[n..]),
        }),
        _ => Err(SealError::Crypto {
            step: "ephemeral key encoding",
        }),
    }
}

fn recipient_header(r: &Recipient, epk: Option<Epk>) -> Header<'_> {
    Header {
        alg: Some(r.alg().name()),
        kid: Some(r.kid.as_str()),
        x5t_s256: r.x5t_s256.as_deref(),
        epk,
        ..Header::default()
    }
}

/// serde_json's compact output with every non-ASCII character escaped as
/// `\uXXXX` (UTF-16, lowercase hex, as Python's `json.dumps` writes it).
///
/// Headers are therefore ASCII and byte-identical to
/// `json.dumps(header, ensure_ascii=True, separators=(",", ":"))` of their
/// parsed form. That matters for joserfc, which computes the AAD of a JSON
/// JWE from its own re-encoding of the protected header instead of the
/// received text (RFC 7516 §5.2 step 14 says the received text): with raw
/// UTF-8 in `reseal_context` it could not open our JSON envelopes.
struct AsciiFormatter;

impl serde_json::ser::Formatter for AsciiFormatter {
    fn write_string_fragment<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> std::io::Result<()> {
        if fragment.is_ascii() {
            return writer.write_all(fragment.as_bytes());
        }
        let mut units = [0u16; 2];
        for c in fragment.chars() {
            if c.is_ascii() {
                writer.write_all(&[c as u8])?;
            } else {
                for unit in c.encode_utf16(&mut units) {
                    write!(writer, "\\u{unit:04x}")?;
                }
            }
        }
        Ok(())
    }
}

fn to_json<T: Serialize>(value: &T) -> Result<Vec<u8>, SealError> {
    let mut out = Vec::new();
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, AsciiFormatter);
    value
        .serialize(&mut serializer)
        .map_err(|_| SealError::Crypto {
            step: "JSON encoding",
        })?;
    Ok(out)
}

/// Seals `plaintext` for every recipient: a JWE in the compact
/// serialization (ASCII) or the general JSON serialization (UTF-8 JSON).
///
/// Content encryption is A256GCM with a fresh random CEK and 96-bit IV; the
/// AAD is the ASCII base64url of the protected header (RFC 7516 §5.1). The
/// header layout is described in the [crate documentation](crate).
///
/// # Errors
/// [`SealError::NoRecipients`], [`SealError::CompactNeedsOneRecipient`],
/// [`SealError::DuplicateKid`], [`SealError::EmptyContentType`]; `Crypto`
/// only if aws-lc fails.
pub fn seal(
    plaintext: &[u8],
    recipients: &[Recipient],
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
    let mut kids = BTreeSet::new();
    for r in recipients {
        if !kids.insert(r.kid.as_str()) {
            return Err(SealError::DuplicateKid { kid: r.kid.clone() });
        }
    }
    if options.content_type == Some("") {
        return Err(SealError::EmptyContentType);
    }

    let mut cek = Zeroizing::new([0u8; CEK_LEN]);
    rand::fill(cek.as_mut_slice()).map_err(crypto("random CEK"))?;
    let shares = recipients
        .iter()
        .map(|r| share(r, &cek))
        .collect::<Result<Vec<_>, _>>()?;

    let shared = Header {
        enc: Some(ENC),
        cty: options.content_type,
        context: options.context,
        ..Header::default()
    };

    let mut shares = shares.into_iter();
    let (protected, compact_key, json_recipients) = match serialization {
        Serialization::Compact => {
            let (r, s) = recipients
                .first()
                .zip(shares.next())
                .ok_or(SealError::NoRecipients)?;
            let header = Header {
                enc: shared.enc,
                cty: shared.cty,
                context: shared.context,
                ..recipient_header(r, s.epk)
            };
            (to_json(&header)?, Some(s.encrypted_key), Vec::new())
        }
        Serialization::Json => {
            let list = recipients
                .iter()
                .zip(shares)
                .map(|(r, s)| JsonRecipient {
                    header: recipient_header(r, s.epk),
                    encrypted_key: b64::encode(&s.encrypted_key),
                })
                .collect();
            (to_json(&shared)?, None, list)
        }
    };
    let protected = b64::encode(&protected);

    let key = RandomizedNonceKey::new(&AES_256_GCM, cek.as_slice()).map_err(crypto("A256GCM"))?;
    let mut buffer = Zeroizing::new(plaintext.to_vec());
    let (nonce, tag) = key
        .seal_in_place_separate_tag(Aad::from(protected.as_bytes()), &mut buffer)
        .map_err(crypto("A256GCM"))?;
    let iv = b64::encode(nonce.as_ref());
    let ciphertext = b64::encode(&buffer);
    let tag = b64::encode(tag.as_ref());

    match compact_key {
        Some(encrypted_key) => Ok(format!(
            "{protected}.{}.{iv}.{ciphertext}.{tag}",
            b64::encode(&encrypted_key)
        )
        .into_bytes()),
        None => to_json(&GeneralJson {
            protected,
            recipients: json_recipients,
            iv,
            ciphertext,
            tag,
        }),
    }
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
    fn headers_are_ascii_with_python_style_escapes() {
        let map: BTreeMap<String, String> = [
            ("é".to_owned(), "a\"b\\c\n\u{1}/".to_owned()),
            ("k".to_owned(), "😀 ü".to_owned()),
        ]
        .into();
        let json = String::from_utf8(to_json(&map).unwrap()).unwrap();
        // What Python's json.dumps(..., ensure_ascii=True, separators=(",", ":")) writes.
        assert_eq!(
            json,
            r#"{"k":"\ud83d\ude00 \u00fc","\u00e9":"a\"b\\c\n\u0001/"}"#
        );
        let back: BTreeMap<String, String> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, map);
    }

    #[test]
    fn rfc3394_4_6_wrap() {
        assert_eq!(wrap(&KEK, &KEY_DATA).unwrap(), WRAPPED);
    }
}
