//! The store under test, how the suite gets one, and the deadline every contract
//! runs under.

use std::future::Future;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::time::Duration;

use colloquy_core::idempotency::IdempotencyStore;
use colloquy_core::ports::ChatStore;
use colloquy_core::streams::StreamLog;
use colloquy_core::ManualClock;
use futures::future::BoxFuture;

/// Environment switch that turns "service not running, skipping" into a failure.
/// `.ci/run` sets it, so CI never passes by skipping.
pub const REQUIRE_SERVICES_ENV: &str = "COLLOQUY_REQUIRE_SERVICES";

/// Environment variable overriding the deadline of each contract, in seconds.
pub const TIMEOUT_ENV: &str = "COLLOQUY_CONTRACT_TIMEOUT_SECS";

/// The deadline of each contract when [`TIMEOUT_ENV`] is not set: generous, so a
/// loaded machine never fails a correct store, yet a hanging store fails the run.
pub const DEFAULT_TIMEOUT_SECS: u64 = 60;

/// How long the test thread waits beyond the deadline before it gives up on a
/// contract whose runtime is blocked (a store that blocks its async workers).
pub(crate) const BACKSTOP_GRACE: Duration = Duration::from_secs(15);

type Teardown = Box<dyn FnOnce() -> BoxFuture<'static, ()> + Send + Sync>;

/// What a contract runs against: a [`TestStore`], a [`TestStreamLog`] or a
/// [`TestIdempotency`]. [`run_contract`] tears it down after the contract.
///
/// [`TestStreamLog`]: crate::TestStreamLog
/// [`TestIdempotency`]: crate::TestIdempotency
pub trait Subject: Send + Sync + 'static {
    /// Drops the subject's handles, then runs its teardown, if any.
    fn teardown(self) -> BoxFuture<'static, ()>;
}

/// `with_teardown` and [`Subject`] for a test subject with a `teardown` field.
macro_rules! subject_with_teardown {
    ($subject:ident) => {
        impl $subject {
            /// Runs `teardown` after the contract, whether it passed, failed or timed
            /// out.
            #[must_use]
            pub fn with_teardown<F>(mut self, teardown: F) -> Self
            where
                F: FnOnce() -> BoxFuture<'static, ()> + Send + Sync + 'static,
            {
                self.teardown = Some(Box::new(teardown));
                self
            }
        }

        impl Subject for $subject {
            fn teardown(mut self) -> BoxFuture<'static, ()> {
                let teardown = self.teardown.take();
                teardown_after(self, teardown)
            }
        }
    };
}

/// Drops `subject`, then runs `teardown` (if any): so a file-backed backend is
/// closed before its files go.
pub(crate) fn teardown_after<S>(subject: S, teardown: Option<Teardown>) -> BoxFuture<'static, ()> {
    drop(subject);
    Box::pin(async move {
        if let Some(teardown) = teardown {
            teardown().await;
        }
    })
}

/// A fresh, isolated store for one contract, plus the clock it was built with.
///
/// Build it with [`TestStore::new`]; add [`TestStore::with_teardown`] when the store
/// leaves something behind (keys under a test prefix, a database file), and
/// [`TestStore::expires_physically`] when the backend removes expired data by itself.
pub struct TestStore {
    /// The store under test.
    pub store: Arc<dyn ChatStore>,
    /// The clock the store judges expiry by. It starts at the real current time and
    /// the suite only moves it forward.
    pub clock: Arc<ManualClock>,
    physical_expiry: bool,
    teardown: Option<Teardown>,
}

impl std::fmt::Debug for TestStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestStore")
            .field("physical_expiry", &self.physical_expiry)
            .finish_non_exhaustive()
    }
}

impl TestStore {
    /// Wraps a store built with `clock`.
    pub fn new(store: Arc<dyn ChatStore>, clock: Arc<ManualClock>) -> Self {
        Self {
            store,
            clock,
            physical_expiry: false,
            teardown: None,
        }
    }

