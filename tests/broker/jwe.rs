//! JWE consumers (`format: jwe`) through the broker over real gRPC: every key
//! type, both serializations, rotation, payload sizes, the context in the
//! protected header, mixed routes with a failing consumer, metrics, the audit
//! trail, validation. Envelopes are opened here with `reseal-jwe`; the Python
//! test (`python.rs`) opens them with two independent JOSE libraries.

use std::collections::BTreeMap;

use reseal::grpc::proto::{reencrypt_request::Input, ConsumerResult, EnvelopeFormat};
use reseal::grpc::proto::{ReencryptRequest, ReencryptResponse};
use reseal::jwe::{self, Form};
use reseal::registry::{self, LoadOptions};
use time::macros::datetime;

use crate::harness::*;

/// The input's encryption context (Genesys-shaped; Connect writes none).
pub const INPUT_CONTEXT: &[(&str, &str)] = &[("tenant", "acme"), ("org", "org-a")];

/// Sizes every JWE consumer is sealed for: 0 B to 64 KiB.
pub const SIZES: [usize; 6] = [0, 1, 16, 1000, 4096, 65536];

/// One JWE consumer of the test configuration: its keys (consumer key id →
/// test key name), the serialization it asks for, and what its context holds.
pub struct JweConsumer {
    pub id: &'static str,
    pub keys: &'static [(&'static str, &'static str)],
    pub serialization: Option<&'static str>,
    pub content_type: Option<&'static str>,
    pub fixed: &'static [(&'static str, &'static str)],
    pub add: &'static [&'static str],
    pub propagate: &'static [&'static str],
}

impl JweConsumer {
    /// What every envelope of this consumer must be in.
    pub fn expected_format(&self) -> EnvelopeFormat {
        match (self.serialization, self.keys.len()) {
            (Some("json"), _) | (None, 2..) => EnvelopeFormat::JweJson,
            _ => EnvelopeFormat::JweCompact,
        }
    }

    /// The context its envelopes carry, computed from the configuration and
    /// the response, independently of the broker's code.
    pub fn expected_context(&self, resp: &ReencryptResponse) -> BTreeMap<String, String> {
        let mut ctx = BTreeMap::new();
        for p in self.propagate {
            for (k, v) in INPUT_CONTEXT {
                if *p == "*" || p == k {
                    ctx.insert(k.to_string(), v.to_string());
                }
            }
        }
        for (k, v) in self.fixed {
            ctx.insert(k.to_string(), v.to_string());
        }
        for a in self.add {
            let (k, v) = match *a {
                "consumer_id" => ("reseal-consumer-id", self.id),
                "source_key_id" => ("reseal-source-key-id", resp.source_key_id.as_str()),
                "request_id" => ("reseal-request-id", resp.request_id.as_str()),
                "source_message_id" => ("reseal-source-message-id", resp.message_id.as_str()),
                other => panic!("unknown field {other}"),
            };
            ctx.insert(k.to_owned(), v.to_owned());
        }
        ctx
    }

