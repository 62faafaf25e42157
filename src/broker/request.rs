//! What a door hands the broker and gets back: one re-encryption request,
//! already decoded from its wire form, and its per-consumer results.

use crate::esdk::{AlgorithmSuite, EncryptionContext};

use super::{BrokerError, Reason};

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
    /// Assigned by the door when the caller sent none.
    pub request_id: String,
}

/// Who is calling, as the door established it (the client certificate when
/// mTLS is on).
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

/// Raw bytes, or base64 text (either field), bounded before and after decoding.
pub(super) fn decode_input(input: CiphertextInput, max: usize) -> Result<Vec<u8>, BrokerError> {
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

/// The request id: the first of the caller's candidates (a request field, a
/// header) that is short printable ASCII, else a new random one. A random
/// number generator that fails is an error, never an id of zeros.
pub fn request_id(candidates: &[Option<&str>]) -> Result<String, BrokerError> {
    request_id_with(candidates, |bytes| aws_lc_rs::rand::fill(bytes).is_ok())
}

fn request_id_with(
    candidates: &[Option<&str>],
    fill: impl FnOnce(&mut [u8]) -> bool,
) -> Result<String, BrokerError> {
    let usable =
        |s: &str| !s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_graphic());
    if let Some(given) = candidates.iter().flatten().find(|s| usable(s)) {
        return Ok((*given).to_owned());
    }
    let mut bytes = [0u8; 12];
    if !fill(&mut bytes) {
        return Err(BrokerError::internal(
            "the random number generator failed; no request id",
        ));
    }
    Ok(hex::encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_come_from_the_caller_or_the_random_generator() {
        assert_eq!(request_id(&[Some("abc-1")]).unwrap(), "abc-1");
        assert_eq!(request_id(&[Some(""), Some("hdr")]).unwrap(), "hdr");
        assert_eq!(request_id(&[Some("bad id"), None]).unwrap().len(), 24);
        let long = "x".repeat(129);
        assert_ne!(request_id(&[Some(long.as_str())]).unwrap(), long);
    }

    #[test]
    fn a_failing_random_generator_is_an_error_not_zeros() {
        let err = request_id_with(&[None], |_| false).unwrap_err();
        assert_eq!(err.reason, Reason::Internal);
        assert_eq!(
            request_id_with(&[None], |b| {
                b.fill(7);
                true
            })
            .unwrap(),
            "07".repeat(12)
        );
    }
}
