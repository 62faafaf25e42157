//! Recipient (public or symmetric) keys for sealing, decryption keys for
//! opening, and what kind and size a key is.

use core::fmt;

use aws_lc_rs::agreement::{self, ParsedPublicKey, UnparsedPublicKey};
use aws_lc_rs::digest;
use aws_lc_rs::rsa::{OaepPrivateDecryptingKey, PrivateDecryptingKey, PublicEncryptingKey};
use zeroize::Zeroizing;

use crate::b64;
use crate::der;
use crate::error::KeyError;
use crate::json::RecipientHeads;

/// Smallest RSA modulus accepted, in bits.
pub const MIN_RSA_BITS: usize = 2048;
/// Largest RSA modulus accepted, in bits (aws-lc's limit for encryption keys).
pub const MAX_RSA_BITS: usize = 8192;

/// A key management algorithm (the JWE `alg`). Only these three exist here:
/// no RSA1_5, no RSA-OAEP with SHA-1, no `dir`, no 128/192-bit wraps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// `RSA-OAEP-256`: RSAES-OAEP with SHA-256 and MGF1-SHA-256 (RFC 7518 §4.3).
    RsaOaep256,
    /// `ECDH-ES+A256KW`: ephemeral-static ECDH, Concat KDF (SHA-256), then
    /// AES-256 key wrap of the CEK (RFC 7518 §4.6).
    EcdhEsA256Kw,
    /// `A256KW`: AES-256 key wrap (RFC 3394) of the CEK under a shared key
    /// (RFC 7518 §4.4).
    A256Kw,
}

impl Algorithm {
    /// The registered `alg` value.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::RsaOaep256 => "RSA-OAEP-256",
            Self::EcdhEsA256Kw => "ECDH-ES+A256KW",
            Self::A256Kw => "A256KW",
        }
    }

    /// The algorithm with registered `alg` value `name`, if accepted here.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "RSA-OAEP-256" => Some(Self::RsaOaep256),
            "ECDH-ES+A256KW" => Some(Self::EcdhEsA256Kw),
            "A256KW" => Some(Self::A256Kw),
            _ => None,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An elliptic curve accepted for ECDH-ES+A256KW.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Curve {
    /// NIST P-256 (secp256r1).
    P256,
    /// NIST P-384 (secp384r1).
    P384,
}

impl Curve {
    /// The JWK `crv` name ("P-256", "P-384").
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::P256 => "P-256",
            Self::P384 => "P-384",
        }
    }

    /// The curve with JWK `crv` name `name`, if accepted here.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "P-256" => Some(Self::P256),
            "P-384" => Some(Self::P384),
            _ => None,
        }
    }

    /// Length of one coordinate in bytes.
    #[must_use]
    pub fn coordinate_len(self) -> usize {
        match self {
            Self::P256 => 32,
            Self::P384 => 48,
        }
    }

    pub(crate) fn agreement(self) -> &'static agreement::Algorithm {
        match self {
            Self::P256 => &agreement::ECDH_P256,
            Self::P384 => &agreement::ECDH_P384,
        }
    }

    fn from_oid(oid: &[u8]) -> Result<Self, KeyError> {
        match oid {
            der::OID_P256 => Ok(Self::P256),
            der::OID_P384 => Ok(Self::P384),
            other => Err(KeyError::UnsupportedCurve {
                curve: der::curve_name(other),
            }),
        }
    }
}

impl fmt::Display for Curve {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The kind and size of an accepted key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyInfo {
    /// An RSA key (sealed to with RSA-OAEP-256).
    Rsa {
        /// Modulus size in bits.
        bits: usize,
    },
    /// An EC key (sealed to with ECDH-ES+A256KW).
    Ec {
        /// The curve.
        curve: Curve,
    },
    /// A 256-bit AES key (sealed to with A256KW).
    Aes256,
}

impl KeyInfo {
    /// The algorithm used with a key of this kind.
    #[must_use]
    pub fn algorithm(self) -> Algorithm {
        match self {
            Self::Rsa { .. } => Algorithm::RsaOaep256,
            Self::Ec { .. } => Algorithm::EcdhEsA256Kw,
            Self::Aes256 => Algorithm::A256Kw,
        }
    }
}

impl fmt::Display for KeyInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Rsa { bits } => write!(f, "RSA {bits}-bit"),
            Self::Ec { curve } => write!(f, "EC {curve}"),
            Self::Aes256 => f.write_str("AES-256"),
        }
    }
}

