//! The use case, in one place: open an input once, seal it for every consumer.
//!
//! ```text
//! input ─► resolve targets (registry snapshot, authorization)          [reactor]
//!       ─► parse (structure + limits, no keys)                         [one CPU task]
//!       ─► match source keys by EDK (lookup) ─► window, suite, context rules
//!       ─► unwrap data key (local key here; AWS key: back to the reactor, then on)
//!       ─► open (tags, signature)
//!       ─► per consumer with local keys: materials ─► seal (chunks on idle threads)
//!       ─► per consumer with AWS keys, concurrently                   [reactor + CPU]
//! ```
//!
//! The plaintext lives in one zeroizing buffer shared by the sealing tasks and
//! dropped when the last of them is done. Crypto runs on the CPU pool
//! ([`CpuPool`]), never on the async reactor; a request is one task there, from
//! parsing to its first envelopes, because every hand-off costs a wake-up. A consumer's failure is data in its result, not
//! an error of the call (unless the caller asks for all-or-nothing).

pub mod error;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::join_all;

pub use error::{BrokerError, Reason};

use crate::clock::Clock;
use crate::esdk::{
    self, AlgorithmSuite, DataKey, EncryptedDataKey, EncryptionContext, EncryptionMaterials,
    KeyringContext, Message, Plaintext,
};
use crate::keys::aws::cache::MaterialsCache;
use crate::registry::{
    Candidate, Consumer, ConsumerWrap, ContextInputs, Registry, RegistryHandle, SourceMaterial,
};
use crate::telemetry::{ConsumerLabels, Metrics, SourceLabels, AUDIT_TARGET};

/// The input ciphertext as the caller sent it.
#[derive(Debug, Clone)]
pub enum CiphertextInput {
    Bytes(Vec<u8>),
    Base64(String),
}

/// One re-encryption request, already decoded from the wire.
#[derive(Debug, Clone)]
pub struct ReencryptRequest {
    pub ciphertext: CiphertextInput,
    pub consumers: Vec<String>,
    pub route: Option<String>,
    pub source_key_hint: Option<String>,
    pub expected_context: EncryptionContext,
    pub all_or_nothing: bool,
    /// Assigned by the edge when the caller sent none.
    pub request_id: String,
}

/// Who is calling (from the client certificate when mTLS is on).
#[derive(Debug, Clone, Default)]
pub struct Caller {
    pub identity: Option<String>,
    pub peer: Option<String>,
}

/// An envelope for one consumer.
#[derive(Debug, Clone)]
pub struct Envelope {
    pub ciphertext: Vec<u8>,
    pub key_ids: Vec<String>,
    pub suite: AlgorithmSuite,
}

#[derive(Debug, Clone)]
pub struct ConsumerOutcome {
    pub consumer: String,
    pub result: Result<Envelope, BrokerError>,
}

#[derive(Debug, Clone)]
pub struct ReencryptResponse {
    pub source_key_id: String,
    pub message_id: String,
    pub request_id: String,
    pub results: Vec<ConsumerOutcome>,
}

mod cpu;
pub use cpu::CpuPool;

/// Fewest consumers a CPU task seals when a fan-out is split across idle
/// threads (about 8 × 25 µs): below that the hand-off costs more than it saves.
const MIN_CONSUMERS_PER_TASK: usize = 8;
/// The broker: registry, clock, CPU pool and metrics.
pub struct Broker {
    registry: Arc<RegistryHandle>,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
    cpu: CpuPool,
    unknown_key_events: AtomicU64,
    /// Caching-CMM reuse of materials for consumers with KMS keys.
    materials_cache: Option<Arc<MaterialsCache>>,
}

const NO_ROUTE: &str = "-";

impl Broker {
    pub fn new(
        registry: Arc<RegistryHandle>,
        clock: Arc<dyn Clock>,
        metrics: Arc<Metrics>,
        cpu: CpuPool,
    ) -> Self {
        Broker {
            registry,
            clock,
            metrics,
            cpu,
            unknown_key_events: AtomicU64::new(0),
            materials_cache: None,
        }
    }

    /// Reuses encryption materials for consumers with AWS-backed keys, within
    /// the cache's age / message / byte limits (the ESDK caching CMM).
    pub fn with_materials_cache(mut self, cache: Arc<MaterialsCache>) -> Self {
        self.materials_cache = Some(cache);
        self
    }

