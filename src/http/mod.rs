//! The HTTP/JSON door: the `ReencryptService` in the gRPC-JSON transcoding
//! convention, for callers that cannot speak gRPC (a Genesys Cloud Web Services
//! data action, a shell with curl). The routes are the `google.api.http`
//! annotations of `proto/reseal/v1/reseal.proto`:
//!
//! * `POST /v1/reencrypt`: a `ReencryptRequest` in, a `ReencryptResponse` out;
//! * `POST /v1/reencrypt:batch`: a `ReencryptBatchRequest` in, a `ReencryptBatchResponse` out;
//! * `GET /healthz`, `GET /readyz`: the process's liveness and readiness;
//! * `GET /openapi.yaml`: the OpenAPI description of the two routes (`docs/openapi.yaml`).
//!
//! Bodies are proto3 JSON (`wire::json`). A failed call answers with a
//! `google.rpc.Status` JSON body (code, message, an ErrorInfo with the reason)
//! and the HTTP status its code maps to (`http_status`), plus `Retry-After`
//! when a retry may help. Callers are known by a client certificate (TLS with
//! a client CA; optional here), a bearer token or Basic credentials, checked by
//! the broker like every other door's.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::header::{HeaderValue, ALLOW, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use tonic::Code;

use crate::broker::{self, Broker, BrokerError, Caller, Credential, Door, Reason};
use crate::transport::ConnInfo;
use crate::wire::code;
use crate::wire::json::{self, Status};

/// The OpenAPI description served at `/openapi.yaml`.
pub const OPENAPI: &str = include_str!("../../docs/openapi.yaml");

pub const REENCRYPT_PATH: &str = "/v1/reencrypt";
pub const BATCH_PATH: &str = "/v1/reencrypt:batch";

/// The door's state: the broker, the shared readiness flag, its limits.
#[derive(Clone)]
pub struct HttpDoor {
    broker: Arc<Broker>,
    ready: Arc<AtomicBool>,
    max_body_bytes: usize,
    body_timeout: Duration,
}

type Answer = Response<Full<Bytes>>;

impl HttpDoor {
    pub fn new(
        broker: Arc<Broker>,
        ready: Arc<AtomicBool>,
        max_body_bytes: usize,
        body_timeout: Duration,
    ) -> Self {
        HttpDoor {
            broker,
            ready,
            max_body_bytes,
            body_timeout,
        }
    }

    /// Answers one request.
    pub async fn handle(&self, req: Request<Incoming>, conn: &ConnInfo) -> Answer {
        let header_id = req
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let path = req.uri().path().to_owned();
        let method = req.method().clone();
        let refusal_id = || broker::request_id(&[header_id.as_deref()]).unwrap_or_default();
        match (path.as_str(), method) {
            (REENCRYPT_PATH | BATCH_PATH, Method::POST) => {
                let batch = path == BATCH_PATH;
                match self.call(req, conn, header_id.as_deref(), batch).await {
                    Ok(answer) => answer,
                    Err(r) => {
                        let mut a = failure(&r.err, &r.request_id);
                        if let Some(s) = r.status {
                            *a.status_mut() = s;
                        }
                        a
                    }
                }
            }
            (REENCRYPT_PATH | BATCH_PATH, _) => {
                let mut a = failure(
                    &BrokerError::new(
                        Reason::MalformedRequest,
                        format!("{path} takes POST with a JSON body"),
                    ),
                    &refusal_id(),
                );
                *a.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
                a.headers_mut()
                    .insert(ALLOW, HeaderValue::from_static("POST"));
                a
            }
            ("/healthz", Method::GET) => plain(StatusCode::OK, "ok\n"),
            ("/readyz", Method::GET) => {
                if self.ready.load(Ordering::SeqCst) {
                    plain(StatusCode::OK, "ready\n")
                } else {
                    plain(StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
                }
            }
            ("/openapi.yaml", Method::GET) => {
                let mut a = Response::new(Full::new(Bytes::from_static(OPENAPI.as_bytes())));
                a.headers_mut().insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static("application/yaml; charset=utf-8"),
                );
                a
            }
            _ => {
                let mut a = failure(
                    &BrokerError::new(
                        Reason::MalformedRequest,
                        format!(
                            "no such route; the API has POST {REENCRYPT_PATH} and POST {BATCH_PATH}"
                        ),
                    ),
                    &refusal_id(),
                );
                *a.status_mut() = StatusCode::NOT_FOUND;
                a
            }
        }
    }

