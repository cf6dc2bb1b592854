//! [`DeadlineBody`]: a request body that must arrive in full before a deadline.
//!
//! [`serve`](crate::serve) wraps every incoming body in one; when the deadline passes
//! before the last byte, reading fails with [`BodyTimeout`], which the body reader
//! answers with 408 `request_timeout`. The timer exists only while a read is waiting:
//! a body that is never read, or that is already there, costs no timer.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

/// The request body did not arrive in full before its deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the request body did not arrive within {0:?}")]
pub(crate) struct BodyTimeout(pub(crate) Duration);

/// Why reading a [`DeadlineBody`] failed: the deadline, or the inner body's error.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DeadlineError<E> {
    /// The deadline passed (the [`BodyTimeout`] is the `source`, so a reader that
    /// only sees a boxed error finds it in the chain).
    #[error("request body timeout")]
    Timeout(#[from] BodyTimeout),
    /// The inner body failed (the connection broke, bad chunked encoding, ...).
    #[error(transparent)]
    Body(E),
}

/// `B`, failing with [`BodyTimeout`] once `timeout` has passed since it was wrapped.
#[derive(Debug)]
pub(crate) struct DeadlineBody<B> {
    inner: B,
    timeout: Duration,
    deadline: Instant,
    /// Created on the first read that has to wait.
    sleep: Option<Pin<Box<Sleep>>>,
}

impl<B> DeadlineBody<B> {
    /// `inner`, to be read in full within `timeout` from now.
    pub(crate) fn new(inner: B, timeout: Duration) -> Self {
        Self {
            inner,
            timeout,
            deadline: Instant::now() + timeout,
            sleep: None,
        }
    }
}

impl<B> Body for DeadlineBody<B>
where
    B: Body + Unpin,
{
    type Data = B::Data;
    type Error = DeadlineError<B::Error>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(DeadlineError::Body)));
        }
        let deadline = this.deadline;
        let sleep = this
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(BodyTimeout(this.timeout).into()))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http_body_util::{BodyExt, Full, StreamBody};
    use std::convert::Infallible;

    #[tokio::test(start_paused = true)]
    async fn a_body_that_stalls_fails_at_the_deadline() {
        let stalled =
            StreamBody::new(futures::stream::pending::<Result<Frame<Bytes>, Infallible>>());
        let started = Instant::now();
        let e = DeadlineBody::new(stalled, Duration::from_secs(3))
            .collect()
            .await
            .expect_err("never arrives");
        assert!(matches!(e, DeadlineError::Timeout(BodyTimeout(_))), "{e}");
        assert_eq!(started.elapsed(), Duration::from_secs(3));
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_already_there_needs_no_timer() {
        let body = DeadlineBody::new(Full::new(Bytes::from_static(b"{}")), Duration::ZERO);
        let bytes = body.collect().await.expect("read").to_bytes();
        assert_eq!(&bytes[..], b"{}");
    }
}
