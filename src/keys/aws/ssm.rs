//! RSA keys held in SSM Parameter Store (SecureString), the way Amazon Connect
//! users keep them: one explicit parameter per key, or a discovery rule that
//! maps a Connect key id to `/amazon-connect/encryption/{key_id}/private-key`.

use std::sync::Arc;

use super::retry::AwsFailure;
use super::AwsShared;
use crate::esdk::{EncryptedDataKey, Identity, KeyringContext, Recipient};
use crate::jwe;
use crate::keys::jwe_keys::{self, PublicKind};
use crate::keys::remote::{
    BoxFuture, FetchedJweRecipient, FetchedRecipient, KeyAccessError, RemoteSource, Unwrapped,
};
use crate::keys::secret::{FetchedSecret, SecretDigest};
use crate::keys::{RawRsaKeyring, RsaPadding};

/// Maps a failed SSM operation on `param` to a key-access error.
pub fn ssm_error(param: &str, f: AwsFailure) -> KeyAccessError {
    if f.transient {
        return KeyAccessError::Unavailable {
            message: match &f.code {
                Some(code) => format!("ssm:{param}: {code} ({})", f.message),
                None => format!("ssm:{param}: {}", f.message),
            },
            retry_after: Some(std::time::Duration::from_secs(1)),
        };
    }
    if f.code_is(&["ParameterNotFound", "ParameterVersionNotFound"]) {
        KeyAccessError::NotFound(format!("ssm:{param}"))
    } else if f.code_is(&["AccessDeniedException", "UnrecognizedClientException"]) {
        KeyAccessError::AccessDenied(format!("ssm:{param}"))
    } else {
        KeyAccessError::Invalid(format!(
            "ssm:{param}: {}: {}",
            f.code.as_deref().unwrap_or("error"),
            f.message
        ))
    }
}

/// A caller credential's secret in an SSM SecureString, kept as its digest
/// behind the key-material cache (refreshed like keys, served stale while SSM
/// is unreachable).
pub struct SsmSecret {
    aws: Arc<AwsShared>,
    param: String,
}

impl SsmSecret {
    pub fn new(aws: Arc<AwsShared>, param: &str) -> Self {
        SsmSecret {
            aws,
            param: param.into(),
        }
    }
}

impl FetchedSecret for SsmSecret {
    fn label(&self) -> String {
        format!("ssm:{}", self.param)
    }

    fn fetch(&self) -> BoxFuture<'_, Result<Arc<SecretDigest>, KeyAccessError>> {
        Box::pin(async move {
            let (aws, param) = (self.aws.clone(), self.param.clone());
            self.aws
                .secrets
                .get(&self.param, move || {
                    let (aws, param) = (aws.clone(), param.clone());
                    async move {
                        let value = parameter(&aws, &param).await?;
                        Ok(SecretDigest::of(
                            value.trim_end_matches(['\n', '\r']).as_bytes(),
                        ))
                    }
                })
                .await
        })
    }
}

/// A parameter's value, decrypted.
pub(super) async fn parameter(
    aws: &AwsShared,
    param: &str,
) -> Result<zeroize::Zeroizing<String>, KeyAccessError> {
    let client = aws.ssm().await;
    let out = aws
        .ssm_caller
        .call("GetParameter", || {
            client
                .get_parameter()
                .name(param)
                .with_decryption(true)
                .send()
        })
        .await
        .map_err(|f| ssm_error(param, f))?;
    Ok(zeroize::Zeroizing::new(
        out.parameter()
            .and_then(|p| p.value())
            .ok_or_else(|| KeyAccessError::NotFound(format!("ssm:{param} has no value")))?
            .to_owned(),
    ))
}

/// Fetches a parameter (decrypted) and parses it as an RSA key.
async fn fetch(
    aws: Arc<AwsShared>,
    param: String,
    provider_id: String,
    key_name: String,
    padding: RsaPadding,
    private: bool,
) -> Result<RawRsaKeyring, KeyAccessError> {
    let value = parameter(&aws, &param).await?;
    // Parsing validates the RSA key (milliseconds of CPU). It happens once per
    // fetch, and fetches are cached for `key_cache.refresh_after`, so it runs
    // on the runtime's blocking pool; unwrapping with the key runs on the
    // broker's CPU pool like any other key.
    tokio::task::spawn_blocking(move || {
        let parsed = if private {
            RawRsaKeyring::from_private_pem(&provider_id, &key_name, padding, value.as_bytes())
        } else {
            RawRsaKeyring::from_public_pem(&provider_id, &key_name, padding, value.as_bytes())
        };
        parsed.map_err(|e| KeyAccessError::Invalid(format!("ssm:{param}: {e}")))
    })
    .await
    .map_err(|e| KeyAccessError::Invalid(format!("key parsing failed: {e}")))?
}

