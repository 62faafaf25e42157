//! The HTTP/JSON door over a real socket, driven by a client that is not
//! reseal's own (Python `requests`, tests/python/http_e2e.py): proto3 JSON in
//! both name forms, envelopes opened by the reference Python ESDK, and every
//! error reason reachable without AWS with its HTTP status and
//! `google.rpc.Status` body. (The AWS-backed reasons are in tests/aws; token
//! and Basic authentication in tests/edge/http_auth.rs.)

use base64::Engine as _;
use reseal::esdk::{self, AlgorithmSuite, EncryptionContext, EncryptionMaterials};
use reseal::keys::{RawAesKeyring, RawRsaKeyring, RsaPadding};
use serde_json::{json, Value};

use crate::harness::*;

const PLAINTEXT: &[u8] = b"4111111111111111";
const RETIRED: &str = "11111111-2222-4333-8444-555555555555";

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// `extra` YAML, with the HTTP/JSON door on (an ephemeral port under the test harness).
fn with_http(config: String) -> String {
    config.replace(
        "server:\n",
        "server:\n  http_listen: 127.0.0.1:0\n  max_request_bytes: 65536\n",
    )
}

fn limited_config() -> String {
    with_http(standard_config(
        r#"
limits:
  max_ciphertext_bytes: 4096
  max_consumers_per_call: 2
  max_batch_items: 2
"#,
    ))
    .replace(
        "  connect-b:\n    type: raw-rsa\n",
        &format!("  retired:\n    type: raw-rsa\n    key_name: {RETIRED}\n    private_key: file:payments.pem\n    decrypt_until: 2025-01-01T00:00:00Z\n  connect-b:\n    type: raw-rsa\n    allowed_suites: [\"0x0478\"]\n    encryption_context:\n      allow:\n        tenant: [t1, t2]\n"),
    )
}