    pub fn registry(&self) -> &Arc<RegistryHandle> {
        &self.registry
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The metrics label for a request's route: a configured name or `-`.
    pub fn route_label(&self, route: Option<&str>) -> String {
        match (route, self.registry.snapshot()) {
            (Some(r), Some(reg)) if reg.routes.contains_key(r) => r.to_owned(),
            (Some(_), _) => "unknown".into(),
            (None, _) => NO_ROUTE.into(),
        }
    }

    /// Re-encrypts one input for its consumers. Writes one audit event.
    pub async fn reencrypt(
        &self,
        caller: &Caller,
        request: ReencryptRequest,
    ) -> Result<ReencryptResponse, BrokerError> {
        let registry = self.snapshot()?;
        self.reencrypt_on(&registry, caller, request).await
    }

    fn snapshot(&self) -> Result<Arc<Registry>, BrokerError> {
        self.registry
            .snapshot()
            .ok_or_else(|| BrokerError::new(Reason::NotReady, "no registry is loaded yet"))
    }

    /// One re-encryption against a given registry snapshot.
    async fn reencrypt_on(
        &self,
        registry: &Arc<Registry>,
        caller: &Caller,
        request: ReencryptRequest,
    ) -> Result<ReencryptResponse, BrokerError> {
        let started = Instant::now();
        let mut audit = Audit::new(caller, &request);
        let result = self.run(registry, caller, request, &mut audit).await;
        audit.finish(&result, started.elapsed());
        if let Err(e) = &result {
            self.note_security(caller, e);
        }
        result
    }

    /// Re-encrypts a batch; each item succeeds or fails on its own. Items that
    /// could not even be decoded arrive as errors and stay in place.
    pub async fn reencrypt_batch(
        &self,
        caller: &Caller,
        items: Vec<Result<ReencryptRequest, BrokerError>>,
    ) -> Result<Vec<Result<ReencryptResponse, BrokerError>>, BrokerError> {
        // One snapshot for the whole batch: a reload never splits it.
        let registry = self.snapshot()?;
        if items.is_empty() {
            return Err(BrokerError::new(
                Reason::NoDataSupplied,
                "the batch has no items",
            ));
        }
        let max = registry.limits.max_batch_items;
        if items.len() > max {
            return Err(BrokerError::new(
                Reason::BatchTooLarge,
                format!(
                    "the batch has {} items; at most {max} are accepted",
                    items.len()
                ),
            ));
        }
        let registry = &registry;
        Ok(join_all(items.into_iter().map(|item| async move {
            match item {
                Ok(request) => self.reencrypt_on(registry, caller, request).await,
                Err(e) => Err(e),
            }
        }))
        .await)
    }

    async fn run(
        &self,
        registry: &Arc<Registry>,
        caller: &Caller,
        request: ReencryptRequest,
        audit: &mut Audit,
    ) -> Result<ReencryptResponse, BrokerError> {
        let consumers = resolve_targets(
            registry,
            caller,
            &request.consumers,
            request.route.as_deref(),
        )?;
        let bytes = decode_input(request.ciphertext, registry.limits.max_ciphertext_bytes)?;
        let now = self.clock.now();

        // Consumers with local keys only are sealed in the same CPU task that
        // opens the input; the others need AWS calls and are sealed below.
        let (local, remote): (Vec<_>, Vec<_>) = consumers
            .iter()
            .cloned()
            .enumerate()
            .partition(|(_, c)| c.is_local());
        let job = OpenJob {
            registry: registry.clone(),
            metrics: self.metrics.clone(),
            pool: self.cpu.clone(),
            expected: request.expected_context.clone(),
            hint: request.source_key_hint.clone(),
            request_id: request.request_id.clone(),
            local,
            now,
        };
        let started = self.cpu.run(move || job.start(bytes)).await?;
        audit.message_id = started.message_id;
        audit.suite = started.suite;
        let mut stage = started.stage;
        let opened = loop {
            match stage? {
                Stage::Opened(opened) => break opened,
                Stage::NeedRemote(mut pending) => match pending.unwrap_remote().await {
                    Ok((source_id, key)) => {
                        stage = self
                            .cpu
                            .run(move || pending.open_and_seal(source_id, key))
                            .await?;
                    }
                    Err(e) => {
                        pending.failed(e);
                        stage = self.cpu.run(move || pending.advance()).await?;
                    }
                },
            }
        };
        audit.source_key = Some(opened.inputs.source_key_id.clone());

        // Envelopes for consumers with AWS-backed keys, and the fan-out
        // chunks that other threads picked up, concurrently.
        let remote_sealed = join_all(remote.into_iter().map(|(index, consumer)| {
            let ec = consumer
                .output
                .build(&opened.inputs.for_consumer(&consumer.id));
            let plaintext = opened.plaintext.clone();
            async move { (index, self.seal_for(consumer, plaintext, ec, now).await) }
        }));
        let chunks = join_all(opened.chunks.into_iter().map(|(indices, rx)| async move {
            match rx.await {
                Ok(sealed) => sealed,
                Err(_) => indices
                    .into_iter()
                    .map(|i| (i, Err(BrokerError::internal("a crypto task failed"))))
                    .collect(),
            }
        }));
        let (remote_sealed, chunks) = futures_util::future::join(remote_sealed, chunks).await;
        drop(opened.plaintext);
        let mut sealed: Vec<Option<Result<Envelope, BrokerError>>> =
            (0..consumers.len()).map(|_| None).collect();
        for (index, result) in opened
            .sealed
            .into_iter()
            .chain(remote_sealed)
            .chain(chunks.into_iter().flatten())
        {
            if let Some(slot) = sealed.get_mut(index) {
                *slot = Some(result);
            }
        }

        let mut outcomes = Vec::with_capacity(consumers.len());
        for (consumer, result) in consumers.iter().zip(sealed) {
            let result =
                result.unwrap_or_else(|| Err(BrokerError::internal("envelope not produced")));
            self.metrics
                .envelopes
                .get_or_create(&ConsumerLabels {
                    consumer: consumer.id.clone(),
                    outcome: match &result {
                        Ok(_) => "ok".into(),
                        Err(e) => e.reason.as_str().into(),
                    },
                })
                .inc();
            outcomes.push(ConsumerOutcome {
                consumer: consumer.id.clone(),
                result,
            });
        }
        audit.consumers = outcomes
            .iter()
            .map(|o| match &o.result {
                Ok(env) => audit_entry(&o.consumer, &env.key_ids),
                Err(e) => format!("{}!{}", o.consumer, e.reason),
            })
            .collect();
        if request.all_or_nothing {
            if let Some(failed) = outcomes.iter().find(|o| o.result.is_err()) {
                let err = failed
                    .result
                    .clone()
                    .err()
                    .unwrap_or_else(|| BrokerError::internal("unreachable"));
                return Err(BrokerError {
                    message: format!(
                        "consumer `{}`: {} (all_or_nothing is set)",
                        failed.consumer, err.message
                    ),
                    ..err
                });
            }
        }
        let inputs = &opened.inputs;
        Ok(ReencryptResponse {
            source_key_id: inputs.source_key_id.clone(),
            message_id: inputs.message_id.clone(),
            request_id: request.request_id,
            results: outcomes,
        })
    }

    /// Seals the plaintext for one consumer under all its active keys.
    async fn seal_for(
        &self,
        consumer: Arc<Consumer>,
        plaintext: Arc<Plaintext>,
        ec: EncryptionContext,
        now: time::OffsetDateTime,
    ) -> Result<Envelope, BrokerError> {
        let keys: Vec<_> = consumer.active_keys(now).cloned().collect();
        if keys.is_empty() {
            return Err(no_active_key(&consumer));
        }
        let key_ids: Vec<String> = keys.iter().map(|k| k.id.clone()).collect();
        let suite = consumer.suite;
        let frame_length = consumer.frame_length;

        let remote: Vec<_> = keys
            .iter()
            .filter_map(|k| match &k.wrap {
                ConsumerWrap::Remote(r) => Some((k.id.clone(), r.clone())),
                ConsumerWrap::Local(_) => None,
            })
            .collect();
        if remote.is_empty() {
            // Its AWS-backed keys are all inactive: the local ones seal it, on the pool.
            let consumer = consumer.clone();
            return self
                .cpu
                .run(move || seal_local(&consumer, plaintext.as_bytes(), ec, now))
                .await?;
        }
        let local: Vec<_> = keys
            .iter()
            .filter_map(|k| match &k.wrap {
                ConsumerWrap::Local(r) => Some(r.clone()),
                ConsumerWrap::Remote(_) => None,
            })
            .collect();
        let built = |e: esdk::Error| envelope_error(&consumer, e);

        let cache = self.materials_cache.as_ref().filter(|c| c.enabled());
        let cache_key = cache.map(|_| {
            let digest = aws_lc_rs::digest::digest(
                &aws_lc_rs::digest::SHA256,
                &ec.serialize().unwrap_or_default(),
            );
            format!(
                "{}\u{0}{suite}\u{0}{}\u{0}{}",
                consumer.id,
                key_ids.join(","),
                hex::encode(digest.as_ref())
            )
        });
        let len = plaintext.len();
        let cached = match (cache, &cache_key) {
            (Some(c), Some(k)) => c.take(k, len),
            _ => None,
        };
        let materials = match cached {
            Some(m) => m,
            None => {
                // AWS-backed keys: the first generates the data key (as the
                // ESDK's generator does), the others wrap it.
                let draft = EncryptionMaterials::begin(suite, ec).map_err(BrokerError::internal)?;
                let (first_id, first) = &remote[0];
                let (data_key, first_edk) = first
                    .generate(suite, draft.encryption_context())
                    .await
                    .map_err(|e| error::key_access_error(first_id, e))?;
                let mut m = draft.finish(data_key).map_err(BrokerError::internal)?;
                m.push_encrypted_data_key(first_edk);
                for (id, r) in &remote[1..] {
                    let edk: EncryptedDataKey = r
                        .wrap(m.data_key(), m.encryption_context())
                        .await
                        .map_err(|e| error::key_access_error(id, e))?;
                    m.push_encrypted_data_key(edk);
                }
                let m = if local.is_empty() {
                    m
                } else {
                    self.cpu
                        .run(move || -> Result<EncryptionMaterials, esdk::Error> {
                            for r in &local {
                                m.wrap_for(r.as_ref())?;
                            }
                            Ok(m)
                        })
                        .await?
                        .map_err(built)?
                };
                let m = Arc::new(m);
                if let (Some(c), Some(k)) = (cache, &cache_key) {
                    c.put(k, m.clone(), len);
                }
                m
            }
        };
        let ciphertext = self
            .cpu
            .run(move || esdk::seal(plaintext.as_bytes(), &materials, frame_length))
            .await?
            .map_err(built)?;
        Ok(Envelope {
            ciphertext,
            key_ids,
            suite,
        })
    }

    fn note_security(&self, caller: &Caller, e: &BrokerError) {
        let kind = match e.reason {
            Reason::AuthenticationFailed => "tampered_input",
            Reason::SourceKeyNotConfigured => "unknown_key_id",
            Reason::PermissionDenied | Reason::Unauthenticated => "denied_caller",
            _ => return,
        };
        self.metrics.security_event(kind);
        let identity = caller.identity.as_deref().unwrap_or("-");
        if kind == "unknown_key_id" {
            // A flood of unknown key ids is one event per 100, not 100 log lines.
            let n = self.unknown_key_events.fetch_add(1, Ordering::Relaxed) + 1;
            if n == 1 || n % 100 == 0 {
                tracing::warn!(target: AUDIT_TARGET, event = "security", kind, count = n, caller = identity, detail = %e.message, "input for a key that is not configured");
            }
        } else {
            tracing::warn!(target: AUDIT_TARGET, event = "security", kind, caller = identity, reason = %e.reason, detail = e.detail.as_deref().unwrap_or(&e.message), "security event");
        }
    }
}

/// Raw bytes, or base64 text (either field), bounded before and after decoding.
fn decode_input(input: CiphertextInput, max: usize) -> Result<Vec<u8>, BrokerError> {
    let too_big = |n: usize| {
        BrokerError::new(
            Reason::MaximumDataSizeExceeded,
            format!("the ciphertext is {n} bytes; at most {max} are accepted"),
        )
    };
    let bytes = match input {
        CiphertextInput::Bytes(b) => {
            if b.len() > max.saturating_mul(4) / 3 + 4 {
                return Err(too_big(b.len()));
            }
            match crate::input::message_bytes(&b) {
                Ok(std::borrow::Cow::Borrowed(_)) => b,
                Ok(std::borrow::Cow::Owned(decoded)) => decoded,
                Err(_) => {
                    return Err(BrokerError::new(
                        Reason::MalformedCiphertext,
                        "the ciphertext is neither an ESDK message nor base64 text",
                    ))
                }
            }
        }
        CiphertextInput::Base64(text) => {
            if text.len() / 4 * 3 > max + 3 {
                return Err(too_big(text.len() / 4 * 3));
            }
            crate::input::decode_base64(text.as_bytes()).map_err(|_| {
                BrokerError::new(
                    Reason::MalformedCiphertext,
                    "`ciphertext_base64` is not valid base64",
                )
            })?
        }
    };
    if bytes.is_empty() {
        return Err(BrokerError::new(
            Reason::NoDataSupplied,
            "no ciphertext was supplied",
        ));
    }
    if bytes.len() > max {
        return Err(too_big(bytes.len()));
    }
    Ok(bytes)
}

/// Route and consumer ids → consumers, with authorization first (so a caller
/// cannot probe which names exist), then existence, then the per-call limit.
fn resolve_targets(
    registry: &Registry,
    caller: &Caller,
    consumers: &[String],
    route: Option<&str>,
) -> Result<Vec<Arc<Consumer>>, BrokerError> {
    if consumers.is_empty() && route.is_none() {
        return Err(BrokerError::new(
            Reason::NoTargets,
            "name at least one consumer or a route",
        ));
    }
    let callers = &registry.callers;
    if callers.is_enforced() {
        let identity = caller.identity.as_deref().ok_or_else(|| {
            BrokerError::new(
                Reason::Unauthenticated,
                "a client certificate is required to call this broker",
            )
        })?;
        if !callers.knows(identity) {
            return Err(BrokerError::new(
                Reason::PermissionDenied,
                format!(
                    "caller `{}` is not registered",
                    esdk::keyring::printable(identity.as_bytes())
                ),
            ));
        }
        if let Some(r) = route {
            if !callers.may_use_route(identity, r) {
                return Err(BrokerError::new(
                    Reason::PermissionDenied,
                    format!(
                        "caller `{identity}` may not use route `{}`",
                        esdk::keyring::printable(r.as_bytes())
                    ),
                ));
            }
        }
        for c in consumers {
            if !callers.may_target_consumer(identity, c) {
                return Err(BrokerError::new(
                    Reason::PermissionDenied,
                    format!(
                        "caller `{identity}` may not target consumer `{}`",
                        esdk::keyring::printable(c.as_bytes())
                    ),
                ));
            }
        }
    }
    let mut ids: Vec<&str> = Vec::new();
    if let Some(r) = route {
        let members = registry.routes.get(r).ok_or_else(|| {
            BrokerError::new(
                Reason::UnknownRoute,
                format!(
                    "route `{}` is not configured",
                    esdk::keyring::printable(r.as_bytes())
                ),
            )
        })?;
        ids.extend(members.iter().map(String::as_str));
    }
    let unknown: Vec<String> = consumers
        .iter()
        .filter(|c| !registry.consumers.contains_key(c.as_str()))
        .map(|c| esdk::keyring::printable(c.as_bytes()))
        .collect();
    if !unknown.is_empty() {
        return Err(BrokerError::new(
            Reason::UnknownConsumer,
            format!("unknown consumer(s): `{}`", unknown.join("`, `")),
        ));
    }
    ids.extend(consumers.iter().map(String::as_str));
    let mut seen = BTreeSet::new();
    ids.retain(|id| seen.insert(*id));
    let max = registry.limits.max_consumers_per_call;
    if ids.len() > max {
        return Err(BrokerError::new(
            Reason::TooManyConsumers,
            format!("{} consumers requested; at most {max} per call", ids.len()),
        ));
    }
    Ok(ids
        .into_iter()
        .filter_map(|id| registry.consumers.get(id).cloned())
        .collect())
}

/// The audit record of one re-encryption: who, what, with which keys, how it went.
struct Audit {
    request_id: String,
    caller: String,
    route: String,
    source_key: Option<String>,
    message_id: Option<String>,
    suite: Option<AlgorithmSuite>,
    consumers: Vec<String>,
}

impl Audit {
    fn new(caller: &Caller, request: &ReencryptRequest) -> Self {
        Audit {
            request_id: request.request_id.clone(),
            caller: caller.identity.clone().unwrap_or_else(|| "-".into()),
            route: request.route.clone().unwrap_or_else(|| NO_ROUTE.into()),
            source_key: None,
            message_id: None,
            suite: None,
            consumers: Vec::new(),
        }
    }