fn cache_key(param: &str, provider_id: &str, key_name: &str, padding: RsaPadding) -> String {
    format!(
        "{param}\u{0}{provider_id}\u{0}{key_name}\u{0}{}",
        padding.as_str()
    )
}

/// An RSA key (private or public half) held in one SSM parameter, fetched
/// through the matching material cache.
struct SsmKey {
    aws: Arc<AwsShared>,
    param: String,
    provider_id: String,
    key_name: String,
    padding: RsaPadding,
    private: bool,
}

impl SsmKey {
    async fn keyring(&self) -> Result<Arc<RawRsaKeyring>, KeyAccessError> {
        let cache = if self.private {
            &self.aws.private_keys
        } else {
            &self.aws.public_keys
        };
        let (aws, param, pid, name, padding, private) = (
            self.aws.clone(),
            self.param.clone(),
            self.provider_id.clone(),
            self.key_name.clone(),
            self.padding,
            self.private,
        );
        cache
            .get(
                &cache_key(&self.param, &self.provider_id, &self.key_name, self.padding),
                move || {
                    fetch(
                        aws.clone(),
                        param.clone(),
                        pid.clone(),
                        name.clone(),
                        padding,
                        private,
                    )
                },
            )
            .await
    }
}

/// One RSA private key at an explicit SSM parameter.
pub struct SsmRsaSource(SsmKey);

impl SsmRsaSource {
    pub fn new(
        aws: Arc<AwsShared>,
        param: &str,
        provider_id: &str,
        key_name: &str,
        padding: RsaPadding,
    ) -> Self {
        SsmRsaSource(SsmKey {
            aws,
            param: param.into(),
            provider_id: provider_id.into(),
            key_name: key_name.into(),
            padding,
            private: true,
        })
    }
}

impl RemoteSource for SsmRsaSource {
    fn key_names(&self) -> Option<Vec<String>> {
        Some(vec![self.0.key_name.clone()])
    }

    fn answers_for(&self, provider_info: &[u8]) -> bool {
        provider_info == self.0.key_name.as_bytes()
    }

    fn resolve<'a>(
        &'a self,
        _edk: &'a EncryptedDataKey,
        _ctx: KeyringContext<'a>,
    ) -> BoxFuture<'a, Result<Option<Unwrapped>, KeyAccessError>> {
        Box::pin(async move {
            let identity: Arc<dyn Identity> = self.0.keyring().await?;
            Ok(Some(Unwrapped::Identity(identity)))
        })
    }

    fn self_test(&self) -> BoxFuture<'_, Result<String, KeyAccessError>> {
        Box::pin(async move {
            let k = self.0.keyring().await?;
            Ok(format!(
                "RSA-{} {} from ssm:{} parses",
                k.modulus_bits(),
                self.0.padding.as_str(),
                self.0.param
            ))
        })
    }
}

/// A key-name pattern: `uuid`, or a regular expression matched against the whole name.
pub fn key_name_pattern(text: &str) -> Result<regex_lite::Regex, String> {
    let source = if text.eq_ignore_ascii_case("uuid") {
        "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}".to_owned()
    } else {
        text.to_owned()
    };
    regex_lite::Regex::new(&format!("^(?:{source})$")).map_err(|e| format!("invalid pattern: {e}"))
}

/// Discovery: any key name matching the pattern is looked up at the templated
/// parameter. New keys work as soon as their parameter exists; names that do
/// not exist are remembered (negative cache), and lookups of names never seen
/// before are rate-limited, so junk key ids cannot hammer SSM.
pub struct SsmDiscovery {
    aws: Arc<AwsShared>,
    provider_id: String,
    pattern: regex_lite::Regex,
    template: String,
    padding: RsaPadding,
}

impl SsmDiscovery {
    pub fn new(
        aws: Arc<AwsShared>,
        provider_id: &str,
        pattern: regex_lite::Regex,
        template: &str,
        padding: RsaPadding,
    ) -> Self {
        SsmDiscovery {
            aws,
            provider_id: provider_id.into(),
            pattern,
            template: template.into(),
            padding,
        }
    }

