//! Message queries. Like the session queries, each runs inside the worker's
//! transaction and judges expiry by `now` (microseconds): messages of an expired
//! session are absent.
//!
//! Every message has a per-session write `position`; the indexes on
//! `(session, is_deleted, position)` and `(session, role, is_deleted, position)`
//! serve every page in either order and from either cursor in O(offset + page) index
//! steps, and a chat turn's context in O(window), however long the session.

use colloquy_core::ports::Turn;
use colloquy_core::{
    ChatMessage, Cursor, Entity, MessageDraft, MessageQuery, Role, Session, SessionRef,
};
use rusqlite::{params, params_from_iter, Connection, OptionalExtension, ToSql};
use uuid::Uuid;

use crate::error::SqliteError;
use crate::rows::{self, message_columns, metadata_json, micros, sql_count, time};
use crate::sessions;

const NO_MESSAGE: SqliteError = SqliteError::NotFound(Entity::Message);

/// The statements, as constants so the query-plan test checks exactly these.
pub(crate) mod sql {
    use crate::rows::{message_columns, session_columns};

    /// The session's last message (soft-deleted or not): its position and timestamp.
    pub(crate) const LAST: &str = "SELECT position, timestamp FROM messages WHERE session = ?1
         ORDER BY position DESC LIMIT 1";
    /// Inserts a message.
    pub(crate) const INSERT: &str = "INSERT INTO messages
         (id, session, position, message, role, metadata, timestamp, is_deleted)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";
    /// A non-deleted message by id with its session, when that is live.
    pub(crate) const GET_WITH_SESSION: &str = concat!(
        "SELECT ",
        message_columns!("m"),
        ", ",
        session_columns!("s"),
        " FROM messages m JOIN sessions s ON s.id = m.session
         WHERE m.id = ?1 AND m.is_deleted = 0 AND s.expires_at > ?2"
    );
    /// The write position of a cursor message (soft-deleted or not) in its session.
    pub(crate) const CURSOR_POSITION: &str =
        "SELECT position FROM messages WHERE id = ?1 AND session = ?2";
    /// Soft-deletes a message of a live session.
    pub(crate) const SOFT_DELETE: &str = "UPDATE messages SET is_deleted = 1
         WHERE id = ?1 AND is_deleted = 0 AND EXISTS
         (SELECT 1 FROM sessions s WHERE s.id = messages.session AND s.expires_at > ?2)
         RETURNING session, metadata";
}

/// Appends `draft` at the end of the live session `to` names: checks the session is
/// active and the id is new, raises the timestamp to the previous message's, and
/// stores it at the next write position. Returns the session and the message as
/// stored.
pub(crate) fn append(
    conn: &Connection,
    now: i64,
    to: &SessionRef,
    draft: MessageDraft,
) -> Result<(Session, ChatMessage), SqliteError> {
    let session = sessions::resolve(conn, now, to)?;
    if !session.is_active {
        return Err(SqliteError::Inactive);
    }
    // A taken id is the primary key's violation on insert (nothing is written).
    let mut message = draft.into_message(session.id);
    let previous: Option<(i64, i64)> = conn
        .prepare_cached(sql::LAST)?
        .query_row(params![session.id.as_bytes()], |row| {
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
            session.id.as_bytes(),
            position,
            message.message,
            message.role.as_str(),
            metadata_json(&message.metadata)?,
            timestamp,
            message.is_deleted,
        ])
        .map_err(|e| match SqliteError::from(e) {
            e if e.is_unique_violation() => SqliteError::Conflict(Entity::Message),
            e => e,
        })?;
    // What a reader will get back: the stored microseconds.
    message.timestamp = time(timestamp)?;
    crate::inbox::appended(conn, session.id, &message)?;
    Ok((session, message))
}

/// Chat's first step in one transaction: [`append`], then the session's oldest
/// `window` system messages (from the role index) and its newest `window` messages
/// (from the position index), oldest first. O(window), however long the session.
pub(crate) fn begin_turn(
    conn: &Connection,
    now: i64,
    to: &SessionRef,
    draft: MessageDraft,
    window: usize,
) -> Result<Turn, SqliteError> {
    let (session, message) = append(conn, now, to, draft)?;
    let system = page(
        conn,
        session.id,
        &MessageQuery::oldest_of_role(Role::System, window),
        None,
    )?;
    let mut recent = page(conn, session.id, &MessageQuery::newest(window), None)?;
    recent.reverse();
    Ok(Turn {
        session,
        message,
        system,
        recent,
    })
}

