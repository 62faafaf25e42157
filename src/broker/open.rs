//! Opening the input: parse, match source keys by EDK, check each candidate's
//! window, suite and context rules, unwrap the data key (a local key here, on
//! the CPU pool; an AWS-backed key through its service), open (commitment,
//! header tag, every frame, signature), and start sealing for the consumers
//! with local keys in the same CPU task.
//!
//! The state machine is [`Stage`]: the first CPU task ends either opened, or
//! at the next candidate that needs an AWS call ([`Pending`]), which the
//! broker makes on the reactor before handing the rest back to the pool.

use std::sync::Arc;

use super::error::{self, BrokerError, Reason};
use super::seal::{seal_local_all, split_fan_out, Chunk, EnvelopeInputs, Sealed};
use super::CpuPool;
use crate::esdk::{
    self, AlgorithmSuite, DataKey, EncryptionContext, Identity, KeyringContext, Message, Plaintext,
};
use crate::keys::remote::Unwrapped;
use crate::registry::{Candidate, Consumer, Registry, SourceKind, SourceMaterial};
use crate::telemetry::{Metrics, SourceLabels};

/// The per-key outcome of an EDK that was not tried because the message
/// used up its attempts (`limits.max_unwrap_attempts_per_key`,
/// `max_private_key_attempts`); upper case like every other outcome label.
const ATTEMPT_LIMIT: &str = "ATTEMPT_LIMIT";

pub(super) fn source_use(metrics: &Metrics, source: &str, outcome: &str) {
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
pub(super) struct OpenJob {
    pub registry: Arc<Registry>,
    pub metrics: Arc<Metrics>,
    pub pool: CpuPool,
    pub expected: EncryptionContext,
    pub hint: Option<String>,
    pub request_id: String,
    /// Consumers with local keys only, with their position in the response.
    pub local: Vec<(usize, Arc<Consumer>)>,
    pub now: time::OffsetDateTime,
}

/// What the first task learned, for the audit record, and where it got to.
pub(super) struct Started {
    pub message_id: Option<String>,
    pub suite: Option<AlgorithmSuite>,
    pub stage: Result<Stage, BrokerError>,
}

pub(super) enum Stage {
    /// Open; local envelopes sealed or under way.
    Opened(Opened),
    /// The next candidate source key is AWS-backed: an async call is needed.
    NeedRemote(Box<Pending>),
}

/// An open input and the envelopes sealed so far.
pub(super) struct Opened {
    pub inputs: Arc<EnvelopeInputs>,
    pub plaintext: Arc<Plaintext>,
    /// Envelopes sealed by the task that opened the input.
    pub sealed: Sealed,
    /// Fan-out chunks handed to other threads.
    pub chunks: Vec<Chunk>,
}

/// A parsed input and the source keys still to try, in order.
pub(super) struct Pending {
    job: OpenJob,
    message: Message<Vec<u8>>,
    dctx: esdk::DecryptionContext,
    candidates: Vec<Candidate>,
    next: usize,
    last: Option<BrokerError>,
    /// Unwrap attempts made so far, per source key (and, for discovery
    /// rules, per key name).
    attempts: Vec<(AttemptKey, usize)>,
    /// Private-key (RSA) unwrap attempts made so far.
    private_attempts: usize,
    /// Candidates passed over for the attempt limits.
    skipped: usize,
}

/// A source key, and for discovery rules the key name: what one unwrap
/// attempt per message is counted by.
type AttemptKey = (String, Option<Vec<u8>>);

/// Whether unwrapping with this source costs a private-key operation here.
fn is_private_key(kind: SourceKind) -> bool {
    matches!(kind, SourceKind::RawRsa | SourceKind::SsmDiscovery)
}

impl OpenJob {
    pub fn start(self, bytes: Vec<u8>) -> Started {
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
                source_use(&self.metrics, id, Reason::KeyExpired.as_str());
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
            attempts: Vec::new(),
            private_attempts: 0,
            skipped: 0,
        })
        .advance()
    }
}

