//! From YAML to a validated [`Registry`]: the file (plus `RESEAL_*`
//! environment overrides) read into a located tree (`yaml`), deserialized
//! into the model, then one pass that checks every entry and field. Both
//! stages report *all* problems at once, each as
//! `FILE:LINE:COLUMN: entry.field: what is wrong` (or naming the environment
//! variable of an override).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use zeroize::Zeroizing;

use super::model::{
    AwsSpec, ConfigFile, ConsumerKeyKind, ConsumerKeySpec, ConsumerSpec, DevelopmentSpec,
    EnvelopeFormatSpec, JweSerializationSpec, KeyRef, SecretRef, ServerSpec, SourceKind,
    SourceSpec,
};
use super::yaml::{self, Document, Problem};
use super::{
    BasicCredential, BrokerLimits, CallerRule, Callers, Consumer, ConsumerFormat, ConsumerKey,
    ConsumerWrap, ContextRules, JweKey, JweOutput, OutputContext, Propagate, Registry, SourceKey,
    SourceMaterial, SourceSet, Window,
};
use crate::esdk::{
    self, AlgorithmSuite, DecryptCommitment, DecryptPolicy, EncryptionContext, SuiteSet,
};
use crate::jwe;
use crate::keys::aws::{arn::KmsArn, kms, ssm, AwsKeys};
use crate::keys::cert::{self, CertificateInfo};
use crate::keys::jwe_keys::{self, JweKeyError, PublicKind};
use crate::keys::secret::{Secret, SecretDigest};
use crate::keys::{
    connect, raw_rsa, Fingerprint, KeyError, RawAesKeyring, RawRsaKeyring, RsaPadding,
};

/// The file could not be turned into a registry.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Every problem found, one per line, each naming file (and line) or
    /// environment variable, entry and field.
    #[error("{origin}: {} problem(s):\n{}", problems.len(), lines(problems))]
    Invalid {
        origin: String,
        problems: Vec<Problem>,
    },
}

