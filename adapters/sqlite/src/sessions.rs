//! Session queries. Each function runs inside a transaction the worker opened, and
//! takes `now` (microseconds) from the store's clock: a row whose `expires_at <= now`
//! is expired and treated as absent.

use std::fmt::Write as _;

use colloquy_core::{Page, Session, SessionFilter, SessionPatch, SessionRef};
use rusqlite::{params, Connection, OptionalExtension, ToSql};
use uuid::Uuid;

use crate::error::SqliteError;
use crate::rows::{collect, metadata_json, micros, sql_count, SessionRow, SESSION_COLUMNS};
use crate::schema::CONTAINS_CI;

/// Inserts `session`; [`SqliteError::Conflict`] when a live session has its `id` or
/// `session_id`.
pub(crate) fn create(conn: &Connection, now: i64, session: &Session) -> Result<(), SqliteError> {
    // An expired session keeps its row until purged, but its session_id (and id) may
    // be reused: remove such a holder (and its messages) first.
    conn.prepare_cached(
        "DELETE FROM sessions WHERE (id = ?1 OR session_id = ?2) AND expires_at <= ?3",
    )?
    .execute(params![session.id.as_bytes(), session.session_id, now])?;
    let inserted = conn
        .prepare_cached(
            "INSERT INTO sessions
                 (id, session_id, external_user_id, created_at, expires_at, is_active, metadata)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?
        .execute(params![
            session.id.as_bytes(),
            session.session_id,
            session.external_user_id,
            micros(session.created_at),
            micros(session.expires_at),
            session.is_active,
            metadata_json(&session.metadata)?,
        ]);
    match inserted.map_err(SqliteError::from) {
        Ok(_) => Ok(()),
        Err(e) if e.is_unique_violation() => Err(SqliteError::Conflict),
        Err(e) => Err(e),
    }
}

/// The live session with this `id`.
pub(crate) fn get_by_id(
    conn: &Connection,
    now: i64,
    id: Uuid,
) -> Result<Option<Session>, SqliteError> {
    let sql = format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE id = ?1 AND expires_at > ?2");
    conn.prepare_cached(&sql)?
        .query_row(params![id.as_bytes(), now], SessionRow::read)
        .optional()?
        .map(SessionRow::decode)
        .transpose()
}

/// The live session `reference` names: by UUID first, then by `session_id`.
pub(crate) fn get(
    conn: &Connection,
    now: i64,
    reference: &SessionRef,
) -> Result<Option<Session>, SqliteError> {
    if let Some(id) = reference.uuid() {
        if let Some(found) = get_by_id(conn, now, id)? {
            return Ok(Some(found));
        }
    }
    let sql =
        format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE session_id = ?1 AND expires_at > ?2");
    conn.prepare_cached(&sql)?
        .query_row(params![reference.as_str(), now], SessionRow::read)
        .optional()?
        .map(SessionRow::decode)
        .transpose()
}

/// Applies `patch` to the live session `id` and returns it as stored.
pub(crate) fn update(
    conn: &Connection,
    now: i64,
    id: Uuid,
    patch: &SessionPatch,
) -> Result<Session, SqliteError> {
    let mut session = get_by_id(conn, now, id)?.ok_or(SqliteError::NotFound)?;
    patch.apply_to(&mut session);
    conn.prepare_cached(
        "UPDATE sessions
            SET external_user_id = ?2, expires_at = ?3, is_active = ?4, metadata = ?5
          WHERE id = ?1",
    )?
    .execute(params![
        id.as_bytes(),
        session.external_user_id,
        micros(session.expires_at),
        session.is_active,
        metadata_json(&session.metadata)?,
    ])?;
    Ok(session)
}

/// Deletes the live session `id`; its messages go with it (`ON DELETE CASCADE`).
pub(crate) fn delete(conn: &Connection, now: i64, id: Uuid) -> Result<(), SqliteError> {
    let deleted = conn
        .prepare_cached("DELETE FROM sessions WHERE id = ?1 AND expires_at > ?2")?
        .execute(params![id.as_bytes(), now])?;
    if deleted == 0 {
        return Err(SqliteError::NotFound);
    }
    Ok(())
}

/// Lists live sessions passing `filter`, newest `created_at` first, then greater `id`.
pub(crate) fn list(
    conn: &Connection,
    now: i64,
    filter: &SessionFilter,
    page: Page,
) -> Result<Vec<Session>, SqliteError> {
    // One statement text per combination of filters (8 at most, all cached), so the
    // planner can pick the external_user_id index when that filter is present.
    let mut sql = format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE expires_at > ?");
    let mut args: Vec<Box<dyn ToSql>> = vec![Box::new(now)];
    if let Some(active) = filter.is_active {
        sql.push_str(" AND is_active = ?");
        args.push(Box::new(active));
    }
    if let Some(external) = &filter.external_user_id {
        sql.push_str(" AND external_user_id = ?");
        args.push(Box::new(external.clone()));
    }
    if let Some(needle) = &filter.search {
        // Infallible: writing to a String.
        let _ = write!(
            sql,
            " AND ({CONTAINS_CI}(session_id, ?) OR {CONTAINS_CI}(external_user_id, ?))"
        );
        let needle = needle.to_lowercase();
        args.push(Box::new(needle.clone()));
        args.push(Box::new(needle));
    }
    sql.push_str(" ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?");
    args.push(Box::new(sql_count(page.limit)));
    args.push(Box::new(sql_count(page.offset)));
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(rusqlite::params_from_iter(args.iter()), SessionRow::read)?;
    collect(rows, SessionRow::decode)
}

/// Deletes up to `batch` expired sessions (and their messages); returns how many.
pub(crate) fn purge_expired(
    conn: &Connection,
    now: i64,
    batch: usize,
) -> Result<usize, SqliteError> {
    Ok(conn
        .prepare_cached(
            "DELETE FROM sessions WHERE id IN
                 (SELECT id FROM sessions WHERE expires_at <= ?1 LIMIT ?2)",
        )?
        .execute(params![now, sql_count(batch)])?)
}
