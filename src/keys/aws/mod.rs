//! AWS-backed keys: SSM-held RSA private keys (explicit and discovered), KMS
//! sources (strict and discovery) and KMS consumer keys, with the caches and
//! the retry policy that keep reseal serving when AWS throttles or is down.
//!
//! AWS clients are built on first use from the standard chain (IRSA web
//! identity on EKS, environment, profile), with the region and endpoint from
//! the `aws` section or `AWS_REGION` / `AWS_ENDPOINT_URL`. Nothing here is
//! touched by a configuration that uses no AWS key.

pub mod arn;
pub mod cache;
pub mod kms;
pub mod options;
pub mod retry;
pub mod ssm;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use tokio::sync::{Mutex, OnceCell};

use self::cache::{DataKeyCache, KeyMaterialCache, TokenBucket};
pub use self::options::{
    AwsOptions, DataKeyCacheOptions, DiscoveryOptions, KeyCacheOptions, RetryOptions,
};
use self::retry::AwsCaller;
use crate::jwe;
use crate::keys::jwe_keys::PublicKind;
use crate::keys::remote::{FetchedJweRecipient, FetchedRecipient, RemoteRecipient, RemoteSource};
use crate::keys::secret::{FetchedSecret, SecretDigest};
use crate::keys::{RawRsaKeyring, RsaPadding};
use crate::telemetry::Metrics;

/// State shared by every AWS-backed key: clients, retry policy, caches.
pub struct AwsShared {
    options: AwsOptions,
    pub(crate) metrics: Arc<Metrics>,
    config: OnceCell<SdkConfig>,
    kms_clients: Mutex<HashMap<String, aws_sdk_kms::Client>>,
    ssm_client: OnceCell<aws_sdk_ssm::Client>,
    pub(crate) kms_caller: AwsCaller,
    pub(crate) ssm_caller: AwsCaller,
    pub(crate) private_keys: Arc<KeyMaterialCache<RawRsaKeyring>>,
    pub(crate) public_keys: Arc<KeyMaterialCache<RawRsaKeyring>>,
    /// JWE consumers' public keys (RSA or EC), parsed into recipients.
    pub(crate) jwe_public_keys: Arc<KeyMaterialCache<jwe::Recipient>>,
    pub(crate) data_keys: Arc<DataKeyCache>,
    /// Digests of caller secrets held in SSM.
    pub(crate) secrets: Arc<KeyMaterialCache<SecretDigest>>,
    /// SSM parameters known not to exist (negative cache).
    pub(crate) absent: moka::sync::Cache<String, ()>,
    pub(crate) discovery_bucket: TokenBucket,
}

impl AwsShared {
    async fn sdk_config(&self) -> &SdkConfig {
        self.config
            .get_or_init(|| async {
                let attempt_timeout = self.options.retry.attempt_timeout;
                let timeouts = TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(1).min(attempt_timeout))
                    .operation_attempt_timeout(attempt_timeout)
                    .build();
                let mut loader = aws_config::defaults(BehaviorVersion::latest())
                    .retry_config(RetryConfig::disabled())
                    .timeout_config(timeouts);
                if let Some(region) = &self.options.region {
                    loader = loader.region(Region::new(region.clone()));
                }
                if let Some(url) = &self.options.endpoint_url {
                    loader = loader.endpoint_url(url);
                }
                loader.load().await
            })
            .await
    }

    /// A KMS client for `region` (the configured region when `None`).
    pub(crate) async fn kms(&self, region: Option<&str>) -> aws_sdk_kms::Client {
        let base = self.sdk_config().await;
        let key = region.unwrap_or("").to_owned();
        let mut clients = self.kms_clients.lock().await;
        clients
            .entry(key)
            .or_insert_with(|| {
                let mut b = aws_sdk_kms::config::Builder::from(base);
                if let Some(r) = region {
                    b = b.region(Region::new(r.to_owned()));
                }
                aws_sdk_kms::Client::from_conf(b.build())
            })
            .clone()
    }

    pub(crate) async fn ssm(&self) -> aws_sdk_ssm::Client {
        let base = self.sdk_config().await.clone();
        self.ssm_client
            .get_or_init(|| async move { aws_sdk_ssm::Client::new(&base) })
            .await
            .clone()
    }
}

