//! Issue 22's limits one by one, in process: connection limits and deadlines
//! on every listener, the failure budget (refused early, RetryInfo, on both
//! doors), and the unwrap-attempt limits per message. The floods themselves,
//! against the real binary with memory and fairness targets, are in
//! tools/bench/tests/attack.rs.

use std::net::SocketAddr;
use std::sync::Arc;
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
    // HTTP/2 (the gRPC and health listeners): GOAWAY once idle, then closed.
    for (name, addr) in [("health", running.health_addr), ("grpc", running.grpc_addr)] {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let (client, conn) = h2::client::handshake(tcp).await.unwrap();
        let conn = tokio::spawn(conn);
        let mut client = client.ready().await.unwrap();
        let req = http::Request::builder()
            .method("POST")
            .uri(format!("http://{addr}/grpc.health.v1.Health/Check"))
            .header("content-type", "application/grpc")
            .body(())
            .unwrap();
        let (resp, mut body) = client.send_request(req, false).unwrap();
        body.send_data(bytes::Bytes::from_static(&[0, 0, 0, 0, 0]), true)
            .unwrap();
        let resp = resp.await.unwrap();
        assert_eq!(resp.status(), 200, "{name}");
        let t = Instant::now();
        tokio::time::timeout(Duration::from_secs(6), conn)
            .await
            .unwrap_or_else(|_| panic!("{name}: an idle HTTP/2 connection is closed"))
            .unwrap()
            .ok();
        assert!(
            t.elapsed() >= Duration::from_millis(1500),
            "{name}: {:?}",
            t.elapsed()
        );
        assert!(
            metric(
                &running,
                &format!("reseal_connections_closed_total{{listener=\"{name}\",reason=\"idle_timeout\"}}")
            ) >= 1.0,
            "{name}"
        );
    }
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
    assert_eq!(uses("AUTHENTICATION_FAILED"), 1.0, "one RSA attempt");
    assert_eq!(uses("ATTEMPT_LIMIT"), 15.0, "the other 15 EDKs not tried");

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
            "reseal_source_key_uses_total{source=\"connect-b\",outcome=\"ATTEMPT_LIMIT\"}"
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
        "reseal_source_key_uses_total{source=\"connect-a\",outcome=\"AUTHENTICATION_FAILED\"}",
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
            "reseal_source_key_uses_total{source=\"connect-a\",outcome=\"AUTHENTICATION_FAILED\"}"
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

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// An HTTP/2 frame: 9-byte header, then the payload.
fn h2_frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// An HPACK block for a `Reencrypt` call (no Huffman, no indexing): the
/// request is valid, so the server keeps its stream open waiting for a body.
fn reencrypt_headers(authority: &str) -> Vec<u8> {
    let mut b = vec![0x83, 0x86]; // :method POST, :scheme http
    for (index, value) in [
        (0x04u8, &b"/reseal.v1.ReencryptService/Reencrypt"[..]),
        (0x01, authority.as_bytes()),
    ] {
        b.push(index);
        b.push(value.len() as u8);
        b.extend_from_slice(value);
    }
    b.extend_from_slice(&[0x0f, 0x10, 16]); // content-type (31)
    b.extend_from_slice(b"application/grpc");
    b
}

/// The frames a server sent, as (type, flags, stream, payload), until `stop`
/// says enough, the connection closes (`true` in the result) or `within` passes.
async fn read_frames(
    s: &mut TcpStream,
    within: Duration,
    mut stop: impl FnMut(&[(u8, u8, u32, Vec<u8>)]) -> bool,
) -> (Vec<(u8, u8, u32, Vec<u8>)>, bool) {
    let until = Instant::now() + within;
    let (mut buf, mut frames) = (Vec::new(), Vec::new());
    let mut chunk = [0u8; 16 * 1024];
    loop {
        while buf.len() >= 9 {
            let len = (buf[0] as usize) << 16 | (buf[1] as usize) << 8 | buf[2] as usize;
            if buf.len() < 9 + len {
                break;
            }
            let stream = u32::from_be_bytes([buf[5], buf[6], buf[7], buf[8]]) & 0x7fff_ffff;
            frames.push((buf[3], buf[4], stream, buf[9..9 + len].to_vec()));
            buf.drain(..9 + len);
        }
        if stop(&frames) {
            return (frames, false);
        }
        match tokio::time::timeout_at(until.into(), s.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (frames, true),
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
            Err(_) => return (frames, false),
        }
    }
}

