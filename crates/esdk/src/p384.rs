//! P-384 point decompression, for the verification key of signed messages.
//!
//! Every signed message (Amazon Connect's 0x0378 included) carries a fresh
//! public key as a SEC1 compressed point: `x` and the parity of `y`. Recovering
//! `y` is a square root modulo p, one 382-bit exponentiation. aws-lc does it in
//! its generic bignum code (6-word Montgomery multiplication, a context built
//! per call), a visible share of opening a Connect message. The key is public,
//! so this may run in variable time, and arithmetic specialised to
//! p = 2^384 − 2^128 − 2^96 + 2^32 − 1 does the same in well under half the
//! time (BENCHMARKS.md, criterion `p384_decompress`).
//!
//! The result cannot be wrong silently: `y² = x³ − 3x + b` is checked here and
//! the caller hands the uncompressed point to aws-lc, which validates it again
//! (coordinates below p, point on the curve). A bug here could only reject a key.

/// A field element as six little-endian 64-bit limbs, below 2^384 (reduced
/// below p where it matters: comparisons and output).
type Fe = [u64; 6];

/// The field prime p.
const P: Fe = [
    0x0000_0000_FFFF_FFFF,
    0xFFFF_FFFF_0000_0000,
    0xFFFF_FFFF_FFFF_FFFE,
    u64::MAX,
    u64::MAX,
    u64::MAX,
];

/// 2^384 mod p = 2^128 + 2^96 − 2^32 + 1: what a limb above the sixth folds into.
const FOLD: [u64; 3] = [0xFFFF_FFFF_0000_0001, 0x0000_0000_FFFF_FFFF, 1];

/// The curve coefficient b.
const B: Fe = [
    0x2A85_C8ED_D3EC_2AEF,
    0xC656_398D_8A2E_D19D,
    0x0314_088F_5013_875A,
    0x181D_9C6E_FE81_4112,
    0x988E_056B_E3F8_2D19,
    0xB331_2FA7_E23E_E7E4,
];

/// Length of a compressed point (0x02 or 0x03, then x).
pub const COMPRESSED_LEN: usize = 49;
/// Length of an uncompressed point (0x04, then x and y).
pub const UNCOMPRESSED_LEN: usize = 97;

/// The uncompressed form (`04 || x || y`) of a compressed P-384 point, or
/// `None` if it is not one: wrong prefix, `x ≥ p`, or no point with that `x`.
pub fn decompress(compressed: &[u8; COMPRESSED_LEN]) -> Option<[u8; UNCOMPRESSED_LEN]> {
    let y_odd = match compressed[0] {
        0x02 => false,
        0x03 => true,
        _ => return None,
    };
    let x = from_be_bytes(&compressed[1..]);
    if !below_p(&x) {
        return None;
    }
    // y² = x³ − 3x + b
    let x3 = mul(&square(&x), &x);
    let three_x = add(&add(&x, &x), &x);
    let rhs = add(&sub(&x3, &three_x), &B);
    let mut y = sqrt(&rhs)?;
    if (y[0] & 1 == 1) != y_odd {
        // P-384 has prime order, so no point has y = 0 and −y has the other parity.
        y = sub(&[0; 6], &y);
    }
    let mut out = [0u8; UNCOMPRESSED_LEN];
    out[0] = 0x04;
    out[1..49].copy_from_slice(&compressed[1..]);
    out[49..].copy_from_slice(&to_be_bytes(&y));
    Some(out)
}

/// The square root of `a` that is `a^((p+1)/4)` (p ≡ 3 mod 4), if `a` is a square.
///
/// (p+1)/4 in binary is 255 ones, a zero, 32 ones, 63 zeros, a one and 30
/// zeros; the chain builds `a^(2^k − 1)` for the runs: 383 squarings, 13 products.
fn sqrt(a: &Fe) -> Option<Fe> {
    let x1 = *a;
    let x2 = mul(&square(&x1), &x1);
    let x3 = mul(&square(&x2), &x1);
    let x6 = mul(&square_n(&x3, 3), &x3);
    let x12 = mul(&square_n(&x6, 6), &x6);
    let x15 = mul(&square_n(&x12, 3), &x3);
    let x30 = mul(&square_n(&x15, 15), &x15);
    let x32 = mul(&square_n(&x30, 2), &x2);
    let x60 = mul(&square_n(&x30, 30), &x30);
    let x120 = mul(&square_n(&x60, 60), &x60);
    let x240 = mul(&square_n(&x120, 120), &x120);
    let x255 = mul(&square_n(&x240, 15), &x15);
    let r = mul(&square_n(&x255, 33), &x32);
    let r = mul(&square_n(&r, 64), &x1);
    let r = square_n(&r, 30);
    (square(&r) == *a).then_some(r)
}

