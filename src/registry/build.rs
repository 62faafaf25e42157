//! From YAML to a validated [`Registry`]: figment loading (file + `RESEAL_*`
//! environment overrides), then one pass that checks every entry and field and
//! reports *all* problems at once, each as `FILE: entry.field: what is wrong`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use figment::providers::{Env, Format, Yaml};
use figment::Figment;
use time::OffsetDateTime;
use zeroize::Zeroizing;

use super::model::{
    AwsSpec, ConfigFile, ConsumerKeyKind, ConsumerKeySpec, ConsumerSpec, DevelopmentSpec, KeyRef,
    SecretRef, ServerSpec, SourceKind, SourceSpec,
};
use super::{
    BasicCredential, BrokerLimits, CallerRule, Callers, Consumer, ConsumerKey, ConsumerWrap,
    ContextRules, OutputContext, Propagate, Registry, SourceKey, SourceMaterial, SourceSet, Window,
};
use crate::esdk::{
    self, AlgorithmSuite, DecryptCommitment, DecryptPolicy, EncryptionContext, SuiteSet,
};
use crate::keys::aws::{arn::KmsArn, kms, ssm, AwsKeys};
use crate::keys::cert::CertificateInfo;
use crate::keys::secret::{Secret, SecretDigest};
use crate::keys::{connect, raw_rsa, RawAesKeyring, RawRsaKeyring, RsaPadding};

/// The file could not be turned into a registry.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Every problem found, one per line, each naming file, entry and field.
    #[error("{origin}: {} problem(s):\n{}", problems.len(), problems.join("\n"))]
    Invalid {
        origin: String,
        problems: Vec<String>,
    },
}

impl LoadError {
    pub fn problems(&self) -> Vec<String> {
        match self {
            LoadError::Io { .. } => vec![self.to_string()],
            LoadError::Invalid { problems, .. } => problems.clone(),
        }
    }
}

/// Knobs for loading.
#[derive(Clone, Default)]
pub struct LoadOptions {
    /// Apply `RESEAL_<SECTION>__<KEY>...` environment overrides.
    pub env_overrides: bool,
    /// AWS-backed key factory; `None` rejects `ssm:` and KMS entries.
    pub aws: Option<Arc<AwsKeys>>,
}

/// A loaded file: the registry plus the settings that are not hot-reloadable.
pub struct Loaded {
    pub registry: Registry,
    pub server: ServerSpec,
    pub aws: AwsSpec,
    pub development: DevelopmentSpec,
    /// Non-fatal findings (e.g. ambiguous source keys).
    pub warnings: Vec<String>,
    /// Files read for key material and secrets.
    pub watched_files: Vec<PathBuf>,
}

/// Reads and compiles a config file.
pub fn load(path: &Path, options: &LoadOptions) -> Result<Loaded, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Io {
        path: path.to_owned(),
        source,
    })?;
    let base = path.parent().unwrap_or(Path::new(".")).to_owned();
    load_str(&text, &path.display().to_string(), &base, options)
}

/// Parses only the file structure (no key loading): used to find dev keys to create.
pub fn parse_file(text: &str, origin: &str, env_overrides: bool) -> Result<ConfigFile, LoadError> {
    let mut figment = Figment::from(Yaml::string(text));
    if env_overrides {
        figment = figment.merge(
            Env::prefixed("RESEAL_")
                .filter(|k| k.as_str().contains("__"))
                .split("__"),
        );
    }
    figment
        .extract::<ConfigFile>()
        .map_err(|err| LoadError::Invalid {
            origin: origin.to_owned(),
            problems: err
                .into_iter()
                .map(|e| {
                    let path = e.path.join(".");
                    let what = e.kind.to_string();
                    if path.is_empty() {
                        format!("{origin}: {what}")
                    } else {
                        format!("{origin}: {path}: {what}")
                    }
                })
                .collect(),
        })
}

/// Compiles YAML text. `base_dir` anchors relative `file:` references.
pub fn load_str(
    text: &str,
    origin: &str,
    base_dir: &Path,
    options: &LoadOptions,
) -> Result<Loaded, LoadError> {
    let file = parse_file(text, origin, options.env_overrides)?;
    let digest = hex::encode(
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, text.as_bytes()).as_ref(),
    );
    let mut b = Builder {
        origin: origin.to_owned(),
        base_dir: base_dir.to_owned(),
        aws: options.aws.clone(),
        problems: Vec::new(),
        warnings: Vec::new(),
        watched: Vec::new(),
    };
    let limits = b.limits(&file);
    let sources = b.sources(&file, &limits);
    let consumers = b.consumers(&file);
    let routes = b.routes(&file, &consumers);
    let callers = b.callers(&file, &consumers, &routes);
    if !b.problems.is_empty() {
        return Err(LoadError::Invalid {
            origin: b.origin,
            problems: b.problems,
        });
    }
    Ok(Loaded {
        registry: Registry {
            origin: origin.to_owned(),
            digest,
            loaded_at: OffsetDateTime::now_utc(),
            sources,
            consumers,
            routes,
            callers,
            limits,
        },
        server: file.server,
        aws: file.aws,
        development: file.development,
        warnings: b.warnings,
        watched_files: b.watched,
    })
}