/// The server's first SETTINGS frame, as (identifier, value) pairs.
fn settings_of(frames: &[(u8, u8, u32, Vec<u8>)]) -> Option<Vec<(u16, u32)>> {
    let (_, _, _, p) = frames.iter().find(|f| f.0 == 0x4 && f.1 & 0x1 == 0)?;
    Some(
        p.chunks_exact(6)
            .map(|c| {
                (
                    u16::from_be_bytes([c[0], c[1]]),
                    u32::from_be_bytes([c[2], c[3], c[4], c[5]]),
                )
            })
            .collect(),
    )
}

const RST_STREAM: u8 = 0x3;
const GOAWAY: u8 = 0x7;
const REFUSED_STREAM: u32 = 0x7;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_limits_streams_resets_and_header_lists() {
    let fx = Fixture::new();
    let cfg = fx.write(
        "reseal.yaml",
        &with_server(
            "  http_listen: 127.0.0.1:0\n  http2: {max_concurrent_streams: 3, max_header_list_bytes: 4096, max_resets_per_second: 10, max_pending_accept_reset_streams: 1000}\n",
        ),
    );
    let running = start(&cfg, manual_clock("2026-01-01T00:00:00Z")).await;
    let addr = running.grpc_addr;
    let block = reencrypt_headers(&addr.to_string());

    // Streams: the server says 3 at once, and refuses a 4th.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(&[PREFACE, &h2_frame(0x4, 0, 0, &[])].concat())
        .await
        .unwrap();
    let (frames, _) =
        read_frames(&mut s, Duration::from_secs(3), |f| settings_of(f).is_some()).await;
    let settings = settings_of(&frames).expect("the server's SETTINGS");
    assert!(
        settings.contains(&(0x3, 3)),
        "MAX_CONCURRENT_STREAMS: {settings:?}"
    );
    assert!(
        settings.contains(&(0x6, 4096)),
        "MAX_HEADER_LIST_SIZE: {settings:?}"
    );
    let mut out = h2_frame(0x4, 0x1, 0, &[]); // SETTINGS ACK
    for id in [1u32, 3, 5, 7] {
        out.extend(h2_frame(0x1, 0x4, id, &block)); // HEADERS, END_HEADERS
    }
    s.write_all(&out).await.unwrap();
    let refused = |f: &[(u8, u8, u32, Vec<u8>)], id: u32| {
        f.iter().any(|(t, _, sid, p)| {
            *t == RST_STREAM && *sid == id && p[..] == REFUSED_STREAM.to_be_bytes()
        })
    };
    let (frames, closed) = read_frames(&mut s, Duration::from_secs(3), |f| refused(f, 7)).await;
    assert!(refused(&frames, 7), "the 4th stream is refused: {frames:?}");
    assert!(!closed);
    for id in [1, 3, 5] {
        assert!(
            !frames
                .iter()
                .any(|(t, _, sid, _)| *t == RST_STREAM && *sid == id),
            "stream {id} within the limit was reset"
        );
    }
    drop(s);

    // Resets: 5 in a second are fine; 30 at once close the connection.
    let mut s = TcpStream::connect(addr).await.unwrap();
    let pair = |id: u32| {
        [
            h2_frame(0x1, 0x4, id, &block),
            h2_frame(RST_STREAM, 0, id, &8u32.to_be_bytes()), // CANCEL
        ]
        .concat()
    };
    let mut out = [PREFACE, &h2_frame(0x4, 0, 0, &[])].concat();
    for i in 0..5 {
        out.extend(pair(1 + 2 * i));
    }
    s.write_all(&out).await.unwrap();
    let (frames, closed) = read_frames(&mut s, Duration::from_millis(1200), |_| false).await;
    assert!(!closed, "5 resets closed the connection: {frames:?}");
    assert!(!frames.iter().any(|f| f.0 == GOAWAY), "{frames:?}");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let out: Vec<u8> = (0..30).flat_map(|i| pair(101 + 2 * i)).collect();
    // The server may close while we write.
    let _ = s.write_all(&out).await;
    assert!(
        closed_within(&mut s, Duration::from_secs(3))
            .await
            .is_some(),
        "30 resets at once did not close the connection"
    );
    assert_eq!(
        metric(
            &running,
            "reseal_connections_closed_total{listener=\"grpc\",reason=\"reset_flood\"}"
        ),
        1.0
    );

    // Header lists: over 4 KiB is refused with 431 (the server's limit, not
    // the client's: h2 leaves it to the server), under it is served.
    for (size, want_431) in [(6000usize, true), (1000, false)] {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let (client, conn) = h2::client::handshake(tcp).await.unwrap();
        tokio::spawn(conn);
        let mut client = client.ready().await.unwrap();
        let req = http::Request::builder()
            .method("POST")
            .uri(format!(
                "http://{addr}/reseal.v1.ReencryptService/Reencrypt"
            ))
            .header("content-type", "application/grpc")
            .header("x-padding", "a".repeat(size))
            .body(())
            .unwrap();
        let (resp, _body) = client.send_request(req, true).unwrap();
        let status = match resp.await {
            Ok(r) => r.status().as_u16(),
            Err(e) => panic!("{size} bytes of headers: {e}"),
        };
        assert_eq!(status == 431, want_431, "{size} bytes of headers: {status}");
    }
    // The HTTP/JSON door (HTTP/1.1): its header limit is at least 8 KiB
    // (hyper's smallest buffer), and over it: 431.
    let mut s = TcpStream::connect(running.http_addr.unwrap())
        .await
        .unwrap();
    let big = format!(
        "POST /v1/reencrypt HTTP/1.1\r\nHost: x\r\nX-Padding: {}\r\nContent-Length: 0\r\n\r\n",
        "a".repeat(20_000)
    );
    let _ = s.write_all(big.as_bytes()).await;
    let mut answer = vec![0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(3), s.read(&mut answer))
        .await
        .unwrap()
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    running.stop().await.unwrap();
}

