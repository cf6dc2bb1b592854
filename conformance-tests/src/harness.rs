//! The store under test and how the suite gets one.

use std::sync::Arc;

use colloquy_core::ports::{MessageStore, SessionStore};
use colloquy_core::ManualClock;
use futures::future::BoxFuture;

/// Environment switch that turns "service not running, skipping" into a failure.
/// `.ci/run` sets it, so CI never passes by skipping.
pub const REQUIRE_SERVICES_ENV: &str = "COLLOQUY_REQUIRE_SERVICES";

/// A fresh, isolated store for one contract, plus the clock it was built with.
///
/// Build it with [`TestStore::new`]; add a [`TestStore::with_teardown`] when the store
/// leaves something behind (keys under a test prefix, a database file).
pub struct TestStore {
    /// The store's session port.
    pub sessions: Arc<dyn SessionStore>,
    /// The store's message port (usually the same object).
    pub messages: Arc<dyn MessageStore>,
    /// The clock the store judges expiry by. It starts at the real current time and
    /// the suite only moves it forward.
    pub clock: Arc<ManualClock>,
    teardown: Option<Box<dyn FnOnce() -> BoxFuture<'static, ()> + Send + Sync>>,
}

impl TestStore {
    /// Wraps one store object implementing both ports.
    pub fn new<S>(store: Arc<S>, clock: Arc<ManualClock>) -> Self
    where
        S: SessionStore + MessageStore,
    {
        Self {
            sessions: store.clone(),
            messages: store,
            clock,
            teardown: None,
        }
    }

    /// Runs `teardown` after the contract, whether it passed or failed.
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
        drop(self);
        if let Some(teardown) = teardown {
            teardown().await;
        }
    }
}

/// Whether a missing backing service must fail the run (see [`REQUIRE_SERVICES_ENV`]).
#[must_use]
pub fn services_required() -> bool {
    std::env::var(REQUIRE_SERVICES_ENV).is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
}

/// What a factory returns when its service is not reachable: `None` (skip) locally,
/// a panic naming the service when [`services_required`].
///
/// # Panics
/// When the service is required.
#[must_use]
pub fn service_missing(service: &str, why: &dyn std::fmt::Display) -> Option<TestStore> {
    assert!(
        !services_required(),
        "{service} is required ({REQUIRE_SERVICES_ENV}=1) but not reachable: {why}"
    );
    eprintln!(
        "skipping: {service} not reachable ({why}); set {REQUIRE_SERVICES_ENV}=1 to fail instead"
    );
    None
}