    /// Declares that the backend removes expired data by itself, by wall time (Redis
    /// key expiry), so `purge_expired` may return `Ok(0)` and leave data in place.
    /// Purge contracts then accept `Ok(0)` (or the exact count) and skip their checks
    /// that data is physically gone; every other contract still applies.
    #[must_use]
    pub fn expires_physically(mut self) -> Self {
        self.physical_expiry = true;
        self
    }

    /// Whether [`TestStore::expires_physically`] was declared.
    #[must_use]
    pub fn has_physical_expiry(&self) -> bool {
        self.physical_expiry
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

    /// Drops the store's handles, then runs the teardown, if any (so a file-backed
    /// store is closed before its files go). The macro calls this; contracts do not.
    pub async fn teardown(mut self) {
        let teardown = self.teardown.take();
        teardown_after(self, teardown).await;
    }
}

impl Subject for TestStore {
    fn teardown(self) -> BoxFuture<'static, ()> {
        Box::pin(TestStore::teardown(self))
    }
}

/// A stream log under test: two handles on one fresh, isolated backend (as two
/// server instances hold them), and a third with short lease and retention for the
/// expiry contracts.
///
/// `log` and `other` must keep a lease and a completed log for longer than a
/// contract takes (30 s or more); `hasty` should use a lease and a log retention of
/// a fraction of a second, so the expiry contracts wait briefly. The expiry
/// contracts wait at most [`TestStreamLog::hasty_retention`] plus the lease plus
/// [`EXPIRY_SLACK`].
pub struct TestStreamLog {
    /// The log under test.
    pub log: Arc<dyn StreamLog>,
    /// A second handle on the same backend, as another instance holds it (a log
    /// kept in one process passes a clone of `log`).
    pub other: Arc<dyn StreamLog>,
    /// A log on the same kind of backend with a short lease and retention.
    pub hasty: Arc<dyn StreamLog>,
    /// How long `hasty` keeps a completed (or abandoned) log.
    pub hasty_retention: Duration,
    teardown: Option<Teardown>,
}

impl std::fmt::Debug for TestStreamLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestStreamLog")
            .field("hasty_retention", &self.hasty_retention)
            .finish_non_exhaustive()
    }
}

impl TestStreamLog {
    /// Wraps the handles; `hasty_retention` is how long `hasty` keeps a finished log.
    pub fn new(
        log: Arc<dyn StreamLog>,
        other: Arc<dyn StreamLog>,
        hasty: Arc<dyn StreamLog>,
        hasty_retention: Duration,
    ) -> Self {
        Self {
            log,
            other,
            hasty,
            hasty_retention,
            teardown: None,
        }
    }
}

subject_with_teardown!(TestStreamLog);

/// An idempotency store under test, on a fresh, isolated backend, and a second one
/// on the same kind of backend with short TTLs for the expiry contracts.
///
/// `store` must hold a claim and a result for longer than a contract takes (the
/// defaults, [`CLAIM_TTL`] and [`IDEMPOTENCY_TTL`], do); `hasty` should use TTLs of
/// a fraction of a second. The expiry contracts wait at most the TTL plus
/// [`EXPIRY_SLACK`].
///
/// [`CLAIM_TTL`]: colloquy_core::idempotency::CLAIM_TTL
/// [`IDEMPOTENCY_TTL`]: colloquy_core::idempotency::IDEMPOTENCY_TTL
pub struct TestIdempotency {
    /// The store under test.
    pub store: Arc<dyn IdempotencyStore>,
    /// A store with short TTLs.
    pub hasty: Arc<dyn IdempotencyStore>,
    /// How long `hasty` holds a claim without a result.
    pub hasty_claim_ttl: Duration,
    /// How long `hasty` keeps a result.
    pub hasty_result_ttl: Duration,
    teardown: Option<Teardown>,
}

impl std::fmt::Debug for TestIdempotency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestIdempotency")
            .field("hasty_claim_ttl", &self.hasty_claim_ttl)
            .field("hasty_result_ttl", &self.hasty_result_ttl)
            .finish_non_exhaustive()
    }
}

