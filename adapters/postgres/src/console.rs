//! What the operator's console needs from the store: feedback on a message and
//! erasing a visitor. Each operation is one statement (feedback: a read, then a
//! compare-and-set write).

use std::time::Duration;

use chrono::{DateTime, Utc};
use colloquy_core::ports::Erased;
use colloquy_core::stats::{self, HourStats, StatCounts};
use colloquy_core::{ChatMessage, Entity, Feedback, Session, StoreError};
use deadpool_postgres::Pool;
use tokio_postgres::types::Json;
use uuid::Uuid;

use crate::error::Corrupt;
use crate::{rows, text};

/// The message `$1` (5 columns), its session (9) and its metadata's stored text,
/// unless deleted or the session is not live at `$2`.
pub(crate) const FEEDBACK_READ: &str = "
SELECT m.id, m.role, m.message, m.metadata, m.written_at,
    s.id, s.session_id, s.external_user_id, s.created_at, s.expires_at, s.is_active,
    s.metadata, s.responder, s.handoff_requested_at, m.metadata::text
FROM colloquy_messages m JOIN colloquy_sessions s ON s.id = m.session
WHERE m.id = $1::uuid AND NOT m.is_deleted AND s.expires_at > $2::timestamptz";

/// Replaces the metadata of message `$1` with `$2` if it is still `$3` (as stored
/// text) and the message is not deleted; returns a row when it did. Then adds
/// (`$5` up, `$6` down) to hour `$4` and (`$8`, `$9`) to hour `$7` (NULL: none) of
/// the dashboard's counters: the new rating, and the replaced one taken back; adds
/// `$10` to the session's down ratings (the inbox's count).
pub(crate) const FEEDBACK_WRITE: &str = "
WITH w AS (
    UPDATE colloquy_messages SET metadata = $2::json
    WHERE id = $1::uuid AND NOT is_deleted AND metadata::text = $3::text
    RETURNING id, session
), counted AS (
    INSERT INTO colloquy_stats_hours AS h (hour, feedback_up, feedback_down)
    SELECT v.hour, v.up, v.down FROM w, (VALUES
        ($4::timestamptz, $5::bigint, $6::bigint),
        ($7::timestamptz, $8::bigint, $9::bigint)) AS v (hour, up, down)
    WHERE v.hour IS NOT NULL
    ON CONFLICT (hour) DO UPDATE SET
        feedback_up = h.feedback_up + excluded.feedback_up,
        feedback_down = h.feedback_down + excluded.feedback_down
), rated AS (
    UPDATE colloquy_sessions s SET down_ratings = s.down_ratings + $10::bigint
    FROM w WHERE s.id = w.session AND $10::bigint <> 0
)
SELECT id FROM w";

/// Adds counters `$2`.. (in `StatCounts::NAMES` order) to hour `$1`.
pub(crate) const COUNT: &str = "
INSERT INTO colloquy_stats_hours AS h (hour, sessions, visitor_messages, answers, handoffs,
    tokens_in, tokens_out, feedback_up, feedback_down, ungrounded)
VALUES ($1::timestamptz, $2::bigint, $3::bigint, $4::bigint, $5::bigint, $6::bigint,
    $7::bigint, $8::bigint, $9::bigint, $10::bigint)
ON CONFLICT (hour) DO UPDATE SET
    sessions = h.sessions + excluded.sessions,
    visitor_messages = h.visitor_messages + excluded.visitor_messages,
    answers = h.answers + excluded.answers,
    handoffs = h.handoffs + excluded.handoffs,
    tokens_in = h.tokens_in + excluded.tokens_in,
    tokens_out = h.tokens_out + excluded.tokens_out,
    feedback_up = h.feedback_up + excluded.feedback_up,
    feedback_down = h.feedback_down + excluded.feedback_down,
    ungrounded = h.ungrounded + excluded.ungrounded";

/// The counters of the hours in [`$1`, `$2`), oldest first, each with its
/// questions (as two arrays).
pub(crate) const HOURS: &str = "
SELECT h.hour, h.sessions, h.visitor_messages, h.answers, h.handoffs, h.tokens_in,
    h.tokens_out, h.feedback_up, h.feedback_down, h.ungrounded,
    ARRAY(SELECT q.question FROM colloquy_stats_questions q WHERE q.hour = h.hour),
    ARRAY(SELECT q.count FROM colloquy_stats_questions q WHERE q.hour = h.hour)
