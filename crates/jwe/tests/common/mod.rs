//! Keys and helpers shared by the integration tests.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::OnceLock;

use aws_lc_rs::agreement;
use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der, PublicKeyX509Der};
use aws_lc_rs::rsa::{KeySize, PrivateDecryptingKey};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use reseal_jwe::{DecryptionKey, Recipient};

/// Throwaway keys that must be refused (made with Python's `cryptography`).
pub const RSA1024_SPKI: &str = "MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQCl3os/crQfgks9gkGAnC6yvwnW4+9YzTHqWnLBhJfk+u3Px8Nr5D8QXAtSLxGTebhJCyPgJDKS7/Y+qCqZDERw6ektS36kYD4rXAyk1VKMb7ioEaanPGhcDm5R09Ji8k4Q+UecPzHSzk5Pn2SBoAHe38u5PxhvnpAniddU06OBMQIDAQAB";
pub const RSA1024_PKCS8: &str = "MIICdwIBADANBgkqhkiG9w0BAQEFAASCAmEwggJdAgEAAoGBAKXeiz9ytB+CSz2CQYCcLrK/Cdbj71jNMepacsGEl+T67c/Hw2vkPxBcC1IvEZN5uEkLI+AkMpLv9j6oKpkMRHDp6S1LfqRgPitcDKTVUoxvuKgRpqc8aFwOblHT0mLyThD5R5w/MdLOTk+fZIGgAd7fy7k/GG+ekCeJ11TTo4ExAgMBAAECgYEAjoOQlvpB4xS6+uVQzGTlBrV3icgcHOtpKNd/49+99oLXE4Cq2qeou7CqFXnVmyWo/jFxKKNRRMiihaFNwGQ25H8F8jh1OvvKqRKYCyYbGCIYe1TxqPRTdtZtpvc6JJG6xSbtRbUCHS6FJ7Sx3W+4zLG74AuoCxUkqyTptF7e44UCQQDUDspyUdbspT1b0thdLXX5FozkTI00Wlte1BSHY2K5ZkgF0kEvIgIkUKqWsdGoNzPE52etTm2kkOBtS/kbizArAkEAyD2N7FAk0GBPZouUWTzcB0W2pFbAYdfSu2S7VAoEuB11qdQW6pUhlNzHM07q06bXX/m6ddVOe0cx78EmOWfKEwJAOl2PzwNDeoLIbpuLvamjjNluEfAX9U7hUypgNBtgstK6BBAorMZZfJFPQobSw8/dydY/LO4nM2JEwxBkEfavXQJAeRHGotAeQiNJPr48FuyWOIttD9YoAcCleIpCPWDFU7D0OJe0t2ct47zNcHdRwmDJLg1nMOGkzyLPzZ+iBel8IwJBAJtKHYvOxUBRjK5UVFzNDAqFCtByKhbBRIc+OYAQvJpB9QvklyX5dsGqZUH4yufolfNjhJZEOLTBSF6dlMA8JdU=";
pub const P521_SPKI: &str = "MIGbMBAGByqGSM49AgEGBSuBBAAjA4GGAAQB+SpZ9G73bY5fuquflq6S8G80+H/1ypFU67b9eDPGEQDJBwf+XDZzkd7CLlekoKRHr7O6U7PGk4JPdTbCWqBvZrUBtUPvq0qkuA2NB9iefx0kWGbUofYKZ+LogKa5Fz9u69NoVOS7ulGg153E9f787nN/q/mxmoH3xWmFCW/mR6b+lT8=";
pub const P521_PKCS8: &str = "MIHuAgEAMBAGByqGSM49AgEGBSuBBAAjBIHWMIHTAgEBBEIAVWo+ELJxFQiPlDU1YfQfZbSJWDBGDydeD/ZXp3uYTptuQ93an1IRgwEJdJugZU9FnFUbmGYU0jvQp1rDEKKLGLGhgYkDgYYABAH5Kln0bvdtjl+6q5+WrpLwbzT4f/XKkVTrtv14M8YRAMkHB/5cNnOR3sIuV6SgpEevs7pTs8aTgk91NsJaoG9mtQG1Q++rSqS4DY0H2J5/HSRYZtSh9gpn4uiAprkXP27r02hU5Lu6UaDXncT1/vzuc3+r+bGagffFaYUJb+ZHpv6VPw==";
pub const SECP256K1_SPKI: &str = "MFYwEAYHKoZIzj0CAQYFK4EEAAoDQgAEwLymx367dB988as2j/G72vNTBACYS/J8HqQNByOzYoGs7KoJPZAz1HMLLygUV87PVeWijzMJtd18X8B8L+Whqg==";
pub const ED25519_SPKI: &str = "MCowBQYDK2VwAyEABDQp18AtyukR9JD/XPSLeazapiG6w84t6rno5FjIp0s=";

