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
pub mod retry;
pub mod ssm;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use tokio::sync::{Mutex, OnceCell};

use self::cache::{DataKeyCache, MaterialCache, MaterialsCache, TokenBucket};
use self::retry::Caller;
use crate::keys::remote::{RemoteRecipient, RemoteSource};
use crate::keys::{RawRsaKeyring, RsaPadding};
use crate::registry::model::{AwsSpec, SourceKind, SourceSpec};
use crate::registry::SourceMaterial;
use crate::telemetry::Metrics;

/// State shared by every AWS-backed key: clients, retry policy, caches.
pub struct AwsShared {
    spec: AwsSpec,
    pub(crate) metrics: Arc<Metrics>,
    config: OnceCell<SdkConfig>,
    kms_clients: Mutex<HashMap<String, aws_sdk_kms::Client>>,
    ssm_client: OnceCell<aws_sdk_ssm::Client>,
    pub(crate) kms_caller: Caller,
    pub(crate) ssm_caller: Caller,
    pub(crate) private_keys: Arc<MaterialCache<RawRsaKeyring>>,
    pub(crate) public_keys: Arc<MaterialCache<RawRsaKeyring>>,
    pub(crate) data_keys: Arc<DataKeyCache>,
    /// SSM parameters known not to exist (negative cache).
    pub(crate) absent: moka::sync::Cache<String, ()>,
    pub(crate) discovery_bucket: TokenBucket,
    pub(crate) materials: Arc<MaterialsCache>,
}

