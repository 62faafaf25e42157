//! Issue 22's limits one by one, in process: connection limits and deadlines
//! on every listener, the failure budget (refused early, RetryInfo, on both
//! doors), and the unwrap-attempt limits per message. The floods themselves,
//! against the real binary with memory and fairness targets, are in
//! tools/bench/tests/attack.rs.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use reseal::esdk::{self, AlgorithmSuite, EncryptionContext, EncryptionMaterials};
use reseal::grpc::proto::{reencrypt_request::Input, ReencryptRequest};
use reseal::keys::{raw_rsa, RawRsaKeyring, RsaPadding};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::harness::*;

/// Reads until the server closes the connection; how long that took (None:
/// still open after `within`).
async fn closed_within(s: &mut TcpStream, within: Duration) -> Option<Duration> {
    let t = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at((t + within).into(), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Some(t.elapsed()),
            Ok(Ok(_)) => continue,
            Err(_) => return None,
        }
    }
}

fn metric(running: &reseal::app::Running, line_start: &str) -> f64 {
    running
        .broker
        .metrics()
        .encode()
        .lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

fn with_server(extra: &str) -> String {
    standard_config("").replace("server:\n", &format!("server:\n{extra}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_listener_closes_silent_and_idle_connections() {
    let fx = Fixture::new();
    let cfg = fx.write(
        "reseal.yaml",
        &with_server(
            "  http_listen: 127.0.0.1:0\n  connections: {handshake_timeout: 1s, idle_timeout: 2s}\n",
        ),
    );
    let running = start(&cfg, manual_clock("2026-01-01T00:00:00Z")).await;
    let http = running.http_addr.unwrap();
    const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    // The preface, then a HEADERS frame header announcing 100 bytes and 3 of them.
    let partial_h2: Vec<u8> = [
        PREFACE,
        &[0, 0, 0, 4, 0, 0, 0, 0, 0],
        &[0, 0, 100, 1, 4, 0, 0, 0, 1, 0x83, 0x86, 0x84],
    ]
    .concat();
    let partial_h1: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: a";
    let h2_only = [&b""[..], PREFACE, &partial_h2];
    let both = [&b""[..], PREFACE, &partial_h2, partial_h1];
    let listeners: [(&str, SocketAddr, &[&[u8]]); 4] = [
        ("grpc", running.grpc_addr, &h2_only),
        ("health", running.health_addr, &h2_only),
        ("admin", running.admin_addr, &[&b""[..], partial_h1]),
        ("http", http, &both),
    ];
    // Nothing sent, the HTTP/2 preface only, half a request's headers: cut
    // at the handshake deadline on every listener.
    for (name, addr, openings) in listeners {
        for &opening in openings {
            let mut s = TcpStream::connect(addr).await.unwrap();
            s.write_all(opening).await.unwrap();
            let took = closed_within(&mut s, Duration::from_secs(5)).await;
            let took = took.unwrap_or_else(|| panic!("{name}: {opening:?} still open after 5 s"));
            assert!(
                took >= Duration::from_millis(800) && took < Duration::from_secs(3),
                "{name}: {opening:?} closed after {took:?}"
            );
        }
        assert!(
            metric(&running, &format!("reseal_connections_closed_total{{listener=\"{name}\",reason=\"handshake_timeout\"}}")) >= openings.len() as f64,
            "{name}"
        );
    }
    // After a request: closed once idle for 2 s (HTTP/1.1 keep-alive here;
    // HTTP/2 below), not before.
    for addr in [running.admin_addr, http] {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let took = closed_within(&mut s, Duration::from_secs(6)).await;
        let took = took.expect("an idle keep-alive connection stays open");
        assert!(
            took >= Duration::from_millis(1800) && took < Duration::from_secs(5),
            "closed after {took:?}"
        );
    }
    let tcp = TcpStream::connect(running.health_addr).await.unwrap();
    let (client, conn) = h2::client::handshake(tcp).await.unwrap();
    let conn = tokio::spawn(conn);
    let mut client = client.ready().await.unwrap();
    let req = http::Request::builder()
        .method("POST")
        .uri(format!(
            "http://{}/grpc.health.v1.Health/Check",
            running.health_addr
        ))
        .header("content-type", "application/grpc")
        .body(())
        .unwrap();
    let (resp, mut body) = client.send_request(req, false).unwrap();
    body.send_data(bytes::Bytes::from_static(&[0, 0, 0, 0, 0]), true)
        .unwrap();
    let resp = resp.await.unwrap();
    assert_eq!(resp.status(), 200);
    let t = Instant::now();
    // GOAWAY, then the connection ends.
    tokio::time::timeout(Duration::from_secs(6), conn)
        .await
        .expect("an idle HTTP/2 connection is closed")
        .unwrap()
        .ok();
    assert!(
        t.elapsed() >= Duration::from_millis(1500),
        "{:?}",
        t.elapsed()
    );
    assert!(
        metric(
            &running,
            "reseal_connections_closed_total{listener=\"health\",reason=\"idle_timeout\"}"
        ) >= 1.0
    );
    running.stop().await.unwrap();
}

/// A connection from `ip` (a loopback address of its own).
async fn connect_from(ip: &str, to: SocketAddr) -> TcpStream {
    let s = TcpSocket::new_v4().unwrap();
    s.bind(format!("{ip}:0").parse().unwrap()).unwrap();
    s.connect(to).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_limits_are_closed_at_once_and_counted() {
    let fx = Fixture::new();
    let cfg = fx.write(
        "reseal.yaml",
        &with_server("  connections: {max_total: 8, max_per_address: 5}\n"),
    );
    let running = start(&cfg, manual_clock("2026-01-01T00:00:00Z")).await;
    let addr = running.grpc_addr;
    let mut held = Vec::new();
    for _ in 0..5 {
        held.push(connect_from("127.0.0.2", addr).await);
    }
    // The 6th from the same address: closed at once.
    let mut over = connect_from("127.0.0.2", addr).await;
    let took = closed_within(&mut over, Duration::from_secs(2)).await;
    assert!(
        took.is_some_and(|t| t < Duration::from_millis(500)),
        "{took:?}"
    );
    // Others may still come, up to the total.
    for _ in 0..3 {
        held.push(connect_from("127.0.0.3", addr).await);
    }
    let mut over = connect_from("127.0.0.4", addr).await;
    let took = closed_within(&mut over, Duration::from_secs(2)).await;
    assert!(
        took.is_some_and(|t| t < Duration::from_millis(500)),
        "{took:?}"
    );
    for s in &mut held[..] {
        assert!(closed_within(s, Duration::from_millis(100)).await.is_none());
    }
    assert_eq!(
        metric(
            &running,
            "reseal_connections_refused_total{listener=\"grpc\",reason=\"max_per_address\"}"
        ),
        1.0
    );
    assert_eq!(
        metric(
            &running,
            "reseal_connections_refused_total{listener=\"grpc\",reason=\"max_total\"}"
        ),
        1.0
    );
    assert_eq!(
        metric(&running, "reseal_connections_open{listener=\"grpc\"}"),
        8.0
    );
    // Closing them gives their places back.
    drop(held);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut c = client(&running).await;
    let ok = c.reencrypt(card_capture_request(b"after")).await.unwrap();
    assert!(ok.into_inner().results.iter().all(|r| r.error.is_none()));
    running.stop().await.unwrap();
}

/// A message for `connect-a`'s key name whose EDKs the attacker wrapped
/// under a key of its own (so none opens), `n` of them.
fn forged(n: usize) -> Vec<u8> {
    let (_, public) = raw_rsa::generate_pem(2048).unwrap();
    let k = RawRsaKeyring::from_public_pem(
        "AmazonConnect",
        CONNECT_A,
        RsaPadding::OaepSha512,
        public.as_bytes(),
    )
    .unwrap();
    let mut m = EncryptionMaterials::generate(
        AlgorithmSuite::Aes256GcmHkdfSha512CommitKey,
        EncryptionContext::new(),
    )
    .unwrap();
    for _ in 0..n {
        m.wrap_for(&k).unwrap();
    }
    esdk::seal(b"x", &m, 4096).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_unwrap_attempt_per_key_and_few_private_key_attempts_per_message() {
    let fx = Fixture::new();
    let cfg = fx.write("reseal.yaml", &standard_config(""));
    let running = start(&cfg, manual_clock("2026-01-01T00:00:00Z")).await;
    let mut c = client(&running).await;
    let req = |input: Vec<u8>| ReencryptRequest {
        input: Some(Input::Ciphertext(input)),
        consumers: vec!["payments".into()],
        ..Default::default()
    };
    let status = c.reencrypt(req(forged(16))).await.unwrap_err();
    assert_eq!(reason(&status), "AUTHENTICATION_FAILED");
    let uses = |outcome: &str| {
        metric(
            &running,
            &format!("reseal_source_key_uses_total{{source=\"connect-a\",outcome=\"{outcome}\"}}"),
        )
    };
    assert_eq!(uses("authentication_failed"), 1.0, "one RSA attempt");
    assert_eq!(uses("attempt_limit"), 15.0, "the other 15 EDKs not tried");

    // A message for both Connect keys (a junk EDK for connect-a, a real one
    // for connect-b) opens: two private-key attempts are allowed...
    let k_b = RawRsaKeyring::from_public_pem(
        "AmazonConnect",
        CONNECT_B,
        RsaPadding::OaepSha512,
        keys()["connect-b"].1.as_bytes(),
    )
    .unwrap();
    let (_, other) = raw_rsa::generate_pem(2048).unwrap();
    let junk_a = RawRsaKeyring::from_public_pem(
        "AmazonConnect",
        CONNECT_A,
        RsaPadding::OaepSha512,
        other.as_bytes(),
    )
    .unwrap();
    let mut m = EncryptionMaterials::generate(
        AlgorithmSuite::Aes256GcmHkdfSha512CommitKey,
        EncryptionContext::new(),
    )
    .unwrap();
    m.wrap_for(&junk_a).unwrap();
    m.wrap_for(&k_b).unwrap();
    let both = esdk::seal(b"two keys", &m, 4096).unwrap();
    let ok = c.reencrypt(req(both.clone())).await.unwrap().into_inner();
    assert_eq!(ok.source_key_id, "connect-b");
    running.stop().await.unwrap();

    // ...and with `limits.max_private_key_attempts: 1` the second is not tried.
    let strict = fx.write(
        "strict.yaml",
        &standard_config("limits:\n  max_private_key_attempts: 1\n"),
    );
    let running = start(&strict, manual_clock("2026-01-01T00:00:00Z")).await;
    let mut c = client(&running).await;
    let status = c.reencrypt(req(both)).await.unwrap_err();
    assert_eq!(reason(&status), "AUTHENTICATION_FAILED");
    assert_eq!(
        metric(
            &running,
            "reseal_source_key_uses_total{source=\"connect-b\",outcome=\"attempt_limit\"}"
        ),
        1.0
    );
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_failures_are_refused_early_with_retry_info_on_both_doors() {
    let fx = Fixture::new();
    let cfg = fx.write(
        "reseal.yaml",
        &with_server("  http_listen: 127.0.0.1:0\n  failure_budget: {burst: 3, window: 30s}\n"),
    );
    let running = start(&cfg, manual_clock("2026-01-01T00:00:00Z")).await;
    let mut attacker = client(&running).await;
    let mut tampered = connect_message("connect-a", CONNECT_A, b"x");
    let n = tampered.len();
    tampered[n - 120] ^= 1;
    let req = ReencryptRequest {
        input: Some(Input::Ciphertext(tampered.clone())),
        consumers: vec!["payments".into()],
        ..Default::default()
    };
    for _ in 0..3 {
        let s = attacker.reencrypt(req.clone()).await.unwrap_err();
        assert_eq!(reason(&s), "AUTHENTICATION_FAILED");
    }
    let attempts = metric(
        &running,
        "reseal_source_key_uses_total{source=\"connect-a\",outcome=\"authentication_failed\"}",
    );
    let s = attacker.reencrypt(req.clone()).await.unwrap_err();
    assert_eq!(s.code(), tonic::Code::ResourceExhausted, "{s:?}");
    assert_eq!(reason(&s), "TOO_MANY_FAILURES");
    use tonic_types::StatusExt;
    let retry = s
        .get_error_details()
        .retry_info()
        .and_then(|r| r.retry_delay);
    assert!(
        retry.is_some_and(|d| d > Duration::from_secs(5)),
        "{retry:?}"
    );
    // Refused before any parsing or key use.
    assert_eq!(
        metric(
            &running,
            "reseal_source_key_uses_total{source=\"connect-a\",outcome=\"authentication_failed\"}"
        ),
        attempts
    );
    assert_eq!(metric(&running, "reseal_requests_total{door=\"grpc\",method=\"Reencrypt\",route=\"-\",outcome=\"TOO_MANY_FAILURES\"}"), 1.0);
    assert!(
        metric(
            &running,
            "reseal_security_events_total{kind=\"too_many_failures\"}"
        ) >= 1.0
    );
    // Another caller is not refused.
    let mut other = client(&running).await;
    assert!(other.reencrypt(card_capture_request(b"fine")).await.is_ok());

    // The HTTP door: one keep-alive connection, the same budget rule; 429 with Retry-After.
    use base64::Engine as _;
    let body = serde_json::json!({"ciphertext": base64::engine::general_purpose::STANDARD.encode(&tampered), "consumers": ["payments"]}).to_string();
    let mut s = TcpStream::connect(running.http_addr.unwrap())
        .await
        .unwrap();
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let req = format!("POST /v1/reencrypt HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len());
        s.write_all(req.as_bytes()).await.unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 8192];
        // One answer: headers and a Content-Length body.
        loop {
            let n = s.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed");
            got.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&got).to_string();
            if let Some((head, rest)) = text.split_once("\r\n\r\n") {
                let len: usize = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length: ")
                            .map(|v| v.trim().parse().unwrap())
                    })
                    .unwrap_or(0);
                if rest.len() >= len {
                    statuses.push(text);
                    break;
                }
            }
        }
    }
    assert!(statuses[2].starts_with("HTTP/1.1 400"), "{}", statuses[2]);
    let last = &statuses[3];
    assert!(last.starts_with("HTTP/1.1 429"), "{last}");
    assert!(last.contains("TOO_MANY_FAILURES"), "{last}");
    assert!(last.to_ascii_lowercase().contains("retry-after:"), "{last}");
    running.stop().await.unwrap();
}
