//! Encryption context: the authenticated, unencrypted key/value map of a message.
//!
//! Serialization follows the spec exactly: empty map → zero bytes; otherwise a
//! u16 pair count and pairs sorted by the UTF-8 bytes of their keys. A
//! `BTreeMap<String, _>` orders `str` by bytes, which is that order.

use std::collections::BTreeMap;

use super::codec::{put_u16, put_u16_prefixed, Reader};
use super::error::FormatError;

/// Reserved key under which signed suites carry the base64 compressed ECDSA public key.
pub const PUBLIC_KEY_FIELD: &str = "aws-crypto-public-key";
/// All keys starting with this prefix are reserved for the ESDK.
pub const RESERVED_PREFIX: &str = "aws-crypto-";

#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct EncryptionContext(BTreeMap<String, String>);

impl EncryptionContext {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<String>) -> Option<String> {
        self.0.insert(key.into(), value.into())
    }

    pub fn remove(&mut self, key: &str) -> Option<String> {
        self.0.remove(key)
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.0.contains_key(key)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    /// Spec serialization (used for header AAD, raw AES wrapping AAD and the
    /// header-auth "encryption context to only authenticate").
    pub fn serialize(&self) -> Result<Vec<u8>, FormatError> {
        let mut out = Vec::new();
        self.serialize_into(&mut out)?;
        Ok(out)
    }

    /// Bytes [`EncryptionContext::serialize_into`] appends.
    pub fn serialized_len(&self) -> usize {
        if self.0.is_empty() {
            return 0;
        }
        2 + self
            .0
            .iter()
            .map(|(k, v)| 4 + k.len() + v.len())
            .sum::<usize>()
    }

    pub fn serialize_into(&self, out: &mut Vec<u8>) -> Result<(), FormatError> {
        if self.0.is_empty() {
            return Ok(());
        }
        let count = u16::try_from(self.0.len()).map_err(|_| FormatError::TooLong {
            field: "encryption context pair count",
            len: self.0.len(),
        })?;
        put_u16(out, count);
        for (k, v) in &self.0 {
            put_u16_prefixed(out, k.as_bytes(), "encryption context key")?;
            put_u16_prefixed(out, v.as_bytes(), "encryption context value")?;
        }
        Ok(())
    }

    /// Parses the key/value pairs (without the outer AAD length). Rejects
    /// duplicates, invalid UTF-8 and a zero count; accepts any key order, as the
    /// reference implementations do (the header tag covers the raw bytes).
    pub fn parse(bytes: &[u8]) -> Result<Self, FormatError> {
        let mut map = BTreeMap::new();
        if bytes.is_empty() {
            return Ok(EncryptionContext(map));
        }
        let mut r = Reader::new(bytes);
        let count = r.u16("encryption context pair count")?;
        if count == 0 {
            return Err(FormatError::Invalid {
                field: "encryption context",
                reason: "non-empty encoding with zero pairs",
            });
        }
        for _ in 0..count {
            let key = utf8(
                r.u16_prefixed("encryption context key")?,
                "encryption context key",
            )?;
            let value = utf8(
                r.u16_prefixed("encryption context value")?,
                "encryption context value",
            )?;
            if map.insert(key, value).is_some() {
                return Err(FormatError::Invalid {
                    field: "encryption context",
                    reason: "duplicate key",
                });
            }
        }
        if !r.is_empty() {
            return Err(FormatError::Invalid {
                field: "encryption context",
                reason: "pairs do not fill the declared length",
            });
        }
        Ok(EncryptionContext(map))
    }

    /// The pairs of `self` whose keys are in `keys`, in canonical order.
    pub fn subset<'a>(&self, keys: impl IntoIterator<Item = &'a str>) -> EncryptionContext {
        let mut out = EncryptionContext::new();
        for k in keys {
            if let Some(v) = self.0.get(k) {
                out.0.insert(k.to_owned(), v.clone());
            }
        }
        out
    }
}

fn utf8(bytes: &[u8], field: &'static str) -> Result<String, FormatError> {
    String::from_utf8(bytes.to_vec()).map_err(|_| FormatError::Invalid {
        field,
        reason: "not valid UTF-8",
    })
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for EncryptionContext {
    fn from_iter<T: IntoIterator<Item = (K, V)>>(iter: T) -> Self {
        EncryptionContext(
            iter.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }
}

impl From<BTreeMap<String, String>> for EncryptionContext {
    fn from(map: BTreeMap<String, String>) -> Self {
        EncryptionContext(map)
    }
}

impl From<EncryptionContext> for BTreeMap<String, String> {
    fn from(ec: EncryptionContext) -> Self {
        ec.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_serializes_to_nothing() {
        assert!(EncryptionContext::new().serialize().unwrap().is_empty());
        assert_eq!(
            EncryptionContext::parse(&[]).unwrap(),
            EncryptionContext::new()
        );
    }

    #[test]
    fn spec_example_order_and_bytes() {
        // From the message-header spec example: keys sorted by UTF-8 bytes.
        let ec: EncryptionContext = [
            ("2context", "example"),
            ("0This", "is"),
            ("1an", "encryption"),
        ]
        .into_iter()
        .collect();
        let bytes = ec.serialize().unwrap();
        let expected = hex::decode(concat!(
            "0003",
            "0005",
            "3054686973",
            "0002",
            "6973",
            "0003",
            "31616e",
            "000a",
            "656e6372797074696f6e",
            "0008",
            "32636f6e74657874",
            "0007",
            "6578616d706c65"
        ))
        .unwrap();
        assert_eq!(bytes, expected);
        assert_eq!(EncryptionContext::parse(&bytes).unwrap(), ec);
    }

    #[test]
    fn sorts_by_utf8_bytes_not_chars() {
        // U+00E9 (0xC3 0xA9) sorts after 'z' (0x7A) and before U+1F600 (0xF0 ...).
        let ec: EncryptionContext = [("😀", "a"), ("é", "b"), ("z", "c")].into_iter().collect();
        let keys: Vec<&str> = ec.keys().collect();
        assert_eq!(keys, vec!["z", "é", "😀"]);
    }

    #[test]
    fn rejects_duplicates_and_garbage() {
        let dup = hex::decode("0002000161000162000161000163").unwrap();
        assert!(EncryptionContext::parse(&dup).is_err());
        assert!(EncryptionContext::parse(&[0, 0]).is_err());
        assert!(EncryptionContext::parse(&[0, 1, 0, 1, 0xff, 0, 0]).is_err());
        assert!(EncryptionContext::parse(&[0, 1, 0, 0, 0, 0, 9]).is_err());
    }
}
