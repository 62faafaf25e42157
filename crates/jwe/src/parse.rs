//! Parsing the compact and JSON (general and flattened) serializations into
//! a [`Jwe`], bounded and strict: structure only, no key involved.

use core::fmt;
use std::collections::BTreeMap;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use crate::error::{shorten, FormatError};
use crate::keys::{Algorithm, Curve};
use crate::seal::WRAPPED_CEK_LEN;
use crate::{b64, CONTEXT_HEADER, ENC};

/// Bounds [`parse_with_limits`] enforces before and while parsing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest input, in bytes.
    pub max_bytes: usize,
    /// Most recipients in a JSON serialization.
    pub max_recipients: usize,
    /// Longest header: the decoded protected header, and each unprotected
    /// header as JSON text.
    pub max_header_bytes: usize,
}

impl Default for Limits {
    /// 1 MiB in, 16 recipients, 16 KiB per header.
    fn default() -> Self {
        Self {
            max_bytes: 1 << 20,
            max_recipients: 16,
            max_header_bytes: 16 << 10,
        }
    }
}

/// The serialization a [`Jwe`] was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Form {
    /// Compact (five base64url parts).
    Compact,
    /// General JSON (a `recipients` array).
    GeneralJson,
    /// Flattened JSON (one recipient's `header` and `encrypted_key` at the
    /// top level).
    FlattenedJson,
}

/// An ECDH-ES ephemeral public key from an `epk` header parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Ephemeral {
    pub(crate) curve: Curve,
    /// Uncompressed SEC1 point, `04 || x || y`.
    pub(crate) point: Vec<u8>,
}

/// One recipient of a parsed JWE.
#[derive(Clone)]
pub struct JweRecipient {
    header: Map<String, Value>,
    alg: Algorithm,
    kid: Option<String>,
    x5t_s256: Option<String>,
    pub(crate) epk: Option<Ephemeral>,
    pub(crate) apu: Vec<u8>,
    pub(crate) apv: Vec<u8>,
    pub(crate) encrypted_key: Vec<u8>,
}

impl JweRecipient {
    /// The key management algorithm.
    #[must_use]
    pub fn alg(&self) -> Algorithm {
        self.alg
    }

    /// The `kid`, from whichever header holds it.
    #[must_use]
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The `x5t#S256`, from whichever header holds it.
    #[must_use]
    pub fn x5t_s256(&self) -> Option<&str> {
        self.x5t_s256.as_deref()
    }

    /// The per-recipient (unprotected) header; empty in the compact
    /// serialization.
    #[must_use]
    pub fn header(&self) -> &Map<String, Value> {
        &self.header
    }
}

impl fmt::Debug for JweRecipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JweRecipient")
            .field("alg", &self.alg.name())
            .field("kid", &self.kid)
            .field("x5t#S256", &self.x5t_s256)
            .field("encrypted_key_len", &self.encrypted_key.len())
            .finish_non_exhaustive()
    }
}

/// A parsed JWE: headers checked, every part decoded, nothing decrypted.
#[derive(Clone)]
pub struct Jwe {
    form: Form,
    pub(crate) protected_b64: String,
    protected: Map<String, Value>,
    unprotected: Map<String, Value>,
    pub(crate) aad_b64: Option<String>,
    pub(crate) recipients: Vec<JweRecipient>,
    pub(crate) iv: [u8; 12],
    pub(crate) ciphertext: Vec<u8>,
    pub(crate) tag: [u8; 16],
}

impl Jwe {
    /// The serialization it was read from.
    #[must_use]
    pub fn form(&self) -> Form {
        self.form
    }

    /// The protected header (integrity protected by the AAD).
    #[must_use]
    pub fn protected_header(&self) -> &Map<String, Value> {
        &self.protected
    }

    /// The shared unprotected header (JSON only; empty otherwise).
    #[must_use]
    pub fn shared_unprotected_header(&self) -> &Map<String, Value> {
        &self.unprotected
    }

    /// The recipients, in order.
    #[must_use]
    pub fn recipients(&self) -> &[JweRecipient] {
        &self.recipients
    }

    /// The `reseal_context` member of the protected header, when present.
    #[must_use]
    pub fn context(&self) -> Option<BTreeMap<String, String>> {
        context_of(&self.protected)
    }
}

impl fmt::Debug for Jwe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Jwe")
            .field("form", &self.form)
            .field("protected", &self.protected)
            .field("recipients", &self.recipients)
            .field("ciphertext_len", &self.ciphertext.len())
            .finish_non_exhaustive()
    }
}