impl TestIdempotency {
    /// Wraps the stores; `hasty` holds claims for `hasty_claim_ttl` and results for
    /// `hasty_result_ttl`.
    pub fn new(
        store: Arc<dyn IdempotencyStore>,
        hasty: Arc<dyn IdempotencyStore>,
        hasty_claim_ttl: Duration,
        hasty_result_ttl: Duration,
    ) -> Self {
        Self {
            store,
            hasty,
            hasty_claim_ttl,
            hasty_result_ttl,
            teardown: None,
        }
    }
}

subject_with_teardown!(TestIdempotency);

/// How much longer than its TTL an expiry contract waits for a record to expire: a
/// backend expires by its own clock, and a loaded machine is slow.
pub const EXPIRY_SLACK: Duration = Duration::from_secs(10);

/// Whether a missing backing service must fail the run (see [`REQUIRE_SERVICES_ENV`]).
#[must_use]
pub fn services_required() -> bool {
    std::env::var(REQUIRE_SERVICES_ENV).is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
}

/// What a factory (of a [`TestStore`] or any other [`Subject`]) returns when its
/// service is not reachable: `None` (skip) locally,
/// a panic naming the service when [`services_required`].
///
/// # Panics
/// When the service is required.
#[must_use]
pub fn service_missing<S>(service: &str, why: &dyn std::fmt::Display) -> Option<S> {
    assert!(
        !services_required(),
        "{service} is required ({REQUIRE_SERVICES_ENV}=1) but not reachable: {why}"
    );
    eprintln!(
        "skipping: {service} not reachable ({why}); set {REQUIRE_SERVICES_ENV}=1 to fail instead"
    );
    None
}

/// The deadline of one contract: [`TIMEOUT_ENV`] seconds, [`DEFAULT_TIMEOUT_SECS`]
/// when unset.
///
/// # Panics
/// When [`TIMEOUT_ENV`] is set to something other than a positive whole number.
#[must_use]
pub fn contract_timeout() -> Duration {
    match std::env::var(TIMEOUT_ENV) {
        Err(_) => Duration::from_secs(DEFAULT_TIMEOUT_SECS),
        Ok(v) => match v.trim().parse::<u64>() {
            Ok(secs) if secs > 0 => Duration::from_secs(secs),
            _ => panic!("{TIMEOUT_ENV} must be a positive whole number of seconds, got {v:?}"),
        },
    }
}

/// Why a contract run failed.
enum Failure {
    /// The contract panicked; the panic hook has printed its message already.
    Panicked(Box<dyn std::any::Any + Send>),
    /// The harness's own verdict (deadline, cancelled task), not printed yet.
    Verdict(String),
}

/// Runs `body` on a thread of its own and returns what it returns, resuming its
/// panic if it panics; fails with `late()` when it has not finished within
/// `limit`. The backstop for stores that block their runtime's threads, where no
/// `tokio::time::timeout` can fire.
pub(crate) fn within<T, B>(name: &str, limit: Duration, late: impl FnOnce() -> String, body: B) -> T
where
    T: Send + 'static,
    B: FnOnce() -> T + Send + 'static,
{
    let (done, finished) = mpsc::channel::<()>();
    let thread = std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            let outcome = body();
            // The receiver is gone only if the test thread already gave up.
            let _ = done.send(());
            outcome
        })
        .expect("spawn a thread for the check");
    match finished.recv_timeout(limit) {
        Ok(()) | Err(RecvTimeoutError::Disconnected) => match thread.join() {
            Ok(outcome) => outcome,
            Err(payload) => std::panic::resume_unwind(payload),
        },
        Err(RecvTimeoutError::Timeout) => panic!("{}", late()),
    }
}

/// A fresh multi-threaded runtime for one check.
pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("a tokio runtime for the check")
}

