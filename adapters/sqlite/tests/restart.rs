//! Durability across a restart at store level: what was written before the store is
//! closed (or merely dropped) is read back after reopening the same file, with the
//! same ids, timestamps, metadata and order.

mod common;

use std::path::Path;
use std::sync::Arc;

use chrono::{Duration, Utc};
use colloquy_core::ports::ChatStore;
use colloquy_core::{
    ChatMessage, Cursor, ManualClock, MessageDraft, MessageQuery, Metadata, Role, Session,
    SessionFilter, SessionRef,
};
use colloquy_sqlite::{database_files, SqliteStore};
use common::{all, everything};
use serde_json::json;

fn session(clock: &ManualClock, sid: &str) -> Session {
    let mut s = common::session(clock, sid, Duration::days(1));
    s.external_user_id = Some("user-7".into());
    s.metadata.insert(
        "source".into(),
        json!({"page": "/pricing", "n": [1, 2.5, null]}),
    );
    s
}

fn draft(clock: &ManualClock, n: usize) -> MessageDraft {
    let mut metadata = Metadata::new();
    metadata.insert("n".into(), json!(n));
    let role = match n % 3 {
        0 => Role::User,
        1 => Role::Assistant,
        _ => Role::System,
    };
    MessageDraft {
        metadata,
        ..common::draft(clock, role, &format!("message {n} — ünïcödé"))
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
        store.create_session(s).await.expect("create session");
    }
    let mut stored = Vec::new();
    for n in 0..40 {
        if n % 5 == 0 {
            clock.advance(Duration::microseconds(1234));
        }
        let s = &sessions[n % 2];
        let (_, m) = store
            .append(&SessionRef::from_uuid(s.id), draft(clock, n))
            .await
            .expect("append");
        stored.push(m);
    }
    store
        .delete_message(stored[3].id)
        .await
        .expect("soft delete");
    stored[3].is_deleted = true;
    (sessions, stored)
}

fn is_deleted_in_file(path: &Path, message: &ChatMessage) -> Option<bool> {
    let raw = rusqlite::Connection::open(path).expect("raw open");
    raw.query_row(
        "SELECT is_deleted FROM messages WHERE id = ?1",
        [message.id.as_bytes()],
        |row| row.get(0),
    )
    .ok()
}

async fn assert_history(
    store: &SqliteStore,
    path: &Path,
    sessions: &[Session],
    stored: &[ChatMessage],
) {
    for (i, s) in sessions.iter().enumerate() {
        let got = store
            .session(&SessionRef::parse(&s.session_id))
            .await
            .expect("get session")
            .expect("session survives the restart");
        assert_eq!(&got, s, "session round-trips exactly");
        let expected: Vec<&ChatMessage> = stored
            .iter()
            .filter(|m| m.session == s.id && !m.is_deleted)
            .collect();
        let (_, listed) = store
            .list_messages(&SessionRef::from_uuid(s.id), &everything())
            .await
            .expect("list messages");
        assert_eq!(
            listed.iter().collect::<Vec<_>>(),
            expected,
            "session {i}: same ids, timestamps, metadata and order"
        );
        // The role index came through too: system messages, in write order.
        let (_, system) = store
            .list_messages(
                &SessionRef::from_uuid(s.id),
                &MessageQuery::oldest_of_role(Role::System, 100),
            )
            .await
            .expect("list system messages");
        let want: Vec<&ChatMessage> = expected
            .iter()
            .copied()
            .filter(|m| m.role == Role::System)
            .collect();
        assert_eq!(system.iter().collect::<Vec<_>>(), want);
    }
    assert_eq!(store.message(stored[3].id).await.expect("get"), None);
    assert_eq!(
        is_deleted_in_file(path, &stored[3]),
        Some(true),
        "the soft-deleted row is kept"
    );
    let listed = store
        .list_sessions(&SessionFilter::default(), all())
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
    assert_history(&store, db.path(), &sessions, &stored).await;
    store.close().await;
    let [_, wal, _] = database_files(db.path());
    assert!(
        !wal.exists(),
        "a clean close checkpoints the WAL into the database file and removes it"
    );

    let reopened = SqliteStore::open(db.path(), clock.clone())
        .await
        .expect("reopen");
    assert_history(&reopened, db.path(), &sessions, &stored).await;
    // Appends continue the same order after the restart.
    let alpha = SessionRef::parse("alpha");
    let turn = reopened
        .begin_turn(&alpha, draft(&clock, 100), 3)
        .await
        .expect("a turn after restart");
    let (_, listed) = reopened
        .list_messages(&alpha, &everything())
        .await
        .expect("list");
    assert_eq!(
        listed.last(),
        Some(&turn.message),
        "new message goes after the old ones"
    );
    assert_eq!(turn.recent, listed[listed.len() - 3..]);
    let last_before = &listed[listed.len() - 2];
    let q = MessageQuery {
        cursor: Some(Cursor::After(last_before.id)),
        ..everything()
    };
    let (_, after) = reopened.list_messages(&alpha, &q).await.expect("list");
    assert_eq!(after, vec![turn.message]);
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
    assert_history(&reopened, db.path(), &sessions, &stored).await;
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
    let shared: Arc<dyn ChatStore> = store;
    let s = session(&clock, "shared");
    shared.create_session(&s).await.expect("create");
    let (_, m) = shared
        .append(&SessionRef::parse("shared"), draft(&clock, 1))
        .await
        .expect("append");
    drop(shared);
    tokio::time::timeout(std::time::Duration::from_secs(10), closed.wait())
        .await
        .expect("the store closes once every handle is dropped");
    let [_, wal, _] = database_files(db.path());
    assert!(!wal.exists(), "the WAL was checkpointed and removed");
    let reopened = SqliteStore::open(db.path(), clock.clone())
        .await
        .expect("reopen");
    assert_eq!(reopened.message(m.id).await.expect("get"), Some((m, s)));
    reopened.close().await;
}
