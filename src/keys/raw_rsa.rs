//! Raw RSA keyring: the data key wrapped with RSA-OAEP (or legacy PKCS#1 v1.5)
//! under a key pair; EDK provider info is the key name.
//!
//! This is how Amazon Connect wraps data keys (OAEP with SHA-512 and
//! MGF1-SHA-512, provider id `AmazonConnect`). Private-key operations run in
//! aws-lc (constant time); keys are parsed once, at construction.

use std::fmt;

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der, PublicKeyX509Der};
use aws_lc_rs::rsa::{
    KeySize, OaepAlgorithm, OaepPrivateDecryptingKey, OaepPublicEncryptingKey,
    Pkcs1PrivateDecryptingKey, Pkcs1PublicEncryptingKey, PrivateDecryptingKey, PublicEncryptingKey,
    OAEP_SHA1_MGF1SHA1, OAEP_SHA256_MGF1SHA256, OAEP_SHA384_MGF1SHA384, OAEP_SHA512_MGF1SHA512,
};
use zeroize::Zeroizing;

use super::pem;
use super::KeyError;
use crate::esdk::{
    DataKey, EncryptedDataKey, Identity, KeyNameLayout, KeyringContext, Recipient, UnwrapError,
};

/// RSA padding scheme for wrapping data keys. OAEP uses the same hash for MGF1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RsaPadding {
    /// PKCS#1 v1.5: legacy, accepted for existing data; never the default.
    Pkcs1,
    OaepSha1,
    OaepSha256,
    OaepSha384,
    OaepSha512,
}

impl RsaPadding {
    /// Parses the manifest/config spellings: `pkcs1`, `oaep-sha256`, or
    /// (`oaep-mgf1`, `sha256`) as the test-vector manifests split it.
    pub fn parse(algorithm: &str, hash: Option<&str>) -> Option<Self> {
        let norm = |s: &str| s.to_ascii_lowercase().replace(['_', ' '], "-");
        let alg = norm(algorithm);
        let hash = hash.map(norm);
        match (alg.as_str(), hash.as_deref()) {
            ("pkcs1" | "pkcs1-v1.5" | "pkcs1v15", _) => Some(RsaPadding::Pkcs1),
            ("oaep-mgf1" | "oaep", Some("sha1" | "sha-1"))
            | ("oaep-sha1" | "oaep-sha1-mgf1", _) => Some(RsaPadding::OaepSha1),
            ("oaep-mgf1" | "oaep", Some("sha256" | "sha-256"))
            | ("oaep-sha256" | "oaep-sha256-mgf1", _) => Some(RsaPadding::OaepSha256),
            ("oaep-mgf1" | "oaep", Some("sha384" | "sha-384"))
            | ("oaep-sha384" | "oaep-sha384-mgf1", _) => Some(RsaPadding::OaepSha384),
            ("oaep-mgf1" | "oaep", Some("sha512" | "sha-512"))
            | ("oaep-sha512" | "oaep-sha512-mgf1", _) => Some(RsaPadding::OaepSha512),
            _ => None,
        }
    }

    fn oaep(self) -> Option<&'static OaepAlgorithm> {
        match self {
            RsaPadding::Pkcs1 => None,
            RsaPadding::OaepSha1 => Some(&OAEP_SHA1_MGF1SHA1),
            RsaPadding::OaepSha256 => Some(&OAEP_SHA256_MGF1SHA256),
            RsaPadding::OaepSha384 => Some(&OAEP_SHA384_MGF1SHA384),
            RsaPadding::OaepSha512 => Some(&OAEP_SHA512_MGF1SHA512),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RsaPadding::Pkcs1 => "pkcs1",
            RsaPadding::OaepSha1 => "oaep-sha1",
            RsaPadding::OaepSha256 => "oaep-sha256",
            RsaPadding::OaepSha384 => "oaep-sha384",
            RsaPadding::OaepSha512 => "oaep-sha512",
        }
    }
}

enum Decryptor {
    Oaep(OaepPrivateDecryptingKey),
    Pkcs1(Pkcs1PrivateDecryptingKey),
}

