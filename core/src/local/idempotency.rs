//! [`LocalIdempotency`]: the [`IdempotencyStore`] port in this process.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use super::ExpiryQueue;
use crate::error::StoreError;
use crate::idempotency::{Claim, IdempotencyStore, Recorded, CLAIM_TTL, IDEMPOTENCY_TTL};

#[derive(Debug)]
enum Slot {
    Pending { fingerprint: String, until: Instant },
    Done { record: Recorded, until: Instant },
}

impl Slot {
    fn until(&self) -> Instant {
        match self {
            Self::Pending { until, .. } | Self::Done { until, .. } => *until,
        }
    }
}

#[derive(Debug, Default)]
struct Slots {
    by_key: HashMap<String, Slot>,
    /// Claims, due a claim TTL after they were made.
    claims: ExpiryQueue<String>,
    /// Results, due a result TTL after they were recorded.
    results: ExpiryQueue<String>,
}

impl Slots {
    /// Drops the slots whose queue items are due, if they have expired (a key
    /// claimed again or completed since has a later item).
    fn expire(&mut self, now: Instant) {
        while let Some(key) = self
            .claims
            .pop_due(now)
            .or_else(|| self.results.pop_due(now))
        {
            if self.by_key.get(&key).is_some_and(|s| s.until() <= now) {
                self.by_key.remove(&key);
            }
        }
    }
}

/// An [`IdempotencyStore`] in this process; expired records are dropped in
/// amortised O(1) per operation (see [`crate::local`]).
#[derive(Debug)]
pub struct LocalIdempotency {
    slots: Mutex<Slots>,
    claim_ttl: Duration,
    result_ttl: Duration,
}

impl Default for LocalIdempotency {
    fn default() -> Self {
        Self::with_ttls(CLAIM_TTL, IDEMPOTENCY_TTL)
    }
}

impl LocalIdempotency {
    /// An empty store holding claims for [`CLAIM_TTL`] and results for
    /// [`IDEMPOTENCY_TTL`].
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store holding claims for `claim_ttl` and results for `result_ttl`
    /// (tests use short ones).
    #[must_use]
    pub fn with_ttls(claim_ttl: Duration, result_ttl: Duration) -> Self {
        Self {
            slots: Mutex::new(Slots::default()),
            claim_ttl,
            result_ttl,
        }
    }

    /// How many keys are held (expired ones no operation has dropped yet included).
    #[must_use]
    pub fn held(&self) -> usize {
        self.lock().by_key.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Slots> {
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl IdempotencyStore for LocalIdempotency {
    async fn claim(&self, key: &str, fingerprint: &str) -> Result<Claim, StoreError> {
        let now = Instant::now();
        let mut slots = self.lock();
        slots.expire(now);
        match slots.by_key.get(key) {
            Some(slot) if slot.until() > now => Ok(match slot {
                Slot::Pending { fingerprint, .. } => Claim::InProgress {
                    fingerprint: fingerprint.clone(),
                },
                Slot::Done { record, .. } => Claim::Done(record.clone()),
            }),
            _ => {
                let until = now + self.claim_ttl;
                slots.by_key.insert(
                    key.to_owned(),
                    Slot::Pending {
                        fingerprint: fingerprint.to_owned(),
                        until,
                    },
                );
                slots.claims.push(until, key.to_owned());
                Ok(Claim::Claimed)
            }
        }
    }

    async fn complete(&self, key: &str, record: &Recorded) -> Result<(), StoreError> {
        let now = Instant::now();
        let mut slots = self.lock();
        slots.expire(now);
        let until = now + self.result_ttl;
        slots.by_key.insert(
            key.to_owned(),
            Slot::Done {
                record: record.clone(),
                until,
            },
        );
        slots.results.push(until, key.to_owned());
        Ok(())
    }

    async fn release(&self, key: &str) -> Result<(), StoreError> {
        let mut slots = self.lock();
        if matches!(slots.by_key.get(key), Some(Slot::Pending { .. })) {
            slots.by_key.remove(key);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(fingerprint: &str) -> Recorded {
        Recorded {
            fingerprint: fingerprint.into(),
            status: 201,
            body: "{}".into(),
            stream: None,
        }
    }

    #[tokio::test]
    async fn one_claim_wins_and_the_result_is_kept() {
        let store = LocalIdempotency::new();
        assert_eq!(store.claim("k", "f").await.ok(), Some(Claim::Claimed));
        assert_eq!(
            store.claim("k", "g").await.ok(),
            Some(Claim::InProgress {
                fingerprint: "f".into()
            })
        );
        store.complete("k", &record("f")).await.expect("complete");
        assert_eq!(
            store.claim("k", "f").await.ok(),
            Some(Claim::Done(record("f")))
        );
        // A released claim frees the key; a completed one is never released.
        store.release("k").await.expect("release");
        assert_eq!(
            store.claim("k", "f").await.ok(),
            Some(Claim::Done(record("f")))
        );
        assert_eq!(store.claim("other", "f").await.ok(), Some(Claim::Claimed));
        store.release("other").await.expect("release");
        assert_eq!(store.claim("other", "f").await.ok(), Some(Claim::Claimed));
    }

    #[tokio::test(start_paused = true)]
    async fn claims_and_results_expire_at_their_ttl_never_before() {
        let store = LocalIdempotency::new();
        let tick = Duration::from_millis(1);
        assert_eq!(store.claim("k", "f").await.ok(), Some(Claim::Claimed));
        tokio::time::advance(CLAIM_TTL - tick).await;
        assert!(
            matches!(store.claim("k", "g").await, Ok(Claim::InProgress { .. })),
            "a claim holds its key until its TTL"
        );
        tokio::time::advance(tick).await;
        assert_eq!(store.claim("k", "f").await.ok(), Some(Claim::Claimed));
        store.complete("k", &record("f")).await.expect("complete");
        tokio::time::advance(IDEMPOTENCY_TTL - tick).await;
        assert_eq!(
            store.claim("k", "f").await.ok(),
            Some(Claim::Done(record("f"))),
            "a result is kept until its TTL"
        );
        tokio::time::advance(tick).await;
        assert_eq!(store.claim("k", "f").await.ok(), Some(Claim::Claimed));
    }

    #[tokio::test(start_paused = true)]
    async fn held_keys_stay_bounded_under_a_stream_of_new_keys() {
        let (claim_ttl, result_ttl) = (Duration::from_millis(100), Duration::from_secs(1));
        let store = LocalIdempotency::with_ttls(claim_ttl, result_ttl);
        let every = Duration::from_millis(1);
        // A new key every millisecond, half of them completed: 500 results and 50
        // open claims are live at any time.
        let live = 550;
        let mut most = 0;
        for i in 0..20_000 {
            let key = format!("k{i}");
            assert_eq!(store.claim(&key, "f").await.ok(), Some(Claim::Claimed));
            if i % 2 == 0 {
                store.complete(&key, &record("f")).await.expect("complete");
            }
            most = most.max(store.held());
            tokio::time::advance(every).await;
        }
        assert!(
            most <= live + 2,
            "{most} keys held at most, for about {live} live"
        );
    }
}
