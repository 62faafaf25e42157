//! What `parse` refuses, and the forms it reads besides ours.

mod common;

use common::{b64u, pair, unb64u};
use reseal_jwe::{
    open, open_bytes, parse, parse_with_limits, seal, Form, FormatError, Limits, OpenError,
    SealOptions, Serialization,
};
use serde_json::{json, Value};

fn json_jwe(names: &[&str]) -> Value {
    let recipients: Vec<_> = names
        .iter()
        .map(|n| pair(n).recipient(&format!("kid-{n}")))
        .collect();
    let ctx = common::context();
    let jwe = seal(
        b"payload",
        &recipients,
        &SealOptions {
            serialization: Some(Serialization::Json),
            context: Some(&ctx),
            ..SealOptions::default()
        },
    )
    .unwrap();
    serde_json::from_slice(&jwe).unwrap()
}

fn parse_value(v: &Value) -> Result<reseal_jwe::Jwe, FormatError> {
    parse(&serde_json::to_vec(v).unwrap())
}

/// A compact JWE whose protected header JSON is `header` (text as given).
fn compact_with_header(header: &str) -> Vec<u8> {
    let jwe = seal(
        b"x",
        &[pair("aes256").recipient("k")],
        &SealOptions::default(),
    )
    .unwrap();
    let text = String::from_utf8(jwe).unwrap();
    let rest = text.split_once('.').unwrap().1;
    format!("{}.{rest}", b64u(header.as_bytes())).into_bytes()
}

#[test]
fn flattened_json_is_read() {
    let general = json_jwe(&["p256"]);
    let r = &general["recipients"][0];
    let flattened = json!({
        "protected": general["protected"],
        "header": r["header"],
        "encrypted_key": r["encrypted_key"],
        "iv": general["iv"],
        "ciphertext": general["ciphertext"],
        "tag": general["tag"],
    });
    let jwe = parse_value(&flattened).unwrap();
    assert_eq!(jwe.form(), Form::FlattenedJson);
    let opened = open(&jwe, &pair("p256").key()).unwrap();
    assert_eq!(opened.plaintext.as_slice(), b"payload");
    assert_eq!(opened.kid.as_deref(), Some("kid-p256"));
    // Flattened and general at once is refused.
    let mut both = flattened.clone();
    both["recipients"] = general["recipients"].clone();
    assert!(matches!(
        parse_value(&both).unwrap_err(),
        FormatError::Malformed { .. }
    ));
}

#[test]
fn surrounding_whitespace_is_ignored() {
    let jwe = seal(
        b"x",
        &[pair("aes256").recipient("k")],
        &SealOptions::default(),
    )
    .unwrap();
    let mut padded = b"\n  ".to_vec();
    padded.extend(&jwe);
    padded.extend(b"\r\n");
    open_bytes(&padded, &pair("aes256").key()).unwrap();
}

