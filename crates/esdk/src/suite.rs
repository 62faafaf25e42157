//! The eleven ESDK algorithm suites and their properties.
//!
//! One table, consulted everywhere, so that "which KDF / which signature / which
//! message format" is never decided by ad-hoc `match`es scattered through the code.

use std::fmt;

/// Message format version a suite belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FormatVersion {
    V1,
    V2,
}

impl FormatVersion {
    pub fn byte(self) -> u8 {
        match self {
            FormatVersion::V1 => 0x01,
            FormatVersion::V2 => 0x02,
        }
    }

    /// Length of the message id for this format.
    pub fn message_id_len(self) -> usize {
        match self {
            FormatVersion::V1 => 16,
            FormatVersion::V2 => 32,
        }
    }
}

/// Hash used by HKDF.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KdfHash {
    Sha256,
    Sha384,
    Sha512,
}

impl KdfHash {
    pub fn output_len(self) -> usize {
        match self {
            KdfHash::Sha256 => 32,
            KdfHash::Sha384 => 48,
            KdfHash::Sha512 => 64,
        }
    }
}

/// How the content key is derived from the data key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kdf {
    /// The data key is the content key (legacy 0x00xx suites).
    Identity,
    Hkdf(KdfHash),
}

/// ECDSA curve of a signed suite.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignatureCurve {
    P256,
    P384,
}

impl SignatureCurve {
    /// DER signature length the reference ESDKs always emit (they re-sign or
    /// negate `s` until the length matches); we emit the same.
    pub fn static_signature_len(self) -> usize {
        match self {
            SignatureCurve::P256 => 71,
            SignatureCurve::P384 => 103,
        }
    }
}

/// An ESDK algorithm suite. The discriminant is the wire id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u16)]
pub enum AlgorithmSuite {
    Aes128GcmIv12Tag16NoKdf = 0x0014,
    Aes192GcmIv12Tag16NoKdf = 0x0046,
    Aes256GcmIv12Tag16NoKdf = 0x0078,
    Aes128GcmIv12Tag16HkdfSha256 = 0x0114,
    Aes192GcmIv12Tag16HkdfSha256 = 0x0146,
    Aes256GcmIv12Tag16HkdfSha256 = 0x0178,
    Aes128GcmIv12Tag16HkdfSha256EcdsaP256 = 0x0214,
    Aes192GcmIv12Tag16HkdfSha384EcdsaP384 = 0x0346,
    Aes256GcmIv12Tag16HkdfSha384EcdsaP384 = 0x0378,
    Aes256GcmHkdfSha512CommitKey = 0x0478,
    Aes256GcmHkdfSha512CommitKeyEcdsaP384 = 0x0578,
}

/// All AES-GCM suites in the ESDK use a 12-byte IV and a 16-byte tag.
pub const IV_LEN: usize = 12;
pub const TAG_LEN: usize = 16;
/// Length of the key commitment stored in a v2 header ("algorithm suite data").
pub const COMMITMENT_LEN: usize = 32;

impl AlgorithmSuite {
    pub const ALL: [AlgorithmSuite; 11] = [
        AlgorithmSuite::Aes128GcmIv12Tag16NoKdf,
        AlgorithmSuite::Aes192GcmIv12Tag16NoKdf,
        AlgorithmSuite::Aes256GcmIv12Tag16NoKdf,
        AlgorithmSuite::Aes128GcmIv12Tag16HkdfSha256,
        AlgorithmSuite::Aes192GcmIv12Tag16HkdfSha256,
        AlgorithmSuite::Aes256GcmIv12Tag16HkdfSha256,
        AlgorithmSuite::Aes128GcmIv12Tag16HkdfSha256EcdsaP256,
        AlgorithmSuite::Aes192GcmIv12Tag16HkdfSha384EcdsaP384,
        AlgorithmSuite::Aes256GcmIv12Tag16HkdfSha384EcdsaP384,
        AlgorithmSuite::Aes256GcmHkdfSha512CommitKey,
        AlgorithmSuite::Aes256GcmHkdfSha512CommitKeyEcdsaP384,
    ];

