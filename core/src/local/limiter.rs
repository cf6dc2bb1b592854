//! [`LocalRateLimiter`]: the [`RateLimiter`] port for one process.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use super::ExpiryQueue;
use crate::error::StoreError;
use crate::ratelimit::{gcra, window_at, Decision, Quota, RateLimiter, TokenWindow, WindowUsage};

/// GCRA over a hash map: one lock per check, constant memory per active key. A key
/// whose quota is whole again holds nothing and is dropped (amortised O(1) per
/// check, see [`crate::local`]), so memory follows the number of recently active
/// clients, not of all clients ever seen.
///
/// Its clock is tokio's: a test on a paused runtime moves it with
/// `tokio::time::advance`.
#[derive(Debug)]
pub struct LocalRateLimiter {
    started: Instant,
    /// Wall-clock ms since the Unix epoch at `started`: token windows align to it.
    epoch_ms_at_start: u64,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Key -> theoretical arrival time, in ms since `LocalRateLimiter::started`.
    tat: HashMap<String, u64>,
    /// Per quota period: each key, due one period after it was stored or last found
    /// still spent (its TAT is never more than a period ahead of its check).
    due: HashMap<Duration, ExpiryQueue<String>>,
    /// Token windows: key -> (window index, units counted in it).
    windows: HashMap<String, (u64, u64)>,
    /// Per window period: each window key, due when its window ends.
    windows_due: HashMap<Duration, ExpiryQueue<String>>,
}

impl State {
    /// Drops the keys whose items are due and whose quota is whole again; a key
    /// still spent is queued again, one period from now.
    fn expire(&mut self, now: Instant, now_ms: u64) {
        let Self { tat, due, .. } = self;
        due.retain(|period, queue| {
            while let Some(key) = queue.pop_due(now) {
                match tat.get(&key) {
                    Some(t) if *t > now_ms => queue.push(now + *period, key),
                    Some(_) => {
                        tat.remove(&key);
                    }
                    None => {}
                }
            }
            !queue.is_empty()
        });
    }

    /// Drops the token windows whose window has ended (a key counted again in a
    /// later window is queued again with that window's end).
    fn expire_windows(&mut self, now: Instant, now_ms: u64) {
        let Self {
            windows,
            windows_due,
            ..
        } = self;
        windows_due.retain(|period, queue| {
            while let Some(key) = queue.pop_due(now) {
                let (index, _) = window_at(*period, now_ms);
                if windows.get(&key).is_some_and(|(w, _)| *w < index) {
                    windows.remove(&key);
                }
            }
            !queue.is_empty()
        });
    }
}

impl Default for LocalRateLimiter {
    fn default() -> Self {
        Self::new()
    }
}

impl LocalRateLimiter {
    /// An empty limiter.
    #[must_use]
    pub fn new() -> Self {
        let epoch_ms_at_start = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        Self {
            started: Instant::now(),
            epoch_ms_at_start,
            state: Mutex::new(State::default()),
        }
    }

    /// How many keys hold state (whole ones not dropped yet included).
    #[must_use]
    pub fn tracked_keys(&self) -> usize {
        self.lock().tat.len()
    }

    /// How many token windows hold state.
    #[must_use]
    pub fn tracked_windows(&self) -> usize {
        self.lock().windows.len()
    }

