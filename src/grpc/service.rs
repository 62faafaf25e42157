//! The `reseal.v1.ReencryptService` implementation: decode, call the broker, encode.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::Semaphore;
use tonic::{Request, Response, Status};
use tracing::Instrument;

use super::proto::{self, reencrypt_request::Input, reencrypt_service_server::ReencryptService};
use super::status::{code, to_status};
use super::tls::ConnInfo;
use crate::broker::{self, Broker, BrokerError, Caller, CiphertextInput, Reason};
use crate::esdk::EncryptionContext;
use crate::telemetry::{BatchItemLabels, RequestLabels, OK};

pub struct Service {
    broker: Arc<Broker>,
    /// Requests in progress at once; the rest are shed, not queued.
    in_flight: Arc<Semaphore>,
}

impl Service {
    pub fn new(broker: Arc<Broker>, max_concurrent: usize) -> Self {
        Service {
            broker,
            in_flight: Arc::new(Semaphore::new(max_concurrent.max(1))),
        }
    }

    fn admit(&self) -> Result<Admitted, BrokerError> {
        let metrics = self.broker.metrics().clone();
        match self.in_flight.clone().try_acquire_owned() {
            Ok(permit) => {
                metrics.in_flight.inc();
                Ok(Admitted {
                    _permit: permit,
                    metrics,
                })
            }
            Err(_) => {
                metrics.shed.inc();
                Err(BrokerError::new(
                    Reason::Overloaded,
                    "the broker is at its concurrency limit; retry shortly",
                )
                .with_retry_after(std::time::Duration::from_millis(200)))
            }
        }
    }

    fn record(&self, method: &str, route: &str, outcome: &str, started: Instant) {
        let labels = RequestLabels {
            method: method.to_owned(),
            route: route.to_owned(),
            outcome: outcome.to_owned(),
        };
        let m = self.broker.metrics();
        m.requests.get_or_create(&labels).inc();
        m.request_seconds
            .get_or_create(&labels)
            .observe(started.elapsed().as_secs_f64());
    }
}

/// A request slot, counted in `reseal_requests_in_flight` while held.
struct Admitted {
    _permit: tokio::sync::OwnedSemaphorePermit,
    metrics: Arc<crate::telemetry::Metrics>,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.metrics.in_flight.dec();
    }
}

fn caller_of<T>(request: &Request<T>) -> Caller {
    let info = request.extensions().get::<ConnInfo>();
    Caller {
        identity: info.and_then(|i| i.identity.clone()),
        peer: info.and_then(|i| i.remote).map(|a| a.to_string()),
    }
}

/// The caller's request id (field, else `x-request-id` header), or a new one.
fn request_id(field: &str, metadata: &tonic::metadata::MetadataMap) -> Result<String, BrokerError> {
    let header = metadata.get("x-request-id").and_then(|v| v.to_str().ok());
    broker::request_id(&[Some(field), header])
}

fn decode(
    req: proto::ReencryptRequest,
    request_id: String,
) -> Result<broker::ReencryptRequest, BrokerError> {
    let ciphertext = match req.input {
        Some(Input::Ciphertext(b)) => CiphertextInput::Bytes(b),
        Some(Input::CiphertextBase64(s)) => CiphertextInput::Base64(s),
        None => {
            return Err(BrokerError::new(
                Reason::NoDataSupplied,
                "set `ciphertext` or `ciphertext_base64`",
            ))
        }
    };
    Ok(broker::ReencryptRequest {
        ciphertext,
        consumers: req.consumers,
        route: (!req.route.is_empty()).then_some(req.route),
        source_key_hint: (!req.source_key_hint.is_empty()).then_some(req.source_key_hint),
        expected_context: req
            .expected_encryption_context
            .into_iter()
            .collect::<EncryptionContext>(),
        all_or_nothing: req.all_or_nothing,
        request_id,
    })
}

fn encode(resp: broker::ReencryptResponse) -> proto::ReencryptResponse {
    proto::ReencryptResponse {
        source_key_id: resp.source_key_id,
        message_id: resp.message_id,
        request_id: resp.request_id,
        results: resp
            .results
            .into_iter()
            .map(|o| match o.result {
                Ok(env) => proto::ConsumerResult {
                    consumer: o.consumer,
                    ciphertext: env.ciphertext,
                    key_ids: env.key_ids,
                    algorithm_suite: env.suite.to_string(),
                    error: None,
                },
                Err(e) => proto::ConsumerResult {
                    consumer: o.consumer,
                    ciphertext: Vec::new(),
                    key_ids: Vec::new(),
                    algorithm_suite: String::new(),
                    error: Some(proto::ConsumerError {
                        reason: e.reason.as_str().to_owned(),
                        message: e.message,
                        retryable: e.reason.retryable(),
                    }),
                },
            })
            .collect(),
    }
}