/// Runs one contract against a fresh subject (store, stream log or idempotency
/// store) from `factory`, under the deadline of
/// [`contract_timeout`], then tears the store down; [`store_contract_tests!`] calls
/// this once per contract.
///
/// Skips (returns) when the factory returns `None`.
///
/// # Panics
/// When the contract fails, panics, or misses its deadline; the message names the
/// contract.
///
/// [`store_contract_tests!`]: crate::store_contract_tests
pub fn run_contract<S, F, Fut, C>(name: &'static str, factory: F, contract: C)
where
    S: Subject,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = Option<S>>,
    C: for<'a> FnOnce(&'a S) -> BoxFuture<'a, ()> + Send + 'static,
{
    run_contract_within(name, contract_timeout(), BACKSTOP_GRACE, factory, contract);
}

/// [`run_contract`] with its deadline and backstop grace given.
fn run_contract_within<S, F, Fut, C>(
    name: &'static str,
    deadline: Duration,
    grace: Duration,
    factory: F,
    contract: C,
) where
    S: Subject,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = Option<S>>,
    C: for<'a> FnOnce(&'a S) -> BoxFuture<'a, ()> + Send + 'static,
{
    let late = move || {
        format!(
            "contract `{name}` did not finish within {deadline:?} ({TIMEOUT_ENV}) and its \
             runtime no longer answers: the store blocks the async runtime's threads (a \
             synchronous lock or blocking I/O held across a call?)"
        )
    };
    let outcome = within(name, deadline + grace, late, move || {
        let runtime = runtime();
        let outcome = runtime.block_on(contract_with_deadline(name, deadline, factory, contract));
        // Tasks a failed contract left behind must not keep this thread waiting.
        runtime.shutdown_timeout(Duration::from_secs(1));
        outcome
    });
    match outcome {
        Ok(()) => {}
        Err(Failure::Verdict(message)) => panic!("{message}"),
        Err(Failure::Panicked(payload)) => std::panic::resume_unwind(payload),
    }
}

async fn contract_with_deadline<S, F, Fut, C>(
    name: &'static str,
    deadline: Duration,
    factory: F,
    contract: C,
) -> Result<(), Failure>
where
    S: Subject,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Option<S>>,
    C: for<'a> FnOnce(&'a S) -> BoxFuture<'a, ()> + Send + 'static,
{
    let store = match tokio::time::timeout(deadline, factory()).await {
        Ok(Some(store)) => Arc::new(store),
        Ok(None) => return Ok(()),
        Err(_) => {
            return Err(Failure::Verdict(format!(
                "contract `{name}`: the store factory did not return within {deadline:?} \
                 ({TIMEOUT_ENV})"
            )))
        }
    };
    let mut task = tokio::spawn({
        let store = Arc::clone(&store);
        async move { contract(&store).await }
    });
    let outcome = match tokio::time::timeout(deadline, &mut task).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) if e.is_panic() => Err(Failure::Panicked(e.into_panic())),
        Ok(Err(e)) => Err(Failure::Verdict(format!(
            "contract `{name}` was cancelled: {e}"
        ))),
        Err(_) => {
            task.abort();
            // Wait (briefly) for the aborted task to drop its handle on the store.
            let _ = tokio::time::timeout(Duration::from_secs(5), &mut task).await;
            Err(Failure::Verdict(format!(
                "contract `{name}` did not finish within {deadline:?}: a store call hangs, or \
                 is far too slow (raise {TIMEOUT_ENV} only for a store known to be slow)"
            )))
        }
    };
    teardown(name, store, deadline).await;
    outcome
}

async fn teardown<S: Subject>(name: &str, store: Arc<S>, deadline: Duration) {
    let Ok(store) = Arc::try_unwrap(store) else {
        eprintln!("contract `{name}`: a task still holds the store; teardown skipped");
        return;
    };
    if tokio::time::timeout(deadline, Subject::teardown(store))
        .await
        .is_err()
    {
        eprintln!("contract `{name}`: teardown did not finish within {deadline:?}");
    }
}

