//! The body of the `jwe_open` fuzz target, here so that the crate's own
//! property tests run exactly what the fuzzer runs. Not part of the API.

use std::sync::OnceLock;

use aws_lc_rs::agreement;
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeySize, PrivateDecryptingKey};

use crate::{open, parse, seal, DecryptionKey, Recipient, SealOptions, Serialization};

struct Fixture {
    keys: Vec<DecryptionKey>,
    /// Valid JWEs for those keys (compact and JSON) and their plaintext.
    valid: Vec<Vec<u8>>,
}

const PLAINTEXT: &[u8] = b"4111111111111111";

fn fixture() -> Option<&'static Fixture> {
    static FIXTURE: OnceLock<Option<Fixture>> = OnceLock::new();
    FIXTURE.get_or_init(build).as_ref()
}

fn build() -> Option<Fixture> {
    let rsa = PrivateDecryptingKey::generate(KeySize::Rsa2048).ok()?;
    let rsa_pkcs8 = rsa.as_der().ok()?;
    let rsa_spki = rsa.public_key().as_der().ok()?;
    let p256 = agreement::PrivateKey::generate(&agreement::ECDH_P256).ok()?;
    let p384 = agreement::PrivateKey::generate(&agreement::ECDH_P384).ok()?;
    let ec = |k: &agreement::PrivateKey| -> Option<(Vec<u8>, Vec<u8>)> {
        let pkcs8: aws_lc_rs::encoding::Pkcs8V1Der<'static> = k.as_der().ok()?;
        let spki: aws_lc_rs::encoding::PublicKeyX509Der<'static> =
            k.compute_public_key().ok()?.as_der().ok()?;
        Some((pkcs8.as_ref().to_vec(), spki.as_ref().to_vec()))
    };
    let (p256_pkcs8, p256_spki) = ec(&p256)?;
    let (p384_pkcs8, p384_spki) = ec(&p384)?;
    let aes = [0x42u8; 32];

    let keys = vec![
        DecryptionKey::rsa_pkcs8(rsa_pkcs8.as_ref()).ok()?,
        DecryptionKey::ec_pkcs8(&p256_pkcs8).ok()?,
        DecryptionKey::ec_pkcs8(&p384_pkcs8).ok()?,
        DecryptionKey::aes256(&aes).ok()?,
    ];
    let recipients = vec![
        Recipient::rsa_oaep_256("rsa", rsa_spki.as_ref()).ok()?,
        Recipient::ecdh_es_a256kw("p256", &p256_spki)
            .ok()?
            .with_x5t_s256(b"cert"),
        Recipient::ecdh_es_a256kw("p384", &p384_spki).ok()?,
        Recipient::a256kw("aes", &aes).ok()?,
    ];
    let context = [("consumer".to_owned(), "fuzz".to_owned())].into();
    let mut valid = Vec::new();
    for r in &recipients {
        for serialization in [Serialization::Compact, Serialization::Json] {
            let options = SealOptions {
                serialization: Some(serialization),
                content_type: Some("text/plain"),
                context: Some(&context),
            };
            valid.push(seal(PLAINTEXT, core::slice::from_ref(r), &options).ok()?);
        }
    }
    valid.push(seal(PLAINTEXT, &recipients, &SealOptions::default()).ok()?);
    Some(Fixture { keys, valid })
}

/// Parses and opens `data` with fixed keys. The first byte picks the mode:
/// even, the rest is taken as a JWE as it is; odd, the next byte picks one
/// of a set of valid JWEs and the rest edits it, three bytes per edit
/// (position high, position low, new byte; a high bit in the first deletes
/// the byte instead). Whatever the input, nothing may panic, and an edited
/// JWE that still opens must give the original plaintext.
///
/// Returns how many of the keys opened the input (for the tests' coverage
/// checks; the fuzz target ignores it).
pub fn fuzz_target_body(data: &[u8]) -> usize {
    let Some(fixture) = fixture() else {
        return 0;
    };
    let Some((&mode, rest)) = data.split_first() else {
        return 0;
    };
    if mode % 2 == 0 {
        return try_all(fixture, rest, false);
    }
    let Some((&pick, edits)) = rest.split_first() else {
        return 0;
    };
    let Some(base) = fixture.valid.get(usize::from(pick) % fixture.valid.len()) else {
        return 0;
    };
    let mut jwe = base.clone();
    for edit in edits.chunks_exact(3) {
        if jwe.is_empty() {
            break;
        }
        let pos = (usize::from(edit[0] & 0x7f) << 8 | usize::from(edit[1])) % jwe.len();
        if edit[0] & 0x80 != 0 {
            jwe.remove(pos);
        } else {
            jwe[pos] = edit[2];
        }
    }
    try_all(fixture, &jwe, true)
}

fn try_all(fixture: &Fixture, bytes: &[u8], derived_from_valid: bool) -> usize {
    let Ok(jwe) = parse(bytes) else {
        return 0;
    };
    let mut opened_by = 0;
    for key in &fixture.keys {
        if let Ok(opened) = open(&jwe, key) {
            opened_by += 1;
            if derived_from_valid {
                assert_eq!(
                    opened.plaintext.as_slice(),
                    PLAINTEXT,
                    "an edited JWE opened to another plaintext"
                );
            }
        }
    }
    opened_by
}

/// The valid JWEs the edits start from (for seeding a corpus).
pub fn seeds() -> Vec<Vec<u8>> {
    fixture().map(|f| f.valid.clone()).unwrap_or_default()
}
