//! Accepted connections: plaintext or TLS, each carrying what a door learns
//! about it ([`ConnInfo`]: the peer address, the identity of a verified
//! client certificate, a process-unique id). The accept loop refuses a
//! connection over the listener's limits (`server.connections.max_total`,
//! `max_per_address`) at once, closing it and counting it; TLS handshakes run
//! in tasks of their own within `server.connections.handshake_timeout`, so a
//! slow client cannot stall the accept loop. Each connection's incoming bytes
//! pass an HTTP/2 frame guard (`guard.rs`) that closes it on a reset or
//! control-frame flood.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::Connected;

use super::gather::Gather;
use super::guard::FrameGuard;
use super::tls::{identity_of, ReloadingConfig, TlsError, TlsPolicy};
use crate::registry::model::{ConnectionsSpec, Http2Spec, TlsSpec};
use crate::telemetry::{ConnectionLabels, ListenerLabels, Metrics};

/// A listener's connection settings and counters, shared by its accept loop,
/// its connections and the server that serves them.
pub struct Listener {
    /// The metrics label: `grpc`, `health`, `admin`, `http`.
    pub name: &'static str,
    pub connections: ConnectionsSpec,
    pub http2: Http2Spec,
    /// Whether the listener speaks HTTP/2 (its connections get a frame guard).
    pub speaks_http2: bool,
    pub metrics: Arc<Metrics>,
    open: AtomicUsize,
    per_address: Mutex<HashMap<IpAddr, usize>>,
}

impl Listener {
    pub fn new(
        name: &'static str,
        connections: ConnectionsSpec,
        http2: Http2Spec,
        speaks_http2: bool,
        metrics: Arc<Metrics>,
    ) -> Arc<Self> {
        Arc::new(Listener {
            name,
            connections,
            http2,
            speaks_http2,
            metrics,
            open: AtomicUsize::new(0),
            per_address: Mutex::new(HashMap::new()),
        })
    }

    /// Counts a connection closed by the server, and why (a stable label).
    pub fn closed(&self, reason: &'static str) {
        self.metrics
            .connections_closed
            .get_or_create(&ConnectionLabels {
                listener: self.name.to_owned(),
                reason: reason.to_owned(),
            })
            .inc();
    }

    fn refused(&self, reason: &'static str) {
        self.metrics
            .connections_refused
            .get_or_create(&ConnectionLabels {
                listener: self.name.to_owned(),
                reason: reason.to_owned(),
            })
            .inc();
    }

    fn gauge(&self) -> prometheus_client::metrics::gauge::Gauge {
        self.metrics
            .connections_open
            .get_or_create(&ListenerLabels {
                listener: self.name.to_owned(),
            })
            .clone()
    }

    /// A place for a connection from `ip`, or the limit it is over.
    fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Permit, &'static str> {
        let mut per = self.per_address.lock().unwrap_or_else(|e| e.into_inner());
        if self.open.load(Ordering::Relaxed) >= self.connections.max_total {
            return Err("max_total");
        }
        let n = per.entry(ip).or_insert(0);
        if *n >= self.connections.max_per_address {
            if *n == 0 {
                per.remove(&ip);
            }
            return Err("max_per_address");
        }
        *n += 1;
        self.open.fetch_add(1, Ordering::Relaxed);
        self.gauge().inc();
        Ok(Permit {
            listener: self.clone(),
            ip,
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }
}

/// A connection's place under its listener's limits, given back on drop.
struct Permit {
    listener: Arc<Listener>,
    ip: IpAddr,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut per = self
            .listener
            .per_address
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(n) = per.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                per.remove(&self.ip);
            }
        }
        self.listener.open.fetch_sub(1, Ordering::Relaxed);
        self.listener.gauge().dec();
    }
}

static NEXT_CONNECTION: AtomicU64 = AtomicU64::new(1);

/// What the service learns about a connection.
#[derive(Debug, Clone, Default)]
pub struct ConnInfo {
    pub remote: Option<SocketAddr>,
    /// Identity from a verified client certificate (mTLS only).
    pub identity: Option<String>,
    /// The connection is TLS.
    pub tls: bool,
    /// Unique in the process (0 for none).
    pub id: u64,
}

/// A plaintext or TLS connection carrying its [`ConnInfo`].
pub struct Conn {
    /// None once dropped: the socket is then closing in the background.
    stream: Option<Stream>,
    info: ConnInfo,
    /// When it was accepted (the handshake deadline runs from here).
    pub(super) accepted: Instant,
    guard: FrameGuard,
    listener: Option<Arc<Listener>>,
    _permit: Option<Permit>,
}

