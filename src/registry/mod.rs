//! The consumer registry: configuration model, validation, self-test and hot reload.
//!
//! A [`Registry`] is an immutable, fully validated snapshot: every local key is
//! parsed, every reference resolved, every consumer and route known. Requests
//! take one snapshot (an `Arc`) and keep it to the end, so a reload never
//! changes a request in flight.

mod build;
mod check;
mod devkeys;
pub mod listing;
pub mod model;
mod reload;
mod yaml;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;

use crate::esdk::{
    self, AlgorithmSuite, DecryptPolicy, EncryptionContext, Header, KeyIndex, Keyring, Recipient,
};
use crate::jwe;
pub use crate::keys::cert::CertificateInfo;
use crate::keys::remote::{
    FetchedJweRecipient, FetchedRecipient, KeyAccessError, RemoteRecipient, RemoteSource,
};
use crate::keys::secret::{Secret, SecretDigest};
use crate::telemetry::KeyExpiry;
pub use build::{
    load, load_str, parse_file, Host, LoadError, LoadOptions, Loaded, DEFAULT_CONSUMER_SUITE,
};
pub use check::{self_test, self_test_with, Check, CheckStatus, SelfTestOptions};
pub use devkeys::generate_missing_dev_keys;
pub use model::{ConfigFile, ConsumerKeyKind, ContextField, EnvelopeFormatSpec, SourceKind};
pub use reload::{ConfigSource, RegistryHandle, ReloadOutcome};
pub use yaml::{Origin, Problem};

/// When a key may be used. Open ends are unbounded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Window {
    pub not_before: Option<OffsetDateTime>,
    pub not_after: Option<OffsetDateTime>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowStatus {
    Active,
    NotYetValid,
    Expired,
}

impl Window {
    pub fn status(&self, now: OffsetDateTime) -> WindowStatus {
        if self.not_before.is_some_and(|t| now < t) {
            WindowStatus::NotYetValid
        } else if self.not_after.is_some_and(|t| now > t) {
            WindowStatus::Expired
        } else {
            WindowStatus::Active
        }
    }

    pub fn is_active(&self, now: OffsetDateTime) -> bool {
        self.status(now) == WindowStatus::Active
    }

    /// The tighter of two windows.
    pub fn intersect(self, other: Window) -> Window {
        let max = |a: Option<OffsetDateTime>, b: Option<OffsetDateTime>| match (a, b) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        let min = |a: Option<OffsetDateTime>, b: Option<OffsetDateTime>| match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        Window {
            not_before: max(self.not_before, other.not_before),
            not_after: min(self.not_after, other.not_after),
        }
    }
}

/// Request limits, swapped with the registry on reload.
#[derive(Debug, Clone)]
pub struct BrokerLimits {
    pub max_ciphertext_bytes: usize,
    pub max_consumers_per_call: usize,
    pub max_batch_items: usize,
    /// Unwrap attempts per source key per message.
    pub max_unwrap_attempts_per_key: usize,
    /// Private-key (RSA) unwrap attempts per message.
    pub max_private_key_attempts: usize,
    /// Base64 text accepted in the raw `ciphertext` field.
    pub allow_base64_in_ciphertext: bool,
    /// Message-format limits applied to every input.
    pub message: esdk::Limits,
}

/// How a source key holds its private material.
#[derive(Clone)]
pub enum SourceMaterial {
    /// Parsed at load (inline, `file:`, `env:`); unwrapping is pure CPU.
    Local(Arc<dyn Keyring>),
    /// Fetched or used through AWS (SSM, KMS) behind caches.
    Remote(Arc<dyn RemoteSource>),
}

/// Constraints on an input's encryption context.
#[derive(Debug, Clone, Default)]
pub struct ContextRules {
    pub require: BTreeMap<String, String>,
    pub allow: BTreeMap<String, Vec<String>>,
}

impl ContextRules {
    /// The first rule the context breaks, as the key it concerns.
    pub fn violation(&self, ec: &EncryptionContext) -> Option<String> {
        for (k, v) in &self.require {
            if ec.get(k) != Some(v.as_str()) {
                return Some(k.clone());
            }
        }
        for (k, allowed) in &self.allow {
            match ec.get(k) {
                Some(v) if allowed.iter().any(|a| a == v) => {}
                _ => return Some(k.clone()),
            }
        }
        None
    }

    pub fn is_empty(&self) -> bool {
        self.require.is_empty() && self.allow.is_empty()
    }
}

