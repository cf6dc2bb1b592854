//! The rate-limiter contracts against core's in-process [`LocalRateLimiter`] (the
//! limiter of every server without Redis).

use std::sync::Arc;

use colloquy_conformance::{rate_limiter_contract_tests, TestRateLimiter};
use colloquy_core::local::LocalRateLimiter;

async fn limiter() -> Option<TestRateLimiter> {
    let limiter = Arc::new(LocalRateLimiter::new());
    Some(TestRateLimiter::new(limiter.clone(), limiter))
}

rate_limiter_contract_tests!(limiter);
