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

impl ReencryptRequest {
    /// From a wire form's fields, where an empty string means "not set" (the
    /// proto3 convention every door's form follows).
    #[allow(clippy::too_many_arguments)]
    pub fn from_wire(
        ciphertext: CiphertextInput,
        consumers: Vec<String>,
        route: String,
        source_key_hint: String,
        expected_context: impl IntoIterator<Item = (String, String)>,
        all_or_nothing: bool,
        request_id: String,
    ) -> Self {
        ReencryptRequest {
            ciphertext,
            consumers,
            route: (!route.is_empty()).then_some(route),
            source_key_hint: (!source_key_hint.is_empty()).then_some(source_key_hint),
            expected_context: expected_context.into_iter().collect(),
            all_or_nothing,
            request_id,
        }
    }
}

/// The request id of a batch's item: its own, else the batch's with the
/// item's index (`RID-3`).
pub fn batch_item_id(batch: &str, index: usize, own: &str) -> Result<String, BrokerError> {
    if own.is_empty() {
        Ok(format!("{batch}-{index}"))
    } else {
        request_id(&[Some(own)])
    }
}

/// Who is calling, as the door saw it: what the connection proved and what
/// the request presented. The broker authenticates it against the registry.
#[derive(Clone, Default)]
pub struct Caller {
    /// Identity from a verified client certificate (mTLS).
    pub identity: Option<String>,
    pub peer: Option<String>,
    /// The connection the call came on (unique in the process), which keys
    /// fair sharing for callers the broker knows no name for.
    pub connection: Option<u64>,
    /// A bearer token or Basic credentials the request carried.
    pub credential: Option<Credential>,
    /// Whether the connection is encrypted (TLS), or the door itself is not
    /// reachable over a network (the Lambda runtime).
    pub secure: bool,
    /// Set by a door that authenticates its callers itself (the Lambda
    /// runtime: IAM decides who may invoke it) to the registry caller it acts as.
    pub acting_as: Option<String>,
}

impl std::fmt::Debug for Caller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Caller")
            .field("identity", &self.identity)
            .field("peer", &self.peer)
            .field("connection", &self.connection)
            .field(
                "credential",
                &self.credential.as_ref().map(Credential::kind),
            )
            .field("secure", &self.secure)
            .field("acting_as", &self.acting_as)
            .finish()
    }
}

/// Credentials a request carried. Zeroized on drop; never printed.
#[derive(Clone)]
pub enum Credential {
    /// `Authorization: Bearer TOKEN`.
    Bearer(zeroize::Zeroizing<String>),
    /// `Authorization: Basic base64(user:password)`.
    Basic {
        username: String,
        password: zeroize::Zeroizing<String>,
    },
}

impl Credential {
    fn kind(&self) -> &'static str {
        match self {
            Credential::Bearer(_) => "bearer",
            Credential::Basic { .. } => "basic",
        }
    }

    /// Parses an `Authorization` header value (`Bearer ...` or `Basic ...`).
    /// `Ok(None)` for other schemes, which the broker does not know.
    pub fn from_authorization(value: &str) -> Result<Option<Credential>, BrokerError> {
        let malformed = |what: &str| {
            BrokerError::new(
                Reason::Unauthenticated,
                format!("the Authorization header is not valid {what}"),
            )
        };
        let (scheme, rest) = value.trim().split_once(' ').unwrap_or((value.trim(), ""));
        let rest = rest.trim();
        if scheme.eq_ignore_ascii_case("bearer") {
            if rest.is_empty() {
                return Err(malformed("Bearer credentials"));
            }
            return Ok(Some(Credential::Bearer(zeroize::Zeroizing::new(
                rest.to_owned(),
            ))));
        }
        if scheme.eq_ignore_ascii_case("basic") {
            use base64::Engine as _;
            let decoded = zeroize::Zeroizing::new(
                base64::engine::general_purpose::STANDARD
                    .decode(rest)
                    .map_err(|_| malformed("Basic credentials"))?,
            );
            let text = std::str::from_utf8(&decoded).map_err(|_| malformed("Basic credentials"))?;
            let (user, password) = text
                .split_once(':')
                .ok_or_else(|| malformed("Basic credentials"))?;
            return Ok(Some(Credential::Basic {
                username: user.to_owned(),
                password: zeroize::Zeroizing::new(password.to_owned()),
            }));
        }
        Ok(None)
    }
}

/// An envelope for one consumer.
#[derive(Debug, Clone)]
pub struct Envelope {
    /// The envelope's bytes: an ESDK message, or a JWE's serialization
    /// (compact: ASCII `a.b.c.d.e`; JSON: a UTF-8 JSON object).
    pub ciphertext: Vec<u8>,
    /// The consumer keys it is sealed for (ESDK: an EDK each; JWE: a
    /// recipient each, its `kid`).
    pub key_ids: Vec<String>,
    /// Which format `ciphertext` is in: every door reports it.
    pub format: EnvelopeFormat,
}

impl Envelope {
    /// The ESDK algorithm suite; `None` for a JWE (always A256GCM).
    pub fn suite(&self) -> Option<AlgorithmSuite> {
        match self.format {
            EnvelopeFormat::Esdk(suite) => Some(suite),
            EnvelopeFormat::JweCompact | EnvelopeFormat::JweJson => None,
        }
    }
}

