//! The session-events contracts against
//! [`RedisSessionEvents`](colloquy_redis::RedisSessionEvents) on the standalone
//! Redis and on Redis Cluster: `events` and `other` are two instances (two
//! connections) under one fresh prefix. On standalone Redis the broken-channel
//! contract kills `events`' connection with `CLIENT KILL ID`.

mod common;

use std::sync::Arc;

use colloquy_conformance::{service_missing, TestEvents};
use colloquy_redis::{RedisConfig, RedisSessionEvents};
use common::{cluster_nodes, unique_prefix, CLUSTER_ENV, SHARED_URL};

const CAPACITY: usize = 8;

async fn connect(prefix: &str, cluster: bool) -> Option<RedisSessionEvents> {
    let config = RedisConfig::with_prefix(prefix);
    if cluster {
        let Some(nodes) = cluster_nodes() else {
            return service_missing("redis cluster", &format!("{CLUSTER_ENV} is not set"));
        };
        match RedisSessionEvents::connect_cluster(&nodes, &config, CAPACITY).await {
            Ok(events) => Some(events),
            Err(e) => service_missing("redis cluster", &e),
        }
    } else {
        match RedisSessionEvents::connect(SHARED_URL, &config, CAPACITY).await {
            Ok(events) => Some(events),
            Err(e) => service_missing("redis (127.0.0.1:6379)", &e),
        }
    }
}

/// Kills the connection with `id` from a connection of its own.
async fn kill(id: i64) {
    let client = redis::Client::open(SHARED_URL).expect("valid url");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect to kill a client");
    let killed: i64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("ID")
        .arg(id)
        .query_async(&mut conn)
        .await
        .expect("CLIENT KILL");
    assert_eq!(killed, 1, "CLIENT KILL ID {id} must kill one connection");
}

async fn events_on(cluster: bool) -> Option<TestEvents> {
    // Pub/sub keeps no keys: nothing to purge.
    let prefix = unique_prefix();
    let events = Arc::new(connect(&prefix, cluster).await?);
    let other = Arc::new(connect(&prefix, cluster).await?);
    let subject = TestEvents::new(events.clone(), other, CAPACITY);
    if cluster {
        return Some(subject);
    }
    Some(subject.with_sever(move || {
        let events = events.clone();
        Box::pin(async move {
            let id = events.connection_id().await.expect("CLIENT ID");
            kill(id).await;
        })
    }))
}

mod standalone {
    use super::{events_on, TestEvents};

    async fn events() -> Option<TestEvents> {
        events_on(false).await
    }

    colloquy_conformance::events_contract_tests!(events);
}

mod cluster {
    use super::{events_on, TestEvents};

    async fn events() -> Option<TestEvents> {
        events_on(true).await
    }

    colloquy_conformance::events_contract_tests!(events);
}