    fn yaml(&self) -> String {
        let list = |xs: &[&str]| {
            xs.iter()
                .map(|x| format!("\"{x}\""))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut y = format!("  {}:\n    format: jwe\n", self.id);
        if let Some(s) = self.serialization {
            y += &format!("    serialization: {s}\n");
        }
        if let Some(c) = self.content_type {
            y += &format!("    content_type: \"{c}\"\n");
        }
        y += "    keys:\n";
        for (kid, name) in self.keys {
            let (file, _) = jwe_file(name);
            let k = &jwe_keys()[name];
            let spec = match (k.form, k.kind) {
                ("cert", _) => format!("{{type: x509, certificate: file:{file}}}"),
                ("aes", _) => format!("{{type: raw-aes, key: file:{file}}}"),
                (_, "RSA") => format!("{{type: rsa-public, public_key: file:{file}}}"),
                _ => format!("{{type: ec-public, public_key: file:{file}}}"),
            };
            y += &format!("      {kid}: {spec}\n");
        }
        y += "    encryption_context:\n";
        y += &format!(
            "      static: {{{}}}\n",
            self.fixed
                .iter()
                .map(|(k, v)| format!("{k}: '{}'", v.replace('\'', "''")))
                .collect::<Vec<_>>()
                .join(", ")
        );
        y += &format!("      add: [{}]\n", list(self.add));
        y += &format!("      propagate: [{}]\n", list(self.propagate));
        y
    }
}

const ALL_FIELDS: &[&str] = &[
    "consumer_id",
    "source_key_id",
    "request_id",
    "source_message_id",
];

/// Every key type, both serializations (by key count and forced), rotation.
pub const CONSUMERS: &[JweConsumer] = &[
    JweConsumer {
        id: "j-rsa",
        keys: &[("j-rsa-2026", "jwe-rsa")],
        serialization: None,
        content_type: None,
        fixed: &[("purpose", "card")],
        add: ALL_FIELDS,
        propagate: &["tenant"],
    },
    JweConsumer {
        id: "j-rsa-cert",
        keys: &[("j-rsa-cert-2026", "jwe-rsa-cert")],
        serialization: Some("json"),
        content_type: Some("text/plain"),
        fixed: &[("quoted", "é \"q\" ✓")],
        add: &["consumer_id", "request_id"],
        propagate: &[],
    },
    JweConsumer {
        id: "j-p256",
        keys: &[("j-p256-2026", "jwe-p256")],
        serialization: Some("compact"),
        content_type: None,
        fixed: &[],
        add: ALL_FIELDS,
        propagate: &["*"],
    },
    JweConsumer {
        id: "j-p384-cert",
        keys: &[("j-p384-cert-2026", "jwe-p384-cert")],
        serialization: Some("json"),
        content_type: None,
        fixed: &[],
        add: &[],
        propagate: &[],
    },
    JweConsumer {
        id: "j-p256-cert",
        keys: &[("j-p256-cert-2026", "jwe-p256-cert")],
        serialization: None,
        content_type: None,
        fixed: &[],
        add: &["source_message_id"],
        propagate: &["org"],
    },
    JweConsumer {
        id: "j-p384",
        keys: &[("j-p384-2026", "jwe-p384")],
        serialization: None,
        content_type: Some("application/json"),
        fixed: &[("purpose", "cvv")],
        add: &["source_key_id"],
        propagate: &[],
    },
    JweConsumer {
        id: "j-aes",
        keys: &[("j-aes-2026", "jwe-aes")],
        serialization: None,
        content_type: None,
        fixed: &[],
        add: ALL_FIELDS,
        propagate: &[],
    },
    JweConsumer {
        id: "j-aes-json",
        keys: &[("j-aes-json-2026", "jwe-aes-2")],
        serialization: Some("json"),
        content_type: None,
        fixed: &[],
        add: &["consumer_id"],
        propagate: &[],
    },
    // Mid-rotation: two active keys of different kinds, one JSON envelope
    // with a recipient each (keys in the order of their windows' start: the
    // certificate's validity starts in 2026, the other key has no window).
    JweConsumer {
        id: "j-rotation",
        keys: &[
            ("j-rotation-new", "jwe-p256"),
            ("j-rotation-old", "jwe-rsa-cert"),
        ],
        serialization: None,
        content_type: None,
        fixed: &[("purpose", "card")],
        add: ALL_FIELDS,
        propagate: &["tenant", "org"],
    },
    JweConsumer {
        id: "j-rotation-aes",
        keys: &[
            ("j-rotation-aes-1", "jwe-aes"),
            ("j-rotation-aes-2", "jwe-p384-cert"),
        ],
        serialization: Some("json"),
        content_type: None,
        fixed: &[],
        add: &["request_id"],
        propagate: &[],
    },
];

/// The standard registry plus the JWE consumers, a route over all of them
/// (`jwe-all`), an expired JWE consumer and a mixed route (`mixed`).
pub fn jwe_config() -> String {
    let mut consumers = String::new();
    for c in CONSUMERS {
        consumers += &c.yaml();
    }
    let all: Vec<&str> = CONSUMERS.iter().map(|c| c.id).collect();
    standard_config("").replace(
        "routes:\n  card-capture: [payments, fraud, ledger]\n",
        &format!(
            "{consumers}  j-expired:
    format: jwe
    keys:
      j-expired-2020: {{type: x509, certificate: file:jwe-expired-cert.crt.pem}}
routes:
  card-capture: [payments, fraud, ledger]
  jwe-all: [{}]
  mixed: [payments, j-expired, j-rsa, ledger, j-rotation, j-aes]
",
            all.join(", ")
        ),
    )
}

fn request(plaintext: &[u8], route: &str) -> ReencryptRequest {
    ReencryptRequest {
        input: Some(Input::Ciphertext(connect_message_with_context(
            plaintext,
            INPUT_CONTEXT,
        ))),
        route: route.into(),
        ..Default::default()
    }
}

fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + 3) as u8).collect()
}

