//! Retry timing: exponential backoff with jitter, and `Retry-After`.

use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, RETRY_AFTER};

use crate::config::RetryPolicy;

/// The delay before retry number `retry` (1 for the first retry), given a random
/// draw `unit` in `[0, 1)`: `base * 2^(retry-1)`, capped at `max_backoff`, of which
/// the `jitter` fraction is random.
pub(crate) fn backoff(policy: &RetryPolicy, retry: u32, unit: f64) -> Duration {
    let doublings = retry.saturating_sub(1).min(30);
    let exponential = policy
        .base_backoff
        .saturating_mul(1u32 << doublings)
        .min(policy.max_backoff);
    let jitter = policy.jitter.clamp(0.0, 1.0);
    exponential.mul_f64(1.0 - jitter * unit.clamp(0.0, 1.0))
}

/// The delay before retry number `retry`, or `None` when the server asked for a
/// longer wait than the policy honours.
pub(crate) fn delay_before_retry(
    policy: &RetryPolicy,
    retry: u32,
    retry_after: Option<Duration>,
    unit: f64,
) -> Option<Duration> {
    let backoff = backoff(policy, retry, unit);
    match retry_after {
        Some(asked) if asked > policy.max_retry_after => None,
        Some(asked) => Some(asked.max(backoff)),
        None => Some(backoff),
    }
}

/// A random draw in `[0, 1)` for jitter.
pub(crate) fn jitter_unit() -> f64 {
    rand::random_range(0.0..1.0)
}

/// Reads `Retry-After`: delay seconds, or an HTTP date (a date in the past means
/// no wait). `None` when absent or unreadable.
pub(crate) fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

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
        let no_jitter: Vec<u128> = (1..=6).map(|n| backoff(&p, n, 0.0).as_millis()).collect();
        assert_eq!(no_jitter, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(backoff(&p, u32::MAX, 0.0), Duration::from_millis(1000));
    }

    #[test]
    fn jitter_stays_within_its_fraction() {
        let p = policy();
        assert_eq!(backoff(&p, 3, 0.999_999).as_millis(), 200);
        for _ in 0..100 {
            let d = backoff(&p, 3, jitter_unit());
            assert!(
                d > Duration::from_millis(199) && d <= Duration::from_millis(400),
                "{d:?}"
            );
        }
        let full = RetryPolicy { jitter: 1.0, ..p };
        assert!(backoff(&full, 1, 0.999).as_millis() < 1);
    }

    #[test]
    fn retry_after_is_honoured_within_the_cap() {
        let p = policy();
        let asked = Some(Duration::from_secs(3));
        assert_eq!(delay_before_retry(&p, 1, asked, 0.0), asked);
        // Never sooner than the backoff.
        let tiny = Some(Duration::from_millis(1));
        assert_eq!(
            delay_before_retry(&p, 2, tiny, 0.0),
            Some(Duration::from_millis(200))
        );
        assert_eq!(
            delay_before_retry(&p, 1, Some(Duration::from_secs(11)), 0.0),
            None
        );
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480);
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h, now), None);
        h.insert(RETRY_AFTER, HeaderValue::from_static(" 7 "));
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(7)));
        // 1445412480 is Wed, 21 Oct 2015 07:28:00 GMT.
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:05 GMT"),
        );
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(5)));
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:27:00 GMT"),
        );
        assert_eq!(retry_after(&h, now), Some(Duration::ZERO));
        h.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h, now), None);
    }
}
