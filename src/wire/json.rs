//! `reseal.v1` in the canonical proto3 JSON mapping, as gRPC-JSON transcoders
//! (Envoy, grpc-gateway) speak it: lowerCamelCase names written, the proto
//! names accepted too, `bytes` as base64 (standard written; standard or
//! URL-safe, padded or not, read), `null` read as the default, fields with
//! default values left out when writing, unknown fields refused.
//!
//! Errors say what is wrong with the body without repeating its values (a
//! ciphertext pasted in the wrong field never comes back in an error).

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{code, ERROR_DOMAIN};
use crate::broker::{self, BrokerError, CiphertextInput, Reason};

/// `ReencryptRequest`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ReencryptRequest {
    /// Raw ESDK message bytes (base64 in JSON).
    #[serde(default, with = "bytes", skip_serializing_if = "Option::is_none")]
    pub ciphertext: Option<Vec<u8>>,
    /// The ESDK message as base64 text (what Connect and Genesys hand over).
    #[serde(
        default,
        alias = "ciphertext_base64",
        deserialize_with = "nullable",
        skip_serializing_if = "Option::is_none"
    )]
    pub ciphertext_base64: Option<String>,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub consumers: Vec<String>,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub route: String,
    #[serde(
        default,
        alias = "source_key_hint",
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub source_key_hint: String,
    #[serde(
        default,
        alias = "expected_encryption_context",
        deserialize_with = "nullable",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub expected_encryption_context: BTreeMap<String, String>,
    #[serde(
        default,
        alias = "all_or_nothing",
        deserialize_with = "nullable",
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub all_or_nothing: bool,
    #[serde(
        default,
        alias = "request_id",
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub request_id: String,
}

impl ReencryptRequest {
    /// The broker's request, with the request id the door settled on.
    pub fn into_broker(self, request_id: String) -> Result<broker::ReencryptRequest, BrokerError> {
        let ciphertext =
            match (self.ciphertext, self.ciphertext_base64) {
                (Some(b), None) => CiphertextInput::Bytes(b),
                (None, Some(s)) => CiphertextInput::Base64(s),
                (Some(_), Some(_)) => return Err(BrokerError::new(
                    Reason::MalformedRequest,
                    "set one of `ciphertext` and `ciphertextBase64`, not both (they are a oneof)",
                )),
                (None, None) => {
                    return Err(BrokerError::new(
                        Reason::NoDataSupplied,
                        "set `ciphertext` or `ciphertextBase64`",
                    ))
                }
            };
        Ok(broker::ReencryptRequest::from_wire(
            ciphertext,
            self.consumers,
            self.route,
            self.source_key_hint,
            self.expected_encryption_context,
            self.all_or_nothing,
            request_id,
        ))
    }
}

/// `ReencryptResponse`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ReencryptResponse {
    #[serde(
        default,
        alias = "source_key_id",
        skip_serializing_if = "String::is_empty"
    )]
    pub source_key_id: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub results: Vec<ConsumerResult>,
    #[serde(
        default,
        alias = "message_id",
        skip_serializing_if = "String::is_empty"
    )]
    pub message_id: String,
    #[serde(
        default,
        alias = "request_id",
        skip_serializing_if = "String::is_empty"
    )]
    pub request_id: String,
}

/// `ConsumerResult`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ConsumerResult {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub consumer: String,
    #[serde(default, with = "bytes", skip_serializing_if = "Option::is_none")]
    pub ciphertext: Option<Vec<u8>>,
    #[serde(default, alias = "key_ids", skip_serializing_if = "Vec::is_empty")]
    pub key_ids: Vec<String>,
    #[serde(
        default,
        alias = "algorithm_suite",
        skip_serializing_if = "String::is_empty"
    )]
    pub algorithm_suite: String,
    /// The proto enum's name (`ENVELOPE_FORMAT_ESDK`, `ENVELOPE_FORMAT_JWE_COMPACT`,
    /// `ENVELOPE_FORMAT_JWE_JSON`), left out when unspecified (an error).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub format: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ConsumerError>,
}

/// `ConsumerError`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ConsumerError {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub retryable: bool,
}

/// An envelope format as proto3 JSON spells the `EnvelopeFormat` enum.
pub fn envelope_format_name(format: broker::EnvelopeFormat) -> &'static str {
    match format {
        broker::EnvelopeFormat::Esdk(_) => "ENVELOPE_FORMAT_ESDK",
        broker::EnvelopeFormat::JweCompact => "ENVELOPE_FORMAT_JWE_COMPACT",
        broker::EnvelopeFormat::JweJson => "ENVELOPE_FORMAT_JWE_JSON",
    }
}

