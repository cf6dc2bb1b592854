//! [`RedisOutbox`]: the webhook outbox on the store's Redis, shared by every
//! instance on it.
//!
//! Three keys under one hash tag, so a Redis Cluster keeps them in one slot and
//! every script runs on one node: `P{webhooks}:q`, a sorted set of the entries by
//! due time (score: microseconds of the store's clock; member
//! `<seq, 16 hex digits>:<entry id>`, so entries due at the same time sort in
//! enqueue order); `P{webhooks}:h`, a hash of each entry's JSON (`<id>:e`), its
//! member (`<id>:m`), its attempts (`<id>:a`) and the token of the claim holding
//! it (`<id>:l`); and `P{webhooks}:n`, the sequence. A claim is one script:
//! it takes the due members, moves each to the end of its lease, counts the
//! attempt and records its token, atomically, so two instances never take one
//! entry. Entries carry no expiry: each stays until delivered or given up.
//!
//! A sorted set rather than a stream with a consumer group: a retry must become
//! due at a chosen time (a stream redelivers by idle time only), and a lease
//! expiry is then just "the score passed", with no `XAUTOCLAIM` sweep.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::DateTime;
use colloquy_core::webhooks::{ClaimedEntry, OutboxEntry, WebhookOutbox};
use colloquy_core::{Clock, StoreError};
use redis::{AsyncCommands, Script};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::conn::Conn;
use crate::error::Error;
use crate::store::RedisStore;

const ENQUEUE: &str = r"
local now = ARGV[1]
for i = 2, #ARGV, 2 do
  local id = ARGV[i]
  local seq = redis.call('INCR', KEYS[3])
  local member = string.format('%016x', seq) .. ':' .. id
  redis.call('ZADD', KEYS[1], now, member)
  redis.call('HSET', KEYS[2], id .. ':e', ARGV[i + 1], id .. ':m', member, id .. ':a', 0)
end
return 1
";

const CLAIM: &str = r"
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[3]))
local out = {}
for i = 1, #due, 2 do
  local member = due[i]
  local id = string.sub(member, 18)
  redis.call('ZADD', KEYS[1], ARGV[2], member)
  local attempts = redis.call('HINCRBY', KEYS[2], id .. ':a', 1)
  redis.call('HSET', KEYS[2], id .. ':l', ARGV[4])
  local entry = redis.call('HGET', KEYS[2], id .. ':e')
  table.insert(out, entry or '')
  table.insert(out, attempts)
end
return out
";

const FINISH: &str = r"
local id = ARGV[1]
local member = redis.call('HGET', KEYS[2], id .. ':m')
if member then redis.call('ZREM', KEYS[1], member) end
redis.call('HDEL', KEYS[2], id .. ':e', id .. ':m', id .. ':a', id .. ':l')
return 1
";

const RETRY: &str = r"
local id = ARGV[1]
if redis.call('HGET', KEYS[2], id .. ':l') ~= ARGV[2] then return 0 end
local member = redis.call('HGET', KEYS[2], id .. ':m')
if not member then return 0 end
redis.call('ZADD', KEYS[1], ARGV[3], member)
redis.call('HDEL', KEYS[2], id .. ':l')
return 1
";

/// An entry as stored in the hash.
#[derive(Serialize, Deserialize)]
struct Stored {
    id: Uuid,
    event_id: Uuid,
    event_type: String,
    target: String,
    body: String,
    /// Microseconds since the epoch.
    created_at: i64,
}

/// The webhook outbox on a [`RedisStore`]'s Redis; see the [module docs](self).
/// Cheap to clone.
#[derive(Clone)]
pub struct RedisOutbox {
    conn: Conn,
    clock: Arc<dyn Clock>,
    queue: String,
    hash: String,
    seq: String,
    scripts: Arc<[Script; 4]>,
}

