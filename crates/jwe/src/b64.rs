//! Unpadded base64url (RFC 7515 §2), strict on decode: no padding, no
//! whitespace, no non-zero trailing bits, so every text has one decoding and
//! every byte string one text.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use crate::error::FormatError;

pub(crate) fn encode(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub(crate) fn decode(text: &str, part: &'static str) -> Result<Vec<u8>, FormatError> {
    URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| FormatError::Base64 { part })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict() {
        assert_eq!(decode("AQ", "x").unwrap(), [1]);
        assert!(decode("AQ==", "x").is_err());
        assert!(decode("AR", "x").is_err(), "non-zero trailing bits");
        assert!(decode("A Q", "x").is_err());
        assert!(decode("+/", "x").is_err(), "standard alphabet");
        assert_eq!(encode(&[0xfb, 0xff]), "-_8");
    }
}
