//! Hostile and broken input: every case must be a typed error, never a panic
//! and never plaintext.

use std::sync::Arc;

use proptest::prelude::*;
use reseal::esdk::context::PUBLIC_KEY_FIELD;
use reseal::esdk::{
    self, AlgorithmSuite, AuthenticationError, ContextError, DecryptCommitment, DecryptPolicy,
    EncryptCommitment, EncryptOptions, EncryptionContext, EncryptionMaterials, Error, FormatError,
    IdentitySet, LimitError, Limits, Message, SignedPolicy, SuiteRefusal,
};
use reseal::keys::{RawRsaKeyring, RsaPadding};

use crate::common::*;

fn opts(suite: AlgorithmSuite, frame_length: u32) -> EncryptOptions {
    EncryptOptions {
        suite,
        frame_length,
        commitment: EncryptCommitment::for_suite(suite),
        ..Default::default()
    }
}

fn connect_message() -> (Vec<u8>, IdentitySet) {
    let k = connect_keyring();
    let ct = esdk::encrypt(
        b"4111111111111111",
        &[&k],
        &[("purpose", "card")].into_iter().collect(),
        &opts(AlgorithmSuite::Aes256GcmIv12Tag16HkdfSha384EcdsaP384, 4096),
    )
    .unwrap();
    (ct, identities(vec![Arc::new(connect_keyring())]))
}

fn aes_message(
    suite: AlgorithmSuite,
    frame_length: u32,
    plaintext: &[u8],
) -> (Vec<u8>, IdentitySet) {
    let k = aes_keyring("p", "aes", 256);
    let ct = esdk::encrypt(
        plaintext,
        &[&k],
        &[("a", "b")].into_iter().collect(),
        &opts(suite, frame_length),
    )
    .unwrap();
    (ct, identities(vec![Arc::new(aes_keyring("p", "aes", 256))]))
}

fn open(ct: &[u8], ids: &IdentitySet) -> Result<Vec<u8>, Error> {
    esdk::decrypt(ct, ids, &DecryptPolicy::default(), None).map(|d| d.plaintext.as_bytes().to_vec())
}

#[test]
fn every_single_bit_flip_is_rejected() {
    let cases = [
        connect_message(),
        aes_message(
            AlgorithmSuite::Aes256GcmHkdfSha512CommitKey,
            8,
            b"0123456789abcdefXYZ",
        ),
        aes_message(
            AlgorithmSuite::Aes128GcmIv12Tag16NoKdf,
            0,
            b"legacy non-framed",
        ),
        aes_message(
            AlgorithmSuite::Aes256GcmHkdfSha512CommitKeyEcdsaP384,
            4096,
            b"signed+committed",
        ),
    ];
    for (ct, ids) in &cases {
        assert!(open(ct, ids).is_ok());
        let mut kinds = std::collections::HashSet::new();
        for bit in 0..ct.len() * 8 {
            let mut bad = ct.clone();
            bad[bit / 8] ^= 0x80 >> (bit % 8);
            match open(&bad, ids) {
                Ok(_) => panic!("bit {bit} flipped (byte {}) was accepted", bit / 8),
                Err(e) => {
                    kinds.insert(std::mem::discriminant(&e));
                }
            }
        }
        // Flips land in structure, keys and authentication alike.
        assert!(kinds.len() >= 3, "only {} error kinds seen", kinds.len());
    }
}

#[test]
fn every_truncation_is_rejected() {
    for (ct, ids) in [
        connect_message(),
        aes_message(
            AlgorithmSuite::Aes256GcmHkdfSha512CommitKey,
            5,
            b"0123456789abcdef",
        ),
        aes_message(AlgorithmSuite::Aes192GcmIv12Tag16HkdfSha256, 0, b"x"),
    ] {
        for len in 0..ct.len() {
            let err = open(&ct[..len], &ids).expect_err("truncated message accepted");
            assert!(
                matches!(err, Error::Format(FormatError::Truncated { .. })),
                "truncation at {len}: {err}"
            );
        }
    }
}

#[test]
fn trailing_bytes_are_rejected() {
    let (mut ct, ids) = connect_message();
    ct.push(0);
    assert_eq!(
        open(&ct, &ids).unwrap_err(),
        Error::Format(FormatError::TrailingBytes(1))
    );
    let (mut ct, ids) = aes_message(AlgorithmSuite::Aes256GcmHkdfSha512CommitKey, 4, b"abcdefgh");
    ct.extend_from_slice(b"junk");
    assert_eq!(
        open(&ct, &ids).unwrap_err(),
        Error::Format(FormatError::TrailingBytes(4))
    );
}