/// The format of one consumer's envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnvelopeFormat {
    /// An AWS Encryption SDK message in this suite.
    Esdk(AlgorithmSuite),
    /// A JWE in the compact serialization (RFC 7516 §7.1): one recipient.
    JweCompact,
    /// A JWE in the general JSON serialization (RFC 7516 §7.2.1): one
    /// recipient per key.
    JweJson,
}

impl EnvelopeFormat {
    /// A stable name for wire forms that carry the format as text:
    /// `esdk`, `jwe-compact`, `jwe-json`.
    pub fn as_str(self) -> &'static str {
        match self {
            EnvelopeFormat::Esdk(_) => "esdk",
            EnvelopeFormat::JweCompact => "jwe-compact",
            EnvelopeFormat::JweJson => "jwe-json",
        }
    }
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

/// The raw field holds a binary ESDK message (it starts with its version
/// byte, 0x01 or 0x02, which no base64 alphabet contains); the base64 field
/// holds text. Base64 text in the raw field is refused (an input that could be
/// read two ways is a parser ambiguity) unless `limits.allow_base64_in_ciphertext`
/// says otherwise. Bounded before and after decoding.
pub(super) fn decode_input(
    input: CiphertextInput,
    max: usize,
    allow_base64_in_raw: bool,
) -> Result<Vec<u8>, BrokerError> {
    let too_big = |n: usize| {
        BrokerError::new(
            Reason::MaximumDataSizeExceeded,
            format!("the ciphertext is {n} bytes; at most {max} are accepted"),
        )
    };
    let bytes = match input {
        CiphertextInput::Bytes(b) => match b.first() {
            None | Some(0x01 | 0x02) => b,
            Some(_) if allow_base64_in_raw => {
                if b.len() > max.saturating_mul(4) / 3 + 4 {
                    return Err(too_big(b.len()));
                }
                crate::input::decode_base64(&b).map_err(|_| {
                    BrokerError::new(
                        Reason::MalformedCiphertext,
                        "the ciphertext is neither an ESDK message nor base64 text",
                    )
                })?
            }
            Some(_) => {
                let looks_like_text =
                    crate::input::decode_base64(&b[..b.len().min(4096) / 4 * 4]).is_ok();
                return Err(BrokerError::new(
                    Reason::MalformedCiphertext,
                    if looks_like_text {
                        "`ciphertext` takes a binary ESDK message, and this looks like base64 text: send it in `ciphertext_base64`"
                    } else {
                        "`ciphertext` is not an ESDK message (it does not start with a message version byte); base64 text goes in `ciphertext_base64`"
                    },
                ));
            }
        },
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
    fn authorization_headers_parse_and_never_print_their_secret() {
        match Credential::from_authorization("Bearer abc.def").unwrap() {
            Some(Credential::Bearer(t)) => assert_eq!(t.as_str(), "abc.def"),
            _ => panic!("not a bearer token"),
        }
        // "alice:s3cret:x" (a colon in the password is allowed).
        match Credential::from_authorization("basic YWxpY2U6czNjcmV0Ong=").unwrap() {
            Some(Credential::Basic { username, password }) => {
                assert_eq!(
                    (username.as_str(), password.as_str()),
                    ("alice", "s3cret:x")
                )
            }
            _ => panic!("not basic"),
        }
        assert!(Credential::from_authorization("Negotiate xyz")
            .unwrap()
            .is_none());
        for bad in ["Bearer", "Basic !!!", "Basic YWxpY2U="] {
            let e = Credential::from_authorization(bad).err().unwrap();
            assert_eq!(e.reason, Reason::Unauthenticated, "{bad}");
        }
        let caller = Caller {
            credential: Credential::from_authorization("Bearer topsecret-token").unwrap(),
            ..Caller::default()
        };
        assert!(!format!("{caller:?}").contains("topsecret"));
    }

    #[test]
    fn the_raw_field_takes_binary_messages_and_base64_only_when_allowed() {
        let raw = vec![0x02, 0x05, 0x78];
        assert_eq!(
            decode_input(CiphertextInput::Bytes(raw.clone()), 100, false).unwrap(),
            raw
        );
        let text = b"AgV4".to_vec();
        let e = decode_input(CiphertextInput::Bytes(text.clone()), 100, false).unwrap_err();
        assert_eq!(e.reason, Reason::MalformedCiphertext);
        assert!(e.message.contains("ciphertext_base64"), "{}", e.message);
        let e = decode_input(CiphertextInput::Bytes(b"*junk*".to_vec()), 100, false).unwrap_err();
        assert_eq!(e.reason, Reason::MalformedCiphertext);
        assert_eq!(
            decode_input(CiphertextInput::Bytes(text), 100, true).unwrap(),
            raw
        );
        assert_eq!(
            decode_input(CiphertextInput::Base64("AgV4".into()), 100, false).unwrap(),
            raw
        );
        let e = decode_input(CiphertextInput::Bytes(Vec::new()), 100, false).unwrap_err();
        assert_eq!(e.reason, Reason::NoDataSupplied);
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
