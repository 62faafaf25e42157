//! JSON Web Encryption (RFC 7516) for reseal's envelopes: pure and I/O-free,
//! bytes in, bytes out, on aws-lc-rs alone.
//!
//! reseal seals plaintext for consumers that cannot run an AWS Encryption
//! SDK. This crate writes those envelopes ([`seal`]) and reads them back
//! ([`parse`], [`open`]) for tests, self-tests and fuzzing.
//!
//! # Algorithms
//!
//! Content encryption is always **A256GCM**: a fresh random 256-bit CEK and
//! 96-bit IV per message, a 128-bit tag, and AAD = ASCII(BASE64URL(UTF8(JWE
//! Protected Header))) (RFC 7516 §5.1). Key management follows from the
//! recipient's key, and nothing weaker is offered or accepted:
//!
//! | recipient key | `alg` |
//! |---|---|
//! | RSA, 2048 to 8192 bits ([`Recipient::rsa_oaep_256`]) | `RSA-OAEP-256` (OAEP with SHA-256, MGF1-SHA-256) |
//! | EC P-256 or P-384 ([`Recipient::ecdh_es_a256kw`]) | `ECDH-ES+A256KW`: a fresh ephemeral key per recipient per message, Concat KDF (SHA-256, AlgorithmID `"ECDH-ES+A256KW"`, empty PartyUInfo/PartyVInfo, 256 bits), AES-256 key wrap of the CEK |
//! | 32-byte AES key ([`Recipient::a256kw`]) | `A256KW` (RFC 3394 key wrap) |
//!
//! No RSA1_5, no SHA-1 OAEP, no `dir`, no CBC-HMAC, no `zip`.
//!
//! # The context member
//!
//! The encryption context reseal puts in its ESDK envelopes (consumer id,
//! source key id, request id, source message id, propagated keys, static
//! pairs: a flat string-to-string map) goes into the **protected** header as
//! one member, **`reseal_context`**, whose value is a JSON object of strings
//! with keys in byte order. Being in the protected header, it is
//! authenticated by the AAD: changing any of it makes decryption fail. A JWE
//! with `reseal_context` anywhere else, or not an object of strings, is
//! refused by [`parse`].
//!
//! # Header layout
//!
//! Members are written in a fixed order (below), absent ones skipped, so the
//! same inputs always give the same header shape. Headers are compact ASCII
//! JSON (DEL and non-ASCII escaped as `\uXXXX`), byte-identical to Python's
//! `json.dumps(ensure_ascii=True, separators=(",", ":"))` of the parsed
//! header, which some libraries (joserfc) re-encode to compute the AAD.
//!
//! **Compact** (exactly one recipient; everything protected): `alg`, `enc`,
//! `kid`, `x5t#S256` (when set), `epk` (ECDH-ES only, `{kty, crv, x, y}`),
//! `cty` (when set), `reseal_context` (when given).
//!
//! ```text
//! BASE64URL({"alg":"ECDH-ES+A256KW","enc":"A256GCM","kid":"orders-2025",
//!            "epk":{"kty":"EC","crv":"P-256","x":"…","y":"…"},
//!            "reseal_context":{"consumer":"orders","request_id":"…"}})
//! . BASE64URL(encrypted key) . BASE64URL(IV) . BASE64URL(ciphertext) . BASE64URL(tag)
//! ```
//!
//! **General JSON** (one or more recipients, for consumers mid-rotation):
//! the shared protected header holds `alg` when every recipient has the same
//! one, then `enc`, `cty` (when set) and `reseal_context`; each recipient's
//! unprotected `header` holds `alg` (only when the recipients' algorithms
//! differ), `kid`, `x5t#S256` (when set) and `epk` (ECDH-ES); no `aad`, no
//! shared `unprotected`. A shared `alg` is protected, and libraries that
//! read `alg` from the shared header only (authlib) can open the envelope.
//!
//! ```json
//! {"protected":"BASE64URL({\"alg\":\"RSA-OAEP-256\",\"enc\":\"A256GCM\",\"reseal_context\":{…}})",
//!  "recipients":[
//!    {"header":{"kid":"orders-2024"},"encrypted_key":"…"},
//!    {"header":{"kid":"orders-2025"},"encrypted_key":"…"}],
//!  "iv":"…","ciphertext":"…","tag":"…"}
//!
//! {"protected":"BASE64URL({\"enc\":\"A256GCM\",\"reseal_context\":{…}})",
//!  "recipients":[
//!    {"header":{"alg":"RSA-OAEP-256","kid":"orders-2024"},"encrypted_key":"…"},
//!    {"header":{"alg":"ECDH-ES+A256KW","kid":"orders-2025","epk":{…}},"encrypted_key":"…"}],
//!  "iv":"…","ciphertext":"…","tag":"…"}
//! ```
//!
//! Per-recipient headers are not integrity protected in the JSON
//! serialization (RFC 7516 by design): a changed `alg` or `epk` fails
//! cryptographically, a changed `kid` or `x5t#S256` fails where the
//! [`DecryptionKey`] has the expected value set (`with_kid`,
//! `with_x5t_s256`). The compact serialization protects everything.
//!
//! [`SealOptions::serialization`] `None` picks compact for one recipient and
//! JSON for several; forcing compact with several is an error.
//!
//! # Example
//!
//! ```
//! use std::collections::BTreeMap;
//! use reseal_jwe::{open_bytes, seal, DecryptionKey, Recipient, SealOptions};
//!
//! let key = [7u8; 32];
//! let recipient = Recipient::a256kw("orders-2025", &key)?;
//! let context = BTreeMap::from([("consumer".to_owned(), "orders".to_owned())]);
//! let jwe = seal(b"4111 1111 1111 1111", &[recipient], &SealOptions {
//!     context: Some(&context),
//!     ..SealOptions::default()
//! })?;
//! let opened = open_bytes(&jwe, &DecryptionKey::aes256(&key)?.with_kid("orders-2025"))?;
//! assert_eq!(opened.plaintext.as_slice(), b"4111 1111 1111 1111");
//! assert_eq!(opened.context(), Some(context));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Hygiene
//!
//! CEKs, derived key-encryption keys and AES keys are zeroized on drop;
//! [`Opened::plaintext`] is `Zeroizing`. No `Debug` output shows key
//! material or plaintext, and no error message holds either. Opening fails
//! with one opaque [`OpenError::Decryption`] whatever went wrong
//! cryptographically.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod b64;
mod der;
mod error;
#[doc(hidden)]
pub mod fuzzing;
mod json;
mod kdf;
mod keys;
mod open;
mod parse;
mod seal;

pub use error::{FormatError, KeyError, OpenError, SealError};
pub use keys::{
    inspect_pkcs8, inspect_spki, x5t_s256, Algorithm, Curve, DecryptionKey, KeyInfo, Recipient,
    MAX_RSA_BITS, MIN_RSA_BITS,
};
pub use open::{open, open_bytes, Opened};
pub use parse::{parse, parse_with_limits, Form, Jwe, JweRecipient, Limits};
pub use seal::{seal, SealOptions, Serialization};

/// The content encryption algorithm, the only one written or accepted.
pub const ENC: &str = "A256GCM";

/// The protected header member holding reseal's encryption context.
pub const CONTEXT_HEADER: &str = "reseal_context";