/// Opens one JWE result with every key of its consumer and checks
/// everything the configuration asks for.
fn check_jwe(c: &JweConsumer, r: &ConsumerResult, resp: &ReencryptResponse, plaintext: &[u8]) {
    assert!(r.error.is_none(), "{}: {:?}", c.id, r.error);
    assert_eq!(r.format(), c.expected_format(), "{}", c.id);
    assert_eq!(r.algorithm_suite, "", "{}: no ESDK suite for a JWE", c.id);
    let kids: Vec<&str> = c.keys.iter().map(|(kid, _)| *kid).collect();
    assert_eq!(r.key_ids, kids, "{}", c.id);
    let parsed = jwe::parse(&r.ciphertext).unwrap();
    let form = match c.expected_format() {
        EnvelopeFormat::JweCompact => Form::Compact,
        _ => Form::GeneralJson,
    };
    assert_eq!(parsed.form(), form, "{}", c.id);
    let expected_context = c.expected_context(resp);
    for (kid, name) in c.keys {
        let opened = jwe::open(&parsed, &jwe_opener(name, kid)).unwrap();
        assert_eq!(opened.plaintext.as_slice(), plaintext, "{} {kid}", c.id);
        assert_eq!(
            opened.context(),
            Some(expected_context.clone()),
            "{} {kid}",
            c.id
        );
        assert_eq!(opened.kid.as_deref(), Some(*kid));
        assert_eq!(opened.protected["enc"], "A256GCM");
        assert_eq!(opened.content_type(), c.content_type, "{}", c.id);
        // Certificate keys name their certificate (the opener checked its value).
        let recipient = &parsed.recipients()[opened.recipient_index];
        assert_eq!(
            recipient.x5t_s256().is_some(),
            jwe_keys()[name].form == "cert",
            "{} {kid}",
            c.id
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_key_type_and_serialization_from_0_bytes_to_64_kib() {
    let fx = Fixture::new().with_jwe_keys();
    let cfg = fx.write("reseal.yaml", &jwe_config());
    let running = start(&cfg, manual_clock("2030-06-15T00:00:00Z")).await;
    let mut client = client(&running).await;
    for size in SIZES {
        let plaintext = payload(size);
        let resp = client
            .reencrypt(request(&plaintext, "jwe-all"))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(resp.results.len(), CONSUMERS.len());
        for (c, r) in CONSUMERS.iter().zip(&resp.results) {
            assert_eq!(r.consumer, c.id);
            check_jwe(c, r, &resp, &plaintext);
        }
    }
    // A wrong key of the right kind opens nothing; the compact header holds
    // the kid, the JSON recipients each theirs, certificates their x5t#S256.
    let resp = client
        .reencrypt(request(b"4111111111111111", "jwe-all"))
        .await
        .unwrap()
        .into_inner();
    let rsa = &resp.results[0];
    assert!(jwe::open_bytes(&rsa.ciphertext, &jwe_opener("jwe-rsa-cert", "j-rsa-2026")).is_err());
    let text = String::from_utf8(resp.results[1].ciphertext.clone()).unwrap();
    assert!(text.starts_with("{\"protected\":"), "{text}");
    assert!(text.contains("\"x5t#S256\":"), "{text}");
    assert!(text.contains("\"kid\":\"j-rsa-cert-2026\""), "{text}");
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_route_one_failing_consumer_costs_no_other_its_envelope() {
    let fx = Fixture::new().with_jwe_keys();
    let cfg = fx.write("reseal.yaml", &jwe_config());
    let running = start(&cfg, manual_clock("2030-06-15T00:00:00Z")).await;
    let mut client = client(&running).await;
    let resp = client
        .reencrypt(request(b"4111111111111111", "mixed"))
        .await
        .unwrap()
        .into_inner();
    let names: Vec<&str> = resp.results.iter().map(|r| r.consumer.as_str()).collect();
    assert_eq!(
        names,
        [
            "payments",
            "j-expired",
            "j-rsa",
            "ledger",
            "j-rotation",
            "j-aes"
        ]
    );
    // ESDK consumers: ESDK messages, as before.
    let payments = &resp.results[0];
    assert_eq!(payments.format(), EnvelopeFormat::Esdk);
    assert_eq!(payments.algorithm_suite, "0x0478");
    let opened = open_as("payments", "payments-2026", &payments.ciphertext).unwrap();
    assert_eq!(opened.plaintext.as_bytes(), b"4111111111111111");
    let ledger = &resp.results[3];
    assert_eq!(ledger.format(), EnvelopeFormat::Esdk);
    assert_eq!(ledger.key_ids, ["ledger-old", "ledger-new"]);
    for key in ["ledger-old", "ledger-new"] {
        assert!(open_as(key, key, &ledger.ciphertext).is_ok());
    }
    // The expired JWE consumer: its error, no envelope.
    let expired = &resp.results[1];
    let e = expired.error.as_ref().expect("the expired consumer fails");
    assert_eq!(e.reason, "KEY_EXPIRED");
    assert!(e.message.contains("j-expired"), "{}", e.message);
    assert!(expired.ciphertext.is_empty());
    assert_eq!(expired.format(), EnvelopeFormat::Unspecified);
    // The JWE consumers: theirs.
    for (i, id) in [(2, "j-rsa"), (4, "j-rotation"), (5, "j-aes")] {
        let c = CONSUMERS.iter().find(|c| c.id == id).unwrap();
        check_jwe(c, &resp.results[i], &resp, b"4111111111111111");
    }

    // all_or_nothing turns the failure into the call's status.
    let mut all = request(b"4111111111111111", "mixed");
    all.all_or_nothing = true;
    let status = client.reencrypt(all).await.unwrap_err();
    assert_eq!(reason(&status), "KEY_EXPIRED");

    // A batch of a JWE consumer and an ESDK consumer.
    let batch = client
        .reencrypt_batch(reseal::grpc::proto::ReencryptBatchRequest {
            items: vec![
                ReencryptRequest {
                    consumers: vec!["j-p256".into(), "fraud".into()],
                    route: String::new(),
                    ..request(b"4111", "")
                };
                2
            ],
        })
        .await
        .unwrap()
        .into_inner();
    for item in &batch.results {
        let r = item.response.as_ref().unwrap();
        assert_eq!(r.results[0].format(), EnvelopeFormat::JweCompact);
        assert_eq!(r.results[1].format(), EnvelopeFormat::Esdk);
    }

    // Metrics count JWE consumers' envelopes and key expiries like ESDK ones'.
    let body = crate::flow::http_get(running.admin_addr, "/metrics").await;
    for line in [
        "reseal_consumer_envelopes_total{consumer=\"j-rsa\",outcome=\"OK\"} 2",
        "reseal_consumer_envelopes_total{consumer=\"j-expired\",outcome=\"KEY_EXPIRED\"} 2",
        "reseal_consumer_envelopes_total{consumer=\"payments\",outcome=\"OK\"} 2",
        "reseal_consumer_envelopes_total{consumer=\"j-p256\",outcome=\"OK\"} 2",
        "reseal_key_not_after_timestamp_seconds{kind=\"consumer\",id=\"j-rsa-cert\",key=\"j-rsa-cert-2026\"} 2208988800",
        "reseal_key_not_after_timestamp_seconds{kind=\"consumer\",id=\"j-expired\",key=\"j-expired-2020\"} 1609459200",
    ] {
        assert!(body.contains(line), "missing {line} in\n{body}");
    }
    running.stop().await.unwrap();
}

/// A JWE consumer rotating from one key to the next on its windows (no
/// reload): compact with the old key, JSON with both during the overlap,
/// compact with the new key after; one with `serialization: compact` cuts
/// over at one instant.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_on_key_windows_compact_json_compact() {
    let fx = Fixture::new().with_jwe_keys();
    let (rsa, _) = jwe_file("jwe-rsa");
    let (p384, _) = jwe_file("jwe-p384-cert");
    let cfg = fx.write(
        "reseal.yaml",
        &standard_config(
            r#"
  rotating: [r]
  cutover: [c]
"#,
        )
        .replace(
            "routes:\n",
            &format!(
                r#"  r:
    format: jwe
    keys:
      r-old: {{type: rsa-public, public_key: file:{rsa}, not_after: 2030-06-30T00:00:00Z}}
      r-new: {{type: x509, certificate: file:{p384}, not_before: 2030-06-01T00:00:00Z}}
  c:
    format: jwe
    serialization: compact
    keys:
      c-old: {{type: rsa-public, public_key: file:{rsa}, not_after: 2030-06-15T00:00:00Z}}
      c-new: {{type: x509, certificate: file:{p384}, not_before: 2030-06-15T00:00:00Z}}
routes:
"#
            ),
        ),
    );
    let clock = manual_clock("2030-05-31T00:00:00Z");
    let running = start(&cfg, clock.clone()).await;
    let mut client = client(&running).await;
    let mut call = async |consumer: &str| {
        let mut req = request(b"4111111111111111", "");
        req.consumers = vec![consumer.into()];
        client.reencrypt(req).await.unwrap().into_inner().results[0].clone()
    };
    let opens = |r: &ConsumerResult, name: &str, kid: &str| {
        jwe::open_bytes(&r.ciphertext, &jwe_opener(name, kid)).is_ok()
    };

    let r = call("r").await;
    assert_eq!(
        (r.format(), r.key_ids.clone()),
        (EnvelopeFormat::JweCompact, vec!["r-old".to_string()])
    );
    assert!(opens(&r, "jwe-rsa", "r-old") && !opens(&r, "jwe-p384-cert", "r-new"));
    let c = call("c").await;
    assert_eq!(c.key_ids, ["c-old"]);

    clock.set(datetime!(2030-06-10 00:00 UTC));
    let r = call("r").await;
    assert_eq!(r.format(), EnvelopeFormat::JweJson);
    assert_eq!(r.key_ids, ["r-old", "r-new"]);
    assert!(opens(&r, "jwe-rsa", "r-old") && opens(&r, "jwe-p384-cert", "r-new"));

    // The cut-over instant: both windows include it; compact takes the newer key.
    clock.set(datetime!(2030-06-15 00:00 UTC));
    let c = call("c").await;
    assert_eq!(
        (c.format(), c.key_ids.clone()),
        (EnvelopeFormat::JweCompact, vec!["c-new".to_string()])
    );
    assert!(opens(&c, "jwe-p384-cert", "c-new"));

    clock.set(datetime!(2030-07-01 00:00 UTC));
    let r = call("r").await;
    assert_eq!(
        (r.format(), r.key_ids.clone()),
        (EnvelopeFormat::JweCompact, vec!["r-new".to_string()])
    );
    assert!(!opens(&r, "jwe-rsa", "r-old") && opens(&r, "jwe-p384-cert", "r-new"));
    running.stop().await.unwrap();
}

/// Keys JWE cannot or must not use, and fields of the other format, are
/// refused when the file is loaded, each naming file, entry and field.
#[test]
fn unusable_jwe_keys_are_refused_at_validation_naming_entry_and_field() {
    let fx = Fixture::new().with_jwe_keys();
    fx.write("rsa1024.pub.pem", RSA_1024_PUBLIC);
    fx.write("p521.pub.pem", &pem("PUBLIC KEY", P521_SPKI));
    fx.write("k1.pub.pem", &pem("PUBLIC KEY", SECP256K1_SPKI));
    fx.write("aes16.b64", "AAECAwQFBgcICQoLDA0ODw==");
    let yaml = r#"
allow_empty: true
consumers:
  small:
    format: jwe
    keys: {k: {type: rsa-public, public_key: file:rsa1024.pub.pem}}
  p521:
    format: jwe
    keys: {k: {type: ec-public, public_key: file:p521.pub.pem}}
  k1:
    format: jwe
    keys: {k: {type: ec-public, public_key: file:k1.pub.pem}}
  aes16:
    format: jwe
    keys: {k: {type: raw-aes, key: file:aes16.b64}}
  kms:
    format: jwe
    keys: {k: {type: aws-kms, key_id: "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"}}
  wrong-kind:
    format: jwe
    keys: {k: {type: rsa-public, public_key: file:jwe-p256.pub.pem}}
  wrong-kind-ec:
    format: jwe
    keys: {k: {type: ec-public, public_key: file:jwe-rsa.pub.pem}}
  esdk-ec:
    keys: {k: {type: ec-public, public_key: file:jwe-p256.pub.pem}}
  esdk-ec-cert:
    keys: {k: {type: x509, certificate: file:jwe-p384-cert.crt.pem}}
  esdk-ec-as-rsa:
    keys: {k: {type: rsa-public, public_key: file:jwe-p256.pub.pem}}
  esdk-fields:
    serialization: json
    content_type: text/plain
    keys: {k: {type: rsa-public, public_key: file:payments.pub.pem}}
  jwe-fields:
    format: jwe
    suite: "0x0478"
    frame_length: 4096
    content_type: ""
    keys:
      k:
        type: rsa-public
        public_key: file:payments.pub.pem
        padding: oaep-sha512
        provider_id: x
        key_name: y
  compact-overlap:
    format: jwe
    serialization: compact
    keys:
      a: {type: rsa-public, public_key: file:jwe-rsa.pub.pem, not_after: 2030-07-01T00:00:00Z}
      b: {type: ec-public, public_key: file:jwe-p256.pub.pem, not_before: 2030-06-01T00:00:00Z}
  bad-format:
    format: cbor
    keys: {k: {type: rsa-public, public_key: file:payments.pub.pem}}
"#;
    let path = fx.write("bad.yaml", yaml);
    let problems = match registry::load(&path, &LoadOptions::default()) {
        Ok(_) => panic!("expected the config to be refused"),
        Err(e) => e.problems(),
    };
    // An unknown format is a shape error: reported alone, by figment.
    assert!(
        problems
            .iter()
            .any(|p| p.contains("consumers.bad-format.format") && p.contains("cbor")),
        "{problems:?}"
    );
    let path = fx.write("bad.yaml", &yaml.replace("format: cbor", "format: esdk"));
    let p = match registry::load(&path, &LoadOptions::default()) {
        Ok(_) => panic!("expected the config to be refused"),
        Err(e) => e.problems(),
    };
    let expect = [
        "consumers.small.keys.k.public_key: RSA key is 1024 bits; at least 2048 are required",
        "consumers.p521.keys.k.public_key: EC curve P-521 is not supported; use P-256 or P-384",
        "consumers.k1.keys.k.public_key: EC curve secp256k1 is not supported; use P-256 or P-384",
        "consumers.aes16.keys.k.key: AES key is 16 bytes; JWE consumers need exactly 32 (A256KW",
        "consumers.kms.keys.k.type: `aws-kms` keys cannot seal JWE envelopes",
        "consumers.wrong-kind.keys.k.public_key: the key is EC P-256, not RSA; use type `ec-public`",
        "consumers.wrong-kind-ec.keys.k.public_key: the key is RSA 2048-bit, not EC; use type `rsa-public`",
        "consumers.esdk-ec.keys.k.type: `ec-public` keys need the consumer's `format: jwe`",
        "consumers.esdk-ec-cert.keys.k.certificate: the certificate holds an EC P-384 key; ESDK envelopes take RSA keys only",
        "consumers.esdk-ec-as-rsa.keys.k.public_key: the key is EC P-256; ESDK envelopes take RSA keys only",
        "consumers.esdk-fields.serialization: only used by JWE consumers",
        "consumers.esdk-fields.content_type: only used by JWE consumers",
        "consumers.jwe-fields.suite: not used by `format: jwe`",
        "consumers.jwe-fields.frame_length: not used by `format: jwe`",
        "consumers.jwe-fields.content_type: must be a non-empty media type",
        "consumers.jwe-fields.keys.k.padding: not used by `format: jwe` (JWE RSA keys always use RSA-OAEP-256)",
        "consumers.jwe-fields.keys.k.provider_id: not used by `format: jwe`",
        "consumers.jwe-fields.keys.k.key_name: not used by `format: jwe`",
        "consumers.compact-overlap.serialization: `compact` holds one recipient, but keys `a` and `b` are active at the same time from 2030-06-01T00:00:00Z",
    ];
    for e in expect {
        assert!(
            p.iter()
                .any(|line| line.contains(e) && line.contains("bad.yaml")),
            "missing `{e}` in:\n{}",
            p.join("\n")
        );
    }
    assert_eq!(p.len(), expect.len(), "{}", p.join("\n"));
    assert!(!p.iter().any(|l| l.contains("BEGIN")));
}

/// `reseal validate` wraps and opens test data for every JWE key it can
/// open (A256KW), wraps for the others and names their key type and size;
/// an expired certificate fails its row with the entry and `certificate`.
#[test]
fn validate_seals_every_jwe_key_and_opens_the_shared_ones() {
    let fx = Fixture::new().with_jwe_keys();
    let cfg = fx.write("validate.yaml", &jwe_config());
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_reseal"))
        .args(["validate", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success(),
        "the expired certificate fails validation\n{stdout}"
    );
    let row = |status: &str, entry: &str, detail: &str| {
        assert!(
            stdout.lines().any(|l| l.starts_with(status)
                && l.contains(&format!("{entry} "))
                && l.contains(detail)),
            "no {status} row for {entry} with `{detail}` in\n{stdout}"
        );
    };
    row(
        "OK",
        "consumers.j-aes.keys.j-aes-2026",
        "JWE A256KW (AES-256): seals and opens ok",
    );
    row(
        "OK",
        "consumers.j-rsa.keys.j-rsa-2026",
        "JWE RSA-OAEP-256 (RSA 2048-bit): seals ok",
    );
    row(
        "OK",
        "consumers.j-p256.keys.j-p256-2026",
        "JWE ECDH-ES+A256KW (EC P-256): seals ok",
    );
    row(
        "OK",
        "consumers.j-p384-cert.keys.j-p384-cert-2026",
        "JWE ECDH-ES+A256KW (EC P-384): seals ok",
    );
    row(
        "OK",
        "consumers.j-rsa-cert.keys.j-rsa-cert-2026",
        "subject CN=jwe-rsa-cert",
    );
    row(
        "FAIL",
        "consumers.j-expired.keys.j-expired-2020",
        "certificate ended 2021-01-01T00:00:00Z; the key is not used",
    );
    row("FAIL", "consumers.j-expired", "no key is active now");
    // Only the expired consumer fails.
    let fails: Vec<&str> = stdout.lines().filter(|l| l.starts_with("FAIL")).collect();
    assert_eq!(fails.len(), 2, "{stdout}");
}

/// The audit trail and the logs treat JWE consumers like ESDK consumers:
/// one event per call naming the consumer and its key ids; the plaintext
/// never appears.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_names_jwe_consumers_and_their_keys_and_logs_hold_no_plaintext() {
    const MARKER: &[u8] = b"MARKER-JWE-4000056655665556-PLAINTEXT";
    let fx = Fixture::new().with_jwe_keys();
    let cfg = fx.write(
        "reseal.yaml",
        &jwe_config().replace("log_format: text", "log_format: json"),
    );
    let (grpc, health, admin) = (free_port(), free_port(), free_port());
    let log_path = fx.path("server.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_reseal"))
        .args(["serve", "--config"])
        .arg(&cfg)
        .env("RUST_LOG", "trace")
        .env("RESEAL_SERVER__LISTEN", format!("127.0.0.1:{grpc}"))
        .env(
            "RESEAL_SERVER__HEALTH_LISTEN",
            format!("127.0.0.1:{health}"),
        )
        .env("RESEAL_SERVER__ADMIN_LISTEN", format!("127.0.0.1:{admin}"))
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .stdin(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut c = None;
    for _ in 0..200 {
        if let Ok(client) =
            reseal::grpc::proto::reencrypt_service_client::ReencryptServiceClient::connect(format!(
                "http://127.0.0.1:{grpc}"
            ))
            .await
        {
            c = Some(client);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let mut c = c.expect("server up");
    let mut req = request(MARKER, "mixed");
    req.request_id = "jwe-audit".into();
    let resp = c.reencrypt(req).await.unwrap().into_inner();
    assert_eq!(resp.results.iter().filter(|r| r.error.is_none()).count(), 5);
    // SIGTERM: the log buffer writes out everything before the process ends.
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    for _ in 0..200 {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    if child.try_wait().unwrap().is_none() {
        child.kill().unwrap();
        child.wait().unwrap();
    }
    let output = std::fs::read_to_string(&log_path).unwrap();
    let event = output
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["target"] == "reseal::audit" && v["request_id"] == "jwe-audit")
        .unwrap_or_else(|| panic!("no audit event in\n{output}"));
    let consumers = event["consumers"].as_str().unwrap_or_default().to_owned();
    let consumers = if consumers.is_empty() {
        event["fields"]["consumers"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    } else {
        consumers
    };
    assert_eq!(
        consumers,
        "payments[payments-2026],j-expired!KEY_EXPIRED,j-rsa[j-rsa-2026],ledger[ledger-old],\
         j-rotation[j-rotation-new+j-rotation-old],j-aes[j-aes-2026]",
        "{event}"
    );
    assert!(event.to_string().contains("\"partial\""), "{event}");
    for form in [
        String::from_utf8_lossy(MARKER).into_owned(),
        hex::encode(MARKER),
        String::from_utf8_lossy(&MARKER[7..23]).into_owned(),
    ] {
        assert!(!output.contains(&form), "plaintext in the logs: {form}");
    }
}

/// A 1024-bit RSA public key (too small on purpose; public keys are not secret).
const RSA_1024_PUBLIC: &str = "-----BEGIN PUBLIC KEY-----
MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQC8EYanuhmuH/e7L+Oy5ERSBQ7S
AmVtSztKCG5kqpUrIw2dKJP3tdqMrO98q60232CaSw9deRwBXJD06eIMsay0HG5W
kZmFZCkfP4Ad1WuPeCl3t5Xp4wXKz6hSKaNyvXd94oq2wupmNVmPDPLzJany0mIR
GTp2PRIS7608Ho8ZuQIDAQAB
-----END PUBLIC KEY-----
";
/// Public keys on curves JWE sealing refuses (made with Python's `cryptography`).
const P521_SPKI: &str = "MIGbMBAGByqGSM49AgEGBSuBBAAjA4GGAAQB+SpZ9G73bY5fuquflq6S8G80+H/1ypFU67b9eDPGEQDJBwf+XDZzkd7CLlekoKRHr7O6U7PGk4JPdTbCWqBvZrUBtUPvq0qkuA2NB9iefx0kWGbUofYKZ+LogKa5Fz9u69NoVOS7ulGg153E9f787nN/q/mxmoH3xWmFCW/mR6b+lT8=";
const SECP256K1_SPKI: &str = "MFYwEAYHKoZIzj0CAQYFK4EEAAoDQgAEwLymx367dB988as2j/G72vNTBACYS/J8HqQNByOzYoGs7KoJPZAz1HMLLygUV87PVeWijzMJtd18X8B8L+Whqg==";

fn pem(label: &str, b64: &str) -> String {
    use base64::Engine as _;
    let der = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    reseal::keys::pem::encode(label, &der)
}
