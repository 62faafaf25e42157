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