/// 50 bytes at frame length 16: three regular frames and a final frame of 2.
fn framed() -> (Vec<u8>, IdentitySet, usize) {
    let (ct, ids) = aes_message(AlgorithmSuite::Aes256GcmHkdfSha512CommitKey, 16, &[7u8; 50]);
    let header_len = Message::parse(&ct, &Limits::default())
        .unwrap()
        .header_len();
    (ct, ids, header_len)
}

const REGULAR: usize = 4 + 12 + 16 + 16;

fn frames(ct: &[u8], header_len: usize) -> (Vec<Vec<u8>>, Vec<u8>) {
    let body = &ct[header_len..];
    let regular: Vec<Vec<u8>> = (0..3)
        .map(|i| body[i * REGULAR..(i + 1) * REGULAR].to_vec())
        .collect();
    (regular, body[3 * REGULAR..].to_vec())
}

fn assemble(header: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut out = header.to_vec();
    for p in parts {
        out.extend_from_slice(p);
    }
    out
}

#[test]
fn reordered_duplicated_and_missing_frames_are_rejected() {
    let (ct, ids, hl) = framed();
    let header = &ct[..hl];
    let (f, last) = frames(&ct, hl);
    assert_eq!(
        open(&assemble(header, &[&f[0], &f[1], &f[2], &last]), &ids).unwrap(),
        vec![7u8; 50]
    );

    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("swapped", assemble(header, &[&f[1], &f[0], &f[2], &last])),
        (
            "duplicated",
            assemble(header, &[&f[0], &f[0], &f[1], &f[2], &last]),
        ),
        ("missing middle", assemble(header, &[&f[0], &f[2], &last])),
        ("missing final", assemble(header, &[&f[0], &f[1], &f[2]])),
        ("final only", assemble(header, &[&last])),
    ];
    for (what, msg) in cases {
        let err = open(&msg, &ids).expect_err(what);
        assert!(matches!(err, Error::Format(_)), "{what}: {err}");
    }

    // Swapped *and renumbered*: structure is fine, authentication is not.
    let mut a = f[1].clone();
    let mut b = f[0].clone();
    a[..4].copy_from_slice(&1u32.to_be_bytes());
    b[..4].copy_from_slice(&2u32.to_be_bytes());
    let err = open(&assemble(header, &[&a, &b, &f[2], &last]), &ids).unwrap_err();
    assert_eq!(
        err,
        Error::Authentication(AuthenticationError::Frame { sequence: 1 })
    );

    // A frame lifted from another message under the same key.
    let (other, _, hl2) = framed();
    let (g, _) = frames(&other, hl2);
    let err = open(&assemble(header, &[&f[0], &g[1], &f[2], &last]), &ids).unwrap_err();
    assert_eq!(
        err,
        Error::Authentication(AuthenticationError::Frame { sequence: 2 })
    );
}

#[test]
fn wrong_or_missing_key() {
    let (ct, _) = connect_message();
    let err = open(&ct, &IdentitySet::new()).unwrap_err();
    match &err {
        Error::NoMatchingKey { edks } => {
            assert_eq!(edks[0].provider_id, "AmazonConnect");
            assert_eq!(edks[0].key_name, CONNECT_KEY_ID);
        }
        other => panic!("unexpected {other}"),
    }
    assert!(err.to_string().contains(CONNECT_KEY_ID));

    let impostor = RawRsaKeyring::from_private_pem(
        "AmazonConnect",
        CONNECT_KEY_ID,
        RsaPadding::OaepSha512,
        other_rsa_2048_pem().0.as_bytes(),
    )
    .unwrap();
    let err = open(&ct, &identities(vec![Arc::new(impostor)])).unwrap_err();
    assert!(matches!(err, Error::UnwrapFailed { .. }), "{err}");

    // Right key, wrong padding.
    let err = open(
        &ct,
        &identities(vec![Arc::new(rsa_keyring(
            "AmazonConnect",
            CONNECT_KEY_ID,
            RsaPadding::OaepSha256,
        ))]),
    )
    .unwrap_err();
    assert!(matches!(err, Error::UnwrapFailed { .. }), "{err}");

    // Same AES key name, different key bytes.
    let (ct, _) = aes_message(AlgorithmSuite::Aes256GcmHkdfSha512CommitKey, 4096, b"x");
    let wrong = reseal::keys::RawAesKeyring::new("p", "aes", &[9u8; 32]).unwrap();
    assert!(matches!(
        open(&ct, &identities(vec![Arc::new(wrong)])).unwrap_err(),
        Error::UnwrapFailed { .. }
    ));
}

