//! Every statement the store runs: one per operation, so each API operation is one
//! round trip. Each is prepared on every pooled connection when it is opened.
//!
//! A reference is resolved inside the statement that uses it: `$1` is the
//! reference's UUID (NULL when it is not one), `$2` its text, `$3` the store clock's
//! now. Liveness is always `expires_at > now`.
//!
//! Texts are stored escaped (see `text.rs`); search needles arrive lowercased by
//! Rust and escaped, and are compared with `strpos` (no wildcards) against
//! `lower(... COLLATE "und-x-icu")`, ICU's full Unicode lowercasing.

use std::sync::LazyLock;

/// Planner settings of every pooled connection. A list must walk its index in order
/// and stop after the page: a cached (generic) plan estimates rows per session from
/// the average, and for a small average a bitmap scan plus sort looks as cheap,
/// but it reads and sorts the whole session. With sorting disabled the planner
/// sorts only where no index gives the order (a two-row sort resolving a reference).
/// JIT is off: the disabled sort's cost penalty would otherwise push every plan over
/// the JIT thresholds, and compiling costs a second per statement (for statements
/// that run in well under a millisecond, JIT never pays anyway).
pub(crate) const PLANNER_SETTINGS: &str = "-c enable_sort=off -c jit=off";

use colloquy_core::{Cursor, Order};

/// The session columns, in the order [`crate::rows`] reads them.
macro_rules! session_cols {
    ($t:literal) => {
        concat!(
            $t,
            ".id, ",
            $t,
            ".session_id, ",
            $t,
            ".external_user_id, ",
            $t,
            ".created_at, ",
            $t,
            ".expires_at, ",
            $t,
            ".is_active, ",
            $t,
            ".metadata, ",
            $t,
            ".responder, ",
            $t,
            ".handoff_requested_at"
        )
    };
}

/// The ids of the live session `($1, $2)` names, UUID first: a CTE body.
macro_rules! resolve_id {
    () => {
        "SELECT r.id FROM (
            SELECT 0 AS pref, x.id FROM colloquy_sessions x
            WHERE x.id = $1::uuid AND x.expires_at > $3::timestamptz
            UNION ALL
            SELECT 1, x.id FROM colloquy_sessions x
            WHERE x.session_id = $2::text AND x.owns_session_id AND x.expires_at > $3::timestamptz
        ) r ORDER BY r.pref LIMIT 1"
    };
}

/// The case-insensitive substring test of stored column `$col` against needle `$n`.
macro_rules! contains_ci {
    ($col:literal, $n:literal) => {
        concat!(
            "strpos(lower(",
            $col,
            " COLLATE \"und-x-icu\"), ",
            $n,
            ") > 0"
        )
    };
}

/// Creates a session, first taking its session_id from an expired holder, and counts
/// it in hour `$9` of the dashboard's counters. `$1` id, `$2` session_id, `$3`
/// external_user_id, `$4` created_at, `$5` expires_at, `$6` is_active, `$7` metadata,
/// `$8` now, `$10` responder, `$11` handoff_requested_at. A live holder (or a duplicate id) makes the insert hit a unique index: a
/// conflict (and nothing is counted). Returns one row when created.
pub(crate) const CREATE_SESSION: &str = "
WITH released AS (
    UPDATE colloquy_sessions SET owns_session_id = false
    WHERE session_id = $2::text AND owns_session_id AND expires_at <= $8::timestamptz
    RETURNING 1
), created AS (
    INSERT INTO colloquy_sessions
        (id, session_id, external_user_id, created_at, expires_at, is_active, metadata,
         responder, handoff_requested_at)
    SELECT $1::uuid, $2::text, $3::text, $4::timestamptz, $5::timestamptz, $6::boolean,
        $7::json, $10::text, $11::timestamptz
    FROM (SELECT count(*) FROM released) AS release_first
    RETURNING id
), counted AS (
    INSERT INTO colloquy_stats_hours AS h (hour, sessions)
    SELECT $9::timestamptz, 1 FROM created
    ON CONFLICT (hour) DO UPDATE SET sessions = h.sessions + excluded.sessions
)
SELECT id FROM created";

