//! Token budgets: how many tokens the model may use per period, for the whole
//! deployment, per client IP and per session (`--token-budget`,
//! `--rate-tokens-per-ip`, `--rate-tokens-per-session`).
//!
//! **Decision**: a budget counts the tokens answers *actually used* (prompt and
//! completion, as the model reported them, or the estimate stored with the answer)
//! in fixed windows of its period aligned to the Unix epoch on the limiter's clock
//! (`/day` is a UTC day), through the [`RateLimiter`] port's token windows: shared
//! by every instance on one Redis, per process otherwise. Before a generation
//! starts, [`TokenBudgets::admit`] reads the windows (one call of the limiter, one
//! round trip on Redis) and refuses when one is already spent; after the answer,
//! [`BudgetCharge::charge`] adds what it used (one more call, made while the answer
//! is stored, before the client hears it ended). Since an answer is only charged once it ends, every answer admitted
//! while a budget still had room finishes: a budget is overshot by at most what the
//! answers in flight at the moment it ran out use (each: its prompt plus at most
//! `--max-answer-tokens`).

use std::fmt;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use uuid::Uuid;

use crate::error::ServiceError;
use crate::ratelimit::{Quota, RateLimited, RateLimiter, TokenWindow, WindowUsage};

/// The policy name of the deployment budget (`RateLimit-Policy`, metrics).
pub const DEPLOYMENT: &str = "token-budget";
/// The policy name of the per-IP token quota.
pub const PER_IP: &str = "tokens-per-ip";
/// The policy name of the per-session token quota.
pub const PER_SESSION: &str = "tokens-per-session";

/// Which token budgets apply; `None` is unlimited. `count` of each [`Quota`] is in
/// tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenPolicy {
    /// Every answer of the deployment (`--token-budget`).
    pub deployment: Option<Quota>,
    /// Answers to one client IP (`--rate-tokens-per-ip`).
    pub per_ip: Option<Quota>,
    /// Answers in one session (`--rate-tokens-per-session`).
    pub per_session: Option<Quota>,
}

impl TokenPolicy {
    /// Whether no budget is set.
    #[must_use]
    pub fn is_unlimited(&self) -> bool {
        *self == Self::default()
    }
}

/// What the budgets saw last on this instance, for metrics.
#[derive(Debug, Default)]
struct Seen {
    /// Tokens left in the deployment budget's window at the last read or charge
    /// (`u64::MAX`: not read yet).
    left: AtomicU64,
    /// Tokens charged by this instance.
    charged: AtomicU64,
    /// Refusals, per policy: deployment, per IP, per session.
    refused: [AtomicU64; 3],
}

/// A snapshot of [`TokenBudgets`]' figures on this instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetFigures {
    /// The deployment budget, if set.
    pub deployment: Option<Quota>,
    /// Tokens left in its current window when last read (`None`: not read yet).
    pub left: Option<u64>,
    /// Tokens this instance charged.
    pub charged: u64,
    /// Chats this instance refused, by policy name.
    pub refused: [(&'static str, u64); 3],
}

/// The token budgets over a [`RateLimiter`]: admits a generation and charges it.
#[derive(Clone)]
pub struct TokenBudgets {
    limiter: Arc<dyn RateLimiter>,
    policy: TokenPolicy,
    seen: Arc<Seen>,
}

impl fmt::Debug for TokenBudgets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenBudgets")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl TokenBudgets {
    /// The policy over a limiter (the one the rate limits use: shared on Redis).
    pub fn new(limiter: Arc<dyn RateLimiter>, policy: TokenPolicy) -> Self {
        let seen = Seen {
            left: AtomicU64::new(u64::MAX),
            ..Seen::default()
        };
        Self {
            limiter,
            policy,
            seen: Arc::new(seen),
        }
    }

    /// The policy in force.
    #[must_use]
    pub fn policy(&self) -> &TokenPolicy {
        &self.policy
    }

    /// This instance's figures, for metrics.
    #[must_use]
    pub fn figures(&self) -> BudgetFigures {
        let left = self.seen.left.load(Ordering::Relaxed);
        BudgetFigures {
            deployment: self.policy.deployment,
            left: (left != u64::MAX).then_some(left),
            charged: self.seen.charged.load(Ordering::Relaxed),
            refused: [
                (DEPLOYMENT, self.seen.refused[0].load(Ordering::Relaxed)),
                (PER_IP, self.seen.refused[1].load(Ordering::Relaxed)),
                (PER_SESSION, self.seen.refused[2].load(Ordering::Relaxed)),
            ],
        }
    }

    /// The windows that count a generation for `ip` in `session`, each with its
    /// policy name and quota, deployment first.
    fn windows(
        &self,
        ip: Option<IpAddr>,
        session: Option<Uuid>,
    ) -> Vec<(usize, &'static str, Quota, TokenWindow)> {
        let p = &self.policy;
        let mut out = Vec::with_capacity(3);
        if let Some(q) = p.deployment {
            out.push((0, DEPLOYMENT, q, window(DEPLOYMENT.to_owned(), q)));
        }
        if let (Some(q), Some(ip)) = (p.per_ip, ip) {
            out.push((1, PER_IP, q, window(format!("{PER_IP}:{ip}"), q)));
        }
        if let (Some(q), Some(s)) = (p.per_session, session) {
            out.push((2, PER_SESSION, q, window(format!("{PER_SESSION}:{s}"), q)));
        }
        out
    }

    /// Admits a generation for `ip` (`None`: the per-IP quota is skipped) in the
    /// session `session` (`None`: the per-session quota is skipped): refuses when a
    /// budget's window has already counted its whole quota. Spends nothing; the
    /// returned [`BudgetCharge`] charges what the answer used.
    ///
    /// # Errors
    /// [`ServiceError::BudgetExhausted`] (the deployment budget),
    /// [`ServiceError::RateLimited`] naming `tokens-per-ip` or `tokens-per-session`,
    /// or the limiter's store failure.
    pub async fn admit(
        &self,
        ip: Option<IpAddr>,
        session: Option<Uuid>,
    ) -> Result<BudgetCharge, ServiceError> {
        let windows = self.windows(ip, session);
        let charge = BudgetCharge {
            budgets: self.clone(),
            windows: windows.iter().map(|(.., w)| w.clone()).collect(),
        };
        if windows.is_empty() {
            return Ok(charge);
        }
        let read: Vec<TokenWindow> = windows.iter().map(|(.., w)| w.clone()).collect();
        let usage = self
            .limiter
            .window_usage(&read)
            .await
            .map_err(ServiceError::Store)?;
        self.note_left(&windows, &usage);
        for ((i, name, quota, _), u) in windows.iter().zip(&usage) {
            if u.used >= u64::from(quota.count) {
                self.seen.refused[*i].fetch_add(1, Ordering::Relaxed);
                let limited = RateLimited {
                    policy: name,
                    quota: *quota,
                    retry_after: u.resets_in,
                    reset: u.resets_in,
                };
                return Err(if *i == 0 {
                    ServiceError::BudgetExhausted(limited)
                } else {
                    ServiceError::RateLimited(limited)
                });
            }
        }
        Ok(charge)
    }

    /// Remembers the deployment budget's room from a read of `windows`.
    fn note_left(
        &self,
        windows: &[(usize, &'static str, Quota, TokenWindow)],
        usage: &[WindowUsage],
    ) {
        if let Some(((_, _, quota, _), u)) = windows.iter().zip(usage).find(|((i, ..), _)| *i == 0)
        {
            let left = u64::from(quota.count).saturating_sub(u.used);
            self.seen.left.store(left, Ordering::Relaxed);
        }
    }
}

fn window(key: String, quota: Quota) -> TokenWindow {
    TokenWindow {
        key,
        period: quota.period,
    }
}

/// What [`TokenBudgets::admit`] hands a generation: the windows to charge once it
/// knows what it used.
#[derive(Clone)]
pub struct BudgetCharge {
    budgets: TokenBudgets,
    windows: Vec<TokenWindow>,
}

impl fmt::Debug for BudgetCharge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BudgetCharge")
            .field("windows", &self.windows)
            .finish_non_exhaustive()
    }
}