fn lines(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

impl LoadError {
    /// Every problem, as the one-line messages printed to operators.
    pub fn problems(&self) -> Vec<String> {
        match self {
            LoadError::Io { .. } => vec![self.to_string()],
            LoadError::Invalid { problems, .. } => problems.iter().map(|p| p.to_string()).collect(),
        }
    }

    /// Every problem with its parts (origin, line or variable, path, message).
    pub fn details(&self) -> Vec<Problem> {
        match self {
            LoadError::Io { path, .. } => vec![Problem::new(
                &path.display().to_string(),
                yaml::Origin::Unknown,
                "",
                self.to_string(),
            )],
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
    /// What will serve the registry: the checks of a door that will not run
    /// (mutual TLS for callers' certificates under Lambda) do not apply.
    pub host: Host,
}

/// What serves a registry.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Host {
    /// `reseal serve`: the gRPC and HTTP/JSON listeners.
    #[default]
    Server,
    /// `reseal lambda`: one door, the Lambda runtime; IAM decides who may
    /// invoke the function and `lambda.caller` what it may target.
    Lambda,
}

/// A loaded file: the registry plus the settings that are not hot-reloadable.
pub struct Loaded {
    pub registry: Registry,
    pub server: ServerSpec,
    pub aws: AwsSpec,
    pub development: DevelopmentSpec,
    /// Non-fatal findings (e.g. ambiguous source keys), located like problems.
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

/// The located tree of a file, with the environment overlaid when asked.
fn document(text: &str, origin: &str, env_overrides: bool) -> Document {
    let mut doc = Document::parse(text, origin);
    if env_overrides {
        doc.apply_env(std::env::vars());
    }
    doc
}

/// Parses only the file structure (no key loading): the settings read at
/// start, and the dev keys to create. Every structural problem is reported.
pub fn parse_file(text: &str, origin: &str, env_overrides: bool) -> Result<ConfigFile, LoadError> {
    let mut doc = document(text, origin, env_overrides);
    let file = yaml::deserialize::<ConfigFile>(&mut doc);
    match file {
        Some(file) if doc.problems.is_empty() => Ok(file),
        _ => {
            sort(&mut doc.problems);
            Err(LoadError::Invalid {
                origin: origin.to_owned(),
                problems: doc.problems,
            })
        }
    }
}

/// In reading order: the file as a whole, then by line, then the environment.
fn sort(problems: &mut [Problem]) {
    problems.sort_by_key(|p| match p.line {
        yaml::Origin::Unknown => (0, 0, 0),
        yaml::Origin::File { line, column } => (1, line, column),
        yaml::Origin::Env(_) => (2, 0, 0),
    });
}

/// Compiles YAML text. `base_dir` anchors relative `file:` references.
pub fn load_str(
    text: &str,
    origin: &str,
    base_dir: &Path,
    options: &LoadOptions,
) -> Result<Loaded, LoadError> {
    let mut doc = document(text, origin, options.env_overrides);
    let file = yaml::deserialize::<ConfigFile>(&mut doc);
    let file = match file {
        // A syntax error leaves nothing worth checking further.
        Some(file) if !doc.is_consequence("") => file,
        _ => {
            sort(&mut doc.problems);
            return Err(LoadError::Invalid {
                origin: origin.to_owned(),
                problems: doc.problems,
            });
        }
    };
    let digest = hex::encode(
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, text.as_bytes()).as_ref(),
    );
    let mut b = Builder {
        doc: &doc,
        base_dir: base_dir.to_owned(),
        aws: options.aws.clone(),
        problems: Vec::new(),
        warnings: Vec::new(),
        watched: Vec::new(),
        fingerprints: Vec::new(),
    };
    b.settings(&file);
    let limits = b.limits(&file);
    let sources = b.sources(&file, &limits);
    let consumers = b.consumers(&file);
    let routes = b.routes(&file, &consumers);
    let callers = b.callers(&file, &consumers, &routes);
    if options.host == Host::Server {
        b.listener_consistency(&file);
    }
    b.consistency(&file);
    let (builder_problems, warnings, watched) = (b.problems, b.warnings, b.watched);
    let mut problems = doc.problems;
    problems.extend(builder_problems);
    sort(&mut problems);
    if !problems.is_empty() {
        return Err(LoadError::Invalid {
            origin: origin.to_owned(),
            problems,
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
        warnings,
        watched_files: watched,
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

/// Where a source's material comes from, for operators (never the material).
fn source_reference(spec: &SourceSpec) -> String {
    match spec.kind {
        SourceKind::RawRsa => spec.private_key.as_ref().map(ToString::to_string),
        SourceKind::RawAes => spec.key.as_ref().map(ToString::to_string),
        SourceKind::AwsKms => spec.key_ids.as_ref().map(|ids| ids.join(", ")),
        SourceKind::AwsKmsDiscovery => spec.discovery_filter.as_ref().map(|f| {
            format!(
                "KMS keys of partition {} in account(s) {}",
                f.partition,
                f.account_ids.join(", ")
            )
        }),
        SourceKind::SsmDiscovery => spec.parameter_template.as_ref().map(|t| {
            format!(
                "ssm:{t} (key names: {})",
                spec.key_name_pattern.as_deref().unwrap_or("uuid")
            )
        }),
    }
    .unwrap_or_default()
}

/// Where a JWE consumer key's material comes from, for operators.
fn jwe_key_reference(spec: &ConsumerKeySpec) -> String {
    match spec.kind {
        ConsumerKeyKind::X509 => spec.certificate.as_ref().map(ToString::to_string),
        ConsumerKeyKind::RawAes => spec.key.as_ref().map(ToString::to_string),
        ConsumerKeyKind::AwsKms => spec.key_id.clone(),
        ConsumerKeyKind::RsaPublic | ConsumerKeyKind::EcPublic => {
            spec.public_key.as_ref().map(ToString::to_string)
        }
    }
    .unwrap_or_default()
}

/// A certificate's validity bounds the key's own window.
fn certificate_window(own: Window, certificate: Option<&CertificateInfo>) -> Window {
    match certificate {
        Some(info) => own.intersect(Window {
            not_before: Some(info.not_before),
            not_after: Some(info.not_after),
        }),
        None => own,
    }
}

/// What each source type compiles to, before the parts every type shares.
struct SourceShape {
    provider_id: String,
    key_name: Option<String>,
    material: SourceMaterial,
}

struct Builder<'d> {
    /// The tree the model came from: where each path is written, and which
    /// paths already had a problem (later ones under them are consequences).
    doc: &'d Document,
    base_dir: PathBuf,
    aws: Option<Arc<AwsKeys>>,
    problems: Vec<Problem>,
    warnings: Vec<String>,
    /// Files read for key material and secrets (watched for changes with the config).
    watched: Vec<PathBuf>,
    /// Key material by entry, to find a source and a consumer sharing a key.
    fingerprints: Vec<(String, Material)>,
}

/// What identifies a key's material, for the sharing check.
#[derive(Clone, PartialEq, Eq)]
enum Material {
    Local(Fingerprint),
    Kms(String),
}

/// Provider id of consumer keys unless configured: what the consumer's keyring expects.
pub const DEFAULT_CONSUMER_PROVIDER_ID: &str = "reseal";
pub const DEFAULT_CONSUMER_PADDING: RsaPadding = RsaPadding::OaepSha256;

/// Default envelope suite: committed and unsigned (see README, "Why 0x0478").
pub const DEFAULT_CONSUMER_SUITE: AlgorithmSuite = AlgorithmSuite::Aes256GcmHkdfSha512CommitKey;
pub const DEFAULT_EXPIRY_WARNING: Duration = Duration::from_secs(30 * 24 * 3600);
/// Largest envelope frame length accepted in configuration.
const MAX_FRAME_LENGTH: u32 = 1 << 20;

impl Builder<'_> {
    fn problem(&mut self, entry: &str, field: &str, msg: impl std::fmt::Display) {
        let path = if field.is_empty() {
            entry.to_owned()
        } else {
            format!("{entry}.{field}")
        };
        if self.doc.is_consequence(&path) {
            return;
        }
        let at = self.doc.locate(&path);
        self.problems
            .push(Problem::new(&self.doc.origin, at, path, msg.to_string()));
    }

    fn warn(&mut self, entry: &str, msg: impl std::fmt::Display) {
        let at = self.doc.locate(entry);
        self.warnings
            .push(Problem::new(&self.doc.origin, at, entry, msg.to_string()).to_string());
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
        self.fingerprints.push((
            entry.to_owned(),
            Material::Local(Fingerprint::of_secret(&bytes)),
        ));
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

    /// The settings read at start (`server`, `telemetry`): values the types
    /// alone do not rule out.
    fn settings(&mut self, file: &ConfigFile) {
        let server = &file.server;
        if !matches!(server.log_format.as_str(), "json" | "text") {
            let hint = match yaml::suggest(&server.log_format, &["json", "text"]) {
                Some(s) => format!("; did you mean `{s}`?"),
                None => String::new(),
            };
            self.problem(
                "server",
                "log_format",
                format!("must be `json` or `text`{hint}"),
            );
        }
        let listeners = [
            ("listen", Some(&server.listen)),
            ("health_listen", Some(&server.health_listen)),
            ("admin_listen", Some(&server.admin_listen)),
            ("http_listen", server.http_listen.as_ref()),
        ];
        for (field, addr) in listeners.into_iter().filter_map(|(f, a)| a.map(|a| (f, a))) {
            let port = addr
                .rsplit_once(':')
                .filter(|(host, _)| !host.is_empty())
                .and_then(|(_, p)| p.parse::<u16>().ok());
            if port.is_none() {
                self.problem(
                    "server",
                    field,
                    "must be HOST:PORT, e.g. `0.0.0.0:50051` or `[::]:50051`",
                );
            }
        }
        for (field, value) in [
            ("max_request_bytes", server.max_request_bytes),
            ("max_concurrent_requests", server.max_concurrent_requests),
        ] {
            if value == 0 {
                self.problem("server", field, "must be greater than 0");
            }
        }
        if server.request_timeout.is_zero() {
            self.problem(
                "server",
                "request_timeout",
                "must be longer than 0, e.g. `10s`",
            );
        }
        let t = &file.telemetry;
        if !(0.0..=1.0).contains(&t.sample_ratio) {
            self.problem(
                "telemetry",
                "sample_ratio",
                "must be between 0.0 and 1.0 (the fraction of requests traced)",
            );
        }
        if let Some(url) = &t.otlp_endpoint {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                self.problem(
                    "telemetry",
                    "otlp_endpoint",
                    "must be an http:// or https:// URL, e.g. `http://otel-collector:4317`",
                );
            }
        }
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
            expiry_warning: spec.expiry_warning.unwrap_or(DEFAULT_EXPIRY_WARNING),
            reference: source_reference(spec),
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
                let parsed = raw_rsa::parse_private_key_pem(&pem).and_then(|private| {
                    if let Some(fp) = Fingerprint::of_public_key(&private.public_key()) {
                        self.fingerprints
                            .push((entry.to_owned(), Material::Local(fp)));
                    }
                    RawRsaKeyring::from_private_key(&provider_id, &key_name, padding, private)
                });
                match parsed {
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
        for id in ids {
            self.fingerprints
                .push((entry.to_owned(), Material::Kms(id.clone())));
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
        if spec.keys.is_empty() && !self.doc.has_entries(&format!("{entry}.keys")) {
            self.problem(entry, "keys", "at least one key is required");
        }
        let format = self.consumer_format(spec, entry);
        let esdk_format = format == ConsumerFormat::Esdk;
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
        if esdk_format && !suite.is_committing() {
            self.warn(
                entry,
                format!("suite {suite} is not key-committing; use it only for readers on ESDK 1.x"),
            );
        }
        let frame_length = spec.frame_length.unwrap_or(esdk::DEFAULT_FRAME_LENGTH);
        if esdk_format && (frame_length == 0 || frame_length > MAX_FRAME_LENGTH) {
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
            if let Some((key, name)) = self.consumer_key(kid, kspec, &kentry, spec.format) {
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
        if let ConsumerFormat::Jwe(JweOutput {
            serialization: Some(jwe::Serialization::Compact),
            ..
        }) = &format
        {
            self.compact_keys_apart(&keys, entry);
        }
        Some(Consumer {
            id: id.to_owned(),
            keys,
            format,
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

    /// The consumer's envelope format, and every field set that the other
    /// format uses.
    fn consumer_format(&mut self, spec: &ConsumerSpec, entry: &str) -> ConsumerFormat {
        match spec.format {
            EnvelopeFormatSpec::Esdk => {
                for (field, present) in [
                    ("serialization", spec.serialization.is_some()),
                    ("content_type", spec.content_type.is_some()),
                ] {
                    if present {
                        self.problem(
                            entry,
                            field,
                            "only used by JWE consumers (`format: jwe`); remove it",
                        );
                    }
                }
                ConsumerFormat::Esdk
            }
            EnvelopeFormatSpec::Jwe => {
                for (field, present) in [
                    ("suite", spec.suite.is_some()),
                    ("frame_length", spec.frame_length.is_some()),
                ] {
                    if present {
                        self.problem(
                            entry,
                            field,
                            "not used by `format: jwe` (JWE envelopes are A256GCM, unframed); remove it",
                        );
                    }
                }
                if let Some(cty) = &spec.content_type {
                    if cty.is_empty() || cty.chars().any(char::is_control) {
                        self.problem(
                            entry,
                            "content_type",
                            "must be a non-empty media type without control characters",
                        );
                    }
                }
                ConsumerFormat::Jwe(JweOutput {
                    serialization: spec.serialization.map(|s| match s {
                        JweSerializationSpec::Compact => jwe::Serialization::Compact,
                        JweSerializationSpec::Json => jwe::Serialization::Json,
                    }),
                    content_type: spec.content_type.clone(),
                })
            }
        }
    }

    /// `serialization: compact` holds one recipient: no two keys of the
    /// consumer may be active at the same time (an old key's `not_after`
    /// equal to the new key's `not_before` is a cut-over, not an overlap).
    fn compact_keys_apart(&mut self, keys: &[ConsumerKey], entry: &str) {
        for (i, a) in keys.iter().enumerate() {
            for b in &keys[i + 1..] {
                let start = a.window.not_before.max(b.window.not_before);
                let end = match (a.window.not_after, b.window.not_after) {
                    (Some(x), Some(y)) => Some(x.min(y)),
                    (x, y) => x.or(y),
                };
                let overlap = match (start, end) {
                    (Some(s), Some(e)) => s < e,
                    _ => true,
                };
                if overlap {
                    self.problem(
                        entry,
                        "serialization",
                        format!(
                            "`compact` holds one recipient, but keys `{}` and `{}` are active at the same time{}; \
                             use `json` (or leave `serialization` out) for a rotation with both keys, \
                             or end one key's window where the other's begins",
                            a.id,
                            b.id,
                            match start.and_then(|s| s.format(&Rfc3339).ok()) {
                                Some(s) => format!(" from {s}"),
                                None => String::new(),
                            }
                        ),
                    );
                }
            }
        }
    }

    fn consumer_key(
        &mut self,
        id: &str,
        spec: &ConsumerKeySpec,
        entry: &str,
        format: EnvelopeFormatSpec,
    ) -> Option<(ConsumerKey, Option<(String, String)>)> {
        let own_window = self.window(spec.not_before, spec.not_after, entry, "not_after");
        if format == EnvelopeFormatSpec::Jwe {
            let (wrap, certificate) = self.jwe_consumer_key(id, spec, entry)?;
            return Some((
                ConsumerKey {
                    id: id.to_owned(),
                    kind: spec.kind,
                    wrap,
                    window: certificate_window(own_window, certificate.as_ref()),
                    certificate,
                    provider_id: None,
                    key_name: None,
                    reference: jwe_key_reference(spec),
                },
                None,
            ));
        }
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
            ConsumerKeyKind::EcPublic => {
                self.problem(
                    entry,
                    "type",
                    "`ec-public` keys need the consumer's `format: jwe` (ESDK envelopes have no EC recipients)",
                );
                return None;
            }
        };
        let window = certificate_window(own_window, certificate.as_ref());
        let name = match spec.kind {
            ConsumerKeyKind::AwsKms => None,
            _ => Some((provider_id, key_name)),
        };
        let reference = match spec.kind {
            ConsumerKeyKind::RsaPublic => spec.public_key.as_ref().map(ToString::to_string),
            ConsumerKeyKind::X509 => spec.certificate.as_ref().map(ToString::to_string),
            ConsumerKeyKind::RawAes => spec.key.as_ref().map(ToString::to_string),
            ConsumerKeyKind::AwsKms => spec.key_id.clone(),
            ConsumerKeyKind::EcPublic => spec.public_key.as_ref().map(ToString::to_string),
        };
        Some((
            ConsumerKey {
                id: id.to_owned(),
                kind: spec.kind,
                wrap,
                window,
                certificate,
                provider_id: name.as_ref().map(|n| n.0.clone()),
                key_name: name.as_ref().map(|n| n.1.clone()),
                reference: reference.unwrap_or_default(),
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
        if let Ok(info @ jwe::KeyInfo::Ec { .. }) = jwe_keys::spki_from_pem(&pem)
            .and_then(|spki| jwe::inspect_spki(&spki).map_err(|e| KeyError::Invalid(e.to_string())))
        {
            self.problem(
                entry,
                "public_key",
                format!("the key is {info}; ESDK envelopes take RSA keys only (EC keys work with the consumer's `format: jwe` and type `ec-public`) (from {r})"),
            );
            return None;
        }
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
        if let Ok(info @ jwe::KeyInfo::Ec { .. }) = cert::certificate(&pem)
            .and_then(|c| jwe::inspect_spki(&c.spki).map_err(|e| KeyError::Invalid(e.to_string())))
        {
            self.problem(
                entry,
                "certificate",
                format!("the certificate holds an {info} key; ESDK envelopes take RSA keys only (EC keys work with the consumer's `format: jwe`) (from {r})"),
            );
            return None;
        }
        let (public, info) = match cert::rsa_certificate(&pem) {
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
        if let Some(fp) = Fingerprint::of_public_key(&public) {
            self.fingerprints
                .push((entry.to_owned(), Material::Local(fp)));
        }
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
        self.fingerprints
            .push((entry.to_owned(), Material::Kms(key_id.clone())));
        let aws = self.aws_keys(entry, "key_id")?;
        Some(ConsumerWrap::Kms(aws.kms_recipient(key_id)))
    }

    /// A JWE consumer's key: one function per key type below. Every type
    /// refuses the ESDK-only fields.
    fn jwe_consumer_key(
        &mut self,
        id: &str,
        spec: &ConsumerKeySpec,
        entry: &str,
    ) -> Option<(ConsumerWrap, Option<CertificateInfo>)> {
        for (field, present, why) in [
            (
                "padding",
                spec.padding.is_some(),
                "JWE RSA keys always use RSA-OAEP-256",
            ),
            (
                "provider_id",
                spec.provider_id.is_some(),
                "a JWE recipient is named by its `kid`, the key's id",
            ),
            (
                "key_name",
                spec.key_name.is_some(),
                "a JWE recipient is named by its `kid`, the key's id",
            ),
        ] {
            if present {
                self.problem(
                    entry,
                    field,
                    format!("not used by `format: jwe` ({why}); remove it"),
                );
            }
        }
        match spec.kind {
            ConsumerKeyKind::RsaPublic => {
                Some((self.jwe_public_key(id, spec, entry, PublicKind::Rsa)?, None))
            }
            ConsumerKeyKind::EcPublic => {
                Some((self.jwe_public_key(id, spec, entry, PublicKind::Ec)?, None))
            }
            ConsumerKeyKind::X509 => {
                let (wrap, info) = self.jwe_x509_key(id, spec, entry)?;
                Some((wrap, Some(info)))
            }
            ConsumerKeyKind::RawAes => Some((self.jwe_raw_aes_key(id, spec, entry)?, None)),
            ConsumerKeyKind::AwsKms => {
                self.problem(
                    entry,
                    "type",
                    "`aws-kms` keys cannot seal JWE envelopes (JWE has no KMS key management, \
                     and a KMS key never leaves KMS); give this consumer an `rsa-public`, `x509`, \
                     `ec-public` or 32-byte `raw-aes` key, or `format: esdk`",
                );
                None
            }
        }
    }

    /// A JWE consumer's RSA (RSA-OAEP-256) or EC P-256 / P-384
    /// (ECDH-ES+A256KW) public key: PEM from `file:`/`env:`/inline, or an SSM
    /// parameter fetched like an ESDK consumer's.
    fn jwe_public_key(
        &mut self,
        id: &str,
        spec: &ConsumerKeySpec,
        entry: &str,
        kind: PublicKind,
    ) -> Option<ConsumerWrap> {
        self.consumer_key_unused(spec, entry, &["key", "key_id", "certificate"]);
        let r = self.required(&spec.public_key, entry, "public_key", spec.kind.as_str())?;
        if let KeyRef::Ssm(param) = r {
            let aws = self.aws_keys(entry, "public_key")?;
            return Some(ConsumerWrap::JweFetched(
                aws.ssm_jwe_public_key(param, id, kind),
            ));
        }
        let pem = self.material(r, entry, "public_key")?;
        match jwe_keys::public_key_recipient(id, &pem, kind) {
            Ok(recipient) => Some(ConsumerWrap::Jwe(Arc::new(JweKey {
                recipient,
                opener: None,
            }))),
            Err(e) => {
                let hint = match &e {
                    JweKeyError::WrongKind { found, .. } => match found {
                        jwe::KeyInfo::Rsa { .. } => "; use type `rsa-public`",
                        jwe::KeyInfo::Ec { .. } => "; use type `ec-public`",
                        jwe::KeyInfo::Aes256 => "",
                    },
                    _ => "",
                };
                self.problem(entry, "public_key", format!("{e}{hint} (from {r})"));
                None
            }
        }
    }

    /// A JWE consumer's certificate, RSA or EC P-256 / P-384: `x5t#S256` in
    /// its recipient header, its validity bounding the key's use.
    fn jwe_x509_key(
        &mut self,
        id: &str,
        spec: &ConsumerKeySpec,
        entry: &str,
    ) -> Option<(ConsumerWrap, CertificateInfo)> {
        self.consumer_key_unused(spec, entry, &["key", "key_id", "public_key"]);
        let r = self.required(&spec.certificate, entry, "certificate", spec.kind.as_str())?;
        let pem = self.material(r, entry, "certificate")?;
        match jwe_keys::certificate_recipient(id, &pem) {
            Ok((recipient, info)) => Some((
                ConsumerWrap::Jwe(Arc::new(JweKey {
                    recipient,
                    opener: None,
                })),
                info,
            )),
            Err(e) => {
                self.problem(entry, "certificate", format!("{e} (from {r})"));
                None
            }
        }
    }

    /// A JWE consumer's shared AES key: exactly 32 bytes (A256KW).
    fn jwe_raw_aes_key(
        &mut self,
        id: &str,
        spec: &ConsumerKeySpec,
        entry: &str,
    ) -> Option<ConsumerWrap> {
        self.consumer_key_unused(spec, entry, &["public_key", "certificate", "key_id"]);
        let r = self.required(&spec.key, entry, "key", spec.kind.as_str())?;
        let bytes = self.aes_key(r, entry, "key")?;
        if bytes.len() != 32 {
            self.problem(
                entry,
                "key",
                format!(
                    "AES key is {} bytes; JWE consumers need exactly 32 (A256KW; A128KW and A192KW are not offered)",
                    bytes.len()
                ),
            );
            return None;
        }
        match jwe_keys::aes_recipient(id, &bytes) {
            Ok((recipient, opener)) => Some(ConsumerWrap::Jwe(Arc::new(JweKey {
                recipient,
                opener: Some(opener),
            }))),
            Err(e) => {
                self.problem(entry, "key", e);
                None
            }
        }
    }

    fn routes(
        &mut self,
        file: &ConfigFile,
        consumers: &BTreeMap<String, Arc<Consumer>>,
    ) -> BTreeMap<String, Vec<String>> {
        let mut out = BTreeMap::new();
        let written = self.doc.section_keys("consumers");
        for (name, members) in &file.routes {
            let entry = format!("routes.{name}");
            if members.is_empty() {
                self.problem(&entry, "", "a route needs at least one consumer");
            }
            let mut list = Vec::new();
            for c in members {
                if !consumers.contains_key(c)
                    && !file.consumers.contains_key(c)
                    && !written.contains(c)
                {
                    let msg = unknown("consumer", c, &written);
                    self.problem(&entry, "", msg);
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
        let written_routes = self.doc.section_keys("routes");
        let written_consumers = self.doc.section_keys("consumers");
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
                if r != "*"
                    && !routes.contains_key(r)
                    && !file.routes.contains_key(r)
                    && !written_routes.contains(r)
                {
                    let msg = unknown("route", r, &written_routes);
                    self.problem(&entry, "routes", msg);
                }
            }
            for c in &spec.consumers {
                if c != "*"
                    && !consumers.contains_key(c)
                    && !file.consumers.contains_key(c)
                    && !written_consumers.contains(c)
                {
                    let msg = unknown("consumer", c, &written_consumers);
                    self.problem(&entry, "consumers", msg);
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

    /// Checks across sections: what would make a registry that loads but
    /// cannot work (refused), or works in a way nobody meant (warned).
    fn listener_consistency(&mut self, file: &ConfigFile) {
        // Callers are identified by their client certificate: without mutual
        // TLS nobody has an identity, and every call fails UNAUTHENTICATED.
        let mtls = file
            .server
            .tls
            .as_ref()
            .is_some_and(|t| t.client_ca_file.is_some());
        if !mtls {
            for (name, spec) in &file.callers {
                if !spec.identities.is_empty() {
                    self.problem(
                        &format!("callers.{name}"),
                        "identities",
                        "callers are identified by their client certificate, but mutual TLS is off \
                         (`server.tls.client_ca_file` is not set): every call would fail UNAUTHENTICATED; \
                         set `server.tls` with `client_ca_file`, or remove `callers`",
                    );
                }
            }
        }
        // Tokens and Basic credentials travel in the request: without TLS on
        // some door they would be refused (or, allowed, sent in clear).
        let tls = file.server.tls.is_some();
        if !tls && !file.server.allow_plaintext_credentials {
            for (name, spec) in &file.callers {
                for (field, present) in [
                    ("tokens", !spec.tokens.is_empty()),
                    ("basic", !spec.basic.is_empty()),
                ] {
                    if present {
                        self.problem(
                            &format!("callers.{name}"),
                            field,
                            "credentials are refused over plaintext connections, and `server.tls` is \
                             not set: every call would fail UNAUTHENTICATED; set `server.tls`, or \
                             (development only) `server.allow_plaintext_credentials: true`",
                        );
                    }
                }
            }
        }
    }

    /// Checks across sections: what would make a registry that loads but
    /// cannot work (refused), or works in a way nobody meant (warned).
    fn consistency(&mut self, file: &ConfigFile) {
        // An empty registry opens or seals nothing, yet would report ready.
        if !file.allow_empty {
            if file.sources.is_empty() && self.doc.section_keys("sources").is_empty() {
                self.problem(
                    "sources",
                    "",
                    "no source keys: reseal could open no input (add `sources`, or set \
                     `allow_empty: true` to start without any)",
                );
            }
            if file.consumers.is_empty() && self.doc.section_keys("consumers").is_empty() {
                self.problem(
                    "consumers",
                    "",
                    "no consumers: reseal could seal for nobody (add `consumers`, or set \
                     `allow_empty: true` to start without any)",
                );
            }
        }
        // A source and a consumer with the same key: whoever holds the
        // consumer's key opens the source's inputs, and the other way round.
        let fingerprints = std::mem::take(&mut self.fingerprints);
        for (source, m) in fingerprints
            .iter()
            .filter(|(e, _)| e.starts_with("sources."))
        {
            for (consumer, _) in fingerprints
                .iter()
                .filter(|(e, m2)| e.starts_with("consumers.") && m2 == m)
            {
                self.warn(
                    source,
                    format!(
                        "uses the same key material as `{consumer}`: whoever holds that consumer's key \
                         can also open every input this source opens; give the consumer a key of its own"
                    ),
                );
            }
        }
    }
}

/// "unknown consumer `x`", with the nearest configured name when one is close.
fn unknown(what: &str, name: &str, known: &[String]) -> String {
    let names: Vec<&str> = known.iter().map(String::as_str).collect();
    match yaml::suggest(name, &names) {
        Some(s) => format!("unknown {what} `{name}`; did you mean `{s}`?"),
        None => format!("unknown {what} `{name}`"),
    }
}