    fn finish(&self, result: &Result<ReencryptResponse, BrokerError>, elapsed: Duration) {
        let (outcome, reason, detail) = match result {
            Ok(r) if r.results.iter().all(|o| o.result.is_ok()) => ("ok", "", None),
            Ok(_) => ("partial", "", None),
            Err(e) => (
                "error",
                e.reason.as_str(),
                e.detail.as_deref().or(Some(e.message.as_str())),
            ),
        };
        tracing::info!(
            target: AUDIT_TARGET,
            event = "reencrypt",
            request_id = %self.request_id,
            caller = %self.caller,
            route = %esdk::keyring::printable(self.route.as_bytes()),
            source_key = self.source_key.as_deref().unwrap_or("-"),
            message_id = self.message_id.as_deref().unwrap_or("-"),
            suite = %self.suite.map(|s| s.to_string()).unwrap_or_else(|| "-".into()),
            consumers = %self.consumers.join(","),
            outcome,
            reason,
            detail = detail.unwrap_or(""),
            duration_ms = elapsed.as_secs_f64() * 1000.0,
            "re-encryption"
        );
    }
}

impl From<tokio::task::JoinError> for BrokerError {
    fn from(e: tokio::task::JoinError) -> Self {
        BrokerError::internal(format!("task failed: {e}"))
    }
}

fn source_use(metrics: &Metrics, source: &str, outcome: &str) {
    metrics
        .source_uses
        .get_or_create(&SourceLabels {
            source: source.to_owned(),
            outcome: outcome.to_owned(),
        })
        .inc();
}

/// The first CPU task of a request: parse, match source keys, unwrap (local
/// keys), open, and seal for the consumers with local keys.
struct OpenJob {
    registry: Arc<Registry>,
    metrics: Arc<Metrics>,
    pool: CpuPool,
    expected: EncryptionContext,
    hint: Option<String>,
    request_id: String,
    /// Consumers with local keys only, with their position in the response.
    local: Vec<(usize, Arc<Consumer>)>,
    now: time::OffsetDateTime,
}

/// What the first task learned, for the audit record, and where it got to.
struct Started {
    message_id: Option<String>,
    suite: Option<AlgorithmSuite>,
    stage: Result<Stage, BrokerError>,
}

enum Stage {
    /// Open; local envelopes sealed or under way.
    Opened(Opened),
    /// The next candidate source key is AWS-backed: an async call is needed.
    NeedRemote(Box<Pending>),
}

type Sealed = Vec<(usize, Result<Envelope, BrokerError>)>;

/// An open input and the envelopes sealed so far.
struct Opened {
    inputs: Arc<EnvelopeInputs>,
    plaintext: Arc<Plaintext>,
    /// Envelopes sealed by the task that opened the input.
    sealed: Sealed,
    /// Fan-out chunks handed to other threads: their consumers' positions and results.
    chunks: Vec<(Vec<usize>, tokio::sync::oneshot::Receiver<Sealed>)>,
}

/// What every envelope's encryption context may draw on.
struct EnvelopeInputs {
    source_key_id: String,
    request_id: String,
    message_id: String,
    source_context: EncryptionContext,
}

impl EnvelopeInputs {
    fn for_consumer<'a>(&'a self, consumer_id: &'a str) -> ContextInputs<'a> {
        ContextInputs {
            consumer_id,
            source_key_id: &self.source_key_id,
            request_id: &self.request_id,
            source_message_id: &self.message_id,
            source_context: &self.source_context,
        }
    }
}

/// A parsed input and the source keys still to try, in order.
struct Pending {
    job: OpenJob,
    message: Message<Vec<u8>>,
    dctx: esdk::DecryptionContext,
    candidates: Vec<Candidate>,
    next: usize,
    last: Option<BrokerError>,
}

impl OpenJob {
    fn start(self, bytes: Vec<u8>) -> Started {
        let message = match Message::parse(bytes, &self.registry.limits.message) {
            Ok(m) => m,
            Err(e) => {
                return Started {
                    message_id: None,
                    suite: None,
                    stage: Err(e.into()),
                }
            }
        };
        let message_id = Some(hex::encode(&message.header.message_id));
        let suite = Some(message.header.suite);
        let stage = self.select(message);
        Started {
            message_id,
            suite,
            stage,
        }
    }

