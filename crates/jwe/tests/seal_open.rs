//! Round trips, header layout, multi-recipient JSON, key refusal.

mod common;

use common::{context, der, pair, pairs, payload, unb64u, Pair};
use reseal_jwe::{
    inspect_pkcs8, inspect_spki, open, open_bytes, parse, seal, x5t_s256, Algorithm, Curve,
    DecryptionKey, Form, KeyError, KeyInfo, OpenError, Recipient, SealError, SealOptions,
    Serialization,
};
use serde_json::Value;

const SIZES: [usize; 5] = [0, 1, 16, 4096, 65536];

fn protected_json(jwe: &[u8]) -> String {
    let text = std::str::from_utf8(jwe).unwrap();
    let b64 = if text.starts_with('{') {
        let v: Value = serde_json::from_str(text).unwrap();
        v["protected"].as_str().unwrap().to_owned()
    } else {
        text.split('.').next().unwrap().to_owned()
    };
    String::from_utf8(unb64u(&b64)).unwrap()
}

/// The context as the headers carry it: serde_json's compact form with
/// non-ASCII escaped (the test context's only non-ASCII character is é).
fn ascii_json(ctx: &std::collections::BTreeMap<String, String>) -> String {
    let json = serde_json::to_string(ctx).unwrap();
    assert!(json.chars().all(|c| c.is_ascii() || c == 'é'));
    json.replace('é', "\\u00e9")
}

fn expected_alg(p: &Pair) -> Algorithm {
    match p.name {
        "aes256" => Algorithm::A256Kw,
        n if n.starts_with("rsa") => Algorithm::RsaOaep256,
        _ => Algorithm::EcdhEsA256Kw,
    }
}

#[test]
fn round_trip_every_key_both_serializations_every_size() {
    let ctx = context();
    for p in pairs() {
        for serialization in [Serialization::Compact, Serialization::Json] {
            for &size in &SIZES {
                let plaintext = payload(size);
                let options = SealOptions {
                    serialization: Some(serialization),
                    content_type: Some("application/json"),
                    context: Some(&ctx),
                };
                let jwe = seal(&plaintext, &[p.recipient("k1")], &options).unwrap();
                // ASCII even with non-ASCII context values.
                assert!(jwe.is_ascii());
                let parsed = parse(&jwe).unwrap();
                let form = match serialization {
                    Serialization::Compact => Form::Compact,
                    Serialization::Json => Form::GeneralJson,
                };
                assert_eq!(parsed.form(), form);
                assert_eq!(parsed.recipients().len(), 1);
                assert_eq!(parsed.recipients()[0].alg(), expected_alg(p));
                assert_eq!(parsed.context().as_ref(), Some(&ctx));
                for key in [p.key(), p.key().with_kid("k1")] {
                    let opened = open(&parsed, &key).unwrap();
                    assert_eq!(opened.plaintext.as_slice(), plaintext, "{} {size}", p.name);
                    assert_eq!(opened.kid.as_deref(), Some("k1"));
                    assert_eq!(opened.alg, expected_alg(p));
                    assert_eq!(opened.recipient_index, 0);
                    assert_eq!(opened.context().as_ref(), Some(&ctx));
                    assert_eq!(opened.content_type(), Some("application/json"));
                    assert_eq!(opened.protected["enc"], "A256GCM");
                }
            }
        }
    }
}

#[test]
fn every_seal_is_fresh() {
    let p = pair("p256");
    let r = [p.recipient("k")];
    let a = seal(b"same", &r, &SealOptions::default()).unwrap();
    let b = seal(b"same", &r, &SealOptions::default()).unwrap();
    let (a, b) = (String::from_utf8(a).unwrap(), String::from_utf8(b).unwrap());
    let parts = |s: &str| s.split('.').map(str::to_owned).collect::<Vec<_>>();
    let (a, b) = (parts(&a), parts(&b));
    // Fresh ephemeral key (so a new protected header), CEK, IV.
    for i in 0..5 {
        assert_ne!(a[i], b[i], "part {i} repeated");
    }
}

