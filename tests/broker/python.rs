//! A client that is not reseal's own: Python grpcio stubs generated from
//! `proto/` at test time, envelopes opened by the reference Python ESDK.

use std::path::Path;
use std::process::Command;

use crate::harness::*;

/// Python gRPC stubs generated from `proto/` into the fixture.
fn stubs(py: &Path, fx: &Fixture) -> std::path::PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let stubs = fx.path("stubs");
    std::fs::create_dir_all(&stubs).unwrap();
    let out = Command::new(py)
        .args([
            "-m",
            "grpc_tools.protoc",
            "-Iproto",
            "-Ithird_party/googleapis",
        ])
        .arg(format!("--python_out={}", stubs.display()))
        .arg(format!("--grpc_python_out={}", stubs.display()))
        .arg("proto/reseal/v1/reseal.proto")
        .current_dir(root)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stubs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_grpc_client_and_reference_esdk() {
    let Some(py) = python() else { return };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let fx = Fixture::new();
    let stubs = stubs(&py, &fx);

    let cfg = fx.write("reseal.yaml", &standard_config(""));
    let running = start(&cfg, manual_clock("2030-06-15T00:00:00Z")).await;
    let out = tokio::process::Command::new(&py)
        .arg(root.join("tests/python/grpc_e2e.py"))
        .arg("--stubs")
        .arg(&stubs)
        .args(["--addr", &running.grpc_addr.to_string()])
        .args(["--health", &running.health_addr.to_string()])
        .arg("--keys")
        .arg(fx.dir.path())
        .args(["--connect-key-id", CONNECT_A])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("all checks passed"));
    assert!(
        stdout.contains("server reflection lists reseal.v1.ReencryptService"),
        "{stdout}"
    );
    // Mid-rotation (2030-06-15): the ledger envelope was opened with both keys.
    assert!(
        stdout.contains("ledger: reference ESDK opens the envelope with ledger-old"),
        "{stdout}"
    );
    assert!(
        stdout.contains("ledger: reference ESDK opens the envelope with ledger-new"),
        "{stdout}"
    );
    running.stop().await.unwrap();
}

/// JWE consumers over gRPC, every envelope opened by jwcrypto AND joserfc,
/// and by authlib where it can (`tests/python/jwe_e2e.py`): every key type, both serializations,
/// rotation, 0 B to 64 KiB, the protected `reseal_context` against the
/// configuration, every part tampered, a mixed route with a failing consumer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jose_libraries_open_every_jwe_envelope() {
    use crate::jwe::{jwe_config, CONSUMERS, INPUT_CONTEXT, SIZES};
    let Some(py) = python() else { return };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let fx = Fixture::new().with_jwe_keys();
    let stubs = stubs(&py, &fx);
    let cfg = fx.write("reseal.yaml", &jwe_config());
    let running = start(&cfg, manual_clock("2030-06-15T00:00:00Z")).await;

    let keys: serde_json::Map<String, serde_json::Value> = jwe_keys()
        .iter()
        .map(|(name, k)| {
            let (public, private) = jwe_file(name);
            let certificate = (k.form == "cert").then_some(public);
            (
                name.to_string(),
                serde_json::json!({"kind": k.kind, "private": private, "certificate": certificate}),
            )
        })
        .collect();
    let format = |c: &crate::jwe::JweConsumer| match c.expected_format() {
        reseal::grpc::proto::EnvelopeFormat::JweJson => "JWE_JSON",
        _ => "JWE_COMPACT",
    };
    let consumers: Vec<serde_json::Value> = CONSUMERS
        .iter()
        .map(|c| {
            serde_json::json!({
                "id": c.id,
                "format": format(c),
                "content_type": c.content_type,
                "keys": c.keys.iter().map(|(kid, key)| serde_json::json!({"kid": kid, "key": key})).collect::<Vec<_>>(),
                "static": c.fixed.iter().map(|(k, v)| (k.to_string(), serde_json::json!(v))).collect::<serde_json::Map<_, _>>(),
                "add": c.add,
                "propagate": c.propagate,
            })
        })
        .collect();
    let spec = serde_json::json!({
        "dir": fx.dir.path(),
        "connect_key_id": CONNECT_A,
        "input_context": INPUT_CONTEXT.iter().map(|(k, v)| (k.to_string(), serde_json::json!(v))).collect::<serde_json::Map<_, _>>(),
        "sizes": SIZES,
        "keys": keys,
        "consumers": consumers,
        "esdk_consumers": {
            "payments": {"kid": "payments-2026", "private": "payments.pem"},
            "ledger": {"kid": "ledger-old", "private": "ledger-old.pem"},
        },
    });
    let spec_path = fx.write("jwe-spec.json", &spec.to_string());
    let out = tokio::process::Command::new(&py)
        .arg(root.join("tests/python/jwe_e2e.py"))
        .arg("--stubs")
        .arg(&stubs)
        .args(["--addr", &running.grpc_addr.to_string()])
        .arg("--spec")
        .arg(&spec_path)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("all checks passed"), "{stdout}");
    // Every opening by both libraries (sizes x recipients x 2) and at least
    // six refused tamperings per recipient and library at one size.
    let recipients: usize = CONSUMERS.iter().map(|c| c.keys.len()).sum();
    let passed: usize = stdout
        .lines()
        .find(|l| l.contains(" passed, "))
        .and_then(|l| l.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(
        passed >= recipients * 2 * (SIZES.len() + 6),
        "{passed} checks for {recipients} recipients\n{stdout}"
    );
    running.stop().await.unwrap();
}
