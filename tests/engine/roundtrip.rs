//! Encrypt → decrypt round trips over every suite, frame length and context shape.

use std::sync::Arc;

use proptest::prelude::*;
use reseal::esdk::{
    self, AlgorithmSuite, DecryptPolicy, EncryptCommitment, EncryptOptions, EncryptionContext,
    EncryptionMaterials, Identity, Message, Recipient,
};
use reseal::keys::RsaPadding;

use crate::common::*;

fn options(suite: AlgorithmSuite, frame_length: u32) -> EncryptOptions {
    EncryptOptions {
        suite,
        frame_length,
        commitment: EncryptCommitment::for_suite(suite),
        ..Default::default()
    }
}

fn context_strategy() -> impl Strategy<Value = EncryptionContext> {
    // Keys and values drawn from ASCII, Latin-1, CJK and astral-plane characters.
    let text = "[a-zA-Z0-9éß日本語😀\\-_ ]{0,12}";
    proptest::collection::btree_map(text, text, 0..4).prop_map(|m| {
        m.into_iter()
            .filter(|(k, _)| !k.starts_with("aws-crypto-"))
            .collect::<EncryptionContext>()
    })
}

/// Frame lengths that matter for a plaintext of `len` bytes: 1, small, 4096,
/// exactly `len`, and `len ± 1`.
fn frame_lengths(len: usize) -> Vec<u32> {
    let mut v = vec![1, 7, 4096];
    for f in [len.saturating_sub(1), len, len + 1] {
        if f > 0 {
            v.push(f as u32);
        }
    }
    v
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]

    #[test]
    fn every_suite_round_trips(
        suite_idx in 0..AlgorithmSuite::ALL.len(),
        plaintext in proptest::collection::vec(any::<u8>(), 0..600),
        frame_pick in 0usize..6,
        ctx in context_strategy(),
        use_aes in any::<bool>(),
    ) {
        let suite = AlgorithmSuite::ALL[suite_idx];
        let frames = frame_lengths(plaintext.len());
        let frame_length = frames[frame_pick % frames.len()];
        let rsa = rsa_keyring("prov", "rsa-key", RsaPadding::OaepSha256);
        let aes = aes_keyring("prov", "aes-key", 256);
        let recipient: &dyn Recipient = if use_aes { &aes } else { &rsa };
        let ct = esdk::encrypt(&plaintext, &[recipient], &ctx, &options(suite, frame_length)).unwrap();
        let ids = identities(vec![Arc::new(rsa_keyring("prov", "rsa-key", RsaPadding::OaepSha256)), Arc::new(aes_keyring("prov", "aes-key", 256))]);
        let out = esdk::decrypt(&ct, &ids, &DecryptPolicy::default(), None).unwrap();
        prop_assert_eq!(out.plaintext.as_bytes(), &plaintext[..]);
        prop_assert_eq!(out.header.suite, suite);
        for (k, v) in ctx.iter() {
            prop_assert_eq!(out.header.encryption_context.get(k), Some(v));
        }
        let expected_frames = if plaintext.is_empty() { 1 } else { plaintext.len().div_ceil(frame_length as usize) };
        prop_assert_eq!(Message::parse(&ct, &Default::default()).unwrap().frame_count(), expected_frames);
    }
}

#[test]
fn every_suite_every_key_kind_and_non_framed() {
    let paddings = [
        RsaPadding::Pkcs1,
        RsaPadding::OaepSha1,
        RsaPadding::OaepSha256,
        RsaPadding::OaepSha384,
        RsaPadding::OaepSha512,
    ];
    let ctx: EncryptionContext = [("clé", "välue"), ("日本", "😀")].into_iter().collect();
    for suite in AlgorithmSuite::ALL {
        for frame_length in [0u32, 1, 4096] {
            for padding in paddings {
                let k = rsa_keyring("p", "rsa", padding);
                let ct = esdk::encrypt(
                    b"4111111111111111",
                    &[&k],
                    &ctx,
                    &options(suite, frame_length),
                )
                .unwrap();
                let ids = identities(vec![Arc::new(rsa_keyring("p", "rsa", padding))]);
                let out = esdk::decrypt(&ct, &ids, &DecryptPolicy::default(), None).unwrap();
                assert_eq!(
                    out.plaintext.as_bytes(),
                    b"4111111111111111",
                    "{suite} {padding:?} f{frame_length}"
                );
            }
            for bits in [128, 192, 256] {
                let k = aes_keyring("p", "aes", bits);
                let ct = esdk::encrypt(b"", &[&k], &ctx, &options(suite, frame_length)).unwrap();
                let ids = identities(vec![Arc::new(aes_keyring("p", "aes", bits))]);
                let out = esdk::decrypt(&ct, &ids, &DecryptPolicy::default(), None).unwrap();
                assert!(out.plaintext.is_empty());
            }
        }
    }
}