#[test]
fn compact_header_layout() {
    let ctx = context();
    let rsa = pair("rsa2048")
        .recipient("rsa-1")
        .with_x5t_s256(b"certificate DER");
    let jwe = seal(
        b"x",
        &[rsa],
        &SealOptions {
            serialization: None,
            content_type: Some("text/plain"),
            context: Some(&ctx),
        },
    )
    .unwrap();
    assert_eq!(std::str::from_utf8(&jwe).unwrap().split('.').count(), 5);
    let header = protected_json(&jwe);
    let ctx_json = ascii_json(&ctx);
    assert_eq!(
        header,
        format!(
            r#"{{"alg":"RSA-OAEP-256","enc":"A256GCM","kid":"rsa-1","x5t#S256":"{}","cty":"text/plain","reseal_context":{ctx_json}}}"#,
            x5t_s256(b"certificate DER")
        )
    );

    let ec = pair("p384").recipient("ec-1");
    let jwe = seal(b"x", &[ec], &SealOptions::default()).unwrap();
    let header: Value = serde_json::from_str(&protected_json(&jwe)).unwrap();
    let keys: Vec<&str> = header
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut sorted = keys.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, ["alg", "enc", "epk", "kid"]);
    let text = protected_json(&jwe);
    assert!(text.starts_with(r#"{"alg":"ECDH-ES+A256KW","enc":"A256GCM","kid":"ec-1","epk":{"kty":"EC","crv":"P-384","x":""#), "{text}");
    assert_eq!(unb64u(header["epk"]["x"].as_str().unwrap()).len(), 48);
    assert_eq!(unb64u(header["epk"]["y"].as_str().unwrap()).len(), 48);
    assert_eq!(header["epk"].as_object().unwrap().len(), 4);
}

#[test]
fn json_header_layout() {
    let ctx = context();
    let recipients = [
        pair("rsa2048").recipient("a").with_x5t_s256(b"cert a"),
        pair("p256").recipient("b"),
        pair("aes256").recipient("c"),
    ];
    let jwe = seal(
        b"x",
        &recipients,
        &SealOptions {
            content_type: Some("text/plain"),
            context: Some(&ctx),
            ..SealOptions::default()
        },
    )
    .unwrap();
    let text = std::str::from_utf8(&jwe).unwrap();
    assert!(text.starts_with(r#"{"protected":""#), "{text}");
    let v: Value = serde_json::from_str(text).unwrap();
    let top: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    let mut top_sorted = top.clone();
    top_sorted.sort_unstable();
    assert_eq!(
        top_sorted,
        ["ciphertext", "iv", "protected", "recipients", "tag"]
    );
    assert_eq!(
        protected_json(&jwe),
        format!(
            r#"{{"enc":"A256GCM","cty":"text/plain","reseal_context":{}}}"#,
            ascii_json(&ctx)
        )
    );
    let list = v["recipients"].as_array().unwrap();
    assert_eq!(list.len(), 3);
    let header = |i: usize| list[i]["header"].as_object().unwrap();
    assert_eq!(
        serde_json::to_string(&list[0]["header"]).unwrap(),
        format!(
            r#"{{"alg":"RSA-OAEP-256","kid":"a","x5t#S256":"{}"}}"#,
            x5t_s256(b"cert a")
        )
    );
    assert_eq!(header(1)["alg"], "ECDH-ES+A256KW");
    assert_eq!(header(1)["epk"]["crv"], "P-256");
    assert_eq!(header(1).len(), 3);
    assert_eq!(
        serde_json::to_string(&list[2]["header"]).unwrap(),
        r#"{"alg":"A256KW","kid":"c"}"#
    );
    for r in list {
        assert_eq!(r.as_object().unwrap().len(), 2);
    }
    assert_eq!(unb64u(v["iv"].as_str().unwrap()).len(), 12);
    assert_eq!(unb64u(v["tag"].as_str().unwrap()).len(), 16);
    assert_eq!(unb64u(list[2]["encrypted_key"].as_str().unwrap()).len(), 40);
    assert_eq!(
        unb64u(list[0]["encrypted_key"].as_str().unwrap()).len(),
        256
    );
}

#[test]
fn json_with_one_algorithm_protects_it_in_the_shared_header() {
    let ctx = context();
    let recipients = [
        pair("rsa2048").recipient("old"),
        pair("rsa2048").recipient("new").with_x5t_s256(b"cert new"),
    ];
    let jwe = seal(
        b"x",
        &recipients,
        &SealOptions {
            context: Some(&ctx),
            ..SealOptions::default()
        },
    )
    .unwrap();
    assert_eq!(
        protected_json(&jwe),
        format!(
            r#"{{"alg":"RSA-OAEP-256","enc":"A256GCM","reseal_context":{}}}"#,
            ascii_json(&ctx)
        )
    );
    let v: Value = serde_json::from_slice(&jwe).unwrap();
    let list = v["recipients"].as_array().unwrap();
    assert_eq!(
        serde_json::to_string(&list[0]["header"]).unwrap(),
        r#"{"kid":"old"}"#
    );
    assert_eq!(
        serde_json::to_string(&list[1]["header"]).unwrap(),
        format!(r#"{{"kid":"new","x5t#S256":"{}"}}"#, x5t_s256(b"cert new"))
    );
    let parsed = parse(&jwe).unwrap();
    assert!(parsed
        .recipients()
        .iter()
        .all(|r| r.alg() == Algorithm::RsaOaep256));
    // One EC recipient: its `epk` stays in its own header.
    let ec = [pair("p256").recipient("ec")];
    let jwe = seal(
        b"x",
        &ec,
        &SealOptions {
            serialization: Some(Serialization::Json),
            ..SealOptions::default()
        },
    )
    .unwrap();
    assert_eq!(
        protected_json(&jwe),
        r#"{"alg":"ECDH-ES+A256KW","enc":"A256GCM"}"#
    );
    let v: Value = serde_json::from_slice(&jwe).unwrap();
    let header = v["recipients"][0]["header"].as_object().unwrap();
    assert_eq!(header.keys().collect::<Vec<_>>(), ["epk", "kid"]);
}

#[test]
fn no_context_no_member_and_empty_context_is_written() {
    let r = [pair("aes256").recipient("k")];
    let jwe = seal(b"x", &r, &SealOptions::default()).unwrap();
    assert_eq!(
        protected_json(&jwe),
        r#"{"alg":"A256KW","enc":"A256GCM","kid":"k"}"#
    );
    assert_eq!(parse(&jwe).unwrap().context(), None);
    let empty = Default::default();
    let jwe = seal(
        b"x",
        &r,
        &SealOptions {
            context: Some(&empty),
            ..SealOptions::default()
        },
    )
    .unwrap();
    assert!(protected_json(&jwe).ends_with(r#""reseal_context":{}}"#));
    assert_eq!(parse(&jwe).unwrap().context(), Some(empty));
}

#[test]
fn two_and_three_recipients_mixed_each_key_opens() {
    let ctx = context();
    let sets: [&[&str]; 4] = [
        &["rsa2048", "p256"],
        &["p256", "p384"],
        &["aes256", "rsa3072"],
        &["rsa2048", "p384", "aes256"],
    ];
    for set in sets {
        let recipients: Vec<Recipient> = set
            .iter()
            .map(|name| pair(name).recipient(&format!("kid-{name}")))
            .collect();
        for &size in &[0usize, 16, 65536] {
            let plaintext = payload(size);
            let jwe = seal(
                &plaintext,
                &recipients,
                &SealOptions {
                    context: Some(&ctx),
                    ..SealOptions::default()
                },
            )
            .unwrap();
            let parsed = parse(&jwe).unwrap();
            assert_eq!(parsed.form(), Form::GeneralJson);
            assert_eq!(parsed.recipients().len(), set.len());
            for (index, name) in set.iter().enumerate() {
                let kid = format!("kid-{name}");
                for key in [pair(name).key(), pair(name).key().with_kid(kid.as_str())] {
                    let opened = open(&parsed, &key).unwrap();
                    assert_eq!(opened.plaintext.as_slice(), plaintext);
                    assert_eq!(opened.kid.as_deref(), Some(kid.as_str()));
                    assert_eq!(opened.recipient_index, index);
                    assert_eq!(opened.context().as_ref(), Some(&ctx));
                }
            }
            // A key of a kind that is there but not this key: opaque failure.
            let stranger = common::ec(&aws_lc_rs::agreement::ECDH_P256, "x").key();
            let expected = if set.contains(&"p256") {
                OpenError::Decryption
            } else {
                OpenError::NoMatchingRecipient
            };
            assert_eq!(open(&parsed, &stranger).unwrap_err(), expected);
        }
    }
}

#[test]
fn kid_and_x5t_select_the_recipient() {
    let p = pair("aes256");
    let r = p.recipient("right").with_x5t_s256(b"cert");
    let jwe = seal(b"x", &[r], &SealOptions::default()).unwrap();
    assert_eq!(
        open_bytes(&jwe, &p.key().with_kid("wrong")).unwrap_err(),
        OpenError::NoMatchingRecipient
    );
    assert_eq!(
        open_bytes(&jwe, &p.key().with_x5t_s256(b"other cert")).unwrap_err(),
        OpenError::NoMatchingRecipient
    );
    open_bytes(&jwe, &p.key().with_kid("right").with_x5t_s256(b"cert")).unwrap();
    // A P-384 key is not tried on a P-256 recipient.
    let jwe = seal(
        b"x",
        &[pair("p256").recipient("k")],
        &SealOptions::default(),
    )
    .unwrap();
    assert_eq!(
        open_bytes(&jwe, &pair("p384").key()).unwrap_err(),
        OpenError::NoMatchingRecipient
    );
    assert_eq!(
        open_bytes(&jwe, &pair("rsa2048").key()).unwrap_err(),
        OpenError::NoMatchingRecipient
    );
}

#[test]
fn wrong_key_of_the_right_kind_is_one_opaque_error() {
    for p in pairs() {
        let other = match p.name {
            "rsa2048" => pair("rsa3072").clone(),
            "rsa3072" => pair("rsa2048").clone(),
            "p256" => common::ec(&aws_lc_rs::agreement::ECDH_P256, "other"),
            "p384" => common::ec(&aws_lc_rs::agreement::ECDH_P384, "other"),
            _ => common::aes("other"),
        };
        for serialization in [Serialization::Compact, Serialization::Json] {
            let jwe = seal(
                b"secret",
                &[p.recipient("k")],
                &SealOptions {
                    serialization: Some(serialization),
                    ..SealOptions::default()
                },
            )
            .unwrap();
            let err = open_bytes(&jwe, &other.key()).unwrap_err();
            assert_eq!(err, OpenError::Decryption, "{}", p.name);
            assert_eq!(err.to_string(), "decryption failed");
        }
    }
}

#[test]
fn serialization_choice() {
    let two = [pair("aes256").recipient("a"), pair("p256").recipient("b")];
    let one = &two[..1];
    let compact = seal(b"x", one, &SealOptions::default()).unwrap();
    assert_eq!(parse(&compact).unwrap().form(), Form::Compact);
    let json = seal(
        b"x",
        one,
        &SealOptions {
            serialization: Some(Serialization::Json),
            ..SealOptions::default()
        },
    )
    .unwrap();
    assert_eq!(parse(&json).unwrap().form(), Form::GeneralJson);
    assert_eq!(
        parse(&seal(b"x", &two, &SealOptions::default()).unwrap())
            .unwrap()
            .form(),
        Form::GeneralJson
    );
    let err = seal(
        b"x",
        &two,
        &SealOptions {
            serialization: Some(Serialization::Compact),
            ..SealOptions::default()
        },
    )
    .unwrap_err();
    assert_eq!(err, SealError::CompactNeedsOneRecipient { count: 2 });
    assert!(err.to_string().contains("exactly one recipient"));
    assert_eq!(
        seal(b"x", &[] as &[Recipient], &SealOptions::default()).unwrap_err(),
        SealError::NoRecipients
    );
    let dup = [
        pair("aes256").recipient("same"),
        pair("p256").recipient("same"),
    ];
    assert_eq!(
        seal(b"x", &dup, &SealOptions::default()).unwrap_err(),
        SealError::DuplicateKid { kid: "same".into() }
    );
    assert_eq!(
        seal(
            b"x",
            one,
            &SealOptions {
                content_type: Some(""),
                ..SealOptions::default()
            }
        )
        .unwrap_err(),
        SealError::EmptyContentType
    );
}

#[test]
fn weak_and_unsupported_keys_are_refused_with_clear_messages() {
    let rsa1024 = der(common::RSA1024_SPKI);
    let err = Recipient::rsa_oaep_256("k", &rsa1024).unwrap_err();
    assert_eq!(err, KeyError::RsaTooSmall { bits: 1024 });
    assert_eq!(
        err.to_string(),
        "RSA key is 1024 bits; at least 2048 are required"
    );
    assert_eq!(Recipient::from_spki("k", &rsa1024).unwrap_err(), err);
    assert_eq!(inspect_spki(&rsa1024).unwrap_err(), err);
    assert_eq!(
        DecryptionKey::rsa_pkcs8(&der(common::RSA1024_PKCS8)).unwrap_err(),
        err
    );

    let p521 = der(common::P521_SPKI);
    let err = Recipient::ecdh_es_a256kw("k", &p521).unwrap_err();
    assert_eq!(
        err,
        KeyError::UnsupportedCurve {
            curve: "P-521".into()
        }
    );
    assert_eq!(
        err.to_string(),
        "EC curve P-521 is not supported; use P-256 or P-384"
    );
    assert_eq!(Recipient::from_spki("k", &p521).unwrap_err(), err);
    assert_eq!(
        DecryptionKey::ec_pkcs8(&der(common::P521_PKCS8)).unwrap_err(),
        err
    );
    assert_eq!(
        Recipient::from_spki("k", &der(common::SECP256K1_SPKI))
            .unwrap_err()
            .to_string(),
        "EC curve secp256k1 is not supported; use P-256 or P-384"
    );
    let ed = Recipient::from_spki("k", &der(common::ED25519_SPKI)).unwrap_err();
    assert_eq!(
        ed,
        KeyError::UnsupportedKeyType {
            algorithm: "Ed25519".into()
        }
    );
    assert!(ed.to_string().starts_with("Ed25519 keys are not supported"));

    // Kind mismatches and malformed input.
    let p256 = pair("p256");
    let rsa = pair("rsa2048");
    assert!(matches!(
        Recipient::rsa_oaep_256("k", &p256.spki).unwrap_err(),
        KeyError::WrongKeyType {
            expected: "RSA",
            ..
        }
    ));
    assert_eq!(
        Recipient::ecdh_es_a256kw("k", &rsa.spki)
            .unwrap_err()
            .to_string(),
        "expected an EC key, got RSA 2048-bit"
    );
    assert!(matches!(
        DecryptionKey::ec_pkcs8(&rsa.private).unwrap_err(),
        KeyError::WrongKeyType { .. }
    ));
    assert!(matches!(
        Recipient::from_spki("k", b"not DER").unwrap_err(),
        KeyError::Malformed { .. }
    ));
    assert!(matches!(
        DecryptionKey::from_pkcs8(&rsa.spki).unwrap_err(),
        KeyError::Malformed { .. }
    ));
    assert_eq!(
        Recipient::a256kw("k", &[0u8; 16]).unwrap_err(),
        KeyError::AesKeyLength { len: 16 }
    );
    assert_eq!(
        DecryptionKey::aes256(&[0u8; 33]).unwrap_err().to_string(),
        "AES key is 33 bytes; A256KW needs exactly 32"
    );
    assert_eq!(
        Recipient::a256kw("", &[0u8; 32]).unwrap_err(),
        KeyError::EmptyKid
    );
    // A point off the curve.
    let mut point = vec![4u8];
    point.extend([1u8; 64]);
    assert!(matches!(
        Recipient::ecdh_es_a256kw_point("k", Curve::P256, &point).unwrap_err(),
        KeyError::Malformed { .. }
    ));
}

#[test]
fn key_info_for_validation_messages() {
    assert_eq!(
        inspect_spki(&pair("rsa3072").spki).unwrap(),
        KeyInfo::Rsa { bits: 3072 }
    );
    assert_eq!(
        inspect_pkcs8(&pair("p384").private).unwrap(),
        KeyInfo::Ec { curve: Curve::P384 }
    );
    let r = pair("rsa2048").recipient("k");
    assert_eq!(r.key_info(), KeyInfo::Rsa { bits: 2048 });
    assert_eq!(r.key_info().to_string(), "RSA 2048-bit");
    assert_eq!(r.alg(), Algorithm::RsaOaep256);
    assert_eq!(r.alg().to_string(), "RSA-OAEP-256");
    let r = pair("p256").recipient("k");
    assert_eq!(r.key_info().to_string(), "EC P-256");
    assert_eq!(r.alg().name(), "ECDH-ES+A256KW");
    let r = pair("aes256").recipient("k");
    assert_eq!(r.key_info(), KeyInfo::Aes256);
    assert_eq!(r.alg().name(), "A256KW");
    assert_eq!(pair("p384").key().key_info().to_string(), "EC P-384");
}

#[test]
fn ec_recipient_from_an_uncompressed_point() {
    let p = pair("p256");
    // The SPKI's last 65 bytes are the uncompressed point.
    let point = &p.spki[p.spki.len() - 65..];
    let r = Recipient::ecdh_es_a256kw_point("k", Curve::P256, point).unwrap();
    let jwe = seal(b"pt", &[r], &SealOptions::default()).unwrap();
    assert_eq!(
        open_bytes(&jwe, &p.key()).unwrap().plaintext.as_slice(),
        b"pt"
    );
    assert!(Recipient::ecdh_es_a256kw_point("k", Curve::P384, point).is_err());
}

#[test]
fn x5t_s256_is_base64url_sha256() {
    // SHA-256("abc")
    assert_eq!(
        x5t_s256(b"abc"),
        "ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0"
    );
    let r = pair("aes256").recipient("k").with_x5t_s256(b"abc");
    assert_eq!(
        r.x5t_s256(),
        Some("ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0")
    );
}

#[test]
fn debug_and_errors_never_show_secrets() {
    let key = [0xABu8; 32];
    let plaintext = b"4111111111111111";
    let r = Recipient::a256kw("k", &key).unwrap();
    let d = DecryptionKey::aes256(&key).unwrap();
    let jwe = seal(plaintext, std::slice::from_ref(&r), &SealOptions::default()).unwrap();
    let opened = open_bytes(&jwe, &d).unwrap();
    let rsa = pair("rsa2048");
    let shown = format!(
        "{r:?} {d:?} {opened:?} {:?} {:?} {:?}",
        parse(&jwe).unwrap(),
        rsa.key(),
        rsa.recipient("r")
    );
    for needle in ["ab, ab", "AB, AB", "171", "abab", "ABAB", "4111", "q6ur"] {
        assert!(!shown.contains(needle), "{needle} in {shown}");
    }
    assert!(shown.contains("AES-256"));
    assert!(shown.contains("plaintext_len: 16"));
    let err = open_bytes(&jwe, &DecryptionKey::aes256(&[1u8; 32]).unwrap()).unwrap_err();
    assert_eq!(format!("{err} {err:?}"), "decryption failed Decryption");
}
