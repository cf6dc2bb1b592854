//! The idempotency contracts against
//! [`PostgresIdempotency`](colloquy_postgres::PostgresIdempotency), each in a fresh
//! schema dropped afterwards; and the purge of expired rows.

mod common;

use std::sync::Arc;
use std::time::Duration;

use colloquy_conformance::{idempotency_contract_tests, service_missing, TestIdempotency};
use colloquy_core::idempotency::{Claim, IdempotencyStore, Recorded};
use colloquy_core::ports::ChatStore;
use colloquy_core::{Clock, ManualClock};
use colloquy_postgres::PostgresStore;

const HASTY_CLAIM: Duration = Duration::from_millis(200);
const HASTY_RESULT: Duration = Duration::from_millis(300);

async fn store() -> Option<TestIdempotency> {
    let schema = common::unique_schema();
    let clock = Arc::new(ManualClock::new());
    let store = match PostgresStore::connect(common::config(&schema), clock).await {
        Ok(store) => store,
        Err(e) if e.is_unavailable() => return service_missing("PostgreSQL", &e),
        Err(e) => panic!("connecting to PostgreSQL: {e:?}"),
    };
    Some(
        TestIdempotency::new(
            Arc::new(store.idempotency()),
            Arc::new(store.idempotency_with_ttls(HASTY_CLAIM, HASTY_RESULT)),
            HASTY_CLAIM,
            HASTY_RESULT,
        )
        .with_teardown(move || {
            Box::pin(async move {
                store.close();
                common::Schema(schema).drop().await;
            })
        }),
    )
}

idempotency_contract_tests!(store);

async fn rows(schema: &str) -> i64 {
    common::raw_client()
        .await
        .query_one(
            &format!("SELECT count(*) FROM {schema}.colloquy_idempotency"),
            &[],
        )
        .await
        .expect("count")
        .get(0)
}

#[tokio::test]
async fn the_purge_deletes_expired_rows() {
    let Some((store, clock, schema)) = common::manual().await else {
        return;
    };
    let short = store.idempotency_with_ttls(Duration::ZERO, Duration::ZERO);
    let long = store.idempotency();
    let record = Recorded {
        fingerprint: "fp".into(),
        status: 200,
        body: "{}".into(),
        stream: None,
    };
    for (keys, key) in [(&short, "a"), (&long, "b")] {
        assert_eq!(keys.claim(key, "fp").await.ok(), Some(Claim::Claimed));
    }
    short.complete("c", &record).await.expect("complete");
    long.complete("d", &record).await.expect("complete");
    assert_eq!(rows(&schema.0).await, 4);
    store.purge_expired(clock.now()).await.expect("purge");
    assert_eq!(
        rows(&schema.0).await,
        2,
        "the expired claim and result are deleted, the live ones stay"
    );
    assert_eq!(
        long.claim("d", "fp").await.ok(),
        Some(Claim::Done(record)),
        "a live result is untouched"
    );
    store.close();
    schema.drop().await;
}