enum Encryptor {
    Oaep(OaepPublicEncryptingKey),
    Pkcs1(Pkcs1PublicEncryptingKey),
}

/// A raw RSA keyring: always able to wrap; able to unwrap when it holds the private key.
pub struct RawRsaKeyring {
    provider_id: String,
    key_name: String,
    padding: RsaPadding,
    bits: usize,
    decryptor: Option<Decryptor>,
    encryptor: Encryptor,
    /// PKCS#1 v1.5 only: secret for implicit rejection (see `unwrap`).
    rejection_secret: Option<Zeroizing<[u8; 32]>>,
}

impl fmt::Debug for RawRsaKeyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawRsaKeyring")
            .field("provider_id", &self.provider_id)
            .field("key_name", &self.key_name)
            .field("padding", &self.padding)
            .field("bits", &self.bits)
            .field("has_private_key", &self.decryptor.is_some())
            .finish()
    }
}

/// Parses a private key from PEM (PKCS#8 or PKCS#1).
pub fn parse_private_key_pem(pem_text: &[u8]) -> Result<PrivateDecryptingKey, KeyError> {
    let blocks = pem::parse_all(pem_text)?;
    let block = blocks
        .iter()
        .find(|b| {
            b.label == "PRIVATE KEY"
                || b.label == "RSA PRIVATE KEY"
                || b.label == "ENCRYPTED PRIVATE KEY"
        })
        .ok_or(KeyError::Pem("no `PRIVATE KEY` or `RSA PRIVATE KEY` block"))?;
    if block.encrypted {
        return Err(KeyError::Encrypted);
    }
    let pkcs8: Zeroizing<Vec<u8>> = if block.label == "RSA PRIVATE KEY" {
        pem::pkcs1_private_to_pkcs8(&block.der)
    } else {
        block.der.clone()
    };
    PrivateDecryptingKey::from_pkcs8(&pkcs8).map_err(|e| {
        if e.to_string().contains("TooSmall") {
            KeyError::Invalid(
                "RSA private key is smaller than 2048 bits; at least 2048 are required".into(),
            )
        } else {
            KeyError::Invalid(format!("not a usable RSA private key: {e}"))
        }
    })
}

/// Parses a public key from PEM (SPKI `PUBLIC KEY` or PKCS#1 `RSA PUBLIC KEY`).
pub fn parse_public_key_pem(pem_text: &[u8]) -> Result<PublicEncryptingKey, KeyError> {
    let blocks = pem::parse_all(pem_text)?;
    let block = blocks
        .iter()
        .find(|b| b.label == "PUBLIC KEY" || b.label == "RSA PUBLIC KEY")
        .ok_or(KeyError::Pem("no `PUBLIC KEY` or `RSA PUBLIC KEY` block"))?;
    let spki = if block.label == "RSA PUBLIC KEY" {
        pem::pkcs1_public_to_spki(&block.der)
    } else {
        block.der.to_vec()
    };
    parse_public_key_der(&spki)
}

/// Parses an RSA SubjectPublicKeyInfo (e.g. from a certificate).
pub fn parse_public_key_der(spki: &[u8]) -> Result<PublicEncryptingKey, KeyError> {
    PublicEncryptingKey::from_der(spki).map_err(|e| match spki_modulus_bits(spki) {
        Some(bits) if bits < 2048 => KeyError::Invalid(format!(
            "RSA key is {bits} bits; at least 2048 are required"
        )),
        _ => KeyError::Invalid(format!("not a usable RSA public key: {e}")),
    })
}

/// Modulus size of an RSA SubjectPublicKeyInfo, for precise error messages.
fn spki_modulus_bits(spki: &[u8]) -> Option<usize> {
    use x509_parser::prelude::FromDer;
    let (_, info) = x509_parser::x509::SubjectPublicKeyInfo::from_der(spki).ok()?;
    match info.parsed().ok()? {
        x509_parser::public_key::PublicKey::RSA(rsa) => Some(rsa.key_size()),
        _ => None,
    }
}

