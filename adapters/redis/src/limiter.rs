//! [`RedisRateLimiter`]: the [`RateLimiter`] port shared by every instance on one
//! Redis (or Redis Cluster): GCRA in one Lua script. All the checks of one request
//! are one round trip on standalone Redis; on a cluster, one per check (each limit
//! is its own slot).
//!
//! Token windows (the token budgets, see `colloquy_core::budget`) are one hash per
//! counter, `<prefix>tw:{budget}:<key>` (`w` the window index, `n` its count),
//! expiring when the window ends; they all share the hash tag `{budget}`, so a
//! chat's windows are one script call (one round trip) on a cluster too.
//!
//! Each limit is one string key `<prefix>rl:{<key>}` holding the theoretical arrival
//! time in ms, expiring when the quota is whole again, so idle clients cost nothing.
//! The key is its own hash tag: on a cluster each limit lives in one slot, and the
//! script touches that key only. The clock is Redis' `TIME`, so instances with
//! skewed clocks still enforce one limit.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use colloquy_core::ratelimit::{
    Decision, LimitCheck, Quota, RateLimiter, TokenWindow, WindowUsage,
};
use colloquy_core::StoreError;
use redis::Script;

use crate::conn::Conn;
use crate::error::Error;
use crate::slots;
use crate::store::RedisStore;

/// A rate limiter on the store's Redis; see the [module docs](self).
#[derive(Clone)]
pub struct RedisRateLimiter {
    conn: Conn,
    prefix: String,
    script: std::sync::Arc<Script>,
    windows: std::sync::Arc<Script>,
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
            windows: std::sync::Arc::new(Script::new(include_str!("../lua/token_window.lua"))),
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

impl RedisRateLimiter {
    /// The Redis key of a token window. Every window shares one hash tag, so the
    /// windows of one chat (deployment, IP, session) are one script call on a
    /// cluster too: one round trip per read or charge.
    fn window_key(&self, key: &str) -> String {
        format!("{}tw:{{budget}}:{key}", self.prefix)
    }

    /// Reads (`add` 0) or adds to `windows` in one script call.
    async fn run_windows(
        &self,
        windows: &[TokenWindow],
        add: u64,
    ) -> Result<Vec<WindowUsage>, StoreError> {
        if windows.is_empty() {
            return Ok(Vec::new());
        }
        let mut call = self.windows.prepare_invoke();
        call.arg(add);
        for w in windows {
            call.key(self.window_key(&w.key))
                .arg(millis(w.period).max(1));
        }
        let mut conn = self.conn.clone();
        let flat: Vec<u64> = call
            .invoke_async(&mut conn)
            .await
            .map_err(|e| StoreError::from(Error::from(e)))?;
        Ok(flat
            .chunks_exact(2)
            .map(|d| WindowUsage {
                used: d[0],
                resets_in: Duration::from_millis(d[1]),
            })
            .collect())
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl RedisRateLimiter {
    /// Runs `checks` as one script call: one round trip.
    async fn run(&self, checks: &[LimitCheck]) -> Result<Vec<Decision>, StoreError> {
        let mut call = self.script.prepare_invoke();
        for c in checks {
            let interval = millis(c.quota.emission_interval()).max(1);
            let period = interval.saturating_mul(u64::from(c.quota.count.max(1)));
            call.key(self.key(&c.key))
                .arg(interval)
                .arg(period)
                .arg(c.cost);
        }
        let mut conn = self.conn.clone();
        let flat: Vec<u64> = call
            .invoke_async(&mut conn)
            .await
            .map_err(|e| StoreError::from(Error::from(e)))?;
        Ok(flat
            .chunks_exact(3)
            .map(|d| {
                let reset = Duration::from_millis(d[2]);
                if d[0] == 1 {
                    Decision::Allowed {
                        remaining: u32::try_from(d[1]).unwrap_or(u32::MAX),
                        reset,
                    }
                } else {
                    Decision::Limited {
                        retry_after: Duration::from_millis(d[1]),
                        reset,
                    }
                }
            })
            .collect())
    }
}

#[async_trait]
impl RateLimiter for RedisRateLimiter {
    async fn check(&self, key: &str, quota: Quota, cost: u32) -> Result<Decision, StoreError> {
        let check = LimitCheck {
            key: key.to_owned(),
            quota,
            cost,
        };
        self.run(std::slice::from_ref(&check))
            .await?
            .pop()
            .ok_or_else(|| StoreError::from(Error::corrupt("rate limit reply")))
    }

    /// One round trip on standalone Redis, and on a cluster when every key is in one
    /// slot; else one per check.
    async fn check_in_order(&self, checks: &[LimitCheck]) -> Result<Vec<Decision>, StoreError> {
        let one_slot = !self.conn.is_cluster()
            || checks.windows(2).all(|w| {
                slots::key_slot(&self.key(&w[0].key)) == slots::key_slot(&self.key(&w[1].key))
            });
        if one_slot {
            return self.run(checks).await;
        }
        let mut decisions = Vec::with_capacity(checks.len());
        for c in checks {
            let mut decided = self.run(std::slice::from_ref(c)).await?;
            let refused = matches!(decided.last(), Some(Decision::Limited { .. }));
            decisions.append(&mut decided);
            if refused {
                break;
            }
        }
        Ok(decisions)
    }

    /// One round trip, on a cluster too (every window shares one slot).
    async fn window_usage(&self, windows: &[TokenWindow]) -> Result<Vec<WindowUsage>, StoreError> {
        self.run_windows(windows, 0).await
    }

    /// One round trip, on a cluster too.
    async fn window_add(
        &self,
        windows: &[TokenWindow],
        amount: u64,
    ) -> Result<Vec<WindowUsage>, StoreError> {
        self.run_windows(windows, amount).await
    }
}
