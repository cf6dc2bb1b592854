//! Session queries. Each function runs inside a transaction the worker opened, and
//! takes `now` (microseconds) from the store's clock: a row whose `expires_at <= now`
//! is expired and treated as absent.

use colloquy_core::{Page, Session, SessionFilter, SessionPatch, SessionRef};
use rusqlite::{params, params_from_iter, Connection, OptionalExtension, ToSql};
use uuid::Uuid;

use crate::error::SqliteError;
use crate::rows::{self, metadata_json, micros, session_columns, sql_count};

/// The statements, as constants so the query-plan test checks exactly these.
pub(crate) mod sql {
    use crate::rows::session_columns;

    /// Removes an expired session holding the id or session_id about to be reused.
    pub(crate) const DELETE_EXPIRED_HOLDER: &str =
        "DELETE FROM sessions WHERE (id = ?1 OR session_id = ?2) AND expires_at <= ?3";
    /// Inserts a session.
    pub(crate) const INSERT: &str = "INSERT INTO sessions
         (id, session_id, external_user_id, created_at, expires_at, is_active, metadata)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";
    /// A live session by id.
    pub(crate) const GET_BY_ID: &str = concat!(
        "SELECT ",
        session_columns!(),
        " FROM sessions WHERE id = ?1 AND expires_at > ?2"
    );
    /// A live session by session_id.
    pub(crate) const GET_BY_SESSION_ID: &str = concat!(
        "SELECT ",
        session_columns!(),
        " FROM sessions WHERE session_id = ?1 AND expires_at > ?2"
    );
    /// Writes the patchable fields.
    pub(crate) const UPDATE: &str = "UPDATE sessions
         SET external_user_id = ?2, expires_at = ?3, is_active = ?4, metadata = ?5
         WHERE id = ?1";
    /// Deletes a live session (its messages cascade).
    pub(crate) const DELETE_LIVE: &str = "DELETE FROM sessions WHERE id = ?1 AND expires_at > ?2";
    /// Deletes a batch of expired sessions (their messages cascade).
    pub(crate) const PURGE_EXPIRED: &str = "DELETE FROM sessions WHERE id IN
         (SELECT id FROM sessions WHERE expires_at <= ?1 LIMIT ?2)";
}

/// Inserts `session`; [`SqliteError::Conflict`] when a live session has its `id` or
/// `session_id`.
pub(crate) fn create(conn: &Connection, now: i64, session: &Session) -> Result<(), SqliteError> {
    // An expired session keeps its row until purged, but its session_id (and id) may
    // be reused: remove such a holder (and its messages) first.
    conn.prepare_cached(sql::DELETE_EXPIRED_HOLDER)?
        .execute(params![session.id.as_bytes(), session.session_id, now])?;
    let inserted = conn.prepare_cached(sql::INSERT)?.execute(params![
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

fn one(
    conn: &Connection,
    sql: &str,
    key: &dyn ToSql,
    now: i64,
) -> Result<Option<Session>, SqliteError> {
    Ok(conn
        .prepare_cached(sql)?
        .query_row(params![key, now], rows::session)
        .optional()?)
}

/// The live session with this `id`.
pub(crate) fn get_by_id(
    conn: &Connection,
    now: i64,
    id: Uuid,
) -> Result<Option<Session>, SqliteError> {
    one(conn, sql::GET_BY_ID, &id.as_bytes().as_slice(), now)
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
    one(conn, sql::GET_BY_SESSION_ID, &reference.as_str(), now)
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
    conn.prepare_cached(sql::UPDATE)?.execute(params![
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
        .prepare_cached(sql::DELETE_LIVE)?
        .execute(params![id.as_bytes(), now])?;
    if deleted == 0 {
        return Err(SqliteError::NotFound);
    }
    Ok(())
}

/// The list statement for `filter` and its arguments. One text per combination of
/// filters (8 at most, all cached), so the planner can use the external_user_id
/// index when that filter is present.
pub(crate) fn list_statement(
    now: i64,
    filter: &SessionFilter,
    page: Page,
) -> (String, Vec<Box<dyn ToSql>>) {
    let mut sql = concat!(
        "SELECT ",
        session_columns!(),
        " FROM sessions WHERE expires_at > ?"
    )
    .to_owned();
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
        sql.push_str(
            " AND (colloquy_contains_ci(session_id, ?) OR colloquy_contains_ci(external_user_id, ?))",
        );
        let needle = needle.to_lowercase();
        args.push(Box::new(needle.clone()));
        args.push(Box::new(needle));
    }
    sql.push_str(" ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?");
    args.push(Box::new(sql_count(page.limit)));
    args.push(Box::new(sql_count(page.offset)));
    (sql, args)
}

/// Lists live sessions passing `filter`, newest `created_at` first, then greater `id`.
pub(crate) fn list(
    conn: &Connection,
    now: i64,
    filter: &SessionFilter,
    page: Page,
) -> Result<Vec<Session>, SqliteError> {
    let (sql, args) = list_statement(now, filter, page);
    let mut stmt = conn.prepare_cached(&sql)?;
    let found = stmt.query_map(params_from_iter(args.iter()), rows::session)?;
    Ok(found.collect::<Result<_, _>>()?)
}

/// Deletes up to `batch` expired sessions (and their messages); returns how many.
pub(crate) fn purge_expired(
    conn: &Connection,
    now: i64,
    batch: usize,
) -> Result<usize, SqliteError> {
    Ok(conn
        .prepare_cached(sql::PURGE_EXPIRED)?
        .execute(params![now, sql_count(batch)])?)
}
