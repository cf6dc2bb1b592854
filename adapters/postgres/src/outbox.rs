//! [`PostgresOutbox`]: the webhook outbox in the store's database, shared by
//! every instance and kept across restarts.
//!
//! One row per delivery in `colloquy_webhook_outbox`. Every call is one
//! statement: an enqueue inserts all its entries at once, and a claim selects
//! the due rows `FOR UPDATE SKIP LOCKED` and leases them in the same statement,
//! so concurrent claims from any number of instances never take one row twice
//! (a row another claim locked is skipped; one it already leased is no longer
//! due when re-checked). Due times and leases are microseconds of the store's
//! clock, passed with each statement.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::DateTime;
use colloquy_core::webhooks::{ClaimedEntry, OutboxEntry, WebhookOutbox};
use colloquy_core::{Clock, StoreError};
use deadpool_postgres::Pool;
use tokio_postgres::Row;
use uuid::Uuid;

use crate::error::Corrupt;
use crate::store::{query, PostgresStore};

/// Adds entries, due now (`$7`), in the order given.
pub(crate) const ENQUEUE: &str = "
INSERT INTO colloquy_webhook_outbox (id, event_id, event_type, target, body, created_at, due_at)
SELECT t.id, t.event_id, t.event_type, t.target, t.body, t.created_at, $7::bigint
FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::bigint[])
    WITH ORDINALITY AS t(id, event_id, event_type, target, body, created_at, n)
ORDER BY t.n";

/// Leases up to `$2` rows due at `$1` until `$3` under token `$4`.
pub(crate) const CLAIM: &str = "
WITH due AS (
    SELECT seq, due_at FROM colloquy_webhook_outbox
    WHERE due_at <= $1::bigint
    ORDER BY due_at, seq
    LIMIT $2::bigint
    FOR UPDATE SKIP LOCKED
), leased AS (
    UPDATE colloquy_webhook_outbox o
    SET due_at = $3::bigint, attempts = o.attempts + 1, lease = $4::uuid
    WHERE o.seq = ANY (ARRAY(SELECT seq FROM due))
    RETURNING o.seq, o.id, o.event_id, o.event_type, o.target, o.body, o.created_at, o.attempts
)
SELECT due.due_at, leased.seq, leased.id, leased.event_id, leased.event_type, leased.target,
    leased.body, leased.created_at, leased.attempts
FROM leased JOIN due ON due.seq = leased.seq";

/// Removes an entry.
pub(crate) const FINISH: &str = "DELETE FROM colloquy_webhook_outbox WHERE id = $1::uuid";

/// Reschedules an entry still held by lease `$2`.
pub(crate) const RETRY: &str = "
UPDATE colloquy_webhook_outbox SET due_at = $3::bigint, lease = NULL
WHERE id = $1::uuid AND lease = $2::uuid
RETURNING 1";

/// Counts the waiting entries (not prepared up front, nor plan-checked: a count
/// reads the whole, small, table).
const PENDING: &str = "SELECT count(*) FROM colloquy_webhook_outbox";

/// The statements prepared on every new connection.
pub(crate) const STATEMENTS: [&str; 4] = [ENQUEUE, CLAIM, FINISH, RETRY];

