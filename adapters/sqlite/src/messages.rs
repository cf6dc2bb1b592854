//! Message queries. Like the session queries, each runs inside the worker's
//! transaction and judges expiry by `now` (microseconds): messages of an expired
//! session are absent.

use colloquy_core::{ChatMessage, MessageFilter, Page};
use rusqlite::{params, params_from_iter, Connection, OptionalExtension, ToSql};
use uuid::Uuid;

use crate::error::SqliteError;
use crate::rows::{self, message_columns, metadata_json, micros, sql_count, time};

/// The statements, as constants so the query-plan test checks exactly these.
pub(crate) mod sql {
    use crate::rows::message_columns;

    /// Whether a session is live.
    pub(crate) const SESSION_IS_LIVE: &str =
        "SELECT 1 FROM sessions WHERE id = ?1 AND expires_at > ?2";
    /// A live session's `is_active`.
    pub(crate) const SESSION_IS_ACTIVE: &str =
        "SELECT is_active FROM sessions WHERE id = ?1 AND expires_at > ?2";
    /// Whether a message id is taken.
    pub(crate) const ID_TAKEN: &str = "SELECT 1 FROM messages WHERE id = ?1";
    /// The session's last message: its position and timestamp.
    pub(crate) const LAST: &str = "SELECT position, timestamp FROM messages WHERE session = ?1
         ORDER BY position DESC LIMIT 1";
    /// Inserts a message.
    pub(crate) const INSERT: &str = "INSERT INTO messages
         (id, session, position, message, role, metadata, timestamp, is_deleted)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";
    /// A message by id when its session is live.
    pub(crate) const GET_STORED: &str = concat!(
        "SELECT ",
        message_columns!(),
        " FROM messages WHERE id = ?1 AND EXISTS
         (SELECT 1 FROM sessions s WHERE s.id = messages.session AND s.expires_at > ?2)"
    );
    /// The newest non-deleted messages, newest first.
    pub(crate) const RECENT: &str = concat!(
        "SELECT ",
        message_columns!(),
        " FROM messages WHERE session = ?1 AND is_deleted = 0
         ORDER BY position DESC LIMIT ?2"
    );
    /// Soft-deletes a message of a live session.
    pub(crate) const SOFT_DELETE: &str = "UPDATE messages SET is_deleted = 1
         WHERE id = ?1 AND is_deleted = 0 AND EXISTS
         (SELECT 1 FROM sessions s WHERE s.id = messages.session AND s.expires_at > ?2)";
}

/// `Ok(())` when the session `id` is live, else [`SqliteError::NotFound`].
fn require_live_session(conn: &Connection, now: i64, id: Uuid) -> Result<(), SqliteError> {
    conn.prepare_cached(sql::SESSION_IS_LIVE)?
        .query_row(params![id.as_bytes(), now], |_| Ok(()))
        .optional()?
        .ok_or(SqliteError::NotFound)
}

/// Appends `message` at the end of its session: checks the session is live and
/// active and the id is new, raises the timestamp to the previous message's, and
/// stores it at the next write position. Returns the message as stored.
pub(crate) fn append(
    conn: &Connection,
    now: i64,
    mut message: ChatMessage,
) -> Result<ChatMessage, SqliteError> {
    let active: bool = conn
        .prepare_cached(sql::SESSION_IS_ACTIVE)?
        .query_row(params![message.session.as_bytes(), now], |row| row.get(0))
        .optional()?
        .ok_or(SqliteError::NotFound)?;
    if !active {
        return Err(SqliteError::Inactive);
    }
    let taken = conn
        .prepare_cached(sql::ID_TAKEN)?
        .query_row(params![message.id.as_bytes()], |_| Ok(()))
        .optional()?
        .is_some();
    if taken {
        return Err(SqliteError::Conflict);
    }
    let previous: Option<(i64, i64)> = conn
        .prepare_cached(sql::LAST)?
        .query_row(params![message.session.as_bytes()], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })
        .optional()?;
    let mut timestamp = micros(message.timestamp);
    let position = match previous {
        Some((position, last)) => {
            timestamp = timestamp.max(last);
            position + 1
        }
        None => 0,
    };
    conn.prepare_cached(sql::INSERT)?
        .execute(params![
            message.id.as_bytes(),
            message.session.as_bytes(),
            position,
            message.message,
            message.role.as_str(),
            metadata_json(&message.metadata)?,
            timestamp,
            message.is_deleted,
        ])
        .map_err(|e| match SqliteError::from(e) {
            e if e.is_unique_violation() => SqliteError::Conflict,
            e => e,
        })?;
    // What a reader will get back: the stored microseconds.
    message.timestamp = time(timestamp)?;
    Ok(message)
}

/// The message `id`, soft-deleted or not, when its session is live.
pub(crate) fn get_stored(
    conn: &Connection,
    now: i64,
    id: Uuid,
) -> Result<Option<ChatMessage>, SqliteError> {
    Ok(conn
        .prepare_cached(sql::GET_STORED)?
        .query_row(params![id.as_bytes(), now], rows::message)
        .optional()?)
}

/// The list statement for `filter` and its arguments (one text per combination).
pub(crate) fn list_statement(
    session: Uuid,
    filter: &MessageFilter,
    page: Page,
) -> (String, Vec<Box<dyn ToSql>>) {
    let mut sql = concat!(
        "SELECT ",
        message_columns!(),
        " FROM messages WHERE session = ? AND is_deleted = 0"
    )
    .to_owned();
    let mut args: Vec<Box<dyn ToSql>> = vec![Box::new(session.as_bytes().to_vec())];
    if let Some(role) = filter.role {
        sql.push_str(" AND role = ?");
        args.push(Box::new(role.as_str()));
    }
    if let Some(needle) = &filter.search {
        sql.push_str(" AND colloquy_contains_ci(message, ?)");
        args.push(Box::new(needle.to_lowercase()));
    }
    sql.push_str(" ORDER BY position LIMIT ? OFFSET ?");
    args.push(Box::new(sql_count(page.limit)));
    args.push(Box::new(sql_count(page.offset)));
    (sql, args)
}

/// The session's non-deleted messages passing `filter`, in write order.
pub(crate) fn list(
    conn: &Connection,
    now: i64,
    session: Uuid,
    filter: &MessageFilter,
    page: Page,
) -> Result<Vec<ChatMessage>, SqliteError> {
    require_live_session(conn, now, session)?;
    let (sql, args) = list_statement(session, filter, page);
    let mut stmt = conn.prepare_cached(&sql)?;
    let found = stmt.query_map(params_from_iter(args.iter()), rows::message)?;
    Ok(found.collect::<Result<_, _>>()?)
}

/// The session's `limit` newest non-deleted messages, oldest first.
pub(crate) fn recent(
    conn: &Connection,
    now: i64,
    session: Uuid,
    limit: usize,
) -> Result<Vec<ChatMessage>, SqliteError> {
    require_live_session(conn, now, session)?;
    let mut stmt = conn.prepare_cached(sql::RECENT)?;
    let found = stmt.query_map(params![session.as_bytes(), sql_count(limit)], rows::message)?;
    let mut newest = found.collect::<Result<Vec<_>, _>>()?;
    newest.reverse();
    Ok(newest)
}

/// Marks the message `id` deleted when it is not already and its session is live.
pub(crate) fn soft_delete(conn: &Connection, now: i64, id: Uuid) -> Result<(), SqliteError> {
    let changed = conn
        .prepare_cached(sql::SOFT_DELETE)?
        .execute(params![id.as_bytes(), now])?;
    if changed == 0 {
        return Err(SqliteError::NotFound);
    }
    Ok(())
}
