//! Engine cost next to the bare aws-lc-rs cost of the same primitive work,
//! measured in the same run, for a 16-byte payload (a card number).
//!
//! * `connect_decrypt`: an Amazon Connect-shaped message (0x0378, RSA-2048
//!   OAEP-SHA512, frame 4096). Primitives: RSA-OAEP decrypt of the EDK,
//!   HKDF-SHA384, AES-256-GCM open of the header tag and the frame, ECDSA
//!   P-384 verify from the compressed key.
//! * `encrypt_0478` / `encrypt_0578`: one RSA-2048 OAEP-SHA256 recipient.
//!   Primitives: random data key and message id, RSA-OAEP encrypt,
//!   HKDF-SHA512 (key and commitment), AES-256-GCM seal of header and frame;
//!   for 0x0578 also P-384 key generation, compressed-point encoding and signing.
//! * `p384_decompress`: the signer's key of a signed message, from its
//!   compressed form to a parsed key: reseal's decompression then aws-lc-rs's
//!   parse of the full point, against aws-lc-rs's parse of the compressed one.
//!
//! Run: `cargo bench --bench engine` (results in BENCHMARKS.md).

use std::hint::black_box;
use std::sync::Arc;

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use aws_lc_rs::encoding::{AsBigEndian, EcPublicKeyCompressedBin};
use aws_lc_rs::hmac;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{
    OaepPrivateDecryptingKey, OaepPublicEncryptingKey, PrivateDecryptingKey,
    OAEP_SHA256_MGF1SHA256, OAEP_SHA512_MGF1SHA512,
};
use aws_lc_rs::signature::{
    EcdsaKeyPair, KeyPair, UnparsedPublicKey, ECDSA_P384_SHA384_ASN1,
    ECDSA_P384_SHA384_ASN1_SIGNING,
};
use base64::Engine as _;
use criterion::{criterion_group, criterion_main, Criterion};
use reseal::esdk::{
    self, AlgorithmSuite, DecryptPolicy, EncryptCommitment, EncryptOptions, EncryptionContext,
    IdentitySet, Message,
};
use reseal::keys::{raw_rsa, RawRsaKeyring, RsaPadding};

const CARD: &[u8; 16] = b"4111111111111111";

/// HKDF extract as the engine does it: the PRK as an HMAC key.
fn hkdf_extract(alg: hmac::Algorithm, salt: &[u8], ikm: &[u8]) -> hmac::Key {
    hmac::Key::new(alg, hmac::sign(&hmac::Key::new(alg, salt), ikm).as_ref())
}

/// HKDF expand for at most one hash length: HMAC(PRK, info ‖ 0x01).
fn hkdf_expand(prk: &hmac::Key, info: &[&[u8]], out: &mut [u8]) {
    let mut ctx = hmac::Context::with_key(prk);
    for part in info {
        ctx.update(part);
    }
    ctx.update(&[1]);
    out.copy_from_slice(&ctx.sign().as_ref()[..out.len()]);
}

