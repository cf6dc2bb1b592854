//! [`SqliteIdempotency`]: `Idempotency-Key` results in the store's database file, so
//! a retry after a restart still gets the first result.
//!
//! One row per key in `idempotency`: the fingerprint, the result (`status` NULL
//! while the key is only claimed) and the expiry (microseconds of the store's
//! clock). Every call is one job on the store's writer thread, so a claim's "is the
//! key free? then take it" is atomic, and answered only once durably committed. A
//! claim takes over a row that expired; the store's purge (`purge_expired`) deletes
//! the expired rows of all keys.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use colloquy_core::idempotency::{Claim, IdempotencyStore, Recorded, CLAIM_TTL, IDEMPOTENCY_TTL};
use colloquy_core::StoreError;
use rusqlite::{params, Connection, OptionalExtension};
use uuid::Uuid;

use crate::error::SqliteError;
use crate::rows::sql_count;
use crate::store::SqliteStore;
use crate::worker::Workers;

/// The statements, as constants so the query-plan test checks exactly these.
pub(crate) mod sql {
    /// Takes a key that is free or whose row expired; changes no row otherwise.
    pub(crate) const CLAIM: &str = "INSERT INTO idempotency (key, fingerprint, expires_at)
         VALUES (?1, ?2, ?3)
         ON CONFLICT (key) DO UPDATE SET fingerprint = excluded.fingerprint,
             status = NULL, body = NULL, stream = NULL, expires_at = excluded.expires_at
         WHERE idempotency.expires_at <= ?4";
    /// What holds a key.
    pub(crate) const HELD: &str =
        "SELECT fingerprint, status, body, stream FROM idempotency WHERE key = ?1";
    /// Records a key's result.
    pub(crate) const COMPLETE: &str =
        "INSERT INTO idempotency (key, fingerprint, status, body, stream, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (key) DO UPDATE SET fingerprint = excluded.fingerprint,
             status = excluded.status, body = excluded.body, stream = excluded.stream,
             expires_at = excluded.expires_at";
    /// Frees a key that has no result.
    pub(crate) const RELEASE: &str = "DELETE FROM idempotency WHERE key = ?1 AND status IS NULL";
    /// Deletes a batch of expired rows.
    pub(crate) const PURGE: &str = "DELETE FROM idempotency WHERE key IN
         (SELECT key FROM idempotency WHERE expires_at <= ?1 LIMIT ?2)";
}

/// `Idempotency-Key` results in a [`SqliteStore`]'s database; see the
/// [module docs](self). Cheap to clone; it keeps the store's connections open.
#[derive(Clone)]
pub struct SqliteIdempotency {
    workers: Arc<Workers>,
    claim_ttl: i64,
    result_ttl: i64,
}

impl std::fmt::Debug for SqliteIdempotency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteIdempotency")
            .field("claim_ttl_us", &self.claim_ttl)
            .field("result_ttl_us", &self.result_ttl)
            .finish_non_exhaustive()
    }
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

impl SqliteStore {
    /// `Idempotency-Key` results in this store's database, claims held for
    /// [`CLAIM_TTL`] and results kept for [`IDEMPOTENCY_TTL`] by the store's clock.
    #[must_use]
    pub fn idempotency(&self) -> SqliteIdempotency {
        self.idempotency_with_ttls(CLAIM_TTL, IDEMPOTENCY_TTL)
    }

    /// [`SqliteStore::idempotency`] holding claims for `claim_ttl` and results for
    /// `result_ttl` (tests use short ones).
    #[must_use]
    pub fn idempotency_with_ttls(
        &self,
        claim_ttl: Duration,
        result_ttl: Duration,
    ) -> SqliteIdempotency {
        SqliteIdempotency {
            workers: Arc::clone(&self.workers),
            claim_ttl: micros(claim_ttl),
            result_ttl: micros(result_ttl),
        }
    }
}

/// Claims `key` (see [`IdempotencyStore::claim`]) on the writer's connection.
fn claim(
    conn: &Connection,
    now: i64,
    key: &str,
    fingerprint: &str,
    ttl: i64,
) -> Result<Claim, SqliteError> {
    let taken = conn.prepare_cached(sql::CLAIM)?.execute(params![
        key,
        fingerprint,
        now.saturating_add(ttl),
        now
    ])?;
    if taken == 1 {
        return Ok(Claim::Claimed);
    }
    let held = conn
        .prepare_cached(sql::HELD)?
        .query_row(params![key], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, Option<u16>>(1)?,
                row.get::<_, Option<String>>(2)?,
                row.get::<_, Option<Vec<u8>>>(3)?,
            ))
        })
        .optional()?
        .ok_or(SqliteError::Corrupt(
            "idempotency row vanished while claimed",
        ))?;
    Ok(match held {
        (fingerprint, None, _, _) => Claim::InProgress { fingerprint },
        (fingerprint, Some(status), body, stream) => Claim::Done(Recorded {
            fingerprint,
            status,
            body: body.unwrap_or_default(),
            stream: stream
                .map(|b| Uuid::from_slice(&b))
                .transpose()
                .map_err(|_| SqliteError::Corrupt("idempotency stream id"))?,
        }),
    })
}

/// Deletes up to `batch` rows expired at `now`; returns how many.
pub(crate) fn purge(conn: &Connection, now: i64, batch: usize) -> Result<usize, SqliteError> {
    Ok(conn
        .prepare_cached(sql::PURGE)?
        .execute(params![now, sql_count(batch)])?)
}

#[async_trait]
impl IdempotencyStore for SqliteIdempotency {
    async fn claim(&self, key: &str, fingerprint: &str) -> Result<Claim, StoreError> {
        let (key, fingerprint, ttl) = (key.to_owned(), fingerprint.to_owned(), self.claim_ttl);
        Ok(self
            .workers
            .write(move |conn, now| claim(conn, now, &key, &fingerprint, ttl))
            .await?)
    }

    async fn complete(&self, key: &str, record: &Recorded) -> Result<(), StoreError> {
        let (key, record, ttl) = (key.to_owned(), record.clone(), self.result_ttl);
        Ok(self
            .workers
            .write(move |conn, now| {
                conn.prepare_cached(sql::COMPLETE)?.execute(params![
                    key,
                    record.fingerprint,
                    record.status,
                    record.body,
                    record.stream.as_ref().map(|s| s.as_bytes().as_slice()),
                    now.saturating_add(ttl),
                ])?;
                Ok(())
            })
            .await?)
    }

    async fn release(&self, key: &str) -> Result<(), StoreError> {
        let key = key.to_owned();
        Ok(self
            .workers
            .write(move |conn, _| {
                conn.prepare_cached(sql::RELEASE)?.execute(params![key])?;
                Ok(())
            })
            .await?)
    }
}
