//! Fuzz target: arbitrary bytes through header parsing, full-message parsing
//! and decryption with real keys. Any panic, overflow or hang is a bug.
//!
//! The keys are the raw keys of the public ESDK-.NET vectors when they are
//! present (so the vector ciphertexts, used as seed corpus, decrypt all the
//! way and mutations explore the deep paths), else fixed AES keys.
#![no_main]

use std::sync::{Arc, OnceLock};

use base64::Engine as _;
use libfuzzer_sys::fuzz_target;
use reseal::esdk::{self, DecryptPolicy, Header, IdentitySet, Limits, Message};
use reseal::keys::{RawAesKeyring, RawRsaKeyring, RsaPadding};

fn identities() -> &'static IdentitySet {
    static IDS: OnceLock<IdentitySet> = OnceLock::new();
    IDS.get_or_init(|| {
        let mut ids = IdentitySet::new();
        let provider = "aws-raw-vectors-persistant";
        let keys = std::env::var("RESEAL_FUZZ_KEYS")
            .unwrap_or_else(|_| "../../shared/vectors/esdk-net-4.0.1/keys.json".into());
        if let Ok(text) = std::fs::read_to_string(&keys) {
            let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
            if let Some(m) = v["keys"]["aes-256"]["material"].as_str() {
                if let Ok(k) = base64::engine::general_purpose::STANDARD.decode(m) {
                    if let Ok(ring) = RawAesKeyring::new(provider, "aes-256", &k) {
                        ids.insert(Arc::new(ring));
                    }
                }
            }
            if let Some(pem) = v["keys"]["rsa-4096-private"]["material"].as_str() {
                for padding in [RsaPadding::OaepSha256, RsaPadding::OaepSha512, RsaPadding::OaepSha1, RsaPadding::Pkcs1] {
                    if let Ok(ring) = RawRsaKeyring::from_private_pem(provider, "rsa-4096-private", padding, pem.as_bytes()) {
                        ids.insert(Arc::new(ring));
                    }
                }
            }
        }
        for (name, len) in [("aes-128", 16), ("aes-256", 32)] {
            if let Ok(ring) = RawAesKeyring::new("fuzz", name, &vec![7u8; len]) {
                ids.insert(Arc::new(ring));
            }
        }
        ids
    })
}

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    let _ = Header::parse(data, &limits);
    if let Ok(message) = Message::parse(data, &limits) {
        let _ = message.decryption_context(None);
    }
    let _ = esdk::decrypt(data, identities(), &DecryptPolicy::default(), None);
    let _ = reseal::input::message_bytes(data);
});
