//! AWS KMS keys: sources (strict and discovery, MRK-aware) and consumer keys.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{EncryptionAlgorithmSpec, KeySpec, KeyState, KeyUsageType};

use super::arn::KmsArn;
use super::cache::DataKeyCache;
use super::retry::AwsFailure;
use super::AwsShared;
use crate::esdk::{AlgorithmSuite, DataKey, EncryptedDataKey, EncryptionContext, KeyringContext};
use crate::keys::remote::{BoxFuture, KeyAccessError, RemoteRecipient, RemoteSource, Unwrapped};

/// Provider id of KMS EDKs.
pub const PROVIDER_ID: &str = "aws-kms";

fn ec_map(ec: &EncryptionContext) -> HashMap<String, String> {
    ec.iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// Maps a failed KMS operation on `key` to a key-access error.
pub fn kms_error(key: &str, f: AwsFailure) -> KeyAccessError {
    let what = format!("{key}: {}", f.code.as_deref().unwrap_or("no response"));
    if f.transient {
        return KeyAccessError::Unavailable {
            message: match &f.code {
                Some(_) => format!("{what} ({})", f.message),
                None => format!("{key}: {}", f.message),
            },
            retry_after: Some(std::time::Duration::from_secs(1)),
        };
    }
    if f.code_is(&["NotFoundException"]) {
        KeyAccessError::NotFound(what)
    } else if f.code_is(&[
        "DisabledException",
        "KMSInvalidStateException",
        "KeyUnavailableException",
    ]) {
        KeyAccessError::Disabled(what)
    } else if f.code_is(&[
        "AccessDeniedException",
        "UnrecognizedClientException",
        "InvalidSignatureException",
    ]) {
        KeyAccessError::AccessDenied(what)
    } else if f.code_is(&["InvalidCiphertextException", "IncorrectKeyException"]) {
        KeyAccessError::Unwrap(what)
    } else {
        KeyAccessError::Invalid(format!("{what}: {}", f.message))
    }
}

/// DescribeKey and the checks that catch the "Invalid Key Type" trap.
async fn describe(
    aws: &AwsShared,
    key_id: &str,
    region: Option<&str>,
) -> Result<KmsArn, KeyAccessError> {
    let client = aws.kms(region).await;
    let out = aws
        .kms_caller
        .call("DescribeKey", || {
            client.describe_key().key_id(key_id).send()
        })
        .await
        .map_err(|f| kms_error(key_id, f))?;
    let meta = out.key_metadata().ok_or_else(|| {
        KeyAccessError::Invalid(format!("{key_id}: DescribeKey returned no metadata"))
    })?;
    if let Some(spec) = meta.key_spec() {
        if *spec != KeySpec::SymmetricDefault {
            return Err(KeyAccessError::Invalid(format!(
                "{key_id} is a {} key; reseal needs a symmetric (SYMMETRIC_DEFAULT) key here, or KMS answers \"Invalid Key Type\"",
                spec.as_str()
            )));
        }
    }
    if let Some(usage) = meta.key_usage() {
        if *usage != KeyUsageType::EncryptDecrypt {
            return Err(KeyAccessError::Invalid(format!(
                "{key_id} has key usage {}; reseal needs ENCRYPT_DECRYPT",
                usage.as_str()
            )));
        }
    }
    let state_ok = meta.key_state().is_none_or(|s| *s == KeyState::Enabled);
    if !meta.enabled() || !state_ok {
        return Err(KeyAccessError::Disabled(format!(
            "{key_id} is {}",
            meta.key_state().map(|s| s.as_str()).unwrap_or("disabled")
        )));
    }
    let arn = meta.arn().and_then(KmsArn::parse).ok_or_else(|| {
        KeyAccessError::Invalid(format!("{key_id}: DescribeKey returned no usable ARN"))
    })?;
    Ok(arn)
}

/// GenerateDataKey → Decrypt, the per-key round trip of `reseal validate`.
async fn round_trip(
    aws: &AwsShared,
    key_id: &str,
    region: Option<&str>,
) -> Result<(), KeyAccessError> {
    let client = aws.kms(region).await;
    let ec: HashMap<String, String> = [("reseal-self-test".to_owned(), "1".to_owned())].into();
    let generated = aws
        .kms_caller
        .call("GenerateDataKey", || {
            client
                .generate_data_key()
                .key_id(key_id)
                .number_of_bytes(32)
                .set_encryption_context(Some(ec.clone()))
                .send()
        })
        .await
        .map_err(|f| kms_error(key_id, f))?;
    let blob = generated
        .ciphertext_blob()
        .ok_or_else(|| {
            KeyAccessError::Invalid(format!("{key_id}: GenerateDataKey returned no ciphertext"))
        })?
        .clone();
    let decrypted = aws
        .kms_caller
        .call("Decrypt", || {
            client
                .decrypt()
                .key_id(key_id)
                .ciphertext_blob(blob.clone())
                .set_encryption_context(Some(ec.clone()))
                .send()
        })
        .await
        .map_err(|f| kms_error(key_id, f))?;
    let same = match (generated.plaintext(), decrypted.plaintext()) {
        (Some(a), Some(b)) => {
            aws_lc_rs::constant_time::verify_slices_are_equal(a.as_ref(), b.as_ref()).is_ok()
        }
        _ => false,
    };
    if !same {
        return Err(KeyAccessError::Invalid(format!(
            "{key_id}: round trip returned a different data key"
        )));
    }
    Ok(())
}

/// A configured KMS key of a strict source.
struct ConfiguredKey {
    /// As written in the configuration (ARN, alias ARN, alias name or key id).
    configured: String,
    arn: Option<KmsArn>,
    /// The key ARN an alias resolves to (DescribeKey), once known.
    resolved: RwLock<Option<KmsArn>>,
}

impl ConfiguredKey {
    fn key_arn(&self) -> Option<KmsArn> {
        match &self.arn {
            Some(a) if !a.is_alias() => Some(a.clone()),
            _ => self.resolved.read().ok().and_then(|r| r.clone()),
        }
    }
}

enum Mode {
    Strict(Vec<ConfiguredKey>),
    Discovery {
        partition: String,
        accounts: Vec<String>,
    },
}

/// A KMS source: unwraps `aws-kms` EDKs through KMS Decrypt with the message's context.
pub struct KmsSource {
    aws: Arc<AwsShared>,
    mode: Mode,
    /// Discovery: the region multi-Region keys are used in.
    region: Option<String>,
    data_keys: Arc<DataKeyCache>,
}

impl KmsSource {
    pub fn strict(aws: Arc<AwsShared>, key_ids: &[String], region: Option<String>) -> Self {
        let keys = key_ids
            .iter()
            .map(|k| ConfiguredKey {
                configured: k.clone(),
                arn: KmsArn::parse(k),
                resolved: RwLock::new(None),
            })
            .collect();
        let data_keys = aws.data_keys.clone();
        KmsSource {
            aws,
            mode: Mode::Strict(keys),
            region,
            data_keys,
        }
    }

    pub fn discovery(
        aws: Arc<AwsShared>,
        partition: String,
        accounts: Vec<String>,
        region: Option<String>,
    ) -> Self {
        let data_keys = aws.data_keys.clone();
        KmsSource {
            aws,
            mode: Mode::Discovery {
                partition,
                accounts,
            },
            region,
            data_keys,
        }
    }

    /// The key to call Decrypt with for an EDK, if this source covers it.
    async fn key_for(&self, edk_arn: &KmsArn) -> Result<Option<KmsArn>, KeyAccessError> {
        match &self.mode {
            Mode::Strict(keys) => {
                for k in keys {
                    if k.key_arn().is_none() {
                        // An alias (or bare key id) not resolved yet: resolve it now.
                        let region = k
                            .arn
                            .as_ref()
                            .map(|a| a.region.clone())
                            .or_else(|| self.region.clone());
                        let arn = describe(&self.aws, &k.configured, region.as_deref()).await?;
                        if let Ok(mut r) = k.resolved.write() {
                            *r = Some(arn);
                        }
                    }
                    if let Some(arn) = k.key_arn() {
                        if arn.mrk_match(edk_arn) {
                            return Ok(Some(arn));
                        }
                    }
                }
                Ok(None)
            }
            Mode::Discovery {
                partition,
                accounts,
            } => {
                if edk_arn.partition != *partition
                    || !accounts.contains(&edk_arn.account)
                    || edk_arn.is_alias()
                {
                    return Ok(None);
                }
                Ok(Some(match &self.region {
                    Some(r) if edk_arn.is_mrk() => edk_arn.in_region(r),
                    _ => edk_arn.clone(),
                }))
            }
        }
    }
}

impl RemoteSource for KmsSource {
    fn key_names(&self) -> Option<Vec<String>> {
        match &self.mode {
            Mode::Strict(keys)
                if keys
                    .iter()
                    .all(|k| k.arn.as_ref().is_some_and(|a| !a.is_alias() && !a.is_mrk())) =>
            {
                Some(keys.iter().map(|k| k.configured.clone()).collect())
            }
            _ => None,
        }
    }

    fn answers_for(&self, provider_info: &[u8]) -> bool {
        let Some(edk) = std::str::from_utf8(provider_info)
            .ok()
            .and_then(KmsArn::parse)
        else {
            return false;
        };
        match &self.mode {
            Mode::Strict(keys) => keys.iter().any(|k| match k.key_arn() {
                Some(arn) => arn.mrk_match(&edk),
                // Unresolved alias: plausible if partition/account agree; unwrap resolves it.
                None => k
                    .arn
                    .as_ref()
                    .is_none_or(|a| a.partition == edk.partition && a.account == edk.account),
            }),
            Mode::Discovery {
                partition,
                accounts,
            } => edk.partition == *partition && accounts.contains(&edk.account),
        }
    }

    fn resolve<'a>(
        &'a self,
        edk: &'a EncryptedDataKey,
        ctx: KeyringContext<'a>,
    ) -> BoxFuture<'a, Result<Option<Unwrapped>, KeyAccessError>> {
        Box::pin(async move {
            if edk.provider_id != PROVIDER_ID {
                return Ok(None);
            }
            let Some(edk_arn) = std::str::from_utf8(&edk.provider_info)
                .ok()
                .and_then(KmsArn::parse)
            else {
                return Ok(None);
            };
            let Some(key) = self.key_for(&edk_arn).await? else {
                return Ok(None);
            };
            let cache_key = DataKeyCache::key(edk, ctx.encryption_context);
            if let Some(dk) = self.data_keys.get(&cache_key) {
                return Ok(Some(Unwrapped::DataKey(dk)));
            }
            let key_id = key.to_string();
            let client = self.aws.kms(Some(&key.region)).await;
            let ec = ec_map(ctx.encryption_context);
            let blob = Blob::new(edk.ciphertext.clone());
            let out = self
                .aws
                .kms_caller
                .call("Decrypt", || {
                    client
                        .decrypt()
                        .key_id(&key_id)
                        .ciphertext_blob(blob.clone())
                        .set_encryption_context(Some(ec.clone()))
                        .encryption_algorithm(EncryptionAlgorithmSpec::SymmetricDefault)
                        .send()
                })
                .await
                .map_err(|f| kms_error(&key_id, f))?;
            // The ESDK requires KMS to answer for the key that was asked for.
            if out.key_id() != Some(key_id.as_str()) {
                return Err(KeyAccessError::Unwrap(format!(
                    "KMS decrypted with {} instead of {key_id}",
                    out.key_id().unwrap_or("an unnamed key")
                )));
            }
            let plaintext = out
                .plaintext()
                .ok_or_else(|| KeyAccessError::Unwrap("KMS returned no plaintext".into()))?;
            if plaintext.as_ref().len() != ctx.suite.data_key_len() {
                return Err(KeyAccessError::Unwrap(
                    "KMS returned a data key of the wrong length".into(),
                ));
            }
            let dk = DataKey::new(plaintext.as_ref().to_vec());
            self.data_keys.insert(cache_key, &dk);
            Ok(Some(Unwrapped::DataKey(dk)))
        })
    }

    fn self_test(&self) -> BoxFuture<'_, Result<String, KeyAccessError>> {
        Box::pin(async move {
            match &self.mode {
                Mode::Strict(keys) => {
                    let mut done = Vec::new();
                    for k in keys {
                        let region = k
                            .arn
                            .as_ref()
                            .map(|a| a.region.clone())
                            .or_else(|| self.region.clone());
                        let arn = describe(&self.aws, &k.configured, region.as_deref()).await?;
                        round_trip(&self.aws, &arn.to_string(), Some(&arn.region)).await?;
                        if k.arn.as_ref().is_none_or(KmsArn::is_alias) {
                            if let Ok(mut r) = k.resolved.write() {
                                *r = Some(arn.clone());
                            }
                        }
                        done.push(arn.to_string());
                    }
                    Ok(format!(
                        "KMS symmetric key(s) {}: DescribeKey ok, GenerateDataKey/Decrypt round trip ok",
                        done.join(", ")
                    ))
                }
                Mode::Discovery {
                    partition,
                    accounts,
                } => Ok(format!(
                    "KMS discovery for partition {partition}, accounts {}",
                    accounts.join(", ")
                )),
            }
        })
    }
}

