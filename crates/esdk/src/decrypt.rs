//! One-call decryption with synchronous identities.

use super::context::EncryptionContext;
use super::edk::EdkSummary;
use super::error::Error;
use super::header::Header;
use super::keyring::{DataKey, IdentitySet, KeyringContext};
use super::limits::DecryptPolicy;
use super::message::Message;
use super::plaintext::Plaintext;

/// A successfully decrypted message.
pub struct Decrypted {
    pub plaintext: Plaintext,
    pub header: Header,
    /// The EDK (provider id and key name) whose key opened the message.
    pub opened_by: EdkSummary,
    /// Index of that EDK in the header.
    pub edk_index: usize,
}

/// Finds the identity each EDK addresses (by lookup) and unwraps the first
/// that succeeds. "Not mine" moves on; "mine but failed" is remembered and
/// reported if nothing else succeeds.
pub fn unwrap_data_key(
    identities: &IdentitySet,
    header: &Header,
    ctx: &KeyringContext<'_>,
) -> Result<(DataKey, usize), Error> {
    let mut failure: Option<Error> = None;
    for (index, edk) in header.encrypted_data_keys.iter().enumerate() {
        for identity in identities.lookup(edk) {
            match identity.unwrap(edk, ctx) {
                Ok(Some(key)) if key.len() == header.suite.data_key_len() => {
                    return Ok((key, index))
                }
                Ok(Some(_)) => {
                    failure.get_or_insert(Error::UnwrapFailed {
                        key: edk.summary(),
                        reason: "unwrapped data key has the wrong length for the suite".into(),
                    });
                }
                Ok(None) => {}
                Err(e) => {
                    failure.get_or_insert(Error::UnwrapFailed {
                        key: edk.summary(),
                        reason: e.0,
                    });
                }
            }
        }
    }
    Err(failure.unwrap_or_else(|| Error::NoMatchingKey {
        edks: header
            .encrypted_data_keys
            .iter()
            .map(|e| e.summary())
            .collect(),
    }))
}

/// Parses, checks policy, unwraps the data key and opens the message.
///
/// `reproduced` is the caller's expected encryption context: pairs present in
/// the message must match; pairs absent from it are the required-only pairs the
/// writer authenticated without storing.
pub fn decrypt(
    bytes: &[u8],
    identities: &IdentitySet,
    policy: &DecryptPolicy,
    reproduced: Option<&EncryptionContext>,
) -> Result<Decrypted, Error> {
    let message = Message::parse(bytes, &policy.limits)?;
    policy.check_suite(message.header.suite)?;
    let ctx = message.decryption_context(reproduced)?;
    let (data_key, edk_index) = unwrap_data_key(
        identities,
        &message.header,
        &ctx.keyring_context(&message.header),
    )?;
    let plaintext = message.open(&data_key, &ctx)?;
    let opened_by = message.header.encrypted_data_keys[edk_index].summary();
    Ok(Decrypted {
        plaintext,
        header: message.header,
        opened_by,
        edk_index,
    })
}
