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
use crate::keys::remote::{FetchedRecipient, RemoteRecipient, RemoteSource};
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
            kms_caller: AwsCaller::new("kms", &options.retry, metrics.clone()),
            ssm_caller: AwsCaller::new("ssm", &options.retry, metrics.clone()),
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
