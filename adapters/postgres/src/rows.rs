//! Reading rows back into the domain types, and the conversions for parameters.

use colloquy_core::{ChatMessage, Metadata, Responder, Role, Session, StoreError};
use tokio_postgres::types::Json;
use tokio_postgres::Row;
use uuid::Uuid;

use crate::error::Corrupt;
use crate::text;

/// Reads column `idx`; a type mismatch is a backend error.
fn get<'a, T: tokio_postgres::types::FromSql<'a>>(
    row: &'a Row,
    idx: usize,
) -> Result<T, StoreError> {
    row.try_get(idx).map_err(StoreError::backend)
}

/// Reads stored (escaped) text.
fn get_text(row: &Row, idx: usize) -> Result<String, StoreError> {
    let stored: &str = get(row, idx)?;
    text::decode(stored)
        .map(std::borrow::Cow::into_owned)
        .ok_or_else(|| StoreError::backend(Corrupt("bad text escape")))
}

fn get_opt_text(row: &Row, idx: usize) -> Result<Option<String>, StoreError> {
    let stored: Option<&str> = get(row, idx)?;
    stored
        .map(|s| {
            text::decode(s)
                .map(std::borrow::Cow::into_owned)
                .ok_or_else(|| StoreError::backend(Corrupt("bad text escape")))
        })
        .transpose()
}

fn get_metadata(row: &Row, idx: usize) -> Result<Metadata, StoreError> {
    let Json(metadata): Json<Metadata> = get(row, idx)?;
    Ok(metadata)
}

/// The session in the [`SESSION_COLUMNS`] columns from `at` (see `sql::session_cols!`).
pub(crate) fn session(row: &Row, at: usize) -> Result<Session, StoreError> {
    Ok(Session {
        id: get(row, at)?,
        session_id: get_text(row, at + 1)?,
        external_user_id: get_opt_text(row, at + 2)?,
        created_at: get(row, at + 3)?,
        expires_at: get(row, at + 4)?,
        is_active: get(row, at + 5)?,
        metadata: get_metadata(row, at + 6)?,
        responder: Responder::parse(get(row, at + 7)?)
            .ok_or_else(|| StoreError::backend(Corrupt("unknown responder")))?,
        handoff_requested_at: get(row, at + 8)?,
    })
}

/// How many columns a session takes in a row (see `sql::session_cols!`).
pub(crate) const SESSION_COLUMNS: usize = 9;

/// Parses a stored role.
pub(crate) fn role(stored: &str) -> Result<Role, StoreError> {
    Role::parse(stored).ok_or_else(|| StoreError::backend(Corrupt("unknown role")))
}

/// The message in the five columns from `at`: id, role, message, metadata, timestamp.
pub(crate) fn message(row: &Row, at: usize, session: Uuid) -> Result<ChatMessage, StoreError> {
    Ok(ChatMessage {
        id: get(row, at)?,
        session,
        role: role(get(row, at + 1)?)?,
        message: get_text(row, at + 2)?,
        metadata: get_metadata(row, at + 3)?,
        timestamp: get(row, at + 4)?,
        is_deleted: false,
    })
}

/// What the wide rows of a list or `begin_turn` hold.
pub(crate) struct Wide {
    /// The session (`k = 0`).
    pub(crate) session: Session,
    /// Whether the cursor, if any, names a message of the session.
    pub(crate) cursor_ok: bool,
    /// The other rows: `(k, write position, message)`, in the order returned.
    pub(crate) messages: Vec<(i32, i64, ChatMessage)>,
}

/// Reads the wide shape that lists and `begin_turn` return: per row `k`, the session
/// ([`SESSION_COLUMNS`] columns, set when `k = 0`), `cursor_ok`, then a message (id, seq, role, text,
/// metadata, timestamp; set when `k > 0`). `None` when there is no session row.
pub(crate) fn wide(rows: &[Row]) -> Result<Option<Wide>, StoreError> {
    let mut head = None;
    for row in rows {
        if get::<i32>(row, 0)? == 0 {
            head = Some((session(row, 1)?, get::<bool>(row, 1 + SESSION_COLUMNS)?));
        }
    }
    let Some((session, cursor_ok)) = head else {
        return Ok(None);
    };
    let mut messages = Vec::with_capacity(rows.len().saturating_sub(1));
    for row in rows {
        let k: i32 = get(row, 0)?;
        if k == 0 {
            continue;
        }
        let at = 2 + SESSION_COLUMNS;
        let message = ChatMessage {
            id: get(row, at)?,
            session: session.id,
            role: role(get(row, at + 2)?)?,
            message: get_text(row, at + 3)?,
            metadata: get_metadata(row, at + 4)?,
            timestamp: get(row, at + 5)?,
            is_deleted: false,
        };
        messages.push((k, get(row, at + 1)?, message));
    }
    Ok(Some(Wide {
        session,
        cursor_ok,
        messages,
    }))
}

/// A `usize` count as a SQL `bigint`, saturating.
pub(crate) fn sql_count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