    /// A call: checks, body, the broker, the answer. Errors come back with the
    /// request id known so far.
    async fn call(
        &self,
        req: Request<Incoming>,
        conn: &ConnInfo,
        header_id: Option<&str>,
        batch: bool,
    ) -> Result<Answer, Refusal> {
        // Until the body names one: the header's request id, or a new one.
        let early = broker::request_id(&[header_id]).map_err(|e| Refusal::new(e, None))?;
        let early_id = |e: BrokerError| Refusal::new(e, Some(&early));
        let caller = caller_of(&req, conn).map_err(early_id)?;
        check_content_type(&req).map_err(|e| {
            Refusal::new(e, Some(&early)).with_status(StatusCode::UNSUPPORTED_MEDIA_TYPE)
        })?;
        // Admitted from the headers, before a byte of the body is read.
        let method = if batch {
            broker::Method::ReencryptBatch
        } else {
            broker::Method::Reencrypt
        };
        let slot = self
            .broker
            .admit(Door::Http, method, &caller)
            .await
            .map_err(early_id)?;
        let unhandled = |r: Refusal| {
            self.broker.record_unhandled(&slot, r.err.reason);
            r
        };
        // Room for the body before it is read: its declared length, or the
        // most this door accepts.
        let declared = req
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok())
            .filter(|n| *n <= self.max_body_bytes)
            .unwrap_or(self.max_body_bytes);
        self.broker
            .reserve_body(&slot, declared)
            .map_err(early_id)?;
        let body = self.body(req).await.map_err(|r| {
            unhandled(Refusal {
                request_id: early.clone(),
                ..r
            })
        })?;
        if batch {
            let parsed: json::ReencryptBatchRequest =
                json::from_body(&body, "ReencryptBatchRequest")
                    .map_err(|e| unhandled(early_id(e)))?;
            let rid = early.clone();
            let items = parsed
                .items
                .into_iter()
                .enumerate()
                .map(|(i, item)| {
                    broker::batch_item_id(&rid, i, &item.request_id)
                        .and_then(|r| item.into_broker(r))
                })
                .collect();
            let results = self
                .broker
                .call_batch_admitted(&slot, &caller, &rid, items)
                .await
                .map_err(|e| Refusal::new(e, Some(&rid)))?;
            Ok(ok_json(
                &json::ReencryptBatchResponse::from_results(results),
                &rid,
            ))
        } else {
            let parsed: json::ReencryptRequest =
                json::from_body(&body, "ReencryptRequest").map_err(|e| unhandled(early_id(e)))?;
            let rid = broker::request_id(&[Some(&parsed.request_id), Some(&early)])
                .map_err(|e| unhandled(Refusal::new(e, None)))?;
            let route = (!parsed.route.is_empty()).then(|| parsed.route.clone());
            let request = parsed.into_broker(rid.clone());
            let resp = self
                .broker
                .call_admitted(&slot, &caller, route.as_deref(), request)
                .await
                .map_err(|e| Refusal::new(e, Some(&rid)))?;
            Ok(ok_json(&json::ReencryptResponse::from(resp), &rid))
        }
    }

    /// The body, bounded: a declared length over the limit is refused before
    /// a byte is read; a body that grows past it, or does not arrive in
    /// time, is refused while reading.
    async fn body(&self, req: Request<Incoming>) -> Result<Bytes, Refusal> {
        let max = self.max_body_bytes;
        let too_big = |n: Option<u64>| {
            Refusal {
            err: BrokerError::new(
                Reason::MaximumDataSizeExceeded,
                match n {
                    Some(n) => format!("the request body is {n} bytes; this server accepts at most {max} (server.max_request_bytes)"),
                    None => format!("the request body is over {max} bytes (server.max_request_bytes)"),
                },
            ),
            request_id: String::new(),
            status: Some(StatusCode::PAYLOAD_TOO_LARGE),
        }
        };
        let malformed = |what: &str| Refusal {
            err: BrokerError::new(Reason::MalformedRequest, what),
            request_id: String::new(),
            status: None,
        };
        if let Some(n) = req
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
        {
            if n > max as u64 {
                return Err(too_big(Some(n)));
            }
        }
        let limited = Limited::new(req.into_body(), max);
        match tokio::time::timeout(self.body_timeout, limited.collect()).await {
            Err(_) => Err(malformed("the request body did not arrive in time")),
            Ok(Err(e))
                if e.downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some() =>
            {
                Err(too_big(None))
            }
            Ok(Err(_)) => Err(malformed("the request body could not be read")),
            Ok(Ok(collected)) => Ok(collected.to_bytes()),
        }
    }
}

/// The caller: a verified client certificate's identity, and the
/// `Authorization` header's bearer token or Basic credentials.
fn caller_of(req: &Request<Incoming>, conn: &ConnInfo) -> Result<Caller, BrokerError> {
    let credential = match req.headers().get(AUTHORIZATION) {
        Some(v) => Credential::from_authorization(v.to_str().map_err(|_| {
            BrokerError::new(
                Reason::Unauthenticated,
                "the Authorization header is not ASCII",
            )
        })?)?,
        None => None,
    };
    Ok(Caller {
        identity: conn.identity.clone(),
        peer: conn.remote.map(|a| a.to_string()),
        connection: Some(conn.id).filter(|id| *id != 0),
        credential,
        secure: conn.tls,
        acting_as: None,
    })
}

