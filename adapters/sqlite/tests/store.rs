//! Behaviour beyond the shared suite: Unicode-exact filters, error mapping for a
//! locked database, group-commit isolation, and the in-memory variant.

mod common;

use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::Duration;
use colloquy_core::ports::{MessageStore, SessionStore};
use colloquy_core::{
    ChatMessage, Clock, ManualClock, MessageFilter, Metadata, Page, Role, Session, SessionFilter,
    StoreError,
};
use colloquy_sqlite::{SqliteConfig, SqliteStore};
use rusqlite::Connection;
use uuid::Uuid;

fn session(clock: &ManualClock, sid: &str, ext: Option<&str>) -> Session {
    let now = clock.now();
    Session {
        id: Uuid::now_v7(),
        session_id: sid.into(),
        external_user_id: ext.map(Into::into),
        created_at: now,
        expires_at: now + Duration::hours(1),
        is_active: true,
        metadata: Metadata::new(),
    }
}

fn message(clock: &ManualClock, session: Uuid, text: &str) -> ChatMessage {
    ChatMessage {
        id: Uuid::now_v7(),
        session,
        message: text.into(),
        role: Role::User,
        metadata: Metadata::new(),
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

async fn open(db: &common::TempDb, clock: &Arc<ManualClock>) -> SqliteStore {
    SqliteStore::open(db.path(), clock.clone())
        .await
        .expect("open")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_agrees_with_the_reference_filters_beyond_ascii_and_wildcards() {
    let db = common::TempDb::new();
    let clock = Arc::new(ManualClock::new());
    let store = open(&db, &clock).await;
    let s = session(&clock, "Straße-ÄRGER", Some("ÉLODIE_50%"));
    let other = session(&clock, "plain", Some("x"));
    store.create(&s).await.expect("create");
    store.create(&other).await.expect("create");
    let texts = ["Grüße aus KÖLN", "100% sicher", "a_b", "axb", "ΣΊΣΥΦΟΣ"];
    let mut stored = Vec::new();
    for t in texts {
        stored.push(
            store
                .append(message(&clock, s.id, t))
                .await
                .expect("append"),
        );
    }
    let sessions = [s.clone(), other.clone()];
    for needle in [
        "ärger", "STRASSE", "straße", "élodie", "_50%", "%", "_", "ÄRGER", "LAIN", "",
    ] {
        let filter = SessionFilter {
            search: Some(needle.into()),
            ..SessionFilter::default()
        };
        let got: Vec<Uuid> = SessionStore::list(&store, &filter, all())
            .await
            .expect("list")
            .into_iter()
            .map(|x| x.id)
            .collect();
        let mut want: Vec<&Session> = sessions.iter().filter(|x| filter.matches(x)).collect();
        want.sort_by_key(|x| std::cmp::Reverse((x.created_at, x.id)));
        let want: Vec<Uuid> = want.into_iter().map(|x| x.id).collect();
        assert_eq!(got, want, "session search {needle:?}");
    }
    for needle in [
        "köln",
        "GRÜSSE",
        "grüße",
        "%",
        "_",
        "a_b",
        "σίσυφος",
        "ΣΊΣ",
        "x",
    ] {
        let filter = MessageFilter {
            search: Some(needle.into()),
            ..MessageFilter::default()
        };
        let got = MessageStore::list(&store, s.id, &filter, all())
            .await
            .expect("list");
        let want: Vec<ChatMessage> = stored
            .iter()
            .filter(|m| filter.matches(m))
            .cloned()
            .collect();
        assert_eq!(got, want, "message search {needle:?}");
    }
    // Sanity: the cases above include non-ASCII matches and literal wildcards.
    let one = |needle: &str| MessageFilter {
        search: Some(needle.into()),
        ..MessageFilter::default()
    };
    assert_eq!(
        MessageStore::list(&store, s.id, &one("köln"), all())
            .await
            .expect("list")
            .len(),
        1
    );
    assert_eq!(
        MessageStore::list(&store, s.id, &one("a_b"), all())
            .await
            .expect("list")
            .len(),
        1,
        "_ is not a wildcard"
    );
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_locked_by_another_process_is_unavailable_not_an_error() {
    let db = common::TempDb::new();
    let clock = Arc::new(ManualClock::new());
    let config = SqliteConfig {
        busy_timeout: StdDuration::from_millis(50),
        ..SqliteConfig::default()
    };
    let store = SqliteStore::open_with(db.path(), clock.clone(), config)
        .await
        .expect("open");
    let other = Connection::open(db.path()).expect("second connection");
    other
        .execute_batch("BEGIN IMMEDIATE")
        .expect("take the write lock");
    let s = session(&clock, "blocked", None);
    let err = store
        .create(&s)
        .await
        .expect_err("the write lock is held elsewhere");
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    store
        .ping()
        .await
        .expect("reads still work under a writer (WAL)");
    other.execute_batch("ROLLBACK").expect("release the lock");
    store
        .create(&s)
        .await
        .expect("works once the lock is released");
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_write_does_not_spoil_the_writes_committed_with_it() {
    let db = common::TempDb::new();
    let clock = Arc::new(ManualClock::new());
    let store = Arc::new(open(&db, &clock).await);
    let s = session(&clock, "batch", None);
    store.create(&s).await.expect("create");
    let duplicate = store
        .append(message(&clock, s.id, "first"))
        .await
        .expect("append");
    // Many concurrent writes land in shared transactions; a third of them fail.
    let mut tasks = Vec::new();
    for i in 0..300 {
        let store = store.clone();
        let m = match i % 3 {
            0 => message(&clock, s.id, &format!("ok {i}")),
            1 => message(&clock, Uuid::now_v7(), "missing session"),
            _ => ChatMessage {
                message: format!("dup {i}"),
                ..duplicate.clone()
            },
        };
        tasks.push(tokio::spawn(async move { (i, store.append(m).await) }));
    }
    let mut ok = Vec::new();
    for t in tasks {
        let (i, result) = t.await.expect("join");
        match (i % 3, result) {
            (0, Ok(m)) => ok.push(m),
            (1, Err(StoreError::NotFound)) | (2, Err(StoreError::Conflict)) => {}
            (_, other) => panic!("write {i}: unexpected {other:?}"),
        }
    }
    let listed = MessageStore::list(&*store, s.id, &MessageFilter::default(), all())
        .await
        .expect("list");
    assert_eq!(
        listed.len(),
        101,
        "the first message plus every successful append"
    );
    for m in &ok {
        assert!(listed.contains(m), "acknowledged write {} is stored", m.id);
    }
}

#[tokio::test]
async fn the_in_memory_store_works_without_a_file() {
    let clock = Arc::new(ManualClock::new());
    let store = SqliteStore::open_in_memory(clock.clone()).expect("open in memory");
    let s = session(&clock, "mem", None);
    store.create(&s).await.expect("create");
    let m = store
        .append(message(&clock, s.id, "hello"))
        .await
        .expect("append");
    assert_eq!(MessageStore::get(&store, m.id).await.expect("get"), Some(m));
    store.ping().await.expect("ping");
    store.close().await;
}