impl Pending {
    /// Tries the remaining candidates in order: local keys here, until one
    /// opens the data key (then opens and seals) or an AWS-backed key is next.
    pub fn advance(mut self: Box<Self>) -> Result<Stage, BrokerError> {
        let metrics = self.job.metrics.clone();
        while let Some(cand) = self.candidates.get(self.next).cloned() {
            let source = &cand.source;
            let header = &self.message.header;
            if let Err(e) = source.policy.check_suite(header.suite) {
                source_use(&metrics, &source.id, Reason::SuiteNotAllowed.as_str());
                self.last =
                    Some(BrokerError::from(e).with_detail(format!("source `{}`", source.id)));
                self.next += 1;
                continue;
            }
            if let Some(key) = source
                .context_rules
                .violation(&self.dctx.encryption_context)
            {
                source_use(
                    &metrics,
                    &source.id,
                    Reason::EncryptionContextMismatch.as_str(),
                );
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
            if !self.take_attempt(&cand) {
                source_use(&metrics, &source.id, ATTEMPT_LIMIT);
                self.skipped += 1;
                self.next += 1;
                continue;
            }
            let SourceMaterial::Local(keyring) = &source.material else {
                return Ok(Stage::NeedRemote(self));
            };
            match self.unwrap_with(keyring.as_ref(), &cand) {
                Ok(key) => return self.open_and_seal(source.id.clone(), key),
                Err(e) => self.failed(e),
            }
        }
        let skipped = self.skipped;
        let limits = &self.job.registry.limits;
        let (per_key, private) = (
            limits.max_unwrap_attempts_per_key,
            limits.max_private_key_attempts,
        );
        let err = self
            .last
            .take()
            .unwrap_or_else(|| BrokerError::internal("no candidate tried"));
        if skipped == 0 {
            return Err(err);
        }
        let note = format!(
            "{skipped} more encrypted data key(s) not tried (limits.max_unwrap_attempts_per_key {per_key}, limits.max_private_key_attempts {private})"
        );
        let detail = match &err.detail {
            Some(d) => format!("{d}; {note}"),
            None => note,
        };
        Err(err.with_detail(detail))
    }

    /// Counts an unwrap attempt with this candidate, or says it is over the
    /// limits: one per source key (and key name, for discovery rules) and a
    /// few private-key operations per message, so a message that names one
    /// key many times costs no more than a legitimate one.
    fn take_attempt(&mut self, cand: &Candidate) -> bool {
        let limits = &self.job.registry.limits;
        let source = &cand.source;
        let private = is_private_key(source.kind);
        if private && self.private_attempts >= limits.max_private_key_attempts {
            return false;
        }
        let name = source.key_name.is_none().then(|| {
            self.message.header.encrypted_data_keys[cand.edk_index]
                .provider_info
                .clone()
        });
        let key = (source.id.clone(), name);
        let count = match self.attempts.iter_mut().find(|(k, _)| *k == key) {
            Some((_, n)) => n,
            None => {
                self.attempts.push((key, 0));
                match self.attempts.last_mut() {
                    Some((_, n)) => n,
                    None => return false,
                }
            }
        };
        if *count >= limits.max_unwrap_attempts_per_key {
            return false;
        }
        *count += 1;
        if private {
            self.private_attempts += 1;
        }
        true
    }

    /// Unwraps the candidate's EDK with a local identity (configured, or
    /// fetched from AWS), here on the CPU pool.
    fn unwrap_with(
        &self,
        identity: &dyn Identity,
        cand: &Candidate,
    ) -> Result<DataKey, BrokerError> {
        let header = &self.message.header;
        let ctx = KeyringContext {
            suite: header.suite,
            encryption_context: &self.dctx.encryption_context,
        };
        let id = &cand.source.id;
        identity
            .unwrap(&header.encrypted_data_keys[cand.edk_index], &ctx)
            .map_err(|e| {
                BrokerError::new(Reason::AuthenticationFailed, error::AUTHENTICATION_MESSAGE)
                    .with_detail(format!("source `{id}`: {e}"))
            })
            .and_then(|k| {
                k.ok_or_else(|| {
                    BrokerError::new(Reason::AuthenticationFailed, error::AUTHENTICATION_MESSAGE)
                        .with_detail(format!("source `{id}` declined the EDK"))
                })
            })
            .and_then(|k| self.check_length(k))
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
    pub fn failed(&mut self, e: BrokerError) {
        if let Some(cand) = self.candidates.get(self.next) {
            source_use(&self.job.metrics, &cand.source.id, e.reason.as_str());
        }
        self.last = Some(e);
        self.next += 1;
    }

    /// Asks the current (AWS-backed) candidate for what unwraps its EDK.
    pub async fn resolve_remote(&self) -> Result<Resolved, BrokerError> {
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
        let id = &cand.source.id;
        match remote
            .resolve(&header.encrypted_data_keys[cand.edk_index], ctx)
            .await
        {
            Ok(Some(Unwrapped::DataKey(key))) => Ok(Resolved::DataKey(self.check_length(key)?)),
            Ok(Some(Unwrapped::Identity(identity))) => Ok(Resolved::Identity(identity)),
            Ok(None) => Err(BrokerError::new(
                Reason::SourceKeyNotConfigured,
                format!("source `{id}` does not hold the key the message was encrypted for"),
            )),
            Err(e) => Err(error::key_access_error(id, e)),
        }
    }

    /// Continues on the CPU pool with what the AWS-backed candidate resolved to.
    pub fn resume(mut self: Box<Self>, resolved: Resolved) -> Result<Stage, BrokerError> {
        let source_id = match self.candidates.get(self.next) {
            Some(c) => c.source.id.clone(),
            None => return Err(BrokerError::internal("no candidate left")),
        };
        let key = match resolved {
            Resolved::DataKey(key) => key,
            Resolved::Identity(identity) => {
                let cand = self.candidates[self.next].clone();
                match self.unwrap_with(identity.as_ref(), &cand) {
                    Ok(key) => key,
                    Err(e) => {
                        self.failed(e);
                        return self.advance();
                    }
                }
            }
        };
        self.open_and_seal(source_id, key)
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
                source_use(
                    &job.metrics,
                    &source_id,
                    Reason::AuthenticationFailed.as_str(),
                );
                return Err(e.into());
            }
        };
        drop(key);
        source_use(&job.metrics, &source_id, crate::telemetry::OK);
        let inputs = Arc::new(EnvelopeInputs {
            source_key_id: source_id,
            request_id: job.request_id,
            message_id: hex::encode(&message.header.message_id),
            source_context: message.header.encryption_context.clone(),
        });
        let (local, chunks) = split_fan_out(job.local, &job.pool, &inputs, &plaintext, job.now);
        let sealed = seal_local_all(&local, &inputs, &plaintext, job.now);
        Ok(Stage::Opened(Opened {
            inputs,
            plaintext,
            sealed,
            chunks,
        }))
    }
}

/// What an AWS-backed source resolved the EDK to.
pub(super) enum Resolved {
    /// KMS unwrapped it.
    DataKey(DataKey),
    /// Fetched key material that unwraps it on the CPU pool.
    Identity(Arc<dyn Identity>),
}
