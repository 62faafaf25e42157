//! Every error reason the broker can produce without AWS, over real gRPC, with
//! its status code, and never a secret in the message.

use std::collections::BTreeSet;

use reseal::esdk::{self, AlgorithmSuite, EncryptionContext, EncryptionMaterials};
use reseal::grpc::proto::{reencrypt_request::Input, ReencryptBatchRequest, ReencryptRequest};
use reseal::keys::{RawAesKeyring, RawRsaKeyring, RsaPadding};
use tonic::Code;

use crate::harness::*;

fn limited_config() -> String {
    standard_config(
        r#"
limits:
  max_ciphertext_bytes: 4096
  max_consumers_per_call: 2
  max_batch_items: 2
"#,
    )
    .replace(
        "  connect-b:\n    type: raw-rsa\n",
        "  connect-b:\n    type: raw-rsa\n    allowed_suites: [\"0x0478\"]\n    encryption_context:\n      allow:\n        tenant: [t1, t2]\n",
    )
    .replace(
        "consumers:\n",
        &format!("consumers:\n  bloated:\n    keys: {{b: {{type: rsa-public, public_key: file:fraud.pub.pem}}}}\n    encryption_context:\n      static: {{pad: {}}}\n      propagate: [\"*\"]\n", "x".repeat(600)),
    )
}

struct Seen(BTreeSet<String>);

impl Seen {
    fn expect(
        &mut self,
        result: Result<tonic::Response<reseal::grpc::proto::ReencryptResponse>, tonic::Status>,
        want: &str,
        code: Code,
    ) -> tonic::Status {
        let status = result.expect_err(want);
        assert_eq!(reason(&status), want, "{status:?}");
        assert_eq!(status.code(), code, "{want}");
        assert!(!status.message().contains("4111111111111111"));
        self.0.insert(want.to_owned());
        status
    }
}