/// Adds counters (in `StatCounts::NAMES` order, from parameter `$first`) to the hour
/// `$hour` for each row of CTE `$from`: the tail of a statement's `WITH` list.
macro_rules! count_hour {
    ($from:literal, $hour:literal) => {
        concat!(
            "counted AS (
        INSERT INTO colloquy_stats_hours AS h (hour, sessions, visitor_messages, answers,
            handoffs, tokens_in, tokens_out, feedback_up, feedback_down, ungrounded)
        SELECT ",
            $hour,
            ", $9::bigint, $10::bigint, $11::bigint, $12::bigint, $13::bigint, $14::bigint,
            $15::bigint, $16::bigint, $17::bigint FROM ",
            $from,
            "
        ON CONFLICT (hour) DO UPDATE SET
            sessions = h.sessions + excluded.sessions,
            visitor_messages = h.visitor_messages + excluded.visitor_messages,
            answers = h.answers + excluded.answers,
            handoffs = h.handoffs + excluded.handoffs,
            tokens_in = h.tokens_in + excluded.tokens_in,
            tokens_out = h.tokens_out + excluded.tokens_out,
            feedback_up = h.feedback_up + excluded.feedback_up,
            feedback_down = h.feedback_down + excluded.feedback_down,
            ungrounded = h.ungrounded + excluded.ungrounded
    )"
        )
    };
}

/// The live session `($1, $2)` names.
pub(crate) const GET_SESSION: &str = concat!(
    "WITH r AS (",
    resolve_id!(),
    ") SELECT ",
    session_cols!("s"),
    " FROM colloquy_sessions s JOIN r ON s.id = r.id"
);

/// Patches the live session: `$4` is_active, `$5` metadata, `$6` whether to set
/// external_user_id, `$7` its new value, `$8` expires_at (NULL: unchanged), `$9`
/// responder (NULL: unchanged), `$10` whether to set handoff_requested_at, `$11` its
/// new value.
pub(crate) const UPDATE_SESSION: &str = concat!(
    "WITH r AS (",
    resolve_id!(),
    ") UPDATE colloquy_sessions s SET
        is_active = coalesce($4::boolean, s.is_active),
        metadata = coalesce($5::json, s.metadata),
        external_user_id = CASE WHEN $6::boolean THEN $7::text ELSE s.external_user_id END,
        expires_at = coalesce($8::timestamptz, s.expires_at),
        responder = coalesce($9::text, s.responder),
        handoff_requested_at = CASE WHEN $10::boolean THEN $11::timestamptz
            ELSE s.handoff_requested_at END
    FROM r WHERE s.id = r.id AND s.expires_at > $3::timestamptz
    RETURNING ",
    session_cols!("s")
);

/// Deletes the live session; its messages go by `ON DELETE CASCADE`.
pub(crate) const DELETE_SESSION: &str = concat!(
    "WITH r AS (",
    resolve_id!(),
    ") DELETE FROM colloquy_sessions s USING r
    WHERE s.id = r.id AND s.expires_at > $3::timestamptz RETURNING s.id"
);