/// The `reseal_context` member of a header as a map, when present and well
/// formed (parsing has already refused any other shape).
pub(crate) fn context_of(header: &Map<String, Value>) -> Option<BTreeMap<String, String>> {
    let Value::Object(map) = header.get(CONTEXT_HEADER)? else {
        return None;
    };
    map.iter()
        .map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_owned())))
        .collect()
}

/// Parses a JWE in any serialization with the default [`Limits`].
///
/// # Errors
/// [`FormatError`] for anything that is not a well-formed JWE this crate
/// could open: see [`parse_with_limits`].
pub fn parse(bytes: &[u8]) -> Result<Jwe, FormatError> {
    parse_with_limits(bytes, &Limits::default())
}

/// Parses a JWE: the compact serialization, or a JSON object (general or
/// flattened). Leading and trailing ASCII whitespace is ignored.
///
/// Refused: input, headers or recipient lists over `limits`; base64url that
/// is padded or not canonical; JSON with a member twice; a header parameter
/// present in more than one of the protected, shared unprotected and
/// per-recipient headers (RFC 7516 §4); `zip`; `crit`; `reseal_context`
/// outside the protected header or not an object of strings; an `alg` other
/// than RSA-OAEP-256, ECDH-ES+A256KW and A256KW; an `enc` other than
/// A256GCM; an `epk` that is not a public P-256 or P-384 JWK; IVs, tags and
/// wrapped keys of the wrong length.
///
/// # Errors
/// The [`FormatError`] naming the first problem found.
pub fn parse_with_limits(bytes: &[u8], limits: &Limits) -> Result<Jwe, FormatError> {
    if bytes.len() > limits.max_bytes {
        return Err(FormatError::TooLarge {
            len: bytes.len(),
            limit: limits.max_bytes,
        });
    }
    let bytes = bytes.trim_ascii();
    if bytes.first() == Some(&b'{') {
        parse_json(bytes, limits)
    } else {
        parse_compact(bytes, limits)
    }
}

const MALFORMED_COMPACT: FormatError = FormatError::Malformed {
    reason: "neither five dot-separated base64url parts nor a JSON object",
};

fn parse_compact(bytes: &[u8], limits: &Limits) -> Result<Jwe, FormatError> {
    let text = core::str::from_utf8(bytes).map_err(|_| MALFORMED_COMPACT)?;
    let mut parts = text.split('.');
    let (Some(protected), Some(key), Some(iv), Some(ciphertext), Some(tag), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(MALFORMED_COMPACT);
    };
    if protected.is_empty() {
        return Err(FormatError::MissingHeader { name: "alg" });
    }
    let protected_map = protected_header(protected, limits)?;
    let encrypted_key = b64::decode(key, "encrypted key")?;
    let recipient = recipient(&protected_map, &Map::new(), Map::new(), encrypted_key)?;
    Ok(Jwe {
        form: Form::Compact,
        protected_b64: protected.to_owned(),
        protected: protected_map,
        unprotected: Map::new(),
        aad_b64: None,
        recipients: vec![recipient],
        iv: fixed(iv, "IV")?,
        ciphertext: b64::decode(ciphertext, "ciphertext")?,
        tag: fixed(tag, "authentication tag")?,
    })
}