/// A call case for the Python driver.
fn call(
    name: &str,
    url: &str,
    body: Value,
    status: u16,
    reason: Option<&str>,
    code: Option<i32>,
) -> Value {
    json!({
        "name": name, "url": url, "headers": {"Content-Type": "application/json"},
        "body": body.to_string(), "status": status, "reason": reason, "grpc_code": code,
        "retry_after": false, "secrets": ["4111111111111111"],
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_json_calls_from_python_are_opened_by_the_reference_esdk() {
    let fx = Fixture::new();
    // 2030-06-15: the ledger consumer is mid-rotation (both keys active).
    let ok_cfg = fx.write("ok.yaml", &with_http(standard_config("")));
    let ok = start(&ok_cfg, manual_clock("2030-06-15T00:00:00Z")).await;
    let url = format!("http://{}", ok.http_addr.expect("the HTTP door is on"));
    let input = connect_message("connect-a", CONNECT_A, PLAINTEXT);
    let opens = json!({
        "payments": [["payments.pem", "payments-2026"]],
        "fraud": [["fraud.pem", "fraud-2026"]],
        "ledger": [["ledger-old.pem", "ledger-old"], ["ledger-new.pem", "ledger-new"]],
    });
    let mut cases = Vec::new();
    let mut c = call(
        "route, ciphertextBase64 (lowerCamelCase)",
        &url,
        json!({"ciphertextBase64": b64(&input), "route": "card-capture", "sourceKeyHint": CONNECT_A, "requestId": "http-1"}),
        200,
        None,
        None,
    );
    c["open"] = opens.clone();
    c["plaintext_b64"] = json!(b64(PLAINTEXT));
    cases.push(c);
    let mut c = call(
        "consumers, ciphertext bytes (proto names)",
        &url,
        json!({"ciphertext": b64(&input), "consumers": ["payments"], "source_key_hint": CONNECT_A, "all_or_nothing": true, "request_id": "http-2"}),
        200,
        None,
        None,
    );
    c["open"] = json!({"payments": [["payments.pem", "payments-2026"]]});
    c["plaintext_b64"] = json!(b64(PLAINTEXT));
    cases.push(c);
    let mut c = call(
        "batch",
        &url,
        json!({"items": [
            {"ciphertextBase64": b64(&input), "consumers": ["fraud"]},
            {"ciphertextBase64": b64(&input), "route": "card-capture"},
        ]}),
        200,
        None,
        None,
    );
    c["path"] = json!("/v1/reencrypt:batch");
    c["schema"] = json!("ReencryptBatchResponse");
    c["open"] = opens;
    c["plaintext_b64"] = json!(b64(PLAINTEXT));
    cases.push(c);
    run_python_cases(Value::Array(cases), fx.dir.path());
    ok.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_reason_reachable_over_http_has_its_status_and_body() {
    let fx = Fixture::new();
    let cfg = fx.write("limited.yaml", &limited_config());
    let running = start(&cfg, manual_clock("2026-01-01T00:00:00Z")).await;
    let url = format!("http://{}", running.http_addr.unwrap());
    let good = connect_message("connect-a", CONNECT_A, PLAINTEXT);
    let to = |input: &[u8], consumers: &[&str]| json!({"ciphertext": b64(input), "consumers": consumers});
    let mut cases = vec![
        call(
            "no ciphertext",
            &url,
            json!({"consumers": ["payments"]}),
            400,
            Some("NO_DATA_SUPPLIED"),
            Some(3),
        ),
        call(
            "no targets",
            &url,
            to(&good, &[]),
            400,
            Some("NO_TARGETS"),
            Some(3),
        ),
        call(
            "unknown field",
            &url,
            json!({"ciphertext": b64(&good), "consumers": ["payments"], "colour": "blue"}),
            400,
            Some("MALFORMED_REQUEST"),
            Some(3),
        ),
        call(
            "both inputs of the oneof",
            &url,
            json!({"ciphertext": b64(&good), "ciphertextBase64": b64(&good), "consumers": ["payments"]}),
            400,
            Some("MALFORMED_REQUEST"),
            Some(3),
        ),
        call(
            "over the ciphertext limit",
            &url,
            to(
                &connect_message("connect-a", CONNECT_A, &[7u8; 5000]),
                &["payments"],
            ),
            400,
            Some("MAXIMUM_DATA_SIZE_EXCEEDED"),
            Some(3),
        ),
        call(
            "not an ESDK message",
            &url,
            to(b"\x01\x80garbage", &["payments"]),
            400,
            Some("MALFORMED_CIPHERTEXT"),
            Some(3),
        ),
        call(
            "not base64",
            &url,
            json!({"ciphertextBase64": "not*base64", "consumers": ["payments"]}),
            400,
            Some("MALFORMED_CIPHERTEXT"),
            Some(3),
        ),
        call(
            "unknown consumer",
            &url,
            to(&good, &["payments", "nobody"]),
            404,
            Some("UNKNOWN_CONSUMER"),
            Some(5),
        ),
        call(
            "unknown route",
            &url,
            json!({"ciphertext": b64(&good), "route": "nowhere"}),
            404,
            Some("UNKNOWN_ROUTE"),
            Some(5),
        ),
        call(
            "too many consumers",
            &url,
            to(&good, &["payments", "fraud", "ledger"]),
            400,
            Some("TOO_MANY_CONSUMERS"),
            Some(3),
        ),
    ];
    let mut tampered = good.clone();
    let n = tampered.len();
    tampered[n - 110] ^= 1;
    cases.push(call(
        "tampered",
        &url,
        to(&tampered, &["payments"]),
        400,
        Some("AUTHENTICATION_FAILED"),
        Some(3),
    ));
    let stranger = connect_message("stranger", "00000000-dead-4bee-8f00-000000000000", b"x");
    cases.push(call(
        "no such source key",
        &url,
        to(&stranger, &["payments"]),
        412,
        Some("SOURCE_KEY_NOT_CONFIGURED"),
        Some(9),
    ));
    let retired = connect_message("payments", RETIRED, b"x");
    cases.push(call(
        "source past decrypt_until",
        &url,
        to(&retired, &["payments"]),
        412,
        Some("KEY_EXPIRED"),
        Some(9),
    ));
    let from_b = connect_message("connect-b", CONNECT_B, b"x");
    cases.push(call(
        "suite not allowed",
        &url,
        to(&from_b, &["payments"]),
        400,
        Some("SUITE_NOT_ALLOWED"),
        Some(3),
    ));
    let k = RawRsaKeyring::from_public_pem(
        "AmazonConnect",
        CONNECT_B,
        RsaPadding::OaepSha512,
        keys()["connect-b"].1.as_bytes(),
    )
    .unwrap();
    let t9 = esdk::encrypt(
        b"x",
        &[&k],
        &[("tenant", "t9")].into_iter().collect(),
        &Default::default(),
    )
    .unwrap();
    cases.push(call(
        "context rule",
        &url,
        to(&t9, &["payments"]),
        400,
        Some("ENCRYPTION_CONTEXT_MISMATCH"),
        Some(3),
    ));
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
    cases.push(call(
        "EDK flood",
        &url,
        to(&flood, &["payments"]),
        400,
        Some("TOO_MANY_ENCRYPTED_DATA_KEYS"),
        Some(3),
    ));
    let mut batch = call(
        "batch over its limit",
        &url,
        json!({"items": [to(&good, &["payments"]), to(&good, &["payments"]), to(&good, &["payments"])]}),
        400,
        Some("BATCH_TOO_LARGE"),
        Some(3),
    );
    batch["path"] = json!("/v1/reencrypt:batch");
    cases.push(batch);
    // The door's own refusals.
    let mut not_json = call(
        "not JSON",
        &url,
        Value::Null,
        400,
        Some("MALFORMED_REQUEST"),
        Some(3),
    );
    not_json["body"] = json!("{\"ciphertext\": ");
    cases.push(not_json);
    let mut wrong_type = call(
        "wrong content type",
        &url,
        to(&good, &["payments"]),
        415,
        Some("MALFORMED_REQUEST"),
        Some(3),
    );
    wrong_type["headers"] = json!({"Content-Type": "text/plain"});
    cases.push(wrong_type);
    let mut no_type = call(
        "no content type",
        &url,
        to(&good, &["payments"]),
        415,
        Some("MALFORMED_REQUEST"),
        Some(3),
    );
    no_type["headers"] = json!({});
    cases.push(no_type);
    let mut huge = call(
        "body over server.max_request_bytes",
        &url,
        Value::Null,
        413,
        Some("MAXIMUM_DATA_SIZE_EXCEEDED"),
        Some(3),
    );
    huge["body"] = json!(format!(
        "{{\"ciphertextBase64\": \"{}\"}}",
        "A".repeat(70_000)
    ));
    cases.push(huge);
    let mut nowhere = call(
        "unknown path",
        &url,
        to(&good, &["payments"]),
        404,
        Some("MALFORMED_REQUEST"),
        Some(3),
    );
    nowhere["path"] = json!("/v1/nothing");
    cases.push(nowhere);
    let mut get = call(
        "GET on a POST route",
        &url,
        Value::Null,
        405,
        Some("MALFORMED_REQUEST"),
        Some(3),
    );
    get["method"] = json!("GET");
    get["body"] = json!("");
    cases.push(get);

    // A call-level INTERNAL: an envelope whose context cannot be encoded, with
    // all_or_nothing (on a broker without the 4 KiB input limit).
    let wide_cfg = fx.write(
        "wide.yaml",
        &limited_config()
            .replace("max_ciphertext_bytes: 4096", "max_ciphertext_bytes: 262144\n  max_encryption_context_bytes: 65535\n  max_header_bytes: 131072")
            .replace("max_request_bytes: 65536", "max_request_bytes: 1048576")
            .replace(
                "consumers:\n",
                &format!("consumers:\n  bloated:\n    keys: {{b: {{type: rsa-public, public_key: file:fraud.pub.pem}}}}\n    encryption_context:\n      static: {{pad: {}}}\n      propagate: [\"*\"]\n", "x".repeat(600)),
            ),
    );
    let wide = start(&wide_cfg, manual_clock("2026-01-01T00:00:00Z")).await;
    let wide_url = format!("http://{}", wide.http_addr.unwrap());
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
    let wide_input = esdk::encrypt(b"x", &[&k_a], &big_ctx, &Default::default()).unwrap();
    cases.push(call("an envelope that cannot be built, all or nothing", &wide_url, json!({"ciphertext": b64(&wide_input), "consumers": ["bloated", "payments"], "allOrNothing": true}), 500, Some("INTERNAL"), Some(13)));

    let reasons: std::collections::BTreeSet<String> = cases
        .iter()
        .filter_map(|c| c["reason"].as_str().map(str::to_owned))
        .collect();
    run_python_cases(Value::Array(cases), fx.dir.path());
    // Every reason except those that need AWS (tests/aws), a caller registry
    // (tests/edge/http_auth.rs), overload or one connection's repeated failures
    // (tests/edge/limits.rs), or a broker with no registry (NOT_READY: the
    // doors open only once a registry is loaded).
    let elsewhere = [
        "SOURCE_KEY_NOT_FOUND",
        "KEY_DISABLED",
        "UPSTREAM_UNAVAILABLE",
        "OVERLOADED",
        // One connection's repeated failures (this runner opens one per call):
        // tests/edge/limits.rs.
        "TOO_MANY_FAILURES",
        "UNAUTHENTICATED",
        "PERMISSION_DENIED",
        "NOT_READY",
    ];
    for reason in reseal::broker::Reason::ALL {
        let r = reason.as_str();
        assert!(
            reasons.contains(r) || elsewhere.contains(&r),
            "{r} is not exercised over HTTP"
        );
    }
    wide.stop().await.unwrap();
    running.stop().await.unwrap();
}

/// One HTTP/1.1 JSON POST to `path` over a fresh connection: (status, body).
async fn post(addr: std::net::SocketAddr, path: &str, body: &str) -> (u16, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    let status = out
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let (_, json) = out.split_once("\r\n\r\n").unwrap_or_default();
    (status, serde_json::from_str(json).unwrap_or(Value::Null))
}

/// JWE consumers over the HTTP door: the answer names each envelope's format
/// in proto3 JSON (`ENVELOPE_FORMAT_*`), leaves the ESDK suite out for a JWE,
/// and each JWE opens with its consumer's key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwe_envelopes_over_http_say_their_format() {
    let fx = Fixture::new().with_jwe_keys();
    let (ec_pub, _) = jwe_file("jwe-p256");
    let (rsa_pub, _) = jwe_file("jwe-rsa");
    let cfg = with_http(standard_config("")).replace(
        "consumers:\n",
        &format!(
            "consumers:\n  j-compact:\n    format: jwe\n    keys: {{j-ec: {{type: ec-public, public_key: file:{ec_pub}}}}}\n  j-json:\n    format: jwe\n    serialization: json\n    keys: {{j-rsa: {{type: rsa-public, public_key: file:{rsa_pub}}}}}\n"
        ),
    );
    let cfg = fx.write("jwe-http.yaml", &cfg);
    let running = start(&cfg, manual_clock("2030-06-15T00:00:00Z")).await;
    let http = running.http_addr.expect("the HTTP door is on");
    let input = connect_message("connect-a", CONNECT_A, PLAINTEXT);
    let body =
        json!({"ciphertextBase64": b64(&input), "consumers": ["j-compact", "j-json", "payments"]});
    let (status, resp) = post(http, "/v1/reencrypt", &body.to_string()).await;
    assert_eq!(status, 200, "{resp}");
    let results = resp["results"].as_array().unwrap();
    let expect = [
        (
            "j-compact",
            "ENVELOPE_FORMAT_JWE_COMPACT",
            Some(("jwe-p256", "j-ec")),
        ),
        (
            "j-json",
            "ENVELOPE_FORMAT_JWE_JSON",
            Some(("jwe-rsa", "j-rsa")),
        ),
        ("payments", "ENVELOPE_FORMAT_ESDK", None),
    ];
    for (r, (consumer, format, key)) in results.iter().zip(expect) {
        assert_eq!(r["consumer"], consumer, "{resp}");
        assert_eq!(r["format"], format, "{resp}");
        let envelope = base64::engine::general_purpose::STANDARD
            .decode(r["ciphertext"].as_str().unwrap())
            .unwrap();
        match key {
            Some((name, kid)) => {
                assert!(r.get("algorithmSuite").is_none(), "{resp}");
                let opened = reseal::jwe::open_bytes(&envelope, &jwe_opener(name, kid)).unwrap();
                assert_eq!(opened.plaintext.as_slice(), PLAINTEXT);
            }
            None => {
                assert!(r["algorithmSuite"].is_string(), "{resp}");
                let opened = open_as("payments", "payments-2026", &envelope).unwrap();
                assert_eq!(opened.plaintext.as_bytes(), PLAINTEXT);
            }
        }
    }
    running.stop().await.unwrap();
}
