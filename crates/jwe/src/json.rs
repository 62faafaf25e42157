//! Writing the few JSON shapes a sealed JWE has, straight into the output
//! buffer, and base64url straight after it: no serializer, no intermediate
//! strings. A seal's framing is otherwise a fair share of its cost next to a
//! fast key wrap (BENCHMARKS.md, "JWE consumers").
//!
//! Strings are written as Python's `json.dumps(ensure_ascii=True)` writes
//! them: `\"`, `\\`, `\b`, `\f`, `\n`, `\r`, `\t`, other control characters
//! as `\u00xx`, DEL and every non-ASCII character as lowercase `\uXXXX`
//! UTF-16 units, everything else as is. Headers are therefore ASCII and
//! byte-identical to that re-encoding of their parsed form, which joserfc
//! computes a JSON JWE's AAD from instead of the received text (RFC 7516
//! §5.2 step 14 says the received text): with raw UTF-8 in `reseal_context`
//! it could not open our JSON envelopes.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use crate::error::SealError;
use crate::ENC;

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Appends `s` as a JSON string (quotes included), escaped as described in
/// the module documentation.
pub(crate) fn push_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let (mut i, mut plain_from) = (0, 0);
    while let Some(&b) = bytes.get(i) {
        if (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\' {
            i += 1;
            continue;
        }
        out.extend_from_slice(bytes.get(plain_from..i).unwrap_or_default());
        let short: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            0x08 => b"\\b",
            0x0c => b"\\f",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            _ => b"",
        };
        if short.is_empty() {
            // A control character, DEL, or the first byte of a non-ASCII
            // character (`i` is always on a character boundary).
            let c = s
                .get(i..)
                .and_then(|rest| rest.chars().next())
                .unwrap_or('\u{fffd}');
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.extend_from_slice(b"\\u");
                for shift in [12, 8, 4, 0] {
                    out.push(HEX[usize::from((*unit >> shift) & 0xf)]);
                }
            }
            i += c.len_utf8().max(1);
        } else {
            out.extend_from_slice(short);
            i += 1;
        }
        plain_from = i;
    }
    out.extend_from_slice(bytes.get(plain_from..).unwrap_or_default());
    out.push(b'"');
}

/// Appends `"name":` and the string `value`, preceded by a comma unless
/// `first`.
pub(crate) fn push_member(out: &mut Vec<u8>, first: bool, name: &str, value: &str) {
    if !first {
        out.push(b',');
    }
    push_str(out, name);
    out.push(b':');
    push_str(out, value);
}

/// Appends a JSON object of string members (`{}` when empty), in the
/// iterator's order.
pub(crate) fn push_object<'a>(
    out: &mut Vec<u8>,
    members: impl IntoIterator<Item = (&'a String, &'a String)>,
) {
    out.push(b'{');
    for (i, (name, value)) in members.into_iter().enumerate() {
        push_member(out, i == 0, name, value);
    }
    out.push(b'}');
}

/// The length of the unpadded base64url of `len` bytes.
pub(crate) fn b64_len(len: usize) -> usize {
    len / 3 * 4 + [0, 2, 3][len % 3]
}

/// Appends the unpadded base64url of `bytes`.
pub(crate) fn push_b64(out: &mut Vec<u8>, bytes: &[u8]) -> Result<(), SealError> {
    let start = out.len();
    out.resize(start + b64_len(bytes.len()), 0);
    let written = URL_SAFE_NO_PAD
        .encode_slice(bytes, &mut out[start..])
        .map_err(|_| SealError::Crypto { step: "base64url" })?;
    out.truncate(start + written);
    Ok(())
}

/// The parts of a recipient's headers that depend on the recipient alone,
/// written once when the recipient is made (once per consumer key and
/// registry version in reseal) instead of once per message.
#[derive(Clone)]
pub(crate) struct RecipientHeads {
    /// The compact protected header up to the per-message members,
    /// `{"alg":…,"enc":"A256GCM","kid":…[,"x5t#S256":…]`, as the base64url
    /// of its longest prefix whose length is a multiple of three (a
    /// message's protected header text starts with it)…
    pub(crate) compact_b64: Vec<u8>,
    /// …and the zero to two bytes after that prefix, encoded with the
    /// per-message members.
    pub(crate) compact_rest: Vec<u8>,
    /// A JSON recipient's unprotected header up to `epk`, without `alg`:
    /// `{"kid":…[,"x5t#S256":…]`.
    pub(crate) json: Vec<u8>,
}

