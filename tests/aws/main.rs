//! AWS-backed keys against a real AWS API server (moto, over HTTP, through the
//! real aws-sdk-kms / aws-sdk-ssm clients), with a fault-injecting proxy of
//! our own in front for what moto cannot do (key states, throttling, outages).
//!
//! `RESEAL_MOTO_URL` points at moto (the test command starts it). Without it
//! the tests skip locally and fail in CI.

#[allow(dead_code)]
#[path = "../broker/harness.rs"]
mod harness;
mod proxy;

use std::path::Path;
use std::sync::Once;
use std::time::Duration;

use aws_sdk_kms::types::{KeySpec, KeyUsageType};
use reseal::esdk::{
    self, AlgorithmSuite, EncryptedDataKey, EncryptionContext, EncryptionMaterials,
};
use reseal::grpc::proto::{reencrypt_request::Input, ReencryptRequest};
use tonic_types::StatusExt;

use harness::*;
use proxy::{Mode, Proxy};

const REGION: &str = "us-east-1";

fn moto() -> Option<String> {
    // The test command exports moto's credentials and region. When run by hand
    // without them, set them once, before any test reads the environment.
    static ENV: Once = Once::new();
    ENV.call_once(|| {
        if std::env::var_os("AWS_ACCESS_KEY_ID").is_none() {
            std::env::set_var("AWS_ACCESS_KEY_ID", "testing");
            std::env::set_var("AWS_SECRET_ACCESS_KEY", "testing");
            std::env::set_var("AWS_REGION", REGION);
            std::env::set_var("AWS_DEFAULT_REGION", REGION);
        }
    });
    match std::env::var("RESEAL_MOTO_URL") {
        Ok(u) => Some(u),
        Err(_) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "RESEAL_MOTO_URL must be set in CI"
            );
            eprintln!("SKIPPING: RESEAL_MOTO_URL not set");
            None
        }
    }
}

async fn sdk(url: &str, region: &str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(region.to_owned()))
        .endpoint_url(url)
        .load()
        .await
}

async fn kms(url: &str) -> aws_sdk_kms::Client {
    aws_sdk_kms::Client::new(&sdk(url, REGION).await)
}

async fn ssm(url: &str) -> aws_sdk_ssm::Client {
    aws_sdk_ssm::Client::new(&sdk(url, REGION).await)
}

async fn create_key(url: &str) -> String {
    kms(url)
        .await
        .create_key()
        .send()
        .await
        .unwrap()
        .key_metadata()
        .unwrap()
        .arn()
        .unwrap()
        .to_owned()
}

async fn put_param(url: &str, name: &str, value: &str) {
    ssm(url)
        .await
        .put_parameter()
        .name(name)
        .value(value)
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .overwrite(true)
        .send()
        .await
        .unwrap();
}

/// An ESDK message whose data key was wrapped by KMS (what Genesys Cloud sends).
async fn kms_message(
    url: &str,
    key_arn: &str,
    ctx: &EncryptionContext,
    plaintext: &[u8],
) -> Vec<u8> {
    let suite = AlgorithmSuite::Aes256GcmHkdfSha512CommitKey;
    let draft = EncryptionMaterials::begin(suite, ctx.clone()).unwrap();
    let out = kms(url)
        .await
        .generate_data_key()
        .key_id(key_arn)
        .number_of_bytes(32)
        .set_encryption_context(Some(
            draft
                .encryption_context()
                .iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        ))
        .send()
        .await
        .unwrap();
    let mut m = draft
        .finish(esdk::DataKey::new(
            out.plaintext().unwrap().as_ref().to_vec(),
        ))
        .unwrap();
    m.push_encrypted_data_key(EncryptedDataKey {
        provider_id: "aws-kms".into(),
        provider_info: out.key_id().unwrap().as_bytes().to_vec(),
        ciphertext: out.ciphertext_blob().unwrap().as_ref().to_vec(),
    });
    esdk::seal(plaintext, &m, 4096).unwrap()
}

fn aws_section(endpoint: &str, extra: &str) -> String {
    format!(
        r#"
aws:
  region: {REGION}
  endpoint_url: {endpoint}
  attempt_timeout: 1s
  operation_timeout: 4s
  max_attempts: 3
  initial_backoff: 10ms
  max_backoff: 50ms
{extra}
"#
    )
}

