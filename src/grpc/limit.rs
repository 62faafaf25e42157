//! Request-size limit with a typed answer, enforced before anything is buffered.
//!
//! A gRPC message starts with a 5-byte prefix (compression flag, u32 length).
//! This layer reads just that prefix; when the declared length is over
//! `server.max_request_bytes` it answers at once with RESOURCE_EXHAUSTED and
//! `ErrorInfo` reason MAXIMUM_DATA_SIZE_EXCEEDED, without reading (let alone
//! allocating) the body. Otherwise the prefix is handed back in front of the
//! rest of the body and the request proceeds. (tonic's own limit stays on as
//! a backstop, but it answers with untyped text.)

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http_body_util::BodyExt;
use hyper::body::{Bytes, Frame};
use tower::{Layer, Service};

#[derive(Clone, Copy, Debug)]
pub struct RequestSizeLimitLayer {
    pub max_bytes: usize,
}

impl<S> Layer<S> for RequestSizeLimitLayer {
    type Service = RequestSizeLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestSizeLimit {
            inner,
            max_bytes: self.max_bytes,
        }
    }
}

#[derive(Clone, Debug)]
pub struct RequestSizeLimit<S> {
    inner: S,
    max_bytes: usize,
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

impl<S> Service<http::Request<tonic::body::Body>> for RequestSizeLimit<S>
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
        Box::pin(async move {
            let (parts, mut body) = req.into_parts();
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
                let declared = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
                if declared > max {
                    return Ok(too_large(declared, max));
                }
            }
            let body = tonic::body::Body::new(Prefixed {
                head: Some(Bytes::from(head)),
                pending: tail,
                rest: body,
            });
            inner.call(http::Request::from_parts(parts, body)).await
        })
    }
}
