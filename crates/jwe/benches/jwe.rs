//! One envelope sealed per key type (16-byte payload, a reseal-sized
//! context), next to the bare aws-lc-rs cost of the same primitives: what the
//! JWE layer (headers, JSON, base64url) adds.
//!
//! ```sh
//! cargo bench --bench jwe -- --warm-up-time 1 --measurement-time 3
//! ```

use std::collections::BTreeMap;
use std::hint::black_box;

use aws_lc_rs::aead::{Aad, RandomizedNonceKey, AES_256_GCM};
use aws_lc_rs::agreement::{self, EphemeralPrivateKey, ParsedPublicKey, UnparsedPublicKey};
use aws_lc_rs::digest;
use aws_lc_rs::encoding::{AsDer, PublicKeyX509Der};
use aws_lc_rs::key_wrap::{AesKek, KeyWrap, AES_256};
use aws_lc_rs::rand::{self, SystemRandom};
use aws_lc_rs::rsa::{
    KeySize, OaepPublicEncryptingKey, PrivateDecryptingKey, PublicEncryptingKey,
    OAEP_SHA256_MGF1SHA256,
};
use criterion::{criterion_group, criterion_main, Criterion};
use reseal_jwe::{seal, Recipient, SealOptions};

const PAYLOAD: &[u8; 16] = b"4111111111111111";

fn context() -> BTreeMap<String, String> {
    [
        ("consumer", "orders"),
        ("source_key_id", "connect-2025"),
        ("request_id", "3f1c2a9e-5b7d-4e8f-9a0b-1c2d3e4f5a6b"),
        ("source_message_id", "q83vEjRWeJq83vEjRWeJqw"),
        (
            "aws:connect:InstanceId",
            "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

fn gcm(cek: &[u8; 32]) -> usize {
    let key = RandomizedNonceKey::new(&AES_256_GCM, cek).unwrap();
    let mut buffer = PAYLOAD.to_vec();
    let (nonce, tag) = key
        .seal_in_place_separate_tag(Aad::from(&b"header"[..]), &mut buffer)
        .unwrap();
    nonce.as_ref().len() + tag.as_ref().len() + buffer.len()
}

fn cek() -> [u8; 32] {
    let mut cek = [0u8; 32];
    rand::fill(&mut cek).unwrap();
    cek
}

fn kw(kek: &[u8], cek: &[u8; 32]) -> [u8; 40] {
    let mut out = [0u8; 40];
    AesKek::new(&AES_256, kek)
        .unwrap()
        .wrap(cek, &mut out)
        .unwrap();
    out
}

fn concat_kdf(z: &[u8]) -> [u8; 32] {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(&1u32.to_be_bytes());
    ctx.update(z);
    for field in [&b"ECDH-ES+A256KW"[..], b"", b""] {
        ctx.update(&(field.len() as u32).to_be_bytes());
        ctx.update(field);
    }
    ctx.update(&256u32.to_be_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

fn bench(c: &mut Criterion) {
    let ctx = context();
    let options = SealOptions {
        context: Some(&ctx),
        ..SealOptions::default()
    };

    // RSA-OAEP-256, 2048 bits.
    let rsa = PrivateDecryptingKey::generate(KeySize::Rsa2048).unwrap();
    let rsa_spki: PublicKeyX509Der<'static> = rsa.public_key().as_der().unwrap();
    let recipient = [Recipient::rsa_oaep_256("rsa", rsa_spki.as_ref()).unwrap()];
    let public = PublicEncryptingKey::from_der(rsa_spki.as_ref()).unwrap();
    let mut group = c.benchmark_group("RSA-OAEP-256 2048");
    group.bench_function("jwe seal (compact)", |b| {
        b.iter(|| seal(black_box(PAYLOAD), &recipient, &options).unwrap())
    });
    group.bench_function("aws-lc: OAEP encrypt + GCM seal", |b| {
        b.iter(|| {
            let cek = cek();
            let oaep = OaepPublicEncryptingKey::new(public.clone()).unwrap();
            let mut out = [0u8; 256];
            oaep.encrypt(&OAEP_SHA256_MGF1SHA256, &cek, &mut out, None)
                .unwrap();
            black_box(out);
            gcm(&cek)
        })
    });
    group.finish();

    // ECDH-ES+A256KW, P-256 and P-384.
    for (name, alg) in [
        ("ECDH-ES+A256KW P-256", &agreement::ECDH_P256),
        ("ECDH-ES+A256KW P-384", &agreement::ECDH_P384),
    ] {
        let static_key = agreement::PrivateKey::generate(alg).unwrap();
        let spki: PublicKeyX509Der<'static> =
            static_key.compute_public_key().unwrap().as_der().unwrap();
        let recipient = [Recipient::ecdh_es_a256kw("ec", spki.as_ref()).unwrap()];
        let peer = ParsedPublicKey::try_from(UnparsedPublicKey::new(alg, spki.as_ref())).unwrap();
        let mut group = c.benchmark_group(name);
        group.bench_function("jwe seal (compact)", |b| {
            b.iter(|| seal(black_box(PAYLOAD), &recipient, &options).unwrap())
        });
        group.bench_function("aws-lc: keygen + ECDH + KDF + KW + GCM", |b| {
            b.iter(|| {
                let cek = cek();
                let ephemeral = EphemeralPrivateKey::generate(alg, &SystemRandom::new()).unwrap();
                let epk = ephemeral.compute_public_key().unwrap();
                black_box(epk.as_ref());
                let kek =
                    agreement::agree_ephemeral(ephemeral, peer.clone(), (), |z| Ok(concat_kdf(z)))
                        .unwrap();
                black_box(kw(&kek, &cek));
                gcm(&cek)
            })
        });
        group.finish();
    }

    // A256KW.
    let aes = [7u8; 32];
    let recipient = [Recipient::a256kw("aes", &aes).unwrap()];
    let mut group = c.benchmark_group("A256KW");
    group.bench_function("jwe seal (compact)", |b| {
        b.iter(|| seal(black_box(PAYLOAD), &recipient, &options).unwrap())
    });
    group.bench_function("aws-lc: KW + GCM", |b| {
        b.iter(|| {
            let cek = cek();
            black_box(kw(&aes, &cek));
            gcm(&cek)
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