fn req(input: Vec<u8>, consumers: &[&str]) -> ReencryptRequest {
    ReencryptRequest {
        input: Some(Input::Ciphertext(input)),
        consumers: consumers.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

fn py(moto: &str, args: &[&str]) -> String {
    let py = python().expect("python");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/aws_interop.py");
    let out = std::process::Command::new(py)
        .arg(script)
        .args(args)
        .env("AWS_ENDPOINT_URL", moto)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn genesys_messages_reencrypted_for_rsa_and_kms_consumers() {
    let Some(url) = moto() else { return };
    if python().is_none() {
        return;
    }
    let source_key = create_key(&url).await;
    let consumer_key = create_key(&url).await;
    let fx = Fixture::new();
    let cfg = fx.write(
        "reseal.yaml",
        &format!(
            r#"
server: {{reload_interval: 0s}}
{aws}
sources:
  genesys:
    type: aws-kms
    key_ids: ["{source_key}"]
    encryption_context:
      allow:
        genesys-cloud-organization-id: [org-a, org-b]
consumers:
  vault:
    keys: {{v: {{type: rsa-public, public_key: file:payments.pub.pem}}}}
  warehouse:
    keys: {{w: {{type: aws-kms, key_id: "{consumer_key}"}}}}
    encryption_context:
      propagate: [genesys-cloud-organization-id]
"#,
            aws = aws_section(&url, "")
        ),
    );
    let running = start(&cfg, manual_clock("2026-01-01T00:00:00Z")).await;
    let mut c = client(&running).await;

    // The reference ESDK writes a Genesys-shaped message with a KMS key on moto.
    let input = fx.path("genesys.bin");
    py(
        &url,
        &[
            "genesys-encrypt",
            "--key-arn",
            &source_key,
            "--org",
            "org-a",
            "--plaintext",
            "4111111111111111",
            "--out",
            input.to_str().unwrap(),
        ],
    );
    let bytes = std::fs::read(&input).unwrap();
    let resp = c
        .reencrypt(req(bytes, &["vault", "warehouse"]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resp.source_key_id, "genesys");
    for r in &resp.results {
        assert!(r.error.is_none(), "{r:?}");
    }
    // The consumers open their envelopes with the reference ESDK.
    let vault_env = fx.write("vault.bin", "");
    std::fs::write(&vault_env, &resp.results[0].ciphertext).unwrap();
    let pt = py(
        &url,
        &[
            "rsa-decrypt",
            "--key-file",
            fx.path("payments.pem").to_str().unwrap(),
            "--key-id",
            "v",
            "--in",
            vault_env.to_str().unwrap(),
        ],
    );
    assert_eq!(pt, hex::encode("4111111111111111"));
    let wh_env = fx.path("warehouse.bin");
    std::fs::write(&wh_env, &resp.results[1].ciphertext).unwrap();
    let pt = py(
        &url,
        &[
            "kms-decrypt",
            "--key-arn",
            &consumer_key,
            "--in",
            wh_env.to_str().unwrap(),
        ],
    );
    assert_eq!(pt, hex::encode("4111111111111111"));
    let header = esdk::Message::parse(&resp.results[1].ciphertext, &Default::default())
        .unwrap()
        .header;
    assert_eq!(header.encrypted_data_keys[0].provider_id, "aws-kms");
    assert_eq!(
        header
            .encryption_context
            .get("genesys-cloud-organization-id"),
        Some("org-a")
    );

    // An organization that is not allowed is refused before any KMS call.
    py(
        &url,
        &[
            "genesys-encrypt",
            "--key-arn",
            &source_key,
            "--org",
            "org-z",
            "--plaintext",
            "x",
            "--out",
            input.to_str().unwrap(),
        ],
    );
    let status = c
        .reencrypt(req(std::fs::read(&input).unwrap(), &["vault"]))
        .await
        .unwrap_err();
    assert_eq!(reason(&status), "ENCRYPTION_CONTEXT_MISMATCH");
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_keys_are_discovered_in_ssm_without_restart_and_junk_ids_do_not_hammer_ssm() {
    let Some(url) = moto() else { return };
    let proxy = Proxy::start(&url).await;
    let prefix = format!(
        "/it-{}/amazon-connect/encryption",
        hex::encode(rand_bytes())
    );
    put_param(
        &url,
        &format!("{prefix}/{CONNECT_A}/private-key"),
        &keys()["connect-a"].0,
    )
    .await;
    let fx = Fixture::new();
    let cfg = fx.write(
        "reseal.yaml",
        &format!(
            r#"
server: {{reload_interval: 0s}}
{aws}
sources:
  connect:
    type: ssm-discovery
    provider_id: AmazonConnect
    key_name_pattern: uuid
    parameter_template: "{prefix}/{{key_id}}/private-key"
consumers:
  payments:
    keys: {{p: {{type: rsa-public, public_key: file:payments.pub.pem}}}}
"#,
            aws = aws_section(
                &proxy.url(),
                "  discovery: {negative_ttl: 60s, lookups_per_second: 0.01, burst: 5}"
            )
        ),
    );
    let running = start(&cfg, manual_clock("2026-01-01T00:00:00Z")).await;
    let mut c = client(&running).await;
    let ok = c
        .reencrypt(req(
            connect_message("connect-a", CONNECT_A, b"a"),
            &["payments"],
        ))
        .await
        .unwrap();
    assert!(ok.into_inner().results[0].error.is_none());

    // A new Connect key: its parameter appears, and it just works.
    let status = c
        .reencrypt(req(
            connect_message("connect-b", CONNECT_B, b"b"),
            &["payments"],
        ))
        .await
        .unwrap_err();
    assert_eq!(reason(&status), "SOURCE_KEY_NOT_FOUND", "{status:?}");
    put_param(
        &url,
        &format!("{prefix}/{CONNECT_B}/private-key"),
        &keys()["connect-b"].0,
    )
    .await;
    // (the absence was remembered; a new key id is what Connect sends on rotation)
    let new_id = "5b2f0c1e-9d8a-4b7c-8e6f-1a2b3c4d5e6f";
    put_param(
        &url,
        &format!("{prefix}/{new_id}/private-key"),
        &keys()["ledger-new"].0,
    )
    .await;
    let resp = c
        .reencrypt(req(
            connect_message("ledger-new", new_id, b"c"),
            &["payments"],
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(resp.results[0].error.is_none());
    assert_eq!(
        open_as("payments", "p", &resp.results[0].ciphertext)
            .unwrap()
            .plaintext
            .as_bytes(),
        b"c"
    );

    // Junk key ids: the negative cache answers repeats; the rate limit stops floods.
    proxy.clear_log();
    let junk = "00000000-0000-4000-8000-000000000000";
    let mut reasons = Vec::new();
    for i in 0..10 {
        let id = if i < 5 {
            junk.to_owned()
        } else {
            format!("00000000-0000-4000-8000-00000000000{i}")
        };
        let status = c
            .reencrypt(req(connect_message("stranger", &id, b"x"), &["payments"]))
            .await
            .unwrap_err();
        reasons.push(reason(&status));
    }
    // Three lookups of real keys spent 3 of the 5 tokens. The first junk id costs
    // one lookup and is then remembered as absent; of five new junk ids only
    // one more is looked up, the rest are refused by the rate limit.
    assert_eq!(proxy.count("GetParameter"), 2, "{:?}", proxy.entries());
    assert!(
        reasons[..6].iter().all(|r| r == "SOURCE_KEY_NOT_FOUND"),
        "{reasons:?}"
    );
    assert!(
        reasons[6..].iter().all(|r| r == "UPSTREAM_UNAVAILABLE"),
        "{reasons:?}"
    );
    let body = harness_metrics(&running).await;
    assert!(
        body.contains("reseal_cache_lookups_total{cache=\"ssm_absent\",result=\"hit\"}"),
        "{body}"
    );
    running.stop().await.unwrap();
}

fn rand_bytes() -> [u8; 6] {
    let mut b = [0u8; 6];
    aws_lc_rs::rand::fill(&mut b).unwrap();
    b
}

async fn harness_metrics(running: &reseal::app::Running) -> String {
    running.broker.metrics().encode()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_outage_cached_keys_keep_serving_then_service_recovers() {
    let Some(url) = moto() else { return };
    let proxy = Proxy::start(&url).await;
    let kms_source = create_key(&url).await;
    let param = format!("/it-{}/connect-a", hex::encode(rand_bytes()));
    put_param(&url, &param, &keys()["connect-a"].0).await;
    let fx = Fixture::new();
    let cfg = fx.write(
        "reseal.yaml",
        &format!(
            r#"
server: {{reload_interval: 0s}}
{aws}
sources:
  connect:
    type: raw-rsa
    key_name: {CONNECT_A}
    private_key: ssm:{param}
  genesys:
    type: aws-kms
    key_ids: ["{kms_source}"]
consumers:
  payments:
    keys: {{p: {{type: rsa-public, public_key: file:payments.pub.pem}}}}
"#,
            aws = aws_section(
                &proxy.url(),
                "  key_cache: {refresh_after: 0s, stale_if_error: 1h}"
            )
        ),
    );
    let running = start(&cfg, manual_clock("2026-01-01T00:00:00Z")).await;
    let mut c = client(&running).await;
    let ctx: EncryptionContext = [("genesys-cloud-organization-id", "org-a")]
        .into_iter()
        .collect();
    let seen = kms_message(&url, &kms_source, &ctx, b"seen before").await;
    let unseen = kms_message(&url, &kms_source, &ctx, b"never seen").await;
    for input in [
        connect_message("connect-a", CONNECT_A, b"warm"),
        seen.clone(),
    ] {
        assert!(c
            .reencrypt(req(input, &["payments"]))
            .await
            .unwrap()
            .into_inner()
            .results[0]
            .error
            .is_none());
    }

    // AWS goes away.
    proxy.set(Mode::Drop);
    // Cached: the SSM key (served stale while refreshes fail) and the KMS data key of a known EDK.
    for _ in 0..3 {
        let r = c
            .reencrypt(req(
                connect_message("connect-a", CONNECT_A, b"during outage"),
                &["payments"],
            ))
            .await
            .unwrap();
        assert!(r.into_inner().results[0].error.is_none());
    }
    let r = c.reencrypt(req(seen.clone(), &["payments"])).await.unwrap();
    assert!(r.into_inner().results[0].error.is_none());
    // Not cached: a new KMS EDK needs KMS.
    let status = c
        .reencrypt(req(unseen.clone(), &["payments"]))
        .await
        .unwrap_err();
    assert_eq!(reason(&status), "UPSTREAM_UNAVAILABLE");
    assert_eq!(status.code(), tonic::Code::Unavailable);
    assert!(
        status.get_error_details().retry_info().is_some(),
        "a retry hint is included"
    );
    let metrics = harness_metrics(&running).await;
    assert!(
        metrics.contains("reseal_cache_lookups_total{cache=\"ssm_private_keys\",result=\"stale\"}"),
        "{metrics}"
    );

    // AWS is back: no restart needed.
    proxy.set(Mode::Forward);
    let r = c
        .reencrypt(req(unseen, &["payments"]))
        .await
        .unwrap()
        .into_inner();
    assert!(r.results[0].error.is_none());
    assert_eq!(
        open_as("payments", "p", &r.results[0].ciphertext)
            .unwrap()
            .plaintext
            .as_bytes(),
        b"never seen"
    );
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_states_throttling_and_retry_budget() {
    let Some(url) = moto() else { return };
    let proxy = Proxy::start(&url).await;
    let key = create_key(&url).await;
    let fx = Fixture::new();
    let cfg = fx.write(
        "reseal.yaml",
        &format!(
            r#"
server: {{reload_interval: 0s}}
{aws}
sources:
  genesys:
    type: aws-kms
    key_ids: ["{key}"]
consumers:
  payments:
    keys: {{p: {{type: rsa-public, public_key: file:payments.pub.pem}}}}
"#,
            aws = aws_section(
                &proxy.url(),
                "  data_key_cache: {max_entries: 0, max_age: 1s}"
            )
        ),
    );
    let running = start(&cfg, manual_clock("2026-01-01T00:00:00Z")).await;
    let mut c = client(&running).await;
    let ctx = EncryptionContext::new();
    let msg = kms_message(&url, &key, &ctx, b"payload").await;

    let fail = |code: &'static str, remaining: Option<u32>| Mode::Fail {
        status: 400,
        code,
        target: "TrentService.Decrypt",
        remaining,
    };
    for (code, want) in [
        ("DisabledException", "KEY_DISABLED"),
        ("KMSInvalidStateException", "KEY_DISABLED"),
        ("AccessDeniedException", "PERMISSION_DENIED"),
        ("NotFoundException", "SOURCE_KEY_NOT_FOUND"),
    ] {
        proxy.set(fail(code, None));
        let status = c
            .reencrypt(req(msg.clone(), &["payments"]))
            .await
            .unwrap_err();
        assert_eq!(reason(&status), want, "{code}");
        if want == "PERMISSION_DENIED" {
            assert!(
                status.message().contains("genesys"),
                "names the key: {}",
                status.message()
            );
        }
    }

    // Two throttles, then success: retried within the budget (3 attempts).
    proxy.clear_log();
    proxy.set(fail("ThrottlingException", Some(2)));
    let r = c
        .reencrypt(req(msg.clone(), &["payments"]))
        .await
        .unwrap()
        .into_inner();
    assert!(r.results[0].error.is_none());
    assert_eq!(proxy.count("TrentService.Decrypt"), 3);

    // Throttled beyond the budget: UPSTREAM_UNAVAILABLE after exactly max_attempts tries.
    proxy.clear_log();
    proxy.set(fail("ThrottlingException", None));
    let status = c
        .reencrypt(req(msg.clone(), &["payments"]))
        .await
        .unwrap_err();
    assert_eq!(reason(&status), "UPSTREAM_UNAVAILABLE");
    assert_eq!(proxy.count("TrentService.Decrypt"), 3);

    // 5xx is retried too; latency beyond the attempt timeout counts as a failed attempt.
    proxy.set(Mode::Fail {
        status: 500,
        code: "KMSInternalException",
        target: "TrentService.Decrypt",
        remaining: Some(1),
    });
    assert!(c
        .reencrypt(req(msg.clone(), &["payments"]))
        .await
        .unwrap()
        .into_inner()
        .results[0]
        .error
        .is_none());
    proxy.set(Mode::Delay(Duration::from_millis(1500)));
    let status = c
        .reencrypt(req(msg.clone(), &["payments"]))
        .await
        .unwrap_err();
    assert_eq!(reason(&status), "UPSTREAM_UNAVAILABLE");
    proxy.set(Mode::Forward);
    let metrics = harness_metrics(&running).await;
    assert!(
        metrics.contains(
            "reseal_aws_calls_total{service=\"kms\",operation=\"Decrypt\",outcome=\"UPSTREAM_UNAVAILABLE\",cause=\"THROTTLED\"}"
        ),
        "{metrics}"
    );
    assert!(metrics
        .contains("reseal_aws_call_duration_seconds_count{service=\"kms\",operation=\"Decrypt\"}"));
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_key_caches_save_kms_calls_within_their_limits() {
    let Some(url) = moto() else { return };
    let proxy = Proxy::start(&url).await;
    let source = create_key(&url).await;
    let consumer = create_key(&url).await;
    let fx = Fixture::new();
    let cfg = fx.write(
        "reseal.yaml",
        &format!(
            r#"
server: {{reload_interval: 0s}}
{aws}
sources:
  genesys:
    type: aws-kms
    key_ids: ["{source}"]
consumers:
  warehouse:
    keys: {{w: {{type: aws-kms, key_id: "{consumer}"}}}}
  archive:
    keys: {{a: {{type: aws-kms, key_id: "{consumer}"}}}}
"#,
            aws = aws_section(
                &proxy.url(),
                "  data_key_cache: {max_entries: 100, max_age: 60s}\n  consumer_data_key_cache: {enabled: true, max_age: 60s, max_messages: 3, max_bytes: 1000, max_entries: 10}"
            )
        ),
    );
    let running = start(&cfg, manual_clock("2026-01-01T00:00:00Z")).await;
    let mut c = client(&running).await;
    let msg = kms_message(&url, &source, &EncryptionContext::new(), &[1u8; 100]).await;
    proxy.clear_log();
    for _ in 0..7 {
        let r = c
            .reencrypt(req(msg.clone(), &["warehouse"]))
            .await
            .unwrap()
            .into_inner();
        assert!(r.results[0].error.is_none());
    }
    // Source side: one Decrypt for seven arrivals of the same EDK.
    assert_eq!(proxy.count("TrentService.Decrypt"), 1);
    // Consumer side: a data key serves at most 3 messages → ceil(7 / 3) = 3 GenerateDataKey.
    assert_eq!(proxy.count("TrentService.GenerateDataKey"), 3);

    // The byte limit (1000 bytes per data key): two 600-byte messages cannot share one.
    let big = kms_message(&url, &source, &EncryptionContext::new(), &[2u8; 600]).await;
    proxy.clear_log();
    for _ in 0..3 {
        assert!(c
            .reencrypt(req(big.clone(), &["archive"]))
            .await
            .unwrap()
            .into_inner()
            .results[0]
            .error
            .is_none());
    }
    assert_eq!(
        proxy.count("TrentService.GenerateDataKey"),
        3,
        "600 + 600 > 1000: no reuse"
    );
    let metrics = harness_metrics(&running).await;
    assert!(
        metrics.contains("reseal_cache_lookups_total{cache=\"source_data_keys\",result=\"hit\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("reseal_cache_lookups_total{cache=\"consumer_materials\",result=\"hit\"}")
    );
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_region_keys_match_across_regions() {
    let Some(url) = moto() else { return };
    let primary = kms(&url)
        .await
        .create_key()
        .multi_region(true)
        .send()
        .await
        .unwrap()
        .key_metadata()
        .unwrap()
        .arn()
        .unwrap()
        .to_owned();
    let replica_region = "eu-west-1";
    let replica = kms(&url)
        .await
        .replicate_key()
        // moto wants the key id here (an ARN makes it fail)
        .key_id(primary.rsplit('/').next().unwrap())
        .replica_region(replica_region)
        .send()
        .await
        .unwrap()
        .replica_key_metadata()
        .unwrap()
        .arn()
        .unwrap()
        .to_owned();
    assert!(primary.contains("mrk-") && replica.contains(replica_region));
    let proxy = Proxy::start(&url).await;
    let fx = Fixture::new();
    // Configured with the replica; the message's EDK names the primary's region.
    let cfg = fx.write(
        "reseal.yaml",
        &format!(
            r#"
server: {{reload_interval: 0s}}
{aws}
sources:
  mrk:
    type: aws-kms
    key_ids: ["{replica}"]
consumers:
  payments:
    keys: {{p: {{type: rsa-public, public_key: file:payments.pub.pem}}}}
"#,
            aws = aws_section(&proxy.url(), "")
        ),
    );
    let running = start(&cfg, manual_clock("2026-01-01T00:00:00Z")).await;
    let mut c = client(&running).await;
    let msg = kms_message(&url, &primary, &EncryptionContext::new(), b"mrk").await;
    proxy.clear_log();
    let _ = c.reencrypt(req(msg, &["payments"])).await;
    // The EDK names the us-east-1 primary; reseal matched it to the configured
    // replica and asked KMS in the replica's region, with the replica's ARN,
    // as the ESDK's MRK-aware keyring does. (moto itself cannot decrypt across
    // replicas, so the request, not the answer, is what is checked here; the
    // matching rules are unit-tested in keys::aws::arn.)
    let decrypts: Vec<String> = proxy
        .entries()
        .into_iter()
        .filter(|e| e.starts_with("TrentService.Decrypt"))
        .collect();
    assert!(!decrypts.is_empty(), "no Decrypt call");
    for d in &decrypts {
        assert!(d.contains(&format!(" {replica_region} {replica}")), "{d}");
    }
    // An ordinary (non-MRK) key in another region is a different key: not matched.
    let plain = create_key(&url).await;
    let other = plain.replace(REGION, replica_region);
    let cfg2 = fx.write(
        "plain.yaml",
        &format!(
            "server: {{reload_interval: 0s}}\n{aws}\nsources:\n  k: {{type: aws-kms, key_ids: [\"{other}\"]}}\nconsumers:\n  payments:\n    keys: {{p: {{type: rsa-public, public_key: file:payments.pub.pem}}}}\n",
            aws = aws_section(&proxy.url(), "")
        ),
    );
    let running2 = start(&cfg2, manual_clock("2026-01-01T00:00:00Z")).await;
    let mut c2 = client(&running2).await;
    let msg = kms_message(&url, &plain, &EncryptionContext::new(), b"x").await;
    let status = c2.reencrypt(req(msg, &["payments"])).await.unwrap_err();
    assert_eq!(reason(&status), "SOURCE_KEY_NOT_CONFIGURED");
    running2.stop().await.unwrap();
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_checks_kms_and_ssm_keys() {
    let Some(url) = moto() else { return };
    let symmetric = create_key(&url).await;
    let asymmetric = kms(&url)
        .await
        .create_key()
        .key_spec(KeySpec::Rsa2048)
        .key_usage(KeyUsageType::EncryptDecrypt)
        .send()
        .await
        .unwrap()
        .key_metadata()
        .unwrap()
        .arn()
        .unwrap()
        .to_owned();
    let param = format!("/it-{}/k", hex::encode(rand_bytes()));
    put_param(&url, &param, &keys()["connect-a"].0).await;
    let bad_param = format!("/it-{}/bad", hex::encode(rand_bytes()));
    put_param(&url, &bad_param, "not a key").await;
    let fx = Fixture::new();
    let yaml = |consumer_key: &str, private: &str| {
        format!(
            r#"
{aws}
sources:
  connect:
    type: raw-rsa
    key_name: {CONNECT_A}
    private_key: ssm:{private}
  genesys:
    type: aws-kms
    key_ids: ["{symmetric}"]
consumers:
  warehouse:
    keys: {{w: {{type: aws-kms, key_id: "{consumer_key}"}}}}
"#,
            aws = aws_section(&url, "")
        )
    };
    let run = |path: &Path| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_reseal"))
            .args(["validate", "--config"])
            .arg(path)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (ok, out) = run(&fx.write("good.yaml", &yaml(&symmetric, &param)));
    assert!(ok, "{out}");
    assert!(
        out.lines().any(|l| l.starts_with("OK")
            && l.contains("sources.connect")
            && l.contains(&format!("ssm:{param}"))),
        "{out}"
    );
    assert!(
        out.lines().any(|l| l.starts_with("OK")
            && l.contains("sources.genesys")
            && l.contains("round trip ok")),
        "{out}"
    );
    assert!(
        out.lines().any(|l| l.starts_with("OK")
            && l.contains("consumers.warehouse.keys.w")
            && l.contains("DescribeKey ok")),
        "{out}"
    );

    let (ok, out) = run(&fx.write("bad.yaml", &yaml(&asymmetric, &bad_param)));
    assert!(!ok, "{out}");
    assert!(
        out.lines().any(|l| l.starts_with("FAIL")
            && l.contains("consumers.warehouse.keys.w")
            && l.contains("RSA_2048")
            && l.contains("Invalid Key Type")),
        "{out}"
    );
    assert!(
        out.lines().any(|l| l.starts_with("FAIL")
            && l.contains("sources.connect")
            && l.contains(&bad_param)),
        "{out}"
    );

    // The serving path refuses such a registry (blocking self-test failure).
    let problems = match reseal::app::start(
        reseal::registry::ConfigSource::File(fx.path("bad.yaml")),
        reseal::app::StartOptions::loopback(),
    )
    .await
    {
        Ok(_) => panic!("an asymmetric consumer key must refuse the registry"),
        Err(e) => e.to_string(),
    };
    assert!(problems.contains("Invalid Key Type"), "{problems}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aliases_resolve_in_strict_mode_and_discovery_honours_its_filter() {
    let Some(url) = moto() else { return };
    let key = create_key(&url).await;
    let alias = format!("alias/reseal-it-{}", hex::encode(rand_bytes()));
    kms(&url)
        .await
        .create_alias()
        .alias_name(&alias)
        .target_key_id(&key)
        .send()
        .await
        .unwrap();
    let alias_arn = format!("arn:aws:kms:{REGION}:123456789012:{alias}");
    let fx = Fixture::new();
    let config = |sources: &str| {
        format!(
            "server: {{reload_interval: 0s}}\n{aws}\nsources:\n{sources}\nconsumers:\n  payments:\n    keys: {{p: {{type: rsa-public, public_key: file:payments.pub.pem}}}}\n",
            aws = aws_section(&url, "")
        )
    };
    let msg = kms_message(&url, &key, &EncryptionContext::new(), b"via alias").await;

    let cfg = fx.write(
        "alias.yaml",
        &config(&format!(
            "  by-alias: {{type: aws-kms, key_ids: [\"{alias_arn}\"]}}"
        )),
    );
    let running = start(&cfg, manual_clock("2026-01-01T00:00:00Z")).await;
    let r = client(&running)
        .await
        .reencrypt(req(msg.clone(), &["payments"]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.source_key_id, "by-alias");
    assert!(r.results[0].error.is_none());
    running.stop().await.unwrap();

    // Discovery: any key of an allowed account opens; other accounts do not match at all.
    let cfg = fx.write(
        "disc.yaml",
        &config("  allowed: {type: aws-kms-discovery, discovery_filter: {partition: aws, account_ids: [\"123456789012\"]}}"),
    );
    let running = start(&cfg, manual_clock("2026-01-01T00:00:00Z")).await;
    let r = client(&running)
        .await
        .reencrypt(req(msg.clone(), &["payments"]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.source_key_id, "allowed");
    running.stop().await.unwrap();
    let cfg = fx.write(
        "disc2.yaml",
        &config("  other: {type: aws-kms-discovery, discovery_filter: {partition: aws, account_ids: [\"999999999999\"]}}"),
    );
    let running = start(&cfg, manual_clock("2026-01-01T00:00:00Z")).await;
    let status = client(&running)
        .await
        .reencrypt(req(msg, &["payments"]))
        .await
        .unwrap_err();
    assert_eq!(reason(&status), "SOURCE_KEY_NOT_CONFIGURED");
    running.stop().await.unwrap();
}

/// One HTTP/1.1 JSON POST over a fresh connection: (status, headers and body).
async fn http_post(addr: std::net::SocketAddr, body: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "POST /v1/reencrypt HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
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
    (status, out)
}

/// The reasons only AWS can produce, over the HTTP/JSON door: their HTTP
/// status, google.rpc.Status body and Retry-After (checked by Python
/// `requests`), and OVERLOADED while a slow call holds the only slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_reasons_over_http_have_their_status_and_body() {
    let Some(url) = moto() else { return };
    let proxy = Proxy::start(&url).await;
    let key = create_key(&url).await;
    let fx = Fixture::new();
    let cfg = fx.write(
        "reseal.yaml",
        &format!(
            r#"
server: {{reload_interval: 0s, http_listen: "127.0.0.1:0", max_concurrent_requests: 1}}
{aws}
sources:
  genesys:
    type: aws-kms
    key_ids: ["{key}"]
consumers:
  payments:
    keys: {{p: {{type: rsa-public, public_key: file:payments.pub.pem}}}}
"#,
            aws = aws_section(
                &proxy.url(),
                "  data_key_cache: {max_entries: 0, max_age: 1s}"
            )
        ),
    );
    let running = start(&cfg, manual_clock("2026-01-01T00:00:00Z")).await;
    let http = running.http_addr.unwrap();
    let msg = kms_message(&url, &key, &EncryptionContext::new(), b"payload").await;
    let body = serde_json::json!({
        "ciphertext": base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &msg),
        "consumers": ["payments"],
    })
    .to_string();
    let case = |name: &str, status: u16, reason: &str, code: i32, retry: bool| {
        serde_json::json!({
            "name": name, "url": format!("http://{http}"),
            "headers": {"Content-Type": "application/json"}, "body": body,
            "status": status, "reason": reason, "grpc_code": code, "retry_after": retry,
        })
    };
    let fail = |status: u16, code: &'static str| Mode::Fail {
        status,
        code,
        target: "TrentService.Decrypt",
        remaining: None,
    };
    for (mode, name, status, reason, code, retry) in [
        (
            fail(400, "DisabledException"),
            "a disabled KMS key",
            412,
            "KEY_DISABLED",
            9,
            false,
        ),
        (
            fail(400, "NotFoundException"),
            "a deleted KMS key",
            404,
            "SOURCE_KEY_NOT_FOUND",
            5,
            false,
        ),
        (
            fail(400, "AccessDeniedException"),
            "KMS access denied",
            403,
            "PERMISSION_DENIED",
            7,
            false,
        ),
        (
            fail(400, "ThrottlingException"),
            "throttled past the retry budget",
            503,
            "UPSTREAM_UNAVAILABLE",
            14,
            true,
        ),
        (
            Mode::Drop,
            "KMS unreachable",
            503,
            "UPSTREAM_UNAVAILABLE",
            14,
            true,
        ),
    ] {
        proxy.set(mode);
        run_python_cases(
            serde_json::Value::Array(vec![case(name, status, reason, code, retry)]),
            fx.dir.path(),
        );
    }

    // One slot (max_concurrent_requests: 1), held by a call whose KMS answers
    // slowly: the next call is shed at once with 429, Retry-After and OVERLOADED.
    proxy.set(Mode::Delay(Duration::from_millis(1500)));
    let slow = {
        let body = body.clone();
        tokio::spawn(async move { http_post(http, &body).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, shed) = http_post(http, &body).await;
    assert_eq!(status, 429, "{shed}");
    assert!(
        shed.to_ascii_lowercase().contains("retry-after: 1"),
        "{shed}"
    );
    assert!(shed.contains("\"reason\":\"OVERLOADED\""), "{shed}");
    assert!(shed.contains("\"code\":8"), "{shed}");
    let (slow_status, _) = slow.await.unwrap();
    assert_eq!(
        slow_status, 503,
        "the slow call ran into the attempt timeouts"
    );
    proxy.set(Mode::Forward);
    let (status, ok) = http_post(http, &body).await;
    assert_eq!(status, 200, "{ok}");
    running.stop().await.unwrap();
}

/// JWE consumers' public keys in SSM (`public_key: ssm:...`, RSA and EC)
/// work like ESDK consumers' SSM keys: fetched through the key-material cache,
/// sealed for on the CPU pool, served stale while SSM is unreachable; a
/// parameter holding the wrong kind of key fails that consumer alone, and
/// `reseal validate` names it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwe_consumer_public_keys_in_ssm() {
    let Some(url) = moto() else { return };
    let proxy = Proxy::start(&url).await;
    let run = hex::encode(rand_bytes());
    let (rsa_param, ec_param) = (format!("/it-{run}/jwe-rsa"), format!("/it-{run}/jwe-p256"));
    put_param(&url, &rsa_param, &jwe_keys()["jwe-rsa"].public).await;
    put_param(&url, &ec_param, &jwe_keys()["jwe-p256"].public).await;
    let fx = Fixture::new().with_jwe_keys();
    let yaml = format!(
        r#"
server: {{reload_interval: 0s}}
{aws}
sources:
  connect-a:
    type: raw-rsa
    key_name: {CONNECT_A}
    private_key: file:connect-a.pem
consumers:
  j-ssm:
    format: jwe
    keys:
      j-ssm-rsa: {{type: rsa-public, public_key: "ssm:{rsa_param}"}}
      j-ssm-ec: {{type: ec-public, public_key: "ssm:{ec_param}"}}
    encryption_context: {{add: [consumer_id]}}
  j-local:
    format: jwe
    keys: {{j-local-1: {{type: ec-public, public_key: file:jwe-p256.pub.pem}}}}
  payments:
    keys: {{p: {{type: rsa-public, public_key: file:payments.pub.pem}}}}
"#,
        aws = aws_section(
            &proxy.url(),
            "  key_cache: {refresh_after: 0s, stale_if_error: 1h}"
        )
    );
    let cfg = fx.write("reseal.yaml", &yaml);
    let running = start(&cfg, manual_clock("2030-06-15T00:00:00Z")).await;
    let mut c = client(&running).await;
    let all = ["j-ssm", "j-local", "payments"];
    let call = |c: &mut reseal::grpc::proto::reencrypt_service_client::ReencryptServiceClient<
        tonic::transport::Channel,
    >| {
        let mut c = c.clone();
        async move {
            c.reencrypt(req(connect_message("connect-a", CONNECT_A, b"4111"), &all))
                .await
                .unwrap()
                .into_inner()
        }
    };
    let check = |resp: &reseal::grpc::proto::ReencryptResponse| {
        let ssm = &resp.results[0];
        assert!(ssm.error.is_none(), "{:?}", ssm.error);
        assert_eq!(ssm.format(), reseal::grpc::proto::EnvelopeFormat::JweJson);
        assert_eq!(ssm.key_ids, ["j-ssm-ec", "j-ssm-rsa"]);
        for (kid, name) in [("j-ssm-rsa", "jwe-rsa"), ("j-ssm-ec", "jwe-p256")] {
            let opened = reseal::jwe::open_bytes(&ssm.ciphertext, &jwe_opener(name, kid)).unwrap();
            assert_eq!(opened.plaintext.as_slice(), b"4111");
            assert_eq!(opened.context().unwrap()["reseal-consumer-id"], "j-ssm");
        }
        assert_eq!(
            resp.results[1].format(),
            reseal::grpc::proto::EnvelopeFormat::JweCompact
        );
        assert_eq!(
            resp.results[2].format(),
            reseal::grpc::proto::EnvelopeFormat::Esdk
        );
    };
    check(&call(&mut c).await);

    // SSM goes away: the fetched keys keep serving (stale-if-error).
    proxy.set(Mode::Drop);
    check(&call(&mut c).await);
    let metrics = harness_metrics(&running).await;
    assert!(
        metrics
            .contains("reseal_cache_lookups_total{cache=\"ssm_jwe_public_keys\",result=\"stale\"}"),
        "{metrics}"
    );
    proxy.set(Mode::Forward);
    running.stop().await.unwrap();

    // `reseal validate` fetches and checks each SSM key's kind and size.
    let cfg = fx.write(
        "validate.yaml",
        &format!(
            "{yaml}  j-wrong:\n    format: jwe\n    keys: {{j-wrong-1: {{type: ec-public, public_key: \"ssm:{rsa_param}\"}}}}\n"
        ),
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_reseal"))
        .args(["validate", "--config"])
        .arg(&cfg)
        .env("AWS_ENDPOINT_URL", &url)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    assert!(
        stdout.lines().any(|l| l.starts_with("OK")
            && l.contains("consumers.j-ssm.keys.j-ssm-ec ")
            && l.contains(&format!(
                "JWE ECDH-ES+A256KW (EC P-256) public key from ssm:{ec_param} parses"
            ))),
        "{stdout}"
    );
    assert!(
        stdout.lines().any(|l| l.starts_with("OK")
            && l.contains("consumers.j-ssm.keys.j-ssm-rsa ")
            && l.contains("JWE RSA-OAEP-256 (RSA 2048-bit)")),
        "{stdout}"
    );
    assert!(
        stdout.lines().any(|l| l.starts_with("FAIL")
            && l.contains("consumers.j-wrong.keys.j-wrong-1 ")
            && l.contains("the key is RSA 2048-bit, not EC")),
        "{stdout}"
    );
}