/// The message `id` with its session, when it is not soft-deleted and the session
/// is live.
pub(crate) fn get(
    conn: &Connection,
    now: i64,
    id: Uuid,
) -> Result<Option<(ChatMessage, Session)>, SqliteError> {
    Ok(conn
        .prepare_cached(sql::GET_WITH_SESSION)?
        .query_row(params![id.as_bytes(), now], |row| {
            Ok((
                rows::message(row)?,
                rows::session_from(row, rows::MESSAGE_COLUMNS)?,
            ))
        })
        .optional()?)
}

/// Where a cursor's range starts or ends, as a bound on `position`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Bound {
    /// `position < p`: written before the cursor message.
    Before(i64),
    /// `position > p`: written after it.
    After(i64),
}

/// The list statement for `query` (with the cursor already turned into a position
/// `bound`) and its arguments. One text per combination of filters, order and
/// cursor kind (24, all cached), each served by an index in `ORDER BY` order: the
/// page costs O(offset + limit) index steps, wherever it starts.
pub(crate) fn list_statement(
    session: Uuid,
    query: &MessageQuery,
    bound: Option<Bound>,
) -> (String, Vec<Box<dyn ToSql>>) {
    let mut sql = concat!(
        "SELECT ",
        message_columns!(),
        " FROM messages WHERE session = ? AND is_deleted = 0"
    )
    .to_owned();
    let mut args: Vec<Box<dyn ToSql>> = vec![Box::new(session.as_bytes().to_vec())];
    if let Some(role) = query.filter.role {
        sql.push_str(" AND role = ?");
        args.push(Box::new(role.as_str()));
    }
    if let Some(needle) = &query.filter.search {
        sql.push_str(" AND colloquy_contains_ci(message, ?)");
        args.push(Box::new(needle.to_lowercase()));
    }
    match bound {
        Some(Bound::Before(p)) => {
            sql.push_str(" AND position < ?");
            args.push(Box::new(p));
        }
        Some(Bound::After(p)) => {
            sql.push_str(" AND position > ?");
            args.push(Box::new(p));
        }
        None => {}
    }
    sql.push_str(if query.order.is_newest_first() {
        " ORDER BY position DESC LIMIT ? OFFSET ?"
    } else {
        " ORDER BY position ASC LIMIT ? OFFSET ?"
    });
    args.push(Box::new(sql_count(query.page.limit)));
    args.push(Box::new(sql_count(query.page.offset)));
    (sql, args)
}

/// One page of the non-deleted messages of session `session` (known live).
fn page(
    conn: &Connection,
    session: Uuid,
    query: &MessageQuery,
    bound: Option<Bound>,
) -> Result<Vec<ChatMessage>, SqliteError> {
    let (sql, args) = list_statement(session, query, bound);
    let mut stmt = conn.prepare_cached(&sql)?;
    let found = stmt.query_map(params_from_iter(args.iter()), rows::message)?;
    Ok(found.collect::<Result<_, _>>()?)
}

/// The cursor as a bound on `position`; `NotFound(Message)` when it names no
/// message of `session`.
fn bound(conn: &Connection, session: Uuid, cursor: Cursor) -> Result<Bound, SqliteError> {
    let position: i64 = conn
        .prepare_cached(sql::CURSOR_POSITION)?
        .query_row(
            params![cursor.message().as_bytes(), session.as_bytes()],
            |row| row.get(0),
        )
        .optional()?
        .ok_or(NO_MESSAGE)?;
    Ok(match cursor {
        Cursor::Before(_) => Bound::Before(position),
        Cursor::After(_) => Bound::After(position),
    })
}

/// The live session `of` names and the page of its messages `query` asks for.
pub(crate) fn list(
    conn: &Connection,
    now: i64,
    of: &SessionRef,
    query: &MessageQuery,
) -> Result<(Session, Vec<ChatMessage>), SqliteError> {
    let session = sessions::resolve(conn, now, of)?;
    let bound = query
        .cursor
        .map(|cursor| bound(conn, session.id, cursor))
        .transpose()?;
    let messages = page(conn, session.id, query, bound)?;
    Ok((session, messages))
}

/// Marks the message `id` deleted when it is not already and its session is live.
pub(crate) fn soft_delete(conn: &Connection, now: i64, id: Uuid) -> Result<(), SqliteError> {
    let changed: Option<(Vec<u8>, String)> = conn
        .prepare_cached(sql::SOFT_DELETE)?
        .query_row(params![id.as_bytes(), now], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })
        .optional()?;
    let (session, metadata) = changed.ok_or(NO_MESSAGE)?;
    crate::inbox::deleted(conn, &session, &metadata)
}
