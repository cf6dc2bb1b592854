//! Retrying a call to a remote service, written once for every adapter that calls
//! one (the chat model, the embeddings server): exponential backoff with jitter, a
//! server's `Retry-After` honoured up to a cap, and the loop that runs the attempts.
//!
//! What counts as retryable is the adapter's business: an attempt returns a
//! [`Failure`] that says whether another may follow ([`Failure::retry`]) and how long
//! the server asked to wait. The policy ([`RetryPolicy`]) says how often and how
//! long; [`with_retries`] runs them.

use std::fmt;
use std::future::Future;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

/// How often and after how long a failed call is tried again.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included; 1 disables retries. Default 3.
    pub max_attempts: u32,
    /// Delay before the first retry; it doubles for each later one. Default 250 ms.
    pub base_backoff: Duration,
    /// The exponential delay never exceeds this. Default 4 s.
    pub max_backoff: Duration,
    /// Fraction of each delay that is random, in `0.0..=1.0`: the delay is drawn
    /// from `[d * (1 - jitter), d]`. Default 0.5.
    pub jitter: f64,
    /// The longest `Retry-After` honoured. A server asking for a longer wait ends
    /// the retries at once (waiting less than asked would only earn another 429).
    /// Default 30 s.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            base_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(4),
            jitter: 0.5,
            max_retry_after: Duration::from_secs(30),
        }
    }
}

/// A [`RetryPolicy`] setting out of range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid setting {}: {}", self.field(), self.reason())]
pub enum RetryPolicyError {
    /// `max_attempts` is 0.
    NoAttempts,
    /// `jitter` is not within `0.0..=1.0`.
    Jitter,
}

impl RetryPolicyError {
    /// The field at fault, as named in an adapter's settings (whose policy field is
    /// `retry`): `retry.max_attempts` or `retry.jitter`.
    #[must_use]
    pub fn field(self) -> &'static str {
        match self {
            Self::NoAttempts => "retry.max_attempts",
            Self::Jitter => "retry.jitter",
        }
    }

    /// The rule it breaks.
    #[must_use]
    pub fn reason(self) -> &'static str {
        match self {
            Self::NoAttempts => "must be at least 1",
            Self::Jitter => "must be within 0.0..=1.0",
        }
    }
}

impl RetryPolicy {
    /// Checks the settings.
    ///
    /// # Errors
    /// Zero attempts, or a jitter outside `0.0..=1.0`.
    pub fn validate(&self) -> Result<(), RetryPolicyError> {
        if self.max_attempts == 0 {
            return Err(RetryPolicyError::NoAttempts);
        }
        if !(0.0..=1.0).contains(&self.jitter) {
            return Err(RetryPolicyError::Jitter);
        }
        Ok(())
    }

    /// The delay before retry number `retry` (1 for the first retry), given a random
    /// draw `unit` in `[0, 1)`: `base * 2^(retry-1)`, capped at `max_backoff`, of
    /// which the `jitter` fraction is random.
    #[must_use]
    pub fn backoff(&self, retry: u32, unit: f64) -> Duration {
        let doublings = retry.saturating_sub(1).min(30);
        let exponential = self
            .base_backoff
            .saturating_mul(1u32 << doublings)
            .min(self.max_backoff);
        let jitter = self.jitter.clamp(0.0, 1.0);
        exponential.mul_f64(1.0 - jitter * unit.clamp(0.0, 1.0))
    }

    /// The delay before retry number `retry`: the backoff, or the server's
    /// `retry_after` when that is longer; `None` when the server asked for a longer
    /// wait than [`max_retry_after`](Self::max_retry_after).
    #[must_use]
    pub fn delay_before_retry(
        &self,
        retry: u32,
        retry_after: Option<Duration>,
        unit: f64,
    ) -> Option<Duration> {
        let backoff = self.backoff(retry, unit);
        match retry_after {
            Some(asked) if asked > self.max_retry_after => None,
            Some(asked) => Some(asked.max(backoff)),
            None => Some(backoff),
        }
    }
}