/// Appends: locks the session row, takes the next position, raises the timestamp,
/// inserts, and adds to the dashboard's counters of the message's hour (`$9`..`$17`
/// the counters, `$18` the question an ungrounded answer answers or NULL, `$19` the
/// most questions an hour lists, `$20` 1 when the message is rated down, else 0:
/// the inbox's count). `$4` id, `$5` role, `$6` text, `$7` metadata, `$8`
/// timestamp. Returns no
/// row for no live session, the session with NULL `seq` when it is inactive, else the
/// session with the message's `seq` and stored timestamp.
pub(crate) const APPEND: &str = concat!(
    "WITH r AS (",
    resolve_id!(),
    "), t AS (
        SELECT s.* FROM colloquy_sessions s JOIN r ON s.id = r.id
        WHERE s.expires_at > $3::timestamptz
        FOR NO KEY UPDATE OF s
    ), b AS (
        UPDATE colloquy_sessions s
        SET last_seq = t.last_seq + 1,
            last_written_at = greatest(t.last_written_at, $8::timestamptz),
            live_messages = t.live_messages + 1,
            down_ratings = t.down_ratings + $20::bigint
        FROM t WHERE s.id = t.id AND t.is_active
        RETURNING s.id, s.last_seq, s.last_written_at
    ), m AS (
        INSERT INTO colloquy_messages (session, seq, id, role, message, metadata, written_at)
        SELECT b.id, b.last_seq, $4::uuid, $5::text, $6::text, $7::json, b.last_written_at
        FROM b
        RETURNING seq, written_at, date_trunc('hour', written_at, 'UTC') AS hour
    ), ",
    count_hour!("m", "m.hour"),
    ", asked AS (
        INSERT INTO colloquy_stats_questions AS q (hour, question, count)
        SELECT m.hour, left(x.message, 200), 1
        FROM m JOIN colloquy_messages x ON x.id = $18::uuid
        WHERE (SELECT count(*) FROM colloquy_stats_questions y WHERE y.hour = m.hour)
                < $19::bigint
            OR EXISTS (SELECT 1 FROM colloquy_stats_questions y
                WHERE y.hour = m.hour AND y.question = left(x.message, 200))
        ON CONFLICT (hour, question) DO UPDATE SET count = q.count + 1
    )
    SELECT ",
    session_cols!("t"),
    ", m.seq, m.written_at FROM t LEFT JOIN m ON true"
);

/// Chat's first step; see the function in the schema. `$4`..`$8` as for
/// [`APPEND`], `$18` the window; the message (row `k = 1`) is counted in its hour
/// with counters `$9`..`$17`.
pub(crate) const BEGIN_TURN: &str = concat!(
    "WITH t AS (SELECT * FROM colloquy_begin_turn(
    $1::uuid, $2::text, $3::timestamptz, $4::uuid, $5::text, $6::text, $7::json,
    $8::timestamptz, $18::bigint)), k1 AS (
        SELECT date_trunc('hour', m_written_at, 'UTC') AS hour FROM t WHERE k = 1
    ), ",
    count_hour!("k1", "k1.hour"),
    " SELECT * FROM t"
);

/// The message `$1` with its session, unless deleted or the session is not live at `$2`.
pub(crate) const GET_MESSAGE: &str = concat!(
    "SELECT m.id, m.role, m.message, m.metadata, m.written_at, ",
    session_cols!("s"),
    " FROM colloquy_messages m JOIN colloquy_sessions s ON s.id = m.session
    WHERE m.id = $1::uuid AND NOT m.is_deleted AND s.expires_at > $2::timestamptz"
);

/// Soft-deletes message `$1` unless already deleted or its session is not live at `$2`.
/// Uncounts it in the session's inbox counters.
pub(crate) const DELETE_MESSAGE: &str = "
WITH d AS (
    UPDATE colloquy_messages m SET is_deleted = true
    FROM colloquy_sessions s
    WHERE m.id = $1::uuid AND NOT m.is_deleted AND s.id = m.session
        AND s.expires_at > $2::timestamptz
    RETURNING m.id, m.session,
        CASE WHEN m.metadata #>> '{feedback,rating}' = 'down' THEN 1 ELSE 0 END AS down
), counted AS (
    UPDATE colloquy_sessions s
    SET live_messages = s.live_messages - 1, down_ratings = s.down_ratings - d.down
    FROM d WHERE s.id = d.session
)
SELECT id FROM d";

/// Removes up to `$2` sessions expiring at or before `$1` (and their messages by
/// cascade); returns how many.
pub(crate) const PURGE_BATCH: &str = "
WITH gone AS (
    DELETE FROM colloquy_sessions WHERE id = ANY (ARRAY(
        SELECT id FROM colloquy_sessions WHERE expires_at <= $1::timestamptz
        ORDER BY expires_at LIMIT $2::bigint
    ))
    RETURNING 1
)
SELECT count(*) FROM gone";

/// The health check.
pub(crate) const PING: &str = "SELECT 1";

