//! A local implementation of the AWS Lambda Runtime API (version 2018-06-01),
//! as Lambda serves it to a custom runtime: plain HTTP/1.1 on loopback.
//!
//! * `GET /2018-06-01/runtime/invocation/next` waits for an event and answers
//!   it with `200`, `Content-Type: application/json` and the headers
//!   `Lambda-Runtime-Aws-Request-Id`, `Lambda-Runtime-Deadline-Ms`,
//!   `Lambda-Runtime-Invoked-Function-Arn`, `Lambda-Runtime-Trace-Id`;
//! * `POST .../invocation/{id}/response` and `.../invocation/{id}/error`
//!   answer `202 Accepted`, or `400` for an id that is not being invoked;
//! * `POST /2018-06-01/runtime/init/error` answers `202 Accepted`.
//!
//! The test hands events in with [`RuntimeApi::invoke`] and waits for what
//! the runtime posted with [`RuntimeApi::outcome`] / [`RuntimeApi::init_error`].

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper_util::rt::TokioIo;
use tokio::sync::{mpsc, Notify};

pub const FUNCTION_ARN: &str = "arn:aws:lambda:us-east-1:111122223333:function:reseal";

/// What the runtime posted for one invocation.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// `/response`: the body.
    Response { body: Vec<u8> },
    /// `/error`: the `Lambda-Runtime-Function-Error-Type` header and the body.
    Error {
        error_type_header: Option<String>,
        body: serde_json::Value,
    },
}

impl Outcome {
    /// The answer as JSON (panics on an error outcome: the test expected an answer).
    pub fn answer(&self) -> serde_json::Value {
        match self {
            Outcome::Response { body, .. } => serde_json::from_slice(body)
                .unwrap_or_else(|e| panic!("the answer is not JSON ({e}): {body:?}")),
            Outcome::Error { body, .. } => panic!("an error instead of an answer: {body}"),
        }
    }

    /// What was posted, as text.
    pub fn text(&self) -> String {
        match self {
            Outcome::Response { body, .. } => String::from_utf8_lossy(body).into_owned(),
            Outcome::Error { body, .. } => body.to_string(),
        }
    }

    /// `(errorType, errorMessage)` of an error outcome.
    pub fn error(&self) -> (String, String) {
        match self {
            Outcome::Error { body, .. } => (
                body["errorType"].as_str().unwrap_or_default().to_owned(),
                body["errorMessage"].as_str().unwrap_or_default().to_owned(),
            ),
            Outcome::Response { body, .. } => panic!(
                "an answer instead of an error: {}",
                String::from_utf8_lossy(body)
            ),
        }
    }
}

/// An `/init/error` report.
#[derive(Debug, Clone)]
pub struct InitError {
    pub error_type_header: Option<String>,
    pub body: serde_json::Value,
}

struct Event {
    id: String,
    body: Vec<u8>,
}

#[derive(Default)]
struct State {
    /// Ids handed to the runtime and not answered yet.
    in_flight: Mutex<HashSet<String>>,
    outcomes: Mutex<HashMap<String, Outcome>>,
    init_errors: Mutex<Vec<InitError>>,
    /// Requests the API answered, by path (for "the runtime stopped asking").
    next_calls: AtomicU64,
    changed: Notify,
}

pub struct RuntimeApi {
    pub addr: SocketAddr,
    state: Arc<State>,
    events: mpsc::UnboundedSender<Event>,
    counter: AtomicU64,
}

impl RuntimeApi {
    pub async fn start() -> RuntimeApi {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State::default());
        let (tx, rx) = mpsc::unbounded_channel::<Event>();
        let rx = Arc::new(tokio::sync::Mutex::new(rx));
        {
            let state = state.clone();
            tokio::spawn(async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        return;
                    };
                    let (state, rx) = (state.clone(), rx.clone());
                    tokio::spawn(async move {
                        let service = hyper::service::service_fn(move |req| {
                            let (state, rx) = (state.clone(), rx.clone());
                            async move {
                                Ok::<_, std::convert::Infallible>(handle(req, state, rx).await)
                            }
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
            });
        }
        RuntimeApi {
            addr,
            state,
            events: tx,
            counter: AtomicU64::new(0),
        }
    }

    /// `host:port`, the value of `AWS_LAMBDA_RUNTIME_API`.
    pub fn address(&self) -> String {
        self.addr.to_string()
    }

    /// Queues an event; returns its request id.
    pub fn invoke(&self, payload: &serde_json::Value) -> String {
        self.invoke_raw(payload.to_string().into_bytes())
    }

    /// Queues raw payload bytes (which need not be JSON).
    pub fn invoke_raw(&self, body: Vec<u8>) -> String {
        let n = self.counter.fetch_add(1, Ordering::SeqCst);
        let id = format!("8476a536-e9f4-11e8-9739-{n:012x}");
        let _ = self.events.send(Event {
            id: id.clone(),
            body,
        });
        id
    }

    /// What the runtime posted for `id`.
    pub async fn outcome(&self, id: &str, within: Duration) -> Outcome {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let notified = self.state.changed.notified();
            if let Some(o) = self.state.outcomes.lock().unwrap().get(id) {
                return o.clone();
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!("no answer for invocation {id} within {within:?}");
            }
        }
    }