impl BudgetCharge {
    /// Adds `tokens` to every budget the generation counts against. Nothing to
    /// charge costs no call; a limiter that fails is logged (the answer is stored
    /// already; the tokens go uncounted).
    pub async fn charge(&self, tokens: u64) {
        if tokens == 0 || self.windows.is_empty() {
            return;
        }
        self.budgets
            .seen
            .charged
            .fetch_add(tokens, Ordering::Relaxed);
        match self.budgets.limiter.window_add(&self.windows, tokens).await {
            Ok(usage) => {
                if let (Some(quota), Some(first)) = (self.budgets.policy.deployment, usage.first())
                {
                    let left = u64::from(quota.count).saturating_sub(first.used);
                    self.budgets.seen.left.store(left, Ordering::Relaxed);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, tokens, "could not charge the token budgets");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::local::LocalRateLimiter;
    use std::time::Duration;

    fn quota(count: u32) -> Quota {
        Quota {
            count,
            period: Duration::from_secs(3600),
        }
    }

    #[tokio::test]
    async fn a_spent_budget_refuses_and_names_itself() {
        let budgets = TokenBudgets::new(
            Arc::new(LocalRateLimiter::new()),
            TokenPolicy {
                deployment: Some(quota(100)),
                per_ip: Some(quota(30)),
                per_session: None,
            },
        );
        let ip: IpAddr = [192, 0, 2, 1].into();
        let charge = budgets.admit(Some(ip), None).await.expect("room");
        charge.charge(30).await;
        match budgets.admit(Some(ip), None).await {
            Err(ServiceError::RateLimited(l)) => {
                assert_eq!(l.policy, PER_IP);
                assert!(l.retry_after <= Duration::from_secs(3600));
            }
            other => panic!("expected the per-IP quota, got {other:?}"),
        }
        let other: IpAddr = [192, 0, 2, 2].into();
        let charge = budgets.admit(Some(other), None).await.expect("room");
        charge.charge(80).await;
        match budgets.admit(Some([192, 0, 2, 3].into()), None).await {
            Err(ServiceError::BudgetExhausted(l)) => assert_eq!(l.policy, DEPLOYMENT),
            other => panic!("expected the deployment budget, got {other:?}"),
        }
        let f = budgets.figures();
        assert_eq!(f.left, Some(0));
        assert_eq!(f.charged, 110);
        assert_eq!(f.refused[0].1 + f.refused[1].1, 2);
    }

    #[tokio::test]
    async fn nothing_charged_costs_no_call() {
        let limiter = Arc::new(LocalRateLimiter::new());
        let budgets = TokenBudgets::new(
            limiter.clone(),
            TokenPolicy {
                deployment: Some(quota(10)),
                ..TokenPolicy::default()
            },
        );
        budgets
            .admit(None, None)
            .await
            .expect("room")
            .charge(0)
            .await;
        assert_eq!(limiter.tracked_windows(), 0);
    }
}
