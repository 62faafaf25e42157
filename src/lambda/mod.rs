//! The Lambda door: `reseal lambda` runs the broker as an AWS Lambda custom
//! runtime (`bootstrap` on `provided.al2023`), for the platforms that hand
//! their ciphertext to a Lambda function instead of calling an API.
//!
//! One process serves every invocation of its execution environment: one
//! broker, one registry, caches kept warm between invocations.
//!
//! # Event shapes
//!
//! The shape of an event is decided by its content, in this order:
//!
//! 1. **Amazon Connect**: an object with `Name: "ContactFlowEvent"` or a
//!    `Details` object (what the "Invoke AWS Lambda function" flow block
//!    sends). The ciphertext, the Connect key id (the source key hint), a
//!    route or consumers come from `Details.Parameters` under the names in
//!    `lambda.connect`; `Details.ContactData.ContactId` is the request id.
//!    Other fields are not read (and may be missing or null).
//! 2. **Genesys Cloud AWS Lambda data action**: an object holding the field
//!    `lambda.genesys.ciphertext_field` (default `encryptedData`), with the
//!    route, consumers and request id under the other `lambda.genesys` names.
//!    Other fields are ignored (request templates often pass more).
//! 3. **Direct invocation**: anything else is the body of the HTTP/JSON API:
//!    an object with `items` is a `ReencryptBatchRequest`, any other payload a
//!    `ReencryptRequest` (proto3 JSON, unknown fields refused).
//!
//! # Answers
//!
//! Connect and Genesys get a flat object of strings ([`flat`]): `status`
//! (`OK`, `PARTIAL`, `ERROR`), `requestId`, `sourceKeyId`, `messageId`, one
//! attribute per consumer envelope (base64) named by the consumer id,
//! `<consumer>_error` with the reason of each consumer that got none, and on
//! failure `errorReason`, `errorMessage` and `retryable`.
//!
//! * Connect: every outcome is an answer. A failed call is `status: ERROR`,
//!   never a function error: Connect retries function errors (up to three
//!   times within 8 s) before it takes the Error branch, which would repeat a
//!   failure that does not change. An answer over `lambda.connect.max_answer_bytes`
//!   (Connect takes less than 32 KB) becomes `status: ERROR` with
//!   `MAXIMUM_DATA_SIZE_EXCEEDED` instead of an answer Connect would drop.
//! * Genesys: a failed call is a function error by default (a Lambda data
//!   action takes its Failure path only then); its `errorType` is the reason
//!   and its `errorMessage` starts with it. `lambda.genesys.failures: answer`
//!   answers `status: ERROR` instead, for flows that branch in the translation
//!   map. A partial result is an answer either way.
//! * Direct: a `ReencryptResponse` (or `ReencryptBatchResponse`); a failed
//!   call answers its `google.rpc.Status` (the one with a `code`), as the
//!   HTTP/JSON API would with its body.
//!
//! A payload that is not JSON at all is refused by the runtime as a function
//! error before it reaches the door; the next invocation is served as usual.

mod event;
pub mod flat;
pub mod runtime;

use std::sync::Arc;

use serde_json::Value;

use crate::broker::{self, Broker, BrokerError, Caller, Door, Reason};
use crate::registry::model::{GenesysFailures, LambdaSpec};
use crate::registry::Registry;
use crate::wire::json::{self, Status};

pub use lambda_runtime::Diagnostic;
pub use runtime::{report_init_error, serve, RuntimeError};

/// A `lambda` section that cannot work with the registry it came with.
#[derive(Debug, thiserror::Error)]
#[error("lambda: {0}")]
pub struct LambdaConfigError(pub String);

/// The door: the broker, and how events map onto its requests.
pub struct LambdaDoor {
    broker: Arc<Broker>,
    spec: LambdaSpec,
    caller: Caller,
}

/// What one event is, once its shape is known.
enum Shape {
    Connect,
    Genesys,
    Direct,
}

impl LambdaDoor {
    /// Checks the `lambda` section against the registry (the caller it acts
    /// as, its default routes, consumer ids that would clash with answer
    /// attributes) and builds the door.
    pub fn new(
        broker: Arc<Broker>,
        registry: &Registry,
        spec: LambdaSpec,
    ) -> Result<Self, LambdaConfigError> {
        check(registry, &spec)?;
        let caller = Caller {
            // Not reachable over a network: IAM decides who may invoke it.
            secure: true,
            acting_as: spec.caller.clone(),
            ..Caller::default()
        };
        Ok(LambdaDoor {
            broker,
            spec,
            caller,
        })
    }