    /// The source keys the EDKs point at, within their validity window.
    fn select(self, message: Message<Vec<u8>>) -> Result<Stage, BrokerError> {
        let dctx = message.decryption_context(Some(&self.expected))?;
        let header = &message.header;
        let hint = self.hint.as_deref();
        let candidates = self.registry.sources.candidates(header, hint);
        if candidates.is_empty() {
            let edks: Vec<_> = header
                .encrypted_data_keys
                .iter()
                .map(|e| e.summary())
                .collect();
            let mut msg = format!(
                "no configured source key matches the message's encrypted data keys: {}",
                esdk::EdkSummary::list(&edks)
            );
            if let Some(h) = hint {
                msg.push_str(&format!(
                    " (with source key hint `{}`)",
                    esdk::keyring::printable(h.as_bytes())
                ));
            }
            return Err(BrokerError::new(Reason::SourceKeyNotConfigured, msg));
        }
        let (active, inactive): (Vec<Candidate>, Vec<Candidate>) = candidates
            .into_iter()
            .partition(|c| c.source.window.is_active(self.now));
        if active.is_empty() {
            let ids: Vec<&str> = inactive.iter().map(|c| c.source.id.as_str()).collect();
            for id in &ids {
                source_use(&self.metrics, id, "expired");
            }
            return Err(BrokerError::new(
                Reason::KeyExpired,
                format!(
                    "source key `{}` is outside its validity window",
                    ids.join("`, `")
                ),
            ));
        }
        Box::new(Pending {
            job: self,
            message,
            dctx,
            candidates: active,
            next: 0,
            last: None,
        })
        .advance()
    }
}

impl Pending {
    /// Tries the remaining candidates in order: local keys here, until one
    /// opens the data key (then opens and seals) or an AWS-backed key is next.
    fn advance(mut self: Box<Self>) -> Result<Stage, BrokerError> {
        let metrics = self.job.metrics.clone();
        while let Some(cand) = self.candidates.get(self.next).cloned() {
            let source = &cand.source;
            let header = &self.message.header;
            if let Err(e) = source.policy.check_suite(header.suite) {
                source_use(&metrics, &source.id, "suite_not_allowed");
                self.last =
                    Some(BrokerError::from(e).with_detail(format!("source `{}`", source.id)));
                self.next += 1;
                continue;
            }
            if let Some(key) = source
                .context_rules
                .violation(&self.dctx.encryption_context)
            {
                source_use(&metrics, &source.id, "context_mismatch");
                self.last = Some(BrokerError::new(
                    Reason::EncryptionContextMismatch,
                    format!(
                        "encryption context key `{}` does not satisfy the rules of source `{}`",
                        esdk::keyring::printable(key.as_bytes()),
                        source.id
                    ),
                ));
                self.next += 1;
                continue;
            }
            let SourceMaterial::Local(keyring) = &source.material else {
                return Ok(Stage::NeedRemote(self));
            };
            let ctx = KeyringContext {
                suite: header.suite,
                encryption_context: &self.dctx.encryption_context,
            };
            let unwrapped = keyring
                .unwrap(&header.encrypted_data_keys[cand.edk_index], &ctx)
                .map_err(|e| {
                    BrokerError::new(Reason::AuthenticationFailed, error::AUTHENTICATION_MESSAGE)
                        .with_detail(format!("source `{}`: {e}", source.id))
                })
                .and_then(|k| {
                    k.ok_or_else(|| {
                        BrokerError::new(
                            Reason::AuthenticationFailed,
                            error::AUTHENTICATION_MESSAGE,
                        )
                        .with_detail(format!("source `{}` declined the EDK", source.id))
                    })
                })
                .and_then(|k| self.check_length(k));
            match unwrapped {
                Ok(key) => return self.open_and_seal(source.id.clone(), key),
                Err(e) => self.failed(e),
            }
        }
        Err(self
            .last
            .take()
            .unwrap_or_else(|| BrokerError::internal("no candidate tried")))
    }

