//! The gRPC door's front: admission before the body is read, the request
//! size limit, and the request deadline.
//!
//! A `reseal.v1.ReencryptService` call is admitted by the broker's front desk
//! ([`Broker::admit`]: failure budget, authentication, a fair share of the
//! request slots) from its headers alone, before a byte of its body is read:
//! a refused call costs no body buffering, no parsing, no key. The slot goes
//! to the service in the request's extensions. Then the 5-byte gRPC prefix
//! (compression flag, u32 length) is read; a declared length over
//! `server.max_request_bytes` is answered at once with RESOURCE_EXHAUSTED and
//! reason MAXIMUM_DATA_SIZE_EXCEEDED, without reading (let alone allocating)
//! the body. Otherwise the prefix is handed back in front of the rest of the
//! body and the request proceeds, within `server.request_timeout` (or the
//! client's `grpc-timeout`, if sooner).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::body::{Bytes, Frame};
use tower::{Layer, Service};

use crate::broker::{self, Broker, BrokerError, Caller, Credential, Door, Method, Reason};
use crate::transport::ConnInfo;

/// The front of the gRPC door, as a tower layer.
#[derive(Clone)]
pub struct FrontLayer {
    pub broker: Arc<Broker>,
    pub max_bytes: usize,
    pub request_timeout: Duration,
}

impl<S> Layer<S> for FrontLayer {
    type Service = Front<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Front {
            inner,
            broker: self.broker.clone(),
            max_bytes: self.max_bytes,
            request_timeout: self.request_timeout,
        }
    }
}

#[derive(Clone)]
pub struct Front<S> {
    inner: S,
    broker: Arc<Broker>,
    max_bytes: usize,
    request_timeout: Duration,
}

const SERVICE_PREFIX: &str = "/reseal.v1.ReencryptService/";

/// The method a path names, for the front desk.
fn method_of(path: &str) -> Option<Method> {
    match path.strip_prefix(SERVICE_PREFIX)? {
        "Reencrypt" => Some(Method::Reencrypt),
        "ReencryptBatch" => Some(Method::ReencryptBatch),
        _ => None,
    }
}

/// The caller: the connection's certificate identity, and a bearer token or
/// Basic credentials from the `authorization` metadata.
pub fn caller_of(
    headers: &http::HeaderMap,
    info: Option<&ConnInfo>,
) -> Result<Caller, BrokerError> {
    let credential = match headers.get("authorization") {
        Some(v) => Credential::from_authorization(v.to_str().map_err(|_| {
            BrokerError::new(
                Reason::Unauthenticated,
                "the authorization metadata is not ASCII",
            )
        })?)?,
        None => None,
    };
    Ok(Caller {
        identity: info.and_then(|i| i.identity.clone()),
        peer: info.and_then(|i| i.remote).map(|a| a.to_string()),
        connection: info.map(|i| i.id).filter(|id| *id != 0),
        credential,
        secure: info.is_some_and(|i| i.tls),
        acting_as: None,
    })
}

/// The client's `grpc-timeout` (e.g. `150m`, `5S`), if it sent one.
fn grpc_timeout(headers: &http::HeaderMap) -> Option<Duration> {
    let v = headers.get("grpc-timeout")?.to_str().ok()?;
    if v.len() < 2 || v.len() > 9 {
        return None;
    }
    let (digits, unit) = v.split_at(v.len() - 1);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// The grpc-status of a trailers-only answer, as the reason the service
/// would have given (a call the service never saw: tonic or the codec
/// refused it).
fn reason_of_status(resp: &http::Response<tonic::body::Body>) -> Option<Reason> {
    let code = resp.headers().get("grpc-status")?.to_str().ok()?;
    match code {
        "0" => None,
        "3" => Some(Reason::MalformedRequest),
        "8" => Some(Reason::MaximumDataSizeExceeded),
        _ => Some(Reason::Internal),
    }
}

fn too_large(declared: usize, max: usize) -> http::Response<tonic::body::Body> {
    super::status::request_too_large(declared, max).into_http()
}

/// The request body with what was already read put back in front.
struct Prefixed {
    head: Option<Bytes>,
    /// A non-data frame (trailers) met while reading the prefix.
    pending: Option<Frame<Bytes>>,
    rest: tonic::body::Body,
}

impl http_body::Body for Prefixed {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        if let Some(head) = self.head.take() {
            if !head.is_empty() {
                return Poll::Ready(Some(Ok(Frame::data(head))));
            }
        }
        if let Some(frame) = self.pending.take() {
            return Poll::Ready(Some(Ok(frame)));
        }
        Pin::new(&mut self.rest).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.head.is_none() && self.pending.is_none() && self.rest.is_end_stream()
    }
}