enum Stream {
    /// Writes gathered until h2 flushes: one `write` per small response.
    Plain(Gather<TcpStream>),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Conn {
    fn new(stream: Stream, info: ConnInfo) -> Self {
        Conn {
            stream: Some(stream),
            info,
            accepted: Instant::now(),
            guard: FrameGuard::off(),
            listener: None,
            _permit: None,
        }
    }

    fn plain(stream: TcpStream, info: ConnInfo) -> Self {
        Conn::new(Stream::Plain(Gather::new(stream)), info)
    }

    fn tls(stream: TlsStream<TcpStream>, info: ConnInfo) -> Self {
        Conn::new(Stream::Tls(Box::new(stream)), info)
    }

    /// Puts the connection under its listener: its permit, its frame guard.
    fn under(mut self, listener: &Arc<Listener>, permit: Permit, accepted: Instant) -> Self {
        if listener.speaks_http2 {
            self.guard = FrameGuard::new(
                listener.http2.max_resets_per_second,
                listener.http2.max_control_frames_per_second,
            );
        }
        self.accepted = accepted;
        self.listener = Some(listener.clone());
        self._permit = Some(permit);
        self
    }

    /// What the door learns about this connection.
    pub fn info(&self) -> &ConnInfo {
        &self.info
    }

    fn closed() -> io::Error {
        io::ErrorKind::NotConnected.into()
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        let (tcp, unsent) = match self.stream.take() {
            Some(Stream::Plain(s)) => s.into_parts(),
            Some(Stream::Tls(s)) => (s.into_inner().0, Vec::new()),
            None => return,
        };
        linger(tcp, unsent);
    }
}

/// Closes a connection the way nginx's lingering close does: FIN first, then
/// read and discard what the peer still sends (window updates, pings) for a
/// moment. Closing a socket with unread bytes makes the kernel answer with
/// RST, and a client that receives RST drops response bytes it has not read
/// yet: seen as "connection reset" on large responses finished during a
/// graceful shutdown. Bytes gathered but not sent yet go out first.
fn linger(mut tcp: TcpStream, unsent: Vec<u8>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    runtime.spawn(async move {
        if !unsent.is_empty() {
            let _ = tokio::time::timeout(Duration::from_secs(2), tcp.write_all(&unsent)).await;
        }
        let _ = tcp.shutdown().await;
        let mut sink = [0u8; 4096];
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            while let Ok(n) = tcp.read(&mut sink).await {
                if n == 0 {
                    break;
                }
            }
        })
        .await;
    });
}

impl Connected for Conn {
    type ConnectInfo = ConnInfo;

