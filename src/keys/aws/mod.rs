//! AWS-backed keys: SSM-held private keys, KMS sources and KMS consumer keys.

use std::sync::Arc;

use crate::keys::remote::{RemoteRecipient, RemoteSource};
use crate::keys::RsaPadding;
use crate::registry::model::{AwsSpec, SourceSpec};
use crate::registry::SourceMaterial;
use crate::telemetry::Metrics;

/// Factory and shared state (clients, caches, limiters) for AWS-backed keys.
pub struct AwsKeys {
    #[allow(dead_code)]
    spec: AwsSpec,
    #[allow(dead_code)]
    metrics: Arc<Metrics>,
}

/// A compiled AWS source entry.
pub struct RemoteSourceBuilt {
    pub provider_id: String,
    pub key_name: Option<String>,
    pub material: SourceMaterial,
}

impl AwsKeys {
    pub fn new(spec: AwsSpec, metrics: Arc<Metrics>) -> Self {
        AwsKeys { spec, metrics }
    }

    pub fn ssm_private_key(
        &self,
        _param: &str,
        _provider_id: &str,
        _key_name: &str,
        _padding: RsaPadding,
    ) -> Arc<dyn RemoteSource> {
        todo!("issue 4")
    }

    pub fn source(
        &self,
        _id: &str,
        _spec: &SourceSpec,
    ) -> Result<RemoteSourceBuilt, Vec<(&'static str, String)>> {
        Err(vec![(
            "type",
            "AWS-backed sources are not implemented yet".into(),
        )])
    }

    pub fn recipient(&self, _key_id: &str) -> Result<Arc<dyn RemoteRecipient>, String> {
        Err("AWS KMS consumer keys are not implemented yet".into())
    }
}
