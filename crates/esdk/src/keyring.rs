//! Data keys and the two keyring traits (the EDK's shape is in [`edk`](super::edk)).
//!
//! The split follows the `age` crate: an [`Identity`] unwraps encrypted data keys
//! addressed to it (and says "not mine" for the rest); a [`Recipient`] wraps a
//! data key for one reader. Keyrings are found by *lookup* on the
//! `(provider id, key name)` an EDK names — never by trying every key.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::context::EncryptionContext;
pub use super::edk::{printable, EdkSummary, EncryptedDataKey, KeyNameLayout, RAW_AES_INFO_SUFFIX};
use super::suite::AlgorithmSuite;

/// A plaintext data key. Zeroized on drop; never printed.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct DataKey(Vec<u8>);

impl DataKey {
    pub fn new(bytes: Vec<u8>) -> Self {
        DataKey(bytes)
    }

    pub fn from_zeroizing(bytes: Zeroizing<Vec<u8>>) -> Self {
        DataKey(bytes.to_vec())
    }

    /// A fresh random key of the suite's data-key length.
    pub fn generate(suite: AlgorithmSuite) -> Result<Self, super::Error> {
        let mut bytes = vec![0u8; suite.data_key_len()];
        aws_lc_rs::rand::fill(&mut bytes).map_err(|_| super::Error::Crypto("random data key"))?;
        Ok(DataKey(bytes))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DataKey([REDACTED; {}])", self.0.len())
    }
}

/// What a keyring may use when it wraps or unwraps: the suite and the full
/// encryption context of the materials (stored pairs plus required-only pairs).
#[derive(Clone, Copy, Debug)]
pub struct KeyringContext<'a> {
    pub suite: AlgorithmSuite,
    pub encryption_context: &'a EncryptionContext,
}

/// "Mine, but it failed." The reason never contains key bytes.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UnwrapError(pub String);

/// The unwrapping half of a keyring.
pub trait Identity: Send + Sync {
    /// Provider id (key namespace) this identity answers to.
    fn provider_id(&self) -> &str;
    /// Key name this identity answers to.
    fn key_name(&self) -> &[u8];
    /// Where the key name sits in an EDK's provider info.
    fn layout(&self) -> KeyNameLayout;

    /// Unwraps an EDK that the lookup matched to this identity.
    /// `Ok(None)` means "not mine after all" (e.g. provider info of another shape).
    fn unwrap(
        &self,
        edk: &EncryptedDataKey,
        ctx: &KeyringContext<'_>,
    ) -> Result<Option<DataKey>, UnwrapError>;
}

/// The wrapping half of a keyring.
pub trait Recipient: Send + Sync {
    /// A stable label for logs and errors (e.g. `provider/key-name`).
    fn label(&self) -> String;

    /// A longer description for operators (algorithm, size, label).
    fn describe(&self) -> String {
        self.label()
    }

    fn wrap(
        &self,
        data_key: &DataKey,
        ctx: &KeyringContext<'_>,
    ) -> Result<EncryptedDataKey, UnwrapError>;
}

/// A keyring that can both unwrap and wrap (raw RSA with its private key, raw AES).
pub trait Keyring: Identity + Recipient {}

impl<T: Identity + Recipient> Keyring for T {}

/// Values indexed by the `(provider id, key name)` an EDK names.
///
/// Lookup cost is one hash probe for the provider id and one per key-name
/// layout in use for it, without allocating, so a flood of EDKs costs hashing,
/// not decryption attempts.
#[derive(Clone)]
pub struct KeyIndex<T> {
    providers: HashMap<String, ProviderKeys<T>>,
}

#[derive(Clone)]
struct ProviderKeys<T> {
    layouts: Vec<KeyNameLayout>,
    by_name: HashMap<Vec<u8>, Vec<T>>,
}

impl<T> Default for KeyIndex<T> {
    fn default() -> Self {
        KeyIndex {
            providers: HashMap::new(),
        }
    }
}

impl<T> KeyIndex<T> {
    /// Adds a value. Several may share a provider id and key name (the same key
    /// with two paddings, say); lookups return them in insertion order.
    pub fn insert(&mut self, provider_id: &str, key_name: &[u8], layout: KeyNameLayout, value: T) {
        let p = self
            .providers
            .entry(provider_id.to_owned())
            .or_insert_with(|| ProviderKeys {
                layouts: Vec::new(),
                by_name: HashMap::new(),
            });
        if !p.layouts.contains(&layout) {
            p.layouts.push(layout);
        }
        p.by_name.entry(key_name.to_vec()).or_default().push(value);
    }

    pub fn len(&self) -> usize {
        self.providers
            .values()
            .flat_map(|p| p.by_name.values())
            .map(Vec::len)
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The values an EDK addresses (empty when none).
    pub fn lookup(&self, edk: &EncryptedDataKey) -> &[T] {
        let Some(p) = self.providers.get(edk.provider_id.as_str()) else {
            return &[];
        };
        p.layouts
            .iter()
            .find_map(|layout| p.by_name.get(layout.key_name(&edk.provider_info)?))
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }
}

/// Identities indexed for lookup by the EDKs of a message.
#[derive(Clone, Default)]
pub struct IdentitySet(KeyIndex<Arc<dyn Identity>>);

impl IdentitySet {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn insert(&mut self, identity: Arc<dyn Identity>) {
        let (pid, name, layout) = (
            identity.provider_id().to_owned(),
            identity.key_name().to_vec(),
            identity.layout(),
        );
        self.0.insert(&pid, &name, layout, identity);
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The identities an EDK addresses (usually one; empty when none).
    pub fn lookup(&self, edk: &EncryptedDataKey) -> &[Arc<dyn Identity>] {
        self.0.lookup(edk)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_aes_layout_extracts_name() {
        let mut info = b"my-key".to_vec();
        info.extend_from_slice(&128u32.to_be_bytes());
        info.extend_from_slice(&12u32.to_be_bytes());
        info.extend_from_slice(&[7u8; 12]);
        assert_eq!(KeyNameLayout::RawAes.key_name(&info), Some(&b"my-key"[..]));
        assert_eq!(KeyNameLayout::RawAes.key_name(b"short"), None);
        info[9] = 0; // tag length (bytes 6..10) no longer 128
        assert_eq!(KeyNameLayout::RawAes.key_name(&info), None);
    }

    #[test]
    fn printable_escapes_and_caps() {
        assert_eq!(printable(b"a\nb"), "a\\nb");
        assert_eq!(printable(&[0xff, 0x00]), "0xff00");
        assert!(printable(&[b'x'; 1000]).chars().count() <= 161);
    }

    #[test]
    fn data_key_debug_is_redacted() {
        let dk = DataKey::new(vec![1, 2, 3]);
        assert_eq!(format!("{dk:?}"), "DataKey([REDACTED; 3])");
    }
}
