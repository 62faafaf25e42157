//! Minimal PEM and DER helpers for RSA keys and certificates.
//!
//! Accepts the encodings operators actually have: PKCS#8 `PRIVATE KEY`, PKCS#1
//! `RSA PRIVATE KEY`, SPKI `PUBLIC KEY`, PKCS#1 `RSA PUBLIC KEY` and
//! `CERTIFICATE`. PKCS#1 forms are re-wrapped into PKCS#8 / SPKI so aws-lc-rs
//! parses a single shape. Decoded key bytes are zeroized.
//!
//! Passphrase-protected keys (PKCS#8 `ENCRYPTED PRIVATE KEY`, and the legacy
//! OpenSSL form with a `Proc-Type: 4,ENCRYPTED` header) are recognised and
//! refused with that reason ([`KeyError::Encrypted`]).
//!
//! Why not the PEM readers of `rustls-pki-types` or `x509-parser`, both in
//! the tree: the first has no `RSA PUBLIC KEY` (PKCS#1 public keys, which
//! consumers hand over) and skips unknown labels silently; the second does
//! not read headers (`Proc-Type`) and neither zeroizes its intermediate
//! base64 text and DER buffers, which for private keys this parser does.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use zeroize::Zeroizing;

use super::KeyError;

/// One PEM block: its label and DER contents.
pub struct PemBlock {
    pub label: String,
    pub der: Zeroizing<Vec<u8>>,
    /// Passphrase-protected: `ENCRYPTED PRIVATE KEY`, or a legacy
    /// `Proc-Type: 4,ENCRYPTED` header (the DER is then ciphertext).
    pub encrypted: bool,
}

/// Parses every PEM block in `text`, in order.
pub fn parse_all(text: &[u8]) -> Result<Vec<PemBlock>, KeyError> {
    let text = std::str::from_utf8(text).map_err(|_| KeyError::Pem("not UTF-8 text"))?;
    let mut blocks = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN ") {
        let after = &rest[start + 11..];
        let label_end = after
            .find("-----")
            .ok_or(KeyError::Pem("unterminated BEGIN line"))?;
        let label = after[..label_end].to_owned();
        let body_start = &after[label_end + 5..];
        let end_marker = format!("-----END {label}-----");
        let body_end = body_start
            .find(&end_marker)
            .ok_or(KeyError::Pem("missing END line"))?;
        let encrypted = label == "ENCRYPTED PRIVATE KEY"
            || body_start[..body_end].lines().any(|l| {
                let l = l.trim();
                l.starts_with("Proc-Type:") && l.contains("ENCRYPTED")
            });
        let b64: Zeroizing<String> = Zeroizing::new(
            body_start[..body_end]
                .lines()
                .filter(|l| !l.contains(':')) // skip legacy headers such as Proc-Type
                .flat_map(|l| l.chars())
                .filter(|c| !c.is_whitespace())
                .collect(),
        );
        let der = Zeroizing::new(
            STANDARD
                .decode(b64.as_bytes())
                .map_err(|_| KeyError::Pem("invalid base64"))?,
        );
        blocks.push(PemBlock {
            label,
            der,
            encrypted,
        });
        rest = &body_start[body_end + end_marker.len()..];
    }
    if blocks.is_empty() {
        return Err(KeyError::Pem("no PEM block found"));
    }
    Ok(blocks)
}

/// Encodes DER as PEM with 64-column lines.
pub fn encode(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// AlgorithmIdentifier for rsaEncryption with NULL parameters.
const RSA_ALGORITHM_ID: [u8; 15] = [
    0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
];

fn der_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
}

fn der_tlv(tag: u8, content: &[u8]) -> Zeroizing<Vec<u8>> {
    let mut out = Zeroizing::new(Vec::with_capacity(content.len() + 6));
    out.push(tag);
    der_len(&mut out, content.len());
    out.extend_from_slice(content);
    out
}

/// PKCS#1 RSAPrivateKey → PKCS#8 PrivateKeyInfo.
pub fn pkcs1_private_to_pkcs8(pkcs1: &[u8]) -> Zeroizing<Vec<u8>> {
    let octets = der_tlv(0x04, pkcs1);
    let mut inner = Zeroizing::new(vec![0x02, 0x01, 0x00]);
    inner.extend_from_slice(&RSA_ALGORITHM_ID);
    inner.extend_from_slice(&octets);
    der_tlv(0x30, &inner)
}

/// PKCS#1 RSAPublicKey → SubjectPublicKeyInfo.
pub fn pkcs1_public_to_spki(pkcs1: &[u8]) -> Vec<u8> {
    let mut bits = vec![0u8];
    bits.extend_from_slice(pkcs1);
    let bit_string = der_tlv(0x03, &bits);
    let mut inner = RSA_ALGORITHM_ID.to_vec();
    inner.extend_from_slice(&bit_string);
    der_tlv(0x30, &inner).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_skips_headers() {
        let pem = encode("PUBLIC KEY", &[1, 2, 3, 4, 5]);
        let blocks = parse_all(pem.as_bytes()).unwrap();
        assert_eq!(blocks[0].label, "PUBLIC KEY");
        assert_eq!(&blocks[0].der[..], &[1, 2, 3, 4, 5]);
        assert!(parse_all(b"nothing here").is_err());
        assert!(parse_all(b"-----BEGIN X-----\nAAAA\n").is_err());
        assert!(!blocks[0].encrypted);
    }

    #[test]
    fn encrypted_blocks_are_marked() {
        let pkcs8 = encode("ENCRYPTED PRIVATE KEY", &[1, 2, 3]);
        assert!(parse_all(pkcs8.as_bytes()).unwrap()[0].encrypted);
        let legacy = "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-256-CBC,311BDD7CE119A2D3BCE65C1E7653DF08\n\nAQID\n-----END RSA PRIVATE KEY-----\n";
        let blocks = parse_all(legacy.as_bytes()).unwrap();
        assert!(blocks[0].encrypted && blocks[0].label == "RSA PRIVATE KEY");
    }

    #[test]
    fn long_der_lengths() {
        let mut out = Vec::new();
        der_len(&mut out, 0x1234);
        assert_eq!(out, vec![0x82, 0x12, 0x34]);
    }
}