/// Generates a key pair and returns (private PKCS#8 PEM, public SPKI PEM).
pub fn generate_pem(bits: usize) -> Result<(Zeroizing<String>, String), KeyError> {
    let size = match bits {
        2048 => KeySize::Rsa2048,
        3072 => KeySize::Rsa3072,
        4096 => KeySize::Rsa4096,
        _ => {
            return Err(KeyError::Invalid(
                "RSA key size must be 2048, 3072 or 4096".into(),
            ))
        }
    };
    let key = PrivateDecryptingKey::generate(size)
        .map_err(|_| KeyError::Invalid("RSA key generation failed".into()))?;
    let der: Pkcs8V1Der<'_> = key
        .as_der()
        .map_err(|_| KeyError::Invalid("RSA key encoding failed".into()))?;
    let private = Zeroizing::new(pem::encode("PRIVATE KEY", der.as_ref()));
    let public_der: PublicKeyX509Der<'_> = key
        .public_key()
        .as_der()
        .map_err(|_| KeyError::Invalid("RSA key encoding failed".into()))?;
    Ok((private, pem::encode("PUBLIC KEY", public_der.as_ref())))
}

fn encryptor(public: PublicEncryptingKey, padding: RsaPadding) -> Result<Encryptor, KeyError> {
    let bad = |_| KeyError::Invalid("unusable RSA public key".into());
    Ok(match padding {
        RsaPadding::Pkcs1 => Encryptor::Pkcs1(Pkcs1PublicEncryptingKey::new(public).map_err(bad)?),
        _ => Encryptor::Oaep(OaepPublicEncryptingKey::new(public).map_err(bad)?),
    })
}

impl RawRsaKeyring {
    pub fn from_private_key(
        provider_id: impl Into<String>,
        key_name: impl Into<String>,
        padding: RsaPadding,
        private: PrivateDecryptingKey,
    ) -> Result<Self, KeyError> {
        let bits = private.key_size_bits();
        let encryptor = encryptor(private.public_key(), padding)?;
        let bad = |_| KeyError::Invalid("unusable RSA private key".into());
        let decryptor = match padding {
            RsaPadding::Pkcs1 => {
                Decryptor::Pkcs1(Pkcs1PrivateDecryptingKey::new(private).map_err(bad)?)
            }
            _ => Decryptor::Oaep(OaepPrivateDecryptingKey::new(private).map_err(bad)?),
        };
        let rejection_secret = match padding {
            RsaPadding::Pkcs1 => {
                let mut secret = Zeroizing::new([0u8; 32]);
                aws_lc_rs::rand::fill(secret.as_mut())
                    .map_err(|_| KeyError::Invalid("random source failed".into()))?;
                Some(secret)
            }
            _ => None,
        };
        Ok(RawRsaKeyring {
            provider_id: provider_id.into(),
            key_name: key_name.into(),
            padding,
            bits,
            decryptor: Some(decryptor),
            encryptor,
            rejection_secret,
        })
    }

    pub fn from_public_key(
        provider_id: impl Into<String>,
        key_name: impl Into<String>,
        padding: RsaPadding,
        public: PublicEncryptingKey,
    ) -> Result<Self, KeyError> {
        let bits = public.key_size_bits();
        Ok(RawRsaKeyring {
            provider_id: provider_id.into(),
            key_name: key_name.into(),
            padding,
            bits,
            decryptor: None,
            encryptor: encryptor(public, padding)?,
            rejection_secret: None,
        })
    }

    pub fn from_private_pem(
        provider_id: impl Into<String>,
        key_name: impl Into<String>,
        padding: RsaPadding,
        pem_text: &[u8],
    ) -> Result<Self, KeyError> {
        Self::from_private_key(
            provider_id,
            key_name,
            padding,
            parse_private_key_pem(pem_text)?,
        )
    }

    pub fn from_public_pem(
        provider_id: impl Into<String>,
        key_name: impl Into<String>,
        padding: RsaPadding,
        pem_text: &[u8],
    ) -> Result<Self, KeyError> {
        Self::from_public_key(
            provider_id,
            key_name,
            padding,
            parse_public_key_pem(pem_text)?,
        )
    }

    pub fn modulus_bits(&self) -> usize {
        self.bits
    }

