//! `Idempotency-Key`: the first result of a request, kept so a retry with the same
//! key gets it again instead of doing the work twice.
//!
//! [`IdempotencyStore`] is the port; [`LocalIdempotency`] keeps records in this
//! process. A transport claims a key before the work, [`completes`] it with the
//! result, and [`releases`] it when the work failed (so a retry runs again).
//!
//! [`completes`]: IdempotencyStore::complete
//! [`releases`]: IdempotencyStore::release

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use uuid::Uuid;

use crate::error::StoreError;

/// How long a result is kept for retries (the contract says 24 h).
pub const IDEMPOTENCY_TTL: Duration = Duration::from_secs(24 * 3600);

/// How long a claim without a result holds its key: a request whose instance died
/// frees its key after this.
pub const CLAIM_TTL: Duration = Duration::from_secs(60);

/// The result of a request, as the transport needs it to answer a retry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recorded {
    /// The request's fingerprint (a hash of what makes it the same request).
    pub fingerprint: String,
    /// The response status.
    pub status: u16,
    /// The response body (JSON), empty for a stream.
    pub body: String,
    /// For a streamed chat: the answer to attach to.
    pub stream: Option<Uuid>,
}

/// What a claim found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The key is new: the caller does the work, then completes or releases it.
    Claimed,
    /// Another request with this key is being answered; its fingerprint.
    InProgress {
        /// The fingerprint of the request holding the key.
        fingerprint: String,
    },
    /// The key has a result.
    Done(Recorded),
}

/// Keeps the results of requests by idempotency key.
#[async_trait]
pub trait IdempotencyStore: Send + Sync + 'static {
    /// Claims `key` for a request with `fingerprint`, atomically: of any number of
    /// concurrent claims of one key, exactly one gets [`Claim::Claimed`]. A claim
    /// expires after [`CLAIM_TTL`] unless completed.
    async fn claim(&self, key: &str, fingerprint: &str) -> Result<Claim, StoreError>;

    /// Records the result of the claimed `key`, kept for [`IDEMPOTENCY_TTL`].
    async fn complete(&self, key: &str, record: &Recorded) -> Result<(), StoreError>;

    /// Frees the claimed `key` without a result (the work failed; a retry runs it).
    async fn release(&self, key: &str) -> Result<(), StoreError>;
}

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

/// An [`IdempotencyStore`] in this process; expired records are swept as the map
/// grows.
#[derive(Debug)]
pub struct LocalIdempotency {
    slots: Mutex<HashMap<String, Slot>>,
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
            slots: Mutex::new(HashMap::new()),
            claim_ttl,
            result_ttl,
        }
    }
}

#[async_trait]
impl IdempotencyStore for LocalIdempotency {
    async fn claim(&self, key: &str, fingerprint: &str) -> Result<Claim, StoreError> {
        let now = Instant::now();
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        if slots.len() >= 1024 && slots.len().is_power_of_two() {
            slots.retain(|_, s| s.until() > now);
        }
        match slots.get(key) {
            Some(slot) if slot.until() > now => Ok(match slot {
                Slot::Pending { fingerprint, .. } => Claim::InProgress {
                    fingerprint: fingerprint.clone(),
                },
                Slot::Done { record, .. } => Claim::Done(record.clone()),
            }),
            _ => {
                slots.insert(
                    key.to_owned(),
                    Slot::Pending {
                        fingerprint: fingerprint.to_owned(),
                        until: now + self.claim_ttl,
                    },
                );
                Ok(Claim::Claimed)
            }
        }
    }

    async fn complete(&self, key: &str, record: &Recorded) -> Result<(), StoreError> {
        let until = Instant::now() + self.result_ttl;
        self.slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                key.to_owned(),
                Slot::Done {
                    record: record.clone(),
                    until,
                },
            );
        Ok(())
    }

    async fn release(&self, key: &str) -> Result<(), StoreError> {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        if matches!(slots.get(key), Some(Slot::Pending { .. })) {
            slots.remove(key);
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
    async fn abandoned_claims_and_old_results_expire() {
        let store = LocalIdempotency::new();
        assert_eq!(store.claim("k", "f").await.ok(), Some(Claim::Claimed));
        tokio::time::advance(CLAIM_TTL).await;
        assert_eq!(store.claim("k", "f").await.ok(), Some(Claim::Claimed));
        store.complete("k", &record("f")).await.expect("complete");
        tokio::time::advance(IDEMPOTENCY_TTL).await;
        assert_eq!(store.claim("k", "f").await.ok(), Some(Claim::Claimed));
    }
}
