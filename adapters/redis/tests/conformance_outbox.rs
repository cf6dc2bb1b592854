//! The webhook outbox contracts against [`RedisOutbox`](colloquy_redis::RedisOutbox)
//! on the standalone Redis and on Redis Cluster, the "other instance" a second
//! store (its own connection) under the same prefix.

mod common;

use std::sync::Arc;

use colloquy_conformance::TestOutbox;
use colloquy_core::ManualClock;
use common::{purge, unique_prefix, Deployment};

async fn outbox_on(deployment: Deployment) -> Option<TestOutbox> {
    let prefix = unique_prefix();
    let clock = Arc::new(ManualClock::new());
    let (store, urls) = deployment.connect(&prefix, clock.clone()).await?;
    let (other, _) = deployment.connect(&prefix, clock.clone()).await?;
    Some(
        TestOutbox::new(
            Arc::new(store.webhook_outbox()),
            Arc::new(other.webhook_outbox()),
            clock,
        )
        .with_teardown(move || Box::pin(async move { purge(&urls, &prefix).await })),
    )
}

mod standalone {
    use super::{outbox_on, Deployment, TestOutbox};

    async fn outbox() -> Option<TestOutbox> {
        outbox_on(Deployment::Standalone).await
    }

    colloquy_conformance::outbox_contract_tests!(outbox);
}

mod cluster {
    use super::{outbox_on, Deployment, TestOutbox};

    async fn outbox() -> Option<TestOutbox> {
        outbox_on(Deployment::Cluster).await
    }

    colloquy_conformance::outbox_contract_tests!(outbox);
}