/// A configured key that opens inputs.
pub struct SourceKey {
    pub id: String,
    pub kind: SourceKind,
    pub provider_id: String,
    /// The EDK key name it answers to (None for discovery rules).
    pub key_name: Option<String>,
    pub material: SourceMaterial,
    pub window: Window,
    pub policy: DecryptPolicy,
    pub context_rules: ContextRules,
    /// How long before `decrypt_until` the self-test warns.
    pub expiry_warning: Duration,
    /// Where the material comes from, for operators (`file:...`, `ssm:...`,
    /// KMS key ids, a discovery rule); never the material itself.
    pub reference: String,
}

impl fmt::Debug for SourceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SourceKey")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("provider_id", &self.provider_id)
            .field("key_name", &self.key_name)
            .finish_non_exhaustive()
    }
}

/// Source keys indexed for lookup by the EDKs of a message.
#[derive(Default)]
pub struct SourceSet {
    exact: KeyIndex<Arc<SourceKey>>,
    /// Rules that answer for any key name of a provider (KMS/SSM discovery).
    discovery: BTreeMap<String, Vec<Arc<SourceKey>>>,
    by_id: BTreeMap<String, Arc<SourceKey>>,
}

/// A source key a message's EDK points at.
#[derive(Clone)]
pub struct Candidate {
    pub source: Arc<SourceKey>,
    pub edk_index: usize,
}

impl SourceSet {
    pub fn insert(&mut self, key: SourceKey) {
        let key = Arc::new(key);
        match (&key.key_name, &key.material) {
            (Some(name), SourceMaterial::Local(identity)) => {
                self.exact.insert(
                    &key.provider_id,
                    name.as_bytes(),
                    identity.layout(),
                    key.clone(),
                );
            }
            (Some(name), SourceMaterial::Remote(remote)) => {
                for name in remote.key_names().unwrap_or_else(|| vec![name.clone()]) {
                    self.exact.insert(
                        &key.provider_id,
                        name.as_bytes(),
                        esdk::KeyNameLayout::Whole,
                        key.clone(),
                    );
                }
            }
            (None, SourceMaterial::Remote(remote)) => match remote.key_names() {
                Some(names) => {
                    for name in names {
                        self.exact.insert(
                            &key.provider_id,
                            name.as_bytes(),
                            esdk::KeyNameLayout::Whole,
                            key.clone(),
                        );
                    }
                }
                None => self
                    .discovery
                    .entry(key.provider_id.clone())
                    .or_default()
                    .push(key.clone()),
            },
            (None, SourceMaterial::Local(_)) => {}
        }
        self.by_id.insert(key.id.clone(), key);
    }

    pub fn get(&self, id: &str) -> Option<&Arc<SourceKey>> {
        self.by_id.get(id)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<SourceKey>> {
        self.by_id.values()
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// Every (source, EDK) pair the header addresses, in EDK order: exact
    /// matches first, then discovery rules for the EDK's provider. The hint,
    /// when given, keeps only sources whose id or key name equals it.
    pub fn candidates(&self, header: &Header, hint: Option<&str>) -> Vec<Candidate> {
        let mut out = Vec::new();
        for (edk_index, edk) in header.encrypted_data_keys.iter().enumerate() {
            let exact = self.exact.lookup(edk).iter();
            let discovered = self
                .discovery
                .get(&edk.provider_id)
                .into_iter()
                .flatten()
                .filter(|s| matches!(&s.material, SourceMaterial::Remote(r) if r.answers_for(&edk.provider_info)));
            for source in exact.chain(discovered) {
                let hinted = hint.is_none_or(|h| {
                    source.id == h
                        || source.key_name.as_deref() == Some(h)
                        || edk.provider_info == h.as_bytes()
                });
                if hinted {
                    out.push(Candidate {
                        source: source.clone(),
                        edk_index,
                    });
                }
            }
        }
        out
    }
}

/// How a consumer key wraps data keys. The first three serve ESDK
/// consumers, the last two JWE consumers; a consumer's keys are all of its
/// format's kinds.
#[derive(Clone)]
pub enum ConsumerWrap {
    /// Parsed at load: wrapping is pure CPU.
    Local(Arc<dyn Recipient>),
    /// Fetched from AWS (an SSM public key) behind a cache, then used like a local key.
    Fetched(Arc<dyn FetchedRecipient>),
    /// Wrapped by AWS KMS.
    Kms(Arc<dyn RemoteRecipient>),
    /// A JWE recipient parsed at load: sealing is pure CPU.
    Jwe(Arc<JweKey>),
    /// A JWE recipient fetched from AWS (an SSM public key) behind a cache,
    /// then used like a local one.
    JweFetched(Arc<dyn FetchedJweRecipient>),
}

/// A JWE consumer key parsed at load.
pub struct JweKey {
    pub recipient: jwe::Recipient,
    /// The key that opens what is sealed for it, where reseal holds it (a
    /// shared AES key): `reseal validate` seals test data and opens it again.
    pub opener: Option<jwe::DecryptionKey>,
}

/// What a consumer's envelopes are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsumerFormat {
    /// AWS Encryption SDK messages under [`Consumer::suite`] and
    /// [`Consumer::frame_length`].
    Esdk,
    /// JSON Web Encryption (RFC 7516), A256GCM.
    Jwe(JweOutput),
}

/// A JWE consumer's settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JweOutput {
    /// A forced serialization; `None`: compact with one active key, general
    /// JSON with several. Compact is only allowed for consumers whose keys
    /// are never active together; at the one instant where an old key's
    /// `not_after` is a new key's `not_before`, the newer key is used.
    pub serialization: Option<jwe::Serialization>,
    /// The `cty` header parameter.
    pub content_type: Option<String>,
}

