//! The main flow: one input, one envelope per consumer, each opened by its consumer.

use base64::Engine as _;
use reseal::grpc::proto::{reencrypt_request::Input, ReencryptBatchRequest, ReencryptRequest};

use crate::harness::*;

#[tokio::test]
async fn route_fans_out_to_every_consumer_and_each_opens_its_envelope() {
    let fx = Fixture::new();
    let cfg = fx.write("reseal.yaml", &standard_config(""));
    let running = start(&cfg, manual_clock("2026-01-01T00:00:00Z")).await;
    let mut client = client(&running).await;
    let card = b"4111111111111111";
    let input = connect_message("connect-a", CONNECT_A, card);
    let resp = client
        .reencrypt(ReencryptRequest {
            input: Some(Input::CiphertextBase64(
                base64::engine::general_purpose::STANDARD.encode(&input),
            )),
            route: "card-capture".into(),
            source_key_hint: CONNECT_A.into(),
            request_id: "req-1".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resp.source_key_id, "connect-a");
    assert_eq!(resp.request_id, "req-1");
    assert_eq!(resp.message_id.len(), 32);
    let consumers: Vec<&str> = resp.results.iter().map(|r| r.consumer.as_str()).collect();
    assert_eq!(consumers, ["payments", "fraud", "ledger"]);
    for r in &resp.results {
        assert!(r.error.is_none(), "{r:?}");
        assert_eq!(r.algorithm_suite, "0x0478");
    }
    let payments = &resp.results[0];
    assert_eq!(payments.key_ids, ["payments-2026"]);
    let opened = open_as("payments", "payments-2026", &payments.ciphertext).unwrap();
    assert_eq!(opened.plaintext.as_bytes(), card);
    // Output context: static pair plus per-request fields.
    let ec = &opened.header.encryption_context;
    assert_eq!(ec.get("purpose"), Some("card"));
    assert_eq!(ec.get("reseal-consumer-id"), Some("payments"));
    assert_eq!(ec.get("reseal-source-key-id"), Some("connect-a"));
    assert_eq!(ec.get("reseal-request-id"), Some("req-1"));
    assert_eq!(
        open_as("fraud", "fraud-2026", &resp.results[1].ciphertext)
            .unwrap()
            .plaintext
            .as_bytes(),
        card
    );
    // Before 2030 only the old ledger key is active.
    assert_eq!(resp.results[2].key_ids, ["ledger-old"]);
    // A consumer cannot open another consumer's envelope.
    assert!(open_as("fraud", "payments-2026", &payments.ciphertext).is_err());
    running.stop().await.unwrap();
}

#[tokio::test]
async fn both_connect_keys_are_live_and_raw_bytes_work() {
    let fx = Fixture::new();
    let cfg = fx.write("reseal.yaml", &standard_config(""));
    let running = start(&cfg, manual_clock("2026-01-01T00:00:00Z")).await;
    let mut client = client(&running).await;
    for (key, id, source) in [
        ("connect-a", CONNECT_A, "connect-a"),
        ("connect-b", CONNECT_B, "connect-b"),
    ] {
        let resp = client
            .reencrypt(ReencryptRequest {
                input: Some(Input::Ciphertext(connect_message(
                    key,
                    id,
                    b"5500000000000004",
                ))),
                consumers: vec!["payments".into(), "payments".into()],
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(resp.source_key_id, source);
        assert_eq!(resp.results.len(), 1, "duplicates are removed");
        let env = &resp.results[0].ciphertext;
        assert_eq!(
            open_as("payments", "payments-2026", env)
                .unwrap()
                .plaintext
                .as_bytes(),
            b"5500000000000004"
        );
    }
    // Base64 text sent in the bytes field (a common client mistake) is an
    // input that could be read two ways: refused, pointing at the right field.
    let b64 = base64::engine::general_purpose::STANDARD.encode(connect_message(
        "connect-a",
        CONNECT_A,
        b"x",
    ));
    let b64_in_raw = || ReencryptRequest {
        input: Some(Input::Ciphertext(b64.clone().into_bytes())),
        consumers: vec!["fraud".into()],
        ..Default::default()
    };
    let status = client.reencrypt(b64_in_raw()).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert_eq!(reason(&status), "MALFORMED_CIPHERTEXT");
    assert!(
        status.message().contains("ciphertext_base64"),
        "{}",
        status.message()
    );
    assert!(
        !status.message().contains(&b64[..40]),
        "the input is not echoed"
    );
    running.stop().await.unwrap();

    // ... unless the documented option says otherwise.
    let lenient = fx.write(
        "lenient.yaml",
        &standard_config("limits:\n  allow_base64_in_ciphertext: true\n"),
    );
    let running = start(&lenient, manual_clock("2026-01-01T00:00:00Z")).await;
    let mut client = super::harness::client(&running).await;
    let resp = client.reencrypt(b64_in_raw()).await.unwrap();
    assert!(resp.into_inner().results[0].error.is_none());
    running.stop().await.unwrap();
}

#[tokio::test]
async fn batch_has_per_item_results() {
    let fx = Fixture::new();
    let cfg = fx.write("reseal.yaml", &standard_config(""));
    let running = start(&cfg, manual_clock("2026-01-01T00:00:00Z")).await;
    let mut client = client(&running).await;
    let good = |pt: &[u8]| ReencryptRequest {
        input: Some(Input::Ciphertext(connect_message(
            "connect-a",
            CONNECT_A,
            pt,
        ))),
        consumers: vec!["payments".into()],
        ..Default::default()
    };
    let resp = client
        .reencrypt_batch(ReencryptBatchRequest {
            items: vec![
                good(b"one"),
                ReencryptRequest {
                    input: Some(Input::Ciphertext(b"\x02garbage".to_vec())),
                    consumers: vec!["payments".into()],
                    ..Default::default()
                },
                ReencryptRequest::default(),
                good(b"three"),
            ],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resp.results.len(), 4);
    let reasons: Vec<String> = resp
        .results
        .iter()
        .map(|r| {
            r.error
                .as_ref()
                .map(|e| e.reason.clone())
                .unwrap_or_else(|| "OK".into())
        })
        .collect();
    assert_eq!(
        reasons,
        ["OK", "MALFORMED_CIPHERTEXT", "NO_DATA_SUPPLIED", "OK"]
    );
    for (i, pt) in [(0usize, &b"one"[..]), (3, b"three")] {
        let env = &resp.results[i].response.as_ref().unwrap().results[0].ciphertext;
        assert_eq!(
            open_as("payments", "payments-2026", env)
                .unwrap()
                .plaintext
                .as_bytes(),
            pt
        );
        assert_eq!(resp.results[i].index, i as u32);
    }
    running.stop().await.unwrap();
}

#[tokio::test]
async fn health_is_serving_once_loaded_and_metrics_are_exposed() {
    let fx = Fixture::new();
    let cfg = fx.write("reseal.yaml", &standard_config(""));
    let running = start(&cfg, manual_clock("2026-01-01T00:00:00Z")).await;
    for addr in [running.grpc_addr, running.health_addr] {
        let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
        let mut status = 0;
        for _ in 0..50 {
            status = health
                .check(tonic_health::pb::HealthCheckRequest {
                    service: "reseal.v1.ReencryptService".into(),
                })
                .await
                .map(|r| r.into_inner().status)
                .unwrap_or(0);
            if status == 1 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert_eq!(status, 1, "SERVING on {addr}");
    }
    let mut client = client(&running).await;
    client.reencrypt(card_capture_request(b"m")).await.unwrap();
    let body = http_get(running.admin_addr, "/metrics").await;
    assert!(
        body.contains(
            "reseal_requests_total{door=\"grpc\",method=\"Reencrypt\",route=\"card-capture\",outcome=\"OK\"} 1"
        ),
        "{body}"
    );
    // One spelling of outcomes across metrics: OK or the reason.
    assert!(
        body.contains("reseal_consumer_envelopes_total{consumer=\"payments\",outcome=\"OK\"} 1")
    );
    assert!(body.contains("reseal_source_key_uses_total{source=\"connect-a\",outcome=\"OK\"} 1"));
    // Expiry as data: the end of ledger-old's window, in Unix seconds.
    assert!(
        body.contains(
            "reseal_key_not_after_timestamp_seconds{kind=\"consumer\",id=\"ledger\",key=\"ledger-old\"} 1909008000"
        ),
        "{body}"
    );
    assert!(body.contains("reseal_registry_reloads_total{outcome=\"OK\"} 1"));
    assert_eq!(http_get(running.admin_addr, "/readyz").await, "ready\n");
    running.stop().await.unwrap();
}

pub async fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    try_http_get(addr, path)
        .await
        .expect("admin endpoint reachable")
}

pub async fn try_http_get(addr: std::net::SocketAddr, path: &str) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).await.ok()?;
    out.split_once("\r\n\r\n").map(|(_, b)| b.to_owned())
}

#[test]
fn the_readme_demo_runs_and_every_envelope_opens() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_reseal"))
        .arg("demo")
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Three consumers, the ledger mid-rotation: four openings, all good.
    assert_eq!(stdout.matches('✓').count(), 4, "{stdout}");
    assert!(stdout.contains("ledger-2025 + ledger-2026"), "{stdout}");
    assert!(stdout.contains("0x0378") && stdout.contains("0x0478"));
    // The card number is masked, never printed whole.
    assert!(!stdout.contains("4111111111111111"));
}
