//! The [`SessionEvents`] that goes with a `--store` choice: in this process for
//! `memory` and `sqlite:` (one process owns those), Redis pub/sub (sharded on a
//! cluster) for `redis://` and `redis-cluster://`, `LISTEN/NOTIFY` for
//! `postgres://`; the service announces every stored change on it and
//! `GET /sessions/{id}/events/` watches it.

use std::sync::Arc;

use colloquy_core::events::LocalHub;
use colloquy_core::{LocalSessionEvents, SessionEvents};
use colloquy_postgres::{PostgresConfig, PostgresSessionEvents};
use colloquy_redis::RedisSessionEvents;

use crate::store::{OpenStoreError, SecretUrl, StoreOptions, StoreSpec};

/// How many events a subscriber may fall behind before it lags and replays from
/// the store.
pub(crate) const EVENTS_CAPACITY: usize = LocalHub::DEFAULT_CAPACITY;

/// Opens the session events for `spec`: one connection per process on Redis and
/// PostgreSQL (separate from the store's), nothing on the other stores.
///
/// # Errors
/// When Redis or PostgreSQL cannot be reached or the settings are invalid.
pub(crate) async fn open_events(
    spec: &StoreSpec,
    options: &StoreOptions,
) -> Result<Arc<dyn SessionEvents>, OpenStoreError> {
    Ok(match spec {
        StoreSpec::Memory | StoreSpec::Sqlite(_) => {
            Arc::new(LocalSessionEvents::with_capacity(EVENTS_CAPACITY))
        }
        StoreSpec::Redis(url) => Arc::new(
            RedisSessionEvents::connect(url.secret(), &options.redis_config(), EVENTS_CAPACITY)
                .await
                .map_err(OpenStoreError::Redis)?,
        ),
        StoreSpec::RedisCluster(nodes) => {
            let urls: Vec<&str> = nodes.iter().map(SecretUrl::secret).collect();
            Arc::new(
                RedisSessionEvents::connect_cluster(
                    &urls,
                    &options.redis_config(),
                    EVENTS_CAPACITY,
                )
                .await
                .map_err(OpenStoreError::Redis)?,
            )
        }
        StoreSpec::Postgres(url) => {
            let config = PostgresConfig::new(url.secret());
            Arc::new(
                PostgresSessionEvents::connect(&config, EVENTS_CAPACITY)
                    .await
                    .map_err(OpenStoreError::Postgres)?,
            )
        }
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use colloquy_core::{EventKind, EventTopic, SessionEvent};
    use futures::StreamExt;

    use super::*;

    /// Subscribes, publishes one event and expects it back within 10 s.
    async fn round_trip(events: &dyn SessionEvents) {
        let topic = EventTopic {
            session: uuid::Uuid::new_v4(),
            session_id: "server-events-test".to_owned(),
        };
        let mut sub = events.subscribe(&topic).await.expect("subscribe");
        events
            .publish(&topic, EventKind::SessionChanged)
            .await
            .expect("publish");
        let got = tokio::time::timeout(Duration::from_secs(10), sub.next())
            .await
            .expect("the event arrives within 10 s");
        assert_eq!(
            got.and_then(Result::ok),
            Some(SessionEvent {
                session: topic.session,
                kind: EventKind::SessionChanged
            })
        );
    }

    #[tokio::test]
    async fn memory_and_sqlite_get_in_process_events() {
        for spec in ["memory", "sqlite:unused.db"] {
            let spec: StoreSpec = spec.parse().expect("spec");
            let events = open_events(&spec, &StoreOptions::default())
                .await
                .expect("in-process events open");
            round_trip(&*events).await;
        }
    }

    #[tokio::test]
    async fn redis_gets_redis_events_when_redis_runs() {
        let spec: StoreSpec = "redis://127.0.0.1:6379/0".parse().expect("spec");
        match open_events(&spec, &StoreOptions::default()).await {
            Ok(events) => round_trip(&*events).await,
            Err(e) => {
                colloquy_test_support::skip_missing("Redis", &e);
            }
        }
    }
}
