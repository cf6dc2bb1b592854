//! Conversions between domain values and their stored columns.

use chrono::{DateTime, Utc};
use colloquy_core::{ChatMessage, Metadata, Role, Session};
use rusqlite::Row;
use uuid::Uuid;

use crate::error::SqliteError;

/// The session columns, in the order [`SessionRow::read`] expects (a macro, so that
/// statements can be `concat!`-ed constants).
macro_rules! session_columns {
    () => {
        "id, session_id, external_user_id, created_at, expires_at, is_active, metadata"
    };
}
pub(crate) use session_columns;

/// The message columns, in the order [`MessageRow::read`] expects.
macro_rules! message_columns {
    () => {
        "id, session, message, role, metadata, timestamp, is_deleted"
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

fn uuid(bytes: &[u8]) -> Result<Uuid, SqliteError> {
    Uuid::from_slice(bytes).map_err(|_| SqliteError::Corrupt("uuid is not 16 bytes"))
}

/// Metadata as stored: JSON text of the object.
pub(crate) fn metadata_json(metadata: &Metadata) -> Result<String, SqliteError> {
    Ok(serde_json::to_string(metadata)?)
}

/// A session row as read, before decoding.
pub(crate) struct SessionRow {
    id: Vec<u8>,
    session_id: String,
    external_user_id: Option<String>,
    created_at: i64,
    expires_at: i64,
    is_active: bool,
    metadata: String,
}

impl SessionRow {
    /// Reads the [`session_columns!`] of `row`.
    pub(crate) fn read(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: row.get(0)?,
            session_id: row.get(1)?,
            external_user_id: row.get(2)?,
            created_at: row.get(3)?,
            expires_at: row.get(4)?,
            is_active: row.get(5)?,
            metadata: row.get(6)?,
        })
    }

    /// Decodes the row.
    pub(crate) fn decode(self) -> Result<Session, SqliteError> {
        Ok(Session {
            id: uuid(&self.id)?,
            session_id: self.session_id,
            external_user_id: self.external_user_id,
            created_at: time(self.created_at)?,
            expires_at: time(self.expires_at)?,
            is_active: self.is_active,
            metadata: serde_json::from_str(&self.metadata)?,
        })
    }
}

/// A message row as read, before decoding.
pub(crate) struct MessageRow {
    id: Vec<u8>,
    session: Vec<u8>,
    message: String,
    role: String,
    metadata: String,
    timestamp: i64,
    is_deleted: bool,
}

impl MessageRow {
    /// Reads the [`message_columns!`] of `row`.
    pub(crate) fn read(row: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: row.get(0)?,
            session: row.get(1)?,
            message: row.get(2)?,
            role: row.get(3)?,
            metadata: row.get(4)?,
            timestamp: row.get(5)?,
            is_deleted: row.get(6)?,
        })
    }

    /// Decodes the row.
    pub(crate) fn decode(self) -> Result<ChatMessage, SqliteError> {
        Ok(ChatMessage {
            id: uuid(&self.id)?,
            session: uuid(&self.session)?,
            message: self.message,
            role: Role::parse(&self.role).ok_or(SqliteError::Corrupt("unknown role"))?,
            metadata: serde_json::from_str(&self.metadata)?,
            timestamp: time(self.timestamp)?,
            is_deleted: self.is_deleted,
        })
    }
}

/// Runs a prepared query and decodes every row.
pub(crate) fn collect<R, T>(
    rows: rusqlite::MappedRows<'_, impl FnMut(&Row<'_>) -> rusqlite::Result<R>>,
    decode: impl Fn(R) -> Result<T, SqliteError>,
) -> Result<Vec<T>, SqliteError> {
    let mut out = Vec::new();
    for row in rows {
        out.push(decode(row?)?);
    }
    Ok(out)
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
