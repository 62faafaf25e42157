//! `reseal demo`: the whole product in one command, with nothing to set up.
//!
//! Throwaway keys in a temporary folder; the broker started in-process on
//! loopback; an Amazon Connect-shaped ciphertext of a test card number
//! (0x0378, RSA-2048 OAEP-SHA512, provider `AmazonConnect`, frame 4096) sent
//! over real gRPC for three consumers, one of them mid-rotation with two keys;
//! every envelope opened again with that consumer's own private key(s).

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use base64::Engine as _;
use time::{Duration, OffsetDateTime};

use super::CliResult;
use crate::app::{self, StartOptions};
use crate::esdk::{self, DecryptPolicy, IdentitySet};
use crate::grpc::proto::{
    reencrypt_request::Input, reencrypt_service_client::ReencryptServiceClient, ReencryptRequest,
};
use crate::keys::{cert, connect, raw_rsa, RawRsaKeyring, RsaPadding};
use crate::registry::ConfigSource;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Card number to protect (a test number by default).
    #[arg(long, default_value = "4111111111111111")]
    pub card: String,
}

const CONNECT_KEY_ID: &str = "7c9e6679-7425-40de-944b-e07fc1f90ae7";

fn mask(card: &str) -> String {
    let n = card.chars().count();
    card.chars()
        .enumerate()
        .map(|(i, c)| if i < 4 || i + 4 >= n { c } else { '•' })
        .collect()
}

pub fn run(args: Args) -> CliResult {
    crate::telemetry::init_logging("text", "error");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(demo(args))
}