#[test]
fn one_message_many_recipients_each_opens_it() {
    // Rotation: one envelope wrapped for an old and a new key; either opens it.
    let old = aes_keyring("consumer", "key-2025", 256);
    let new = rsa_keyring("consumer", "key-2026", RsaPadding::OaepSha256);
    let ct = esdk::encrypt(
        b"secret",
        &[&old, &new],
        &EncryptionContext::new(),
        &EncryptOptions::default(),
    )
    .unwrap();
    let header = Message::parse(&ct, &Default::default()).unwrap().header;
    assert_eq!(header.encrypted_data_keys.len(), 2);
    for id in [
        Arc::new(aes_keyring("consumer", "key-2025", 256)) as Arc<dyn Identity>,
        Arc::new(rsa_keyring("consumer", "key-2026", RsaPadding::OaepSha256)),
    ] {
        let name = String::from_utf8(id.key_name().to_vec()).unwrap();
        let out =
            esdk::decrypt(&ct, &identities(vec![id]), &DecryptPolicy::default(), None).unwrap();
        assert_eq!(out.plaintext.as_bytes(), b"secret");
        assert_eq!(out.opened_by.key_name, name);
    }
}

#[test]
fn required_context_round_trip() {
    let k = aes_keyring("p", "aes", 256);
    let ctx: EncryptionContext = [("tenant", "a"), ("stored", "b")].into_iter().collect();
    let mut materials =
        EncryptionMaterials::generate(AlgorithmSuite::Aes256GcmHkdfSha512CommitKey, ctx).unwrap();
    materials.require_keys(["tenant"]).unwrap();
    materials.wrap_for(&k).unwrap();
    let ct = esdk::seal(b"hello", &materials, 4096).unwrap();
    let header = Message::parse(&ct, &Default::default()).unwrap().header;
    assert_eq!(
        header.encryption_context.get("tenant"),
        None,
        "required-only key is not stored"
    );
    let ids = identities(vec![Arc::new(aes_keyring("p", "aes", 256))]);
    let reproduced: EncryptionContext = [("tenant", "a")].into_iter().collect();
    let out = esdk::decrypt(&ct, &ids, &DecryptPolicy::default(), Some(&reproduced)).unwrap();
    assert_eq!(out.plaintext.as_bytes(), b"hello");
}

#[test]
fn materials_reuse_gives_fresh_message_ids() {
    let k = aes_keyring("p", "aes", 256);
    let mut m = EncryptionMaterials::generate(
        AlgorithmSuite::Aes256GcmHkdfSha512CommitKey,
        EncryptionContext::new(),
    )
    .unwrap();
    m.wrap_for(&k).unwrap();
    let a = esdk::seal(b"x", &m, 4096).unwrap();
    let b = esdk::seal(b"x", &m, 4096).unwrap();
    let ha = Message::parse(&a, &Default::default()).unwrap().header;
    let hb = Message::parse(&b, &Default::default()).unwrap().header;
    assert_ne!(ha.message_id, hb.message_id);
    assert_ne!(a, b);
}

#[test]
fn connect_shaped_message() {
    let k = connect_keyring();
    let ct = esdk::encrypt(
        b"4111111111111111",
        &[&k],
        &EncryptionContext::new(),
        &options(AlgorithmSuite::Aes256GcmIv12Tag16HkdfSha384EcdsaP384, 4096),
    )
    .unwrap();
    let msg = Message::parse(&ct, &Default::default()).unwrap();
    assert_eq!(msg.header.suite.id(), 0x0378);
    assert_eq!(msg.header.frame_length, 4096);
    assert_eq!(
        msg.header.encrypted_data_keys[0].provider_id,
        "AmazonConnect"
    );
    assert_eq!(
        msg.header.encrypted_data_keys[0].provider_info,
        CONNECT_KEY_ID.as_bytes()
    );
    let out = esdk::decrypt(
        &ct,
        &identities(vec![Arc::new(connect_keyring())]),
        &DecryptPolicy::default(),
        None,
    )
    .unwrap();
    assert_eq!(out.plaintext.as_bytes(), b"4111111111111111");
}

/// The borrowed header writer that `seal` uses: re-writing a parsed header
/// gives back its exact bytes, and `HeaderBody::serialized_len` (which sizes the output
/// buffer once, so the plaintext is never left behind by a reallocation) is
/// the number of bytes written.
#[test]
fn header_body_rewrites_exactly_and_knows_its_length() {
    use reseal::esdk::{FormatVersion, Limits};
    let ctx: EncryptionContext = [("clé", "välue"), ("日本", "😀")].into_iter().collect();
    for suite in AlgorithmSuite::ALL {
        for context in [EncryptionContext::new(), ctx.clone()] {
            let a = rsa_keyring("p", "rsa-a", RsaPadding::OaepSha256);
            let b = aes_keyring("provider-b", "aes", 256);
            let ct = esdk::encrypt(
                b"4111111111111111",
                &[&a, &b],
                &context,
                &options(suite, 4096),
            )
            .unwrap();
            let m = Message::parse(&ct[..], &Limits::default()).unwrap();
            let body = m.header.body();
            let mut written = Vec::new();
            body.write(&mut written).unwrap();
            assert_eq!(body.serialized_len(), written.len(), "{suite}");
            let auth = match suite.format_version() {
                FormatVersion::V1 => 12 + 16,
                FormatVersion::V2 => 16,
            };
            assert_eq!(written.len() + auth, m.header_len(), "{suite}");
            assert_eq!(&ct[..written.len()], &written[..], "{suite}");
        }
    }
}
