//! [`PostgresIdempotency`]: `Idempotency-Key` results in the store's database,
//! shared by every instance and kept across restarts.
//!
//! One row per key in `colloquy_idempotency`. Every call is one statement: a claim
//! is one `INSERT ... ON CONFLICT`, so of concurrent claims of one key exactly one
//! wins (the others wait for its row, then see it), and a claim takes over a row
//! that expired. Expiry is by the database's clock (`now()`); the store's
//! `purge_expired` deletes expired rows.

use std::time::Duration;

use async_trait::async_trait;
use colloquy_core::idempotency::{Claim, IdempotencyStore, Recorded, CLAIM_TTL, IDEMPOTENCY_TTL};
use colloquy_core::StoreError;
use deadpool_postgres::Pool;
use tokio_postgres::Row;
use uuid::Uuid;

use crate::error::Corrupt;
use crate::store::{query, PostgresStore};
use crate::{sql, text};

/// `Idempotency-Key` results in a [`PostgresStore`]'s database; see the
/// [module docs](self). Cheap to clone; it shares the store's pool.
#[derive(Clone)]
pub struct PostgresIdempotency {
    pool: Pool,
    deadline: Option<Duration>,
    claim_ttl: i64,
    result_ttl: i64,
}

impl std::fmt::Debug for PostgresIdempotency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresIdempotency")
            .field("claim_ttl_us", &self.claim_ttl)
            .field("result_ttl_us", &self.result_ttl)
            .finish_non_exhaustive()
    }
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

impl PostgresStore {
    /// `Idempotency-Key` results in this store's database, claims held for
    /// [`CLAIM_TTL`] and results kept for [`IDEMPOTENCY_TTL`].
    #[must_use]
    pub fn idempotency(&self) -> PostgresIdempotency {
        self.idempotency_with_ttls(CLAIM_TTL, IDEMPOTENCY_TTL)
    }

    /// [`PostgresStore::idempotency`] holding claims for `claim_ttl` and results for
    /// `result_ttl` (tests use short ones).
    #[must_use]
    pub fn idempotency_with_ttls(
        &self,
        claim_ttl: Duration,
        result_ttl: Duration,
    ) -> PostgresIdempotency {
        PostgresIdempotency {
            pool: self.pool.clone(),
            deadline: self.deadline,
            claim_ttl: micros(claim_ttl),
            result_ttl: micros(result_ttl),
        }
    }
}

fn corrupt(what: &'static str) -> StoreError {
    StoreError::backend(Corrupt(what))
}

/// The original of stored text.
fn stored_text(stored: String, what: &'static str) -> Result<String, StoreError> {
    match text::decode(&stored) {
        Some(std::borrow::Cow::Borrowed(_)) => Ok(stored),
        Some(std::borrow::Cow::Owned(original)) => Ok(original),
        None => Err(corrupt(what)),
    }
}

/// What a claim's returned row says.
fn claim_of(row: &Row) -> Result<Claim, StoreError> {
    let get = |e: tokio_postgres::Error| StoreError::backend(e);
    let claimed: bool = row.try_get(0).map_err(get)?;
    if claimed {
        return Ok(Claim::Claimed);
    }
    let fingerprint = stored_text(row.try_get(1).map_err(get)?, "idempotency fingerprint")?;
    let status: Option<i32> = row.try_get(2).map_err(get)?;
    let Some(status) = status else {
        return Ok(Claim::InProgress { fingerprint });
    };
    let body: Option<String> = row.try_get(3).map_err(get)?;
    let body = stored_text(body.unwrap_or_default(), "idempotency body")?;
    Ok(Claim::Done(Recorded {
        fingerprint,
        status: u16::try_from(status).map_err(|_| corrupt("idempotency status"))?,
        body,
        stream: row.try_get::<_, Option<Uuid>>(4).map_err(get)?,
    }))
}

#[async_trait]
impl IdempotencyStore for PostgresIdempotency {
    async fn claim(&self, key: &str, fingerprint: &str) -> Result<Claim, StoreError> {
        let key = text::encode(key);
        let fingerprint = text::encode(fingerprint);
        let token = Uuid::new_v4();
        let rows = query(
            &self.pool,
            self.deadline,
            sql::CLAIM_IDEMPOTENCY,
            &[&key, &token, &fingerprint, &self.claim_ttl],
        )
        .await?;
        claim_of(
            rows.first()
                .ok_or_else(|| corrupt("claim returned no row"))?,
        )
    }

    async fn complete(&self, key: &str, record: &Recorded) -> Result<(), StoreError> {
        query(
            &self.pool,
            self.deadline,
            sql::COMPLETE_IDEMPOTENCY,
            &[
                &text::encode(key),
                &text::encode(&record.fingerprint),
                &i32::from(record.status),
                &text::encode(&record.body),
                &record.stream,
                &self.result_ttl,
            ],
        )
        .await
        .map(drop)
    }

    async fn release(&self, key: &str) -> Result<(), StoreError> {
        query(
            &self.pool,
            self.deadline,
            sql::RELEASE_IDEMPOTENCY,
            &[&text::encode(key)],
        )
        .await
        .map(drop)
    }
}
