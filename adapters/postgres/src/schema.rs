//! The schema, its versioned migrations, and applying them at start-up.
//!
//! `colloquy_schema_migrations` records each applied migration. Start-up applies the
//! missing ones, in order, in **one** transaction that first takes a transaction-scoped
//! advisory lock keyed by the schema, so two instances starting together do not race:
//! the second waits, then finds the work done. A migration, once released, is never
//! edited: a schema change is a new entry at the end of [`MIGRATIONS`].

use std::time::Duration;

use tokio_postgres::Client;

use crate::error::ConnectError;

/// The unique index on message ids; a unique violation on it is a message conflict.
pub(crate) const MESSAGE_ID_INDEX: &str = "colloquy_messages_id";
/// The sessions' primary key; a unique violation on it is a session conflict.
pub(crate) const SESSION_PKEY: &str = "colloquy_sessions_pkey";
/// The unique index on live holders' session_ids; a violation is a session conflict.
pub(crate) const SESSION_ID_INDEX: &str = "colloquy_sessions_session_id";

/// How long the migration transaction may run (waiting for another instance's
/// migration included) before start-up fails.
const MIGRATION_TIMEOUT: Duration = Duration::from_secs(60);

/// The migrations, oldest first; applying `MIGRATIONS[i]` takes the schema to
/// version `i + 1`.
pub(crate) const MIGRATIONS: &[&str] = &[
    // 1: sessions, messages, their indexes, and the begin_turn function.
    r"
    CREATE TABLE colloquy_sessions (
        id               uuid        NOT NULL PRIMARY KEY,
        session_id       text        NOT NULL,
        external_user_id text,
        created_at       timestamptz NOT NULL,
        expires_at       timestamptz NOT NULL,
        is_active        boolean     NOT NULL,
        metadata         json        NOT NULL,
        -- Whether this session holds its session_id: true from creation until a new
        -- session takes the session_id after this one expired. The unique index below
        -- makes 'one live session per session_id' a constraint even though liveness
        -- depends on the caller's clock.
        owns_session_id  boolean     NOT NULL DEFAULT true,
        -- The write position and timestamp of the newest message: appends lock this
        -- row, so they take the next position and raise their timestamp in order.
        last_seq         bigint      NOT NULL DEFAULT 0,
        last_written_at  timestamptz
    );
    -- resolve a session_id (the live holder), and refuse a second holder.
    CREATE UNIQUE INDEX colloquy_sessions_session_id
        ON colloquy_sessions (session_id) WHERE owns_session_id;
    -- list, newest first.
    CREATE INDEX colloquy_sessions_created
        ON colloquy_sessions (created_at DESC, id DESC);
    -- list filtered by external_user_id, in list order.
    CREATE INDEX colloquy_sessions_external_user
        ON colloquy_sessions (external_user_id, created_at DESC, id DESC);
    -- the expiry purge.
    CREATE INDEX colloquy_sessions_expiry ON colloquy_sessions (expires_at);

    CREATE TABLE colloquy_messages (
        session    uuid        NOT NULL REFERENCES colloquy_sessions (id) ON DELETE CASCADE,
        seq        bigint      NOT NULL,
        id         uuid        NOT NULL,
        role       text        NOT NULL CHECK (role IN ('user', 'assistant', 'system')),
        message    text        NOT NULL,
        metadata   json        NOT NULL,
        written_at timestamptz NOT NULL,
        is_deleted boolean     NOT NULL DEFAULT false,
        -- write order within a session; serves the cascade from sessions.
        PRIMARY KEY (session, seq)
    );
    -- message by id; ids are unique across everything stored.
    CREATE UNIQUE INDEX colloquy_messages_id ON colloquy_messages (id);
    -- lists and recent: the non-deleted messages of a session in write order.
    CREATE INDEX colloquy_messages_live
        ON colloquy_messages (session, seq) WHERE NOT is_deleted;
    -- begin_turn: the oldest system messages of a session, never a scan of it.
    CREATE INDEX colloquy_messages_system
        ON colloquy_messages (session, seq) WHERE role = 'system' AND NOT is_deleted;

    -- Chat's first step in one round trip. A function rather than one statement:
    -- after the session row is locked, each statement below takes a fresh snapshot,
    -- so the context it reads includes every append committed before this one (one
    -- statement would read from a snapshot taken before it waited for the lock).
    -- Returns nothing when no live session matches, only the session row (k = 0)
    -- when it is inactive, else the session, the message (k = 1), the oldest
    -- `p_window` system messages (k = 2, oldest first) and the newest `p_window`
    -- messages (k = 3, newest first).
    CREATE FUNCTION colloquy_begin_turn(
        p_session uuid, p_ref text, p_now timestamptz,
        p_id uuid, p_role text, p_message text, p_metadata json, p_written_at timestamptz,
        p_window bigint)
    RETURNS TABLE (
        k integer,
        s_id uuid, s_session_id text, s_external_user_id text, s_created_at timestamptz,
        s_expires_at timestamptz, s_is_active boolean, s_metadata json, cursor_ok boolean,
        m_id uuid, m_seq bigint, m_role text, m_message text, m_metadata json,
        m_written_at timestamptz)
    LANGUAGE plpgsql VOLATILE
    SET search_path FROM CURRENT
    AS $fn$
    #variable_conflict use_column
    DECLARE
        sess colloquy_sessions%ROWTYPE;
    BEGIN
        SELECT * INTO sess FROM colloquy_sessions AS cs
        WHERE cs.id = (
                SELECT r.id FROM (
                    SELECT 0 AS pref, x.id FROM colloquy_sessions x
                    WHERE x.id = p_session AND x.expires_at > p_now
                    UNION ALL
                    SELECT 1, x.id FROM colloquy_sessions x
                    WHERE x.session_id = p_ref AND x.owns_session_id AND x.expires_at > p_now
                ) r ORDER BY r.pref LIMIT 1)
            AND cs.expires_at > p_now
        FOR NO KEY UPDATE;
        IF NOT FOUND THEN
            RETURN;
        END IF;
        RETURN QUERY SELECT 0, sess.id, sess.session_id, sess.external_user_id,
            sess.created_at, sess.expires_at, sess.is_active, sess.metadata, true,
            NULL::uuid, NULL::bigint, NULL::text, NULL::text, NULL::json, NULL::timestamptz;
        IF NOT sess.is_active THEN
            RETURN;
        END IF;
        UPDATE colloquy_sessions
        SET last_seq = sess.last_seq + 1,
            last_written_at = greatest(sess.last_written_at, p_written_at)
        WHERE id = sess.id
        RETURNING last_seq, last_written_at INTO sess.last_seq, sess.last_written_at;
        INSERT INTO colloquy_messages (session, seq, id, role, message, metadata, written_at)
        VALUES (sess.id, sess.last_seq, p_id, p_role, p_message, p_metadata,
            sess.last_written_at);
        RETURN QUERY SELECT 1, NULL::uuid, NULL::text, NULL::text, NULL::timestamptz,
            NULL::timestamptz, NULL::boolean, NULL::json, true,
            p_id, sess.last_seq, p_role, p_message, p_metadata, sess.last_written_at;
        RETURN QUERY SELECT 2, NULL::uuid, NULL::text, NULL::text, NULL::timestamptz,
            NULL::timestamptz, NULL::boolean, NULL::json, true,
            m.id, m.seq, m.role, m.message, m.metadata, m.written_at
        FROM colloquy_messages m
        WHERE m.session = sess.id AND m.role = 'system' AND NOT m.is_deleted
        ORDER BY m.seq LIMIT p_window;
        RETURN QUERY SELECT 3, NULL::uuid, NULL::text, NULL::text, NULL::timestamptz,
            NULL::timestamptz, NULL::boolean, NULL::json, true,
            m.id, m.seq, m.role, m.message, m.metadata, m.written_at
        FROM colloquy_messages m
        WHERE m.session = sess.id AND NOT m.is_deleted
        ORDER BY m.seq DESC LIMIT p_window;
    END
    $fn$;
    ",
    // 2: Idempotency-Key results: one row per key; `status` is NULL while the key
    // is claimed without a result; `claim` is the token of the claim holding it.
    // Expiry is by the database's clock. The index serves the purge.
    r"
    CREATE TABLE colloquy_idempotency (
        key         text        NOT NULL PRIMARY KEY,
        claim       uuid        NOT NULL,
        fingerprint text        NOT NULL,
        status      integer,
        body        text,
        stream      uuid,
        expires_at  timestamptz NOT NULL
    );
    CREATE INDEX colloquy_idempotency_expiry ON colloquy_idempotency (expires_at);
    ",
    // 3: the dashboard's counters, kept per hour as things happen (the statements
    // that store an event add to them: see console.rs), and each hour's ungrounded
    // questions (about MAX_QUESTIONS_PER_HOUR per hour; concurrent writers may pass
    // the bound by a few).
    r"
    CREATE TABLE colloquy_stats_hours (
        hour             timestamptz NOT NULL PRIMARY KEY,
        sessions         bigint      NOT NULL DEFAULT 0,
        visitor_messages bigint      NOT NULL DEFAULT 0,
        answers          bigint      NOT NULL DEFAULT 0,
        handoffs         bigint      NOT NULL DEFAULT 0,
        tokens_in        bigint      NOT NULL DEFAULT 0,
        tokens_out       bigint      NOT NULL DEFAULT 0,
        feedback_up      bigint      NOT NULL DEFAULT 0,
        feedback_down    bigint      NOT NULL DEFAULT 0,
        ungrounded       bigint      NOT NULL DEFAULT 0
    );
    CREATE TABLE colloquy_stats_questions (
        hour     timestamptz NOT NULL,
        question text        NOT NULL,
        count    bigint      NOT NULL,
        PRIMARY KEY (hour, question)
    );
    ",
    // 4: the full-text index of message text (the console's search): words of the
    // `simple` configuration (lowercased, no stemming, no stop words), matched as
    // prefixes.
    r"
    CREATE INDEX colloquy_messages_text
        ON colloquy_messages USING gin (to_tsvector('simple', message));
    ",
    // 5: who answers the visitor ('ai' or 'human') and when a person was last asked
    // for (NULL: no request pending); rows written before read as 'ai' and NULL.
    // `colloquy_begin_turn` returns them with the session (its result type changes,
    // so it is dropped and created again).
    r"
    ALTER TABLE colloquy_sessions
        ADD COLUMN responder text NOT NULL DEFAULT 'ai' CHECK (responder IN ('ai', 'human')),
        ADD COLUMN handoff_requested_at timestamptz;
    DROP FUNCTION colloquy_begin_turn(
        uuid, text, timestamptz, uuid, text, text, json, timestamptz, bigint);
    CREATE FUNCTION colloquy_begin_turn(
        p_session uuid, p_ref text, p_now timestamptz,
        p_id uuid, p_role text, p_message text, p_metadata json, p_written_at timestamptz,
        p_window bigint)
    RETURNS TABLE (
        k integer,
        s_id uuid, s_session_id text, s_external_user_id text, s_created_at timestamptz,
        s_expires_at timestamptz, s_is_active boolean, s_metadata json,
        s_responder text, s_handoff_requested_at timestamptz, cursor_ok boolean,
        m_id uuid, m_seq bigint, m_role text, m_message text, m_metadata json,
        m_written_at timestamptz)
    LANGUAGE plpgsql VOLATILE
    SET search_path FROM CURRENT
    AS $fn$
    #variable_conflict use_column
    DECLARE
        sess colloquy_sessions%ROWTYPE;
    BEGIN
        SELECT * INTO sess FROM colloquy_sessions AS cs
        WHERE cs.id = (
                SELECT r.id FROM (
                    SELECT 0 AS pref, x.id FROM colloquy_sessions x
                    WHERE x.id = p_session AND x.expires_at > p_now
                    UNION ALL
                    SELECT 1, x.id FROM colloquy_sessions x
                    WHERE x.session_id = p_ref AND x.owns_session_id AND x.expires_at > p_now
                ) r ORDER BY r.pref LIMIT 1)
            AND cs.expires_at > p_now
        FOR NO KEY UPDATE;
        IF NOT FOUND THEN
            RETURN;
        END IF;
        RETURN QUERY SELECT 0, sess.id, sess.session_id, sess.external_user_id,
            sess.created_at, sess.expires_at, sess.is_active, sess.metadata,
            sess.responder, sess.handoff_requested_at, true,
            NULL::uuid, NULL::bigint, NULL::text, NULL::text, NULL::json, NULL::timestamptz;
        IF NOT sess.is_active THEN
            RETURN;
        END IF;
        UPDATE colloquy_sessions
        SET last_seq = sess.last_seq + 1,
            last_written_at = greatest(sess.last_written_at, p_written_at)
        WHERE id = sess.id
        RETURNING last_seq, last_written_at INTO sess.last_seq, sess.last_written_at;
        INSERT INTO colloquy_messages (session, seq, id, role, message, metadata, written_at)
        VALUES (sess.id, sess.last_seq, p_id, p_role, p_message, p_metadata,
            sess.last_written_at);
        RETURN QUERY SELECT 1, NULL::uuid, NULL::text, NULL::text, NULL::timestamptz,
            NULL::timestamptz, NULL::boolean, NULL::json, NULL::text, NULL::timestamptz, true,
            p_id, sess.last_seq, p_role, p_message, p_metadata, sess.last_written_at;
        RETURN QUERY SELECT 2, NULL::uuid, NULL::text, NULL::text, NULL::timestamptz,
            NULL::timestamptz, NULL::boolean, NULL::json, NULL::text, NULL::timestamptz, true,
            m.id, m.seq, m.role, m.message, m.metadata, m.written_at
        FROM colloquy_messages m
        WHERE m.session = sess.id AND m.role = 'system' AND NOT m.is_deleted
        ORDER BY m.seq LIMIT p_window;
        RETURN QUERY SELECT 3, NULL::uuid, NULL::text, NULL::text, NULL::timestamptz,
            NULL::timestamptz, NULL::boolean, NULL::json, NULL::text, NULL::timestamptz, true,
            m.id, m.seq, m.role, m.message, m.metadata, m.written_at
        FROM colloquy_messages m
        WHERE m.session = sess.id AND NOT m.is_deleted
        ORDER BY m.seq DESC LIMIT p_window;
    END
    $fn$;
    ",
    // 6: the console's inbox (see inbox.rs), kept as things happen: how many
    // messages are not deleted and how many of those are rated down (the append,
    // soft delete and feedback statements keep them); the last activity and the
    // inbox state are generated from the row, and indexed in the inbox's order.
    // Existing rows are counted from their messages once. `colloquy_begin_turn`
    // counts its message too.
    r"
    ALTER TABLE colloquy_sessions
        ADD COLUMN live_messages bigint NOT NULL DEFAULT 0,
        ADD COLUMN down_ratings bigint NOT NULL DEFAULT 0,
        ADD COLUMN last_activity_at timestamptz GENERATED ALWAYS AS
            (greatest(created_at, last_written_at, handoff_requested_at)) STORED,
        ADD COLUMN inbox_state smallint GENERATED ALWAYS AS (CASE
            WHEN NOT is_active THEN 3
            WHEN responder = 'human' AND handoff_requested_at IS NOT NULL THEN 0
            WHEN responder = 'human' THEN 1
            ELSE 2 END) STORED;
    UPDATE colloquy_sessions s SET
        live_messages = (SELECT count(*) FROM colloquy_messages m
            WHERE m.session = s.id AND NOT m.is_deleted),
        down_ratings = (SELECT count(*) FROM colloquy_messages m
            WHERE m.session = s.id AND NOT m.is_deleted
                AND m.metadata #>> '{feedback,rating}' = 'down');
    CREATE INDEX colloquy_sessions_inbox
        ON colloquy_sessions (last_activity_at DESC, id DESC);
    CREATE INDEX colloquy_sessions_inbox_state
        ON colloquy_sessions (inbox_state, last_activity_at DESC, id DESC);
    CREATE INDEX colloquy_sessions_inbox_user
        ON colloquy_sessions (external_user_id, last_activity_at DESC, id DESC);
    CREATE INDEX colloquy_sessions_inbox_rated_down
        ON colloquy_sessions (last_activity_at DESC, id DESC) WHERE down_ratings > 0;
    CREATE OR REPLACE FUNCTION colloquy_begin_turn(
        p_session uuid, p_ref text, p_now timestamptz,
        p_id uuid, p_role text, p_message text, p_metadata json, p_written_at timestamptz,
        p_window bigint)
    RETURNS TABLE (
        k integer,
        s_id uuid, s_session_id text, s_external_user_id text, s_created_at timestamptz,
        s_expires_at timestamptz, s_is_active boolean, s_metadata json,
        s_responder text, s_handoff_requested_at timestamptz, cursor_ok boolean,
        m_id uuid, m_seq bigint, m_role text, m_message text, m_metadata json,
        m_written_at timestamptz)
    LANGUAGE plpgsql VOLATILE
    SET search_path FROM CURRENT
    AS $fn$
    #variable_conflict use_column
    DECLARE
        sess colloquy_sessions%ROWTYPE;
    BEGIN
        SELECT * INTO sess FROM colloquy_sessions AS cs
        WHERE cs.id = (
                SELECT r.id FROM (
                    SELECT 0 AS pref, x.id FROM colloquy_sessions x
                    WHERE x.id = p_session AND x.expires_at > p_now
                    UNION ALL
                    SELECT 1, x.id FROM colloquy_sessions x
                    WHERE x.session_id = p_ref AND x.owns_session_id AND x.expires_at > p_now
                ) r ORDER BY r.pref LIMIT 1)
            AND cs.expires_at > p_now
        FOR NO KEY UPDATE;
        IF NOT FOUND THEN
            RETURN;
        END IF;
        RETURN QUERY SELECT 0, sess.id, sess.session_id, sess.external_user_id,
            sess.created_at, sess.expires_at, sess.is_active, sess.metadata,
            sess.responder, sess.handoff_requested_at, true,
            NULL::uuid, NULL::bigint, NULL::text, NULL::text, NULL::json, NULL::timestamptz;
        IF NOT sess.is_active THEN
            RETURN;
        END IF;
        UPDATE colloquy_sessions
        SET last_seq = sess.last_seq + 1,
            last_written_at = greatest(sess.last_written_at, p_written_at),
            live_messages = sess.live_messages + 1,
            down_ratings = sess.down_ratings
                + CASE WHEN p_metadata #>> '{feedback,rating}' = 'down' THEN 1 ELSE 0 END
        WHERE id = sess.id
        RETURNING last_seq, last_written_at INTO sess.last_seq, sess.last_written_at;
        INSERT INTO colloquy_messages (session, seq, id, role, message, metadata, written_at)
        VALUES (sess.id, sess.last_seq, p_id, p_role, p_message, p_metadata,
            sess.last_written_at);
        RETURN QUERY SELECT 1, NULL::uuid, NULL::text, NULL::text, NULL::timestamptz,
            NULL::timestamptz, NULL::boolean, NULL::json, NULL::text, NULL::timestamptz, true,
            p_id, sess.last_seq, p_role, p_message, p_metadata, sess.last_written_at;
        RETURN QUERY SELECT 2, NULL::uuid, NULL::text, NULL::text, NULL::timestamptz,
            NULL::timestamptz, NULL::boolean, NULL::json, NULL::text, NULL::timestamptz, true,
            m.id, m.seq, m.role, m.message, m.metadata, m.written_at
        FROM colloquy_messages m
        WHERE m.session = sess.id AND m.role = 'system' AND NOT m.is_deleted
        ORDER BY m.seq LIMIT p_window;
        RETURN QUERY SELECT 3, NULL::uuid, NULL::text, NULL::text, NULL::timestamptz,
            NULL::timestamptz, NULL::boolean, NULL::json, NULL::text, NULL::timestamptz, true,
            m.id, m.seq, m.role, m.message, m.metadata, m.written_at
        FROM colloquy_messages m
        WHERE m.session = sess.id AND NOT m.is_deleted
        ORDER BY m.seq DESC LIMIT p_window;
    END
    $fn$;
    ",
];

/// The schema version this build writes: the number of migrations it knows.
pub const SCHEMA_VERSION: usize = MIGRATIONS.len();

/// The advisory lock key's first half ("Coll"); the second is the schema's hash.
const LOCK_CLASS: i32 = 0x436f_6c6c;

/// Applies the missing migrations in one transaction under the advisory lock; creates
/// `schema` first when given.
pub(crate) async fn migrate(client: &mut Client, schema: Option<&str>) -> Result<(), ConnectError> {
    let tx = client.transaction().await.map_err(ConnectError::from_pg)?;
    let timeout_ms = MIGRATION_TIMEOUT.as_millis();
    tx.batch_execute(&format!("SET LOCAL statement_timeout = {timeout_ms}"))
        .await
        .map_err(ConnectError::from_pg)?;
    tx.execute(
        "SELECT pg_advisory_xact_lock($1, hashtext(coalesce($2, current_schema(), '')))",
        &[&LOCK_CLASS, &schema],
    )
    .await
    .map_err(ConnectError::from_pg)?;
    if let Some(schema) = schema {
        // The name was checked to need no quoting (PostgresConfig::validate).
        tx.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
            .await
            .map_err(ConnectError::from_pg)?;
    }
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS colloquy_schema_migrations (
            version    integer     NOT NULL PRIMARY KEY,
            applied_at timestamptz NOT NULL DEFAULT now()
        )",
    )
    .await
    .map_err(ConnectError::from_pg)?;
    let found: i64 = tx
        .query_one(
            "SELECT coalesce(max(version), 0)::bigint FROM colloquy_schema_migrations",
            &[],
        )
        .await
        .and_then(|row| row.try_get(0))
        .map_err(ConnectError::from_pg)?;
    let applied = usize::try_from(found)
        .ok()
        .filter(|&v| v <= SCHEMA_VERSION)
        .ok_or(ConnectError::SchemaTooNew {
            found,
            supported: SCHEMA_VERSION,
        })?;
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(applied) {
        let version = index + 1;
        let recorded = i32::try_from(version).unwrap_or(i32::MAX);
        tx.batch_execute(sql)
            .await
            .map_err(|source| ConnectError::Migrate { version, source })?;
        tx.execute(
            "INSERT INTO colloquy_schema_migrations (version) VALUES ($1)",
            &[&recorded],
        )
        .await
        .map_err(|source| ConnectError::Migrate { version, source })?;
        tracing::info!(version, "applied PostgreSQL schema migration");
    }
    tx.commit().await.map_err(ConnectError::from_pg)?;
    Ok(())
}

/// For `no_migrate`: fails unless the schema is exactly at [`SCHEMA_VERSION`].
pub(crate) async fn check_version(client: &Client) -> Result<(), ConnectError> {
    let found: i64 = match client
        .query_one(
            "SELECT coalesce(max(version), 0)::bigint FROM colloquy_schema_migrations",
            &[],
        )
        .await
    {
        Ok(row) => row.try_get(0).map_err(ConnectError::from_pg)?,
        Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE) => 0,
        Err(e) => return Err(ConnectError::from_pg(e)),
    };
    let expected = SCHEMA_VERSION;
    match usize::try_from(found) {
        Ok(v) if v == expected => Ok(()),
        Ok(v) if v > expected => Err(ConnectError::SchemaTooNew {
            found,
            supported: expected,
        }),
        _ => Err(ConnectError::NotMigrated { found, expected }),
    }
}
