//! The real binary as a process: SIGHUP reloads, SIGTERM drains and exits.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::harness::*;

struct Server {
    child: Child,
    admin: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

async fn metric(admin: u16, name: &str) -> Option<f64> {
    let addr = format!("127.0.0.1:{admin}").parse().ok()?;
    let body = tokio::time::timeout(
        Duration::from_secs(2),
        crate::flow::try_http_get(addr, "/metrics"),
    )
    .await
    .ok()??;
    body.lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

fn signal(child: &Child, sig: &str) {
    let status = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

const OK_RELOADS: &str = "reseal_registry_reloads_total{outcome=\"OK\"}";

/// `reseal serve` on `cfg` with free ports, its stderr going to `stderr`; returns
/// once its first registry load is done, with the gRPC port.
async fn serve(cfg: &std::path::Path, stderr: Stdio) -> (Server, u16) {
    let (grpc, health, admin) = (free_port(), free_port(), free_port());
    let child = Command::new(env!("CARGO_BIN_EXE_reseal"))
        .args(["serve", "--config"])
        .arg(cfg)
        .env("RESEAL_SERVER__LISTEN", format!("127.0.0.1:{grpc}"))
        .env(
            "RESEAL_SERVER__HEALTH_LISTEN",
            format!("127.0.0.1:{health}"),
        )
        .env("RESEAL_SERVER__ADMIN_LISTEN", format!("127.0.0.1:{admin}"))
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let server = Server { child, admin };
    let mut up = false;
    for _ in 0..100 {
        if metric(server.admin, OK_RELOADS).await == Some(1.0) {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(up, "server did not come up");
    (server, grpc)
}

/// Sends SIGTERM and waits for a clean exit.
async fn terminate(server: &mut Server) {
    signal(&server.child, "-TERM");
    let mut status = None;
    for _ in 0..100 {
        if let Some(s) = server.child.try_wait().unwrap() {
            status = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let status = status.expect("process exits after SIGTERM");
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn sighup_reloads_and_sigterm_drains() {
    let fx = Fixture::new();
    let cfg = fx.write("reseal.yaml", &standard_config(""));
    let (mut server, _) = serve(&cfg, Stdio::null()).await;
    let ok_reloads = OK_RELOADS;

    // Polling is off in this config (reload_interval: 0s): only SIGHUP reloads.
    fx.replace(
        "reseal.yaml",
        &standard_config("").replace("[payments, fraud, ledger]", "[payments, fraud]"),
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(metric(server.admin, ok_reloads).await, Some(1.0));
    signal(&server.child, "-HUP");
    let mut reloaded = false;
    for _ in 0..100 {
        if metric(server.admin, ok_reloads).await == Some(2.0) {
            reloaded = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(reloaded, "SIGHUP did not reload");

    terminate(&mut server).await;
}

/// Each request writes an audit line to stderr. A log reader that falls behind
/// (here: one that reads nothing until the end) must not stall requests once
/// the pipe (64 KiB) is full, and no line may be lost.
#[tokio::test]
async fn a_log_reader_that_falls_behind_stalls_no_request_and_loses_no_line() {
    use reseal::grpc::proto::reencrypt_service_client::ReencryptServiceClient;
    const CALLS: usize = 400;
    let fx = Fixture::new();
    let cfg = fx.write("reseal.yaml", &standard_config(""));
    let (mut server, grpc) = serve(&cfg, Stdio::piped()).await;
    let mut c = ReencryptServiceClient::connect(format!("http://127.0.0.1:{grpc}"))
        .await
        .expect("connect");
    let request = card_capture_request(b"logged");
    // About 500 bytes of audit line per call: three times what the pipe holds.
    let calls = async {
        for _ in 0..CALLS {
            c.reencrypt(request.clone()).await.expect("call");
        }
    };
    tokio::time::timeout(Duration::from_secs(60), calls)
        .await
        .expect("requests stalled behind the unread log pipe");

    let mut stderr = server.child.stderr.take().expect("piped stderr");
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        std::io::Read::read_to_string(&mut stderr, &mut all).map(|_| all)
    });
    terminate(&mut server).await;
    let logs = reader.join().unwrap().expect("read the log");
    let audit_lines = logs
        .lines()
        .filter(|l| l.contains("reseal::audit") && l.contains("event=\"reencrypt\""))
        .count();
    assert_eq!(
        audit_lines, CALLS,
        "every request's audit line reached the log"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_in_flight_requests_and_stops_accepting() {
    use reseal::grpc::proto::ReencryptBatchRequest;
    let fx = Fixture::new();
    let cfg = fx.write(
        "reseal.yaml",
        &(standard_config("") + "limits:\n  max_batch_items: 1000\n"),
    );
    let running = start(&cfg, manual_clock("2026-01-01T00:00:00Z")).await;
    let addr = running.grpc_addr;
    let mut c = client(&running).await;
    let item = card_capture_request(b"drain");
    let in_flight = tokio::spawn(async move {
        c.reencrypt_batch(ReencryptBatchRequest {
            items: vec![item; 800],
        })
        .await
    });
    tokio::time::sleep(Duration::from_millis(60)).await;
    assert!(
        !in_flight.is_finished(),
        "the batch should still be running when shutdown starts"
    );
    running.stop().await.unwrap();
    // The call that was in flight completed, every item served.
    let resp = in_flight
        .await
        .unwrap()
        .expect("in-flight call drained, not cut")
        .into_inner();
    assert_eq!(resp.results.len(), 800);
    assert!(resp.results.iter().all(|r| r.error.is_none()));
    // And the listener is closed.
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}