    /// Answers one invocation. `aws_request_id` is the Lambda request id (the
    /// request id when the event carries none).
    pub async fn invoke(&self, payload: Value, aws_request_id: &str) -> Result<Value, Diagnostic> {
        match self.shape(&payload) {
            Shape::Connect => Ok(self.connect(&payload, aws_request_id).await),
            Shape::Genesys => self.genesys(&payload, aws_request_id).await,
            Shape::Direct => Ok(self.direct(payload, aws_request_id).await),
        }
    }

    fn shape(&self, payload: &Value) -> Shape {
        let Some(object) = payload.as_object() else {
            return Shape::Direct;
        };
        let is_connect = object.get("Name").and_then(Value::as_str) == Some("ContactFlowEvent")
            || object.get("Details").is_some_and(Value::is_object);
        if is_connect {
            Shape::Connect
        } else if object.contains_key(&self.spec.genesys.ciphertext_field) {
            Shape::Genesys
        } else {
            Shape::Direct
        }
    }

    async fn connect(&self, payload: &Value, aws_request_id: &str) -> Value {
        let spec = &self.spec.connect;
        let contact_id = payload
            .pointer("/Details/ContactData/ContactId")
            .and_then(Value::as_str);
        let rid = match broker::request_id(&[contact_id, Some(aws_request_id)]) {
            Ok(r) => r,
            Err(e) => return flat::to_value(flat::failure(&e, "")),
        };
        let (request, route) = event::connect(payload, spec, rid.clone());
        let result = self
            .broker
            .call(Door::Lambda, &self.caller, route.as_deref(), request)
            .await;
        let answer = flat::answer(&result, &rid);
        flat::to_value(flat::bounded(answer, spec.max_answer_bytes, &rid))
    }

    async fn genesys(&self, payload: &Value, aws_request_id: &str) -> Result<Value, Diagnostic> {
        let spec = &self.spec.genesys;
        let given = payload.get(&spec.request_id_field).and_then(Value::as_str);
        let rid =
            broker::request_id(&[given, Some(aws_request_id)]).map_err(|e| diagnostic(&e, ""))?;
        let (request, route) = event::genesys(payload, spec, rid.clone());
        let result = self
            .broker
            .call(Door::Lambda, &self.caller, route.as_deref(), request)
            .await;
        match (&result, spec.failures) {
            (Err(e), GenesysFailures::FunctionError) => Err(diagnostic(e, &rid)),
            _ => Ok(flat::to_value(flat::answer(&result, &rid))),
        }
    }

    async fn direct(&self, payload: Value, aws_request_id: &str) -> Value {
        let batch = payload.as_object().is_some_and(|o| o.contains_key("items"));
        let body = serde_json::to_vec(&payload).unwrap_or_default();
        let early = match broker::request_id(&[Some(aws_request_id)]) {
            Ok(r) => r,
            Err(e) => return status_value(&e, ""),
        };
        if batch {
            let parsed: json::ReencryptBatchRequest =
                match json::from_body(&body, "ReencryptBatchRequest") {
                    Ok(p) => p,
                    Err(e) => return self.refuse(e, &early).await,
                };
            let items = parsed
                .items
                .into_iter()
                .enumerate()
                .map(|(i, item)| {
                    let item_rid = if item.request_id.is_empty() {
                        Ok(format!("{early}-{i}"))
                    } else {
                        broker::request_id(&[Some(&item.request_id)])
                    };
                    item_rid.and_then(|r| item.into_broker(r))
                })
                .collect();
            match self
                .broker
                .call_batch(Door::Lambda, &self.caller, &early, items)
                .await
            {
                Ok(results) => to_json(&json::ReencryptBatchResponse::from_results(results)),
                Err(e) => status_value(&e, &early),
            }
        } else {
            let parsed: json::ReencryptRequest = match json::from_body(&body, "ReencryptRequest") {
                Ok(p) => p,
                Err(e) => return self.refuse(e, &early).await,
            };
            let rid = match broker::request_id(&[Some(&parsed.request_id), Some(&early)]) {
                Ok(r) => r,
                Err(e) => return status_value(&e, &early),
            };
            let route = (!parsed.route.is_empty()).then(|| parsed.route.clone());
            let request = parsed.into_broker(rid.clone());
            match self
                .broker
                .call(Door::Lambda, &self.caller, route.as_deref(), request)
                .await
            {
                Ok(resp) => to_json(&json::ReencryptResponse::from(resp)),
                Err(e) => status_value(&e, &rid),
            }
        }
    }

    /// A payload the door could not decode, through the front desk (so it is
    /// counted like every other call) and answered as a status.
    async fn refuse(&self, err: BrokerError, request_id: &str) -> Value {
        let e = match self
            .broker
            .call(Door::Lambda, &self.caller, None, Err(err))
            .await
        {
            Err(e) => e,
            Ok(_) => BrokerError::internal("a refused request was answered"),
        };
        status_value(&e, request_id)
    }
}

