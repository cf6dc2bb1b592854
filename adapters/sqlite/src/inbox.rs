//! The console's inbox. Three columns of the session's row are kept by the writes
//! that change them, in the same transaction: `last_message_at` and
//! `live_messages` by an append, `live_messages` and `down_ratings` by a soft
//! delete, `down_ratings` by feedback. `last_activity_at` and `inbox_state` are
//! virtual columns computed from the row, indexed with the session id: a page walks
//! one index from its cursor (by state, by visitor, the rated-down ones, or all) and
//! reads each row's first question and last message with one index lookup each.

use chrono::{DateTime, Utc};
use colloquy_core::inbox::{self, InboxEntry, InboxQuery, InboxState, LastMessage};
use colloquy_core::Role;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension, ToSql};
use uuid::Uuid;

use crate::error::SqliteError;
use crate::rows::{self, micros, sql_count};

/// The statements, as constants so the query-plan test checks exactly these.
pub(crate) mod sql {
    /// Counts a message appended to session ?1 at ?2 (its stored timestamp), rated
    /// down (?3 = 1) or not.
    pub(crate) const APPENDED: &str = "UPDATE sessions SET last_message_at = ?2,
         live_messages = live_messages + 1, down_ratings = down_ratings + ?3 WHERE id = ?1";
    /// Uncounts a message of session ?1 just soft-deleted, rated down (?2 = 1) or not.
    pub(crate) const DELETED: &str = "UPDATE sessions SET live_messages = live_messages - 1,
         down_ratings = down_ratings - ?2 WHERE id = ?1";
    /// Adds ?2 to the down ratings of session ?1.
    pub(crate) const RATED: &str =
        "UPDATE sessions SET down_ratings = down_ratings + ?2 WHERE id = ?1";
    /// The oldest non-deleted user message of session ?1: its first characters.
    pub(crate) const FIRST_QUESTION: &str = "SELECT substr(message, 1, 200) FROM messages
         WHERE session = ?1 AND role = 'user' AND is_deleted = 0 ORDER BY position LIMIT 1";
    /// The newest non-deleted message of session ?1.
    pub(crate) const LAST_MESSAGE: &str = "SELECT role, substr(message, 1, 200), timestamp
         FROM messages WHERE session = ?1 AND is_deleted = 0 ORDER BY position DESC LIMIT 1";
}

/// The number an `inbox_state` column holds.
fn state_number(state: InboxState) -> i64 {
    match state {
        InboxState::Waiting => 0,
        InboxState::Human => 1,
        InboxState::Active => 2,
        InboxState::Closed => 3,
    }
}

/// Counts an appended message in its session's row.
pub(crate) fn appended(
    conn: &Connection,
    session: Uuid,
    message: &colloquy_core::ChatMessage,
) -> Result<(), SqliteError> {
    conn.prepare_cached(sql::APPENDED)?.execute(params![
        session.as_bytes(),
        micros(message.timestamp),
        i64::from(inbox::is_rated_down(&message.metadata)),
    ])?;
    Ok(())
}

/// Uncounts a message just soft-deleted (`metadata` as stored, JSON text).
pub(crate) fn deleted(
    conn: &Connection,
    session: &[u8],
    metadata: &str,
) -> Result<(), SqliteError> {
    let metadata: colloquy_core::Metadata = serde_json::from_str(metadata)?;
    conn.prepare_cached(sql::DELETED)?
        .execute(params![session, i64::from(inbox::is_rated_down(&metadata))])?;
    Ok(())
}

/// Moves the session's down ratings by `delta` (feedback replaced).
pub(crate) fn rated(conn: &Connection, session: Uuid, delta: i64) -> Result<(), SqliteError> {
    if delta != 0 {
        conn.prepare_cached(sql::RATED)?
            .execute(params![session.as_bytes(), delta])?;
    }
    Ok(())
}

/// The page statement for `query` and its arguments: one text per combination of
/// filters, each with an index in its order (the planner picks it by the filter).
pub(crate) fn page_statement(now: i64, query: &InboxQuery) -> (String, Vec<Box<dyn ToSql>>) {
    let mut sql = concat!(
        "SELECT ",
        crate::rows::session_columns!(),
        ", last_activity_at, live_messages, down_ratings FROM sessions WHERE expires_at > ?"
    )
    .to_owned();
    let mut args: Vec<Box<dyn ToSql>> = vec![Box::new(now)];
    let f = &query.filter;
    if let Some(state) = f.state {
        sql.push_str(" AND inbox_state = ?");
        args.push(Box::new(state_number(state)));
    }
    if f.rated_down {
        sql.push_str(" AND down_ratings > 0");
    }
    if let Some(external) = &f.external_user_id {
        sql.push_str(" AND external_user_id = ?");
        args.push(Box::new(external.clone()));
    }
    if let Some(from) = f.from {
        sql.push_str(" AND last_activity_at >= ?");
        args.push(Box::new(micros(from)));
    }
    if let Some(to) = f.to {
        sql.push_str(" AND last_activity_at < ?");
        args.push(Box::new(micros(to)));
    }
    if let Some(after) = query.after {
        sql.push_str(" AND (last_activity_at, id) < (?, ?)");
        args.push(Box::new(micros(after.last_activity_at)));
        args.push(Box::new(after.id.as_bytes().to_vec()));
    }
    sql.push_str(" ORDER BY last_activity_at DESC, id DESC LIMIT ?");
    args.push(Box::new(sql_count(query.limit)));
    (sql, args)
}

/// One page of the inbox.
pub(crate) fn page(
    conn: &Connection,
    now: i64,
    query: &InboxQuery,
) -> Result<Vec<InboxEntry>, SqliteError> {
    let (sql, args) = page_statement(now, query);
    let mut stmt = conn.prepare_cached(&sql)?;
    let found: Vec<(colloquy_core::Session, i64, i64, i64)> = stmt
        .query_map(params_from_iter(args.iter()), |row| {
            Ok((rows::session(row)?, row.get(9)?, row.get(10)?, row.get(11)?))
        })?
        .collect::<Result<_, _>>()?;
    let mut out = Vec::with_capacity(found.len());
    for (session, activity, count, downs) in found {
        let key = session.id.as_bytes().to_vec();
        let first_question: Option<String> = conn
            .prepare_cached(sql::FIRST_QUESTION)?
            .query_row(params![key], |row| row.get(0))
            .optional()?;
        let last: Option<(String, String, i64)> = conn
            .prepare_cached(sql::LAST_MESSAGE)?
            .query_row(params![key], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?))
            })
            .optional()?;
        let last_message = match last {
            Some((role, text, at)) => Some(LastMessage {
                role: Role::parse(&role).ok_or(SqliteError::Corrupt("unknown role"))?,
                text: inbox::preview(&text),
                created_at: rows::time(at)?,
            }),
            None => None,
        };
        let last_activity_at: DateTime<Utc> = rows::time(activity)?;
        out.push(InboxEntry {
            state: InboxState::of(&session),
            session,
            first_question: first_question.map(|q| inbox::preview(&q)),
            last_message,
            message_count: u64::try_from(count).unwrap_or(0),
            last_activity_at,
            rated_down: downs > 0,
        });
    }
    Ok(out)
}
