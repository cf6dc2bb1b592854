//! Rate limits: the [`RateLimiter`] port, the GCRA arithmetic every adapter shares,
//! and [`Admission`], the policy that says which quota each action of a visitor
//! spends.
//!
//! GCRA (the generic cell rate algorithm) keeps one number per key, the
//! *theoretical arrival time* (TAT). A quota of `count` per `period` admits a burst
//! of `count` and then one request every `period / count`. It needs no background
//! refill and no list of past requests, so a shared store (Redis) checks it in one
//! round trip, and memory per key is constant.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::error::StoreError;
use crate::session::SessionRef;

/// A quota: at most `count` units per `period`, in bursts of up to `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Quota {
    /// Units per period (≥ 1).
    pub count: u32,
    /// The window (> 0).
    pub period: Duration,
}

impl Quota {
    /// The time one unit takes to be earned back: `period / count`.
    #[must_use]
    pub fn emission_interval(&self) -> Duration {
        self.period / self.count.max(1)
    }
}

impl fmt::Display for Quota {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.period.as_secs() {
            _ if self.period.subsec_nanos() != 0 => {
                write!(f, "{}/{}ms", self.count, self.period.as_millis())
            }
            60 => write!(f, "{}/min", self.count),
            3600 => write!(f, "{}/hour", self.count),
            86_400 => write!(f, "{}/day", self.count),
            s => write!(f, "{}/{s}s", self.count),
        }
    }
}

/// Why a quota did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid quota {0:?}: use COUNT/PERIOD, e.g. 20/min, 100/hour, 5/10s, 1000/day")]
pub struct QuotaError(String);

impl FromStr for Quota {
    type Err = QuotaError;

    /// Reads `COUNT/PERIOD`: a period of `s`, `sec`, `min`, `hour`, `day`, or a
    /// number with `ms`, `s`, `m`, `h`, `d` (`5/10s`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let error = || QuotaError(s.to_owned());
        let (count, period) = s.trim().split_once('/').ok_or_else(error)?;
        let count: u32 = count.trim().parse().map_err(|_| error())?;
        let period = period.trim();
        let split = period
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(period.len());
        let (n, unit) = period.split_at(split);
        let n: u64 = if n.is_empty() {
            1
        } else {
            n.parse().map_err(|_| error())?
        };
        let millis: u64 = match unit {
            "ms" => 1,
            "s" | "sec" | "second" => 1_000,
            "m" | "min" | "minute" => 60_000,
            "h" | "hour" => 3_600_000,
            "d" | "day" => 86_400_000,
            _ => return Err(error()),
        };
        let period = n
            .checked_mul(millis)
            .map(Duration::from_millis)
            .ok_or_else(error)?;
        if count == 0 || period.is_zero() {
            return Err(error());
        }
        Ok(Self { count, period })
    }
}

/// The outcome of a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Admitted; the units were spent.
    Allowed {
        /// Units left in the current burst.
        remaining: u32,
        /// When the quota is whole again.
        reset: Duration,
    },
    /// Refused; nothing was spent.
    Limited {
        /// When `cost` units will be available.
        retry_after: Duration,
        /// When the quota is whole again.
        reset: Duration,
    },
}

/// The GCRA step, in milliseconds on any monotonic or wall clock shared by the
/// callers of one key: given the stored TAT (or none) and `now`, whether `cost`
/// units of `quota` are admitted and the TAT to store if so.
///
/// Every adapter calls this (the Redis adapter runs the same arithmetic in Lua).
#[must_use]
pub fn gcra(quota: Quota, cost: u32, stored_tat_ms: Option<u64>, now_ms: u64) -> (Decision, u64) {
    let interval = u64::try_from(quota.emission_interval().as_millis())
        .unwrap_or(u64::MAX)
        .max(1);
    let period = interval.saturating_mul(u64::from(quota.count.max(1)));
    let tat = stored_tat_ms.unwrap_or(now_ms).max(now_ms);
    let new_tat = tat.saturating_add(interval.saturating_mul(u64::from(cost)));
    let allow_at = new_tat.saturating_sub(period);
    if now_ms < allow_at {
        let decision = Decision::Limited {
            retry_after: Duration::from_millis(allow_at - now_ms),
            reset: Duration::from_millis(tat - now_ms),
        };
        return (decision, tat);
    }
    let used = new_tat - now_ms;
    let remaining = (period.saturating_sub(used)) / interval;
    let decision = Decision::Allowed {
        remaining: u32::try_from(remaining).unwrap_or(u32::MAX),
        reset: Duration::from_millis(used),
    };
    (decision, new_tat)
}