fn connect_decrypt(c: &mut Criterion) {
    let (private_pem, public_pem) = raw_rsa::generate_pem(2048).unwrap();
    let key_id = "6f1f2d3c-5a7b-4c8d-9e0f-1a2b3c4d5e6f";
    let sender = RawRsaKeyring::from_public_pem(
        "AmazonConnect",
        key_id,
        RsaPadding::OaepSha512,
        public_pem.as_bytes(),
    )
    .unwrap();
    let suite = AlgorithmSuite::Aes256GcmIv12Tag16HkdfSha384EcdsaP384;
    let ct = esdk::encrypt(
        CARD,
        &[&sender],
        &EncryptionContext::new(),
        &EncryptOptions {
            suite,
            frame_length: 4096,
            commitment: EncryptCommitment::Forbid,
            ..Default::default()
        },
    )
    .unwrap();
    let mut ids = IdentitySet::new();
    ids.insert(Arc::new(
        RawRsaKeyring::from_private_pem(
            "AmazonConnect",
            key_id,
            RsaPadding::OaepSha512,
            private_pem.as_bytes(),
        )
        .unwrap(),
    ));
    let policy = DecryptPolicy::default();

    // Inputs for the bare primitives, cut out of the same message.
    let msg = Message::parse(&ct, &Default::default()).unwrap();
    let header = &msg.header;
    let edk = header.encrypted_data_keys[0].ciphertext.clone();
    let header_len = msg.header_len();
    let header_body = ct[..header_len - 12 - 16].to_vec();
    let header_tag = ct[header_len - 16..header_len].to_vec();
    let frame = &ct[header_len..];
    // final frame: marker(4) seq(4) iv(12) len(4) content(16) tag(16)
    let frame_iv = frame[8..20].to_vec();
    let frame_ct = frame[24..40].to_vec();
    let frame_tag = frame[40..56].to_vec();
    let signed_len = header_len + 56;
    let signature = ct[signed_len + 2..].to_vec();
    let public_b64 = header
        .encryption_context
        .get("aws-crypto-public-key")
        .unwrap()
        .to_owned();
    let message_id = header.message_id.clone();
    let rsa = OaepPrivateDecryptingKey::new(
        PrivateDecryptingKey::from_pkcs8(
            &reseal::keys::pem::parse_all(private_pem.as_bytes()).unwrap()[0].der,
        )
        .unwrap(),
    )
    .unwrap();
    let mut frame_aad = message_id.clone();
    frame_aad.extend_from_slice(b"AWSKMSEncryptionClient Final Frame");
    frame_aad.extend_from_slice(&1u32.to_be_bytes());
    frame_aad.extend_from_slice(&16u64.to_be_bytes());

    let mut g = c.benchmark_group("connect_decrypt_16B");
    g.bench_function("engine", |b| {
        b.iter(|| {
            let out = esdk::decrypt(black_box(&ct), &ids, &policy, None).unwrap();
            black_box(out.plaintext.len());
        })
    });
    // Parsing borrows the input (no copy of the body): a guard on zero-copy parsing.
    g.bench_function("parse_only", |b| {
        b.iter(|| black_box(Message::parse(black_box(&ct[..]), &Default::default()).unwrap()))
    });
    g.bench_function("primitives", |b| {
        b.iter(|| {
            let mut buf = [0u8; 256];
            let dk = rsa
                .decrypt(&OAEP_SHA512_MGF1SHA512, black_box(&edk), &mut buf, None)
                .unwrap();
            let prk = hkdf_extract(hmac::HMAC_SHA384, &[0u8; 48], dk);
            let mut key = [0u8; 32];
            hkdf_expand(&prk, &[&suite.id_bytes(), &message_id], &mut key);
            let aead = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &key).unwrap());
            aead.open_separate_gather(
                Nonce::assume_unique_for_key([0u8; 12]),
                Aad::from(&header_body),
                &[],
                &header_tag,
                &mut [],
            )
            .unwrap();
            let mut pt = [0u8; 16];
            aead.open_separate_gather(
                Nonce::try_assume_unique_for_key(&frame_iv).unwrap(),
                Aad::from(&frame_aad),
                &frame_ct,
                &frame_tag,
                &mut pt,
            )
            .unwrap();
            let point = base64::engine::general_purpose::STANDARD
                .decode(&public_b64)
                .unwrap();
            UnparsedPublicKey::new(&ECDSA_P384_SHA384_ASN1, &point)
                .verify(&ct[..signed_len], &signature)
                .unwrap();
            black_box(pt);
        })
    });
    g.finish();
}

fn p384_decompress(c: &mut Criterion) {
    let pair = EcdsaKeyPair::generate(&ECDSA_P384_SHA384_ASN1_SIGNING).unwrap();
    let compressed: EcPublicKeyCompressedBin<'_> = pair.public_key().as_be_bytes().unwrap();
    let compressed: [u8; 49] = compressed.as_ref().try_into().unwrap();
    let mut g = c.benchmark_group("p384_decompress");
    g.bench_function("engine", |b| {
        b.iter(|| {
            let point = esdk::p384::decompress(black_box(&compressed)).unwrap();
            black_box(
                UnparsedPublicKey::new(&ECDSA_P384_SHA384_ASN1, point)
                    .parse()
                    .unwrap(),
            );
        })
    });
    g.bench_function("aws_lc_rs", |b| {
        b.iter(|| {
            let key = UnparsedPublicKey::new(&ECDSA_P384_SHA384_ASN1, black_box(&compressed));
            black_box(key.parse().unwrap());
        })
    });
    g.finish();
}

