//! Durability across a restart at store level: what was written before the store is
//! closed (or merely dropped) is read back after reopening the same file, with the
//! same ids, timestamps, metadata and order.

mod common;

use std::sync::Arc;

use chrono::{Duration, Utc};
use colloquy_core::ports::{MessageStore, SessionStore};
use colloquy_core::{
    ChatMessage, Clock, ManualClock, MessageFilter, Metadata, Page, Role, Session, SessionFilter,
    SessionRef,
};
use colloquy_sqlite::{database_files, SqliteStore};
use serde_json::json;
use uuid::Uuid;

fn session(clock: &ManualClock, sid: &str) -> Session {
    let now = clock.now();
    let mut metadata = Metadata::new();
    metadata.insert(
        "source".into(),
        json!({"page": "/pricing", "n": [1, 2.5, null]}),
    );
    Session {
        id: Uuid::now_v7(),
        session_id: sid.into(),
        external_user_id: Some("user-7".into()),
        created_at: now,
        expires_at: now + Duration::days(1),
        is_active: true,
        metadata,
    }
}

fn message(clock: &ManualClock, session: &Session, n: usize) -> ChatMessage {
    let mut metadata = Metadata::new();
    metadata.insert("n".into(), json!(n));
    ChatMessage {
        id: Uuid::now_v7(),
        session: session.id,
        message: format!("message {n} — ünïcödé"),
        role: if n.is_multiple_of(2) {
            Role::User
        } else {
            Role::Assistant
        },
        metadata,
        timestamp: clock.now(),
        is_deleted: false,
    }
}

fn all() -> Page {
    Page {
        limit: Page::MAX_LIMIT,
        offset: 0,
    }
}

/// Writes two sessions with interleaved messages (some with equal timestamps, one
/// soft-deleted); returns the sessions and what the store answered for each write.
async fn write_history(
    store: &SqliteStore,
    clock: &ManualClock,
) -> (Vec<Session>, Vec<ChatMessage>) {
    let sessions = vec![session(clock, "alpha"), session(clock, "beta")];
    for s in &sessions {
        store.create(s).await.expect("create session");
    }
    let mut stored = Vec::new();
    for n in 0..40 {
        if n % 5 == 0 {
            clock.advance(Duration::microseconds(1234));
        }
        let s = &sessions[n % 2];
        stored.push(store.append(message(clock, s, n)).await.expect("append"));
    }
    store.soft_delete(stored[3].id).await.expect("soft delete");
    stored[3].is_deleted = true;
    (sessions, stored)
}

async fn assert_history(store: &SqliteStore, sessions: &[Session], stored: &[ChatMessage]) {
    for (i, s) in sessions.iter().enumerate() {
        let got = SessionStore::get(store, &SessionRef::parse(&s.session_id))
            .await
            .expect("get session")
            .expect("session survives the restart");
        assert_eq!(&got, s, "session round-trips exactly");
        let expected: Vec<&ChatMessage> = stored
            .iter()
            .filter(|m| m.session == s.id && !m.is_deleted)
            .collect();
        let listed = MessageStore::list(store, s.id, &MessageFilter::default(), all())
            .await
            .expect("list messages");
        assert_eq!(
            listed.iter().collect::<Vec<_>>(),
            expected,
            "session {i}: same ids, timestamps, metadata and order"
        );
    }
    let deleted = store
        .get_stored(stored[3].id)
        .await
        .expect("get_stored")
        .expect("soft-deleted row is kept");
    assert!(deleted.is_deleted);
    let listed = SessionStore::list(store, &SessionFilter::default(), all())
        .await
        .expect("list sessions");
    assert_eq!(listed.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_survives_close_and_reopen() {
    let db = common::TempDb::new();
    let clock = Arc::new(ManualClock::starting_at(Utc::now()));
    let store = SqliteStore::open(db.path(), clock.clone())
        .await
        .expect("open");
    let (sessions, stored) = write_history(&store, &clock).await;
    assert_history(&store, &sessions, &stored).await;
    store.close().await;
    let [_, wal, _] = database_files(db.path());
    assert!(
        !wal.exists(),
        "a clean close checkpoints the WAL into the database file and removes it"
    );

    let reopened = SqliteStore::open(db.path(), clock.clone())
        .await
        .expect("reopen");
    assert_history(&reopened, &sessions, &stored).await;
    // Appends continue the same order after the restart.
    let next = reopened
        .append(message(&clock, &sessions[0], 100))
        .await
        .expect("append after restart");
    let listed = MessageStore::list(&reopened, sessions[0].id, &MessageFilter::default(), all())
        .await
        .expect("list");
    assert_eq!(
        listed.last(),
        Some(&next),
        "new message goes after the old ones"
    );
    reopened.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_survives_a_drop_without_close() {
    let db = common::TempDb::new();
    let clock = Arc::new(ManualClock::starting_at(Utc::now()));
    let store = SqliteStore::open(db.path(), clock.clone())
        .await
        .expect("open");
    let (sessions, stored) = write_history(&store, &clock).await;
    drop(store); // threads finish in the background; every write was already committed
    let reopened = SqliteStore::open(db.path(), clock.clone())
        .await
        .expect("reopen while the old connections may still be closing");
    assert_history(&reopened, &sessions, &stored).await;
    reopened.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_store_closes_cleanly_when_its_last_handle_drops() {
    let db = common::TempDb::new();
    let clock = Arc::new(ManualClock::starting_at(Utc::now()));
    let store = Arc::new(
        SqliteStore::open(db.path(), clock.clone())
            .await
            .expect("open"),
    );
    let closed = store.closed();
    let purger = store.spawn_purger(std::time::Duration::from_millis(5));
    let sessions: Arc<dyn SessionStore> = store.clone();
    let messages: Arc<dyn MessageStore> = store;
    let s = session(&clock, "shared");
    sessions.create(&s).await.expect("create");
    let m = messages
        .append(message(&clock, &s, 1))
        .await
        .expect("append");
    drop((sessions, messages));
    tokio::time::timeout(std::time::Duration::from_secs(10), closed.wait())
        .await
        .expect("the store closes once every handle is dropped, purger or not");
    drop(purger);
    let [_, wal, _] = database_files(db.path());
    assert!(!wal.exists(), "the WAL was checkpointed and removed");
    let reopened = SqliteStore::open(db.path(), clock.clone())
        .await
        .expect("reopen");
    assert_eq!(
        MessageStore::get(&reopened, m.id).await.expect("get"),
        Some(m)
    );
    reopened.close().await;
}