/// Claims Idempotency-Key `$1` with claim token `$2` and fingerprint `$3` for `$4`
/// microseconds, if it is free or expired (by the database's clock); otherwise
/// leaves the row as it is. Either way the row is locked and returned: `claimed`
/// tells whether this claim holds the key. (An upsert that always updates, so
/// that a claim racing a concurrent first claim sees that claim's committed row,
/// which a separate read in the same statement could not.)
pub(crate) const CLAIM_IDEMPOTENCY: &str = "
INSERT INTO colloquy_idempotency AS i (key, claim, fingerprint, expires_at)
VALUES ($1::text, $2::uuid, $3::text, now() + $4::bigint * interval '1 microsecond')
ON CONFLICT (key) DO UPDATE SET
    claim = CASE WHEN i.expires_at <= now() THEN excluded.claim ELSE i.claim END,
    fingerprint = CASE WHEN i.expires_at <= now() THEN excluded.fingerprint
        ELSE i.fingerprint END,
    status = CASE WHEN i.expires_at <= now() THEN NULL ELSE i.status END,
    body = CASE WHEN i.expires_at <= now() THEN NULL ELSE i.body END,
    stream = CASE WHEN i.expires_at <= now() THEN NULL ELSE i.stream END,
    expires_at = CASE WHEN i.expires_at <= now() THEN excluded.expires_at
        ELSE i.expires_at END
RETURNING i.claim = $2::uuid AS claimed, i.fingerprint, i.status, i.body, i.stream";

/// Records the result of Idempotency-Key `$1`: fingerprint `$2`, status `$3`, body
/// `$4`, stream `$5`, kept for `$6` microseconds.
pub(crate) const COMPLETE_IDEMPOTENCY: &str = "
INSERT INTO colloquy_idempotency AS i (key, claim, fingerprint, status, body, stream, expires_at)
VALUES ($1::text, gen_random_uuid(), $2::text, $3::integer, $4::text, $5::uuid,
    now() + $6::bigint * interval '1 microsecond')
ON CONFLICT (key) DO UPDATE SET claim = excluded.claim, fingerprint = excluded.fingerprint,
    status = excluded.status, body = excluded.body, stream = excluded.stream,
    expires_at = excluded.expires_at";

/// Frees Idempotency-Key `$1` when it has no result.
pub(crate) const RELEASE_IDEMPOTENCY: &str =
    "DELETE FROM colloquy_idempotency WHERE key = $1::text AND status IS NULL";

/// Deletes up to `$1` Idempotency-Key rows expired by the database's clock; answers
/// how many.
pub(crate) const PURGE_IDEMPOTENCY: &str = "
WITH gone AS (
    DELETE FROM colloquy_idempotency WHERE key = ANY (ARRAY(
        SELECT key FROM colloquy_idempotency WHERE expires_at <= now()
        ORDER BY expires_at LIMIT $1::bigint
    ))
    RETURNING 1
)
SELECT count(*) FROM gone";

/// Lists live sessions at `$1`: `$2` is_active filter, `$3` needle, `$4` offset,
/// `$5` limit, and with `by_external_user` `$6` the exact external_user_id.
fn list_sessions(by_external_user: bool) -> String {
    let external = if by_external_user {
        " AND external_user_id = $6::text"
    } else {
        ""
    };
    format!(
        "SELECT {cols} FROM colloquy_sessions s
        WHERE s.expires_at > $1::timestamptz
            AND ($2::boolean IS NULL OR s.is_active = $2::boolean)
            AND ($3::text IS NULL OR {in_sid} OR {in_ext}){external}
        ORDER BY s.created_at DESC, s.id DESC OFFSET $4::bigint LIMIT $5::bigint",
        cols = session_cols!("s"),
        in_sid = contains_ci!("s.session_id", "$3::text"),
        in_ext = contains_ci!("s.external_user_id", "$3::text"),
    )
}

/// The two list-sessions statements: without and with the external_user_id filter.
pub(crate) static LIST_SESSIONS: LazyLock<[String; 2]> =
    LazyLock::new(|| [list_sessions(false), list_sessions(true)]);

