//! [`RedisRateLimiter`]: the [`RateLimiter`] port shared by every instance on one
//! Redis (or Redis Cluster): GCRA in one Lua script, one round trip per check.
//!
//! Each limit is one string key `<prefix>rl:{<key>}` holding the theoretical arrival
//! time in ms, expiring when the quota is whole again, so idle clients cost nothing.
//! The key is its own hash tag: on a cluster each limit lives in one slot, and the
//! script touches that key only. The clock is Redis' `TIME`, so instances with
//! skewed clocks still enforce one limit.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use colloquy_core::ratelimit::{Decision, Quota, RateLimiter};
use colloquy_core::StoreError;
use redis::Script;

use crate::conn::Conn;
use crate::error::Error;
use crate::store::RedisStore;

/// A rate limiter on the store's Redis; see the [module docs](self).
#[derive(Clone)]
pub struct RedisRateLimiter {
    conn: Conn,
    prefix: String,
    script: std::sync::Arc<Script>,
}

impl fmt::Debug for RedisRateLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisRateLimiter")
            .field("prefix", &self.prefix)
            .field("cluster", &self.conn.is_cluster())
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// A rate limiter sharing this store's connection and key prefix.
    #[must_use]
    pub fn rate_limiter(&self) -> RedisRateLimiter {
        RedisRateLimiter {
            conn: self.conn.clone(),
            prefix: self.keys.prefix().to_owned(),
            script: std::sync::Arc::new(Script::new(include_str!("../lua/rate_limit.lua"))),
        }
    }
}

impl RedisRateLimiter {
    /// The Redis key of a limit: the caller's key is its own hash tag. `{` and `}` in
    /// it (never produced by Colloquy) are replaced so the tag stays whole.
    fn key(&self, key: &str) -> String {
        let tag: String = key
            .chars()
            .map(|c| if matches!(c, '{' | '}') { '_' } else { c })
            .collect();
        format!("{}rl:{{{tag}}}", self.prefix)
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[async_trait]
impl RateLimiter for RedisRateLimiter {
    async fn check(&self, key: &str, quota: Quota, cost: u32) -> Result<Decision, StoreError> {
        let interval = millis(quota.emission_interval()).max(1);
        let period = interval.saturating_mul(u64::from(quota.count.max(1)));
        let mut conn = self.conn.clone();
        let (allowed, value, reset): (u8, u64, u64) = self
            .script
            .key(self.key(key))
            .arg(interval)
            .arg(period)
            .arg(cost)
            .invoke_async(&mut conn)
            .await
            .map_err(|e| StoreError::from(Error::from(e)))?;
        let reset = Duration::from_millis(reset);
        Ok(if allowed == 1 {
            Decision::Allowed {
                remaining: u32::try_from(value).unwrap_or(u32::MAX),
                reset,
            }
        } else {
            Decision::Limited {
                retry_after: Duration::from_millis(value),
                reset,
            }
        })
    }
}