fn check_content_type(req: &Request<Incoming>) -> Result<(), BrokerError> {
    let ok = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"));
    if ok {
        Ok(())
    } else {
        Err(BrokerError::new(
            Reason::MalformedRequest,
            "the request body must be JSON: send `Content-Type: application/json`",
        ))
    }
}

/// The HTTP status of a canonical code (the gRPC-gateway mapping, with
/// FAILED_PRECONDITION as 412 Precondition Failed: the request is well formed,
/// the state of a key is not).
pub fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::InvalidArgument | Code::OutOfRange => StatusCode::BAD_REQUEST,
        Code::FailedPrecondition => StatusCode::PRECONDITION_FAILED,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Cancelled => StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::Internal | Code::Unknown | Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// A call refused at the door or by the broker, with the request id known so
/// far and, for the door's own refusals, the HTTP status that says it best
/// (413 for a body over the limit, 415 for one that is not JSON).
struct Refusal {
    err: BrokerError,
    request_id: String,
    status: Option<StatusCode>,
}

impl Refusal {
    fn new(err: BrokerError, request_id: Option<&str>) -> Self {
        Refusal {
            err,
            request_id: broker::request_id(&[request_id]).unwrap_or_default(),
            status: None,
        }
    }

    fn with_status(mut self, status: StatusCode) -> Self {
        self.status = Some(status);
        self
    }
}

fn failure(err: &BrokerError, request_id: &str) -> Answer {
    let body = serde_json::to_vec(&Status::of(err, request_id)).unwrap_or_default();
    let mut a = Response::new(Full::new(Bytes::from(body)));
    *a.status_mut() = http_status(code(err.reason));
    let h = a.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Some(after) = json::retry_after(err) {
        let secs = after.as_secs() + u64::from(after.subsec_nanos() > 0);
        if let Ok(v) = HeaderValue::from_str(&secs.max(1).to_string()) {
            h.insert(RETRY_AFTER, v);
        }
    }
    if err.reason == Reason::Unauthenticated {
        h.insert(
            http::header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"reseal\", Basic realm=\"reseal\""),
        );
    }
    if let Ok(v) = HeaderValue::from_str(request_id) {
        if !request_id.is_empty() {
            h.insert("x-request-id", v);
        }
    }
    a
}

fn ok_json<T: serde::Serialize>(value: &T, request_id: &str) -> Answer {
    match serde_json::to_vec(value) {
        Ok(body) => {
            let mut a = Response::new(Full::new(Bytes::from(body)));
            a.headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            if let Ok(v) = HeaderValue::from_str(request_id) {
                a.headers_mut().insert("x-request-id", v);
            }
            a
        }
        Err(e) => failure(&BrokerError::internal(format!("encoding: {e}")), request_id),
    }
}

fn plain(status: StatusCode, text: &'static str) -> Answer {
    let mut a = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *a.status_mut() = status;
    a.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The routes the door serves are the ones the proto declares for
    /// transcoders (google.api.http), so Envoy or grpc-gateway in front of the
    /// gRPC port and this door answer at the same paths.
    #[test]
    fn the_routes_are_the_protos_google_api_http_annotations() {
        let proto = include_str!("../../proto/reseal/v1/reseal.proto");
        for (rpc, path) in [
            ("Reencrypt", REENCRYPT_PATH),
            ("ReencryptBatch", BATCH_PATH),
        ] {
            let at = proto
                .find(&format!("rpc {rpc}("))
                .unwrap_or_else(|| panic!("rpc {rpc}"));
            let rule = &proto[at..at + proto[at..].find('}').unwrap_or(0)];
            assert!(
                rule.contains(&format!("post: \"{path}\"")) && rule.contains("body: \"*\""),
                "{rpc}: {rule}"
            );
        }
    }

    #[test]
    fn the_openapi_description_lists_every_reason_and_both_routes() {
        for reason in Reason::ALL {
            assert!(
                OPENAPI.contains(&format!("- {}\n", reason.as_str())),
                "docs/openapi.yaml does not list {reason}"
            );
        }
        for path in [REENCRYPT_PATH, BATCH_PATH] {
            assert!(OPENAPI.contains(&format!("  {path}:\n")), "{path}");
        }
    }

    #[test]
    fn every_reason_has_an_http_status_from_its_code() {
        for reason in Reason::ALL {
            let s = http_status(code(reason));
            assert!(s.is_client_error() || s.is_server_error(), "{reason}: {s}");
        }
        assert_eq!(
            http_status(Code::FailedPrecondition),
            StatusCode::PRECONDITION_FAILED
        );
        assert_eq!(
            http_status(Code::ResourceExhausted),
            StatusCode::TOO_MANY_REQUESTS
        );
        assert_eq!(
            http_status(Code::Unavailable),
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
}