/// The webhook outbox in a [`PostgresStore`]'s database; see the
/// [module docs](self). Cheap to clone; it shares the store's pool.
#[derive(Clone)]
pub struct PostgresOutbox {
    pool: Pool,
    deadline: Option<Duration>,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for PostgresOutbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresOutbox").finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// The webhook outbox in this store's database, judging due times and
    /// leases by the store's clock.
    #[must_use]
    pub fn webhook_outbox(&self) -> PostgresOutbox {
        PostgresOutbox {
            pool: self.pool.clone(),
            deadline: self.deadline,
            clock: self.clock(),
        }
    }
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

fn corrupt(what: &'static str) -> StoreError {
    StoreError::backend(Corrupt(what))
}

impl PostgresOutbox {
    fn now(&self) -> i64 {
        self.clock.now().timestamp_micros()
    }
}

/// A claimed row: its previous due time, its seq and the claimed entry.
fn claimed_of(row: &Row, lease: Uuid) -> Result<(i64, i64, ClaimedEntry), StoreError> {
    let get = |e: tokio_postgres::Error| StoreError::backend(e);
    let created_at: i64 = row.try_get(7).map_err(get)?;
    let attempts: i32 = row.try_get(8).map_err(get)?;
    Ok((
        row.try_get(0).map_err(get)?,
        row.try_get(1).map_err(get)?,
        ClaimedEntry {
            entry: OutboxEntry {
                id: row.try_get(2).map_err(get)?,
                event_id: row.try_get(3).map_err(get)?,
                event_type: row.try_get(4).map_err(get)?,
                target: row.try_get(5).map_err(get)?,
                body: row.try_get(6).map_err(get)?,
                created_at: DateTime::from_timestamp_micros(created_at)
                    .ok_or_else(|| corrupt("outbox created_at"))?,
            },
            attempt: u32::try_from(attempts).map_err(|_| corrupt("outbox attempts"))?,
            lease,
        },
    ))
}

#[async_trait]
impl WebhookOutbox for PostgresOutbox {
    async fn enqueue(&self, entries: &[OutboxEntry]) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        let ids: Vec<Uuid> = entries.iter().map(|e| e.id).collect();
        let events: Vec<Uuid> = entries.iter().map(|e| e.event_id).collect();
        let types: Vec<&str> = entries.iter().map(|e| e.event_type.as_str()).collect();
        let targets: Vec<&str> = entries.iter().map(|e| e.target.as_str()).collect();
        let bodies: Vec<&str> = entries.iter().map(|e| e.body.as_str()).collect();
        let created: Vec<i64> = entries
            .iter()
            .map(|e| e.created_at.timestamp_micros())
            .collect();
        query(
            &self.pool,
            self.deadline,
            ENQUEUE,
            &[
                &ids,
                &events,
                &types,
                &targets,
                &bodies,
                &created,
                &self.now(),
            ],
        )
        .await
        .map(drop)
    }

    async fn claim(&self, limit: usize, lease: Duration) -> Result<Vec<ClaimedEntry>, StoreError> {
        let now = self.now();
        let token = Uuid::new_v4();
        let rows = query(
            &self.pool,
            self.deadline,
            CLAIM,
            &[
                &now,
                &i64::try_from(limit).unwrap_or(i64::MAX),
                &now.saturating_add(micros(lease)),
                &token,
            ],
        )
        .await?;
        let mut claimed = rows
            .iter()
            .map(|row| claimed_of(row, token))
            .collect::<Result<Vec<_>, _>>()?;
        claimed.sort_by_key(|(due, seq, _)| (*due, *seq));
        Ok(claimed.into_iter().map(|(_, _, c)| c).collect())
    }

    async fn finish(&self, claimed: &ClaimedEntry) -> Result<(), StoreError> {
        query(&self.pool, self.deadline, FINISH, &[&claimed.entry.id])
            .await
            .map(drop)
    }

    async fn retry(&self, claimed: &ClaimedEntry, delay: Duration) -> Result<bool, StoreError> {
        let due = self.now().saturating_add(micros(delay));
        let rows = query(
            &self.pool,
            self.deadline,
            RETRY,
            &[&claimed.entry.id, &claimed.lease, &due],
        )
        .await?;
        Ok(!rows.is_empty())
    }

    async fn pending(&self) -> Result<u64, StoreError> {
        let rows = query(&self.pool, self.deadline, PENDING, &[]).await?;
        let n: i64 = rows
            .first()
            .ok_or_else(|| corrupt("count returned no row"))?
            .try_get(0)
            .map_err(StoreError::backend)?;
        Ok(u64::try_from(n).unwrap_or(0))
    }
}