/// Factory for AWS-backed sources and consumer keys; one per process, shared
/// across registry reloads so caches survive them.
pub struct AwsKeys {
    shared: Arc<AwsShared>,
}

impl AwsKeys {
    pub fn new(options: AwsOptions, metrics: Arc<Metrics>) -> Self {
        let shared = AwsShared {
            kms_caller: AwsCaller::new("kms", &options.retry, metrics.clone(), kms::kms_error),
            ssm_caller: AwsCaller::new("ssm", &options.retry, metrics.clone(), ssm::ssm_error),
            private_keys: KeyMaterialCache::new(
                "ssm_private_keys",
                &options.key_cache,
                metrics.clone(),
            ),
            public_keys: KeyMaterialCache::new(
                "ssm_public_keys",
                &options.key_cache,
                metrics.clone(),
            ),
            jwe_public_keys: KeyMaterialCache::new(
                "ssm_jwe_public_keys",
                &options.key_cache,
                metrics.clone(),
            ),
            data_keys: Arc::new(DataKeyCache::new(&options.data_key_cache, metrics.clone())),
            secrets: KeyMaterialCache::new("ssm_secrets", &options.key_cache, metrics.clone()),
            absent: moka::sync::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(options.discovery.negative_ttl)
                .build(),
            discovery_bucket: TokenBucket::new(
                options.discovery.lookups_per_second,
                options.discovery.burst,
            ),
            config: OnceCell::new(),
            kms_clients: Mutex::new(HashMap::new()),
            ssm_client: OnceCell::new(),
            options,
            metrics,
        };
        AwsKeys {
            shared: Arc::new(shared),
        }
    }

    /// An RSA private key at an explicit SSM parameter.
    pub fn ssm_private_key(
        &self,
        param: &str,
        provider_id: &str,
        key_name: &str,
        padding: RsaPadding,
    ) -> Arc<dyn RemoteSource> {
        Arc::new(ssm::SsmRsaSource::new(
            self.shared.clone(),
            param,
            provider_id,
            key_name,
            padding,
        ))
    }

    /// A consumer RSA public key at an SSM parameter.
    pub fn ssm_public_key(
        &self,
        param: &str,
        provider_id: &str,
        key_name: &str,
        padding: RsaPadding,
    ) -> Arc<dyn FetchedRecipient> {
        Arc::new(ssm::SsmRsaRecipient::new(
            self.shared.clone(),
            param,
            provider_id,
            key_name,
            padding,
        ))
    }

    /// A JWE consumer's public key (RSA or EC, `kind`) at an SSM parameter,
    /// sealed to with `kid`.
    pub fn ssm_jwe_public_key(
        &self,
        param: &str,
        kid: &str,
        kind: PublicKind,
    ) -> Arc<dyn FetchedJweRecipient> {
        Arc::new(ssm::SsmJweRecipient::new(
            self.shared.clone(),
            param,
            kid,
            kind,
        ))
    }

    /// RSA private keys found in SSM by key name: names matching `pattern` are
    /// looked up at `template` with `{key_id}` replaced (Amazon Connect key discovery).
    pub fn ssm_discovery(
        &self,
        provider_id: &str,
        pattern: regex_lite::Regex,
        template: &str,
        padding: RsaPadding,
    ) -> Arc<dyn RemoteSource> {
        Arc::new(ssm::SsmDiscovery::new(
            self.shared.clone(),
            provider_id,
            pattern,
            template,
            padding,
        ))
    }

    /// KMS symmetric keys named by ARN, alias or key id (the ESDK's strict mode).
    pub fn kms_strict(&self, key_ids: &[String], region: Option<String>) -> Arc<dyn RemoteSource> {
        Arc::new(kms::KmsSource::strict(self.shared.clone(), key_ids, region))
    }