    fn check_length(&self, key: DataKey) -> Result<DataKey, BrokerError> {
        if key.len() == self.message.header.suite.data_key_len() {
            Ok(key)
        } else {
            Err(
                BrokerError::new(Reason::AuthenticationFailed, error::AUTHENTICATION_MESSAGE)
                    .with_detail("data key of the wrong length"),
            )
        }
    }

    /// Notes the current candidate's failure and moves past it.
    fn failed(&mut self, e: BrokerError) {
        if let Some(cand) = self.candidates.get(self.next) {
            source_use(
                &self.job.metrics,
                &cand.source.id,
                &e.reason.as_str().to_ascii_lowercase(),
            );
        }
        self.last = Some(e);
        self.next += 1;
    }

    /// Asks the current (AWS-backed) candidate for the data key.
    async fn unwrap_remote(&self) -> Result<(String, DataKey), BrokerError> {
        let cand = self
            .candidates
            .get(self.next)
            .ok_or_else(|| BrokerError::internal("no candidate left"))?;
        let SourceMaterial::Remote(remote) = &cand.source.material else {
            return Err(BrokerError::internal("not an AWS-backed source"));
        };
        let header = &self.message.header;
        let ctx = KeyringContext {
            suite: header.suite,
            encryption_context: &self.dctx.encryption_context,
        };
        let key = remote
            .unwrap(&header.encrypted_data_keys[cand.edk_index], ctx)
            .await
            .map_err(|e| error::key_access_error(&cand.source.id, e))?;
        Ok((cand.source.id.clone(), self.check_length(key)?))
    }