    pub fn padding(&self) -> RsaPadding {
        self.padding
    }

    pub fn has_private_key(&self) -> bool {
        self.decryptor.is_some()
    }

    pub fn name(&self) -> &str {
        &self.key_name
    }
}

impl Identity for RawRsaKeyring {
    fn provider_id(&self) -> &str {
        &self.provider_id
    }

    fn key_name(&self) -> &[u8] {
        self.key_name.as_bytes()
    }

    fn layout(&self) -> KeyNameLayout {
        KeyNameLayout::Whole
    }

    fn unwrap(
        &self,
        edk: &EncryptedDataKey,
        ctx: &KeyringContext<'_>,
    ) -> Result<Option<DataKey>, UnwrapError> {
        if edk.provider_id != self.provider_id || edk.provider_info != self.key_name.as_bytes() {
            return Ok(None);
        }
        let decryptor = self
            .decryptor
            .as_ref()
            .ok_or_else(|| UnwrapError("key holds no private half".into()))?;
        if edk.ciphertext.len() != self.bits / 8 {
            return Err(UnwrapError(
                "encrypted data key length does not match the RSA modulus".into(),
            ));
        }
        let want = ctx.suite.data_key_len();
        let mut out = Zeroizing::new(vec![0u8; self.bits / 8]);
        match decryptor {
            Decryptor::Oaep(key) => {
                let alg = self
                    .padding
                    .oaep()
                    .ok_or_else(|| UnwrapError("padding mismatch".into()))?;
                let plain = key
                    .decrypt(alg, &edk.ciphertext, &mut out, None)
                    .map_err(|_| UnwrapError("RSA decryption failed".into()))?;
                if plain.len() != want {
                    return Err(UnwrapError(
                        "unwrapped data key has the wrong length for the suite".into(),
                    ));
                }
                Ok(Some(DataKey::new(plain.to_vec())))
            }
            Decryptor::Pkcs1(key) => {
                // Implicit rejection (the Bleichenbacher countermeasure of RFC 8017
                // and TLS): a bad padding yields a key derived from the ciphertext
                // instead of an error, so failure surfaces later, at the header
                // tag, exactly like a well-padded wrong key. No padding oracle.
                let secret = self
                    .rejection_secret
                    .as_ref()
                    .ok_or_else(|| UnwrapError("missing rejection secret".into()))?;
                let tag = aws_lc_rs::hmac::sign(
                    &aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret.as_ref()),
                    &edk.ciphertext,
                );
                let fallback = &tag.as_ref()[..want];
                let key_bytes = match key.decrypt(&edk.ciphertext, &mut out) {
                    Ok(plain) if plain.len() == want => plain.to_vec(),
                    _ => fallback.to_vec(),
                };
                Ok(Some(DataKey::new(key_bytes)))
            }
        }
    }
}

impl Recipient for RawRsaKeyring {
    fn label(&self) -> String {
        format!("{}/{}", self.provider_id, self.key_name)
    }

    fn describe(&self) -> String {
        format!(
            "RSA-{} {} as {}",
            self.bits,
            self.padding.as_str(),
            self.label()
        )
    }

    fn wrap(
        &self,
        data_key: &DataKey,
        _ctx: &KeyringContext<'_>,
    ) -> Result<EncryptedDataKey, UnwrapError> {
        let mut out = vec![0u8; self.bits / 8];
        let written = match &self.encryptor {
            Encryptor::Oaep(key) => {
                let alg = self
                    .padding
                    .oaep()
                    .ok_or_else(|| UnwrapError("padding mismatch".into()))?;
                key.encrypt(alg, data_key.as_bytes(), &mut out, None)
                    .map(|c| c.len())
            }
            Encryptor::Pkcs1(key) => key.encrypt(data_key.as_bytes(), &mut out).map(|c| c.len()),
        }
        .map_err(|_| UnwrapError("RSA encryption failed".into()))?;
        out.truncate(written);
        Ok(EncryptedDataKey {
            provider_id: self.provider_id.clone(),
            provider_info: self.key_name.as_bytes().to_vec(),
            ciphertext: out,
        })
    }
}
