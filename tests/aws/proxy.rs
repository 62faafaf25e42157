//! A fault-injecting HTTP proxy between reseal and moto.
//!
//! moto neither enforces KMS key states nor throttles, so this proxy can answer
//! instead of it with real AWS error bodies (ThrottlingException,
//! DisabledException, KMSInvalidStateException, AccessDeniedException, 5xx),
//! add latency, or drop connections; the mode can be switched while it runs.
//! It also logs every request's `X-Amz-Target` (e.g. `TrentService.Decrypt`),
//! so tests can count AWS calls.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Request, Response};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

#[derive(Clone, Debug)]
pub enum Mode {
    Forward,
    /// Answer with an AWS JSON error for targets containing `target` (all when
    /// empty), `remaining` times (forever when `None`), then forward.
    Fail {
        status: u16,
        code: &'static str,
        target: &'static str,
        remaining: Option<u32>,
    },
    /// Forward after a delay.
    Delay(Duration),
    /// Close the connection without answering (an endpoint that went away).
    Drop,
}

pub struct Proxy {
    pub addr: SocketAddr,
    mode: Arc<Mutex<Mode>>,
    log: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Proxy {
    pub async fn start(upstream: &str) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mode = Arc::new(Mutex::new(Mode::Forward));
        let log = Arc::new(Mutex::new(Vec::new()));
        let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
        let upstream = upstream.trim_end_matches('/').to_owned();
        let (m, l) = (mode.clone(), log.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (mode, log, client, upstream) =
                    (m.clone(), l.clone(), client.clone(), upstream.clone());
                tokio::spawn(async move {
                    let svc =
                        hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                            let (mode, log, client, upstream) =
                                (mode.clone(), log.clone(), client.clone(), upstream.clone());
                            async move { handle(req, mode, log, client, upstream).await }
                        });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Proxy {
            addr,
            mode,
            log,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    /// Number of logged requests whose target contains `needle`.
    pub fn count(&self, needle: &str) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|t| t.contains(needle))
            .count()
    }

    pub fn entries(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    pub fn clear_log(&self) {
        self.log.lock().unwrap().clear();
    }
}

async fn handle(
    req: Request<hyper::body::Incoming>,
    mode: Arc<Mutex<Mode>>,
    log: Arc<Mutex<Vec<String>>>,
    client: Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
    upstream: String,
) -> Result<Response<Full<Bytes>>, std::io::Error> {
    let target = req
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    // Log the target with the signing region and the KeyId the call names.
    let region = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|a| a.split("Credential=").nth(1))
        .and_then(|c| c.split('/').nth(2))
        .unwrap_or("")
        .to_owned();
    let (parts, body) = req.into_parts();
    let bytes = body
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let key_id = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|v| v.get("KeyId").and_then(|k| k.as_str()).map(str::to_owned))
        .unwrap_or_default();
    log.lock()
        .unwrap()
        .push(format!("{target} {region} {key_id}"));
    enum Act {
        Fail(u16, &'static str),
        Drop,
        Delay(Duration),
        Forward,
    }
    let act = {
        let mut m = mode.lock().unwrap();
        match &mut *m {
            Mode::Fail {
                status,
                code,
                target: t,
                remaining,
            } if target.contains(*t) => {
                let act = Act::Fail(*status, code);
                if let Some(n) = remaining {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        *m = Mode::Forward;
                    }
                }
                act
            }
            Mode::Drop => Act::Drop,
            Mode::Delay(d) => Act::Delay(*d),
            _ => Act::Forward,
        }
    };
    let action = match act {
        Act::Fail(status, code) => Some(Ok((status, code))),
        Act::Drop => Some(Err(())),
        Act::Delay(d) => {
            tokio::time::sleep(d).await;
            None
        }
        Act::Forward => None,
    };
    match action {
        Some(Ok((status, code))) => {
            let body = format!(r#"{{"__type":"{code}","message":"injected by the test proxy"}}"#);
            Ok(Response::builder()
                .status(status)
                .header("content-type", "application/x-amz-json-1.1")
                .header("x-amzn-errortype", code)
                .body(Full::new(Bytes::from(body)))
                .unwrap())
        }
        Some(Err(())) => Err(std::io::Error::other("dropped by the test proxy")),
        None => {
            let path = parts
                .uri
                .path_and_query()
                .map(|p| p.as_str())
                .unwrap_or("/");
            let mut builder = Request::builder()
                .method(parts.method)
                .uri(format!("{upstream}{path}"));
            for (k, v) in parts.headers.iter() {
                builder = builder.header(k, v);
            }
            let upstream_req = builder.body(Full::new(bytes)).unwrap();
            match client.request(upstream_req).await {
                Ok(resp) => {
                    let (parts, body) = resp.into_parts();
                    let bytes = body
                        .collect()
                        .await
                        .map(|c| c.to_bytes())
                        .unwrap_or_default();
                    Ok(Response::from_parts(parts, Full::new(bytes)))
                }
                Err(_) => Ok(Response::builder()
                    .status(502)
                    .body(Full::new(Bytes::new()))
                    .unwrap()),
            }
        }
    }
}
