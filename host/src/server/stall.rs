//! A connection whose writes may not stall: a client that stops reading (its socket buffer full)
//! fails the connection after a while, instead of holding its request's slot and guest until the
//! request's deadline.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// A stream whose `poll_write` fails with `TimedOut` after `limit` without progress.
pub struct StallGuard<S> {
    inner: S,
    limit: Duration,
    stalled: Option<Pin<Box<Sleep>>>,
}

impl<S> StallGuard<S> {
    /// Wrap `inner`.
    pub fn new(inner: S, limit: Duration) -> Self {
        Self { inner, limit, stalled: None }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for StallGuard<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for StallGuard<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write(cx, buf) {
            Poll::Pending => {
                let limit = this.limit;
                let timer = this.stalled.get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("the client read nothing for {} s", limit.as_secs_f64()),
                    ))),
                    Poll::Pending => Poll::Pending,
                }
            }
            ready => {
                this.stalled = None;
                ready
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn a_peer_that_never_reads_fails_the_writer_after_the_limit() {
        let (a, _b) = tokio::io::duplex(1024);
        let mut w = StallGuard::new(a, Duration::from_millis(100));
        let t = std::time::Instant::now();
        let err = loop {
            if let Err(e) = w.write_all(&[0u8; 4096]).await {
                break e;
            }
        };
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(t.elapsed() >= Duration::from_millis(100));
    }

    #[tokio::test]
    async fn a_reading_peer_is_never_timed_out() {
        let (a, mut b) = tokio::io::duplex(64);
        let mut w = StallGuard::new(a, Duration::from_millis(50));
        let reader = tokio::spawn(async move {
            let mut sink = Vec::new();
            tokio::io::AsyncReadExt::read_to_end(&mut b, &mut sink).await.map(|_| sink.len())
        });
        for _ in 0..20 {
            w.write_all(&[1u8; 256]).await.unwrap();
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        drop(w);
        assert_eq!(reader.await.unwrap().unwrap(), 20 * 256);
    }
}
