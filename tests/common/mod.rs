//! Helpers shared by the integration tests: keys made once per test binary.
#![allow(dead_code)]

use std::sync::{Arc, OnceLock};

use reseal::esdk::{IdentitySet, Recipient};
use reseal::keys::{raw_rsa, RawAesKeyring, RawRsaKeyring, RsaPadding};

/// A generated RSA-2048 key pair as PEM, shared by every test in the binary.
pub fn rsa_2048_pem() -> &'static (String, String) {
    static KEY: OnceLock<(String, String)> = OnceLock::new();
    KEY.get_or_init(|| {
        let (private, public) = raw_rsa::generate_pem(2048).expect("keygen");
        (private.to_string(), public)
    })
}

/// A second, unrelated RSA-2048 key pair.
pub fn other_rsa_2048_pem() -> &'static (String, String) {
    static KEY: OnceLock<(String, String)> = OnceLock::new();
    KEY.get_or_init(|| {
        let (private, public) = raw_rsa::generate_pem(2048).expect("keygen");
        (private.to_string(), public)
    })
}

pub fn rsa_keyring(provider: &str, name: &str, padding: RsaPadding) -> RawRsaKeyring {
    RawRsaKeyring::from_private_pem(provider, name, padding, rsa_2048_pem().0.as_bytes())
        .expect("rsa keyring")
}

pub fn aes_keyring(provider: &str, name: &str, bits: usize) -> RawAesKeyring {
    let key: Vec<u8> = (0..bits / 8).map(|i| i as u8 ^ 0x5a).collect();
    RawAesKeyring::new(provider, name, &key).expect("aes keyring")
}

/// Amazon Connect's shape: provider `AmazonConnect`, key name = key id, OAEP-SHA512.
pub const CONNECT_KEY_ID: &str = "5b1f2c6e-8d3a-4f0b-9c7e-2a4d6e8f0a1b";

pub fn connect_keyring() -> RawRsaKeyring {
    rsa_keyring("AmazonConnect", CONNECT_KEY_ID, RsaPadding::OaepSha512)
}

pub fn identities(keyrings: Vec<Arc<dyn reseal::esdk::Identity>>) -> IdentitySet {
    let mut set = IdentitySet::new();
    for k in keyrings {
        set.insert(k);
    }
    set
}

pub fn as_recipients<'a>(keys: &'a [&'a dyn Recipient]) -> &'a [&'a dyn Recipient] {
    keys
}
