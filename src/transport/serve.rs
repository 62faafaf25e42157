//! Serving HTTP on accepted connections, the same way on every listener:
//! hyper (HTTP/1.1, HTTP/2 or both) with the HTTP/2 limits of
//! `server.http2`, and the connection deadlines of `server.connections`:
//!
//! * the first request's headers must arrive within `handshake_timeout` of
//!   the accept (which covers the TLS handshake, the HTTP/2 preface, and
//!   headers that drip in); a connection that sent none is closed;
//! * a connection with no request in progress for `idle_timeout` is closed,
//!   gracefully (HTTP/2 GOAWAY, so a request racing it is retried by the
//!   client, not lost); partial headers do not count as a request;
//! * at shutdown every connection finishes the requests it has and closes.
//!
//! Each request carries the connection's [`ConnInfo`] in its extensions.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::sync::{mpsc, watch, Notify};
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt as _;

use super::conn::{Conn, ConnInfo, Listener};

/// The protocols a listener speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocols {
    Http1,
    Http2,
    Both,
}

/// Requests in progress on one connection, and since when it has had none.
struct Activity {
    active: AtomicUsize,
    ever: AtomicBool,
    idle_since: Mutex<Instant>,
    changed: Notify,
}

impl Activity {
    fn begin(self: &Arc<Self>) -> InProgress {
        self.active.fetch_add(1, Ordering::SeqCst);
        self.ever.store(true, Ordering::SeqCst);
        self.changed.notify_one();
        InProgress(self.clone())
    }
}

struct InProgress(Arc<Activity>);

impl Drop for InProgress {
    fn drop(&mut self) {
        if self.0.active.fetch_sub(1, Ordering::SeqCst) == 1 {
            *self.0.idle_since.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
        }
        self.0.changed.notify_one();
    }
}

/// A request service that marks requests in progress and hands them the
/// connection's info.
#[derive(Clone)]
struct Tracked<S> {
    inner: S,
    activity: Arc<Activity>,
    info: ConnInfo,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B> hyper::service::Service<Request<Incoming>> for Tracked<S>
where
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response<B>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Response<B>, Infallible>>;

    fn call(&self, mut req: Request<Incoming>) -> Self::Future {
        let in_progress = self.activity.begin();
        req.extensions_mut().insert(self.info.clone());
        let fut = self.inner.call(req);
        Box::pin(async move {
            let answer = fut.await;
            drop(in_progress);
            answer
        })
    }
}

/// How long a connection closing for being idle (or for shutdown, after the
/// server's own grace) may take to finish.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// Serves every connection of `incoming` with the service `make` builds for
/// it, until `shutdown`; then lets the connections drain and returns.
pub async fn serve<M, S, B>(
    mut incoming: ReceiverStream<io::Result<Conn>>,
    listener: Arc<Listener>,
    protocols: Protocols,
    make: M,
    mut shutdown: watch::Receiver<bool>,
) where
    M: Fn(&ConnInfo) -> S,
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let builder = Arc::new(builder(&listener, protocols));
    let (done_tx, mut done_rx) = mpsc::channel::<()>(1);
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
        tracing::trace!(listener = listener.name, peer = ?info.remote, "connection accepted");
        let activity = Arc::new(Activity {
            active: AtomicUsize::new(0),
            ever: AtomicBool::new(false),
            idle_since: Mutex::new(Instant::now()),
            changed: Notify::new(),
        });
        let service = Tracked {
            inner: make(&info),
            activity: activity.clone(),
            info,
        };
        let task = Connection {
            builder: builder.clone(),
            listener: listener.clone(),
            activity,
            shutdown: shutdown.clone(),
            _done: done_tx.clone(),
        };
        tokio::spawn(task.run(conn, service));
    }
    tracing::trace!(
        listener = listener.name,
        open = listener.open(),
        "stopped accepting; draining connections"
    );
    drop(incoming);
    drop(done_tx);
    // Every connection task holds a sender: none left, all are done.
    let _ = done_rx.recv().await;
}

fn builder(listener: &Listener, protocols: Protocols) -> auto::Builder<TokioExecutor> {
    let h2 = &listener.http2;
    let c = &listener.connections;
    let mut b = auto::Builder::new(TokioExecutor::new());
    match protocols {
        Protocols::Http1 => b = b.http1_only(),
        Protocols::Http2 => b = b.http2_only(),
        Protocols::Both => {}
    }
    b.http1()
        .timer(TokioTimer::new())
        // Headers that drip in on a kept-alive connection; the first
        // request's are cut (and counted) by the handshake deadline first.
        .header_read_timeout(c.handshake_timeout + Duration::from_secs(1))
        .max_buf_size((h2.max_header_list_bytes as usize).max(8192));
    b.http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(h2.max_concurrent_streams)
        .max_header_list_size(h2.max_header_list_bytes)
        .initial_stream_window_size(h2.stream_window_bytes)
        .initial_connection_window_size(h2.connection_window_bytes)
        .max_pending_accept_reset_streams(h2.max_pending_accept_reset_streams)
        .max_local_error_reset_streams(h2.max_local_error_reset_streams)
        .keep_alive_interval(h2.keepalive_interval)
        .keep_alive_timeout(h2.keepalive_timeout)
        .max_send_buf_size(256 * 1024);
    b
}

struct Connection {
    builder: Arc<auto::Builder<TokioExecutor>>,
    listener: Arc<Listener>,
    activity: Arc<Activity>,
    shutdown: watch::Receiver<bool>,
    _done: mpsc::Sender<()>,
}

impl Connection {
    async fn run<S, B>(mut self, conn: Conn, service: Tracked<S>)
    where
        S: hyper::service::Service<Request<Incoming>, Response = Response<B>, Error = Infallible>
            + Clone
            + Send
            + 'static,
        S::Future: Send + 'static,
        B: http_body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let accepted = conn.accepted;
        let c = self.listener.connections.clone();
        let served = self
            .builder
            .serve_connection(TokioIo::new(conn), service)
            .into_owned();
        tokio::pin!(served);
        // When closing: the moment it must be done by.
        let mut closing: Option<tokio::time::Instant> = None;
        let far = || tokio::time::Instant::now() + Duration::from_secs(3600);
        loop {
            let deadline = match closing {
                Some(at) => at,
                None if !self.activity.ever.load(Ordering::SeqCst) => {
                    tokio::time::Instant::from_std(accepted + c.handshake_timeout)
                }
                None if self.activity.active.load(Ordering::SeqCst) == 0 => {
                    let since = *self
                        .activity
                        .idle_since
                        .lock()
                        .unwrap_or_else(|e| e.into_inner());
                    tokio::time::Instant::from_std(since + c.idle_timeout)
                }
                None => far(),
            };
            tokio::select! {
                _ = served.as_mut() => return,
                _ = self.activity.changed.notified() => {}
                _ = self.shutdown.wait_for(|s| *s), if closing.is_none() => {
                    served.as_mut().graceful_shutdown();
                    closing = Some(far());
                }
                _ = tokio::time::sleep_until(deadline) => {
                    if closing.is_some() {
                        return;
                    }
                    if !self.activity.ever.load(Ordering::SeqCst) {
                        // No request in time: nothing to be graceful about.
                        self.listener.closed("handshake_timeout");
                        return;
                    }
                    if self.activity.active.load(Ordering::SeqCst) == 0 {
                        self.listener.closed("idle_timeout");
                        served.as_mut().graceful_shutdown();
                        closing = Some(tokio::time::Instant::now() + CLOSE_GRACE);
                    }
                }
            }
        }
    }
}