/// Lists messages of the live session `($1, $2)` at `$3`: `$4` role filter, `$5`
/// needle, `$6` offset, `$7` limit, and with a cursor `$8` the cursor message.
///
/// Rows: one session row (`k = 0`, with `cursor_ok`: whether the cursor message is
/// in this session), then the page (`k = 1`), in the requested order. Each cursor
/// and order is its own statement, so every plan is an index range scan in the
/// requested direction.
fn list_messages(order: Order, cursor: Option<Cursor>) -> String {
    let (cursor_cte, cursor_ok, cursor_join, bound) = match cursor {
        None => ("", "true", "", ""),
        Some(c) => (
            ", c AS (SELECT cm.seq FROM colloquy_messages cm JOIN r ON cm.session = r.id
                WHERE cm.id = $8::uuid)",
            "EXISTS (SELECT 1 FROM c)",
            " JOIN c ON true",
            match c {
                Cursor::Before(_) => " AND m.seq < c.seq",
                Cursor::After(_) => " AND m.seq > c.seq",
            },
        ),
    };
    let direction = if order.is_newest_first() { " DESC" } else { "" };
    format!(
        "WITH r AS ({resolve}){cursor_cte}
        SELECT 0 AS k, {cols}, {cursor_ok} AS cursor_ok,
            NULL::uuid, NULL::bigint, NULL::text, NULL::text, NULL::json, NULL::timestamptz
        FROM colloquy_sessions s JOIN r ON s.id = r.id
        UNION ALL
        SELECT 1, NULL::uuid, NULL::text, NULL::text, NULL::timestamptz, NULL::timestamptz,
            NULL::boolean, NULL::json, NULL::text, NULL::timestamptz, true,
            p.id, p.seq, p.role, p.message, p.metadata, p.written_at
        FROM r{cursor_join} CROSS JOIN LATERAL (
            SELECT m.id, m.seq, m.role, m.message, m.metadata, m.written_at
            FROM colloquy_messages m
            WHERE m.session = r.id AND NOT m.is_deleted{bound}
                AND ($4::text IS NULL OR m.role = $4::text)
                AND ($5::text IS NULL OR {search})
            ORDER BY m.seq{direction} OFFSET $6::bigint LIMIT $7::bigint
        ) p",
        resolve = resolve_id!(),
        cols = session_cols!("s"),
        search = contains_ci!("m.message", "$5::text"),
    )
}

/// Which of [`LIST_MESSAGES`] serves an order and cursor.
pub(crate) fn list_messages_index(order: Order, cursor: Option<Cursor>) -> usize {
    let by_cursor = match cursor {
        None => 0,
        Some(Cursor::Before(_)) => 1,
        Some(Cursor::After(_)) => 2,
    };
    by_cursor * 2 + usize::from(order.is_newest_first())
}

/// The six list-messages statements: no cursor, before, after; each ascending and
/// descending (in [`list_messages_index`] order).
pub(crate) static LIST_MESSAGES: LazyLock<[String; 6]> = LazyLock::new(|| {
    let nil = uuid::Uuid::nil();
    let cursors = [None, Some(Cursor::Before(nil)), Some(Cursor::After(nil))];
    let mut out: [String; 6] = Default::default();
    for cursor in cursors {
        for order in [Order::Asc, Order::Desc] {
            out[list_messages_index(order, cursor)] = list_messages(order, cursor);
        }
    }
    out
});

/// Every statement, for preparing on a new connection.
pub(crate) fn all() -> impl Iterator<Item = &'static str> {
    [
        CREATE_SESSION,
        GET_SESSION,
        UPDATE_SESSION,
        DELETE_SESSION,
        APPEND,
        BEGIN_TURN,
        GET_MESSAGE,
        DELETE_MESSAGE,
        PURGE_BATCH,
        PING,
        CLAIM_IDEMPOTENCY,
        COMPLETE_IDEMPOTENCY,
        RELEASE_IDEMPOTENCY,
        PURGE_IDEMPOTENCY,
    ]
    .into_iter()
    .chain(crate::console::STATEMENTS)
    .chain(crate::inbox::STATEMENTS.iter().map(String::as_str))
    .chain(LIST_SESSIONS.iter().map(String::as_str))
    .chain(LIST_MESSAGES.iter().map(String::as_str))
}
