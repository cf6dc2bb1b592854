//! [`TimedSocket`]: a socket whose first byte must arrive before a deadline, and
//! whose writes may not stall for longer than the write timeout.
//!
//! Until a first byte has been read, a read that has to wait also waits on the
//! deadline; once it passes, the read fails with `TimedOut` and hyper ends the
//! connection. After the first byte reads pass through. (Waiting for the first byte
//! before handing the socket to hyper, with `peek`, costs an extra wake-up per
//! connection: under load it tripled the time 10,000 SSE clients took to connect.)
//!
//! A write that cannot proceed (the client reads nothing, so its receive window and
//! our send buffer are full) starts the write timer; any byte written stops it. When
//! it fires, the write fails with `TimedOut`: hyper ends the connection and drops its
//! response bodies (an SSE stream's generation runs on and stores its answer). So a
//! response held for a client that does not read costs at most the write timeout.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// `S`, whose first byte must be read within a deadline and whose writes may not
/// stall for longer than `write_timeout`.
#[derive(Debug)]
pub(crate) struct TimedSocket<S> {
    inner: S,
    /// `None` once the first byte has arrived.
    deadline: Option<Instant>,
    /// Created on the first read that has to wait.
    sleep: Option<Pin<Box<Sleep>>>,
    write_timeout: Duration,
    /// Running while a write waits for room; `None` while writes proceed.
    write_stall: Option<Pin<Box<Sleep>>>,
}

impl<S> TimedSocket<S> {
    /// `inner`, whose first byte must arrive within `first_byte` from now, and whose
    /// writes may wait for room at most `write_timeout` at a time.
    pub(crate) fn new(inner: S, first_byte: Duration, write_timeout: Duration) -> Self {
        Self {
            inner,
            deadline: Some(Instant::now() + first_byte),
            sleep: None,
            write_timeout,
            write_stall: None,
        }
    }

    /// After a write's outcome: a write that waits starts (or checks) the stall
    /// timer, one that made progress stops it.
    fn stall(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<usize>>,
    ) -> Poll<io::Result<usize>> {
        match polled {
            Poll::Pending => {
                let timeout = self.write_timeout;
                let stall = self
                    .write_stall
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                if stall.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the client read nothing for the write timeout",
                    )));
                }
                Poll::Pending
            }
            ready => {
                self.write_stall = None;
                ready
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for TimedSocket<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        let Some(deadline) = this.deadline else {
            return polled;
        };
        match polled {
            Poll::Ready(Ok(())) if buf.filled().len() > before => {
                this.deadline = None;
                this.sleep = None;
            }
            Poll::Pending => {
                let sleep = this
                    .sleep
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                if sleep.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "no byte arrived before the first-byte timeout",
                    )));
                }
            }
            // The end of the stream or an error: the reader deals with it.
            Poll::Ready(_) => {}
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for TimedSocket<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.stall(cx, polled)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.stall(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
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
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test(start_paused = true)]
    async fn a_silent_peer_times_out_at_the_deadline() {
        let (_peer, ours) = tokio::io::duplex(64);
        let mut stream = TimedSocket::new(ours, Duration::from_secs(10), Duration::from_secs(30));
        let started = Instant::now();
        let e = stream.read(&mut [0_u8; 8]).await.expect_err("times out");
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn after_the_first_byte_reads_may_wait_as_long_as_they_like() {
        let (mut peer, ours) = tokio::io::duplex(64);
        let mut stream = TimedSocket::new(ours, Duration::from_secs(10), Duration::from_secs(30));
        peer.write_all(b"G").await.expect("write");
        let mut buf = [0_u8; 8];
        assert_eq!(stream.read(&mut buf).await.expect("read"), 1);
        let later = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(60)).await;
            peer.write_all(b"ET").await.expect("write");
            peer
        });
        assert_eq!(stream.read(&mut buf).await.expect("no deadline now"), 2);
        stream.write_all(b"ok").await.expect("writes pass through");
        let mut peer = later.await.expect("peer");
        let mut echoed = [0_u8; 2];
        peer.read_exact(&mut echoed).await.expect("read back");
        assert_eq!(&echoed, b"ok");
    }

    #[tokio::test(start_paused = true)]
    async fn a_write_the_peer_never_reads_fails_after_the_write_timeout() {
        let (mut peer, ours) = tokio::io::duplex(16);
        let mut stream = TimedSocket::new(ours, Duration::from_secs(10), Duration::from_secs(5));
        // The first 16 bytes fit; the peer then reads 4, which is progress.
        stream.write_all(&[b'x'; 16]).await.expect("fits");
        let reader = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(3)).await;
            let mut four = [0_u8; 4];
            peer.read_exact(&mut four).await.expect("read");
            peer // kept open, never read again
        });
        let started = Instant::now();
        let e = stream
            .write_all(&[b'y'; 64])
            .await
            .expect_err("the peer stopped reading");
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        // 3 s until the peer's read made room, then 5 s without progress.
        assert_eq!(started.elapsed(), Duration::from_secs(8));
        drop(reader.await.expect("peer"));
    }
}