fn square_n(a: &Fe, n: usize) -> Fe {
    let mut r = *a;
    for _ in 0..n {
        r = square(&r);
    }
    r
}

#[inline(always)]
fn mac(acc: u64, a: u64, b: u64, carry: u64) -> (u64, u64) {
    let t = (a as u128) * (b as u128) + acc as u128 + carry as u128;
    (t as u64, (t >> 64) as u64)
}

#[inline(always)]
fn adc(a: u64, b: u64, carry: u64) -> (u64, u64) {
    let t = a as u128 + b as u128 + carry as u128;
    (t as u64, (t >> 64) as u64)
}

#[inline(always)]
fn sbb(a: u64, b: u64, borrow: u64) -> (u64, u64) {
    let t = (a as u128).wrapping_sub(b as u128 + borrow as u128);
    (t as u64, (t >> 127) as u64)
}

#[inline(always)]
fn mul(a: &Fe, b: &Fe) -> Fe {
    let mut t = [0u64; 12];
    for i in 0..6 {
        let mut carry = 0;
        for j in 0..6 {
            (t[i + j], carry) = mac(t[i + j], a[i], b[j], carry);
        }
        t[i + 6] = carry;
    }
    reduce(&t)
}

/// `a²` with each cross product computed once.
#[inline(always)]
fn square(a: &Fe) -> Fe {
    let mut t = [0u64; 12];
    for i in 0..6 {
        let mut carry = 0;
        for j in (i + 1)..6 {
            (t[i + j], carry) = mac(t[i + j], a[i], a[j], carry);
        }
        t[i + 6] = carry;
    }
    let mut high_bit = 0;
    for limb in t.iter_mut() {
        let doubled = (*limb << 1) | high_bit;
        high_bit = *limb >> 63;
        *limb = doubled;
    }
    let mut carry = 0;
    for i in 0..6 {
        let s = (a[i] as u128) * (a[i] as u128);
        (t[2 * i], carry) = adc(t[2 * i], s as u64, carry);
        (t[2 * i + 1], carry) = adc(t[2 * i + 1], (s >> 64) as u64, carry);
    }
    reduce(&t)
}

/// `lo + hi · 2^384 mod 2^(64·M)`, with 2^384 replaced by [`FOLD`]. `M` must
/// hold the sum (the callers' bounds say it does).
#[inline(always)]
fn fold<const N: usize, const M: usize>(lo: &[u64; 6], hi: &[u64; N]) -> [u64; M] {
    let mut r = [0u64; M];
    for i in 0..N {
        let mut carry = 0;
        for j in 0..3 {
            (r[i + j], carry) = mac(r[i + j], hi[i], FOLD[j], carry);
        }
        r[i + 3] = carry;
    }
    let mut carry = 0;
    for (k, limb) in r.iter_mut().enumerate() {
        (*limb, carry) = adc(*limb, if k < 6 { lo[k] } else { 0 }, carry);
    }
    r
}

/// A 768-bit product modulo p. FOLD < 2^129, so each fold shrinks the high
/// part: t < 2^768 → r < 2^514 → s < 2^384 + 2^259. If s ≥ 2^384 its low part
/// is below 2^259, so the third fold ends below 2^259 + 2^129: it never
/// carries out, and what is left is below 2^384 < 2p, one subtraction from p.
#[inline(always)]
fn reduce(t: &[u64; 12]) -> Fe {
    let (t_lo, t_hi) = split::<12, 6>(t);
    let r: [u64; 10] = fold(&t_lo, &t_hi);
    let (r_lo, r_hi) = split::<10, 4>(&r);
    let s: [u64; 7] = fold(&r_lo, &r_hi);
    let (s_lo, s_hi) = split::<7, 1>(&s);
    let u: [u64; 7] = fold(&s_lo, &s_hi);
    debug_assert_eq!(u[6], 0);
    let out: Fe = [u[0], u[1], u[2], u[3], u[4], u[5]];
    if below_p(&out) {
        out
    } else {
        sub_raw(&out, &P).0
    }
}

/// The low six limbs and the `H` above them.
#[inline(always)]
fn split<const L: usize, const H: usize>(t: &[u64; L]) -> (Fe, [u64; H]) {
    let mut lo = [0u64; 6];
    let mut hi = [0u64; H];
    lo.copy_from_slice(&t[..6]);
    hi.copy_from_slice(&t[6..]);
    (lo, hi)
}

fn add(a: &Fe, b: &Fe) -> Fe {
    let mut t = [0u64; 12];
    let mut carry = 0;
    for k in 0..6 {
        (t[k], carry) = adc(a[k], b[k], carry);
    }
    t[6] = carry;
    reduce(&t)
}