#[test]
fn duplicate_names_within_an_object() {
    let dup = compact_with_header(r#"{"alg":"A256KW","enc":"A256GCM","kid":"k","kid":"k"}"#);
    assert_eq!(
        parse(&dup).unwrap_err(),
        FormatError::DuplicateMember {
            part: "protected header"
        }
    );
    let nested = compact_with_header(
        r#"{"alg":"A256KW","enc":"A256GCM","reseal_context":{"a":"1","a":"2"}}"#,
    );
    assert!(matches!(
        parse(&nested).unwrap_err(),
        FormatError::DuplicateMember { .. }
    ));
    let v = json_jwe(&["aes256"]);
    let text = serde_json::to_string(&v).unwrap();
    let doubled = text.replacen(r#""iv":"#, r#""iv":"AAAAAAAAAAAAAAAA","iv":"#, 1);
    assert_eq!(
        parse(doubled.as_bytes()).unwrap_err(),
        FormatError::DuplicateMember {
            part: "JSON serialization"
        }
    );
}

#[test]
fn duplicate_names_across_headers() {
    let v = json_jwe(&["aes256"]);
    // enc is protected; also per-recipient.
    let mut t = v.clone();
    t["recipients"][0]["header"]["enc"] = json!("A256GCM");
    assert_eq!(
        parse_value(&t).unwrap_err(),
        FormatError::DuplicateHeader { name: "enc".into() }
    );
    // kid per-recipient and in the shared unprotected header.
    let mut t = v.clone();
    t["unprotected"] = json!({"kid": "kid-aes256"});
    assert_eq!(
        parse_value(&t).unwrap_err(),
        FormatError::DuplicateHeader { name: "kid".into() }
    );
    // enc protected and shared unprotected.
    let mut t = v.clone();
    t["unprotected"] = json!({"enc": "A256GCM"});
    assert_eq!(
        parse_value(&t).unwrap_err(),
        FormatError::DuplicateHeader { name: "enc".into() }
    );
    // A harmless shared unprotected member is fine.
    let mut t = v.clone();
    t["unprotected"] = json!({"jku_note": "ignored"});
    let opened = open(&parse_value(&t).unwrap(), &pair("aes256").key()).unwrap();
    assert_eq!(opened.plaintext.as_slice(), b"payload");
}

#[test]
fn refused_parameters() {
    let zip = compact_with_header(r#"{"alg":"A256KW","enc":"A256GCM","zip":"DEF"}"#);
    assert_eq!(parse(&zip).unwrap_err(), FormatError::Compressed);
    let crit = compact_with_header(r#"{"alg":"A256KW","enc":"A256GCM","crit":["exp"],"exp":1}"#);
    assert_eq!(parse(&crit).unwrap_err(), FormatError::Critical);
    let rsa15 = compact_with_header(r#"{"alg":"RSA1_5","enc":"A256GCM"}"#);
    assert_eq!(
        parse(&rsa15).unwrap_err(),
        FormatError::UnsupportedAlgorithm {
            alg: "RSA1_5".into()
        }
    );
    for alg in [
        "dir",
        "RSA-OAEP",
        "A128KW",
        "ECDH-ES",
        "ECDH-ES+A128KW",
        "A256GCMKW",
    ] {
        let jwe = compact_with_header(&format!(r#"{{"alg":"{alg}","enc":"A256GCM"}}"#));
        assert!(matches!(
            parse(&jwe).unwrap_err(),
            FormatError::UnsupportedAlgorithm { .. }
        ));
    }
    for enc in ["A128GCM", "A256CBC-HS512", "A128CBC-HS256"] {
        let jwe = compact_with_header(&format!(r#"{{"alg":"A256KW","enc":"{enc}"}}"#));
        assert!(matches!(
            parse(&jwe).unwrap_err(),
            FormatError::UnsupportedEncryption { .. }
        ));
    }
    let no_enc = compact_with_header(r#"{"alg":"A256KW"}"#);
    assert_eq!(
        parse(&no_enc).unwrap_err(),
        FormatError::MissingHeader { name: "enc" }
    );
    let bad_kid = compact_with_header(r#"{"alg":"A256KW","enc":"A256GCM","kid":7}"#);
    assert_eq!(
        parse(&bad_kid).unwrap_err(),
        FormatError::InvalidHeader { name: "kid" }
    );
    let bad_ctx =
        compact_with_header(r#"{"alg":"A256KW","enc":"A256GCM","reseal_context":{"a":1}}"#);
    assert_eq!(
        parse(&bad_ctx).unwrap_err(),
        FormatError::InvalidHeader {
            name: "reseal_context"
        }
    );
    let not_object = compact_with_header(r#"["alg"]"#);
    assert!(matches!(
        parse(&not_object).unwrap_err(),
        FormatError::Json { .. }
    ));
    // The message of an unsupported alg is shortened and printable.
    let long = compact_with_header(&format!(
        r#"{{"alg":"{}\u0007","enc":"A256GCM"}}"#,
        "x".repeat(100)
    ));
    let msg = parse(&long).unwrap_err().to_string();
    assert!(msg.len() < 200 && !msg.contains('\u{7}'), "{msg}");
}

#[test]
fn context_must_be_protected() {
    let jwe = seal(
        b"x",
        &[pair("aes256").recipient("k")],
        &SealOptions {
            serialization: Some(Serialization::Json),
            ..SealOptions::default()
        },
    )
    .unwrap();
    let mut t: Value = serde_json::from_slice(&jwe).unwrap();
    t["recipients"][0]["header"]["reseal_context"] = json!({"consumer": "x"});
    assert_eq!(
        parse_value(&t).unwrap_err(),
        FormatError::NotProtected {
            name: "reseal_context"
        }
    );
}

#[test]
fn epk_must_be_a_public_p256_or_p384_jwk() {
    let v = json_jwe(&["p256"]);
    let epk = v["recipients"][0]["header"]["epk"].clone();
    let with = |f: &dyn Fn(&mut Value)| {
        let mut t = v.clone();
        f(&mut t["recipients"][0]["header"]["epk"]);
        parse_value(&t)
    };
    assert_eq!(
        with(&|e| e["d"] = json!("AAAA")).unwrap_err(),
        FormatError::InvalidHeader { name: "epk" }
    );
    assert_eq!(
        with(&|e| e["crv"] = json!("P-521")).unwrap_err(),
        FormatError::UnsupportedCurve {
            crv: "P-521".into()
        }
    );
    assert_eq!(
        with(&|e| e["crv"] = json!("P-384")).unwrap_err(),
        FormatError::InvalidHeader { name: "epk" },
        "P-256 coordinates under a P-384 name"
    );
    let x = unb64u(epk["x"].as_str().unwrap());
    assert_eq!(
        with(&|e| e["x"] = json!(b64u(&x[1..]))).unwrap_err(),
        FormatError::InvalidHeader { name: "epk" }
    );
    assert_eq!(
        with(&|e| *e = json!("not an object")).unwrap_err(),
        FormatError::InvalidHeader { name: "epk" }
    );
    // Off-curve point: parses, fails to open (the one opaque error).
    let mut t = v.clone();
    t["recipients"][0]["header"]["epk"]["y"] = epk["x"].clone();
    let jwe = parse_value(&t).unwrap();
    assert_eq!(
        open(&jwe, &pair("p256").key()).unwrap_err(),
        OpenError::Decryption
    );
}

#[test]
fn lengths_and_encodings() {
    let v = json_jwe(&["aes256"]);
    let mut t = v.clone();
    t["iv"] = json!(b64u(&[0u8; 16]));
    assert_eq!(
        parse_value(&t).unwrap_err(),
        FormatError::Length {
            part: "IV",
            len: 16,
            expected: 12
        }
    );
    let mut t = v.clone();
    t["tag"] = json!(b64u(&[0u8; 12]));
    assert!(matches!(
        parse_value(&t).unwrap_err(),
        FormatError::Length { .. }
    ));
    let mut t = v.clone();
    t["recipients"][0]["encrypted_key"] = json!(b64u(&[0u8; 48]));
    assert!(matches!(
        parse_value(&t).unwrap_err(),
        FormatError::Length { .. }
    ));
    let mut t = v.clone();
    t["ciphertext"] = json!(format!("{}=", v["ciphertext"].as_str().unwrap()));
    assert_eq!(
        parse_value(&t).unwrap_err(),
        FormatError::Base64 { part: "ciphertext" }
    );
    let mut t = v.clone();
    t.as_object_mut().unwrap().remove("tag");
    assert!(matches!(
        parse_value(&t).unwrap_err(),
        FormatError::Malformed { .. }
    ));
    for bad in [
        &b""[..],
        b"a.b.c.d",
        b"a.b.c.d.e.f",
        b"....",
        b"\xff.a.a.a.a",
        b"{",
    ] {
        assert!(parse(bad).is_err());
    }
}

#[test]
fn limits() {
    let limits = Limits {
        max_bytes: 4096,
        max_recipients: 2,
        max_header_bytes: 256,
    };
    let three = serde_json::to_vec(&json_jwe(&["aes256", "p256", "p384"])).unwrap();
    assert_eq!(
        parse_with_limits(
            &three,
            &Limits {
                max_bytes: 1 << 20,
                ..limits
            }
        )
        .unwrap_err(),
        FormatError::TooManyRecipients { count: 3, limit: 2 }
    );
    assert!(matches!(
        parse_with_limits(
            &three,
            &Limits {
                max_bytes: 1000,
                ..limits
            }
        )
        .unwrap_err(),
        FormatError::TooLarge { .. }
    ));
    // The default: 16 recipients.
    let names: Vec<String> = (0..17).map(|i| format!("k{i}")).collect();
    let recipients: Vec<_> = names.iter().map(|n| pair("aes256").recipient(n)).collect();
    let jwe = seal(b"x", &recipients, &SealOptions::default()).unwrap();
    assert_eq!(
        parse(&jwe).unwrap_err(),
        FormatError::TooManyRecipients {
            count: 17,
            limit: 16
        }
    );
    parse(&seal(b"x", &recipients[..16], &SealOptions::default()).unwrap()).unwrap();
    // Header size.
    let big = compact_with_header(&format!(
        r#"{{"alg":"A256KW","enc":"A256GCM","kid":"{}"}}"#,
        "k".repeat(300)
    ));
    assert!(matches!(
        parse_with_limits(&big, &limits).unwrap_err(),
        FormatError::HeaderTooLarge { .. }
    ));
    let mut v = json_jwe(&["aes256"]);
    v["recipients"][0]["header"]["note"] = json!("n".repeat(300));
    assert!(matches!(
        parse_with_limits(&serde_json::to_vec(&v).unwrap(), &limits).unwrap_err(),
        FormatError::HeaderTooLarge { .. }
    ));
    // Deep nesting is refused, not a stack overflow.
    let deep = format!(
        r#"{{"alg":"A256KW","enc":"A256GCM","x":{}1{}}}"#,
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    assert!(parse_with_limits(
        &compact_with_header(&deep),
        &Limits {
            max_bytes: 1 << 20,
            max_header_bytes: 1 << 20,
            ..limits
        }
    )
    .is_err());
}
