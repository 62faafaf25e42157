//! Every part of a JWE is bound: changing any byte of the protected header,
//! encrypted key, IV, ciphertext or tag, or any per-recipient header field,
//! makes `open` fail.

mod common;

use common::{b64u, pair, pairs, unb64u, Pair};
use reseal_jwe::{open_bytes, seal, DecryptionKey, OpenError, SealOptions, Serialization};
use serde_json::{json, Value};

fn seal_one(p: &Pair, serialization: Serialization, x5t: bool) -> Vec<u8> {
    let ctx = common::context();
    let mut r = p.recipient("kid-1");
    if x5t {
        r = r.with_x5t_s256(b"certificate");
    }
    seal(
        &common::payload(16),
        &[r],
        &SealOptions {
            serialization: Some(serialization),
            content_type: Some("text/plain"),
            context: Some(&ctx),
        },
    )
    .unwrap()
}

/// The key a consumer would use: its kid and certificate thumbprint known.
fn consumer_key(p: &Pair) -> DecryptionKey {
    p.key().with_kid("kid-1").with_x5t_s256(b"certificate")
}

fn must_fail(jwe: &[u8], key: &DecryptionKey, what: &str) {
    if let Ok(opened) = open_bytes(jwe, key) {
        panic!("{what}: opened anyway ({} bytes)", opened.plaintext.len());
    }
}

/// Every byte of a decoded part, flipped (one low and one high bit).
fn each_byte_flipped(part: &str) -> impl Iterator<Item = (usize, String)> + '_ {
    let bytes = unb64u(part);
    (0..bytes.len()).flat_map(move |i| {
        [0x01u8, 0x80].into_iter().map({
            let bytes = bytes.clone();
            move |bit| {
                let mut b = bytes.clone();
                b[i] ^= bit;
                (i, b64u(&b))
            }
        })
    })
}

#[test]
fn compact_every_byte_of_every_part() {
    const NAMES: [&str; 5] = [
        "protected header",
        "encrypted key",
        "IV",
        "ciphertext",
        "tag",
    ];
    for p in pairs() {
        let key = consumer_key(p);
        let jwe = seal_one(p, Serialization::Compact, true);
        open_bytes(&jwe, &key).unwrap();
        let text = String::from_utf8(jwe).unwrap();
        let parts: Vec<&str> = text.split('.').collect();
        let mut cases = 0;
        for (index, name) in NAMES.iter().enumerate() {
            for (byte, changed) in each_byte_flipped(parts[index]) {
                let mut tampered: Vec<String> = parts.iter().map(|s| (*s).to_owned()).collect();
                tampered[index] = changed;
                must_fail(
                    tampered.join(".").as_bytes(),
                    &key,
                    &format!("{}: {name} byte {byte}", p.name),
                );
                cases += 1;
            }
        }
        // Every part was exercised (16-byte ciphertext, 16-byte tag, ...).
        assert!(cases > 2 * (16 + 16 + 12 + 40), "{cases}");
    }
}

#[test]
fn compact_every_character_and_truncation() {
    // Character-level changes too: a base64url character replaced by another
    // is either refused as non-canonical or changes the decoded bytes.
    let p = pair("aes256");
    let key = consumer_key(p);
    let text = String::from_utf8(seal_one(p, Serialization::Compact, true)).unwrap();
    for (i, c) in text.char_indices() {
        if c == '.' {
            continue;
        }
        let replacement = if c == 'A' { 'B' } else { 'A' };
        let mut t = text.clone();
        t.replace_range(i..i + 1, &replacement.to_string());
        must_fail(t.as_bytes(), &key, &format!("char {i}"));
    }
    for cut in 1..text.len() {
        must_fail(&text.as_bytes()[..cut], &key, &format!("cut at {cut}"));
    }
}

fn json_of(jwe: &[u8]) -> Value {
    serde_json::from_slice(jwe).unwrap()
}

fn must_fail_json(v: &Value, key: &DecryptionKey, what: &str) {
    must_fail(&serde_json::to_vec(v).unwrap(), key, what);
}

