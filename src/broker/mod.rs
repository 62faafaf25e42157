//! The use case, in one place: open an input once, seal it for every consumer.
//!
//! ```text
//! input ─► resolve targets (registry snapshot, authorization)  targets.rs  [reactor]
//!       ─► parse (structure + limits, no keys)                  open.rs     [one CPU task]
//!       ─► match source keys by EDK (lookup) ─► window, suite, context rules
//!       ─► unwrap data key (local key here; AWS key: back to the reactor, then on)
//!       ─► open (tags, signature)
//!       ─► per consumer with local keys: materials ─► seal      seal.rs     (chunks on idle threads)
//!       ─► per consumer with AWS keys, concurrently                        [reactor + CPU]
//!       ─► outcomes: metrics, audit event                       audit.rs
//! ```
//!
//! Every door (gRPC, HTTP/JSON, the Lambda runtime) calls [`Broker::call`] or
//! [`Broker::call_batch`] (the front desk: admission, metrics) and so
//! [`Broker::reencrypt`]; none re-implements a step. The plaintext lives
//! in one zeroizing buffer shared by the sealing tasks and dropped when the
//! last of them is done. Crypto runs on the CPU pool ([`CpuPool`]), never on
//! the async reactor; a request is one task there, from parsing to its first
//! envelopes, because every hand-off costs a wake-up. A consumer's failure is
//! data in its result, not an error of the call (unless the caller asks for
//! all-or-nothing).

mod access;
mod audit;
mod cpu;
mod desk;
pub mod error;
mod materials_cache;
mod open;
mod request;
mod seal;
mod targets;

use std::sync::Arc;
use std::time::Instant;

use futures_util::future::join_all;

pub use cpu::{CpuPool, JobOwner, PoolGone, Standing};
pub use desk::{DeskOptions, Door, Method, Slot};
pub use error::{BrokerError, Reason};
pub use materials_cache::MaterialsCache;
pub use request::{
    batch_item_id, request_id, Caller, CiphertextInput, ConsumerOutcome, Credential, Envelope,
    EnvelopeFormat, ReencryptRequest, ReencryptResponse,
};

use self::audit::{Audit, SecurityEvents, NO_ROUTE};
use self::desk::Desk;
use self::open::{OpenJob, Opened, Stage};
use self::seal::{Chunk, EnvelopeInputs, Sealed};
use crate::clock::Clock;
use crate::esdk::Plaintext;
use crate::registry::{Consumer, Registry, RegistryHandle};
use crate::telemetry::{ConsumerLabels, Metrics};

