//! JWE recipients from the key material operators hand us: PEM public keys
//! (RSA or EC), X.509 certificates (RSA or EC), 32-byte AES keys. The JWE
//! format itself (algorithms, headers, sizes accepted) is the `reseal-jwe`
//! crate's; this module only turns PEM and certificates into its
//! [`Recipient`]s, with the key id as `kid`.

use std::fmt;

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der, PublicKeyX509Der};
use zeroize::Zeroizing;

use super::cert::{self, CertificateInfo};
use super::{pem, KeyError};
use crate::jwe::{self, Curve, DecryptionKey, KeyInfo, Recipient};

/// The kind of public key a configured key type takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublicKind {
    /// RSA, sealed to with RSA-OAEP-256.
    Rsa,
    /// EC P-256 or P-384, sealed to with ECDH-ES+A256KW.
    Ec,
}

impl PublicKind {
    fn accepts(self, info: KeyInfo) -> bool {
        matches!(
            (self, info),
            (PublicKind::Rsa, KeyInfo::Rsa { .. }) | (PublicKind::Ec, KeyInfo::Ec { .. })
        )
    }
}

impl fmt::Display for PublicKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PublicKind::Rsa => "RSA",
            PublicKind::Ec => "EC",
        })
    }
}

/// Why key material cannot be a JWE recipient. The messages name the key's
/// kind and size, never its bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JweKeyError {
    /// Not PEM, or no usable block in it.
    #[error(transparent)]
    Material(#[from] KeyError),
    /// A key JWE sealing refuses: RSA under 2048 bits, a curve other than
    /// P-256 / P-384, Ed25519, an AES key that is not 32 bytes, ...
    #[error(transparent)]
    Refused(#[from] jwe::KeyError),
    /// A usable key of another kind than the configured type takes.
    #[error("the key is {found}, not {expected}")]
    WrongKind {
        expected: PublicKind,
        found: KeyInfo,
    },
}

/// The DER `SubjectPublicKeyInfo` of a PEM public key (`PUBLIC KEY`, or
/// PKCS#1 `RSA PUBLIC KEY`).
pub fn spki_from_pem(pem_text: &[u8]) -> Result<Vec<u8>, KeyError> {
    let blocks = pem::parse_all(pem_text)?;
    let block = blocks
        .iter()
        .find(|b| b.label == "PUBLIC KEY" || b.label == "RSA PUBLIC KEY")
        .ok_or(KeyError::Pem("no `PUBLIC KEY` or `RSA PUBLIC KEY` block"))?;
    Ok(if block.label == "RSA PUBLIC KEY" {
        pem::pkcs1_public_to_spki(&block.der)
    } else {
        block.der.to_vec()
    })
}

/// A recipient for a DER `SubjectPublicKeyInfo` of the `expected` kind.
pub fn spki_recipient(
    kid: &str,
    spki: &[u8],
    expected: PublicKind,
) -> Result<Recipient, JweKeyError> {
    let info = jwe::inspect_spki(spki)?;
    if !expected.accepts(info) {
        return Err(JweKeyError::WrongKind {
            expected,
            found: info,
        });
    }
    Ok(Recipient::from_spki(kid, spki)?)
}

/// A recipient for a PEM public key of the `expected` kind.
pub fn public_key_recipient(
    kid: &str,
    pem_text: &[u8],
    expected: PublicKind,
) -> Result<Recipient, JweKeyError> {
    spki_recipient(kid, &spki_from_pem(pem_text)?, expected)
}

/// A recipient for the key of a PEM certificate (RSA or EC), with the
/// certificate's `x5t#S256`, and the certificate's validity.
pub fn certificate_recipient(
    kid: &str,
    pem_text: &[u8],
) -> Result<(Recipient, CertificateInfo), JweKeyError> {
    let c = cert::certificate(pem_text)?;
    let recipient = Recipient::from_spki(kid, &c.spki)?.with_x5t_s256(&c.der);
    Ok((recipient, c.info))
}

/// An A256KW recipient for a 32-byte AES key, and the key that opens what is
/// sealed for it (for the self-test).
pub fn aes_recipient(kid: &str, key: &[u8]) -> Result<(Recipient, DecryptionKey), JweKeyError> {
    Ok((
        Recipient::a256kw(kid, key)?,
        DecryptionKey::aes256(key)?.with_kid(kid),
    ))
}

/// Generates an EC key pair on `curve`: (private PKCS#8 PEM, public SPKI PEM).
pub fn generate_ec_pem(curve: Curve) -> Result<(Zeroizing<String>, String), KeyError> {
    let alg = match curve {
        Curve::P256 => &aws_lc_rs::agreement::ECDH_P256,
        Curve::P384 => &aws_lc_rs::agreement::ECDH_P384,
    };
    let failed = |_| KeyError::Invalid("EC key generation failed".into());
    let key = aws_lc_rs::agreement::PrivateKey::generate(alg).map_err(failed)?;
    let der: Pkcs8V1Der<'_> = key.as_der().map_err(failed)?;
    let private = Zeroizing::new(pem::encode("PRIVATE KEY", der.as_ref()));
    let public: PublicKeyX509Der<'_> = key
        .compute_public_key()
        .map_err(failed)?
        .as_der()
        .map_err(failed)?;
    Ok((private, pem::encode("PUBLIC KEY", public.as_ref())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_keys_of_each_kind_and_the_wrong_kind() {
        let (_, ec) = generate_ec_pem(Curve::P384).unwrap();
        let r = public_key_recipient("k", ec.as_bytes(), PublicKind::Ec).unwrap();
        assert_eq!(r.key_info(), KeyInfo::Ec { curve: Curve::P384 });
        assert_eq!(r.kid(), "k");
        let err = public_key_recipient("k", ec.as_bytes(), PublicKind::Rsa).unwrap_err();
        assert_eq!(err.to_string(), "the key is EC P-384, not RSA");
        let (_, rsa) = super::super::raw_rsa::generate_pem(2048).unwrap();
        let r = public_key_recipient("k", rsa.as_bytes(), PublicKind::Rsa).unwrap();
        assert_eq!(r.key_info(), KeyInfo::Rsa { bits: 2048 });
        assert!(public_key_recipient("k", b"junk", PublicKind::Rsa).is_err());
        let err = aes_recipient("k", &[0u8; 16]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "AES key is 16 bytes; A256KW needs exactly 32"
        );
    }
}