/// `OK` or the reason, as every metric spells outcomes. A call whose status
/// is OK counts as `OK` even when some consumers failed: those are counted
/// per consumer, with their reasons, in `reseal_consumer_envelopes_total`.
fn outcome_of(result: &Result<broker::ReencryptResponse, BrokerError>) -> String {
    match result {
        Ok(_) => OK.into(),
        Err(e) => e.reason.as_str().into(),
    }
}

#[tonic::async_trait]
impl ReencryptService for Service {
    async fn reencrypt(
        &self,
        request: Request<proto::ReencryptRequest>,
    ) -> Result<Response<proto::ReencryptResponse>, Status> {
        let started = Instant::now();
        let caller = caller_of(&request);
        let rid = request_id(&request.get_ref().request_id, request.metadata())
            .map_err(|e| to_status(&e, ""))?;
        let route = self
            .broker
            .route_label(Some(request.get_ref().route.as_str()).filter(|r| !r.is_empty()));
        let _permit = match self.admit() {
            Ok(p) => p,
            Err(e) => {
                self.record("Reencrypt", &route, e.reason.as_str(), started);
                return Err(to_status(&e, &rid));
            }
        };
        let span = tracing::info_span!("reencrypt", request_id = %rid);
        let result = match decode(request.into_inner(), rid.clone()) {
            Ok(req) => self.broker.reencrypt(&caller, req).instrument(span).await,
            Err(e) => Err(e),
        };
        self.record("Reencrypt", &route, &outcome_of(&result), started);
        match result {
            Ok(resp) => Ok(Response::new(encode(resp))),
            Err(e) => Err(to_status(&e, &rid)),
        }
    }

    async fn reencrypt_batch(
        &self,
        request: Request<proto::ReencryptBatchRequest>,
    ) -> Result<Response<proto::ReencryptBatchResponse>, Status> {
        let started = Instant::now();
        let caller = caller_of(&request);
        let rid = request_id("", request.metadata()).map_err(|e| to_status(&e, ""))?;
        let _permit = match self.admit() {
            Ok(p) => p,
            Err(e) => {
                self.record("ReencryptBatch", "-", e.reason.as_str(), started);
                return Err(to_status(&e, &rid));
            }
        };
        let request = request.into_inner();
        let routes: Vec<String> = request
            .items
            .iter()
            .map(|i| {
                self.broker
                    .route_label(Some(i.route.as_str()).filter(|r| !r.is_empty()))
            })
            .collect();
        let items: Vec<_> = request
            .items
            .into_iter()
            .enumerate()
            .map(|(i, item)| {
                let item_rid = if item.request_id.is_empty() {
                    Ok(format!("{rid}-{i}"))
                } else {
                    broker::request_id(&[Some(&item.request_id)])
                };
                item_rid.and_then(|r| decode(item, r))
            })
            .collect();
        let span = tracing::info_span!("reencrypt_batch", request_id = %rid, items = items.len());
        let result = self
            .broker
            .reencrypt_batch(&caller, items)
            .instrument(span)
            .await;
        let outcome = match &result {
            Ok(items) => {
                // Each item's outcome, as a call of its own would count it.
                let m = self.broker.metrics();
                for (item, route) in items.iter().zip(routes) {
                    m.batch_items
                        .get_or_create(&BatchItemLabels {
                            route,
                            outcome: outcome_of(item),
                        })
                        .inc();
                }
                OK.to_owned()
            }
            Err(e) => e.reason.as_str().to_owned(),
        };
        self.record("ReencryptBatch", "-", &outcome, started);
        let results = result
            .map_err(|e| to_status(&e, &rid))?
            .into_iter()
            .enumerate()
            .map(|(index, r)| match r {
                Ok(resp) => proto::BatchItemResult {
                    index: index as u32,
                    response: Some(encode(resp)),
                    error: None,
                },
                Err(e) => proto::BatchItemResult {
                    index: index as u32,
                    response: None,
                    error: Some(proto::ItemError {
                        code: code(e.reason) as i32,
                        reason: e.reason.as_str().to_owned(),
                        message: e.message,
                        retryable: e.reason.retryable(),
                    }),
                },
            })
            .collect();
        Ok(Response::new(proto::ReencryptBatchResponse { results }))
    }
}