    /// Any KMS key in `partition` and `account_ids` (the ESDK's discovery mode).
    pub fn kms_discovery(
        &self,
        partition: String,
        account_ids: Vec<String>,
        region: Option<String>,
    ) -> Arc<dyn RemoteSource> {
        Arc::new(kms::KmsSource::discovery(
            self.shared.clone(),
            partition,
            account_ids,
            region,
        ))
    }

    /// A caller credential's secret in an SSM SecureString.
    pub fn ssm_secret(&self, param: &str) -> Arc<dyn FetchedSecret> {
        Arc::new(ssm::SsmSecret::new(self.shared.clone(), param))
    }

    /// The text of an SSM parameter (a SecureString is decrypted), read once
    /// through the retry policy: a configuration kept in Parameter Store
    /// (`reseal lambda --config ssm:/NAME`).
    pub async fn parameter_text(
        &self,
        param: &str,
    ) -> Result<zeroize::Zeroizing<String>, crate::keys::remote::KeyAccessError> {
        ssm::parameter(&self.shared, param).await
    }

    /// A consumer's KMS key (ARN, alias ARN or key id).
    pub fn kms_recipient(&self, key_id: &str) -> Arc<dyn RemoteRecipient> {
        Arc::new(kms::KmsRecipient::new(
            self.shared.clone(),
            key_id.to_owned(),
        ))
    }
}

/// docs/iam.md against the calls the code makes: every `AwsCaller::call` in
/// this folder, attributed to the role whose code path makes it.
#[cfg(test)]
mod iam_doc {
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::Path;

    /// The roles of docs/iam.md, by the `impl` blocks that serve them.
    const ROLES: &[(&str, &str, &str)] = &[
        ("kms.rs", "impl RemoteSource for KmsSource", "kms-source"),
        (
            "kms.rs",
            "impl RemoteRecipient for KmsRecipient",
            "kms-consumer",
        ),
        ("ssm.rs", "impl RemoteSource for SsmRsaSource", "ssm"),
        ("ssm.rs", "impl RemoteSource for SsmDiscovery", "ssm"),
        ("ssm.rs", "impl FetchedRecipient for SsmRsaRecipient", "ssm"),
        // Secrets (`ssm:` caller credentials) and a configuration kept in SSM.
        ("ssm.rs", "pub(super) async fn parameter", "ssm"),
    ];

    /// A file's top-level items: (first line, last line, header).
    fn items(text: &str) -> Vec<(usize, usize, String)> {
        let mut out = Vec::new();
        let mut open: Option<(usize, String)> = None;
        for (i, line) in text.lines().enumerate() {
            let starts = [
                "impl",
                "fn ",
                "async fn",
                "pub fn",
                "pub async fn",
                "pub(crate) fn",
                "pub(crate) async fn",
                "pub(super) fn",
                "pub(super) async fn",
            ]
            .iter()
            .any(|p| line.starts_with(p));
            if starts && open.is_none() {
                let header = line.trim_end_matches(['{', ' ']).to_owned();
                open = Some((i, header));
            } else if line == "}" {
                if let Some((start, header)) = open.take() {
                    out.push((start, i, header));
                }
            }
        }
        out
    }

    fn fn_name(header: &str) -> Option<&str> {
        let rest = &header[header.find("fn ")? + 3..];
        rest.split(['(', '<']).next()
    }

