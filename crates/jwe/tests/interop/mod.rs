//! reseal-jwe's side of the two-way interop with jwcrypto and joserfc
//! (`tests/python/jwe_interop.py` at the repository root). Shared by
//! `tests/python_interop.rs` and `examples/interop.rs`.
//!
//! * [`write_vectors`] seals for every key kind (RSA-2048, RSA-3072, P-256,
//!   P-384, AES-256), both serializations, payloads 0 B to 64 KiB, two- and
//!   three-key rotations, with a known context, and writes the JWEs, the
//!   private keys (PEM PKCS#8, raw AES) and `manifest.json` (expected
//!   plaintext file, kid, alg, context) for the Python side's `check`.
//! * [`check_vectors`] opens what the Python side's `write` produced.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use aws_lc_rs::agreement;
use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der, PublicKeyX509Der};
use aws_lc_rs::rsa::{KeySize, PrivateDecryptingKey};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use reseal_jwe::{open_bytes, parse, seal, DecryptionKey, Recipient, SealOptions, Serialization};
use serde_json::{json, Value};

/// Payload sizes every key kind is sealed at.
pub const SIZES: [usize; 5] = [0, 1, 16, 4096, 65536];

struct Key {
    name: &'static str,
    /// PKCS#8 DER, or the raw AES key.
    private: Vec<u8>,
    /// SPKI DER; empty for AES.
    spki: Vec<u8>,
}

impl Key {
    fn recipient(&self, kid: &str) -> Recipient {
        if self.spki.is_empty() {
            Recipient::a256kw(kid, &self.private).expect("AES recipient")
        } else {
            Recipient::from_spki(kid, &self.spki).expect("recipient")
        }
    }
}

fn rsa(name: &'static str, size: KeySize) -> Key {
    let key = PrivateDecryptingKey::generate(size).expect("RSA key");
    let private: Pkcs8V1Der<'static> = key.as_der().expect("PKCS#8");
    let spki: PublicKeyX509Der<'static> = key.public_key().as_der().expect("SPKI");
    Key {
        name,
        private: private.as_ref().to_vec(),
        spki: spki.as_ref().to_vec(),
    }
}

fn ec(name: &'static str, alg: &'static agreement::Algorithm) -> Key {
    let key = agreement::PrivateKey::generate(alg).expect("EC key");
    let private: Pkcs8V1Der<'static> = key.as_der().expect("PKCS#8");
    let spki: PublicKeyX509Der<'static> = key
        .compute_public_key()
        .expect("public key")
        .as_der()
        .expect("SPKI");
    Key {
        name,
        private: private.as_ref().to_vec(),
        spki: spki.as_ref().to_vec(),
    }
}

fn aes(name: &'static str) -> Key {
    let mut private = vec![0u8; 32];
    aws_lc_rs::rand::fill(&mut private).expect("random");
    Key {
        name,
        private,
        spki: Vec::new(),
    }
}

fn pem(der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = String::from("-----BEGIN PRIVATE KEY-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("ASCII"));
        out.push('\n');
    }
    out.push_str("-----END PRIVATE KEY-----\n");
    out
}

