//! ECDSA message signatures (suites 0x0214, 0x0346, 0x0378, 0x0578).
//!
//! The verification key travels in the encryption context as base64 of the
//! SEC1 *compressed* point; the signature is DER `ECDSA-Sig-Value` over the
//! header and body bytes.

use aws_lc_rs::encoding::{AsBigEndian, EcPublicKeyCompressedBin};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    EcdsaKeyPair, KeyPair, ParsedPublicKey, UnparsedPublicKey, ECDSA_P256_SHA256_ASN1,
    ECDSA_P256_SHA256_ASN1_SIGNING, ECDSA_P384_SHA384_ASN1, ECDSA_P384_SHA384_ASN1_SIGNING,
};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use super::error::{AuthenticationError, ContextError, Error};
use super::p384;
use super::suite::SignatureCurve;

/// A per-message signing key (the ESDK generates one per message or per cached materials).
pub struct SigningKey {
    curve: SignatureCurve,
    pair: EcdsaKeyPair,
}

impl SigningKey {
    pub fn generate(curve: SignatureCurve) -> Result<Self, Error> {
        let alg = match curve {
            SignatureCurve::P256 => &ECDSA_P256_SHA256_ASN1_SIGNING,
            SignatureCurve::P384 => &ECDSA_P384_SHA384_ASN1_SIGNING,
        };
        let pair =
            EcdsaKeyPair::generate(alg).map_err(|_| Error::Crypto("ECDSA key generation"))?;
        Ok(SigningKey { curve, pair })
    }

    /// Base64 of the compressed public point, the value of `aws-crypto-public-key`.
    pub fn public_key_base64(&self) -> Result<String, Error> {
        let compressed: EcPublicKeyCompressedBin<'_> = self
            .pair
            .public_key()
            .as_be_bytes()
            .map_err(|_| Error::Crypto("ECDSA public key encoding"))?;
        Ok(STANDARD.encode(compressed.as_ref()))
    }

    /// Signs `message`, returning a DER signature of the static length the
    /// reference ESDKs emit (negating `s` when needed, as they do).
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, Error> {
        let rng = SystemRandom::new();
        let want = self.curve.static_signature_len();
        for _ in 0..32 {
            let sig = self
                .pair
                .sign(&rng, message)
                .map_err(|_| Error::Crypto("ECDSA sign"))?;
            let der = sig.as_ref();
            if der.len() == want {
                return Ok(der.to_vec());
            }
            if let Some(fixed) = negate_s(der, group_order(self.curve)) {
                if fixed.len() == want {
                    return Ok(fixed);
                }
            }
        }
        Err(Error::Crypto(
            "could not produce a signature of the standard length",
        ))
    }
}

/// A parsed verification key, taken from the encryption context.
pub struct VerificationKey {
    key: ParsedPublicKey,
}

impl VerificationKey {
    pub fn from_base64(curve: SignatureCurve, value: &str) -> Result<Self, Error> {
        let bytes = STANDARD
            .decode(value)
            .map_err(|_| ContextError::InvalidVerificationKey)?;
        let expected_len = match curve {
            SignatureCurve::P256 => 33,
            SignatureCurve::P384 => p384::COMPRESSED_LEN,
        };
        if bytes.len() != expected_len || !(bytes[0] == 0x02 || bytes[0] == 0x03) {
            return Err(ContextError::InvalidVerificationKey.into());
        }
        let parsed = match curve {
            SignatureCurve::P256 => UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, &bytes).parse(),
            // aws-lc decompresses P-384 points in generic bignum code; see `p384`.
            SignatureCurve::P384 => {
                let compressed = bytes.as_slice().try_into().ok();
                let point = compressed
                    .and_then(p384::decompress)
                    .ok_or(ContextError::InvalidVerificationKey)?;
                UnparsedPublicKey::new(&ECDSA_P384_SHA384_ASN1, point).parse()
            }
        };
        let key = parsed.map_err(|_| ContextError::InvalidVerificationKey)?;
        Ok(VerificationKey { key })
    }

    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), Error> {
        self.key
            .verify_sig(message, signature)
            .map_err(|_| AuthenticationError::Signature.into())
    }
}