/// With TLS, one deadline from accept covers the handshake, the HTTP/2
/// preface and the first request: a client that stops anywhere in it is cut.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_handshake_and_preface_share_the_handshake_deadline() {
    use crate::mtls::{dns, pki, tls_config};
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    let fx = Fixture::new();
    let pki = pki();
    let cfg = fx.write(
        "reseal.yaml",
        &with_server(&format!(
            "{}  connections: {{handshake_timeout: 1s}}\n",
            tls_config(&fx, &pki)
        )),
    );
    let running = start(&cfg, manual_clock("2026-01-01T00:00:00Z")).await;
    let addr = running.grpc_addr;
    let cut = |took: Option<Duration>, what: &str| {
        let took = took.unwrap_or_else(|| panic!("{what}: still open after 4 s"));
        assert!(
            took >= Duration::from_millis(800) && took < Duration::from_secs(3),
            "{what}: closed after {took:?}"
        );
    };
    // Nothing at all, and half a ClientHello (a record header announcing
    // 512 bytes, then 10 of them).
    for (what, opening) in [
        ("nothing", &b""[..]),
        (
            "half a ClientHello",
            &[
                0x16, 0x03, 0x01, 0x02, 0x00, 1, 0, 1, 0xfc, 3, 3, 0, 0, 0, 0,
            ][..],
        ),
    ] {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(opening).await.unwrap();
        cut(closed_within(&mut s, Duration::from_secs(4)).await, what);
    }
    assert_eq!(
        metric(
            &running,
            "reseal_connections_closed_total{listener=\"grpc\",reason=\"handshake_timeout\"}"
        ),
        2.0
    );
    // A complete TLS handshake (with a client certificate), then no HTTP/2
    // preface: cut at the same deadline, counted from accept.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(pki.ca.pem.as_bytes()).unwrap())
        .unwrap();
    let (cert, key) = pki.ca.leaf("client", vec![dns("client.test")]);
    let mut config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_client_auth_cert(
            vec![CertificateDer::from_pem_slice(cert.as_bytes()).unwrap()],
            PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
        )
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = TcpStream::connect(addr).await.unwrap();
    let t = Instant::now();
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .expect("the TLS handshake completes");
    let mut buf = [0u8; 1024];
    let closed = loop {
        match tokio::time::timeout_at((t + Duration::from_secs(4)).into(), tls.read(&mut buf)).await
        {
            Ok(Ok(0)) | Ok(Err(_)) => break Some(t.elapsed()),
            Ok(Ok(_)) => continue,
            Err(_) => break None,
        }
    };
    cut(closed, "TLS, then no preface");
    assert_eq!(
        metric(
            &running,
            "reseal_connections_closed_total{listener=\"grpc\",reason=\"handshake_timeout\"}"
        ),
        3.0
    );
    running.stop().await.unwrap();
}
