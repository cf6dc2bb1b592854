//! [`SqliteOutbox`]: the webhook outbox in the store's database file, so a
//! webhook enqueued before a crash is delivered after the restart.
//!
//! One row per delivery in `webhook_outbox`. Every call is one job on the store's
//! writer thread, so a claim's "find the due rows, lease them" is atomic (the
//! file has one process writing it: no two instances share a SQLite store), and
//! an enqueue is answered only once durably committed.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::DateTime;
use colloquy_core::webhooks::{ClaimedEntry, OutboxEntry, WebhookOutbox};
use colloquy_core::StoreError;
use rusqlite::{params, Connection};
use uuid::Uuid;

use crate::error::SqliteError;
use crate::rows::sql_count;
use crate::store::SqliteStore;
use crate::worker::Workers;

/// The statements, as constants so the query-plan test checks exactly these.
pub(crate) mod sql {
    /// Adds a delivery, due now.
    pub(crate) const ENQUEUE: &str = "INSERT INTO webhook_outbox
         (id, event_id, event_type, target, body, created_at, due_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";
    /// The due deliveries, oldest due first.
    pub(crate) const DUE: &str = "SELECT seq, id, event_id, event_type, target, body, created_at,
             attempts
         FROM webhook_outbox WHERE due_at <= ?1 ORDER BY due_at, seq LIMIT ?2";
    /// Leases one.
    pub(crate) const LEASE: &str = "UPDATE webhook_outbox
         SET due_at = ?2, attempts = attempts + 1, lease = ?3 WHERE seq = ?1";
    /// Removes one.
    pub(crate) const FINISH: &str = "DELETE FROM webhook_outbox WHERE id = ?1";
    /// Reschedules one still held by a lease.
    pub(crate) const RETRY: &str =
        "UPDATE webhook_outbox SET due_at = ?3, lease = NULL WHERE id = ?1 AND lease = ?2";
    /// Counts the waiting deliveries.
    pub(crate) const PENDING: &str = "SELECT count(*) FROM webhook_outbox";
}

/// The webhook outbox in a [`SqliteStore`]'s database; see the
/// [module docs](self). Cheap to clone; it keeps the store's connections open.
#[derive(Clone)]
pub struct SqliteOutbox {
    workers: Arc<Workers>,
}

impl std::fmt::Debug for SqliteOutbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteOutbox").finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// The webhook outbox in this store's database, judging due times and
    /// leases by the store's clock.
    #[must_use]
    pub fn webhook_outbox(&self) -> SqliteOutbox {
        SqliteOutbox {
            workers: Arc::clone(&self.workers),
        }
    }
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

fn uuid(bytes: &[u8], what: &'static str) -> Result<Uuid, SqliteError> {
    Uuid::from_slice(bytes).map_err(|_| SqliteError::Corrupt(what))
}

/// A due row: seq, id, event id, type, target, body, created_at, attempts.
type DueRow = (i64, Vec<u8>, Vec<u8>, String, String, String, i64, u32);

fn claim(
    conn: &Connection,
    now: i64,
    limit: usize,
    lease: i64,
) -> Result<Vec<ClaimedEntry>, SqliteError> {
    let rows: Vec<DueRow> = conn
        .prepare_cached(sql::DUE)?
        .query_map(params![now, sql_count(limit)], |row| {
            Ok((
                row.get(0)?,
                row.get(1)?,
                row.get(2)?,
                row.get(3)?,
                row.get(4)?,
                row.get(5)?,
                row.get(6)?,
                row.get(7)?,
            ))
        })?
        .collect::<Result<_, _>>()?;
    let token = Uuid::new_v4();
    let until = now.saturating_add(lease);
    let mut out = Vec::with_capacity(rows.len());
    let mut update = conn.prepare_cached(sql::LEASE)?;
    for (seq, id, event_id, event_type, target, body, created_at, attempts) in rows {
        update.execute(params![seq, until, token.as_bytes().as_slice()])?;
        out.push(ClaimedEntry {
            entry: OutboxEntry {
                id: uuid(&id, "outbox id")?,
                event_id: uuid(&event_id, "outbox event id")?,
                event_type,
                target,
                body,
                created_at: DateTime::from_timestamp_micros(created_at)
                    .ok_or(SqliteError::Corrupt("outbox created_at"))?,
            },
            attempt: attempts.saturating_add(1),
            lease: token,
        });
    }
    Ok(out)
}

#[async_trait]
impl WebhookOutbox for SqliteOutbox {
    async fn enqueue(&self, entries: &[OutboxEntry]) -> Result<(), StoreError> {
        let entries = entries.to_vec();
        Ok(self
            .workers
            .write(move |conn, now| {
                let mut insert = conn.prepare_cached(sql::ENQUEUE)?;
                for e in &entries {
                    insert.execute(params![
                        e.id.as_bytes().as_slice(),
                        e.event_id.as_bytes().as_slice(),
                        e.event_type,
                        e.target,
                        e.body,
                        e.created_at.timestamp_micros(),
                        now,
                    ])?;
                }
                Ok(())
            })
            .await?)
    }

    async fn claim(&self, limit: usize, lease: Duration) -> Result<Vec<ClaimedEntry>, StoreError> {
        let lease = micros(lease);
        Ok(self
            .workers
            .write(move |conn, now| claim(conn, now, limit, lease))
            .await?)
    }

    async fn finish(&self, claimed: &ClaimedEntry) -> Result<(), StoreError> {
        let id = claimed.entry.id;
        Ok(self
            .workers
            .write(move |conn, _| {
                conn.prepare_cached(sql::FINISH)?
                    .execute(params![id.as_bytes().as_slice()])?;
                Ok(())
            })
            .await?)
    }

    async fn retry(&self, claimed: &ClaimedEntry, delay: Duration) -> Result<bool, StoreError> {
        let (id, lease, delay) = (claimed.entry.id, claimed.lease, micros(delay));
        Ok(self
            .workers
            .write(move |conn, now| {
                let changed = conn.prepare_cached(sql::RETRY)?.execute(params![
                    id.as_bytes().as_slice(),
                    lease.as_bytes().as_slice(),
                    now.saturating_add(delay)
                ])?;
                Ok(changed == 1)
            })
            .await?)
    }

    async fn pending(&self) -> Result<u64, StoreError> {
        Ok(self
            .workers
            .read(|conn, _| {
                let n: i64 = conn
                    .prepare_cached(sql::PENDING)?
                    .query_row([], |row| row.get(0))?;
                Ok(u64::try_from(n).unwrap_or(0))
            })
            .await?)
    }
}
