//! The few DER structures the crate reads itself: a `SubjectPublicKeyInfo`'s
//! algorithm (to tell RSA from EC, name an unsupported curve, and measure an
//! RSA modulus before aws-lc refuses it without saying why), and the same for
//! a PKCS#8 `PrivateKeyInfo`. Everything else is parsed by aws-lc.

/// DER tags used here.
const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const BIT_STRING: u8 = 0x03;
const OCTET_STRING: u8 = 0x04;
const OID: u8 = 0x06;

/// 1.2.840.113549.1.1.1
pub(crate) const OID_RSA_ENCRYPTION: &[u8] =
    &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
/// 1.2.840.10045.2.1
pub(crate) const OID_EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
/// 1.2.840.10045.3.1.7
pub(crate) const OID_P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
/// 1.3.132.0.34
pub(crate) const OID_P384: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x22];
/// 1.3.132.0.35
const OID_P521: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x23];
/// 1.3.132.0.10
const OID_SECP256K1: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x0a];
/// 1.2.840.10045.3.1.1 (P-192)
const OID_P192: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x01];
/// 1.3.132.0.33 (P-224)
const OID_P224: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x21];
/// 1.3.36.3.3.2.8.1.1.7 (brainpoolP256r1)
const OID_BRAINPOOL_P256: &[u8] = &[0x2b, 0x24, 0x03, 0x03, 0x02, 0x08, 0x01, 0x01, 0x07];

/// Names for the algorithm OIDs a caller is likely to hand over by mistake.
const KNOWN_ALGORITHMS: &[(&[u8], &str)] = &[
    // 1.3.101.110 .. 113
    (&[0x2b, 0x65, 0x6e], "X25519"),
    (&[0x2b, 0x65, 0x6f], "X448"),
    (&[0x2b, 0x65, 0x70], "Ed25519"),
    (&[0x2b, 0x65, 0x71], "Ed448"),
    // 1.2.840.113549.1.1.10
    (
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a],
        "RSASSA-PSS",
    ),
    // 1.2.840.113549.1.1.7
    (
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x07],
        "RSAES-OAEP",
    ),
    // 1.2.840.10040.4.1
    (&[0x2a, 0x86, 0x48, 0xce, 0x38, 0x04, 0x01], "DSA"),
    // 1.2.840.10046.2.1
    (&[0x2a, 0x86, 0x48, 0xce, 0x3e, 0x02, 0x01], "DH"),
];

const KNOWN_CURVES: &[(&[u8], &str)] = &[
    (OID_P256, "P-256"),
    (OID_P384, "P-384"),
    (OID_P521, "P-521"),
    (OID_SECP256K1, "secp256k1"),
    (OID_P192, "P-192"),
    (OID_P224, "P-224"),
    (OID_BRAINPOOL_P256, "brainpoolP256r1"),
];

/// A DER reader over a byte slice. Every method fails (returns `None`) rather
/// than panicking on short or malformed input.
#[derive(Clone, Copy)]
pub(crate) struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    pub(crate) fn new(input: &'a [u8]) -> Self {
        Self(input)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Reads one tag-length-value; returns (tag, contents).
    pub(crate) fn any(&mut self) -> Option<(u8, &'a [u8])> {
        let (&tag, rest) = self.0.split_first()?;
        // High-tag-number form is never used by the structures read here.
        if tag & 0x1f == 0x1f {
            return None;
        }
        let (&first, mut rest) = rest.split_first()?;
        let len = if first < 0x80 {
            usize::from(first)
        } else {
            let n = usize::from(first & 0x7f);
            // Indefinite length (n == 0) is not DER; four length octets are plenty.
            if n == 0 || n > 4 {
                return None;
            }
            let (len_bytes, after) = rest.split_at_checked(n)?;
            rest = after;
            // Minimal encoding: no leading zero octet, and long form only past 127.
            if len_bytes.first() == Some(&0) {
                return None;
            }
            let len = len_bytes
                .iter()
                .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
            if len < 0x80 {
                return None;
            }
            len
        };
        let (contents, after) = rest.split_at_checked(len)?;
        self.0 = after;
        Some((tag, contents))
    }

    /// Reads one element that must carry `tag`.
    pub(crate) fn expect(&mut self, tag: u8) -> Option<&'a [u8]> {
        match self.any()? {
            (t, contents) if t == tag => Some(contents),
            _ => None,
        }
    }
}

/// An algorithm identifier: the OID and, for EC keys, the named curve.
#[derive(Clone, Copy)]
pub(crate) struct AlgorithmId<'a> {
    pub(crate) oid: &'a [u8],
    /// The parameters' OID when the parameters are one (EC named curves).
    pub(crate) param_oid: Option<&'a [u8]>,
}

fn algorithm_identifier<'a>(contents: &'a [u8]) -> Option<AlgorithmId<'a>> {
    let mut r = Reader::new(contents);
    let oid = r.expect(OID)?;
    let param_oid = match r.any() {
        Some((OID, p)) => Some(p),
        // NULL (RSA) or anything else (explicit curve parameters, PSS params).
        Some(_) | None => None,
    };
    Some(AlgorithmId { oid, param_oid })
}

/// A parsed `SubjectPublicKeyInfo`.
pub(crate) struct Spki<'a> {
    pub(crate) algorithm: AlgorithmId<'a>,
    /// The subject public key (the BIT STRING's bytes, no unused bits).
    pub(crate) key: &'a [u8],
}

