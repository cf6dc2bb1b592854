//! The schema, its versioned migrations, and how every connection is set up.
//!
//! `PRAGMA user_version` holds the number of migrations applied. Opening a database
//! applies the missing ones, in order, in one `IMMEDIATE` transaction, so two processes
//! opening the same new file cannot both migrate it. A migration, once released, is
//! never edited: a schema change is a new entry at the end of [`MIGRATIONS`].

use std::path::Path;
use std::time::Duration;

use rusqlite::functions::FunctionFlags;
use rusqlite::{Connection, OpenFlags, TransactionBehavior};

use crate::error::SqliteError;

/// The migrations, oldest first; applying `MIGRATIONS[i]` takes the schema to
/// version `i + 1`.
///
/// Times are integer microseconds since the Unix epoch (exact, and ordered as
/// numbers); UUIDs are their 16 bytes (ordered like [`uuid::Uuid`]'s `Ord`); metadata
/// is JSON text.
pub(crate) const MIGRATIONS: &[&str] = &[
    // 1: sessions and messages.
    "
    CREATE TABLE sessions (
        id               BLOB    NOT NULL PRIMARY KEY,
        session_id       TEXT    NOT NULL,
        external_user_id TEXT,
        created_at       INTEGER NOT NULL,
        expires_at       INTEGER NOT NULL,
        is_active        INTEGER NOT NULL CHECK (is_active IN (0, 1)),
        metadata         TEXT    NOT NULL
    );
    -- get by session_id; one row per session_id (an expired holder is deleted
    -- before its session_id is reused, see sessions::create).
    CREATE UNIQUE INDEX sessions_by_session_id ON sessions (session_id);
    -- list, newest first (scanned backwards for ORDER BY created_at DESC, id DESC).
    CREATE INDEX sessions_by_created ON sessions (created_at, id);
    -- list filtered by external_user_id, in list order.
    CREATE INDEX sessions_by_external_user ON sessions (external_user_id, created_at, id);
    -- the expiry purge.
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
    -- write order within a session: list, recent, the append's predecessor lookup,
    -- and the cascade from sessions.
    CREATE UNIQUE INDEX messages_by_session_position ON messages (session, position);
    ",
    // 2: the non-deleted messages of a session in write order, with `is_deleted` in
    // the index, so list and recent skip `offset` rows (and soft-deleted ones) in
    // the index alone, without reading the rows they skip.
    "
    CREATE INDEX messages_live_by_position ON messages (session, is_deleted, position);
    ",
    // 3: store ports v2.
    // - A session_id is unique among *live* sessions only: an expired session keeps
    //   its row (and session_id) until purged while a new session takes the same
    //   session_id. Liveness depends on the clock, so no constraint can say it; the
    //   writer checks it in the same transaction as the insert (one writer, so
    //   concurrent creates have one winner). The index finds the live holder.
    // - The non-deleted messages of one role in write order: a chat turn reads the
    //   session's oldest system messages from it, however long the session, and a
    //   list filtered by role pages in it.
    "
    DROP INDEX sessions_by_session_id;
    CREATE INDEX sessions_live_by_session_id ON sessions (session_id, expires_at);
    CREATE INDEX messages_live_by_role ON messages (session, role, is_deleted, position);
    ",
    // 4: Idempotency-Key results (see idempotency.rs): one row per key, `status`
    // NULL while the key is claimed without a result; `expires_at` in microseconds
    // of the store's clock. The index serves the purge of expired rows.
    "
    CREATE TABLE idempotency (
        key         TEXT    NOT NULL PRIMARY KEY,
        fingerprint TEXT    NOT NULL,
        status      INTEGER,
        body        TEXT,
        stream      BLOB,
        expires_at  INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX idempotency_by_expiry ON idempotency (expires_at);
    ",
    // 5: the dashboard's counters, kept per hour as things happen (see
    // console.rs): one row per hour (`hour` in microseconds, the hour's start), and
    // the hour's ungrounded questions (at most MAX_QUESTIONS_PER_HOUR per hour).
    "
    CREATE TABLE stats_hours (
        hour             INTEGER NOT NULL PRIMARY KEY,
        sessions         INTEGER NOT NULL DEFAULT 0,
        visitor_messages INTEGER NOT NULL DEFAULT 0,
        answers          INTEGER NOT NULL DEFAULT 0,
        handoffs         INTEGER NOT NULL DEFAULT 0,
        tokens_in        INTEGER NOT NULL DEFAULT 0,
        tokens_out       INTEGER NOT NULL DEFAULT 0,
        feedback_up      INTEGER NOT NULL DEFAULT 0,
        feedback_down    INTEGER NOT NULL DEFAULT 0,
        ungrounded       INTEGER NOT NULL DEFAULT 0
    ) WITHOUT ROWID;
    CREATE TABLE stats_questions (
        hour     INTEGER NOT NULL,
        question TEXT    NOT NULL,
        count    INTEGER NOT NULL,
        PRIMARY KEY (hour, question)
    ) WITHOUT ROWID;
    ",
    // 6: the full-text index of message text (the console's search): an FTS5
    // external-content table over `messages` (keyed by its rowid), kept in sync by
    // triggers (a session's cascade deletes fire them too), with FTS5's own
    // `secure-delete` so a deleted message's words leave the index's pages. Tokens
    // are Unicode letter and digit runs, case-folded, diacritics kept.
    "
    CREATE VIRTUAL TABLE messages_fts USING fts5(
        message, content = 'messages', content_rowid = 'rowid',
        tokenize = 'unicode61 remove_diacritics 0'
    );
    INSERT INTO messages_fts (messages_fts, rank) VALUES ('secure-delete', 1);
    INSERT INTO messages_fts (messages_fts) VALUES ('rebuild');
    CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
        INSERT INTO messages_fts (rowid, message) VALUES (new.rowid, new.message);
    END;
    CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
        INSERT INTO messages_fts (messages_fts, rowid, message)
        VALUES ('delete', old.rowid, old.message);
    END;
    CREATE TRIGGER messages_fts_update AFTER UPDATE OF message ON messages BEGIN
        INSERT INTO messages_fts (messages_fts, rowid, message)
        VALUES ('delete', old.rowid, old.message);
        INSERT INTO messages_fts (rowid, message) VALUES (new.rowid, new.message);
    END;
    ",
    // 7: who answers the visitor (`'ai'` or `'human'`) and when a person was last
    // asked for (microseconds, NULL when no request is pending). Rows written before
    // read as `'ai'` and NULL.
    "
    ALTER TABLE sessions ADD COLUMN responder TEXT NOT NULL DEFAULT 'ai'
        CHECK (responder IN ('ai', 'human'));
    ALTER TABLE sessions ADD COLUMN handoff_requested_at INTEGER;
    ",
    // 8: the console's inbox (see inbox.rs), kept as things happen: the newest
    // message's timestamp (soft-deleted or not), how many messages are not deleted,
    // how many of those are rated down; the last activity and the inbox state are
    // computed from the row (virtual columns), so every index below follows every
    // write of the row. Existing rows are filled from their messages once.
    "
    ALTER TABLE sessions ADD COLUMN last_message_at INTEGER;
    ALTER TABLE sessions ADD COLUMN live_messages INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE sessions ADD COLUMN down_ratings INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE sessions ADD COLUMN last_activity_at INTEGER GENERATED ALWAYS AS (max(
        created_at, coalesce(last_message_at, created_at),
        coalesce(handoff_requested_at, created_at))) VIRTUAL;
    ALTER TABLE sessions ADD COLUMN inbox_state INTEGER GENERATED ALWAYS AS (CASE
        WHEN is_active = 0 THEN 3
        WHEN responder = 'human' AND handoff_requested_at IS NOT NULL THEN 0
        WHEN responder = 'human' THEN 1
        ELSE 2 END) VIRTUAL;
    UPDATE sessions SET
        last_message_at = (SELECT max(m.timestamp) FROM messages m WHERE m.session = sessions.id),
        live_messages = (SELECT count(*) FROM messages m
            WHERE m.session = sessions.id AND m.is_deleted = 0),
        down_ratings = (SELECT count(*) FROM messages m
            WHERE m.session = sessions.id AND m.is_deleted = 0
                AND json_extract(m.metadata, '$.feedback.rating') = 'down');
    CREATE INDEX sessions_inbox ON sessions (last_activity_at, id);
    CREATE INDEX sessions_inbox_by_state ON sessions (inbox_state, last_activity_at, id);
    CREATE INDEX sessions_inbox_by_user ON sessions (external_user_id, last_activity_at, id);
    CREATE INDEX sessions_inbox_rated_down ON sessions (last_activity_at, id)
        WHERE down_ratings > 0;
    ",
];

/// The schema version this build writes (`PRAGMA user_version`): the number of
/// migrations it knows.
pub const SCHEMA_VERSION: usize = MIGRATIONS.len();

/// Name of the SQL function `colloquy_contains_ci(haystack, lowered_needle)`: whether
/// `haystack.to_lowercase()` contains the needle, which the caller has already passed
/// through `str::to_lowercase`. It is Rust's own Unicode lowercasing, so filters agree
/// with [`SessionFilter::matches`](colloquy_core::SessionFilter::matches) and
/// [`MessageFilter::matches`](colloquy_core::MessageFilter::matches) for every input,
/// unlike SQLite's ASCII-only `lower()`/`LIKE`, and `%`/`_` have no special meaning.
/// A NULL haystack contains nothing.
pub(crate) const CONTAINS_CI: &str = "colloquy_contains_ci";

/// Connection settings shared by the writer and the readers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnectionOptions {
    pub(crate) busy_timeout: Duration,
}

