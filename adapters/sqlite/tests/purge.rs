//! Retention and the purge: an expired session stays stored (invisible) until
//! `purge_expired(cutoff)` physically removes it with its messages (soft-deleted ones
//! included); nothing expiring after the cutoff goes, nor a newer session that took
//! the expired one's session_id.

mod common;

use std::sync::Arc;

use chrono::Duration;
use colloquy_core::ports::ChatStore;
use colloquy_core::{Clock, ManualClock, Role, Session, SessionRef};
use colloquy_sqlite::SqliteStore;
use common::{draft, everything, session};
use rusqlite::Connection;
use uuid::Uuid;

async fn with_messages(store: &SqliteStore, clock: &ManualClock, s: &Session, n: usize) {
    store.create_session(s).await.expect("create");
    for i in 0..n {
        let (_, stored) = store
            .append(
                &SessionRef::from_uuid(s.id),
                draft(clock, Role::User, &format!("m{i}")),
            )
            .await
            .expect("append");
        if i == 0 {
            store.delete_message(stored.id).await.expect("soft delete");
        }
    }
}

/// Rows physically in the file for one session: (sessions, messages).
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
async fn purge_removes_sessions_expired_by_the_cutoff_and_their_messages() {
    let db = common::TempDb::new();
    let clock = Arc::new(ManualClock::new());
    let store = SqliteStore::open(db.path(), clock.clone())
        .await
        .expect("open");
    let short = session(&*clock, "short", Duration::minutes(5));
    let long = session(&*clock, "long", Duration::hours(5));
    with_messages(&store, &clock, &short, 4).await;
    with_messages(&store, &clock, &long, 3).await;
    let raw = Connection::open(db.path()).expect("raw reader");
    assert_eq!(rows(&raw, short.id), (1, 4));

    assert_eq!(
        store.purge_expired(clock.now()).await.expect("purge"),
        0,
        "nothing expired yet"
    );
    clock.advance(Duration::minutes(5)); // exactly at expiry: expired
    assert_eq!(
        store
            .session(&SessionRef::parse("short"))
            .await
            .expect("get"),
        None
    );
    // Retention: a cutoff before the expiry keeps the rows (invisible).
    let retained = clock.now() - Duration::seconds(1);
    assert_eq!(store.purge_expired(retained).await.expect("purge"), 0);
    assert_eq!(
        rows(&raw, short.id),
        (1, 4),
        "expiry alone hides but keeps rows"
    );
    // The cutoff is inclusive: expires_at == cutoff goes.
    assert_eq!(store.purge_expired(clock.now()).await.expect("purge"), 1);
    assert_eq!(
        rows(&raw, short.id),
        (0, 0),
        "session and all its messages are gone"
    );
    assert_eq!(rows(&raw, long.id), (1, 3), "live data is untouched");
    assert_eq!(
        store.purge_expired(clock.now()).await.expect("purge"),
        0,
        "idempotent"
    );
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_session_takes_a_retained_session_id_and_survives_the_purge_of_the_old() {
    let db = common::TempDb::new();
    let clock = Arc::new(ManualClock::new());
    let store = SqliteStore::open(db.path(), clock.clone())
        .await
        .expect("open");
    let old = session(&*clock, "reused", Duration::minutes(1));
    with_messages(&store, &clock, &old, 3).await;
    clock.advance(Duration::minutes(2));
    let new = session(&*clock, "reused", Duration::hours(1));
    store
        .create_session(&new)
        .await
        .expect("the session_id of an expired session may be reused while it is stored");
    let (_, m) = store
        .append(
            &SessionRef::parse("reused"),
            draft(&*clock, Role::User, "hi"),
        )
        .await
        .expect("append to the new holder");
    assert_eq!(m.session, new.id, "the reference names the live session");
    let raw = Connection::open(db.path()).expect("raw reader");
    assert_eq!(rows(&raw, old.id), (1, 3), "the old session is retained");
    assert_eq!(
        store
            .session(&SessionRef::from_uuid(old.id))
            .await
            .expect("get"),
        None,
        "and invisible, by UUID too"
    );

    // A purge with a retention of 30 s (cutoff before the old expiry) keeps it ...
    let cutoff = clock.now() - Duration::minutes(1) - Duration::seconds(30);
    assert_eq!(store.purge_expired(cutoff).await.expect("purge"), 0);
    assert_eq!(rows(&raw, old.id), (1, 3));
    // ... one at now removes the old session only.
    assert_eq!(store.purge_expired(clock.now()).await.expect("purge"), 1);
    assert_eq!(rows(&raw, old.id), (0, 0));
    assert_eq!(rows(&raw, new.id), (1, 1), "the new holder is untouched");
    let (found, listed) = store
        .list_messages(&SessionRef::parse("reused"), &everything())
        .await
        .expect("list");
    assert_eq!((found, listed), (new, vec![m]));
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
    let total: u64 = 1234; // more than two purge batches
    let mut tasks = Vec::new();
    for i in 0..total {
        let store = store.clone();
        let s = session(&*clock, &format!("s{i}"), Duration::minutes(1));
        tasks.push(tokio::spawn(async move { store.create_session(&s).await }));
    }
    for t in tasks {
        t.await.expect("join").expect("create");
    }
    let keep = session(&*clock, "keep", Duration::hours(1));
    store.create_session(&keep).await.expect("create");
    clock.advance(Duration::minutes(2));
    assert_eq!(
        store.purge_expired(clock.now()).await.expect("purge"),
        total
    );
    let raw = Connection::open(db.path()).expect("raw reader");
    let left: i64 = raw
        .query_row("SELECT count(*) FROM sessions", [], |row| row.get(0))
        .expect("count");
    assert_eq!(left, 1);
}