/// Classifies a DER `SubjectPublicKeyInfo` (as found in an X.509
/// certificate): RSA with its modulus size, or EC with its curve. Keys this
/// crate will not seal to are refused with the reason, ready to show
/// ("RSA key is 1024 bits; at least 2048 are required", "EC curve P-521 is
/// not supported; use P-256 or P-384", "Ed25519 keys are not supported; ...").
///
/// # Errors
/// [`KeyError`] as described; `Malformed` when the bytes are no SPKI.
pub fn inspect_spki(spki_der: &[u8]) -> Result<KeyInfo, KeyError> {
    const WHAT: &str = "SubjectPublicKeyInfo";
    let spki = der::spki(spki_der).ok_or(KeyError::Malformed { what: WHAT })?;
    classify(spki.algorithm, spki.key, der::rsa_public_modulus_bits, WHAT)
}

fn classify(
    alg: der::AlgorithmId<'_>,
    key: &[u8],
    rsa_bits: fn(&[u8]) -> Option<usize>,
    what: &'static str,
) -> Result<KeyInfo, KeyError> {
    match alg.oid {
        der::OID_RSA_ENCRYPTION => {
            let bits = rsa_bits(key).ok_or(KeyError::Malformed { what })?;
            if bits < MIN_RSA_BITS {
                Err(KeyError::RsaTooSmall { bits })
            } else if bits > MAX_RSA_BITS {
                Err(KeyError::RsaTooLarge { bits })
            } else {
                Ok(KeyInfo::Rsa { bits })
            }
        }
        der::OID_EC_PUBLIC_KEY => {
            let curve_oid = alg.param_oid.ok_or(KeyError::UnsupportedCurve {
                curve: "with explicit parameters".to_owned(),
            })?;
            Ok(KeyInfo::Ec {
                curve: Curve::from_oid(curve_oid)?,
            })
        }
        other => Err(KeyError::UnsupportedKeyType {
            algorithm: der::algorithm_name(other),
        }),
    }
}

/// `x5t#S256` of a certificate: base64url(SHA-256(certificate DER)).
#[must_use]
pub fn x5t_s256(cert_der: &[u8]) -> String {
    b64::encode(digest::digest(&digest::SHA256, cert_der).as_ref())
}

fn check_kid(kid: String) -> Result<String, KeyError> {
    if kid.is_empty() {
        Err(KeyError::EmptyKid)
    } else {
        Ok(kid)
    }
}

fn aes_key(key: &[u8]) -> Result<Zeroizing<[u8; 32]>, KeyError> {
    let mut out = Zeroizing::new([0u8; 32]);
    if key.len() != out.len() {
        return Err(KeyError::AesKeyLength { len: key.len() });
    }
    out.copy_from_slice(key);
    Ok(out)
}

fn wrong_kind(expected: &'static str, found: KeyInfo) -> KeyError {
    KeyError::WrongKeyType {
        expected,
        found: found.to_string(),
    }
}

#[derive(Clone)]
pub(crate) enum PublicKey {
    Rsa(PublicEncryptingKey),
    Ec(Curve, ParsedPublicKey),
    Aes(Zeroizing<[u8; 32]>),
}

/// One recipient of a JWE: a key, its `kid`, and optionally the `x5t#S256`
/// of the certificate it came from. The algorithm follows from the key.
///
/// `Debug` shows the kid, algorithm and key kind, never key bytes.
#[derive(Clone)]
pub struct Recipient {
    pub(crate) kid: String,
    pub(crate) x5t_s256: Option<String>,
    pub(crate) info: KeyInfo,
    pub(crate) key: PublicKey,
    /// Its header members, written once.
    pub(crate) heads: RecipientHeads,
}

impl Recipient {
    fn made(kid: String, info: KeyInfo, key: PublicKey) -> Self {
        Self {
            heads: RecipientHeads::new(info.algorithm().name(), &kid, None),
            kid,
            x5t_s256: None,
            info,
            key,
        }
    }

    /// An RSA recipient (RSA-OAEP-256) from a DER `SubjectPublicKeyInfo`.
    ///
    /// # Errors
    /// [`KeyError::RsaTooSmall`] under 2048 bits, [`KeyError::WrongKeyType`]
    /// for an EC key, other variants for unusable bytes.
    pub fn rsa_oaep_256(kid: impl Into<String>, spki_der: &[u8]) -> Result<Self, KeyError> {
        let kid = check_kid(kid.into())?;
        let info = inspect_spki(spki_der)?;
        let KeyInfo::Rsa { .. } = info else {
            return Err(wrong_kind("RSA", info));
        };
        let key = PublicEncryptingKey::from_der(spki_der).map_err(|_| KeyError::Malformed {
            what: "RSA public key",
        })?;
        Ok(Self::made(kid, info, PublicKey::Rsa(key)))
    }