#[test]
fn json_every_byte_of_every_part() {
    for p in pairs() {
        let key = consumer_key(p);
        let jwe = json_of(&seal_one(p, Serialization::Json, true));
        let paths: [&[&str]; 4] = [&["protected"], &["iv"], &["ciphertext"], &["tag"]];
        for path in paths {
            let original = jwe[path[0]].as_str().unwrap().to_owned();
            for (byte, changed) in each_byte_flipped(&original) {
                let mut t = jwe.clone();
                t[path[0]] = Value::String(changed);
                must_fail_json(&t, &key, &format!("{}: {} byte {byte}", p.name, path[0]));
            }
        }
        let ek = jwe["recipients"][0]["encrypted_key"]
            .as_str()
            .unwrap()
            .to_owned();
        for (byte, changed) in each_byte_flipped(&ek) {
            let mut t = jwe.clone();
            t["recipients"][0]["encrypted_key"] = Value::String(changed);
            must_fail_json(&t, &key, &format!("{}: encrypted_key byte {byte}", p.name));
        }
    }
}

/// A JSON JWE for `p` ("kid-1", with `x5t#S256`) and a second recipient of
/// another algorithm, so every `alg` is in its recipient's own header.
fn seal_mixed(p: &Pair) -> Vec<u8> {
    let other = pair(if p.name == "aes256" {
        "rsa2048"
    } else {
        "aes256"
    });
    let ctx = common::context();
    seal(
        &common::payload(16),
        &[
            p.recipient("kid-1").with_x5t_s256(b"certificate"),
            other.recipient("kid-2"),
        ],
        &SealOptions {
            serialization: Some(Serialization::Json),
            content_type: Some("text/plain"),
            context: Some(&ctx),
        },
    )
    .unwrap()
}

#[test]
fn json_every_per_recipient_header_field() {
    // One recipient (its `alg` in the protected header) and two of different
    // algorithms (each `alg` in its own header).
    for (p, jwe, name) in pairs().iter().flat_map(|p| {
        [
            (p, seal_one(p, Serialization::Json, true), p.name.to_owned()),
            (p, seal_mixed(p), format!("{} (mixed algorithms)", p.name)),
        ]
    }) {
        let key = consumer_key(p);
        let jwe = json_of(&jwe);
        let header = jwe["recipients"][0]["header"].as_object().unwrap().clone();
        assert_eq!(
            header.contains_key("alg"),
            jwe["recipients"].as_array().unwrap().len() == 2,
            "{name}"
        );
        if !header.contains_key("alg") {
            // The protected `alg` may not be repeated or overridden here.
            for value in ["A256KW", "RSA-OAEP-256", "ECDH-ES+A256KW"] {
                let mut t = jwe.clone();
                t["recipients"][0]["header"]["alg"] = json!(value);
                must_fail_json(
                    &t,
                    &key,
                    &format!("{name}: alg {value} added per recipient"),
                );
            }
        }
        for field in header.keys() {
            // Removed.
            let mut t = jwe.clone();
            t["recipients"][0]["header"]
                .as_object_mut()
                .unwrap()
                .remove(field);
            must_fail_json(&t, &key, &format!("{name}: {field} removed"));
            // Replaced by another string and by a non-string.
            for value in [json!("A256KW"), json!("RSA-OAEP-256"), json!("x"), json!(1)] {
                if header[field] == value {
                    continue;
                }
                let mut t = jwe.clone();
                t["recipients"][0]["header"][field] = value.clone();
                must_fail_json(&t, &key, &format!("{name}: {field} = {value}"));
            }
        }
        // String fields: every byte of their decoded value (x5t#S256) or a
        // changed character (alg, kid).
        for field in ["alg", "kid", "x5t#S256"] {
            let Some(original) = header.get(field).and_then(Value::as_str) else {
                continue;
            };
            let mut changed = original.to_owned();
            let last = changed.pop().unwrap();
            changed.push(if last == 'A' { 'B' } else { 'A' });
            let mut t = jwe.clone();
            t["recipients"][0]["header"][field] = Value::String(changed);
            must_fail_json(&t, &key, &format!("{name}: {field} changed"));
        }
        for (byte, changed) in each_byte_flipped(header["x5t#S256"].as_str().unwrap()) {
            let mut t = jwe.clone();
            t["recipients"][0]["header"]["x5t#S256"] = Value::String(changed);
            must_fail_json(&t, &key, &format!("{name}: x5t#S256 byte {byte}"));
        }
        // epk: every member, every byte of x and y, another curve.
        if let Some(epk) = header.get("epk") {
            for member in ["kty", "crv", "x", "y"] {
                let mut t = jwe.clone();
                t["recipients"][0]["header"]["epk"]
                    .as_object_mut()
                    .unwrap()
                    .remove(member);
                must_fail_json(&t, &key, &format!("{name}: epk.{member} removed"));
            }
            for coordinate in ["x", "y"] {
                for (byte, changed) in each_byte_flipped(epk[coordinate].as_str().unwrap()) {
                    let mut t = jwe.clone();
                    t["recipients"][0]["header"]["epk"][coordinate] = Value::String(changed);
                    must_fail_json(&t, &key, &format!("{name}: epk.{coordinate} byte {byte}"));
                }
            }
            for crv in ["P-256", "P-384", "P-521"] {
                if epk["crv"] == crv {
                    continue;
                }
                let mut t = jwe.clone();
                t["recipients"][0]["header"]["epk"]["crv"] = json!(crv);
                must_fail_json(&t, &key, &format!("{name}: epk.crv = {crv}"));
            }
            let mut t = jwe.clone();
            t["recipients"][0]["header"]["epk"]["kty"] = json!("OKP");
            must_fail_json(&t, &key, &format!("{name}: epk.kty = OKP"));
            // A different, valid ephemeral key (another recipient's).
            let other = json_of(&seal_one(p, Serialization::Json, true));
            let mut t = jwe.clone();
            t["recipients"][0]["header"]["epk"] = other["recipients"][0]["header"]["epk"].clone();
            must_fail_json(&t, &key, &format!("{name}: epk swapped"));
            // Agreement parameters the sender did not use.
            for party in ["apu", "apv"] {
                let mut t = jwe.clone();
                t["recipients"][0]["header"][party] = json!("QWxpY2U");
                must_fail_json(&t, &key, &format!("{name}: {party} added"));
            }
        }
    }
}