fn parse_json(bytes: &[u8], limits: &Limits) -> Result<Jwe, FormatError> {
    let top = strict_object(bytes, "JSON serialization")?;
    let string = |name: &'static str| -> Result<Option<&str>, FormatError> {
        match top.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(FormatError::Malformed {
                reason: "a JSON serialization member has the wrong type",
            }),
        }
    };
    let object =
        |value: Option<&Value>, part: &'static str| -> Result<Map<String, Value>, FormatError> {
            match value {
                None => Ok(Map::new()),
                Some(Value::Object(m)) => {
                    let len = serde_json::to_string(m).map_or(usize::MAX, |s| s.len());
                    if len > limits.max_header_bytes {
                        return Err(FormatError::HeaderTooLarge {
                            part,
                            len,
                            limit: limits.max_header_bytes,
                        });
                    }
                    Ok(m.clone())
                }
                Some(_) => Err(FormatError::Json { part }),
            }
        };

    let protected_b64 = string("protected")?.unwrap_or_default();
    let protected = if protected_b64.is_empty() {
        Map::new()
    } else {
        protected_header(protected_b64, limits)?
    };
    let unprotected = object(top.get("unprotected"), "shared unprotected header")?;
    for name in unprotected.keys() {
        if protected.contains_key(name) {
            return Err(FormatError::DuplicateHeader {
                name: shorten(name),
            });
        }
    }

    let flattened = top.contains_key("header") || top.contains_key("encrypted_key");
    let (form, entries) = match top.get("recipients") {
        Some(_) if flattened => {
            return Err(FormatError::Malformed {
                reason: "both \"recipients\" and a flattened recipient",
            })
        }
        Some(Value::Array(list)) => {
            if list.len() > limits.max_recipients {
                return Err(FormatError::TooManyRecipients {
                    count: list.len(),
                    limit: limits.max_recipients,
                });
            }
            if list.is_empty() {
                return Err(FormatError::Malformed {
                    reason: "\"recipients\" is empty",
                });
            }
            let mut entries = Vec::with_capacity(list.len());
            for entry in list {
                let Value::Object(entry) = entry else {
                    return Err(FormatError::Json { part: "recipient" });
                };
                entries.push((entry.get("header"), entry.get("encrypted_key")));
            }
            (Form::GeneralJson, entries)
        }
        Some(_) => return Err(FormatError::Json { part: "recipients" }),
        None => (
            Form::FlattenedJson,
            vec![(top.get("header"), top.get("encrypted_key"))],
        ),
    };
    let mut recipients = Vec::with_capacity(entries.len());
    for (header, encrypted_key) in entries {
        let header = object(header, "per-recipient header")?;
        let encrypted_key = match encrypted_key {
            Some(Value::String(s)) => b64::decode(s, "encrypted key")?,
            Some(_) => return Err(FormatError::Json { part: "recipient" }),
            None => Vec::new(),
        };
        recipients.push(recipient(&protected, &unprotected, header, encrypted_key)?);
    }

    let required = |name: &'static str| {
        string(name)?.ok_or(FormatError::Malformed {
            reason: "\"iv\", \"ciphertext\" or \"tag\" is missing",
        })
    };
    let aad_b64 = string("aad")?.map(str::to_owned);
    if let Some(aad) = &aad_b64 {
        b64::decode(aad, "aad")?;
    }
    Ok(Jwe {
        form,
        protected_b64: protected_b64.to_owned(),
        protected,
        unprotected,
        aad_b64,
        recipients,
        iv: fixed(required("iv")?, "IV")?,
        ciphertext: b64::decode(required("ciphertext")?, "ciphertext")?,
        tag: fixed(required("tag")?, "authentication tag")?,
    })
}

fn fixed<const N: usize>(text: &str, part: &'static str) -> Result<[u8; N], FormatError> {
    let bytes = b64::decode(text, part)?;
    bytes.try_into().map_err(|b: Vec<u8>| FormatError::Length {
        part,
        len: b.len(),
        expected: N,
    })
}

fn protected_header(b64_text: &str, limits: &Limits) -> Result<Map<String, Value>, FormatError> {
    // Decoded size is about 3/4 of the text; refuse before decoding.
    if b64_text.len() / 4 * 3 > limits.max_header_bytes {
        return Err(FormatError::HeaderTooLarge {
            part: "protected header",
            len: b64_text.len() / 4 * 3,
            limit: limits.max_header_bytes,
        });
    }
    let json = b64::decode(b64_text, "protected header")?;
    if json.len() > limits.max_header_bytes {
        return Err(FormatError::HeaderTooLarge {
            part: "protected header",
            len: json.len(),
            limit: limits.max_header_bytes,
        });
    }
    strict_object(&json, "protected header")
}

/// The JOSE header of one recipient: the union of the three headers, which
/// must not share a name; then every parameter this crate acts on.
fn recipient(
    protected: &Map<String, Value>,
    unprotected: &Map<String, Value>,
    header: Map<String, Value>,
    encrypted_key: Vec<u8>,
) -> Result<JweRecipient, FormatError> {
    for name in header.keys() {
        if protected.contains_key(name) || unprotected.contains_key(name) {
            return Err(FormatError::DuplicateHeader {
                name: shorten(name),
            });
        }
    }
    let get = |name: &str| {
        protected
            .get(name)
            .or_else(|| unprotected.get(name))
            .or_else(|| header.get(name))
    };
    let string = |name: &'static str| -> Result<Option<&str>, FormatError> {
        match get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(FormatError::InvalidHeader { name }),
        }
    };

    if get("zip").is_some() {
        return Err(FormatError::Compressed);
    }
    if get("crit").is_some() {
        return Err(FormatError::Critical);
    }
    if unprotected.contains_key(CONTEXT_HEADER) || header.contains_key(CONTEXT_HEADER) {
        return Err(FormatError::NotProtected {
            name: CONTEXT_HEADER,
        });
    }
    if protected.contains_key(CONTEXT_HEADER) && context_of(protected).is_none() {
        return Err(FormatError::InvalidHeader {
            name: CONTEXT_HEADER,
        });
    }
    match string("enc")? {
        None => return Err(FormatError::MissingHeader { name: "enc" }),
        Some(ENC) => {}
        Some(other) => {
            return Err(FormatError::UnsupportedEncryption {
                enc: shorten(other),
            })
        }
    }
    let alg = match string("alg")? {
        None => return Err(FormatError::MissingHeader { name: "alg" }),
        Some(name) => Algorithm::from_name(name)
            .ok_or_else(|| FormatError::UnsupportedAlgorithm { alg: shorten(name) })?,
    };
    let kid = string("kid")?.map(str::to_owned);
    let x5t_s256 = string("x5t#S256")?.map(str::to_owned);
    string("cty")?;

    let (epk, apu, apv) = if alg == Algorithm::EcdhEsA256Kw {
        let epk = get("epk").ok_or(FormatError::MissingHeader { name: "epk" })?;
        let party = |name: &'static str| -> Result<Vec<u8>, FormatError> {
            string(name)?.map_or(Ok(Vec::new()), |s| b64::decode(s, name))
        };
        (Some(ephemeral(epk)?), party("apu")?, party("apv")?)
    } else {
        (None, Vec::new(), Vec::new())
    };

    match alg {
        Algorithm::A256Kw | Algorithm::EcdhEsA256Kw if encrypted_key.len() != WRAPPED_CEK_LEN => {
            return Err(FormatError::Length {
                part: "encrypted key",
                len: encrypted_key.len(),
                expected: WRAPPED_CEK_LEN,
            })
        }
        _ => {}
    }

    Ok(JweRecipient {
        header,
        alg,
        kid,
        x5t_s256,
        epk,
        apu,
        apv,
        encrypted_key,
    })
}