    pub fn from_id(id: u16) -> Option<Self> {
        Self::ALL.iter().copied().find(|s| s.id() == id)
    }

    /// Parses `0x0478`, `0478` or the spec's enum name (`ALG_AES_256_GCM_HKDF_SHA512_COMMIT_KEY`).
    pub fn parse(text: &str) -> Option<Self> {
        let t = text.trim();
        let hex = t
            .strip_prefix("0x")
            .or_else(|| t.strip_prefix("0X"))
            .unwrap_or(t);
        if hex.len() == 4 {
            if let Ok(id) = u16::from_str_radix(hex, 16) {
                return Self::from_id(id);
            }
        }
        Self::ALL
            .iter()
            .copied()
            .find(|s| s.name().eq_ignore_ascii_case(t))
    }

    pub fn id(self) -> u16 {
        self as u16
    }

    pub fn id_bytes(self) -> [u8; 2] {
        self.id().to_be_bytes()
    }

    /// The specification's enum name.
    pub fn name(self) -> &'static str {
        use AlgorithmSuite::*;
        match self {
            Aes128GcmIv12Tag16NoKdf => "ALG_AES_128_GCM_IV12_TAG16_NO_KDF",
            Aes192GcmIv12Tag16NoKdf => "ALG_AES_192_GCM_IV12_TAG16_NO_KDF",
            Aes256GcmIv12Tag16NoKdf => "ALG_AES_256_GCM_IV12_TAG16_NO_KDF",
            Aes128GcmIv12Tag16HkdfSha256 => "ALG_AES_128_GCM_IV12_TAG16_HKDF_SHA256",
            Aes192GcmIv12Tag16HkdfSha256 => "ALG_AES_192_GCM_IV12_TAG16_HKDF_SHA256",
            Aes256GcmIv12Tag16HkdfSha256 => "ALG_AES_256_GCM_IV12_TAG16_HKDF_SHA256",
            Aes128GcmIv12Tag16HkdfSha256EcdsaP256 => {
                "ALG_AES_128_GCM_IV12_TAG16_HKDF_SHA256_ECDSA_P256"
            }
            Aes192GcmIv12Tag16HkdfSha384EcdsaP384 => {
                "ALG_AES_192_GCM_IV12_TAG16_HKDF_SHA384_ECDSA_P384"
            }
            Aes256GcmIv12Tag16HkdfSha384EcdsaP384 => {
                "ALG_AES_256_GCM_IV12_TAG16_HKDF_SHA384_ECDSA_P384"
            }
            Aes256GcmHkdfSha512CommitKey => "ALG_AES_256_GCM_HKDF_SHA512_COMMIT_KEY",
            Aes256GcmHkdfSha512CommitKeyEcdsaP384 => {
                "ALG_AES_256_GCM_HKDF_SHA512_COMMIT_KEY_ECDSA_P384"
            }
        }
    }

    pub fn format_version(self) -> FormatVersion {
        if self.is_committing() {
            FormatVersion::V2
        } else {
            FormatVersion::V1
        }
    }

    pub fn is_committing(self) -> bool {
        matches!(
            self,
            AlgorithmSuite::Aes256GcmHkdfSha512CommitKey
                | AlgorithmSuite::Aes256GcmHkdfSha512CommitKeyEcdsaP384
        )
    }

    /// Length in bytes of the AES content key, which is also the data key length
    /// (every ESDK suite's key-derivation input length equals its key length).
    pub fn key_len(self) -> usize {
        match self.id() & 0x00ff {
            0x14 => 16,
            0x46 => 24,
            _ => 32,
        }
    }

    /// Length in bytes of the plaintext data key a keyring must produce.
    pub fn data_key_len(self) -> usize {
        self.key_len()
    }

    pub fn kdf(self) -> Kdf {
        use AlgorithmSuite::*;
        match self {
            Aes128GcmIv12Tag16NoKdf | Aes192GcmIv12Tag16NoKdf | Aes256GcmIv12Tag16NoKdf => {
                Kdf::Identity
            }
            Aes128GcmIv12Tag16HkdfSha256
            | Aes192GcmIv12Tag16HkdfSha256
            | Aes256GcmIv12Tag16HkdfSha256
            | Aes128GcmIv12Tag16HkdfSha256EcdsaP256 => Kdf::Hkdf(KdfHash::Sha256),
            Aes192GcmIv12Tag16HkdfSha384EcdsaP384 | Aes256GcmIv12Tag16HkdfSha384EcdsaP384 => {
                Kdf::Hkdf(KdfHash::Sha384)
            }
            Aes256GcmHkdfSha512CommitKey | Aes256GcmHkdfSha512CommitKeyEcdsaP384 => {
                Kdf::Hkdf(KdfHash::Sha512)
            }
        }
    }

    pub fn signature(self) -> Option<SignatureCurve> {
        use AlgorithmSuite::*;
        match self {
            Aes128GcmIv12Tag16HkdfSha256EcdsaP256 => Some(SignatureCurve::P256),
            Aes192GcmIv12Tag16HkdfSha384EcdsaP384
            | Aes256GcmIv12Tag16HkdfSha384EcdsaP384
            | Aes256GcmHkdfSha512CommitKeyEcdsaP384 => Some(SignatureCurve::P384),
            _ => None,
        }
    }

    pub fn is_signed(self) -> bool {
        self.signature().is_some()
    }

    /// Length of the "algorithm suite data" field of a v2 header.
    pub fn suite_data_len(self) -> usize {
        if self.is_committing() {
            COMMITMENT_LEN
        } else {
            0
        }
    }
}

