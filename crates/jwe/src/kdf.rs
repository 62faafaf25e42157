//! The Concat KDF of NIST SP 800-56A §5.8.1 as JWA profiles it for ECDH-ES
//! (RFC 7518 §4.6.2), with SHA-256.

use aws_lc_rs::digest;
use zeroize::Zeroizing;

fn length_prefixed(ctx: &mut digest::Context, data: &[u8]) -> Option<()> {
    let len = u32::try_from(data.len()).ok()?;
    ctx.update(&len.to_be_bytes());
    ctx.update(data);
    Some(())
}

/// Derives `out_len` bytes from the shared secret `z`.
///
/// OtherInfo = AlgorithmID || PartyUInfo || PartyVInfo || SuppPubInfo, where
/// the first three are each a 32-bit big-endian length followed by the
/// bytes, AlgorithmID is the ASCII `alg` value ("ECDH-ES+A256KW") for key
/// agreement with key wrapping, and SuppPubInfo is the key length in bits
/// as 32-bit big-endian. SuppPrivInfo is empty. Each round hashes a 32-bit
/// big-endian counter (from 1), `z` and OtherInfo.
///
/// `None` only for lengths that do not fit the 32-bit fields.
pub(crate) fn concat_kdf(
    z: &[u8],
    algorithm_id: &[u8],
    apu: &[u8],
    apv: &[u8],
    out_len: usize,
) -> Option<Zeroizing<Vec<u8>>> {
    let key_bits = u32::try_from(out_len.checked_mul(8)?).ok()?;
    let mut out = Zeroizing::new(Vec::with_capacity(out_len + digest::SHA256_OUTPUT_LEN));
    let mut counter: u32 = 1;
    while out.len() < out_len {
        let mut ctx = digest::Context::new(&digest::SHA256);
        ctx.update(&counter.to_be_bytes());
        ctx.update(z);
        length_prefixed(&mut ctx, algorithm_id)?;
        length_prefixed(&mut ctx, apu)?;
        length_prefixed(&mut ctx, apv)?;
        ctx.update(&key_bits.to_be_bytes());
        out.extend_from_slice(ctx.finish().as_ref());
        counter = counter.checked_add(1)?;
    }
    out.truncate(out_len);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::b64;
    use aws_lc_rs::agreement;

    // RFC 7518 Appendix C: Bob's static key and Alice's ephemeral key (P-256).
    const BOB_D: &str = "VEmDZpDXXK8p8N0Cndsxs924q6nS1RXFASRl6BfUqdw";
    const ALICE_X: &str = "gI0GAILBdu7T53akrFmMyGcsF3n5dO7MmwNBHKW5SV0";
    const ALICE_Y: &str = "SLW_xSffzlPWrHEVI30DHM_4egVwt3NQqeUD7nMFpps";
    const Z: [u8; 32] = [
        158, 86, 217, 29, 129, 113, 53, 211, 114, 131, 66, 131, 191, 132, 38, 156, 251, 49, 110,
        163, 218, 128, 106, 72, 246, 218, 167, 121, 140, 254, 144, 196,
    ];
    const DERIVED: [u8; 16] = [
        86, 170, 141, 234, 248, 35, 109, 32, 92, 34, 40, 205, 113, 167, 16, 26,
    ];

    #[test]
    fn rfc7518_appendix_c_kdf() {
        let key = concat_kdf(&Z, b"A128GCM", b"Alice", b"Bob", 16).unwrap();
        assert_eq!(key.as_slice(), DERIVED);
        assert_eq!(b64::encode(&key), "VqqN6vgjbSBcIijNcacQGg");
    }

    #[test]
    fn rfc7518_appendix_c_agreement_then_kdf() {
        let d = b64::decode(BOB_D, "d").unwrap();
        let bob = agreement::PrivateKey::from_private_key(&agreement::ECDH_P256, &d).unwrap();
        let mut alice = vec![4u8];
        alice.extend(b64::decode(ALICE_X, "x").unwrap());
        alice.extend(b64::decode(ALICE_Y, "y").unwrap());
        let peer = agreement::UnparsedPublicKey::new(&agreement::ECDH_P256, &alice);
        let key = agreement::agree(&bob, peer, (), |z| {
            assert_eq!(z, Z);
            concat_kdf(z, b"A128GCM", b"Alice", b"Bob", 16).ok_or(())
        })
        .unwrap();
        assert_eq!(key.as_slice(), DERIVED);
    }

    #[test]
    fn every_input_changes_the_key() {
        let base = concat_kdf(&Z, b"ECDH-ES+A256KW", b"", b"", 32).unwrap();
        assert_eq!(base.len(), 32);
        assert_ne!(
            base,
            concat_kdf(&Z, b"ECDH-ES+A128KW", b"", b"", 32).unwrap()
        );
        assert_ne!(
            base,
            concat_kdf(&Z, b"ECDH-ES+A256KW", b"a", b"", 32).unwrap()
        );
        assert_ne!(
            base,
            concat_kdf(&Z, b"ECDH-ES+A256KW", b"", b"a", 32).unwrap()
        );
        assert_ne!(
            base,
            concat_kdf(&Z[1..], b"ECDH-ES+A256KW", b"", b"", 32).unwrap()
        );
        // Moving a byte between PartyUInfo and PartyVInfo changes the key too:
        // the length prefixes keep the fields apart.
        assert_ne!(
            concat_kdf(&Z, b"X", b"ab", b"", 32).unwrap(),
            concat_kdf(&Z, b"X", b"a", b"b", 32).unwrap()
        );
        // Longer outputs: the first 32 bytes differ (SuppPubInfo is the length).
        let long = concat_kdf(&Z, b"ECDH-ES+A256KW", b"", b"", 48).unwrap();
        assert_eq!(long.len(), 48);
        assert_ne!(&long[..32], base.as_slice());
    }
}