#[test]
fn required_context_must_be_supplied_and_match() {
    let k = aes_keyring("p", "aes", 256);
    let ctx: EncryptionContext = [("tenant", "a"), ("stored", "b")].into_iter().collect();
    let mut m =
        EncryptionMaterials::generate(AlgorithmSuite::Aes256GcmHkdfSha512CommitKey, ctx).unwrap();
    m.require_keys(["tenant"]).unwrap();
    m.wrap_for(&k).unwrap();
    let ct = esdk::seal(b"hello", &m, 4096).unwrap();
    let ids = identities(vec![Arc::new(aes_keyring("p", "aes", 256))]);
    let p = DecryptPolicy::default();
    // Not supplied: the AES wrapping AAD (and header tag) no longer match.
    assert!(esdk::decrypt(&ct, &ids, &p, None).is_err());
    let wrong: EncryptionContext = [("tenant", "z")].into_iter().collect();
    assert!(esdk::decrypt(&ct, &ids, &p, Some(&wrong)).is_err());
    let mismatch: EncryptionContext = [("tenant", "a"), ("stored", "other")].into_iter().collect();
    assert_eq!(
        esdk::decrypt(&ct, &ids, &p, Some(&mismatch)).err(),
        Some(Error::Context(ContextError::Mismatch {
            key: "stored".into()
        }))
    );
    // With an RSA keyring (whose wrapping ignores the context) the header tag is what catches it.
    let rsa = rsa_keyring("p", "rsa", RsaPadding::OaepSha256);
    let ctx: EncryptionContext = [("tenant", "a")].into_iter().collect();
    let mut m =
        EncryptionMaterials::generate(AlgorithmSuite::Aes256GcmIv12Tag16HkdfSha256, ctx).unwrap();
    m.require_keys(["tenant"]).unwrap();
    m.wrap_for(&rsa).unwrap();
    let ct = esdk::seal(b"hello", &m, 4096).unwrap();
    let ids = identities(vec![Arc::new(rsa_keyring(
        "p",
        "rsa",
        RsaPadding::OaepSha256,
    ))]);
    assert_eq!(
        esdk::decrypt(&ct, &ids, &p, Some(&wrong)).err(),
        Some(Error::Authentication(AuthenticationError::HeaderTag))
    );
}

#[test]
fn commitment_and_header_tampering_have_precise_errors() {
    let rsa = rsa_keyring("p", "rsa", RsaPadding::OaepSha256);
    let ct = esdk::encrypt(
        b"x",
        &[&rsa],
        &[("k", "v")].into_iter().collect(),
        &EncryptOptions::default(),
    )
    .unwrap();
    let ids = identities(vec![Arc::new(rsa_keyring(
        "p",
        "rsa",
        RsaPadding::OaepSha256,
    ))]);
    let msg = Message::parse(&ct, &Limits::default()).unwrap();
    // The commitment sits just before the 16-byte header tag.
    let mut bad = ct.clone();
    bad[msg.header_len() - 16 - 1] ^= 1;
    assert_eq!(
        open(&bad, &ids).unwrap_err(),
        Error::Authentication(AuthenticationError::Commitment)
    );
    // The context value "v" is authenticated by the header tag.
    let pos = ct.windows(3).position(|w| w == b"\x00\x01v").unwrap() + 2;
    let mut bad = ct.clone();
    bad[pos] = b'w';
    assert_eq!(
        open(&bad, &ids).unwrap_err(),
        Error::Authentication(AuthenticationError::HeaderTag)
    );
}

#[test]
fn signature_rules() {
    let k = aes_keyring("p", "aes", 256);
    let suite = AlgorithmSuite::Aes256GcmHkdfSha512CommitKeyEcdsaP384;
    let a = esdk::encrypt(
        b"same",
        &[&k],
        &EncryptionContext::new(),
        &opts(suite, 4096),
    )
    .unwrap();
    let b = esdk::encrypt(
        b"same",
        &[&k],
        &EncryptionContext::new(),
        &opts(suite, 4096),
    )
    .unwrap();
    let ids = identities(vec![Arc::new(aes_keyring("p", "aes", 256))]);
    // Another message's signature does not verify this one.
    let mut swapped = a[..a.len() - 103].to_vec();
    swapped.extend_from_slice(&b[b.len() - 103..]);
    assert_eq!(
        open(&swapped, &ids).unwrap_err(),
        Error::Authentication(AuthenticationError::Signature)
    );

    // "Half-signed": an unsigned suite carrying a verification key must be refused.
    let unsigned = esdk::encrypt(
        b"x",
        &[&k],
        &EncryptionContext::new(),
        &EncryptOptions::default(),
    )
    .unwrap();
    let mut msg = Message::parse(&unsigned, &Limits::default()).unwrap();
    msg.header
        .encryption_context
        .insert(PUBLIC_KEY_FIELD, "AAAA");
    assert_eq!(
        msg.decryption_context(None).err(),
        Some(Error::Context(ContextError::UnexpectedVerificationKey))
    );
    // Callers cannot set reserved keys.
    let reserved: EncryptionContext = [(PUBLIC_KEY_FIELD, "x")].into_iter().collect();
    assert!(matches!(
        esdk::encrypt(b"x", &[&k], &reserved, &EncryptOptions::default()),
        Err(Error::Context(ContextError::ReservedKey { .. }))
    ));
}

