//! The stream-log contracts against [`RedisStreamLog`](colloquy_redis::RedisStreamLog)
//! on the standalone Redis and on Redis Cluster: `log` and `other` are two
//! connections (two instances) under one fresh prefix.

mod common;

use std::sync::Arc;
use std::time::Duration;

use colloquy_conformance::TestStreamLog;
use colloquy_core::ManualClock;
use common::{purge, unique_prefix, Deployment};

/// Lease and log TTL of the logs the non-expiry contracts use: longer than any
/// contract takes.
const PATIENT: Duration = Duration::from_secs(120);
const HASTY_LEASE: Duration = Duration::from_millis(200);
const HASTY_TTL: Duration = Duration::from_secs(1);

async fn log_on(deployment: Deployment) -> Option<TestStreamLog> {
    let prefix = unique_prefix();
    let (one, urls) = deployment
        .connect(&prefix, Arc::new(ManualClock::new()))
        .await?;
    let (two, _) = deployment
        .connect(&prefix, Arc::new(ManualClock::new()))
        .await?;
    Some(
        TestStreamLog::new(
            Arc::new(one.stream_log(PATIENT, PATIENT)),
            Arc::new(two.stream_log(PATIENT, PATIENT)),
            Arc::new(one.stream_log(HASTY_TTL, HASTY_LEASE)),
            HASTY_TTL,
        )
        .with_teardown(move || Box::pin(async move { purge(&urls, &prefix).await })),
    )
}

mod standalone {
    use super::{log_on, Deployment, TestStreamLog};

    async fn log() -> Option<TestStreamLog> {
        log_on(Deployment::Standalone).await
    }

    colloquy_conformance::stream_log_contract_tests!(log);
}

mod cluster {
    use super::{log_on, Deployment, TestStreamLog};

    async fn log() -> Option<TestStreamLog> {
        log_on(Deployment::Cluster).await
    }

    colloquy_conformance::stream_log_contract_tests!(log);
}
