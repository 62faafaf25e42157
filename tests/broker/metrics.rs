//! What `/metrics` of a running server says: expiry as timestamps for every
//! source and consumer key, build info, process metrics, the last reload's
//! success, batch items, one spelling of outcomes, latency buckets up to the
//! request timeout; and every metric the Helm chart's alerts and dashboard use.

use std::collections::BTreeSet;

use reseal::grpc::proto::{reencrypt_request::Input, ReencryptBatchRequest, ReencryptRequest};

use crate::flow::http_get;
use crate::harness::*;

/// `standard_config` with a source in its grace period, a 3 s request
/// timeout, and a KMS consumer whose AWS endpoint refuses connections (so the
/// AWS call and cache metrics have series).
fn config() -> String {
    standard_config(
        "aws:\n  endpoint_url: http://127.0.0.1:1\n  max_attempts: 1\n  attempt_timeout: 200ms\n  operation_timeout: 500ms\n",
    )
    .replace("server:\n", "server:\n  request_timeout: 3s\n")
    .replace(
        "consumers:\n",
        "consumers:\n  vault-kms:\n    keys:\n      vault-kms-1: {type: aws-kms, key_id: \"arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab\"}\n",
    )
        .replace(
            "    private_key: file:connect-b.pem\n",
            "    private_key: file:connect-b.pem\n    decrypt_until: 2027-01-31T00:00:00Z\n",
        )
}

/// Metric names (as exposed, with `_total`, `_bucket`...) found in a scrape.
fn exposed(body: &str) -> BTreeSet<String> {
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect()
}

