//! Hostile requests get typed errors with bounded memory; overload sheds;
//! client deadlines stop the work.

use std::time::{Duration, Instant};

use reseal::esdk::{self, AlgorithmSuite, EncryptionContext, EncryptionMaterials};
use reseal::grpc::proto::{reencrypt_request::Input, ReencryptBatchRequest, ReencryptRequest};
use reseal::keys::RawAesKeyring;
use reseal::telemetry::ConsumerLabels;

use crate::harness::*;

fn msg(input: Vec<u8>) -> ReencryptRequest {
    ReencryptRequest {
        input: Some(Input::Ciphertext(input)),
        consumers: vec!["payments".into()],
        ..Default::default()
    }
}

/// Resident set size of this process, in KiB.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_oversized_requests_get_typed_errors() {
    let fx = Fixture::new();
    let cfg = fx.write("reseal.yaml", &standard_config(""));
    let running = start(&cfg, manual_clock("2026-01-01T00:00:00Z")).await;
    let mut c = client(&running)
        .await
        .max_encoding_message_size(200 * 1024 * 1024);

    // Random bytes.
    let mut random = vec![0u8; 4096];
    aws_lc_rs::rand::fill(&mut random).unwrap();
    for first in [0x01u8, 0x02, 0x7f] {
        random[0] = first;
        let status = c.reencrypt(msg(random.clone())).await.unwrap_err();
        assert!(
            ["MALFORMED_CIPHERTEXT", "MAXIMUM_DATA_SIZE_EXCEEDED"]
                .contains(&reason(&status).as_str()),
            "{status:?}"
        );
    }

    // 10,000 EDKs (the header alone is ~700 KB, over the 256 KiB input limit,
    // so send it to a broker whose input limit allows it: the EDK limit catches it).
    let keys: Vec<RawAesKeyring> = (0..10_000)
        .map(|i| RawAesKeyring::new("p", format!("k{i}"), &[1u8; 16]).unwrap())
        .collect();
    let mut m = EncryptionMaterials::generate(
        AlgorithmSuite::Aes256GcmHkdfSha512CommitKey,
        EncryptionContext::new(),
    )
    .unwrap();
    for k in &keys {
        m.wrap_for(k).unwrap();
    }
    let flood = esdk::seal(b"x", &m, 4096).unwrap();
    let status = c.reencrypt(msg(flood.clone())).await.unwrap_err();
    assert_eq!(reason(&status), "MAXIMUM_DATA_SIZE_EXCEEDED");
    let roomy = fx.write(
        "roomy.yaml",
        &standard_config("limits:\n  max_ciphertext_bytes: 2000000\n  max_header_bytes: 2000000\n"),
    );
    let running2 = start(&roomy, manual_clock("2026-01-01T00:00:00Z")).await;
    let mut c2 = client(&running2).await;
    let status = c2.reencrypt(msg(flood)).await.unwrap_err();
    assert_eq!(reason(&status), "TOO_MANY_ENCRYPTED_DATA_KEYS");
    assert!(status.message().contains("10000"), "{}", status.message());
    running2.stop().await.unwrap();

    // A huge encryption context (60 KB, over the 16 KiB default).
    let k = RawAesKeyring::new("p", "k", &[1u8; 16]).unwrap();
    let big = "v".repeat(60_000);
    let ctx: EncryptionContext = [("huge", big.as_str())].into_iter().collect();
    let huge = esdk::encrypt(b"x", &[&k], &ctx, &Default::default()).unwrap();
    let status = c.reencrypt(msg(huge)).await.unwrap_err();
    assert_eq!(reason(&status), "MAXIMUM_DATA_SIZE_EXCEEDED");

    // A 100 MB body: refused at the gRPC layer, before it is decoded, without
    // the process growing by anything like 100 MB per request.
    let before = rss_kib();
    let body = vec![0x02u8; 100 * 1024 * 1024];
    let status = c.reencrypt(msg(body)).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    assert_eq!(reason(&status), "MAXIMUM_DATA_SIZE_EXCEEDED");
    // The server is fine afterwards.
    let ok = c
        .reencrypt(msg(connect_message("connect-a", CONNECT_A, b"after")))
        .await
        .unwrap();
    assert!(ok.into_inner().results[0].error.is_none());
    let grown = rss_kib().saturating_sub(before);
    // The client itself held the 100 MB body; the server side must not have added another copy.
    assert!(grown < 250 * 1024, "RSS grew by {grown} KiB");
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn overload_is_shed_with_resource_exhausted() {
    let fx = Fixture::new();
    let cfg = fx.write(
        "reseal.yaml",
        &(standard_config("").replace("server:\n", "server:\n  max_concurrent_requests: 2\n")
            + "limits:\n  max_batch_items: 400\n"),
    );
    let running = start(&cfg, manual_clock("2026-01-01T00:00:00Z")).await;
    let item = ReencryptRequest {
        input: Some(Input::Ciphertext(connect_message(
            "connect-a",
            CONNECT_A,
            b"load",
        ))),
        route: "card-capture".into(),
        ..Default::default()
    };
    let before = rss_kib();
    // Watch the in-flight gauge while the burst runs.
    let metrics = running.broker.metrics().clone();
    let peak = std::sync::Arc::new(std::sync::atomic::AtomicI64::new(0));
    let sampler = {
        let (metrics, peak) = (metrics.clone(), peak.clone());
        tokio::spawn(async move {
            loop {
                peak.fetch_max(
                    metrics.in_flight.get(),
                    std::sync::atomic::Ordering::Relaxed,
                );
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };
    let mut tasks = Vec::new();
    for _ in 0..24 {
        let mut c = client(&running).await;
        let batch = ReencryptBatchRequest {
            items: vec![item.clone(); 60],
        };
        tasks.push(tokio::spawn(async move { c.reencrypt_batch(batch).await }));
    }
    let mut ok = 0;
    let mut shed = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(s) => {
                assert_eq!(s.code(), tonic::Code::ResourceExhausted, "{s:?}");
                assert_eq!(reason(&s), "OVERLOADED");
                use tonic_types::StatusExt;
                assert!(s.get_error_details().retry_info().is_some());
                shed += 1;
            }
        }
    }
    sampler.abort();
    let peak = peak.load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        (1..=2).contains(&peak),
        "in-flight gauge peaked at {peak} (limit 2)"
    );
    assert_eq!(metrics.in_flight.get(), 0, "every slot released");
    assert!(
        ok >= 2,
        "some requests must be served ({ok} ok, {shed} shed)"
    );
    assert!(
        shed >= 10,
        "most of the burst must be shed, not queued ({ok} ok, {shed} shed)"
    );
    assert!(
        rss_kib().saturating_sub(before) < 200 * 1024,
        "memory stayed bounded"
    );
    let metrics = running.broker.metrics().encode();
    assert!(metrics.contains("reseal_requests_shed_total"), "{metrics}");
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_deadline_stops_the_work() {
    let fx = Fixture::new();
    let cfg = fx.write(
        "reseal.yaml",
        &(standard_config("") + "limits:\n  max_batch_items: 1000\n  max_consumers_per_call: 64\n"),
    );
    let running = start(&cfg, manual_clock("2026-01-01T00:00:00Z")).await;
    let mut c = client(&running).await;
    let item = ReencryptRequest {
        input: Some(Input::Ciphertext(connect_message(
            "connect-a",
            CONNECT_A,
            b"deadline",
        ))),
        route: "card-capture".into(),
        ..Default::default()
    };
    let mut request = tonic::Request::new(ReencryptBatchRequest {
        items: vec![item; 1000],
    });
    request.set_timeout(Duration::from_millis(150));
    let started = Instant::now();
    let status = c.reencrypt_batch(request).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(
        matches!(
            status.code(),
            tonic::Code::DeadlineExceeded | tonic::Code::Cancelled
        ),
        "{status:?}"
    );
    let envelopes = || {
        running
            .broker
            .metrics()
            .envelopes
            .get_or_create(&ConsumerLabels {
                consumer: "payments".into(),
                outcome: "OK".into(),
            })
            .get()
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after_cancel = envelopes();
    tokio::time::sleep(Duration::from_millis(700)).await;
    // Work stopped: nothing more is produced, and far less than the 1000 items were done.
    assert_eq!(
        envelopes(),
        after_cancel,
        "work continued after the deadline"
    );
    assert!(
        after_cancel < 1000,
        "{after_cancel} envelopes: the batch ran to completion"
    );
    running.stop().await.unwrap();
}
