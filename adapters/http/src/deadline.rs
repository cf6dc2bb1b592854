//! [`DeadlineBody`]: a request body that must arrive in full before a deadline, and
//! at a minimum rate.
//!
//! [`serve`](crate::serve) wraps every incoming body in one. Reading fails with
//! [`BodyTimeout`], which the body reader answers with 408 `request_timeout`, when
//! - the whole body has not arrived `timeout` after the request head, or
//! - after a grace period, fewer bytes have arrived than the minimum rate asks for
//!   (`grace + received / rate` has passed): a client dripping a large body a byte at
//!   a time is answered as soon as it falls behind, not after the whole timeout.
//!
//! The timer exists only while a read is waiting: a body that is never read, or that
//! is already there, costs no timer.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::{Body, Buf, Frame, SizeHint};
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

/// The minimum rate a body must keep up after a grace period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MinRate {
    /// Bytes per second; 0 turns the rate check off.
    pub(crate) bytes_per_second: u64,
    /// How long from the request head before the rate is checked.
    pub(crate) grace: Duration,
}

/// `B`, failing with [`BodyTimeout`] once `timeout` has passed since it was wrapped,
/// or once it falls behind its [`MinRate`].
#[derive(Debug)]
pub(crate) struct DeadlineBody<B> {
    inner: B,
    timeout: Duration,
    started: Instant,
    /// `started + timeout`.
    deadline: Instant,
    rate: MinRate,
    /// Body bytes received so far.
    received: u64,
    /// Created on the first read that has to wait; reset as bytes arrive.
    sleep: Option<Pin<Box<Sleep>>>,
}

impl<B> DeadlineBody<B> {
    /// `inner`, to be read in full within `timeout` from now, at `rate` at least.
    pub(crate) fn new(inner: B, timeout: Duration, rate: MinRate) -> Self {
        let started = Instant::now();
        Self {
            inner,
            timeout,
            started,
            deadline: started + timeout,
            rate,
            received: 0,
            sleep: None,
        }
    }

    /// When the body fails if no further byte arrives: the overall deadline, or the
    /// moment the bytes received so far stop meeting the minimum rate.
    fn due(&self) -> Instant {
        if self.rate.bytes_per_second == 0 {
            return self.deadline;
        }
        let earned =
            Duration::from_secs_f64(self.received as f64 / self.rate.bytes_per_second as f64);
        self.deadline
            .min(self.started + self.rate.grace.saturating_add(earned))
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
            if let Some(Ok(data)) = frame.as_ref().map(|f| f.as_ref().map(Frame::data_ref)) {
                let len = data.map_or(0, Buf::remaining);
                this.received = this
                    .received
                    .saturating_add(u64::try_from(len).unwrap_or(u64::MAX));
                // Bytes arrived: the rate's deadline moves on.
                let due = this.due();
                if let Some(sleep) = this.sleep.as_mut() {
                    sleep.as_mut().reset(due);
                }
            }
            return Poll::Ready(frame.map(|f| f.map_err(DeadlineError::Body)));
        }
        let due = this.due();
        let sleep = this
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(due)));
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
    use futures::StreamExt;
    use http_body_util::{BodyExt, Full, StreamBody};
    use std::convert::Infallible;

    const NO_RATE: MinRate = MinRate {
        bytes_per_second: 0,
        grace: Duration::ZERO,
    };

    #[tokio::test(start_paused = true)]
    async fn a_body_that_stalls_fails_at_the_deadline() {
        let stalled =
            StreamBody::new(futures::stream::pending::<Result<Frame<Bytes>, Infallible>>());
        let started = Instant::now();
        let e = DeadlineBody::new(stalled, Duration::from_secs(3), NO_RATE)
            .collect()
            .await
            .expect_err("never arrives");
        assert!(matches!(e, DeadlineError::Timeout(BodyTimeout(_))), "{e}");
        assert_eq!(started.elapsed(), Duration::from_secs(3));
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_already_there_needs_no_timer() {
        let body = DeadlineBody::new(
            Full::new(Bytes::from_static(b"{}")),
            Duration::ZERO,
            NO_RATE,
        );
        let bytes = body.collect().await.expect("read").to_bytes();
        assert_eq!(&bytes[..], b"{}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_drips_fails_once_it_falls_behind_the_rate() {
        // One byte a second; the rate asks for 10 a second after a 2 s grace.
        let drip = StreamBody::new(Box::pin(futures::stream::unfold((), |()| async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            Some((
                Ok::<_, Infallible>(Frame::data(Bytes::from_static(b"x"))),
                (),
            ))
        })));
        let rate = MinRate {
            bytes_per_second: 10,
            grace: Duration::from_secs(2),
        };
        let started = Instant::now();
        let e = DeadlineBody::new(drip, Duration::from_secs(30), rate)
            .collect()
            .await
            .expect_err("too slow");
        assert!(matches!(e, DeadlineError::Timeout(BodyTimeout(_))), "{e}");
        // Two bytes by 2 s earn 0.2 s past the grace; the third would come at 3 s.
        assert_eq!(started.elapsed(), Duration::from_millis(2200));
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_at_the_rate_is_read_in_full() {
        let chunks =
            (0..5).map(|_| Ok::<_, Infallible>(Frame::data(Bytes::from_static(b"0123456789"))));
        let steady = StreamBody::new(Box::pin(futures::stream::iter(chunks).then(|c| async {
            tokio::time::sleep(Duration::from_millis(900)).await;
            c
        })));
        let rate = MinRate {
            bytes_per_second: 10,
            grace: Duration::from_secs(1),
        };
        let bytes = DeadlineBody::new(steady, Duration::from_secs(30), rate)
            .collect()
            .await
            .expect("keeps up")
            .to_bytes();
        assert_eq!(bytes.len(), 50);
    }
}