/// The answer attributes the door writes itself; no consumer may be named so.
pub const RESERVED_ATTRIBUTES: [&str; 7] = [
    "status",
    "requestId",
    "sourceKeyId",
    "messageId",
    "errorReason",
    "errorMessage",
    "retryable",
];

fn check(registry: &Registry, spec: &LambdaSpec) -> Result<(), LambdaConfigError> {
    let err = |m: String| Err(LambdaConfigError(m));
    let callers = &registry.callers;
    match &spec.caller {
        None if callers.is_enforced() => {
            return err(
                "callers are configured: set lambda.caller to the registry caller this function acts as".into(),
            )
        }
        Some(name) if callers.by_name(name).is_none() => {
            return err(format!(
                "lambda.caller `{name}` is not one of the registry's callers"
            ))
        }
        _ => {}
    }
    for (what, route) in [
        ("lambda.connect.default_route", &spec.connect.default_route),
        ("lambda.genesys.default_route", &spec.genesys.default_route),
    ] {
        if let Some(r) = route {
            if !registry.routes.contains_key(r) {
                return err(format!("{what}: `{r}` is not a route of the registry"));
            }
        }
    }
    for consumer in registry.consumers.keys() {
        let error_key = flat::error_key(consumer);
        if RESERVED_ATTRIBUTES.contains(&consumer.as_str())
            || registry.consumers.contains_key(&error_key)
        {
            return err(format!(
                "consumer `{consumer}` clashes with an answer attribute of the Lambda door ({} and `<consumer>_error` are taken)",
                RESERVED_ATTRIBUTES.join(", ")
            ));
        }
    }
    let g = &spec.genesys;
    for field in [&g.ciphertext_field, &g.route_field, &g.consumers_field] {
        if field.is_empty() {
            return err("lambda.genesys field names may not be empty".into());
        }
    }
    if DIRECT_FIELDS.contains(&g.ciphertext_field.as_str()) {
        return err(format!(
            "lambda.genesys.ciphertext_field `{}` is a field of the direct-invocation body; pick another name (the shape of an event is told by it)",
            g.ciphertext_field
        ));
    }
    let c = &spec.connect;
    if c.ciphertext_parameter.is_empty() {
        return err("lambda.connect.ciphertext_parameter may not be empty".into());
    }
    if c.max_answer_bytes == 0 {
        return err("lambda.connect.max_answer_bytes must be above 0".into());
    }
    Ok(())
}

/// The fields of a direct invocation's `ReencryptRequest` (both name forms).
const DIRECT_FIELDS: [&str; 13] = [
    "ciphertext",
    "ciphertextBase64",
    "ciphertext_base64",
    "consumers",
    "route",
    "sourceKeyHint",
    "source_key_hint",
    "expectedEncryptionContext",
    "expected_encryption_context",
    "allOrNothing",
    "all_or_nothing",
    "requestId",
    "request_id",
];

/// A function error for a failed call: the reason as its type, the reason,
/// message and request id as its message.
fn diagnostic(err: &BrokerError, request_id: &str) -> Diagnostic {
    let reason = err.reason.as_str();
    let mut message = format!("{reason}: {}", err.message);
    if !request_id.is_empty() {
        message.push_str(&format!(" (request id {request_id})"));
    }
    Diagnostic {
        error_type: reason.to_owned(),
        error_message: message,
    }
}

fn status_value(err: &BrokerError, request_id: &str) -> Value {
    to_json(&Status::of(err, request_id))
}

fn to_json<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or_else(|e| {
        to_json(&Status::of(
            &BrokerError::new(Reason::Internal, format!("encoding the answer: {e}")),
            "",
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_errors_carry_the_reason_as_their_type() {
        let d = diagnostic(
            &BrokerError::new(Reason::AuthenticationFailed, "no"),
            "conv-1",
        );
        assert_eq!(d.error_type, "AUTHENTICATION_FAILED");
        assert_eq!(
            d.error_message,
            "AUTHENTICATION_FAILED: no (request id conv-1)"
        );
    }

    #[test]
    fn direct_fields_are_the_wire_request_fields() {
        // Every name the wire form accepts is listed, so a Genesys field name
        // can never make a direct invocation look like a data action.
        let all = serde_json::json!({
            "ciphertextBase64": "AQ", "consumers": ["a"], "route": "r", "sourceKeyHint": "h",
            "expectedEncryptionContext": {"a": "b"}, "allOrNothing": true, "requestId": "x"
        });
        let parsed: json::ReencryptRequest =
            json::from_body(all.to_string().as_bytes(), "ReencryptRequest").unwrap();
        let written = serde_json::to_value(&parsed).unwrap();
        for key in written.as_object().unwrap().keys() {
            assert!(DIRECT_FIELDS.contains(&key.as_str()), "{key}");
        }
        assert!(DIRECT_FIELDS.contains(&"ciphertext"));
    }
}