impl From<broker::ReencryptResponse> for ReencryptResponse {
    fn from(resp: broker::ReencryptResponse) -> Self {
        ReencryptResponse {
            source_key_id: resp.source_key_id,
            message_id: resp.message_id,
            request_id: resp.request_id,
            results: resp
                .results
                .into_iter()
                .map(|o| match o.result {
                    Ok(env) => ConsumerResult {
                        consumer: o.consumer,
                        algorithm_suite: env.suite().map(|s| s.to_string()).unwrap_or_default(),
                        format: envelope_format_name(env.format).to_owned(),
                        ciphertext: Some(env.ciphertext).filter(|c| !c.is_empty()),
                        key_ids: env.key_ids,
                        error: None,
                    },
                    Err(e) => ConsumerResult {
                        consumer: o.consumer,
                        error: Some(ConsumerError {
                            reason: e.reason.as_str().to_owned(),
                            retryable: e.reason.retryable(),
                            message: e.message,
                        }),
                        ..ConsumerResult::default()
                    },
                })
                .collect(),
        }
    }
}

/// `ReencryptBatchRequest`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ReencryptBatchRequest {
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub items: Vec<ReencryptRequest>,
}

/// `ReencryptBatchResponse`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ReencryptBatchResponse {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub results: Vec<BatchItemResult>,
}

/// `BatchItemResult`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BatchItemResult {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub index: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<ReencryptResponse>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ItemError>,
}

/// `ItemError`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ItemError {
    #[serde(default, skip_serializing_if = "is_zero_i32")]
    pub code: i32,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub retryable: bool,
}

impl ReencryptBatchResponse {
    pub fn from_results(results: Vec<Result<broker::ReencryptResponse, BrokerError>>) -> Self {
        ReencryptBatchResponse {
            results: results
                .into_iter()
                .enumerate()
                .map(|(index, r)| match r {
                    Ok(resp) => BatchItemResult {
                        index: index as u32,
                        response: Some(resp.into()),
                        error: None,
                    },
                    Err(e) => BatchItemResult {
                        index: index as u32,
                        response: None,
                        error: Some(ItemError {
                            code: code(e.reason) as i32,
                            reason: e.reason.as_str().to_owned(),
                            retryable: e.reason.retryable(),
                            message: e.message,
                        }),
                    },
                })
                .collect(),
        }
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

fn is_zero_i32(n: &i32) -> bool {
    *n == 0
}

/// `google.rpc.Status` in JSON: the body of every failed call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Status {
    pub code: i32,
    pub message: String,
    #[serde(default)]
    pub details: Vec<serde_json::Value>,
}

impl Status {
    /// The status of a failed call: its code, message, a `google.rpc.ErrorInfo`
    /// (domain `reseal.v1`, the reason, the request id) and, when a retry may
    /// help, a `google.rpc.RetryInfo`.
    pub fn of(err: &BrokerError, request_id: &str) -> Self {
        let mut metadata = serde_json::Map::new();
        if !request_id.is_empty() {
            metadata.insert("request_id".into(), request_id.into());
        }
        let mut details = vec![serde_json::json!({
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": err.reason.as_str(),
            "domain": ERROR_DOMAIN,
            "metadata": metadata,
        })];
        if let Some(after) = retry_after(err) {
            details.push(serde_json::json!({
                "@type": "type.googleapis.com/google.rpc.RetryInfo",
                "retryDelay": format!("{}.{:03}s", after.as_secs(), after.subsec_millis()),
            }));
        }
        Status {
            code: code(err.reason) as i32,
            message: err.message.clone(),
            details,
        }
    }

    /// The `ErrorInfo` reason, if the status carries one.
    pub fn reason(&self) -> Option<&str> {
        self.details.iter().find_map(|d| {
            (d.get("@type")?.as_str()? == "type.googleapis.com/google.rpc.ErrorInfo")
                .then(|| d.get("reason")?.as_str())
                .flatten()
        })
    }
}

/// How long to wait before retrying, for retryable failures.
pub fn retry_after(err: &BrokerError) -> Option<std::time::Duration> {
    err.retry_after.or_else(|| {
        err.reason
            .retryable()
            .then_some(std::time::Duration::from_secs(1))
    })
}

/// Parses a JSON body into `T`, refusing what is not JSON, not an object of
/// `T`'s fields, or has trailing bytes, with a message that names the problem
/// and its place but repeats no value from the body.
pub fn from_body<T: for<'de> Deserialize<'de>>(body: &[u8], what: &str) -> Result<T, BrokerError> {
    serde_json::from_slice(body).map_err(|e| {
        BrokerError::new(
            Reason::MalformedRequest,
            format!("the body is not a valid {what}: {}", redact(&e)),
        )
    })
}

/// A serde_json error without the body's values: quoted strings are cut to
/// a short prefix (field names stay readable; a ciphertext does not come back).
fn redact(e: &serde_json::Error) -> String {
    let text = e.to_string();
    let mut out = String::with_capacity(text.len().min(300));
    let mut quoted: Option<String> = None;
    for c in text.chars() {
        match (&mut quoted, c) {
            (None, '"') | (None, '`') => quoted = Some(String::new()),
            (Some(q), '"') | (Some(q), '`') => {
                let shown: String = q.chars().take(32).collect();
                let shown: String = shown.chars().filter(|c| !c.is_control()).collect();
                out.push('`');
                out.push_str(&shown);
                if q.chars().count() > 32 {
                    out.push('…');
                }
                out.push('`');
                quoted = None;
            }
            (Some(q), c) => q.push(c),
            (None, c) => out.push(c),
        }
        if out.len() > 300 {
            out.push('…');
            break;
        }
    }
    out
}

/// `null` as the field's default (proto3 JSON).
fn nullable<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// `bytes` fields: base64 written (standard, padded), any common base64 read.
mod bytes {
    use super::*;

