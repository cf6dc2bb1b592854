//! What the operator's console needs from the store: feedback on a message,
//! erasing a visitor, and the dashboard's counters. Like the other queries, each
//! function runs inside the worker's transaction and judges expiry by `now`
//! (microseconds); the counting functions run in the same job (so the same
//! transaction) as the write they count.

use chrono::{DateTime, Utc};
use colloquy_core::ports::Erased;
use colloquy_core::stats::{self, HourStats, StatCounts, MAX_QUESTIONS_PER_HOUR};
use colloquy_core::{ChatMessage, Entity, Feedback, Session};
use rusqlite::{params, Connection, OptionalExtension};
use uuid::Uuid;

use crate::error::SqliteError;
use crate::messages;
use crate::rows::{metadata_json, micros, sql_count, time};

/// The statements, as constants so the query-plan test checks exactly these.
pub(crate) mod sql {
    /// Replaces a message's metadata.
    pub(crate) const SET_METADATA: &str = "UPDATE messages SET metadata = ?2 WHERE id = ?1";
    /// How many messages (soft-deleted ones too) the sessions of a visitor hold.
    pub(crate) const COUNT_USER_MESSAGES: &str = "SELECT count(*) FROM messages
         WHERE session IN (SELECT id FROM sessions WHERE external_user_id = ?1)";
    /// Deletes every session of a visitor, expired ones too (messages cascade).
    pub(crate) const DELETE_USER_SESSIONS: &str =
        "DELETE FROM sessions WHERE external_user_id = ?1";
    /// Adds counters ?2.. (in `StatCounts::NAMES` order) to hour ?1.
    pub(crate) const COUNT: &str = "INSERT INTO stats_hours (hour, sessions, visitor_messages,
         answers, handoffs, tokens_in, tokens_out, feedback_up, feedback_down, ungrounded)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
         ON CONFLICT (hour) DO UPDATE SET
             sessions = sessions + excluded.sessions,
             visitor_messages = visitor_messages + excluded.visitor_messages,
             answers = answers + excluded.answers,
             handoffs = handoffs + excluded.handoffs,
             tokens_in = tokens_in + excluded.tokens_in,
             tokens_out = tokens_out + excluded.tokens_out,
             feedback_up = feedback_up + excluded.feedback_up,
             feedback_down = feedback_down + excluded.feedback_down,
             ungrounded = ungrounded + excluded.ungrounded";
    /// The text of message ?1.
    pub(crate) const MESSAGE_TEXT: &str = "SELECT message FROM messages WHERE id = ?1";
    /// Counts question ?2 in hour ?1 when it is listed or the hour lists fewer than
    /// ?3 questions.
    pub(crate) const COUNT_QUESTION: &str = "INSERT INTO stats_questions (hour, question, count)
         SELECT ?1, ?2, 1 WHERE (SELECT count(*) FROM stats_questions WHERE hour = ?1) < ?3
             OR EXISTS (SELECT 1 FROM stats_questions WHERE hour = ?1 AND question = ?2)
         ON CONFLICT (hour, question) DO UPDATE SET count = count + 1";
    /// The counters of the hours in [?1, ?2), oldest first.
    pub(crate) const HOURS: &str = "SELECT hour, sessions, visitor_messages, answers, handoffs,
         tokens_in, tokens_out, feedback_up, feedback_down, ungrounded
         FROM stats_hours WHERE hour >= ?1 AND hour < ?2 ORDER BY hour";
    /// One page of the non-deleted messages of live sessions (at ?2) matching the
    /// FTS5 query ?1, with their sessions, newest first: the index finds the
    /// matches, which are then sorted (the cost grows with the matches).
    pub(crate) const SEARCH: &str = concat!(
        "SELECT ",
        crate::rows::message_columns!("m"),
        ", ",
        crate::rows::session_columns!("s"),
        " FROM messages_fts f JOIN messages m ON m.rowid = f.rowid
         JOIN sessions s ON s.id = m.session
         WHERE messages_fts MATCH ?1 AND m.is_deleted = 0 AND s.expires_at > ?2
         ORDER BY m.timestamp DESC, m.id DESC LIMIT ?3 OFFSET ?4"
    );
    /// The questions of the hours in [?1, ?2).
    pub(crate) const QUESTIONS: &str =
        "SELECT hour, question, count FROM stats_questions WHERE hour >= ?1 AND hour < ?2";
}

/// Stores `feedback` in the metadata of message `id` when it is not deleted and its
/// session is live; returns the message as stored with its session.
pub(crate) fn set_feedback(
    conn: &Connection,
    now: i64,
    id: Uuid,
    feedback: &Feedback,
) -> Result<(ChatMessage, Session), SqliteError> {
    let (mut message, session) =
        messages::get(conn, now, id)?.ok_or(SqliteError::NotFound(Entity::Message))?;
    let was_down = colloquy_core::inbox::is_rated_down(&message.metadata);
    let previous = feedback.apply_to(&mut message.metadata);
    conn.prepare_cached(sql::SET_METADATA)?
        .execute(params![id.as_bytes(), metadata_json(&message.metadata)?])?;
    let is_down = colloquy_core::inbox::is_rated_down(&message.metadata);
    crate::inbox::rated(conn, session.id, i64::from(is_down) - i64::from(was_down))?;
    for (hour, counts) in stats::feedback_changes(previous.as_ref(), feedback) {
        count(conn, hour, &counts)?;
    }
    Ok((message, session))
}

