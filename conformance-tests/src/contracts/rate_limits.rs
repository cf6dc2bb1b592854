//! The [`RateLimiter`] contracts: the GCRA bound (a burst, then one unit per
//! interval), what a refusal spends and when to retry, one counter shared by every
//! client of a backend, and [`RateLimiter::check_in_order`] stopping at the first
//! refusal; and the token windows the token budgets count in
//! ([`RateLimiter::window_usage`], [`RateLimiter::window_add`]). Each takes a fresh
//! [`TestRateLimiter`].
//!
//! The contracts run on real time: the Redis limiter reads the server's `TIME`, so
//! no test clock reaches it. Quotas are chosen so that a slow machine cannot change
//! a verdict: the burst contracts use hour-long intervals, the rate contract sleeps
//! out each `retry_after` it is given and bounds admissions by the time it measured
//! itself (never less than the limiter's own).

use std::sync::Arc;
use std::time::Duration;

use colloquy_core::ratelimit::{
    Decision, LimitCheck, Quota, RateLimiter, TokenWindow, WindowUsage,
};
use futures::future::BoxFuture;
use tokio::time::Instant;
use uuid::Uuid;

use crate::harness::teardown_after;
use crate::Subject;

type Teardown = Box<dyn FnOnce() -> BoxFuture<'static, ()> + Send + Sync>;

/// A rate limiter under test: two handles on one fresh, isolated backend, as two
/// server instances hold them (a limiter kept in one process passes a clone of
/// `limiter` as `other`).
pub struct TestRateLimiter {
    /// The limiter under test.
    pub limiter: Arc<dyn RateLimiter>,
    /// A second limiter on the same backend (another connection, as another
    /// instance has): it must count against the same keys.
    pub other: Arc<dyn RateLimiter>,
    teardown: Option<Teardown>,
}

impl std::fmt::Debug for TestRateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestRateLimiter").finish_non_exhaustive()
    }
}

impl TestRateLimiter {
    /// Wraps the two handles.
    pub fn new(limiter: Arc<dyn RateLimiter>, other: Arc<dyn RateLimiter>) -> Self {
        Self {
            limiter,
            other,
            teardown: None,
        }
    }

    /// Runs `teardown` after the contract, whether it passed, failed or timed out.
    #[must_use]
    pub fn with_teardown<F>(mut self, teardown: F) -> Self
    where
        F: FnOnce() -> BoxFuture<'static, ()> + Send + Sync + 'static,
    {
        self.teardown = Some(Box::new(teardown));
        self
    }
}

impl Subject for TestRateLimiter {
    fn teardown(mut self) -> BoxFuture<'static, ()> {
        let teardown = self.teardown.take();
        teardown_after(self, teardown)
    }
}

/// How far a duration the limiter reports may lag its exact value: the time the
/// contract's own calls take (each contract finishes well within this).
const SLACK: Duration = Duration::from_secs(30);

/// A key no other contract uses.
fn key(name: &str) -> String {
    format!("conformance:{}:{name}", Uuid::new_v4().simple())
}

fn per_hour(count: u32) -> Quota {
    Quota {
        count,
        period: Duration::from_secs(3600),
    }
}

async fn check(limiter: &dyn RateLimiter, key: &str, quota: Quota, cost: u32) -> Decision {
    limiter
        .check(key, quota, cost)
        .await
        .unwrap_or_else(|e| panic!("check({key}, {quota}, {cost}) failed: {e}"))
}

async fn in_order(limiter: &dyn RateLimiter, checks: &[LimitCheck]) -> Vec<Decision> {
    limiter
        .check_in_order(checks)
        .await
        .unwrap_or_else(|e| panic!("check_in_order({checks:?}) failed: {e}"))
}

fn limit(key: &str, quota: Quota, cost: u32) -> LimitCheck {
    LimitCheck {
        key: key.to_owned(),
        quota,
        cost,
    }
}

/// Asserts `d` is `Allowed` with `remaining` units left; returns its `reset`.
#[track_caller]
fn assert_allowed(d: Decision, remaining: u32, what: &str) -> Duration {
    match d {
        Decision::Allowed {
            remaining: left,
            reset,
        } if left == remaining => reset,
        other => panic!("{what}: expected Allowed {{ remaining: {remaining}, .. }}, got {other:?}"),
    }
}

