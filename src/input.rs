//! Ciphertext as callers hand it over: raw ESDK bytes, or base64 text (what
//! Amazon Connect and Genesys Cloud deliver).

use std::borrow::Cow;

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine as _;

/// The input is neither an ESDK message nor base64 of one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("input is neither raw ESDK bytes nor base64 text")]
pub struct NotCiphertext;

/// Raw bytes pass through; anything else is decoded as base64 (standard or
/// URL-safe, padded or not, surrounding whitespace ignored).
///
/// An ESDK message starts with 0x01 or 0x02, bytes no base64 alphabet contains,
/// so the two forms cannot be confused.
pub fn message_bytes(input: &[u8]) -> Result<Cow<'_, [u8]>, NotCiphertext> {
    match input.first() {
        None => Ok(Cow::Borrowed(input)),
        Some(0x01 | 0x02) => Ok(Cow::Borrowed(input)),
        Some(_) => decode_base64(input).map(Cow::Owned),
    }
}

/// Decodes base64 text in any of the common alphabets and paddings.
pub fn decode_base64(text: &[u8]) -> Result<Vec<u8>, NotCiphertext> {
    let compact: Vec<u8> = text
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    for engine in [&STANDARD, &STANDARD_NO_PAD, &URL_SAFE, &URL_SAFE_NO_PAD] {
        if let Ok(bytes) = engine.decode(&compact) {
            return Ok(bytes);
        }
    }
    Err(NotCiphertext)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_and_base64() {
        assert_eq!(&*message_bytes(&[2, 5, 6]).unwrap(), &[2, 5, 6]);
        assert_eq!(&*message_bytes(b"AgUG\n").unwrap(), &[2, 5, 6]);
        assert_eq!(&*message_bytes(b"AgUG").unwrap(), &[2, 5, 6]);
        assert!(message_bytes(b"*not base64*").is_err());
    }
}
