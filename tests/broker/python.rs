//! A client that is not reseal's own: Python grpcio stubs generated from
//! `proto/` at test time, envelopes opened by the reference Python ESDK.

use std::path::Path;
use std::process::Command;

use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_grpc_client_and_reference_esdk() {
    let Some(py) = python() else { return };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let fx = Fixture::new();
    let stubs = fx.path("stubs");
    std::fs::create_dir_all(&stubs).unwrap();
    let out = Command::new(&py)
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