fn msg(input: Vec<u8>, consumers: &[&str]) -> ReencryptRequest {
    ReencryptRequest {
        input: Some(Input::Ciphertext(input)),
        consumers: consumers.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

#[tokio::test]
async fn every_reason_without_aws() {
    let fx = Fixture::new();
    let cfg = fx.write("reseal.yaml", &limited_config());
    let running = start(&cfg, manual_clock("2026-01-01T00:00:00Z")).await;
    let mut c = client(&running).await;
    let mut seen = Seen(BTreeSet::new());
    let good = connect_message("connect-a", CONNECT_A, b"4111111111111111");

    seen.expect(
        c.reencrypt(ReencryptRequest {
            consumers: vec!["payments".into()],
            ..Default::default()
        })
        .await,
        "NO_DATA_SUPPLIED",
        Code::InvalidArgument,
    );
    seen.expect(
        c.reencrypt(msg(vec![], &["payments"])).await,
        "NO_DATA_SUPPLIED",
        Code::InvalidArgument,
    );
    seen.expect(
        c.reencrypt(msg(good.clone(), &[])).await,
        "NO_TARGETS",
        Code::InvalidArgument,
    );
    let big = connect_message("connect-a", CONNECT_A, &[7u8; 5000]);
    seen.expect(
        c.reencrypt(msg(big, &["payments"])).await,
        "MAXIMUM_DATA_SIZE_EXCEEDED",
        Code::InvalidArgument,
    );
    seen.expect(
        c.reencrypt(msg(b"\x01\x80garbage".to_vec(), &["payments"]))
            .await,
        "MALFORMED_CIPHERTEXT",
        Code::InvalidArgument,
    );
    seen.expect(
        c.reencrypt(msg(good[..good.len() - 1].to_vec(), &["payments"]))
            .await,
        "MALFORMED_CIPHERTEXT",
        Code::InvalidArgument,
    );
    let bad_b64 = ReencryptRequest {
        input: Some(Input::CiphertextBase64("not*base64".into())),
        consumers: vec!["payments".into()],
        ..Default::default()
    };
    seen.expect(
        c.reencrypt(bad_b64).await,
        "MALFORMED_CIPHERTEXT",
        Code::InvalidArgument,
    );

    // Tampering anywhere in the body, or in the EDK, is one opaque reason.
    let header_len = esdk::Message::parse(&good, &Default::default())
        .unwrap()
        .header_len();
    for pos in [header_len + 30, good.len() - 110, 60] {
        let mut t = good.clone();
        t[pos] ^= 0x01;
        let s = seen.expect(
            c.reencrypt(msg(t, &["payments"])).await,
            "AUTHENTICATION_FAILED",
            Code::InvalidArgument,
        );
        assert_eq!(s.message(), reseal::broker::error::AUTHENTICATION_MESSAGE);
    }

    // A Connect key id nobody configured: the message names provider and key.
    let stranger = connect_message("stranger", "00000000-dead-4bee-8f00-000000000000", b"x");
    let s = seen.expect(
        c.reencrypt(msg(stranger, &["payments"])).await,
        "SOURCE_KEY_NOT_CONFIGURED",
        Code::FailedPrecondition,
    );
    assert!(
        s.message().contains("AmazonConnect")
            && s.message().contains("00000000-dead-4bee-8f00-000000000000"),
        "{}",
        s.message()
    );
    // A hint that does not match narrows to nothing.
    let mut hinted = msg(good.clone(), &["payments"]);
    hinted.source_key_hint = CONNECT_B.into();
    seen.expect(
        c.reencrypt(hinted).await,
        "SOURCE_KEY_NOT_CONFIGURED",
        Code::FailedPrecondition,
    );

    // connect-b only accepts 0x0478 (Connect sends 0x0378).
    let from_b = connect_message("connect-b", CONNECT_B, b"x");
    seen.expect(
        c.reencrypt(msg(from_b, &["payments"])).await,
        "SUITE_NOT_ALLOWED",
        Code::InvalidArgument,
    );
    // connect-b requires tenant ∈ {t1, t2}.
    let k = RawRsaKeyring::from_public_pem(
        "AmazonConnect",
        CONNECT_B,
        RsaPadding::OaepSha512,
        keys()["connect-b"].1.as_bytes(),
    )
    .unwrap();
    let committed = |tenant: &str| {
        esdk::encrypt(
            b"x",
            &[&k],
            &[("tenant", tenant)].into_iter().collect(),
            &Default::default(),
        )
        .unwrap()
    };
    let ok = c
        .reencrypt(msg(committed("t2"), &["payments"]))
        .await
        .unwrap();
    assert!(ok.into_inner().results[0].error.is_none());
    seen.expect(
        c.reencrypt(msg(committed("t9"), &["payments"])).await,
        "ENCRYPTION_CONTEXT_MISMATCH",
        Code::InvalidArgument,
    );
    // The caller's expectation of the context.
    let mut expect = msg(committed("t1"), &["payments"]);
    expect.expected_encryption_context = [("tenant".to_string(), "t2".to_string())]
        .into_iter()
        .collect();
    seen.expect(
        c.reencrypt(expect).await,
        "ENCRYPTION_CONTEXT_MISMATCH",
        Code::InvalidArgument,
    );

    // 20 EDKs against the default limit of 16.
    let recipients: Vec<RawAesKeyring> = (0..20)
        .map(|i| RawAesKeyring::new("AmazonConnect", format!("k{i}"), &[i as u8; 32]).unwrap())
        .collect();
    let mut m = EncryptionMaterials::generate(
        AlgorithmSuite::Aes256GcmHkdfSha512CommitKey,
        EncryptionContext::new(),
    )
    .unwrap();
    for r in &recipients {
        m.wrap_for(r).unwrap();
    }
    let flood = esdk::seal(b"x", &m, 4096).unwrap();
    seen.expect(
        c.reencrypt(msg(flood, &["payments"])).await,
        "TOO_MANY_ENCRYPTED_DATA_KEYS",
        Code::InvalidArgument,
    );

    seen.expect(
        c.reencrypt(msg(good.clone(), &["payments", "nobody"]))
            .await,
        "UNKNOWN_CONSUMER",
        Code::NotFound,
    );
    let mut r = msg(good.clone(), &[]);
    r.route = "nowhere".into();
    seen.expect(c.reencrypt(r).await, "UNKNOWN_ROUTE", Code::NotFound);
    seen.expect(
        c.reencrypt(msg(good.clone(), &["payments", "fraud", "ledger"]))
            .await,
        "TOO_MANY_CONSUMERS",
        Code::InvalidArgument,
    );
    let status = c
        .reencrypt_batch(ReencryptBatchRequest {
            items: vec![msg(good.clone(), &["payments"]); 3],
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&status), "BATCH_TOO_LARGE");
    seen.0.insert("BATCH_TOO_LARGE".into());

    // An envelope whose context cannot be encoded (64 KiB ESDK limit) is a consumer-level INTERNAL.
    let huge_value = "v".repeat(40_000);
    let k_a = RawRsaKeyring::from_public_pem(
        "AmazonConnect",
        CONNECT_A,
        RsaPadding::OaepSha512,
        keys()["connect-a"].1.as_bytes(),
    )
    .unwrap();
    let big_ctx: EncryptionContext = [("a", huge_value.as_str()), ("b", &huge_value[..25_000])]
        .into_iter()
        .collect();
    let wide = esdk::encrypt(b"x", &[&k_a], &big_ctx, &Default::default()).unwrap();
    let mut limits_ok = msg(wide, &["bloated", "payments"]);
    limits_ok.source_key_hint = String::new();
    // This input is over the 4 KiB test limit, so run it against a second broker without that limit.
    let cfg2 = fx.write("wide.yaml", &limited_config().replace("max_ciphertext_bytes: 4096", "max_ciphertext_bytes: 262144\n  max_encryption_context_bytes: 65535\n  max_header_bytes: 131072"));
    let running2 = start(&cfg2, manual_clock("2026-01-01T00:00:00Z")).await;
    let mut c2 = client(&running2).await;
    let resp = c2.reencrypt(limits_ok).await.unwrap().into_inner();
    assert_eq!(resp.results[0].error.as_ref().unwrap().reason, "INTERNAL");
    assert!(
        resp.results[1].error.is_none(),
        "the other consumer is unaffected"
    );
    seen.0.insert("INTERNAL".into());
    running2.stop().await.unwrap();

    // Callers configured without mutual TLS: no caller could ever have an
    // identity, so every call would be UNAUTHENTICATED. Such a registry is
    // refused at start-up (UNAUTHENTICATED itself, a certificate without an
    // identity under mTLS, is in tests/edge/mtls.rs).
    let cfg3 = fx.write(
        "callers.yaml",
        &standard_config("callers:\n  api:\n    identities: [spiffe://example/api]\n    routes: [card-capture]\n"),
    );
    let refused = reseal::app::start(
        reseal::registry::ConfigSource::File(cfg3.clone()),
        reseal::app::StartOptions::loopback(),
    )
    .await;
    match refused {
        Err(e) => assert!(
            e.to_string().contains("callers.api.identities: callers are identified by their client certificate, but mutual TLS is off"),
            "{e}"
        ),
        Ok(_) => panic!("callers without mutual TLS must be refused"),
    }

    let want: BTreeSet<String> = [
        "NO_DATA_SUPPLIED",
        "MAXIMUM_DATA_SIZE_EXCEEDED",
        "TOO_MANY_ENCRYPTED_DATA_KEYS",
        "MALFORMED_CIPHERTEXT",
        "AUTHENTICATION_FAILED",
        "SOURCE_KEY_NOT_CONFIGURED",
        "SUITE_NOT_ALLOWED",
        "ENCRYPTION_CONTEXT_MISMATCH",
        "NO_TARGETS",
        "UNKNOWN_CONSUMER",
        "UNKNOWN_ROUTE",
        "TOO_MANY_CONSUMERS",
        "BATCH_TOO_LARGE",
        "INTERNAL",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(seen.0, want);
    running.stop().await.unwrap();
}
