//! What the accept loop needs to survive floods: a back-off after failed `accept`s
//! (too many open files) and log lines at most once a second, with a count.

use std::time::{Duration, Instant};

/// Pause after the first failed `accept`; it doubles after each further failure.
const FIRST_PAUSE: Duration = Duration::from_millis(10);
/// The longest pause between two `accept`s.
const MAX_PAUSE: Duration = Duration::from_secs(1);
/// At most one log line per event kind this often.
const LOG_EVERY: Duration = Duration::from_secs(1);

/// Exponential back-off, reset by a success.
#[derive(Debug, Clone, Default)]
pub(crate) struct Backoff {
    next: Option<Duration>,
}

impl Backoff {
    /// How long to pause after one more failure.
    pub(crate) fn failed(&mut self) -> Duration {
        let pause = self.next.unwrap_or(FIRST_PAUSE);
        self.next = Some((pause * 2).min(MAX_PAUSE));
        pause
    }

    /// A success: the next failure pauses briefly again.
    pub(crate) fn reset(&mut self) {
        self.next = None;
    }
}

/// Counts events and says when to log them: the first at once, then at most once per
/// second, with the number of events since the previous line.
#[derive(Debug, Clone, Default)]
pub(crate) struct Throttle {
    last: Option<Instant>,
    count: u64,
}

impl Throttle {
    /// One more event; `Some(count)` when it is time to log (`count` events since the
    /// last line, this one included).
    pub(crate) fn record(&mut self, now: Instant) -> Option<u64> {
        self.count += 1;
        if self
            .last
            .is_some_and(|last| now.duration_since(last) < LOG_EVERY)
        {
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.count))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_doubles_to_its_cap_and_resets() {
        let mut backoff = Backoff::default();
        let pauses: Vec<u128> = (0..10).map(|_| backoff.failed().as_millis()).collect();
        assert_eq!(pauses, [10, 20, 40, 80, 160, 320, 640, 1000, 1000, 1000]);
        backoff.reset();
        assert_eq!(backoff.failed(), FIRST_PAUSE);
    }

    #[test]
    fn the_throttle_logs_once_a_second_with_a_count() {
        let mut throttle = Throttle::default();
        let start = Instant::now();
        assert_eq!(throttle.record(start), Some(1), "the first at once");
        for ms in 1..=500 {
            assert_eq!(throttle.record(start + Duration::from_millis(ms)), None);
        }
        assert_eq!(
            throttle.record(start + Duration::from_millis(1000)),
            Some(501),
            "a second later, with every event since"
        );
        assert_eq!(throttle.record(start + Duration::from_millis(1001)), None);
        assert_eq!(throttle.record(start + Duration::from_secs(5)), Some(2));
    }
}