/// Counts units against quotas, per key.
///
/// Adapters: in memory (one process), Redis (shared by every instance, one round
/// trip per check).
#[async_trait]
pub trait RateLimiter: Send + Sync + 'static {
    /// Spends `cost` units of `quota` under `key` if they are available, by GCRA
    /// (see [`gcra`]): a fresh key admits a burst of `quota.count`, then one unit per
    /// `quota.period / quota.count`. A refused check spends nothing. Keys of
    /// different quotas never meet: callers put the quota's name in the key.
    async fn check(&self, key: &str, quota: Quota, cost: u32) -> Result<Decision, StoreError>;

    /// Runs `checks` in order as [`RateLimiter::check`] would, stopping at the first
    /// refusal; returns the decisions made, one per check run (a refusal is the
    /// last). Units spent by earlier checks stay spent. The default calls `check`
    /// once per check; an adapter overrides it to make the sequence one round trip.
    async fn check_in_order(&self, checks: &[LimitCheck]) -> Result<Vec<Decision>, StoreError> {
        let mut decisions = Vec::with_capacity(checks.len());
        for c in checks {
            let decision = self.check(&c.key, c.quota, c.cost).await?;
            let refused = matches!(decision, Decision::Limited { .. });
            decisions.push(decision);
            if refused {
                break;
            }
        }
        Ok(decisions)
    }

    /// How many units each of `windows` has counted in its current fixed window
    /// (see [`TokenWindow`]), and when that window ends; one round trip on a shared
    /// limiter. Reading spends nothing. The default: `not_supported`.
    async fn window_usage(&self, windows: &[TokenWindow]) -> Result<Vec<WindowUsage>, StoreError> {
        let _ = windows;
        Err(StoreError::NotSupported("token windows"))
    }

    /// Adds `amount` units to the current fixed window of each of `windows`, even
    /// past any limit (they were used), and returns the windows as
    /// [`RateLimiter::window_usage`] would read them after the addition; one round
    /// trip on a shared limiter. The default: `not_supported`.
    async fn window_add(
        &self,
        windows: &[TokenWindow],
        amount: u64,
    ) -> Result<Vec<WindowUsage>, StoreError> {
        let _ = (windows, amount);
        Err(StoreError::NotSupported("token windows"))
    }
}

/// A counter of units (tokens) over fixed windows of `period`, aligned to the Unix
/// epoch on the limiter's clock (a `1/day` window is a UTC day): the count starts
/// again from 0 when a window ends. Keys of windows never meet keys of
/// [`RateLimiter::check`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TokenWindow {
    /// The counter's key (the budget's name and whom it counts).
    pub key: String,
    /// The window's length (> 0).
    pub period: Duration,
}

/// The state of one [`TokenWindow`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowUsage {
    /// Units counted in the current window.
    pub used: u64,
    /// When the current window ends (and `used` is 0 again).
    pub resets_in: Duration,
}

/// The fixed-window arithmetic every adapter shares, in ms since the Unix epoch:
/// the index of the window `now_ms` is in, and the ms until it ends.
#[must_use]
pub fn window_at(period: Duration, now_ms: u64) -> (u64, Duration) {
    let period_ms = u64::try_from(period.as_millis()).unwrap_or(u64::MAX).max(1);
    let index = now_ms / period_ms;
    let ends = index.saturating_add(1).saturating_mul(period_ms);
    (index, Duration::from_millis(ends.saturating_sub(now_ms)))
}

/// One check of [`RateLimiter::check_in_order`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitCheck {
    /// The limit's key (the quota's name and whom it counts).
    pub key: String,
    /// The quota.
    pub quota: Quota,
    /// Units to spend.
    pub cost: u32,
}

/// What a visitor does, for [`Admission::admit`].
#[derive(Debug, Clone, Copy)]
pub enum Action<'a> {
    /// Any request (counted per client IP).
    Request,
    /// Creating a session.
    CreateSession,
    /// Writing a message into a session (not chat).
    CreateMessage(&'a SessionRef),
    /// A chat turn (stores two messages).
    Chat(&'a SessionRef),
}

/// Which quotas apply; `None` is unlimited. See the server's `--rate-*` flags.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RatePolicy {
    /// Every request, per client IP.
    pub requests_per_ip: Option<Quota>,
    /// Chat turns, per client IP.
    pub chats_per_ip: Option<Quota>,
    /// Session creations, per client IP.
    pub sessions_per_ip: Option<Quota>,
    /// Chat turns, per session.
    pub chats_per_session: Option<Quota>,
    /// Stored messages, per session (a chat stores two): a cap over the session's
    /// longest possible life.
    pub messages_per_session: Option<Quota>,
}