    fn connect_info(&self) -> ConnInfo {
        self.info.clone()
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = match &mut this.stream {
            Some(Stream::Plain(s)) => Pin::new(s).poll_read(cx, buf),
            Some(Stream::Tls(s)) => Pin::new(s.as_mut()).poll_read(cx, buf),
            None => Poll::Ready(Err(Conn::closed())),
        };
        if let Poll::Ready(Ok(())) = polled {
            if let Some(flood) = this.guard.feed(&buf.filled()[before..]) {
                if let Some(l) = &this.listener {
                    l.closed(flood.as_str());
                }
                tracing::debug!(peer = ?this.info.remote, reason = flood.as_str(), "connection closed: HTTP/2 frame flood");
                // Close it: h2 sees the connection fail and drops every stream.
                this.stream = None;
                this.guard = FrameGuard::off();
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::ConnectionAborted,
                    flood.as_str(),
                )));
            }
        }
        polled
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().stream {
            Some(Stream::Plain(s)) => Pin::new(s).poll_write(cx, buf),
            Some(Stream::Tls(s)) => Pin::new(s.as_mut()).poll_write(cx, buf),
            None => Poll::Ready(Err(Conn::closed())),
        }
    }

    /// Forwarded, with `is_write_vectored`: wrappers that don't forward them
    /// lose them silently (plaintext connections gather writes instead; see
    /// [`Gather`]).
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().stream {
            Some(Stream::Plain(s)) => Pin::new(s).poll_write_vectored(cx, bufs),
            Some(Stream::Tls(s)) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
            None => Poll::Ready(Err(Conn::closed())),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match &self.stream {
            Some(Stream::Plain(s)) => s.is_write_vectored(),
            Some(Stream::Tls(s)) => s.is_write_vectored(),
            None => false,
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().stream {
            Some(Stream::Plain(s)) => Pin::new(s).poll_flush(cx),
            Some(Stream::Tls(s)) => Pin::new(s.as_mut()).poll_flush(cx),
            None => Poll::Ready(Err(Conn::closed())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().stream {
            Some(Stream::Plain(s)) => Pin::new(s).poll_shutdown(cx),
            Some(Stream::Tls(s)) => Pin::new(s.as_mut()).poll_shutdown(cx),
            None => Poll::Ready(Ok(())),
        }
    }
}

/// Accepts TCP connections and yields plaintext or TLS [`Conn`]s, within the
/// listener's connection limits. TLS handshakes run in their own tasks within
/// the handshake deadline, so a slow client cannot stall the accept loop.
pub fn incoming(
    listener: TcpListener,
    tls: Option<(TlsSpec, TlsPolicy)>,
    reload_interval: Duration,
    mut shutdown: watch::Receiver<bool>,
    limits: Arc<Listener>,
) -> Result<ReceiverStream<io::Result<Conn>>, TlsError> {
    let config = match tls {
        Some((spec, policy)) => Some(ReloadingConfig::start(
            spec,
            policy,
            reload_interval,
            shutdown.clone(),
        )?),
        None => None,
    };
    let (tx, rx) = mpsc::channel(128);
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                _ = shutdown.changed() => break,
                a = listener.accept() => a,
            };
            let (stream, remote) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let at = Instant::now();
            let permit = match limits.admit(remote.ip()) {
                Ok(p) => p,
                Err(reason) => {
                    limits.refused(reason);
                    tracing::debug!(peer = %remote, limit = reason, "connection refused: over the listener's limit");
                    // Closed at once: dropping the socket.
                    drop(stream);
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let id = NEXT_CONNECTION.fetch_add(1, Ordering::Relaxed);
            match &config {
                None => {
                    let info = ConnInfo {
                        remote: Some(remote),
                        identity: None,
                        tls: false,
                        id,
                    };
                    let conn = Conn::plain(stream, info).under(&limits, permit, at);
                    if tx.send(Ok(conn)).await.is_err() {
                        break;
                    }
                }
                Some(config) => {
                    let acceptor = tokio_rustls::TlsAcceptor::from(config.current());
                    let tx = tx.clone();
                    let limits = limits.clone();
                    let deadline = limits.connections.handshake_timeout;
                    tokio::spawn(async move {
                        match tokio::time::timeout(deadline, acceptor.accept(stream)).await {
                            Ok(Ok(tls)) => {
                                let identity = tls
                                    .get_ref()
                                    .1
                                    .peer_certificates()
                                    .and_then(|c| c.first())
                                    .and_then(identity_of);
                                let info = ConnInfo {
                                    remote: Some(remote),
                                    identity,
                                    tls: true,
                                    id,
                                };
                                let conn = Conn::tls(tls, info).under(&limits, permit, at);
                                let _ = tx.send(Ok(conn)).await;
                            }
                            Ok(Err(e)) => {
                                limits.closed("tls_failed");
                                tracing::info!(target: crate::telemetry::AUDIT_TARGET, event = "security", kind = "tls_handshake_failed", peer = %remote, error = %e, "TLS handshake refused");
                            }
                            Err(_) => {
                                limits.closed("handshake_timeout");
                                tracing::debug!(peer = %remote, "TLS handshake timed out");
                            }
                        }
                    });
                }
            }
        }
    });
    Ok(ReceiverStream::new(rx))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Plaintext connections gather h2's writes until it flushes (one write
    /// per small response, BENCHMARKS.md), and a dropped connection still
    /// sends what was gathered before it closes.
    #[tokio::test]
    async fn plaintext_connections_gather_writes_until_flush_or_drop() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = tokio::spawn(async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            let mut got = Vec::new();
            s.read_to_end(&mut got).await.unwrap();
            got
        });
        let (stream, _) = listener.accept().await.unwrap();
        let mut conn = Conn::plain(stream, ConnInfo::default());
        assert!(!conn.is_write_vectored(), "h2 would chain small payloads");

        conn.write_all(b"frame header ").await.unwrap();
        conn.flush().await.unwrap();
        conn.write_all(b"and payload").await.unwrap();
        // No flush: dropping the connection sends it on the way out.
        drop(conn);
        assert_eq!(client.await.unwrap(), b"frame header and payload");
    }
}
