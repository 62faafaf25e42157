//! Encryption: materials (data key, EDKs, signing key) and sealing a message.
//!
//! Split in two so that wrapping can happen anywhere (synchronously for raw
//! keys, over the network for KMS) and materials can be reused across messages
//! (the caching-CMM pattern): [`EncryptionMaterials`] then [`seal`].

use std::borrow::Cow;
use std::collections::BTreeSet;

use zeroize::Zeroizing;

use super::codec::{put_u16, put_u32, put_u64};
use super::context::{EncryptionContext, PUBLIC_KEY_FIELD, RESERVED_PREFIX};
use super::crypto::{
    body_aad, derive_keys, sequence_iv, AAD_FINAL_FRAME, AAD_FRAME, AAD_SINGLE_BLOCK,
};
use super::edk::EncryptedDataKey;
use super::error::{ContextError, Error};
use super::header::{ContentType, HeaderBody};
use super::keyring::{DataKey, KeyringContext, Recipient};
use super::limits::EncryptCommitment;
use super::signature::SigningKey;
use super::suite::{AlgorithmSuite, FormatVersion, IV_LEN, TAG_LEN};

/// Default frame length of the reference ESDKs (and of Amazon Connect).
pub const DEFAULT_FRAME_LENGTH: u32 = 4096;

/// Options for one encryption.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncryptOptions {
    /// Defaults to 0x0478: committed and unsigned (see DESIGN.md for why unsigned).
    pub suite: AlgorithmSuite,
    /// Plaintext bytes per frame. 0 writes the legacy non-framed format.
    pub frame_length: u32,
    pub commitment: EncryptCommitment,
    /// Refuse to write more EDKs than this (mirrors the decrypt-side limit).
    pub max_encrypted_data_keys: usize,
}

impl Default for EncryptOptions {
    fn default() -> Self {
        EncryptOptions {
            suite: AlgorithmSuite::Aes256GcmHkdfSha512CommitKey,
            frame_length: DEFAULT_FRAME_LENGTH,
            commitment: EncryptCommitment::Require,
            max_encrypted_data_keys: 16,
        }
    }
}

/// Everything needed to seal messages: a suite, a data key, its EDKs, the full
/// encryption context and (for signed suites) the signing key.
pub struct EncryptionMaterials {
    suite: AlgorithmSuite,
    data_key: DataKey,
    encryption_context: EncryptionContext,
    required_keys: BTreeSet<String>,
    encrypted_data_keys: Vec<EncryptedDataKey>,
    signing_key: Option<SigningKey>,
}

/// Materials before the data key exists: the suite, the full context and
/// (for signed suites) the signing key. Lets a KMS GenerateDataKey call see the
/// final encryption context, public key included.
pub struct MaterialsDraft {
    suite: AlgorithmSuite,
    encryption_context: EncryptionContext,
    signing_key: Option<SigningKey>,
}

impl MaterialsDraft {
    pub fn suite(&self) -> AlgorithmSuite {
        self.suite
    }

    /// The context every EDK must be bound to.
    pub fn encryption_context(&self) -> &EncryptionContext {
        &self.encryption_context
    }

    pub fn finish(self, data_key: DataKey) -> Result<EncryptionMaterials, Error> {
        if data_key.len() != self.suite.data_key_len() {
            return Err(Error::InvalidRequest(
                "data key length does not match the suite",
            ));
        }
        Ok(EncryptionMaterials {
            suite: self.suite,
            data_key,
            encryption_context: self.encryption_context,
            required_keys: BTreeSet::new(),
            encrypted_data_keys: Vec::new(),
            signing_key: self.signing_key,
        })
    }
}

impl EncryptionMaterials {
    /// Starts materials: checks the context, creates the signing key for signed
    /// suites and adds its public half to the context.
    pub fn begin(
        suite: AlgorithmSuite,
        mut encryption_context: EncryptionContext,
    ) -> Result<MaterialsDraft, Error> {
        if let Some(key) = encryption_context
            .keys()
            .find(|k| k.starts_with(RESERVED_PREFIX))
        {
            return Err(ContextError::ReservedKey {
                key: key.to_owned(),
            }
            .into());
        }
        let signing_key = match suite.signature() {
            Some(curve) => {
                let key = SigningKey::generate(curve)?;
                encryption_context.insert(PUBLIC_KEY_FIELD, key.public_key_base64()?);
                Some(key)
            }
            None => None,
        };
        Ok(MaterialsDraft {
            suite,
            encryption_context,
            signing_key,
        })
    }

