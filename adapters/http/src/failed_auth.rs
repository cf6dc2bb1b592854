//! The failed-authentication quota (`HttpConfig::failed_auth_quota`, default 10/min):
//! every request whose `Authorization` is not the admin token spends one unit of its
//! client address's quota; over it the answer is 429 instead of 401, so guessing the
//! token is throttled. Counted in this process (GCRA, [`gcra`]), in a map bounded to
//! [`MAX_CLIENTS`] addresses: when it is full, entries whose quota is whole again are
//! dropped, and if none is, the new address is refused too (a flood from more
//! addresses than that throttles failed attempts, never a correct token).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use colloquy_core::ratelimit::{gcra, Decision, Quota, RateLimited};

/// Most client addresses tracked at once.
pub(crate) const MAX_CLIENTS: usize = 65_536;

/// The quota's name, as in `RateLimit-Policy` and error messages.
const POLICY: &str = "failed-auth-per-ip";

/// Failed attempts per client address.
#[derive(Debug)]
pub(crate) struct FailedAuth {
    quota: Option<Quota>,
    started: Instant,
    /// Theoretical arrival time per address, in ms since `started`.
    tats: Mutex<HashMap<Option<IpAddr>, u64>>,
}

impl FailedAuth {
    /// A limiter for `quota` (`None`: unlimited).
    pub(crate) fn new(quota: Option<Quota>) -> Self {
        Self {
            quota,
            started: Instant::now(),
            tats: Mutex::new(HashMap::new()),
        }
    }

    /// Spends one failed attempt from `ip` (`None`: the address is unknown; such
    /// requests share one quota).
    ///
    /// # Errors
    /// [`RateLimited`] when the address is over its quota.
    pub(crate) fn spend(&self, ip: Option<IpAddr>) -> Result<(), RateLimited> {
        let Some(quota) = self.quota else {
            return Ok(());
        };
        let now = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let mut tats = self
            .tats
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if tats.len() >= MAX_CLIENTS && !tats.contains_key(&ip) {
            tats.retain(|_, tat| *tat > now);
            if tats.len() >= MAX_CLIENTS {
                return Err(RateLimited {
                    policy: POLICY,
                    quota,
                    retry_after: quota.emission_interval(),
                    reset: quota.period,
                });
            }
        }
        let (decision, tat) = gcra(quota, 1, tats.get(&ip).copied(), now);
        match decision {
            Decision::Allowed { .. } => {
                tats.insert(ip, tat);
                Ok(())
            }
            Decision::Limited { retry_after, reset } => Err(RateLimited {
                policy: POLICY,
                quota,
                retry_after: retry_after.max(Duration::from_millis(1)),
                reset,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().expect("ip"))
    }

    #[test]
    fn an_address_gets_its_quota_then_is_refused_alone() {
        let quota = Quota {
            count: 3,
            period: Duration::from_secs(3600),
        };
        let limiter = FailedAuth::new(Some(quota));
        for _ in 0..3 {
            assert!(limiter.spend(ip("192.0.2.1")).is_ok());
        }
        let refused = limiter.spend(ip("192.0.2.1")).expect_err("over");
        assert_eq!(refused.policy, POLICY);
        assert!(limiter.spend(ip("192.0.2.2")).is_ok(), "another address");
        assert!(FailedAuth::new(None).spend(ip("192.0.2.1")).is_ok());
    }

    #[test]
    fn the_map_is_bounded() {
        let quota = Quota {
            count: 1,
            period: Duration::from_secs(3600),
        };
        let limiter = FailedAuth::new(Some(quota));
        for i in 0..MAX_CLIENTS {
            let [_, a, b, c] = u32::try_from(i).expect("small").to_be_bytes();
            assert!(limiter.spend(Some(IpAddr::from([10, a, b, c]))).is_ok());
        }
        assert!(limiter.spend(ip("192.0.2.9")).is_err(), "full: refused");
        let held = limiter.tats.lock().expect("lock").len();
        assert_eq!(held, MAX_CLIENTS);
    }
}
