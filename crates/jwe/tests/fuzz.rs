//! The fuzz target's body (`fuzz/fuzz_targets/jwe_open.rs`) under proptest:
//! random bytes, random edits of valid JWEs, and JSON-shaped noise through
//! parse + open must never panic (an edited JWE that opens must give the
//! original plaintext: checked inside the body).

use proptest::prelude::*;
use reseal_jwe::fuzzing::{fuzz_target_body, seeds};
use reseal_jwe::{open, parse, DecryptionKey};

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        let mut raw = vec![0u8];
        raw.extend(&data);
        let _ = fuzz_target_body(&raw);
    }

    #[test]
    fn random_edits_of_valid_jwes(pick in any::<u8>(), edits in proptest::collection::vec(any::<u8>(), 0..30)) {
        let mut input = vec![1u8, pick];
        input.extend(&edits);
        let _ = fuzz_target_body(&input);
    }

    #[test]
    fn single_byte_edits_everywhere(pick in any::<u8>(), pos in any::<u16>(), byte in any::<u8>(), delete in any::<bool>()) {
        let [hi, lo] = pos.to_be_bytes();
        let hi = if delete { hi | 0x80 } else { hi & 0x7f };
        let _ = fuzz_target_body(&[1, pick, hi, lo, byte]);
    }

    #[test]
    fn json_shaped_noise(
        parts in proptest::collection::vec(
            prop_oneof![
                Just("{".to_owned()), Just("}".to_owned()), Just("\"protected\":".to_owned()),
                Just("\"recipients\":[".to_owned()), Just("]".to_owned()), Just(",".to_owned()),
                Just("\"header\":{\"alg\":\"ECDH-ES+A256KW\",\"epk\":{\"kty\":\"EC\",\"crv\":\"P-256\"}}".to_owned()),
                Just("\"iv\":\"AAAAAAAAAAAAAAAA\"".to_owned()),
                Just("\"tag\":\"AAAAAAAAAAAAAAAAAAAAAA\"".to_owned()),
                Just("\"ciphertext\":\"\"".to_owned()),
                Just("\"encrypted_key\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"".to_owned()),
                "[a-zA-Z0-9_\\-\":{}\\[\\],.]{0,12}",
            ],
            0..24,
        )
    ) {
        let mut raw = vec![0u8];
        raw.extend(parts.concat().as_bytes());
        let _ = fuzz_target_body(&raw);
    }
}

#[test]
fn seeds_are_valid_and_mutations_are_refused() {
    // The fixture the fuzz body edits is real: each seed parses, and the
    // body's assertion is reachable (an unedited seed opens).
    let seeds = seeds();
    assert_eq!(seeds.len(), 9);
    for seed in &seeds {
        let jwe = parse(seed).unwrap();
        assert!(!jwe.recipients().is_empty());
    }
    // The body reaches its assertion: unedited seeds open (the last one, for
    // all four keys), and most single-byte edits of a seed do not.
    for pick in 0..seeds.len() as u8 {
        let expected = if usize::from(pick) == seeds.len() - 1 {
            4
        } else {
            1
        };
        assert_eq!(fuzz_target_body(&[1, pick]), expected, "seed {pick}");
    }
    let mut opened = 0;
    let mut tried = 0;
    for pick in 0..seeds.len() as u8 {
        for pos in (0..600u16).step_by(7) {
            let [hi, lo] = pos.to_be_bytes();
            opened += fuzz_target_body(&[1, pick, hi, lo, b'#']);
            tried += 1;
        }
    }
    // Only edits of unprotected JSON members the key does not check (kid,
    // x5t#S256 of a key without those set) or of whitespace may still open.
    assert!(opened * 4 < tried, "{opened} of {tried} edited JWEs opened");
    // A stranger key opens none of them.
    let stranger = DecryptionKey::aes256(&[9u8; 32]).unwrap();
    for seed in &seeds {
        assert!(open(&parse(seed).unwrap(), &stranger).is_err());
    }
}