    /// Fresh materials with a random data key.
    pub fn generate(
        suite: AlgorithmSuite,
        encryption_context: EncryptionContext,
    ) -> Result<Self, Error> {
        Self::begin(suite, encryption_context)?.finish(DataKey::generate(suite)?)
    }

    /// Marks context keys as "required": authenticated but not stored in the
    /// message, so readers must supply them (required-encryption-context CMM).
    pub fn require_keys<'a>(
        &mut self,
        keys: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), Error> {
        for k in keys {
            if !self.encryption_context.contains_key(k) {
                return Err(ContextError::MissingKey { key: k.to_owned() }.into());
            }
            self.required_keys.insert(k.to_owned());
        }
        Ok(())
    }

    pub fn suite(&self) -> AlgorithmSuite {
        self.suite
    }

    pub fn data_key(&self) -> &DataKey {
        &self.data_key
    }

    pub fn encryption_context(&self) -> &EncryptionContext {
        &self.encryption_context
    }

    pub fn encrypted_data_keys(&self) -> &[EncryptedDataKey] {
        &self.encrypted_data_keys
    }

    pub fn keyring_context(&self) -> KeyringContext<'_> {
        KeyringContext {
            suite: self.suite,
            encryption_context: &self.encryption_context,
        }
    }

    /// Adds an EDK wrapped elsewhere (KMS).
    pub fn push_encrypted_data_key(&mut self, edk: EncryptedDataKey) {
        self.encrypted_data_keys.push(edk);
    }

    /// Wraps the data key for `recipient` and records the EDK.
    pub fn wrap_for(&mut self, recipient: &dyn Recipient) -> Result<(), Error> {
        let edk = recipient
            .wrap(&self.data_key, &self.keyring_context())
            .map_err(|e| Error::WrapFailed {
                key: recipient.label(),
                reason: e.0,
            })?;
        self.encrypted_data_keys.push(edk);
        Ok(())
    }
}