/// Opens the read-write connection to a database file, switches it to WAL with
/// `synchronous=FULL`, and brings the schema up to date.
pub(crate) fn open_writer(path: &Path, opts: ConnectionOptions) -> Result<Connection, SqliteError> {
    let mut conn = Connection::open(path).map_err(|source| SqliteError::Open {
        path: path.display().to_string(),
        source,
    })?;
    conn.busy_timeout(opts.busy_timeout)?;
    let mode: String =
        conn.pragma_update_and_check(None, "journal_mode", "wal", |row| row.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(SqliteError::NoWal(mode));
    }
    configure_writer(&conn)?;
    migrate(&mut conn)?;
    Ok(conn)
}

/// Opens a private in-memory database (one connection, so no WAL) with the schema.
pub(crate) fn open_memory() -> Result<Connection, SqliteError> {
    let mut conn = Connection::open_in_memory()?;
    configure_writer(&conn)?;
    migrate(&mut conn)?;
    Ok(conn)
}

/// Opens a read-only connection to a database the writer has already set up.
pub(crate) fn open_reader(path: &Path, opts: ConnectionOptions) -> Result<Connection, SqliteError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(path, flags).map_err(|source| SqliteError::Open {
        path: path.display().to_string(),
        source,
    })?;
    conn.busy_timeout(opts.busy_timeout)?;
    prepare_connection(&conn)?;
    Ok(conn)
}