impl RecipientHeads {
    pub(crate) fn new(alg: &str, kid: &str, x5t_s256: Option<&str>) -> Self {
        let write = |compact: bool| {
            let mut out = Vec::with_capacity(64 + kid.len());
            if compact {
                push_member(&mut out, true, "alg", alg);
                push_member(&mut out, false, "enc", ENC);
            }
            push_member(&mut out, !compact, "kid", kid);
            if let Some(x5t) = x5t_s256 {
                push_member(&mut out, false, "x5t#S256", x5t);
            }
            out.insert(0, b'{');
            out
        };
        let mut compact_rest = write(true);
        let mut compact_b64 = Vec::with_capacity(b64_len(compact_rest.len()));
        let whole = compact_rest.len() / 3 * 3;
        // `push_b64` sizes its own output, so this cannot fail; if it did,
        // every byte would stay in the per-message part.
        if push_b64(&mut compact_b64, &compact_rest[..whole]).is_ok() {
            compact_rest.drain(..whole);
        } else {
            compact_b64.clear();
        }
        Self {
            compact_b64,
            compact_rest,
            json: write(false),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    /// The reference: serde_json's compact output with DEL and non-ASCII
    /// escaped as UTF-16 units, as Python escapes them.
    struct AsciiFormatter;

    impl serde_json::ser::Formatter for AsciiFormatter {
        fn write_string_fragment<W: ?Sized + std::io::Write>(
            &mut self,
            writer: &mut W,
            fragment: &str,
        ) -> std::io::Result<()> {
            let mut units = [0u16; 2];
            for c in fragment.chars() {
                if c.is_ascii() && c != '\u{7f}' {
                    writer.write_all(&[c as u8])?;
                } else {
                    for unit in c.encode_utf16(&mut units) {
                        write!(writer, "\\u{unit:04x}")?;
                    }
                }
            }
            Ok(())
        }
    }

    fn reference<T: serde::Serialize>(value: &T) -> String {
        let mut out = Vec::new();
        let mut serializer = serde_json::Serializer::with_formatter(&mut out, AsciiFormatter);
        value.serialize(&mut serializer).unwrap();
        String::from_utf8(out).unwrap()
    }

    fn object(map: &BTreeMap<String, String>) -> String {
        let mut out = Vec::new();
        push_object(&mut out, map);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn python_style_escapes() {
        let map: BTreeMap<String, String> = [
            (
                "é".to_owned(),
                "a\"b\\c\n\u{1}/\u{7f}\t\r\u{8}\u{c}".to_owned(),
            ),
            ("k".to_owned(), "😀 ü".to_owned()),
        ]
        .into();
        // What Python's json.dumps(..., ensure_ascii=True, separators=(",", ":")) writes.
        assert_eq!(
            object(&map),
            r#"{"k":"\ud83d\ude00 \u00fc","\u00e9":"a\"b\\c\n\u0001/\u007f\t\r\b\f"}"#
        );
        assert_eq!(object(&BTreeMap::new()), "{}");
    }

    #[test]
    fn b64_lengths() {
        for len in 0..100 {
            let mut out = b"x".to_vec();
            push_b64(&mut out, &vec![0xa5; len]).unwrap();
            assert_eq!(out.len(), 1 + b64_len(len));
            assert_eq!(&out[1..], crate::b64::encode(&vec![0xa5; len]).as_bytes());
        }
    }

    proptest! {
        #[test]
        fn same_bytes_as_serde_json(map in proptest::collection::btree_map(any::<String>(), any::<String>(), 0..6)) {
            let written = object(&map);
            prop_assert!(written.is_ascii());
            prop_assert_eq!(&written, &reference(&map));
            let back: BTreeMap<String, String> = serde_json::from_str(&written).unwrap();
            prop_assert_eq!(back, map);
        }
    }
}