/// Deletes every session of `external_user_id` with its messages, with
/// `secure_delete` on so the freed pages are overwritten with zeros (the text does
/// not linger in the file's free pages); returns the counts.
pub(crate) fn erase_user(conn: &Connection, external_user_id: &str) -> Result<Erased, SqliteError> {
    let messages: i64 = conn
        .prepare_cached(sql::COUNT_USER_MESSAGES)?
        .query_row(params![external_user_id], |row| row.get(0))?;
    conn.pragma_update(None, "secure_delete", true)?;
    let deleted = conn
        .prepare_cached(sql::DELETE_USER_SESSIONS)?
        .execute(params![external_user_id]);
    // Back to the default whatever happened: other deletes need not pay for it.
    let restored = conn.pragma_update(None, "secure_delete", false);
    let sessions = deleted?;
    restored?;
    Ok(Erased {
        sessions: u64::try_from(sessions).unwrap_or(u64::MAX),
        messages: u64::try_from(messages).unwrap_or(0),
    })
}

/// Adds `counts` to the counters of the hour `at` is in.
pub(crate) fn count(
    conn: &Connection,
    at: DateTime<Utc>,
    counts: &StatCounts,
) -> Result<(), SqliteError> {
    let [a, b, c, d, e, f, g, h, i] = counts.values();
    conn.prepare_cached(sql::COUNT)?.execute(params![
        micros(stats::hour_of(at)),
        a,
        b,
        c,
        d,
        e,
        f,
        g,
        h,
        i
    ])?;
    Ok(())
}

/// Counts a session just created.
pub(crate) fn count_session(conn: &Connection, session: &Session) -> Result<(), SqliteError> {
    count(conn, session.created_at, &StatCounts::of_session())
}

/// Counts a message just appended, with the ungrounded question it answers.
pub(crate) fn count_message(conn: &Connection, message: &ChatMessage) -> Result<(), SqliteError> {
    let counts = StatCounts::of_message(message.role, &message.metadata);
    count(conn, message.timestamp, &counts)?;
    if counts.ungrounded == 0 {
        return Ok(());
    }
    let Some(question) = stats::in_reply_to(&message.metadata) else {
        return Ok(());
    };
    let text: Option<String> = conn
        .prepare_cached(sql::MESSAGE_TEXT)?
        .query_row(params![question.as_bytes()], |row| row.get(0))
        .optional()?;
    if let Some(text) = text {
        conn.prepare_cached(sql::COUNT_QUESTION)?.execute(params![
            micros(stats::hour_of(message.timestamp)),
            stats::question_key(&text),
            sql_count(MAX_QUESTIONS_PER_HOUR),
        ])?;
    }
    Ok(())
}

/// The counters of every hour from the one `from` is in up to `to`, oldest first.
pub(crate) fn hours(
    conn: &Connection,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<HourStats>, SqliteError> {
    let range = params![micros(stats::hour_of(from)), micros(to)];
    let mut out: Vec<HourStats> = Vec::new();
    let mut stmt = conn.prepare_cached(sql::HOURS)?;
    let mut rows = stmt.query(range)?;
    while let Some(row) = rows.next()? {
        let mut values = [0_i64; 9];
        for (i, v) in values.iter_mut().enumerate() {
            *v = row.get(i + 1)?;
        }
        out.push(HourStats {
            hour: time(row.get(0)?)?,
            counts: StatCounts::from_values(values),
            questions: Vec::new(),
        });
    }
    let mut stmt = conn.prepare_cached(sql::QUESTIONS)?;
    let mut rows = stmt.query(range)?;
    while let Some(row) = rows.next()? {
        let hour = time(row.get(0)?)?;
        let count: i64 = row.get(2)?;
        if let Some(h) = out.iter_mut().find(|h| h.hour == hour) {
            h.questions
                .push((row.get(1)?, u64::try_from(count).unwrap_or(0)));
        }
    }
    Ok(out)
}

/// The FTS5 query for `words` (from `search::query_words`: letters and digits
/// only, so each can be quoted as is): every word as a prefix.
fn fts_query(words: &[String]) -> String {
    words
        .iter()
        .map(|w| format!("\"{w}\"*"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// One page of the messages matching `query` across live sessions, newest first.
pub(crate) fn search(
    conn: &Connection,
    now: i64,
    query: &str,
    page: colloquy_core::Page,
) -> Result<Vec<(ChatMessage, Session)>, SqliteError> {
    let words = colloquy_core::search::query_words(query);
    if words.is_empty() {
        return Ok(Vec::new());
    }
    let mut stmt = conn.prepare_cached(sql::SEARCH)?;
    let found = stmt.query_map(
        params![
            fts_query(&words),
            now,
            sql_count(page.limit),
            sql_count(page.offset)
        ],
        |row| {
            Ok((
                crate::rows::message(row)?,
                crate::rows::session_from(row, crate::rows::MESSAGE_COLUMNS)?,
            ))
        },
    )?;
    Ok(found.collect::<Result<_, _>>()?)
}
