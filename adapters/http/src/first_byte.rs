//! [`FirstByteDeadline`]: a socket whose first byte must arrive before a deadline.
//!
//! Until a first byte has been read, a read that has to wait also waits on the
//! deadline; once it passes, the read fails with `TimedOut` and hyper ends the
//! connection. After the first byte the wrapper only passes reads and writes
//! through. (Waiting for the first byte before handing the socket to hyper, with
//! `peek`, costs an extra wake-up per connection: under load it tripled the time
//! 10,000 SSE clients took to connect.)

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// `S`, whose first byte must be read within a deadline.
#[derive(Debug)]
pub(crate) struct FirstByteDeadline<S> {
    inner: S,
    /// `None` once the first byte has arrived.
    deadline: Option<Instant>,
    /// Created on the first read that has to wait.
    sleep: Option<Pin<Box<Sleep>>>,
}

impl<S> FirstByteDeadline<S> {
    /// `inner`, whose first byte must arrive within `timeout` from now.
    pub(crate) fn new(inner: S, timeout: Duration) -> Self {
        Self {
            inner,
            deadline: Some(Instant::now() + timeout),
            sleep: None,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for FirstByteDeadline<S> {
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

impl<S: AsyncWrite + Unpin> AsyncWrite for FirstByteDeadline<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
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
        let mut stream = FirstByteDeadline::new(ours, Duration::from_secs(10));
        let started = Instant::now();
        let e = stream.read(&mut [0_u8; 8]).await.expect_err("times out");
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn after_the_first_byte_reads_may_wait_as_long_as_they_like() {
        let (mut peer, ours) = tokio::io::duplex(64);
        let mut stream = FirstByteDeadline::new(ours, Duration::from_secs(10));
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
}