/// Fields only the AWS source types use.
fn aws_only_fields(spec: &SourceSpec) -> [(&'static str, bool); 5] {
    [
        ("key_ids", spec.key_ids.is_some()),
        ("discovery_filter", spec.discovery_filter.is_some()),
        ("region", spec.region.is_some()),
        ("key_name_pattern", spec.key_name_pattern.is_some()),
        ("parameter_template", spec.parameter_template.is_some()),
    ]
}

/// What each source type compiles to, before the parts every type shares.
struct SourceShape {
    provider_id: String,
    key_name: Option<String>,
    material: SourceMaterial,
}

struct Builder {
    origin: String,
    base_dir: PathBuf,
    aws: Option<Arc<AwsKeys>>,
    problems: Vec<String>,
    warnings: Vec<String>,
    /// Files read for key material and secrets (watched for changes with the config).
    watched: Vec<PathBuf>,
}

/// Provider id of consumer keys unless configured: what the consumer's keyring expects.
pub const DEFAULT_CONSUMER_PROVIDER_ID: &str = "reseal";
pub const DEFAULT_CONSUMER_PADDING: RsaPadding = RsaPadding::OaepSha256;

/// Default envelope suite: committed and unsigned (see README, "Why 0x0478").
pub const DEFAULT_CONSUMER_SUITE: AlgorithmSuite = AlgorithmSuite::Aes256GcmHkdfSha512CommitKey;
pub const DEFAULT_EXPIRY_WARNING: Duration = Duration::from_secs(30 * 24 * 3600);
/// Largest envelope frame length accepted in configuration.
const MAX_FRAME_LENGTH: u32 = 1 << 20;

impl Builder {
    fn problem(&mut self, entry: &str, field: &str, msg: impl std::fmt::Display) {
        let at = if field.is_empty() {
            entry.to_owned()
        } else {
            format!("{entry}.{field}")
        };
        self.problems.push(format!("{}: {at}: {msg}", self.origin));
    }

    fn warn(&mut self, entry: &str, msg: impl std::fmt::Display) {
        self.warnings
            .push(format!("{}: {entry}: {msg}", self.origin));
    }

    fn required<'a, T>(
        &mut self,
        value: &'a Option<T>,
        entry: &str,
        field: &str,
        kind: &str,
    ) -> Option<&'a T> {
        if value.is_none() {
            self.problem(entry, field, format!("required for type `{kind}`"));
        }
        value.as_ref()
    }

    /// Reports every field that is set but not used by this entry's type.
    fn not_used(&mut self, entry: &str, kind: &str, fields: &[(&str, bool)]) {
        for (field, present) in fields {
            if *present {
                self.problem(
                    entry,
                    field,
                    format!("not used by type `{kind}`; remove it"),
                );
            }
        }
    }

    /// Reads local key material (`file:`, `env:`, inline).
    fn material(&mut self, r: &KeyRef, entry: &str, field: &str) -> Option<Zeroizing<Vec<u8>>> {
        match r {
            KeyRef::Inline(text) => Some(Zeroizing::new(text.as_bytes().to_vec())),
            KeyRef::File(p) => {
                let path = self.base_dir.join(p);
                self.watched.push(path.clone());
                match std::fs::read(&path) {
                    Ok(bytes) => Some(Zeroizing::new(bytes)),
                    Err(e) => {
                        self.problem(entry, field, format!("cannot read {}: {e}", path.display()));
                        None
                    }
                }
            }
            KeyRef::Env(var) => match std::env::var(var) {
                Ok(v) => Some(Zeroizing::new(v.into_bytes())),
                Err(_) => {
                    self.problem(
                        entry,
                        field,
                        format!("environment variable `{var}` is not set"),
                    );
                    None
                }
            },
            KeyRef::Ssm(_) => {
                self.problem(entry, field, "`ssm:` is not valid here");
                None
            }
        }
    }

    fn aes_key(&mut self, r: &KeyRef, entry: &str, field: &str) -> Option<Zeroizing<Vec<u8>>> {
        let text = self.material(r, entry, field)?;
        let decoded = crate::input::decode_base64(&text).ok();
        match decoded {
            Some(bytes) if matches!(bytes.len(), 16 | 24 | 32) => Some(Zeroizing::new(bytes)),
            Some(bytes) => {
                self.problem(
                    entry,
                    field,
                    format!("AES key must be 16, 24 or 32 bytes, found {}", bytes.len()),
                );
                None
            }
            None => {
                self.problem(entry, field, "AES key material must be base64");
                None
            }
        }
    }

    /// An AES keyring from a key reference; every failure is a recorded problem.
    fn aes_keyring(
        &mut self,
        provider_id: &str,
        key_name: &str,
        r: &KeyRef,
        entry: &str,
        field: &str,
    ) -> Option<RawAesKeyring> {
        let bytes = self.aes_key(r, entry, field)?;
        match RawAesKeyring::new(provider_id, key_name, &bytes) {
            Ok(k) => Some(k),
            Err(e) => {
                self.problem(entry, field, e);
                None
            }
        }
    }

    fn suites(&mut self, list: &[String], entry: &str, field: &str) -> SuiteSet {
        let mut set = SuiteSet::empty();
        for s in list {
            match AlgorithmSuite::parse(s) {
                Some(suite) => set.insert(suite),
                None => self.problem(entry, field, format!("unknown algorithm suite `{s}`")),
            }
        }
        set
    }

    fn limits(&mut self, file: &ConfigFile) -> BrokerLimits {
        let l = &file.limits;
        for (name, value) in [
            ("max_ciphertext_bytes", l.max_ciphertext_bytes),
            ("max_encrypted_data_keys", l.max_encrypted_data_keys),
            ("max_header_bytes", l.max_header_bytes),
            (
                "max_encryption_context_bytes",
                l.max_encryption_context_bytes,
            ),
            ("max_frames", l.max_frames),
            ("max_consumers_per_call", l.max_consumers_per_call),
            ("max_batch_items", l.max_batch_items),
            ("max_unwrap_attempts_per_key", l.max_unwrap_attempts_per_key),
            ("max_private_key_attempts", l.max_private_key_attempts),
        ] {
            if value == 0 {
                self.problem("limits", name, "must be greater than 0");
            }
        }
        BrokerLimits {
            max_ciphertext_bytes: l.max_ciphertext_bytes,
            max_consumers_per_call: l.max_consumers_per_call,
            max_batch_items: l.max_batch_items,
            max_unwrap_attempts_per_key: l.max_unwrap_attempts_per_key,
            max_private_key_attempts: l.max_private_key_attempts,
            allow_base64_in_ciphertext: l.allow_base64_in_ciphertext,
            message: esdk::Limits {
                max_encrypted_data_keys: l.max_encrypted_data_keys,
                max_header_bytes: l.max_header_bytes,
                max_encryption_context_bytes: l.max_encryption_context_bytes,
                max_body_bytes: l.max_ciphertext_bytes,
                max_frames: l.max_frames,
                max_frame_length: u32::MAX,
            },
        }
    }

    fn window(
        &mut self,
        start: Option<OffsetDateTime>,
        end: Option<OffsetDateTime>,
        entry: &str,
        end_field: &str,
    ) -> Window {
        if let (Some(s), Some(e)) = (start, end) {
            if e <= s {
                self.problem(entry, end_field, "must be later than `not_before`");
            }
        }
        Window {
            not_before: start,
            not_after: end,
        }
    }

    fn sources(&mut self, file: &ConfigFile, limits: &BrokerLimits) -> SourceSet {
        let mut set = SourceSet::default();
        let mut seen: BTreeMap<(String, String), String> = BTreeMap::new();
        for (id, spec) in &file.sources {
            let entry = format!("sources.{id}");
            if let Some(key) = self.source(id, spec, &entry, limits) {
                if let Some(name) = &key.key_name {
                    if let Some(other) =
                        seen.insert((key.provider_id.clone(), name.clone()), id.clone())
                    {
                        self.warn(
                            &entry,
                            format!("answers for the same provider id and key name as `sources.{other}`; both will be tried"),
                        );
                    }
                }
                set.insert(key);
            }
        }
        set
    }

    fn source(
        &mut self,
        id: &str,
        spec: &SourceSpec,
        entry: &str,
        limits: &BrokerLimits,
    ) -> Option<SourceKey> {
        let window = self.window(spec.not_before, spec.decrypt_until, entry, "decrypt_until");
        let default_suites: SuiteSet = AlgorithmSuite::ALL
            .iter()
            .copied()
            .filter(|s| s.kdf() != esdk::suite::Kdf::Identity)
            .collect();
        let allowed = match &spec.allowed_suites {
            Some(list) if list.is_empty() => {
                self.problem(
                    entry,
                    "allowed_suites",
                    "must list at least one suite (or be omitted)",
                );
                default_suites
            }
            Some(list) => self.suites(list, entry, "allowed_suites"),
            None => default_suites,
        };
        let policy = DecryptPolicy {
            commitment: if spec.require_commitment {
                DecryptCommitment::Require
            } else {
                DecryptCommitment::Allow
            },
            allowed_suites: Some(allowed),
            signed: esdk::SignedPolicy::Allow,
            limits: limits.message.clone(),
        };
        let rules = &spec.encryption_context;
        for (k, values) in &rules.allow {
            if values.is_empty() {
                self.problem(
                    entry,
                    &format!("encryption_context.allow.{k}"),
                    "must list at least one value",
                );
            }
        }
        let context_rules = ContextRules {
            require: rules.require.clone(),
            allow: rules.allow.clone(),
        };

        let SourceShape {
            provider_id,
            key_name,
            material,
        } = match spec.kind {
            SourceKind::RawRsa => self.raw_rsa_source(spec, entry)?,
            SourceKind::RawAes => self.raw_aes_source(spec, entry)?,
            SourceKind::AwsKms => self.kms_source(spec, entry)?,
            SourceKind::AwsKmsDiscovery => self.kms_discovery_source(spec, entry)?,
            SourceKind::SsmDiscovery => self.ssm_discovery_source(spec, entry)?,
        };
        Some(SourceKey {
            id: id.to_owned(),
            kind: spec.kind,
            provider_id,
            key_name,
            material,
            window,
            policy,
            context_rules,
        })
    }

    /// An RSA private key (Amazon Connect's): PEM from `file:`/`env:`/inline, or an SSM parameter.
    fn raw_rsa_source(&mut self, spec: &SourceSpec, entry: &str) -> Option<SourceShape> {
        let kind = spec.kind.as_str();
        self.not_used(entry, kind, &[("key", spec.key.is_some())]);
        self.not_used(entry, kind, &aws_only_fields(spec));
        let key_name = self
            .required(&spec.key_name, entry, "key_name", kind)?
            .clone();
        let private_key = self.required(&spec.private_key, entry, "private_key", kind)?;
        let provider_id = spec
            .provider_id
            .clone()
            .unwrap_or_else(|| connect::PROVIDER_ID.into());
        let padding = spec.padding.unwrap_or(connect::PADDING);
        let material = match private_key {
            KeyRef::Ssm(param) => {
                let aws = self.aws_keys(entry, "private_key")?;
                SourceMaterial::Remote(aws.ssm_private_key(param, &provider_id, &key_name, padding))
            }
            local => {
                let pem = self.material(local, entry, "private_key")?;
                match RawRsaKeyring::from_private_pem(&provider_id, &key_name, padding, &pem) {
                    Ok(k) => SourceMaterial::Local(Arc::new(k)),
                    Err(e) => {
                        self.problem(entry, "private_key", format!("{e} (from {local})"));
                        return None;
                    }
                }
            }
        };
        Some(SourceShape {
            provider_id,
            key_name: Some(key_name),
            material,
        })
    }

    /// An AES-GCM wrapping key (the ESDK's raw AES keyring).
    fn raw_aes_source(&mut self, spec: &SourceSpec, entry: &str) -> Option<SourceShape> {
        let kind = spec.kind.as_str();
        self.not_used(
            entry,
            kind,
            &[
                ("private_key", spec.private_key.is_some()),
                ("padding", spec.padding.is_some()),
            ],
        );
        self.not_used(entry, kind, &aws_only_fields(spec));
        let key_name = self
            .required(&spec.key_name, entry, "key_name", kind)?
            .clone();
        let provider_id = self
            .required(&spec.provider_id, entry, "provider_id", kind)?
            .clone();
        let key_ref = self.required(&spec.key, entry, "key", kind)?;
        let keyring = self.aes_keyring(&provider_id, &key_name, key_ref, entry, "key")?;
        Some(SourceShape {
            provider_id,
            key_name: Some(key_name),
            material: SourceMaterial::Local(Arc::new(keyring)),
        })
    }

    /// Fields a KMS source type never uses.
    fn kms_unused_fields(&mut self, spec: &SourceSpec, entry: &str) {
        let kind = spec.kind.as_str();
        self.not_used(
            entry,
            kind,
            &[
                ("private_key", spec.private_key.is_some()),
                ("key", spec.key.is_some()),
                ("padding", spec.padding.is_some()),
                ("key_name", spec.key_name.is_some()),
                ("key_name_pattern", spec.key_name_pattern.is_some()),
                ("parameter_template", spec.parameter_template.is_some()),
            ],
        );
        if spec
            .provider_id
            .as_deref()
            .is_some_and(|p| p != kms::PROVIDER_ID)
        {
            self.problem(
                entry,
                "provider_id",
                format!("KMS keys always use provider id `{}`", kms::PROVIDER_ID),
            );
        }
    }

    /// AWS KMS symmetric keys by ARN, alias or key id (strict mode).
    fn kms_source(&mut self, spec: &SourceSpec, entry: &str) -> Option<SourceShape> {
        self.kms_unused_fields(spec, entry);
        if spec.discovery_filter.is_some() {
            self.problem(
                entry,
                "discovery_filter",
                "not used by type `aws-kms`; use `aws-kms-discovery`",
            );
        }
        let ids = match &spec.key_ids {
            Some(ids) if !ids.is_empty() => ids,
            _ => {
                self.problem(
                    entry,
                    "key_ids",
                    "required for type `aws-kms`: at least one key ARN or alias",
                );
                return None;
            }
        };
        let mut valid = true;
        for id in ids {
            if id.starts_with("arn:") && KmsArn::parse(id).is_none() {
                self.problem(
                    entry,
                    "key_ids",
                    format!("`{id}` is not a KMS key or alias ARN"),
                );
                valid = false;
            }
        }
        let aws = self.aws_keys(entry, "type")?;
        valid.then(|| SourceShape {
            provider_id: kms::PROVIDER_ID.into(),
            key_name: None,
            material: SourceMaterial::Remote(aws.kms_strict(ids, spec.region.clone())),
        })
    }

    /// Any AWS KMS key within a partition and account filter (discovery mode).
    fn kms_discovery_source(&mut self, spec: &SourceSpec, entry: &str) -> Option<SourceShape> {
        self.kms_unused_fields(spec, entry);
        if spec.key_ids.is_some() {
            self.problem(
                entry,
                "key_ids",
                "not used by type `aws-kms-discovery`; use `aws-kms` for fixed keys",
            );
        }
        let filter = match &spec.discovery_filter {
            Some(f) if !f.account_ids.is_empty() && !f.partition.is_empty() => f,
            _ => {
                self.problem(
                    entry,
                    "discovery_filter",
                    "required for type `aws-kms-discovery`: a partition and at least one account id",
                );
                return None;
            }
        };
        let aws = self.aws_keys(entry, "type")?;
        Some(SourceShape {
            provider_id: kms::PROVIDER_ID.into(),
            key_name: None,
            material: SourceMaterial::Remote(aws.kms_discovery(
                filter.partition.clone(),
                filter.account_ids.clone(),
                spec.region.clone(),
            )),
        })
    }

    /// RSA private keys found in SSM by key id (Amazon Connect key discovery).
    fn ssm_discovery_source(&mut self, spec: &SourceSpec, entry: &str) -> Option<SourceShape> {
        let kind = spec.kind.as_str();
        self.not_used(
            entry,
            kind,
            &[
                ("private_key", spec.private_key.is_some()),
                ("key", spec.key.is_some()),
                ("key_ids", spec.key_ids.is_some()),
                ("discovery_filter", spec.discovery_filter.is_some()),
                ("region", spec.region.is_some()),
                ("key_name", spec.key_name.is_some()),
            ],
        );
        let pattern =
            match ssm::key_name_pattern(spec.key_name_pattern.as_deref().unwrap_or("uuid")) {
                Ok(p) => Some(p),
                Err(e) => {
                    self.problem(entry, "key_name_pattern", e);
                    None
                }
            };
        let template = match &spec.parameter_template {
            Some(t) if t.contains("{key_id}") && t.starts_with('/') => Some(t.clone()),
            Some(_) => {
                self.problem(
                    entry,
                    "parameter_template",
                    "must be an absolute parameter path containing `{key_id}`",
                );
                None
            }
            None => {
                self.problem(
                    entry,
                    "parameter_template",
                    "required for type `ssm-discovery`, e.g. `/amazon-connect/encryption/{key_id}/private-key`",
                );
                None
            }
        };
        let provider_id = spec
            .provider_id
            .clone()
            .unwrap_or_else(|| connect::PROVIDER_ID.into());
        let (pattern, template) = (pattern?, template?);
        let aws = self.aws_keys(entry, "type")?;
        Some(SourceShape {
            material: SourceMaterial::Remote(aws.ssm_discovery(
                &provider_id,
                pattern,
                &template,
                spec.padding.unwrap_or(connect::PADDING),
            )),
            provider_id,
            key_name: None,
        })
    }

    fn aws_keys(&mut self, entry: &str, field: &str) -> Option<Arc<AwsKeys>> {
        if self.aws.is_none() {
            self.problem(
                entry,
                field,
                "needs AWS access, which is not available in this context",
            );
        }
        self.aws.clone()
    }

    fn consumers(&mut self, file: &ConfigFile) -> BTreeMap<String, Arc<Consumer>> {
        let mut out = BTreeMap::new();
        for (id, spec) in &file.consumers {
            let entry = format!("consumers.{id}");
            if let Some(c) = self.consumer(id, spec, &entry) {
                out.insert(id.clone(), Arc::new(c));
            }
        }
        out
    }

    fn consumer(&mut self, id: &str, spec: &ConsumerSpec, entry: &str) -> Option<Consumer> {
        if spec.keys.is_empty() {
            self.problem(entry, "keys", "at least one key is required");
        }
        let suite = match &spec.suite {
            Some(s) => match AlgorithmSuite::parse(s) {
                Some(suite) => suite,
                None => {
                    self.problem(entry, "suite", format!("unknown algorithm suite `{s}`"));
                    DEFAULT_CONSUMER_SUITE
                }
            },
            None => DEFAULT_CONSUMER_SUITE,
        };
        if !suite.is_committing() {
            self.warn(
                entry,
                format!("suite {suite} is not key-committing; use it only for readers on ESDK 1.x"),
            );
        }
        let frame_length = spec.frame_length.unwrap_or(esdk::DEFAULT_FRAME_LENGTH);
        if frame_length == 0 || frame_length > MAX_FRAME_LENGTH {
            self.problem(
                entry,
                "frame_length",
                format!("must be between 1 and {MAX_FRAME_LENGTH} (non-framed envelopes are not written)"),
            );
        }
        let mut fixed = EncryptionContext::new();
        for (k, v) in &spec.encryption_context.fixed {
            if k.starts_with(esdk::context::RESERVED_PREFIX) || k.starts_with("reseal-") {
                self.problem(
                    entry,
                    &format!("encryption_context.static.{k}"),
                    "keys starting with `aws-crypto-` or `reseal-` are reserved",
                );
            }
            fixed.insert(k.as_str(), v.as_str());
        }
        let propagate = match spec.encryption_context.propagate.as_slice() {
            [] => Propagate::None,
            [one] if one == "*" => Propagate::All,
            keys => Propagate::Keys(keys.to_vec()),
        };
        let mut add = spec.encryption_context.add.clone();
        add.sort();
        add.dedup();

        let mut keys = Vec::new();
        let mut names = BTreeSet::new();
        for (kid, kspec) in &spec.keys {
            let kentry = format!("{entry}.keys.{kid}");
            if let Some((key, name)) = self.consumer_key(kid, kspec, &kentry) {
                if let Some(name) = name {
                    if !names.insert(name.clone()) {
                        self.problem(
                            &kentry,
                            "key_name",
                            format!("another key of this consumer already uses provider id and key name `{}/{}`", name.0, name.1),
                        );
                    }
                }
                keys.push(key);
            }
        }
        // Older keys first: the order EDKs appear in envelopes and ids in responses.
        keys.sort_by(|a, b| {
            (
                a.window.not_before.unwrap_or(OffsetDateTime::UNIX_EPOCH),
                &a.id,
            )
                .cmp(&(
                    b.window.not_before.unwrap_or(OffsetDateTime::UNIX_EPOCH),
                    &b.id,
                ))
        });
        Some(Consumer {
            id: id.to_owned(),
            keys,
            suite,
            frame_length,
            output: OutputContext {
                fixed,
                add,
                propagate,
            },
            expiry_warning: spec.expiry_warning.unwrap_or(DEFAULT_EXPIRY_WARNING),
        })
    }

    fn consumer_key(
        &mut self,
        id: &str,
        spec: &ConsumerKeySpec,
        entry: &str,
    ) -> Option<(ConsumerKey, Option<(String, String)>)> {
        let own_window = self.window(spec.not_before, spec.not_after, entry, "not_after");
        let provider_id = spec
            .provider_id
            .clone()
            .unwrap_or_else(|| DEFAULT_CONSUMER_PROVIDER_ID.into());
        let key_name = spec.key_name.clone().unwrap_or_else(|| id.to_owned());
        let (wrap, certificate) = match spec.kind {
            ConsumerKeyKind::RsaPublic => (
                self.rsa_public_key(spec, entry, &provider_id, &key_name)?,
                None,
            ),
            ConsumerKeyKind::X509 => {
                let (wrap, info) = self.x509_key(spec, entry, &provider_id, &key_name)?;
                (wrap, Some(info))
            }
            ConsumerKeyKind::RawAes => (
                self.raw_aes_consumer_key(spec, entry, &provider_id, &key_name)?,
                None,
            ),
            ConsumerKeyKind::AwsKms => (self.kms_consumer_key(spec, entry)?, None),
        };
        // A certificate's validity bounds the key's own window.
        let window = match &certificate {
            Some(info) => own_window.intersect(Window {
                not_before: Some(info.not_before),
                not_after: Some(info.not_after),
            }),
            None => own_window,
        };
        let name = match spec.kind {
            ConsumerKeyKind::AwsKms => None,
            _ => Some((provider_id, key_name)),
        };
        Some((
            ConsumerKey {
                id: id.to_owned(),
                kind: spec.kind,
                wrap,
                window,
                certificate,
            },
            name,
        ))
    }

    /// Fields only another consumer key type uses.
    fn consumer_key_unused(&mut self, spec: &ConsumerKeySpec, entry: &str, fields: &[&str]) {
        let present = |f: &str| match f {
            "public_key" => spec.public_key.is_some(),
            "certificate" => spec.certificate.is_some(),
            "key" => spec.key.is_some(),
            "key_id" => spec.key_id.is_some(),
            "padding" => spec.padding.is_some(),
            "provider_id" => spec.provider_id.is_some(),
            "key_name" => spec.key_name.is_some(),
            _ => false,
        };
        let flags: Vec<(&str, bool)> = fields.iter().map(|f| (*f, present(f))).collect();
        self.not_used(entry, spec.kind.as_str(), &flags);
    }

    /// An RSA public key (PEM from `file:`/`env:`/inline, or an SSM parameter).
    fn rsa_public_key(
        &mut self,
        spec: &ConsumerKeySpec,
        entry: &str,
        provider_id: &str,
        key_name: &str,
    ) -> Option<ConsumerWrap> {
        self.consumer_key_unused(spec, entry, &["key", "key_id", "certificate"]);
        let padding = spec.padding.unwrap_or(DEFAULT_CONSUMER_PADDING);
        let r = self.required(&spec.public_key, entry, "public_key", spec.kind.as_str())?;
        if let KeyRef::Ssm(param) = r {
            let aws = self.aws_keys(entry, "public_key")?;
            return Some(ConsumerWrap::Fetched(aws.ssm_public_key(
                param,
                provider_id,
                key_name,
                padding,
            )));
        }
        let pem = self.material(r, entry, "public_key")?;
        let public = match raw_rsa::parse_public_key_pem(&pem) {
            Ok(k) => k,
            Err(e) => {
                self.problem(entry, "public_key", format!("{e} (from {r})"));
                return None;
            }
        };
        self.rsa_recipient(public, entry, provider_id, key_name, padding)
    }

    /// An X.509 certificate carrying an RSA key; its validity bounds the key's use.
    fn x509_key(
        &mut self,
        spec: &ConsumerKeySpec,
        entry: &str,
        provider_id: &str,
        key_name: &str,
    ) -> Option<(ConsumerWrap, CertificateInfo)> {
        self.consumer_key_unused(spec, entry, &["key", "key_id", "public_key"]);
        let padding = spec.padding.unwrap_or(DEFAULT_CONSUMER_PADDING);
        let r = self.required(&spec.certificate, entry, "certificate", spec.kind.as_str())?;
        let pem = self.material(r, entry, "certificate")?;
        let (public, info) = match crate::keys::cert::rsa_certificate(&pem) {
            Ok(parsed) => parsed,
            Err(e) => {
                self.problem(entry, "certificate", format!("{e} (from {r})"));
                return None;
            }
        };
        let wrap = self.rsa_recipient(public, entry, provider_id, key_name, padding)?;
        Some((wrap, info))
    }

    /// The wrapping keyring of an RSA public key, at least 2048 bits.
    fn rsa_recipient(
        &mut self,
        public: aws_lc_rs::rsa::PublicEncryptingKey,
        entry: &str,
        provider_id: &str,
        key_name: &str,
        padding: RsaPadding,
    ) -> Option<ConsumerWrap> {
        if public.key_size_bits() < 2048 {
            self.problem(
                entry,
                "",
                format!(
                    "RSA key is {} bits; at least 2048 are required",
                    public.key_size_bits()
                ),
            );
            return None;
        }
        match RawRsaKeyring::from_public_key(provider_id, key_name, padding, public) {
            Ok(k) => Some(ConsumerWrap::Local(Arc::new(k))),
            Err(e) => {
                self.problem(entry, "", e);
                None
            }
        }
    }

    /// An AES-GCM key shared with the consumer.
    fn raw_aes_consumer_key(
        &mut self,
        spec: &ConsumerKeySpec,
        entry: &str,
        provider_id: &str,
        key_name: &str,
    ) -> Option<ConsumerWrap> {
        self.consumer_key_unused(
            spec,
            entry,
            &["public_key", "certificate", "key_id", "padding"],
        );
        let r = self.required(&spec.key, entry, "key", spec.kind.as_str())?;
        let keyring = self.aes_keyring(provider_id, key_name, r, entry, "key")?;
        Some(ConsumerWrap::Local(Arc::new(keyring)))
    }

    /// The consumer's AWS KMS symmetric key.
    fn kms_consumer_key(&mut self, spec: &ConsumerKeySpec, entry: &str) -> Option<ConsumerWrap> {
        self.consumer_key_unused(
            spec,
            entry,
            &[
                "public_key",
                "certificate",
                "key",
                "padding",
                "provider_id",
                "key_name",
            ],
        );
        let key_id = self.required(&spec.key_id, entry, "key_id", spec.kind.as_str())?;
        if key_id.starts_with("arn:") && KmsArn::parse(key_id).is_none() {
            self.problem(
                entry,
                "key_id",
                format!("`{key_id}` is not a KMS key or alias ARN"),
            );
            return None;
        }
        let aws = self.aws_keys(entry, "key_id")?;
        Some(ConsumerWrap::Kms(aws.kms_recipient(key_id)))
    }

    fn routes(
        &mut self,
        file: &ConfigFile,
        consumers: &BTreeMap<String, Arc<Consumer>>,
    ) -> BTreeMap<String, Vec<String>> {
        let mut out = BTreeMap::new();
        for (name, members) in &file.routes {
            let entry = format!("routes.{name}");
            if members.is_empty() {
                self.problem(&entry, "", "a route needs at least one consumer");
            }
            let mut list = Vec::new();
            for c in members {
                if !consumers.contains_key(c) && !file.consumers.contains_key(c) {
                    self.problem(&entry, "", format!("unknown consumer `{c}`"));
                } else if !list.contains(c) {
                    list.push(c.clone());
                }
            }
            out.insert(name.clone(), list);
        }
        out
    }

    fn callers(
        &mut self,
        file: &ConfigFile,
        consumers: &BTreeMap<String, Arc<Consumer>>,
        routes: &BTreeMap<String, Vec<String>>,
    ) -> Callers {
        let mut entries = Vec::new();
        for (name, spec) in &file.callers {
            let entry = format!("callers.{name}");
            if spec.identities.is_empty() && spec.tokens.is_empty() && spec.basic.is_empty() {
                self.problem(
                    &entry,
                    "identities",
                    "at least one identity is required (or `tokens` / `basic` credentials)",
                );
            }
            if spec.routes.is_empty() && spec.consumers.is_empty() {
                self.problem(
                    &entry,
                    "",
                    "grants nothing: list `routes` and/or `consumers`",
                );
            }
            for r in &spec.routes {
                if r != "*" && !routes.contains_key(r) && !file.routes.contains_key(r) {
                    self.problem(&entry, "routes", format!("unknown route `{r}`"));
                }
            }
            for c in &spec.consumers {
                if c != "*" && !consumers.contains_key(c) && !file.consumers.contains_key(c) {
                    self.problem(&entry, "consumers", format!("unknown consumer `{c}`"));
                }
            }
            let tokens = spec
                .tokens
                .iter()
                .enumerate()
                .filter_map(|(i, r)| self.secret(r, &entry, &format!("tokens[{i}]")))
                .collect();
            let mut basic = Vec::new();
            for (i, b) in spec.basic.iter().enumerate() {
                let field = format!("basic[{i}]");
                if b.username.is_empty() || b.username.contains(':') {
                    self.problem(
                        &entry,
                        &format!("{field}.username"),
                        "must be non-empty and contain no `:`",
                    );
                }
                if let Some(password) =
                    self.secret(&b.password, &entry, &format!("{field}.password"))
                {
                    basic.push(BasicCredential {
                        username: b.username.clone(),
                        password,
                    });
                }
            }
            entries.push(CallerRule {
                name: name.clone(),
                identities: spec.identities.clone(),
                tokens,
                basic,
                routes: spec.routes.clone(),
                consumers: spec.consumers.clone(),
            });
        }
        Callers { entries }
    }

    /// A caller secret: read now (`env:`, `file:`; a trailing newline is not
    /// part of it) or fetched when first needed (`ssm:`). Kept as a digest.
    fn secret(&mut self, r: &SecretRef, entry: &str, field: &str) -> Option<Secret> {
        let text = match r {
            SecretRef::Ssm(param) => {
                let aws = self.aws_keys(entry, field)?;
                return Some(Secret::Fetched(aws.ssm_secret(param)));
            }
            SecretRef::Env(var) => match std::env::var(var) {
                Ok(v) => Zeroizing::new(v),
                Err(_) => {
                    self.problem(
                        entry,
                        field,
                        format!("environment variable `{var}` is not set"),
                    );
                    return None;
                }
            },
            SecretRef::File(p) => {
                let path = self.base_dir.join(p);
                self.watched.push(path.clone());
                match std::fs::read_to_string(&path) {
                    Ok(v) => Zeroizing::new(v),
                    Err(e) => {
                        self.problem(entry, field, format!("cannot read {}: {e}", path.display()));
                        return None;
                    }
                }
            }
        };
        let secret = text.trim_end_matches(['\n', '\r']);
        if secret.len() < 16 {
            self.problem(
                entry,
                field,
                format!("the secret from {r} is shorter than 16 characters; use a long random one"),
            );
            return None;
        }
        Some(Secret::Known(SecretDigest::of(secret.as_bytes())))
    }
}