/// A consumer's KMS key: envelopes carry an `aws-kms` EDK the consumer opens
/// with its own ESDK KMS keyring.
pub struct KmsRecipient {
    aws: Arc<AwsShared>,
    key_id: String,
    region: Option<String>,
}

impl KmsRecipient {
    pub fn new(aws: Arc<AwsShared>, key_id: String) -> Self {
        let region = KmsArn::parse(&key_id).map(|a| a.region);
        KmsRecipient {
            aws,
            key_id,
            region,
        }
    }

    fn edk(
        &self,
        key_arn: Option<&str>,
        blob: Option<&Blob>,
    ) -> Result<EncryptedDataKey, KeyAccessError> {
        let arn = key_arn.ok_or_else(|| {
            KeyAccessError::Invalid(format!("{}: KMS returned no key ARN", self.key_id))
        })?;
        let blob = blob.ok_or_else(|| {
            KeyAccessError::Invalid(format!("{}: KMS returned no ciphertext", self.key_id))
        })?;
        Ok(EncryptedDataKey {
            provider_id: PROVIDER_ID.into(),
            provider_info: arn.as_bytes().to_vec(),
            ciphertext: blob.as_ref().to_vec(),
        })
    }
}

impl RemoteRecipient for KmsRecipient {
    fn label(&self) -> String {
        format!("{PROVIDER_ID}/{}", self.key_id)
    }

