//! The idempotency contracts against
//! [`RedisIdempotency`](colloquy_redis::RedisIdempotency) on the standalone Redis and
//! on Redis Cluster.

mod common;

use std::sync::Arc;
use std::time::Duration;

use colloquy_conformance::TestIdempotency;
use colloquy_core::ManualClock;
use common::{purge, unique_prefix, Deployment};

const HASTY_CLAIM: Duration = Duration::from_millis(200);
const HASTY_RESULT: Duration = Duration::from_millis(300);

async fn store_on(deployment: Deployment) -> Option<TestIdempotency> {
    let prefix = unique_prefix();
    let (store, urls) = deployment
        .connect(&prefix, Arc::new(ManualClock::new()))
        .await?;
    Some(
        TestIdempotency::new(
            Arc::new(store.idempotency()),
            Arc::new(store.idempotency_with_ttls(HASTY_CLAIM, HASTY_RESULT)),
            HASTY_CLAIM,
            HASTY_RESULT,
        )
        .with_teardown(move || Box::pin(async move { purge(&urls, &prefix).await })),
    )
}

mod standalone {
    use super::{store_on, Deployment, TestIdempotency};

    async fn store() -> Option<TestIdempotency> {
        store_on(Deployment::Standalone).await
    }

    colloquy_conformance::idempotency_contract_tests!(store);
}

mod cluster {
    use super::{store_on, Deployment, TestIdempotency};

    async fn store() -> Option<TestIdempotency> {
        store_on(Deployment::Cluster).await
    }

    colloquy_conformance::idempotency_contract_tests!(store);
}