/// One of a consumer's keys.
#[derive(Clone)]
pub struct ConsumerKey {
    pub id: String,
    pub kind: ConsumerKeyKind,
    pub wrap: ConsumerWrap,
    /// The key's own window intersected with its certificate's validity.
    pub window: Window,
    pub certificate: Option<CertificateInfo>,
    /// EDK provider id and key name the consumer's keyring expects (None for KMS keys).
    pub provider_id: Option<String>,
    pub key_name: Option<String>,
    /// Where the key comes from (`file:...`, `ssm:...`, a KMS key id); never the material.
    pub reference: String,
}

/// Which input context keys an envelope copies.
#[derive(Debug, Clone, Default)]
pub enum Propagate {
    #[default]
    None,
    All,
    Keys(Vec<String>),
}

#[derive(Debug, Clone, Default)]
pub struct OutputContext {
    pub fixed: EncryptionContext,
    pub add: Vec<ContextField>,
    pub propagate: Propagate,
}

/// Values available when an envelope's context is built.
pub struct ContextInputs<'a> {
    pub consumer_id: &'a str,
    pub source_key_id: &'a str,
    pub request_id: &'a str,
    pub source_message_id: &'a str,
    pub source_context: &'a EncryptionContext,
}

impl OutputContext {
    pub fn build(&self, inputs: &ContextInputs<'_>) -> EncryptionContext {
        let mut ec = EncryptionContext::new();
        match &self.propagate {
            Propagate::None => {}
            Propagate::All => {
                for (k, v) in inputs.source_context.iter() {
                    if !k.starts_with(esdk::context::RESERVED_PREFIX) {
                        ec.insert(k, v);
                    }
                }
            }
            Propagate::Keys(keys) => {
                for k in keys {
                    if let Some(v) = inputs.source_context.get(k) {
                        ec.insert(k.as_str(), v);
                    }
                }
            }
        }
        for (k, v) in self.fixed.iter() {
            ec.insert(k, v);
        }
        for field in &self.add {
            let v = match field {
                ContextField::ConsumerId => inputs.consumer_id,
                ContextField::SourceKeyId => inputs.source_key_id,
                ContextField::RequestId => inputs.request_id,
                ContextField::SourceMessageId => inputs.source_message_id,
            };
            ec.insert(field.key(), v);
        }
        ec
    }
}

/// A destination.
pub struct Consumer {
    pub id: String,
    pub keys: Vec<ConsumerKey>,
    /// ESDK or JWE envelopes.
    pub format: ConsumerFormat,
    /// ESDK envelopes' suite (JWE consumers: unused).
    pub suite: AlgorithmSuite,
    /// ESDK envelopes' frame length (JWE consumers: unused).
    pub frame_length: u32,
    pub output: OutputContext,
    pub expiry_warning: Duration,
}

impl fmt::Debug for Consumer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Consumer")
            .field("id", &self.id)
            .field("keys", &self.keys.iter().map(|k| &k.id).collect::<Vec<_>>())
            .field("format", &self.format)
            .field("suite", &self.suite)
            .finish_non_exhaustive()
    }
}

impl Consumer {
    /// Keys usable at `now`, in configuration order.
    pub fn active_keys(&self, now: OffsetDateTime) -> impl Iterator<Item = &ConsumerKey> {
        self.keys.iter().filter(move |k| k.window.is_active(now))
    }

    /// Every key is local (no AWS call is needed to seal for this consumer).
    pub fn is_local(&self) -> bool {
        self.keys
            .iter()
            .all(|k| matches!(k.wrap, ConsumerWrap::Local(_) | ConsumerWrap::Jwe(_)))
    }
}

/// Caller authorization (empty: no caller restrictions).
#[derive(Debug, Clone, Default)]
pub struct Callers {
    pub entries: Vec<CallerRule>,
}

