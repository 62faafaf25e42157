//! Hot reload under continuous load: good files are applied, broken ones are
//! refused and the previous registry keeps serving, and no request fails.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use reseal::grpc::proto::{reencrypt_request::Input, ReencryptRequest};
use reseal::telemetry::OutcomeLabels;

use crate::harness::*;

fn config(purpose: &str, broken: Option<usize>) -> String {
    let base = standard_config("").replace("reload_interval: 0s", "reload_interval: 20ms");
    let base = base.replace(
        "static: {purpose: card}",
        &format!("static: {{purpose: {purpose}}}"),
    );
    match broken {
        None => base,
        Some(0) => format!("{base}\n  this is: [not yaml"),
        Some(1) => base.replace(
            "    encryption_context:\n      static:",
            "    colour: blue\n    encryption_context:\n      static:",
        ),
        Some(2) => base.replace("file:fraud.pub.pem", "file:missing.pub.pem"),
        _ => base.replace(
            "private_key: file:connect-b.pem",
            "private_key: file:connect-b.pub.pem",
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_four_reloads_under_load_lose_no_request() {
    let fx = Fixture::new();
    let cfg = fx.write("reseal.yaml", &config("v0", None));
    let running = start(&cfg, manual_clock("2026-01-01T00:00:00Z")).await;
    let metrics = running.broker.metrics().clone();
    let reloads = |outcome: &str| {
        metrics
            .registry_reloads
            .get_or_create(&OutcomeLabels {
                outcome: outcome.into(),
            })
            .get()
    };

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let input = connect_message("connect-a", CONNECT_A, b"4111111111111111");
    let mut workers = Vec::new();
    for _ in 0..4 {
        let mut client = client(&running).await;
        let (stop, ok, failed, input) = (stop.clone(), ok.clone(), failed.clone(), input.clone());
        workers.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let r = client
                    .reencrypt(ReencryptRequest {
                        input: Some(Input::Ciphertext(input.clone())),
                        route: "card-capture".into(),
                        ..Default::default()
                    })
                    .await;
                match r {
                    Ok(resp) if resp.get_ref().results.iter().all(|r| r.error.is_none()) => {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(resp) => failed
                        .lock()
                        .unwrap()
                        .push(format!("{:?}", resp.get_ref().results)),
                    Err(s) => failed.lock().unwrap().push(format!("{s:?}")),
                }
            }
        }));
    }

    let mut last_good = String::from("v0");
    for i in 1..=24 {
        let (ok_before, failed_before) = (reloads("OK"), reloads("FAILED"));
        let broken = (i % 2 == 0).then_some(i / 2 % 4);
        let purpose = format!("v{i}");
        fx.replace("reseal.yaml", &config(&purpose, broken));
        if broken.is_none() {
            last_good = purpose;
        }
        // Wait for the watcher to pick the change up.
        let mut waited = 0;
        while reloads("OK") == ok_before && reloads("FAILED") == failed_before {
            tokio::time::sleep(Duration::from_millis(10)).await;
            waited += 1;
            assert!(waited < 500, "reload {i} never happened");
        }
        if broken.is_some() {
            assert_eq!(
                reloads("FAILED"),
                failed_before + 1,
                "broken file {i} must be refused"
            );
        } else {
            assert_eq!(
                reloads("OK"),
                ok_before + 1,
                "good file {i} must be applied"
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }
    let failures = failed.lock().unwrap().clone();
    assert!(
        failures.is_empty(),
        "{} failed requests: {:?}",
        failures.len(),
        &failures[..failures.len().min(3)]
    );
    assert!(
        ok.load(Ordering::Relaxed) > 100,
        "load was too light: {}",
        ok.load(Ordering::Relaxed)
    );
    assert_eq!(reloads("FAILED"), 12);
    assert_eq!(reloads("OK"), 13); // initial load + 12 good files

    // The registry now serving is the last good one.
    let mut client = client(&running).await;
    let resp = client
        .reencrypt(ReencryptRequest {
            input: Some(Input::Ciphertext(input)),
            consumers: vec!["payments".into()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let opened = open_as("payments", "payments-2026", &resp.results[0].ciphertext).unwrap();
    assert_eq!(
        opened.header.encryption_context.get("purpose"),
        Some(last_good.as_str())
    );
    running.stop().await.unwrap();
}

#[tokio::test]
async fn a_snapshot_taken_before_a_reload_is_unchanged_by_it() {
    let fx = Fixture::new();
    let cfg = fx.write("reseal.yaml", &config("before", None));
    let running = start(&cfg, manual_clock("2026-01-01T00:00:00Z")).await;
    let held = running.registry.snapshot().unwrap();
    fx.replace(
        "reseal.yaml",
        &config("after", None)
            .replace("  fraud:\n", "  fraud2:\n")
            .replace("[payments, fraud, ledger]", "[payments, fraud2, ledger]"),
    );
    assert!(matches!(
        running.registry.reload(false).await,
        reseal::registry::ReloadOutcome::Applied { .. }
    ));
    let now = running.registry.snapshot().unwrap();
    assert!(held.consumers.contains_key("fraud") && !held.consumers.contains_key("fraud2"));
    assert!(now.consumers.contains_key("fraud2") && !now.consumers.contains_key("fraud"));
    assert_ne!(held.digest, now.digest);
    running.stop().await.unwrap();
}