/// An `epk`: a public EC JWK on P-256 or P-384 with coordinates of the
/// curve's length. A `d` member (a private key in a header) is refused.
fn ephemeral(epk: &Value) -> Result<Ephemeral, FormatError> {
    const INVALID: FormatError = FormatError::InvalidHeader { name: "epk" };
    let Value::Object(jwk) = epk else {
        return Err(INVALID);
    };
    let member = |name: &str| jwk.get(name).and_then(Value::as_str).ok_or(INVALID);
    if member("kty")? != "EC" || jwk.contains_key("d") {
        return Err(INVALID);
    }
    let crv = member("crv")?;
    let curve =
        Curve::from_name(crv).ok_or_else(|| FormatError::UnsupportedCurve { crv: shorten(crv) })?;
    let x = b64::decode(member("x")?, "epk x").map_err(|_| INVALID)?;
    let y = b64::decode(member("y")?, "epk y").map_err(|_| INVALID)?;
    let n = curve.coordinate_len();
    if x.len() != n || y.len() != n {
        return Err(INVALID);
    }
    let mut point = Vec::with_capacity(1 + 2 * n);
    point.push(0x04);
    point.extend_from_slice(&x);
    point.extend_from_slice(&y);
    Ok(Ephemeral { curve, point })
}

/// Marks the error the strict visitor raises for a repeated member.
const DUPLICATE: &str = "reseal-jwe: duplicate member";

fn strict_object(json: &[u8], part: &'static str) -> Result<Map<String, Value>, FormatError> {
    match serde_json::from_slice::<Strict>(json) {
        Ok(Strict(Value::Object(map))) => Ok(map),
        Ok(_) => Err(FormatError::Json { part }),
        Err(e) if e.to_string().starts_with(DUPLICATE) => {
            Err(FormatError::DuplicateMember { part })
        }
        Err(_) => Err(FormatError::Json { part }),
    }
}

/// A JSON value whose objects have no repeated member name at any depth
/// (serde_json's own `Value` keeps the last one silently).
struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Strict;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Strict, E> {
        Ok(Strict(Value::Bool(v)))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Strict, E> {
        Ok(Strict(Value::Number(v.into())))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Strict, E> {
        Ok(Strict(Value::Number(v.into())))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Strict, E> {
        Ok(Strict(
            Number::from_f64(v).map_or(Value::Null, Value::Number),
        ))
    }

    fn visit_str<E>(self, v: &str) -> Result<Strict, E> {
        Ok(Strict(Value::String(v.to_owned())))
    }

    fn visit_string<E>(self, v: String) -> Result<Strict, E> {
        Ok(Strict(Value::String(v)))
    }

    fn visit_unit<E>(self) -> Result<Strict, E> {
        Ok(Strict(Value::Null))
    }

    fn visit_none<E>(self) -> Result<Strict, E> {
        Ok(Strict(Value::Null))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Strict, A::Error> {
        let mut out = Vec::new();
        while let Some(Strict(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(Strict(Value::Array(out)))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Strict, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                return Err(de::Error::custom(DUPLICATE));
            }
            let Strict(value) = map.next_value()?;
            out.insert(key, value);
        }
        Ok(Strict(Value::Object(out)))
    }
}
