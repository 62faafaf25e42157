//! Error types. None of them ever holds plaintext, a content encryption key or
//! key material; values taken from a header that could not be used are cut to
//! a short, printable prefix.

use thiserror::Error;

/// A key that cannot be used: wrong kind, too small, unsupported curve, or
/// malformed. The messages are written to be shown as they are in a
/// validation report.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum KeyError {
    /// An RSA modulus below 2048 bits.
    #[error("RSA key is {bits} bits; at least 2048 are required")]
    RsaTooSmall {
        /// The modulus size.
        bits: usize,
    },
    /// An RSA modulus above what aws-lc accepts for encryption (8192 bits).
    #[error("RSA key is {bits} bits; at most 8192 are supported")]
    RsaTooLarge {
        /// The modulus size.
        bits: usize,
    },
    /// An elliptic curve other than P-256 and P-384.
    #[error("EC curve {curve} is not supported; use P-256 or P-384")]
    UnsupportedCurve {
        /// The curve's name ("P-521", "secp256k1") or "with OID a.b.c".
        curve: String,
    },
    /// A key type that is neither RSA nor EC (Ed25519, X25519, DSA, ...).
    #[error("{algorithm} keys are not supported; use RSA (2048 bits or more), EC P-256 or P-384, or a 32-byte AES key")]
    UnsupportedKeyType {
        /// The key algorithm's name, or "algorithm OID a.b.c".
        algorithm: String,
    },
    /// An AES key of the wrong size for A256KW.
    #[error("AES key is {len} bytes; A256KW needs exactly 32")]
    AesKeyLength {
        /// The length given.
        len: usize,
    },
    /// A well-formed key of another kind than the constructor expects (an EC
    /// key given to `rsa_oaep_256`, for example).
    #[error("expected an {expected} key, got {found}")]
    WrongKeyType {
        /// What the constructor takes.
        expected: &'static str,
        /// What was given.
        found: String,
    },
    /// Bytes that are not a well-formed key of the expected encoding.
    #[error("malformed {what}")]
    Malformed {
        /// The encoding expected ("SubjectPublicKeyInfo", "PKCS#8 private key", ...).
        what: &'static str,
    },
    /// An empty key id.
    #[error("a recipient's kid must not be empty")]
    EmptyKid,
}

/// Why [`seal`](crate::seal) could not produce a JWE.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum SealError {
    /// No recipient was given.
    #[error("a JWE needs at least one recipient")]
    NoRecipients,
    /// The compact serialization was asked for with more than one recipient.
    #[error("the compact serialization has exactly one recipient; {count} were given (use the JSON serialization)")]
    CompactNeedsOneRecipient {
        /// The number of recipients given.
        count: usize,
    },
    /// Two recipients share a `kid`; a consumer could not tell them apart.
    #[error("two recipients have the same kid {kid:?}")]
    DuplicateKid {
        /// The repeated kid.
        kid: String,
    },
    /// An empty `cty`.
    #[error("the content type must not be empty")]
    EmptyContentType,
    /// aws-lc refused an operation (random generation, key agreement, wrap,
    /// encryption); not expected with keys that passed construction.
    #[error("cryptographic operation failed: {step}")]
    Crypto {
        /// The step that failed.
        step: &'static str,
    },
}