fn configure_writer(conn: &Connection) -> Result<(), SqliteError> {
    // FULL: in WAL mode the WAL is fsynced at every commit, so an acknowledged
    // transaction survives a power loss or OS crash (see the crate docs).
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // After a burst, truncate the WAL back to at most 64 MiB at the next checkpoint
    // instead of keeping its largest size forever.
    conn.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024)?;
    prepare_connection(conn)?;
    Ok(())
}

/// Statements kept prepared per connection: every statement the store runs (about
/// 50, counting each filter, order and cursor combination of the lists) fits, so
/// none is re-parsed.
const STATEMENT_CACHE: usize = 96;

/// What every connection needs: the statement cache size and [`CONTAINS_CI`].
fn prepare_connection(conn: &Connection) -> Result<(), SqliteError> {
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    conn.create_scalar_function(
        CONTAINS_CI,
        2,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| {
            let haystack = ctx.get_raw(0).as_str_or_null()?;
            let needle = ctx.get_raw(1).as_str_or_null()?;
            Ok(match (haystack, needle) {
                (Some(h), Some(n)) => h.to_lowercase().contains(n),
                _ => false,
            })
        },
    )?;
    Ok(())
}

/// Applies the missing migrations; a no-op on a database at [`SCHEMA_VERSION`].
pub(crate) fn migrate(conn: &mut Connection) -> Result<(), SqliteError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let found: i64 = tx.pragma_query_value(None, "user_version", |row| row.get(0))?;
    let applied = usize::try_from(found)
        .ok()
        .filter(|&v| v <= SCHEMA_VERSION)
        .ok_or(SqliteError::SchemaTooNew {
            found,
            supported: SCHEMA_VERSION,
        })?;
    if applied == SCHEMA_VERSION {
        return Ok(()); // dropping `tx` rolls back the empty transaction
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(applied) {
        let version = index + 1;
        tx.execute_batch(sql)
            .and_then(|()| tx.pragma_update(None, "user_version", crate::rows::sql_count(version)))
            .map_err(|source| SqliteError::Migrate { version, source })?;
        tracing::info!(version, "applied SQLite schema migration");
    }
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pragma(conn: &Connection, name: &str) -> String {
        conn.pragma_query_value(None, name, |row| {
            Ok(match row.get_ref(0)? {
                rusqlite::types::ValueRef::Integer(n) => n.to_string(),
                other => other.as_str()?.to_owned(),
            })
        })
        .expect("pragma")
    }

    #[test]
    fn a_version_1_database_is_upgraded_in_place() {
        let mut conn = Connection::open_in_memory().expect("memory database");
        conn.execute_batch(MIGRATIONS[0]).expect("schema version 1");
        conn.pragma_update(None, "user_version", 1)
            .expect("version 1");
        conn.execute(
            "INSERT INTO sessions VALUES (x'00', 'kept', NULL, 1, 2, 1, '{}')",
            [],
        )
        .expect("a row written by version 1");
        migrate(&mut conn).expect("upgrade");
        assert_eq!(pragma(&conn, "user_version"), SCHEMA_VERSION.to_string());
        let kept: String = conn
            .query_row("SELECT session_id FROM sessions", [], |row| row.get(0))
            .expect("the row survives the upgrade");
        assert_eq!(kept, "kept");
        let index: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_schema WHERE name = 'messages_live_by_position'",
                [],
                |row| row.get(0),
            )
            .expect("schema query");
        assert_eq!(index, 1, "migration 2 ran");
        migrate(&mut conn).expect("a second migrate is a no-op");
    }

    fn index_names(conn: &Connection) -> Vec<String> {
        let mut stmt = conn
            .prepare("SELECT name FROM sqlite_schema WHERE type = 'index' ORDER BY name")
            .expect("schema query");
        stmt.query_map([], |row| row.get(0))
            .expect("indexes")
            .collect::<Result<_, _>>()
            .expect("names")
    }

    #[test]
    fn a_version_2_database_is_upgraded_in_place() {
        let mut conn = Connection::open_in_memory().expect("memory database");
        conn.execute_batch(MIGRATIONS[0]).expect("schema version 1");
        conn.execute_batch(MIGRATIONS[1]).expect("schema version 2");
        conn.pragma_update(None, "user_version", 2)
            .expect("version 2");
        conn.execute(
            "INSERT INTO sessions VALUES (x'01', 'shared', NULL, 1, 2, 1, '{}')",
            [],
        )
        .expect("a row written by version 2");
        assert!(
            conn.execute(
                "INSERT INTO sessions VALUES (x'02', 'shared', NULL, 1, 3, 1, '{}')",
                [],
            )
            .is_err(),
            "version 2 allows one row per session_id"
        );
        migrate(&mut conn).expect("upgrade");
        assert_eq!(pragma(&conn, "user_version"), SCHEMA_VERSION.to_string());
        let indexes = index_names(&conn);
        assert!(
            !indexes.iter().any(|n| n == "sessions_by_session_id"),
            "{indexes:?}"
        );
        for expected in ["sessions_live_by_session_id", "messages_live_by_role"] {
            assert!(
                indexes.iter().any(|n| n == expected),
                "{expected}: {indexes:?}"
            );
        }
        conn.execute(
            "INSERT INTO sessions (id, session_id, external_user_id, created_at, expires_at,
                 is_active, metadata) VALUES (x'02', 'shared', NULL, 1, 3, 1, '{}')",
            [],
        )
        .expect("version 3 stores a second session under an expired one's session_id");
        let kept: i64 = conn
            .query_row(
                "SELECT count(*) FROM sessions WHERE session_id = 'shared'",
                [],
                |row| row.get(0),
            )
            .expect("count");
        assert_eq!(kept, 2, "the version 2 row survives the upgrade");
        migrate(&mut conn).expect("a second migrate is a no-op");
    }

    #[test]
    fn a_version_6_session_reads_as_answered_by_the_model_with_no_handoff() {
        let mut conn = Connection::open_in_memory().expect("memory database");
        for sql in &MIGRATIONS[..6] {
            conn.execute_batch(sql).expect("schema up to version 6");
        }
        conn.pragma_update(None, "user_version", 6)
            .expect("version 6");
        conn.execute(
            "INSERT INTO sessions VALUES (x'00000000000000000000000000000001', 'old', NULL, 1, 2, 1, '{}')",
            [],
        )
        .expect("a row written by version 6");
        migrate(&mut conn).expect("upgrade");
        let session = conn
            .query_row(
                concat!("SELECT ", crate::rows::session_columns!(), " FROM sessions"),
                [],
                crate::rows::session,
            )
            .expect("the old row reads");
        assert_eq!(session.responder, colloquy_core::Responder::Ai);
        assert_eq!(session.handoff_requested_at, None);
        assert!(
            conn.execute("UPDATE sessions SET responder = 'robot'", [])
                .is_err(),
            "responder is 'ai' or 'human'"
        );
    }

    #[test]
    fn the_writer_is_durable_wal_with_foreign_keys_and_the_readers_are_read_only() {
        let dir = std::env::temp_dir().join(format!("colloquy-schema-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("t.db");
        let opts = ConnectionOptions {
            busy_timeout: Duration::from_millis(100),
        };
        let writer = open_writer(&path, opts).expect("writer");
        assert_eq!(pragma(&writer, "journal_mode"), "wal");
        assert_eq!(pragma(&writer, "synchronous"), "2", "2 is FULL");
        assert_eq!(pragma(&writer, "foreign_keys"), "1");
        assert_eq!(pragma(&writer, "busy_timeout"), "100");
        assert_eq!(pragma(&writer, "user_version"), SCHEMA_VERSION.to_string());
        let reader = open_reader(&path, opts).expect("reader");
        assert!(reader
            .execute("DELETE FROM sessions", [])
            .is_err_and(|e| e.sqlite_error_code() == Some(rusqlite::ErrorCode::ReadOnly)));
        let found: bool = reader
            .query_row("SELECT colloquy_contains_ci('Grüße', 'grü')", [], |row| {
                row.get(0)
            })
            .expect("the search function is registered on readers");
        assert!(found);
        drop((reader, writer));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