impl AwsShared {
    async fn sdk_config(&self) -> &SdkConfig {
        self.config
            .get_or_init(|| async {
                let timeouts = TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(1).min(self.spec.attempt_timeout))
                    .operation_attempt_timeout(self.spec.attempt_timeout)
                    .build();
                let mut loader = aws_config::defaults(BehaviorVersion::latest())
                    .retry_config(RetryConfig::disabled())
                    .timeout_config(timeouts);
                if let Some(region) = &self.spec.region {
                    loader = loader.region(Region::new(region.clone()));
                }
                if let Some(url) = &self.spec.endpoint_url {
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

/// A compiled AWS source entry.
pub struct RemoteSourceBuilt {
    pub provider_id: String,
    pub key_name: Option<String>,
    pub material: SourceMaterial,
}

impl AwsKeys {
    pub fn new(spec: AwsSpec, metrics: Arc<Metrics>) -> Self {
        let shared = AwsShared {
            kms_caller: Caller::new("kms", &spec, metrics.clone()),
            ssm_caller: Caller::new("ssm", &spec, metrics.clone()),
            private_keys: MaterialCache::new("ssm_private_keys", &spec.key_cache, metrics.clone()),
            public_keys: MaterialCache::new("ssm_public_keys", &spec.key_cache, metrics.clone()),
            data_keys: Arc::new(DataKeyCache::new(&spec.data_key_cache, metrics.clone())),
            absent: moka::sync::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(spec.discovery.negative_ttl)
                .build(),
            discovery_bucket: TokenBucket::new(
                spec.discovery.lookups_per_second,
                spec.discovery.burst,
            ),
            materials: Arc::new(MaterialsCache::new(
                &spec.consumer_data_key_cache,
                metrics.clone(),
            )),
            config: OnceCell::new(),
            kms_clients: Mutex::new(HashMap::new()),
            ssm_client: OnceCell::new(),
            spec,
            metrics,
        };
        AwsKeys {
            shared: Arc::new(shared),
        }
    }

    /// The consumer-side materials cache (caching-CMM limits).
    pub fn materials_cache(&self) -> Arc<MaterialsCache> {
        self.shared.materials.clone()
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
    ) -> Arc<dyn RemoteRecipient> {
        Arc::new(ssm::SsmRsaRecipient::new(
            self.shared.clone(),
            param,
            provider_id,
            key_name,
            padding,
        ))
    }

    /// Compiles an `aws-kms`, `aws-kms-discovery` or `ssm-discovery` source;
    /// on failure, the `(field, problem)` pairs.
    pub fn source(
        &self,
        _id: &str,
        spec: &SourceSpec,
    ) -> Result<RemoteSourceBuilt, Vec<(&'static str, String)>> {
        let kind = spec.kind.as_str();
        let mut problems: Vec<(&'static str, String)> = Vec::new();
        let unused =
            |problems: &mut Vec<(&'static str, String)>, present: bool, field: &'static str| {
                if present {
                    problems.push((field, format!("not used by type `{kind}`; remove it")));
                }
            };
        unused(&mut problems, spec.private_key.is_some(), "private_key");
        unused(&mut problems, spec.key.is_some(), "key");
        match spec.kind {
            SourceKind::AwsKms | SourceKind::AwsKmsDiscovery => {
                unused(&mut problems, spec.padding.is_some(), "padding");
                unused(&mut problems, spec.key_name.is_some(), "key_name");
                unused(
                    &mut problems,
                    spec.key_name_pattern.is_some(),
                    "key_name_pattern",
                );
                unused(
                    &mut problems,
                    spec.parameter_template.is_some(),
                    "parameter_template",
                );
                if spec
                    .provider_id
                    .as_deref()
                    .is_some_and(|p| p != kms::PROVIDER_ID)
                {
                    problems.push((
                        "provider_id",
                        format!("KMS keys always use provider id `{}`", kms::PROVIDER_ID),
                    ));
                }
            }
            _ => {}
        }
        let built = match spec.kind {
            SourceKind::AwsKms => {
                unused_discovery(&mut problems, spec);
                match &spec.key_ids {
                    Some(ids) if !ids.is_empty() => {
                        for id in ids {
                            if id.starts_with("arn:") && arn::KmsArn::parse(id).is_none() {
                                problems.push((
                                    "key_ids",
                                    format!("`{id}` is not a KMS key or alias ARN"),
                                ));
                            }
                        }
                        Some(RemoteSourceBuilt {
                            provider_id: kms::PROVIDER_ID.into(),
                            key_name: None,
                            material: SourceMaterial::Remote(Arc::new(kms::KmsSource::strict(
                                self.shared.clone(),
                                ids,
                                spec.region.clone(),
                            ))),
                        })
                    }
                    _ => {
                        problems.push((
                            "key_ids",
                            "required for type `aws-kms`: at least one key ARN or alias".into(),
                        ));
                        None
                    }
                }
            }
            SourceKind::AwsKmsDiscovery => {
                if spec.key_ids.is_some() {
                    problems.push((
                        "key_ids",
                        "not used by type `aws-kms-discovery`; use `aws-kms` for fixed keys".into(),
                    ));
                }
                match &spec.discovery_filter {
                    Some(f) if !f.account_ids.is_empty() && !f.partition.is_empty() => {
                        Some(RemoteSourceBuilt {
                            provider_id: kms::PROVIDER_ID.into(),
                            key_name: None,
                            material: SourceMaterial::Remote(Arc::new(kms::KmsSource::discovery(
                                self.shared.clone(),
                                f.partition.clone(),
                                f.account_ids.clone(),
                                spec.region.clone(),
                            ))),
                        })
                    }
                    _ => {
                        problems.push((
                            "discovery_filter",
                            "required for type `aws-kms-discovery`: a partition and at least one account id".into(),
                        ));
                        None
                    }
                }
            }
            SourceKind::SsmDiscovery => {
                unused(&mut problems, spec.key_ids.is_some(), "key_ids");
                unused(
                    &mut problems,
                    spec.discovery_filter.is_some(),
                    "discovery_filter",
                );
                unused(&mut problems, spec.region.is_some(), "region");
                unused(&mut problems, spec.key_name.is_some(), "key_name");
                let pattern =
                    match ssm::key_name_pattern(spec.key_name_pattern.as_deref().unwrap_or("uuid"))
                    {
                        Ok(p) => Some(p),
                        Err(e) => {
                            problems.push(("key_name_pattern", e));
                            None
                        }
                    };
                let template = match &spec.parameter_template {
                    Some(t) if t.contains("{key_id}") && t.starts_with('/') => Some(t.clone()),
                    Some(_) => {
                        problems.push((
                            "parameter_template",
                            "must be an absolute parameter path containing `{key_id}`".into(),
                        ));
                        None
                    }
                    None => {
                        problems.push((
                            "parameter_template",
                            "required for type `ssm-discovery`, e.g. `/amazon-connect/encryption/{key_id}/private-key`".into(),
                        ));
                        None
                    }
                };
                let provider_id = spec
                    .provider_id
                    .clone()
                    .unwrap_or_else(|| "AmazonConnect".into());
                match (pattern, template) {
                    (Some(p), Some(t)) => Some(RemoteSourceBuilt {
                        material: SourceMaterial::Remote(Arc::new(ssm::SsmDiscovery::new(
                            self.shared.clone(),
                            &provider_id,
                            p,
                            &t,
                            spec.padding.unwrap_or(RsaPadding::OaepSha512),
                        ))),
                        provider_id,
                        key_name: None,
                    }),
                    _ => None,
                }
            }
            SourceKind::RawRsa | SourceKind::RawAes => {
                problems.push(("type", "not an AWS source type".into()));
                None
            }
        };
        match built {
            Some(b) if problems.is_empty() => Ok(b),
            _ => Err(problems),
        }
    }

    /// A consumer's KMS key.
    pub fn recipient(&self, key_id: &str) -> Result<Arc<dyn RemoteRecipient>, String> {
        if key_id.starts_with("arn:") && arn::KmsArn::parse(key_id).is_none() {
            return Err(format!("`{key_id}` is not a KMS key or alias ARN"));
        }
        Ok(Arc::new(kms::KmsRecipient::new(
            self.shared.clone(),
            key_id.to_owned(),
        )))
    }
}

fn unused_discovery(problems: &mut Vec<(&'static str, String)>, spec: &SourceSpec) {
    if spec.discovery_filter.is_some() {
        problems.push((
            "discovery_filter",
            "not used by type `aws-kms`; use `aws-kms-discovery`".into(),
        ));
    }
}
