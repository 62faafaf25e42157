//! Key windows crossed with an injected clock: no sleeps, no reloads.

use reseal::grpc::proto::{reencrypt_request::Input, ReencryptRequest};
use reseal::keys::cert;
use time::macros::datetime;

use crate::harness::*;

fn request(consumers: &[&str]) -> ReencryptRequest {
    ReencryptRequest {
        input: Some(Input::Ciphertext(connect_message(
            "connect-a",
            CONNECT_A,
            b"4111111111111111",
        ))),
        consumers: consumers.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

#[tokio::test]
async fn consumer_rotation_overlaps_then_retires_without_reload() {
    let fx = Fixture::new();
    let cfg = fx.write("reseal.yaml", &standard_config(""));
    let clock = manual_clock("2030-05-31T12:00:00Z");
    let running = start(&cfg, clock.clone()).await;
    let mut client = client(&running).await;

    let ledger =
        |resp: reseal::grpc::proto::ReencryptResponse| resp.results.into_iter().next().unwrap();

    // Before the overlap: only the old key.
    let r = ledger(
        client
            .reencrypt(request(&["ledger"]))
            .await
            .unwrap()
            .into_inner(),
    );
    assert_eq!(r.key_ids, ["ledger-old"]);
    assert!(open_as("ledger-old", "ledger-old", &r.ciphertext).is_ok());
    assert!(open_as("ledger-new", "ledger-new", &r.ciphertext).is_err());

    // The overlap: one envelope, an EDK for each key; either opens it.
    clock.set(datetime!(2030-06-15 00:00 UTC));
    let r = ledger(
        client
            .reencrypt(request(&["ledger"]))
            .await
            .unwrap()
            .into_inner(),
    );
    assert_eq!(r.key_ids, ["ledger-old", "ledger-new"]);
    for key in ["ledger-old", "ledger-new"] {
        let out = open_as(key, key, &r.ciphertext).unwrap();
        assert_eq!(out.plaintext.as_bytes(), b"4111111111111111");
        assert_eq!(out.header.encrypted_data_keys.len(), 2);
    }

    // After: the old key has retired on its own boundary.
    clock.set(datetime!(2030-07-01 00:00 UTC));
    let r = ledger(
        client
            .reencrypt(request(&["ledger"]))
            .await
            .unwrap()
            .into_inner(),
    );
    assert_eq!(r.key_ids, ["ledger-new"]);
    assert!(open_as("ledger-old", "ledger-old", &r.ciphertext).is_err());
    running.stop().await.unwrap();
}

#[tokio::test]
async fn expired_certificates_and_source_windows_are_enforced() {
    let fx = Fixture::new();
    let fraud_cert = cert::self_signed_rsa(
        &keys()["fraud"].0,
        "fraud.example",
        datetime!(2025-01-01 00:00 UTC),
        datetime!(2027-01-01 00:00 UTC),
    )
    .unwrap();
    fx.write("fraud.crt.pem", &fraud_cert);
    let cfg = fx.write(
        "reseal.yaml",
        &format!(
            r#"
server: {{reload_interval: 0s}}
sources:
  connect-a:
    type: raw-rsa
    key_name: {CONNECT_A}
    private_key: file:connect-a.pem
    decrypt_until: 2028-01-01T00:00:00Z
consumers:
  payments:
    keys: {{p: {{type: rsa-public, public_key: file:payments.pub.pem}}}}
  fraud:
    keys: {{fraud-cert: {{type: x509, certificate: file:fraud.crt.pem}}}}
"#
        ),
    );
    let clock = manual_clock("2026-06-01T00:00:00Z");
    let running = start(&cfg, clock.clone()).await;
    let mut client = client(&running).await;

    let resp = client
        .reencrypt(request(&["payments", "fraud"]))
        .await
        .unwrap()
        .into_inner();
    assert!(resp.results.iter().all(|r| r.error.is_none()));

    // The certificate expires: that consumer fails, the other is unaffected.
    clock.set(datetime!(2027-02-01 00:00 UTC));
    let resp = client
        .reencrypt(request(&["payments", "fraud"]))
        .await
        .unwrap()
        .into_inner();
    assert!(resp.results[0].error.is_none());
    let err = resp.results[1].error.as_ref().unwrap();
    assert_eq!(err.reason, "KEY_EXPIRED");
    assert!(resp.results[1].ciphertext.is_empty());

    // all_or_nothing turns that into a failed call.
    let mut req = request(&["payments", "fraud"]);
    req.all_or_nothing = true;
    let status = client.reencrypt(req).await.unwrap_err();
    assert_eq!(reason(&status), "KEY_EXPIRED");
    assert!(status.message().contains("fraud"));

    // The source's grace period ends.
    clock.set(datetime!(2028-01-02 00:00 UTC));
    let status = client.reencrypt(request(&["payments"])).await.unwrap_err();
    assert_eq!(reason(&status), "KEY_EXPIRED");
    assert_eq!(status.code(), tonic::Code::FailedPrecondition);
    running.stop().await.unwrap();
}
