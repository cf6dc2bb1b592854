//! [`RedisIdempotency`]: `Idempotency-Key` results shared by every instance on one
//! Redis. One key per request key (`idem:{<hash>}`, its own hash tag), claimed with
//! `SET NX PX` in one script: of concurrent claims exactly one wins.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use colloquy_core::idempotency::{Claim, IdempotencyStore, Recorded, CLAIM_TTL, IDEMPOTENCY_TTL};
use colloquy_core::StoreError;
use redis::{AsyncCommands, Script};
use serde::{Deserialize, Serialize};

use crate::conn::Conn;
use crate::error::Error;
use crate::store::RedisStore;

/// What the key holds: a claim in progress, or a result. A claim serializes as
/// `{"pending":...}`, which the release script relies on.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Held {
    Pending(String),
    Done(Recorded),
}

/// `Idempotency-Key` results on the store's Redis; see the [module docs](self).
#[derive(Clone)]
pub struct RedisIdempotency {
    conn: Conn,
    prefix: String,
    claim_ttl: std::time::Duration,
    result_ttl: std::time::Duration,
    claim: Arc<Script>,
    release: Arc<Script>,
}

impl fmt::Debug for RedisIdempotency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisIdempotency")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// `Idempotency-Key` results sharing this store's connection and key prefix,
    /// claims held for [`CLAIM_TTL`] and results kept for [`IDEMPOTENCY_TTL`].
    #[must_use]
    pub fn idempotency(&self) -> RedisIdempotency {
        self.idempotency_with_ttls(CLAIM_TTL, IDEMPOTENCY_TTL)
    }

    /// [`RedisStore::idempotency`] holding claims for `claim_ttl` and results for
    /// `result_ttl` (tests use short ones).
    #[must_use]
    pub fn idempotency_with_ttls(
        &self,
        claim_ttl: std::time::Duration,
        result_ttl: std::time::Duration,
    ) -> RedisIdempotency {
        RedisIdempotency {
            conn: self.conn.clone(),
            prefix: self.keys.prefix().to_owned(),
            claim_ttl,
            result_ttl,
            claim: Arc::new(Script::new(include_str!("../lua/idempotency_claim.lua"))),
            release: Arc::new(Script::new(include_str!("../lua/idempotency_release.lua"))),
        }
    }
}

fn store_error(e: redis::RedisError) -> StoreError {
    StoreError::from(Error::from(e))
}

fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl RedisIdempotency {
    fn key(&self, key: &str) -> String {
        let tag: String = key.chars().filter(|c| !matches!(c, '{' | '}')).collect();
        format!("{}idem:{{{tag}}}", self.prefix)
    }
}

#[async_trait]
impl IdempotencyStore for RedisIdempotency {
    async fn claim(&self, key: &str, fingerprint: &str) -> Result<Claim, StoreError> {
        let pending = serde_json::to_string(&Held::Pending(fingerprint.to_owned()))
            .map_err(|e| StoreError::from(Error::from(e)))?;
        let mut conn = self.conn.clone();
        let held: Option<String> = self
            .claim
            .key(self.key(key))
            .arg(pending)
            .arg(millis(self.claim_ttl).max(1))
            .invoke_async(&mut conn)
            .await
            .map_err(store_error)?;
        let Some(held) = held else {
            return Ok(Claim::Claimed);
        };
        Ok(
            match serde_json::from_str::<Held>(&held)
                .map_err(|e| StoreError::from(Error::from(e)))?
            {
                Held::Pending(fingerprint) => Claim::InProgress { fingerprint },
                Held::Done(record) => Claim::Done(record),
            },
        )
    }

    async fn complete(&self, key: &str, record: &Recorded) -> Result<(), StoreError> {
        let done = serde_json::to_string(&Held::Done(record.clone()))
            .map_err(|e| StoreError::from(Error::from(e)))?;
        let mut conn = self.conn.clone();
        let _: () = conn
            .pset_ex(self.key(key), done, millis(self.result_ttl).max(1))
            .await
            .map_err(store_error)?;
        Ok(())
    }

    async fn release(&self, key: &str) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let _: i64 = self
            .release
            .key(self.key(key))
            .invoke_async(&mut conn)
            .await
            .map_err(store_error)?;
        Ok(())
    }
}