/// Asserts `d` is `Limited`; returns its `retry_after` and `reset`.
#[track_caller]
fn assert_limited(d: Decision, what: &str) -> (Duration, Duration) {
    match d {
        Decision::Limited { retry_after, reset } => (retry_after, reset),
        other => panic!("{what}: expected Limited, got {other:?}"),
    }
}

/// Asserts `exact - SLACK <= got <= exact`.
#[track_caller]
fn assert_about(got: Duration, exact: Duration, what: &str) {
    assert!(
        got <= exact && got + SLACK >= exact,
        "{what}: expected {exact:?} less the time the calls took, got {got:?}"
    );
}

/// "a fresh key admits a burst of `quota.count`": each admission reports the units
/// left and when the quota is whole again; the next check is refused, with the
/// time one unit takes to come back and the time until the whole quota is.
pub async fn a_fresh_key_admits_its_burst_then_refuses(s: &TestRateLimiter) {
    let (k, quota) = (key("burst"), per_hour(5));
    let interval = quota.emission_interval();
    // Every figure is counted from now, never from the limiter clock's origin: let
    // that clock (a fresh in-process limiter's starts at 0) move first.
    tokio::time::sleep(Duration::from_millis(5)).await;
    for i in 0..5_u32 {
        let reset = assert_allowed(
            check(&*s.limiter, &k, quota, 1).await,
            4 - i,
            &format!("admission {} of a burst of 5", i + 1),
        );
        assert_about(
            reset,
            interval * (i + 1),
            "reset: when the spent units are back",
        );
    }
    // Time passes on the limiter's clock (whatever its origin): the refusal's
    // reset is counted from now, so it is less than the period, never more.
    tokio::time::sleep(Duration::from_millis(5)).await;
    let (retry_after, reset) = assert_limited(
        check(&*s.limiter, &k, quota, 1).await,
        "the check after a burst of 5 of 5/hour",
    );
    assert_about(retry_after, interval, "retry_after: one unit's interval");
    assert_about(reset, quota.period, "reset: the whole quota's period");
    assert!(
        reset >= retry_after,
        "reset {reset:?}: the whole quota is back no sooner than one unit ({retry_after:?})"
    );
}

/// "A refused check spends nothing", and `cost` spends several units or none.
pub async fn a_refusal_spends_nothing_and_a_cost_spends_several_units(s: &TestRateLimiter) {
    let (k, quota) = (key("cost"), per_hour(3));
    assert_allowed(check(&*s.limiter, &k, quota, 2).await, 1, "cost 2 of 3");
    assert_limited(
        check(&*s.limiter, &k, quota, 2).await,
        "cost 2 with one unit left",
    );
    assert_allowed(
        check(&*s.limiter, &k, quota, 1).await,
        0,
        "the refused cost 2 spent nothing: one unit is still there",
    );
    assert_limited(check(&*s.limiter, &k, quota, 1).await, "nothing left");
}

/// "then one unit per `quota.period / quota.count`": after the burst, waiting out a
/// refusal's `retry_after` admits the next check, and over the whole run no more
/// than the burst plus one unit per elapsed interval is admitted.
pub async fn after_the_burst_one_unit_per_interval(s: &TestRateLimiter) {
    let k = key("rate");
    let quota = Quota {
        count: 4,
        period: Duration::from_millis(400),
    };
    let interval = quota.emission_interval();
    let started = Instant::now();
    let mut admitted = 0_u32;
    let mut retries = 0;
    for attempt in 0..2_000 {
        match check(&*s.limiter, &k, quota, 1).await {
            Decision::Allowed { .. } => admitted += 1,
            Decision::Limited { retry_after, .. } => {
                assert!(
                    !retry_after.is_zero() && retry_after <= interval,
                    "after the burst a unit is back within one interval ({interval:?}), \
                     got retry_after {retry_after:?}"
                );
                tokio::time::sleep(retry_after).await;
                assert!(
                    matches!(
                        check(&*s.limiter, &k, quota, 1).await,
                        Decision::Allowed { .. }
                    ),
                    "a check after waiting out retry_after ({retry_after:?}) is admitted"
                );
                admitted += 1;
                retries += 1;
                if retries == 5 {
                    break;
                }
            }
        }
        assert!(
            attempt < 1_999,
            "2,000 checks of 4 per 400 ms and not one refused: the limiter does not limit"
        );
    }
    let elapsed = started.elapsed();
    let bound = u128::from(quota.count) + elapsed.as_millis() / interval.as_millis();
    assert!(
        u128::from(admitted) <= bound,
        "{admitted} admitted in {elapsed:?} of {quota}: more than the burst plus one per \
         {interval:?} ({bound})"
    );
}

