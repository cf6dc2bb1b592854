//! Conversions between domain values and their stored columns.

use chrono::{DateTime, Utc};
use colloquy_core::{ChatMessage, Metadata, Responder, Role, Session};
use rusqlite::types::Type;
use rusqlite::Row;
use uuid::Uuid;

use crate::error::SqliteError;

/// The session columns, in the order [`session`] expects (a macro, so that
/// statements can be `concat!`-ed constants); `session_columns!("s")` qualifies each
/// with the table alias `s`, for joins.
macro_rules! session_columns {
    () => {
        "id, session_id, external_user_id, created_at, expires_at, is_active, metadata, \
         responder, handoff_requested_at"
    };
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
pub(crate) use session_columns;

/// The message columns, in the order [`message`] expects; `message_columns!("m")`
/// qualifies each with the table alias `m`.
macro_rules! message_columns {
    () => {
        "id, session, message, role, metadata, timestamp, is_deleted"
    };
    ($t:literal) => {
        concat!(
            $t,
            ".id, ",
            $t,
            ".session, ",
            $t,
            ".message, ",
            $t,
            ".role, ",
            $t,
            ".metadata, ",
            $t,
            ".timestamp, ",
            $t,
            ".is_deleted"
        )
    };
}
pub(crate) use message_columns;

/// A time as stored: whole microseconds since the Unix epoch.
pub(crate) fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

/// A stored time back as a `DateTime`.
pub(crate) fn time(micros: i64) -> Result<DateTime<Utc>, SqliteError> {
    DateTime::from_timestamp_micros(micros).ok_or(SqliteError::Corrupt("time out of range"))
}

/// Metadata as stored: JSON text of the object.
pub(crate) fn metadata_json(metadata: &Metadata) -> Result<String, SqliteError> {
    Ok(serde_json::to_string(metadata)?)
}

fn conversion(
    column: usize,
    kind: Type,
    e: impl std::error::Error + Send + Sync + 'static,
) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(column, kind, Box::new(e))
}

/// A UUID column, read in place from its 16 bytes.
fn uuid_at(row: &Row<'_>, column: usize) -> rusqlite::Result<Uuid> {
    let bytes = row.get_ref(column)?.as_blob()?;
    Uuid::from_slice(bytes).map_err(|e| conversion(column, Type::Blob, e))
}

/// A time column (microseconds).
fn time_at(row: &Row<'_>, column: usize) -> rusqlite::Result<DateTime<Utc>> {
    let micros: i64 = row.get(column)?;
    time(micros).map_err(|e| conversion(column, Type::Integer, e))
}

/// A nullable time column (microseconds).
fn optional_time_at(row: &Row<'_>, column: usize) -> rusqlite::Result<Option<DateTime<Utc>>> {
    let micros: Option<i64> = row.get(column)?;
    micros
        .map(|m| time(m).map_err(|e| conversion(column, Type::Integer, e)))
        .transpose()
}

/// A responder column (`'ai'` or `'human'`).
fn responder_at(row: &Row<'_>, column: usize) -> rusqlite::Result<Responder> {
    let text = row.get_ref(column)?.as_str()?;
    Responder::parse(text).ok_or_else(|| {
        conversion(
            column,
            Type::Text,
            SqliteError::Corrupt("unknown responder"),
        )
    })
}

/// A metadata column, parsed from its JSON text in place.
fn metadata_at(row: &Row<'_>, column: usize) -> rusqlite::Result<Metadata> {
    let text = row.get_ref(column)?.as_str()?;
    if text == "{}" {
        return Ok(Metadata::new()); // the common case, without the parser
    }
    serde_json::from_str(text).map_err(|e| conversion(column, Type::Text, e))
}

/// How many columns [`message_columns!`] names: where the session's columns start in
/// a row that selects a message's columns, then its session's.
pub(crate) const MESSAGE_COLUMNS: usize = 7;

/// Decodes the [`session_columns!`] of `row`.
pub(crate) fn session(row: &Row<'_>) -> rusqlite::Result<Session> {
    session_from(row, 0)
}

/// Decodes the [`session_columns!`] of `row` that start at column `at`.
pub(crate) fn session_from(row: &Row<'_>, at: usize) -> rusqlite::Result<Session> {
    Ok(Session {
        id: uuid_at(row, at)?,
        session_id: row.get(at + 1)?,
        external_user_id: row.get(at + 2)?,
        created_at: time_at(row, at + 3)?,
        expires_at: time_at(row, at + 4)?,
        is_active: row.get(at + 5)?,
        metadata: metadata_at(row, at + 6)?,
        responder: responder_at(row, at + 7)?,
        handoff_requested_at: optional_time_at(row, at + 8)?,
    })
}

/// Decodes the [`message_columns!`] of `row` (the first [`MESSAGE_COLUMNS`]).
pub(crate) fn message(row: &Row<'_>) -> rusqlite::Result<ChatMessage> {
    let role = row.get_ref(3)?.as_str()?;
    Ok(ChatMessage {
        id: uuid_at(row, 0)?,
        session: uuid_at(row, 1)?,
        message: row.get(2)?,
        role: Role::parse(role)
            .ok_or_else(|| conversion(3, Type::Text, SqliteError::Corrupt("unknown role")))?,
        metadata: metadata_at(row, 4)?,
        timestamp: time_at(row, 5)?,
        is_deleted: row.get(6)?,
    })
}

/// A `usize` (limit, offset) as an SQL integer, saturating.
pub(crate) fn sql_count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::SubsecRound;

    #[test]
    fn times_round_trip_exactly_to_the_microsecond() {
        let t = Utc::now().trunc_subsecs(6);
        assert_eq!(time(micros(t)).expect("in range"), t);
        let early = DateTime::from_timestamp_micros(-1).expect("valid");
        assert!(micros(early) < micros(t), "order is numeric order");
    }

    #[test]
    fn uuid_bytes_order_like_uuid_ord() {
        let a = Uuid::from_u128(1);
        let b = Uuid::from_u128(u128::MAX - 1);
        assert!(a < b);
        assert!(a.as_bytes().as_slice() < b.as_bytes().as_slice());
    }
}
