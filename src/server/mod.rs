//! The process's listeners, wired together: the gRPC door (with TLS/mTLS), a
//! plaintext gRPC health port for probes, and an HTTP admin port for
//! `/metrics`, `/healthz` and `/readyz`. Readiness is one flag for all of them.
//!
//! Shutdown (SIGTERM or the `shutdown` signal): health flips to NOT_SERVING,
//! listeners stop accepting, in-flight requests drain for up to the grace
//! period, then the process exits.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::transport::Server;

use crate::broker::Broker;
use crate::grpc::proto::reencrypt_service_server::ReencryptServiceServer;
use crate::grpc::proto::FILE_DESCRIPTOR_SET;
use crate::grpc::service::Service;
use crate::http::HttpDoor;
use crate::registry::model::ServerSpec;
use crate::transport::{self, Conn, TlsPolicy};

/// The bound listeners.
pub struct Listeners {
    pub grpc: TcpListener,
    pub health: TcpListener,
    pub admin: TcpListener,
    /// The HTTP/JSON door (off when `server.http_listen` is empty).
    pub http: Option<TcpListener>,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Tls(#[from] transport::TlsError),
    #[error("gRPC server: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("reflection: {0}")]
    Reflection(String),
    /// A server task panicked.
    #[error("server task failed: {0}")]
    Crashed(String),
}

/// Runs until `shutdown` becomes true, then drains.
pub async fn serve(
    broker: Arc<Broker>,
    spec: &ServerSpec,
    listeners: Listeners,
    shutdown: watch::Receiver<bool>,
) -> Result<(), ServeError> {
    let (reporter, health_service) = tonic_health::server::health_reporter();
    let ready = Arc::new(AtomicBool::new(false));

    // SERVING once a registry is loaded; NOT_SERVING from the start of shutdown.
    {
        let broker = broker.clone();
        let reporter = reporter.clone();
        let ready = ready.clone();
        let mut shutdown = shutdown.clone();
        tokio::spawn(async move {
            loop {
                if broker.registry().snapshot().is_some() {
                    reporter
                        .set_serving::<ReencryptServiceServer<Service>>()
                        .await;
                    reporter
                        .set_service_status("", tonic_health::ServingStatus::Serving)
                        .await;
                    ready.store(true, Ordering::SeqCst);
                    break;
                }
                tokio::select! {
                    _ = shutdown.changed() => return,
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                }
            }
            let _ = shutdown.wait_for(|s| *s).await;
            ready.store(false, Ordering::SeqCst);
            reporter
                .set_not_serving::<ReencryptServiceServer<Service>>()
                .await;
            reporter
                .set_service_status("", tonic_health::ServingStatus::NotServing)
                .await;
        });
    }

    // Reflection in both protocol versions: v1, and v1alpha that many clients still use.
    let reflection_builder = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection = reflection_builder()
        .build_v1()
        .map_err(|e| ServeError::Reflection(e.to_string()))?;
    let reflection_alpha = reflection_builder()
        .build_v1alpha()
        .map_err(|e| ServeError::Reflection(e.to_string()))?;

    let service = ReencryptServiceServer::new(Service::new(broker.clone()))
        .max_decoding_message_size(spec.max_request_bytes)
        .max_encoding_message_size(usize::MAX);

    let incoming = transport::incoming(
        listeners.grpc,
        spec.tls.clone().map(|t| (t, TlsPolicy::grpc())),
        spec.reload_interval,
        shutdown.clone(),
    )?;
    let grace = spec.shutdown_grace;
    let drained = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };

    let grpc = Server::builder()
        .layer(crate::grpc::limit::RequestSizeLimitLayer {
            max_bytes: spec.max_request_bytes,
        })
        .timeout(spec.request_timeout)
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)))
        .add_service(health_service.clone())
        .add_service(reflection)
        .add_service(reflection_alpha)
        .add_service(service)
        .serve_with_incoming_shutdown(incoming, drained(shutdown.clone()));

    let health = Server::builder()
        .add_service(health_service)
        .serve_with_incoming_shutdown(
            tokio_stream::wrappers::TcpListenerStream::new(listeners.health),
            drained(shutdown.clone()),
        );

    let http = match listeners.http {
        Some(listener) => {
            let incoming = transport::incoming(
                listener,
                spec.tls.clone().map(|t| (t, TlsPolicy::http())),
                spec.reload_interval,
                shutdown.clone(),
            )?;
            let door = HttpDoor::new(
                broker.clone(),
                ready.clone(),
                spec.max_request_bytes,
                spec.request_timeout,
            );
            Some(http_server(
                incoming,
                door,
                spec.request_timeout,
                shutdown.clone(),
            ))
        }
        None => None,
    };
    let http = async move {
        if let Some(h) = http {
            h.await
        }
    };

    let admin = admin_server(listeners.admin, broker.clone(), ready, shutdown.clone());

    let mut shutdown_wait = shutdown.clone();
    let all = async {
        let (g, h, _, _) = tokio::join!(grpc, health, admin, http);
        g?;
        h?;
        Ok::<(), ServeError>(())
    };
    tokio::pin!(all);
    tokio::select! {
        r = &mut all => r,
        _ = async {
            let _ = shutdown_wait.wait_for(|s| *s).await;
            tokio::time::sleep(grace).await;
        } => {
            tracing::warn!(grace_seconds = grace.as_secs(), "shutdown grace period over; abandoning in-flight requests");
            Ok(())
        }
    }
}

/// Serves the HTTP/JSON door on its connections (HTTP/1.1 and HTTP/2), each
/// request bounded by `request_timeout`; at shutdown, connections finish the
/// requests they have and close.
async fn http_server(
    mut incoming: tokio_stream::wrappers::ReceiverStream<std::io::Result<Conn>>,
    door: HttpDoor,
    request_timeout: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    use tokio_stream::StreamExt as _;
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(10));
    builder.http2().max_concurrent_streams(100);
    loop {
        let conn = tokio::select! {
            _ = shutdown.wait_for(|s| *s) => break,
            c = incoming.next() => match c {
                Some(Ok(c)) => c,
                Some(Err(_)) => continue,
                None => break,
            },
        };
        let info = conn.info().clone();
        let door = door.clone();
        let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
            let (door, info) = (door.clone(), info.clone());
            async move {
                let answer = match tokio::time::timeout(request_timeout, door.handle(req, &info)).await {
                    Ok(a) => a,
                    Err(_) => text(
                        StatusCode::GATEWAY_TIMEOUT,
                        "{\"code\":4,\"message\":\"the request took longer than server.request_timeout\",\"details\":[]}".into(),
                        "application/json",
                    ),
                };
                Ok::<_, Infallible>(answer)
            }
        });
        let served = builder
            .serve_connection(TokioIo::new(conn), svc)
            .into_owned();
        let served = graceful.watch(served);
        tokio::spawn(async move {
            let _ = served.await;
        });
    }
    graceful.shutdown().await;
}

async fn admin_server(
    listener: TcpListener,
    broker: Arc<Broker>,
    ready: Arc<AtomicBool>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let (stream, _) = tokio::select! {
            _ = shutdown.wait_for(|s| *s) => break,
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(_) => continue,
            },
        };
        let broker = broker.clone();
        let ready = ready.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let broker = broker.clone();
                let ready = ready.clone();
                async move { Ok::<_, Infallible>(admin_route(&req, &broker, &ready)) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                .await;
        });
    }
}

fn text(status: StatusCode, body: String, content_type: &str) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

fn admin_route(
    req: &Request<hyper::body::Incoming>,
    broker: &Broker,
    ready: &AtomicBool,
) -> Response<Full<Bytes>> {
    match req.uri().path() {
        "/metrics" => {
            // Key expiries are timestamps, set when a registry is installed.
            text(
                StatusCode::OK,
                broker.metrics().encode(),
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )
        }
        "/healthz" => text(StatusCode::OK, "ok\n".into(), "text/plain"),
        "/readyz" => {
            if ready.load(Ordering::SeqCst) {
                text(StatusCode::OK, "ready\n".into(), "text/plain")
            } else {
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "not ready\n".into(),
                    "text/plain",
                )
            }
        }
        _ => text(StatusCode::NOT_FOUND, "not found\n".into(), "text/plain"),
    }
}