/// The context every vector carries (reseal's members; quotes, control
/// characters, DEL, non-ASCII and a surrogate pair to exercise JSON
/// escaping: joserfc re-encodes a JSON JWE's protected header to get its
/// AAD, so every escape must be the one Python writes).
pub fn context() -> BTreeMap<String, String> {
    [
        ("consumer", "orders"),
        ("source_key_id", "connect-2025"),
        ("request_id", "0d9c2e1a-req"),
        ("source_message_id", "bWVzc2FnZS1pZA"),
        ("aws-crypto-public-key", "A1b2C3"),
        ("static", "pair \"quoted\" é"),
        (
            "escapes",
            "tab\t nl\n del\u{7f} ctl\u{1} back\\slash \u{1f600}",
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

fn payload(len: usize, seed: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 131 + seed * 7 + 3) as u8).collect()
}

/// Seals the matrix into `dir` and writes `dir/manifest.json`. Returns the
/// number of (case, recipient) openings the manifest asks for.
pub fn write_vectors(dir: &Path) -> usize {
    fs::create_dir_all(dir.join("keys")).expect("mkdir");
    fs::create_dir_all(dir.join("cases")).expect("mkdir");
    let keys = vec![
        rsa("rsa2048", KeySize::Rsa2048),
        rsa("rsa3072", KeySize::Rsa3072),
        ec("p256", &agreement::ECDH_P256),
        ec("p384", &agreement::ECDH_P384),
        aes("aes256"),
    ];
    let mut key_list = serde_json::Map::new();
    for k in &keys {
        let entry = if k.spki.is_empty() {
            let file = format!("keys/{}.bin", k.name);
            fs::write(dir.join(&file), &k.private).expect("write key");
            json!({"kind": "oct", "raw": file})
        } else {
            let file = format!("keys/{}.pem", k.name);
            fs::write(dir.join(&file), pem(&k.private)).expect("write key");
            json!({"kind": if k.name.starts_with("rsa") { "RSA" } else { "EC" }, "pem": file})
        };
        key_list.insert(k.name.to_owned(), entry);
    }
    let find = |name: &str| keys.iter().find(|k| k.name == name).expect("key");

    let ctx = context();
    let mut cases = Vec::new();
    let mut openings = 0;
    let mut add = |name: String,
                   members: &[&str],
                   serialization: Serialization,
                   size: usize,
                   cty: Option<&str>,
                   x5t: bool| {
        let recipients: Vec<Recipient> = members
            .iter()
            .map(|m| {
                let r = find(m).recipient(&format!("{m}-{name}"));
                if x5t {
                    r.with_x5t_s256(format!("certificate of {m}").as_bytes())
                } else {
                    r
                }
            })
            .collect();
        let plaintext = payload(size, cases.len());
        let jwe = seal(
            &plaintext,
            &recipients,
            &SealOptions {
                serialization: Some(serialization),
                content_type: cty,
                context: Some(&ctx),
            },
        )
        .expect("seal");
        let file = format!("cases/{name}.jwe");
        let pt_file = format!("cases/{name}.plaintext");
        fs::write(dir.join(&file), &jwe).expect("write");
        fs::write(dir.join(&pt_file), &plaintext).expect("write");
        openings += recipients.len();
        cases.push(json!({
            "name": name,
            "file": file,
            "plaintext": pt_file,
            "serialization": match serialization {
                Serialization::Compact => "compact",
                Serialization::Json => "json",
            },
            "cty": cty,
            "recipients": recipients.iter().map(|r| json!({
                "key": r.kid().split('-').next(),
                "kid": r.kid(),
                "alg": r.alg().name(),
                "x5t#S256": r.x5t_s256(),
            })).collect::<Vec<_>>(),
        }));
    };

    for k in &keys {
        for (serialization, form) in [
            (Serialization::Compact, "compact"),
            (Serialization::Json, "json"),
        ] {
            for size in SIZES {
                add(
                    format!("{form}-{}-{size}", k.name),
                    &[k.name],
                    serialization,
                    size,
                    None,
                    false,
                );
            }
        }
    }
    // Rotation: two keys (each opens), old and new of mixed kinds.
    let rotations: [[&str; 2]; 5] = [
        ["rsa2048", "rsa3072"],
        ["rsa2048", "p256"],
        ["p256", "p384"],
        ["p384", "aes256"],
        ["aes256", "rsa3072"],
    ];
    for pair in rotations {
        for size in [0, 16, 65536] {
            add(
                format!("rotation-{}-{}-{size}", pair[0], pair[1]),
                &pair,
                Serialization::Json,
                size,
                None,
                false,
            );
        }
    }
    add(
        "three-rsa2048-p256-aes256-16".into(),
        &["rsa2048", "p256", "aes256"],
        Serialization::Json,
        16,
        None,
        false,
    );
    // cty and x5t#S256 in both forms.
    for (serialization, form) in [
        (Serialization::Compact, "compact"),
        (Serialization::Json, "json"),
    ] {
        add(
            format!("{form}-extras-p384-16"),
            &["p384"],
            serialization,
            16,
            Some("application/json"),
            true,
        );
    }
    add(
        "json-extras-rotation-rsa2048-p256-16".into(),
        &["rsa2048", "p256"],
        Serialization::Json,
        16,
        Some("text/plain"),
        true,
    );

    let manifest = json!({
        "context": ctx,
        "keys": key_list,
        "cases": cases,
    });
    fs::write(
        dir.join("manifest.json"),
        serde_json::to_vec_pretty(&manifest).expect("JSON"),
    )
    .expect("write manifest");
    openings
}

/// What [`check_vectors`] found.
#[derive(Debug, Default)]
pub struct Outcome {
    pub passed: usize,
    pub failed: usize,
    pub failures: Vec<String>,
}

impl Outcome {
    fn check(&mut self, ok: bool, what: impl FnOnce() -> String) {
        if ok {
            self.passed += 1;
        } else {
            self.failed += 1;
            self.failures.push(what());
        }
    }
}

fn decryption_key(dir: &Path, entry: &Value) -> Result<DecryptionKey, String> {
    let file = entry["file"].as_str().ok_or("key without file")?;
    let bytes = fs::read(dir.join(file)).map_err(|e| format!("{file}: {e}"))?;
    match entry["kind"].as_str() {
        Some("oct") => DecryptionKey::aes256(&bytes),
        Some(_) => DecryptionKey::from_pkcs8(&bytes),
        None => return Err("key without kind".into()),
    }
    .map_err(|e| format!("{file}: {e}"))
}

/// Flips one bit in the middle of the decoded bytes of a base64url string.
fn flip(text: &str) -> Option<String> {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
    let mid = bytes.len().checked_sub(1)? / 2;
    bytes[mid] ^= 0x01;
    Some(URL_SAFE_NO_PAD.encode(bytes))
}

/// Variants of a JWE with one part changed (each must fail to open).
fn tampered(jwe: &[u8]) -> Vec<(String, Vec<u8>)> {
    let text = String::from_utf8_lossy(jwe).trim().to_owned();
    let mut out = Vec::new();
    if text.starts_with('{') {
        let Ok(v) = serde_json::from_str::<Value>(&text) else {
            return out;
        };
        for part in ["protected", "iv", "ciphertext", "tag"] {
            if let Some(changed) = v[part].as_str().and_then(flip) {
                let mut t = v.clone();
                t[part] = Value::String(changed);
                out.push((part.to_owned(), serde_json::to_vec(&t).expect("JSON")));
            }
        }
        let count = v["recipients"].as_array().map_or(0, Vec::len);
        for i in 0..count {
            if let Some(changed) = v["recipients"][i]["encrypted_key"].as_str().and_then(flip) {
                let mut t = v.clone();
                t["recipients"][i]["encrypted_key"] = Value::String(changed);
                out.push((
                    format!("recipient {i} encrypted_key"),
                    serde_json::to_vec(&t).expect("JSON"),
                ));
            }
        }
        if let Some(changed) = v["encrypted_key"].as_str().and_then(flip) {
            let mut t = v.clone();
            t["encrypted_key"] = Value::String(changed);
            out.push((
                "encrypted_key".into(),
                serde_json::to_vec(&t).expect("JSON"),
            ));
        }
    } else {
        let parts: Vec<&str> = text.split('.').collect();
        for i in 0..parts.len() {
            if let Some(changed) = flip(parts[i]) {
                let mut t: Vec<String> = parts.iter().map(|s| (*s).to_owned()).collect();
                t[i] = changed;
                out.push((format!("part {i}"), t.join(".").into_bytes()));
            }
        }
    }
    out
}

/// Opens every JWE the Python side wrote into `dir` (its `manifest.json`)
/// with each recipient's key, with and without the expected kid, and
/// checks plaintext, kid, alg and context; every tampered variant must fail.
pub fn check_vectors(dir: &Path) -> Outcome {
    let mut out = Outcome::default();
    let manifest: Value = match fs::read(dir.join("manifest.json"))
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
    {
        Ok(v) => v,
        Err(e) => {
            out.check(false, || format!("manifest: {e}"));
            return out;
        }
    };
    let empty = Vec::new();
    for case in manifest["cases"].as_array().unwrap_or(&empty) {
        let name = case["name"].as_str().unwrap_or("?").to_owned();
        let read = |field: &str| {
            case[field]
                .as_str()
                .ok_or_else(|| format!("no {field}"))
                .and_then(|f| fs::read(dir.join(f)).map_err(|e| format!("{f}: {e}")))
        };
        let (jwe, plaintext) = match (read("file"), read("plaintext")) {
            (Ok(j), Ok(p)) => (j, p),
            (Err(e), _) | (_, Err(e)) => {
                out.check(false, || format!("{name}: {e}"));
                continue;
            }
        };
        let expected_context: Option<BTreeMap<String, String>> =
            serde_json::from_value(case["context"].clone()).unwrap_or(None);
        if let Err(e) = parse(&jwe) {
            out.check(false, || format!("{name}: parse: {e}"));
            continue;
        }
        let mut first_key = None;
        for r in case["recipients"].as_array().unwrap_or(&empty) {
            let key_name = r["key"].as_str().unwrap_or("?");
            let kid = r["kid"].as_str().unwrap_or("?");
            let alg = r["alg"].as_str().unwrap_or("?");
            for with_kid in [false, true] {
                let key = match decryption_key(dir, &manifest["keys"][key_name]) {
                    Ok(k) if with_kid => k.with_kid(kid),
                    Ok(k) => k,
                    Err(e) => {
                        out.check(false, || format!("{name}: key {key_name}: {e}"));
                        continue;
                    }
                };
                match open_bytes(&jwe, &key) {
                    Ok(opened) => {
                        let ok = opened.plaintext.as_slice() == plaintext.as_slice()
                            && opened.alg.name() == alg
                            && opened.kid.as_deref() == Some(kid)
                            && opened.context() == expected_context
                            && opened.protected.get("enc") == Some(&json!("A256GCM"));
                        out.check(ok, || {
                            format!(
                                "{name}: {key_name}: opened {opened:?}, expected kid {kid} alg {alg}"
                            )
                        });
                    }
                    Err(e) => out.check(false, || format!("{name}: {key_name}: open: {e}")),
                }
            }
            if first_key.is_none() {
                first_key = decryption_key(dir, &manifest["keys"][key_name]).ok();
            }
        }
        // Tampered copies: the first recipient's key must open none of them
        // (a changed encrypted key of another recipient is not its concern).
        if let Some(key) = first_key {
            for (what, t) in tampered(&jwe) {
                if what.starts_with("recipient ") && !what.starts_with("recipient 0 ") {
                    continue;
                }
                out.check(open_bytes(&t, &key).is_err(), || {
                    format!("{name}: tampered {what} still opens")
                });
            }
        }
    }
    if manifest["cases"].as_array().is_none_or(Vec::is_empty) {
        out.check(false, || "manifest has no cases".into());
    }
    out
}
