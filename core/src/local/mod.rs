//! The in-process implementations of the ports a single instance always has: the
//! stream log ([`LocalStreamLog`]), idempotency records ([`LocalIdempotency`]) and
//! rate-limit state ([`LocalRateLimiter`]). A server without a shared store (memory,
//! SQLite) uses them; a Redis deployment replaces them with its shared adapters.
//!
//! Each keeps its entries in a hash map beside [`ExpiryQueue`]s of `(deadline,
//! key)` in deadline order: an operation pops only the queue items already due and
//! drops the entries they name if those have expired, so expiry costs amortised O(1)
//! per operation however many entries are held, nothing is dropped before its
//! deadline, and the map holds no entry long after its deadline (reads also treat
//! an expired entry as gone).

mod idempotency;
mod limiter;
mod streams;

use std::collections::VecDeque;

use tokio::time::Instant;

pub use idempotency::LocalIdempotency;
pub use limiter::LocalRateLimiter;
pub use streams::LocalStreamLog;

/// Deadlines of entries, in the order they fall due: `(deadline, key)` items pushed
/// with a fixed time to live from now, so each push is due no earlier than the one
/// before it. An item is a hint, not a verdict: when it falls due the owner checks
/// the entry it names (which a later write may have extended, or replaced) and
/// drops it only if it has expired.
#[derive(Debug)]
pub(crate) struct ExpiryQueue<K> {
    items: VecDeque<(Instant, K)>,
}

impl<K> Default for ExpiryQueue<K> {
    fn default() -> Self {
        Self {
            items: VecDeque::new(),
        }
    }
}

impl<K> ExpiryQueue<K> {
    /// Adds `key`, due at `at`. An `at` before the last item's (never the case with
    /// one time to live and a monotonic clock) is raised to it: an item may fall due
    /// late, never early.
    pub(crate) fn push(&mut self, at: Instant, key: K) {
        let at = self.items.back().map_or(at, |(last, _)| at.max(*last));
        self.items.push_back((at, key));
    }

    /// The next item due at `now` or before, if any.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<K> {
        if self.items.front().is_some_and(|(at, _)| *at <= now) {
            self.items.pop_front().map(|(_, key)| key)
        } else {
            None
        }
    }

    /// How many items are queued.
    pub(crate) fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether no item is queued.
    pub(crate) fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn items_fall_due_in_order_and_never_early() {
        let t0 = Instant::now();
        let mut q = ExpiryQueue::default();
        q.push(t0 + Duration::from_secs(1), "a");
        q.push(t0 + Duration::from_secs(2), "b");
        // Out of order: raised to the last deadline, so it is late, not early.
        q.push(t0 + Duration::from_millis(1500), "c");
        assert_eq!(q.pop_due(t0), None);
        assert_eq!(q.pop_due(t0 + Duration::from_millis(999)), None);
        assert_eq!(q.pop_due(t0 + Duration::from_secs(1)), Some("a"));
        assert_eq!(q.pop_due(t0 + Duration::from_millis(1600)), None, "b first");
        assert_eq!(q.pop_due(t0 + Duration::from_secs(2)), Some("b"));
        assert_eq!(q.pop_due(t0 + Duration::from_secs(2)), Some("c"));
        assert_eq!(q.pop_due(t0 + Duration::from_secs(9)), None);
        assert_eq!(q.len(), 0);
    }
}
