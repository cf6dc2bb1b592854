//! Versioned schema migrations: a new file gets the whole schema and `user_version`,
//! reopening a current file changes nothing, and a file from a newer build is refused.

mod common;

use std::sync::Arc;

use chrono::Duration;
use colloquy_core::ports::SessionStore;
use colloquy_core::{Clock, ManualClock, Metadata, Session, SessionRef, StoreError};
use colloquy_sqlite::{SqliteStore, SCHEMA_VERSION};
use rusqlite::Connection;
use uuid::Uuid;

fn user_version(conn: &Connection) -> i64 {
    conn.pragma_query_value(None, "user_version", |row| row.get(0))
        .expect("read user_version")
}

/// Every schema object, as SQLite stores its definition.
fn schema(conn: &Connection) -> Vec<(String, String, Option<String>)> {
    let mut stmt = conn
        .prepare("SELECT type, name, sql FROM sqlite_schema ORDER BY type, name")
        .expect("prepare");
    stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows")
}

#[tokio::test]
async fn a_new_database_gets_the_current_schema_version_and_wal() {
    let db = common::TempDb::new();
    let store = SqliteStore::open(db.path(), Arc::new(ManualClock::new()))
        .await
        .expect("open");
    store.close().await;
    let conn = Connection::open(db.path()).expect("raw open");
    assert_eq!(
        user_version(&conn),
        i64::try_from(SCHEMA_VERSION).expect("small")
    );
    let mode: String = conn
        .pragma_query_value(None, "journal_mode", |row| row.get(0))
        .expect("journal_mode");
    assert_eq!(mode, "wal", "WAL mode is persistent in the file");
    let names: Vec<String> = schema(&conn).into_iter().map(|(_, name, _)| name).collect();
    for expected in [
        "sessions",
        "messages",
        "sessions_by_session_id",
        "sessions_by_created",
        "sessions_by_external_user",
        "sessions_by_expiry",
        "messages_by_session_position",
        "messages_live_by_position",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} exists: {names:?}"
        );
    }
}

#[tokio::test]
async fn reopening_a_current_database_is_a_no_op() {
    let db = common::TempDb::new();
    let clock = Arc::new(ManualClock::new());
    let store = SqliteStore::open(db.path(), clock.clone())
        .await
        .expect("open");
    let now = clock.now();
    let session = Session {
        id: Uuid::now_v7(),
        session_id: "kept".into(),
        external_user_id: None,
        created_at: now,
        expires_at: now + Duration::hours(1),
        is_active: true,
        metadata: Metadata::new(),
    };
    store.create(&session).await.expect("create");
    store.close().await;

    let before = {
        let conn = Connection::open(db.path()).expect("raw open");
        (user_version(&conn), schema(&conn))
    };
    let file_before = std::fs::read(db.path()).expect("read file");
    let store = SqliteStore::open(db.path(), clock.clone())
        .await
        .expect("reopen");
    let got = store
        .get(&SessionRef::parse("kept"))
        .await
        .expect("get")
        .expect("data is kept");
    assert_eq!(got, session);
    store.close().await;
    let conn = Connection::open(db.path()).expect("raw open");
    assert_eq!((user_version(&conn), schema(&conn)), before);
    assert_eq!(
        std::fs::read(db.path()).expect("read file"),
        file_before,
        "opening and closing without writes leaves the file byte-for-byte unchanged"
    );
}

#[tokio::test]
async fn an_unversioned_empty_file_is_migrated() {
    let db = common::TempDb::new();
    {
        let conn = Connection::open(db.path()).expect("raw create");
        assert_eq!(user_version(&conn), 0);
    }
    let store = SqliteStore::open(db.path(), Arc::new(ManualClock::new()))
        .await
        .expect("open migrates");
    store.ping().await.expect("usable");
    store.close().await;
    let conn = Connection::open(db.path()).expect("raw open");
    assert_eq!(
        user_version(&conn),
        i64::try_from(SCHEMA_VERSION).expect("small")
    );
}

#[tokio::test]
async fn a_database_from_a_newer_build_is_refused() {
    let db = common::TempDb::new();
    let newer = i64::try_from(SCHEMA_VERSION).expect("small") + 1;
    {
        let conn = Connection::open(db.path()).expect("raw create");
        conn.pragma_update(None, "user_version", newer)
            .expect("set user_version");
    }
    let err = SqliteStore::open(db.path(), Arc::new(ManualClock::new()))
        .await
        .expect_err("a newer schema must not be opened");
    assert!(matches!(err, StoreError::Backend(_)), "{err:?}");
    let source = std::error::Error::source(&err).map(ToString::to_string);
    assert!(
        source.as_deref().is_some_and(|s| s.contains("newer")),
        "the cause says why: {source:?}"
    );
    let conn = Connection::open(db.path()).expect("raw open");
    assert_eq!(user_version(&conn), newer, "the file is left untouched");
}

#[tokio::test]
async fn a_file_that_is_not_a_database_is_an_error() {
    let db = common::TempDb::new();
    std::fs::write(
        db.path(),
        b"this is not a SQLite database, just some text....",
    )
    .expect("write junk");
    let err = SqliteStore::open(db.path(), Arc::new(ManualClock::new()))
        .await
        .expect_err("junk is refused");
    assert!(matches!(err, StoreError::Backend(_)), "{err:?}");
}