    /// An EC recipient (ECDH-ES+A256KW) from a DER `SubjectPublicKeyInfo`.
    /// The point is checked to be on the curve.
    ///
    /// # Errors
    /// [`KeyError::UnsupportedCurve`] for curves other than P-256 and P-384,
    /// [`KeyError::WrongKeyType`] for an RSA key, other variants for unusable
    /// bytes.
    pub fn ecdh_es_a256kw(kid: impl Into<String>, spki_der: &[u8]) -> Result<Self, KeyError> {
        let kid = check_kid(kid.into())?;
        let info = inspect_spki(spki_der)?;
        let KeyInfo::Ec { curve } = info else {
            return Err(wrong_kind("EC", info));
        };
        Self::ec(kid, curve, spki_der)
    }

    /// An EC recipient (ECDH-ES+A256KW) from an uncompressed SEC1 point
    /// (`04 || x || y`) on `curve`.
    ///
    /// # Errors
    /// [`KeyError::Malformed`] unless the bytes are an uncompressed point on
    /// the curve.
    pub fn ecdh_es_a256kw_point(
        kid: impl Into<String>,
        curve: Curve,
        uncompressed_point: &[u8],
    ) -> Result<Self, KeyError> {
        let kid = check_kid(kid.into())?;
        if uncompressed_point.len() != 1 + 2 * curve.coordinate_len()
            || uncompressed_point.first() != Some(&0x04)
        {
            return Err(KeyError::Malformed {
                what: "uncompressed EC point",
            });
        }
        Self::ec(kid, curve, uncompressed_point)
    }

    fn ec(kid: String, curve: Curve, bytes: &[u8]) -> Result<Self, KeyError> {
        let key = ParsedPublicKey::try_from(UnparsedPublicKey::new(curve.agreement(), bytes))
            .map_err(|_| KeyError::Malformed {
                what: "EC public key",
            })?;
        Ok(Self::made(
            kid,
            KeyInfo::Ec { curve },
            PublicKey::Ec(curve, key),
        ))
    }

    /// A shared-key recipient (A256KW) from exactly 32 key bytes. The bytes
    /// are copied and zeroized when the recipient is dropped.
    ///
    /// # Errors
    /// [`KeyError::AesKeyLength`] for any other length.
    pub fn a256kw(kid: impl Into<String>, key: &[u8]) -> Result<Self, KeyError> {
        let kid = check_kid(kid.into())?;
        Ok(Self::made(
            kid,
            KeyInfo::Aes256,
            PublicKey::Aes(aes_key(key)?),
        ))
    }

    /// A recipient for whatever kind of public key the SPKI holds: RSA
    /// (RSA-OAEP-256) or EC (ECDH-ES+A256KW).
    ///
    /// # Errors
    /// As [`inspect_spki`], and `Malformed` for a key aws-lc refuses.
    pub fn from_spki(kid: impl Into<String>, spki_der: &[u8]) -> Result<Self, KeyError> {
        match inspect_spki(spki_der)? {
            KeyInfo::Rsa { .. } => Self::rsa_oaep_256(kid, spki_der),
            _ => Self::ecdh_es_a256kw(kid, spki_der),
        }
    }

    /// Adds `x5t#S256`, the thumbprint of the certificate (DER) the key was
    /// taken from, so the consumer can pick its key by certificate.
    #[must_use]
    pub fn with_x5t_s256(mut self, cert_der: &[u8]) -> Self {
        let x5t = x5t_s256(cert_der);
        self.heads = RecipientHeads::new(self.alg().name(), &self.kid, Some(&x5t));
        self.x5t_s256 = Some(x5t);
        self
    }

    /// The key id.
    #[must_use]
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The `x5t#S256` value, when set.
    #[must_use]
    pub fn x5t_s256(&self) -> Option<&str> {
        self.x5t_s256.as_deref()
    }

    /// The key management algorithm used for this recipient.
    #[must_use]
    pub fn alg(&self) -> Algorithm {
        self.info.algorithm()
    }

    /// The key's kind and size.
    #[must_use]
    pub fn key_info(&self) -> KeyInfo {
        self.info
    }
}

impl fmt::Debug for Recipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recipient")
            .field("kid", &self.kid)
            .field("alg", &self.alg().name())
            .field("key", &format_args!("{}", self.info))
            .field("x5t#S256", &self.x5t_s256)
            .finish()
    }
}

pub(crate) enum PrivateKey {
    Rsa(OaepPrivateDecryptingKey),
    Ec(Curve, agreement::PrivateKey),
    Aes(Zeroizing<[u8; 32]>),
}

/// A key to open JWEs with: an RSA or EC private key (PKCS#8 DER) or a
/// 256-bit AES key. Optionally a `kid` and an expected `x5t#S256`: when set,
/// only a recipient carrying the same value is tried. In the JSON
/// serialization these per-recipient values are not integrity protected
/// (RFC 7516), so checking them is what makes a changed `kid` or `x5t#S256`
/// fail to open.
///
/// `Debug` never shows key material.
pub struct DecryptionKey {
    pub(crate) key: PrivateKey,
    pub(crate) info: KeyInfo,
    pub(crate) kid: Option<String>,
    pub(crate) x5t_s256: Option<String>,
}