FROM colloquy_stats_hours h
WHERE h.hour >= $1::timestamptz AND h.hour < $2::timestamptz
ORDER BY h.hour";

/// Deletes every session of visitor `$1`, expired ones too (messages go by cascade);
/// returns how many sessions and how many messages (soft-deleted ones too) went.
pub(crate) const ERASE_USER: &str = "
WITH gone AS (
    DELETE FROM colloquy_sessions WHERE external_user_id = $1::text RETURNING id
)
SELECT (SELECT count(*) FROM gone)::bigint,
    (SELECT coalesce(sum(c.n), 0) FROM gone g, LATERAL (
        SELECT count(*) AS n FROM colloquy_messages m WHERE m.session = g.id
    ) c)::bigint";

/// One page (`$3` offset, `$4` limit) of the non-deleted messages of sessions live
/// at `$2` whose text matches the `tsquery` `$1`, with their sessions, newest
/// first: the GIN index finds the matches, which are then sorted.
pub(crate) const SEARCH: &str = "
SELECT m.id, m.role, m.message, m.metadata, m.written_at,
    s.id, s.session_id, s.external_user_id, s.created_at, s.expires_at, s.is_active,
    s.metadata, s.responder, s.handoff_requested_at
FROM colloquy_messages m JOIN colloquy_sessions s ON s.id = m.session
WHERE to_tsvector('simple', m.message) @@ to_tsquery('simple', $1::text)
    AND NOT m.is_deleted AND s.expires_at > $2::timestamptz
ORDER BY m.written_at DESC, m.id DESC OFFSET $3::bigint LIMIT $4::bigint";

/// The statements of this module, prepared with the others.
pub(crate) const STATEMENTS: [&str; 6] = [
    FEEDBACK_READ,
    FEEDBACK_WRITE,
    ERASE_USER,
    COUNT,
    HOURS,
    SEARCH,
];

/// One page of the messages matching `query` across live sessions, newest first.
pub(crate) async fn search(
    pool: &Pool,
    deadline: Option<Duration>,
    now: DateTime<Utc>,
    query: &str,
    page: colloquy_core::Page,
) -> Result<Vec<(ChatMessage, Session)>, StoreError> {
    let words = colloquy_core::search::query_words(query);
    if words.is_empty() {
        return Ok(Vec::new());
    }
    // Letters and digits only: nothing in a word means anything to to_tsquery.
    let tsquery = words
        .iter()
        .map(|w| format!("{}:*", text::encode(w)))
        .collect::<Vec<_>>()
        .join(" & ");
    let offset = rows::sql_count(page.offset);
    let limit = rows::sql_count(page.limit);
    let found =
        crate::store::query(pool, deadline, SEARCH, &[&tsquery, &now, &offset, &limit]).await?;
    found
        .iter()
        .map(|row| {
            let session = rows::session(row, 5)?;
            Ok((rows::message(row, 0, session.id)?, session))
        })
        .collect()
}

/// How many times feedback is tried when another write changed the message's metadata
/// between its read and its write.
const FEEDBACK_ATTEMPTS: usize = 8;

