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

#[tokio::test]
async fn sighup_reloads_and_sigterm_drains() {
    let fx = Fixture::new();
    let cfg = fx.write("reseal.yaml", &standard_config(""));
    let (grpc, health, admin) = (free_port(), free_port(), free_port());
    let child = Command::new(env!("CARGO_BIN_EXE_reseal"))
        .args(["serve", "--config"])
        .arg(&cfg)
        .env("RESEAL_SERVER__LISTEN", format!("127.0.0.1:{grpc}"))
        .env(
            "RESEAL_SERVER__HEALTH_LISTEN",
            format!("127.0.0.1:{health}"),
        )
        .env("RESEAL_SERVER__ADMIN_LISTEN", format!("127.0.0.1:{admin}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut server = Server { child, admin };
    let ok_reloads = "reseal_registry_reloads_total{outcome=\"ok\"}";
    let mut up = false;
    for _ in 0..100 {
        if metric(server.admin, ok_reloads).await == Some(1.0) {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(up, "server did not come up");

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
    server.admin = 0;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_in_flight_requests_and_stops_accepting() {
    use reseal::grpc::proto::{reencrypt_request::Input, ReencryptBatchRequest, ReencryptRequest};
    let fx = Fixture::new();
    let cfg = fx.write(
        "reseal.yaml",
        &(standard_config("") + "limits:\n  max_batch_items: 1000\n"),
    );
    let running = start(&cfg, manual_clock("2026-01-01T00:00:00Z")).await;
    let addr = running.grpc_addr;
    let mut c = client(&running).await;
    let item = ReencryptRequest {
        input: Some(Input::Ciphertext(connect_message(
            "connect-a",
            CONNECT_A,
            b"drain",
        ))),
        route: "card-capture".into(),
        ..Default::default()
    };
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
