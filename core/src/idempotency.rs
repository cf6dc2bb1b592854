//! `Idempotency-Key`: the first result of a request, kept so a retry with the same
//! key gets it again instead of doing the work twice.
//!
//! [`IdempotencyStore`] is the port; [`LocalIdempotency`] keeps records in this
//! process. A transport claims a key before the work, [`completes`] it with the
//! result, and [`releases`] it when the work failed (so a retry runs again).
//!
//! [`completes`]: IdempotencyStore::complete
//! [`releases`]: IdempotencyStore::release
//! [`LocalIdempotency`]: crate::local::LocalIdempotency

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
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