/// One registered caller: how it is recognised, and what it may target.
#[derive(Debug, Clone)]
pub struct CallerRule {
    pub name: String,
    pub identities: Vec<String>,
    pub tokens: Vec<Secret>,
    pub basic: Vec<BasicCredential>,
    pub routes: Vec<String>,
    pub consumers: Vec<String>,
}

/// A username and the digest of its password.
#[derive(Debug, Clone)]
pub struct BasicCredential {
    pub username: String,
    pub password: Secret,
}

impl CallerRule {
    pub fn may_use_route(&self, route: &str) -> bool {
        self.routes.iter().any(|x| x == "*" || x == route)
    }

    pub fn may_target_consumer(&self, consumer: &str) -> bool {
        self.consumers.iter().any(|x| x == "*" || x == consumer)
    }
}

impl Callers {
    pub fn is_enforced(&self) -> bool {
        !self.entries.is_empty()
    }

    /// The callers a client certificate identity is registered for.
    pub fn by_identity(&self, identity: &str) -> Vec<&CallerRule> {
        self.entries
            .iter()
            .filter(|r| r.identities.iter().any(|i| i == identity))
            .collect()
    }

    pub fn by_name(&self, name: &str) -> Option<&CallerRule> {
        self.entries.iter().find(|r| r.name == name)
    }

    /// The caller whose token this is. Every configured token is compared
    /// (in constant time), whichever matches; a token whose secret cannot be
    /// fetched right now is skipped and its error returned if nothing matched.
    pub async fn by_token(
        &self,
        token: &SecretDigest,
    ) -> Result<Option<&CallerRule>, KeyAccessError> {
        let mut found = None;
        let mut failed = None;
        for rule in &self.entries {
            for secret in &rule.tokens {
                match secret.matches(token).await {
                    Ok(true) if found.is_none() => found = Some(rule),
                    Ok(_) => {}
                    Err(e) => failed = Some(e),
                }
            }
        }
        match (found, failed) {
            (Some(rule), _) => Ok(Some(rule)),
            (None, Some(e)) => Err(e),
            (None, None) => Ok(None),
        }
    }

    /// The caller with these Basic credentials (the password compared in constant time).
    pub async fn by_basic(
        &self,
        username: &str,
        password: &SecretDigest,
    ) -> Result<Option<&CallerRule>, KeyAccessError> {
        let mut found = None;
        let mut failed = None;
        for rule in &self.entries {
            for cred in rule.basic.iter().filter(|c| c.username == username) {
                match cred.password.matches(password).await {
                    Ok(true) if found.is_none() => found = Some(rule),
                    Ok(_) => {}
                    Err(e) => failed = Some(e),
                }
            }
        }
        match (found, failed) {
            (Some(rule), _) => Ok(Some(rule)),
            (None, Some(e)) => Err(e),
            (None, None) => Ok(None),
        }
    }
}

/// A validated, immutable registry snapshot.
pub struct Registry {
    /// Where it came from (file path, or "embedded default").
    pub origin: String,
    /// SHA-256 of the file content, to tell versions apart in logs and metrics.
    pub digest: String,
    pub loaded_at: OffsetDateTime,
    pub sources: SourceSet,
    pub consumers: BTreeMap<String, Arc<Consumer>>,
    pub routes: BTreeMap<String, Vec<String>>,
    pub callers: Callers,
    pub limits: BrokerLimits,
}

impl Registry {
    /// When each key stops being usable, for the expiry gauges: every
    /// consumer key's window (bounded by its certificate) and every source's
    /// `decrypt_until` that ends.
    pub fn expiries(&self) -> Vec<KeyExpiry> {
        let mut out = Vec::new();
        for source in self.sources.iter() {
            if let Some(not_after) = source.window.not_after {
                out.push(KeyExpiry {
                    kind: "source",
                    id: source.id.clone(),
                    key: source.key_name.clone().unwrap_or_else(|| source.id.clone()),
                    not_after,
                });
            }
        }
        for consumer in self.consumers.values() {
            for key in &consumer.keys {
                if let Some(not_after) = key.window.not_after {
                    out.push(KeyExpiry {
                        kind: "consumer",
                        id: consumer.id.clone(),
                        key: key.id.clone(),
                        not_after,
                    });
                }
            }
        }
        out
    }

    /// Every source and consumer key, for `reseal keys` and `reseal validate`.
    pub fn key_listing(&self, now: OffsetDateTime) -> Vec<listing::KeyListing> {
        listing::list(self, now)
    }
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("origin", &self.origin)
            .field("digest", &self.digest)
            .field("sources", &self.sources.len())
            .field("consumers", &self.consumers.len())
            .field("routes", &self.routes.len())
            .finish_non_exhaustive()
    }
}