#[cfg(test)]
mod tests {
    //! The harness itself: a contract fails, never hangs, and is torn down.

    use std::sync::atomic::{AtomicBool, Ordering};

    use colloquy_memory::MemoryStore;
    use futures::FutureExt;

    use super::*;

    /// For contracts that must hang: the test waits this long.
    const SHORT: Duration = Duration::from_millis(500);
    /// For contracts that finish: generous, so a loaded machine never fails them.
    const LONG: Duration = Duration::from_secs(60);

    fn store(torn_down: Arc<AtomicBool>) -> Option<TestStore> {
        let clock = Arc::new(ManualClock::new());
        let store = TestStore::new(Arc::new(MemoryStore::new(clock.clone())), clock);
        Some(
            store.with_teardown(move || {
                async move { torn_down.store(true, Ordering::SeqCst) }.boxed()
            }),
        )
    }

    /// Runs a contract under `deadline`; returns the failure message, if any.
    fn failure<C>(torn_down: &Arc<AtomicBool>, deadline: Duration, contract: C) -> Option<String>
    where
        C: for<'a> FnOnce(&'a TestStore) -> BoxFuture<'a, ()> + Send + 'static,
    {
        let flag = Arc::clone(torn_down);
        let factory = move || async move { store(flag) };
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            run_contract_within("the_contract", deadline, deadline, factory, contract);
        }));
        outcome.err().map(|payload| {
            payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default()
        })
    }

    #[test]
    fn a_passing_contract_passes_and_is_torn_down() {
        let torn_down = Arc::new(AtomicBool::new(false));
        let failed = failure(&torn_down, LONG, |s| {
            async move { s.store.ping().await.expect("ping") }.boxed()
        });
        assert_eq!(failed, None, "a passing contract must not fail");
        assert!(
            torn_down.load(Ordering::SeqCst),
            "teardown runs after a pass"
        );
    }

    #[test]
    fn a_failing_contract_fails_with_its_message_and_is_torn_down() {
        let torn_down = Arc::new(AtomicBool::new(false));
        let failed = failure(&torn_down, LONG, |_| {
            async { panic!("the rule it broke") }.boxed()
        });
        assert_eq!(
            failed.as_deref(),
            Some("the rule it broke"),
            "the contract's own message"
        );
        assert!(
            torn_down.load(Ordering::SeqCst),
            "teardown runs after a failure"
        );
    }

    #[test]
    fn a_contract_that_never_finishes_fails_naming_it() {
        let torn_down = Arc::new(AtomicBool::new(false));
        let failed = failure(&torn_down, SHORT, |_| futures::future::pending().boxed());
        let message = failed.expect("a hanging contract must fail");
        assert!(
            message.contains("contract `the_contract` did not finish within"),
            "the message names the contract and the deadline: {message}"
        );
        assert!(
            torn_down.load(Ordering::SeqCst),
            "teardown runs after a timeout"
        );
    }

    #[test]
    fn a_store_that_blocks_the_runtime_fails_naming_the_contract() {
        let torn_down = Arc::new(AtomicBool::new(false));
        // Every worker thread blocked, as by a synchronous lock that is never released.
        let failed = failure(&torn_down, SHORT, |_| {
            async {
                for _ in 0..8 {
                    tokio::spawn(async { std::thread::sleep(Duration::from_secs(5)) });
                }
                std::thread::sleep(Duration::from_secs(5));
            }
            .boxed()
        });
        let message = failed.expect("a contract blocking its runtime must fail");
        assert!(
            message.contains("contract `the_contract`"),
            "the message names the contract: {message}"
        );
    }

    #[test]
    fn a_missing_service_skips() {
        let outcome = std::panic::catch_unwind(|| {
            run_contract_within(
                "skipped",
                SHORT,
                SHORT,
                || async { None },
                |_: &TestStore| async { panic!("must not run") }.boxed(),
            );
        });
        assert!(
            outcome.is_ok(),
            "a factory returning None skips the contract"
        );
    }
}
