//! Sealing: one envelope per consumer, under every key of it that is active
//! now, in the consumer's format: an ESDK message, or a JWE (`reseal-jwe`)
//! carrying the same encryption context in its protected header. Consumers
//! with local keys only are sealed on the CPU pool, the first of them in the
//! task that opened the input and larger fan-outs split across idle threads;
//! consumers with AWS-backed keys need their service first.

use std::borrow::Borrow;
use std::collections::BTreeMap;
use std::sync::Arc;

use super::error::{self, BrokerError, Reason};
use super::{Broker, CpuPool, Envelope, EnvelopeFormat};
use crate::esdk::{
    self, EncryptedDataKey, EncryptionContext, EncryptionMaterials, Plaintext, Recipient,
};
use crate::jwe::{self, SealOptions, Serialization};
use crate::registry::{Consumer, ConsumerFormat, ConsumerWrap, ContextInputs, JweOutput};

/// Envelopes by the consumer's position in the response.
pub(super) type Sealed = Vec<(usize, Result<Envelope, BrokerError>)>;

/// What every envelope's encryption context may draw on.
pub(super) struct EnvelopeInputs {
    pub source_key_id: String,
    pub request_id: String,
    pub message_id: String,
    pub source_context: EncryptionContext,
}

impl EnvelopeInputs {
    pub fn for_consumer<'a>(&'a self, consumer_id: &'a str) -> ContextInputs<'a> {
        ContextInputs {
            consumer_id,
            source_key_id: &self.source_key_id,
            request_id: &self.request_id,
            source_message_id: &self.message_id,
            source_context: &self.source_context,
        }
    }
}

/// A fan-out chunk on another thread: its consumers' positions, and where
/// their envelopes arrive.
pub(super) type Chunk = (Vec<usize>, tokio::sync::oneshot::Receiver<Sealed>);

/// Fewest consumers a CPU task seals when a fan-out is split across idle
/// threads: below that the hand-off costs more than it saves (BENCHMARKS.md,
/// "The change that mattered: one CPU task per request").
const MIN_CONSUMERS_PER_TASK: usize = 8;

/// Splits the local consumers into the part this task seals and chunks
/// handed to idle threads (their positions, and where their envelopes arrive).
pub(super) fn split_fan_out(
    mut local: Vec<(usize, Arc<Consumer>)>,
    pool: &CpuPool,
    inputs: &Arc<EnvelopeInputs>,
    plaintext: &Arc<Plaintext>,
    now: time::OffsetDateTime,
) -> (Vec<(usize, Arc<Consumer>)>, Vec<Chunk>) {
    let tasks = (local.len() / MIN_CONSUMERS_PER_TASK)
        .max(1)
        .min(pool.idle_threads() + 1);
    let per_task = local.len().div_ceil(tasks).max(1);
    let mut chunks = Vec::new();
    while local.len() > per_task {
        let chunk = local.split_off(local.len() - per_task);
        let indices = chunk.iter().map(|(i, _)| *i).collect();
        let (inputs, plaintext) = (inputs.clone(), plaintext.clone());
        let rx = pool.spawn(move || seal_local_all(&chunk, &inputs, &plaintext, now));
        chunks.push((indices, rx));
    }
    (local, chunks)
}

pub(super) fn seal_local_all(
    consumers: &[(usize, Arc<Consumer>)],
    inputs: &EnvelopeInputs,
    plaintext: &Plaintext,
    now: time::OffsetDateTime,
) -> Sealed {
    consumers
        .iter()
        .map(|(i, c)| {
            let ec = c.output.build(&inputs.for_consumer(&c.id));
            if let ConsumerFormat::Jwe(output) = &c.format {
                let recipients = c
                    .active_keys(now)
                    .filter_map(|k| match &k.wrap {
                        ConsumerWrap::Jwe(j) => Some(&j.recipient),
                        _ => None,
                    })
                    .collect::<Vec<_>>();
                return (
                    *i,
                    seal_jwe(c, output, recipients, plaintext.as_bytes(), ec),
                );
            }
            let recipients: Vec<Arc<dyn Recipient>> = c
                .active_keys(now)
                .filter_map(|k| match &k.wrap {
                    ConsumerWrap::Local(r) => Some(r.clone()),
                    _ => None,
                })
                .collect();
            let key_ids = c.active_keys(now).map(|k| k.id.clone()).collect();
            (
                *i,
                seal_local(c, &recipients, key_ids, plaintext.as_bytes(), ec),
            )
        })
        .collect()
}