/// "when `cost` units will be available": a refusal's `retry_after` depends on the
/// cost asked for, and waiting it out admits that cost.
pub async fn retry_after_is_when_the_cost_is_available(s: &TestRateLimiter) {
    let k = key("retry");
    let quota = Quota {
        count: 2,
        period: Duration::from_millis(1_000),
    };
    let interval = quota.emission_interval();
    assert_allowed(check(&*s.limiter, &k, quota, 2).await, 0, "the whole burst");
    let asked = Instant::now();
    let (one, _) = assert_limited(check(&*s.limiter, &k, quota, 1).await, "one more unit");
    let (two, _) = assert_limited(check(&*s.limiter, &k, quota, 2).await, "two more units");
    let between = asked.elapsed();
    assert!(
        !one.is_zero() && one <= interval,
        "one unit is back within one interval ({interval:?}): retry_after {one:?}"
    );
    // Two units come one interval after one unit, less the time between the checks;
    // each retry_after may be cut to whole milliseconds (Redis reports them in ms).
    let resolution = Duration::from_millis(1);
    assert!(
        two <= one + interval && two + between + 2 * resolution >= one + interval,
        "two units are back an interval ({interval:?}) after one ({one:?}), less the \
         {between:?} between the checks: retry_after {two:?}"
    );
    tokio::time::sleep(two).await;
    assert!(
        matches!(
            check(&*s.limiter, &k, quota, 2).await,
            Decision::Allowed { .. }
        ),
        "two units after waiting out their retry_after ({two:?})"
    );
}

/// Keys are independent: spending one key's quota leaves another's whole.
pub async fn keys_are_independent(s: &TestRateLimiter) {
    let (a, b, quota) = (key("a"), key("b"), per_hour(1));
    assert_allowed(check(&*s.limiter, &a, quota, 1).await, 0, "a's only unit");
    assert_limited(check(&*s.limiter, &a, quota, 1).await, "a is spent");
    assert_allowed(
        check(&*s.limiter, &b, quota, 1).await,
        0,
        "b's only unit, untouched by a's",
    );
}

/// Every client of one backend counts against one counter per key: units spent
/// through one handle are spent for the other (two instances share their limits).
pub async fn two_clients_share_one_counter(s: &TestRateLimiter) {
    let (k, quota) = (key("shared"), per_hour(4));
    let handles = [&s.limiter, &s.other, &s.other, &s.limiter];
    for (i, handle) in handles.into_iter().enumerate() {
        let left = 3 - u32::try_from(i).unwrap_or(0);
        assert_allowed(
            check(&**handle, &k, quota, 1).await,
            left,
            &format!(
                "unit {} of 4, spent alternately through both handles",
                i + 1
            ),
        );
    }
    assert_limited(check(&*s.limiter, &k, quota, 1).await, "spent, seen by one");
    assert_limited(
        check(&*s.other, &k, quota, 1).await,
        "spent, seen by the other",
    );
}

/// "Runs `checks` in order ..., stopping at the first refusal; returns the
/// decisions made ... Units spent by earlier checks stay spent": checks after a
/// refusal neither run nor spend.
pub async fn check_in_order_stops_at_the_first_refusal(s: &TestRateLimiter) {
    let (a, b, c) = (key("first"), key("refused"), key("never-run"));
    let (ten, one) = (per_hour(10), per_hour(1));
    assert_allowed(check(&*s.other, &b, one, 1).await, 0, "b spent beforehand");
    let decisions = in_order(
        &*s.limiter,
        &[limit(&a, ten, 1), limit(&b, one, 1), limit(&c, one, 1)],
    )
    .await;
    assert_eq!(
        decisions.len(),
        2,
        "decisions of the checks run, up to the refusal: {decisions:?}"
    );
    assert_allowed(decisions[0], 9, "a, before the refusal");
    assert_limited(decisions[1], "b, spent");
    assert_allowed(
        check(&*s.limiter, &c, one, 1).await,
        0,
        "c's unit: the check after the refusal spent nothing",
    );
    assert_allowed(
        check(&*s.limiter, &a, ten, 1).await,
        8,
        "a's unit spent before the refusal stays spent",
    );
}