pub fn der(b64: &str) -> Vec<u8> {
    STANDARD.decode(b64).unwrap()
}

pub fn b64u(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn unb64u(text: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(text).unwrap()
}

/// A key pair as DER: private PKCS#8 (or raw AES bytes) and public SPKI.
#[derive(Clone)]
pub struct Pair {
    pub name: &'static str,
    pub private: Vec<u8>,
    /// Empty for AES.
    pub spki: Vec<u8>,
}

impl Pair {
    pub fn recipient(&self, kid: &str) -> Recipient {
        if self.spki.is_empty() {
            Recipient::a256kw(kid, &self.private).unwrap()
        } else {
            Recipient::from_spki(kid, &self.spki).unwrap()
        }
    }

    pub fn key(&self) -> DecryptionKey {
        if self.spki.is_empty() {
            DecryptionKey::aes256(&self.private).unwrap()
        } else {
            DecryptionKey::from_pkcs8(&self.private).unwrap()
        }
    }
}

pub fn rsa(size: KeySize, name: &'static str) -> Pair {
    let key = PrivateDecryptingKey::generate(size).unwrap();
    let private: Pkcs8V1Der<'static> = key.as_der().unwrap();
    let spki: PublicKeyX509Der<'static> = key.public_key().as_der().unwrap();
    Pair {
        name,
        private: private.as_ref().to_vec(),
        spki: spki.as_ref().to_vec(),
    }
}

pub fn ec(alg: &'static agreement::Algorithm, name: &'static str) -> Pair {
    let key = agreement::PrivateKey::generate(alg).unwrap();
    let private: Pkcs8V1Der<'static> = key.as_der().unwrap();
    let spki: PublicKeyX509Der<'static> = key.compute_public_key().unwrap().as_der().unwrap();
    Pair {
        name,
        private: private.as_ref().to_vec(),
        spki: spki.as_ref().to_vec(),
    }
}

pub fn aes(name: &'static str) -> Pair {
    let mut key = vec![0u8; 32];
    aws_lc_rs::rand::fill(&mut key).unwrap();
    Pair {
        name,
        private: key,
        spki: Vec::new(),
    }
}

/// One key of each kind (RSA-2048, RSA-3072, P-256, P-384, AES-256), made
/// once per test binary.
pub fn pairs() -> &'static [Pair] {
    static PAIRS: OnceLock<Vec<Pair>> = OnceLock::new();
    PAIRS.get_or_init(|| {
        vec![
            rsa(KeySize::Rsa2048, "rsa2048"),
            rsa(KeySize::Rsa3072, "rsa3072"),
            ec(&agreement::ECDH_P256, "p256"),
            ec(&agreement::ECDH_P384, "p384"),
            aes("aes256"),
        ]
    })
}

pub fn pair(name: &str) -> &'static Pair {
    pairs().iter().find(|p| p.name == name).unwrap()
}

/// The context map reseal would write.
pub fn context() -> BTreeMap<String, String> {
    [
        ("consumer", "orders"),
        ("source_key_id", "connect-2025"),
        ("request_id", "req-0001"),
        ("source_message_id", "bWVzc2FnZS1pZA"),
        ("aws-crypto-public-key", "propagated value"),
        ("static", "pair \"quoted\" é"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// Deterministic payload of `len` bytes.
pub fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 + 7) as u8).collect()
}