pub(crate) fn spki(der: &[u8]) -> Option<Spki<'_>> {
    let mut outer = Reader::new(der);
    let seq = outer.expect(SEQUENCE)?;
    if !outer.is_empty() {
        return None;
    }
    let mut r = Reader::new(seq);
    let algorithm = algorithm_identifier(r.expect(SEQUENCE)?)?;
    let bits = r.expect(BIT_STRING)?;
    if !r.is_empty() {
        return None;
    }
    let (&unused, key) = bits.split_first()?;
    if unused != 0 {
        return None;
    }
    Some(Spki { algorithm, key })
}

/// The algorithm of a PKCS#8 `PrivateKeyInfo` (v1 or v2) and its private key
/// octets.
pub(crate) fn pkcs8(der: &[u8]) -> Option<(AlgorithmId<'_>, &[u8])> {
    let mut outer = Reader::new(der);
    let seq = outer.expect(SEQUENCE)?;
    if !outer.is_empty() {
        return None;
    }
    let mut r = Reader::new(seq);
    let _version = r.expect(INTEGER)?;
    let algorithm = algorithm_identifier(r.expect(SEQUENCE)?)?;
    let private_key = r.expect(OCTET_STRING)?;
    Some((algorithm, private_key))
}

/// Bit length of a DER INTEGER's magnitude (positive integers only).
fn integer_bits(contents: &[u8]) -> Option<usize> {
    let first_nonzero = contents.iter().position(|&b| b != 0)?;
    let magnitude = &contents[first_nonzero..];
    let top = magnitude.first()?;
    // A negative INTEGER (sign bit set without a leading zero) is no modulus.
    if first_nonzero == 0 && top & 0x80 != 0 {
        return None;
    }
    let leading = usize::try_from(top.leading_zeros()).ok()?;
    Some(magnitude.len() * 8 - leading)
}

/// Modulus size of a PKCS#1 `RSAPublicKey` (SEQUENCE { n, e }).
pub(crate) fn rsa_public_modulus_bits(key: &[u8]) -> Option<usize> {
    let mut outer = Reader::new(key);
    let mut r = Reader::new(outer.expect(SEQUENCE)?);
    integer_bits(r.expect(INTEGER)?)
}

/// Modulus size of a PKCS#1 `RSAPrivateKey` (SEQUENCE { version, n, ... }).
pub(crate) fn rsa_private_modulus_bits(key: &[u8]) -> Option<usize> {
    let mut outer = Reader::new(key);
    let mut r = Reader::new(outer.expect(SEQUENCE)?);
    let _version = r.expect(INTEGER)?;
    integer_bits(r.expect(INTEGER)?)
}

/// Dotted-decimal form of an OID's contents ("1.2.840.10045.3.1.7").
pub(crate) fn oid_to_string(oid: &[u8]) -> String {
    let mut arcs: Vec<u128> = Vec::new();
    let mut acc: u128 = 0;
    for &b in oid {
        acc = acc.checked_shl(7).unwrap_or(u128::MAX) | u128::from(b & 0x7f);
        if b & 0x80 == 0 {
            arcs.push(acc);
            acc = 0;
        }
    }
    let mut out = String::new();
    if let Some((&first, rest)) = arcs.split_first() {
        let (a, b) = match first {
            0..=39 => (0, first),
            40..=79 => (1, first - 40),
            _ => (2, first - 80),
        };
        out.push_str(&format!("{a}.{b}"));
        for arc in rest {
            out.push_str(&format!(".{arc}"));
        }
    }
    // An OID cut short or empty still gets a printable (bounded) name.
    if out.is_empty() || oid.last().is_some_and(|b| b & 0x80 != 0) || out.len() > 64 {
        return "an unrecognised OID".to_owned();
    }
    out
}

/// A curve's usual name, or its OID in dotted form.
pub(crate) fn curve_name(oid: &[u8]) -> String {
    KNOWN_CURVES
        .iter()
        .find(|(o, _)| *o == oid)
        .map(|(_, n)| (*n).to_owned())
        .unwrap_or_else(|| format!("with OID {}", oid_to_string(oid)))
}

/// An algorithm's usual name, or its OID in dotted form.
pub(crate) fn algorithm_name(oid: &[u8]) -> String {
    KNOWN_ALGORITHMS
        .iter()
        .find(|(o, _)| *o == oid)
        .map(|(_, n)| (*n).to_owned())
        .unwrap_or_else(|| format!("algorithm OID {}", oid_to_string(oid)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oids_print_dotted() {
        assert_eq!(oid_to_string(OID_P256), "1.2.840.10045.3.1.7");
        assert_eq!(oid_to_string(OID_P521), "1.3.132.0.35");
        assert_eq!(oid_to_string(OID_RSA_ENCRYPTION), "1.2.840.113549.1.1.1");
        assert_eq!(oid_to_string(&[0x2a, 0x86]), "an unrecognised OID");
        assert_eq!(oid_to_string(&[]), "an unrecognised OID");
    }

    #[test]
    fn lengths_must_be_minimal_and_in_bounds() {
        assert!(Reader::new(&[0x30, 0x81, 0x05, 1, 2, 3, 4, 5])
            .any()
            .is_none());
        assert!(Reader::new(&[0x30, 0x80]).any().is_none());
        assert!(Reader::new(&[0x30, 0x03, 1, 2]).any().is_none());
        assert!(Reader::new(&[0x30, 0x82, 0x00, 0x80]).any().is_none());
        assert_eq!(
            Reader::new(&[0x04, 0x01, 9]).any(),
            Some((0x04, &[9u8][..]))
        );
    }

    #[test]
    fn integer_bit_lengths() {
        assert_eq!(integer_bits(&[0x00, 0x80]), Some(8));
        assert_eq!(integer_bits(&[0x01, 0x00]), Some(9));
        assert_eq!(integer_bits(&[0x80]), None);
        assert_eq!(integer_bits(&[0x00]), None);
    }
}