impl<S> Service<http::Request<tonic::body::Body>> for Front<S>
where
    S: Service<http::Request<tonic::body::Body>, Response = http::Response<tonic::body::Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
        // The readied service handles this call; a fresh clone takes its place.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let max = self.max_bytes;
        let broker = self.broker.clone();
        let deadline = grpc_timeout(req.headers())
            .map_or(self.request_timeout, |t| t.min(self.request_timeout));
        Box::pin(async move {
            let work = async move {
                let (mut parts, mut body) = req.into_parts();
                let mut slot = None;
                if let Some(method) = method_of(parts.uri.path()) {
                    let header_id = parts
                        .headers
                        .get("x-request-id")
                        .and_then(|v| v.to_str().ok());
                    let rid = broker::request_id(&[header_id]).unwrap_or_default();
                    let refused = |e: &BrokerError| super::status::to_status(e, &rid).into_http();
                    let caller = match caller_of(&parts.headers, parts.extensions.get::<ConnInfo>())
                    {
                        Ok(c) => c,
                        Err(e) => return Ok(refused(&e)),
                    };
                    match broker.admit(Door::Grpc, method, &caller).await {
                        Ok(s) => {
                            parts.extensions.insert(s.clone());
                            slot = Some(s);
                        }
                        Err(e) => return Ok(refused(&e)),
                    }
                    parts.extensions.insert(caller);
                }
                let mut head = Vec::with_capacity(5);
                let mut tail: Option<Frame<Bytes>> = None;
                while head.len() < 5 {
                    match body.frame().await {
                        Some(Ok(frame)) => match frame.into_data() {
                            Ok(data) => head.extend_from_slice(&data),
                            Err(other) => {
                                tail = Some(other);
                                break;
                            }
                        },
                        // Let the inner service see (and report) a broken or empty body.
                        _ => break,
                    }
                }
                if head.len() >= 5 {
                    let declared =
                        u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
                    if declared > max {
                        if let Some(slot) = &slot {
                            broker.record_unhandled(slot, Reason::MaximumDataSizeExceeded);
                        }
                        return Ok(too_large(declared, max));
                    }
                    // Room for the body before it is read (the decoder holds it whole).
                    if let Some(slot) = &slot {
                        if let Err(e) = broker.reserve_body(slot, declared) {
                            let rid = broker::request_id(&[None]).unwrap_or_default();
                            return Ok(super::status::to_status(&e, &rid).into_http());
                        }
                    }
                }
                let body = tonic::body::Body::new(Prefixed {
                    head: Some(Bytes::from(head)),
                    pending: tail,
                    rest: body,
                });
                let answer = inner.call(http::Request::from_parts(parts, body)).await;
                if let (Some(slot), Ok(resp)) = (&slot, &answer) {
                    if !slot.handled() {
                        if let Some(reason) = reason_of_status(resp) {
                            broker.record_unhandled(slot, reason);
                        }
                    }
                }
                answer
            };
            match tokio::time::timeout(deadline, work).await {
                Ok(answer) => answer,
                Err(_) => Ok(tonic::Status::deadline_exceeded(
                    "the call took longer than its deadline (server.request_timeout or grpc-timeout)",
                )
                .into_http()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeouts_parse() {
        let mut h = http::HeaderMap::new();
        assert_eq!(grpc_timeout(&h), None);
        for (v, d) in [
            ("150m", Duration::from_millis(150)),
            ("5S", Duration::from_secs(5)),
            ("2M", Duration::from_secs(120)),
            ("1H", Duration::from_secs(3600)),
            ("10u", Duration::from_micros(10)),
        ] {
            h.insert("grpc-timeout", v.parse().unwrap());
            assert_eq!(grpc_timeout(&h), Some(d), "{v}");
        }
        for bad in ["", "m", "12", "1000000000S", "5x"] {
            h.insert("grpc-timeout", bad.parse().unwrap());
            assert_eq!(grpc_timeout(&h), None, "{bad}");
        }
    }

    #[test]
    fn only_the_reseal_methods_go_to_the_front_desk() {
        assert_eq!(
            method_of("/reseal.v1.ReencryptService/Reencrypt"),
            Some(Method::Reencrypt)
        );
        assert_eq!(
            method_of("/reseal.v1.ReencryptService/ReencryptBatch"),
            Some(Method::ReencryptBatch)
        );
        assert_eq!(method_of("/grpc.health.v1.Health/Check"), None);
        assert_eq!(method_of("/reseal.v1.ReencryptService/Other"), None);
    }
}
