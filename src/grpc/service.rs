//! The `reseal.v1.ReencryptService` implementation: decode, call the broker, encode.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::proto::{self, reencrypt_request::Input, reencrypt_service_server::ReencryptService};
use super::status::{code, to_status};
use crate::broker::{
    self, Broker, BrokerError, Caller, CiphertextInput, Door, Method, Reason, Slot,
};
use crate::transport::ConnInfo;

pub struct Service {
    broker: Arc<Broker>,
}

impl Service {
    pub fn new(broker: Arc<Broker>) -> Self {
        Service { broker }
    }
}

/// The caller the front layer established (or, for a request that did not
/// come through it, from the request itself).
fn caller_of<T>(request: &Request<T>) -> Result<Caller, BrokerError> {
    if let Some(c) = request.extensions().get::<Caller>() {
        return Ok(c.clone());
    }
    super::limit::caller_of(
        &request.metadata().clone().into_headers(),
        request.extensions().get::<ConnInfo>(),
    )
}

/// The front desk's slot, admitted before the body was read.
fn slot_of<T>(request: &Request<T>) -> Option<Slot> {
    request.extensions().get::<Slot>().cloned()
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
    Ok(broker::ReencryptRequest::from_wire(
        ciphertext,
        req.consumers,
        req.route,
        req.source_key_hint,
        req.expected_encryption_context,
        req.all_or_nothing,
        request_id,
    ))
}

fn envelope_format(format: broker::EnvelopeFormat) -> proto::EnvelopeFormat {
    match format {
        broker::EnvelopeFormat::Esdk(_) => proto::EnvelopeFormat::Esdk,
        broker::EnvelopeFormat::JweCompact => proto::EnvelopeFormat::JweCompact,
        broker::EnvelopeFormat::JweJson => proto::EnvelopeFormat::JweJson,
    }
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
                    algorithm_suite: env.suite().map(|s| s.to_string()).unwrap_or_default(),
                    format: envelope_format(env.format) as i32,
                    ciphertext: env.ciphertext,
                    key_ids: env.key_ids,
                    error: None,
                },
                Err(e) => proto::ConsumerResult {
                    consumer: o.consumer,
                    ciphertext: Vec::new(),
                    key_ids: Vec::new(),
                    algorithm_suite: String::new(),
                    format: proto::EnvelopeFormat::Unspecified as i32,
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

#[tonic::async_trait]
impl ReencryptService for Service {
    async fn reencrypt(
        &self,
        request: Request<proto::ReencryptRequest>,
    ) -> Result<Response<proto::ReencryptResponse>, Status> {
        let rid = request_id(&request.get_ref().request_id, request.metadata())
            .map_err(|e| to_status(&e, ""))?;
        let caller = caller_of(&request).map_err(|e| to_status(&e, &rid))?;
        let slot = match slot_of(&request) {
            Some(s) => s,
            None => self
                .broker
                .admit(Door::Grpc, Method::Reencrypt, &caller)
                .await
                .map_err(|e| to_status(&e, &rid))?,
        };
        let route = request.get_ref().route.clone();
        let decoded = decode(request.into_inner(), rid.clone());
        let route = (!route.is_empty()).then_some(route.as_str());
        match self
            .broker
            .call_admitted(&slot, &caller, route, decoded)
            .await
        {
            Ok(resp) => Ok(Response::new(encode(resp))),
            Err(e) => Err(to_status(&e, &rid)),
        }
    }

    async fn reencrypt_batch(
        &self,
        request: Request<proto::ReencryptBatchRequest>,
    ) -> Result<Response<proto::ReencryptBatchResponse>, Status> {
        let rid = request_id("", request.metadata()).map_err(|e| to_status(&e, ""))?;
        let caller = caller_of(&request).map_err(|e| to_status(&e, &rid))?;
        let slot = match slot_of(&request) {
            Some(s) => s,
            None => self
                .broker
                .admit(Door::Grpc, Method::ReencryptBatch, &caller)
                .await
                .map_err(|e| to_status(&e, &rid))?,
        };
        let items: Vec<_> = request
            .into_inner()
            .items
            .into_iter()
            .enumerate()
            .map(|(i, item)| {
                broker::batch_item_id(&rid, i, &item.request_id).and_then(|r| decode(item, r))
            })
            .collect();
        let results = self
            .broker
            .call_batch_admitted(&slot, &caller, &rid, items)
            .await
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
