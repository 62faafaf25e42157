//! Accepted connections: plaintext or TLS, each carrying what a door learns
//! about it ([`ConnInfo`]: the peer address and the identity of a verified
//! client certificate). TLS handshakes run in tasks of their own with a
//! deadline, so a slow client cannot stall the accept loop.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::Connected;

use super::gather::Gather;
use super::tls::{identity_of, ReloadingConfig, TlsError, TlsPolicy};
use crate::registry::model::TlsSpec;

/// What the service learns about a connection.
#[derive(Debug, Clone, Default)]
pub struct ConnInfo {
    pub remote: Option<SocketAddr>,
    /// Identity from a verified client certificate (mTLS only).
    pub identity: Option<String>,
    /// The connection is TLS.
    pub tls: bool,
}

/// A plaintext or TLS connection carrying its [`ConnInfo`].
pub struct Conn {
    /// None once dropped: the socket is then closing in the background.
    stream: Option<Stream>,
    info: ConnInfo,
}

enum Stream {
    /// Writes gathered until h2 flushes: one `write` per small response.
    Plain(Gather<TcpStream>),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Conn {
    fn plain(stream: TcpStream, info: ConnInfo) -> Self {
        Conn {
            stream: Some(Stream::Plain(Gather::new(stream))),
            info,
        }
    }

    fn tls(stream: TlsStream<TcpStream>, info: ConnInfo) -> Self {
        Conn {
            stream: Some(Stream::Tls(Box::new(stream))),
            info,
        }
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
        match &mut self.get_mut().stream {
            Some(Stream::Plain(s)) => Pin::new(s).poll_read(cx, buf),
            Some(Stream::Tls(s)) => Pin::new(s.as_mut()).poll_read(cx, buf),
            None => Poll::Ready(Err(Conn::closed())),
        }
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

/// Accepts TCP connections and yields plaintext or TLS [`Conn`]s. TLS
/// handshakes run in their own tasks with a timeout, so a slow client cannot
/// stall the accept loop.
pub fn incoming(
    listener: TcpListener,
    tls: Option<(TlsSpec, TlsPolicy)>,
    reload_interval: Duration,
    mut shutdown: watch::Receiver<bool>,
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
            let _ = stream.set_nodelay(true);
            match &config {
                None => {
                    let info = ConnInfo {
                        remote: Some(remote),
                        identity: None,
                        tls: false,
                    };
                    if tx.send(Ok(Conn::plain(stream, info))).await.is_err() {
                        break;
                    }
                }
                Some(config) => {
                    let acceptor = tokio_rustls::TlsAcceptor::from(config.current());
                    let tx = tx.clone();
                    tokio::spawn(async move {
                        match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream))
                            .await
                        {
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
                                };
                                let _ = tx.send(Ok(Conn::tls(tls, info))).await;
                            }
                            Ok(Err(e)) => {
                                tracing::info!(target: crate::telemetry::AUDIT_TARGET, event = "security", kind = "tls_handshake_failed", peer = %remote, error = %e, "TLS handshake refused");
                            }
                            Err(_) => tracing::debug!(peer = %remote, "TLS handshake timed out"),
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
