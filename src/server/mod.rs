//! The process's listeners, wired together: the gRPC door (with TLS/mTLS), a
//! plaintext gRPC health port for probes, an HTTP admin port for `/metrics`,
//! `/healthz` and `/readyz`, and the HTTP/JSON door. Readiness is one flag for
//! all of them. Every listener accepts and serves through `transport`: the
//! same connection limits, deadlines and HTTP/2 limits (`server.connections`,
//! `server.http2`), each listener counted on its own.
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
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::ServiceExt as _;

use crate::broker::Broker;
use crate::grpc::proto::reencrypt_service_server::ReencryptServiceServer;
use crate::grpc::proto::FILE_DESCRIPTOR_SET;
use crate::grpc::service::Service;
use crate::http::HttpDoor;
use crate::registry::model::ServerSpec;
use crate::transport::{self, Conn, ConnInfo, Listener, Protocols, TlsPolicy};

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

    // Security-event summaries go out when their interval ends, flood or not.
    {
        let broker = broker.clone();
        let mut shutdown = shutdown.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tokio::select! {
                    _ = shutdown.wait_for(|s| *s) => break,
                    _ = tick.tick() => broker.flush_security_events(),
                }
            }
            broker.flush_security_events();
        });
    }

    let metrics = broker.metrics().clone();
    let listener = |name: &'static str, http2: bool| {
        Listener::new(
            name,
            spec.connections.clone(),
            spec.http2.clone(),
            http2,
            metrics.clone(),
        )
    };

    let service = ReencryptServiceServer::new(Service::new(broker.clone()))
        .max_decoding_message_size(spec.max_request_bytes)
        .max_encoding_message_size(usize::MAX);
    let routes = tonic::service::Routes::new(health_service.clone())
        .add_service(reflection)
        .add_service(reflection_alpha)
        .add_service(service)
        .prepare();
    let front = crate::grpc::limit::FrontLayer {
        broker: broker.clone(),
        max_bytes: spec.max_request_bytes,
        request_timeout: spec.request_timeout,
    };
    let grpc_service = tower::ServiceBuilder::new()
        .layer(front)
        .service(routes)
        .map_request(|req: Request<hyper::body::Incoming>| req.map(tonic::body::Body::new));
    let grpc_listener = listener("grpc", true);
    let incoming = transport::incoming(
        listeners.grpc,
        spec.tls.clone().map(|t| (t, TlsPolicy::grpc())),
        spec.reload_interval,
        shutdown.clone(),
        grpc_listener.clone(),
    )?;
    let grpc = transport::serve(
        incoming,
        grpc_listener,
        Protocols::Http2,
        move |_| TowerToHyperService::new(grpc_service.clone()),
        shutdown.clone(),
    );

    let health_routes = tonic::service::Routes::new(health_service)
        .prepare()
        .map_request(|req: Request<hyper::body::Incoming>| req.map(tonic::body::Body::new));
    let health_listener = listener("health", true);
    let health = transport::serve(
        transport::incoming(
            listeners.health,
            None,
            spec.reload_interval,
            shutdown.clone(),
            health_listener.clone(),
        )?,
        health_listener,
        Protocols::Http2,
        move |_| TowerToHyperService::new(health_routes.clone()),
        shutdown.clone(),
    );

    let http = match listeners.http {
        Some(listener_socket) => {
            let http_listener = listener("http", true);
            let incoming = transport::incoming(
                listener_socket,
                spec.tls.clone().map(|t| (t, TlsPolicy::http())),
                spec.reload_interval,
                shutdown.clone(),
                http_listener.clone(),
            )?;
            let door = HttpDoor::new(
                broker.clone(),
                ready.clone(),
                spec.max_request_bytes,
                spec.request_timeout,
            );
            Some(http_server(
                incoming,
                http_listener,
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

    let admin_listener = listener("admin", false);
    let admin = admin_server(
        transport::incoming(
            listeners.admin,
            None,
            spec.reload_interval,
            shutdown.clone(),
            admin_listener.clone(),
        )?,
        admin_listener,
        broker.clone(),
        ready,
        shutdown.clone(),
    );

    let grace = spec.shutdown_grace;
    let mut shutdown_wait = shutdown.clone();
    let all = async {
        tokio::join!(grpc, health, admin, http);
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
    incoming: tokio_stream::wrappers::ReceiverStream<std::io::Result<Conn>>,
    listener: Arc<Listener>,
    door: HttpDoor,
    request_timeout: Duration,
    shutdown: watch::Receiver<bool>,
) {
    let make = move |info: &ConnInfo| {
        let (door, info) = (door.clone(), info.clone());
        hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
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
        })
    };
    transport::serve(incoming, listener, Protocols::Both, make, shutdown).await;
}

async fn admin_server(
    incoming: tokio_stream::wrappers::ReceiverStream<std::io::Result<Conn>>,
    listener: Arc<Listener>,
    broker: Arc<Broker>,
    ready: Arc<AtomicBool>,
    shutdown: watch::Receiver<bool>,
) {
    let make = move |_: &ConnInfo| {
        let (broker, ready) = (broker.clone(), ready.clone());
        hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
            let (broker, ready) = (broker.clone(), ready.clone());
            async move { Ok::<_, Infallible>(admin_route(&req, &broker, &ready)) }
        })
    };
    transport::serve(incoming, listener, Protocols::Http1, make, shutdown).await;
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