/// Seals a JWE for a consumer's active keys (A256GCM, one recipient per
/// key), its encryption context in the protected header's `reseal_context`.
/// Compact for one key and JSON for several, unless the consumer forces one.
fn seal_jwe<R: Borrow<jwe::Recipient>>(
    consumer: &Consumer,
    output: &JweOutput,
    mut recipients: Vec<R>,
    plaintext: &[u8],
    ec: EncryptionContext,
) -> Result<Envelope, BrokerError> {
    if recipients.is_empty() {
        return Err(no_active_key(consumer));
    }
    if output.serialization == Some(Serialization::Compact) && recipients.len() > 1 {
        // Validation refuses compact consumers whose keys overlap; this is
        // the one instant where an old key's `not_after` is the new key's
        // `not_before`: the newer key (keys are in order of `not_before`).
        recipients.drain(..recipients.len() - 1);
    }
    let serialization = output.serialization.unwrap_or(if recipients.len() == 1 {
        Serialization::Compact
    } else {
        Serialization::Json
    });
    let context = BTreeMap::from(ec);
    let ciphertext = jwe::seal(
        plaintext,
        &recipients,
        &SealOptions {
            serialization: Some(serialization),
            content_type: output.content_type.as_deref(),
            context: Some(&context),
        },
    )
    .map_err(|e| {
        BrokerError::new(
            Reason::Internal,
            format!(
                "the JWE for consumer `{}` could not be built: {e}",
                consumer.id
            ),
        )
    })?;
    Ok(Envelope {
        ciphertext,
        key_ids: recipients
            .iter()
            .map(|r| r.borrow().kid().to_owned())
            .collect(),
        format: match serialization {
            Serialization::Compact => EnvelopeFormat::JweCompact,
            Serialization::Json => EnvelopeFormat::JweJson,
        },
    })
}

/// Seals under local recipients only: materials, wrapping, sealing.
fn seal_local(
    consumer: &Consumer,
    recipients: &[Arc<dyn Recipient>],
    key_ids: Vec<String>,
    plaintext: &[u8],
    ec: EncryptionContext,
) -> Result<Envelope, BrokerError> {
    if key_ids.is_empty() {
        return Err(no_active_key(consumer));
    }
    let built = |e: esdk::Error| envelope_error(consumer, e);
    let mut m = EncryptionMaterials::generate(consumer.suite, ec).map_err(built)?;
    for r in recipients {
        m.wrap_for(r.as_ref()).map_err(built)?;
    }
    let ciphertext = esdk::seal(plaintext, &m, consumer.frame_length).map_err(built)?;
    Ok(Envelope {
        ciphertext,
        key_ids,
        format: EnvelopeFormat::Esdk(consumer.suite),
    })
}

impl Broker {
    /// Seals the plaintext for a consumer with AWS-backed keys: fetched keys
    /// (SSM public keys) wrap on the CPU pool like local ones; KMS keys
    /// generate or wrap the data key through KMS.
    pub(super) async fn seal_for(
        &self,
        consumer: Arc<Consumer>,
        plaintext: Arc<Plaintext>,
        ec: EncryptionContext,
        now: time::OffsetDateTime,
    ) -> Result<Envelope, BrokerError> {
        if let ConsumerFormat::Jwe(output) = &consumer.format {
            let output = output.clone();
            return self
                .seal_jwe_for(consumer, output, plaintext, ec, now)
                .await;
        }
        let keys: Vec<_> = consumer.active_keys(now).cloned().collect();
        if keys.is_empty() {
            return Err(no_active_key(&consumer));
        }
        let key_ids: Vec<String> = keys.iter().map(|k| k.id.clone()).collect();
        let suite = consumer.suite;
        let frame_length = consumer.frame_length;

        let mut local: Vec<Arc<dyn Recipient>> = Vec::new();
        let mut remote = Vec::new();
        for k in &keys {
            match &k.wrap {
                ConsumerWrap::Local(r) => local.push(r.clone()),
                ConsumerWrap::Fetched(f) => local.push(
                    f.fetch()
                        .await
                        .map_err(|e| error::key_access_error(&k.id, e))?,
                ),
                ConsumerWrap::Kms(r) => remote.push((k.id.clone(), r.clone())),
                ConsumerWrap::Jwe(_) | ConsumerWrap::JweFetched(_) => {
                    return Err(BrokerError::internal(format!(
                        "consumer `{}`: key `{}` seals JWE envelopes only",
                        consumer.id, k.id
                    )))
                }
            }
        }
        if remote.is_empty() {
            // No KMS key is active: the local and fetched ones seal it, on the pool.
            let consumer = consumer.clone();
            return self
                .cpu
                .run(move || seal_local(&consumer, &local, key_ids, plaintext.as_bytes(), ec))
                .await?;
        }
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
            format: EnvelopeFormat::Esdk(suite),
        })
    }

    /// Seals a JWE for a consumer with fetched keys (SSM public keys): each
    /// fetched first (from the cache or SSM), then sealed on the CPU pool
    /// like local keys.
    async fn seal_jwe_for(
        &self,
        consumer: Arc<Consumer>,
        output: JweOutput,
        plaintext: Arc<Plaintext>,
        ec: EncryptionContext,
        now: time::OffsetDateTime,
    ) -> Result<Envelope, BrokerError> {
        let mut recipients = Vec::new();
        for k in consumer.active_keys(now) {
            match &k.wrap {
                ConsumerWrap::Jwe(j) => recipients.push(j.recipient.clone()),
                ConsumerWrap::JweFetched(f) => recipients.push(
                    f.fetch()
                        .await
                        .map_err(|e| error::key_access_error(&k.id, e))?
                        .as_ref()
                        .clone(),
                ),
                ConsumerWrap::Local(_) | ConsumerWrap::Fetched(_) | ConsumerWrap::Kms(_) => {
                    return Err(BrokerError::internal(format!(
                        "consumer `{}`: key `{}` cannot seal JWE envelopes",
                        consumer.id, k.id
                    )))
                }
            }
        }
        self.cpu
            .run(move || seal_jwe(&consumer, &output, recipients, plaintext.as_bytes(), ec))
            .await?
    }
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