    /// (role, "service:Operation") for every call in `src/keys/aws`.
    fn calls_by_role() -> BTreeMap<String, BTreeSet<String>> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/keys/aws");
        let call = regex_lite::Regex::new(r#"\.call\(\s*"([A-Za-z]+)""#).unwrap();
        let mut roles: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let mut unattributed = Vec::new();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let file = path.file_name().unwrap().to_string_lossy().into_owned();
            let text = std::fs::read_to_string(&path).unwrap();
            let text = text.split("#[cfg(test)]").next().unwrap_or("").to_owned();
            let items = items(&text);
            let roles_of_impl = |header: &str| -> Vec<&str> {
                ROLES
                    .iter()
                    .filter(|(f, h, _)| *f == file && header.starts_with(h))
                    .map(|(_, _, r)| *r)
                    .collect()
            };
            for m in call.captures_iter(&text) {
                let (Some(whole), Some(op)) = (m.get(0), m.get(1)) else {
                    continue;
                };
                let line = text[..whole.start()].lines().count().saturating_sub(1);
                let before = &text[whole.start().saturating_sub(300)..whole.start()];
                let service = match (before.rfind("kms_caller"), before.rfind("ssm_caller")) {
                    (Some(k), Some(s)) if s > k => "ssm",
                    (Some(_), _) => "kms",
                    (None, Some(_)) => "ssm",
                    (None, None) => {
                        unattributed.push(format!("{file}:{}: no kms_caller/ssm_caller", line + 1));
                        continue;
                    }
                };
                let action = format!("{service}:{}", op.as_str());
                let Some((_, _, header)) = items.iter().find(|(a, b, _)| *a <= line && line <= *b)
                else {
                    unattributed.push(format!("{file}:{}: {action} outside any item", line + 1));
                    continue;
                };
                let mut found: Vec<&str> = roles_of_impl(header);
                if found.is_empty() {
                    // A helper: it serves the roles of the impls that call it.
                    if let Some(name) = fn_name(header).filter(|_| !header.starts_with("impl")) {
                        let needle = format!("{name}(");
                        for (a, b, h) in &items {
                            let body: Vec<&str> = text.lines().skip(*a + 1).take(b - a).collect();
                            if body.iter().any(|l| l.contains(&needle)) {
                                found.extend(roles_of_impl(h));
                            }
                        }
                    }
                }
                if found.is_empty() {
                    unattributed.push(format!(
                        "{file}:{}: {action} in `{header}`, which serves no role of docs/iam.md \
                         (add its impl to ROLES here, and the action to the role's policy)",
                        line + 1
                    ));
                }
                for r in found {
                    roles
                        .entry(r.to_owned())
                        .or_default()
                        .insert(action.clone());
                }
            }
        }
        assert!(unattributed.is_empty(), "{}", unattributed.join("\n"));
        roles
    }

    /// The actions of each role's policy in docs/iam.md: (explicit, implicit).
    fn documented() -> BTreeMap<String, (BTreeSet<String>, BTreeSet<String>)> {
        let doc =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/iam.md"))
                .unwrap();
        let mut out = BTreeMap::new();
        for part in doc.split("<!-- role: ").skip(1) {
            let role = part.split(" -->").next().unwrap().to_owned();
            let json = part
                .split("```json")
                .nth(1)
                .unwrap()
                .split("```")
                .next()
                .unwrap();
            let policy: serde_json::Value = serde_json::from_str(json).unwrap();
            let (mut explicit, mut implicit) = (BTreeSet::new(), BTreeSet::new());
            for st in policy["Statement"].as_array().unwrap() {
                let target = if st["Sid"].as_str().unwrap_or("").starts_with("Implicit") {
                    &mut implicit
                } else {
                    &mut explicit
                };
                for a in st["Action"].as_array().unwrap() {
                    target.insert(a.as_str().unwrap().to_owned());
                }
            }
            out.insert(role, (explicit, implicit));
        }
        out
    }

    #[test]
    fn the_documented_policies_are_exactly_the_calls_the_code_makes() {
        let code = calls_by_role();
        let doc = documented();
        assert_eq!(
            code.keys().collect::<Vec<_>>(),
            doc.keys().collect::<Vec<_>>(),
            "roles in the code vs docs/iam.md"
        );
        for (role, calls) in &code {
            let (explicit, _) = &doc[role];
            assert_eq!(
                explicit, calls,
                "docs/iam.md, role `{role}`: the policy must list exactly the calls the code makes"
            );
        }
        // The self-test's round trip: a source KMS role needs GenerateDataKey.
        assert!(code["kms-source"].contains("kms:GenerateDataKey"));
        assert!(
            doc["ssm"].1.contains("kms:Decrypt"),
            "SecureStrings need kms:Decrypt"
        );
    }
}