/// A random draw in `[0, 1)` for jitter (from the operating system's generator; a
/// failed draw gives 0, the full backoff).
#[must_use]
pub fn jitter_unit() -> f64 {
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_err() {
        return 0.0;
    }
    // 53 random bits: every value is exact in an f64 and below 1.
    (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
}

/// Reads a `Retry-After` header's value: delay seconds, or an HTTP date (a date in
/// the past means no wait). `None` when unreadable.
#[must_use]
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// A failed attempt, and whether another may follow.
#[derive(Debug)]
pub struct Failure<E> {
    /// What went wrong.
    pub error: E,
    /// `None`: do not retry. `Some(wait)`: retry, after at least `wait` if the server
    /// asked for one (`Retry-After`).
    pub retry: Option<Option<Duration>>,
}

impl<E> Failure<E> {
    /// A failure not worth another attempt.
    pub fn fatal(error: E) -> Self {
        Self { error, retry: None }
    }

    /// A failure worth another attempt, after `retry_after` if the server asked.
    pub fn retryable(error: E, retry_after: Option<Duration>) -> Self {
        Self {
            error,
            retry: Some(retry_after),
        }
    }
}

/// Runs `attempt` until it succeeds, fails for good, runs out of attempts, the
/// server asks for a longer wait than the policy honours, or the next wait would
/// end at or after `deadline`; then returns the last error. Before each wait,
/// `on_retry(error, attempt number, wait)` is called (to log it).
///
/// # Errors
/// The error of the last attempt.
pub async fn with_retries<T, E, F, Fut, L>(
    policy: &RetryPolicy,
    deadline: Option<Instant>,
    mut attempt: F,
    mut on_retry: L,
) -> Result<T, E>
where
    E: fmt::Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Failure<E>>>,
    L: FnMut(&E, u32, Duration),
{
    let mut number = 1;
    loop {
        let failure = match attempt().await {
            Ok(value) => return Ok(value),
            Err(failure) => failure,
        };
        let Some(retry_after) = failure.retry else {
            return Err(failure.error);
        };
        if number >= policy.max_attempts {
            return Err(failure.error);
        }
        let Some(wait) = policy.delay_before_retry(number, retry_after, jitter_unit()) else {
            tracing::warn!(error = %failure.error, ?retry_after, "the server asked for a longer wait than the retry policy allows; not retrying");
            return Err(failure.error);
        };
        let resume = Instant::now() + wait;
        if deadline.is_some_and(|d| resume >= d) {
            return Err(failure.error);
        }
        on_retry(&failure.error, number, wait);
        tokio::time::sleep_until(resume).await;
        number += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 5,
            base_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(1000),
            jitter: 0.5,
            max_retry_after: Duration::from_secs(10),
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let p = policy();
        let no_jitter: Vec<u128> = (1..=6).map(|n| p.backoff(n, 0.0).as_millis()).collect();
        assert_eq!(no_jitter, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(p.backoff(u32::MAX, 0.0), Duration::from_millis(1000));
    }

    #[test]
    fn jitter_stays_within_its_fraction() {
        let p = policy();
        assert_eq!(p.backoff(3, 0.999_999).as_millis(), 200);
        for _ in 0..100 {
            let unit = jitter_unit();
            assert!((0.0..1.0).contains(&unit), "{unit}");
            let d = p.backoff(3, unit);
            assert!(
                d > Duration::from_millis(199) && d <= Duration::from_millis(400),
                "{d:?}"
            );
        }
        let full = RetryPolicy { jitter: 1.0, ..p };
        assert!(full.backoff(1, 0.999).as_millis() < 1);
    }

    #[test]
    fn retry_after_is_honoured_within_the_cap() {
        let p = policy();
        let asked = Some(Duration::from_secs(3));
        assert_eq!(p.delay_before_retry(1, asked, 0.0), asked);
        // Never sooner than the backoff.
        let tiny = Some(Duration::from_millis(1));
        assert_eq!(
            p.delay_before_retry(2, tiny, 0.0),
            Some(Duration::from_millis(200))
        );
        assert_eq!(
            p.delay_before_retry(1, Some(Duration::from_secs(11)), 0.0),
            None
        );
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480);
        assert_eq!(parse_retry_after(" 7 ", now), Some(Duration::from_secs(7)));
        // 1445412480 is Wed, 21 Oct 2015 07:28:00 GMT.
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:05 GMT", now),
            Some(Duration::from_secs(5))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:27:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn settings_are_checked() {
        assert_eq!(RetryPolicy::default().validate(), Ok(()));
        let none = RetryPolicy {
            max_attempts: 0,
            ..RetryPolicy::default()
        };
        assert_eq!(none.validate(), Err(RetryPolicyError::NoAttempts));
        assert_eq!(RetryPolicyError::NoAttempts.field(), "retry.max_attempts");
        assert_eq!(
            RetryPolicyError::NoAttempts.to_string(),
            "invalid setting retry.max_attempts: must be at least 1"
        );
        let jitter = RetryPolicy {
            jitter: 1.5,
            ..RetryPolicy::default()
        };
        assert_eq!(jitter.validate(), Err(RetryPolicyError::Jitter));
        assert_eq!(RetryPolicyError::Jitter.field(), "retry.jitter");
    }

    /// Runs `with_retries` over failures given as (retryable, retry-after) pairs, the
    /// call succeeding after them; returns the result, the attempts made and the
    /// waits announced.
    async fn play(
        p: &RetryPolicy,
        deadline: Option<Instant>,
        failures: &[(bool, Option<Duration>)],
    ) -> (Result<u32, String>, u32, Vec<Duration>) {
        let calls = AtomicU32::new(0);
        let mut waits = Vec::new();
        let result = with_retries(
            p,
            deadline,
            || {
                let n = calls.fetch_add(1, Ordering::SeqCst);
                let outcome = match failures.get(n as usize) {
                    None => Ok(n),
                    Some((true, after)) => Err(Failure::retryable(format!("e{n}"), *after)),
                    Some((false, _)) => Err(Failure::fatal(format!("e{n}"))),
                };
                async move { outcome }
            },
            |_, _, wait| waits.push(wait),
        )
        .await;
        (result, calls.load(Ordering::SeqCst), waits)
    }

    #[tokio::test(start_paused = true)]
    async fn the_loop_retries_what_may_be_retried_within_its_bounds() {
        let p = RetryPolicy {
            jitter: 0.0,
            ..policy()
        };
        // Two retryable failures, then success: three attempts, doubling waits.
        let (got, calls, waits) = play(&p, None, &[(true, None), (true, None)]).await;
        assert_eq!((got, calls), (Ok(2), 3));
        assert_eq!(
            waits,
            [Duration::from_millis(100), Duration::from_millis(200)]
        );
        // A fatal failure ends at once.
        let (got, calls, waits) = play(&p, None, &[(false, None)]).await;
        assert_eq!((got, calls), (Err("e0".to_owned()), 1));
        assert!(waits.is_empty());
        // Out of attempts: the last error.
        let five = [(true, None); 5];
        let (got, calls, _) = play(&p, None, &five).await;
        assert_eq!((got, calls), (Err("e4".to_owned()), 5));
        // A server's wait is honoured, and one over the cap ends the retries.
        let (got, _, waits) = play(&p, None, &[(true, Some(Duration::from_secs(2)))]).await;
        assert_eq!((got, waits), (Ok(1), vec![Duration::from_secs(2)]));
        let (got, calls, _) = play(&p, None, &[(true, Some(Duration::from_secs(60)))]).await;
        assert_eq!((got, calls), (Err("e0".to_owned()), 1));
        // A wait that would pass the deadline is not started.
        let deadline = Some(Instant::now() + Duration::from_millis(150));
        let (got, calls, _) = play(&p, deadline, &[(true, None), (true, None)]).await;
        assert_eq!((got, calls), (Err("e1".to_owned()), 2));
    }
}