    /// Invokes and waits for the outcome.
    pub async fn call(&self, payload: &serde_json::Value) -> Outcome {
        let id = self.invoke(payload);
        self.outcome(&id, Duration::from_secs(30)).await
    }

    /// The first `/init/error` report, if one arrives in time.
    pub async fn init_error(&self, within: Duration) -> Option<InitError> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let notified = self.state.changed.notified();
            if let Some(e) = self.state.init_errors.lock().unwrap().first() {
                return Some(e.clone());
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return None;
            }
        }
    }

    /// How many times the runtime asked for the next event.
    pub fn next_calls(&self) -> u64 {
        self.state.next_calls.load(Ordering::SeqCst)
    }
}

async fn handle(
    req: Request<Incoming>,
    state: Arc<State>,
    events: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<Event>>>,
) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let error_type = header("lambda-runtime-function-error-type");
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes().to_vec())
        .unwrap_or_default();
    const PREFIX: &str = "/2018-06-01/runtime/";
    let Some(rest) = path.strip_prefix(PREFIX) else {
        return reply(
            StatusCode::NOT_FOUND,
            r#"{"errorMessage":"not found","errorType":"NotFound"}"#,
        );
    };
    match (method, rest) {
        (Method::GET, "invocation/next") => {
            state.next_calls.fetch_add(1, Ordering::SeqCst);
            state.changed.notify_waiters();
            let Some(event) = events.lock().await.recv().await else {
                return reply(StatusCode::INTERNAL_SERVER_ERROR, "{}");
            };
            state.in_flight.lock().unwrap().insert(event.id.clone());
            let deadline = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_millis()
                + 30_000;
            Response::builder()
                .status(StatusCode::OK)
                .header("Content-Type", "application/json")
                .header("Lambda-Runtime-Aws-Request-Id", &event.id)
                .header("Lambda-Runtime-Deadline-Ms", deadline.to_string())
                .header("Lambda-Runtime-Invoked-Function-Arn", FUNCTION_ARN)
                .header(
                    "Lambda-Runtime-Trace-Id",
                    "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=1",
                )
                .body(Full::new(Bytes::from(event.body)))
                .unwrap()
        }
        (Method::POST, "init/error") => {
            state.init_errors.lock().unwrap().push(InitError {
                error_type_header: error_type,
                body: serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
            });
            state.changed.notify_waiters();
            reply(StatusCode::ACCEPTED, r#"{"status":"OK"}"#)
        }
        (Method::POST, rest) => {
            let Some((id, kind)) = rest
                .strip_prefix("invocation/")
                .and_then(|r| r.rsplit_once('/'))
            else {
                return reply(
                    StatusCode::NOT_FOUND,
                    r#"{"errorMessage":"not found","errorType":"NotFound"}"#,
                );
            };
            if !state.in_flight.lock().unwrap().remove(id) {
                return reply(
                    StatusCode::BAD_REQUEST,
                    r#"{"errorMessage":"Invalid request ID","errorType":"InvalidRequestID"}"#,
                );
            }
            let outcome = match kind {
                "response" => Outcome::Response { body },
                "error" => Outcome::Error {
                    error_type_header: error_type,
                    body: serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
                },
                _ => return reply(StatusCode::NOT_FOUND, "{}"),
            };
            state
                .outcomes
                .lock()
                .unwrap()
                .insert(id.to_owned(), outcome);
            state.changed.notify_waiters();
            reply(StatusCode::ACCEPTED, r#"{"status":"OK"}"#)
        }
        _ => reply(
            StatusCode::NOT_FOUND,
            r#"{"errorMessage":"not found","errorType":"NotFound"}"#,
        ),
    }
}

fn reply(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("Content-Type", "application/json")
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap()
}

/// The real `reseal lambda` binary as Lambda starts a custom runtime: the
/// Runtime API address and the function's settings in its environment, its
/// output into `log`.
pub fn spawn_lambda(api: &RuntimeApi, args: &[&str], envs: &[(&str, &str)], log: &Path) -> Child {
    let out = std::fs::File::create(log).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_reseal"));
    cmd.arg("lambda")
        .args(args)
        .env("AWS_LAMBDA_RUNTIME_API", api.address())
        .env("AWS_LAMBDA_FUNCTION_NAME", "reseal")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/reseal")
        .env(
            "AWS_LAMBDA_LOG_STREAM_NAME",
            "2026/01/01/[$LATEST]0123456789abcdef",
        )
        .env("AWS_EXECUTION_ENV", "AWS_Lambda_provided.al2023")
        .env_remove("RESEAL_CONFIG")
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.spawn().unwrap()
}

/// Waits for a child to exit; its status, or `None` if it is still running.
pub async fn exit_status(child: &mut Child, within: Duration) -> Option<std::process::ExitStatus> {
    let deadline = std::time::Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if std::time::Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Stops a child for good (it is ours: killed by its pid).
pub fn stop(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}