    fn parameter(&self, key_id: &str) -> String {
        self.template.replace("{key_id}", key_id)
    }
}

impl RemoteSource for SsmDiscovery {
    fn key_names(&self) -> Option<Vec<String>> {
        None
    }

    fn answers_for(&self, provider_info: &[u8]) -> bool {
        std::str::from_utf8(provider_info).is_ok_and(|s| self.pattern.is_match(s))
    }

    fn resolve<'a>(
        &'a self,
        edk: &'a EncryptedDataKey,
        _ctx: KeyringContext<'a>,
    ) -> BoxFuture<'a, Result<Option<Unwrapped>, KeyAccessError>> {
        Box::pin(async move {
            let Some(key_id) = std::str::from_utf8(&edk.provider_info)
                .ok()
                .filter(|s| self.pattern.is_match(s))
                .map(str::to_owned)
            else {
                return Ok(None);
            };
            let key = SsmKey {
                aws: self.aws.clone(),
                param: self.parameter(&key_id),
                provider_id: self.provider_id.clone(),
                key_name: key_id,
                padding: self.padding,
                private: true,
            };
            if self.aws.absent.get(&key.param).is_some() {
                self.aws.metrics.cache_event("ssm_absent", "hit");
                return Err(KeyAccessError::NotFound(format!(
                    "ssm:{} (remembered as absent)",
                    key.param
                )));
            }
            // Only lookups of key ids not already held spend discovery tokens.
            let held = cache_key(&key.param, &key.provider_id, &key.key_name, key.padding);
            if !self.aws.private_keys.contains(&held) {
                if let Err(wait) = self.aws.discovery_bucket.try_take() {
                    return Err(KeyAccessError::RateLimited { retry_after: wait });
                }
            }
            let keyring = match key.keyring().await {
                Err(KeyAccessError::NotFound(m)) => {
                    self.aws.absent.insert(key.param.clone(), ());
                    return Err(KeyAccessError::NotFound(m));
                }
                other => other?,
            };
            let identity: Arc<dyn Identity> = keyring;
            Ok(Some(Unwrapped::Identity(identity)))
        })
    }

    fn self_test(&self) -> BoxFuture<'_, Result<String, KeyAccessError>> {
        Box::pin(async move {
            // Check every key currently under the template's fixed prefix.
            let prefix = self
                .template
                .split("{key_id}")
                .next()
                .unwrap_or("/")
                .trim_end_matches('/')
                .to_owned();
            let prefix = if prefix.is_empty() {
                "/".to_owned()
            } else {
                prefix
            };
            let client = self.aws.ssm().await;
            let mut found = 0;
            let mut next: Option<String> = None;
            loop {
                let token = next.clone();
                let out = self
                    .aws
                    .ssm_caller
                    .call("GetParametersByPath", || {
                        client
                            .get_parameters_by_path()
                            .path(&prefix)
                            .recursive(true)
                            .with_decryption(true)
                            .set_next_token(token.clone())
                            .send()
                    })
                    .await
                    .map_err(|f| ssm_error(&prefix, f))?;
                for p in out.parameters() {
                    let (Some(name), Some(value)) = (p.name(), p.value()) else {
                        continue;
                    };
                    let Some(key_id) = key_id_of(&self.template, name) else {
                        continue;
                    };
                    if !self.pattern.is_match(key_id) {
                        continue;
                    }
                    let value = zeroize::Zeroizing::new(value.to_owned());
                    RawRsaKeyring::from_private_pem(
                        &self.provider_id,
                        key_id,
                        self.padding,
                        value.as_bytes(),
                    )
                    .map_err(|e| KeyAccessError::Invalid(format!("ssm:{name}: {e}")))?;
                    found += 1;
                }
                next = out.next_token().map(str::to_owned);
                if next.is_none() {
                    break;
                }
            }
            Ok(format!(
                "discovery under ssm:{prefix}: {found} private key(s) found, all parse"
            ))
        })
    }
}

/// The `{key_id}` part of a parameter name, if it fits the template.
fn key_id_of<'a>(template: &str, name: &'a str) -> Option<&'a str> {
    let (before, after) = template.split_once("{key_id}")?;
    let rest = name.strip_prefix(before)?;
    let id = rest.strip_suffix(after)?;
    (!id.is_empty() && !id.contains('/')).then_some(id)
}

/// A consumer RSA public key kept in SSM: fetched, cached, refreshed in the
/// background, and served stale while SSM is unreachable (the "last known
/// public key" fallback).
pub struct SsmRsaRecipient(SsmKey);