/// Writes one message under `materials`. A fresh message id per call, so
/// reusing materials never reuses a content key.
pub fn seal(
    plaintext: &[u8],
    materials: &EncryptionMaterials,
    frame_length: u32,
) -> Result<Vec<u8>, Error> {
    let suite = materials.suite;
    if materials.encrypted_data_keys.is_empty() {
        return Err(Error::InvalidRequest(
            "no encrypted data keys: at least one recipient is required",
        ));
    }
    let version = suite.format_version();
    let mut message_id = [0u8; 32];
    let message_id = &mut message_id[..version.message_id_len()];
    aws_lc_rs::rand::fill(message_id).map_err(|_| Error::Crypto("random message id"))?;
    let message_id = &*message_id;
    let (key, commitment) = derive_keys(suite, &materials.data_key, message_id)?;

    // Required keys are authenticated but not stored; without any (the usual
    // case) the stored context is the materials' own, borrowed.
    let stored_context = if materials.required_keys.is_empty() {
        Cow::Borrowed(&materials.encryption_context)
    } else {
        let mut ec = materials.encryption_context.clone();
        for k in &materials.required_keys {
            ec.remove(k);
        }
        Cow::Owned(ec)
    };
    let content_type = if frame_length == 0 {
        ContentType::NonFramed
    } else {
        ContentType::Framed
    };
    let body = HeaderBody {
        version,
        suite,
        message_id,
        encryption_context: &stored_context,
        encrypted_data_keys: &materials.encrypted_data_keys,
        content_type,
        frame_length,
        suite_data: commitment.as_ref().map_or(&[][..], |c| &c[..]),
    };
    let frame_overhead = 4 + 4 + IV_LEN + 4 + TAG_LEN;
    let frames = if frame_length == 0 {
        1
    } else {
        plaintext.len() / frame_length as usize + 1
    };
    // The header goes straight into the output. Plaintext is copied in and
    // encrypted in place: the buffer is zeroized if anything fails half-way,
    // and sized so it never reallocates (which would leave a plaintext copy
    // behind in freed memory).
    let header_len = body.serialized_len() + IV_LEN + TAG_LEN;
    let mut out = Zeroizing::new(Vec::with_capacity(
        header_len + plaintext.len() + frames * frame_overhead + 110,
    ));
    body.write(&mut out)?;
    let body_len = out.len();
    let header_tag = if materials.required_keys.is_empty() {
        key.seal(&[0u8; IV_LEN], &out[..body_len], &mut [])?
    } else {
        let mut aad = out[..body_len].to_vec();
        materials
            .encryption_context
            .subset(materials.required_keys.iter().map(String::as_str))
            .serialize_into(&mut aad)?;
        key.seal(&[0u8; IV_LEN], &aad, &mut [])?
    };
    if version == FormatVersion::V1 {
        // The header IV: always zero (the key is used once for the header).
        out.extend_from_slice(&[0u8; IV_LEN]);
    }
    out.extend_from_slice(&header_tag);

    if frame_length == 0 {
        let iv = sequence_iv(1);
        out.extend_from_slice(&iv);
        put_u64(&mut out, plaintext.len() as u64);
        let start = out.len();
        out.extend_from_slice(plaintext);
        let aad = body_aad(message_id, AAD_SINGLE_BLOCK, 1, plaintext.len() as u64);
        let tag = key.seal(&iv, &aad, &mut out[start..])?;
        out.extend_from_slice(&tag);
    } else {
        let frame_len = frame_length as usize;
        // Full regular frames, then a final frame holding the rest (which is a
        // whole frame when the length is an exact multiple, as the reference ESDKs do).
        let regular = if plaintext.is_empty() {
            0
        } else {
            (plaintext.len() - 1) / frame_len
        };
        if regular >= (u32::MAX - 1) as usize {
            return Err(Error::InvalidRequest(
                "plaintext needs more frames than the format allows",
            ));
        }
        let mut seq: u32 = 1;
        for chunk in plaintext[..regular * frame_len].chunks(frame_len) {
            let iv = sequence_iv(seq);
            put_u32(&mut out, seq);
            out.extend_from_slice(&iv);
            let start = out.len();
            out.extend_from_slice(chunk);
            let aad = body_aad(message_id, AAD_FRAME, seq, frame_len as u64);
            let tag = key.seal(&iv, &aad, &mut out[start..])?;
            out.extend_from_slice(&tag);
            seq += 1;
        }
        let last = &plaintext[regular * frame_len..];
        let iv = sequence_iv(seq);
        put_u32(&mut out, 0xFFFF_FFFF);
        put_u32(&mut out, seq);
        out.extend_from_slice(&iv);
        put_u32(&mut out, last.len() as u32);
        let start = out.len();
        out.extend_from_slice(last);
        let aad = body_aad(message_id, AAD_FINAL_FRAME, seq, last.len() as u64);
        let tag = key.seal(&iv, &aad, &mut out[start..])?;
        out.extend_from_slice(&tag);
    }

    if let Some(signer) = &materials.signing_key {
        let signature = signer.sign(&out)?;
        put_u16(&mut out, signature.len() as u16);
        out.extend_from_slice(&signature);
    }
    Ok(std::mem::take(&mut *out))
}

/// One-call encryption for synchronous recipients: fresh materials, one EDK per
/// recipient (one message readable by each of them), sealed.
pub fn encrypt(
    plaintext: &[u8],
    recipients: &[&dyn Recipient],
    encryption_context: &EncryptionContext,
    options: &EncryptOptions,
) -> Result<Vec<u8>, Error> {
    options.commitment.check_suite(options.suite)?;
    if recipients.is_empty() {
        return Err(Error::InvalidRequest("at least one recipient is required"));
    }
    if recipients.len() > options.max_encrypted_data_keys {
        return Err(Error::InvalidRequest(
            "more recipients than the encrypted data key limit",
        ));
    }
    let mut materials = EncryptionMaterials::generate(options.suite, encryption_context.clone())?;
    for r in recipients {
        materials.wrap_for(*r)?;
    }
    seal(plaintext, &materials, options.frame_length)
}