/// Why [`parse`](crate::parse) refused its input. Parsing looks at structure
/// only; no key is involved.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum FormatError {
    /// The input is longer than the limit.
    #[error("the JWE is {len} bytes; the limit is {limit}")]
    TooLarge {
        /// The input's length.
        len: usize,
        /// The limit in force.
        limit: usize,
    },
    /// A header (decoded JSON) is longer than the limit.
    #[error("the {part} is {len} bytes; the limit is {limit}")]
    HeaderTooLarge {
        /// Which header.
        part: &'static str,
        /// Its decoded length.
        len: usize,
        /// The limit in force.
        limit: usize,
    },
    /// More recipients than the limit.
    #[error("the JWE has {count} recipients; the limit is {limit}")]
    TooManyRecipients {
        /// The count found.
        count: usize,
        /// The limit in force.
        limit: usize,
    },
    /// Neither a compact serialization (five dot-separated parts) nor a JSON
    /// object.
    #[error("not a JWE: {reason}")]
    Malformed {
        /// What is wrong.
        reason: &'static str,
    },
    /// A part is not unpadded, canonical base64url.
    #[error("the {part} is not valid base64url")]
    Base64 {
        /// Which part.
        part: &'static str,
    },
    /// A part is not the JSON it must be (or has a member twice).
    #[error("the {part} is not a valid JSON object")]
    Json {
        /// Which part.
        part: &'static str,
    },
    /// A JSON member or header parameter appears twice, within one object or
    /// across the protected, shared unprotected and per-recipient headers
    /// (RFC 7516 §4).
    #[error("header parameter {name:?} appears more than once")]
    DuplicateHeader {
        /// The parameter's name.
        name: String,
    },
    /// A JSON object (the serialization, a header, or a value inside one) has
    /// a member name twice.
    #[error("the {part} has a member name twice")]
    DuplicateMember {
        /// Which part.
        part: &'static str,
    },
    /// A required header parameter is missing.
    #[error("header parameter {name:?} is missing")]
    MissingHeader {
        /// The parameter's name.
        name: &'static str,
    },
    /// A header parameter has the wrong type or an unusable value.
    #[error("header parameter {name:?} is invalid")]
    InvalidHeader {
        /// The parameter's name.
        name: &'static str,
    },
    /// A header parameter that must be integrity protected is not.
    #[error("header parameter {name:?} must be in the protected header")]
    NotProtected {
        /// The parameter's name.
        name: &'static str,
    },
    /// A key management algorithm this crate does not accept.
    #[error("key management algorithm {alg:?} is not accepted (RSA-OAEP-256, ECDH-ES+A256KW and A256KW are)")]
    UnsupportedAlgorithm {
        /// The `alg` value (shortened).
        alg: String,
    },
    /// A content encryption algorithm this crate does not accept.
    #[error("content encryption {enc:?} is not accepted (A256GCM is)")]
    UnsupportedEncryption {
        /// The `enc` value (shortened).
        enc: String,
    },
    /// An `epk` on a curve this crate does not accept.
    #[error("ephemeral key curve {crv:?} is not accepted (P-256 and P-384 are)")]
    UnsupportedCurve {
        /// The `crv` value (shortened).
        crv: String,
    },
    /// `zip` is present; compression is refused (it leaks plaintext length
    /// information and is not needed).
    #[error("compressed JWEs (\"zip\") are not accepted")]
    Compressed,
    /// `crit` is present; this crate understands no extension, so any listed
    /// one is unknown to it (RFC 7515 §4.1.11).
    #[error("critical header extensions (\"crit\") are not understood")]
    Critical,
    /// A part has the wrong length for its algorithm (IV, tag, wrapped key).
    #[error("the {part} is {len} bytes; {expected} are expected")]
    Length {
        /// Which part.
        part: &'static str,
        /// Its length.
        len: usize,
        /// The length required.
        expected: usize,
    },
}

/// Why [`open`](crate::open) produced no plaintext.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The input could not be parsed (only from [`open_bytes`](crate::open_bytes)).
    #[error(transparent)]
    Format(#[from] FormatError),
    /// No recipient is for this key: none has its algorithm (and curve), or,
    /// where the key has a `kid` or `x5t#S256`, none carries the same. This
    /// is decided from public header values only.
    #[error("no recipient matches the decryption key")]
    NoMatchingRecipient,
    /// The key did not open the JWE. One error for every cause (wrong key,
    /// tampered header, encrypted key, IV, ciphertext or tag) so that nothing
    /// can be learnt from which step failed.
    #[error("decryption failed")]
    Decryption,
}

/// A header value shortened and made printable for an error message.
pub(crate) fn shorten(value: &str) -> String {
    const MAX: usize = 32;
    let mut out: String = value
        .chars()
        .take(MAX)
        .map(|c| if c.is_control() { '\u{fffd}' } else { c })
        .collect();
    if value.chars().count() > MAX {
        out.push('…');
    }
    out
}
