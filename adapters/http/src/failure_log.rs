//! Aggregated warnings for failures that come in storms.
//!
//! While the store (or the model) is down every request fails the same way; one WARN
//! per request would bury the log. [`record`] counts a failure under its kind and
//! logs at most once per [`INTERVAL`] per kind: the first failure of a quiet period
//! at once, then "N requests failed with `kind` in the last T s" (with the latest
//! cause) when a failure comes after the interval has passed. Failures counted after
//! the last line are reported with the next failure of that kind.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The shortest time between two lines for one kind of failure.
pub(crate) const INTERVAL: Duration = Duration::from_secs(10);

/// Failures of one kind since its last log line.
#[derive(Debug)]
struct Window {
    kind: &'static str,
    /// When the last line was written.
    logged_at: Instant,
    /// Failures since then (not yet in a line).
    count: u64,
}

/// Every kind's window; a handful of kinds, so a list.
#[derive(Debug, Default)]
pub(crate) struct FailureLog(Mutex<Vec<Window>>);

impl FailureLog {
    /// An empty log (for a `static`).
    pub(crate) const fn new() -> Self {
        Self(Mutex::new(Vec::new()))
    }

    /// Counts one failure of `kind` at `now`; returns `Some((count, over))` when a
    /// line is due: `count` failures (this one included) in the `over` before `now`.
    pub(crate) fn count(&self, kind: &'static str, now: Instant) -> Option<(u64, Duration)> {
        let mut windows = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(window) = windows.iter_mut().find(|w| w.kind == kind) else {
            windows.push(Window {
                kind,
                logged_at: now,
                count: 0,
            });
            return Some((1, Duration::ZERO));
        };
        window.count += 1;
        let over = now.saturating_duration_since(window.logged_at);
        if over < INTERVAL {
            return None;
        }
        let count = std::mem::take(&mut window.count);
        window.logged_at = now;
        Some((count, over))
    }
}

static LOG: FailureLog = FailureLog::new();

/// Counts one failed request of `kind` (an error code such as `store_unavailable`)
/// and writes the aggregated WARN when one is due.
pub(crate) fn record(kind: &'static str, cause: &str) {
    if let Some((count, over)) = LOG.count(kind, Instant::now()) {
        if over.is_zero() {
            tracing::warn!(code = kind, error = %cause, "request failed: {kind} (further failures are counted, one line per {} s)", INTERVAL.as_secs());
        } else {
            tracing::warn!(code = kind, count, error = %cause, "{count} requests failed with {kind} in the last {} s", over.as_secs());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_the_first_failure_then_at_most_once_per_interval_with_the_count() {
        let log = FailureLog::new();
        let t0 = Instant::now();
        assert_eq!(
            log.count("store_unavailable", t0),
            Some((1, Duration::ZERO))
        );
        for i in 1..=500u64 {
            let at = t0 + Duration::from_millis(i * 10);
            assert_eq!(log.count("store_unavailable", at), None, "failure {i}");
        }
        // Another kind has its own window.
        assert_eq!(log.count("busy", t0), Some((1, Duration::ZERO)));
        let later = t0 + INTERVAL + Duration::from_millis(1);
        assert_eq!(
            log.count("store_unavailable", later),
            Some((501, INTERVAL + Duration::from_millis(1)))
        );
        assert_eq!(log.count("store_unavailable", later), None);
    }
}
