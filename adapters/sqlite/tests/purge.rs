//! The expiry purge physically removes expired sessions and their messages (soft-
//! deleted ones included), and nothing else.

mod common;

use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};

use chrono::Duration;
use colloquy_core::ports::{MessageStore, SessionStore};
use colloquy_core::{ChatMessage, Clock, ManualClock, Metadata, Role, Session};
use colloquy_sqlite::SqliteStore;
use rusqlite::Connection;
use uuid::Uuid;

fn session(clock: &ManualClock, sid: &str, ttl: Duration) -> Session {
    let now = clock.now();
    Session {
        id: Uuid::now_v7(),
        session_id: sid.into(),
        external_user_id: None,
        created_at: now,
        expires_at: now + ttl,
        is_active: true,
        metadata: Metadata::new(),
    }
}

async fn with_messages(store: &SqliteStore, clock: &ManualClock, s: &Session, n: usize) {
    store.create(s).await.expect("create");
    for i in 0..n {
        let m = ChatMessage {
            id: Uuid::now_v7(),
            session: s.id,
            message: format!("m{i}"),
            role: Role::User,
            metadata: Metadata::new(),
            timestamp: clock.now(),
            is_deleted: false,
        };
        let stored = store.append(m).await.expect("append");
        if i == 0 {
            store.soft_delete(stored.id).await.expect("soft delete");
        }
    }
}

/// Rows physically in the file: (sessions, messages) for the session ids given.
fn rows(conn: &Connection, session: Uuid) -> (i64, i64) {
    let count = |sql: &str| -> i64 {
        conn.query_row(sql, [session.as_bytes()], |row| row.get(0))
            .expect("count")
    };
    (
        count("SELECT count(*) FROM sessions WHERE id = ?1"),
        count("SELECT count(*) FROM messages WHERE session = ?1"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_removes_expired_sessions_and_their_messages() {
    let db = common::TempDb::new();
    let clock = Arc::new(ManualClock::new());
    let store = SqliteStore::open(db.path(), clock.clone())
        .await
        .expect("open");
    let short = session(&clock, "short", Duration::minutes(5));
    let long = session(&clock, "long", Duration::hours(5));
    with_messages(&store, &clock, &short, 4).await;
    with_messages(&store, &clock, &long, 3).await;
    let raw = Connection::open(db.path()).expect("raw reader");
    assert_eq!(rows(&raw, short.id), (1, 4));

    assert_eq!(
        store.purge_expired().await.expect("purge"),
        0,
        "nothing expired yet"
    );
    clock.advance(Duration::minutes(5)); // exactly at expiry: expired
    assert_eq!(
        rows(&raw, short.id),
        (1, 4),
        "expiry alone hides but keeps rows"
    );
    assert_eq!(store.purge_expired().await.expect("purge"), 1);
    assert_eq!(
        rows(&raw, short.id),
        (0, 0),
        "session and all its messages are gone"
    );
    assert_eq!(rows(&raw, long.id), (1, 3), "live data is untouched");
    assert_eq!(store.purge_expired().await.expect("purge"), 0, "idempotent");
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_works_through_many_batches() {
    let db = common::TempDb::new();
    let clock = Arc::new(ManualClock::new());
    let store = Arc::new(
        SqliteStore::open(db.path(), clock.clone())
            .await
            .expect("open"),
    );
    let total = 1234; // more than two purge batches
    let mut tasks = Vec::new();
    for i in 0..total {
        let store = store.clone();
        let s = session(&clock, &format!("s{i}"), Duration::minutes(1));
        tasks.push(tokio::spawn(async move { store.create(&s).await }));
    }
    for t in tasks {
        t.await.expect("join").expect("create");
    }
    let keep = session(&clock, "keep", Duration::hours(1));
    store.create(&keep).await.expect("create");
    clock.advance(Duration::minutes(2));
    assert_eq!(store.purge_expired().await.expect("purge"), total);
    let raw = Connection::open(db.path()).expect("raw reader");
    let left: i64 = raw
        .query_row("SELECT count(*) FROM sessions", [], |row| row.get(0))
        .expect("count");
    assert_eq!(left, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_background_purger_removes_expired_sessions() {
    let db = common::TempDb::new();
    let clock = Arc::new(ManualClock::new());
    let store = SqliteStore::open(db.path(), clock.clone())
        .await
        .expect("open");
    let s = session(&clock, "bg", Duration::minutes(1));
    with_messages(&store, &clock, &s, 2).await;
    let purger = store.spawn_purger(StdDuration::from_millis(10));
    let raw = Connection::open(db.path()).expect("raw reader");
    assert_eq!(rows(&raw, s.id), (1, 2), "live: the purger leaves it");
    clock.advance(Duration::minutes(1));
    // Poll the file with a bounded deadline until the purger has run.
    let deadline = Instant::now() + StdDuration::from_secs(10);
    while rows(&raw, s.id) != (0, 0) {
        assert!(
            Instant::now() < deadline,
            "the purger did not run within 10 s"
        );
        tokio::time::sleep(StdDuration::from_millis(5)).await;
    }
    purger.stop();
    store.close().await;
}
