//! Versioned schema migrations: a new file gets the whole schema and `user_version`,
//! a file from the previous build (version 2) is upgraded in place with its data
//! kept, reopening a current file changes nothing, and a file from a newer build is
//! refused.

mod common;

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use colloquy_core::ports::ChatStore;
use colloquy_core::{
    Clock, Cursor, Entity, ManualClock, MessageQuery, Role, SessionRef, StoreError,
};
use colloquy_sqlite::{SqliteStore, SCHEMA_VERSION};
use rusqlite::{params, Connection};
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
        "sessions_live_by_session_id",
        "sessions_by_created",
        "sessions_by_external_user",
        "sessions_by_expiry",
        "messages_by_session_position",
        "messages_live_by_position",
        "messages_live_by_role",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} exists: {names:?}"
        );
    }
    assert!(
        !names.iter().any(|n| n == "sessions_by_session_id"),
        "session_id is unique among live sessions only, not by index: {names:?}"
    );
}

#[tokio::test]
async fn reopening_a_current_database_is_a_no_op() {
    let db = common::TempDb::new();
    let clock = Arc::new(ManualClock::new());
    let store = SqliteStore::open(db.path(), clock.clone())
        .await
        .expect("open");
    let session = common::session(&*clock, "kept", Duration::hours(1));
    store.create_session(&session).await.expect("create");
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
        .session(&SessionRef::parse("kept"))
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

/// The schema of version 2 exactly as that build wrote it (migrations 1 and 2): a
/// frozen fixture, independent of this build's migration code.
const VERSION_2_SCHEMA: &str = "
    CREATE TABLE sessions (
        id               BLOB    NOT NULL PRIMARY KEY,
        session_id       TEXT    NOT NULL,
        external_user_id TEXT,
        created_at       INTEGER NOT NULL,
        expires_at       INTEGER NOT NULL,
        is_active        INTEGER NOT NULL CHECK (is_active IN (0, 1)),
        metadata         TEXT    NOT NULL
    );
    CREATE UNIQUE INDEX sessions_by_session_id ON sessions (session_id);
    CREATE INDEX sessions_by_created ON sessions (created_at, id);
    CREATE INDEX sessions_by_external_user ON sessions (external_user_id, created_at, id);
    CREATE INDEX sessions_by_expiry ON sessions (expires_at);
    CREATE TABLE messages (
        id         BLOB    NOT NULL PRIMARY KEY,
        session    BLOB    NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
        position   INTEGER NOT NULL,
        message    TEXT    NOT NULL,
        role       TEXT    NOT NULL CHECK (role IN ('user', 'assistant', 'system')),
        metadata   TEXT    NOT NULL,
        timestamp  INTEGER NOT NULL,
        is_deleted INTEGER NOT NULL DEFAULT 0 CHECK (is_deleted IN (0, 1))
    );
    CREATE UNIQUE INDEX messages_by_session_position ON messages (session, position);
    CREATE INDEX messages_live_by_position ON messages (session, is_deleted, position);
    PRAGMA user_version = 2;
";

/// Writes a version 2 file: one session per `(id, session_id, expires_at)` with
/// `roles.len()` messages each, the message at index `deleted` soft-deleted.
/// Returns the message ids per session, in write order.
fn write_version_2(
    path: &std::path::Path,
    sessions: &[(Uuid, &str, DateTime<Utc>)],
    roles: &[Role],
    deleted: usize,
) -> Vec<Vec<Uuid>> {
    let conn = Connection::open(path).expect("raw create");
    conn.execute_batch(VERSION_2_SCHEMA)
        .expect("version 2 schema");
    let mut ids = Vec::new();
    for (id, sid, expires_at) in sessions {
        conn.execute(
            "INSERT INTO sessions VALUES (?1, ?2, NULL, ?3, ?4, 1, '{}')",
            params![
                id.as_bytes(),
                sid,
                expires_at.timestamp_micros() - 1_000_000,
                expires_at.timestamp_micros()
            ],
        )
        .expect("session row");
        let mut these = Vec::new();
        for (position, role) in roles.iter().enumerate() {
            let message = Uuid::new_v4();
            conn.execute(
                "INSERT INTO messages VALUES (?1, ?2, ?3, ?4, ?5, '{}', ?6, ?7)",
                params![
                    message.as_bytes(),
                    id.as_bytes(),
                    i64::try_from(position).expect("small"),
                    format!("m{position}"),
                    role.as_str(),
                    expires_at.timestamp_micros() - 500_000,
                    position == deleted,
                ],
            )
            .expect("message row");
            these.push(message);
        }
        ids.push(these);
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_2_file_is_upgraded_with_its_data_and_gains_the_v2_store_behaviour() {
    let db = common::TempDb::new();
    let clock = Arc::new(ManualClock::new());
    let now = clock.now();
    let (old, live) = (Uuid::new_v4(), Uuid::new_v4());
    let roles = [
        Role::System,
        Role::User,
        Role::Assistant,
        Role::System,
        Role::User,
        Role::System,
        Role::Assistant,
    ];
    let ids = write_version_2(
        db.path(),
        &[
            (old, "reused", now - Duration::minutes(1)), // already expired
            (live, "live", now + Duration::hours(1)),
        ],
        &roles,
        3, // the second system message is soft-deleted
    );
    let store = SqliteStore::open(db.path(), clock.clone())
        .await
        .expect("open upgrades");

    // The live session's history reads as before, through the new indexes.
    let to = SessionRef::parse("live");
    let (session, listed) = store
        .list_messages(&to, &common::everything())
        .await
        .expect("list");
    assert_eq!(session.id, live);
    let kept: Vec<Uuid> = ids[1]
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 3)
        .map(|(_, id)| *id)
        .collect();
    assert_eq!(listed.iter().map(|m| m.id).collect::<Vec<_>>(), kept);
    let before = MessageQuery {
        cursor: Some(Cursor::Before(ids[1][4])),
        order: colloquy_core::Order::Desc,
        ..common::everything()
    };
    let (_, page) = store
        .list_messages(&to, &before)
        .await
        .expect("cursor page");
    assert_eq!(
        page.iter().map(|m| m.id).collect::<Vec<_>>(),
        vec![ids[1][2], ids[1][1], ids[1][0]],
        "a cursor on a version 2 row, newest first, skipping the deleted one"
    );
    let turn = store
        .begin_turn(
            &to,
            common::draft(&*clock, Role::User, "after the upgrade"),
            3,
        )
        .await
        .expect("turn");
    assert_eq!(
        turn.system.iter().map(|m| m.id).collect::<Vec<_>>(),
        vec![ids[1][0], ids[1][5]],
        "system messages written by version 2 come from the new role index"
    );
    assert_eq!(
        turn.recent.iter().map(|m| m.id).collect::<Vec<_>>(),
        vec![ids[1][5], ids[1][6], turn.message.id],
        "the append continues version 2's write positions"
    );

    // The expired session stays stored while a new one takes its session_id, which
    // the version 2 schema (unique session_id) could not hold.
    assert_eq!(
        store
            .session(&SessionRef::parse("reused"))
            .await
            .expect("get"),
        None
    );
    let new = common::session(&*clock, "reused", Duration::hours(1));
    store
        .create_session(&new)
        .await
        .expect("reuse an expired session_id after the upgrade");
    let again = common::session(&*clock, "reused", Duration::hours(1));
    let err = store
        .create_session(&again)
        .await
        .expect_err("a live session_id is still unique");
    assert!(
        matches!(err, StoreError::Conflict(Entity::Session)),
        "{err:?}"
    );
    assert_eq!(store.purge_expired(now).await.expect("purge"), 1);
    assert_eq!(
        store
            .session(&SessionRef::parse("reused"))
            .await
            .expect("get"),
        Some(new),
        "the purge of the old holder leaves the new one"
    );
    store.close().await;

    let conn = Connection::open(db.path()).expect("raw open");
    assert_eq!(
        user_version(&conn),
        i64::try_from(SCHEMA_VERSION).expect("small")
    );
    let integrity: String = conn
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .expect("integrity_check");
    assert_eq!(integrity, "ok");
}