async fn demo(args: Args) -> CliResult {
    let dir = tempfile::tempdir()?;
    let path = |name: &str| dir.path().join(name);
    println!("reseal demo: throwaway keys in {}", dir.path().display());

    // Keys: the Connect source key, and the consumers' key pairs (they keep the private halves).
    let mut private = std::collections::BTreeMap::new();
    for name in ["connect", "payments", "fraud", "ledger-2025", "ledger-2026"] {
        let (priv_pem, pub_pem) = raw_rsa::generate_pem(2048)?;
        std::fs::write(path(&format!("{name}.pem")), priv_pem.as_bytes())?;
        std::fs::write(path(&format!("{name}.pub.pem")), &pub_pem)?;
        private.insert(name, priv_pem);
    }
    let now = OffsetDateTime::now_utc();
    let fraud_cert = cert::self_signed_rsa(
        &private["fraud"],
        "fraud.example",
        now - Duration::hours(1),
        now + Duration::days(90),
    )?;
    std::fs::write(path("fraud.crt.pem"), fraud_cert)?;

    let config = format!(
        r#"
server:
  log_format: text
sources:
  connect:
    type: raw-rsa
    provider_id: AmazonConnect
    key_name: {CONNECT_KEY_ID}
    padding: oaep-sha512
    private_key: file:connect.pem
consumers:
  payments:
    keys:
      payments-2026: {{type: rsa-public, public_key: file:payments.pub.pem}}
    encryption_context:
      add: [consumer_id, source_key_id, request_id]
  fraud:
    keys:
      fraud-cert: {{type: x509, certificate: file:fraud.crt.pem}}
  ledger:
    keys:
      ledger-2025: {{type: rsa-public, public_key: file:ledger-2025.pub.pem, not_after: "{}"}}
      ledger-2026: {{type: rsa-public, public_key: file:ledger-2026.pub.pem}}
routes:
  card-capture: [payments, fraud, ledger]
"#,
        (now + Duration::days(14)).format(&time::format_description::well_known::Rfc3339)?
    );
    std::fs::write(path("reseal.yaml"), &config)?;

    let started = Instant::now();
    let running = app::start(
        ConfigSource::File(path("reseal.yaml")),
        StartOptions::loopback(),
    )
    .await?;
    println!(
        "broker listening on {} (gRPC), {} (health), {} (metrics); started in {} ms",
        running.grpc_addr,
        running.health_addr,
        running.admin_addr,
        started.elapsed().as_millis()
    );

    // What Amazon Connect would hand the backend: base64 of an ESDK message.
    let connect_key = RawRsaKeyring::from_public_pem(
        connect::PROVIDER_ID,
        CONNECT_KEY_ID,
        connect::PADDING,
        std::fs::read(path("connect.pub.pem"))?.as_slice(),
    )?;
    let suite = connect::SUITE;
    let input = connect::encrypt(&connect_key, args.card.as_bytes())?;
    let input_b64 = base64::engine::general_purpose::STANDARD.encode(&input);
    println!(
        "input: Amazon Connect-shaped message, suite {suite}, {} bytes ({} base64 characters), card {}",
        input.len(),
        input_b64.len(),
        mask(&args.card)
    );

    let mut client =
        ReencryptServiceClient::connect(format!("http://{}", running.grpc_addr)).await?;
    let t = Instant::now();
    let response = client
        .reencrypt(ReencryptRequest {
            input: Some(Input::CiphertextBase64(input_b64)),
            route: "card-capture".into(),
            source_key_hint: CONNECT_KEY_ID.into(),
            ..Default::default()
        })
        .await?
        .into_inner();
    let rpc_ms = t.elapsed().as_secs_f64() * 1000.0;
    println!(
        "Reencrypt over gRPC: opened by source key `{}` in {rpc_ms:.1} ms (request {})\n",
        response.source_key_id, response.request_id
    );

    // Each consumer opens its envelope with its own private key(s).
    let opener = |name: &str| -> Result<IdentitySet, Box<dyn std::error::Error>> {
        let mut ids = IdentitySet::new();
        let key_id = if name == "fraud" {
            "fraud-cert"
        } else if name == "payments" {
            "payments-2026"
        } else {
            name
        };
        ids.insert(Arc::new(RawRsaKeyring::from_private_pem(
            "reseal",
            key_id,
            RsaPadding::OaepSha256,
            private[name].as_bytes(),
        )?));
        Ok(ids)
    };
    println!(
        "{:<10} {:<26} {:<7} {:>6}  {:<13} result",
        "consumer", "wrapped for", "suite", "bytes", "opened with"
    );
    let mut all_ok = true;
    for r in &response.results {
        if let Some(e) = &r.error {
            all_ok = false;
            println!("{:<10} error {}: {}", r.consumer, e.reason, e.message);
            continue;
        }
        let keys: Vec<&str> = match r.consumer.as_str() {
            "ledger" => vec!["ledger-2025", "ledger-2026"],
            other => vec![other],
        };
        for (i, key) in keys.iter().enumerate() {
            let opened = esdk::decrypt(
                &r.ciphertext,
                &opener(key)?,
                &DecryptPolicy::default(),
                None,
            );
            let verdict = match &opened {
                Ok(d) if d.plaintext.as_bytes() == args.card.as_bytes() => {
                    format!("✓ {}", mask(&args.card))
                }
                Ok(_) => {
                    all_ok = false;
                    "✗ plaintext differs".into()
                }
                Err(e) => {
                    all_ok = false;
                    format!("✗ {e}")
                }
            };
            let (consumer, wrapped, suite, bytes) = if i == 0 {
                (
                    r.consumer.as_str(),
                    r.key_ids.join(" + "),
                    r.algorithm_suite.as_str(),
                    r.ciphertext.len().to_string(),
                )
            } else {
                ("", String::new(), "", String::new())
            };
            println!("{consumer:<10} {wrapped:<26} {suite:<7} {bytes:>6}  {key:<13} {verdict}");
        }
    }
    println!(
        "\nThe plaintext never left the broker's memory; the ledger envelope opens with either key,\nso the ledger team can move from ledger-2025 to ledger-2026 at its own pace."
    );
    running.stop().await?;
    Ok(if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
