//! The process edge: gRPC (with TLS/mTLS), a plaintext gRPC health port for
//! probes, and an HTTP admin port for `/metrics`, `/healthz` and `/readyz`.
//!
//! Shutdown (SIGTERM or the `shutdown` signal): health flips to NOT_SERVING,
//! listeners stop accepting, in-flight requests drain for up to the grace
//! period, then the process exits.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response, StatusCode};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::transport::Server;

use super::proto::reencrypt_service_server::ReencryptServiceServer;
use super::proto::FILE_DESCRIPTOR_SET;
use super::service::Service;
use super::tls;
use crate::broker::Broker;
use crate::registry::model::ServerSpec;

/// The three bound listeners.
pub struct Listeners {
    pub grpc: TcpListener,
    pub health: TcpListener,
    pub admin: TcpListener,
}

impl Listeners {
    pub async fn bind(grpc: &str, health: &str, admin: &str) -> std::io::Result<Self> {
        Ok(Listeners {
            grpc: TcpListener::bind(grpc).await?,
            health: TcpListener::bind(health).await?,
            admin: TcpListener::bind(admin).await?,
        })
    }

    pub fn addrs(&self) -> std::io::Result<(SocketAddr, SocketAddr, SocketAddr)> {
        Ok((
            self.grpc.local_addr()?,
            self.health.local_addr()?,
            self.admin.local_addr()?,
        ))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
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

    let service =
        ReencryptServiceServer::new(Service::new(broker.clone(), spec.max_concurrent_requests))
            .max_decoding_message_size(spec.max_request_bytes)
            .max_encoding_message_size(usize::MAX);

    let incoming = tls::incoming(
        listeners.grpc,
        spec.tls.clone(),
        spec.reload_interval,
        shutdown.clone(),
    )?;
    let grace = spec.shutdown_grace;
    let drained = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };

    let grpc = Server::builder()
        .layer(super::limit::RequestSizeLimitLayer {
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

    let admin = admin_server(listeners.admin, broker.clone(), ready, shutdown.clone());

    let mut shutdown_wait = shutdown.clone();
    let all = async {
        let (g, h, _) = tokio::join!(grpc, health, admin);
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