/// Every value of a label in a scrape.
fn label_values(body: &str, label: &str) -> BTreeSet<String> {
    let needle = format!("{label}=\"");
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .flat_map(|l| {
            l.match_indices(&needle)
                .filter_map(|(i, _)| {
                    let rest = &l[i + needle.len()..];
                    rest.split('"').next().map(str::to_owned)
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

#[tokio::test]
async fn a_running_server_exposes_expiry_build_process_reload_and_batch_metrics() {
    let fx = Fixture::new();
    let cfg = fx.write("reseal.yaml", &config());
    let running = start(&cfg, manual_clock("2026-01-01T00:00:00Z")).await;
    let mut c = client(&running).await;
    c.reencrypt(card_capture_request(b"4111111111111111"))
        .await
        .unwrap();
    let good = ReencryptRequest {
        input: Some(Input::Ciphertext(connect_message(
            "connect-a",
            CONNECT_A,
            b"4111111111111111",
        ))),
        route: "card-capture".into(),
        ..Default::default()
    };
    let bad = ReencryptRequest {
        input: Some(Input::Ciphertext(b"not an ESDK message".to_vec())),
        route: "card-capture".into(),
        ..Default::default()
    };
    c.reencrypt_batch(ReencryptBatchRequest {
        items: vec![good, bad],
    })
    .await
    .unwrap();
    // A consumer whose AWS is unreachable fails alone, as UPSTREAM_UNAVAILABLE.
    let mut to_kms = card_capture_request(b"4111111111111111");
    to_kms.route = String::new();
    to_kms.consumers = vec!["vault-kms".into()];
    let resp = c.reencrypt(to_kms).await.unwrap().into_inner();
    assert_eq!(
        resp.results[0].error.as_ref().map(|e| e.reason.as_str()),
        Some("UPSTREAM_UNAVAILABLE")
    );
    // An input for a key nobody configured: a security event.
    let mut stranger = card_capture_request(b"x");
    stranger.input = Some(Input::Ciphertext(connect_message(
        "stranger", CONNECT_A, b"x",
    )));
    let _ = c.reencrypt(stranger).await;
    let body = http_get(running.admin_addr, "/metrics").await;

    // Expiry as data, in Unix seconds: a source's decrypt_until and a consumer key window.
    assert!(
        body.contains(&format!(
            "reseal_key_not_after_timestamp_seconds{{kind=\"source\",id=\"connect-b\",key=\"{CONNECT_B}\"}} 1801353600"
        )),
        "{body}"
    );
    assert!(body.contains(
        "reseal_key_not_after_timestamp_seconds{kind=\"consumer\",id=\"ledger\",key=\"ledger-old\"} 1909008000"
    ));
    // Keys without an end have no series; the days gauge is gone.
    assert!(!body.contains("id=\"payments\",key=\"payments-2026\""));
    assert!(!body.contains("reseal_key_expiry_days"));

    // Build info: this version, a commit from git (or RESEAL_COMMIT), value 1.
    let build = body
        .lines()
        .find(|l| l.starts_with("reseal_build_info{"))
        .unwrap_or_else(|| panic!("no build info in {body}"));
    assert!(
        build.starts_with(&format!(
            "reseal_build_info{{version=\"{}\",commit=\"",
            env!("CARGO_PKG_VERSION")
        )) && build.ends_with("\"} 1"),
        "{build}"
    );
    let commit = label_values(build, "commit").into_iter().next().unwrap();
    assert!(!commit.is_empty(), "{build}");

    // Process metrics, the standard names.
    let names = exposed(&body);
    for name in [
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_virtual_memory_bytes",
        "process_open_fds",
        "process_max_fds",
        "process_start_time_seconds",
    ] {
        assert!(names.contains(name), "{name} missing from\n{body}");
    }

    // The last reload applied.
    assert!(
        body.contains("reseal_registry_last_reload_success 1"),
        "{body}"
    );

    // A batch counts each item's outcome.
    assert!(
        body.contains("reseal_batch_items_total{route=\"card-capture\",outcome=\"OK\"} 1"),
        "{body}"
    );
    assert!(
        body.contains(
            "reseal_batch_items_total{route=\"card-capture\",outcome=\"MALFORMED_CIPHERTEXT\"} 1"
        ),
        "{body}"
    );

    // One spelling of outcomes: OK or a reason of the API, upper case.
    let reasons: BTreeSet<&str> = reseal::broker::Reason::ALL
        .iter()
        .map(|r| r.as_str())
        .chain(["OK", "FAILED"])
        .collect();
    let outcomes = label_values(&body, "outcome");
    assert!(outcomes.contains("OK") && outcomes.contains("MALFORMED_CIPHERTEXT"));
    assert!(outcomes.contains("UPSTREAM_UNAVAILABLE"), "{body}");
    for o in &outcomes {
        assert!(
            reasons.contains(o.as_str()),
            "outcome `{o}` is not OK or a reason"
        );
    }

    // Latency buckets reach the request timeout (3 s) and stop there.
    let les: Vec<f64> = body
        .lines()
        .filter(|l| {
            l.starts_with("reseal_request_duration_seconds_bucket{")
                && l.contains("method=\"Reencrypt\"")
        })
        .flat_map(|l| label_values(l, "le"))
        .filter_map(|v| v.parse().ok())
        .filter(|v: &f64| v.is_finite())
        .collect();
    let top = les.iter().cloned().fold(0.0, f64::max);
    assert_eq!(top, 3.0, "largest finite bucket {top}: {les:?}");
    assert!(les.contains(&0.0001) && les.len() > 10, "{les:?}");

    // Everything the Helm chart's alerts and dashboard query is exposed.
    let chart = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("helm/reseal");
    let mut used = String::new();
    for f in ["templates/prometheusrule.yaml", "dashboards/reseal.json"] {
        used.push_str(&std::fs::read_to_string(chart.join(f)).unwrap());
    }
    let metric = regex_lite::Regex::new(r"\b(reseal|process)_[a-z_]+").unwrap();
    let wanted: BTreeSet<&str> = metric.find_iter(&used).map(|m| m.as_str()).collect();
    assert!(wanted.len() >= 10, "{wanted:?}");
    // Names with no series yet still have their # TYPE line.
    let typed: BTreeSet<String> = body
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .map(str::to_owned)
        .collect();
    for w in wanted {
        let base = w
            .strip_suffix("_total")
            .or_else(|| w.strip_suffix("_bucket"))
            .unwrap_or(w);
        assert!(
            names.contains(w) || typed.contains(w) || typed.contains(base),
            "the chart uses `{w}`, which the server does not expose"
        );
    }
    running.stop().await.unwrap();
}

#[tokio::test]
async fn a_refused_reload_sets_the_success_gauge_to_zero() {
    let fx = Fixture::new();
    let cfg = fx.write("reseal.yaml", &standard_config(""));
    let running = start(&cfg, manual_clock("2026-01-01T00:00:00Z")).await;
    fx.replace("reseal.yaml", &standard_config("colour: blue\n"));
    assert!(matches!(
        running.registry.reload(false).await,
        reseal::registry::ReloadOutcome::Rejected { .. }
    ));
    let body = http_get(running.admin_addr, "/metrics").await;
    assert!(
        body.contains("reseal_registry_last_reload_success 0"),
        "{body}"
    );
    assert!(
        body.contains("reseal_registry_reloads_total{outcome=\"FAILED\"} 1"),
        "{body}"
    );
    fx.replace("reseal.yaml", &standard_config(""));
    running.registry.reload(true).await;
    let body = http_get(running.admin_addr, "/metrics").await;
    assert!(
        body.contains("reseal_registry_last_reload_success 1"),
        "{body}"
    );
    running.stop().await.unwrap();
}
