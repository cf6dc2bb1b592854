//! [`MemoryRateLimiter`]: the [`RateLimiter`] port for one process.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use async_trait::async_trait;
use colloquy_core::ratelimit::{gcra, Decision, Quota, RateLimiter};
use colloquy_core::StoreError;

/// Keys are swept of spent state once the table holds at least this many.
const MIN_SWEEP: usize = 4096;

#[derive(Debug)]
struct State {
    /// Key -> theoretical arrival time, in ms since `MemoryRateLimiter::started`.
    tat: HashMap<String, u64>,
    /// Sweep when the table reaches this size.
    sweep_at: usize,
}

/// GCRA over a hash map: one lock per check, constant memory per active key. Keys
/// whose quota is whole again are dropped when the table grows, so memory follows
/// the number of recently active clients, not of all clients ever seen.
#[derive(Debug)]
pub struct MemoryRateLimiter {
    started: Instant,
    state: Mutex<State>,
}

impl Default for MemoryRateLimiter {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryRateLimiter {
    /// An empty limiter.
    #[must_use]
    pub fn new() -> Self {
        Self {
            started: Instant::now(),
            state: Mutex::new(State {
                tat: HashMap::new(),
                sweep_at: MIN_SWEEP,
            }),
        }
    }

    /// How many keys hold state.
    #[must_use]
    pub fn tracked_keys(&self) -> usize {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .tat
            .len()
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

#[async_trait]
impl RateLimiter for MemoryRateLimiter {
    async fn check(&self, key: &str, quota: Quota, cost: u32) -> Result<Decision, StoreError> {
        let now = self.now_ms();
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let (decision, tat) = gcra(quota, cost, state.tat.get(key).copied(), now);
        if let Decision::Allowed { .. } = decision {
            state.tat.insert(key.to_owned(), tat);
        }
        if state.tat.len() >= state.sweep_at {
            // A TAT in the past means the quota is whole: the key holds nothing.
            state.tat.retain(|_, tat| *tat > now);
            state.sweep_at = (state.tat.len() * 2).max(MIN_SWEEP);
        }
        Ok(decision)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn limits_per_key_and_sweeps_spent_keys() {
        let limiter = MemoryRateLimiter::new();
        let quota = Quota {
            count: 2,
            period: Duration::from_secs(3600),
        };
        for _ in 0..2 {
            assert!(matches!(
                limiter.check("a", quota, 1).await,
                Ok(Decision::Allowed { .. })
            ));
        }
        assert!(matches!(
            limiter.check("a", quota, 1).await,
            Ok(Decision::Limited { .. })
        ));
        assert!(
            matches!(
                limiter.check("b", quota, 1).await,
                Ok(Decision::Allowed { .. })
            ),
            "keys are independent"
        );
        // A quota of one unit per millisecond is whole again almost at once: its
        // keys are swept when the table grows.
        let fast = Quota {
            count: 1,
            period: Duration::from_millis(1),
        };
        for i in 0..MIN_SWEEP * 2 {
            limiter
                .check(&format!("k{i}"), fast, 1)
                .await
                .expect("checks");
        }
        assert!(
            limiter.tracked_keys() < MIN_SWEEP * 2,
            "spent keys are dropped: {} held",
            limiter.tracked_keys()
        );
    }
}
