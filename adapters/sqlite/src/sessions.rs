//! Session queries. Each function runs inside a transaction the worker opened, and
//! takes `now` (microseconds) from the store's clock: a row whose `expires_at <= now`
//! is expired and treated as absent (it stays stored until purged).

use chrono::{DateTime, Utc};
use colloquy_core::{Entity, Page, Session, SessionFilter, SessionPatch, SessionRef};
use rusqlite::{params, params_from_iter, Connection, OptionalExtension, ToSql};

use crate::error::SqliteError;
use crate::rows::{self, metadata_json, micros, session_columns, sql_count};

const NO_SESSION: SqliteError = SqliteError::NotFound(Entity::Session);

/// The statements, as constants so the query-plan test checks exactly these.
pub(crate) mod sql {
    use crate::rows::session_columns;

    /// Whether a live session holds a session_id.
    pub(crate) const SESSION_ID_TAKEN: &str =
        "SELECT 1 FROM sessions WHERE session_id = ?1 AND expires_at > ?2 LIMIT 1";
    /// Inserts a session.
    pub(crate) const INSERT: &str = "INSERT INTO sessions
         (id, session_id, external_user_id, created_at, expires_at, is_active, metadata,
          responder, handoff_requested_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)";
    /// A live session by id.
    pub(crate) const GET_BY_ID: &str = concat!(
        "SELECT ",
        session_columns!(),
        " FROM sessions WHERE id = ?1 AND expires_at > ?2"
    );
    /// The live session holding a session_id. At most one is live (creation checks
    /// it); should a clock set back revive an old holder, the one expiring last wins.
    pub(crate) const GET_BY_SESSION_ID: &str = concat!(
        "SELECT ",
        session_columns!(),
        " FROM sessions WHERE session_id = ?1 AND expires_at > ?2
         ORDER BY expires_at DESC LIMIT 1"
    );
    /// Writes the patchable fields.
    pub(crate) const UPDATE: &str = "UPDATE sessions
         SET external_user_id = ?2, expires_at = ?3, is_active = ?4, metadata = ?5,
             responder = ?6, handoff_requested_at = ?7
         WHERE id = ?1";
    /// Deletes a session (its messages cascade).
    pub(crate) const DELETE: &str = "DELETE FROM sessions WHERE id = ?1";
    /// Deletes a batch of sessions expired at or before a cutoff (their messages
    /// cascade).
    pub(crate) const PURGE_EXPIRED: &str = "DELETE FROM sessions WHERE id IN
         (SELECT id FROM sessions WHERE expires_at <= ?1 LIMIT ?2)";
}

/// Inserts `session`; [`SqliteError::Conflict`]`(Session)` when a live session has
/// its `session_id` or any stored session its `id`.
///
/// An expired session keeps its row, session_id included, until purged: only live
/// holders count. Runs on the one writer, so the check and the insert are atomic.
pub(crate) fn create(conn: &Connection, now: i64, session: &Session) -> Result<(), SqliteError> {
    let taken = conn
        .prepare_cached(sql::SESSION_ID_TAKEN)?
        .query_row(params![session.session_id, now], |_| Ok(()))
        .optional()?
        .is_some();
    if taken {
        return Err(SqliteError::Conflict(Entity::Session));
    }
    let inserted = conn.prepare_cached(sql::INSERT)?.execute(params![
        session.id.as_bytes(),
        session.session_id,
        session.external_user_id,
        micros(session.created_at),
        micros(session.expires_at),
        session.is_active,
        metadata_json(&session.metadata)?,
        session.responder.as_str(),
        session.handoff_requested_at.map(micros),
    ]);
    match inserted.map_err(SqliteError::from) {
        Ok(_) => Ok(()),
        // The primary key: a stored session, live or not, has this id.
        Err(e) if e.is_unique_violation() => Err(SqliteError::Conflict(Entity::Session)),
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

/// The live session `reference` names: by UUID first, then by `session_id`.
pub(crate) fn find(
    conn: &Connection,
    now: i64,
    reference: &SessionRef,
) -> Result<Option<Session>, SqliteError> {
    if let Some(id) = reference.uuid() {
        if let Some(found) = one(conn, sql::GET_BY_ID, &id.as_bytes().as_slice(), now)? {
            return Ok(Some(found));
        }
    }
    one(conn, sql::GET_BY_SESSION_ID, &reference.as_str(), now)
}

/// [`find`], failing with `NotFound(Session)` when no live session matches.
pub(crate) fn resolve(
    conn: &Connection,
    now: i64,
    reference: &SessionRef,
) -> Result<Session, SqliteError> {
    find(conn, now, reference)?.ok_or(NO_SESSION)
}

/// Applies `patch` to the live session `reference` names and returns it as stored.
pub(crate) fn update(
    conn: &Connection,
    now: i64,
    reference: &SessionRef,
    patch: &SessionPatch,
) -> Result<Session, SqliteError> {
    let mut session = resolve(conn, now, reference)?;
    patch.apply_to(&mut session);
    conn.prepare_cached(sql::UPDATE)?.execute(params![
        session.id.as_bytes(),
        session.external_user_id,
        micros(session.expires_at),
        session.is_active,
        metadata_json(&session.metadata)?,
        session.responder.as_str(),
        session.handoff_requested_at.map(micros),
    ])?;
    // What a reader will get back: the stored microseconds.
    session.expires_at = rows::time(micros(session.expires_at))?;
    session.handoff_requested_at = session
        .handoff_requested_at
        .map(|t| rows::time(micros(t)))
        .transpose()?;
    Ok(session)
}

/// Deletes the live session `reference` names; its messages go with it
/// (`ON DELETE CASCADE`), soft-deleted ones included.
pub(crate) fn delete(
    conn: &Connection,
    now: i64,
    reference: &SessionRef,
) -> Result<(), SqliteError> {
    let session = resolve(conn, now, reference)?;
    conn.prepare_cached(sql::DELETE)?
        .execute(params![session.id.as_bytes()])?;
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

/// Deletes up to `batch` sessions expiring at or before `cutoff` (and their
/// messages); returns how many. A session that took the session_id of a purged one
/// is another row, expiring later: it stays.
pub(crate) fn purge_expired(
    conn: &Connection,
    cutoff: DateTime<Utc>,
    batch: usize,
) -> Result<usize, SqliteError> {
    Ok(conn
        .prepare_cached(sql::PURGE_EXPIRED)?
        .execute(params![micros(cutoff), sql_count(batch)])?)
}