    pub fn serialize<S: Serializer>(value: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(b) => s.serialize_str(&STANDARD.encode(b)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        let Some(text) = Option::<String>::deserialize(d)? else {
            return Ok(None);
        };
        crate::input::decode_base64(text.as_bytes())
            .map(Some)
            .map_err(|_| serde::de::Error::custom("a `bytes` field holds base64 text"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_name_forms_are_read_and_camel_case_is_written() {
        let camel: ReencryptRequest = from_body(
            br#"{"ciphertextBase64":"AQID","sourceKeyHint":"k","allOrNothing":true,"requestId":"r1","expectedEncryptionContext":{"a":"b"}}"#,
            "ReencryptRequest",
        )
        .unwrap();
        let snake: ReencryptRequest = from_body(
            br#"{"ciphertext_base64":"AQID","source_key_hint":"k","all_or_nothing":true,"request_id":"r1","expected_encryption_context":{"a":"b"}}"#,
            "ReencryptRequest",
        )
        .unwrap();
        assert_eq!(camel, snake);
        let written = serde_json::to_string(&camel).unwrap();
        assert!(written.contains("\"ciphertextBase64\"") && written.contains("\"allOrNothing\""));
        assert!(
            !written.contains("route"),
            "defaults are left out: {written}"
        );
    }

    #[test]
    fn bytes_are_base64_in_any_alphabet_and_nulls_are_defaults() {
        let r: ReencryptRequest = from_body(
            br#"{"ciphertext":"-_8","consumers":null,"route":null}"#,
            "x",
        )
        .unwrap();
        assert_eq!(r.ciphertext.as_deref(), Some(&[0xfb, 0xff][..]));
        assert!(r.consumers.is_empty() && r.route.is_empty());
        let out = ConsumerResult {
            ciphertext: Some(vec![0xfb, 0xff]),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_string(&out).unwrap(),
            r#"{"ciphertext":"+/8="}"#
        );
    }

    #[test]
    fn malformed_bodies_are_typed_errors_that_repeat_no_value() {
        let secret = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo0MjQyNDI0MjQyNDI0MjQyNDI0Mg==";
        for body in [
            format!(r#"{{"ciphertextBase64":"{secret}","colour":"blue"}}"#),
            format!(r#"{{"consumers":"{secret}"}}"#),
            format!(r#"{{"ciphertext":"{secret}!"}}"#),
            "not json".to_owned(),
            r#"{"route":"a"} trailing"#.to_owned(),
            r#"[1,2]"#.to_owned(),
            r#"{"route":"a","route":"b"}"#.to_owned(),
        ] {
            let e = from_body::<ReencryptRequest>(body.as_bytes(), "ReencryptRequest").unwrap_err();
            assert_eq!(e.reason, Reason::MalformedRequest, "{body}");
            assert!(!e.message.contains(secret), "{}", e.message);
        }
        let e = from_body::<ReencryptRequest>(br#"{"colour":1}"#, "ReencryptRequest").unwrap_err();
        assert!(
            e.message.contains("unknown field `colour`"),
            "{}",
            e.message
        );
    }

    #[test]
    fn the_oneof_takes_one_input() {
        let both = ReencryptRequest {
            ciphertext: Some(vec![1]),
            ciphertext_base64: Some("AQ==".into()),
            ..Default::default()
        };
        assert_eq!(
            both.into_broker("r".into()).unwrap_err().reason,
            Reason::MalformedRequest
        );
        assert_eq!(
            ReencryptRequest::default()
                .into_broker("r".into())
                .unwrap_err()
                .reason,
            Reason::NoDataSupplied
        );
    }

    #[test]
    fn statuses_carry_error_info_and_retry_info() {
        let s = Status::of(
            &BrokerError::new(Reason::Overloaded, "busy")
                .with_retry_after(std::time::Duration::from_millis(200)),
            "rid",
        );
        assert_eq!(s.code, 8);
        assert_eq!(s.reason(), Some("OVERLOADED"));
        let text = serde_json::to_string(&s).unwrap();
        assert!(text.contains(r#""retryDelay":"0.200s""#), "{text}");
        assert!(text.contains(r#""request_id":"rid""#), "{text}");
        let s = Status::of(&BrokerError::new(Reason::UnknownRoute, "no"), "");
        assert_eq!((s.code, s.details.len()), (5, 1));
    }
}
