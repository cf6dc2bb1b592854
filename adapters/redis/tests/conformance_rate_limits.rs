//! The rate-limiter contracts against
//! [`RedisRateLimiter`](colloquy_redis::RedisRateLimiter) on the standalone Redis and
//! on Redis Cluster: two limiters on two connections of one prefix, as two server
//! instances hold them, must share every counter.

mod common;

use std::sync::Arc;

use colloquy_conformance::TestRateLimiter;
use colloquy_core::ManualClock;
use common::{purge, unique_prefix, Deployment};

async fn limiter_on(deployment: Deployment) -> Option<TestRateLimiter> {
    let prefix = unique_prefix();
    let (store, urls) = deployment
        .connect(&prefix, Arc::new(ManualClock::new()))
        .await?;
    let (other, _) = deployment
        .connect(&prefix, Arc::new(ManualClock::new()))
        .await?;
    Some(
        TestRateLimiter::new(
            Arc::new(store.rate_limiter()),
            Arc::new(other.rate_limiter()),
        )
        .with_teardown(move || Box::pin(async move { purge(&urls, &prefix).await })),
    )
}

mod standalone {
    use super::{limiter_on, Deployment, TestRateLimiter};

    async fn limiter() -> Option<TestRateLimiter> {
        limiter_on(Deployment::Standalone).await
    }

    colloquy_conformance::rate_limiter_contract_tests!(limiter);
}

mod cluster {
    use super::{limiter_on, Deployment, TestRateLimiter};

    async fn limiter() -> Option<TestRateLimiter> {
        limiter_on(Deployment::Cluster).await
    }

    colloquy_conformance::rate_limiter_contract_tests!(limiter);
}