    /// Opens the message (tags, then signature) and seals the local envelopes:
    /// part of them on idle threads, the first chunk right here.
    fn open_and_seal(
        self: Box<Self>,
        source_id: String,
        key: DataKey,
    ) -> Result<Stage, BrokerError> {
        let Pending {
            job, message, dctx, ..
        } = *self;
        let plaintext = match message.open(&key, &dctx) {
            Ok(p) => Arc::new(p),
            Err(e) => {
                source_use(&job.metrics, &source_id, "authentication_failed");
                return Err(e.into());
            }
        };
        drop(key);
        source_use(&job.metrics, &source_id, "ok");
        let inputs = Arc::new(EnvelopeInputs {
            source_key_id: source_id,
            request_id: job.request_id,
            message_id: hex::encode(&message.header.message_id),
            source_context: message.header.encryption_context.clone(),
        });
        let mut local = job.local;
        let tasks = (local.len() / MIN_CONSUMERS_PER_TASK)
            .max(1)
            .min(job.pool.idle_threads() + 1);
        let per_task = local.len().div_ceil(tasks).max(1);
        let mut chunks = Vec::new();
        while local.len() > per_task {
            let chunk = local.split_off(local.len() - per_task);
            let indices = chunk.iter().map(|(i, _)| *i).collect();
            let (inputs, plaintext, now) = (inputs.clone(), plaintext.clone(), job.now);
            let rx = job
                .pool
                .spawn(move || seal_local_all(&chunk, &inputs, &plaintext, now));
            chunks.push((indices, rx));
        }
        let sealed = seal_local_all(&local, &inputs, &plaintext, job.now);
        Ok(Stage::Opened(Opened {
            inputs,
            plaintext,
            sealed,
            chunks,
        }))
    }
}

fn seal_local_all(
    consumers: &[(usize, Arc<Consumer>)],
    inputs: &EnvelopeInputs,
    plaintext: &Plaintext,
    now: time::OffsetDateTime,
) -> Sealed {
    consumers
        .iter()
        .map(|(i, c)| {
            let ec = c.output.build(&inputs.for_consumer(&c.id));
            (*i, seal_local(c, plaintext.as_bytes(), ec, now))
        })
        .collect()
}

/// Seals for a consumer whose keys are all local: materials, wrapping, sealing.
fn seal_local(
    consumer: &Consumer,
    plaintext: &[u8],
    ec: EncryptionContext,
    now: time::OffsetDateTime,
) -> Result<Envelope, BrokerError> {
    let key_ids: Vec<String> = consumer.active_keys(now).map(|k| k.id.clone()).collect();
    if key_ids.is_empty() {
        return Err(no_active_key(consumer));
    }
    let built = |e: esdk::Error| envelope_error(consumer, e);
    let mut m = EncryptionMaterials::generate(consumer.suite, ec).map_err(built)?;
    for k in consumer.active_keys(now) {
        if let ConsumerWrap::Local(r) = &k.wrap {
            m.wrap_for(r.as_ref()).map_err(built)?;
        }
    }
    let ciphertext = esdk::seal(plaintext, &m, consumer.frame_length).map_err(built)?;
    Ok(Envelope {
        ciphertext,
        key_ids,
        suite: consumer.suite,
    })
}

/// `consumer[key+key]` for the audit line, in one allocation (this runs once per
/// envelope).
fn audit_entry(consumer: &str, key_ids: &[String]) -> String {
    let len = consumer.len() + 2 + key_ids.iter().map(|k| k.len() + 1).sum::<usize>();
    let mut entry = String::with_capacity(len);
    entry.push_str(consumer);
    entry.push('[');
    for (i, k) in key_ids.iter().enumerate() {
        if i > 0 {
            entry.push('+');
        }
        entry.push_str(k);
    }
    entry.push(']');
    entry
}

fn no_active_key(consumer: &Consumer) -> BrokerError {
    BrokerError::new(
        Reason::KeyExpired,
        format!(
            "consumer `{}` has no active key (every key is expired or not yet valid)",
            consumer.id
        ),
    )
}

fn envelope_error(consumer: &Consumer, e: esdk::Error) -> BrokerError {
    BrokerError::new(
        Reason::Internal,
        format!(
            "the envelope for consumer `{}` could not be built: {e}",
            consumer.id
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::audit_entry;

    #[test]
    fn audit_entry_lists_the_keys_of_an_envelope() {
        assert_eq!(audit_entry("payments", &["k1".into()]), "payments[k1]");
        assert_eq!(
            audit_entry("crm", &["old".into(), "new".into()]),
            "crm[old+new]"
        );
    }
}
