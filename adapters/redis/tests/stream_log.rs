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

/// The known bug the Redis stream log has against the contracts (reported to the
/// lead, who is changing `src/streams.rs`).
macro_rules! redis_stream_log_contract_tests {
    ($factory:path) => {
        colloquy_conformance::stream_log_contract_tests!($factory; ignore {
            an_expired_lease_clears_the_active_response = "known bug: the active pointer \
                (PSETEX in a second round trip after stream_start.lua) expires up to a \
                round trip later than the lease the log's meta records, so `active` can \
                name a response whose log already reads Abandoned",
        });
    };
}

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

    redis_stream_log_contract_tests!(log);
}

mod cluster {
    use super::{log_on, Deployment, TestStreamLog};

    async fn log() -> Option<TestStreamLog> {
        log_on(Deployment::Cluster).await
    }

    redis_stream_log_contract_tests!(log);
}