fn group_order(curve: SignatureCurve) -> &'static [u8] {
    const P256_N: [u8; 32] = [
        0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x00, 0x00, 0x00, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
        0xFF, 0xBC, 0xE6, 0xFA, 0xAD, 0xA7, 0x17, 0x9E, 0x84, 0xF3, 0xB9, 0xCA, 0xC2, 0xFC, 0x63,
        0x25, 0x51,
    ];
    const P384_N: [u8; 48] = [
        0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
        0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xC7, 0x63, 0x4D, 0x81, 0xF4, 0x37,
        0x2D, 0xDF, 0x58, 0x1A, 0x0D, 0xB2, 0x48, 0xB0, 0xA7, 0x7A, 0xEC, 0xEC, 0x19, 0x6A, 0xCC,
        0xC5, 0x29, 0x73,
    ];
    match curve {
        SignatureCurve::P256 => &P256_N,
        SignatureCurve::P384 => &P384_N,
    }
}

/// Reads one DER INTEGER; returns (value without leading zeros, rest).
fn der_integer(input: &[u8]) -> Option<(&[u8], &[u8])> {
    if input.len() < 2 || input[0] != 0x02 {
        return None;
    }
    let len = input[1] as usize;
    if len >= 0x80 || input.len() < 2 + len {
        return None;
    }
    let mut v = &input[2..2 + len];
    while v.len() > 1 && v[0] == 0 {
        v = &v[1..];
    }
    Some((v, &input[2 + len..]))
}

fn push_der_integer(out: &mut Vec<u8>, v: &[u8]) {
    let mut v = v;
    while v.len() > 1 && v[0] == 0 {
        v = &v[1..];
    }
    let pad = v.first().is_some_and(|b| b & 0x80 != 0);
    out.push(0x02);
    out.push((v.len() + pad as usize) as u8);
    if pad {
        out.push(0);
    }
    out.extend_from_slice(v);
}

/// (r, s) → (r, n − s): an equally valid signature whose `s` has the other top bit.
fn negate_s(der: &[u8], order: &[u8]) -> Option<Vec<u8>> {
    if der.len() < 2 || der[0] != 0x30 || der[1] as usize != der.len() - 2 {
        return None;
    }
    let (r, rest) = der_integer(&der[2..])?;
    let (s, rest) = der_integer(rest)?;
    if !rest.is_empty() || s.len() > order.len() {
        return None;
    }
    // n - s, big-endian, same width as n.
    let mut s_full = vec![0u8; order.len()];
    s_full[order.len() - s.len()..].copy_from_slice(s);
    let mut diff = vec![0u8; order.len()];
    let mut borrow = 0i16;
    for i in (0..order.len()).rev() {
        let mut d = order[i] as i16 - s_full[i] as i16 - borrow;
        borrow = if d < 0 {
            d += 256;
            1
        } else {
            0
        };
        diff[i] = d as u8;
    }
    if borrow != 0 {
        return None;
    }
    let mut body = Vec::with_capacity(der.len());
    push_der_integer(&mut body, r);
    push_der_integer(&mut body, &diff);
    let mut out = Vec::with_capacity(body.len() + 2);
    out.push(0x30);
    out.push(body.len() as u8);
    out.extend_from_slice(&body);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_have_static_length_and_verify() {
        for curve in [SignatureCurve::P256, SignatureCurve::P384] {
            let key = SigningKey::generate(curve).unwrap();
            let vk =
                VerificationKey::from_base64(curve, &key.public_key_base64().unwrap()).unwrap();
            for i in 0..20u8 {
                let msg = [i; 40];
                let sig = key.sign(&msg).unwrap();
                assert_eq!(sig.len(), curve.static_signature_len());
                vk.verify(&msg, &sig).unwrap();
                assert!(vk.verify(&[i ^ 1; 40], &sig).is_err());
            }
        }
    }

    #[test]
    fn negated_signature_still_verifies() {
        let curve = SignatureCurve::P384;
        let key = SigningKey::generate(curve).unwrap();
        let vk = VerificationKey::from_base64(curve, &key.public_key_base64().unwrap()).unwrap();
        let rng = SystemRandom::new();
        let sig = key.pair.sign(&rng, b"hello").unwrap();
        let neg = negate_s(sig.as_ref(), group_order(curve)).unwrap();
        assert_ne!(neg, sig.as_ref());
        vk.verify(b"hello", &neg).unwrap();
    }

    #[test]
    fn rejects_bad_keys() {
        assert!(VerificationKey::from_base64(SignatureCurve::P384, "not base64!").is_err());
        assert!(
            VerificationKey::from_base64(SignatureCurve::P384, &STANDARD.encode([2u8; 49]))
                .is_err()
        );
        assert!(
            VerificationKey::from_base64(SignatureCurve::P256, &STANDARD.encode([4u8; 65]))
                .is_err()
        );
    }
}