impl SsmRsaRecipient {
    pub fn new(
        aws: Arc<AwsShared>,
        param: &str,
        provider_id: &str,
        key_name: &str,
        padding: RsaPadding,
    ) -> Self {
        SsmRsaRecipient(SsmKey {
            aws,
            param: param.into(),
            provider_id: provider_id.into(),
            key_name: key_name.into(),
            padding,
            private: false,
        })
    }
}

impl FetchedRecipient for SsmRsaRecipient {
    fn label(&self) -> String {
        format!("{}/{}", self.0.provider_id, self.0.key_name)
    }

    fn fetch(&self) -> BoxFuture<'_, Result<Arc<dyn Recipient>, KeyAccessError>> {
        Box::pin(async move {
            let recipient: Arc<dyn Recipient> = self.0.keyring().await?;
            Ok(recipient)
        })
    }

    fn self_test(&self) -> BoxFuture<'_, Result<String, KeyAccessError>> {
        Box::pin(async move {
            let k = self.0.keyring().await?;
            Ok(format!(
                "RSA-{} public key from ssm:{} parses",
                k.modulus_bits(),
                self.0.param
            ))
        })
    }
}

/// A JWE consumer's public key (RSA or EC, as its type says) kept in SSM:
/// fetched, parsed into a JWE recipient, cached, refreshed in the background
/// and served stale while SSM is unreachable, like [`SsmRsaRecipient`].
pub struct SsmJweRecipient {
    aws: Arc<AwsShared>,
    param: String,
    kid: String,
    kind: PublicKind,
}

impl SsmJweRecipient {
    pub fn new(aws: Arc<AwsShared>, param: &str, kid: &str, kind: PublicKind) -> Self {
        SsmJweRecipient {
            aws,
            param: param.into(),
            kid: kid.into(),
            kind,
        }
    }

    async fn recipient(&self) -> Result<Arc<jwe::Recipient>, KeyAccessError> {
        let (aws, param, kid, kind) = (
            self.aws.clone(),
            self.param.clone(),
            self.kid.clone(),
            self.kind,
        );
        let cache_key = format!("{}\u{0}{}\u{0}{}", self.param, self.kid, self.kind);
        self.aws
            .jwe_public_keys
            .get(&cache_key, move || {
                let (aws, param, kid) = (aws.clone(), param.clone(), kid.clone());
                async move {
                    let value = parameter(&aws, &param).await?;
                    // Parsing checks the key (an RSA modulus, a point on the
                    // curve): off the reactor, once per fetch, as for ESDK keys.
                    tokio::task::spawn_blocking(move || {
                        jwe_keys::public_key_recipient(&kid, value.as_bytes(), kind)
                            .map_err(|e| KeyAccessError::Invalid(format!("ssm:{param}: {e}")))
                    })
                    .await
                    .map_err(|e| KeyAccessError::Invalid(format!("key parsing failed: {e}")))?
                }
            })
            .await
    }
}

impl FetchedJweRecipient for SsmJweRecipient {
    fn label(&self) -> String {
        format!("ssm:{} (kid {})", self.param, self.kid)
    }

    fn fetch(&self) -> BoxFuture<'_, Result<Arc<jwe::Recipient>, KeyAccessError>> {
        Box::pin(self.recipient())
    }

    fn self_test(&self) -> BoxFuture<'_, Result<String, KeyAccessError>> {
        Box::pin(async move {
            let r = self.recipient().await?;
            Ok(format!(
                "JWE {} ({}) public key from ssm:{} parses",
                r.alg(),
                r.key_info(),
                self.param
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_and_patterns() {
        let t = "/amazon-connect/encryption/{key_id}/private-key";
        assert_eq!(
            key_id_of(
                t,
                "/amazon-connect/encryption/3f2504e0-4f89-41d3-9a0c-0305e82c3301/private-key"
            ),
            Some("3f2504e0-4f89-41d3-9a0c-0305e82c3301")
        );
        assert_eq!(
            key_id_of(t, "/amazon-connect/encryption/x/y/private-key"),
            None
        );
        let p = key_name_pattern("uuid").unwrap();
        assert!(p.is_match("3f2504e0-4f89-41d3-9a0c-0305e82c3301"));
        assert!(!p.is_match("3f2504e0-4f89-41d3-9a0c-0305e82c3301/../x"));
        assert!(!p.is_match("junk"));
        assert!(key_name_pattern("(").is_err());
    }
}