#[test]
fn json_added_members_that_change_the_aad_or_headers() {
    let p = pair("p256");
    let key = consumer_key(p);
    let jwe = json_of(&seal_one(p, Serialization::Json, true));
    let cases: Vec<(&str, Value)> = vec![
        ("aad added", {
            let mut t = jwe.clone();
            t["aad"] = json!("eHl6");
            t
        }),
        ("enc in the recipient header too", {
            let mut t = jwe.clone();
            t["recipients"][0]["header"]["enc"] = json!("A256GCM");
            t
        }),
        ("zip", {
            let mut t = jwe.clone();
            t["unprotected"] = json!({"zip": "DEF"});
            t
        }),
        ("crit", {
            let mut t = jwe.clone();
            t["recipients"][0]["header"]["crit"] = json!(["exp"]);
            t
        }),
        ("reseal_context unprotected", {
            let mut t = jwe.clone();
            t["unprotected"] = json!({"reseal_context": {"consumer": "evil"}});
            t
        }),
        ("alg in the shared unprotected header too", {
            let mut t = jwe.clone();
            t["unprotected"] = json!({"alg": "ECDH-ES+A256KW"});
            t
        }),
        ("recipient removed", {
            let mut t = jwe.clone();
            t["recipients"] = json!([]);
            t
        }),
    ];
    for (what, t) in cases {
        must_fail_json(&t, &key, what);
    }
}

#[test]
fn tampering_fails_with_the_one_opaque_error() {
    // Distinct cryptographic failures are indistinguishable to the caller.
    let p = pair("rsa2048");
    let key = p.key();
    let text = String::from_utf8(seal_one(p, Serialization::Compact, false)).unwrap();
    let parts: Vec<&str> = text.split('.').collect();
    for index in [0usize, 1, 3, 4] {
        let (_, changed) = each_byte_flipped(parts[index])
            .nth(40.min(
                // the 16-byte ciphertext and tag have fewer bytes
                2 * unb64u(parts[index]).len() - 1,
            ))
            .unwrap();
        let mut t: Vec<String> = parts.iter().map(|s| (*s).to_owned()).collect();
        t[index] = changed;
        let err = open_bytes(t.join(".").as_bytes(), &key).unwrap_err();
        match index {
            // A protected header byte may break its JSON: a format error.
            0 => assert!(matches!(err, OpenError::Decryption | OpenError::Format(_))),
            _ => assert_eq!(err, OpenError::Decryption, "part {index}"),
        }
    }
}