/// Stores `feedback` in message `id`'s metadata: read, change, write if unchanged.
pub(crate) async fn set_feedback(
    pool: &Pool,
    deadline: Option<Duration>,
    now: DateTime<Utc>,
    id: Uuid,
    feedback: &Feedback,
) -> Result<(ChatMessage, Session), StoreError> {
    for _ in 0..FEEDBACK_ATTEMPTS {
        let read = crate::store::query(pool, deadline, FEEDBACK_READ, &[&id, &now]).await?;
        let Some(row) = read.first() else {
            return Err(StoreError::NotFound(Entity::Message));
        };
        let session = rows::session(row, 5)?;
        let mut message = rows::message(row, 0, session.id)?;
        let stored: String = row
            .try_get(rows::SESSION_COLUMNS + 5)
            .map_err(StoreError::backend)?;
        let was_down = colloquy_core::inbox::is_rated_down(&message.metadata);
        let previous = feedback.apply_to(&mut message.metadata);
        let rated =
            i64::from(colloquy_core::inbox::is_rated_down(&message.metadata)) - i64::from(was_down);
        let metadata = Json(&message.metadata);
        // At most two hours; one row each (an upsert may not touch a row twice).
        let mut changes: Vec<(DateTime<Utc>, StatCounts)> = Vec::new();
        for (hour, counts) in stats::feedback_changes(previous.as_ref(), feedback) {
            match changes.iter_mut().find(|(h, _)| *h == hour) {
                Some((_, sum)) => sum.add(&counts),
                None => changes.push((hour, counts)),
            }
        }
        let first = changes
            .first()
            .map(|(h, c)| (Some(*h), c.feedback_up, c.feedback_down));
        let second = changes
            .get(1)
            .map(|(h, c)| (Some(*h), c.feedback_up, c.feedback_down));
        let (h1, up1, down1) = first.unwrap_or((None, 0, 0));
        let (h2, up2, down2) = second.unwrap_or((None, 0, 0));
        let written = crate::store::query(
            pool,
            deadline,
            FEEDBACK_WRITE,
            &[
                &id, &metadata, &stored, &h1, &up1, &down1, &h2, &up2, &down2, &rated,
            ],
        )
        .await?;
        if !written.is_empty() {
            return Ok((message, session));
        }
    }
    Err(StoreError::unavailable(Contended))
}

/// Feedback lost every attempt to another write of the same message's metadata.
#[derive(Debug, thiserror::Error)]
#[error("the message's metadata kept changing while feedback was written")]
struct Contended;

/// Deletes every session of `external_user_id` with its messages.
pub(crate) async fn erase_user(
    pool: &Pool,
    deadline: Option<Duration>,
    external_user_id: &str,
) -> Result<Erased, StoreError> {
    let external = text::encode(external_user_id);
    let rows = crate::store::query(pool, deadline, ERASE_USER, &[&external]).await?;
    let row = rows
        .first()
        .ok_or_else(|| StoreError::backend(Corrupt("erase returned no row")))?;
    let sessions: i64 = row.try_get(0).map_err(StoreError::backend)?;
    let messages: i64 = row.try_get(1).map_err(StoreError::backend)?;
    Ok(Erased {
        sessions: u64::try_from(sessions).unwrap_or(0),
        messages: u64::try_from(messages).unwrap_or(0),
    })
}

/// Adds `counts` to the hour `at` is in.
pub(crate) async fn count(
    pool: &Pool,
    deadline: Option<Duration>,
    at: DateTime<Utc>,
    counts: &StatCounts,
) -> Result<(), StoreError> {
    let hour = stats::hour_of(at);
    let [a, b, c, d, e, f, g, h, i] = counts.values();
    crate::store::query(
        pool,
        deadline,
        COUNT,
        &[&hour, &a, &b, &c, &d, &e, &f, &g, &h, &i],
    )
    .await?;
    Ok(())
}

/// The counters of every hour from the one `from` is in up to `to`, oldest first.
pub(crate) async fn hours(
    pool: &Pool,
    deadline: Option<Duration>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<HourStats>, StoreError> {
    let first = stats::hour_of(from);
    let rows = crate::store::query(pool, deadline, HOURS, &[&first, &to]).await?;
    rows.iter()
        .map(|row| {
            let get = |i: usize| row.try_get::<_, i64>(i).map_err(StoreError::backend);
            let mut values = [0_i64; 9];
            for (i, v) in values.iter_mut().enumerate() {
                *v = get(i + 1)?;
            }
            let texts: Vec<String> = row.try_get(10).map_err(StoreError::backend)?;
            let counts: Vec<i64> = row.try_get(11).map_err(StoreError::backend)?;
            let questions = texts
                .into_iter()
                .zip(counts)
                .map(|(t, n)| (question_text(&t), u64::try_from(n).unwrap_or(0)))
                .collect();
            Ok(HourStats {
                hour: row.try_get(0).map_err(StoreError::backend)?,
                counts: StatCounts::from_values(values),
                questions,
            })
        })
        .collect()
}

/// A stored question prefix back as text: it may end inside an escape sequence
/// (it was cut at 200 characters), so the escape characters are dropped when it
/// does not decode.
fn question_text(stored: &str) -> String {
    text::decode(stored).map_or_else(
        || stored.replace(['\u{10FFFF}', '\u{10FFFE}'], ""),
        std::borrow::Cow::into_owned,
    )
}