impl fmt::Debug for RedisOutbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisOutbox")
            .field("queue", &self.queue)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// The webhook outbox sharing this store's connection, key prefix and
    /// clock.
    #[must_use]
    pub fn webhook_outbox(&self) -> RedisOutbox {
        let prefix = self.keys.prefix();
        RedisOutbox {
            conn: self.conn.clone(),
            clock: Arc::clone(&self.clock),
            queue: format!("{prefix}{{webhooks}}:q"),
            hash: format!("{prefix}{{webhooks}}:h"),
            seq: format!("{prefix}{{webhooks}}:n"),
            scripts: Arc::new([
                Script::new(ENQUEUE),
                Script::new(CLAIM),
                Script::new(FINISH),
                Script::new(RETRY),
            ]),
        }
    }
}

fn store_error(e: redis::RedisError) -> StoreError {
    StoreError::from(Error::from(e))
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

impl RedisOutbox {
    fn now(&self) -> i64 {
        self.clock.now().timestamp_micros()
    }

    fn keys<'a>(&self, script: &'a Script) -> redis::ScriptInvocation<'a> {
        let mut invocation = script.prepare_invoke();
        invocation.key(&self.queue).key(&self.hash).key(&self.seq);
        invocation
    }
}

#[async_trait]
impl WebhookOutbox for RedisOutbox {
    async fn enqueue(&self, entries: &[OutboxEntry]) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut invocation = self.keys(&self.scripts[0]);
        invocation.arg(self.now());
        for e in entries {
            let stored = Stored {
                id: e.id,
                event_id: e.event_id,
                event_type: e.event_type.clone(),
                target: e.target.clone(),
                body: e.body.clone(),
                created_at: e.created_at.timestamp_micros(),
            };
            let json =
                serde_json::to_string(&stored).map_err(|e| StoreError::from(Error::from(e)))?;
            invocation.arg(e.id.to_string()).arg(json);
        }
        let mut conn = self.conn.clone();
        let _: i64 = invocation
            .invoke_async(&mut conn)
            .await
            .map_err(store_error)?;
        Ok(())
    }

    async fn claim(&self, limit: usize, lease: Duration) -> Result<Vec<ClaimedEntry>, StoreError> {
        let now = self.now();
        let token = Uuid::new_v4();
        let mut invocation = self.keys(&self.scripts[1]);
        invocation
            .arg(now)
            .arg(now.saturating_add(micros(lease)))
            .arg(limit)
            .arg(token.to_string());
        let mut conn = self.conn.clone();
        let flat: Vec<(String, u32)> = invocation
            .invoke_async(&mut conn)
            .await
            .map_err(store_error)?;
        let mut out = Vec::with_capacity(flat.len());
        for (json, attempt) in flat {
            let stored: Stored =
                serde_json::from_str(&json).map_err(|e| StoreError::from(Error::from(e)))?;
            out.push(ClaimedEntry {
                entry: OutboxEntry {
                    id: stored.id,
                    event_id: stored.event_id,
                    event_type: stored.event_type,
                    target: stored.target,
                    body: stored.body,
                    created_at: DateTime::from_timestamp_micros(stored.created_at)
                        .unwrap_or_default(),
                },
                attempt,
                lease: token,
            });
        }
        Ok(out)
    }

    async fn finish(&self, claimed: &ClaimedEntry) -> Result<(), StoreError> {
        let mut invocation = self.keys(&self.scripts[2]);
        invocation.arg(claimed.entry.id.to_string());
        let mut conn = self.conn.clone();
        let _: i64 = invocation
            .invoke_async(&mut conn)
            .await
            .map_err(store_error)?;
        Ok(())
    }

    async fn retry(&self, claimed: &ClaimedEntry, delay: Duration) -> Result<bool, StoreError> {
        let mut invocation = self.keys(&self.scripts[3]);
        invocation
            .arg(claimed.entry.id.to_string())
            .arg(claimed.lease.to_string())
            .arg(self.now().saturating_add(micros(delay)));
        let mut conn = self.conn.clone();
        let changed: i64 = invocation
            .invoke_async(&mut conn)
            .await
            .map_err(store_error)?;
        Ok(changed == 1)
    }

    async fn pending(&self) -> Result<u64, StoreError> {
        let mut conn = self.conn.clone();
        conn.zcard(&self.queue).await.map_err(store_error)
    }
}