#[test]
fn policies_refuse_before_any_key_is_used() {
    let (ct, ids) = connect_message();
    let refuse = |p: DecryptPolicy| esdk::decrypt(&ct, &ids, &p, None).err();
    assert_eq!(
        refuse(DecryptPolicy {
            commitment: DecryptCommitment::Require,
            ..Default::default()
        }),
        Some(Error::SuiteNotAllowed {
            suite: AlgorithmSuite::Aes256GcmIv12Tag16HkdfSha384EcdsaP384,
            reason: SuiteRefusal::CommitmentRequired
        })
    );
    assert!(matches!(
        refuse(DecryptPolicy {
            signed: SignedPolicy::Forbid,
            ..Default::default()
        }),
        Some(Error::SuiteNotAllowed {
            reason: SuiteRefusal::SignedForbidden,
            ..
        })
    ));
    assert!(matches!(
        refuse(DecryptPolicy {
            allowed_suites: Some(
                [AlgorithmSuite::Aes256GcmHkdfSha512CommitKey]
                    .into_iter()
                    .collect()
            ),
            ..Default::default()
        }),
        Some(Error::SuiteNotAllowed {
            reason: SuiteRefusal::NotAllowed,
            ..
        })
    ));
    // Encrypt defaults to committed suites.
    let k = aes_keyring("p", "aes", 256);
    assert!(esdk::encrypt(
        b"x",
        &[&k],
        &EncryptionContext::new(),
        &EncryptOptions {
            suite: AlgorithmSuite::Aes256GcmIv12Tag16HkdfSha384EcdsaP384,
            ..Default::default()
        }
    )
    .is_err());
}

#[test]
fn limits_are_enforced_early() {
    // 20 EDKs against the default limit of 16.
    let keys: Vec<_> = (0..20)
        .map(|i| aes_keyring("p", &format!("k{i}"), 256))
        .collect();
    let mut m = EncryptionMaterials::generate(
        AlgorithmSuite::Aes256GcmHkdfSha512CommitKey,
        EncryptionContext::new(),
    )
    .unwrap();
    for k in &keys {
        m.wrap_for(k).unwrap();
    }
    let ct = esdk::seal(b"x", &m, 4096).unwrap();
    let ids = identities(vec![Arc::new(aes_keyring("p", "k0", 256))]);
    assert_eq!(
        open(&ct, &ids).unwrap_err(),
        Error::Limit(LimitError::TooManyDataKeys { count: 20, max: 16 })
    );
    let lenient = DecryptPolicy {
        limits: Limits {
            max_encrypted_data_keys: 32,
            ..Default::default()
        },
        ..Default::default()
    };
    assert!(esdk::decrypt(&ct, &ids, &lenient, None).is_ok());

    let (ct, ids) = aes_message(AlgorithmSuite::Aes256GcmHkdfSha512CommitKey, 1, &[1u8; 100]);
    let with = |limits: Limits| {
        esdk::decrypt(
            &ct,
            &ids,
            &DecryptPolicy {
                limits,
                ..Default::default()
            },
            None,
        )
        .err()
    };
    assert_eq!(
        with(Limits {
            max_frames: 10,
            ..Default::default()
        }),
        Some(Error::Limit(LimitError::TooManyFrames { max: 10 }))
    );
    assert_eq!(
        with(Limits {
            max_body_bytes: 100,
            ..Default::default()
        }),
        Some(Error::Limit(LimitError::BodyTooLarge { max: 100 }))
    );
    assert_eq!(
        with(Limits {
            max_header_bytes: 64,
            ..Default::default()
        }),
        Some(Error::Limit(LimitError::HeaderTooLarge { max: 64 }))
    );
    assert!(matches!(
        with(Limits {
            max_encryption_context_bytes: 2,
            ..Default::default()
        }),
        Some(Error::Limit(LimitError::EncryptionContextTooLarge { .. }))
    ));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, .. ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let ids = identities(vec![Arc::new(aes_keyring("p", "aes", 256))]);
        let _ = open(&bytes, &ids);
        let _ = reseal::esdk::Header::parse(&bytes, &Limits::default());
    }

    #[test]
    fn mutated_messages_never_panic_and_never_open(
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
        cut in any::<Option<usize>>(),
    ) {
        let (ct, ids) = aes_message(AlgorithmSuite::Aes256GcmHkdfSha512CommitKey, 8, b"some plaintext here");
        let mut bad = ct.clone();
        for (pos, val) in edits {
            let i = pos % bad.len();
            bad[i] = val;
        }
        if let Some(c) = cut {
            bad.truncate(c % (bad.len() + 1));
        }
        if bad != ct {
            prop_assert!(open(&bad, &ids).is_err());
        }
    }
}
