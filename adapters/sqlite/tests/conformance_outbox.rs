//! The webhook outbox contracts against
//! [`SqliteOutbox`](colloquy_sqlite::SqliteOutbox) on a fresh database file per
//! contract, and entries surviving a reopen of the file.

mod common;

use std::sync::Arc;
use std::time::Duration;

use colloquy_conformance::{outbox_contract_tests, TestOutbox};
use colloquy_core::webhooks::{OutboxEntry, WebhookOutbox};
use colloquy_core::{Clock, ManualClock};
use colloquy_sqlite::SqliteStore;
use uuid::Uuid;

async fn outbox() -> Option<TestOutbox> {
    let db = common::TempDb::new();
    let clock = Arc::new(ManualClock::new());
    let store = SqliteStore::open(db.path(), clock.clone())
        .await
        .expect("open a fresh database");
    let dir = db.into_dir();
    // One process owns a SQLite file: the "other instance" is a second handle.
    Some(
        TestOutbox::new(
            Arc::new(store.webhook_outbox()),
            Arc::new(store.webhook_outbox()),
            clock,
        )
        .with_teardown(move || Box::pin(async move { common::remove_dir(&dir) })),
    )
}

outbox_contract_tests!(outbox);

#[tokio::test]
async fn entries_and_leases_survive_a_reopen() {
    let db = common::TempDb::new();
    let clock = Arc::new(ManualClock::new());
    let store = SqliteStore::open(db.path(), clock.clone())
        .await
        .expect("open");
    let outbox = store.webhook_outbox();
    let now = clock.now();
    let entry = |n: u8| OutboxEntry {
        id: Uuid::new_v4(),
        event_id: Uuid::new_v4(),
        event_type: "handoff.requested".into(),
        target: format!("http://127.0.0.1:9/{n}"),
        body: format!(r#"{{"n":{n}}}"#),
        created_at: chrono::DateTime::from_timestamp_micros(now.timestamp_micros())
            .expect("micros"),
    };
    let (leased, waiting) = (entry(1), entry(2));
    outbox
        .enqueue(&[leased.clone(), waiting.clone()])
        .await
        .expect("enqueue");
    let claimed = outbox
        .claim(1, Duration::from_secs(30))
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 1);
    drop(outbox);
    store.close().await;

    let store = SqliteStore::open(db.path(), clock.clone())
        .await
        .expect("reopen");
    let outbox = store.webhook_outbox();
    assert_eq!(outbox.pending().await.expect("pending"), 2, "both survive");
    let after = outbox
        .claim(10, Duration::from_secs(30))
        .await
        .expect("claim");
    assert_eq!(
        after.iter().map(|c| c.entry.clone()).collect::<Vec<_>>(),
        [waiting],
        "the leased one stays hidden until its lease runs out"
    );
    outbox.finish(&after[0]).await.expect("finish");
    clock.advance(chrono::Duration::seconds(31));
    let after = outbox
        .claim(10, Duration::from_secs(30))
        .await
        .expect("claim");
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].entry, leased);
    assert_eq!(after[0].attempt, 2, "the claim before the restart counted");
}
