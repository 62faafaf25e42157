//! Gathers a plaintext connection's writes until h2 flushes, so that a small
//! response leaves in one system call.
//!
//! h2 buffers frames and flushes when it has nothing more to send, or earlier
//! when a DATA frame's payload is sent by reference rather than copied into its
//! buffer ("chained": above 256 bytes on a connection that takes vectored
//! writes, above 1 KiB on one that does not). Each flush was one `writev`, and
//! on loopback each write also runs the peer's receive path and wake-up on the
//! server's CPU. With vectored writes a fan-out-1 response was chained and left
//! in two writes: headers and DATA, then the trailers.
//!
//! This writer says it does not take vectored writes, so h2 copies payloads up
//! to 1 KiB and chains only larger ones; and it gathers everything h2 writes
//! until h2 flushes, so the most common response (one consumer) leaves in one
//! write (counts per fan-out: BENCHMARKS.md, "Writes on server connections").

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Past this many gathered bytes a write first sends what is gathered; a
/// single write this large goes straight through.
const GATHER_LIMIT: usize = 64 * 1024;
/// A buffer grown past this by a large response is freed once sent, so idle
/// connections do not each hold a large allocation.
const KEEP_CAPACITY: usize = 16 * 1024;

/// A writer that gathers writes until flush or shutdown.
#[derive(Debug)]
pub struct Gather<T> {
    inner: T,
    buf: Vec<u8>,
    /// Bytes of `buf` already handed to `inner`.
    sent: usize,
}

impl<T> Gather<T> {
    pub fn new(inner: T) -> Self {
        Gather {
            inner,
            buf: Vec::new(),
            sent: 0,
        }
    }

    /// The inner writer and the gathered bytes not sent yet.
    pub fn into_parts(mut self) -> (T, Vec<u8>) {
        let unsent = self.buf.split_off(self.sent);
        (self.inner, unsent)
    }
}

impl<T: AsyncWrite + Unpin> Gather<T> {
    /// Sends everything gathered.
    fn poll_send(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.sent < self.buf.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.buf[self.sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.sent += n;
        }
        self.sent = 0;
        if self.buf.capacity() > KEEP_CAPACITY {
            self.buf = Vec::new();
        } else {
            self.buf.clear();
        }
        Poll::Ready(Ok(()))
    }
}

/// Reads pass straight through.
impl<T: AsyncRead + Unpin> AsyncRead for Gather<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Gather<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_vectored(cx, &[io::IoSlice::new(data)])
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        if this.buf.len() + total > GATHER_LIMIT {
            ready!(this.poll_send(cx))?;
            if total >= GATHER_LIMIT {
                return Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
            }
        }
        for b in bufs {
            this.buf.extend_from_slice(b);
        }
        Poll::Ready(Ok(total))
    }

    /// False on purpose: h2 then copies payloads up to 1 KiB instead of 256
    /// bytes, so a small response is not split at a chained frame (see the
    /// module doc). Larger payloads are still gathered, not sent apart.
    fn is_write_vectored(&self) -> bool {
        false
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_send(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_send(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    async fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = TcpStream::connect(addr).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (server, client)
    }

    async fn read_exactly(s: &mut TcpStream, n: usize) -> Vec<u8> {
        let mut got = vec![0u8; n];
        s.read_exact(&mut got).await.unwrap();
        got
    }

    /// Small writes stay gathered until the flush, then arrive together and in order.
    #[tokio::test]
    async fn small_writes_leave_together_at_the_flush() {
        let (server, mut client) = pair().await;
        let mut w = Gather::new(server);
        assert!(!w.is_write_vectored());
        w.write_all(b"headers ").await.unwrap();
        let parts = [&b"data "[..], &b"more "[..]];
        let n = w
            .write_vectored(&parts.map(io::IoSlice::new))
            .await
            .unwrap();
        assert_eq!(n, 10);
        w.write_all(b"trailers").await.unwrap();

        let mut byte = [0u8; 1];
        let early = tokio::time::timeout(Duration::from_millis(100), client.read(&mut byte)).await;
        assert!(early.is_err(), "bytes left before the flush");

        w.flush().await.unwrap();
        assert_eq!(
            read_exactly(&mut client, 26).await,
            b"headers data more trailers"
        );
    }

    /// A write past the limit first sends what is gathered, so order holds;
    /// shutdown sends the rest.
    #[tokio::test]
    async fn large_writes_keep_the_order_and_shutdown_sends_the_rest() {
        let (server, mut client) = pair().await;
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            client.read_to_end(&mut got).await.unwrap();
            got
        });
        let mut w = Gather::new(server);
        let big = vec![7u8; GATHER_LIMIT + 10];
        w.write_all(b"head").await.unwrap();
        w.write_all(&big).await.unwrap();
        w.write_all(b"tail").await.unwrap();
        w.shutdown().await.unwrap();
        drop(w);
        let got = reader.await.unwrap();
        assert_eq!(got.len(), 4 + big.len() + 4);
        assert_eq!(&got[..4], b"head");
        assert!(got[4..4 + big.len()].iter().all(|&b| b == 7));
        assert_eq!(&got[4 + big.len()..], b"tail");
    }

    #[tokio::test]
    async fn into_parts_returns_what_was_not_sent() {
        let (server, _client) = pair().await;
        let mut w = Gather::new(server);
        w.write_all(b"pending").await.unwrap();
        let (_tcp, unsent) = w.into_parts();
        assert_eq!(unsent, b"pending");
    }
}
