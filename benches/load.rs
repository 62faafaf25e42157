//! Load generator: the broker in-process on loopback, real gRPC clients, an
//! Amazon Connect-shaped input (0x0378, RSA-2048) re-encrypted for a route of
//! three RSA-2048 consumers, at several concurrency levels.
//!
//! Reports requests per second, latency percentiles and how many cores the
//! process kept busy (user + system CPU time over wall time), which shows the
//! fan-out using every core. Client and server share the process, so the CPU
//! figure includes the clients' (small) share.
//!
//! Run: `cargo bench --bench load` (a one-second smoke run under `cargo test`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reseal::app::{self, StartOptions};
use reseal::esdk::{self, AlgorithmSuite, EncryptCommitment, EncryptOptions, EncryptionContext};
use reseal::grpc::proto::reencrypt_service_client::ReencryptServiceClient;
use reseal::grpc::proto::{reencrypt_request::Input, ReencryptRequest};
use reseal::keys::{raw_rsa, RawRsaKeyring, RsaPadding};
use reseal::registry::ConfigSource;

const CONNECT_KEY_ID: &str = "6f1f2d3c-5a7b-4c8d-9e0f-1a2b3c4d5e6f";

fn cpu_seconds() -> f64 {
    // /proc/self/stat fields 14 and 15: utime and stime in clock ticks (100 Hz on Linux).
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let rest = s.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
            Some(ticks / 100.0)
        })
        .unwrap_or(0.0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let per_level = if full {
        Duration::from_secs(8)
    } else {
        Duration::from_millis(500)
    };
    let levels: &[usize] = if full { &[1, 2, 8, 32, 128] } else { &[1, 8] };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let dir = tempfile::tempdir().unwrap();
        let mut connect_public = String::new();
        for name in ["connect", "payments", "fraud", "ledger"] {
            let (private, public) = raw_rsa::generate_pem(2048).unwrap();
            std::fs::write(dir.path().join(format!("{name}.pem")), private.as_bytes()).unwrap();
            std::fs::write(dir.path().join(format!("{name}.pub.pem")), &public).unwrap();
            if name == "connect" {
                connect_public = public;
            }
        }
        let config = format!(
            r#"
server: {{reload_interval: 0s, max_concurrent_requests: 1024}}
sources:
  connect: {{type: raw-rsa, key_name: {CONNECT_KEY_ID}, private_key: file:connect.pem}}
consumers:
  payments: {{keys: {{p: {{type: rsa-public, public_key: file:payments.pub.pem}}}}}}
  fraud: {{keys: {{f: {{type: rsa-public, public_key: file:fraud.pub.pem}}}}}}
  ledger: {{keys: {{l: {{type: rsa-public, public_key: file:ledger.pub.pem}}}}}}
routes:
  card-capture: [payments, fraud, ledger]
"#
        );
        std::fs::write(dir.path().join("reseal.yaml"), config).unwrap();
        let running = app::start(
            ConfigSource::File(dir.path().join("reseal.yaml")),
            StartOptions {
                listen_override: Some(("127.0.0.1:0".into(), "127.0.0.1:0".into(), "127.0.0.1:0".into())),
                ..StartOptions::default()
            },
        )
        .await
        .unwrap();
        let sender =
            RawRsaKeyring::from_public_pem("AmazonConnect", CONNECT_KEY_ID, RsaPadding::OaepSha512, connect_public.as_bytes())
                .unwrap();
        let input = esdk::encrypt(
            b"4111111111111111",
            &[&sender],
            &EncryptionContext::new(),
            &EncryptOptions {
                suite: AlgorithmSuite::Aes256GcmIv12Tag16HkdfSha384EcdsaP384,
                frame_length: 4096,
                commitment: EncryptCommitment::Forbid,
                ..Default::default()
            },
        )
        .unwrap();
        let request = ReencryptRequest {
            input: Some(Input::Ciphertext(input)),
            route: "card-capture".into(),
            ..Default::default()
        };
        println!(
            "reseal load: Connect-shaped input (0x0378, RSA-2048) -> 3 consumers (RSA-2048, 0x0478), {} s per level, {} cores",
            per_level.as_secs_f64(),
            std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)
        );
        println!("{:>11} {:>9} {:>9} {:>9} {:>9} {:>10} {:>7}", "concurrency", "req/s", "p50 ms", "p90 ms", "p99 ms", "cores busy", "errors");
        for &concurrency in levels {
            let stop = Arc::new(AtomicBool::new(false));
            let latencies = Arc::new(Mutex::new(Vec::new()));
            let errors = Arc::new(Mutex::new(0usize));
            let mut tasks = Vec::new();
            // A handful of connections, shared by the workers (as a real client pool would).
            let channels: Vec<_> = futures_util::future::join_all((0..4).map(|_| {
                ReencryptServiceClient::connect(format!("http://{}", running.grpc_addr))
            }))
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
            let cpu0 = cpu_seconds();
            let t0 = Instant::now();
            for i in 0..concurrency {
                let mut client = channels[i % channels.len()].clone();
                let (stop, latencies, errors, request) = (stop.clone(), latencies.clone(), errors.clone(), request.clone());
                tasks.push(tokio::spawn(async move {
                    let mut mine = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        let t = Instant::now();
                        match client.reencrypt(request.clone()).await {
                            Ok(r) if r.get_ref().results.iter().all(|x| x.error.is_none()) => mine.push(t.elapsed()),
                            _ => *errors.lock().unwrap() += 1,
                        }
                    }
                    latencies.lock().unwrap().extend(mine);
                }));
            }
            tokio::time::sleep(per_level).await;
            stop.store(true, Ordering::Relaxed);
            for t in tasks {
                t.await.unwrap();
            }
            let wall = t0.elapsed().as_secs_f64();
            let cores = (cpu_seconds() - cpu0) / wall;
            let mut l = latencies.lock().unwrap().clone();
            l.sort();
            let ms = |d: Duration| d.as_secs_f64() * 1000.0;
            println!(
                "{:>11} {:>9.0} {:>9.2} {:>9.2} {:>9.2} {:>10.2} {:>7}",
                concurrency,
                l.len() as f64 / wall,
                ms(percentile(&l, 0.50)),
                ms(percentile(&l, 0.90)),
                ms(percentile(&l, 0.99)),
                cores,
                errors.lock().unwrap()
            );
        }
        running.stop().await.unwrap();
    });
}
