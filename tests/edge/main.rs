//! The production edge: mTLS and authorization, limits and overload, deadlines,
//! and what reaches logs and metrics; the Lambda runtime and `reseal call`,
//! the real binary each time.

#[allow(dead_code)]
#[path = "../broker/harness.rs"]
mod harness;

mod call;
mod http_auth;
mod lambda;
mod limits;
mod mtls;
#[cfg(feature = "otlp")]
mod otlp;
mod runtime_api;
mod secrets;
mod under_attack;

/// GET from the admin port.
pub async fn harness_http(port: u16, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}
