//! Fuzz target: reseal-jwe's parse + open on any bytes, with fixed keys
//! (RSA-2048, P-256, P-384, AES-256). The first input byte picks raw input
//! (even) or edits to one of a set of valid JWEs sealed for those keys
//! (odd). Nothing may panic, and an edited JWE that still opens must give the
//! original plaintext. The body lives in the crate
//! (`reseal_jwe::fuzzing::fuzz_target_body`) so its property test
//! (`crates/jwe/tests/fuzz.rs`) runs the same code.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = reseal_jwe::fuzzing::fuzz_target_body(data);
});