/// `check_in_order` decides each check as `check` would, in order: every check runs
/// when none is refused, a key met twice sees its own earlier spending, and an
/// empty list decides nothing.
pub async fn check_in_order_decides_each_check_like_check(s: &TestRateLimiter) {
    let (a, b) = (key("a"), key("b"));
    let (two, three) = (per_hour(2), per_hour(3));
    let decisions = in_order(
        &*s.limiter,
        &[limit(&a, two, 1), limit(&b, three, 2), limit(&a, two, 1)],
    )
    .await;
    assert_eq!(decisions.len(), 3, "every check runs: {decisions:?}");
    assert_allowed(decisions[0], 1, "a's first unit");
    assert_allowed(decisions[1], 1, "b's cost of 2 of 3");
    assert_allowed(decisions[2], 0, "a again: it sees its first unit spent");
    let decisions = in_order(&*s.other, &[limit(&b, three, 1), limit(&a, two, 1)]).await;
    assert_eq!(decisions.len(), 2, "up to the refusal: {decisions:?}");
    assert_allowed(decisions[0], 0, "b's last unit, through the other handle");
    assert_limited(decisions[1], "a is spent");
    assert!(
        in_order(&*s.limiter, &[]).await.is_empty(),
        "no checks, no decisions"
    );
}

fn window(key: &str, period: Duration) -> TokenWindow {
    TokenWindow {
        key: key.to_owned(),
        period,
    }
}

async fn usage(limiter: &dyn RateLimiter, windows: &[TokenWindow]) -> Vec<WindowUsage> {
    limiter
        .window_usage(windows)
        .await
        .unwrap_or_else(|e| panic!("window_usage({windows:?}) failed: {e}"))
}

async fn add(limiter: &dyn RateLimiter, windows: &[TokenWindow], amount: u64) -> Vec<WindowUsage> {
    limiter
        .window_add(windows, amount)
        .await
        .unwrap_or_else(|e| panic!("window_add({windows:?}, {amount}) failed: {e}"))
}

/// Token windows: a fresh window reads 0 and reading spends nothing; adding counts
/// past any limit (tokens used are used), each window on its own key, one reply per
/// window in order; two handles count one window; `resets_in` is when the window
/// ends, never more than its period.
pub async fn token_windows_count_what_is_added(s: &TestRateLimiter) {
    let day = Duration::from_secs(86_400);
    let (a, b) = (window(&key("wa"), day), window(&key("wb"), day));
    let read = usage(&*s.limiter, &[a.clone(), b.clone()]).await;
    assert_eq!(read.len(), 2, "one reply per window: {read:?}");
    assert!(read.iter().all(|u| u.used == 0), "fresh: {read:?}");
    assert!(
        read.iter()
            .all(|u| u.resets_in <= day && u.resets_in > Duration::ZERO),
        "{read:?}"
    );
    assert_eq!(
        usage(&*s.limiter, std::slice::from_ref(&a)).await[0].used,
        0,
        "reading spent nothing"
    );
    let added = add(&*s.limiter, &[a.clone(), b.clone()], 7_000_000_000).await;
    assert_eq!(
        added.iter().map(|u| u.used).collect::<Vec<_>>(),
        [7_000_000_000, 7_000_000_000],
        "counts past u32"
    );
    let added = add(&*s.other, std::slice::from_ref(&a), 5).await;
    assert_eq!(
        added[0].used, 7_000_000_005,
        "the other handle counts the same window"
    );
    let read = usage(&*s.limiter, &[b.clone(), a.clone()]).await;
    assert_eq!(
        read.iter().map(|u| u.used).collect::<Vec<_>>(),
        [7_000_000_000, 7_000_000_005],
        "in the order asked"
    );
    assert!(
        usage(&*s.limiter, &[]).await.is_empty(),
        "no windows, no replies"
    );
}

/// A window of a short period starts again from 0 once it ends: `resets_in` says
/// when, and after sleeping it out the count is gone.
pub async fn a_token_window_starts_again_when_it_ends(s: &TestRateLimiter) {
    let w = window(&key("short"), Duration::from_millis(400));
    let added = add(&*s.limiter, std::slice::from_ref(&w), 10).await;
    assert!(added[0].used >= 10, "{added:?}");
    assert!(
        added[0].resets_in <= Duration::from_millis(400),
        "{added:?}"
    );
    tokio::time::sleep(added[0].resets_in + Duration::from_millis(50)).await;
    let read = usage(&*s.other, std::slice::from_ref(&w)).await;
    assert_eq!(read[0].used, 0, "a new window: {read:?}");
}