/// `a − b mod p` for `a`, `b` below p.
fn sub(a: &Fe, b: &Fe) -> Fe {
    let (d, borrow) = sub_raw(a, b);
    if borrow == 0 {
        d
    } else {
        let mut out = d;
        let mut carry = 0;
        for k in 0..6 {
            (out[k], carry) = adc(out[k], P[k], carry);
        }
        out
    }
}

fn sub_raw(a: &Fe, b: &Fe) -> (Fe, u64) {
    let mut out = [0u64; 6];
    let mut borrow = 0;
    for k in 0..6 {
        (out[k], borrow) = sbb(a[k], b[k], borrow);
    }
    (out, borrow)
}

fn below_p(a: &Fe) -> bool {
    sub_raw(a, &P).1 == 1
}

fn from_be_bytes(bytes: &[u8]) -> Fe {
    let mut out = [0u64; 6];
    for (k, chunk) in bytes.rchunks_exact(8).enumerate() {
        out[k] = u64::from_be_bytes(chunk.try_into().unwrap_or([0; 8]));
    }
    out
}

fn to_be_bytes(a: &Fe) -> [u8; 48] {
    let mut out = [0u8; 48];
    for (k, chunk) in out.rchunks_exact_mut(8).enumerate() {
        chunk.copy_from_slice(&a[k].to_be_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::encoding::{AsBigEndian, EcPublicKeyCompressedBin, EcPublicKeyUncompressedBin};
    use aws_lc_rs::signature::{
        EcdsaKeyPair, KeyPair, UnparsedPublicKey, ECDSA_P384_SHA384_ASN1,
        ECDSA_P384_SHA384_ASN1_SIGNING,
    };
    use proptest::prelude::*;

    fn key_pair() -> (Vec<u8>, Vec<u8>) {
        let pair = EcdsaKeyPair::generate(&ECDSA_P384_SHA384_ASN1_SIGNING).unwrap();
        let c: EcPublicKeyCompressedBin<'_> = pair.public_key().as_be_bytes().unwrap();
        let u: EcPublicKeyUncompressedBin<'_> = pair.public_key().as_be_bytes().unwrap();
        (c.as_ref().to_vec(), u.as_ref().to_vec())
    }

    fn compressed(prefix: u8, x: &[u8]) -> [u8; COMPRESSED_LEN] {
        let mut c = [0u8; COMPRESSED_LEN];
        c[0] = prefix;
        c[1..].copy_from_slice(x);
        c
    }

    #[test]
    fn matches_aws_lc_on_random_keys_of_both_parities() {
        let mut seen = [false; 2];
        for _ in 0..500 {
            let (c, u) = key_pair();
            seen[(c[0] - 2) as usize] = true;
            let ours = decompress(c.as_slice().try_into().unwrap()).unwrap();
            assert_eq!(ours.as_slice(), u.as_slice());
        }
        assert_eq!(seen, [true, true]);
    }

    #[test]
    fn the_generator_decompresses_to_itself() {
        let gx = hex::decode(
            "aa87ca22be8b05378eb1c71ef320ad746e1d3b628ba79b9859f741e082542a38\
             5502f25dbf55296c3a545e3872760ab7",
        )
        .unwrap();
        let gy = "3617de4a96262c6f5d9e98bf9292dc29f8f41dbd289a147ce9da3113b5f0b8c0\
                  0a60b1ce1d7e819d7a431d7c90ea0e5f";
        let out = decompress(&compressed(0x03, &gx)).unwrap();
        assert_eq!(hex::encode(&out[49..]), gy);
        let neg = decompress(&compressed(0x02, &gx)).unwrap();
        assert_ne!(neg[49..], out[49..]);
        // y + (−y) = p
        let y = from_be_bytes(&out[49..]);
        let minus_y = from_be_bytes(&neg[49..]);
        assert_eq!(sub_raw(&P, &y).0, minus_y);
    }

    #[test]
    fn refuses_what_is_not_a_compressed_point() {
        let (c, _) = key_pair();
        for prefix in [0x00, 0x01, 0x04, 0x05, 0xFF] {
            assert!(decompress(&compressed(prefix, &c[1..])).is_none());
        }
        // x = p and x = 2^384 − 1 are not field elements.
        assert!(decompress(&compressed(0x02, &to_be_bytes(&P))).is_none());
        assert!(decompress(&compressed(0x02, &[0xFF; 48])).is_none());
        // About half of all x have no point; every answer must agree with aws-lc.
        let mut refused = 0;
        for i in 0u8..64 {
            let mut x = [0u8; 48];
            x[47] = i;
            x[0] = 0x5A;
            let c = compressed(0x02, &x);
            let lc = UnparsedPublicKey::new(&ECDSA_P384_SHA384_ASN1, &c)
                .parse()
                .is_ok();
            assert_eq!(decompress(&c).is_some(), lc, "x ending in {i}");
            refused += usize::from(!lc);
        }
        assert!(refused > 10 && refused < 54, "{refused} of 64 refused");
    }

    proptest! {
        /// Any x, either parity: refused exactly when aws-lc refuses the
        /// compressed point; otherwise the point has that x and parity and
        /// aws-lc accepts it (only one point has both).
        #[test]
        fn agrees_with_aws_lc_on_any_x(
            x in proptest::collection::vec(any::<u8>(), 48),
            odd in any::<bool>(),
        ) {
            let c = compressed(if odd { 0x03 } else { 0x02 }, &x);
            let lc = UnparsedPublicKey::new(&ECDSA_P384_SHA384_ASN1, &c).parse().is_ok();
            match decompress(&c) {
                None => prop_assert!(!lc),
                Some(u) => {
                    prop_assert!(lc);
                    prop_assert_eq!(&u[1..49], &x[..]);
                    prop_assert_eq!(u[96] & 1 == 1, odd);
                    let full = UnparsedPublicKey::new(&ECDSA_P384_SHA384_ASN1, u);
                    prop_assert!(full.parse().is_ok());
                }
            }
        }
    }

    /// t mod p one bit at a time: slow, and obviously right.
    fn reduce_by_bits(t: &[u64; 12]) -> Fe {
        let mut r = [0u64; 7];
        for bit in (0..768).rev() {
            let mut carry = (t[bit / 64] >> (bit % 64)) & 1;
            for limb in r.iter_mut() {
                let next = *limb >> 63;
                *limb = (*limb << 1) | carry;
                carry = next;
            }
            let (low, borrow) = sub_raw(&[r[0], r[1], r[2], r[3], r[4], r[5]], &P);
            if r[6] == 1 || borrow == 0 {
                r = [low[0], low[1], low[2], low[3], low[4], low[5], 0];
            }
        }
        [r[0], r[1], r[2], r[3], r[4], r[5]]
    }

    /// Limbs that sit at the edges of the folds: 0, 1, all ones, p's limbs, FOLD's.
    fn edge_limb() -> impl Strategy<Value = u64> {
        prop_oneof![
            Just(0u64),
            Just(1),
            Just(u64::MAX),
            Just(u64::MAX - 1),
            Just(P[0]),
            Just(P[1]),
            Just(FOLD[0]),
            any::<u64>(),
        ]
    }

    proptest! {
        #[test]
        fn reduction_matches_bit_by_bit_division(
            t in proptest::collection::vec(edge_limb(), 12),
        ) {
            let t: [u64; 12] = t.try_into().unwrap();
            prop_assert_eq!(reduce(&t), reduce_by_bits(&t));
        }
    }

    #[test]
    fn reduction_of_fixed_edge_values() {
        let mut cases = vec![[0u64; 12], [u64::MAX; 12]];
        for shift in [0, 6] {
            for value in [P, sub_raw(&P, &[1, 0, 0, 0, 0, 0]).0, [u64::MAX; 6]] {
                let mut t = [0u64; 12];
                t[shift..shift + 6].copy_from_slice(&value);
                cases.push(t);
            }
        }
        for t in cases {
            assert_eq!(reduce(&t), reduce_by_bits(&t), "{t:x?}");
        }
    }

    #[test]
    fn field_arithmetic_at_the_edges() {
        let p_minus_1 = sub_raw(&P, &[1, 0, 0, 0, 0, 0]).0;
        // (−1)² = 1, (−1)·(−1)·(−1) = −1, (2^384 − 1)² reduces.
        assert_eq!(square(&p_minus_1), [1, 0, 0, 0, 0, 0]);
        assert_eq!(mul(&square(&p_minus_1), &p_minus_1), p_minus_1);
        let all_ones = [u64::MAX; 6];
        assert_eq!(square(&all_ones), mul(&all_ones, &all_ones));
        // 2^384 − 1 ≡ FOLD − 1 (mod p)
        let fold_minus_1: Fe = [FOLD[0] - 1, FOLD[1], FOLD[2], 0, 0, 0];
        assert_eq!(mul(&all_ones, &[1, 0, 0, 0, 0, 0]), fold_minus_1);
        assert_eq!(add(&p_minus_1, &[1, 0, 0, 0, 0, 0]), [0; 6]);
        assert_eq!(sub(&[0; 6], &[1, 0, 0, 0, 0, 0]), p_minus_1);
        // −1 is not a square (p ≡ 3 mod 4), 4 is.
        assert!(sqrt(&p_minus_1).is_none());
        let two = sqrt(&[4, 0, 0, 0, 0, 0]).unwrap();
        assert!(two == [2, 0, 0, 0, 0, 0] || two == sub_raw(&P, &[2, 0, 0, 0, 0, 0]).0);
    }
}
