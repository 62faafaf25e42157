//! Raw AES-GCM keyring (128/192/256-bit wrapping keys).
//!
//! The data key is sealed with AES-GCM under the wrapping key with the
//! serialized encryption context as AAD; provider info is
//! key name ‖ tag bits (128) ‖ IV length (12) ‖ IV, per the spec.

use std::fmt;

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_128_GCM, AES_192_GCM, AES_256_GCM};
use zeroize::Zeroizing;

use super::KeyError;
use crate::esdk::keyring::RAW_AES_INFO_SUFFIX;
use crate::esdk::{
    DataKey, EncryptedDataKey, Identity, KeyNameLayout, KeyringContext, Recipient, UnwrapError,
};

const IV_LEN: usize = 12;
const TAG_LEN: usize = 16;

pub struct RawAesKeyring {
    provider_id: String,
    key_name: String,
    bits: usize,
    key: LessSafeKey,
}

impl fmt::Debug for RawAesKeyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawAesKeyring")
            .field("provider_id", &self.provider_id)
            .field("key_name", &self.key_name)
            .field("bits", &self.bits)
            .finish_non_exhaustive()
    }
}

impl RawAesKeyring {
    /// `key` must be 16, 24 or 32 bytes. The caller's copy should be zeroized by the caller.
    pub fn new(
        provider_id: impl Into<String>,
        key_name: impl Into<String>,
        key: &[u8],
    ) -> Result<Self, KeyError> {
        let alg = match key.len() {
            16 => &AES_128_GCM,
            24 => &AES_192_GCM,
            32 => &AES_256_GCM,
            n => {
                return Err(KeyError::Invalid(format!(
                    "AES wrapping key must be 128, 192 or 256 bits, not {}",
                    n * 8
                )))
            }
        };
        let unbound =
            UnboundKey::new(alg, key).map_err(|_| KeyError::Invalid("unusable AES key".into()))?;
        Ok(RawAesKeyring {
            provider_id: provider_id.into(),
            key_name: key_name.into(),
            bits: key.len() * 8,
            key: LessSafeKey::new(unbound),
        })
    }

    pub fn bits(&self) -> usize {
        self.bits
    }
}

fn context_aad(ctx: &KeyringContext<'_>) -> Result<Vec<u8>, UnwrapError> {
    ctx.encryption_context
        .serialize()
        .map_err(|_| UnwrapError("encryption context cannot be serialized".into()))
}

impl Identity for RawAesKeyring {
    fn provider_id(&self) -> &str {
        &self.provider_id
    }

    fn key_name(&self) -> &[u8] {
        self.key_name.as_bytes()
    }

    fn layout(&self) -> KeyNameLayout {
        KeyNameLayout::RawAes
    }

    fn unwrap(
        &self,
        edk: &EncryptedDataKey,
        ctx: &KeyringContext<'_>,
    ) -> Result<Option<DataKey>, UnwrapError> {
        if edk.provider_id != self.provider_id
            || KeyNameLayout::RawAes.key_name(&edk.provider_info) != Some(self.key_name.as_bytes())
        {
            return Ok(None);
        }
        let iv = &edk.provider_info[edk.provider_info.len() - IV_LEN..];
        debug_assert_eq!(RAW_AES_INFO_SUFFIX, 8 + IV_LEN);
        let expected = ctx.suite.data_key_len();
        if edk.ciphertext.len() != expected + TAG_LEN {
            return Err(UnwrapError(
                "encrypted data key has the wrong length".into(),
            ));
        }
        let (ct, tag) = edk.ciphertext.split_at(expected);
        let aad = context_aad(ctx)?;
        let nonce =
            Nonce::try_assume_unique_for_key(iv).map_err(|_| UnwrapError("bad IV".into()))?;
        let mut out = Zeroizing::new(vec![0u8; expected]);
        self.key
            .open_separate_gather(nonce, Aad::from(&aad), ct, tag, &mut out)
            .map_err(|_| UnwrapError("AES-GCM authentication of the data key failed".into()))?;
        Ok(Some(DataKey::from_zeroizing(out)))
    }
}

impl Recipient for RawAesKeyring {
    fn label(&self) -> String {
        format!("{}/{}", self.provider_id, self.key_name)
    }

    fn describe(&self) -> String {
        format!("AES-{}-GCM as {}", self.bits, self.label())
    }

    fn wrap(
        &self,
        data_key: &DataKey,
        ctx: &KeyringContext<'_>,
    ) -> Result<EncryptedDataKey, UnwrapError> {
        let mut iv = [0u8; IV_LEN];
        aws_lc_rs::rand::fill(&mut iv).map_err(|_| UnwrapError("random IV".into()))?;
        let aad = context_aad(ctx)?;
        let mut ciphertext = data_key.as_bytes().to_vec();
        let tag = self
            .key
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(iv),
                Aad::from(&aad),
                &mut ciphertext,
            )
            .map_err(|_| UnwrapError("AES-GCM seal failed".into()))?;
        ciphertext.extend_from_slice(tag.as_ref());
        let mut info = Vec::with_capacity(self.key_name.len() + RAW_AES_INFO_SUFFIX);
        info.extend_from_slice(self.key_name.as_bytes());
        info.extend_from_slice(&((TAG_LEN * 8) as u32).to_be_bytes());
        info.extend_from_slice(&(IV_LEN as u32).to_be_bytes());
        info.extend_from_slice(&iv);
        Ok(EncryptedDataKey {
            provider_id: self.provider_id.clone(),
            provider_info: info,
            ciphertext,
        })
    }
}