    fn generate<'a>(
        &'a self,
        suite: AlgorithmSuite,
        ec: &'a EncryptionContext,
    ) -> BoxFuture<'a, Result<(DataKey, EncryptedDataKey), KeyAccessError>> {
        Box::pin(async move {
            let client = self.aws.kms(self.region.as_deref()).await;
            let ec = ec_map(ec);
            let out = self
                .aws
                .kms_caller
                .call("GenerateDataKey", || {
                    client
                        .generate_data_key()
                        .key_id(&self.key_id)
                        .number_of_bytes(suite.data_key_len() as i32)
                        .set_encryption_context(Some(ec.clone()))
                        .send()
                })
                .await
                .map_err(|f| kms_error(&self.key_id, f))?;
            let plaintext = out
                .plaintext()
                .filter(|p| p.as_ref().len() == suite.data_key_len())
                .ok_or_else(|| {
                    KeyAccessError::Invalid(format!(
                        "{}: KMS returned no usable data key",
                        self.key_id
                    ))
                })?;
            let dk = DataKey::new(plaintext.as_ref().to_vec());
            Ok((dk, self.edk(out.key_id(), out.ciphertext_blob())?))
        })
    }

    fn wrap<'a>(
        &'a self,
        data_key: &'a DataKey,
        ec: &'a EncryptionContext,
    ) -> BoxFuture<'a, Result<EncryptedDataKey, KeyAccessError>> {
        Box::pin(async move {
            let client = self.aws.kms(self.region.as_deref()).await;
            let ec = ec_map(ec);
            let blob = Blob::new(data_key.as_bytes().to_vec());
            let out = self
                .aws
                .kms_caller
                .call("Encrypt", || {
                    client
                        .encrypt()
                        .key_id(&self.key_id)
                        .plaintext(blob.clone())
                        .set_encryption_context(Some(ec.clone()))
                        .send()
                })
                .await
                .map_err(|f| kms_error(&self.key_id, f))?;
            self.edk(out.key_id(), out.ciphertext_blob())
        })
    }

    fn self_test(&self) -> BoxFuture<'_, Result<String, KeyAccessError>> {
        Box::pin(async move {
            let arn = describe(&self.aws, &self.key_id, self.region.as_deref()).await?;
            round_trip(&self.aws, &arn.to_string(), Some(&arn.region)).await?;
            Ok(format!(
                "KMS symmetric key {arn}: DescribeKey ok, GenerateDataKey/Decrypt round trip ok"
            ))
        })
    }
}