fn encrypt(c: &mut Criterion, suite: AlgorithmSuite, name: &str) {
    let (_private_pem, public_pem) = raw_rsa::generate_pem(2048).unwrap();
    let recipient = RawRsaKeyring::from_public_pem(
        "reseal",
        "consumer-key",
        RsaPadding::OaepSha256,
        public_pem.as_bytes(),
    )
    .unwrap();
    let public =
        OaepPublicEncryptingKey::new(raw_rsa::parse_public_key_pem(public_pem.as_bytes()).unwrap())
            .unwrap();
    let options = EncryptOptions {
        suite,
        frame_length: 4096,
        ..Default::default()
    };
    let ec = EncryptionContext::new();
    let header_aad = vec![0x5au8; 330]; // a serialized v2 header body of this shape is ~330 bytes
    let mut g = c.benchmark_group(name);
    g.bench_function("engine", |b| {
        b.iter(|| black_box(esdk::encrypt(black_box(CARD), &[&recipient], &ec, &options).unwrap()))
    });
    g.bench_function("primitives", |b| {
        b.iter(|| {
            let mut data_key = [0u8; 32];
            let mut message_id = [0u8; 32];
            aws_lc_rs::rand::fill(&mut data_key).unwrap();
            aws_lc_rs::rand::fill(&mut message_id).unwrap();
            let signer = suite.is_signed().then(|| {
                let pair = EcdsaKeyPair::generate(&ECDSA_P384_SHA384_ASN1_SIGNING).unwrap();
                let compressed: EcPublicKeyCompressedBin<'_> =
                    pair.public_key().as_be_bytes().unwrap();
                black_box(base64::engine::general_purpose::STANDARD.encode(compressed.as_ref()));
                pair
            });
            let mut edk = [0u8; 256];
            public
                .encrypt(&OAEP_SHA256_MGF1SHA256, &data_key, &mut edk, None)
                .unwrap();
            let prk = hkdf_extract(hmac::HMAC_SHA512, &message_id, &data_key);
            let mut key = [0u8; 32];
            let mut commit = [0u8; 32];
            hkdf_expand(&prk, &[&suite.id_bytes(), b"DERIVEKEY"], &mut key);
            hkdf_expand(&prk, &[b"COMMITKEY"], &mut commit);
            let aead = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &key).unwrap());
            let t1 = aead
                .seal_in_place_separate_tag(
                    Nonce::assume_unique_for_key([0u8; 12]),
                    Aad::from(&header_aad),
                    &mut [],
                )
                .unwrap();
            let mut body = *CARD;
            let t2 = aead
                .seal_in_place_separate_tag(
                    Nonce::assume_unique_for_key([0u8; 12]),
                    Aad::from(&message_id),
                    &mut body,
                )
                .unwrap();
            if let Some(pair) = signer {
                let sig = pair.sign(&SystemRandom::new(), &header_aad).unwrap();
                black_box(sig);
            }
            let _ = black_box((edk, t1, t2, body, commit));
        })
    });
    g.finish();
}

fn encrypt_0478(c: &mut Criterion) {
    encrypt(
        c,
        AlgorithmSuite::Aes256GcmHkdfSha512CommitKey,
        "encrypt_0478_16B",
    );
}

fn encrypt_0578(c: &mut Criterion) {
    encrypt(
        c,
        AlgorithmSuite::Aes256GcmHkdfSha512CommitKeyEcdsaP384,
        "encrypt_0578_16B",
    );
}

criterion_group!(
    benches,
    connect_decrypt,
    p384_decompress,
    encrypt_0478,
    encrypt_0578
);
criterion_main!(benches);