    /// Now, as wall-clock ms since the Unix epoch, moving with tokio's clock.
    fn epoch_ms(&self, now: Instant) -> u64 {
        let since = u64::try_from(now.duration_since(self.started).as_millis()).unwrap_or(u64::MAX);
        self.epoch_ms_at_start.saturating_add(since)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl RateLimiter for LocalRateLimiter {
    async fn check(&self, key: &str, quota: Quota, cost: u32) -> Result<Decision, StoreError> {
        let now = Instant::now();
        let now_ms =
            u64::try_from(now.duration_since(self.started).as_millis()).unwrap_or(u64::MAX);
        let mut state = self.lock();
        // A TAT not after now means the quota is whole: the key holds nothing.
        state.expire(now, now_ms);
        let (decision, tat) = gcra(quota, cost, state.tat.get(key).copied(), now_ms);
        if let Decision::Allowed { .. } = decision {
            if let Some(stored) = state.tat.get_mut(key) {
                *stored = tat;
            } else {
                state.tat.insert(key.to_owned(), tat);
                // GCRA never stores a TAT more than a period ahead.
                let period = quota.period;
                state
                    .due
                    .entry(period)
                    .or_default()
                    .push(now + period, key.to_owned());
            }
        }
        Ok(decision)
    }

    async fn window_usage(&self, windows: &[TokenWindow]) -> Result<Vec<WindowUsage>, StoreError> {
        let now = Instant::now();
        let now_ms = self.epoch_ms(now);
        let mut state = self.lock();
        state.expire_windows(now, now_ms);
        Ok(windows
            .iter()
            .map(|w| {
                let (index, resets_in) = window_at(w.period, now_ms);
                let used = match state.windows.get(&w.key) {
                    Some((i, used)) if *i == index => *used,
                    _ => 0,
                };
                WindowUsage { used, resets_in }
            })
            .collect())
    }

    async fn window_add(
        &self,
        windows: &[TokenWindow],
        amount: u64,
    ) -> Result<Vec<WindowUsage>, StoreError> {
        let now = Instant::now();
        let now_ms = self.epoch_ms(now);
        let mut state = self.lock();
        state.expire_windows(now, now_ms);
        let mut out = Vec::with_capacity(windows.len());
        for w in windows {
            let (index, resets_in) = window_at(w.period, now_ms);
            let entry = state.windows.entry(w.key.clone()).or_insert((index, 0));
            let fresh = entry.0 != index || entry.1 == 0;
            if entry.0 != index {
                *entry = (index, 0);
            }
            entry.1 = entry.1.saturating_add(amount);
            let used = entry.1;
            if fresh {
                state
                    .windows_due
                    .entry(w.period)
                    .or_default()
                    .push(now + resets_in, w.key.clone());
            }
            out.push(WindowUsage { used, resets_in });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn allowed(d: Result<Decision, StoreError>) -> bool {
        matches!(d, Ok(Decision::Allowed { .. }))
    }

    #[tokio::test(start_paused = true)]
    async fn a_key_gets_its_burst_then_its_rate() {
        let limiter = LocalRateLimiter::new();
        let quota = Quota {
            count: 2,
            period: Duration::from_secs(2),
        };
        assert!(allowed(limiter.check("a", quota, 1).await));
        assert!(allowed(limiter.check("a", quota, 1).await));
        assert_eq!(
            limiter.check("a", quota, 1).await.ok(),
            Some(Decision::Limited {
                retry_after: Duration::from_secs(1),
                reset: Duration::from_secs(2)
            })
        );
        assert!(
            allowed(limiter.check("b", quota, 1).await),
            "keys are independent"
        );
        tokio::time::advance(Duration::from_millis(999)).await;
        assert!(
            !allowed(limiter.check("a", quota, 1).await),
            "not before its interval"
        );
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(
            allowed(limiter.check("a", quota, 1).await),
            "one more per interval"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn spent_keys_are_dropped_and_the_table_stays_bounded() {
        let limiter = LocalRateLimiter::new();
        let quota = Quota {
            count: 10,
            period: Duration::from_millis(100),
        };
        // A new key every millisecond, each whole again 10 ms later.
        let mut most = 0;
        for i in 0..20_000 {
            assert!(allowed(limiter.check(&format!("k{i}"), quota, 1).await));
            most = most.max(limiter.tracked_keys());
            tokio::time::advance(Duration::from_millis(1)).await;
        }
        // A key is held until its item falls due, one period (100 ms) after it was
        // stored: 100 keys at most, whichever have spent their quota.
        assert!(
            most <= 101,
            "{most} keys held at most, for 100 stored within a period"
        );
        // A key that still holds state is never dropped: its burst stays spent.
        let long = Quota {
            count: 1,
            period: Duration::from_secs(3600),
        };
        assert!(allowed(limiter.check("kept", long, 1).await));
        for i in 0..1_000 {
            limiter
                .check(&format!("x{i}"), quota, 1)
                .await
                .expect("check");
            tokio::time::advance(Duration::from_millis(1)).await;
        }
        assert!(!allowed(limiter.check("kept", long, 1).await));
    }
}
