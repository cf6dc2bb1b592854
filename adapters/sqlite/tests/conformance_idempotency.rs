//! The idempotency contracts against [`SqliteIdempotency`](colloquy_sqlite::SqliteIdempotency)
//! on a fresh database file per contract (the store's clock is the system clock: the
//! expiry contracts wait for short TTLs in real time), and results surviving a
//! reopen of the file.

mod common;

use std::sync::Arc;
use std::time::Duration;

use colloquy_conformance::{idempotency_contract_tests, TestIdempotency};
use colloquy_core::idempotency::{Claim, IdempotencyStore, Recorded};
use colloquy_core::ports::ChatStore;
use colloquy_core::{Clock, ManualClock, SystemClock};
use colloquy_sqlite::SqliteStore;

const HASTY_CLAIM: Duration = Duration::from_millis(200);
const HASTY_RESULT: Duration = Duration::from_millis(300);

async fn store() -> Option<TestIdempotency> {
    let db = common::TempDb::new();
    let store = SqliteStore::open(db.path(), Arc::new(SystemClock))
        .await
        .expect("open a fresh database");
    let dir = db.into_dir();
    Some(
        TestIdempotency::new(
            Arc::new(store.idempotency()),
            Arc::new(store.idempotency_with_ttls(HASTY_CLAIM, HASTY_RESULT)),
            HASTY_CLAIM,
            HASTY_RESULT,
        )
        .with_teardown(move || Box::pin(async move { common::remove_dir(&dir) })),
    )
}

idempotency_contract_tests!(store);

fn record() -> Recorded {
    Recorded {
        fingerprint: "fp".into(),
        status: 201,
        body: r#"{"id":"1"}"#.into(),
        stream: Some(uuid::Uuid::from_u128(7)),
    }
}

#[tokio::test]
async fn results_and_claims_survive_a_reopen() {
    let db = common::TempDb::new();
    let clock = Arc::new(ManualClock::new());
    let store = SqliteStore::open(db.path(), clock.clone())
        .await
        .expect("open");
    let keys = store.idempotency();
    assert_eq!(keys.claim("done", "fp").await.ok(), Some(Claim::Claimed));
    keys.complete("done", &record()).await.expect("complete");
    assert_eq!(keys.claim("held", "other").await.ok(), Some(Claim::Claimed));
    drop(keys);
    store.close().await;

    let store = SqliteStore::open(db.path(), clock).await.expect("reopen");
    let keys = store.idempotency();
    assert_eq!(
        keys.claim("done", "fp").await.ok(),
        Some(Claim::Done(record())),
        "a result survives the restart"
    );
    assert_eq!(
        keys.claim("held", "retry").await.ok(),
        Some(Claim::InProgress {
            fingerprint: "other".into()
        }),
        "so does a claim, until its TTL"
    );
}

fn rows(path: &std::path::Path) -> i64 {
    let conn = rusqlite::Connection::open(path).expect("inspect the file");
    conn.query_row("SELECT count(*) FROM idempotency", [], |row| row.get(0))
        .expect("count")
}

#[tokio::test]
async fn the_purge_deletes_rows_expired_by_the_store_clock() {
    let db = common::TempDb::new();
    let clock = Arc::new(ManualClock::new());
    let store = SqliteStore::open(db.path(), clock.clone())
        .await
        .expect("open");
    let keys = store.idempotency_with_ttls(Duration::from_secs(60), Duration::from_secs(3600));
    assert_eq!(keys.claim("claimed", "a").await.ok(), Some(Claim::Claimed));
    assert_eq!(keys.claim("done", "b").await.ok(), Some(Claim::Claimed));
    keys.complete("done", &record()).await.expect("complete");
    store.purge_expired(clock.now()).await.expect("purge");
    assert_eq!(rows(db.path()), 2, "nothing expired yet");
    clock.advance(chrono::Duration::seconds(60));
    store.purge_expired(clock.now()).await.expect("purge");
    assert_eq!(
        rows(db.path()),
        1,
        "the expired claim is deleted, the result stays"
    );
    assert_eq!(
        keys.claim("done", "b").await.ok(),
        Some(Claim::Done(record()))
    );
    clock.advance(chrono::Duration::seconds(3600));
    store.purge_expired(clock.now()).await.expect("purge");
    assert_eq!(rows(db.path()), 0, "the expired result is deleted");
}