impl DecryptionKey {
    /// An RSA private key (RSA-OAEP-256) from PKCS#8 DER. aws-lc's OAEP
    /// decryption is constant time.
    ///
    /// # Errors
    /// [`KeyError::RsaTooSmall`] under 2048 bits, [`KeyError::WrongKeyType`]
    /// for an EC key, `Malformed` for anything aws-lc refuses.
    pub fn rsa_pkcs8(pkcs8_der: &[u8]) -> Result<Self, KeyError> {
        let info = inspect_pkcs8(pkcs8_der)?;
        let KeyInfo::Rsa { .. } = info else {
            return Err(wrong_kind("RSA", info));
        };
        let malformed = |_| KeyError::Malformed {
            what: "RSA private key",
        };
        let key = PrivateDecryptingKey::from_pkcs8(pkcs8_der).map_err(malformed)?;
        let key = OaepPrivateDecryptingKey::new(key).map_err(|_| KeyError::Malformed {
            what: "RSA private key",
        })?;
        Ok(Self::new(PrivateKey::Rsa(key), info))
    }

    /// An EC private key (ECDH-ES+A256KW) on P-256 or P-384 from PKCS#8 DER.
    ///
    /// # Errors
    /// [`KeyError::UnsupportedCurve`] for other curves,
    /// [`KeyError::WrongKeyType`] for an RSA key, `Malformed` for anything
    /// aws-lc refuses.
    pub fn ec_pkcs8(pkcs8_der: &[u8]) -> Result<Self, KeyError> {
        let info = inspect_pkcs8(pkcs8_der)?;
        let KeyInfo::Ec { curve } = info else {
            return Err(wrong_kind("EC", info));
        };
        let key = agreement::PrivateKey::from_private_key_der(curve.agreement(), pkcs8_der)
            .map_err(|_| KeyError::Malformed {
                what: "EC private key",
            })?;
        Ok(Self::new(PrivateKey::Ec(curve, key), info))
    }

    /// Whichever private key PKCS#8 DER holds, RSA or EC.
    ///
    /// # Errors
    /// As [`DecryptionKey::rsa_pkcs8`] and [`DecryptionKey::ec_pkcs8`].
    pub fn from_pkcs8(pkcs8_der: &[u8]) -> Result<Self, KeyError> {
        match inspect_pkcs8(pkcs8_der)? {
            KeyInfo::Rsa { .. } => Self::rsa_pkcs8(pkcs8_der),
            _ => Self::ec_pkcs8(pkcs8_der),
        }
    }

    /// A 256-bit AES key (A256KW). The bytes are copied and zeroized on drop.
    ///
    /// # Errors
    /// [`KeyError::AesKeyLength`] unless exactly 32 bytes.
    pub fn aes256(key: &[u8]) -> Result<Self, KeyError> {
        Ok(Self::new(PrivateKey::Aes(aes_key(key)?), KeyInfo::Aes256))
    }

    fn new(key: PrivateKey, info: KeyInfo) -> Self {
        Self {
            key,
            info,
            kid: None,
            x5t_s256: None,
        }
    }

    /// Only recipients with this `kid` are tried.
    #[must_use]
    pub fn with_kid(mut self, kid: impl Into<String>) -> Self {
        self.kid = Some(kid.into());
        self
    }

    /// Only recipients whose `x5t#S256` is this certificate's (DER) are tried.
    #[must_use]
    pub fn with_x5t_s256(mut self, cert_der: &[u8]) -> Self {
        self.x5t_s256 = Some(x5t_s256(cert_der));
        self
    }

    /// The key management algorithm this key opens.
    #[must_use]
    pub fn alg(&self) -> Algorithm {
        self.info.algorithm()
    }

    /// The key's kind and size.
    #[must_use]
    pub fn key_info(&self) -> KeyInfo {
        self.info
    }

    /// The `kid` recipients must carry, when set.
    #[must_use]
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }
}

impl fmt::Debug for DecryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DecryptionKey")
            .field("alg", &self.alg().name())
            .field("key", &format_args!("{}", self.info))
            .field("kid", &self.kid)
            .field("x5t#S256", &self.x5t_s256)
            .finish_non_exhaustive()
    }
}

/// Classifies a PKCS#8 private key as [`inspect_spki`] does a public one.
///
/// # Errors
/// As [`inspect_spki`].
pub fn inspect_pkcs8(pkcs8_der: &[u8]) -> Result<KeyInfo, KeyError> {
    const WHAT: &str = "PKCS#8 private key";
    let (alg, key) = der::pkcs8(pkcs8_der).ok_or(KeyError::Malformed { what: WHAT })?;
    classify(alg, key, der::rsa_private_modulus_bits, WHAT)
}