/// The broker: registry, clock, CPU pool and metrics.
pub struct Broker {
    registry: Arc<RegistryHandle>,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
    cpu: CpuPool,
    security: SecurityEvents,
    desk: Desk,
    /// Caching-CMM reuse of materials for consumers with KMS keys.
    materials_cache: Option<Arc<MaterialsCache>>,
}

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
            security: SecurityEvents::new(DeskOptions::default().security_log_interval),
            desk: Desk::new(&DeskOptions::default()),
            materials_cache: None,
        }
    }

    /// The front desk's admission limit and credential policy, for every door.
    pub fn with_desk(mut self, options: &DeskOptions) -> Self {
        self.desk = Desk::new(options);
        self.security = SecurityEvents::new(options.security_log_interval);
        self
    }

    /// Writes the security-event summaries whose interval is over (the
    /// server calls it every second; events also trigger it).
    pub fn flush_security_events(&self) {
        self.security.flush_due();
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
        self.reencrypt_for(&JobOwner::anonymous(), caller, request)
            .await
    }

    /// [`Broker::reencrypt`] with its CPU work queued for `owner`.
    async fn reencrypt_for(
        &self,
        owner: &JobOwner,
        caller: &Caller,
        request: ReencryptRequest,
    ) -> Result<ReencryptResponse, BrokerError> {
        let registry = self.snapshot()?;
        self.reencrypt_on(&registry, owner, caller, request).await
    }

    /// Re-encrypts a batch; each item succeeds or fails on its own. Items that
    /// could not even be decoded arrive as errors and stay in place.
    pub async fn reencrypt_batch(
        &self,
        caller: &Caller,
        items: Vec<Result<ReencryptRequest, BrokerError>>,
    ) -> Result<Vec<Result<ReencryptResponse, BrokerError>>, BrokerError> {
        self.reencrypt_batch_for(&JobOwner::anonymous(), caller, items)
            .await
    }

    async fn reencrypt_batch_for(
        &self,
        owner: &JobOwner,
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
                Ok(request) => self.reencrypt_on(registry, owner, caller, request).await,
                Err(e) => Err(e),
            }
        }))
        .await)
    }

    fn snapshot(&self) -> Result<Arc<Registry>, BrokerError> {
        self.registry
            .snapshot()
            .ok_or_else(|| BrokerError::new(Reason::NotReady, "no registry is loaded yet"))
    }

    /// One re-encryption against a given registry snapshot, audited.
    async fn reencrypt_on(
        &self,
        registry: &Arc<Registry>,
        owner: &JobOwner,
        caller: &Caller,
        request: ReencryptRequest,
    ) -> Result<ReencryptResponse, BrokerError> {
        let started = Instant::now();
        let mut audit = Audit::new(caller, &request);
        let result = self.run(registry, owner, caller, request, &mut audit).await;
        audit.finish(&result, started.elapsed());
        if let Err(e) = &result {
            self.security
                .note(&self.metrics, &desk::who_for_log(caller, &audit.caller), e);
        }
        result
    }

    /// The flow: targets, open, seal the rest, outcomes.
    async fn run(
        &self,
        registry: &Arc<Registry>,
        owner: &JobOwner,
        caller: &Caller,
        request: ReencryptRequest,
        audit: &mut Audit,
    ) -> Result<ReencryptResponse, BrokerError> {
        let ReencryptRequest {
            ciphertext,
            consumers: wanted,
            route,
            source_key_hint,
            expected_context,
            all_or_nothing: all_or_none,
            request_id,
        } = request;
        let who =
            access::authenticate(registry, caller, self.desk.allow_plaintext_credentials).await?;
        audit.caller = who.name.clone();
        let consumers =
            targets::resolve_targets(registry, &who.grants, &who.name, &wanted, route.as_deref())?;
        let bytes = request::decode_input(
            ciphertext,
            registry.limits.max_ciphertext_bytes,
            registry.limits.allow_base64_in_ciphertext,
        )?;
        let now = self.clock.now();

        // Consumers with local keys only are sealed in the same CPU task that
        // opens the input; the others need AWS calls and are sealed after it.
        let (local, remote): (Vec<_>, Vec<_>) = consumers
            .iter()
            .cloned()
            .enumerate()
            .partition(|(_, c)| c.is_local());
        let job = OpenJob {
            registry: registry.clone(),
            metrics: self.metrics.clone(),
            pool: self.cpu.clone(),
            expected: expected_context,
            hint: source_key_hint,
            request_id: request_id.clone(),
            local,
            now,
        };
        let Opened {
            inputs,
            plaintext,
            sealed: first,
            chunks,
        } = self.open(owner, job, bytes, audit).await?;
        audit.source_key = Some(inputs.source_key_id.clone());

        let rest = self
            .seal_rest(&inputs, plaintext, chunks, remote, now)
            .await;
        let outcomes = self.outcomes(&consumers, first, rest);
        audit.consumers(&outcomes);
        if all_or_none {
            all_or_nothing(&outcomes)?;
        }
        Ok(ReencryptResponse {
            source_key_id: inputs.source_key_id.clone(),
            message_id: inputs.message_id.clone(),
            request_id,
            results: outcomes,
        })
    }

    /// Opens the input: the first CPU task, then each AWS-backed candidate's
    /// call on the reactor and the rest back on the pool, until it is open.
    async fn open(
        &self,
        owner: &JobOwner,
        job: OpenJob,
        bytes: Vec<u8>,
        audit: &mut Audit,
    ) -> Result<Opened, BrokerError> {
        let started = self.cpu.run_for(owner, move || job.start(bytes)).await?;
        audit.message_id = started.message_id;
        audit.suite = started.suite;
        let mut stage = started.stage;
        loop {
            match stage? {
                Stage::Opened(opened) => return Ok(opened),
                Stage::NeedRemote(mut pending) => match pending.resolve_remote().await {
                    Ok(resolved) => {
                        stage = self
                            .cpu
                            .run_for(owner, move || pending.resume(resolved))
                            .await?;
                    }
                    Err(e) => {
                        pending.failed(e);
                        stage = self.cpu.run_for(owner, move || pending.advance()).await?;
                    }
                },
            }
        }
    }

    /// Envelopes for consumers with AWS-backed keys, and the fan-out chunks
    /// that other threads picked up, concurrently.
    async fn seal_rest(
        &self,
        inputs: &EnvelopeInputs,
        plaintext: Arc<Plaintext>,
        chunks: Vec<Chunk>,
        remote: Vec<(usize, Arc<Consumer>)>,
        now: time::OffsetDateTime,
    ) -> Sealed {
        let remote_sealed = join_all(remote.into_iter().map(|(index, consumer)| {
            let ec = consumer.output.build(&inputs.for_consumer(&consumer.id));
            let plaintext = plaintext.clone();
            async move { (index, self.seal_for(consumer, plaintext, ec, now).await) }
        }));
        let chunks = join_all(chunks.into_iter().map(|(indices, rx)| async move {
            match rx.await {
                Ok(sealed) => sealed,
                Err(_) => indices
                    .into_iter()
                    .map(|i| (i, Err(BrokerError::internal("a crypto task failed"))))
                    .collect(),
            }
        }));
        let (remote_sealed, chunks) = futures_util::future::join(remote_sealed, chunks).await;
        drop(plaintext);
        remote_sealed
            .into_iter()
            .chain(chunks.into_iter().flatten())
            .collect()
    }

    /// One outcome per consumer, in the resolved order, each counted.
    fn outcomes(
        &self,
        consumers: &[Arc<Consumer>],
        first: Sealed,
        rest: Sealed,
    ) -> Vec<ConsumerOutcome> {
        let mut sealed: Vec<Option<Result<Envelope, BrokerError>>> =
            (0..consumers.len()).map(|_| None).collect();
        for (index, result) in first.into_iter().chain(rest) {
            if let Some(slot) = sealed.get_mut(index) {
                *slot = Some(result);
            }
        }
        consumers
            .iter()
            .zip(sealed)
            .map(|(consumer, result)| {
                let result =
                    result.unwrap_or_else(|| Err(BrokerError::internal("envelope not produced")));
                self.metrics
                    .envelopes
                    .get_or_create(&ConsumerLabels {
                        consumer: consumer.id.clone(),
                        outcome: match &result {
                            Ok(_) => crate::telemetry::OK.into(),
                            Err(e) => e.reason.as_str().into(),
                        },
                    })
                    .inc();
                ConsumerOutcome {
                    consumer: consumer.id.clone(),
                    result,
                }
            })
            .collect()
    }
}

/// With `all_or_nothing`, the first failed consumer fails the call.
fn all_or_nothing(outcomes: &[ConsumerOutcome]) -> Result<(), BrokerError> {
    match outcomes.iter().find_map(|o| match &o.result {
        Err(e) => Some((o, e)),
        Ok(_) => None,
    }) {
        Some((failed, err)) => Err(BrokerError {
            message: format!(
                "consumer `{}`: {} (all_or_nothing is set)",
                failed.consumer, err.message
            ),
            ..err.clone()
        }),
        None => Ok(()),
    }
}