impl fmt::Display for AlgorithmSuite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{:04X}", self.id())
    }
}

/// A set of suites, e.g. the ones a source or consumer is allowed to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SuiteSet(u16);

impl SuiteSet {
    pub const fn empty() -> Self {
        SuiteSet(0)
    }

    pub fn all() -> Self {
        AlgorithmSuite::ALL.iter().copied().collect()
    }

    fn bit(suite: AlgorithmSuite) -> u16 {
        let idx = AlgorithmSuite::ALL
            .iter()
            .position(|s| *s == suite)
            .unwrap_or(0);
        1 << idx
    }

    pub fn insert(&mut self, suite: AlgorithmSuite) {
        self.0 |= Self::bit(suite);
    }

    pub fn contains(&self, suite: AlgorithmSuite) -> bool {
        self.0 & Self::bit(suite) != 0
    }

    pub fn iter(&self) -> impl Iterator<Item = AlgorithmSuite> + '_ {
        AlgorithmSuite::ALL
            .iter()
            .copied()
            .filter(|s| self.contains(*s))
    }
}

impl FromIterator<AlgorithmSuite> for SuiteSet {
    fn from_iter<T: IntoIterator<Item = AlgorithmSuite>>(iter: T) -> Self {
        let mut set = SuiteSet::empty();
        for s in iter {
            set.insert(s);
        }
        set
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_consistent() {
        for s in AlgorithmSuite::ALL {
            assert_eq!(AlgorithmSuite::from_id(s.id()), Some(s));
            assert_eq!(AlgorithmSuite::parse(&format!("{:04x}", s.id())), Some(s));
            assert_eq!(AlgorithmSuite::parse(s.name()), Some(s));
            assert_eq!(s.is_committing(), s.format_version() == FormatVersion::V2);
            if s.kdf() == Kdf::Identity {
                assert!(!s.is_signed());
            }
        }
        assert_eq!(AlgorithmSuite::from_id(0x0000), None);
        assert_eq!(
            AlgorithmSuite::Aes192GcmIv12Tag16HkdfSha384EcdsaP384.key_len(),
            24
        );
        assert_eq!(AlgorithmSuite::Aes128GcmIv12Tag16NoKdf.key_len(), 16);
    }

    #[test]
    fn suite_set() {
        let mut set = SuiteSet::empty();
        set.insert(AlgorithmSuite::Aes256GcmHkdfSha512CommitKey);
        assert!(set.contains(AlgorithmSuite::Aes256GcmHkdfSha512CommitKey));
        assert!(!set.contains(AlgorithmSuite::Aes256GcmIv12Tag16HkdfSha384EcdsaP384));
        assert_eq!(SuiteSet::all().iter().count(), 11);
    }
}