impl RatePolicy {
    /// The defaults of `--access public`: a visitor chatting normally never meets
    /// them; a script hammering from one IP does within seconds.
    #[must_use]
    pub fn public_defaults(max_session_ttl: Duration) -> Self {
        let q = |count, secs| {
            Some(Quota {
                count,
                period: Duration::from_secs(secs),
            })
        };
        Self {
            requests_per_ip: q(300, 60),
            chats_per_ip: q(30, 60),
            sessions_per_ip: q(20, 3600),
            chats_per_session: q(10, 60),
            messages_per_session: Some(Quota {
                count: 1000,
                period: max_session_ttl,
            }),
        }
    }

    /// Whether any quota is set.
    #[must_use]
    pub fn is_unlimited(&self) -> bool {
        *self == Self::default()
    }
}

/// A refused action: which quota, and when to come back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rate limit {policy} ({quota}) reached; retry in {}s", retry_after.as_secs().max(1))]
pub struct RateLimited {
    /// The quota's name, as in the `RateLimit-Policy` header (`chats-per-ip`, ...).
    pub policy: &'static str,
    /// The quota.
    pub quota: Quota,
    /// When the action will be admitted.
    pub retry_after: Duration,
    /// When the quota is whole again.
    pub reset: Duration,
}

/// Why [`Admission::admit`] refused.
#[derive(Debug, thiserror::Error)]
pub enum AdmissionError {
    /// A quota is spent.
    #[error(transparent)]
    Limited(#[from] RateLimited),
    /// The limiter's store did not answer.
    #[error("rate limiter unavailable")]
    Store(#[source] StoreError),
}

/// The rate-limit policy over a [`RateLimiter`]: which quotas an action spends.
#[derive(Clone)]
pub struct Admission {
    limiter: Arc<dyn RateLimiter>,
    policy: RatePolicy,
}

impl fmt::Debug for Admission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Admission")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl Admission {
    /// The policy over a limiter.
    pub fn new(limiter: Arc<dyn RateLimiter>, policy: RatePolicy) -> Self {
        Self { limiter, policy }
    }

    /// The policy in force.
    #[must_use]
    pub fn policy(&self) -> &RatePolicy {
        &self.policy
    }

    /// Spends the quotas `action` needs, for a visitor at `ip` (`None`: per-IP
    /// quotas are skipped, e.g. an embedder that knows no address). Checks run in a
    /// fixed order and stop at the first refusal; units spent by earlier checks of
    /// a refused action stay spent (a client over any limit is slowed everywhere).
    ///
    /// # Errors
    /// [`AdmissionError::Limited`] naming the quota, or the limiter's store failure.
    pub async fn admit(
        &self,
        ip: Option<IpAddr>,
        action: Action<'_>,
    ) -> Result<(), AdmissionError> {
        self.admit_all(ip, &[action]).await
    }

    /// [`Admission::admit`] for several actions of one request (e.g. the request
    /// itself and the chat turn it asks for), in order, in one call of the limiter:
    /// one round trip on a shared limiter.
    ///
    /// # Errors
    /// As [`Admission::admit`].
    pub async fn admit_all(
        &self,
        ip: Option<IpAddr>,
        actions: &[Action<'_>],
    ) -> Result<(), AdmissionError> {
        let (names, checks): (Vec<&'static str>, Vec<LimitCheck>) = actions
            .iter()
            .flat_map(|action| self.checks(ip, *action))
            .unzip();
        if checks.is_empty() {
            return Ok(());
        }
        let decisions = self
            .limiter
            .check_in_order(&checks)
            .await
            .map_err(AdmissionError::Store)?;
        for (i, decision) in decisions.into_iter().enumerate() {
            if let Decision::Limited { retry_after, reset } = decision {
                return Err(RateLimited {
                    policy: names[i],
                    quota: checks[i].quota,
                    retry_after,
                    reset,
                }
                .into());
            }
        }
        Ok(())
    }

    /// The checks `action` needs, named by their policy, in order.
    fn checks(&self, ip: Option<IpAddr>, action: Action<'_>) -> Vec<(&'static str, LimitCheck)> {
        let p = &self.policy;
        let ip_key = |name: &str| ip.map(|ip| format!("{name}:{ip}"));
        let session_key = |name: &str, s: &SessionRef| format!("{name}:{}", s.as_str());
        let checks: Vec<(&'static str, Option<Quota>, Option<String>, u32)> = match action {
            Action::Request => vec![(
                "requests-per-ip",
                p.requests_per_ip,
                ip_key("requests-per-ip"),
                1,
            )],
            Action::CreateSession => vec![(
                "sessions-per-ip",
                p.sessions_per_ip,
                ip_key("sessions-per-ip"),
                1,
            )],
            Action::CreateMessage(s) => vec![(
                "messages-per-session",
                p.messages_per_session,
                Some(session_key("messages-per-session", s)),
                1,
            )],
            Action::Chat(s) => vec![
                ("chats-per-ip", p.chats_per_ip, ip_key("chats-per-ip"), 1),
                (
                    "chats-per-session",
                    p.chats_per_session,
                    Some(session_key("chats-per-session", s)),
                    1,
                ),
                (
                    "messages-per-session",
                    p.messages_per_session,
                    Some(session_key("messages-per-session", s)),
                    2,
                ),
            ],
        };
        checks
            .into_iter()
            .filter_map(|(name, quota, key, cost)| {
                Some((
                    name,
                    LimitCheck {
                        key: key?,
                        quota: quota?,
                        cost,
                    },
                ))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn per_sec(count: u32) -> Quota {
        Quota {
            count,
            period: Duration::from_secs(1),
        }
    }

    #[test]
    fn quotas_parse_and_print() {
        assert_eq!(
            "20/min".parse(),
            Ok(Quota {
                count: 20,
                period: Duration::from_secs(60)
            })
        );
        assert_eq!(
            "5/10s".parse(),
            Ok(Quota {
                count: 5,
                period: Duration::from_secs(10)
            })
        );
        assert_eq!(
            "100/hour".parse::<Quota>().map(|q| q.to_string()),
            Ok("100/hour".to_owned())
        );
        assert_eq!(
            "1000/day".parse::<Quota>().map(|q| q.period),
            Ok(Duration::from_secs(86_400))
        );
        for bad in [
            "",
            "10",
            "0/min",
            "10/0s",
            "x/min",
            "10/fortnight",
            "-1/min",
        ] {
            assert!(bad.parse::<Quota>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_fresh_key_admits_a_burst_then_one_per_interval() {
        let q = per_sec(4); // one unit per 250 ms
        let mut tat = None;
        for i in 0..4 {
            let (d, t) = gcra(q, 1, tat, 1_000);
            assert!(
                matches!(d, Decision::Allowed { remaining, .. } if remaining == 3 - i),
                "{i}: {d:?}"
            );
            tat = Some(t);
        }
        let (d, same) = gcra(q, 1, tat, 1_000);
        assert_eq!(
            d,
            Decision::Limited {
                retry_after: Duration::from_millis(250),
                reset: Duration::from_millis(1000)
            }
        );
        assert_eq!(Some(same), tat, "a refusal spends nothing");
        let (d, _) = gcra(q, 1, tat, 1_250);
        assert!(matches!(d, Decision::Allowed { remaining: 0, .. }), "{d:?}");
    }

    #[test]
    fn cost_spends_several_units_or_none() {
        let q = per_sec(3);
        let (d, tat) = gcra(q, 2, None, 0);
        assert!(matches!(d, Decision::Allowed { remaining: 1, .. }));
        let (d, _) = gcra(q, 2, Some(tat), 0);
        assert!(
            matches!(d, Decision::Limited { .. }),
            "only one unit is left"
        );
    }

    proptest! {
        /// GCRA's guarantee: between any two admitted requests `elapsed` apart, at
        /// most `count + elapsed / interval` were admitted (a burst, then the rate).
        #[test]
        fn never_more_than_the_burst_plus_the_rate(count in 1u32..20, gaps in proptest::collection::vec(0u64..400, 1..200)) {
            let q = per_sec(count);
            let interval = 1000 / u64::from(count);
            let mut tat = None;
            let mut now = 0;
            let mut admitted = Vec::new();
            for gap in gaps {
                now += gap;
                let (d, t) = gcra(q, 1, tat, now);
                if matches!(d, Decision::Allowed { .. }) {
                    admitted.push(now);
                    tat = Some(t);
                }
            }
            for (i, first) in admitted.iter().enumerate() {
                for (j, last) in admitted.iter().enumerate().skip(i) {
                    let allowed = u64::from(count) + (last - first) / interval;
                    prop_assert!((j - i + 1) as u64 <= allowed, "{} admitted in {} ms", j - i + 1, last - first);
                }
            }
        }
    }
}
