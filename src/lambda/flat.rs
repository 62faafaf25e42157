//! The flat answer of the Connect and Genesys shapes: one object of string
//! values (Amazon Connect stores them as contact attributes, a Genesys data
//! action's translation map reads them by name).
//!
//! | attribute | when | value |
//! |---|---|---|
//! | `status` | always | `OK` (every consumer has its envelope), `PARTIAL`, `ERROR` |
//! | `requestId` | always | the request id of the audit log |
//! | `sourceKeyId`, `messageId` | the input was opened | the source key, the input's message id (hex) |
//! | `<consumer>` | per envelope | the consumer's ESDK message, base64 |
//! | `<consumer>_error` | per consumer without one | its reason, e.g. `KEY_EXPIRED` |
//! | `errorReason`, `errorMessage`, `retryable` | `ERROR` | the call's reason, what went wrong, `true`/`false` |

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::Value;

use crate::broker::{BrokerError, Reason, ReencryptResponse};

/// An answer: attribute → string.
pub type Flat = BTreeMap<String, String>;

/// The attribute holding a consumer's error reason.
pub fn error_key(consumer: &str) -> String {
    format!("{consumer}_error")
}

/// The answer to a call.
pub fn answer(result: &Result<ReencryptResponse, BrokerError>, request_id: &str) -> Flat {
    let resp = match result {
        Ok(r) => r,
        Err(e) => return failure(e, request_id),
    };
    let mut out = Flat::new();
    let mut all_ok = true;
    for outcome in &resp.results {
        match &outcome.result {
            Ok(env) => {
                out.insert(outcome.consumer.clone(), STANDARD.encode(&env.ciphertext));
            }
            Err(e) => {
                all_ok = false;
                out.insert(error_key(&outcome.consumer), e.reason.as_str().to_owned());
            }
        }
    }
    out.insert(
        "status".into(),
        if all_ok { "OK" } else { "PARTIAL" }.into(),
    );
    out.insert("requestId".into(), resp.request_id.clone());
    out.insert("sourceKeyId".into(), resp.source_key_id.clone());
    out.insert("messageId".into(), resp.message_id.clone());
    out
}

/// The answer to a failed call.
pub fn failure(err: &BrokerError, request_id: &str) -> Flat {
    let mut out = Flat::new();
    out.insert("status".into(), "ERROR".into());
    out.insert("errorReason".into(), err.reason.as_str().to_owned());
    out.insert("errorMessage".into(), err.message.clone());
    out.insert("retryable".into(), err.reason.retryable().to_string());
    out.insert("requestId".into(), request_id.to_owned());
    out
}

/// The answer as JSON text.
pub fn encode(flat: &Flat) -> String {
    // A map of strings always serializes.
    serde_json::to_string(flat).unwrap_or_default()
}

/// The answer, or (when its JSON is over `max` bytes) an ERROR answer with
/// MAXIMUM_DATA_SIZE_EXCEEDED: Amazon Connect drops an answer over its
/// limit and takes the flow's Error branch without a reason.
pub fn bounded(flat: Flat, max: usize, request_id: &str) -> Flat {
    let size = encode(&flat).len();
    if size <= max {
        return flat;
    }
    let envelopes = flat
        .keys()
        .filter(|k| !super::RESERVED_ATTRIBUTES.contains(&k.as_str()) && !k.ends_with("_error"))
        .count();
    tracing::warn!(
        request_id,
        answer_bytes = size,
        max_answer_bytes = max,
        envelopes,
        "the answer is over lambda.connect.max_answer_bytes; answering MAXIMUM_DATA_SIZE_EXCEEDED"
    );
    failure(
        &BrokerError::new(
            Reason::MaximumDataSizeExceeded,
            format!(
                "the answer would be {size} bytes ({envelopes} envelopes); Amazon Connect takes at most {max} (lambda.connect.max_answer_bytes): target fewer consumers per call"
            ),
        ),
        request_id,
    )
}

pub fn to_value(flat: Flat) -> Value {
    Value::Object(
        flat.into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::{ConsumerOutcome, Envelope};

    fn response(envelope_bytes: usize) -> ReencryptResponse {
        ReencryptResponse {
            source_key_id: "connect-a".into(),
            message_id: "00ff".into(),
            request_id: "c-1".into(),
            results: vec![
                ConsumerOutcome {
                    consumer: "payments".into(),
                    result: Ok(Envelope {
                        ciphertext: vec![7; envelope_bytes],
                        key_ids: vec!["p".into()],
                        format: crate::broker::EnvelopeFormat::Esdk(
                            crate::registry::DEFAULT_CONSUMER_SUITE,
                        ),
                    }),
                },
                ConsumerOutcome {
                    consumer: "ledger".into(),
                    result: Err(BrokerError::new(Reason::KeyExpired, "old")),
                },
            ],
        }
    }

    #[test]
    fn a_partial_answer_is_flat_strings() {
        let flat = answer(&Ok(response(3)), "c-1");
        assert_eq!(flat["status"], "PARTIAL");
        assert_eq!(flat["payments"], "BwcH");
        assert_eq!(flat["ledger_error"], "KEY_EXPIRED");
        assert_eq!(flat["requestId"], "c-1");
        assert!(!flat.contains_key("ledger"));
        let value = to_value(flat);
        assert!(value.as_object().unwrap().values().all(Value::is_string));
    }

    #[test]
    fn a_failure_carries_reason_message_and_retryability() {
        let flat = answer(
            &Err(BrokerError::new(Reason::UpstreamUnavailable, "ssm down")),
            "c-2",
        );
        assert_eq!(flat["status"], "ERROR");
        assert_eq!(flat["errorReason"], "UPSTREAM_UNAVAILABLE");
        assert_eq!(flat["errorMessage"], "ssm down");
        assert_eq!(flat["retryable"], "true");
        assert_eq!(flat["requestId"], "c-2");
    }

    #[test]
    fn an_answer_over_the_limit_becomes_a_size_refusal() {
        let max = crate::registry::model::ConnectSpec::default().max_answer_bytes;
        assert_eq!(max, 32_000, "Connect takes less than 32 KB");
        // 23,000 bytes are 30,668 characters of base64: within the limit.
        let small = bounded(answer(&Ok(response(23_000)), "c-1"), max, "c-1");
        assert_eq!(small["status"], "PARTIAL");
        assert!(encode(&small).len() <= max);
        // 24,000 bytes are 32,000 characters of base64 alone: over it.
        let big = bounded(answer(&Ok(response(24_000)), "c-1"), max, "c-1");
        assert_eq!(big["status"], "ERROR");
        assert_eq!(big["errorReason"], "MAXIMUM_DATA_SIZE_EXCEEDED");
        assert_eq!(big["requestId"], "c-1");
        assert!(!big.contains_key("payments"));
        assert!(
            big["errorMessage"].contains("32000"),
            "{}",
            big["errorMessage"]
        );
    }
}
